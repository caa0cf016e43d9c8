"""numpyllm.training.data_parallel: slices of the batch on threads give the one-thread loss and
gradients (float64, to rounding), share the weights, and keep runs reproducible."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numpyllm import parallel
from numpyllm.autograd import Tensor
from numpyllm.training.data_parallel import DataParallel
from numpyllm.nn.gpt import GPT, GPTConfig
from numpyllm.optim import AdamW

V, T = 11, 8


def model(dropout=0.0, seed=0, dtype="float64"):
    cfg = GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=8,
                    dropout=dropout, dtype=dtype)
    return GPT(cfg, rng=np.random.default_rng(seed))


def grads(m):
    return {n: None if p.grad is None else p.grad.copy() for n, p in m.named_parameters()}


def clear(m):
    for p in m.parameters():
        p.grad = None


def serial(m, x, y):
    _, loss = m(x, targets=y)
    loss.backward()
    out = float(loss.item()), grads(m)
    clear(m)
    return out


@settings(deadline=None)
@given(B=st.integers(1, 7), threads=st.integers(1, 4), seed=st.integers(0, 2**16),
       ignored=st.lists(st.tuples(st.integers(0, 6), st.integers(0, T)), max_size=4))
def test_equals_one_thread(B, threads, seed, ignored):
    m = model()
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, (B, T))
    y = rng.integers(0, V, (B, T))
    for row, upto in ignored:          # ignored targets: slices count unequal tokens
        if row < B:
            y[row, :upto] = -100
    ref_loss, ref = serial(m, x, y)
    loss = DataParallel(m, threads=threads).forward_backward(x, y)
    if np.isnan(ref_loss):             # every target ignored: the model's own answer
        assert np.isnan(loss)
        return
    assert loss == pytest.approx(ref_loss, abs=1e-12)
    for name, g in grads(m).items():
        np.testing.assert_allclose(g, ref[name], rtol=0, atol=1e-12, err_msg=name)


def test_grads_accumulate_and_scale():
    m = model()
    x = np.random.default_rng(1).integers(0, V, (6, T))
    _, ref = serial(m, x, x)
    dp = DataParallel(m, threads=3)
    dp.forward_backward(x, x, scale=0.25)
    dp.forward_backward(x, x, scale=0.75)      # adds to .grad, like backward()
    for name, g in grads(m).items():
        np.testing.assert_allclose(g, ref[name], atol=1e-12, err_msg=name)


def test_loss_builds_no_graph_and_leaves_grads():
    m = model()
    x = np.random.default_rng(2).integers(0, V, (5, T))
    ref_loss, _ = serial(m, x, x)
    assert DataParallel(m, threads=2).loss(x, x) == pytest.approx(ref_loss, abs=1e-12)
    assert all(p.grad is None for p in m.parameters())


def test_replicas_share_the_weights_and_follow_updates():
    m = model()
    dp = DataParallel(m, threads=2)
    rng = np.random.default_rng(3)
    x = rng.integers(0, V, (4, T))
    dp.forward_backward(x, x)
    replica = dp._replicas[0][0]
    for (_, p), (_, r) in zip(m.named_parameters(), replica.named_parameters()):
        assert r is not p and np.shares_memory(r.data, p.data)
    opt = AdamW(list(m.parameters()), lr=1e-2)
    opt.step()                                  # in place: the replica sees it
    opt.zero_grad()
    for p in m.parameters():                    # a rebinding too (what .to() does)
        p.data = p.data.copy()
    x2 = rng.integers(0, V, (4, T))
    ref_loss, ref = serial(m, x2, x2)
    assert dp.forward_backward(x2, x2) == pytest.approx(ref_loss, abs=1e-12)
    for name, g in grads(m).items():
        np.testing.assert_allclose(g, ref[name], atol=1e-12, err_msg=name)


def test_dropout_is_reproducible_and_follows_train_and_eval():
    x = np.random.default_rng(4).integers(0, V, (6, T))
    runs = []
    for _ in range(2):
        m = model(dropout=0.3, seed=5)
        dp = DataParallel(m, threads=2)
        losses = [dp.forward_backward(x, x) for _ in range(3)]
        runs.append((losses, grads(m)))
    assert runs[0][0] == runs[1][0]
    for name, g in runs[0][1].items():
        np.testing.assert_array_equal(g, runs[1][1][name])
    assert len(set(runs[0][0])) == 3                   # fresh masks every step
    m = model(dropout=0.3, seed=5)
    m.eval()                                           # no dropout: the exact loss again
    ref_loss, _ = serial(m, x, x)
    assert DataParallel(m, threads=2).loss(x, x) == pytest.approx(ref_loss, abs=1e-12)


def test_a_non_finite_slice_gives_a_non_finite_loss():
    m = model()
    m.wte.weight.data[3] = np.nan                       # only rows that use token 3
    x = np.zeros((4, T), dtype=np.int64)
    x[3, 0] = 3
    loss = DataParallel(m, threads=2).forward_backward(x, x)
    assert np.isnan(loss)


def test_float32_and_threads_from_the_process_setting():
    before = parallel.num_threads()
    try:
        parallel.set_num_threads(3)
        assert DataParallel(model()).threads == 3
    finally:
        parallel.set_num_threads(before)
    m = model(dtype="float32")
    x = np.random.default_rng(6).integers(0, V, (4, T))
    ref_loss, ref = serial(m, x, x)
    assert DataParallel(m, threads=2).forward_backward(x, x) == pytest.approx(ref_loss, rel=1e-6)
    for name, g in grads(m).items():
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, ref[name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_thread_counts(bad):
    with pytest.raises((ValueError, TypeError), match="threads"):
        DataParallel(model(), threads=bad)


def test_a_failed_call_leaves_nothing_behind():
    m = model()
    x = np.random.default_rng(7).integers(0, V, (4, T))
    _, ref = serial(m, x, x)
    dp = DataParallel(m, threads=2)
    bad = x.copy()
    bad[0, 0] = V + 5                                   # slice 0 raises, slice 1 finishes
    with pytest.raises((IndexError, ValueError)):
        dp.forward_backward(x, bad)
    m.zero_grad()
    dp.forward_backward(x, x)
    for name, g in grads(m).items():
        np.testing.assert_allclose(g, ref[name], atol=1e-12, err_msg=name)


def test_frozen_parameters_get_no_gradient():
    m = model()
    m.wpe.weight.requires_grad = False
    x = np.random.default_rng(8).integers(0, V, (4, T))
    DataParallel(m, threads=2).forward_backward(x, x)
    assert m.wpe.weight.grad is None and m.wte.weight.grad is not None


def test_replicas_follow_a_change_of_dtype():
    m = model()
    dp = DataParallel(m, threads=2)
    x = np.random.default_rng(9).integers(0, V, (4, T))
    dp.forward_backward(x, x)
    m.zero_grad()
    m.to(np.float32)
    ref_loss, ref = serial(m, x, x)
    assert dp.forward_backward(x, x) == pytest.approx(ref_loss, rel=1e-6)
    for name, g in grads(m).items():
        assert g.dtype == np.float32, name
        np.testing.assert_allclose(g, ref[name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("B", [1, 4])
def test_forward_backward_records_a_graph_even_under_no_grad(B):
    from numpyllm.autograd import no_grad
    m = model()
    x = np.random.default_rng(10).integers(0, V, (B, T))
    _, ref = serial(m, x, x)
    with no_grad():
        DataParallel(m, threads=2).forward_backward(x, x)
    for name, g in grads(m).items():
        np.testing.assert_allclose(g, ref[name], atol=1e-12, err_msg=name)

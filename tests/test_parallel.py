"""numpyllm.parallel: pieces cover the range once, errors propagate, results do not
depend on the number of threads (attention, bit for bit)."""
import numpy as np
import pytest

from numpyllm import parallel
from numpyllm.autograd import Tensor
from numpyllm.functional import attention, scaled_dot_product_attention


@pytest.fixture
def threads():
    before = parallel.num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


@pytest.mark.parametrize("n_threads, n", [(1, 5), (2, 5), (3, 7), (4, 2), (2, 1)])
def test_pieces_cover_the_range_once(threads, n_threads, n):
    threads(n_threads)
    seen = np.zeros(n, dtype=int)

    def work(sl):
        seen[sl] += 1
    parallel.for_slices(n, work)
    assert (seen == 1).all()


def test_small_work_stays_serial(threads):
    threads(2)
    calls = []
    parallel.for_slices(8, calls.append, min_work=100, work_per_item=1)
    assert calls == [slice(0, 8)]


def test_errors_propagate(threads):
    threads(2)

    def work(sl):
        if sl.start > 0:
            raise RuntimeError("piece failed")
    with pytest.raises(RuntimeError, match="piece failed"):
        parallel.for_slices(4, work)


def test_bad_thread_count():
    with pytest.raises(ValueError, match="positive integer"):
        parallel.set_num_threads(0)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_attention_is_bit_identical_on_one_or_two_threads(threads, dropout_p):
    rng = np.random.default_rng(0)
    # 6 x 4 x 128 x 128 scores: above the size attention starts splitting at
    arrays = [rng.standard_normal((6, 4, 128, 32)).astype(np.float32) for _ in range(3)]
    g = rng.standard_normal((6, 4, 128, 32)).astype(np.float32)
    assert 6 * 4 * 128 * 128 >= attention._PARALLEL_MIN_SCORES
    results = []
    for n in (1, 2):
        threads(n)
        q, k, v = (Tensor(a, requires_grad=True) for a in arrays)
        out = scaled_dot_product_attention(q, k, v, causal=True, dropout_p=dropout_p,
                                           rng=np.random.default_rng(1))
        out.backward(g)
        results.append([out.data, q.grad, k.grad, v.grad])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_a_region_inside_a_piece_runs_serially(threads):
    # nested regions do not wait on the pool from one of its own threads (a deadlock
    # with one worker): the inner call runs whole in the piece's thread
    threads(2)
    inner = []

    def work(sl):
        parallel.for_slices(6, inner.append)
    parallel.for_slices(2, work)
    assert inner == [slice(0, 6), slice(0, 6)]


def _fused_cases(rng):
    """(name, function of Tensors -> scalar Tensor, arrays): the fused ops that cut their
    rows or elements into blocks and pieces (numpyllm.parallel.elementwise / rowwise)."""
    from numpyllm import functional as F
    N, C, V = 37, 24, 19
    x = rng.standard_normal((N, C)).astype(np.float32)
    w, b = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    t = rng.integers(0, V, N)
    t[3] = -100                                          # an ignored row
    return [
        ("gelu", lambda a: (F.gelu(a, approximate="tanh") * a).sum(), [x]),
        ("silu_mul", lambda a, c: (F.silu_mul(a, c) * a).sum(), [x, x[::-1].copy()]),
        ("layer_norm", lambda a, ww, bb: (F.layer_norm(a, ww, bb) * a).sum(), [x, w, b]),
        ("rms_norm", lambda a, ww: (F.rms_norm(a, ww) * a).sum(), [x, w]),
        ("cross_entropy", lambda a: F.cross_entropy(a, t, label_smoothing=0.1),
         [rng.standard_normal((N, V)).astype(np.float32)]),
    ]


@pytest.mark.parametrize("case", range(5))
def test_blocked_fused_ops_are_bit_identical_on_any_thread_count_and_block(threads,
                                                                           monkeypatch, case):
    """Blocks of 7 elements (and rows of ~1), pieces on 1, 2 or 3 threads: the same bits
    as one block on one thread. The norms take each row's sums as a BLAS matrix-vector
    product with ones (several times faster than np.sum over short rows), and BLAS groups
    rows differently in a block of 3 than in a block of 37: their figures agree to
    rounding, not to the bit (seen failing at the bit with 209 of 888 elements)."""
    results = []
    for n_threads, block, small in ((1, 1 << 30, False), (2, 7, True), (3, 64, True)):
        threads(n_threads)
        monkeypatch.setattr(parallel, "ELEMENTWISE_BLOCK", block)
        if small:                                        # every op cut, however small
            monkeypatch.setattr(parallel, "ELEMENTWISE_MIN", 0)
            monkeypatch.setattr("numpyllm.functional.loss._PARALLEL_MIN", 0)
            monkeypatch.setattr("numpyllm.functional.loss._CHUNK_ELEMENTS", 40)
        name, fn, arrays = _fused_cases(np.random.default_rng(0))[case]
        ts = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = fn(*ts)
        out.backward()
        results.append([out.data] + [t.grad for t in ts])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            if name in ("layer_norm", "rms_norm"):
                np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6)
            else:
                np.testing.assert_array_equal(a, b)


def test_adam_is_bit_identical_on_any_thread_count_and_block(threads, monkeypatch):
    from numpyllm.nn import Parameter
    from numpyllm.optim import Adam, AdamW
    rng = np.random.default_rng(0)
    start = rng.standard_normal((33, 17)).astype(np.float32)
    grads = [rng.standard_normal((33, 17)).astype(np.float32) for _ in range(3)]
    for cls in (Adam, AdamW):
        results = []
        for n_threads, block in ((1, 1 << 30), (2, 7), (3, 50)):
            threads(n_threads)
            monkeypatch.setattr(parallel, "ELEMENTWISE_BLOCK", block)
            monkeypatch.setattr(parallel, "ELEMENTWISE_MIN", 0 if block < 100 else 1 << 17)
            p = Parameter(start.copy())
            opt = cls([p], lr=0.01, weight_decay=0.1)
            for g in grads:
                p.grad = g.copy()
                opt.step()
            results.append(p.data)
        for other in results[1:]:
            np.testing.assert_array_equal(results[0], other)

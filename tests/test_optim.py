"""numpyllm.optim: updates equal their formulas, state dicts resume bit-exactly, clipping,
schedules, parameter groups, and a tiny model that learns."""
import io
import json
import math

import numpy as np
import pytest

from numpyllm import Tensor
from numpyllm.nn import Embedding, LayerNorm, Linear, Module, Parameter
from numpyllm.optim import (SGD, Adam, AdamW, Constant, CosineWithWarmup, clip_grad_norm_,
                            configure_param_groups, constant, cosine_with_warmup)

N_STEPS = 6


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(shape), dtype=dtype) for shape in [(3, 4), (4,), (2,)]]


def grad_sequence(params, n_steps=N_STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(p.shape).astype(p.dtype) for p in params] for _ in range(n_steps)]


def run(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        opt.step()


# ---------------------------------------------------------------------- reference formulas
def ref_sgd(p, grads, lr, momentum=0.0, wd=0.0, nesterov=False):
    p, buf = p.copy(), None
    for g in grads:
        d = g + wd * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def ref_adam(p, grads, lr, betas, eps, wd, decoupled):
    p = p.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    b1, b2 = betas
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


SGD_CASES = [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
             dict(weight_decay=0.1), dict(momentum=0.8, weight_decay=0.05, nesterov=True)]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_matches_formula(kw):
    params = make_params()
    start = [p.data.copy() for p in params]
    grads = grad_sequence(params)
    run(SGD(params, lr=0.05, **kw), params, grads)
    for i, p in enumerate(params):
        expected = ref_sgd(start[i], [g[i] for g in grads], 0.05, kw.get("momentum", 0.0),
                           kw.get("weight_decay", 0.0), kw.get("nesterov", False))
        np.testing.assert_allclose(p.data, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("cls,decoupled,wd", [(Adam, False, 0.0), (Adam, False, 0.1),
                                              (AdamW, True, 0.1), (AdamW, True, 0.0)])
def test_adam_and_adamw_match_formula(cls, decoupled, wd):
    params = make_params()
    start = [p.data.copy() for p in params]
    grads = grad_sequence(params)
    betas, eps, lr = (0.8, 0.95), 1e-6, 0.01
    run(cls(params, lr=lr, betas=betas, eps=eps, weight_decay=wd), params, grads)
    for i, p in enumerate(params):
        expected = ref_adam(start[i], [g[i] for g in grads], lr, betas, eps, wd, decoupled)
        np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-14)


def test_defaults():
    p = make_params()
    assert AdamW(p).param_groups[0]["weight_decay"] == 0.01
    assert Adam(p).param_groups[0]["weight_decay"] == 0.0
    g = Adam(p).param_groups[0]
    assert (g["lr"], g["betas"], g["eps"]) == (1e-3, (0.9, 0.999), 1e-8)


def test_param_groups_use_their_own_hyperparameters():
    params = make_params()
    start = [p.data.copy() for p in params]
    grads = grad_sequence(params)
    opt = AdamW([{"params": params[:1], "weight_decay": 0.1},
                 {"params": params[1:], "weight_decay": 0.0, "lr": 0.05}], lr=0.01)
    run(opt, params, grads)
    gs = lambda i: [g[i] for g in grads]  # noqa: E731
    np.testing.assert_allclose(params[0].data, ref_adam(start[0], gs(0), 0.01, (0.9, 0.999),
                                                         1e-8, 0.1, True), rtol=1e-12)
    np.testing.assert_allclose(params[2].data, ref_adam(start[2], gs(2), 0.05, (0.9, 0.999),
                                                         1e-8, 0.0, True), rtol=1e-12)


@pytest.mark.parametrize("make", [lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1),
                                  lambda ps: Adam(ps, lr=0.01, weight_decay=0.1),
                                  lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                                 weight_decay=0.1)])
def test_updates_in_place_in_float32_without_touching_grads(make):
    params = make_params(np.float32)
    arrays = [p.data for p in params]
    opt = make(params)
    grads = grad_sequence(params, 1)[0]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    opt.step()
    for p, a, g in zip(params, arrays, grads):
        assert p.data is a and p.dtype == np.float32
        assert np.array_equal(p.grad, g)                 # the gradient is not modified
    for s in opt.state.values():
        for v in s.values():
            if isinstance(v, np.ndarray):
                assert v.dtype == np.float32


def test_params_without_grad_are_skipped():
    params = make_params()
    before = params[1].data.copy()
    opt = AdamW(params, lr=0.1)
    params[0].grad = np.ones(params[0].shape)
    params[2].grad = np.ones(params[2].shape)
    opt.step()
    assert np.array_equal(params[1].data, before) and 1 not in opt.state
    assert opt.state[0]["step"] == 1 and opt.state[2]["step"] == 1
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.step()                                           # nothing to do
    assert opt.state[0]["step"] == 1


def test_lr_setter_and_groups():
    params = make_params()
    opt = SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.1)
    assert opt.lr == 0.1
    opt.lr = 0.01
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01]
    assert "group 1: 2 params" in repr(opt)


def test_constructor_errors():
    params = make_params()
    with pytest.raises(ValueError, match="empty"):
        AdamW([])
    with pytest.raises(TypeError, match="single Tensor"):
        AdamW(params[0])
    with pytest.raises(ValueError, match="twice"):
        AdamW([params[0], params[0]])
    with pytest.raises(ValueError, match="twice"):
        AdamW([{"params": params[:2]}, {"params": params[1:]}])
    with pytest.raises(ValueError, match="weight_deacy"):
        AdamW([{"params": params, "weight_deacy": 0.1}])
    with pytest.raises(TypeError, match="floating"):
        SGD([np.ones(3)], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        SGD(params, lr=-1.0)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam(params, betas=(0.9, 1.0))


# ---------------------------------------------------------------------- state dict
def through_npz_and_json(state_dict):
    """What a checkpoint does: arrays to .npz, everything else to JSON; no pickle."""
    arrays, numbers = {}, {"param_groups": state_dict["param_groups"], "state": {}}
    for i, s in state_dict["state"].items():
        numbers["state"][i] = {}
        for k, v in s.items():
            if isinstance(v, np.ndarray):
                arrays[f"{i}.{k}"] = v
            else:
                numbers["state"][i][k] = v
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    loaded = json.loads(json.dumps(numbers))             # int keys come back as strings
    with np.load(buf, allow_pickle=False) as f:
        for name in f.files:
            i, k = name.split(".", 1)
            loaded["state"][i][k] = f[name]
    return loaded


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda ps: AdamW([{"params": ps[:1], "weight_decay": 0.1},
                                                    {"params": ps[1:], "weight_decay": 0.0}],
                                                   lr=3e-3, betas=(0.9, 0.99)),
                                  lambda ps: Adam(ps, lr=1e-2, weight_decay=0.01),
                                  lambda ps: SGD(ps, lr=0.1, momentum=0.9)])
def test_state_dict_round_trip_resumes_bit_exactly(make, dtype):
    grads = grad_sequence(make_params(dtype), 10)
    reference = make_params(dtype)                       # the uninterrupted run
    run(make(reference), reference, grads)

    params = make_params(dtype)                          # 5 steps, then a checkpoint
    opt = make(params)
    run(opt, params, grads[:5])
    state = through_npz_and_json(opt.state_dict())
    resumed = [Parameter(p.data) for p in params]        # a fresh model and optimizer
    opt2 = make(resumed)
    opt2.lr = 123.0                                      # load restores the hyperparameters
    opt2.load_state_dict(state)
    run(opt2, resumed, grads[5:])
    for p, r in zip(resumed, reference):
        assert p.dtype == dtype and np.array_equal(p.data, r.data)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_state_dict_is_a_copy_and_load_checks_shapes():
    params = make_params()
    opt = AdamW(params)
    run(opt, params, grad_sequence(params, 1))
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"][...] = 7.0
    assert not np.any(opt.state[0]["exp_avg"] == 7.0)
    opt2 = AdamW(make_params())
    opt2.load_state_dict(sd)
    sd["state"][0]["exp_avg"][...] = 8.0                 # no reference kept
    assert not np.any(opt2.state[0]["exp_avg"] == 8.0)
    assert isinstance(opt2.param_groups[0]["betas"], tuple)
    bad = opt.state_dict()
    bad["state"][1]["exp_avg"] = np.zeros(5)
    with pytest.raises(ValueError, match="shape"):
        opt2.load_state_dict(bad)
    with pytest.raises(ValueError, match="param groups"):
        AdamW([{"params": params[:1]}, {"params": params[1:]}]).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="parameters"):
        AdamW(params[:2]).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="another optimizer"):
        SGD(params, lr=0.1).load_state_dict(opt.state_dict())


# ---------------------------------------------------------------------- clipping
def test_clip_grad_norm_matches_linalg_norm_and_scales():
    params = make_params(np.float32)
    rng = np.random.default_rng(3)
    for p in params:
        p.grad = (rng.standard_normal(p.shape) * 10).astype(np.float32)
    params.append(Parameter(np.ones(3)))                 # grad None: skipped
    grads = [p.grad.copy() for p in params[:3]]
    expected = np.linalg.norm(np.concatenate([g.astype(np.float64).ravel() for g in grads]))
    norm = clip_grad_norm_(params, 1.0)
    assert isinstance(norm, float) and norm == pytest.approx(expected, rel=1e-12)
    new = np.linalg.norm(np.concatenate([p.grad.ravel() for p in params[:3]]))
    assert new == pytest.approx(1.0, rel=1e-5)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * (1.0 / (expected + 1e-6)), rtol=1e-6)
        assert p.grad.dtype == np.float32
    # below the limit: untouched
    before = [p.grad.copy() for p in params[:3]]
    assert clip_grad_norm_(params, 10.0) == pytest.approx(1.0, rel=1e-5)
    assert all(np.array_equal(p.grad, b) for p, b in zip(params, before))


def test_clip_grad_norm_float64_accumulation_and_nonfinite():
    p = Parameter(np.zeros(4), dtype=np.float32)
    p.grad = np.full(4, 1e20, dtype=np.float32)          # squares overflow float32
    assert clip_grad_norm_([p], 1.0) == pytest.approx(2e20, rel=1e-6)
    assert np.all(np.isfinite(p.grad))
    q = Parameter(np.zeros(2))
    q.grad = np.array([np.inf, 1.0])
    assert clip_grad_norm_([q], 1.0) == math.inf
    assert q.grad.tolist() == [np.inf, 1.0]               # left as it was
    q.grad = np.array([np.nan, 1.0])
    assert math.isnan(clip_grad_norm_(q, 1.0))
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([q], 0.0)
    assert clip_grad_norm_([Parameter(np.ones(2))], 1.0) == 0.0


# ---------------------------------------------------------------------- schedules
def test_cosine_with_warmup_at_key_steps():
    kw = dict(max_lr=6e-4, min_lr=6e-5, warmup_iters=100, lr_decay_iters=1100)
    f = lambda s: cosine_with_warmup(s, **kw)  # noqa: E731
    assert f(0) == pytest.approx(6e-4 * 1 / 101)          # nanoGPT: (it + 1) / (warmup + 1)
    assert f(50) == pytest.approx(6e-4 * 51 / 101)
    assert f(99) == pytest.approx(6e-4 * 100 / 101)
    assert f(100) == pytest.approx(6e-4)                  # warmup done: the peak
    assert f(600) == pytest.approx((6e-4 + 6e-5) / 2)     # midpoint of the cosine
    assert f(350) == pytest.approx(6e-5 + 0.5 * (1 + math.cos(math.pi / 4)) * 5.4e-4)
    assert f(1100) == pytest.approx(6e-5)                 # decay end
    assert f(1101) == f(10 ** 6) == 6e-5                  # after: the floor
    lrs = [f(s) for s in range(1200)]
    assert all(a < b for a, b in zip(lrs[:100], lrs[1:101]))
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:]))
    sched = CosineWithWarmup(**kw)
    assert [sched(s) for s in range(1200)] == lrs
    assert cosine_with_warmup(0, max_lr=1.0, min_lr=0.0, warmup_iters=0, lr_decay_iters=10) == 1.0
    with pytest.raises(ValueError, match="warmup_iters"):
        CosineWithWarmup(max_lr=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=10)


def test_constant_schedule_and_setting_lr_each_step():
    assert constant(3e-4)(0) == constant(3e-4)(10 ** 6) == 3e-4 and constant(1.0) == Constant(1.0)
    params = make_params()
    opt = AdamW(configure_groups_for(params), lr=1.0)
    sched = CosineWithWarmup(max_lr=1e-3, min_lr=1e-4, warmup_iters=2, lr_decay_iters=6)
    for it in range(8):
        opt.lr = sched(it)
        assert all(g["lr"] == sched(it) for g in opt.param_groups)


def configure_groups_for(params):
    return [{"params": params[:1], "weight_decay": 0.1}, {"params": params[1:],
                                                          "weight_decay": 0.0}]


# ---------------------------------------------------------------------- parameter groups
class TinyLM(Module):
    def __init__(self, rng):
        super().__init__()
        self.wte = Embedding(10, 4, rng=rng)
        self.wpe = Embedding(6, 4, rng=rng)
        self.ln = LayerNorm(4)
        self.fc = Linear(4, 8, rng=rng)
        self.head = Linear(4, 10, bias=False, rng=rng)


def test_configure_param_groups_like_nanogpt():
    m = TinyLM(np.random.default_rng(0))
    decay, no_decay = configure_param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == ids([m.wte.weight, m.wpe.weight, m.fc.weight, m.head.weight])
    assert ids(no_decay["params"]) == ids([m.ln.weight, m.ln.bias, m.fc.bias])
    decay, no_decay = configure_param_groups(m, 0.1, decay_embeddings=False)
    assert ids(decay["params"]) == ids([m.fc.weight, m.head.weight])
    assert ids(no_decay["params"]) == ids([m.wte.weight, m.wpe.weight, m.ln.weight,
                                           m.ln.bias, m.fc.bias])
    opt = AdamW(configure_param_groups(m, 0.1), lr=1e-3)  # ready for the optimizer
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))


# ---------------------------------------------------------------------- learning
@pytest.mark.parametrize("make", [lambda ps: AdamW(ps, lr=0.05, weight_decay=0.0),
                                  lambda ps: Adam(ps, lr=0.05),
                                  lambda ps: SGD(ps, lr=0.1, momentum=0.9)])
def test_linear_regression_learns(make):
    rng = np.random.default_rng(0)
    w_true = rng.standard_normal((5, 2))
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = (x @ w_true + np.array([0.5, -1.0])).astype(np.float32)
    model = Linear(5, 2, rng=rng)
    opt = make(model.parameters())
    for _ in range(300):
        err = model(Tensor(x)) - y
        loss = (err * err).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-4
    np.testing.assert_allclose(model.weight.data, w_true, atol=1e-2)
    assert model.weight.dtype == np.float32


@pytest.mark.parametrize("damage, match", [
    (lambda e: e.pop("step"), "holds"),
    (lambda e: e.update(extra=1), "holds"),
    (lambda e: e.update(step=1.5), "a count >= 0"),
    (lambda e: e.update(step=-1), "a count >= 0"),
    (lambda e: e.update(exp_avg=3.0), "an array of the parameter's shape"),
])
def test_loading_a_state_entry_adam_cannot_use_is_refused(damage, match):
    """A state entry missing a moment or its step, or of the wrong kind, would fail at the
    next step (or worse, run): loading refuses it."""
    p = Parameter(np.ones(3))
    opt = Adam([p])
    p.grad = np.ones(3)
    opt.step()
    state = opt.state_dict()
    damage(state["state"][0])
    with pytest.raises(ValueError, match=match):
        Adam([Parameter(np.ones(3))]).load_state_dict(state)

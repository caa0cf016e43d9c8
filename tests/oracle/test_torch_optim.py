"""Our optimizers and clip_grad_norm_ against torch.optim and torch.nn.utils over 10
steps on the same gradients: 1e-12 in float64, about 1e-6 in float32."""
import numpy as np
import pytest

from numpyllm.nn import Parameter
from numpyllm.optim import SGD, Adam, AdamW, clip_grad_norm_

torch = pytest.importorskip("torch")

DTYPES = [pytest.param(np.float64, 1e-12, id="float64"),
          pytest.param(np.float32, 1e-6, id="float32")]
SHAPES = [(4, 5), (5,), (3, 2, 2)]

CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, betas=(0.9, 0.99), weight_decay=0.1)),
]
OURS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


def groups(params, split):
    """nanoGPT-style groups: the first parameter decayed, the rest not."""
    if not split:
        return params
    return [{"params": params[:1], "weight_decay": 0.1},
            {"params": params[1:], "weight_decay": 0.0}]


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("name,kw", CASES)
@pytest.mark.parametrize("split", [False, True], ids=["one group", "two groups"])
def test_ten_steps_equal_torch(name, kw, split, dtype, tol):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [Parameter(a) for a in start]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in start]
    opt = OURS[name](groups(ours, split), **kw)
    topt = getattr(torch.optim, name)(groups(theirs, split), **kw)
    for step in range(10):
        for p, tp in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad, tp.grad = g, torch.tensor(g.copy())
        if step == 5:                                 # a schedule changes the lr midway
            opt.lr = kw["lr"] / 2
            for g in topt.param_groups:
                g["lr"] = kw["lr"] / 2
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        assert p.dtype == dtype
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_equals_torch(dtype, tol, max_norm):
    rng = np.random.default_rng(1)
    grads = [(rng.standard_normal(s) * 3).astype(dtype) for s in SHAPES]
    ours = [Parameter(np.zeros(s, dtype=dtype)) for s in SHAPES]
    theirs = [torch.nn.Parameter(torch.zeros(s, dtype=getattr(torch, np.dtype(dtype).name)))
              for s in SHAPES]
    for p, tp, g in zip(ours, theirs, grads):
        p.grad, tp.grad = g.copy(), torch.tensor(g.copy())
    norm = clip_grad_norm_(ours, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert norm == pytest.approx(float(tnorm), rel=tol)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=tol, atol=tol)

"""The fused functions against torch.nn.functional: values and gradients of every input,
to 1e-10 in float64 and about 1e-5 in float32."""
import numpy as np
import pytest

from numpyllm import Tensor
from numpyllm import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = [pytest.param(np.float64, 1e-10, id="float64"),
          pytest.param(np.float32, 1e-5, id="float32")]


def compare(ours, theirs, arrays, tol, seed=0):
    """ours(*Tensors) and theirs(*torch tensors) on the same float arrays: same value,
    same gradient of every input under one random cotangent."""
    ts = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    tt = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    out, tout = ours(*ts), theirs(*tt)
    assert out.dtype == arrays[0].dtype and out.shape == tuple(tout.shape)
    v = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    out.backward(v)
    tout.backward(torch.tensor(v))
    scale = max(1.0, float(np.abs(tout.detach().numpy()).max()))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=tol, atol=tol * scale)
    for i, (t, torch_t) in enumerate(zip(ts, tt)):
        assert t.grad.dtype == arrays[0].dtype
        expected = torch_t.grad.numpy()
        np.testing.assert_allclose(t.grad, expected, rtol=tol,
                                   atol=tol * max(1.0, float(np.abs(expected).max())),
                                   err_msg=f"gradient of input {i}")


def randn(rng, dtype, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_layer_norm(dtype, tol):
    rng = np.random.default_rng(0)
    x, w, b = randn(rng, dtype, 3, 5, 16, scale=3.0), randn(rng, dtype, 16), randn(rng, dtype, 16)
    compare(lambda x, w, b: F.layer_norm(x, w, b),
            lambda x, w, b: TF.layer_norm(x, (16,), w, b, 1e-5), [x, w, b], tol)
    compare(lambda x: F.layer_norm(x, eps=1e-3),
            lambda x: TF.layer_norm(x, (16,), eps=1e-3), [x], tol)


@pytest.mark.parametrize("dtype, tol", DTYPES)
@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu(approximate, dtype, tol):
    x = randn(np.random.default_rng(1), dtype, 4, 64, scale=3.0)
    compare(lambda x: F.gelu(x, approximate=approximate),
            lambda x: TF.gelu(x, approximate=approximate), [x], tol)


@pytest.mark.parametrize("dtype, tol", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax(axis, dtype, tol):
    x = randn(np.random.default_rng(2), dtype, 3, 4, 7, scale=5.0)
    compare(lambda x: F.softmax(x, axis=axis), lambda x: TF.softmax(x, dim=axis), [x], tol)
    compare(lambda x: F.log_softmax(x, axis=axis), lambda x: TF.log_softmax(x, dim=axis),
            [x], tol)


@pytest.mark.parametrize("dtype, tol", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore_index", [-100, 0])
def test_cross_entropy(reduction, ignore_index, dtype, tol):
    rng = np.random.default_rng(3)
    logits = randn(rng, dtype, 3, 8, 11, scale=4.0)           # [B, T, V]
    targets = rng.integers(0, 11, size=(3, 8))
    targets[0, :3] = ignore_index
    targets[2, 5] = ignore_index

    def theirs(x):     # torch takes the classes on axis 1: flatten to [B*T, V]
        out = TF.cross_entropy(x.reshape(-1, 11), torch.tensor(targets).reshape(-1),
                               ignore_index=ignore_index, reduction=reduction)
        return out.reshape(3, 8) if reduction == "none" else out
    compare(lambda x: F.cross_entropy(x, targets, ignore_index=ignore_index,
                                      reduction=reduction), theirs, [logits], tol)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.1, 0.5, 1.0])
def test_cross_entropy_with_label_smoothing(reduction, smoothing):
    rng = np.random.default_rng(5)
    logits = randn(rng, np.float64, 3, 8, 11, scale=4.0)
    targets = rng.integers(0, 11, size=(3, 8))
    targets[1, 2:5] = -100

    def theirs(x):
        out = TF.cross_entropy(x.reshape(-1, 11), torch.tensor(targets).reshape(-1),
                               reduction=reduction, label_smoothing=smoothing)
        return out.reshape(3, 8) if reduction == "none" else out
    compare(lambda x: F.cross_entropy(x, targets, reduction=reduction,
                                      label_smoothing=smoothing), theirs, [logits], 1e-10)


def test_cross_entropy_stable_at_1e4_like_torch():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])
    targets = np.array([1, 2])
    compare(lambda x: F.cross_entropy(x, targets),
            lambda x: TF.cross_entropy(x, torch.tensor(targets)), [logits], 1e-10)


@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_embedding(dtype, tol):
    rng = np.random.default_rng(4)
    weight = randn(rng, dtype, 13, 6)
    ids = rng.integers(0, 13, size=(4, 9))                  # 36 ids into 13 rows: repeats
    compare(lambda w: F.embedding(ids, w), lambda w: TF.embedding(torch.tensor(ids), w),
            [weight], tol)

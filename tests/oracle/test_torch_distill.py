"""The distillation loss against PyTorch: ``kl_div`` of the student's log_softmax(s/T) and
the teacher's softmax(t/T), summed over the vocabulary, times T², mixed with
``cross_entropy`` by alpha, averaged over the counted positions (ignore_index -100);
values and gradients of the student's logits to 1e-10 in float64."""
import numpy as np
import pytest

from numpyllm import Tensor
from numpyllm.functional import distill_loss

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def torch_distill(s, t, y, T, alpha, reduction):
    """Hinton's loss as PyTorch code writes it (the knowledge-distillation tutorial's
    soft-target term, per token, with the hard term at T = 1)."""
    V = s.shape[-1]
    s2, t2, y2 = s.reshape(-1, V), t.reshape(-1, V), y.reshape(-1)
    counted = y2 != -100
    kl = TF.kl_div(TF.log_softmax(s2 / T, dim=-1), TF.softmax(t2 / T, dim=-1),
                   reduction="none").sum(-1)                            # [N]
    ce = TF.cross_entropy(s2, y2, ignore_index=-100, reduction="none")  # [N], 0 if ignored
    per = torch.where(counted, alpha * T * T * kl + (1 - alpha) * ce, torch.zeros_like(kl))
    if reduction == "none":
        return per.reshape(y.shape)
    if reduction == "sum":
        return per.sum()
    return per.sum() / counted.sum().clamp(min=1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (2.0, 0.5), (4.0, 0.9), (1.0, 0.0),
                                     (0.7, 1.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distill_loss_equals_torch(seed, T, alpha, reduction):
    rng = np.random.default_rng(seed)
    B, L, V = int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(2, 30))
    s = 3 * rng.standard_normal((B, L, V))
    t = 3 * rng.standard_normal((B, L, V))
    y = rng.integers(0, V, size=(B, L))
    y[rng.random((B, L)) < 0.3] = -100
    cot = rng.standard_normal((B, L)) if reduction == "none" else np.array(1.7)

    ours = Tensor(s.copy(), requires_grad=True)
    loss = distill_loss(ours, t, y, temperature=T, alpha=alpha, reduction=reduction)
    loss.backward(cot)

    ts = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    ref = torch_distill(ts, torch.tensor(t), torch.tensor(y), T, alpha, reduction)
    ref.backward(torch.tensor(cot))

    np.testing.assert_allclose(loss.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.grad, ts.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_kl_term_is_torch_kl_div_batchmean_per_token():
    """alpha = 1 over all-counted tokens: T² kl_div(..., reduction="batchmean") on the
    [N, V] rows, the form Hugging Face distillation scripts use."""
    rng = np.random.default_rng(5)
    s, t = rng.standard_normal((12, 40)) * 2, rng.standard_normal((12, 40)) * 2
    y = rng.integers(0, 40, size=12)
    ours = distill_loss(Tensor(s), t, y, temperature=3.0, alpha=1.0).item()
    ref = 9.0 * TF.kl_div(TF.log_softmax(torch.tensor(s) / 3, -1),
                          TF.log_softmax(torch.tensor(t) / 3, -1), reduction="batchmean",
                          log_target=True).item()
    assert abs(ours - ref) <= 1e-10 * abs(ref)

"""DPO against PyTorch: from the same logits and reference log-probabilities, the loss,
the rewards and the gradient of the logits, computed the way the LLMs-from-scratch book
and TRL write it (log_softmax, gather, mask, sum or mean; -logsigmoid), to 1e-10 in
float64."""
import numpy as np
import pytest

from numpyllm import Tensor
from numpyllm.data.preference import PreferencePairs
from numpyllm.training import DPO, Batch

torch = pytest.importorskip("torch")
TF = torch.nn.functional

V = 13


class FixedLogits:
    def __init__(self, logits):
        self.logits = logits

    def __call__(self, ids):
        return self.logits, None


def torch_dpo(logits, ids, mask, ref_w, ref_l, beta, eps, average):
    """The book's compute_logprobs + compute_dpo_loss (with cDPO's smoothing)."""
    labels = ids[:, 1:]
    lsm = TF.log_softmax(logits, dim=-1)
    picked = torch.gather(lsm, -1, labels.unsqueeze(-1)).squeeze(-1)
    m = mask[:, 1:].to(logits.dtype)
    logp = (picked * m).sum(-1)
    if average:
        logp = logp / m.sum(-1)
    B = ids.shape[0] // 2
    pi_w, pi_l = logp[:B], logp[B:]
    z = beta * ((pi_w - ref_w) - (pi_l - ref_l))
    losses = -(1 - eps) * TF.logsigmoid(z) - eps * TF.logsigmoid(-z)
    return losses.mean(), beta * (pi_w - ref_w), beta * (pi_l - ref_l)


@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dpo_equals_torch(seed, eps, average):
    rng = np.random.default_rng(seed)
    n = 6
    draw = lambda k: rng.integers(0, V, size=rng.integers(1, k))    # noqa: E731
    pairs = PreferencePairs([draw(6) for _ in range(n)], [draw(8) for _ in range(n)],
                            [draw(8) for _ in range(n)])
    beta = float(rng.uniform(0.05, 2.0))
    objective = DPO(beta=beta, label_smoothing=eps, average=average,
                    reference=lambda ids, mask: 5 * rng.standard_normal(len(ids)))
    batch = objective.make_batch(pairs, np.arange(n))
    ids = np.concatenate([batch["chosen_ids"], batch["rejected_ids"]])
    mask = np.concatenate([batch["chosen_mask"], batch["rejected_mask"]])
    logits = 4 * rng.standard_normal((2 * n, ids.shape[1] - 1, V))

    ours = Tensor(logits.copy(), requires_grad=True)
    loss = objective.loss(FixedLogits(ours), batch)
    loss.backward()
    scores = objective.scores(FixedLogits(Tensor(logits)), batch)

    theirs = torch.tensor(logits, requires_grad=True)
    t_loss, r_w, r_l = torch_dpo(theirs, torch.tensor(ids), torch.tensor(mask),
                                 torch.tensor(batch["ref_chosen"]),
                                 torch.tensor(batch["ref_rejected"]), beta, eps, average)
    t_loss.backward()
    assert abs(loss.item() - t_loss.item()) < 1e-10
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
    r_w, r_l = r_w.detach().numpy(), r_l.detach().numpy()
    assert abs(scores["chosen_reward"] - r_w.sum()) < 1e-10
    assert abs(scores["rejected_reward"] - r_l.sum()) < 1e-10
    assert abs(scores["margin"] - (r_w - r_l).sum()) < 1e-10
    assert scores["correct"] == int((r_w > r_l).sum())
    assert abs(scores["loss"] / n - t_loss.item()) < 1e-10


def test_policy_logps_of_a_gpt_equal_torch_from_its_logits():
    """The whole path on a real GPT: our logits, then torch's log-probabilities of them,
    equal ours (the model itself is compared with torch in test_torch_gpt.py)."""
    from numpyllm.nn import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=V, block_size=16, n_layer=1, n_head=2, n_embd=8,
                          dtype="float64"), rng=0)
    rng = np.random.default_rng(3)
    pairs = PreferencePairs([rng.integers(0, V, 3) for _ in range(4)],
                            [rng.integers(0, V, 4) for _ in range(4)],
                            [rng.integers(0, V, 2) for _ in range(4)])
    objective = DPO(reference=model)
    batch = objective.make_batch(pairs, np.arange(4))
    chosen, rejected = objective.policy_logps(model, batch)
    ids = np.concatenate([batch["chosen_ids"], batch["rejected_ids"]])
    mask = np.concatenate([batch["chosen_mask"], batch["rejected_mask"]])
    logits = torch.tensor(model(ids[:, :-1])[0].data)
    lsm = TF.log_softmax(logits, -1)
    picked = torch.gather(lsm, -1, torch.tensor(ids[:, 1:]).unsqueeze(-1)).squeeze(-1)
    logp = (picked * torch.tensor(mask[:, 1:], dtype=torch.float64)).sum(-1).numpy()
    np.testing.assert_allclose(np.concatenate([chosen.data, rejected.data]), logp,
                               rtol=1e-12, atol=1e-12)
    assert isinstance(batch, Batch)

"""DPO: the loss, rewards and gradients against a direct float64 computation of the
formula; policy == reference gives ln 2 and a step that prefers the chosen response;
masked targets (prompt, padding) never count; the objective in the Trainer (data
parallel == one thread, records, the reference as a model or a function, its cache); the
preference data reader, prompts, truncation and split.

The finite-difference checks of sequence_logprob, dpo_loss and a GPT's DPO loss are
registered in numpyllm.checks (tests/test_checks.py runs them with their mutants)."""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, no_grad
from numpyllm.checks import all_checks
from numpyllm.data.preference import (PreferencePairs, alpaca_prompt, collate_preferences,
                                      read_preference_json, split_examples,
                                      tokenize_preferences)
from numpyllm.functional import dpo_loss, sequence_logprob
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import CharTokenizer
from numpyllm.training import (DPO, TrainConfig, Trainer, evaluate_objective,
                               objective_from_dict)
from numpyllm.training.data_parallel import DataParallel
from numpyllm.training.objectives.dpo import sequence_logprobs

from ..conftest import SHARED_DATA

V = 12


def gpt(seed=0, T=10, dtype="float64", **kw):
    return GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=2, n_embd=8,
                         dtype=dtype, **kw), rng=seed)


def random_pairs(n=12, seed=0, longest=4):
    rng = np.random.default_rng(seed)
    draw = lambda: rng.integers(1, V, size=rng.integers(1, longest + 1))   # noqa: E731
    return PreferencePairs([draw() for _ in range(n)], [draw() for _ in range(n)],
                           [draw() for _ in range(n)])


# ------------------------------------------------------------------ the formula, in numpy
def np_log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def np_dpo(logits, ids, mask, ref, beta, eps=0.0, average=False, sft=0.0):
    """Direct float64 DPO on logits [2B, L-1, V] of rows ids [2B, L] (chosen rows first)
    with response mask [2B, L] and reference logps [2B]: loss, rewards and d loss/d logits.
    `sft`: RPO's weight of the chosen rows' mean per-token NLL, added."""
    B2, Lm1, V_ = logits.shape
    B = B2 // 2
    lsm = np_log_softmax(logits)
    tgt, m = ids[:, 1:], mask[:, 1:].astype(float)                 # [2B, L-1]
    picked = np.take_along_axis(lsm, tgt[..., None], axis=-1)[..., 0]
    n = np.maximum(m.sum(axis=1), 1)
    logp = (picked * m).sum(axis=1) / (n if average else 1)        # [2B]
    pi_w, pi_l, ref_w, ref_l = logp[:B], logp[B:], ref[:B], ref[B:]
    z = beta * ((pi_w - ref_w) - (pi_l - ref_l))
    sig = lambda t: 1 / (1 + np.exp(-t))                          # noqa: E731
    loss = np.mean(-(1 - eps) * np.log(sig(z)) - eps * np.log(sig(-z)))
    dz = (-(1 - eps) * sig(-z) + eps * sig(z)) / B                 # d loss / d z
    dlogp = np.concatenate([beta * dz, -beta * dz])                # [2B]
    per_token = 1 if average else n[:B]                            # log π(y_w) -> mean NLL
    loss += sft * np.mean(-pi_w / per_token)
    dlogp[:B] -= sft / per_token / B
    onehot = np.eye(V_)[tgt]                                       # [2B, L-1, V]
    soft = np.exp(lsm)
    scale = (dlogp / (n if average else 1))[:, None, None] * m[..., None]
    grad = scale * (onehot - soft)
    return loss, beta * (pi_w - ref_w), beta * (pi_l - ref_l), grad


class FixedLogits:
    """A "model" whose logits are a leaf Tensor, whatever the ids."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, ids):
        assert ids.shape == self.logits.shape[:2]
        return self.logits, None


@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("eps, sft", [(0.0, 0.0), (0.2, 0.0), (0.0, 0.7)])
def test_loss_rewards_and_gradients_equal_the_formula(average, eps, sft):
    rng = np.random.default_rng(3)
    pairs = random_pairs(5, seed=1)
    objective = DPO(beta=0.3, label_smoothing=eps, average=average, sft_weight=sft,
                    reference=lambda ids, mask: rng.standard_normal(len(ids)))
    batch = objective.make_batch(pairs, np.arange(5))
    ids = np.concatenate([batch["chosen_ids"], batch["rejected_ids"]])
    mask = np.concatenate([batch["chosen_mask"], batch["rejected_mask"]])
    ref = np.concatenate([batch["ref_chosen"], batch["ref_rejected"]])
    logits = Tensor(3 * rng.standard_normal((10, ids.shape[1] - 1, V)), requires_grad=True)
    model = FixedLogits(logits)
    loss = objective.loss(model, batch)
    loss.backward()
    want, r_w, r_l, grad = np_dpo(logits.data, ids, mask, ref, 0.3, eps, average, sft)
    assert abs(loss.item() - want) < 1e-13
    np.testing.assert_allclose(logits.grad, grad, rtol=1e-12, atol=1e-15)
    s = objective.scores(model, batch)
    assert abs(s["loss"] / s["count"] - want) < 1e-13
    assert abs(s["chosen_reward"] - r_w.sum()) < 1e-12
    assert abs(s["rejected_reward"] - r_l.sum()) < 1e-12
    assert abs(s["margin"] - (r_w - r_l).sum()) < 1e-12
    assert s["correct"] == int((r_w > r_l).sum())


def test_sequence_logprob_is_the_masked_sum_of_log_softmax():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 7))
    t = rng.integers(0, 7, size=(3, 5))
    t[0, :3] = -100
    t[2, :] = -100                                      # nothing counted: 0, and no 0/0
    lsm = np_log_softmax(x)
    m = t != -100
    picked = np.where(m, np.take_along_axis(lsm, np.where(m, t, 0)[..., None], -1)[..., 0], 0)
    np.testing.assert_allclose(sequence_logprob(Tensor(x), t).data, picked.sum(1), rtol=1e-13)
    mean = picked.sum(1) / np.maximum(m.sum(1), 1)
    np.testing.assert_allclose(sequence_logprob(Tensor(x), t, average=True).data, mean,
                               rtol=1e-13)
    xt = Tensor(x, requires_grad=True)
    sequence_logprob(xt, t, average=True).sum().backward()
    assert not xt.grad[2].any() and not xt.grad[0, :3].any()


def test_sequence_logprob_refuses_bad_inputs():
    x = Tensor(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"targets of shape \(2, 3\)"):
        sequence_logprob(x, np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match=r"\[B, T, V\]"):
        sequence_logprob(Tensor(np.zeros((3, 4))), np.zeros(3, dtype=int))
    with pytest.raises(IndexError, match="target 4 is out of range"):
        sequence_logprob(x, np.full((2, 3), 4))
    with pytest.raises(TypeError, match="integers"):
        sequence_logprob(x, np.zeros((2, 3)))


def test_dpo_loss_refuses_bad_settings_and_shapes():
    c = Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(c, c, np.zeros(3), np.zeros(3), beta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(c, c, np.zeros(3), np.zeros(3), label_smoothing=0.5)
    with pytest.raises(ValueError, match="one shape"):
        dpo_loss(c, c, np.zeros(2), np.zeros(3))
    for bad in (dict(beta=-1.0), dict(label_smoothing=0.7), dict(average=1), dict(pad_id=-1)):
        with pytest.raises(ValueError, match="DPO"):
            DPO(**bad)


def test_dpo_loss_is_stable_for_large_margins():
    c = Tensor(np.array([1e4, -1e4]), requires_grad=True)
    loss = dpo_loss(c, Tensor(np.zeros(2)), np.zeros(2), np.zeros(2), beta=1.0)
    assert np.isfinite(loss.item()) and abs(loss.item() - 1e4 / 2) < 1e-9
    loss.backward()
    np.testing.assert_allclose(c.grad, [0.0, -0.5])


# ------------------------------------------------------------------ policy == reference
@given(seed=st.integers(0, 2**16), beta=st.floats(0.01, 5.0), average=st.booleans(),
       n=st.integers(1, 6))
def test_policy_equal_to_reference_gives_ln2_and_a_step_prefers_the_chosen(seed, beta,
                                                                           average, n):
    """At policy == reference, Δ = 0: the loss is ln 2 and d loss / d log π(y_w) =
    -β/(2B) = -d loss / d log π(y_l). One small SGD step on a GPT's weights then raises the
    margin Σ (log π(y_w) - log π(y_l)) and lowers the loss (the step follows
    -∇(c - r), whose inner product with ∇(c - r) is |∇(c - r)|² ≥ 0). On free per-row logits
    (no weights shared between the rows) it raises every log π(y_w) and lowers every
    log π(y_l) on its own."""
    model = GPT(GPTConfig(vocab_size=V, block_size=10, n_layer=1, n_head=2, n_embd=8,
                          dtype="float64"), rng=seed)
    pairs = random_pairs(n, seed=seed)
    objective = DPO(beta=beta, average=average)
    objective.check_model(model)                       # the reference: a frozen copy
    batch = objective.make_batch(pairs, np.arange(n))
    # the same batch shape as the cached reference: the same floating-point operations
    chosen, rejected = objective.policy_logps(model, batch)
    np.testing.assert_array_equal(chosen.data, batch["ref_chosen"])
    np.testing.assert_array_equal(rejected.data, batch["ref_rejected"])
    c, r = Tensor(chosen.data, requires_grad=True), Tensor(rejected.data, requires_grad=True)
    loss = dpo_loss(c, r, batch["ref_chosen"], batch["ref_rejected"], beta=beta)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-15)
    loss.backward()
    np.testing.assert_allclose(c.grad, -beta / (2 * n), rtol=1e-14)
    np.testing.assert_allclose(r.grad, beta / (2 * n), rtol=1e-14)

    loss = objective.loss(model, batch)
    loss.backward()
    lr = 1e-4
    for p in model.parameters():
        p.data -= lr * p.grad
    with no_grad():
        c2, r2 = objective.policy_logps(model, batch)
        after = objective.loss(model, batch).item()
    assert (c2.data - r2.data).sum() > (chosen.data - rejected.data).sum()
    assert after < math.log(2)

    # free logits: each row moves on its own
    ids = np.concatenate([batch["chosen_ids"], batch["rejected_ids"]])
    logits = Tensor(np.random.default_rng(seed).standard_normal(
        (2 * n, ids.shape[1] - 1, V)), requires_grad=True)
    free = FixedLogits(logits)
    before_w, before_l = objective.policy_logps(free, batch)
    same = dict(batch.arrays, ref_chosen=before_w.data, ref_rejected=before_l.data)
    from numpyllm.training import Batch
    fb = Batch(same, batch.counts)
    objective.loss(free, fb).backward()
    logits.data -= 1e-3 * logits.grad
    after_w, after_l = objective.policy_logps(free, fb)
    assert (after_w.data > before_w.data).all() and (after_l.data < before_l.data).all()


# ------------------------------------------------------------------ what never counts
@given(seed=st.integers(0, 2**16))
def test_targets_at_prompt_and_padding_positions_never_count(seed):
    """The logits fixed (the same context), any change of the tokens at positions the
    mask leaves out (prompt, padding) changes neither the loss nor a gradient."""
    rng = np.random.default_rng(seed)
    pairs = random_pairs(4, seed=seed)
    objective = DPO(beta=0.7, reference=lambda ids, mask: np.zeros(len(ids)))
    batch = objective.make_batch(pairs, np.arange(4))
    L = batch["chosen_ids"].shape[1]
    logits = rng.standard_normal((8, L - 1, V))
    results = []
    for variant in range(2):
        arrays = dict(batch.arrays)
        if variant:
            for kind in ("chosen", "rejected"):
                ids = arrays[f"{kind}_ids"].copy()
                off = ~arrays[f"{kind}_mask"]
                ids[off] = rng.integers(0, V, size=off.sum())
                arrays[f"{kind}_ids"] = ids
        leaf = Tensor(logits.copy(), requires_grad=True)
        from numpyllm.training import Batch
        loss = objective.loss(FixedLogits(leaf), Batch(arrays, batch.counts))
        loss.backward()
        results.append((loss.item(), leaf.grad))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_padding_and_batch_company_change_no_pair_s_log_probability():
    """A real GPT: a pair's log-probabilities are the same alone or padded beside longer
    pairs, and whatever token fills the padding (causal attention keeps it out)."""
    model = gpt(1).eval()
    pairs = random_pairs(6, seed=2, longest=5)
    objective = DPO(reference=model)
    together = objective.policy_logps(model, objective.make_batch(pairs, np.arange(6)))
    for i in range(6):
        alone = objective.policy_logps(model, objective.make_batch(pairs, [i]))
        for a, b in zip(alone, together):
            assert abs(a.data[0] - b.data[i]) < 1e-12
    for pad in (0, 5, 11):
        b = DPO(pad_id=pad, reference=model).make_batch(pairs, np.arange(6))
        got = objective.policy_logps(model, b)
        np.testing.assert_allclose(got[0].data, together[0].data, atol=1e-12)


# ------------------------------------------------------------------ the objective
def test_the_reference_as_a_model_or_a_function_gives_the_same_and_is_cached():
    model, reference = gpt(0), gpt(5)
    pairs = random_pairs(10)
    calls = []

    def ref_fn(ids, mask):
        calls.append(len(ids))
        return sequence_logprobs(reference, ids, mask).data

    by_model, by_fn = DPO(reference=reference), DPO(reference=ref_fn)
    np.testing.assert_allclose(by_model.reference_logps(pairs), by_fn.reference_logps(pairs),
                               atol=1e-12)
    assert sum(calls) == 20                        # every pair once: 10 chosen + 10 rejected
    by_fn.make_batch(pairs, [3, 1, 3])
    assert sum(calls) == 20                        # cached: no second call
    b = by_model.make_batch(pairs, [1, 2])
    assert abs(by_model.loss(model, b).item() - by_fn.loss(model, b).item()) < 1e-12

    with pytest.raises(ValueError, match="20 finite log-probabilities"):
        DPO(reference=lambda ids, mask: np.zeros(3)).reference_logps(pairs)
    with pytest.raises(ValueError, match="no reference"):
        DPO().reference_logps(pairs)


def test_check_model_freezes_a_copy_of_the_model_as_the_reference():
    model = gpt(0)
    objective = DPO()
    objective.check_model(model)
    ref = objective.reference
    assert ref is not model and not any(p.requires_grad for p in ref.parameters())
    for (_, a), (_, b) in zip(model.named_parameters(), ref.named_parameters()):
        assert a.data is not b.data
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ValueError, match="pad_id"):
        DPO(pad_id=V).check_model(model)


def test_records_round_trip_without_the_reference():
    objective = DPO(beta=0.2, label_smoothing=0.1, average=True, pad_id=3, sft_weight=0.5,
                    reference=gpt())
    record = objective.to_dict()
    assert record == {"name": "dpo", "beta": 0.2, "label_smoothing": 0.1, "average": True,
                      "pad_id": 3, "sft_weight": 0.5}
    json.dumps(record)
    again = objective_from_dict(record)
    assert again == objective and again.reference is None
    with pytest.raises(ValueError, match="beta"):
        objective_from_dict({"name": "dpo", "beta": "high"})
    with pytest.raises(ValueError, match="sft_weight"):
        objective_from_dict({"name": "dpo", "sft_weight": -1})
    # a record written before sft_weight existed reads as plain DPO
    assert objective_from_dict({"name": "dpo", "beta": 0.2}).sft_weight == 0.0


def test_the_trainer_runs_dpo_data_parallel_equal_to_one_thread_and_the_margin_grows():
    pairs = random_pairs(24, seed=4)
    cfg = TrainConfig(batch_size=8, max_iters=40, warmup_iters=2, lr_decay_iters=40,
                      learning_rate=1e-2, eval_iters=2, eval_interval=20, weight_decay=0.0)
    runs = []
    for threads in (1, 2):
        model = gpt(0)
        trainer = Trainer(model, pairs, pairs, cfg, objective=DPO(beta=0.5))
        trainer.parallel = DataParallel(model, threads=threads)
        before = evaluate_objective(model, trainer.objective, pairs)
        losses = [trainer.train_step()["loss"] for _ in range(40)]
        runs.append((losses, evaluate_objective(model, trainer.objective, pairs)))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-10)
    assert before["loss"] == pytest.approx(math.log(2), abs=1e-12)
    assert before["margin"] == pytest.approx(0.0, abs=1e-12)
    after = runs[0][1]
    assert after["loss"] < 0.5 and after["margin"] > 0.5 and after["accuracy"] > 0.9
    assert after["margin"] == pytest.approx(after["chosen_reward"] - after["rejected_reward"])
    assert trainer.estimate_loss()["val"] < math.log(2)


def test_the_trainer_reports_margin_and_accuracy_not_perplexity_at_each_evaluation():
    pairs = random_pairs(24, seed=4)
    cfg = TrainConfig(batch_size=8, max_iters=4, warmup_iters=1, learning_rate=1e-2,
                      eval_iters=3, eval_interval=2, weight_decay=0.0)
    model = gpt(0)
    trainer = Trainer(model, pairs, pairs, cfg, objective=DPO(beta=0.5))
    events = trainer.fit()
    assert [e["step"] for e in events] == [2, 4]
    last = events[-1]
    assert "val_perplexity" not in last and 0 <= last["val_accuracy"] <= 1
    # the same validation batches as the loss's, scored by DPO.scores
    rng = np.random.default_rng([cfg.seed, trainer.step, 1])
    totals = {"margin": 0.0, "correct": 0, "count": 0, "loss": 0.0}
    with no_grad():
        for _ in range(3):
            s = trainer.objective.scores(model, trainer.objective.sample(pairs, 8, rng))
            for key in totals:
                totals[key] += s[key]
    assert last["val_margin"] == pytest.approx(totals["margin"] / totals["count"], rel=1e-12)
    assert last["val_accuracy"] == totals["correct"] / totals["count"]
    assert last["val_loss"] == pytest.approx(totals["loss"] / totals["count"], rel=1e-9)


def test_dpo_refuses_a_model_it_cannot_train():
    from numpyllm.nn import ClassifierConfig, SequenceClassifier
    clf = SequenceClassifier(ClassifierConfig("GPT", GPTConfig(
        vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=8).to_dict(), n_classes=2))
    with pytest.raises(ValueError, match="dpo objective trains a GPT or a Llama"):
        DPO().check_model(clf)


def test_the_gradient_checks_are_registered():
    names = {c.name for c in all_checks()}
    for name in ("sequence_logprob (sum)", "sequence_logprob (mean)", "dpo_loss",
                 "dpo_loss (label smoothing 0.2)", "GPT (DPO loss, summed)",
                 "GPT (DPO loss, averaged)", "GPT (DPO loss + SFT term)"):
        assert name in names


# ------------------------------------------------------------------ preference data
EXAMPLE = {"instruction": "Add 2 and 3.", "input": "", "output": "5", "chosen": "It is 5.",
           "rejected": "5, obviously."}


def test_alpaca_prompt_leaves_out_an_empty_input():
    assert alpaca_prompt(EXAMPLE).endswith("### Instruction:\nAdd 2 and 3.\n\n### Response:\n")
    with_input = alpaca_prompt(dict(EXAMPLE, input="2, 3"))
    assert "\n\n### Input:\n2, 3\n\n### Response:\n" in with_input
    assert with_input.startswith("Below is an instruction that describes a task. Write a "
                                 "response that appropriately completes the request.\n\n")


@pytest.mark.parametrize("data, message", [
    ({"a": 1}, "a non-empty JSON list"),
    ([], "a non-empty JSON list"),
    ([EXAMPLE, 3], "example 1: expected an object"),
    ([{k: v for k, v in EXAMPLE.items() if k != "rejected"}], "example 0: missing field 'rejected'"),
    ([dict(EXAMPLE, input=None)], "example 0: field 'input' must be a string"),
    ([EXAMPLE, dict(EXAMPLE, chosen="  ")], "example 1: field 'chosen' is empty"),
    ([dict(EXAMPLE, output=5)], "field 'output' must be a string"),
])
def test_the_reader_names_file_index_and_field(tmp_path, data, message):
    path = tmp_path / "prefs.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        read_preference_json(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    path.write_text("[{")
    with pytest.raises(ValueError, match="not JSON"):
        read_preference_json(path)


@given(max_length=st.integers(2, 120), instruction=st.text("abc ", min_size=1, max_size=60),
       chosen=st.text("xyz", min_size=1, max_size=80),
       rejected=st.text("xyz", min_size=1, max_size=80), eos=st.booleans())
def test_truncation_keeps_the_prompt_end_and_the_response_start(max_length, instruction,
                                                                chosen, rejected, eos):
    tok = CharTokenizer.from_text(alpaca_prompt({"instruction": "abc"}) + "abcxyz",
                                  special_tokens=["<|endoftext|>"])
    ex = {"instruction": instruction.strip() or "a", "input": "", "chosen": chosen,
          "rejected": rejected}
    eos_id = tok.token_id("<|endoftext|>") if eos else None
    pairs = tokenize_preferences([ex], tok, max_length=max_length, eos_id=eos_id)
    p_full = tok.encode(alpaca_prompt(ex))
    tail = [eos_id] if eos else []
    full = {"chosen": tok.encode(chosen) + tail, "rejected": tok.encode(rejected) + tail}
    p = pairs.prompts[0].tolist()
    assert p == p_full[len(p_full) - len(p):] and len(p) >= 1
    longest = max(len(v) for v in full.values())
    for kind, got in (("chosen", pairs.chosen[0]), ("rejected", pairs.rejected[0])):
        got = got.tolist()
        assert got == full[kind][:len(got)] and len(got) >= 1
        assert len(p) + len(got) <= max_length
        if len(p_full) + longest <= max_length:
            assert got == full[kind] and p == p_full
        else:
            assert len(got) == len(full[kind]) or len(got) >= max_length - max_length // 2
    assert pairs.truncated == int(len(p_full) + longest > max_length)


def test_collate_masks_exactly_the_response_tokens():
    pairs = PreferencePairs([[1, 2, 3], [4]], [[5], [6, 7, 8]], [[9, 10], [11]])
    b = collate_preferences(pairs, [0, 1], pad_id=0)
    assert b["chosen_ids"].tolist() == [[1, 2, 3, 5, 0], [4, 6, 7, 8, 0]]
    assert b["chosen_ids"].shape == b["rejected_ids"].shape == (2, 5)   # one L for both
    assert b["rejected_ids"].tolist() == [[1, 2, 3, 9, 10], [4, 11, 0, 0, 0]]
    assert b["chosen_mask"].astype(int).tolist() == [[0, 0, 0, 1, 0], [0, 1, 1, 1, 0]]
    assert b["rejected_mask"].astype(int).tolist() == [[0, 0, 0, 1, 1], [0, 1, 0, 0, 0]]
    with pytest.raises(ValueError, match="rejected response 0"):
        PreferencePairs([[1]], [[2]], [[]])
    with pytest.raises(ValueError, match="one of each"):
        PreferencePairs([[1]], [[2]], [[3], [4]])


def test_split_examples_is_a_partition_fixed_by_the_seed():
    items = list(range(1100))
    parts = split_examples(items, (0.85, 0.1, 0.05), seed=123)
    assert [len(p) for p in parts] == [935, 110, 55]
    assert sorted(sum(parts, [])) == items
    assert parts == split_examples(items, (0.85, 0.1, 0.05), seed=123)
    assert parts != split_examples(items, (0.85, 0.1, 0.05), seed=124)
    with pytest.raises(ValueError, match="sum to at most 1"):
        split_examples(items, (0.9, 0.2), seed=0)


def test_the_shared_preference_file_reads_and_tokenises():
    path = SHARED_DATA / "instruction" / "instruction-data-with-preference.json"
    if not path.exists():
        pytest.skip(f"needs {path} (../shared beside the project); absent in a user's clone")
    examples = read_preference_json(path)
    assert len(examples) == 1100
    text = "".join(alpaca_prompt(e) + e["chosen"] + e["rejected"] for e in examples)
    tok = CharTokenizer.from_text(text)
    pairs = tokenize_preferences(examples, tok, max_length=257)
    assert len(pairs) == 1100 and 0 < pairs.truncated < 1100
    assert max(len(p) + max(len(c), len(r)) for p, c, r in
               zip(pairs.prompts, pairs.chosen, pairs.rejected)) <= 257

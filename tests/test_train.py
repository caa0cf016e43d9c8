"""The trainer: determinism, exact resume, accumulation, divergence, evaluation."""
import csv
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm.autograd import Function
from numpyllm.training.checkpoint import load_checkpoint
from numpyllm.functional import cross_entropy
from numpyllm.nn.gpt import GPT, GPTConfig
from numpyllm.training import (CSVLogger, NonFiniteError, TrainConfig, Trainer, evaluate_tokens,
                            perplexity)

# a learnable stream: the next token is (3 * token + 1) mod 11, one time in ten random
_rng = np.random.default_rng(0)
TOKENS = np.zeros(600, dtype=np.int64)
for _i in range(1, 600):
    TOKENS[_i] = (3 * TOKENS[_i - 1] + 1) % 11 if _rng.random() > 0.1 else _rng.integers(11)


def make(dtype="float32", dropout=0.0, seed=0, **train):
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=dropout,
                    dtype=dtype)
    model = GPT(cfg, rng=np.random.default_rng(seed))
    settings_ = dict(batch_size=4, max_iters=50, warmup_iters=2, lr_decay_iters=50, eval_iters=2,
                     eval_interval=1000, learning_rate=3e-3)
    settings_.update(train)
    return Trainer(model, TOKENS[:500], TOKENS[500:], TrainConfig(**settings_))


def params(trainer):
    return {n: p.data.copy() for n, p in trainer.model.named_parameters()}


def test_same_seed_same_losses_bit_for_bit():
    a, b = make(dropout=0.1), make(dropout=0.1)
    la = [a.train_step()["loss"] for _ in range(5)]
    lb = [b.train_step()["loss"] for _ in range(5)]
    assert la == lb
    for (n, x), y in zip(params(a).items(), params(b).values()):
        np.testing.assert_array_equal(x, y, err_msg=n)


def test_loss_goes_down():
    t = make(max_iters=60)
    first = t.train_step()["loss"]
    for _ in range(59):
        last = t.train_step()["loss"]
    assert last < first - 0.3


@settings(max_examples=max(3, settings.default.max_examples // 4))
@given(k=st.integers(1, 5), accum=st.integers(1, 2), dropout=st.sampled_from([0.0, 0.2]))
def test_resume_equals_uninterrupted(tmp_path_factory, k, accum, dropout):
    n = 6
    straight = make(dropout=dropout, gradient_accumulation_steps=accum)
    losses_straight = [straight.train_step()["loss"] for _ in range(n)]

    first = make(dropout=dropout, gradient_accumulation_steps=accum)
    losses = [first.train_step()["loss"] for _ in range(k)]
    directory = tmp_path_factory.mktemp("ckpt")
    first.save(directory)
    resumed, _ = Trainer.resume(directory, TOKENS[:500], TOKENS[500:])
    assert resumed.step == k
    losses += [resumed.train_step()["loss"] for _ in range(n - k)]

    assert losses == losses_straight
    for (name, x), y in zip(params(straight).items(), params(resumed).values()):
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_evaluation_does_not_disturb_training():
    a, b = make(), make()
    for i in range(4):
        a.train_step()
        b.train_step()
        b.estimate_loss()
    np.testing.assert_array_equal(params(a)["wte.weight"], params(b)["wte.weight"])


def test_accumulated_micro_batches_equal_one_big_batch():
    """m micro-batches of b windows == one batch of m*b windows (float64, to rounding)."""
    # the sampler draws b, then b, ... indices: the same stream as m*b at once
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(np.concatenate([r1.integers(0, 99, 3), r1.integers(0, 99, 3)]),
                                  r2.integers(0, 99, 6))
    small = make("float64", batch_size=3, gradient_accumulation_steps=2, grad_clip=0.0)
    big = make("float64", batch_size=6, gradient_accumulation_steps=1, grad_clip=0.0)
    for _ in range(3):
        ls, lb = small.train_step()["loss"], big.train_step()["loss"]
        assert abs(ls - lb) < 1e-12
    for (n, x), y in zip(params(small).items(), params(big).values()):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-13, err_msg=n)


class _InfGrad(Function):
    """Identity forward whose backward hands out an infinite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, g):
        return g * np.inf


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_gradient_stops_with_step_and_parameter(tmp_path):
    t = make(eval_interval=2)
    t.fit(max_iters=2, checkpoint_dir=tmp_path)
    good = load_checkpoint(tmp_path).weights
    head = t.model.head
    t.model.head = lambda x: head(_InfGrad.apply(x))
    with pytest.raises(NonFiniteError, match=r"step 2: the gradient of wte\.weight is not finite"):
        t.fit(max_iters=4, checkpoint_dir=tmp_path)
    after = load_checkpoint(tmp_path)          # the last good checkpoint is intact
    assert after.step == 2
    for name, array in good.items():
        np.testing.assert_array_equal(after.weights[name], array)


def test_non_finite_loss_stops():
    t = make()
    t.model.ln_f.weight.data[:] = np.nan
    with pytest.raises(NonFiniteError, match="step 0: the loss is nan"):
        t.train_step()


def test_fit_emits_events_and_evaluates():
    events = []
    t = make(eval_interval=3, log_interval=1)
    t.callbacks.append(events.append)
    evals = t.fit(max_iters=6)
    assert [e["step"] for e in evals] == [3, 6]
    assert {"train_loss", "val_loss", "val_perplexity"} <= set(evals[-1])
    assert math.isclose(evals[-1]["val_perplexity"], math.exp(evals[-1]["val_loss"]))
    assert [e["step"] for e in events if e["kind"] == "step"] == [1, 2, 3, 4, 5, 6]


def test_config_errors():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="warmup_iters"):
        TrainConfig(warmup_iters=10, lr_decay_iters=5)
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"batchsize": 3})


# ---------------------------------------------------------------------- evaluation of a file
@pytest.mark.parametrize("n", [9, 17, 30, 2])
def test_evaluate_tokens_predicts_each_token_once(n):
    model = make("float64").model
    tokens = TOKENS[:n]
    result = evaluate_tokens(model, tokens, batch_size=2)
    assert result["tokens"] == n - 1
    # brute force: each window of 8 on its own
    total = 0.0
    for start in range(0, n - 1, 8):
        x = tokens[start:min(start + 8, n - 1)]
        y = tokens[start + 1:start + 1 + len(x)]
        logits, _ = model(x[None])
        total += cross_entropy(logits, y[None], reduction="sum").item()
    assert math.isclose(result["loss"], total / (n - 1), rel_tol=1e-12)
    assert math.isclose(result["perplexity"], perplexity(result["loss"]))


def test_evaluate_needs_two_tokens():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        evaluate_tokens(make().model, TOKENS[:1])


# ---------------------------------------------------------------------- stopping early
def test_stop_saves_the_last_completed_step_and_resume_goes_on_exactly(tmp_path):
    straight = make(dropout=0.1, eval_interval=4)
    straight.fit(max_iters=7)
    first = make(dropout=0.1, eval_interval=4)
    asked = []
    first.fit(max_iters=7, checkpoint_dir=tmp_path,
              stop=lambda: asked.append(first.step) or first.step == 6)
    assert first.step == 6 and asked == list(range(7))        # asked before every step
    assert load_checkpoint(tmp_path).step == 6                 # saved between evaluations
    resumed, _ = Trainer.resume(tmp_path, TOKENS[:500], TOKENS[500:])
    resumed.fit(max_iters=7)
    for (name, x), y in zip(params(straight).items(), params(resumed).values()):
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_stop_right_after_a_checkpoint_or_before_any_step_saves_nothing_new(tmp_path):
    t = make(eval_interval=2)
    t.fit(max_iters=9, checkpoint_dir=tmp_path / "a", stop=lambda: t.step == 4)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["latest", "step-000002",
                                                                  "step-000004"]
    t = make()
    t.fit(max_iters=9, checkpoint_dir=tmp_path / "b", stop=lambda: True)
    assert t.step == 0 and not (tmp_path / "b").exists()


def test_the_data_source_travels_with_the_checkpoint(tmp_path):
    source = {"source": "file", "path": "/x/input.txt", "bytes": 3, "sha256": "ab"}
    t = make()
    t.data_source = source
    t.train_step()
    t.save(tmp_path)
    assert load_checkpoint(tmp_path).trainer_state["data"] == source
    resumed, _ = Trainer.resume(tmp_path, TOKENS[:500], TOKENS[500:])
    assert resumed.data_source == source
    assert "data" not in make().state_dict()                   # none set, none saved


@pytest.mark.parametrize("damage", [lambda c: c.update(beta1="x"), lambda c: c.update(beta1=2.0),
                                    lambda c: c.update(nope=1), lambda c: c.clear() or c.update(
                                        batch_size=[1])])
def test_a_bad_train_config_in_the_checkpoint_is_a_checkpoint_error(tmp_path, damage):
    """(A field that is missing takes its default: checkpoints from before it existed.)"""
    import json
    from numpyllm.training.checkpoint import CheckpointError
    t = make()
    t.train_step()
    step_dir = t.save(tmp_path)
    manifest = json.loads((step_dir / "manifest.json").read_text())
    damage(manifest["trainer"]["train_config"])
    (step_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="train_config"):
        Trainer.resume(tmp_path, TOKENS[:500], TOKENS[500:])


# ---------------------------------------------------------------------- the CSV log
def test_the_log_file_appears_with_the_first_row_not_before(tmp_path):
    path = tmp_path / "run" / "log.csv"
    logger = CSVLogger(path)
    logger({"kind": "checkpoint", "step": 1, "path": "x"})
    assert not path.exists()                     # a run that fails now leaves no header-only log
    logger({"kind": "step", "step": 1, "loss": 2.0, "lr": 1e-3})
    logger({"kind": "step", "step": 2, "loss": 1.5, "lr": 1e-3})
    rows = list(csv.DictReader(open(path)))
    assert [r["step"] for r in rows] == ["1", "2"]
    CSVLogger(path)({"kind": "step", "step": 1, "loss": 9.0, "lr": 1e-3})   # a new run: a new log
    assert [r["loss"] for r in csv.DictReader(open(path))] == ["9"]


def test_appending_after_a_resume_drops_the_rows_after_the_checkpoint(tmp_path):
    path = tmp_path / "log.csv"
    first = CSVLogger(path)
    for step in range(1, 8):
        first({"kind": "step", "step": step, "loss": 1.0, "lr": 1e-3})
        if step % 3 == 0:
            first({"kind": "eval", "step": step, "train_loss": 1.0})
    resumed = CSVLogger(path, append=True, resume_step=6)     # the checkpoint is at step 6
    for step in range(7, 10):
        resumed({"kind": "step", "step": step, "loss": 1.0, "lr": 1e-3})
    rows = [(r["step"], r["kind"]) for r in csv.DictReader(open(path))]
    assert len(rows) == len(set(rows))
    assert [s for s, k in rows if k == "step"] == [str(i) for i in range(1, 10)]
    assert [s for s, k in rows if k == "eval"] == ["3", "6"]
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]        # no temporary left


def test_appending_to_an_older_log_keeps_its_columns(tmp_path):
    """A run resumed from a log written before val_accuracy/val_margin existed: the new
    rows have as many cells as its header."""
    path = tmp_path / "log.csv"
    old = ("step", "kind", "loss", "train_loss", "val_loss", "val_perplexity", "lr",
           "grad_norm", "tokens_per_sec")
    path.write_text(",".join(old) + "\n1,step,2.0,,,,0.001,,\n")
    CSVLogger(path, append=True, resume_step=1)({"kind": "eval", "step": 2, "train_loss": 1.5,
                                                 "val_loss": 1.6, "val_accuracy": 0.5})
    rows = list(csv.reader(open(path)))
    assert rows[0] == list(old) and all(len(r) == len(old) for r in rows)
    assert rows[2][:5] == ["2", "eval", "", "1.5", "1.6"]
    fresh = tmp_path / "new.csv"
    CSVLogger(fresh)({"kind": "eval", "step": 2, "train_loss": 1.5, "val_accuracy": 0.5})
    row = next(csv.DictReader(open(fresh)))
    assert row["val_accuracy"] == "0.5" and row["val_margin"] == ""

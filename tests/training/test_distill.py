"""The Distill objective in the Trainer: alpha 0 is causal LM exactly, a teacher equal to
the student gives a zero soft term, the teacher never trains, data parallel == one
thread, resume == uninterrupted, the checkpoint reads as causal LM; the student built
from the teacher's layers; the teacher's corpus (sequence-level distillation).

The finite-difference checks of distill_loss and of a GPT student's distillation loss
are registered in numpyllm.checks (tests/test_checks.py runs them with their mutants)."""
import copy
import math

import numpy as np
import pytest

from numpyllm.nn import GPT, GPTConfig, Llama, LlamaConfig
from numpyllm.training import (CausalLM, TrainConfig, Trainer, evaluate_objective,
                               objective_from_dict)
from numpyllm.training.data_parallel import DataParallel
from numpyllm.training.objectives import Distill
from numpyllm.training.objectives.distill import (init_from_teacher_layers, student_config,
                                                  teacher_corpus)

V, T = 11, 8
DATA = np.random.default_rng(0).integers(0, V, size=400)


def gpt(seed=0, n_layer=1, n_embd=8, dtype="float64", **kw):
    return GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=n_layer, n_head=2, n_embd=n_embd,
                         dtype=dtype, **kw), rng=seed)


def teacher(seed=5):
    model = gpt(seed, n_layer=2, n_embd=12)
    for p in model.parameters():                  # a confident teacher, not a uniform one
        p.data += 0.3 * np.random.default_rng(seed).standard_normal(p.shape)
    return model


def config(**kw):
    settings = dict(batch_size=6, max_iters=40, warmup_iters=2, lr_decay_iters=40,
                    eval_iters=2, eval_interval=1000, learning_rate=1e-2)
    settings.update(kw)
    return TrainConfig(**settings)


def test_alpha_zero_is_causal_lm_exactly():
    a = Trainer(gpt(), DATA, DATA, config(), objective=Distill(T, alpha=0.0))
    b = Trainer(gpt(), DATA, DATA, config(), objective=CausalLM(T))
    assert [a.train_step()["loss"] for _ in range(4)] == [b.train_step()["loss"] for _ in range(4)]
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert np.array_equal(p.data, q.data), n


def test_evaluations_call_exp_of_the_loss_a_perplexity_only_without_the_soft_term():
    for alpha, has in ((0.0, True), (0.5, False)):
        objective = Distill(T, alpha=alpha, teacher=teacher())
        events = Trainer(gpt(), DATA, DATA, config(max_iters=2), objective=objective).fit()
        assert ("val_perplexity" in events[-1]) == has and "val_loss" in events[-1]


def test_a_teacher_equal_to_the_student_teaches_nothing():
    student = gpt(3)
    objective = Distill(T, temperature=3.0, alpha=1.0, teacher=copy.deepcopy(student))
    objective.check_model(student)
    batch = objective.sample(objective.dataset(DATA), 4, np.random.default_rng(1))
    loss = objective.loss(student, batch)
    loss.backward()
    assert abs(loss.item()) < 1e-14
    assert max(np.abs(p.grad).max() for p in student.parameters()) < 1e-13


def test_the_teacher_runs_without_a_graph_and_never_changes():
    t = teacher()
    before = {n: p.data.copy() for n, p in t.named_parameters()}
    trainer = Trainer(gpt(), DATA, DATA, config(), objective=Distill(T, teacher=t))
    for _ in range(5):
        trainer.train_step()
    assert not t.training
    for n, p in t.named_parameters():
        assert p.grad is None and not p.requires_grad, n
        assert np.array_equal(p.data, before[n]), n


def test_data_parallel_equals_one_thread():
    objective = Distill(T, temperature=2.0, alpha=0.6, teacher=teacher())
    results = []
    for threads in (1, 3):
        model = gpt(1)
        objective.check_model(model)
        batch = objective.sample(objective.dataset(DATA), 7, np.random.default_rng(4))
        value = DataParallel(model, threads=threads).run(batch, objective.loss)
        results.append((value, {n: p.grad.copy() for n, p in model.named_parameters()}))
    (a, ga), (b, gb) = results
    assert math.isclose(a, b, rel_tol=1e-12)
    for n in ga:
        np.testing.assert_allclose(gb[n], ga[n], rtol=1e-10, atol=1e-13, err_msg=n)


def test_resume_equals_uninterrupted(tmp_path):
    t = teacher()
    make = lambda model: Distill(T, temperature=2.0, alpha=0.7, teacher=t)   # noqa: E731
    straight = Trainer(gpt(dropout=0.1), DATA, DATA, config(), objective=make(None))
    losses = [straight.train_step()["loss"] for _ in range(6)]
    first = Trainer(gpt(dropout=0.1), DATA, DATA, config(), objective=make(None))
    for _ in range(3):
        first.train_step()
    first.save(tmp_path)
    resumed, _ = Trainer.resume(tmp_path, DATA, DATA, objective=make)
    assert isinstance(resumed.objective, Distill)
    assert [resumed.train_step()["loss"] for _ in range(3)] == losses[3:]
    for (n, p), (_, q) in zip(straight.model.named_parameters(),
                              resumed.model.named_parameters()):
        assert np.array_equal(p.data, q.data), n


def test_the_checkpoint_records_a_causal_lm(tmp_path):
    objective = Distill(T, temperature=4.0, alpha=0.25, teacher=teacher())
    assert objective.to_dict() == {"name": "clm", "context_length": T}
    assert objective.settings() == {"temperature": 4.0, "alpha": 0.25}
    trainer = Trainer(gpt(), DATA, DATA, config(), objective=objective)
    trainer.train_step()
    trainer.save(tmp_path)
    resumed, _ = Trainer.resume(tmp_path, DATA, DATA)          # no teacher: causal LM
    assert type(resumed.objective) is CausalLM
    assert objective_from_dict(objective.to_dict()) == CausalLM(T)


def test_the_loss_goes_down_and_scores_split_the_terms():
    trainer = Trainer(gpt(dtype="float32"), DATA, DATA, config(max_iters=60),
                      objective=Distill(T, teacher=teacher()))
    first = np.mean([trainer.train_step()["loss"] for _ in range(5)])
    for _ in range(50):
        last = trainer.train_step()["loss"]
    assert last < first - 0.2, (first, last)
    objective = trainer.objective
    got = evaluate_objective(trainer.model, objective, DATA[:200], batch_size=8)
    plain = evaluate_objective(trainer.model, CausalLM(T), DATA[:200], batch_size=8)
    assert math.isclose(got["cross_entropy"], plain["loss"], rel_tol=1e-6)
    T2, a = objective.temperature ** 2, objective.alpha
    assert got["kl"] >= 0
    assert math.isclose(got["loss"], a * T2 * got["kl"] + (1 - a) * got["cross_entropy"],
                        rel_tol=1e-9)


def test_a_missing_or_mismatched_teacher_is_refused():
    with pytest.raises(ValueError, match="no teacher"):
        Trainer(gpt(), DATA, objective=Distill(T))
    other = GPT(GPTConfig(vocab_size=V + 1, block_size=T, n_layer=1, n_head=2, n_embd=8), rng=0)
    with pytest.raises(ValueError, match="share one tokenizer"):
        Trainer(gpt(), DATA, objective=Distill(T, teacher=other))
    short = GPT(GPTConfig(vocab_size=V, block_size=T - 1, n_layer=1, n_head=2, n_embd=8), rng=0)
    with pytest.raises(ValueError, match="longer than the teacher's context"):
        Trainer(gpt(), DATA, objective=Distill(T, teacher=short))
    for bad in ({"temperature": 0.0}, {"alpha": 1.5}, {"alpha": "x"}):
        with pytest.raises(ValueError):
            Distill(T, **bad)


# ------------------------------------------------------------------ the student's start
def test_init_from_all_teacher_layers_is_the_teacher():
    t = teacher()
    s = GPT(student_config(t.config), rng=9)
    init_from_teacher_layers(s, t, range(t.config.n_layer))
    x = DATA[:2 * T].reshape(2, T)
    np.testing.assert_array_equal(s(x)[0].data, t(x)[0].data)


@pytest.mark.parametrize("family", ["GPT", "Llama"])
def test_init_from_every_other_layer(family):
    if family == "GPT":
        t = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=6, n_head=2, n_embd=8), rng=1)
        blocks = "h"
    else:
        t = Llama(LlamaConfig(vocab_size=V, block_size=T, n_layer=6, n_head=2, n_kv_head=1,
                              n_embd=8, intermediate_size=12), rng=1)
        blocks = "layers"
    s = type(t)(student_config(t.config, n_layer=3), rng=2)
    init_from_teacher_layers(s, t, [0, 2, 4])
    theirs = dict(t.named_parameters())
    for name, p in s.named_parameters():
        if name.startswith(blocks + "."):
            k = int(name.split(".")[1])
            name = f"{blocks}.{[0, 2, 4][k]}." + name.split(".", 2)[2]
        np.testing.assert_array_equal(p.data, theirs[name].data, err_msg=name)


def test_init_from_teacher_layers_refuses_what_does_not_fit():
    t = teacher()                                   # 2 layers, 12 wide
    with pytest.raises(ValueError, match="3 layers given"):
        init_from_teacher_layers(GPT(student_config(t.config, n_layer=2), rng=0), t, [0, 1, 1])
    with pytest.raises(ValueError, match="layer 2 is not one of the teacher's 0..1"):
        init_from_teacher_layers(GPT(student_config(t.config, n_layer=1), rng=0), t, [2])
    with pytest.raises(ValueError, match="the student needs the teacher's width"):
        init_from_teacher_layers(gpt(n_layer=1, n_embd=8), t, [0])


def test_student_config_keeps_the_family_vocabulary_and_context():
    t = Llama(LlamaConfig(vocab_size=V, block_size=T, n_layer=4, n_head=4, n_kv_head=2,
                          n_embd=16, intermediate_size=24), rng=0)
    cfg = student_config(t.config, n_layer=2, n_embd=8, n_head=2)
    assert type(cfg) is LlamaConfig and (cfg.vocab_size, cfg.block_size) == (V, T)
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.head_dim) == (2, 8, 2, 2, 4)


# ------------------------------------------------------------------ sequence level
def test_teacher_corpus():
    t = teacher()
    corpus = teacher_corpus(t, DATA, 50, prompt_length=3, rows=4, rng=0)
    again = teacher_corpus(t, DATA, 50, prompt_length=3, rows=4, rng=0)
    assert corpus.shape == (50,) and corpus.dtype == np.int64
    assert np.array_equal(corpus, again)
    assert corpus.min() >= 0 and corpus.max() < V
    assert t.training                                   # put back as it was
    with pytest.raises(ValueError, match="leave no prompt"):
        teacher_corpus(t, DATA[:3], 10, prompt_length=3)

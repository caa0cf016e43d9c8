"""Adversarial training in embedding space: PGD's iterates stay in the ball and off the
padding, and raise the loss; the objective's loss is the loss at its perturbations
(PGD's last, FreeLB's mean along the way, mixed with the clean one); the ascent leaves
the parameters' gradients alone; slicing the batch over threads changes nothing.
(The loss's gradient with respect to the weights: numpyllm/checks/models.py,
"Classifier (adversarial ...)", run by tests/test_checks.py with its mutants.)"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm.adversarial import pgd
from numpyllm.adversarial.embedding_attack import project, random_start
from numpyllm.autograd import no_grad
from numpyllm.checks.case import perturb
from numpyllm.nn import ClassifierConfig, GPTConfig, SequenceClassifier
from numpyllm.training.data_parallel import DataParallel
from numpyllm.training.objectives import AdversarialClassification
from numpyllm.training.objectives.base import Batch

V, T, C = 11, 6, 8
_MODEL = {}


def _model() -> SequenceClassifier:
    if not _MODEL:
        cfg = ClassifierConfig("GPT", GPTConfig(vocab_size=V, block_size=T, n_layer=1,
                                                n_head=2, n_embd=C, dtype="float64").to_dict(),
                               n_classes=3)
        _MODEL[0] = perturb(SequenceClassifier(cfg, rng=0), np.random.default_rng(1), 0.3)
    return _MODEL[0]


def _batch(rng, B=4, seeds=False) -> Batch:
    lengths = rng.integers(1, T + 1, size=B)
    arrays = {"ids": rng.integers(0, V, size=(B, T)), "lengths": lengths,
              "labels": rng.integers(0, 3, size=B)}
    if seeds:
        arrays["seeds"] = rng.integers(0, 2 ** 31, size=B)
    return Batch(arrays, np.ones(B, dtype=np.int64), B * T)


def _norms(delta, norm):
    flat = delta.reshape(len(delta), -1)
    return np.abs(flat).max(axis=1) if norm == "linf" else np.linalg.norm(flat, axis=1)


def _loss(model, batch, delta):
    with no_grad():
        e = model.token_embeddings(batch["ids"]).data
        return model(inputs_embeds=e + delta, lengths=batch["lengths"],
                     labels=batch["labels"])[1].item()


@settings(max_examples=15)
@given(norm=st.sampled_from(["l2", "linf"]), seed=st.integers(0, 2 ** 16),
       epsilon=st.floats(0.01, 3.0), steps=st.integers(0, 4),
       alpha=st.one_of(st.none(), st.floats(0.01, 5.0)), start=st.booleans())
def test_pgd_stays_in_the_ball_and_off_the_padding(norm, seed, epsilon, steps, alpha, start):
    batch = _batch(np.random.default_rng(seed), seeds=start)
    valid = np.arange(T)[None, :] < batch["lengths"][:, None]              # [B, T]
    path = pgd(_model(), batch["ids"], batch["labels"], lengths=batch["lengths"],
               epsilon=epsilon, norm=norm, steps=steps, alpha=alpha,
               seeds=batch.arrays.get("seeds"))
    assert len(path) == steps + 1
    for delta in path:
        assert delta.shape == (4, T, C)
        assert (_norms(delta, norm) <= epsilon * (1 + 1e-9)).all()
        assert not delta[~valid].any()                                     # padding: 0
    if steps:                                          # an ascent step moves
        assert _norms(path[-1], norm).max() > 0


@pytest.mark.parametrize("norm, epsilon", [("l2", 1.0), ("linf", 0.1)])
def test_pgd_raises_the_loss(norm, epsilon):
    model = _model()
    batch = _batch(np.random.default_rng(0), B=8)
    path = pgd(model, batch["ids"], batch["labels"], lengths=batch["lengths"],
               epsilon=epsilon, norm=norm, steps=5)
    clean, attacked = _loss(model, batch, 0.0), _loss(model, batch, path[-1])
    assert attacked > clean + 0.05, (clean, attacked)
    # and more than a random point of the ball does
    rand = random_start((8, T, C), epsilon, norm, np.arange(T)[None] < batch["lengths"][:, None],
                        np.arange(8))
    assert attacked > _loss(model, batch, rand)


def test_projection_is_the_nearest_point_of_the_ball():
    rng = np.random.default_rng(0)
    valid = np.ones((2, 3), dtype=bool)
    d = rng.standard_normal((2, 3, 4)) * 5
    p = project(d, 1.0, "l2", valid)
    np.testing.assert_allclose(_norms(p, "l2"), 1.0)
    np.testing.assert_allclose(p / _norms(p, "l2")[:, None, None],
                               d / _norms(d, "l2")[:, None, None])     # same direction
    np.testing.assert_array_equal(project(d, 1.0, "linf", valid), np.clip(d, -1, 1))
    small = d / 100
    np.testing.assert_array_equal(project(small, 1.0, "l2", valid), small)  # inside: kept


@pytest.mark.parametrize("method", ["pgd", "freelb"])
@pytest.mark.parametrize("weight", [1.0, 0.3])
def test_the_loss_is_the_loss_at_the_perturbations(method, weight):
    """PGD: L(e + δ_K); FreeLB: the mean of L(e + δ_t), t < K; mixed (1 - w) clean + w adv."""
    model = _model()
    batch = _batch(np.random.default_rng(2), seeds=True)
    obj = AdversarialClassification(3, method=method, epsilon=0.7, steps=3, random_start=1,
                                    weight=weight)
    path = pgd(model, batch["ids"], batch["labels"], lengths=batch["lengths"], epsilon=0.7,
               steps=3, alpha=obj.alpha, seeds=batch["seeds"])
    used = path[-1:] if method == "pgd" else path[:-1]
    adv = np.mean([_loss(model, batch, d) for d in used])
    expected = (1 - weight) * _loss(model, batch, 0.0) + weight * adv
    assert obj.loss(model, batch).item() == pytest.approx(expected, rel=1e-10)
    deltas = obj.perturbations(model, batch)
    assert deltas.shape == (len(used), 4, T, C)
    np.testing.assert_allclose(deltas, np.stack(used))


def test_the_ascent_leaves_the_parameter_gradients_alone():
    model = _model()
    batch = _batch(np.random.default_rng(3))
    obj = AdversarialClassification(3, epsilon=0.5, steps=2)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    frozen = model.backbone.h[0].attn.c_attn.weight
    frozen.requires_grad = False
    obj.perturbations(model, batch)
    assert all((p.grad == 1).all() for p in model.parameters())
    assert not frozen.requires_grad and model.score.weight.requires_grad
    frozen.requires_grad = True
    for p in model.parameters():
        p.grad = None


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_threads_give_the_one_thread_loss_and_gradient(norm):
    """Each row's perturbation is its own (normalised per row): slicing the batch over
    threads gives the same loss and gradients (float64, up to rounding)."""
    model = _model()
    batch = _batch(np.random.default_rng(4), B=6, seeds=True)
    obj = AdversarialClassification(3, method="freelb", epsilon=0.5, norm=norm, steps=3,
                                    random_start=1, weight=0.5)
    grads = []
    for threads in (1, 2):
        loss = DataParallel(model, threads=threads).run(batch, obj.loss)
        grads.append((loss, [p.grad.copy() for p in model.parameters()]))
        for p in model.parameters():
            p.grad = None
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-10)
    for a, b in zip(grads[0][1], grads[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("settings_, message", [
    ({"method": "fgsm"}, "method"), ({"norm": "l1"}, "norm"), ({"epsilon": 0.0}, "epsilon"),
    ({"steps": 0}, "steps"), ({"alpha": -1.0}, "alpha"), ({"random_start": 2}, "random_start"),
    ({"weight": 0.0}, "weight"), ({"weight": 1.5}, "weight"), ({"steps": 2.5}, "steps"),
])
def test_bad_settings_are_refused(settings_, message):
    with pytest.raises(ValueError, match=message):
        AdversarialClassification(2, **settings_)


def test_the_record_is_a_classifier_and_the_settings_round_trip():
    obj = AdversarialClassification(2, method="freelb", epsilon=0.3, norm="linf", steps=4,
                                    random_start=1, weight=0.5)
    assert obj.to_dict() == {"name": "classify", "n_classes": 2, "pad_id": 0}
    assert AdversarialClassification(2, **obj.settings()) == obj

"""SentenceVAE and its ELBO objective: the bound never exceeds log p(x) where log p(x) can
be computed (a vocabulary of 3, sentences of 2, a 1-D latent, the integral over z on a
grid), the KL annealing schedule, word dropout on the decoder's inputs only, padding and
causality, posterior collapse measured, the decoding functions, checkpoints, and a
resumed run equal to an uninterrupted one."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm.autograd import no_grad
from numpyllm.checks import perturb
from numpyllm.functional import gaussian_kl
from numpyllm.generate.vae import (corrupt, greedy_decode, interpolate, posterior_stats,
                                   reconstruct, sample_prior, token_accuracy)
from numpyllm.nn.vae import SentenceVAE, SentenceVAEConfig, batch_ids, decoder_io
from numpyllm.training import TrainConfig
from numpyllm.training.checkpoint import CheckpointError, build_model, load_checkpoint
from numpyllm.training.objectives import ELBO, objective_from_dict
from numpyllm.training.objectives.vae import Sentences
from numpyllm.training.vae import VAETrainer

WORDS = (4, 5, 6)        # pad 0, bos 1, eos 2, unk 3, then three words


def tiny(latent_mode="add", latent=1, max_len=2, dtype="float64", seed=0, **kw):
    cfg = SentenceVAEConfig(vocab_size=7, max_len=max_len, n_layer=1, n_encoder_layer=1,
                            n_head=2, n_embd=8, latent=latent, latent_mode=latent_mode,
                            dtype=dtype, **kw)
    rng = np.random.default_rng(seed)
    return perturb(SentenceVAE(cfg, rng=rng), rng, std=0.5)


# ---------------------------------------------------------------------- the bound
def _grid_terms(model, x, z):
    """log p(x | z) on the grid z ``[N]`` for one sentence x."""
    ids = np.repeat(np.array([x]), len(z), axis=0)
    with no_grad():
        return model.log_likelihood(z[:, None], ids).data                     # [N]


def _trapezoid(y, z):
    return float(((y[1:] + y[:-1]) * np.diff(z)).sum() / 2)


@pytest.mark.parametrize("mode", ["add", "prefix", "both"])
def test_elbo_never_exceeds_the_exact_log_likelihood(mode):
    """For every sentence of 2 words over 3: log p(x) = log ∫ p(x|z) N(z; 0, 1) dz by
    quadrature on a grid, and the exact ELBO E_q[log p(x|z)] - KL (the expectation by the
    same quadrature, the KL in closed form). ELBO <= log p(x), and the gap is exactly
    KL(q(z|x) || p(z|x)), the posterior also by quadrature."""
    model = tiny(mode, seed=1)
    model.eval()
    gaps = []
    for x in itertools.product(WORDS, repeat=2):
        with no_grad():
            mu, logvar = model.encode(np.array([x]))
        m, lv = float(mu.data[0, 0]), float(logvar.data[0, 0])
        s = np.exp(lv / 2)                          # the grid covers the prior and q
        z = np.linspace(min(-12, m - 12 * s), max(12, m + 12 * s), 4001)
        log_prior = -0.5 * (z ** 2 + np.log(2 * np.pi))
        ll = _grid_terms(model, list(x), z)                                   # [N]
        log_px = np.log(_trapezoid(np.exp(ll + log_prior), z))
        q = np.exp(-0.5 * ((z - m) ** 2 / np.exp(lv) + lv + np.log(2 * np.pi)))   # q(z|x)
        assert abs(_trapezoid(q, z) - 1) < 1e-6                                    # on the grid
        kl = gaussian_kl(mu, logvar, reduction="none").item()
        elbo = _trapezoid(q * ll, z) - kl
        assert elbo <= log_px + 1e-9, (x, elbo, log_px)
        log_post = ll + log_prior - log_px                                    # log p(z|x)
        safe = q > 1e-300
        kl_post = _trapezoid(np.where(safe, q * (np.log(np.where(safe, q, 1)) - log_post), 0), z)
        np.testing.assert_allclose(log_px - elbo, kl_post, rtol=1e-5, atol=1e-7)
        gaps.append(log_px - elbo)
    assert max(gaps) > 1e-3          # the bound is not trivially tight: a real test


def test_one_sample_elbo_is_unbiased_and_the_objective_is_its_negative():
    """The mean of `elbo` over many samples of eps approaches the quadrature ELBO; the
    objective's evaluation loss is minus the batch mean of `elbo` at the same eps."""
    model = tiny("both", seed=2)
    model.eval()
    x = [5, 4]
    z = np.linspace(-10, 10, 4001)
    with no_grad():
        mu, logvar = model.encode(np.array([x]))
    m, lv = float(mu.data[0, 0]), float(logvar.data[0, 0])
    q = np.exp(-0.5 * ((z - m) ** 2 / np.exp(lv) + lv + np.log(2 * np.pi)))
    exact = _trapezoid(q * _grid_terms(model, x, z), z) - gaussian_kl(mu, logvar).item()
    eps = np.random.default_rng(0).standard_normal((4000, 1))
    ids = np.repeat(np.array([x]), len(eps), axis=0)
    with no_grad():
        samples = model.elbo(ids, eps=eps).data
    assert abs(samples.mean() - exact) < 4 * samples.std() / np.sqrt(len(samples))
    objective = ELBO.for_model(model)
    batch = objective.make_batch(Sentences([x, [6]], 2), np.array([0, 1]),
                                 np.random.default_rng(5))
    with no_grad():
        loss = objective.loss(model, batch).item()
        per = model.elbo(batch["ids"], batch["lengths"], eps=batch["eps"]).data
    np.testing.assert_allclose(loss, -per.mean(), rtol=1e-12)


# ---------------------------------------------------------------------- the objective
def test_kl_annealing_schedules():
    linear = ELBO(4, 8, beta=0.5, kl_anneal=100)
    assert [linear.kl_weight(t) for t in (0, 50, 100, 500)] == [0.0, 0.25, 0.5, 0.5]
    logistic = ELBO(4, 8, kl_anneal=100, anneal="logistic")
    w = [logistic.kl_weight(t) for t in range(0, 301)]
    assert w[0] < 0.01 and abs(w[50] - 0.5) < 1e-12 and w[100] > 0.99 and w[300] <= 1.0
    assert all(a < b for a, b in zip(w, w[1:]))                               # increasing
    assert ELBO(4, 8, beta=0.3).kl_weight(0) == 0.3                            # no annealing


def test_the_trainer_tells_the_objective_its_step_and_the_loss_anneals():
    """At step 0 of a linear schedule the KL weighs nothing: the training loss is the
    reconstruction alone; later it is recon + beta_t KL."""
    model = tiny(latent=2, max_len=3, dtype="float32")
    objective = ELBO.for_model(model, kl_anneal=4)
    sents = [[4, 5], [6], [5, 5, 4]]
    trainer = VAETrainer(model, sents, None, TrainConfig(batch_size=3, max_iters=10,
                                                         warmup_iters=0, lr_decay_iters=10),
                         objective=objective)
    info = trainer.train_step()
    assert objective.step == 0 and info["kl_weight"] == 0.0
    for _ in range(2):
        info = trainer.train_step()
    assert objective.step == 2 and info["kl_weight"] == 0.5


def test_word_dropout_touches_only_the_decoder_inputs():
    objective = ELBO(3, 6, word_dropout=0.5)
    plain = ELBO(3, 6)
    data = Sentences([[4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14]], 6)
    rows = np.arange(3)
    batch = objective.make_batch(data, rows, np.random.default_rng(0))
    clean = plain.make_batch(data, rows, np.random.default_rng(0))
    for key in ("ids", "lengths", "inputs", "targets"):
        np.testing.assert_array_equal(batch[key], clean[key])                 # untouched
    dropped = batch["dropped"]
    assert dropped.any() and not dropped[:, 0].any()                         # never BOS
    real = batch["inputs"] != objective.pad_id
    assert not (dropped & ~real).any()                                       # never padding
    cfg = SentenceVAEConfig(vocab_size=15, max_len=6, n_layer=1, n_encoder_layer=1, n_head=2,
                            n_embd=8, latent=3, dtype="float64")
    model = SentenceVAE(cfg, rng=0)
    seen = {}
    decode = model.decode
    model.decode = lambda z, inputs: (seen.__setitem__("inputs", inputs), decode(z, inputs))[1]
    objective.loss(model, batch)                                             # training mode
    np.testing.assert_array_equal(seen["inputs"], np.where(dropped, 3, batch["inputs"]))
    model.eval()
    objective.loss(model, batch)                                             # eval: none
    np.testing.assert_array_equal(seen["inputs"], batch["inputs"])


def test_eval_loss_is_the_plain_negative_elbo_whatever_the_cures():
    model = tiny(latent=2, max_len=3)
    cured = ELBO.for_model(model, kl_anneal=10, free_bits=5.0, word_dropout=0.5)
    plain = ELBO.for_model(model)
    batch = cured.make_batch(Sentences([[4, 5], [6, 4, 4]], 3), np.arange(2),
                             np.random.default_rng(1))
    model.eval()
    assert cured.loss(model, batch).item() == plain.loss(model, batch).item()
    model.train()
    assert cured.loss(model, batch).item() != plain.loss(model, batch).item()


def test_the_objective_round_trips_through_its_record_and_checks_the_model():
    objective = ELBO(3, 6, beta=0.5, kl_anneal=7, anneal="logistic", free_bits=0.2,
                     word_dropout=0.3)
    again = objective_from_dict(objective.to_dict())
    assert again == objective and again.kl_weight(3) == objective.kl_weight(3)
    with pytest.raises(ValueError, match="latent"):
        ELBO(4, 2).check_model(tiny())
    with pytest.raises(ValueError, match="anneal"):
        ELBO(3, 6, anneal="cosine")
    with pytest.raises(ValueError, match="word_dropout"):
        ELBO(3, 6, word_dropout=1.0)


def test_resume_equals_uninterrupted(tmp_path):
    """With annealing, free bits, word dropout and model dropout: 6 steps, a checkpoint,
    4 more == 10 steps straight (losses and weights bit for bit)."""
    rng = np.random.default_rng(0)
    sents = [list(rng.integers(4, 7, size=rng.integers(1, 4))) for _ in range(20)]

    def make():
        model = SentenceVAE(SentenceVAEConfig(vocab_size=7, max_len=3, n_layer=1,
                                              n_encoder_layer=1, n_head=2, n_embd=8, latent=2,
                                              dropout=0.1), rng=3)
        objective = ELBO.for_model(model, kl_anneal=8, free_bits=0.05, word_dropout=0.25)
        cfg = TrainConfig(batch_size=4, max_iters=10, eval_interval=6, eval_iters=1,
                          warmup_iters=2, lr_decay_iters=10)
        return VAETrainer(model, sents, sents[:6], cfg, objective=objective)

    straight = make()
    losses = [straight.train_step()["loss"] for _ in range(10)]
    first = make()
    first.fit(max_iters=6, checkpoint_dir=tmp_path)
    resumed, _ = VAETrainer.resume(tmp_path, sents, sents[:6])
    assert isinstance(resumed, VAETrainer) and resumed.objective.word_dropout == 0.25
    rest = [resumed.train_step()["loss"] for _ in range(4)]
    assert rest == losses[6:]
    for (n, a), (_, b) in zip(straight.model.named_parameters(),
                              resumed.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)


# ---------------------------------------------------------------------- the model
@pytest.mark.parametrize("mode", ["add", "prefix", "both"])
def test_decoder_is_causal_and_reads_z(mode):
    model = tiny(mode, latent=2, max_len=4)
    model.eval()
    z = np.array([[0.3, -1.0]])
    a = model.decode(z, np.array([[1, 4, 5, 6, 4]])).data
    b = model.decode(z, np.array([[1, 4, 5, 4, 6]])).data
    assert a.shape == (1, 5, 7)
    np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-12)               # before the change
    c = model.decode(np.array([[1.3, 0.0]]), np.array([[1, 4, 5, 6, 4]])).data
    assert np.abs(a - c).min() > 0                                           # z reaches every step


@settings(max_examples=10, deadline=None)
@given(lengths=st.lists(st.integers(1, 5), min_size=2, max_size=4), seed=st.integers(0, 99))
def test_padding_changes_nothing(lengths, seed):
    """A sentence's mu, logvar and log p(x | z) are the same alone and in a padded batch."""
    model = tiny("both", latent=2, max_len=5, seed=seed % 3)
    model.eval()
    rng = np.random.default_rng(seed)
    sents = [list(rng.integers(4, 7, size=n)) for n in lengths]
    ids, L = batch_ids(sents, model.config.pad_id)
    with no_grad():
        mu, logvar = model.encode(ids, L)
        ll = model.log_likelihood(mu, ids, L).data
        for b, s in enumerate(sents):
            m1, v1 = model.encode(np.array([s]))
            np.testing.assert_allclose(mu.data[b], m1.data[0], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(logvar.data[b], v1.data[0], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(ll[b], model.log_likelihood(m1, np.array([s])).data[0],
                                       rtol=1e-9)


def test_decoder_io_puts_eos_after_each_sentence_and_ignores_padding():
    cfg = SentenceVAEConfig(vocab_size=9, max_len=3)
    inputs, targets = decoder_io(np.array([[4, 5, 6], [7, 0, 0]]), np.array([3, 1]), cfg)
    assert inputs.tolist() == [[1, 4, 5, 6], [1, 7, 0, 0]]
    assert targets.tolist() == [[4, 5, 6, 2], [7, 2, -100, -100]]


def test_posterior_collapse_is_measured():
    """An encoder whose mu ignores x and whose q is the prior: KL 0, no active unit; a
    model whose mu varies with x by more than 0.1: every unit active."""
    model = tiny(latent=3, max_len=3, dtype="float32")
    sents = [[4], [5, 6], [6, 6, 4], [5], [4, 4]]
    for layer in (model.to_mu, model.to_logvar):
        layer.weight.data[:] = 0
        layer.bias.data[:] = 0
    stats = posterior_stats(model, sents)
    assert stats["active_units"] == 0 and stats["kl"] == 0.0
    assert stats["kl_per_dim"].shape == (3,)
    model.to_mu.weight.data[:] = np.random.default_rng(0).normal(0, 5, (8, 3))
    stats = posterior_stats(model, sents)
    assert stats["active_units"] == 3 and stats["kl"] > 0
    assert stats["activity"].min() > 0.01


def test_reconstruct_sample_interpolate_decode_within_the_model():
    model = tiny(latent=2, max_len=4, dtype="float32")
    sents = [[4, 5], [6, 6, 6, 4]]
    out = reconstruct(model, sents)
    assert len(out) == 2 and all(len(s) <= 4 for s in out)
    assert all(t not in (0, 1, 2) for s in out for t in s)        # no pad, bos, eos inside
    path = interpolate(model, sents[0], sents[1], steps=4)
    assert len(path) == 4 and path[0] == out[0] and path[-1] == out[1]
    drawn = sample_prior(model, 3, np.random.default_rng(0), temperature=1.0)
    assert len(drawn) == 3
    assert sample_prior(model, 3, 7) == sample_prior(model, 3, 7)           # seeded
    with pytest.raises(ValueError, match="steps"):
        interpolate(model, sents[0], sents[1], steps=1)
    with pytest.raises(ValueError, match="z must be"):
        greedy_decode(model, np.zeros((2, 5)))


def test_a_trained_vae_reconstructs_and_denoises_its_sentences():
    """Eight sentences of four words, 200 steps with free bits and word dropout: nearly
    every token reconstructed, every latent unit active, and sentences with words masked
    come back closer to the clean ones than the corrupted input was."""
    rng = np.random.default_rng(0)
    sents = [list(rng.integers(4, 12, size=4)) for _ in range(8)]
    model = SentenceVAE(SentenceVAEConfig(vocab_size=12, max_len=4, n_layer=1,
                                          n_encoder_layer=1, n_head=2, n_embd=32, latent=4),
                        rng=0)
    objective = ELBO.for_model(model, free_bits=1.0, word_dropout=0.3)
    trainer = VAETrainer(model, sents, None, TrainConfig(
        batch_size=8, max_iters=200, learning_rate=1e-2, warmup_iters=10, lr_decay_iters=200,
        weight_decay=0.0), objective=objective)
    for _ in range(200):
        trainer.train_step()
    assert token_accuracy(reconstruct(model, sents), sents) >= 0.9
    assert posterior_stats(model, sents)["active_units"] == 4
    noisy = [corrupt(s, rng, mask=0.25, mask_id=3) for s in sents]
    assert token_accuracy(reconstruct(model, noisy), sents) > token_accuracy(noisy, sents)


def test_corrupt():
    rng = np.random.default_rng(0)
    s = [4, 5, 6, 7, 8, 9]
    assert corrupt(s, rng) == s
    assert corrupt(s, rng, mask=0.999, mask_id=3) == [3] * 6
    swapped = corrupt(s, rng, swap=0.999)
    assert sorted(swapped) == s and swapped != s
    assert len(corrupt(s, rng, drop=0.999)) >= 1
    with pytest.raises(ValueError, match="mask_id"):
        corrupt(s, rng, mask=0.5)
    assert token_accuracy([[4, 5, 9]], [[4, 5, 6, 7]]) == 0.5


def test_checkpoint_round_trip_and_a_config_that_does_not_fit(tmp_path):
    import json

    from numpyllm.training.checkpoint import save_checkpoint
    model = tiny("prefix", latent=3, max_len=4, dtype="float32")
    save_checkpoint(tmp_path, step=1, model=model)
    again = build_model(load_checkpoint(tmp_path))
    assert type(again) is SentenceVAE and again.config == model.config
    ids = np.array([[4, 5, 6]])
    np.testing.assert_array_equal(again.encode(ids)[0].data, model.encode(ids)[0].data)
    manifest = tmp_path / "step-000001" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["model"]["config"]["latent"] = 5
    manifest.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError):
        build_model(load_checkpoint(tmp_path))


@pytest.mark.parametrize("change, message", [
    ({"latent_mode": "concat"}, "latent_mode"),
    ({"bos_id": 0}, "distinct"),
    ({"unk_id": 9}, "unk_id"),
    ({"n_embd": 10}, "divisible"),
    ({"latent": 0}, "latent"),
])
def test_config_errors(change, message):
    with pytest.raises(ValueError, match=message):
        SentenceVAEConfig(vocab_size=9, **{"n_embd": 8, "n_head": 4, **change})


def test_input_errors():
    model = tiny(max_len=3)
    with pytest.raises(ValueError, match="longer than max_len"):
        model.encode(np.array([[4, 5, 6, 4]]))
    with pytest.raises(ValueError, match="lengths"):
        model.encode(np.array([[4, 5]]), np.array([3]))
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        model.encode(np.array([[4, 9]]))
    with pytest.raises(ValueError, match="decoder inputs"):
        model(np.array([[4, 5]]), inputs=np.array([[1, 4]]))
    with pytest.raises(TypeError, match="SentenceVAEConfig"):
        SentenceVAE({"vocab_size": 7})

"""Checks of whole models: the loss with respect to every parameter, at weights moved
away from the initial ones (`perturb`), for each architecture and option that changes
the graph: GPT with each position scheme, pre- and post-LN, with and without biases,
untied, with blocked attention; the encoder-decoder; the encoder-only model.

The parameters hold more than 256 numbers, so `gradcheck` compares random projections
vᵀJu; the tolerance model of `numpyllm.autograd.gradcheck` still fails a zeroed or a
1%-scaled gradient of any one parameter (tests/test_checks.py proves it per check).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from ..nn.gpt import GPT, POSITIONS, GPTConfig
from ..nn.llama import Llama, LlamaConfig
from ..nn.lora import apply_lora
from ..nn import (ClassifierConfig, SequenceClassifier, Transformer, TransformerConfig,
                  TransformerEncoderConfig, TransformerEncoderModel)
from .case import Check, module_case, perturb

__all__ = ["CHECKS"]


def _gpt(prefix=False, **kwargs):
    def build(rng):
        # T = block_size, so every learned position embedding gets a gradient
        cfg = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8,
                        dtype="float64", **kwargs)
        model = perturb(GPT(cfg, rng=rng), rng)
        x = rng.integers(0, 11, size=(2, 5))
        y = rng.integers(0, 11, size=(2, 5))
        y[1, 2] = -100                                    # an ignored target
        lengths = np.array([2, 3]) if prefix else None    # prefix decoder: both ways there
        return module_case(model, lambda: model(x, targets=y, prefix_lengths=lengths)[1])
    return build


def _llama(prefix=False, **kwargs):
    def build(rng):
        cfg = LlamaConfig(vocab_size=11, block_size=5, n_layer=2, n_head=4, n_embd=8,
                          intermediate_size=12, dtype="float64", **kwargs)
        model = perturb(Llama(cfg, rng=rng), rng)
        x = rng.integers(0, 11, size=(2, 5))
        y = rng.integers(0, 11, size=(2, 5))
        y[0, 1] = -100
        lengths = np.array([2, 4]) if prefix else None
        return module_case(model, lambda: model(x, targets=y, prefix_lengths=lengths)[1])
    return build


def _seq2seq(label_smoothing=0.0, **kwargs):
    def build(rng):
        cfg = TransformerConfig(src_vocab_size=7, tgt_vocab_size=7, d_model=8, n_head=2,
                                n_encoder_layers=2, n_decoder_layers=2, d_ff=12, dropout=0.0,
                                pad_id=0, dtype="float64", **kwargs)
        model = perturb(Transformer(cfg, rng=rng), rng)
        src = np.array([[3, 4, 5, 6], [2, 5, 0, 0]])           # the second is padded
        tgt = np.array([[1, 6, 5], [1, 5, 2]])
        y = np.array([[6, 5, 4], [5, 2, 0]])                   # the last target is PAD: ignored
        return module_case(model, lambda: model(src, tgt, y,
                                                label_smoothing=label_smoothing)[1])
    return build


def _encoder(**kwargs):
    def build(rng):
        cfg = TransformerEncoderConfig(vocab_size=7, d_model=8, n_head=2, n_layers=2, d_ff=12,
                                       dropout=0.0, max_len=5, dtype="float64", **kwargs)
        model = perturb(TransformerEncoderModel(cfg, rng=rng), rng)
        ids = np.array([[1, 2, 3, 4, 5], [6, 5, 4, 0, 0]])
        y = np.array([[-100, 2, -100, 4, 1], [3, -100, 4, 1, 1]])
        y = np.where(y < 0, y, y % (cfg.n_outputs or cfg.vocab_size))   # classes of the head
        return module_case(model, lambda: model(ids, np.array([5, 3]), y)[1])
    return build


def _classifier(backbone, pooling):
    def build(rng):
        inner = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8,
                          dtype="float64") if backbone == "GPT" else \
            TransformerEncoderConfig(vocab_size=11, d_model=8, n_head=2, n_layers=2, d_ff=12,
                                     dropout=0.0, max_len=5, positions="learned",
                                     activation="gelu", dtype="float64")
        cfg = ClassifierConfig(backbone, inner.to_dict(), n_classes=3, pooling=pooling)
        model = perturb(SequenceClassifier(cfg, rng=rng), rng)
        ids = rng.integers(0, 11, size=(3, 5))
        lengths, labels = np.array([5, 3, 2]), np.array([0, 2, 1])   # right padding
        return module_case(model, lambda: model(ids, lengths, labels)[1])
    return build


def _lora(family, **kwargs):
    """A model with LoRA on its default targets: the loss with respect to the adapters
    (the base frozen), at adapters moved away from B = 0 so that every path matters."""
    def build(rng):
        if family == "GPT":
            model = GPT(GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8,
                                  dtype="float64"), rng=rng)
        else:
            model = Llama(LlamaConfig(vocab_size=11, block_size=5, n_layer=2, n_head=4,
                                      n_embd=8, intermediate_size=12, n_kv_head=2,
                                      dtype="float64"), rng=rng)
        model = apply_lora(perturb(model, rng), r=2, alpha=4, rng=rng, **kwargs)
        perturb(model, rng)
        x = rng.integers(0, 11, size=(2, 5))
        y = rng.integers(0, 11, size=(2, 5))
        return module_case(model, lambda: model(x, targets=y)[1])
    return build


def _dpo(average, sft_weight=0.0):
    """The DPO loss of a GPT against a reference GPT with other weights (so Δ ≠ 0 and
    σ(-βΔ) differs between pairs), through the fused sequence_logprob (and with
    `sft_weight`, RPO's per-token NLL of the chosen responses added)."""
    def build(rng):
        from ..data.preference import PreferencePairs
        from ..training.objectives.dpo import DPO
        cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8,
                        dtype="float64")
        model = perturb(GPT(cfg, rng=rng), rng)
        reference = perturb(GPT(cfg, rng=rng), rng)
        pairs = PreferencePairs([[1, 2], [3, 4, 5], [6]], [[7, 8, 9], [1], [2, 3, 4, 5]],
                                [[9, 8], [6, 5, 4], [10, 1]])
        objective = DPO(beta=0.5, average=average, reference=reference,
                        sft_weight=sft_weight)
        batch = objective.make_batch(pairs, np.arange(3))
        return module_case(model, lambda: objective.loss(model, batch))
    return build


def _distill(alpha):
    """A student GPT's distillation loss against a teacher GPT of another depth and
    width (same vocabulary), at weights where every path matters."""
    def build(rng):
        from ..training.objectives import Distill
        from ..training.objectives.base import Batch
        student = perturb(GPT(GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2,
                                         n_embd=8, dtype="float64"), rng=rng), rng)
        teacher = perturb(GPT(GPTConfig(vocab_size=11, block_size=5, n_layer=1, n_head=2,
                                        n_embd=12, dtype="float64"), rng=rng), rng, std=0.6)
        objective = Distill(5, temperature=2.0, alpha=alpha, teacher=teacher)
        objective.check_model(student)
        x = rng.integers(0, 11, size=(2, 5))
        y = rng.integers(0, 11, size=(2, 5))
        y[1, 3] = -100
        batch = Batch({"x": x, "y": y}, (y != -100).sum(axis=1), x.size)
        return module_case(student, lambda: objective.loss(student, batch))
    return build


def _inputs_embeds(family):
    """The loss with respect to the input vectors (``inputs_embeds``, what an attack or
    embedding-space adversarial training differentiates) as well as every parameter."""
    def build(rng):
        if family == "Classifier":
            inner = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8,
                              dtype="float64", positions="learned")
            model = perturb(SequenceClassifier(ClassifierConfig("GPT", inner.to_dict(),
                                                                n_classes=3), rng=rng), rng)
            mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)   # left padding
            labels = np.array([2, 0])
            fn = lambda e: model(inputs_embeds=e, labels=labels, mask=mask)[1]  # noqa: E731
            model.backbone.wte.requires_grad_(False)  # no LM head: the table is not read
        elif family == "Transformer":               # the source side of a seq2seq model
            model = perturb(Transformer(TransformerConfig(
                src_vocab_size=7, tgt_vocab_size=7, d_model=8, n_head=2, n_encoder_layers=2,
                n_decoder_layers=2, d_ff=12, dropout=0.0, pad_id=0, norm="pre",
                share_embeddings=True, dtype="float64"), rng=rng), rng)
            tgt, y = np.array([[1, 6, 5], [1, 5, 2]]), np.array([[6, 5, 4], [5, 2, 0]])
            fn = lambda e: model(None, tgt, y, inputs_embeds=e,             # noqa: E731
                                 src_lengths=np.array([5, 3]))[1]
        else:
            if family == "GPT":
                model = GPT(GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2,
                                      n_embd=8, dtype="float64"), rng=rng)
            elif family == "Llama":
                model = Llama(LlamaConfig(vocab_size=11, block_size=5, n_layer=2, n_head=4,
                                          n_kv_head=2, n_embd=8, intermediate_size=12,
                                          dtype="float64"), rng=rng)
            else:
                model = TransformerEncoderModel(TransformerEncoderConfig(
                    vocab_size=11, d_model=8, n_head=2, n_layers=2, d_ff=12, dropout=0.0,
                    max_len=5, tie_embeddings=True, dtype="float64"), rng=rng)  # head reads the table
            model = perturb(model, rng)
            y = rng.integers(0, 11, size=(2, 5))
            fn = lambda e: model(inputs_embeds=e, targets=y)[1]          # noqa: E731
        e = Tensor(rng.standard_normal((2, 5, 8)), requires_grad=True)    # [B, T, C]
        return module_case(model, fn, e)
    return build


def _one_hot_target_loss(rng):
    """GCG's objective (numpyllm/adversarial/suffix.py) as a function of one-hot token
    choices: ``onehot [B, T, V] @ wte`` read as inputs_embeds, the loss on the last two
    positions only (the target; -100 elsewhere). The one-hot is the input whose gradient
    proposes GCG's swaps; wte gets gradient from both the lookup and the tied head."""
    model = perturb(GPT(GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8,
                                  dtype="float64"), rng=rng), rng)
    y = np.full((2, 5), -100)
    y[:, 3:] = rng.integers(0, 11, size=(2, 2))
    onehot = Tensor(np.eye(11)[rng.integers(0, 11, size=(2, 5))] +
                    0.1 * rng.standard_normal((2, 5, 11)), requires_grad=True)   # [B, T, V]
    fn = lambda oh: model(inputs_embeds=oh @ model.wte.weight, targets=y)[1]   # noqa: E731
    return module_case(model, fn, onehot)


def _vae(latent_mode, **settings):
    """A sentence VAE's training loss (the ELBO objective: reconstruction + beta KL, with
    a word-dropout mask and the noise eps fixed in the batch) with respect to every
    parameter. The longest sentence fills max_len, so every learned position of the
    encoder and the decoder gets a gradient."""
    def build(rng):
        from ..nn.vae import SentenceVAE, SentenceVAEConfig
        from ..training.objectives.vae import ELBO, Sentences
        cfg = SentenceVAEConfig(vocab_size=11, max_len=4, n_layer=2, n_encoder_layer=2,
                                n_head=2, n_embd=8, latent=3, latent_mode=latent_mode,
                                dtype="float64")
        model = perturb(SentenceVAE(cfg, rng=rng), rng)
        objective = ELBO.for_model(model, **settings)
        objective.step = 3
        data = Sentences([[4, 5, 6, 7], [8, 9], [10, 4, 5]], cfg.max_len)
        batch = objective.make_batch(data, np.arange(3), rng)   # eps and the mask drawn once
        return module_case(model, lambda: objective.loss(model, batch))
    return build


def _adversarial(method, norm, weight):
    """The adversarial training loss of a GPT classifier (`AdversarialClassification`)
    with respect to every parameter, the token table included, at perturbations found
    once by PGD and then held fixed (as the weight update holds them: the papers' δ is a
    constant there)."""
    def build(rng):
        from ..training.objectives import AdversarialClassification
        from ..training.objectives.base import Batch
        inner = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8,
                          dtype="float64")
        model = perturb(SequenceClassifier(ClassifierConfig("GPT", inner.to_dict(),
                                                            n_classes=3), rng=rng), rng)
        objective = AdversarialClassification(3, method=method, epsilon=0.8, norm=norm,
                                              steps=3, random_start=1, weight=weight)
        batch = Batch({"ids": rng.integers(0, 11, size=(3, 5)), "lengths": np.array([5, 3, 2]),
                       "labels": np.array([0, 2, 1]), "seeds": np.array([1, 2, 3])},
                      np.ones(3, dtype=np.int64), 15)
        deltas = objective.perturbations(model, batch)               # [S, 3, 5, 8], fixed
        return module_case(model, lambda: objective.loss_at(model, batch, deltas))
    return build


def _model(name, build, shapes) -> Check:
    return Check(name, build, shapes, kind="model")


_GPT_SHAPES = "idx [2, 5], 2 layers, d 8"
_VAE_SHAPES = "3 sentences <= 4, Z 3, 2+2 layers"
CHECKS = [
    _model(f"GPT ({positions}, {norm}-LN{'' if bias else ', no bias'})",
           _gpt(positions=positions, norm=norm, bias=bias), _GPT_SHAPES)
    for positions in POSITIONS for norm in ("pre", "post") for bias in (True, False)
] + [
    _model("GPT (untied head)", _gpt(tie_weights=False), _GPT_SHAPES),
    _model("GPT (relu)", _gpt(activation="relu", positions="rope"), _GPT_SHAPES),
    _model("GPT (blocked attention)", _gpt(attn_block_size=2, positions="rope"), _GPT_SHAPES),
    _model("GPT (prefix LM)", _gpt(prefix=True), _GPT_SHAPES + ", prefixes 2, 3"),
    _model("GPT (prefix LM, blocked)", _gpt(prefix=True, attn_block_size=2, positions="rope"),
           _GPT_SHAPES + ", prefixes 2, 3"),
    _model("GPT (DPO loss, summed)", _dpo(False), "3 pairs, L 6, 2 layers, d 8"),
    _model("GPT (DPO loss, averaged)", _dpo(True), "3 pairs, L 6, 2 layers, d 8"),
    _model("GPT (DPO loss + SFT term)", _dpo(False, sft_weight=0.7),
           "3 pairs, L 6, 2 layers, d 8"),
    _model("GPT (distillation, alpha 0.5)", _distill(0.5), "idx [2, 5], 2x8, teacher 1x12"),
    _model("GPT (distillation, alpha 1)", _distill(1.0), "idx [2, 5], 2x8, teacher 1x12"),
    _model("Llama (GQA, tied)", _llama(n_kv_head=2), "idx [2, 5], 2 layers, 4/2 heads"),
    _model("Llama (MQA, untied)", _llama(n_kv_head=1, tie_weights=False), "idx [2, 5], 4/1 heads"),
    _model("Llama (MHA, q/k/v bias)", _llama(n_kv_head=4, attention_bias=True),
           "idx [2, 5], Qwen2-style"),
    _model("Llama (sliding window 2)", _llama(n_kv_head=2, sliding_window=2),
           "idx [2, 5], Mistral-style"),
    _model("Llama (prefix LM)", _llama(prefix=True, n_kv_head=2), "idx [2, 5], prefixes 2, 4"),
    _model("Transformer (post-LN)", _seq2seq(norm="post"), "src [2,4], tgt [2,3], d 8"),
    _model("Transformer (pre-LN, gelu)", _seq2seq(norm="pre", activation="gelu"),
           "src [2,4], tgt [2,3], d 8"),
    _model("Transformer (shared embeddings)", _seq2seq(norm="pre", share_embeddings=True),
           "src [2,4], tgt [2,3], d 8"),
    _model("Transformer (label smoothing)", _seq2seq(0.1, norm="pre"),
           "src [2,4], tgt [2,3], eps 0.1"),
    _model("Encoder (learned pos, tied)", _encoder(positions="learned", activation="gelu",
                                                   tie_embeddings=True), "ids [2,5], d 8"),
    _model("Encoder (sinusoidal, post-LN)", _encoder(positions="sinusoidal", norm="post"),
           "ids [2,5], d 8"),
    _model("Encoder (pre-LN, 3 outputs)", _encoder(norm="pre", n_outputs=3), "ids [2,5], d 8"),
    _model("Encoder (MLM head)", _encoder(positions="learned", activation="gelu",
                                          mlm_head=True), "ids [2,5], d 8"),
    _model("Classifier (GPT, last)", _classifier("GPT", "last"), "ids [3,5], 3 classes"),
    _model("Classifier (GPT, mean)", _classifier("GPT", "mean"), "ids [3,5], 3 classes"),
    _model("Classifier (encoder, first)", _classifier("TransformerEncoderModel", "first"),
           "ids [3,5], 3 classes"),
    _model("Classifier (encoder, mean)", _classifier("TransformerEncoderModel", "mean"),
           "ids [3,5], 3 classes"),
    _model("GPT (inputs_embeds)", _inputs_embeds("GPT"), "embeds [2, 5, 8], 2 layers"),
    _model("Llama (inputs_embeds)", _inputs_embeds("Llama"), "embeds [2, 5, 8], 4/2 heads"),
    _model("Encoder (inputs_embeds)", _inputs_embeds("Encoder"), "embeds [2, 5, 8], d 8"),
    _model("Classifier (GPT, left-padded inputs_embeds)", _inputs_embeds("Classifier"),
           "embeds [2, 5, 8], 3 classes"),
    _model("Transformer (source inputs_embeds)", _inputs_embeds("Transformer"),
           "src embeds [2, 5, 8], tgt [2, 3]"),
    _model("Classifier (adversarial PGD L2, w 0.7)", _adversarial("pgd", "l2", 0.7),
           "ids [3, 5], delta [1, 3, 5, 8] fixed"),
    _model("Classifier (adversarial FreeLB Linf)", _adversarial("freelb", "linf", 1.0),
           "ids [3, 5], deltas [3, 3, 5, 8] fixed"),
    _model("GPT + LoRA (adapters only)", _lora("GPT"), _GPT_SHAPES + ", r 2 on 4 targets"),
    _model("GPT + rsLoRA (adapters only)", _lora("GPT", use_rslora=True, targets=["c_attn"]),
           _GPT_SHAPES + ", r 2 on c_attn"),
    _model("Llama + LoRA (adapters only)", _lora("Llama"), "idx [2, 5], r 2 on 7 targets"),
    _model("GPT (GCG: one-hot input, target-only loss)", _one_hot_target_loss,
           "one-hot [2, 5, 11], targets at 2 of 5"),
    _model("SentenceVAE ELBO (add)", _vae("add"), _VAE_SHAPES),
    _model("SentenceVAE ELBO (prefix, anneal, free bits)",
           _vae("prefix", kl_anneal=10, free_bits=0.01), _VAE_SHAPES),
    _model("SentenceVAE ELBO (both, word dropout)",
           _vae("both", word_dropout=0.4, beta=0.7), _VAE_SHAPES),
]


# --- QLoRA over a GPT whose token table and tied head are quantized (Q8_0): the loss with
# respect to the adapters of both blocks. Every gradient enters through the quantized tied
# head (x Eᵀ, E frozen), then through the quantized projections above each adapter.
def _qlora_quantized_embeddings(rng):
    from ..quantize import quantize
    cfg = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=32,
                    dtype="float64")
    model = quantize(perturb(GPT(cfg, rng=rng), rng), "q8_0", embeddings=True)
    apply_lora(model, r=2, alpha=4, targets=["attn.c_attn"], rng=rng)
    perturb(model, rng)                      # B starts at zero: move it, so A matters too
    x = rng.integers(0, 11, size=(2, 5))
    y = rng.integers(0, 11, size=(2, 5))
    return module_case(model, lambda: model(x, targets=y)[1])


CHECKS.append(_model("GPT QLoRA, quantized tied embedding (q8_0)", _qlora_quantized_embeddings,
                     "LoRA r 2 on c_attn, table and head Q8_0"))

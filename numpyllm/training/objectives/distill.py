"""Knowledge distillation (Hinton et al. 2015) of a decoder: a small student learns
next-token prediction from a trained teacher's softened distributions as well as from the
text itself.

On each batch of windows ``x [B, T]`` (targets ``y``, as causal LM), the teacher runs
without a graph (`numpyllm.autograd.no_grad`, in eval mode: no dropout) and the student
with one, and the loss is `numpyllm.functional.distill_loss`:

    loss = α T² KL(softmax(teacher / T) || softmax(student / T)) + (1 - α) CE(student, y)

averaged over the counted targets. The teacher's logits are constants: its weights never
change, so the batch, and so the run, is a function of the Trainer's generator alone, and
an exact resume needs nothing beyond causal LM's (tests/training/test_distill.py). With
the Trainer's threads each slice runs the teacher on its own rows; the teacher is only
read (eval mode, no graph), so one copy serves every thread.

**The checkpoint records the student as what it is**, a causal LM (``{"name": "clm",
"context_length": T}``): ``numpyllm eval``, ``sample``, ``convert`` and ``train --resume``
read it as any other. The teacher, T and α are not part of the student (as DPO's
reference is not): a resumed distillation passes them again,
``Trainer.resume(ckpt, data, objective=lambda m: Distill(T, teacher=teacher, ...))``
(``numpyllm distill`` keeps them in the checkpoint's data record and does that).

Two more recipes live here:

- **Sequence-level distillation** (Kim and Rush 2016): train the student on what the
  teacher writes, not only on its per-token distributions. `teacher_corpus` samples
  continuations of prompts cut from the training text; the student then learns them by
  ordinary next-token prediction (α = 0), alone or mixed with the text.
- **A student initialised from the teacher's layers** (DistilBERT, Sanh et al. 2019;
  DistilGPT2): same width, every other block (``layers=(0, 2, 4)`` of six), the token
  and position embeddings, the final norm and the head copied: `init_from_teacher_layers`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ...autograd import Tensor, no_grad
from ...functional import cross_entropy, distill_loss
from .causal import CausalLM

__all__ = ["Distill", "init_from_teacher_layers", "student_config", "teacher_corpus"]


@dataclass
class Distill(CausalLM):
    """Causal LM of a student against a teacher (a GPT or Llama with the student's
    vocabulary, or a function ``x [B, T] -> logits [B, T, V]``). Settings: `temperature`
    T > 0 and `alpha` α in [0, 1] (the soft term's weight; 0 is plain causal LM and the
    teacher is not run). Data: a 1-D array of token ids, as `CausalLM`."""

    temperature: float = 2.0
    alpha: float = 0.5
    teacher: object = field(default=None, repr=False, compare=False)

    name: ClassVar[str] = "distill"

    @property
    def perplexity(self) -> bool:
        """exp(loss) is a perplexity only without the soft term (alpha 0): the Trainer's
        evaluations leave it out otherwise."""
        return self.alpha == 0

    def __post_init__(self):
        super().__post_init__()
        if not self.temperature > 0:
            raise ValueError(f"Distill.temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"Distill.alpha must be in [0, 1], got {self.alpha}")

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict:
        """The student's record: causal LM (see the module doc). `settings` has the rest."""
        return CausalLM(self.context_length).to_dict()

    def settings(self) -> dict:
        """What a resumed distillation needs besides the teacher: T and α."""
        return {"temperature": float(self.temperature), "alpha": float(self.alpha)}

    # ------------------------------------------------------------------ model
    def check_model(self, model) -> None:
        """The student is a decoder; the teacher is there, reads the student's vocabulary
        and a window of `context_length` tokens; it is put in eval mode and frozen."""
        super().check_model(model)
        teacher = self.teacher
        if teacher is None and self.alpha > 0:
            raise ValueError("Distill: no teacher: pass teacher= (a model, or a function of "
                             "the input ids giving logits)")
        if hasattr(teacher, "named_parameters"):
            cfg = teacher.config
            if cfg.vocab_size != model.config.vocab_size:
                raise ValueError(f"Distill: the teacher's vocabulary has {cfg.vocab_size} "
                                 f"tokens, the student's {model.config.vocab_size}: they must "
                                 "share one tokenizer")
            if getattr(cfg, "positions", "rope") == "learned" and \
                    cfg.block_size < self.context_length:
                raise ValueError(f"Distill: windows of {self.context_length} tokens are longer "
                                 f"than the teacher's context ({cfg.block_size})")
            teacher.requires_grad_(False)
            teacher.eval()

    # ------------------------------------------------------------------ loss
    def teacher_logits(self, x: np.ndarray) -> np.ndarray:
        """The teacher's logits ``[B, T, V]`` of windows `x`, as a constant array."""
        with no_grad():
            out = self.teacher(x)
        out = out[0] if isinstance(out, tuple) else out
        return out.data if isinstance(out, Tensor) else np.asarray(out)

    def loss(self, model, batch, reduction: str = "mean"):
        logits = model(batch["x"])[0]                                   # [B, T, V]
        if self.alpha == 0:             # plain causal LM: the teacher would add nothing
            return cross_entropy(logits, batch["y"], reduction=reduction)
        return distill_loss(logits, self.teacher_logits(batch["x"]), batch["y"],
                            temperature=self.temperature, alpha=self.alpha,
                            reduction=reduction)

    def scores(self, model, batch) -> dict:
        """Sums over the batch's counted targets: ``loss`` (the objective's), and the two
        terms apart: ``cross_entropy`` (the student's next-token loss: what a causal LM's
        evaluation reports) and ``kl`` (KL at temperature T, without T²)."""
        logits = model(batch["x"])[0]
        y = batch["y"]
        ce = float(cross_entropy(logits, y, reduction="sum").item())
        out = {"count": int(batch.counts.sum()), "cross_entropy": ce, "loss": ce}
        if self.alpha > 0:
            kl = float(distill_loss(logits, self.teacher_logits(batch["x"]), y,
                                    temperature=self.temperature, alpha=1.0,
                                    reduction="sum").item()) / self.temperature ** 2
            T2 = self.temperature ** 2
            out.update(kl=kl, loss=self.alpha * T2 * kl + (1 - self.alpha) * ce)
        return out


# ---------------------------------------------------------------------- the student
def student_config(teacher_config, **changes):
    """The teacher's config (a GPTConfig or LlamaConfig) with `changes` (n_layer, n_embd,
    n_head, ...): a student of the same family, vocabulary and context by default."""
    values = {**teacher_config.to_dict(), **changes}
    if "n_head" in changes and "n_kv_head" in values and "n_kv_head" not in changes:
        values["n_kv_head"] = None               # Llama: plain multi-head unless told
    if "n_embd" in changes and values.get("head_dim") is not None and "head_dim" not in changes:
        values["head_dim"] = None                # Llama: n_embd // n_head again
    return type(teacher_config).from_dict(values)


_BLOCK = re.compile(r"^(h|layers)\.(\d+)\.")     # GPT's h.{i}., Llama's layers.{i}.


def init_from_teacher_layers(student, teacher, layers) -> None:
    """Copy into `student` (in place) the teacher's blocks `layers` (block k of the
    student <- block ``layers[k]`` of the teacher), and every other weight of the same
    name: embeddings, final norm, head. The student has ``len(layers)`` blocks and the
    teacher's width; a ValueError names the first weight that does not fit."""
    layers = [int(i) for i in layers]
    n_teacher = teacher.config.n_layer
    if len(layers) != student.config.n_layer:
        raise ValueError(f"init_from_teacher_layers: {len(layers)} layers given "
                         f"({layers}) for a student of {student.config.n_layer} blocks")
    bad = [i for i in layers if not 0 <= i < n_teacher]
    if bad:
        raise ValueError(f"init_from_teacher_layers: layer {bad[0]} is not one of the "
                         f"teacher's 0..{n_teacher - 1}")
    if type(student) is not type(teacher):
        raise ValueError(f"init_from_teacher_layers: a {type(student).__name__} student "
                         f"cannot take a {type(teacher).__name__} teacher's layers")
    source = dict(teacher.named_parameters())
    for name, p in student.named_parameters():
        m = _BLOCK.match(name)
        theirs = name if m is None else \
            f"{m.group(1)}.{layers[int(m.group(2))]}.{name[m.end():]}"
        if theirs not in source:
            raise ValueError(f"init_from_teacher_layers: the teacher has no {theirs} for the "
                             f"student's {name}")
        value = source[theirs].data
        if name == "wpe.weight" and value.shape[1:] == p.shape[1:] and len(value) >= len(p):
            value = value[:len(p)]                      # positions 0..T-1 of the teacher's
        if value.shape != p.shape:
            raise ValueError(f"init_from_teacher_layers: the student's {name} is "
                             f"{tuple(p.shape)}, the teacher's {theirs} {tuple(source[theirs].shape)}"
                             ": the student needs the teacher's width")
        p.data[...] = value


# ---------------------------------------------------------------------- sequence level
def teacher_corpus(teacher, tokens, n_tokens: int, *, prompt_length: int = 8,
                   length: int | None = None, rows: int = 32, temperature: float = 1.0,
                   top_k: int | None = None, rng=None) -> np.ndarray:
    """About `n_tokens` tokens written by the teacher (Kim and Rush's sequence-level
    distillation): `rows` prompts of `prompt_length` tokens at a time, cut at random from
    `tokens` (the training text), each continued by `length` sampled tokens (default:
    the teacher's context less the prompt, so no crop is needed); the continuations,
    without their prompts, end to end. Sampled at `temperature` 1 by default (the
    teacher's own distribution; Kim and Rush used beam search, the mode)."""
    from ...generate import generate
    tokens = np.asarray(tokens)
    rng = np.random.default_rng(rng)
    context = teacher.config.block_size
    length = length or context - prompt_length
    if prompt_length < 1 or length < 1 or n_tokens < 1 or rows < 1:
        raise ValueError("teacher_corpus: n_tokens, prompt_length, length and rows must be "
                         f">= 1, got {n_tokens}, {prompt_length}, {length}, {rows}")
    if len(tokens) <= prompt_length:
        raise ValueError(f"teacher_corpus: {len(tokens)} tokens leave no prompt of "
                         f"{prompt_length}")
    was = teacher.training
    teacher.eval()
    pieces, total = [], 0
    try:
        while total < n_tokens:
            starts = rng.integers(0, len(tokens) - prompt_length, size=rows)
            prompts = np.stack([tokens[s:s + prompt_length] for s in starts])    # [rows, P]
            out = generate(teacher, prompts, length, temperature=temperature, top_k=top_k,
                           rng=rng)                                             # [rows, P+n]
            new = out[:, prompt_length:].reshape(-1)
            pieces.append(new)
            total += new.size
    finally:
        teacher.train(was)
    return np.concatenate(pieces)[:n_tokens].astype(np.int64)

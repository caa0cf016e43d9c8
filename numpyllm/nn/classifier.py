"""Sequence classification: one label per sequence, from a decoder or an encoder.

    ids [B, T] --backbone--> hidden [B, T, C] --pool--> [B, C] --score--> logits [B, K]

The backbone is a `GPT` (pooling ``"last"``: the last real token, the only position of a
causal decoder that has seen the whole sequence; or ``"mean"``) or a
`TransformerEncoderModel` (``"first"``: position 0, BERT's [CLS]; or ``"mean"``). Its
output head (GPT's untied ``lm_head``, the encoder's ``head`` or ``mlm_head``) is dropped:
the classifier holds no parameter it does not use.

Padding: `lengths` ``[B]`` (right padding: the first ``lengths[b]`` tokens of row b are
real) or `mask` ``[B, T]`` (True or 1 at real tokens, on either side: left, right, or
both). A left-padded row is moved left before the backbone reads it, so every real token
sits where it sits in the unpadded sequence: learned and sinusoidal positions count from
slot 0, and a causal decoder's real tokens never have padding before them to attend to.
After that, right padding needs no attention mask in a GPT or a Llama (causal attention
never lets a real token see the padding after it); the encoder gets one. So the pooled
token is the last *real* token, and the logits are the unpadded sequence's, whichever side
was padded (a property test, `tests/nn/test_classifier.py`).

`train_blocks(model, n)` chooses what fine-tuning trains: the last n transformer blocks,
the final norm and the score layer (the LLMs-from-scratch book trains the last block, the
final LayerNorm and the head); everything else is frozen.

Parameters: ``backbone.*`` (the backbone's own names) and ``score.weight``,
``score.bias`` (``[C, K]`` and ``[K]``).

>>> import numpy as np
>>> from numpyllm.nn.gpt import GPTConfig
>>> cfg = ClassifierConfig("GPT", GPTConfig(vocab_size=11, block_size=8, n_layer=1,
...                        n_head=2, n_embd=8).to_dict(), n_classes=2)
>>> model = SequenceClassifier(cfg, rng=0)
>>> logits, loss = model(np.array([[3, 4, 5, 0], [6, 7, 0, 0]]), lengths=np.array([3, 2]),
...                      labels=np.array([1, 0]))
>>> logits.shape
(2, 2)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..validation import ConfigDict, as_generator, check_fraction, positive_int
from .encoder import TransformerEncoderConfig, TransformerEncoderModel
from .gpt import GPT, GPTConfig
from .llama import Llama, LlamaConfig
from .heads import POOLINGS, pool
from .inputs import ids_or_embeds, input_embeds
from .layers import Dropout, Linear
from .module import Module

__all__ = ["ClassifierConfig", "SequenceClassifier", "BACKBONES", "train_blocks"]

# backbone name -> (model class, config class, the poolings that make sense for it)
BACKBONES = {
    "GPT": (GPT, GPTConfig, ("last", "mean")),
    "Llama": (Llama, LlamaConfig, ("last", "mean")),
    "TransformerEncoderModel": (TransformerEncoderModel, TransformerEncoderConfig,
                                ("first", "mean")),
}


@dataclass
class ClassifierConfig(ConfigDict):
    """A classifier: the backbone's kind and config (as a dict, as a checkpoint stores
    it), the number of classes, the pooling, and the dropout before the score layer."""

    backbone: str
    backbone_config: dict = field(default_factory=dict)
    n_classes: int = 2
    pooling: str | None = None        # None: "last" for GPT, "first" for the encoder
    dropout: float = 0.0

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"ClassifierConfig.backbone must be one of {tuple(BACKBONES)}, "
                             f"got {self.backbone!r}")
        _, config_cls, poolings = BACKBONES[self.backbone]
        if isinstance(self.backbone_config, config_cls):
            self.backbone_config = self.backbone_config.to_dict()
        if not isinstance(self.backbone_config, dict):
            raise ValueError(f"ClassifierConfig.backbone_config must be a dict of "
                             f"{config_cls.__name__} fields, got {type(self.backbone_config).__name__}")
        config_cls.from_dict(self.backbone_config)         # refuse a bad one now
        positive_int("ClassifierConfig.n_classes", self.n_classes)
        if self.pooling is None:
            self.pooling = poolings[0]
        if self.pooling not in poolings:
            raise ValueError(f"ClassifierConfig.pooling for a {self.backbone} must be one of "
                             f"{poolings} (of {POOLINGS}), got {self.pooling!r}")
        check_fraction("ClassifierConfig", "dropout", self.dropout)

    def backbone_cfg(self):
        return BACKBONES[self.backbone][1].from_dict(self.backbone_config)


class SequenceClassifier(Module):
    """``model(ids [B, T], lengths=None [B], labels=None [B], *, mask=None [B, T])
    -> (logits [B, K], loss)``.

    `lengths`: real tokens per row (right padding); or `mask`: bool (or 0/1) ``[B, T]``,
    True at real tokens, padding on either side (each row's real tokens contiguous); with
    neither, every token is real.
    `labels`: class indices in [0, K); the loss is their mean cross-entropy. Pass a
    `backbone` already built (a pretrained model, say) to wrap it instead of building one
    from the config; its config must then be the config's.
    """

    def __init__(self, config: ClassifierConfig, *, rng=None, backbone=None):
        super().__init__()
        if not isinstance(config, ClassifierConfig):
            raise TypeError(f"SequenceClassifier takes a ClassifierConfig, got "
                            f"{type(config).__name__}")
        self.config = config
        rng = as_generator(rng)
        model_cls, _, _ = BACKBONES[config.backbone]
        bcfg = config.backbone_cfg()
        if backbone is None:
            backbone = model_cls(bcfg, rng=rng)
        elif not isinstance(backbone, model_cls) or backbone.config.to_dict() != bcfg.to_dict():
            raise ValueError(f"SequenceClassifier: the backbone given is not the "
                             f"{config.backbone} its config describes")
        for head in ("lm_head", "head", "mlm_head"):     # the backbone's own output head
            if getattr(backbone, head, None) is not None:
                setattr(backbone, head, None)
        self.backbone = backbone
        width = getattr(bcfg, "n_embd", None) or bcfg.d_model
        self.drop = Dropout(config.dropout, rng=rng)
        self.score = Linear(width, config.n_classes, rng=rng, dtype=np.dtype(bcfg.dtype))

    def _valid(self, shape: tuple, lengths, mask):
        """For a ``[B, T]`` input: ``(source, valid)``: where each slot reads from so that
        the real tokens come first (``[B, T]`` indices, None when no row is left-padded),
        and the bool ``[B, T]`` of real tokens (None: all real)."""
        B, T = shape
        if lengths is not None and mask is not None:
            raise ValueError("SequenceClassifier: give lengths (right padding) or mask, "
                             "not both")
        if mask is not None:
            return self._align_left(shape, mask)
        if lengths is None:
            return None, None
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer) \
                or (lengths < 1).any() or (lengths > T).any():
            raise ValueError(f"SequenceClassifier: lengths must be integers [B] = ({B},) in "
                             f"[1, T={T}], got {lengths!r}")
        return None, np.arange(T)[None, :] < lengths[:, None]      # [B, T], True at real

    @staticmethod
    def _align_left(shape: tuple, mask) -> tuple:
        """Each row's real tokens (contiguous, anywhere in the row) moved to its start:
        ``[pad pad a b c] -> [a b c · ·]``; returns (source [B, T], valid [B, T])."""
        B, T = shape
        mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        if mask.shape != (B, T) or not (mask.dtype == bool or (
                np.issubdtype(mask.dtype, np.integer) and np.isin(mask, (0, 1)).all())):
            raise ValueError(f"SequenceClassifier: mask must be bool or 0/1 of shape [B, T] = "
                             f"{(B, T)}, got {mask.dtype} of shape {mask.shape}")
        mask = mask.astype(bool)
        lengths = mask.sum(axis=1)                                  # [B]
        first = np.argmax(mask, axis=1)                             # [B]: the first real slot
        cols = np.arange(T)[None, :]                                # [1, T]
        if (lengths == 0).any():
            raise ValueError(f"SequenceClassifier: mask row {int(np.argmin(lengths))} has no "
                             "real token")
        contiguous = mask == ((cols >= first[:, None]) & (cols < (first + lengths)[:, None]))
        if not contiguous.all():
            raise ValueError(f"SequenceClassifier: mask row {int(np.argmin(contiguous.all(1)))}"
                             " has padding between real tokens; pad on the left or the right")
        source = np.minimum(first[:, None] + cols, T - 1)           # [B, T], slot to read
        return source, cols < lengths[:, None]                      # [B, T], [B, T]

    def features(self, ids=None, lengths=None, *, mask=None, inputs_embeds=None) -> Tensor:
        """The pooled representation ``[B, C]`` the score layer reads. `inputs_embeds`
        ``[B, T, C]`` instead of `ids`: vectors in place of the backbone's token lookup
        (see its ``token_embeddings``), so that a gradient reaches the input."""
        ids_or_embeds(ids, inputs_embeds, "SequenceClassifier")
        if ids is not None:
            ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
            if ids.ndim != 2:
                raise ValueError(f"SequenceClassifier: ids must be [B, T], got shape "
                                 f"{ids.shape}")
            shape = ids.shape
        else:
            bcfg = self.backbone.config
            inputs_embeds = input_embeds(inputs_embeds, getattr(bcfg, "n_embd", None) or
                                         bcfg.d_model, bcfg.dtype, "SequenceClassifier")
            shape = inputs_embeds.shape[:2]
        source, valid = self._valid(tuple(shape), lengths, mask)
        if source is not None:                                      # real tokens first
            rows = np.arange(shape[0])[:, None]                     # [B, 1]
            if ids is not None:
                ids = ids[rows, source]                             # [B, T]
            else:
                inputs_embeds = inputs_embeds[rows, source]         # [B, T, C], a gather
        if self.config.backbone in ("GPT", "Llama"):
            hidden = self.backbone.hidden_states(ids, inputs_embeds=inputs_embeds)  # causal
        else:
            hidden = self.backbone.encode(ids, valid, inputs_embeds=inputs_embeds)  # [B, T, C]
        return pool(hidden, valid, self.config.pooling)

    def token_embeddings(self, ids) -> Tensor:
        """The backbone's token lookup, ``ids [B, T]`` -> ``[B, T, C]``: what
        ``inputs_embeds`` stands for."""
        return self.backbone.token_embeddings(ids)

    def forward(self, ids=None, lengths=None, labels=None, *, mask=None, inputs_embeds=None):
        logits = self.score(self.drop(self.features(ids, lengths, mask=mask,
                                                    inputs_embeds=inputs_embeds)))  # [B, K]
        loss = None
        if labels is not None:
            labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
            if labels.shape != logits.shape[:1]:
                raise ValueError(f"SequenceClassifier: labels must have shape [B] = "
                                 f"({logits.shape[0]},), got {labels.shape}")
            loss = F.cross_entropy(logits, labels)
        return logits, loss

    def extra_repr(self) -> str:
        c = self.config
        return f"backbone={c.backbone}, n_classes={c.n_classes}, pooling={c.pooling}"


def _blocks_and_norm(backbone) -> tuple:
    """A backbone's transformer blocks (a list, first to last) and its final norm (or None:
    a post-LN encoder has none; its last block ends in a norm)."""
    if isinstance(backbone, GPT):
        return list(backbone.h), backbone.ln_f
    if isinstance(backbone, Llama):
        return list(backbone.layers), backbone.norm
    if isinstance(backbone, TransformerEncoderModel):
        return list(backbone.encoder.layers), getattr(backbone.encoder, "ln_f", None)
    raise TypeError(f"train_blocks: expected a SequenceClassifier, GPT, Llama or "
                    f"TransformerEncoderModel, got {type(backbone).__name__}")


def train_blocks(model: Module, n_last: int | None) -> Module:
    """Choose what fine-tuning trains: freeze `model` except its last `n_last` transformer
    blocks, its final norm and its head; returns `model`.

    `model` is a `SequenceClassifier` (the head: ``score``) or a bare `GPT`, `Llama` or
    `TransformerEncoderModel` (the head: an untied ``lm_head``, ``head`` or ``mlm_head``;
    a head tied to the embedding stays frozen with it). ``n_last=0`` trains the final norm
    and the head alone (a linear probe, nearly); ``n_last=n_layer`` every block, but not
    the embeddings; ``None`` everything (full fine-tuning). The book's spam classifier is
    ``train_blocks(model, 1)``: the last block, the final LayerNorm, the head.

    >>> from numpyllm.nn.gpt import GPTConfig
    >>> cfg = ClassifierConfig("GPT", GPTConfig(vocab_size=11, block_size=8, n_layer=2,
    ...                        n_head=2, n_embd=8).to_dict(), n_classes=2)
    >>> model = train_blocks(SequenceClassifier(cfg, rng=0), 1)
    >>> sorted({".".join(n.split(".")[:3]) for n, p in model.named_parameters()
    ...         if p.requires_grad})
    ['backbone.h.1', 'backbone.ln_f.bias', 'backbone.ln_f.weight', 'score.bias', 'score.weight']
    """
    backbone = model.backbone if isinstance(model, SequenceClassifier) else model
    blocks, norm = _blocks_and_norm(backbone)
    if n_last is None:
        return model.requires_grad_(True)
    if isinstance(n_last, bool) or not isinstance(n_last, (int, np.integer)) or \
            not 0 <= n_last <= len(blocks):
        raise ValueError(f"train_blocks: n_last must be an int in [0, {len(blocks)}] (the "
                         f"model's blocks) or None for all parameters, got {n_last!r}")
    model.requires_grad_(False)
    for block in blocks[len(blocks) - n_last:]:
        block.requires_grad_(True)
    if norm is not None:
        norm.requires_grad_(True)
    heads = ("score",) if model is not backbone else ("lm_head", "head", "mlm_head")
    for name in heads:                   # (GPT.head is a method, not a layer)
        if isinstance(getattr(model, name, None), Module):
            getattr(model, name).requires_grad_(True)
    return model

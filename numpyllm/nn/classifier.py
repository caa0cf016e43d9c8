"""Sequence classification: one label per sequence, from a decoder or an encoder.

    ids [B, T] --backbone--> hidden [B, T, C] --pool--> [B, C] --score--> logits [B, K]

The backbone is a `GPT` (pooling ``"last"``: the last real token, the only position of a
causal decoder that has seen the whole sequence; or ``"mean"``) or a
`TransformerEncoderModel` (``"first"``: position 0, BERT's [CLS]; or ``"mean"``). Its
output head (GPT's untied ``lm_head``, the encoder's ``head`` or ``mlm_head``) is dropped:
the classifier holds no parameter it does not use. Sequences are padded on the right; `lengths` ``[B]`` says how many
tokens of each are real. A GPT needs no padding mask for that (causal attention never
lets a real token see the padding after it); the encoder gets one.

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
from .layers import Dropout, Linear
from .module import Module

__all__ = ["ClassifierConfig", "SequenceClassifier", "BACKBONES"]

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
    """``model(ids [B, T], lengths=None [B], labels=None [B]) -> (logits [B, K], loss)``.

    `lengths`: real tokens per row (right padding); None means every token is real.
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

    def _valid(self, ids, lengths):
        ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if ids.ndim != 2:
            raise ValueError(f"SequenceClassifier: ids must be [B, T], got shape {ids.shape}")
        if lengths is None:
            return ids, None
        lengths = np.asarray(lengths)
        B, T = ids.shape
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer) \
                or (lengths < 1).any() or (lengths > T).any():
            raise ValueError(f"SequenceClassifier: lengths must be integers [B] = ({B},) in "
                             f"[1, T={T}], got {lengths!r}")
        return ids, np.arange(T)[None, :] < lengths[:, None]      # [B, T], True at real

    def features(self, ids, lengths=None) -> Tensor:
        """The pooled representation ``[B, C]`` the score layer reads."""
        ids, valid = self._valid(ids, lengths)
        if self.config.backbone in ("GPT", "Llama"):
            hidden = self.backbone.hidden_states(ids)               # [B, T, C], causal
        else:
            hidden = self.backbone.encode(ids, valid)               # [B, T, C]
        return pool(hidden, valid, self.config.pooling)

    def forward(self, ids, lengths=None, labels=None):
        logits = self.score(self.drop(self.features(ids, lengths)))  # [B, K]
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

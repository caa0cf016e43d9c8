"""A variational autoencoder for sentences (Bowman et al. 2016, "Generating Sentences from
a Continuous Space"), on numpyllm's own encoder and GPT.

    ids [B, T] --encoder (bidirectional)--> hidden [B, T, C] --mean over real tokens-->
        [B, C] --to_mu, to_logvar--> mu, logvar [B, Z]
    z = mu + exp(logvar / 2) ⊙ eps                        eps ~ N(0, I), reparameterised
    decoder input [BOS, x_1 .. x_n] --wte--> [B, n+1, C]
        latent_mode "add":    + z_add(z) at every position
        latent_mode "prefix": z_prefix(z) as one vector before BOS (its logits dropped)
        latent_mode "both":   both
    --GPT (causal, fed with inputs_embeds)--> logits [B, n+1, V]  predicting [x_1 .. x_n, EOS]

The decoder is `numpyllm.nn.GPT` itself (through ``inputs_embeds``), the encoder
`TransformerEncoderModel` (pre-LN, GELU, learned positions, no output head): nothing is
copied. The ELBO for one sentence x is

    log p(x) >= E_q(z|x)[log p(x | z)] - KL(q(z|x) || N(0, I))

with log p(x | z) the decoder's summed token log-probabilities, EOS included
(`log_likelihood`), and the KL in closed form (`numpyllm.functional.gaussian_kl`).
The training objective (annealing, free bits, word dropout) is
`numpyllm.training.objectives.ELBO`; docs/vae.md derives it.

`numpyllm.generate.vae` uses a trained model: `reconstruct` (greedy decoding from the
posterior mean), `sample_prior`, `interpolate` (linear in z), `corrupt` and `denoise`,
and `posterior_stats` (KL per dimension and active units: posterior collapse measured).

Parameters: ``encoder.*`` (TransformerEncoderModel's names), ``to_mu``, ``to_logvar``
(``[C, Z]``), ``decoder.*`` (GPT's names), ``z_add`` and/or ``z_prefix`` (``[Z, C]``).

>>> cfg = SentenceVAEConfig(vocab_size=12, max_len=6, n_layer=1, n_encoder_layer=1,
...                         n_head=2, n_embd=8, latent=4)
>>> model = SentenceVAE(cfg, rng=0)
>>> ids, lengths = batch_ids([[5, 6, 7], [8]], cfg.pad_id)
>>> mu, logvar = model.encode(ids, lengths)
>>> mu.shape, model.log_likelihood(mu, ids, lengths).shape
((2, 4), (2,))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..autograd import Tensor, concat
from ..data import pad_sequences
from ..validation import ConfigDict, as_generator, check_fraction, check_positive_fields
from .encoder import TransformerEncoderConfig, TransformerEncoderModel
from .gpt import GPT, GPTConfig
from .heads import pool
from .layers import Linear
from .module import Module

__all__ = ["SentenceVAEConfig", "SentenceVAE", "LATENT_MODES", "batch_ids", "decoder_io",
           "ACTIVE_UNIT_THRESHOLD"]

LATENT_MODES = ("add", "prefix", "both")
ACTIVE_UNIT_THRESHOLD = 0.01            # Burda et al. 2016: Cov_x(E_q[z_j]) > 0.01
_SPECIALS = ("pad_id", "bos_id", "eos_id", "unk_id")


@dataclass
class SentenceVAEConfig(ConfigDict):
    """The shape of a `SentenceVAE`.

    - ``max_len``: the longest sentence in tokens (the decoder reads BOS + max_len);
    - ``n_encoder_layer``, ``n_layer``: blocks of the encoder and of the decoder, both
      ``n_embd`` wide with ``n_head`` heads;
    - ``latent``: Z, the dimensions of z; ``latent_mode``: how z reaches the decoder
      (``"add"``, ``"prefix"``, ``"both"``: see the module doc);
    - ``pad_id``, ``bos_id``, ``eos_id``, ``unk_id``: distinct ids of the vocabulary:
      padding, the decoder's first input, the end of every sentence, and the token word
      dropout puts in place of a decoder input;
    - ``dtype``: "float32" to train, "float64" to check gradients.
    """

    vocab_size: int
    max_len: int = 32
    n_layer: int = 2
    n_encoder_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    latent: int = 32
    latent_mode: str = "add"
    dropout: float = 0.0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    unk_id: int = 3
    dtype: str = "float32"

    def __post_init__(self):
        check_positive_fields("SentenceVAEConfig", self, ("vocab_size", "max_len", "n_layer",
                                                          "n_encoder_layer", "n_head", "n_embd",
                                                          "latent"))
        if self.latent_mode not in LATENT_MODES:
            raise ValueError(f"SentenceVAEConfig.latent_mode must be one of {LATENT_MODES}, "
                             f"got {self.latent_mode!r}")
        check_fraction("SentenceVAEConfig", "dropout", self.dropout)
        ids = [getattr(self, name) for name in _SPECIALS]
        for name, value in zip(_SPECIALS, ids):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or not 0 <= value < self.vocab_size:
                raise ValueError(f"SentenceVAEConfig.{name} must be a token id in [0, "
                                 f"vocab_size={self.vocab_size}), got {value!r}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"SentenceVAEConfig: pad_id, bos_id, eos_id and unk_id must be "
                             f"distinct, got {ids}")
        self.encoder_config()                 # refuse a bad shape (n_embd % n_head) now
        self.decoder_config()

    def encoder_config(self) -> TransformerEncoderConfig:
        return TransformerEncoderConfig(
            vocab_size=self.vocab_size, d_model=self.n_embd, n_head=self.n_head,
            n_layers=self.n_encoder_layer, d_ff=4 * self.n_embd, dropout=self.dropout,
            max_len=self.max_len, norm="pre", activation="gelu", positions="learned",
            tie_embeddings=True, dtype=self.dtype)

    def decoder_config(self) -> GPTConfig:
        prefix = self.latent_mode in ("prefix", "both")      # one more position: z's
        return GPTConfig(vocab_size=self.vocab_size, block_size=self.max_len + 1 + prefix,
                         n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
                         dropout=self.dropout, positions="learned", dtype=self.dtype)


def batch_ids(sequences, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Sentences (lists of ids) right-padded: ``(ids [B, T], lengths [B])``."""
    ids, mask = pad_sequences(sequences, pad_id)
    return ids, mask.sum(axis=1)


def decoder_io(ids: np.ndarray, lengths: np.ndarray, config: SentenceVAEConfig) -> tuple:
    """The decoder's inputs and targets for right-padded sentences ``ids [B, T]``:
    ``inputs [B, T+1] = [BOS, x_1 .. x_n, PAD ..]`` and ``targets [B, T+1] =
    [x_1 .. x_n, EOS, -100 ..]`` (padding counts for nothing)."""
    B, T = ids.shape
    real = np.arange(T)[None, :] < lengths[:, None]                       # [B, T]
    inputs = np.full((B, T + 1), config.pad_id, dtype=np.int64)
    inputs[:, 0] = config.bos_id
    inputs[:, 1:] = np.where(real, ids, config.pad_id)
    targets = np.full((B, T + 1), -100, dtype=np.int64)
    targets[:, :T] = np.where(real, ids, -100)
    targets[np.arange(B), lengths] = config.eos_id
    return inputs, targets


class SentenceVAE(Module):
    """``model(ids [B, T], lengths [B], *, eps=None) -> (logits [B, T+1, V], mu, logvar)``.

    `ids` are right-padded sentences with `lengths` real tokens each (None: all real);
    `eps` ``[B, Z]`` the standard-normal noise of the sample z (None: drawn from the
    model's generator; zeros: z = mu). The logits predict `decoder_io`'s targets from
    its inputs. `elbo` gives the per-sentence bound itself.
    """

    def __init__(self, config: SentenceVAEConfig, *, rng=None):
        super().__init__()
        if not isinstance(config, SentenceVAEConfig):
            raise TypeError(f"SentenceVAE takes a SentenceVAEConfig, got "
                            f"{type(config).__name__}")
        self.config = cfg = config
        self.rng = rng = as_generator(rng)              # init, dropout, and eps when not given
        dtype = np.dtype(cfg.dtype)
        C, Z = cfg.n_embd, cfg.latent
        self.encoder = TransformerEncoderModel(cfg.encoder_config(), rng=rng)
        self.to_mu = Linear(C, Z, rng=rng, dtype=dtype)
        self.to_logvar = Linear(C, Z, rng=rng, dtype=dtype)
        self.decoder = GPT(cfg.decoder_config(), rng=rng)
        add, prefix = cfg.latent_mode in ("add", "both"), cfg.latent_mode in ("prefix", "both")
        self.z_add = Linear(Z, C, rng=rng, dtype=dtype) if add else None
        self.z_prefix = Linear(Z, C, rng=rng, dtype=dtype) if prefix else None

    # ------------------------------------------------------------------ inputs
    def _check(self, ids, lengths) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if ids.ndim != 2 or ids.shape[1] == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"SentenceVAE: ids must be integer token ids [B, T] with T >= 1, "
                             f"got {ids.dtype} of shape {ids.shape}")
        B, T = ids.shape
        if T > cfg.max_len:
            raise ValueError(f"SentenceVAE: sentences of {T} tokens are longer than max_len="
                             f"{cfg.max_len}")
        if ids.size and (ids.min() < 0 or ids.max() >= cfg.vocab_size):
            raise ValueError(f"SentenceVAE: token ids must lie in [0, {cfg.vocab_size}), got "
                             f"[{ids.min()}, {ids.max()}]")
        if lengths is None:
            lengths = np.full(B, T)
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer) \
                or (lengths < 1).any() or (lengths > T).any():
            raise ValueError(f"SentenceVAE: lengths must be integers [B] = ({B},) in [1, "
                             f"T={T}], got {lengths!r:.80}")
        return ids.astype(np.int64, copy=False), lengths.astype(np.int64, copy=False)

    # ------------------------------------------------------------------ encoder
    def encode(self, ids, lengths=None) -> tuple[Tensor, Tensor]:
        """``ids [B, T]`` -> ``(mu, logvar)``, each ``[B, Z]``: q(z | x)'s parameters."""
        ids, lengths = self._check(ids, lengths)
        valid = np.arange(ids.shape[1])[None, :] < lengths[:, None]           # [B, T]
        hidden = self.encoder.encode(ids, valid)                              # [B, T, C]
        pooled = pool(hidden, valid, "mean")                                  # [B, C]
        return self.to_mu(pooled), self.to_logvar(pooled)

    # ------------------------------------------------------------------ decoder
    def decode(self, z, inputs) -> Tensor:
        """Logits ``[B, L, V]`` of the decoder reading `inputs` ``[B, L]`` (BOS first)
        given ``z [B, Z]``: position t predicts input t+1 (then EOS)."""
        z = z if isinstance(z, Tensor) else Tensor(np.asarray(z, dtype=self.config.dtype))
        inputs = np.asarray(inputs)
        B, L = inputs.shape
        if z.shape != (B, self.config.latent):
            raise ValueError(f"SentenceVAE.decode: z must be [B, Z] = {(B, self.config.latent)},"
                             f" got {z.shape}")
        x = self.decoder.token_embeddings(inputs)                             # [B, L, C]
        C = x.shape[-1]
        if self.z_add is not None:
            x = x + self.z_add(z).reshape(B, 1, C)                            # every position
        if self.z_prefix is not None:                                         # [B, 1 + L, C]
            x = concat([self.z_prefix(z).reshape(B, 1, C), x], axis=1)
        logits, _ = self.decoder(inputs_embeds=x)
        return logits[:, 1:] if self.z_prefix is not None else logits          # [B, L, V]

    def log_likelihood(self, z, ids, lengths=None) -> Tensor:
        """``log p(x | z)`` per sentence ``[B]``: the decoder's log-probabilities of every
        token and of the final EOS, summed."""
        ids, lengths = self._check(ids, lengths)
        inputs, targets = decoder_io(ids, lengths, self.config)
        logits = self.decode(z, inputs)
        return -F.cross_entropy(logits, targets, reduction="none").sum(axis=1)

    # ------------------------------------------------------------------ the model
    def sample_z(self, mu: Tensor, logvar: Tensor, eps=None) -> Tensor:
        """z = mu + exp(logvar / 2) eps, with `eps` drawn from the model's generator when
        None is given."""
        if eps is None:
            eps = self.rng.standard_normal(mu.shape).astype(mu.dtype)
        return F.reparameterize(mu, logvar, eps)

    def forward(self, ids, lengths=None, *, eps=None, inputs=None):
        """`inputs`: the decoder's inputs ``[B, T+1]`` when not `decoder_io`'s (word
        dropout changes them); the targets are always `decoder_io`'s."""
        ids, lengths = self._check(ids, lengths)
        mu, logvar = self.encode(ids, lengths)
        z = self.sample_z(mu, logvar, eps)
        if inputs is None:
            inputs, _ = decoder_io(ids, lengths, self.config)
        elif np.shape(inputs) != (ids.shape[0], ids.shape[1] + 1):
            raise ValueError(f"SentenceVAE: decoder inputs must be [B, T+1] = "
                             f"{(ids.shape[0], ids.shape[1] + 1)}, got {np.shape(inputs)}")
        return self.decode(z, inputs), mu, logvar

    def elbo(self, ids, lengths=None, *, eps=None) -> Tensor:
        """A one-sample estimate of the ELBO per sentence ``[B]`` (in nats):
        ``log p(x | z) - KL(q(z | x) || N(0, I))``, z = mu + sigma eps."""
        ids, lengths = self._check(ids, lengths)
        mu, logvar = self.encode(ids, lengths)
        z = self.sample_z(mu, logvar, eps)
        return self.log_likelihood(z, ids, lengths) - F.gaussian_kl(mu, logvar,
                                                                    reduction="none")

    def extra_repr(self) -> str:
        c = self.config
        return (f"latent={c.latent}, latent_mode={c.latent_mode}, n_embd={c.n_embd}, "
                f"encoder={c.n_encoder_layer} layers, decoder={c.n_layer} layers, "
                f"max_len={c.max_len}, vocab={c.vocab_size}")

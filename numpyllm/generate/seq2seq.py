"""Decoding with an encoder-decoder (`numpyllm.nn.Transformer`): greedy or sampled
(`generate_seq2seq`), and beam search (`beam_search`).

    src [B, S] --encoder (once)--> memory [B, S, C]
    [BOS] --decoder step (cross-attention K/V of memory: computed at the first step,
           then read from the cache; self-attention K/V: cached)--> next token ...

The target starts with `bos_id` and ends at `eos_id` or after `max_new_tokens`
tokens. The results are the generated tokens, BOS excluded, EOS included when the
sequence ended with it.

**Beam search** keeps the `beam_width` best partial translations by total log
probability. A finished hypothesis (one that produced EOS) is scored as Hugging Face's
``length_penalty`` does: ``score = sum of log-probabilities / length ** length_penalty``,
length counting the generated tokens, EOS included. ``length_penalty=0`` compares raw
log-probabilities (which favours short outputs), 1 the average per token, larger
values favour longer outputs still. (GNMT's ``((5 + length) / 6) ** α`` is a smoothed
variant of the same idea.) An example stops when it has `beam_width` finished
hypotheses and no running beam can still beat them: with ``early_stopping=False`` (the
default) that is decided with the exact bound (a running beam's log-probability can
only fall, its length can grow up to the limit: Hugging Face's
``early_stopping="never"``); ``early_stopping=True`` stops as soon as `beam_width`
hypotheses are finished. Beams still running at the length limit are scored as they
are. With ``beam_width=1``, beam search is greedy decoding when ``length_penalty=0``
or ``early_stopping=True``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..autograd import Tensor
from .decoding import count as _count, inference, last_logits
from .sampling import check_sampling, make_rng, sample
from .stopping import StopCriteria, _token_id

__all__ = ["generate_seq2seq", "beam_search", "Hypothesis"]


@dataclass
class Hypothesis:
    """One beam search output: the generated `tokens` (EOS included if it ended so),
    their total log-probability `logprob`, and the length-penalised `score`."""

    tokens: np.ndarray
    score: float
    logprob: float


# --------------------------------------------------------------------------- shared
def _source(model, src, src_mask, src_lengths) -> tuple:
    """``(single, src [B, S], mask or None, memory [B, S, C])``: the encoder run once."""
    arr = np.asarray(src.data if isinstance(src, Tensor) else src)
    single = arr.ndim == 1
    if single:
        arr = arr[None]
        src_mask = None if src_mask is None else np.asarray(src_mask)[None]
        src_lengths = None if src_lengths is None else np.atleast_1d(src_lengths)
    with inference(model):
        mask = model.source_mask(arr, src_mask, src_lengths)
        memory = model.encode(arr, mask)
    return single, arr, mask, memory


def _rows(a, index):
    """Rows `index` of an array or a Tensor's data (None stays None)."""
    if a is None:
        return None
    return (a.data if isinstance(a, Tensor) else a)[index]


class _Decoder:
    """The decoder side of one decoding: one new token per row and step, with the KV
    cache (the cross-attention keys and values are computed at the first step and
    kept), or recomputing the whole target each step (``use_cache=False``)."""

    def __init__(self, model, memory, mask, capacity: int, use_cache: bool):
        self.model, self.memory, self.mask = model, memory, mask
        self.cache = model.new_cache(capacity) if use_cache else None

    def logits(self, tgt: np.ndarray) -> np.ndarray:
        """Next-token logits ``[N, V]`` for targets ``tgt`` ``[N, L]`` (BOS first)."""
        with inference(self.model):
            if self.cache is not None:
                out = self.model.decode_cached(tgt[:, -1:], self.memory, self.cache, self.mask,
                                               last_only=True)
            else:
                out = self.model.decode(tgt, self.memory, self.mask,
                                        tgt_mask=np.ones(tgt.shape, dtype=bool))
        return last_logits(out)

    def reorder(self, index: np.ndarray, *, same_source: bool = False) -> None:
        """Keep rows `index`. ``same_source``: only beams of one source are permuted,
        so the encoder side needs no copy."""
        if self.cache is not None:
            self.cache.reorder(index, cross=not same_source)
        if not same_source:
            self.memory, self.mask = _rows(self.memory, index), _rows(self.mask, index)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# --------------------------------------------------------------------------- greedy / sampling
def generate_seq2seq(model, src, max_new_tokens: int, *, bos_id: int, eos_id=None,
                     stop=None, src_mask=None, src_lengths=None, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None,
                     greedy: bool = False, rng=None, use_cache: bool = True):
    """Greedy or sampled decoding of each source sentence: a 1-D `src` gives a 1-D array
    of generated tokens, a batch ``[B, S]`` a list of B arrays (each stops at its own
    EOS or stop sequence). Sampling and stopping arguments as for
    `numpyllm.generate.generate`; `src_mask` / `src_lengths` as for `Transformer`.

    >>> from numpyllm.nn import Transformer, TransformerConfig
    >>> cfg = TransformerConfig(11, 11, d_model=8, n_head=2, n_encoder_layers=1,
    ...                         n_decoder_layers=1, dropout=0.0)
    >>> out = generate_seq2seq(Transformer(cfg, rng=0), np.array([5, 6, 7]), 4, bos_id=1,
    ...                        greedy=True)
    >>> out.shape
    (4,)
    """
    max_new_tokens = _count("max_new_tokens", max_new_tokens, 0)
    check_sampling(temperature, top_k, top_p, greedy)
    bos_id = _token_id(bos_id, "bos_id")
    criteria = StopCriteria(eos_id, stop)
    rng = None if greedy else make_rng(rng)
    single, src, mask, memory = _source(model, src, src_mask, src_lengths)
    B = src.shape[0]
    decoder = _Decoder(model, memory, mask, max_new_tokens + 1, use_cache)
    tgt = np.full((B, 1), bos_id, dtype=np.int64)
    rows, generated = np.arange(B), [[] for _ in range(B)]
    for _ in range(max_new_tokens):
        tok = sample(decoder.logits(tgt), temperature=temperature, top_k=top_k, top_p=top_p,
                     greedy=greedy, rng=rng)
        for row, t in zip(rows.tolist(), tok.tolist()):
            generated[row].append(t)
        tgt = np.concatenate([tgt, tok[:, None]], axis=1)   # [N, L+1]: small, a few tokens
        done = criteria.update(tok, rows)
        if done.all():
            break
        if done.any():
            keep = np.flatnonzero(~done)
            rows, tgt = rows[keep], tgt[keep]
            decoder.reorder(keep)
    out = [np.array(g, dtype=np.int64) for g in generated]
    return out[0] if single else out


# --------------------------------------------------------------------------- beam search
def _bound(logprob: float, length: int, max_length: int, length_penalty: float) -> float:
    """The best score a running beam (total `logprob` after `length` tokens) could still
    reach: its log-probability can only fall, its length can grow up to max_length."""
    if length_penalty > 0:
        return logprob / max_length ** length_penalty
    return logprob / min(length + 1, max_length) ** length_penalty


def beam_search(model, src, *, bos_id: int, eos_id=None, beam_width: int = 4,
                max_new_tokens: int = 50, length_penalty: float = 1.0,
                early_stopping: bool = False, src_mask=None, src_lengths=None,
                use_cache: bool = True):
    """Beam search (see the module doc for the scoring and stopping rules).

    Returns, per source sentence, its finished hypotheses best first (at most
    `beam_width`, as `Hypothesis`): a list of such lists for a batch ``[B, S]``, one
    list for a 1-D `src`. ``result[0].tokens`` is the best output of a single source.

    All ``B × beam_width`` beams run as one batch; beams are reordered in the KV cache
    each step (the encoder side is computed once and never copied).

    >>> from numpyllm.nn import Transformer, TransformerConfig
    >>> cfg = TransformerConfig(11, 11, d_model=8, n_head=2, n_encoder_layers=1,
    ...                         n_decoder_layers=1, dropout=0.0)
    >>> hyps = beam_search(Transformer(cfg, rng=0), np.array([5, 6, 7]), bos_id=1,
    ...                    eos_id=2, beam_width=3, max_new_tokens=5)
    >>> len(hyps) <= 3, hyps[0].score >= hyps[-1].score
    (True, True)
    """
    W = _count("beam_width", beam_width)
    n = _count("max_new_tokens", max_new_tokens)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real) \
            or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    bos_id = _token_id(bos_id, "bos_id")
    eos = StopCriteria(eos_id).eos
    single, src, mask, memory = _source(model, src, src_mask, src_lengths)
    B = src.shape[0]
    beams = np.repeat(np.arange(B), W)                     # row -> its source sentence
    decoder = _Decoder(model, _rows(memory, beams), _rows(mask, beams), n + 1, use_cache)
    tgt = np.full((B * W, 1), bos_id, dtype=np.int64)
    logprob = np.full((B, W), -np.inf)
    logprob[:, 0] = 0.0                                    # one live beam at the start
    finished = [[] for _ in range(B)]
    done = np.zeros(B, dtype=bool)

    def score(lp: float, length: int) -> float:
        return lp / length ** length_penalty

    for step in range(n):
        length = step + 1                                  # generated tokens after this step
        logp = _log_softmax(decoder.logits(tgt))           # [B*W, V]
        V = logp.shape[-1]
        cand = (logprob[:, :, None] + logp.reshape(B, W, V)).reshape(B, W * V)
        k = min(2 * W, W * V)                              # enough for W that are not EOS
        top = np.argpartition(-cand, k - 1, axis=-1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(cand, top, -1), -1,
                                                 kind="stable"), -1)
        source = np.repeat(np.arange(B) * W, W)            # default: keep rows as they are
        source += np.tile(np.arange(W), B)
        new_tok = np.zeros(B * W, dtype=np.int64)
        new_lp = np.full((B, W), -np.inf)
        for b in np.flatnonzero(~done):
            kept = 0
            for rank, c in enumerate(top[b].tolist()):
                w, tok, lp = c // V, c % V, float(cand[b, c])
                if lp == -np.inf:
                    break
                if tok in eos:
                    if rank < W:                           # an EOS outside the top W is not
                        seq = np.append(tgt[b * W + w, 1:], tok)   # better than the beams
                        finished[b].append(Hypothesis(seq, score(lp, length), lp))
                    continue
                source[b * W + kept], new_tok[b * W + kept] = b * W + w, tok
                new_lp[b, kept] = lp
                kept += 1
                if kept == W:
                    break
            finished[b].sort(key=lambda h: -h.score)
            del finished[b][W:]
            best_running = new_lp[b].max()
            if best_running == -np.inf:                    # nothing left to extend
                done[b] = True
            elif len(finished[b]) == W:
                done[b] = early_stopping or \
                    finished[b][-1].score >= _bound(best_running, length, n, length_penalty)
        if done.all():
            break
        logprob = np.where(done[:, None], logprob, new_lp)
        tgt = np.concatenate([tgt[source], new_tok[:, None]], axis=1)
        decoder.reorder(source, same_source=True)
    else:                                                  # the length limit: score what runs
        for b in np.flatnonzero(~done):
            for w in range(W):
                if logprob[b, w] > -np.inf:
                    lp = float(logprob[b, w])
                    finished[b].append(Hypothesis(tgt[b * W + w, 1:].copy(), score(lp, n), lp))
            finished[b].sort(key=lambda h: -h.score)
            del finished[b][W:]
    return finished[0] if single else finished

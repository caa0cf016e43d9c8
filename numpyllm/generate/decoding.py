"""Autoregressive generation with a decoder-only model: predict a token, append it,
predict again, until an end token, a stop sequence or the length limit.

    prompt [B, T] --prefill (one pass, fills the KV cache)--> logits [B, V] --sample--> t
    t [B, 1]      --one step (reads and extends the cache)--> logits [B, V] --sample--> ...

**Prompts.** A 1-D prompt gives a 1-D result; a 2-D array ``[B, T]`` gives ``[B, T + n]``
(rows that stop early are filled with `pad_id` after their last token); a *list* of
prompts, of any lengths, gives a list of 1-D arrays, each exactly its prompt and its
continuation. Prompts of different lengths are left-padded into one batch; a key
padding mask hides the padding and each row's positions count its own tokens only, so
every row gets the tokens it would get alone (exactly so with greedy decoding).

**The KV cache** (``use_cache=True``, for models with ``forward_cached`` such as `GPT`):
the prompt is run once, then each step runs the new token only, reading the keys and
values of the earlier ones from the cache. ``use_cache=False`` recomputes the whole
context every step (the reference the cache is tested against; O(T²) in all).

**Context overflow.** A model with learned positions (GPT-2's ``wpe``) has none past
``block_size``: the context is then cropped to the last block_size tokens, as nanoGPT
does (with the cache: when the next position would be block_size, the cache is
prefilled again from the cropped window, so each later step costs a full window
forward; the tokens equal those of the recompute). Sinusoidal, RoPE and ALiBi positions
exist at any length, so those models keep the whole sequence as context and the cache
keeps growing.

The model runs in eval mode (no dropout) and under `no_grad` during each step; its mode
is restored after every step, so a paused stream leaves it as it was.
"""
from __future__ import annotations

import contextlib
import numbers

import numpy as np

from ..autograd import Tensor, no_grad
from .sampling import check_sampling, make_rng, sample
from .stopping import StopCriteria

__all__ = ["generate", "stream"]


# --------------------------------------------------------------------------- prompts
def count(name: str, value, minimum: int = 1) -> int:
    """`value` as an int >= minimum, or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_prompt(ids, what: str) -> np.ndarray:
    arr = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if arr.size == 0:                                # [] is float64: report it as empty
        return arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integer token ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)                      # a copy: the caller's array is left alone


def _prompts(ids) -> tuple:
    """``(kind, prompts)``: kind "single" (1-D), "array" ([B, T]) or "list" (a list of
    sequences); prompts a list of 1-D int64 arrays."""
    if isinstance(ids, (list, tuple)) and ids and not all(
            isinstance(x, numbers.Integral) for x in ids):
        return "list", [_as_prompt(row, f"prompt {i}") for i, row in enumerate(ids)]
    arr = _as_prompt(ids, "ids")
    if arr.ndim == 1:
        return "single", [arr]
    if arr.ndim == 2:
        return "array", list(arr)
    raise ValueError(f"ids must be a prompt [T], a batch [B, T] or a list of prompts; got "
                     f"shape {arr.shape}")


def _check_prompts(prompts: list, vocab_size) -> None:
    if not prompts:
        raise ValueError("no prompts given")
    for i, p in enumerate(prompts):
        if p.ndim != 1 or len(p) == 0:
            raise ValueError(f"prompt {i} is empty (shape {p.shape}): generation needs at least "
                             "one token to continue (a BOS or a line break, say)")
        if vocab_size is not None and (p.min() < 0 or p.max() >= vocab_size):
            bad = int(p.min() if p.min() < 0 else p.max())
            raise ValueError(f"prompt {i}: token id {bad} is outside the model's vocabulary "
                             f"[0, {vocab_size})")


def _context_window(model):
    """How many tokens the model can see: block_size for learned positions (or a model
    that says nothing about its positions), None (unlimited) for the other schemes."""
    cfg = getattr(model, "config", None)
    block = getattr(cfg, "block_size", None)
    if block is None or getattr(cfg, "positions", "learned") in ("sinusoidal", "rope", "alibi"):
        return None
    return int(block)


@contextlib.contextmanager
def inference(model):
    """no_grad, and eval mode (dropout off) for the duration; the mode is restored."""
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    try:
        with no_grad():
            yield
    finally:
        if was_training:
            model.train(True)


def last_logits(out) -> np.ndarray:
    """The last position's logits ``[B, V]`` from a model's output: logits ``[B, T, V]``
    (Tensor or array), or a tuple whose first item they are."""
    if isinstance(out, tuple):
        out = out[0]
    out = out.data if isinstance(out, Tensor) else np.asarray(out)
    return out[:, -1, :]


# --------------------------------------------------------------------------- the loop
class _Run:
    """One generation: the token buffer (left-padded prompts, then the new tokens), the
    cache, the rows still running, and what each row generated."""

    def __init__(self, model, kind, prompts, max_new_tokens, sampling, criteria, rng,
                 use_cache, pad_id, prefix=False):
        self.model, self.kind, self.prompts = model, kind, prompts
        self.prefix = prefix                     # the prompt is read both ways (prefill)
        self.n, self.sampling, self.criteria, self.rng = max_new_tokens, sampling, criteria, rng
        self.use_cache = use_cache and hasattr(model, "forward_cached")
        self.pad_id = pad_id
        self.window = _context_window(model)
        lengths = np.array([len(p) for p in prompts])
        B, T0 = len(prompts), int(lengths.max())
        self.tokens = np.zeros((B, T0 + max_new_tokens), dtype=np.int64)
        self.valid = None
        if (lengths < T0).any():
            self.valid = np.ones(self.tokens.shape, dtype=bool)
            for b, p in enumerate(prompts):
                self.valid[b, :T0 - len(p)] = False
        for b, p in enumerate(prompts):
            self.tokens[b, T0 - len(p):T0] = p
        self.length = T0
        self.rows = np.arange(B)                 # original index of each row still running
        self.generated = [[] for _ in range(B)]
        self.cache = None

    # ---------------------------------------------------------------- the model
    def _window(self) -> tuple:
        """The context ``(ids, valid)`` to run in full: the whole sequence, or its last
        window tokens; columns that are padding in every row are dropped."""
        L = self.length
        start = 0 if self.window is None else max(0, L - self.window)
        if self.valid is not None:
            live = self.valid[:, start:L].any(axis=0)
            start += int(np.argmax(live))
            valid = self.valid[:, start:L]
            return self.tokens[:, start:L], (None if valid.all() else valid)
        return self.tokens[:, start:L], None

    def _next_logits(self) -> np.ndarray:
        model = self.model
        with inference(model):
            if not self.use_cache:
                ids, valid = self._window()
                if valid is None:
                    return last_logits(model(ids))
                if not hasattr(model, "forward_cached"):
                    raise ValueError("prompts of different lengths need a model with "
                                     "forward_cached (a padding-aware forward)")
                scratch = model.new_cache(ids.shape[1])      # one full pass, thrown away
                return last_logits(model.forward_cached(ids, scratch, key_padding_mask=valid,
                                                        last_only=True))
            cache = self.cache
            if cache is None or (self.window is not None and cache.seen.max() >= self.window):
                ids, valid = self._window()                  # prefill, or re-prefill a crop
                options = {}
                if cache is None:
                    cache = self.cache = model.new_cache(
                        self.tokens.shape[1] - self.length + ids.shape[1])
                    if self.prefix:                          # the prompt, read both ways
                        options["prefix"] = True
                else:
                    cache.reset()                            # its buffers are reused
                out = model.forward_cached(ids, cache, key_padding_mask=valid, last_only=True,
                                           **options)
            else:                                            # one new token per row
                out = model.forward_cached(self.tokens[:, self.length - 1:self.length], cache,
                                           last_only=True)
            return last_logits(out)

    def _keep(self, keep: np.ndarray) -> None:
        """Drop the finished rows from the batch (and from the cache)."""
        self.rows, self.tokens = self.rows[keep], self.tokens[keep]
        if self.valid is not None:
            self.valid = self.valid[keep]
        if self.cache is not None:
            self.cache.reorder(np.flatnonzero(keep))

    def steps(self):
        """Yield ``(rows, tokens)`` once per step: the new token of each running row."""
        for _ in range(self.n):
            tok = sample(self._next_logits(), rng=self.rng, **self.sampling)
            self.tokens[:, self.length] = tok
            self.length += 1
            for row, t in zip(self.rows.tolist(), tok.tolist()):
                self.generated[row].append(t)
            done = self.criteria.update(tok, self.rows)
            yield self.rows, tok
            if done.all():
                return
            if done.any():
                self._keep(~done)

    # ---------------------------------------------------------------- results
    def result(self):
        seqs = [np.concatenate([p, np.array(g, dtype=np.int64)])
                for p, g in zip(self.prompts, self.generated)]
        if self.kind == "single":
            return seqs[0]
        if self.kind == "list":
            return seqs
        out = np.full((len(seqs), max(len(s) for s in seqs)), self.pad_id, dtype=np.int64)
        for b, s in enumerate(seqs):
            out[b, :len(s)] = s
        return out


def _start(model, ids, max_new_tokens, temperature, top_k, top_p, greedy, eos_id, stop, rng,
           use_cache, pad_id, prefix=False) -> _Run:
    """Check everything (before any work, so a stream fails at once) and set up a run."""
    max_new_tokens = count("max_new_tokens", max_new_tokens, 0)
    check_sampling(temperature, top_k, top_p, greedy)
    kind, prompts = _prompts(ids)
    _check_prompts(prompts, getattr(getattr(model, "config", None), "vocab_size", None))
    if isinstance(pad_id, bool) or not isinstance(pad_id, numbers.Integral):
        raise ValueError(f"pad_id must be an integer, got {pad_id!r}")
    if prefix and not (use_cache and hasattr(model, "forward_cached")):
        raise ValueError("prefix=True (the prompt read both ways) needs the KV cache: "
                         "use_cache=True and a model with forward_cached")
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    return _Run(model, kind, prompts, max_new_tokens, sampling,
                StopCriteria(eos_id, stop), None if greedy else make_rng(rng), use_cache,
                int(pad_id), bool(prefix))


# --------------------------------------------------------------------------- public
def generate(model, ids, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
             eos_id=None, stop=None, rng=None, use_cache: bool = True, pad_id: int = -1,
             prefix: bool = False):
    """Continue `ids` by up to `max_new_tokens` tokens; returns new arrays (the caller's
    are never modified).

    - `ids`: a prompt ``[T]`` -> ``[T + n]``; a batch ``[B, T]`` -> ``[B, T + n]``; or a
      list of prompts of any lengths -> a list of 1-D arrays (see the module doc).
    - Sampling: `greedy`, or `temperature`, `top_k`, `top_p` applied in that order
      (see `numpyllm.generate.sampling`). `rng`: an np.random.Generator or an int seed
      (None: unseeded); a seeded rng gives the same tokens every time.
    - Stopping: `eos_id` (an id or a collection of ids) or any of the token-id sequences
      in `stop` ends a row, the end token or sequence included; n = max_new_tokens
      otherwise. Rows of a ``[B, T]`` batch that end early are filled with `pad_id`
      (-1 by default: not a token, so ``row[row >= 0]`` is the sequence).
    - `use_cache`: prefill once, then one token per step (see the module doc).
    - `prefix`: the prompt is a prefix read both ways, as a prefix decoder (a GPT trained
      with the prefix-LM objective) expects; the new tokens follow causally. Needs the
      cache; a crop past a learned-position model's block_size re-reads causally.

    >>> import numpy as np
    >>> from numpyllm.nn import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8),
    ...             rng=np.random.default_rng(0))
    >>> out = generate(model, np.array([1, 2, 3]), 4, top_k=5, rng=np.random.default_rng(0))
    >>> out.shape, out[:3].tolist()
    ((7,), [1, 2, 3])
    >>> [len(s) for s in generate(model, [[1], [1, 2, 3]], 2, greedy=True)]
    [3, 5]
    """
    run = _start(model, ids, max_new_tokens, temperature, top_k, top_p, greedy, eos_id, stop,
                 rng, use_cache, pad_id, prefix)
    for _ in run.steps():
        pass
    return run.result()


def stream(model, ids, max_new_tokens: int, *, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
           eos_id=None, stop=None, rng=None, use_cache: bool = True, pad_id: int = -1,
           prefix: bool = False):
    """`generate` as an iterator over the new tokens, each yielded as soon as it is
    sampled. A 1-D prompt yields ints; a batch yields int64 arrays ``[B]``, with `pad_id`
    for rows that have already stopped. The arguments are checked at once (not at the
    first ``next``). Stop iterating (or ``close()``) to stop generating.

    >>> import numpy as np
    >>> from numpyllm.nn import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8),
    ...             rng=np.random.default_rng(0))
    >>> tokens = list(stream(model, [1, 2, 3], 4, greedy=True))
    >>> tokens == generate(model, [1, 2, 3], 4, greedy=True)[3:].tolist()
    True
    """
    run = _start(model, ids, max_new_tokens, temperature, top_k, top_p, greedy, eos_id, stop,
                 rng, use_cache, pad_id, prefix)
    if run.kind == "single":
        return (int(tok[0]) for _, tok in run.steps())
    return _batched(run.steps(), len(run.prompts), run.pad_id)


def _batched(steps, B: int, pad_id: int):
    for rows, tok in steps:
        out = np.full(B, pad_id, dtype=np.int64)
        out[rows] = tok
        yield out

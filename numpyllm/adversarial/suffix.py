"""An adversarial suffix: the problem GCG and its random-search baseline both solve, and
the search loop they share (they differ only in how they propose candidates).

Given a prompt x_P (ids ``[P]``), a suffix s of k tokens and a target continuation y
(ids ``[m]``), the model reads

    prompt ⊕ suffix ⊕ target[:-1]        [P + k + m - 1] ids

and the loss is the target's mean cross-entropy given everything before it,

    L(s) = -(1/m) Σ_j log p(y_j | x_P ⊕ s ⊕ y_<j)

(the positions P+k-1 .. P+k+m-2 predict y_1 .. y_m). The attack succeeds when the model,
fed ``prompt ⊕ suffix``, generates y greedily: with teacher forcing, the argmax at every
target position is the target token (the same thing, since greedy decoding then writes
exactly y_<j before position j). Both are read off one forward pass, so a batch of N
candidate suffixes costs one batched forward of N rows, with no graph.

    >>> import numpy as np
    >>> from numpyllm.nn.gpt import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8), rng=0)
    >>> task = SuffixTask(model, prompt=[1, 2], target=[3, 4, 5], k=4)
    >>> losses, success = task.evaluate(np.array([[6, 6, 6, 6], [7, 8, 9, 10]]))
    >>> losses.shape, success.shape                  # one loss per candidate suffix
    ((2,), (2,))
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .input_grad import input_gradient, one_hot_gradient, token_table

__all__ = ["SuffixTask", "AttackResult", "allowed_tokens", "search"]


def allowed_tokens(vocab_size: int, forbid_ids=(), *, tokenizer=None, forbid_chars: str = "",
                   printable: bool = False) -> np.ndarray:
    """Bool ``[V]``: the tokens an attack may put in the suffix.

    Forbidden: the ids in `forbid_ids`; with a `tokenizer`, its special tokens, every token
    whose text holds one of `forbid_chars`, and (``printable=True``) every token whose text
    is empty or not printable (``str.isprintable``: no line break, tab or control
    character). Token ids the tokenizer does not know (a vocabulary padded past it) are
    forbidden too: they have no text."""
    allowed = np.ones(int(vocab_size), dtype=bool)
    forbid = np.asarray(list(forbid_ids), dtype=np.int64)
    if forbid.size and (forbid.min() < 0 or forbid.max() >= vocab_size):
        bad = int(forbid.min() if forbid.min() < 0 else forbid.max())
        raise ValueError(f"allowed_tokens: forbidden id {bad} is outside the vocabulary "
                         f"[0, {vocab_size})")
    allowed[forbid] = False
    if tokenizer is None:
        if forbid_chars or printable:
            raise ValueError("allowed_tokens: forbid_chars and printable need the tokenizer")
        return allowed
    for i in (getattr(tokenizer, "special_tokens", None) or {}).values():
        if 0 <= i < vocab_size:
            allowed[i] = False
    n_tokens = min(int(getattr(tokenizer, "vocab_size", vocab_size)), int(vocab_size))
    allowed[n_tokens:] = False
    if forbid_chars or printable:
        for i in np.flatnonzero(allowed):
            text = tokenizer.decode([int(i)])
            unprintable = printable and not (text and text.isprintable())
            if unprintable or any(c in text for c in forbid_chars):
                allowed[i] = False
    return allowed


@dataclass
class AttackResult:
    """What an attack found. `suffix` ``[k]`` is the best suffix seen (lowest loss, or the
    first to succeed); `history` has one row per step (the start is step 0):
    ``evaluations`` used so far, the ``loss`` of the current suffix, the ``best`` so far."""

    method: str
    suffix: np.ndarray
    loss: float
    success: bool
    evaluations: int
    steps: int
    history: dict = field(default_factory=dict)
    start_loss: float = float("nan")
    text: str | None = None           # the suffix decoded, when a tokenizer was given

    def to_dict(self) -> dict:
        return {"method": self.method, "suffix_ids": self.suffix.tolist(), "suffix": self.text,
                "loss": self.loss, "start_loss": self.start_loss, "success": self.success,
                "evaluations": self.evaluations, "steps": self.steps,
                "history": {k: list(v) for k, v in self.history.items()}}


class SuffixTask:
    """The model, prompt, target and suffix length of one attack, checked once.

    `model`: a decoder with ``token_embeddings``, ``hidden_states`` and ``head`` (a GPT or
    a Llama). `allowed`: bool ``[V]`` (default: every token). Errors (ValueError) for an
    empty target, k < 1, ids outside the vocabulary, a sequence longer than the model's
    block_size, an allowed set of fewer than 2 tokens."""

    def __init__(self, model, prompt, target, k: int, allowed=None, *, chunk: int = 256):
        for name in ("token_embeddings", "hidden_states", "head"):
            if not hasattr(model, name):
                raise TypeError(f"a suffix attack needs a language model (GPT, Llama); "
                                f"{type(model).__name__} has no {name}")
        cfg = model.config
        self.model, self.V = model, int(cfg.vocab_size)
        self.prompt = self._ids(prompt, "prompt")
        self.target = self._ids(target, "target")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"the suffix length k must be an integer >= 1, got {k!r}")
        if self.target.size == 0:
            raise ValueError("the target is empty: give at least one token to aim for")
        self.k, self.P, self.m = int(k), self.prompt.size, self.target.size
        self.T = self.P + self.k + self.m - 1     # the model never reads the last target token
        if self.T > cfg.block_size:
            raise ValueError(f"prompt ({self.P}) + suffix ({self.k}) + target ({self.m}) tokens "
                             f"make the model read {self.T}, more than its block_size "
                             f"{cfg.block_size}: shorten one of them")
        allowed = np.ones(self.V, bool) if allowed is None else np.asarray(allowed)
        if allowed.dtype != bool or allowed.shape != (self.V,):
            raise ValueError(f"allowed must be a bool array [{self.V}] (the vocabulary), got "
                             f"{allowed.dtype} {allowed.shape}")
        if allowed.sum() < 2:
            raise ValueError(f"the forbidden tokens leave {int(allowed.sum())} of {self.V} "
                             "allowed: a suffix search needs at least 2 to choose from")
        self.allowed = allowed.copy()
        self.allowed_ids = np.flatnonzero(allowed)                        # [n], sorted
        self.chunk = int(chunk)
        self.first = self.P + self.k - 1           # the position that predicts target[0]
        self._table = None                         # E [V, C], read on the first gradient

    def _ids(self, ids, name: str) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.size == 0:
            return np.zeros(0, np.int64)
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1:
            raise ValueError(f"the {name} must be a 1-D array of token ids, got {ids.dtype} "
                             f"{ids.shape}")
        if ids.min() < 0 or ids.max() >= self.V:
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise ValueError(f"the {name} holds token id {bad}, outside the vocabulary "
                             f"[0, {self.V})")
        return ids.astype(np.int64)

    def check_suffixes(self, suffixes, name: str = "suffix") -> np.ndarray:
        """`suffixes` as int64 ``[N, k]`` of allowed tokens (``[k]`` becomes one row)."""
        s = np.asarray(suffixes)
        s = s[None] if s.ndim == 1 else s
        if s.ndim != 2 or s.shape[1] != self.k or not np.issubdtype(s.dtype, np.integer):
            raise ValueError(f"a {name} must be {self.k} token ids, got {s.dtype} {s.shape}")
        if s.min() < 0 or s.max() >= self.V or not self.allowed[s].all():
            bad = s[(s < 0) | (s >= self.V)] if ((s < 0) | (s >= self.V)).any() else \
                s[~self.allowed[s]]
            raise ValueError(f"the {name} holds token id {int(bad[0])}, outside the vocabulary "
                             f"or forbidden")
        return s.astype(np.int64)

    def sequences(self, suffixes: np.ndarray) -> np.ndarray:
        """``[N, k]`` -> what the model reads, ``prompt ⊕ suffix ⊕ target[:-1]`` ``[N, T]``."""
        N = len(suffixes)
        return np.concatenate([np.broadcast_to(self.prompt, (N, self.P)), suffixes,
                               np.broadcast_to(self.target[:-1], (N, self.m - 1))], axis=1)

    def targets(self) -> np.ndarray:
        """``[T]``: the target token at the positions that predict it, -100 elsewhere."""
        y = np.full(self.T, -100, np.int64)
        y[self.first:] = self.target
        return y

    def evaluate(self, suffixes) -> tuple:
        """``(losses [N], success [N])`` of candidate suffixes ``[N, k]``, exactly and without
        a graph: the loss is L(s) above, in float64 from the model's logits; success that the
        argmax is the target at every target position. Runs `chunk` rows at a time."""
        from ..autograd import no_grad
        s = self.check_suffixes(suffixes, "candidate")
        losses, success = np.empty(len(s)), np.empty(len(s), bool)
        rows = np.arange(self.m)
        with no_grad():
            for a in range(0, len(s), self.chunk):
                ids = self.sequences(s[a:a + self.chunk])                     # [n, T]
                h = self.model.hidden_states(ids)                             # [n, T, C]
                # only the m positions that predict the target go through the head
                z = self.model.head(h[:, self.first:]).data.astype(np.float64)  # [n, m, V]
                z -= z.max(axis=-1, keepdims=True)
                logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))     # log-softmax
                losses[a:a + len(ids)] = -logp[:, rows, self.target].mean(axis=1)
                success[a:a + len(ids)] = (z.argmax(axis=-1) == self.target).all(axis=1)
        return losses, success

    def one_hot_gradient(self, suffix) -> tuple:
        """``(L(s), ∂L/∂onehot(s) [k, V])``: the gradient with respect to every token choice
        at each suffix position (`numpyllm.adversarial.input_grad`), from one forward and
        backward pass of the single sequence."""
        s = self.check_suffixes(suffix)
        ids, y = self.sequences(s), self.targets()[None]                     # [1, T], [1, T]
        model = self.model
        loss, grad = input_gradient(model, ids, lambda e: model(inputs_embeds=e, targets=y)[1])
        if self._table is None:
            self._table = token_table(model)                                  # [V, C]
        return loss, one_hot_gradient(grad[0, self.P:self.P + self.k], self._table)  # [k, V]


def _round_trips(tokenizer, suffixes: np.ndarray) -> np.ndarray:
    """Bool ``[N]``: decoding the suffix and encoding the text again gives the same ids
    (a suffix that does not would be a different attack once written down as text)."""
    encode = getattr(tokenizer, "encode_ordinary", tokenizer.encode)
    keep = np.empty(len(suffixes), bool)
    for i, s in enumerate(suffixes):
        try:
            keep[i] = list(encode(tokenizer.decode(s.tolist()))) == s.tolist()
        except Exception:           # noqa: BLE001 (a text the tokenizer refuses: not kept)
            keep[i] = False
    return keep


def _draw_start(task: SuffixTask, rng: np.random.Generator, tokenizer,
                tries: int = 1000) -> np.ndarray:
    """k allowed tokens drawn from `rng`; with a `tokenizer`, drawn again until they round-
    trip. A start that does not round-trip could leave the search sitting there: a
    candidate changes one token, so unless it breaks the offending pair the check still
    fails and the candidate is dropped ("th" "e" reads back as "the"; a quarter of random
    10-token suffixes of a 4,096-token BPE fail). A character tokenizer takes the first
    draw, as before."""
    for _ in range(tries):
        suffix = rng.choice(task.allowed_ids, size=task.k)
        if tokenizer is None or _round_trips(tokenizer, suffix[None])[0]:
            return suffix
    raise ValueError(f"no random suffix of {task.k} allowed tokens in {tries} draws reads back "
                     "as the same ids through the tokenizer: give a starting suffix (init=) "
                     "that does, or allow fewer tokens")


def search(task: SuffixTask, propose, *, method: str, steps: int, batch: int, rng=None,
           init=None, accept: str = "best", tokenizer=None, on_step=None) -> AttackResult:
    """The loop both attacks share: `steps` rounds of `propose(task, suffix, batch, rng) ->
    candidates [≤ batch, k]`, every candidate evaluated exactly (`SuffixTask.evaluate`),
    until one makes the model generate the target greedily or the steps run out.

    - `init`: the starting suffix ``[k]`` (default: k allowed tokens drawn from `rng`;
      with a `tokenizer`, drawn again until the suffix round-trips through it).
    - `accept`: ``"best"`` moves to the best candidate of each round even when it is worse
      than the current suffix (Zou et al.'s Algorithm 1: x ← x̃^(b*)); ``"improve"``
      keeps the current suffix unless a candidate lowers its loss. Either way the result
      is the best suffix seen.
    - `tokenizer`: when given, candidates that do not round-trip through it (decode, then
      encode, gives other ids) are dropped before evaluation, as the paper's code does.
    - Evaluations: the start is one, each candidate evaluated is one (GCG's gradient, one
      forward and backward of a single row per step, is not counted).
    - `on_step(step, result)`: called after each step (progress; the result so far).
    """
    if accept not in ("best", "improve"):
        raise ValueError(f"accept must be 'best' or 'improve', got {accept!r}")
    for name, value, low in (("steps", steps, 0), ("batch", batch, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    rng = np.random.default_rng(rng)
    was_training = getattr(task.model, "training", False)
    task.model.eval()                     # dropout off: every evaluation is exact
    try:
        return _search(task, propose, method, steps, batch, rng, init, accept, tokenizer,
                       on_step)
    finally:
        if was_training:
            task.model.train(True)


def _search(task, propose, method, steps, batch, rng, init, accept, tokenizer, on_step):
    if init is None:
        suffix = _draw_start(task, rng, tokenizer)
    else:
        suffix = task.check_suffixes(init, "starting suffix")[0]
    losses, success = task.evaluate(suffix[None])
    current = best = float(losses[0])
    best_suffix, won = suffix.copy(), bool(success[0])
    result = AttackResult(method, best_suffix, best, won, 1, 0, start_loss=best,
                          history={"evaluations": [1], "loss": [current], "best": [best]})
    step = 0
    while step < steps and not result.success:
        step += 1
        candidates = propose(task, suffix, batch, rng)                        # [B, k]
        if tokenizer is not None:
            candidates = candidates[_round_trips(tokenizer, candidates)]
        if len(candidates):
            losses, success = task.evaluate(candidates)
            result.evaluations += len(candidates)
            # a candidate that wins ends the search; else the lowest loss
            pool = np.flatnonzero(success) if success.any() else np.arange(len(losses))
            b = pool[np.argmin(losses[pool])]
            if accept == "best" or losses[b] < current or success[b]:
                suffix, current = candidates[b].copy(), float(losses[b])
            if success[b] or losses[b] < result.loss:
                result.suffix, result.loss = candidates[b].copy(), float(losses[b])
                result.success = bool(success[b])
        result.steps = step
        for key, value in (("evaluations", result.evaluations), ("loss", current),
                           ("best", result.loss)):
            result.history[key].append(value)
        if on_step is not None:
            on_step(step, result)
    if tokenizer is not None:
        result.text = tokenizer.decode(result.suffix.tolist())
    return result

"""GCG, greedy coordinate gradient (Zou et al. 2023, "Universal and Transferable Adversarial
Attacks on Aligned Language Models", Algorithm 1): a suffix of k tokens that makes a
language model continue a prompt with a chosen target.

Each step, at the current suffix s (the loss L and the rest are in `suffix.py`):

1. the one-hot gradient ``G = ∂L/∂onehot(s) [k, V]`` (one forward and backward pass);
   ``G[i, v] - G[i, s_i]`` is the first-order estimate of the change in L when token i
   becomes v, so the most negative entries are the most promising swaps;
2. the top-k candidates per position, ``X_i = top-k(-G[i])``, among the allowed tokens
   (never the current one: a candidate always changes the suffix);
3. B candidate suffixes, each s with one position i ~ Uniform(1..k) swapped to a token
   ~ Uniform(X_i);
4. all B evaluated exactly in one batched forward pass, and the best kept (Algorithm 1
   moves to it even when it is worse than s; ``accept="improve"`` keeps s instead).

The gradient only proposes; the exact evaluation decides, so a poor first-order estimate
costs evaluations, never correctness. `random_search.py` is the same loop with uniformly
random swaps: what the gradient is worth at an equal number of evaluations.

    >>> import numpy as np
    >>> from numpyllm.nn.gpt import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8), rng=0)
    >>> r = gcg(model, prompt=[1, 2], target=[3, 4], k=3, steps=5, batch=8, topk=4, rng=0)
    >>> r.loss <= r.start_loss, r.suffix.shape, r.evaluations <= 1 + 5 * 8
    (True, (3,), True)
"""
from __future__ import annotations

import numpy as np

from .suffix import AttackResult, SuffixTask, search

__all__ = ["gcg", "gcg_candidates"]


def gcg_candidates(grad: np.ndarray, suffix: np.ndarray, allowed: np.ndarray, topk: int,
                   batch: int, rng: np.random.Generator) -> np.ndarray:
    """``[batch, k]``: `suffix` ``[k]`` with one uniformly random position i swapped to a
    uniformly random one of the `topk` allowed tokens of most negative ``grad[i]``
    (``grad`` ``[k, V]``, the one-hot gradient), never the current token."""
    k = len(suffix)
    scores = np.where(allowed, grad, np.inf)                              # [k, V]
    scores[np.arange(k), suffix] = np.inf                                 # not the current one
    n = min(int(topk), int(allowed.sum()) - 1)     # each row has this many finite scores
    top = np.argsort(scores, axis=1, kind="stable")[:, :n]                # [k, n], best first
    pos = rng.integers(0, k, batch)                                       # [B]
    pick = rng.integers(0, n, batch)                                      # [B]
    candidates = np.repeat(suffix[None], batch, axis=0)                   # [B, k]
    candidates[np.arange(batch), pos] = top[pos, pick]
    return candidates


def gcg(model, prompt, target, k: int = 10, *, steps: int = 100, batch: int = 64,
        topk: int = 16, allowed=None, rng=None, init=None, accept: str = "best",
        tokenizer=None, on_step=None) -> AttackResult:
    """Search for a suffix of `k` tokens after `prompt` (ids ``[P]``) that makes `model` (a
    GPT or a Llama) generate `target` (ids ``[m]``) greedily. At most `steps` steps of
    `batch` candidates each, proposed from the `topk` best tokens per position; `allowed`
    (bool ``[V]``, see `allowed_tokens`) limits the tokens a suffix may hold. `rng`: a seed
    or Generator (same seed, same result). See `suffix.search` for `init`, `accept`,
    `tokenizer` and `on_step`."""
    if not isinstance(topk, (int, np.integer)) or isinstance(topk, bool) or topk < 1:
        raise ValueError(f"topk must be an integer >= 1, got {topk!r}")
    task = SuffixTask(model, prompt, target, k, allowed)

    def propose(task, suffix, batch, rng):
        _, grad = task.one_hot_gradient(suffix)                           # [k, V]
        return gcg_candidates(grad, suffix, task.allowed, topk, batch, rng)

    return search(task, propose, method="gcg", steps=steps, batch=batch, rng=rng, init=init,
                  accept=accept, tokenizer=tokenizer, on_step=on_step)

"""The baseline for GCG: the same search with the gradient taken out. Each step proposes
B single-token swaps of the current suffix, each at a uniformly random position to a
uniformly random allowed token (never the current one), evaluates them exactly, and keeps
the best (`suffix.search`, the loop GCG uses too). With the same steps and batch it spends
the same number of evaluations as GCG, so any gap between them is what the gradient's
proposals are worth.

    >>> import numpy as np
    >>> from numpyllm.nn.gpt import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8), rng=0)
    >>> r = random_search(model, prompt=[1, 2], target=[3, 4], k=3, steps=5, batch=8, rng=0)
    >>> r.method, r.loss <= r.start_loss
    ('random', True)
"""
from __future__ import annotations

import numpy as np

from .suffix import AttackResult, SuffixTask, search

__all__ = ["random_search", "random_candidates"]


def random_candidates(suffix: np.ndarray, allowed_ids: np.ndarray, batch: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``[batch, k]``: `suffix` ``[k]`` with one uniformly random position swapped to a
    uniformly random token of `allowed_ids` (sorted ``[n]``) other than the current one."""
    k, n = len(suffix), len(allowed_ids)
    pos = rng.integers(0, k, batch)                                       # [B]
    # draw among the n - 1 others: an index at or past the current token's moves up one
    r = rng.integers(0, n - 1, batch)                                     # [B]
    current = np.searchsorted(allowed_ids, suffix[pos])                   # [B]
    r += r >= current
    candidates = np.repeat(suffix[None], batch, axis=0)                   # [B, k]
    candidates[np.arange(batch), pos] = allowed_ids[r]
    return candidates


def random_search(model, prompt, target, k: int = 10, *, steps: int = 100, batch: int = 64,
                  allowed=None, rng=None, init=None, accept: str = "best", tokenizer=None,
                  on_step=None) -> AttackResult:
    """`gcg`'s arguments (no `topk`), the same budget, uniformly random swaps."""
    task = SuffixTask(model, prompt, target, k, allowed)

    def propose(task, suffix, batch, rng):
        return random_candidates(suffix, task.allowed_ids, batch, rng)

    return search(task, propose, method="random", steps=steps, batch=batch, rng=rng,
                  init=init, accept=accept, tokenizer=tokenizer, on_step=on_step)

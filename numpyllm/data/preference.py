"""Preference data: a prompt and two responses to it, the chosen and the rejected one.

The file format is the LLMs-from-scratch book's (chapter 7, the DPO notebook): a JSON list
of objects with the string fields ``instruction``, ``input`` (may be empty), ``chosen``
and ``rejected`` (an ``output`` field, the SFT answer, is allowed and not used here).
The prompt is the Alpaca format; the ``### Input:`` section is left out when the input
is empty, as the book does:

    Below is an instruction that describes a task. Write a response that appropriately
    completes the request.

    ### Instruction:
    {instruction}

    ### Input:
    {input}

    ### Response:
    {response}

A tokenised pair is three id arrays: the prompt, and each response (with `eos_id`
appended when given). `collate_preferences` stacks rows ``prompt + response`` padded on
the right, with a mask that is True at the response tokens only: the tokens whose
log-probabilities DPO compares (`numpyllm.training.objectives.dpo`).

**Truncation** (rows longer than `max_length` tokens): the response keeps at least half
of the room, the prompt at most the rest; the prompt loses its *beginning* (its end,
``### Response:``, is what the answer follows) and a response its *end*. Both responses
of a pair keep the same prompt tokens.

>>> ex = {"instruction": "Add 2 and 3.", "input": "", "chosen": "5", "rejected": "6"}
>>> print(alpaca_prompt(ex))
Below is an instruction that describes a task. Write a response that appropriately completes the request.
<BLANKLINE>
### Instruction:
Add 2 and 3.
<BLANKLINE>
### Response:
<BLANKLINE>
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from .instruction import alpaca_prompt, split_examples
from .padding import pad_sequences

__all__ = ["read_preference_json", "PreferencePairs", "tokenize_preferences",
           "collate_preferences"]

_FIELDS = ("instruction", "input", "chosen", "rejected")


def read_preference_json(path: str | os.PathLike) -> list[dict]:
    """The examples of a preference JSON file, each checked: a list of objects whose
    ``instruction``, ``chosen`` and ``rejected`` are non-empty strings and ``input`` a
    string (``output``, when present, a string too). A ValueError names the file, the
    example's index and the field."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    except RecursionError:                 # "[[[[..." nested past Python's stack
        raise ValueError(f"{path}: not a JSON list of examples (nested too deeply)") from None
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON list of examples, got "
                         f"{type(data).__name__}")
    for i, ex in enumerate(data):
        if not isinstance(ex, dict):
            raise ValueError(f"{path}: example {i}: expected an object, got "
                             f"{type(ex).__name__}")
        for name in _FIELDS + (("output",) if "output" in ex else ()):
            if name not in ex:
                raise ValueError(f"{path}: example {i}: missing field {name!r}")
            if not isinstance(ex[name], str):
                raise ValueError(f"{path}: example {i}: field {name!r} must be a string, "
                                 f"got {type(ex[name]).__name__}")
            if name != "input" and name != "output" and not ex[name].strip():
                raise ValueError(f"{path}: example {i}: field {name!r} is empty")
    return data


class PreferencePairs:
    """Tokenised preference pairs: ``prompts[i]``, ``chosen[i]``, ``rejected[i]`` are
    non-empty 1-D int64 id arrays. `truncated` counts the pairs that were cut."""

    def __init__(self, prompts: Sequence, chosen: Sequence, rejected: Sequence, *,
                 truncated: int = 0):
        self.prompts = [_ids(p, "prompt", i) for i, p in enumerate(prompts)]
        self.chosen = [_ids(c, "chosen response", i) for i, c in enumerate(chosen)]
        self.rejected = [_ids(r, "rejected response", i) for i, r in enumerate(rejected)]
        if not len(self.prompts) == len(self.chosen) == len(self.rejected):
            raise ValueError(f"PreferencePairs: {len(self.prompts)} prompts, "
                             f"{len(self.chosen)} chosen and {len(self.rejected)} rejected "
                             "responses: need one of each per pair")
        if not self.prompts:
            raise ValueError("PreferencePairs: need at least one pair")
        self.truncated = truncated

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, indices) -> "PreferencePairs":
        """The pairs at `indices`, in that order (arrays shared, not copied)."""
        idx = [int(i) for i in indices]
        return PreferencePairs([self.prompts[i] for i in idx], [self.chosen[i] for i in idx],
                               [self.rejected[i] for i in idx])


def _ids(seq, what: str, i: int) -> np.ndarray:
    a = np.asarray(seq)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer) or a.min() < 0:
        raise ValueError(f"PreferencePairs: {what} {i} must be a non-empty 1-D sequence of "
                         f"token ids >= 0, got {a.dtype} of shape {a.shape}")
    return a.astype(np.int64)


def _encoder(tokenizer):
    """The tokenizer's plain-text encoder: ``encode_ordinary`` where there is one (BPE:
    special-token names in the data stay text), else ``encode``."""
    encode = getattr(tokenizer, "encode_ordinary", None) or getattr(tokenizer, "encode", None)
    if encode is None:
        raise TypeError(f"tokenize_preferences: {type(tokenizer).__name__} has no encode "
                        "or encode_ordinary method")
    return encode


def tokenize_preferences(examples: Sequence[dict], tokenizer, *, max_length: int,
                         eos_id: int | None = None) -> PreferencePairs:
    """Tokenise examples (`read_preference_json`'s) with any numpyllm tokenizer: the
    Alpaca prompt, and each response (`eos_id` appended when given), rows cut to at most
    `max_length` tokens by the module's truncation policy. For a GPT with context
    ``block_size``, ``max_length = block_size + 1`` (the last token is only a target)."""
    if not isinstance(max_length, (int, np.integer)) or max_length < 2:
        raise ValueError(f"tokenize_preferences: max_length must be an integer >= 2 (a "
                         f"prompt token and a response token), got {max_length!r}")
    encode = _encoder(tokenizer)
    tail = [] if eos_id is None else [int(eos_id)]
    prompts, chosen, rejected, cut = [], [], [], 0
    for i, ex in enumerate(examples):
        p = list(encode(alpaca_prompt(ex)))
        c = list(encode(ex["chosen"])) + tail
        r = list(encode(ex["rejected"])) + tail
        if not c or not r:
            raise ValueError(f"tokenize_preferences: example {i}: a response encodes to no "
                             "tokens")
        longest = max(len(c), len(r))
        if len(p) + longest > max_length:
            cut += 1
            # the prompt keeps what the longer response leaves, but at most half the room
            keep = min(len(p), max(max_length - longest, max_length // 2))
            p = p[len(p) - keep:]                        # its end: "### Response:\n"
            c, r = c[:max_length - keep], r[:max_length - keep]
        prompts.append(p)
        chosen.append(c)
        rejected.append(r)
    return PreferencePairs(prompts, chosen, rejected, truncated=cut)


def collate_preferences(pairs: PreferencePairs, rows, pad_id: int) -> dict:
    """Pairs `rows` as padded arrays, all ``[B, L]`` with one L (the longest row of
    either kind, so chosen and rejected can run as one batch of 2B):

    - ``chosen_ids``, ``rejected_ids``: int64, ``prompt + response`` then `pad_id`;
    - ``chosen_mask``, ``rejected_mask``: bool, True at the response tokens only.

    >>> pairs = PreferencePairs([[1, 2]], [[3]], [[4, 5]])
    >>> b = collate_preferences(pairs, [0], pad_id=0)
    >>> b["chosen_ids"].tolist(), b["chosen_mask"].astype(int).tolist()
    ([[1, 2, 3, 0]], [[0, 0, 1, 0]])
    >>> b["rejected_ids"].tolist(), b["rejected_mask"].astype(int).tolist()
    ([[1, 2, 4, 5]], [[0, 0, 1, 1]])
    """
    rows = [int(i) for i in rows]
    out = {}
    L = max(len(pairs.prompts[i]) + max(len(pairs.chosen[i]), len(pairs.rejected[i]))
            for i in rows)
    for kind, responses in (("chosen", pairs.chosen), ("rejected", pairs.rejected)):
        seqs = [np.concatenate([pairs.prompts[i], responses[i]]) for i in rows]
        ids, real = pad_sequences(seqs, pad_id, length=L)            # [B, L]
        prompt_len = np.array([len(pairs.prompts[i]) for i in rows])
        mask = real & (np.arange(L)[None, :] >= prompt_len[:, None])  # [B, L]
        out[f"{kind}_ids"], out[f"{kind}_mask"] = ids, mask
    return out



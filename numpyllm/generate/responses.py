"""Responses to a set of instructions, written next to their references: what SFT is
judged on (`numpyllm.data.instruction`, `numpyllm.training.objectives.sft`).

`respond` continues each example's prompt (the instruction as the model was tuned to
read it) greedily with the KV cache, a batch of prompts of different lengths at a time,
until the end token or `max_new_tokens`; `write_responses` stores them as the JSON list
the LLMs-from-scratch book writes (each example with a ``model_response`` field beside its
reference ``output``), for a person, a metric or a judge model to compare.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .decoding import generate

__all__ = ["respond", "write_responses"]


def respond(model, tokenizer, data, *, max_new_tokens: int = 256, eos_id: int | None = None,
            batch_size: int = 8) -> list[str]:
    """The greedy response text to each prompt of `data` (`Instructions`), without the
    prompt and the end token. `eos_id` defaults to the end token the responses were
    encoded with (the last token of the first response)."""
    if eos_id is None:
        eos_id = int(data.responses[0][-1])
    out = []
    model.eval()
    for start in range(0, len(data), batch_size):
        prompts = [np.asarray(p) for p in data.prompts[start:start + batch_size]]
        rows = generate(model, prompts, max_new_tokens, greedy=True, eos_id=eos_id)
        for prompt, row in zip(prompts, rows):
            new = [int(t) for t in row[len(prompt):]]
            if new and new[-1] == eos_id:
                new = new[:-1]
            out.append(tokenizer.decode(new))
    return out


def write_responses(path: str | os.PathLike, examples, responses) -> None:
    """`examples` (dicts) each with its ``model_response``, as a JSON list in `path`
    (written to a temporary name, then renamed)."""
    if len(examples) != len(responses):
        raise ValueError(f"{len(examples)} examples but {len(responses)} responses")
    rows = [{**example, "model_response": response}
            for example, response in zip(examples, responses)]
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)

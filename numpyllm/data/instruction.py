"""Instruction data: (instruction, input, output) examples, rendered as prompts and
responses for supervised fine-tuning (SFT).

An instruction-tuning example asks for something (``instruction``), sometimes with an
``input`` to work on, and gives the answer wanted (``output``):

    {"instruction": "Rewrite the sentence in passive voice.",
     "input": "The chef cooked the meal.",
     "output": "The meal was cooked by the chef."}

To train a language model on it, the example becomes one text: a **prompt** that the
model reads, and the **response** that it learns to write after it. Two formats:

- **Alpaca** (Stanford Alpaca; the LLMs-from-scratch book's chapter 7), plain text:

      Below is an instruction that describes a task. Write a response that appropriately
      completes the request.

      ### Instruction:
      Rewrite the sentence in passive voice.

      ### Input:
      The chef cooked the meal.

      ### Response:
      The meal was cooked by the chef.

  (the ``### Input:`` section is left out when the input is empty);
- **chat**: the instruction (and input) as a user's message through the tokenizer's chat
  template (a Hugging Face directory's), the response as the assistant's turn.

The response ends with the end-of-text token, so that the model learns to stop.
`encode_instructions` turns examples into `Instructions`: for each, the token ids of the
prompt and of the response, kept apart so that the loss can leave the prompt out
(`numpyllm.training.objectives.sft`).

>>> ex = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
>>> print(alpaca_prompt(ex))
Below is an instruction that describes a task. Write a response that appropriately completes the request.
<BLANKLINE>
### Instruction:
Add the numbers.
<BLANKLINE>
### Input:
2 and 3
<BLANKLINE>
### Response:
<BLANKLINE>
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["alpaca_prompt", "chat_prompt", "read_instructions", "encode_instructions",
           "Instructions", "FORMATS", "split_examples", "end_token_id"]

FORMATS = ("alpaca", "chat")
MAX_FILE_BYTES = 1 << 30
_FIELDS = ("instruction", "input", "output")


def alpaca_prompt(example: dict) -> str:
    """The Alpaca prompt of an example, up to and including ``### Response:\\n``."""
    text = ("Below is an instruction that describes a task. Write a response that "
            "appropriately completes the request."
            f"\n\n### Instruction:\n{example['instruction']}")
    if example.get("input"):
        text += f"\n\n### Input:\n{example['input']}"
    return text + "\n\n### Response:\n"


def chat_prompt(example: dict, tokenizer, system: str | None = None) -> list:
    """The token ids of an example's instruction (and input, after a blank line) as a
    user's message, rendered by `tokenizer`'s chat template with the assistant's turn
    opened."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the chat format needs a tokenizer with a chat template (a Hugging "
                         "Face directory's tokenizer_config.json declares one)")
    content = example["instruction"] + (f"\n\n{example['input']}" if example.get("input") else "")
    messages = ([{"role": "system", "content": system}] if system is not None else []) + \
        [{"role": "user", "content": content}]
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                              tokenize=True))


def read_instructions(path: str | os.PathLike) -> list[dict]:
    """The examples of a JSON file holding a list of objects with string fields
    ``instruction``, ``input`` (may be empty or absent) and ``output`` (other fields, such
    as a preference data set's ``chosen``/``rejected``, are kept). Strict JSON; anything
    else is a ValueError naming the file, the example and the field."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read(min(os.fstat(f.fileno()).st_size, MAX_FILE_BYTES) + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:          # JSONDecodeError is a ValueError
        raise ValueError(f"{path}: expected strict JSON, got text that is not: "
                         f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON list of examples, got "
                         f"{type(data).__name__}")
    out = []
    for i, example in enumerate(data):
        if not isinstance(example, dict):
            raise ValueError(f"{path}: example {i}: expected an object with instruction, "
                             f"input and output, got {type(example).__name__}")
        example = dict(example)
        example.setdefault("input", "")
        for field in _FIELDS:
            if field not in example:
                raise ValueError(f"{path}: example {i}: the field {field!r} is missing")
            if not isinstance(example[field], str):
                raise ValueError(f"{path}: example {i}: {field}: expected a string, got "
                                 f"{type(example[field]).__name__}")
        if not example["instruction"].strip():
            raise ValueError(f"{path}: example {i}: instruction: empty")
        out.append(example)
    return out


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a key appears twice in an object: {sorted(keys)}")
    return dict(pairs)


def split_examples(examples: Sequence, fractions: Sequence[float], seed: int = 123) -> list:
    """`examples` shuffled with `seed` and cut into consecutive parts of the given
    fractions (e.g. ``(0.85, 0.1, 0.05)``, the book's train/test/validation split; the last
    part takes the rounding remainder)."""
    fractions = [float(f) for f in fractions]
    if not fractions or any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"fractions must be >= 0 and sum to at most 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(len(examples))
    parts, start = [], 0
    for k, fraction in enumerate(fractions):
        end = len(examples) if k == len(fractions) - 1 and abs(sum(fractions) - 1) < 1e-9 \
            else start + int(fraction * len(examples))
        parts.append([examples[i] for i in order[start:end]])
        start = end
    return parts


def end_token_id(tokenizer) -> int:
    """The id that ends a response: a Hugging Face tokenizer's ``eos_token_id``, else the
    tokenizer's ``<|endoftext|>``; a ValueError when it has neither."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        eos = (getattr(tokenizer, "special_tokens", None) or {}).get("<|endoftext|>")
    if eos is None:
        raise ValueError("the tokenizer has no end token (eos_token_id or <|endoftext|>): a "
                         "response could not end")
    return int(eos)


@dataclass
class Instructions:
    """Encoded examples: ``prompts[i]`` and ``responses[i]`` are 1-D int64 id arrays (the
    response ends with the end token); ``examples[i]`` the example they came from."""

    prompts: list
    responses: list
    examples: list

    def __len__(self) -> int:
        return len(self.prompts)

    def lengths(self) -> np.ndarray:
        """Prompt + response tokens of each example."""
        return np.array([len(p) + len(r) for p, r in zip(self.prompts, self.responses)])


def _encode(tokenizer, text: str) -> list:
    """Ordinary text: names of special tokens in an example are text, not specials."""
    encode = getattr(tokenizer, "encode_ordinary", None) or tokenizer.encode
    return list(encode(text))


def encode_instructions(tokenizer, examples: Sequence[dict], *, format: str = "alpaca",
                        eos_id: int | None = None, max_length: int | None = None,
                        system: str | None = None) -> Instructions:
    """Tokenize examples as prompt and response ids (`format` "alpaca" or "chat"; see the
    module doc). The response ends with `eos_id` (default: the tokenizer's end token:
    ``eos_token_id``, or ``<|endoftext|>``). With `max_length`, an example longer than
    that is cut at the end of its response (it keeps its whole prompt; one whose prompt
    alone is too long is an error naming it), as the book truncates."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if eos_id is None:
        eos_id = end_token_id(tokenizer)
    prompts, responses = [], []
    for i, example in enumerate(examples):
        if format == "alpaca":
            prompt = _encode(tokenizer, alpaca_prompt(example))
        else:
            prompt = chat_prompt(example, tokenizer, system)
        response = _encode(tokenizer, example["output"]) + [int(eos_id)]
        if max_length is not None:
            if len(prompt) >= max_length:
                raise ValueError(f"example {i}: its prompt is {len(prompt)} tokens, not "
                                 f"shorter than max_length {max_length}: nothing of the "
                                 "response would be left")
            response = response[:max_length - len(prompt)]
        prompts.append(np.asarray(prompt, dtype=np.int64))
        responses.append(np.asarray(response, dtype=np.int64))
    if not prompts:
        raise ValueError("no examples to encode")
    return Instructions(prompts, responses, list(examples))

"""The post-processors of a `tokenizer.json` (ids to ids, only when special tokens are asked
for), as `tokenizers` 0.23 runs them.

TemplateProcessing (Llama's "<s> $A"), ByteLevel (which changes only offsets), Sequence,
BertProcessing ("[CLS] $A [SEP]"): each is read strictly by `post_processor_from_json` into
the ids put before and after a text (`PostProcessor`); `template_json` writes a
TemplateProcessing back.
"""
from __future__ import annotations

from typing import Callable

from ._files import expect, get_field
from .errors import VocabularyFileError
from .hf_steps import _type_of

__all__ = ["PostProcessor", "template_json", "post_processor_from_json"]


class PostProcessor:
    """What encoding adds around a text's ids when special tokens are asked for:
    ``prefix + ids + suffix`` (Llama 2: prefix [1], the id of "<s>")."""

    def __init__(self, prefix: list[int], suffix: list[int], obj: dict | None = None):
        self.prefix, self.suffix, self._obj = list(prefix), list(suffix), obj

    def to_json(self, id_to_token: Callable[[int], str]) -> dict:
        """The JSON object (a TemplateProcessing, unless read from a file that said more)."""
        if self._obj is not None:
            return self._obj
        return template_json(self.prefix, self.suffix, id_to_token)


def template_json(prefix: list[int], suffix: list[int], id_to_token) -> dict:
    """A TemplateProcessing that puts the tokens `prefix` before a text and `suffix` after
    it (for a pair: the same around each text, as transformers writes it)."""
    def special(i, type_id):
        return {"SpecialToken": {"id": id_to_token(i), "type_id": type_id}}

    def template(type_id, seq):
        return ([special(i, type_id) for i in prefix]
                + [{"Sequence": {"id": seq, "type_id": type_id}}]
                + [special(i, type_id) for i in suffix])
    return {"type": "TemplateProcessing", "single": template(0, "A"),
            "pair": template(0, "A") + template(1, "B"),
            "special_tokens": {id_to_token(i): {"id": id_to_token(i), "ids": [i],
                                                "tokens": [id_to_token(i)]}
                               for i in dict.fromkeys(prefix + suffix)}}


def post_processor_from_json(obj, where: str, known_id: Callable[[int], bool]) -> PostProcessor:
    """A post-processor from its JSON object; `known_id(i)` says whether an id is in the
    vocabulary (a template naming any other id is an error)."""
    kind = _type_of(obj, where, {"TemplateProcessing", "ByteLevel", "Sequence",
                                 "BertProcessing"})
    if kind == "ByteLevel":            # only moves offsets: no ids added
        return PostProcessor([], [], obj)
    if kind == "BertProcessing":       # [CLS] $A [SEP]: "cls" and "sep" are [token, id]
        ids = []
        for key in ("cls", "sep"):
            pair = get_field(obj, key, "array", where)
            at = f"{where}.{key}"
            if len(pair) != 2:
                raise VocabularyFileError(f"{at}: expected [token, id], got {len(pair)} items")
            expect(pair[0], "string", f"{at}[0]")
            if not (expect(pair[1], "integer", f"{at}[1]") >= 0 and known_id(pair[1])):
                raise VocabularyFileError(f"{at}[1]: id {pair[1]} is in neither the vocabulary "
                                          f"nor the added tokens")
            ids.append(pair[1])
        return PostProcessor(ids[:1], ids[1:], obj)
    if kind == "Sequence":
        prefix, suffix = [], []
        for i, o in enumerate(get_field(obj, "processors", "array", where)):
            inner = post_processor_from_json(o, f"{where}.processors[{i}]", known_id)
            prefix, suffix = inner.prefix + prefix, suffix + inner.suffix
        return PostProcessor(prefix, suffix, obj)
    specials = get_field(obj, "special_tokens", "object", where)
    single = get_field(obj, "single", "array", where)
    get_field(obj, "pair", "array", where)          # used only to encode pairs, never here
    prefix, suffix, seen = [], [], False
    for i, piece in enumerate(single):
        here = f"{where}.single[{i}]"
        expect(piece, "object", here)
        if len(piece) != 1 or not ({"SpecialToken", "Sequence"} & set(piece)):
            raise VocabularyFileError(f"{here}: expected {{\"SpecialToken\": ...}} or "
                                      f"{{\"Sequence\": ...}}")
        (what, body), = piece.items()
        name = get_field(expect(body, "object", f"{here}.{what}"), "id", "string",
                         f"{here}.{what}")
        if what == "Sequence":
            if seen or name != "A":
                raise VocabularyFileError(f"{here}.Sequence.id: expected the one sequence 'A' "
                                          f"of a single text, got {name!r:.40}")
            seen = True
            continue
        entry = get_field(specials, name, "object", f"{where}.special_tokens")
        ids = get_field(entry, "ids", "array", f"{where}.special_tokens.{name}")
        for j, idx in enumerate(ids):
            at = f"{where}.special_tokens.{name}.ids[{j}]"
            if not (expect(idx, "integer", at) >= 0 and known_id(idx)):
                raise VocabularyFileError(f"{at}: id {idx} is in neither the vocabulary nor "
                                          f"the added tokens")
        (suffix if seen else prefix).extend(ids)
    if not seen:
        raise VocabularyFileError(f"{where}.single: expected a {{\"Sequence\": {{\"id\": "
                                  f"\"A\"}}}} piece for the text")
    return PostProcessor(prefix, suffix, obj)

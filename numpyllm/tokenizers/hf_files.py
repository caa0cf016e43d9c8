"""A Hugging Face tokenizer directory, read strictly and written back.

The files, in the order `read_hf_directory` looks for them:

    tokenizer.json            the whole pipeline (`tokenizers`' format): "model" (BPE,
                              WordPiece or Unigram), "added_tokens", "normalizer", "pre_tokenizer",
                              "post_processor", "decoder"
    vocab.json + merges.txt   GPT-2's older pair (token -> id, and one merge "a b" a line),
                              read as GPT-2's byte-level pipeline
    tokenizer_config.json     bos/eos/unk/pad tokens, "added_tokens_decoder",
                              "add_bos_token"/"add_eos_token", "chat_template"
    special_tokens_map.json   the special tokens again (older directories)

Every file is data from anywhere: read as strict JSON (`numpyllm._json`: no NaN, no
duplicate keys, no 10,000-digit numbers), with size limits, every field's type checked, and
any error reported in one line naming the file and the field
(``tokenizer.json: model.merges[3]: 'ab' is not a token of the vocabulary``). A component
numpyllm does not implement is refused with `UnsupportedTokenizerError`, never skipped.

`write_hf_directory` writes `tokenizer.json` and `tokenizer_config.json` (plus `vocab.json`
and `merges.txt` for byte-level BPE) that `tokenizers.Tokenizer.from_file` and
`transformers.AutoTokenizer.from_pretrained` load to the same ids.
"""
from __future__ import annotations

import json
import os

from . import _files
from .added_tokens import AddedToken
from .errors import TokenizerError, UnsupportedTokenizerError, VocabularyFileError
from .hf import HFTokenizer
from .hf_pipeline import (METASPACE, decoder_from_json, normalizer_from_json,
                          post_processor_from_json, pre_tokenizer_from_json)
from .sentencepiece_bpe import SentencePieceBPE

__all__ = ["read_hf_directory", "write_hf_directory", "from_bpe_tokenizer",
           "hf_from_wordpiece", "hf_from_unigram",
           "MAX_FILE_BYTES", "MAX_TOKENS", "MAX_TOKEN_CHARS", "MAX_TEMPLATE_CHARS"]

MAX_FILE_BYTES = 128 << 20      # Gemma 3's tokenizer.json, the largest we know, is 33 MB
MAX_TOKENS = 1 << 21            # tokens, merges or added tokens (Gemma: 262,144 tokens)
MAX_TOKEN_CHARS = 4096          # characters of one token
MAX_TEMPLATE_CHARS = 1 << 20    # characters of a chat template

_SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")


def _read_json(path: str, what: str = "a JSON object"):
    value = _files.parse_json(_files.read_text(path, MAX_FILE_BYTES), path, what)
    return _files.expect(value, "object", path)


def _token(value, where: str) -> str:
    _files.expect(value, "string", where)
    if not value or len(value) > MAX_TOKEN_CHARS:
        raise VocabularyFileError(f"{where}: expected a token of 1 to {MAX_TOKEN_CHARS} "
                                  f"characters, got {len(value)}")
    return value


def _count(items, where: str):
    if len(items) > MAX_TOKENS:
        raise VocabularyFileError(f"{where}: {len(items):,} entries (at most {MAX_TOKENS:,})")
    return items


# ============================================================================== reading
def _read_vocab(vocab, where: str) -> dict[str, int]:
    _count(_files.expect(vocab, "object", where), where)
    seen: dict[int, str] = {}
    for token, idx in vocab.items():
        _token(token, f"{where} key {token[:40]!r}")
        _files.expect(idx, "integer", f"{where}[{token[:40]!r}]")
        if idx < 0 or idx >= len(vocab) + _files.MAX_UNUSED_IDS:
            raise VocabularyFileError(
                f"{where}[{token[:40]!r}]: expected an id from 0 below "
                f"{len(vocab) + _files.MAX_UNUSED_IDS} ({len(vocab)} tokens, at most "
                f"{_files.MAX_UNUSED_IDS} ids unused), got {idx}")
        if idx in seen:
            raise VocabularyFileError(f"{where}[{token[:40]!r}]: id {idx} is already the id of "
                                      f"{seen[idx][:40]!r}")
        seen[idx] = token
    return dict(vocab)


def _read_merges(merges, where: str) -> list[tuple[str, str]]:
    _count(_files.expect(merges, "array", where), where)
    out = []
    for i, merge in enumerate(merges):
        at = f"{where}[{i}]"
        if isinstance(merge, str):          # "a b", the format before tokenizers 0.20
            parts = merge.split(" ")
            if len(parts) != 2:
                raise VocabularyFileError(f"{at}: expected 'left right' (two tokens and one "
                                          f"space), got {merge[:60]!r}")
        else:
            parts = _files.expect(merge, "array", at)
            if len(parts) != 2:
                raise VocabularyFileError(f"{at}: expected a pair [left, right], got "
                                          f"{len(parts)} items")
        out.append((_token(parts[0], at), _token(parts[1], at)))
    return out


def _bpe_model(vocab: dict, merges: list, where: str, **options) -> SentencePieceBPE:
    try:
        return SentencePieceBPE(vocab, merges, **options)
    except ValueError as exc:
        raise VocabularyFileError(f"{where}: {exc}") from None


def _read_model(obj, where: str):
    _files.expect(obj, "object", where)
    kind = _files.get_field(obj, "type", "string", where, "BPE")
    if kind == "WordPiece":
        return _read_wordpiece(obj, where)
    if kind == "Unigram":
        return _read_unigram(obj, where)
    if kind != "BPE":
        raise UnsupportedTokenizerError(
            f"{where}.type: a {kind[:40]!r} model is not supported (numpyllm reads BPE, "
            f"WordPiece and Unigram models)")
    dropout = _files.get_field(obj, "dropout", "number|null", where, None)
    if dropout not in (None, 0, 0.0):
        raise UnsupportedTokenizerError(f"{where}.dropout: BPE dropout ({dropout}) makes "
                                        f"encoding random; numpyllm encodes without it only")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if _files.get_field(obj, key, "string|null", where, None):
            raise UnsupportedTokenizerError(
                f"{where}.{key}: subword prefixes and suffixes are not supported (issue 19)")
    unk = _files.get_field(obj, "unk_token", "string|null", where, None)
    vocab = _read_vocab(_files.get_field(obj, "vocab", "object", where), f"{where}.vocab")
    merges = _read_merges(_files.get_field(obj, "merges", "array", where, []), f"{where}.merges")
    options = {k: _files.get_field(obj, k, "boolean", where, False)
               for k in ("fuse_unk", "byte_fallback", "ignore_merges")}
    return _bpe_model(vocab, merges, where, unk_token=unk, **options)


def _read_wordpiece(obj: dict, where: str):
    from .wordpiece import WordPiece
    vocab = _read_vocab(_files.get_field(obj, "vocab", "object", where), f"{where}.vocab")
    options = dict(
        unk_token=_files.get_field(obj, "unk_token", "string", where, "[UNK]"),
        continuing_subword_prefix=_files.get_field(obj, "continuing_subword_prefix", "string",
                                                   where, "##"),
        max_input_chars_per_word=_files.get_field(obj, "max_input_chars_per_word", "integer",
                                                  where, 100))
    try:
        return WordPiece(vocab, **options)
    except ValueError as exc:
        raise VocabularyFileError(f"{where}: {exc}") from None


def _read_unigram(obj: dict, where: str):
    from .unigram import Unigram
    pieces = _count(_files.get_field(obj, "vocab", "array", where), f"{where}.vocab")
    vocab = []
    for i, item in enumerate(pieces):
        at = f"{where}.vocab[{i}]"
        if not (isinstance(item, list) and len(item) == 2):
            raise VocabularyFileError(f"{at}: expected a pair [piece, score], got "
                                      f"{str(item)[:40]}")
        piece = _token(item[0], f"{at}[0]")
        score = _files.expect(item[1], "number", f"{at}[1]")
        vocab.append((piece, float(score)))
    unk_id = _files.get_field(obj, "unk_id", "integer|null", where, None)
    byte_fallback = _files.get_field(obj, "byte_fallback", "boolean", where, False)
    try:
        return Unigram(vocab, unk_id=unk_id, byte_fallback=byte_fallback)
    except ValueError as exc:
        raise VocabularyFileError(f"{where}: {exc}") from None


def _read_added(items, where: str) -> list[AddedToken]:
    out = []
    for i, obj in enumerate(_count(_files.expect(items, "array", where), where)):
        at = f"{where}[{i}]"
        _files.expect(obj, "object", at)
        idx = _files.get_field(obj, "id", "integer", at)
        special = _files.get_field(obj, "special", "boolean", at, False)
        flags = {k: _files.get_field(obj, k, "boolean", at, False)
                 for k in ("lstrip", "rstrip", "single_word")}
        content = _token(_files.get_field(obj, "content", "string", at), f"{at}.content")
        out.append(AddedToken(content, idx, special=special,
                              normalized=_files.get_field(obj, "normalized", "boolean", at,
                                                          not special), **flags))
    return out


def _check_added(model: SentencePieceBPE, added: list[AddedToken], where: str) -> None:
    """Added tokens have ids of their own (or the id their string has in the vocabulary),
    close above the vocabulary's."""
    limit = len(model.vocab) + len(added) + _files.MAX_UNUSED_IDS
    by_id: dict[int, str] = {}
    for token in added:
        at = f"{where} {token.content[:40]!r}"
        if not 0 <= token.id < limit:
            raise VocabularyFileError(f"{at}: expected an id from 0 below {limit}, got "
                                      f"{token.id}")
        if token.id in by_id and by_id[token.id] != token.content:
            raise VocabularyFileError(f"{at}: id {token.id} is already the id of added token "
                                      f"{by_id[token.id][:40]!r}")
        in_vocab = model.id_to_token.get(token.id)
        if in_vocab is not None and in_vocab != token.content:
            raise VocabularyFileError(f"{at}: id {token.id} is already the id of vocabulary "
                                      f"token {in_vocab[:40]!r}")
        if token.content in model.vocab and model.vocab[token.content] != token.id:
            raise VocabularyFileError(f"{at}: the vocabulary gives this token id "
                                      f"{model.vocab[token.content]}, not {token.id}")
        by_id[token.id] = token.content


def _optional(obj: dict, key: str, where: str, reader):
    value = obj.get(key)
    return None if value is None else reader(value, f"{where}: {key}")


def _read_tokenizer_json(path: str) -> dict:
    obj = _read_json(path)
    for key in ("truncation", "padding"):
        value = obj.get(key)
        if value is not None and not (key == "padding" and isinstance(value, dict)
                                      and value.get("strategy") == "BatchLongest"):
            raise UnsupportedTokenizerError(
                f"{path}: {key}: {key} in tokenizer.json is not supported (it changes the "
                f"ids of one text); set it to null")
    model = _read_model(_files.get_field(obj, "model", "object", path), f"{path}: model")
    added = _read_added(obj.get("added_tokens", []), f"{path}: added_tokens")
    _check_added(model, added, f"{path}: added_tokens")
    ids = set(model.id_to_token) | {t.id for t in added}
    parts = dict(model=model, added=added,
                 normalizer=_optional(obj, "normalizer", path, normalizer_from_json),
                 pre_tokenizer=_optional(obj, "pre_tokenizer", path, pre_tokenizer_from_json),
                 decoder=_optional(obj, "decoder", path, decoder_from_json))
    post = obj.get("post_processor")
    if post is not None:
        parts["post_processor"] = post_processor_from_json(
            post, f"{path}: post_processor", ids.__contains__)
    return parts


def _read_gpt2_pair(vocab_path: str, merges_path: str, add_prefix_space: bool) -> dict:
    """vocab.json + merges.txt, read as `transformers`' GPT-2 converter builds them."""
    vocab = _read_vocab(_read_json(vocab_path), vocab_path)
    merges = []
    for lineno, line in enumerate(_files.read_text(merges_path, MAX_FILE_BYTES).split("\n"), 1):
        if not line.strip() or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise VocabularyFileError(f"{merges_path}:{lineno}: expected a merge 'left right', "
                                      f"got {line[:60]!r}")
        merges.append((parts[0], parts[1]))
    _count(merges, merges_path)
    byte_level = {"type": "ByteLevel", "add_prefix_space": add_prefix_space,
                  "trim_offsets": True, "use_regex": True}
    return dict(model=_bpe_model(vocab, merges, f"{vocab_path} and {merges_path}"),
                pre_tokenizer=pre_tokenizer_from_json(byte_level, "(GPT-2's pre-tokenizer)"),
                decoder=decoder_from_json(byte_level, "(GPT-2's decoder)"),
                post_processor=post_processor_from_json(
                    dict(byte_level, trim_offsets=False), "(GPT-2's post-processor)", bool))


def _token_name(value, where: str) -> str | None:
    """A special token in a config: a string, an AddedToken object, or null."""
    if isinstance(value, dict):
        return _token(_files.get_field(value, "content", "string", where), f"{where}.content")
    return None if value is None else _token(value, where)


def read_hf_directory(directory) -> HFTokenizer:
    """The tokenizer of a Hugging Face model directory (see the module docstring)."""
    d = os.fspath(directory)
    if not os.path.isdir(d):
        raise VocabularyFileError(f"{d}: not a directory")
    at = lambda name: os.path.join(d, name)               # noqa: E731
    config = _read_json(at("tokenizer_config.json")) if os.path.isfile(
        at("tokenizer_config.json")) else {}
    special_map = _read_json(at("special_tokens_map.json")) if os.path.isfile(
        at("special_tokens_map.json")) else {}
    cfg = at("tokenizer_config.json")
    if os.path.isfile(at("tokenizer.json")):
        parts = _read_tokenizer_json(at("tokenizer.json"))
    elif os.path.isfile(at("vocab.json")) and os.path.isfile(at("merges.txt")):
        parts = _read_gpt2_pair(at("vocab.json"), at("merges.txt"), _files.get_field(
            config, "add_prefix_space", "boolean", cfg, False))
    else:
        raise VocabularyFileError(f"{d}: no tokenizer.json, and no vocab.json + merges.txt "
                                  f"(a SentencePiece tokenizer.model alone is not supported)")
    model, added = parts["model"], list(parts.pop("added", []))
    known = {t.content for t in added}

    def add(name: str, where: str, special: bool = True, **flags) -> None:
        # A token the config names becomes an added token, as `transformers` makes it:
        # with its vocabulary id, or the next free id.
        if name in known:
            return
        idx = model.vocab.get(name, max([*model.id_to_token, *(t.id for t in added)],
                                        default=-1) + 1)
        added.append(AddedToken(name, idx, special=special, **flags))
        known.add(name)

    decoder_cfg = _files.get_field(config, "added_tokens_decoder", "object", cfg, {})
    for key, obj in decoder_cfg.items():
        where = f"{cfg}: added_tokens_decoder[{key[:20]!r}]"
        idx = _files.parse_id(key, where, "an id as the key")
        _files.expect(obj, "object", where)
        name = _token(_files.get_field(obj, "content", "string", where), f"{where}.content")
        special = _files.get_field(obj, "special", "boolean", where, False)
        token = AddedToken(name, idx, special=special,
                           **{k: _files.get_field(obj, k, "boolean", where, False)
                              for k in ("lstrip", "rstrip", "single_word")},
                           normalized=_files.get_field(obj, "normalized", "boolean", where,
                                                       not special))
        clash = next((t for t in added if t.content == name), None)
        if clash is not None:
            if clash.id != idx:
                raise VocabularyFileError(f"{where}: id {idx} for {name[:40]!r}, but the "
                                          f"tokenizer gives it {clash.id}")
            continue
        added.append(token)
        known.add(name)
    names = {}
    for key in _SPECIAL_NAMES:
        for source, where in ((config, cfg), (special_map, at("special_tokens_map.json"))):
            if key in source:
                names[key] = _token_name(source[key], f"{where}: {key}")
                break
        else:
            names[key] = None
        if names[key] is not None:
            add(names[key], key)
    extra = config.get("additional_special_tokens", special_map.get(
        "additional_special_tokens", []))
    for i, value in enumerate(_files.expect(extra, "array", f"{cfg}: additional_special_tokens")):
        add(_token_name(value, f"{cfg}: additional_special_tokens[{i}]"), "additional")
    _check_added(model, added, f"{d}: added tokens")

    template = _files.get_field(config, "chat_template", "string|array|null", cfg, None)
    if isinstance(template, list):            # [{"name": "default", "template": ...}, ...]
        chosen = None
        for i, item in enumerate(template):
            where = f"{cfg}: chat_template[{i}]"
            _files.expect(item, "object", where)
            if _files.get_field(item, "name", "string", where) == "default":
                chosen = _files.get_field(item, "template", "string", where)
        template = chosen
    if template is None and os.path.isfile(at("chat_template.jinja")):
        template = _files.read_text(at("chat_template.jinja"), MAX_FILE_BYTES)
    if template is not None and len(template) > MAX_TEMPLATE_CHARS:
        raise VocabularyFileError(f"{cfg}: chat_template: {len(template):,} characters (at "
                                  f"most {MAX_TEMPLATE_CHARS:,})")
    flags = {k: _files.get_field(config, k, "boolean|null", cfg, None)
             for k in ("add_bos_token", "add_eos_token")}
    max_len = config.get("model_max_length")
    try:
        return HFTokenizer(**parts, added=added, chat_template=template, **names, **flags,
                           model_max_length=max_len if isinstance(max_len, int) and not
                           isinstance(max_len, bool) and max_len < 1 << 40 else None)
    except TokenizerError as exc:
        raise VocabularyFileError(f"{d}: {exc}") from None


# ============================================================================== writing
def from_bpe_tokenizer(tok) -> HFTokenizer:
    """numpyllm's byte-level `BPETokenizer` in `tokenizers`' terms, with the same ids.

    numpyllm encodes as tiktoken does (merge the adjacent pair whose *concatenation* has the
    lowest rank; a chunk that is a token is that token), `tokenizers` by a ranked list of
    pairs. The two agree when the list holds every split of every token into two tokens,
    ranked by the token made (`transformers`' tiktoken converter does the same), and with
    ``ignore_merges`` set (Llama 3's files do both).
    """
    from . import gpt2
    ranks = tok.mergeable_ranks
    text = gpt2.token_to_text
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        splits = [(token[:i], token[i:]) for i in range(1, len(token))
                  if token[:i] in ranks and token[i:] in ranks]
        splits.sort(key=lambda lr: (ranks[lr[0]], ranks[lr[1]]))
        merges += [(text(a), text(b)) for a, b in splits]
    model = SentencePieceBPE({text(t): i for t, i in ranks.items()}, merges, ignore_merges=True)
    if tok.pattern in (gpt2.GPT2_PATTERN, gpt2.GPT2_ORIGINAL_PATTERN):
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
               "use_regex": True}
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    specials = tok.special_tokens
    eot = gpt2.ENDOFTEXT if gpt2.ENDOFTEXT in specials else None
    return HFTokenizer(
        model, added=[AddedToken(name, idx, special=True) for name, idx in specials.items()],
        pre_tokenizer=pre_tokenizer_from_json(pre, "pre_tokenizer"),
        decoder=decoder_from_json(byte_level, "decoder"),
        post_processor=post_processor_from_json(dict(byte_level, trim_offsets=False),
                                                "post_processor", bool),
        bos_token=eot, eos_token=eot)


def hf_from_wordpiece(tok) -> HFTokenizer:
    """numpyllm's `WordPieceTokenizer` as the pipeline of a BERT `tokenizer.json`."""
    specials = tok.special_tokens
    post = None
    if "[CLS]" in specials and "[SEP]" in specials:
        post = post_processor_from_json(
            {"type": "BertProcessing", "sep": ["[SEP]", specials["[SEP]"]],
             "cls": ["[CLS]", specials["[CLS]"]]}, "post_processor", lambda i: True)
    pick = lambda name: name if name in specials else None      # noqa: E731
    return HFTokenizer(
        tok.model, added=[AddedToken(name, idx, special=True) for name, idx in specials.items()],
        normalizer=normalizer_from_json({"type": "BertNormalizer", **tok.normalizer_options},
                                        "normalizer"),
        pre_tokenizer=pre_tokenizer_from_json({"type": "BertPreTokenizer"}, "pre_tokenizer"),
        decoder=decoder_from_json({"type": "WordPiece", "prefix": tok.model.prefix,
                                   "cleanup": tok.cleanup}, "decoder"),
        post_processor=post, unk_token=tok.unk_token, pad_token=pick("[PAD]"),
        bos_token=pick("[CLS]"), eos_token=pick("[SEP]"))


def hf_from_unigram(tok) -> HFTokenizer:
    """numpyllm's `UnigramTokenizer` as the pipeline of a `tokenizer.json` (Llama's way of
    writing SentencePiece's convention: a Prepend "▁" + Replace " " -> "▁" normalizer, a
    Metaspace pre-tokenizer that cuts before each "▁", byte fallback, a decoder that
    undoes them)."""
    normalizer = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": METASPACE},
        {"type": "Replace", "pattern": {"String": " "}, "content": METASPACE}]}
    pre = {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "never",
           "split": True}
    decoder = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": METASPACE}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return HFTokenizer(
        tok.model, added=[AddedToken(name, idx, special=True)
                          for name, idx in tok.special_tokens.items()],
        normalizer=normalizer_from_json(normalizer, "normalizer"),
        pre_tokenizer=pre_tokenizer_from_json(pre, "pre_tokenizer"),
        decoder=decoder_from_json(decoder, "decoder"), unk_token=tok.model.unk_token)


def _model_json(model) -> dict:
    if hasattr(model, "to_json"):               # WordPiece, Unigram
        return model.to_json()
    return {"type": "BPE", "dropout": None, "unk_token": model.unk_token,
            "continuing_subword_prefix": None, "end_of_word_suffix": None,
            "fuse_unk": model.fuse_unk, "byte_fallback": model.byte_fallback,
            "ignore_merges": model.ignore_merges,
            "vocab": dict(sorted(model.vocab.items(), key=lambda kv: kv[1])),
            "merges": [list(m) for m in model.merges_list]}


def _tokenizer_json(tok: HFTokenizer) -> dict:
    post = tok.post_processor
    post_json = (post.to_json(tok.id_to_token) if post.prefix or post.suffix or post._obj
                 else None)
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [t.to_json() for t in sorted(tok.added.tokens, key=lambda t: t.id)],
        "normalizer": tok.normalizer.to_json() if tok.normalizer else None,
        "pre_tokenizer": tok.pre_tokenizer.to_json() if tok.pre_tokenizer else None,
        "post_processor": post_json,
        "decoder": tok.decoder.to_json() if tok.decoder else None,
        "model": _model_json(tok.model),
    }


def _config_json(tok: HFTokenizer) -> dict:
    config = {"tokenizer_class": "PreTrainedTokenizerFast",
              "add_bos_token": tok.add_bos, "add_eos_token": tok.add_eos,
              "added_tokens_decoder": {str(t.id): {k: v for k, v in t.to_json().items()
                                                   if k != "id"}
                                       for t in sorted(tok.added.tokens, key=lambda t: t.id)},
              "clean_up_tokenization_spaces": False}
    for key in _SPECIAL_NAMES:
        if getattr(tok, key) is not None:
            config[key] = getattr(tok, key)
    if tok.chat_template is not None:
        config["chat_template"] = tok.chat_template
    if tok.model_max_length is not None:
        config["model_max_length"] = tok.model_max_length
    return config


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def write_hf_directory(tok, directory) -> None:
    """Write `tok` (an `HFTokenizer` or a `BPETokenizer`) into `directory` (created if
    missing): tokenizer.json, tokenizer_config.json, and for byte-level BPE vocab.json and
    merges.txt. Each file goes through a temporary file and a rename."""
    from .bpe import BPETokenizer
    from .char import CharTokenizer
    if hasattr(tok, "to_hf"):                 # WordPieceTokenizer, UnigramTokenizer
        tok = tok.to_hf()
    if isinstance(tok, CharTokenizer):
        raise TokenizerError(
            "save_hf_tokenizer: a CharTokenizer is not written as a Hugging Face tokenizer "
            "(it never reads special tokens from text, which tokenizers always does); "
            "train a BPETokenizer, or keep CharTokenizer.save")
    if isinstance(tok, BPETokenizer):
        tok = from_bpe_tokenizer(tok)
    if not isinstance(tok, HFTokenizer):
        raise TypeError(f"save_hf_tokenizer takes an HFTokenizer or a BPETokenizer, got "
                        f"{type(tok).__name__}")
    d = os.fspath(directory)
    os.makedirs(d, exist_ok=True)
    _write(os.path.join(d, "tokenizer.json"),
           json.dumps(_tokenizer_json(tok), ensure_ascii=False, indent=2) + "\n")
    _write(os.path.join(d, "tokenizer_config.json"),
           json.dumps(_config_json(tok), ensure_ascii=False, indent=2) + "\n")
    if tok.pre_tokenizer is not None and tok.pre_tokenizer.maps_bytes:
        _write(os.path.join(d, "vocab.json"),
               json.dumps(_tokenizer_json(tok)["model"]["vocab"], ensure_ascii=False) + "\n")
        _write(os.path.join(d, "merges.txt"), "#version: 0.2\n" + "".join(
            f"{a} {b}\n" for a, b in tok.model.merges_list))


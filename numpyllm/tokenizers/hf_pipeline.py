"""The steps of a Hugging Face `tokenizer.json` around the BPE model, as `tokenizers` runs them.

A `tokenizer.json` describes encoding as a pipeline, and decoding as its inverse:

    text --normalizer--> text --pre_tokenizer--> words --model--> ids --post_processor--> ids
    ids --model's vocabulary--> token strings --decoder--> text

These are the steps numpyllm implements, each read from its JSON object
(`*_from_json`, strict: a missing or mistyped field is a `VocabularyFileError` naming the file
and the field, an unknown `type` an `UnsupportedTokenizerError`) and written back
(`to_json`), with exactly the behaviour of `tokenizers` 0.23:

normalizers (a str to a str)
    NFC, NFD, NFKC, NFKD; Prepend (Llama 2's "▁" before each piece of text); Replace (a
    string or a vetted regex); Sequence.
pre-tokenizers (a piece of text to the words BPE merges within; merges never cross words)
    ByteLevel (GPT-2: optional prefix space, GPT-2's split regex, then each UTF-8 byte
    written as one printable character, `gpt2.byte_to_unicode`); Split (a regex or a string,
    behaviours Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous, invert;
    Qwen2 and Llama 3 put their own regex here before a ByteLevel without one); Metaspace
    (spaces become "▁", one "▁" prepended); Digits; Sequence.
decoders (token strings to text)
    ByteLevel; Replace; ByteFallback (runs of `<0xNN>` tokens back to UTF-8 text); Fuse
    (join); Strip; Metaspace; Sequence.
post-processors (ids to ids, only when special tokens are asked for)
    TemplateProcessing (Llama's "<s> $A"), ByteLevel (which changes only offsets), Sequence,
    BertProcessing ("[CLS] $A [SEP]").
BERT's steps (issue 19): the BertNormalizer, Lowercase and StripAccents normalizers, the
BertPreTokenizer, Whitespace and WhitespaceSplit pre-tokenizers and the WordPiece decoder
(`bert_pretokenize.py`, `wordpiece.py`).

    >>> norm = normalizer_from_json({"type": "Sequence", "normalizers": [
    ...     {"type": "Prepend", "prepend": "▁"},
    ...     {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}, "tokenizer.json")
    >>> norm("Hello world")
    '▁Hello▁world'
    >>> dec = decoder_from_json({"type": "Sequence", "decoders": [
    ...     {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    ...     {"type": "ByteFallback"}, {"type": "Fuse"},
    ...     {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}, "tokenizer.json")
    >>> dec(["▁Hello", "▁w", "<0xC3>", "<0xB6>", "rld"])
    'Hello wörld'

A regex in a file (Split, Replace) is a program for a backtracking engine: it must be a
known pattern or pass `pattern_safety.check_pattern`, as the split pattern of numpyllm's
own BPE files must.

This module gathers the public names; each kind of step has its own file:

  hf_steps.py            the byte-level alphabet, METASPACE, the patterns, reading a `type`
  hf_normalizers.py      Normalizer, normalizer_from_json
  hf_pre_tokenizers.py   PreTokenizer, pre_tokenizer_from_json
  hf_decoders.py         Decoder, decoder_from_json
  hf_post_processors.py  PostProcessor, template_json, post_processor_from_json
"""
from __future__ import annotations

from .hf_decoders import Decoder, decoder_from_json
from .hf_normalizers import Normalizer, normalizer_from_json
from .hf_post_processors import PostProcessor, post_processor_from_json, template_json
from .hf_pre_tokenizers import PreTokenizer, pre_tokenizer_from_json
from .hf_steps import METASPACE, byte_level_decode, byte_level_encode

__all__ = ["Normalizer", "PreTokenizer", "Decoder", "PostProcessor", "normalizer_from_json",
           "pre_tokenizer_from_json", "decoder_from_json", "post_processor_from_json",
           "template_json", "byte_level_encode", "byte_level_decode", "METASPACE"]

"""Tokenizers: text to token ids and back.

- `CharTokenizer`: one token per character, the vocabulary of nanoGPT's
  character-level Tiny Shakespeare.
- `BPETokenizer`: byte-level BPE as in GPT-2 and tiktoken; trainable, and loadable from
  GPT-2's published files (`BPETokenizer.from_gpt2`) or tiktoken rank files.
- `WordPieceTokenizer`: BERT's WordPiece (greedy longest match, `##` pieces, BERT's basic
  tokenizer); trainable, and loadable from BERT's `vocab.txt`.
- `UnigramTokenizer`: SentencePiece's Unigram LM (Viterbi or sampled segmentations, `▁`
  for spaces, byte fallback); trainable by EM.
- `load_tokenizer(path)`: open any tokenizer file this package writes or reads.
- `load_hf_tokenizer(directory)`, `save_hf_tokenizer(tokenizer, directory)`: Hugging Face
  tokenizer directories (`tokenizer.json`, GPT-2's `vocab.json` + `merges.txt`, the
  special tokens and chat template of `tokenizer_config.json`), as `HFTokenizer`.

    >>> from numpyllm.tokenizers import CharTokenizer
    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.decode(tok.encode("hole"))
    'hole'

One concept per file:

  char.py            CharTokenizer, and its JSON file
  bpe.py             BPETokenizer: the vocabulary, decoding, and the steps below joined
  pretokenize.py     cutting text into the chunks BPE merges within
  bpe_merge.py       encoding a chunk: merges applied by rank, and the chunk cache
  special_tokens.py  special tokens spelled in text: allowed, disallowed, cut around
  trainer.py         learning the merges from a corpus
  wordpiece.py       WordPieceTokenizer and the WordPiece model (greedy longest match)
  wordpiece_trainer.py  learning a WordPiece vocabulary (BPE merges with "##" pieces)
  bert_pretokenize.py   BERT's normalizer and pre-tokenizer
  unigram.py         UnigramTokenizer and the Unigram model (lattice, Viterbi, sampling)
  unigram_trainer.py learning Unigram pieces: seed substrings, EM, pruning
  bpe_file.py        numpyllm's BPE file format, written and read strictly
  gpt2.py            GPT-2's and tiktoken's files, the split patterns, well-known specials
  pattern_safety.py  which split patterns a file may carry (no exponential backtracking)
  hf.py              HFTokenizer: a Hugging Face tokenizer, load_hf_tokenizer, save_hf_tokenizer
  hf_files.py        tokenizer.json, vocab.json + merges.txt, tokenizer_config.json, read strictly
  hf_pipeline.py     tokenizer.json's steps around the model: the names of the five below
  hf_steps.py        what the steps share: the byte-level alphabet, patterns, a step's type
  hf_normalizers.py  tokenizer.json's normalizers (NFC ..., Prepend, Replace, BERT's)
  hf_pre_tokenizers.py  its pre-tokenizers (ByteLevel, Split, Metaspace, Digits, BERT's)
  hf_decoders.py     its decoders (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)
  hf_post_processors.py  its post-processors (TemplateProcessing, BertProcessing ...)
  sentencepiece_bpe.py  Hugging Face's BPE model: ranked merges, byte fallback, unknown token
  added_tokens.py    tokens cut out of the text before BPE (special or not, with their flags)
  chat_template.py   a conversation rendered by a Jinja chat template, in the sandbox
  _files.py          the strict-reading helpers every file reader shares
  errors.py          the exceptions (all ValueErrors)
  __init__.py        load_tokenizer
"""
from __future__ import annotations

import os

from . import gpt2
from .bpe import BPETokenizer
from .char import CharTokenizer
from .errors import (DisallowedSpecialTokenError, TokenizerError, UnknownCharacterError,
                     UnknownTokenIdError, UnsupportedTokenizerError, VocabularyFileError)
from .hf import HFTokenizer, load_hf_tokenizer, save_hf_tokenizer
from .trainer import Merge, learn_merges
from .unigram import UnigramTokenizer
from .wordpiece import WordPieceTokenizer

__all__ = ["BPETokenizer", "CharTokenizer", "HFTokenizer", "WordPieceTokenizer",
           "UnigramTokenizer", "load_tokenizer",
           "load_hf_tokenizer", "save_hf_tokenizer", "gpt2", "learn_merges",
           "Merge", "TokenizerError", "VocabularyFileError", "UnsupportedTokenizerError",
           "UnknownTokenIdError", "UnknownCharacterError", "DisallowedSpecialTokenError"]


def _json_format(path: str) -> str | None:
    """The "format" field of a numpyllm JSON tokenizer file (None if it has none)."""
    from . import _files
    from .wordpiece import MAX_FILE_BYTES, read_limited
    doc = _files.parse_json(read_limited(path, MAX_FILE_BYTES), path, "a JSON object")
    return doc.get("format") if isinstance(doc, dict) else None


def load_tokenizer(path: str | os.PathLike, *, pattern: str = "gpt2",
                   trust_pattern: bool = False):
    """Open a tokenizer, recognising the kind of file:

    - a file written by the `save` of `BPETokenizer`, `CharTokenizer`,
      `WordPieceTokenizer` or `UnigramTokenizer`;
    - BERT's `vocab.txt` (an uncased WordPiece);
    - a directory holding GPT-2's `encoder.json` and `vocab.bpe`;
    - a tiktoken `.tiktoken` rank file (split with `pattern`; no special tokens).

    A file that is malformed, truncated or inconsistent raises `VocabularyFileError` (a
    ValueError naming the file, the field and what was expected); OSError only when the
    file cannot be read. A custom split pattern in a BPE file must pass
    `pattern_safety.check_pattern` unless ``trust_pattern=True`` (see `BPETokenizer.load`).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        enc, bpe = os.path.join(path, "encoder.json"), os.path.join(path, "vocab.bpe")
        if not (os.path.isfile(enc) and os.path.isfile(bpe)):
            raise VocabularyFileError(
                f"{path}: a tokenizer directory must hold GPT-2's encoder.json and vocab.bpe")
        return BPETokenizer.from_gpt2(enc, bpe)
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"numpyllm-bpe"):
        return BPETokenizer.load(path, trust_pattern=trust_pattern)
    if head.lstrip().startswith(b"{"):
        kind = _json_format(path)
        if kind == "numpyllm-wordpiece":
            return WordPieceTokenizer.load(path)
        if kind == "numpyllm-unigram":
            return UnigramTokenizer.load(path)
        return CharTokenizer.load(path)
    if os.path.basename(path) == "vocab.txt":
        return WordPieceTokenizer.from_vocab_txt(path)
    if path.endswith(".tiktoken"):
        return BPETokenizer.from_tiktoken(path, pattern=pattern)
    raise VocabularyFileError(
        f"{path}: not a tokenizer file numpyllm knows (a numpyllm-bpe, char, wordpiece or "
        f"unigram tokenizer file, BERT's vocab.txt, a .tiktoken rank file, or a directory "
        f"with GPT-2's encoder.json and vocab.bpe)")

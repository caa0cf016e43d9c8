"""WordPiece, BERT's tokenizer: `WordPieceTokenizer` and its model `WordPiece`.

A WordPiece vocabulary holds word-initial pieces ("un", "play") and continuing pieces
written with a prefix ("##able", "##ing"). Text goes through BERT's basic tokenizer
(`bert_pretokenize.py`: clean, split CJK characters, strip accents, lowercase, cut at
spaces and punctuation), and each word is encoded by **greedy longest match first**
(Wu et al. 2016; BERT's `WordpieceTokenizer`):

    start at the word's first character; take the longest vocabulary piece that begins
    there (with "##" in front unless at the word's start); continue after it.

If at some point no piece matches, the *whole word* becomes `[UNK]` (not just the part
that failed), and so does any word longer than `max_input_chars_per_word` (100)
characters. Greedy matching is not the segmentation with fewest pieces, but it is what
BERT was trained with, so its ids are the ones a BERT checkpoint expects.

    >>> tok = WordPieceTokenizer(["[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff"])
    >>> tok.encode("Unaffable, affable")
    [3, 4, 5, 0, 6, 5]
    >>> tok.decode(tok.encode("unaffable"))
    'unaffable'
    >>> tok.encode("unaffable", add_special_tokens=True)
    [1, 3, 4, 5, 2]

(the comma is no piece of this vocabulary: its word is `[UNK]`.) Decoding joins the
pieces, glues "##" pieces to the one before and puts a space between words; BERT's
normalisation (lowercase, accents, whitespace) cannot be undone, so
``decode(encode(x)) == x`` only for text already in that form (see docs/subword.md).

Files: `save`/`load` write and read numpyllm's readable JSON (``"format":
"numpyllm-wordpiece"``: the vocabulary in id order and every setting); `from_vocab_txt`
reads BERT's `vocab.txt` (one token a line, the id is the line number); a Hugging Face
`tokenizer.json` with a WordPiece model loads through `load_hf_tokenizer`, and `to_hf`
gives the same pipeline as an `HFTokenizer` (which `save_hf_tokenizer` writes).
"""
from __future__ import annotations

import json
import os
from typing import Callable, Iterable, Mapping, Sequence

from . import _files
from .bert_pretokenize import normalize_bert, pre_tokenize_bert
from .errors import TokenizerError, UnknownTokenIdError, VocabularyFileError
from .pretokenize import cached_ids
from .wordpiece_trainer import count_words, learn_wordpiece_vocab

__all__ = ["WordPiece", "WordPieceTokenizer", "wordpiece_decode", "BERT_SPECIAL_TOKENS"]

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_FORMAT, _VERSION = "numpyllm-wordpiece", 1
MAX_VOCAB = 1 << 21
MAX_TOKEN_CHARS = 4096
MAX_FILE_BYTES = 256 << 20


def read_limited(path: str, limit: int) -> str:
    """The UTF-8 text of a file of at most `limit` bytes (`_files.read_text`, asked to
    read no more than the file holds: a read of `limit` bytes reserves them all)."""
    return _files.read_text(path, min(limit, os.path.getsize(path)))


class WordPiece:
    """The model: greedy longest-match-first over a vocabulary (Hugging Face's `WordPiece`
    model; the interface `HFTokenizer` runs its models through).

    Args:
        vocab: token -> id.
        unk_token: what a word that cannot be spelled becomes; must be in `vocab`.
        continuing_subword_prefix: marks a piece that continues a word.
        max_input_chars_per_word: a longer word is `unk_token` at once.
    """
    byte_fallback = False

    def __init__(self, vocab: Mapping[str, int], *, unk_token: str = "[UNK]",
                 continuing_subword_prefix: str = "##", max_input_chars_per_word: int = 100):
        self.vocab = dict(vocab)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        if len(self.id_to_token) != len(self.vocab):
            raise TokenizerError("two tokens of the vocabulary share an id")
        if unk_token not in self.vocab:
            raise TokenizerError(f"the unknown token {unk_token!r:.40} is not in the vocabulary "
                                 f"(WordPiece needs it for words it cannot spell)")
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word < 1:
            raise TokenizerError(f"max_input_chars_per_word must be a positive integer, got "
                                 f"{max_input_chars_per_word!r}")
        self.unk_token, self.prefix = unk_token, continuing_subword_prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        self._unk_id = self.vocab[unk_token]
        # No piece is longer than this many characters (prefix not counted), so the
        # search for the longest match starts there rather than at the word's end.
        p = len(continuing_subword_prefix)
        self._longest = max((len(t) - p if p and t.startswith(continuing_subword_prefix)
                             else len(t) for t in self.vocab), default=0)

    def tokenize(self, word: str) -> list[int]:
        """The ids of one word (a piece of text the pre-tokenizer cut out)."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [self._unk_id]
        vocab, prefix, longest = self.vocab, self.prefix, self._longest
        out, start = [], 0
        while start < n:
            end = min(n, start + longest)
            while end > start:
                piece = word[start:end] if start == 0 else prefix + word[start:end]
                idx = vocab.get(piece)
                if idx is not None:
                    break
                end -= 1
            else:
                return [self._unk_id]       # nothing matches here: the whole word is [UNK]
            out.append(idx)
            start = end
        return out

    def to_json(self) -> dict:
        """The `model` object of a `tokenizer.json`."""
        return {"type": "WordPiece", "unk_token": self.unk_token,
                "continuing_subword_prefix": self.prefix,
                "max_input_chars_per_word": self.max_input_chars_per_word,
                "vocab": dict(sorted(self.vocab.items(), key=lambda kv: kv[1]))}


_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
            (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"),
            (" 're", "'re"))


def wordpiece_decode(tokens: list[str], prefix: str = "##", cleanup: bool = True) -> list[str]:
    """Hugging Face's WordPiece decoder, token by token: a "##" piece loses its prefix, any
    other piece but the first gets a space before it; with `cleanup`, each token then has
    the spaces before punctuation and English contractions removed (" ." -> ".")."""
    out = []
    for i, t in enumerate(tokens):
        if i:
            t = t.replace(prefix, "", 1) if t.startswith(prefix) else " " + t
        if cleanup:
            for a, b in _CLEANUP:
                t = t.replace(a, b)
        out.append(t)
    return out


class WordPieceTokenizer:
    """BERT's tokenizer: BERT's basic tokenizer, then WordPiece.

    Args:
        vocab: the tokens in id order (special tokens included, as BERT's vocab.txt has
            them: [PAD] is id 0 there).
        unk_token: the token of words that cannot be spelled (must be in `vocab`).
        special_tokens: tokens that are special (never produced from text by `encode`,
            left out by ``decode(..., skip_special_tokens=True)``); a name not in `vocab` is
            appended to it. Default: those of [PAD] [UNK] [CLS] [SEP] [MASK] in `vocab`.
        continuing_subword_prefix, max_input_chars_per_word: of the model (`WordPiece`).
        lowercase, strip_accents, handle_chinese_chars, clean_text: the normalizer
            (`bert_pretokenize.normalize_bert`; uncased BERT: the defaults).
        cleanup: the decoder's clean-up of spaces before punctuation (Hugging Face's default).
    """

    def __init__(self, vocab: Sequence[str], *, unk_token: str = "[UNK]",
                 special_tokens: Sequence[str] | None = None,
                 continuing_subword_prefix: str = "##", max_input_chars_per_word: int = 100,
                 lowercase: bool = True, strip_accents: bool | None = None,
                 handle_chinese_chars: bool = True, clean_text: bool = True,
                 cleanup: bool = True):
        if isinstance(vocab, (str, Mapping)):
            raise TypeError("vocab must be a sequence of tokens in id order")
        tokens = list(vocab)
        bad = next((t for t in tokens if not isinstance(t, str) or not t), None)
        if bad is not None or len(tokens) > MAX_VOCAB:
            raise TokenizerError(f"vocabulary entries must be non-empty strings (at most "
                                 f"{MAX_VOCAB:,}), got {bad!r:.40}")
        if len(set(tokens)) != len(tokens):
            seen: set = set()
            dup = next(t for t in tokens if t in seen or seen.add(t))
            raise TokenizerError(f"token {dup!r:.40} appears twice in the vocabulary")
        if special_tokens is None:
            special_tokens = [t for t in BERT_SPECIAL_TOKENS if t in tokens]
        elif isinstance(special_tokens, str):
            raise TypeError("special_tokens must be a sequence of names, not one string")
        for s in special_tokens:
            if s not in tokens:
                tokens.append(s)
        self.model = WordPiece({t: i for i, t in enumerate(tokens)}, unk_token=unk_token,
                               continuing_subword_prefix=continuing_subword_prefix,
                               max_input_chars_per_word=max_input_chars_per_word)
        self._tokens = tokens
        self._specials = tuple(dict.fromkeys(special_tokens))
        self.normalizer_options = dict(clean_text=clean_text,
                                       handle_chinese_chars=handle_chinese_chars,
                                       strip_accents=strip_accents, lowercase=lowercase)
        self.cleanup = cleanup
        self._cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    n_vocab = vocab_size

    @property
    def vocab(self) -> list[str]:
        """The tokens in id order (a copy)."""
        return list(self._tokens)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token name -> id."""
        return {s: self.model.vocab[s] for s in self._specials}

    unk_token = property(lambda self: self.model.unk_token)

    def token_id(self, token: str) -> int:
        try:
            return self.model.vocab[token]
        except KeyError:
            raise TokenizerError(f"{token!r:.60} is not a token of this vocabulary") from None

    # -------------------------------------------------------------------- encoding
    def normalize(self, text: str) -> str:
        return normalize_bert(text, **self.normalizer_options)

    def words(self, text: str) -> list[str]:
        """The words WordPiece sees: `text` normalized and pre-tokenized."""
        return pre_tokenize_bert(self.normalize(text))

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """The ids of `text`. Special-token names in it are ordinary text ("[MASK]" is the
        words "[", "mask", "]"). `add_special_tokens` puts [CLS] first and [SEP] last, as
        BERT's inputs have them."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        ids = cached_ids(self.words(text), self._cache, self.model.tokenize)
        if add_special_tokens:
            ids = [self.token_id("[CLS]"), *ids, self.token_id("[SEP]")]
        return ids

    encode_ordinary = encode

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = False) -> str:
        """The text of `ids` (Hugging Face's WordPiece decoder)."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        tokens, specials = [], set(self._specials) if skip_special_tokens else ()
        for pos, i in enumerate(ids):
            if not isinstance(i, int) or not 0 <= i < len(self._tokens):
                raise UnknownTokenIdError(f"token id {i!r} at position {pos} is not in the "
                                          f"vocabulary (ids 0..{len(self._tokens) - 1})")
            if self._tokens[i] not in specials:
                tokens.append(self._tokens[i])
        return "".join(wordpiece_decode(tokens, self.model.prefix, self.cleanup))

    # -------------------------------------------------------------------- training
    @classmethod
    def train(cls, text: str | Iterable[str], vocab_size: int, *,
              special_tokens: Sequence[str] = BERT_SPECIAL_TOKENS, min_frequency: int = 0,
              limit_alphabet: int | None = None, unk_token: str = "[UNK]",
              progress: Callable[[int, int], None] | None = None,
              **options) -> "WordPieceTokenizer":
        """Learn a vocabulary of `vocab_size` tokens (special tokens included) from `text`
        (a str or an iterable of them), as Hugging Face's WordPieceTrainer
        (`wordpiece_trainer.py`). `options` are the constructor's (lowercase ...)."""
        if unk_token not in special_tokens:
            special_tokens = [*special_tokens, unk_token]
        norm = {k: options[k] for k in ("clean_text", "handle_chinese_chars", "strip_accents",
                                         "lowercase") if k in options}
        prefix = options.get("continuing_subword_prefix", "##")
        texts = [text] if isinstance(text, str) else text
        counts = count_words(texts, lambda t: pre_tokenize_bert(normalize_bert(t, **norm)))
        vocab = learn_wordpiece_vocab(counts, vocab_size, special_tokens=special_tokens,
                                      prefix=prefix, min_frequency=min_frequency,
                                      limit_alphabet=limit_alphabet, progress=progress)
        return cls(vocab, unk_token=unk_token, special_tokens=list(special_tokens), **options)

    # ----------------------------------------------------------------------- files
    def _settings(self) -> dict:
        return {"unk_token": self.model.unk_token,
                "continuing_subword_prefix": self.model.prefix,
                "max_input_chars_per_word": self.model.max_input_chars_per_word,
                **self.normalizer_options, "cleanup": self.cleanup}

    def save(self, path: str | os.PathLike) -> None:
        """Write numpyllm's JSON file (atomically: a temporary file, then a rename)."""
        doc = {"format": _FORMAT, "version": _VERSION, **self._settings(),
               "special_tokens": list(self._specials), "vocab": self._tokens}
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WordPieceTokenizer":
        """Read a file written by `save`. Anything malformed raises `VocabularyFileError`
        (a ValueError) naming the file and the field."""
        path = os.fspath(path)
        doc = _files.parse_json(read_limited(path, MAX_FILE_BYTES), path, "a JSON object")
        doc = _files.expect(doc, "object", path)
        _check_format(doc, path, _FORMAT, _VERSION)
        g = lambda key, kinds, default=_files.REQUIRED: _files.get_field(  # noqa: E731
            doc, key, kinds, path, default)
        vocab = g("vocab", "array")
        for i, t in enumerate(vocab):
            _files.expect(t, "string", f"{path}.vocab[{i}]")
        specials = g("special_tokens", "array")
        for i, t in enumerate(specials):
            _files.expect(t, "string", f"{path}.special_tokens[{i}]")
        try:
            return cls(vocab, special_tokens=specials, unk_token=g("unk_token", "string"),
                       continuing_subword_prefix=g("continuing_subword_prefix", "string"),
                       max_input_chars_per_word=g("max_input_chars_per_word", "integer"),
                       lowercase=g("lowercase", "boolean"),
                       strip_accents=g("strip_accents", "boolean|null"),
                       handle_chinese_chars=g("handle_chinese_chars", "boolean"),
                       clean_text=g("clean_text", "boolean"), cleanup=g("cleanup", "boolean"))
        except (TokenizerError, TypeError) as exc:
            raise VocabularyFileError(f"{path}: {exc}") from None

    @classmethod
    def from_vocab_txt(cls, path: str | os.PathLike, **options) -> "WordPieceTokenizer":
        """BERT's `vocab.txt`: one token a line, its id the line number (from 0); trailing
        whitespace of a line is not part of the token, as in Hugging Face's reader. An
        empty line, a repeated token or a file that is not UTF-8 is refused
        (`VocabularyFileError` naming the line). `options` as the constructor's (an
        uncased model by default; ``lowercase=False`` for a cased one)."""
        path = os.fspath(path)
        text = read_limited(path, MAX_FILE_BYTES)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()                          # the newline that ends the last line
        seen: dict[str, int] = {}
        for lineno, line in enumerate(lines, 1):
            token = line.rstrip()
            if not token:
                raise VocabularyFileError(f"{path}:{lineno}: expected a token, got an empty "
                                          f"line (the id of each token is its line number)")
            if len(token) > MAX_TOKEN_CHARS:
                raise VocabularyFileError(f"{path}:{lineno}: a token of {len(token):,} "
                                          f"characters (at most {MAX_TOKEN_CHARS})")
            if token in seen:
                raise VocabularyFileError(f"{path}:{lineno}: token {token!r:.40} already on "
                                          f"line {seen[token]}")
            seen[token] = lineno
        if not seen:
            raise VocabularyFileError(f"{path}: no tokens (an empty vocab.txt)")
        try:
            return cls(list(seen), **options)
        except TokenizerError as exc:
            raise VocabularyFileError(f"{path}: {exc}") from None

    def to_hf(self):
        """The same tokenizer as an `HFTokenizer` (BertNormalizer, BertPreTokenizer,
        WordPiece, [CLS] $A [SEP], WordPiece decoder; the special tokens as added tokens)."""
        from .hf_files import hf_from_wordpiece
        return hf_from_wordpiece(self)

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(vocab_size={self.vocab_size}, "
                f"special_tokens={list(self._specials)}, "
                f"lowercase={self.normalizer_options['lowercase']})")


def _check_format(doc: dict, path: str, name: str, version: int) -> None:
    if doc.get("format") != name:
        raise VocabularyFileError(f"{path}: format: not a {name} file (expected a JSON object "
                                  f"with \"format\": \"{name}\")")
    if doc.get("version") != version:
        raise VocabularyFileError(f"{path}: format version {doc.get('version')!r:.20} is not "
                                  f"supported (this numpyllm reads version {version})")

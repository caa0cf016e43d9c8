"""Hugging Face tokenizers from a model directory: `load_hf_tokenizer`, `save_hf_tokenizer`.

A Hugging Face model directory describes its tokenizer in `tokenizer.json` (the pipeline
that the `tokenizers` library runs), or in GPT-2's older pair `vocab.json` + `merges.txt`,
with `tokenizer_config.json` adding the special tokens, whether to put `<s>` first, and
the chat template. `load_hf_tokenizer(directory)` reads them into an `HFTokenizer`, which
encodes to the same ids as `tokenizers` and `transformers` and has the interface of
numpyllm's own tokenizers (`encode`, `decode`, `vocab_size`, `special_tokens`).

    >>> import tempfile
    >>> from numpyllm.tokenizers import BPETokenizer
    >>> tok = BPETokenizer(special_tokens=["<|endoftext|>"]).train("low lower lowest " * 9, 262)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_hf_tokenizer(tok, d)
    ...     hf = load_hf_tokenizer(d)
    >>> hf.encode("lowest<|endoftext|>", allowed_special="all") == tok.encode(
    ...     "lowest<|endoftext|>", allowed_special="all")
    True

Encoding one text, as `tokenizers` does it (each step is a module here):

    1. cut out the added tokens the text spells        added_tokens.py
    2. normalize each piece between them               hf_normalizers.py
    3. cut the pieces into words                       hf_pre_tokenizers.py
    4. BPE within each word (cached per word)          sentencepiece_bpe.py
    5. put the template's special tokens around it     hf_post_processors.py

The files themselves are read and written by `hf_files.py`; the chat template is rendered
by `chat_template.py`. Nothing in a directory is ever run as code: the JSON is parsed
strictly, regexes are vetted (`pattern_safety.py`) and the chat template runs in Jinja's
sandbox.
"""
from __future__ import annotations

import os
from itertools import chain
from typing import Iterable, Mapping

import regex

from .added_tokens import AddedToken, AddedTokens
from .errors import TokenizerError, UnknownTokenIdError
from .hf_pipeline import (METASPACE, Decoder, Normalizer, PostProcessor, PreTokenizer,
                          byte_level_decode, byte_level_encode)
from .sentencepiece_bpe import SentencePieceBPE
from .special_tokens import SpecialSpec

__all__ = ["HFTokenizer", "load_hf_tokenizer", "save_hf_tokenizer"]

_BYTE_TOKEN = regex.compile(r"<0x([0-9A-F]{2})>")
# Where a SentencePiece vocabulary has no token with "▁" after another character, BPE
# can never merge across the start of a "▁" run, so a long piece is cut there into words
# that are cached one by one (exactly the same ids, see `HFTokenizer.__init__`).
_SP_WORDS = regex.compile(f"{METASPACE}+[^{METASPACE}]*|[^{METASPACE}]+")
_SP_UNSAFE = regex.compile(f"[^{METASPACE}]{METASPACE}")


class _WordCache(dict):
    """word -> ids; a miss maps the word to byte-level characters if the pre-tokenizer
    left that to us, then runs BPE. Bounded, so unique words cannot eat the memory."""

    def __init__(self, model: SentencePieceBPE, map_bytes: bool, limit: int = 1 << 18):
        super().__init__()
        self._tokenize, self._map, self._limit = model.tokenize, map_bytes, limit

    def __missing__(self, word: str) -> list[int]:
        ids = self._tokenize(byte_level_encode(word) if self._map else word)
        if len(self) < self._limit:
            self[word] = ids
        return ids


class HFTokenizer:
    """A Hugging Face tokenizer (a BPE, WordPiece or Unigram model: `SentencePieceBPE`,
    `wordpiece.WordPiece`, `unigram.Unigram`): the steps of its `tokenizer.json` and the settings of
    its `tokenizer_config.json`. Build it with `load_hf_tokenizer`, `from_bpe` (numpyllm's
    byte-level `BPETokenizer`), or from the parts:

    Args:
        model: the model: `tokenize(word) -> ids`, `vocab`, `id_to_token`, `byte_fallback`.
        added: the added tokens (special or not), matched in the text before BPE.
        normalizer, pre_tokenizer, post_processor, decoder: the pipeline steps
            (`hf_pipeline.py`), each optional.
        bos_token, eos_token, unk_token, pad_token: names of tokens (None when absent).
        chat_template: a Jinja template (`apply_chat_template`).
        add_bos_token, add_eos_token: when given (tokenizer_config.json), they replace the
            post-processor, as `transformers` does; None keeps it.
    """

    def __init__(self, model: SentencePieceBPE, *, added: Iterable[AddedToken] = (),
                 normalizer: Normalizer | None = None, pre_tokenizer: PreTokenizer | None = None,
                 post_processor: PostProcessor | None = None, decoder: Decoder | None = None,
                 bos_token: str | None = None, eos_token: str | None = None,
                 unk_token: str | None = None, pad_token: str | None = None,
                 chat_template: str | None = None, add_bos_token: bool | None = None,
                 add_eos_token: bool | None = None, model_max_length: int | None = None):
        self.model = model
        self.added = AddedTokens(added)
        self.normalizer, self.pre_tokenizer, self.decoder = normalizer, pre_tokenizer, decoder
        self.chat_template = chat_template
        self.model_max_length = model_max_length
        self.bos_token, self.eos_token, self.unk_token, self.pad_token = (
            bos_token, eos_token, unk_token, pad_token)
        for name in (bos_token, eos_token, unk_token, pad_token):
            if name is not None:
                self.token_to_id(name)          # each must name a token
        post_processor = post_processor or PostProcessor([], [])
        if add_bos_token is not None or add_eos_token is not None:
            prefix = [self.bos_token_id] if add_bos_token and bos_token is not None else []
            suffix = [self.eos_token_id] if add_eos_token and eos_token is not None else []
            if (prefix, suffix) != (post_processor.prefix, post_processor.suffix):
                post_processor = PostProcessor(prefix, suffix)
        self.post_processor = post_processor
        maps_bytes = pre_tokenizer is not None and pre_tokenizer.maps_bytes
        self._words = _WordCache(model, maps_bytes)
        # (BPE only: a Unigram's Viterbi sums scores over the whole word, and cutting it
        # could round a tie the other way.)
        self._sp_words = (isinstance(model, SentencePieceBPE) and not maps_bytes
                          and METASPACE in model.vocab
                          and not any(_SP_UNSAFE.search(t) for t in model.vocab))
        kinds = decoder.kinds if decoder is not None else []
        self._byte_level = "byte_level" in kinds
        self._metaspace = "metaspace" in kinds or "replace" in kinds

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        """One more than the largest id, added tokens included (the embedding size)."""
        return max(chain(self.model.id_to_token, self.added.by_id), default=-1) + 1

    @property
    def special_tokens(self) -> dict[str, int]:
        """The special added tokens, name -> id."""
        return dict(self.added.specials)

    def token_to_id(self, token: str) -> int:
        """The id of a token: an added token's content, or a string of the vocabulary."""
        hit = self.added.by_content.get(token)
        if hit is not None:
            return hit.id
        try:
            return self.model.vocab[token]
        except KeyError:
            raise TokenizerError(f"{token!r:.60} is not a token of this vocabulary") from None

    def id_to_token(self, token_id: int) -> str:
        """The string of an id (an added token's content, or the vocabulary's string)."""
        hit = self.added.by_id.get(token_id)
        if hit is not None:
            return hit.content
        try:
            return self.model.id_to_token[token_id]
        except (KeyError, TypeError):
            raise UnknownTokenIdError(f"token id {token_id!r} is not in the vocabulary (ids "
                                      f"0..{self.vocab_size - 1})") from None

    def _id_of(self, name: str | None) -> int | None:
        return None if name is None else self.token_to_id(name)

    bos_token_id = property(lambda self: self._id_of(self.bos_token),
                            doc="The id of the beginning-of-sequence token, or None.")
    eos_token_id = property(lambda self: self._id_of(self.eos_token),
                            doc="The id of the end-of-sequence token, or None.")
    unk_token_id = property(lambda self: self._id_of(self.unk_token),
                            doc="The id of the unknown token, or None.")
    pad_token_id = property(lambda self: self._id_of(self.pad_token),
                            doc="The id of the padding token, or None.")

    @property
    def add_bos(self) -> bool:
        """Whether `encode` puts the BOS token first (Llama 2: yes; GPT-2, Qwen2: no)."""
        return self.bos_token_id is not None and self.bos_token_id in self.post_processor.prefix

    @property
    def add_eos(self) -> bool:
        """Whether `encode` puts the EOS token last."""
        return self.eos_token_id is not None and self.eos_token_id in self.post_processor.suffix

    # -------------------------------------------------------------------- encoding
    def encode(self, text: str, *, allowed_special: SpecialSpec = (),
               disallowed_special: SpecialSpec = "all",
               add_special_tokens: bool = True) -> list[int]:
        """The ids of `text`, as `tokenizers`' ``encode(text).ids``.

        Special tokens spelled in the text follow numpyllm's rule (`special_tokens.py`):
        ``allowed_special="all"`` gives `tokenizers`' behaviour (each becomes its id);
        by default such text raises `DisallowedSpecialTokenError`; with
        ``disallowed_special=()`` it is ordinary text (`tokenizers`' encode_special_tokens).
        Added tokens that are not special are always cut out, as in `tokenizers`.
        `add_special_tokens` puts the post-processor's tokens around the text (Llama 2's
        `<s>` first), as `transformers` does by default.

        >>> from numpyllm.tokenizers import BPETokenizer
        >>> hf = HFTokenizer.from_bpe(BPETokenizer(special_tokens=["<|endoftext|>"]))
        >>> hf.encode("hi<|endoftext|>", allowed_special="all")
        [104, 105, 256]
        """
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        specials = self.added.specials
        allowed = specials.allowed(text, allowed_special, disallowed_special)
        skip = set(specials).difference(allowed)
        ids: list[int] = []
        added, normalize = self.added, self.normalizer
        for token, start, end in added.find(text, added.raw, skip):
            if token is not None:
                ids.append(token.id)
            elif end > start:
                piece = text[start:end]
                piece = normalize(piece) if normalize is not None else piece
                for token2, s, e in added.find(piece, added.normalized, skip):
                    if token2 is not None:
                        ids.append(token2.id)
                    elif e > s:
                        ids += self._encode_piece(piece[s:e], start == 0 and s == 0)
        if add_special_tokens:
            ids = self.post_processor.prefix + ids + self.post_processor.suffix
        return ids

    def _encode_piece(self, piece: str, at_start: bool) -> list[int]:
        """Steps 3 and 4 for one normalized piece between added tokens."""
        words = self.pre_tokenizer(piece, at_start) if self.pre_tokenizer else [piece]
        if self._sp_words:
            words = [w for word in words for w in _SP_WORDS.findall(word)]
        return list(chain.from_iterable(map(self._words.__getitem__, words)))

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of `text` with special-token names as ordinary text and no template
        tokens around it."""
        return self.encode(text, disallowed_special=(), add_special_tokens=False)

    # -------------------------------------------------------------------- decoding
    def _tokens(self, ids, skip_special_tokens: bool) -> list[str]:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        by_id, vocab = self.added.by_id, self.model.id_to_token
        out = []
        for pos, i in enumerate(ids):
            hit = by_id.get(i) if isinstance(i, int) else None
            if hit is not None:
                if not (skip_special_tokens and hit.special):
                    out.append(hit.content)
                continue
            token = vocab.get(i) if isinstance(i, int) else None
            if token is None:
                raise UnknownTokenIdError(
                    f"token id {i!r} at position {pos} is not in the vocabulary (ids "
                    f"0..{self.vocab_size - 1})")
            out.append(token)
        return out

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = False) -> str:
        """The text of `ids`, through the decoder (`tokenizers`' ``decode``; special tokens
        are kept unless `skip_special_tokens`, as in `transformers`)."""
        tokens = self._tokens(ids, skip_special_tokens)
        return self.decoder(tokens) if self.decoder is not None else " ".join(tokens)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes the ids stand for, token by token, so a stream can hold back a
        character cut in two (`numpyllm.generate.TextDecoder`). Equal to
        ``decode(ids).encode()`` except where the decoder treats the start of a text
        specially (SentencePiece drops the space of the first "▁")."""
        tokens = self._tokens(ids, False)
        if self._byte_level:
            return b"".join(map(byte_level_decode, tokens))
        if not self._metaspace:
            return self.decode(ids).encode("utf-8")
        out = []
        for t in tokens:
            m = _BYTE_TOKEN.fullmatch(t) if self.model.byte_fallback else None
            out.append(bytes([int(m.group(1), 16)]) if m else
                       t.replace(METASPACE, " ").encode("utf-8"))
        return b"".join(out)

    # ------------------------------------------------------------------ chat, files
    def apply_chat_template(self, messages: list[Mapping], add_generation_prompt: bool = False,
                            tokenize: bool = False, **kwargs) -> str | list[int]:
        """Render `messages` ([{"role": ..., "content": ...}, ...]) with the directory's
        chat template, as `transformers`' ``apply_chat_template``: the template sees
        `messages`, `add_generation_prompt`, the special tokens' names (`bos_token` ...)
        and `kwargs`. With ``tokenize=True``, the ids of the text (special tokens allowed,
        no template tokens added, as in `transformers`). Needs jinja2
        (``pip install numpyllm[chat]``); see `chat_template.py`."""
        from .chat_template import render_chat_template
        if self.chat_template is None:
            raise TokenizerError("this tokenizer has no chat template (tokenizer_config.json "
                                 "has no chat_template)")
        names = {k: v for k, v in (("bos_token", self.bos_token), ("eos_token", self.eos_token),
                                   ("unk_token", self.unk_token), ("pad_token", self.pad_token))
                 if v is not None}
        text = render_chat_template(self.chat_template, messages,
                                    add_generation_prompt=add_generation_prompt,
                                    **{**names, **kwargs})
        if tokenize:
            return self.encode(text, allowed_special="all", add_special_tokens=False)
        return text

    def save(self, directory: str | os.PathLike) -> None:
        """`save_hf_tokenizer(self, directory)`."""
        save_hf_tokenizer(self, directory)

    @classmethod
    def from_bpe(cls, tokenizer) -> "HFTokenizer":
        """numpyllm's byte-level `BPETokenizer` as a Hugging Face tokenizer with the same ids
        (see `hf_files.from_bpe_tokenizer`)."""
        from .hf_files import from_bpe_tokenizer
        return from_bpe_tokenizer(tokenizer)

    def __repr__(self) -> str:
        return (f"HFTokenizer(vocab_size={self.vocab_size}, added_tokens={len(self.added)}, "
                f"bos={self.bos_token!r}, eos={self.eos_token!r}, add_bos={self.add_bos})")


def load_hf_tokenizer(directory: str | os.PathLike) -> HFTokenizer:
    """The tokenizer of a Hugging Face model directory: `tokenizer.json` if present, else
    `vocab.json` + `merges.txt`; with `tokenizer_config.json` and `special_tokens_map.json`
    where present. Anything malformed raises `VocabularyFileError` (a ValueError) naming
    the file and the field; a component numpyllm does not implement raises
    `UnsupportedTokenizerError`. See `hf_files.read_hf_directory`."""
    from .hf_files import read_hf_directory
    return read_hf_directory(directory)


def save_hf_tokenizer(tokenizer, directory: str | os.PathLike) -> None:
    """Write `tokenizer` (an `HFTokenizer`, or numpyllm's `BPETokenizer`) into `directory`
    as `tokenizer.json` and `tokenizer_config.json` (and, for byte-level BPE, GPT-2's
    `vocab.json` and `merges.txt`), which `tokenizers` and `transformers` load to the same
    ids. A `CharTokenizer` is refused. See `hf_files.write_hf_directory`."""
    from .hf_files import write_hf_directory
    write_hf_directory(tokenizer, directory)

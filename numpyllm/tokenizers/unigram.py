"""The Unigram language-model tokenizer (Kudo 2018; SentencePiece): `UnigramTokenizer`.

A Unigram vocabulary gives each piece x a log-probability score s(x) = log p(x), and a
word's segmentations x_1 .. x_k are scored as if the pieces were drawn independently:

    log P(x_1 .. x_k) = s(x_1) + ... + s(x_k)

Every way to cut a word into vocabulary pieces is a path through its **lattice**: a node
(start, end, piece) for each piece that spells word[start:end], an edge where one ends and
the next begins. Encoding is the **Viterbi** path, the best-scoring segmentation, found
left to right in O(length x longest piece):

    best[0] = 0;  best[e] = max over nodes (b, e, x) of best[b] + s(x)

**Subword regularisation** (Kudo 2018, section 3) samples a segmentation instead, with
probability proportional to P(segmentation)^alpha: forward filtering computes
alpha_e = logsumexp over nodes (b, e, x) of alpha_b + alpha*s(x), and backward sampling
walks from the end, picking the node into e with probability
exp(alpha_b + alpha*s(x) - alpha_e). alpha -> 0 is uniform over segmentations,
large alpha the Viterbi path.

Text around the model follows SentencePiece's whitespace convention: a space is the piece
character "▁" (U+2581) and belongs to the word after it, one "▁" goes before the text, and
words are cut before each "▁" ("Hello world" -> "▁Hello", "▁world"). With **byte
fallback** (the default here) a character that no piece spells becomes the tokens of its
UTF-8 bytes `<0xNN>`, so nothing is unknown and ``decode(encode(x)) == x`` for every text
without "▁" in it; without it, a run of such characters is one `<unk>`.

    >>> tok = UnigramTokenizer([("<unk>", 0.0), ("▁", -2.0), ("▁h", -3.0), ("i", -2.0),
    ...                         ("h", -3.0), ("▁hi", -4.0)], byte_fallback=False)
    >>> [tok.vocab[i] for i in tok.encode("hi hi")]
    ['▁hi', '▁hi']
    >>> tok.decode(tok.encode("hi hi"))
    'hi hi'

The model here (`Unigram`) encodes exactly as Hugging Face's `Unigram` model (ties, the
unknown-token score `min score - 10`, the fusing of unknown characters, byte fallback), so a
`tokenizer.json` of that kind loads through `load_hf_tokenizer` to the same ids. Training
is `unigram_trainer.py`.
"""
from __future__ import annotations

import json
import math
import os
from typing import Callable, Iterable, Sequence

import numpy as np

from . import _files
from .errors import TokenizerError, UnknownTokenIdError, VocabularyFileError
from .pretokenize import cached_ids
from .sentencepiece_bpe import BYTE_TOKENS

__all__ = ["Unigram", "UnigramTokenizer", "UNK_PENALTY"]

UNK_PENALTY = 10.0            # an unknown character scores min(score) - 10, as in SentencePiece
_FORMAT, _VERSION = "numpyllm-unigram", 1
METASPACE = "\u2581"
MAX_PIECES = 1 << 21


def best_path(back: list) -> list[tuple[int, int, int]]:
    """Follow Viterbi's back-pointers from the end of the word: ``back[e] = (b, id)``, the
    best last node ending at e; returns the (start, end, id) nodes in order."""
    out, e = [], len(back) - 1
    while e > 0:
        b, idx = back[e]
        out.append((b, e, idx))
        e = b
    return out[::-1]


class Unigram:
    """The model: pieces with scores, Viterbi encoding of one word, sampling, lattices.

    Args:
        pieces: (piece, score) pairs in id order.
        unk_id: the id of the unknown piece (None: an unknown character is an error).
        byte_fallback: unknown characters become their `<0xNN>` byte tokens when all of
            them are in the vocabulary.
        unmatched: ids never matched against text (numpyllm's own tokenizers pass their
            special and byte tokens, so text spelling "<s>" is not the token <s>; a
            Hugging Face file matches every piece, as `tokenizers` does).
    """

    def __init__(self, pieces: Sequence[tuple[str, float]], *, unk_id: int | None = None,
                 byte_fallback: bool = False, unmatched: Iterable[int] = ()):
        pieces = list(pieces)
        if not pieces:
            raise TokenizerError("a Unigram vocabulary needs at least one piece")
        self.vocab: dict[str, int] = {}
        for i, (piece, score) in enumerate(pieces):
            if not isinstance(piece, str) or not piece:
                raise TokenizerError(f"piece {i}: expected a non-empty string, got {piece!r:.40}")
            if not (isinstance(score, (int, float)) and math.isfinite(score)):
                raise TokenizerError(f"piece {i} ({piece!r:.40}): expected a finite score, "
                                     f"got {score!r:.40}")
            if piece in self.vocab:
                raise TokenizerError(f"piece {piece!r:.40} appears twice (ids "
                                     f"{self.vocab[piece]} and {i})")
            self.vocab[piece] = i
        if unk_id is not None and not (isinstance(unk_id, int) and 0 <= unk_id < len(pieces)):
            raise TokenizerError(f"unk_id {unk_id!r} is not the id of a piece (0.."
                                 f"{len(pieces) - 1})")
        self.pieces = [p for p, _ in pieces]
        self.scores = [float(s) for _, s in pieces]
        self.id_to_token = dict(enumerate(self.pieces))
        self.unk_id, self.byte_fallback = unk_id, byte_fallback
        self.unk_token = None if unk_id is None else self.pieces[unk_id]
        self.min_score = min(self.scores)
        self.unk_score = self.min_score - UNK_PENALTY
        skip = set(unmatched)
        self._match = {p: i for p, i in self.vocab.items() if i not in skip}
        self._longest = max(map(len, self._match), default=1)
        # Every proper prefix of a piece: the lattice stops extending a substring that
        # begins no piece (the trie search of SentencePiece and tokenizers, as a set).
        self._prefixes = {p[:k] for p in self._match for k in range(1, len(p))}
        self._bytes = [self.vocab.get(t) for t in BYTE_TOKENS]

    # ------------------------------------------------------------------- lattice
    def lattice(self, word: str) -> list[list[tuple[int, int, float]]]:
        """``nodes[start]``: the (end, id, score) of each piece beginning at `start`, by
        increasing end, and an unknown node (id `unk_id`, or -1 without one) for a
        character no one-character piece spells (Hugging Face's `populate_nodes`)."""
        match, scores, prefixes, n = self._match, self.scores, self._prefixes, len(word)
        unk = -1 if self.unk_id is None else self.unk_id
        nodes = []
        for b in range(n):
            here = []
            for e in range(b + 1, min(n, b + self._longest) + 1):
                sub = word[b:e]
                idx = match.get(sub)
                if idx is not None:
                    here.append((e, idx, scores[idx]))
                if sub not in prefixes:
                    break
            if not here or here[0][0] != b + 1:
                here.insert(0, (b + 1, unk, self.unk_score))
            nodes.append(here)
        return nodes

    def viterbi(self, word: str) -> list[tuple[int, int, int]]:
        """The best segmentation as (start, end, id) nodes; on a tie the node found first
        (by start, then end) wins, as in Hugging Face's `encode_optimized`."""
        # `lattice` and the relaxation in one loop (encoding's hot path).
        match, scores, prefixes, n = self._match, self.scores, self._prefixes, len(word)
        unk = -1 if self.unk_id is None else self.unk_id
        best = [0.0] + [-math.inf] * n
        back: list = [None] * (n + 1)
        for b in range(n):
            base, single = best[b], False
            for e in range(b + 1, min(n, b + self._longest) + 1):
                sub = word[b:e]
                idx = match.get(sub)
                if idx is not None:
                    single = single or e == b + 1
                    cand = scores[idx] + base
                    if back[e] is None or cand > best[e]:
                        best[e], back[e] = cand, (b, idx)
                if sub not in prefixes:
                    break
            if not single:                  # the unknown node, after the pieces
                cand = self.unk_score + base
                if back[b + 1] is None or cand > best[b + 1]:
                    best[b + 1], back[b + 1] = cand, (b, unk)
        return best_path(back)

    def _ids(self, word: str, nodes: list[tuple[int, int, int]]) -> list[int]:
        """Node strings to ids, as Hugging Face's `Unigram::tokenize`: adjacent unknown
        nodes are fused into one string; a string that is no piece becomes its byte tokens
        (byte fallback) or the unknown id."""
        strings: list[tuple[str, bool]] = []
        for b, e, idx in nodes:
            unknown = idx == self.unk_id or idx < 0
            if unknown and strings and strings[-1][1]:
                strings[-1] = (strings[-1][0] + word[b:e], True)
            else:
                strings.append((word[b:e], unknown))
        out = []
        for s, _ in strings:
            idx = self._match.get(s)       # (a fused unknown run may spell a piece)
            if idx is not None:
                out.append(idx)
                continue
            if self.byte_fallback:
                byte_ids = [self._bytes[b] for b in s.encode("utf-8")]
                if None not in byte_ids:
                    out += byte_ids
                    continue
            if self.unk_id is None:
                raise TokenizerError(f"{s[:20]!r} is spelled by no piece, and the vocabulary "
                                     f"has no unknown token")
            out.append(self.unk_id)
        return out

    def tokenize(self, word: str) -> list[int]:
        """The ids of one word's Viterbi segmentation."""
        return self._ids(word, self.viterbi(word)) if word else []

    def sample(self, word: str, alpha: float, rng: np.random.Generator) -> list[int]:
        """The ids of a segmentation drawn with probability proportional to
        P(segmentation)**alpha (forward filtering, backward sampling)."""
        if not word:
            return []
        n = len(word)
        lat = self.lattice(word)
        into: list[list[tuple[int, int, float]]] = [[] for _ in range(n + 1)]
        fwd = [0.0] + [-math.inf] * n
        for b, here in enumerate(lat):
            for e, idx, score in here:
                into[e].append((b, idx, alpha * score))
        for e in range(1, n + 1):                       # forward: log-sum-exp into e
            terms = [fwd[b] + w for b, _, w in into[e]]
            m = max(terms)
            fwd[e] = m + math.log(sum(math.exp(t - m) for t in terms))
        nodes, e = [], n
        while e > 0:                                    # backward: sample the node into e
            cands = into[e]
            logits = np.array([fwd[b] + w - fwd[e] for b, _, w in cands])
            p = np.exp(logits - logits.max())
            k = int(rng.choice(len(cands), p=p / p.sum()))
            b, idx, _ = cands[k]
            nodes.append((b, e, idx))
            e = b
        return self._ids(word, nodes[::-1])

    def to_json(self) -> dict:
        """The `model` object of a `tokenizer.json`."""
        return {"type": "Unigram", "unk_id": self.unk_id, "byte_fallback": self.byte_fallback,
                "vocab": [[p, s] for p, s in zip(self.pieces, self.scores)]}


class UnigramTokenizer:
    """SentencePiece's Unigram tokenizer: "▁" for spaces, words cut before each "▁",
    Viterbi (or sampled) segmentation, byte fallback.

    Args:
        pieces: (piece, score) in id order: the ordinary pieces, and any of the tokens
            below (those missing are appended: the unknown token, the special tokens, the
            256 byte tokens when `byte_fallback`), which are never matched against text.
        unk_token, special_tokens, byte_fallback: as above.
    """

    def __init__(self, pieces: Sequence[tuple[str, float]], *, unk_token: str = "<unk>",
                 special_tokens: Sequence[str] = (), byte_fallback: bool = True):
        if isinstance(special_tokens, str):
            raise TypeError("special_tokens must be a sequence of names, not one string")
        pieces = [(p, s) for p, s in pieces]
        have = {p for p, _ in pieces}
        extra = [unk_token, *special_tokens] + (list(BYTE_TOKENS) if byte_fallback else [])
        for name in dict.fromkeys(extra):
            if name not in have:
                pieces.append((name, 0.0))
                have.add(name)
        index = {p: i for i, (p, _) in enumerate(pieces)}
        self._specials = tuple(dict.fromkeys(s for s in special_tokens if s != unk_token))
        unmatched = {index[name] for name in dict.fromkeys(extra)}
        self.model = Unigram(pieces, unk_id=index[unk_token], byte_fallback=byte_fallback,
                             unmatched=unmatched)
        self._cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        return len(self.model.pieces)

    n_vocab = vocab_size

    @property
    def vocab(self) -> list[str]:
        """The pieces in id order (a copy)."""
        return list(self.model.pieces)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token name -> id (the unknown token included)."""
        names = (self.model.unk_token, *self._specials)
        return {s: self.model.vocab[s] for s in names}

    unk_token = property(lambda self: self.model.unk_token)
    byte_fallback = property(lambda self: self.model.byte_fallback)

    def token_id(self, token: str) -> int:
        try:
            return self.model.vocab[token]
        except KeyError:
            raise TokenizerError(f"{token!r:.60} is not a token of this vocabulary") from None

    # -------------------------------------------------------------------- encoding
    @staticmethod
    def words(text: str) -> list[str]:
        """The words the model sees: "▁" before the text, spaces as "▁", cut before each
        "▁" (`tokenizers`' Prepend + Replace normalizer and Metaspace pre-tokenizer)."""
        if not text:
            return []
        text = METASPACE + text.replace(" ", METASPACE)
        starts = [i for i, c in enumerate(text) if c == METASPACE]
        return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]

    def encode(self, text: str, *, alpha: float | None = None,
               rng: np.random.Generator | None = None) -> list[int]:
        """The ids of `text`: each word's Viterbi segmentation, or with `alpha` a sampled
        one (subword regularisation; needs `rng`, an `np.random.Generator`). Special-token
        names in the text are ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        if alpha is not None:
            if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
                raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
            if rng is None:
                raise ValueError("sampling (alpha) needs rng, an np.random.Generator")
            return [i for w in self.words(text) for i in self.model.sample(w, alpha, rng)]
        ids = cached_ids(self.words(text), self._cache, self.model.tokenize)
        return ids

    encode_ordinary = encode

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of `ids`, token by token: "▁" a space, byte tokens their byte, special
        tokens their name (so a stream can decode one token at a time,
        `numpyllm.generate.TextDecoder`). `decode` also drops the space of the first "▁"."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        pieces, byte_ids = self.model.pieces, self.model._bytes
        by_byte = {i: b for b, i in enumerate(byte_ids) if i is not None} if (
            self.model.byte_fallback) else {}
        out = bytearray()
        for pos, i in enumerate(ids):
            if not isinstance(i, int) or not 0 <= i < len(pieces):
                raise UnknownTokenIdError(f"token id {i!r} at position {pos} is not in the "
                                          f"vocabulary (ids 0..{len(pieces) - 1})")
            b = by_byte.get(i)
            if b is not None:
                out.append(b)
            else:
                out += pieces[i].replace(METASPACE, " ").encode("utf-8")
        return bytes(out)

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """The text of `ids`, without the space of the "▁" `encode` put first (invalid UTF-8
        from byte tokens decoded with `errors`)."""
        raw = self.decode_bytes(ids)
        return (raw[1:] if raw[:1] == b" " else raw).decode("utf-8", errors)

    # -------------------------------------------------------------------- training
    @classmethod
    def train(cls, text: str | Iterable[str], vocab_size: int, *,
              special_tokens: Sequence[str] = (), unk_token: str = "<unk>",
              byte_fallback: bool = True, progress: Callable[[int, int], None] | None = None,
              **trainer_options) -> "UnigramTokenizer":
        """Learn pieces from `text` (a str or an iterable of them) by EM with pruning
        (`unigram_trainer.train_unigram`) until the vocabulary, special and byte tokens
        included, holds `vocab_size` tokens."""
        from .unigram_trainer import train_unigram
        reserved = len({unk_token, *special_tokens}) + (256 if byte_fallback else 0)
        if vocab_size <= reserved:
            raise ValueError(f"vocab_size {vocab_size} leaves no room for pieces after the "
                             f"{reserved} unknown, special and byte tokens")
        texts = [text] if isinstance(text, str) else text
        counts: dict[str, int] = {}
        for t in texts:
            for w in cls.words(t):
                counts[w] = counts.get(w, 0) + 1
        pieces = train_unigram(counts, vocab_size - reserved, progress=progress,
                               **trainer_options)
        return cls([(unk_token, 0.0), *((s, 0.0) for s in special_tokens), *pieces],
                   unk_token=unk_token, special_tokens=special_tokens,
                   byte_fallback=byte_fallback)

    # ----------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """Write numpyllm's JSON file (atomically): the pieces and scores in id order."""
        m = self.model
        doc = {"format": _FORMAT, "version": _VERSION, "unk_token": m.unk_token,
               "byte_fallback": m.byte_fallback, "special_tokens": list(self._specials),
               "pieces": [[p, s] for p, s in zip(m.pieces, m.scores)]}
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=0)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "UnigramTokenizer":
        """Read a file written by `save`; anything malformed raises `VocabularyFileError`
        naming the file and the field."""
        from .wordpiece import MAX_FILE_BYTES, _check_format, read_limited
        path = os.fspath(path)
        doc = _files.expect(_files.parse_json(read_limited(path, MAX_FILE_BYTES), path,
                                              "a JSON object"), "object", path)
        _check_format(doc, path, _FORMAT, _VERSION)
        pieces = _files.get_field(doc, "pieces", "array", path)
        if len(pieces) > MAX_PIECES:
            raise VocabularyFileError(f"{path}.pieces: {len(pieces):,} pieces (at most "
                                      f"{MAX_PIECES:,})")
        out = []
        for i, item in enumerate(pieces):
            at = f"{path}.pieces[{i}]"
            if not (isinstance(item, list) and len(item) == 2):
                raise VocabularyFileError(f"{at}: expected a pair [piece, score]")
            out.append((_files.expect(item[0], "string", f"{at}[0]"),
                        _files.expect(item[1], "number", f"{at}[1]")))
        specials = _files.get_field(doc, "special_tokens", "array", path)
        for i, s in enumerate(specials):
            _files.expect(s, "string", f"{path}.special_tokens[{i}]")
        try:
            return cls(out, unk_token=_files.get_field(doc, "unk_token", "string", path),
                       special_tokens=specials,
                       byte_fallback=_files.get_field(doc, "byte_fallback", "boolean", path))
        except (TokenizerError, TypeError) as exc:
            raise VocabularyFileError(f"{path}: {exc}") from None

    def to_hf(self):
        """The same tokenizer as an `HFTokenizer` (see `hf_files.hf_from_unigram`)."""
        from .hf_files import hf_from_unigram
        return hf_from_unigram(self)

    def __repr__(self) -> str:
        return (f"UnigramTokenizer(vocab_size={self.vocab_size}, "
                f"special_tokens={list(self.special_tokens)}, "
                f"byte_fallback={self.byte_fallback})")

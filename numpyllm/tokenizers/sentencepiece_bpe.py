"""BPE over Unicode symbols with byte fallback: SentencePiece's BPE, as Hugging Face runs it.

Byte-level BPE (`bpe.py`) starts from the 256 bytes, so it never meets a character it
cannot spell. SentencePiece's BPE (Llama 2, Mistral, TinyLlama) starts from **characters**:
its base vocabulary is the characters seen in training (a few hundred), and merges join
them into longer pieces. Spaces are written `▁` (U+2581) and belong to the word after
them, so "Hello world" is the pieces `▁Hello ▁world`. A character outside the base
vocabulary (a rare CJK character, an emoji) has two possible fates:

- **byte fallback**: the vocabulary also holds 256 tokens `<0x00>` ... `<0xFF>`, and the
  character becomes the tokens of its UTF-8 bytes: "😀" -> `<0xF0> <0x9F> <0x98> <0x80>`.
  Nothing is lost, and decoding turns consecutive byte tokens back into text;
- otherwise the **unknown token** (`<unk>`) stands in for it; with `fuse_unk` a run of
  unknown characters is one `<unk>`.

Encoding one word (a piece of text that merges never cross) with Hugging Face's `BPE`
model, the algorithm here:

1. if `ignore_merges` is set and the whole word is a token, that token is the answer;
2. each character becomes its token, or its byte tokens, or `<unk>`, as above;
3. the merges are a ranked list of pairs `(left, right)`; among adjacent pairs that are
   in the list, merge the one of lowest rank (the leftmost one on a tie) into the token
   `left + right`; repeat until no adjacent pair is in the list.

    >>> vocab = {"<unk>": 0, "▁": 1, "l": 2, "o": 3, "w": 4, "lo": 5, "▁lo": 6, "▁low": 7}
    >>> vocab |= {f"<0x{b:02X}>": 8 + b for b in range(256)}
    >>> bpe = SentencePieceBPE(vocab, [("l", "o"), ("▁", "lo"), ("▁lo", "w")],
    ...                        unk_token="<unk>", byte_fallback=True)
    >>> [bpe.id_to_token[i] for i in bpe.tokenize("▁low")]
    ['▁low']
    >>> [bpe.id_to_token[i] for i in bpe.tokenize("▁lol!")]     # '!' is no token: its byte
    ['▁lo', 'l', '<0x21>']

Step 3 is the merge rule of the original BPE paper, and it differs from tiktoken's rule
in `bpe_merge.py` (merge the adjacent pair whose *concatenation* has the lowest rank):
here only the listed pairs merge, so a token reachable from two different splits is made
only from the one its merge names. GPT-2's files give the same ids under both rules;
Hugging Face runs every `tokenizer.json` BPE through this one, byte-level files too, whose
"characters" are the 256 printable stand-ins for bytes of `gpt2.byte_to_unicode` (so they
never need the fallback).

Decoding is the inverse, done by the tokenizer's decoder steps (`hf_decoders.py`): token
strings are concatenated, `▁` becomes a space again, and each run of byte tokens is
turned back into text (`<0xC3> <0xA9>` -> "é"; a run that is not valid UTF-8 becomes one
U+FFFD per byte token).
"""
from __future__ import annotations

import heapq
from typing import Mapping, Sequence

__all__ = ["SentencePieceBPE", "merge_symbols", "byte_token", "BYTE_TOKENS"]

# The byte-fallback tokens, as Hugging Face spells them (Rust's format!("<{:#04X}>", b)).
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))


def byte_token(b: int) -> str:
    """The name of the byte-fallback token of byte `b`: ``byte_token(10) == '<0x0A>'``."""
    return BYTE_TOKENS[b]


def merge_symbols(ids: list[int], merges: Mapping[tuple[int, int], tuple[int, int]]
                  ) -> list[int]:
    """Merge a word's symbols (token ids) by the ranked pair list; returns the new ids.

    `merges` maps a pair of ids ``(left, right)`` to ``(rank, merged id)``. This is
    Hugging Face's `Word::merge_all`, step for step: a heap of candidate merges ordered by
    (rank, position); a candidate whose left symbol has gone, or whose pair has changed
    since it was pushed, is dropped when it comes up. (That check compares the merged id
    only, as Hugging Face's does: when two listed pairs make the same token, a stale
    candidate of one may merge the other. Trained vocabularies rarely have such pairs;
    where they do, this keeps the ids identical.)

    Parts are identified by the position of their first symbol and linked by `nxt`/`prv`;
    a merge keeps the left position and retires the right one.

    >>> merge_symbols([1, 2, 3], {(1, 2): (0, 4), (4, 3): (1, 5)})
    [5]
    """
    n = len(ids)
    if n < 2:
        return list(ids)
    sym = list(ids)
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prv = list(range(-1, n - 1))
    alive = [True] * n
    get = merges.get
    heap = []
    for pos in range(n - 1):
        m = get((sym[pos], sym[pos + 1]))
        if m is not None:
            heap.append((m[0], pos, m[1]))
    heapq.heapify(heap)
    while heap:
        _, pos, new = heapq.heappop(heap)
        if not alive[pos]:
            continue
        right = nxt[pos]
        if right == -1:
            continue
        m = get((sym[pos], sym[right]))
        if m is None or m[1] != new:          # an expired candidate
            continue
        sym[pos] = new
        alive[right] = False
        after = nxt[right]
        nxt[pos] = after
        if after != -1:
            prv[after] = pos
        before = prv[pos]
        if before != -1:
            m = get((sym[before], new))
            if m is not None:
                heapq.heappush(heap, (m[0], before, m[1]))
        if after != -1:
            m = get((new, sym[after]))
            if m is not None:
                heapq.heappush(heap, (m[0], pos, m[1]))
    return [s for s, a in zip(sym, alive) if a]


class SentencePieceBPE:
    """Hugging Face's `BPE` model: a vocabulary of token strings, ranked merges, and the
    byte-fallback and unknown-token rules of the module docstring.

    Args:
        vocab: token string -> id.
        merges: the ``(left, right)`` pairs in rank order; both sides and their
            concatenation must be tokens. A pair listed twice keeps its later rank (as
            Hugging Face's does).
        unk_token: the token for a character that has no token (and no byte tokens);
            None drops such a character, as Hugging Face does.
        fuse_unk: one unknown token for a run of unknown characters.
        byte_fallback: spell a character without a token by its `<0xNN>` byte tokens.
        ignore_merges: a word that is itself a token is that token (Llama 3's files).

    `tokenize(word)` returns the ids of one word (no cache here: the tokenizer that runs
    the model caches whole words, `hf.py`). Invalid arguments raise ValueError (the file
    loaders turn them into `VocabularyFileError`).
    """

    def __init__(self, vocab: Mapping[str, int], merges: Sequence[tuple[str, str]], *,
                 unk_token: str | None = None, fuse_unk: bool = False,
                 byte_fallback: bool = False, ignore_merges: bool = False):
        self.vocab = dict(vocab)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        if len(self.id_to_token) != len(self.vocab):
            raise ValueError("two tokens of the vocabulary have the same id")
        self.merges_list = [tuple(m) for m in merges]
        pair_ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, (left, right) in enumerate(self.merges_list):
            for part in (left, right, left + right):
                if part not in self.vocab:
                    raise ValueError(f"merge {rank} ({left!r}, {right!r}): {part!r} is not "
                                     f"a token of the vocabulary")
            pair_ranks[(self.vocab[left], self.vocab[right])] = (rank, self.vocab[left + right])
        self.pair_ranks = pair_ranks
        if unk_token is not None and unk_token not in self.vocab:
            raise ValueError(f"the unknown token {unk_token!r} is not in the vocabulary")
        self.unk_token = unk_token
        self._unk_id = None if unk_token is None else self.vocab[unk_token]
        self.fuse_unk = bool(fuse_unk)
        self.byte_fallback = bool(byte_fallback)
        self.ignore_merges = bool(ignore_merges)
        # The ids of the byte tokens, None where the vocabulary lacks one.
        self._byte_ids = [self.vocab.get(t) for t in BYTE_TOKENS]

    def symbols(self, word: str) -> list[int]:
        """Step 2: the ids of the word's characters, byte tokens or unknown tokens.

        Mirrors Hugging Face's `merge_word`, including one quirk: byte tokens of a
        character do not flush a pending unknown token, which then follows them (it only
        matters when some byte tokens are missing from the vocabulary).
        """
        get, ids = self.vocab.get, []
        unk = None                       # (pending unknown id) while a run is open
        for ch in word:
            idx = get(ch)
            if idx is not None:
                if unk is not None:
                    ids.append(unk)
                    unk = None
                ids.append(idx)
                continue
            if self.byte_fallback:
                fallback = [self._byte_ids[b] for b in ch.encode("utf-8", "surrogatepass")]
                if None not in fallback:
                    ids += fallback
                    continue
            if self._unk_id is not None:
                if unk is not None and not self.fuse_unk:
                    ids.append(unk)
                unk = self._unk_id
        if unk is not None:
            ids.append(unk)
        return ids

    def tokenize(self, word: str) -> list[int]:
        """The ids of one word (steps 1-3)."""
        if self.ignore_merges and word in self.vocab:
            return [self.vocab[word]]
        return merge_symbols(self.symbols(word), self.pair_ranks)

"""Training a Unigram LM vocabulary by EM with pruning (Kudo 2018; SentencePiece's trainer).

The corpus is a bag of words (each with its count, as `UnigramTokenizer.words` cuts them).
Start from a vocabulary far too large, then alternate:

1. **E-step**: for each word, the expected number of times each piece is used, over all
   its segmentations weighted by their probability. Forward-backward over the word's
   lattice (`unigram.Unigram.lattice`):
       alpha_e = logsumexp_{(b,e,x)} alpha_b + s(x),   beta_b = logsumexp_{(b,e,x)} s(x) + beta_e
       E[count of node (b,e,x)] = exp(alpha_b + s(x) + beta_e - log Z),  log Z = alpha_n
   The log-likelihood of the corpus is sum over words of count * log Z.
2. **M-step**: new scores from the expected counts c(x). Maximum likelihood is
   s(x) = log c(x) - log sum c; SentencePiece uses a Bayesian (variational, Dirichlet
   process) update instead, s(x) = digamma(c(x)) - digamma(sum c), which pushes rare
   pieces' probabilities down harder (a sparse prior), and drops pieces with c(x) < 0.5.
3. after two EM rounds, **prune**: for each piece, the loss in likelihood if it were
   removed and its uses were taken over by its second-best segmentation; keep the pieces
   of largest loss, shrinking the vocabulary to max(0.75 x its size, 1.1 x the target).

and finally keep the `vocab_size` pieces of highest score (every character kept).

The seed vocabulary: SentencePiece takes the frequent substrings from a suffix array (the
substrings that occur at least twice and are not always extended the same way), scored
by frequency x length. Here, an **approximation**: every substring of 2 to
`max_piece_length` characters of every distinct word, counted with the word's count,
those occurring at least twice scored by frequency x length, the top `seed_size` kept
(plus every character). A piece may hold "▁" only at its start (SentencePiece's rule with
whitespace splitting); SentencePiece's other validity rules (no mixing of scripts or of
digits and letters) are not applied.

Each EM round can only raise the likelihood under the maximum-likelihood M-step (the EM
theorem; `bayesian=False`, tested as a property). The Bayesian update and pruning change
the model, so the likelihood is not monotone across rounds that use them.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Mapping

from .unigram import Unigram, best_path

__all__ = ["train_unigram", "seed_pieces", "e_step", "m_step", "prune", "digamma",
           "log_likelihood"]

METASPACE = "\u2581"


def digamma(x: float) -> float:
    """The digamma function (d/dx log Gamma(x)), as SentencePiece computes it: the
    recurrence psi(x) = psi(x + 1) - 1/x up to x >= 7, then the asymptotic series."""
    result = 0.0
    while x < 7.0:
        result -= 1.0 / x
        x += 1.0
    x -= 0.5
    xx = 1.0 / x
    xx2 = xx * xx
    xx4 = xx2 * xx2
    return (result + math.log(x) + xx2 / 24.0 - 7.0 / 960.0 * xx4 + 31.0 / 8064.0 * xx4 * xx2
            - 127.0 / 30720.0 * xx4 * xx4)


def _valid(piece: str) -> bool:
    return METASPACE not in piece[1:]


def seed_pieces(words: Mapping[str, int], seed_size: int, max_piece_length: int
                ) -> list[tuple[str, float]]:
    """Every character, then the `seed_size` substrings (2 to `max_piece_length`
    characters, seen at least twice) of largest frequency x length; scores are the log
    of that, normalised."""
    chars: Counter = Counter()
    subs: Counter = Counter()
    for word, count in words.items():
        n = len(word)
        for c in word:
            chars[c] += count
        for b in range(n):
            for e in range(b + 2, min(n, b + max_piece_length) + 1):
                subs[word[b:e]] += count
    scored = [(f * len(s), s) for s, f in subs.items() if f >= 2 and _valid(s)]
    scored.sort(key=lambda t: (-t[0], t[1]))
    pieces = [(c, float(f)) for c, f in sorted(chars.items(), key=lambda t: (-t[1], t[0]))]
    pieces += [(s, float(f)) for f, s in scored[:seed_size]]
    log_total = math.log(sum(f for _, f in pieces))
    return [(p, math.log(f) - log_total) for p, f in pieces]


def _logsumexp(terms: list[float]) -> float:
    if len(terms) == 1:
        return terms[0]
    m = max(terms)
    return m + math.log(sum([math.exp(t - m) for t in terms]))


def _forward_backward(model: Unigram, word: str) -> tuple[float, list]:
    """log Z of the word and its nodes with their posterior probabilities:
    [(id, P(node is used))]."""
    n = len(word)
    lat = model.lattice(word)
    # forward: A[b] is final once every node ending at b (all start earlier) is in.
    into: list[list[float]] = [[] for _ in range(n + 1)]
    fwd = [0.0] * (n + 1)
    for b in range(n):
        fb = fwd[b] = _logsumexp(into[b]) if b else 0.0
        for e, _, s in lat[b]:
            into[e].append(fb + s)
    fwd[n] = _logsumexp(into[n])
    bwd = [0.0] * (n + 1)
    for b in range(n - 1, -1, -1):
        bwd[b] = _logsumexp([s + bwd[e] for e, _, s in lat[b]])
    log_z = fwd[n]
    exp = math.exp
    post = [(idx, exp(fwd[b] + s + bwd[e] - log_z))
            for b, here in enumerate(lat) for e, idx, s in here]
    return log_z, post


def e_step(model: Unigram, words: Mapping[str, int]) -> tuple[float, list[float]]:
    """(log-likelihood of the corpus, expected count of each piece)."""
    expected = [0.0] * len(model.pieces)
    total = 0.0
    for word, count in words.items():
        log_z, post = _forward_backward(model, word)
        total += count * log_z
        for idx, p in post:
            if idx >= 0:
                expected[idx] += count * p
    return total, expected


def log_likelihood(model: Unigram, words: Mapping[str, int]) -> float:
    """sum over words of count * log P(word), P summed over all segmentations."""
    return sum(count * _forward_backward(model, w)[0] for w, count in words.items())


def m_step(pieces: list[tuple[str, float]], expected: list[float], *, bayesian: bool = True
           ) -> list[tuple[str, float]]:
    """New (piece, score) from expected counts. Characters are always kept (so every word
    stays spellable); with `bayesian`, other pieces used fewer than 0.5 times are dropped
    and scores are digamma(c) - digamma(sum c), else log(c / sum c)."""
    kept = []
    for (piece, _), c in zip(pieces, expected):
        if len(piece) == 1:
            kept.append((piece, max(c, 1e-3)))
        elif c >= (0.5 if bayesian else 1e-300):
            kept.append((piece, c))
    total = math.fsum(c for _, c in kept)
    if bayesian:
        norm = digamma(total)
        return [(p, digamma(c) - norm) for p, c in kept]
    return [(p, math.log(c / total)) for p, c in kept]


def prune(model: Unigram, words: Mapping[str, int], target: int, shrinking_factor: float
          ) -> list[tuple[str, float]]:
    """Keep the pieces whose removal would cost the most likelihood (SentencePiece's
    PruneSentencePieces; see the module docstring)."""
    pieces = list(zip(model.pieces, model.scores))
    n = len(pieces)
    # How each piece is re-spelled without it: its second-best segmentation.
    alternatives: list[list[int] | None] = [None] * n
    always_keep = [True] * n
    for i, (piece, _) in enumerate(pieces):
        if len(piece) == 1:
            continue                               # a character: no alternative, kept
        best = model.viterbi(piece)
        if len(best) >= 2:
            always_keep[i] = False                 # never its own best spelling
            continue
        alt = _viterbi_without(model, piece, i)
        alternatives[i] = [idx for _, _, idx in alt]
    freq = [0.0] * n                               # uses in the Viterbi paths
    vsum = 0.0
    for word, count in words.items():
        vsum += count
        for _, _, idx in model.viterbi(word):
            freq[idx] += count
    total = math.fsum(freq)
    log_total = math.log(total)
    kept, candidates = [], []
    for i, (piece, score) in enumerate(pieces):
        if freq[i] == 0.0 and not always_keep[i]:
            continue                               # unused and not needed
        if not alternatives[i]:
            kept.append((piece, score))
            continue
        f = freq[i] / vsum                         # uses per word
        logprob = math.log(freq[i]) - log_total if freq[i] > 0 else -math.inf
        # Its uses go to the alternatives: each gains freq[i], the total len(alt) - 1 times
        # (SentencePiece's rule; tokenizers multiplies by the size of the whole table).
        log_total_alt = math.log(total + freq[i] * (len(alternatives[i]) - 1))
        logprob_alt = sum(math.log(freq[a] + freq[i]) - log_total_alt if freq[a] + freq[i] > 0
                          else -math.inf for a in alternatives[i])
        loss = f * (logprob - logprob_alt) if freq[i] > 0 else 0.0
        candidates.append((loss, i))
    size = max(target, int(n * shrinking_factor))
    candidates.sort(key=lambda t: (-t[0], t[1]))
    for _, i in candidates[:max(size - len(kept), 0)]:
        kept.append(pieces[i])
    order = {p: k for k, (p, _) in enumerate(pieces)}
    kept.sort(key=lambda ps: order[ps[0]])
    return kept


def _viterbi_without(model: Unigram, word: str, skip: int) -> list[tuple[int, int, int]]:
    """The best segmentation of `word` that does not use piece `skip`."""
    n = len(word)
    best = [0.0] + [-math.inf] * n
    back: list = [None] * (n + 1)
    for b, here in enumerate(model.lattice(word)):
        for e, idx, score in here:
            if idx == skip:
                continue
            cand = score + best[b]
            if back[e] is None or cand > best[e]:
                best[e], back[e] = cand, (b, idx)
    return best_path(back)


def train_unigram(words: Mapping[str, int], n_pieces: int, *, seed_size: int = 100_000,
                  max_piece_length: int = 16, shrinking_factor: float = 0.75,
                  n_sub_iterations: int = 2, bayesian: bool = True,
                  progress: Callable[[int, int], None] | None = None,
                  callback: Callable[[int, float, int], None] | None = None
                  ) -> list[tuple[str, float]]:
    """(piece, score) pairs, about `n_pieces` of them (more only if the corpus has more
    distinct characters), highest score first. `callback(round, log_likelihood, size)`
    after each E-step; `progress(done, total)` as the vocabulary shrinks."""
    if n_pieces < 1:
        raise ValueError(f"the vocabulary needs room for at least one piece, got {n_pieces}")
    if not 0 < shrinking_factor < 1:
        raise ValueError(f"shrinking_factor must lie in (0, 1), got {shrinking_factor}")
    words = {w: c for w, c in words.items() if w and c > 0}
    if not words:
        raise ValueError("cannot train a Unigram vocabulary on an empty corpus")
    pieces = seed_pieces(words, seed_size, max_piece_length)
    n_chars = sum(1 for p, _ in pieces if len(p) == 1)
    target = max((n_pieces * 11) // 10, n_chars)
    start, rnd = len(pieces), 0
    while True:
        for _ in range(n_sub_iterations):
            model = Unigram(pieces)
            ll, expected = e_step(model, words)
            if callback is not None:
                callback(rnd, ll, len(pieces))
            rnd += 1
            pieces = m_step(pieces, expected, bayesian=bayesian)
        if len(pieces) <= target:
            break
        pieces = prune(Unigram(pieces), words, target, shrinking_factor)
        if progress is not None:
            progress(start - len(pieces), max(start - target, 1))
    # Finalise: every character, then the best-scoring pieces up to n_pieces.
    chars = [(p, s) for p, s in pieces if len(p) == 1]
    rest = sorted((ps for ps in pieces if len(ps[0]) > 1), key=lambda ps: (-ps[1], ps[0]))
    out = chars + rest[:max(n_pieces - len(chars), 0)]
    if len(chars) > n_pieces:                      # too many characters: the most likely
        out = sorted(chars, key=lambda ps: (-ps[1], ps[0]))[:n_pieces]
    out.sort(key=lambda ps: (-ps[1], ps[0]))
    return out

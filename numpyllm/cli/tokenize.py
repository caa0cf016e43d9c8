"""``numpyllm tokenize``: train a tokenizer, encode text to ids, decode ids to text.

    numpyllm tokenize train  --data input.txt --vocab-size 1024 --out tok.bpe \\
                             [--special "<|endoftext|>" "[PAD]"] [--pattern gpt4]
    numpyllm tokenize train  --type char --data input.txt --out tok.json
    numpyllm tokenize train  --kind wordpiece --data input.txt --vocab-size 4000 --out wp.json
    numpyllm tokenize train  --kind unigram --data input.txt --vocab-size 4000 --out uni.json
    numpyllm tokenize encode --tokenizer tok.bpe --text "Hello world"      # ids on stdout
    numpyllm tokenize encode --tokenizer gpt2_dir/ --input big.txt --out big.npy
    numpyllm tokenize decode --tokenizer tok.bpe 15496 995                 # text on stdout
    numpyllm tokenize decode --tokenizer tok.bpe --input big.npy

`--tokenizer` takes any file `numpyllm.tokenizers.load_tokenizer` opens: a saved BPE,
character, WordPiece or Unigram tokenizer, BERT's vocab.txt, a tiktoken `.tiktoken` rank
file, or a directory holding GPT-2's encoder.json and vocab.bpe. Progress bars use tqdm
when it is installed, else a line on stderr; `--quiet` turns them off.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from numpyllm.cli import CLIError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tokenize", help="train a tokenizer, encode text to ids, decode ids to text",
        description="Train a byte-level BPE, character, WordPiece or Unigram tokenizer, or "
                    "use one to encode and decode.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    t = sub.add_parser("train", help="learn a vocabulary from a text file")
    t.add_argument("--data", required=True, metavar="FILE", help="UTF-8 training text")
    t.add_argument("--out", required=True, metavar="FILE", help="where to save the tokenizer")
    t.add_argument("--type", "--kind", dest="type",
                   choices=("bpe", "char", "wordpiece", "unigram"), default="bpe",
                   help="byte-level BPE (default), one token per character, BERT's WordPiece "
                        "or SentencePiece's Unigram LM (docs/subword.md)")
    t.add_argument("--vocab-size", type=int, metavar="N",
                   help="bpe, wordpiece, unigram: total vocabulary size, special tokens (and "
                        "bpe's and unigram's 256 byte tokens) included")
    t.add_argument("--cased", action="store_true",
                   help="wordpiece: keep case and accents (BERT-cased; default: lowercase)")
    t.add_argument("--special", nargs="+", action="extend", default=[], metavar="TOKEN",
                   help="special tokens to register, e.g. '<|endoftext|>' '[PAD]'")
    t.add_argument("--pattern", default="gpt2",
                   help="BPE split pattern: gpt2, gpt4 (cl100k), gpt4o (o200k), or a regex")
    t.add_argument("--min-frequency", type=int, default=1, metavar="N",
                   help="BPE: stop when no pair occurs N times (default 1)")
    t.add_argument("--unk", metavar="TOKEN",
                   help="char: map unseen characters to this token instead of failing")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("encode", help="text to token ids")
    _tokenizer_args(e)
    src = e.add_mutually_exclusive_group()
    src.add_argument("--text", help="the text to encode")
    src.add_argument("--input", metavar="FILE", help="a UTF-8 file to encode (default: stdin)")
    e.add_argument("--out", metavar="FILE.npy",
                   help="write the ids to this .npy file (memory-mappable) instead of stdout")
    e.add_argument("--special", choices=("error", "allow", "text"), default="error",
                   help="special-token strings in the text: an error (default), the special "
                        "token, or ordinary text")
    e.add_argument("--quiet", action="store_true", help="no progress bar")

    d = sub.add_parser("decode", help="token ids to text")
    _tokenizer_args(d)
    d.add_argument("ids", nargs="*", type=int, help="token ids (default: --input or stdin)")
    d.add_argument("--input", metavar="FILE",
                   help="a .npy or nanoGPT .bin token file, or a text file of ids")
    d.add_argument("--out", metavar="FILE", help="write the text here instead of stdout")
    p.set_defaults(func=run)


def _tokenizer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", required=True, metavar="PATH",
                   help="saved tokenizer, .tiktoken file, or GPT-2 directory")
    p.add_argument("--pattern", default="gpt2",
                   help="split pattern for a .tiktoken file (gpt2, gpt4, gpt4o)")


class _Progress:
    """A progress callback `(done, total)`: tqdm when installed, else a stderr line."""

    def __init__(self, desc: str, unit: str, enabled: bool = True):
        self.desc, self.unit, self.enabled = desc, unit, enabled
        self._bar = None
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None and not self._shown:
            try:    # optional: only the look of the bar depends on it
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:    # made on first use, so two bars never share the screen
                self._bar = tqdm(desc=self.desc, unit=self.unit, unit_scale=self.unit == "B", total=total,
                                 file=sys.stderr, dynamic_ncols=True)
        if self._bar is not None:
            self._bar.total = total
            self._bar.update(done - self._bar.n)
            return
        now = time.monotonic()
        if now - self._last >= 0.25 or done >= total:
            self._last = now
            pct = 100.0 * done / total if total else 100.0
            print(f"\r{self.desc}: {done:,}/{total:,} {self.unit} ({pct:5.1f}%)",
                  end="", file=sys.stderr, flush=True)
            self._shown = True

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._shown:
            print(file=sys.stderr)
        self.enabled = False


def run(args) -> int:
    return {"train": _train, "encode": _encode, "decode": _decode}[args.action](args)


def _check_custom_pattern(pattern: str) -> None:
    """Refuse, before training, a regex that loading the saved file would refuse."""
    from numpyllm.tokenizers.pattern_safety import UnsafePatternError, check_pattern
    try:
        check_pattern(pattern)
    except UnsafePatternError as exc:
        raise CLIError(f"--pattern: {exc}; a tokenizer saved with it would load only with "
                       "trust_pattern=True (numpyllm/tokenizers/pattern_safety.py says which "
                       "patterns are accepted)") from None
    except ValueError as exc:
        raise CLIError(f"--pattern is not a valid regular expression: {exc}") from None


def _train(args) -> int:
    from numpyllm.data import read_text_blocks
    from numpyllm.tokenizers import BPETokenizer, CharTokenizer

    if not os.path.isfile(args.data):
        raise FileNotFoundError(f"no such file: {args.data}")
    if args.type == "char":
        with open(args.data, encoding="utf-8") as f:
            text = f.read()
        tok = CharTokenizer.from_text(text, unk_token=args.unk, special_tokens=args.special)
        tok.save(args.out)
        print(f"saved a character tokenizer with {tok.vocab_size} tokens to {args.out}")
        return 0
    if args.vocab_size is None:
        raise CLIError(f"{args.type} training needs --vocab-size N")
    if args.unk:
        raise CLIError("--unk is for --type char (wordpiece's is [UNK], unigram's <unk>; "
                       "byte-level BPE has no unknown characters)")
    if args.cased and args.type != "wordpiece":
        raise CLIError("--cased is for --type wordpiece")
    if args.type in ("wordpiece", "unigram"):
        return _train_subword(args)
    _check_custom_pattern(args.pattern)
    tok = BPETokenizer(pattern=args.pattern, special_tokens=args.special)
    reading = _Progress("reading", "B", enabled=not args.quiet)
    merging = _Progress("merging", "tok", enabled=not args.quiet)
    start = time.perf_counter()
    try:
        # The blocks are pre-tokenised one by one, so the file is never one big string.
        tok.train(_closing(read_text_blocks(args.data, progress=reading), reading),
                  args.vocab_size, min_frequency=args.min_frequency, progress=merging)
    finally:
        reading.close()
        merging.close()
    tok.save(args.out)
    note = ("" if tok.vocab_size == args.vocab_size else
            f" (the corpus supports no more merges than this; asked for {args.vocab_size})")
    print(f"saved a BPE tokenizer with {tok.vocab_size} tokens to {args.out} in "
          f"{time.perf_counter() - start:.2f}s{note}")
    return 0


def _train_subword(args) -> int:
    from numpyllm.data import read_text_blocks
    from numpyllm.tokenizers import UnigramTokenizer, WordPieceTokenizer
    from numpyllm.tokenizers.wordpiece import BERT_SPECIAL_TOKENS

    reading = _Progress("reading", "B", enabled=not args.quiet)
    learning = _Progress("learning", "tok", enabled=not args.quiet)
    start = time.perf_counter()
    blocks = _closing(read_text_blocks(args.data, progress=reading), reading)
    try:
        if args.type == "wordpiece":
            names = list(dict.fromkeys([*BERT_SPECIAL_TOKENS, *args.special]))
            tok = WordPieceTokenizer.train(blocks, args.vocab_size, special_tokens=names,
                                           lowercase=not args.cased, progress=learning)
        else:
            tok = UnigramTokenizer.train(blocks, args.vocab_size, special_tokens=args.special,
                                         progress=learning)
    except ValueError as exc:
        raise CLIError(f"--type {args.type}: {exc}") from None
    finally:
        reading.close()
        learning.close()
    tok.save(args.out)
    note = ("" if tok.vocab_size == args.vocab_size else
            f" (the corpus supports no more than this; asked for {args.vocab_size})")
    print(f"saved a {args.type} tokenizer with {tok.vocab_size} tokens to {args.out} in "
          f"{time.perf_counter() - start:.2f}s{note}")
    return 0


def _closing(blocks, progress: _Progress):
    # Closes the reading bar when the last block is read, before the merges start.
    yield from blocks
    progress.close()


def _load(args):
    from numpyllm.tokenizers import load_tokenizer

    if not os.path.exists(args.tokenizer):
        raise FileNotFoundError(f"no such tokenizer file or directory: {args.tokenizer}")
    return load_tokenizer(args.tokenizer, pattern=args.pattern)


def _encode_kwargs(tok, mode: str) -> dict:
    from numpyllm.tokenizers import BPETokenizer

    if not isinstance(tok, BPETokenizer):
        return {}
    if mode == "allow":
        return {"allowed_special": "all"}
    if mode == "text":
        return {"disallowed_special": ()}
    return {}


def _encode(args) -> int:
    from numpyllm.tokenizers import DisallowedSpecialTokenError

    tok = _load(args)
    kwargs = _encode_kwargs(tok, args.special)
    try:
        return _encode_with(tok, args, kwargs)
    except DisallowedSpecialTokenError as exc:
        raise CLIError(f"{exc.args[0].split(';')[0]}; use --special allow to encode it as "
                       f"the special token, or --special text for ordinary text") from None


def _encode_with(tok, args, kwargs: dict) -> int:
    import numpy as np

    from numpyllm import data

    if args.out:
        if args.text is not None:
            ids = data.encode_text(tok, args.text, **kwargs)
            data.save_tokens(args.out, ids)
        else:
            if not args.input:
                raise CLIError("--out needs --input FILE or --text (stdin is not streamed "
                               "to a file)")
            if not os.path.isfile(args.input):
                raise FileNotFoundError(f"no such file: {args.input}")
            from numpyllm.tokenizers import UnigramTokenizer
            if isinstance(tok, UnigramTokenizer):
                # Each text starts with a "▁", so a file cut into blocks would gain a space
                # at every cut: a Unigram encodes the file whole.
                with open(args.input, encoding="utf-8") as f:
                    ids = data.encode_text(tok, f.read())
                tmp = f"{args.out}.tmp"
                with open(tmp, "wb") as f:             # atomic: a temporary file, renamed
                    np.save(f, ids, allow_pickle=False)
                os.replace(tmp, args.out)
                print(f"wrote {len(ids):,} tokens ({ids.dtype}) to {args.out}")
                return 0
            bar = _Progress("encoding", "B", enabled=not args.quiet)
            try:
                ids = data.encode_file(tok, args.input, args.out, progress=bar, **kwargs)
            finally:
                bar.close()
        print(f"wrote {len(ids):,} tokens ({ids.dtype}) to {args.out}")
        return 0
    if args.text is not None:
        text = args.text
    elif args.input:
        with open(args.input, encoding="utf-8") as f:
            text = f.read()
    else:
        text = sys.stdin.read()
    print(" ".join(map(str, tok.encode(text, **kwargs))))
    return 0


def _decode(args) -> int:
    import numpy as np

    from numpyllm import data

    tok = _load(args)
    if args.ids and args.input:
        raise CLIError("give ids on the command line or --input FILE, not both")
    if args.ids:
        ids = args.ids
    elif args.input:
        with open(args.input, "rb") as f:
            head = f.read(6)
        if head == b"\x93NUMPY" or args.input.endswith(".bin"):
            ids = data.load_tokens(args.input)
        else:
            with open(args.input, encoding="utf-8") as f:
                ids = _parse_ids(f.read(), args.input)
    else:
        ids = _parse_ids(sys.stdin.read(), "stdin")
    text = tok.decode(np.asarray(ids, dtype=np.int64))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        if not text.endswith("\n"):
            sys.stdout.write("\n")
    return 0


def _parse_ids(text: str, where: str) -> list[int]:
    fields = text.replace(",", " ").replace("[", " ").replace("]", " ").split()
    try:
        return [int(f) for f in fields]
    except ValueError:
        bad = next(f for f in fields if not f.lstrip("-").isdigit())
        raise CLIError(f"{where}: expected integer token ids, found {bad!r}") from None

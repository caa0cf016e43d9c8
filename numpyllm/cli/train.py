"""``numpyllm train``: train a GPT on a text file (or the default corpus), on the CPU.

With no arguments it trains nanoGPT's CPU-sized character-level GPT (4 layers, 4 heads,
128 wide, context 64) on the Python standard library's source text, which is on every
machine with Python, and prints samples at the end. Everything goes to ``--out``:
``ckpt/`` (checkpoints, resumable with ``--resume``), ``log.csv`` and ``loss.png``.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import CLIError

# option -> (type, default, help); the names are nanoGPT's. None: "take the config's".
MODEL_OPTIONS = {
    "n_layer": (int, 4, "transformer blocks"),
    "n_head": (int, 4, "attention heads"),
    "n_embd": (int, 128, "embedding width"),
    "block_size": (int, 64, "context length in tokens"),
    "dropout": (float, 0.0, "dropout probability"),
    "bias": (str, "false", "biases in Linear and LayerNorm layers: true | false (nanoGPT's default)"),
    "positions": (str, "learned", "learned | sinusoidal | rope | alibi"),
    "dtype": (str, "float32", "float32 (fast) | float64 (reference)"),
    "attn_block_size": (int, None, "memory-efficient attention in tiles of this many "
                        "positions (for long contexts; default: standard attention)"),
}
TRAIN_OPTIONS = {
    "batch_size": (int, 12, "sequences per micro-batch"),
    "max_iters": (int, 2000, "optimizer steps in all"),
    "learning_rate": (float, 1e-3, "peak learning rate"),
    "min_lr": (float, 1e-4, "learning rate at the end of the cosine decay"),
    "warmup_iters": (int, 100, "linear warmup steps"),
    "lr_decay_iters": (int, None, "steps of cosine decay (default: max_iters)"),
    "weight_decay": (float, 0.1, "AdamW decoupled weight decay"),
    "beta1": (float, 0.9, "AdamW beta1"),
    "beta2": (float, 0.99, "AdamW beta2"),
    "grad_clip": (float, 1.0, "clip the global gradient norm (0: off)"),
    "gradient_accumulation_steps": (int, 1, "micro-batches per optimizer step"),
    "eval_interval": (int, 250, "steps between evaluations and checkpoints"),
    "eval_iters": (int, 20, "batches per evaluation estimate"),
    "log_interval": (int, 10, "steps between log lines"),
    "seed": (int, 1337, "random seed (same seed, same losses)"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a GPT on a text file (default: Python's own source)",
                              description=__doc__)
    p.add_argument("--data", metavar="FILE", help="UTF-8 text to train on "
                   "(default: the Python standard library's source, no download)")
    p.add_argument("--tokenizer", choices=["char", "bpe"], default="char")
    p.add_argument("--vocab_size", "--vocab-size", type=int, default=1024,
                   help="vocabulary size for --tokenizer bpe")
    p.add_argument("--val_fraction", type=float, default=0.1, help="last fraction held out")
    p.add_argument("--out", default="out", metavar="DIR", help="output directory (default: out)")
    p.add_argument("--config", metavar="FILE", help="JSON file of any of the options below")
    p.add_argument("--resume", action="store_true", help="continue from DIR/ckpt")
    p.add_argument("--samples", type=int, default=2, help="samples to print at the end")
    p.add_argument("--sample_tokens", type=int, default=300, help="tokens per sample")
    p.add_argument("--no_plot", action="store_true", help="do not write loss.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar or step lines")
    for name, (kind, default, text) in {**MODEL_OPTIONS, **TRAIN_OPTIONS}.items():
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        suffix = f" (default: {default})" if default is not None else ""
        p.add_argument(*flags, dest=name, type=kind, default=None, help=text + suffix)
    p.set_defaults(func=run)


# ---------------------------------------------------------------------- options
def _options(args) -> dict:
    """Defaults, overridden by --config, overridden by explicit flags."""
    opts = {k: v[1] for k, v in {**MODEL_OPTIONS, **TRAIN_OPTIONS}.items()}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise CLIError(f"--config {path}: no such file")
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CLIError(f"--config {path}: not valid JSON ({exc})") from None
        unknown = set(loaded) - set(opts)
        if unknown:
            raise CLIError(f"--config {path}: unknown options {sorted(unknown)}")
        opts.update(loaded)
    opts.update({k: getattr(args, k) for k in opts if getattr(args, k) is not None})
    if opts["lr_decay_iters"] is None:
        opts["lr_decay_iters"] = opts["max_iters"]
    if args.warmup_iters is None and opts["warmup_iters"] >= opts["lr_decay_iters"]:
        opts["warmup_iters"] = opts["lr_decay_iters"] // 20   # a short run: a short warmup
    return opts


def _boolean(flag: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise CLIError(f"{flag} must be true or false, got {value!r}")


def read_text(path) -> str:
    """The training text: a UTF-8 file, or the default corpus when path is None."""
    if path is None:
        from ..corpus import default_corpus
        return default_corpus()
    path = Path(path)
    if not path.exists():
        raise CLIError(f"--data {path}: no such file")
    if path.is_dir():
        raise CLIError(f"--data {path}: is a directory, not a text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(f"--data {path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not text:
        raise CLIError(f"--data {path}: the file is empty")
    return text


def _build_tokenizer(args, text: str):
    from ..tokenizers import BPETokenizer, CharTokenizer
    if args.tokenizer == "char":
        return CharTokenizer.from_text(text)
    return BPETokenizer().train(text, args.vocab_size)


# ---------------------------------------------------------------------- progress
class Progress:
    """Prints step lines (or a tqdm bar when tqdm is installed) and evaluation lines."""

    def __init__(self, total: int, start: int, quiet: bool):
        self.quiet, self.bar = quiet, None
        if not quiet:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                                file=sys.stderr)
            except ImportError:
                pass
        self.last_step = start

    def __call__(self, event: dict) -> None:
        if event["kind"] == "step":
            tps = event["tokens"] / max(event["seconds"], 1e-9)
            if self.bar is not None:
                self.bar.update(event["step"] - self.last_step)
                self.bar.set_postfix(loss=f"{event['loss']:.4f}", lr=f"{event['lr']:.2e}",
                                     tok_s=f"{tps:,.0f}")
            elif not self.quiet:
                print(f"step {event['step']:5d} | loss {event['loss']:.4f} | lr {event['lr']:.2e} "
                      f"| {tps:,.0f} tok/s", flush=True)
            self.last_step = event["step"]
        elif event["kind"] == "eval":
            line = (f"step {event['step']:5d} | eval: train loss {event['train_loss']:.4f}"
                    + (f", val loss {event['val_loss']:.4f} (perplexity "
                       f"{event['val_perplexity']:.2f})" if "val_loss" in event else ""))
            (self.bar.write if self.bar is not None else print)(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------- run
def run(args) -> int:
    from ..checkpoint import CheckpointError
    from ..data import train_val_split
    from ..nn.gpt import GPT, GPTConfig
    from ..train import CSVLogger, TrainConfig, Trainer

    opts = _options(args)
    out = Path(args.out)
    ckpt_dir = out / "ckpt"
    text = read_text(args.data)
    source = args.data or "the Python standard library's source"

    if args.resume:
        if not ckpt_dir.exists():
            raise CLIError(f"--resume: no checkpoint in {ckpt_dir}")
        from ..checkpoint import load_checkpoint
        tokenizer = load_checkpoint(ckpt_dir).tokenizer
        ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    else:
        tokenizer = _build_tokenizer(args, text)
        ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    train_ids, val_ids = train_val_split(ids, args.val_fraction)
    block = opts["block_size"]
    for name, part in (("training", train_ids), ("validation", val_ids)):
        if len(part) < block + 1 and not (name == "validation" and args.val_fraction == 0):
            raise CLIError(f"the {name} split has {len(part)} tokens, fewer than block_size + 1 "
                           f"= {block + 1}: use a longer text or a smaller --block_size")
    val_ids = val_ids if len(val_ids) > block else None

    train_keys = {k for k in TRAIN_OPTIONS}
    try:
        train_cfg = TrainConfig(**{k: opts[k] for k in train_keys})
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    callbacks = [CSVLogger(out / "log.csv", append=args.resume)]
    if args.resume:
        try:
            trainer, _ = Trainer.resume(ckpt_dir, train_ids, val_ids, callbacks=callbacks,
                                        config=train_cfg)
        except CheckpointError as exc:
            raise CLIError(f"--resume: {exc}") from None
        model = trainer.model
    else:
        try:
            model_cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=block,
                                  n_layer=opts["n_layer"], n_head=opts["n_head"],
                                  n_embd=opts["n_embd"], dropout=opts["dropout"],
                                  bias=_boolean("--bias", opts["bias"]),
                                  attn_block_size=opts["attn_block_size"],
                                  positions=opts["positions"], dtype=opts["dtype"])
        except (TypeError, ValueError) as exc:
            raise CLIError(str(exc)) from None
        model = GPT(model_cfg, rng=np.random.default_rng(opts["seed"]))
        trainer = Trainer(model, train_ids, val_ids, train_cfg, callbacks=callbacks)

    c = model.config
    print(f"numpyllm train: {len(text):,} characters of {source} -> {len(ids):,} tokens "
          f"({args.tokenizer if not args.resume else type(tokenizer).__name__}, vocab "
          f"{tokenizer.vocab_size}); {len(train_ids):,} train / {len(val_ids) if val_ids is not None else 0:,} val")
    print(f"model: {c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, context {c.block_size}, "
          f"{model.num_parameters():,} parameters, {c.dtype}; {train_cfg.max_iters} steps of "
          f"batch {train_cfg.batch_size} x {train_cfg.gradient_accumulation_steps}"
          + (f" (resuming at step {trainer.step})" if args.resume else ""))
    progress = Progress(train_cfg.max_iters, trainer.step, args.quiet)
    trainer.callbacks.append(progress)
    start = time.perf_counter()
    first_step = trainer.step
    try:
        evals = trainer.fit(checkpoint_dir=ckpt_dir, tokenizer=tokenizer)
    finally:
        progress.close()
    elapsed = time.perf_counter() - start
    steps = trainer.step - first_step
    print(f"trained {steps} steps in {elapsed:.1f} s "
          f"({1000 * elapsed / max(steps, 1):.1f} ms/step); checkpoint in {ckpt_dir}")
    if evals and "val_loss" in evals[-1]:
        print(f"final val loss {evals[-1]['val_loss']:.4f} "
              f"(perplexity {math.exp(evals[-1]['val_loss']):.2f})")
    if not args.no_plot:
        from ..plots import plot_loss_csv
        png = plot_loss_csv(out / "log.csv", out / "loss.png")
        print(f"loss curve: {png}" if png else "loss curve: skipped (pip install matplotlib)")
    _print_samples(model, tokenizer, args, opts["seed"])
    return 0


def _print_samples(model, tokenizer, args, seed: int) -> None:
    from ..generate import generate
    if args.samples <= 0:
        return
    rng = np.random.default_rng(seed)
    try:
        start = tokenizer.encode("\n")      # start each sample at a line break
    except ValueError:                       # a vocabulary without one
        start = [0]
    for i in range(args.samples):
        ids = generate(model, np.array(start), args.sample_tokens, temperature=0.8, top_k=50, rng=rng)
        print(f"--- sample {i + 1} ---")
        print(tokenizer.decode(ids.tolist()))
    print("---")

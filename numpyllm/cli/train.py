"""``numpyllm train``: train a model on a text file (or the default corpus), on the CPU.

With no arguments it trains nanoGPT's CPU-sized character-level GPT (4 layers, 4 heads,
128 wide, context 64) on the Python standard library's source text, which is on every
machine with Python, and prints samples at the end. Everything goes to ``--out``:
``ckpt/`` (checkpoints, resumable with ``--resume``), ``log.csv`` and ``loss.png``.

``--objective`` chooses what the model learns, and so the model (docs/objectives.md):

  clm        next-token prediction (the default)               a GPT
  prefix_lm  a prefix read both ways, the tokens after it      a GPT
  mlm        BERT's masked LM                                  an encoder (BERT-like)
  span       T5's span corruption                              an encoder-decoder
  seq2seq    source -> target, --data of source<TAB>target     an encoder-decoder

The model options apply to each: --n_layer layers in each stack, --n_embd wide, --n_head
heads, --block_size the context (for seq2seq: the longest source or target), --dropout,
--dtype. The encoder is pre-LN with GELU and learned positions (or --positions
sinusoidal) and BERT's MLM head; the encoder-decoder pre-LN with ReLU, sinusoidal
positions and one embedding shared by both sides and the output. Options only the GPT
has (--positions rope|alibi, --bias false, --attn_block_size) are refused for the others.
The tokenizer gets the special tokens the objective needs ([MASK]; <pad>, <s>, </s> and
the sentinels <extra_id_0>, ...), after the ordinary ones. A seq2seq file's last
--val_fraction of pairs is held out; at the end the run prints a few of them decoded and
the exact match over them (at most 1,024; numpyllm eval scores all), an mlm run the
masked-token accuracy, a span run a few validation windows decoded.

The checkpoint records the objective and the file it was trained on (the file's path,
size and SHA-256, or the default corpus), so ``--resume`` (and ``numpyllm eval``) without
``--data`` or ``--objective`` use them, or say which ``--data`` to pass if it moved or
changed. Resuming keeps the checkpoint's settings, the learning-rate schedule included:
``--max_iters`` is only where to stop, and steps past ``--lr_decay_iters`` train at
``--min_lr``, so the learning rate never jumps up. Ctrl-C (or SIGTERM) stops after the
current step, saves it, and says how to resume. The progress lines give the time left
(on a terminal, one line rewritten in place).
"""
from __future__ import annotations

import argparse
import math
import shlex
import time
from pathlib import Path

import numpy as np

from . import CLIError
from ._fit import Progress, StopOnSignal, fit, lr_at, schedule_line  # noqa: F401 (re-exported)
from ._parallel import add_parallel_options, attach, report_after, run_on_ranks

# --objective -> the model it trains (numpyllm/cli/_objectives.py)
OBJECTIVE_MODELS = {
    "clm": "next-token prediction, a GPT",
    "prefix_lm": "prefix LM (a prefix read both ways, the rest predicted), a GPT",
    "mlm": "BERT's masked LM, an encoder",
    "span": "T5's span corruption, an encoder-decoder",
    "seq2seq": "source -> target pairs (--data FILE of source<TAB>target lines), an "
               "encoder-decoder",
}

# option -> (type, default, help); the names are nanoGPT's. With --resume the defaults of
# the TRAIN_OPTIONS are the checkpoint's values, and the MODEL_OPTIONS are the checkpoint's.
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
    "max_iters": (int, 2000, "optimizer steps in all, counting those already taken when "
                  "resuming: where to stop"),
    "learning_rate": (float, 1e-3, "peak learning rate"),
    "min_lr": (float, 1e-4, "learning rate at the end of the cosine decay"),
    "warmup_iters": (int, 100, "linear warmup steps"),
    "lr_decay_iters": (int, None, "the step where the cosine decay reaches min_lr, which "
                       "then stays (default: max_iters; with --resume the checkpoint's, so a "
                       "larger --max_iters goes on at min_lr and the learning rate never jumps)"),
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
    p = subparsers.add_parser("train", help="train a GPT (or, with --objective, an encoder or "
                              "an encoder-decoder) on a text file (default: Python's own source)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", choices=list(OBJECTIVE_MODELS), default=None,
                   help="what the model learns, and so which model: " + "; ".join(
                       f"{k}: {v}" for k, v in OBJECTIVE_MODELS.items())
                   + " (default: clm; with --resume: the checkpoint's)")
    for key, text in (("label_smoothing", "seq2seq: share of each target's probability "
                        "spread over the vocabulary (default 0; the paper: 0.1)"),
                       ("mask_prob", "mlm: share of positions selected for prediction "
                        "(default 0.15)"),
                       ("noise_density", "span: share of each window's tokens hidden in spans "
                        "(default 0.15)"),
                       ("mean_span_length", "span: mean length of a hidden span (default 3)")):
        p.add_argument(f"--{key}", f"--{key.replace('_', '-')}", dest=key, type=float,
                       default=None, help=text)
    p.add_argument("--data", metavar="FILE", help="UTF-8 text to train on (default: the Python "
                   "standard library's source, no download; with --resume: the text the "
                   "checkpoint records); for --objective seq2seq, a file of source<TAB>target "
                   "lines (required)")
    p.add_argument("--allow_new_data", "--allow-new-data", action="store_true",
                   help="with --resume: carry on training on a --data other than the "
                   "checkpoint's text (without it, that is an error)")
    p.add_argument("--tokenizer", choices=["char", "bpe", "wordpiece", "unigram"],
                   default="char", help="char (default), byte-level bpe, BERT's wordpiece "
                   "(lowercased; drops whitespace) or SentencePiece's unigram (docs/subword.md)")
    p.add_argument("--vocab_size", "--vocab-size", type=int, default=None,
                   help="vocabulary size for --tokenizer bpe, wordpiece or unigram (default "
                   "1024; unigram: 256 byte tokens included)")
    p.add_argument("--val_fraction", type=float, default=None,
                   help="last fraction held out (default: 0.1; with --resume the checkpoint's)")
    p.add_argument("--out", default="out", metavar="DIR", help="output directory (default: out)")
    p.add_argument("--config", metavar="FILE", help="JSON file of any of the options below")
    p.add_argument("--resume", action="store_true",
                   help="continue from DIR/ckpt with its settings (flags given override them)")
    p.add_argument("--init-from", "--init_from", dest="init_from", metavar="DIR",
                   help="fine-tune a pretrained Hugging Face directory (GPT-2, Llama, Qwen2, "
                   "Mistral): its model and tokenizer; --block_size the training window")
    p.add_argument("--samples", type=int, default=2, help="samples to print at the end (span, "
                   "seq2seq: validation examples decoded)")
    p.add_argument("--sample_tokens", type=int, default=300, help="tokens per sample (a decoder's)")
    p.add_argument("--no_plot", action="store_true", help="do not write loss.png")
    p.add_argument("--quiet", action="store_true", help="no progress lines (evaluations still print)")
    add_parallel_options(p)
    add_options(p)
    p.set_defaults(func=run)


def add_options(p) -> None:
    """The MODEL_OPTIONS and TRAIN_OPTIONS as flags (``--max_iters`` or ``--max-iters``),
    each None unless given, for `_options` to fill in (`numpyllm finetune` shares them)."""
    for name, (kind, default, text) in {**MODEL_OPTIONS, **TRAIN_OPTIONS}.items():
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        suffix = f" (default: {default})" if default is not None else ""
        p.add_argument(*flags, dest=name, type=kind, default=None, help=text + suffix)


# ---------------------------------------------------------------------- options
def _options(args, saved: dict | None = None) -> tuple[dict, set]:
    """Defaults (with --resume: the checkpoint's training settings `saved`), overridden
    by --config, overridden by explicit flags. Also the names that --config or a flag set."""
    opts = {k: v[1] for k, v in {**MODEL_OPTIONS, **TRAIN_OPTIONS}.items()}
    if saved:
        opts.update({k: saved[k] for k in TRAIN_OPTIONS if k in saved})
    explicit = {}
    if args.config:
        from ._common import read_json_object
        loaded = read_json_object("--config", args.config, "options")
        unknown = set(loaded) - set(opts)
        if unknown:
            raise CLIError(f"--config {args.config}: unknown options {sorted(unknown)}")
        explicit.update(loaded)
    explicit.update({k: getattr(args, k) for k in opts if getattr(args, k) is not None})
    opts.update(explicit)
    if opts["lr_decay_iters"] is None:          # a new run (a checkpoint always has one)
        opts["lr_decay_iters"] = opts["max_iters"]
    if not saved and "warmup_iters" not in explicit and opts["warmup_iters"] >= opts["lr_decay_iters"]:
        opts["warmup_iters"] = opts["lr_decay_iters"] // 20   # a short run: a short warmup
    return opts, set(explicit)


def _boolean(flag: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise CLIError(f"{flag} must be true or false, got {value!r}")


def _build_tokenizer(args, text, specials=()):
    """A tokenizer of `text` (a str, or a list of them), with the objective's special
    tokens (given the ids after the ordinary ones; --vocab_size counts them)."""
    from ..tokenizers import BPETokenizer, CharTokenizer, UnigramTokenizer, WordPieceTokenizer
    from ..tokenizers.wordpiece import BERT_SPECIAL_TOKENS
    if args.tokenizer == "char":
        return CharTokenizer.from_text(text if isinstance(text, str) else "".join(text),
                                       special_tokens=list(specials))
    size = 1024 if args.vocab_size is None else args.vocab_size
    try:
        if args.tokenizer == "wordpiece":        # BERT's five first, then the objective's
            names = list(dict.fromkeys([*BERT_SPECIAL_TOKENS, *specials]))
            return WordPieceTokenizer.train(text, size, special_tokens=names)
        if args.tokenizer == "unigram":
            return UnigramTokenizer.train(text, size, special_tokens=list(specials))
    except ValueError as exc:
        raise CLIError(f"--tokenizer {args.tokenizer}: {exc}") from None
    return BPETokenizer(special_tokens=list(specials) or None).train(text, size)


def _check_out(out: Path) -> None:
    """--out must be a directory or a path where one can be made: not a file, and not
    below one."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == out else f"is below {path}, which is a file"
                raise CLIError(f"--out {out}: {where}, not a directory")
            return


def _check_model_options(explicit: set, opts: dict, config: dict, step: int) -> None:
    """With --resume the model is the checkpoint's: a model option that asks for another
    one is an error, not silently ignored."""
    for name in sorted(explicit & set(MODEL_OPTIONS)):
        value = _boolean("--bias", opts[name]) if name == "bias" else opts[name]
        if name in config and value != config[name]:
            raise CLIError(f"--resume: --{name} {opts[name]} differs from the checkpoint's "
                           f"{config[name]!r} (step {step}): the model is the checkpoint's; "
                           f"drop --{name}, or start a new run in another --out")


# ---------------------------------------------------------------------- run
def run(args) -> int:
    """One process, or (--parallel) this rank of the MPI world (cli/_parallel.py)."""
    return run_on_ranks(args, _run)


def _run(args, comm) -> int:
    from ..training.checkpoint import CheckpointError
    from ..data import train_val_split
    from ..nn.gpt import GPT, GPTConfig
    from ..training import CSVLogger, TrainConfig, Trainer
    from . import _objectives as objectives
    from ._common import (describe, encode, read_text, recorded_text, run_checkpoint,
                          same_text)

    out = Path(args.out)
    _check_out(out)
    if args.init_from is not None and args.resume:
        raise CLIError(f"--init-from {args.init_from}: --resume continues the run's own "
                       "checkpoint; drop one of them")
    ckpt_dir, ckpt = run_checkpoint(out, args.resume)
    if ckpt is not None:
        if not ckpt.trainer_state or ckpt.optimizer_state is None:
            raise CLIError(f"--resume: {ckpt.path} holds weights only: no trainer state to resume")
        if ckpt.tokenizer is None:
            raise CLIError(f"--resume: {ckpt.path} has no tokenizer")
    saved = ckpt.trainer_state.get("train_config", {}) if ckpt else None
    opts, explicit = _options(args, saved)

    # the objective: the one given (clm by default), or (resuming) the checkpoint's
    if ckpt is not None:
        name = objectives.objective_of(ckpt)[0]
        if name not in objectives.MODELS:          # a run of finetune, distill or vae
            raise CLIError(f"--resume: {ckpt.path} is a run of the {name} objective, which "
                           "numpyllm train does not run"
                           + (": carry on with numpyllm vae train --resume" if name == "vae"
                              else ""))
        recorded_data = ckpt.trainer_state.get("data")
        if isinstance(recorded_data, dict) and "distill" in recorded_data:
            # a student's checkpoint says clm (so eval and sample read it), but its loss
            # needs the teacher: resumed here it would silently train without it
            raise CLIError(f"--resume: {ckpt.path} is a run of numpyllm distill (its loss "
                           "needs the teacher): carry on with numpyllm distill --out "
                           f"{shlex.quote(str(out))} --resume")
        if args.objective is not None and args.objective != name:
            raise CLIError(f"--resume: --objective {args.objective} differs from the "
                           f"checkpoint's {name} (step {ckpt.step}): the objective is the "
                           "checkpoint's; drop --objective, or start a new run in another --out")
    else:
        name = args.objective or "clm"
    settings = {k: getattr(args, k) for k in objectives.SETTINGS if getattr(args, k) is not None}
    objectives.check_settings(name, settings, resuming=ckpt is not None)
    if objectives.MODELS[name] != "GPT":
        objectives.check_options_fit(name, explicit, opts, _boolean("--bias", opts["bias"]))
    pairs_data = name == "seq2seq"          # source<TAB>target lines, not a text stream

    # the text: the one given, or (resuming) the one the checkpoint records
    recorded = ckpt.trainer_state.get("data") if ckpt else None
    if args.resume and args.data is None:
        if pairs_data and recorded is None:
            raise CLIError("--resume: the checkpoint records no data file: pass --data FILE "
                           "of source<TAB>target lines")
        source = recorded_text(recorded, advice="pass --data FILE with that text (or, to carry "
                               "on with another text, --data FILE --allow_new_data)")
        label = f"{source.label} (the checkpoint's text)"
    else:
        if pairs_data and args.data is None:
            raise CLIError("--objective seq2seq needs --data FILE: a UTF-8 file of "
                           "source<TAB>target lines")
        source = read_text(args.data)
        label = source.label
        if recorded is not None and not same_text(source.record, recorded):
            if not args.allow_new_data:
                raise CLIError(f"--resume: --data {args.data} is not the text this run was "
                               f"trained on, {describe(recorded)}: pass that text, or add "
                               f"--allow_new_data to carry on with {args.data}")
            label += " (new: the checkpoint was trained on another text)"
    val_fraction = args.val_fraction
    if val_fraction is None:
        val_fraction = (recorded or {}).get("val_fraction", 0.1)
    if not 0 <= val_fraction < 1:
        raise CLIError(f"--val_fraction must be in [0, 1), got {val_fraction}")
    data_source = {**source.record, "val_fraction": val_fraction}

    pretrained = None
    if args.init_from is not None:
        from ._init_from import init_from
        args.vocab_size_given = args.vocab_size is not None
        pretrained, tokenizer, block = init_from(args, opts, explicit, name,
                                                 objectives.MODELS[name] == "GPT")
    elif ckpt is not None:
        tokenizer = ckpt.tokenizer
        model_config = objectives.model_options(ckpt.model_config.get("type"),
                                                ckpt.model_config.get("config", {}))
        _check_model_options(explicit, opts, model_config, ckpt.step)
        block = int(model_config.get("block_size", opts["block_size"]))
        record = ckpt.trainer_state.get("objective") or {}
        if isinstance(record.get("context_length"), int):   # windows shorter than the
            block = record["context_length"]                # model's (--init-from runs)
    else:
        tokenizer = None                     # built from the data, below
        block = opts["block_size"]
    specials = objectives.special_tokens(name, block, settings)
    if not pairs_data:
        if tokenizer is None:
            tokenizer = _build_tokenizer(args, source.text, specials)
        ids = encode(tokenizer, source)
        train_ids, val_ids = train_val_split(ids, val_fraction)
        for part_name, part in (("training", train_ids), ("validation", val_ids)):
            if len(part) < block + 1 and not (part_name == "validation" and val_fraction == 0):
                raise CLIError(f"the {part_name} split has {len(part)} tokens, fewer than "
                               f"block_size + 1 = {block + 1}: use a longer text or a smaller "
                               "--block_size")
        train_data, val_data = train_ids, (val_ids if len(val_ids) > block else None)
        summary = (f"{len(source.text):,} characters of {label} -> {len(ids):,} tokens "
                   f"({type(tokenizer).__name__}, vocab {tokenizer.vocab_size}); "
                   f"{len(train_ids):,} train / "
                   f"{len(val_data) if val_data is not None else 0:,} val")
    else:
        sources, targets = objectives.read_pairs(source.record["path"], source.label)
        if tokenizer is None:
            tokenizer = _build_tokenizer(args, sources + targets, specials)
        pairs = objectives.encode_pairs(tokenizer, sources, targets, source.label)
        objectives.check_pair_lengths(
            pairs, block, source.label, "pass --block_size {longest} or more" if ckpt is None else
            "the model's context is the checkpoint's: shorten those pairs")
        train_data, val_data = objectives.split_pairs(pairs, val_fraction)
        if train_data is None or (val_data is None and val_fraction > 0):
            raise CLIError(f"{source.label}: {len(pairs)} pairs leave no "
                           f"{'training' if train_data is None else 'validation'} pair at "
                           f"--val_fraction {val_fraction}: use more pairs, or another "
                           "--val_fraction (0: no validation)")
        n_src, n_tgt = objectives.pair_tokens(pairs)
        summary = (f"{objectives.plural(len(pairs), 'pair')} of {label} -> {n_src:,} source "
                   f"+ {n_tgt:,} target "
                   f"tokens ({type(tokenizer).__name__}, vocab {tokenizer.vocab_size}); "
                   f"{len(train_data):,} train / "
                   f"{len(val_data) if val_data is not None else 0:,} val pairs")

    try:
        train_cfg = TrainConfig.from_dict({**(saved or {}), **{k: opts[k] for k in TRAIN_OPTIONS}})
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if ckpt is not None and train_cfg.max_iters <= ckpt.step:
        raise CLIError(f"--resume: the checkpoint is at step {ckpt.step} and --max_iters is "
                       f"{train_cfg.max_iters}: nothing to train; pass a larger --max_iters")

    if ckpt is not None:
        try:
            trainer, _ = Trainer.resume(ckpt, train_data, val_data, config=train_cfg)
        except CheckpointError as exc:
            raise CLIError(f"--resume: {exc}") from None
        trainer.data_source = data_source
        model = trainer.model
    else:
        objective = objectives.make_objective(name, tokenizer, block, settings)
        if pretrained is not None:
            model = pretrained
        elif objectives.MODELS[name] == "GPT":
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
        else:
            model = objectives.build_model(name, opts, tokenizer.vocab_size, tokenizer)
        try:
            trainer = Trainer(model, train_data, val_data, train_cfg, objective=objective,
                              data_source=data_source)
        except ValueError as exc:
            raise CLIError(f"--objective {name}: {exc}") from None

    c = model.config
    steps_line = (f"{model.num_parameters():,} parameters, {c.dtype}; {train_cfg.max_iters} "
                  f"steps of batch {train_cfg.batch_size} x {train_cfg.gradient_accumulation_steps}"
                  + (f" (resuming at step {trainer.step})" if ckpt is not None else ""))
    print(f"numpyllm train: {summary}")
    if isinstance(model, GPT) or type(model).__name__ == "Llama":
        origin = f" from {args.init_from}" if pretrained is not None else ""
        kind = "" if isinstance(model, GPT) and not origin else f"{type(model).__name__}{origin}, "
        print(f"model: {kind}{c.n_layer} layers, {c.n_head} heads, {c.n_embd} "
              f"wide, context {c.block_size}" + (f" (training windows of {block})"
                                                 if block != c.block_size else "")
              + f", {steps_line}")
    else:
        print(f"{objectives.describe_model(model)}, {steps_line}")
    if name != "clm":
        print(objectives.describe_objective(trainer.objective, tokenizer))
    print(schedule_line(train_cfg, trainer.step))
    if ckpt is not None:
        before = lr_at(TrainConfig.from_dict(saved), trainer.step)
        now = lr_at(train_cfg, trainer.step)
        if not math.isclose(before, now, rel_tol=1e-9):
            print(f"note: the settings given move the learning rate at step {trainer.step} from "
                  f"{before:.2e} (the checkpoint's schedule) to {now:.2e}")

    if comm is not None:
        attach(trainer, args, comm, name, train_cfg)
    writer = comm is None or comm.rank == 0
    # the log: with --resume, the rows after the checkpoint's step (written by a run that
    # stopped after it) are dropped first, so each step is in it once
    progress = Progress(train_cfg.max_iters, trainer.step, args.quiet)
    trainer.callbacks.append(progress)
    if writer:
        trainer.callbacks.append(CSVLogger(out / "log.csv", append=ckpt is not None,
                                           resume_step=ckpt.step if ckpt is not None else None))
    start, first_step = time.perf_counter(), trainer.step
    evals, code = fit(trainer, command="train", ckpt_dir=ckpt_dir, tokenizer=tokenizer,
                      progress=progress,
                      resume=f"numpyllm train --out {shlex.quote(str(out))} --resume")
    if code is not None:
        return code
    elapsed = time.perf_counter() - start
    steps = trainer.step - first_step
    print(f"trained {steps} steps in {elapsed:.1f} s "
          f"({1000 * elapsed / max(steps, 1):.1f} ms/step); checkpoint in {ckpt_dir}")
    if comm is not None:
        report_after(trainer, args, comm, train_cfg)
    if evals and "val_loss" in evals[-1]:
        print(f"final val loss {evals[-1]['val_loss']:.4f} "
              f"(perplexity {math.exp(evals[-1]['val_loss']):.2f})")
    if not writer:
        return 0                               # rank 0 plots and samples
    if args.parallel in ("tp", "pp", "zero3"):         # sample from the whole model it saved
        model = trainer.parallel.to_save(model, None)[0]
    if not args.no_plot:
        from ..plots import plot_loss_csv
        png = plot_loss_csv(out / "log.csv", out / "loss.png")
        print(f"loss curve: {png}" if png else "loss curve: skipped (pip install matplotlib)")
    if isinstance(model, GPT) or type(model).__name__ == "Llama":        # a decoder
        _print_samples(model, tokenizer, args, opts["seed"])
    else:
        held_out = val_data is not None
        _report(trainer.objective, model, tokenizer, val_data if held_out else train_data,
                "validation" if held_out else "training", args, opts["seed"])
    return 0


def _print_samples(model, tokenizer, args, seed: int) -> None:
    from ..generate import generate
    if args.samples <= 0:
        return
    rng = np.random.default_rng(seed)
    try:
        # start each sample at a line break (WordPiece drops it: then at token 0)
        start = tokenizer.encode("\n") or [0]
    except ValueError:                       # a vocabulary without one
        start = [0]
    for i in range(args.samples):
        ids = generate(model, np.array(start), args.sample_tokens, temperature=0.8, top_k=50, rng=rng)
        print(f"--- sample {i + 1} ---")
        print(tokenizer.decode(ids.tolist()))
    print("---")


# the end of a run of the encoder (mlm) or the encoder-decoder (span, seq2seq): what it
# can do on held-out data, on at most this many windows or pairs (numpyllm eval: all)
REPORT_LIMIT = 1024


def _report(objective, model, tokenizer, data, which: str, args, seed: int) -> None:
    from ..generate import generate_seq2seq
    from ..training import evaluate_objective, exact_match
    from . import _objectives as objectives
    rng = np.random.default_rng(seed)
    if objective.name == "mlm":
        T = objective.context_length
        tokens = data[:REPORT_LIMIT * T + 1]
        capped = len(tokens) < len(data)
        result = evaluate_objective(model, objective, tokens, batch_size=32)   # as eval
        print(f"masked-token accuracy on the {which} text: {result['accuracy']:.3f} "
              f"({result['count']:,} masked tokens"
              + (f" in its first {REPORT_LIMIT:,} windows" if capped else "")
              + f"; loss {result['loss']:.4f}, perplexity {result['perplexity']:.2f})")
        return
    if objective.name == "span":
        if args.samples <= 0:
            return
        T = objective.context_length
        starts = rng.integers(0, len(data) - T, size=args.samples)
        src, tgt = objective.corrupt(np.stack([data[s:s + T] for s in starts]), rng)
        outs = generate_seq2seq(model, src, tgt.shape[1], bos_id=objective.bos_id,
                                eos_id=objective.eos_id, greedy=True)
        for i, out in enumerate(outs):
            print(f"--- {which} window {i + 1} (greedy decoding) ---")
            print("input:  " + objectives.shown(tokenizer.decode(src[i].tolist())))
            print("target: " + objectives.shown(tokenizer.decode(tgt[i].tolist())))
            print("output: " + objectives.shown(tokenizer.decode(out.tolist())))
        print("---")
        return
    # seq2seq: a few pairs decoded, and how many of them all come out exactly right
    shown = objectives.decode_pairs(model, objective, data, max(args.samples, 0))
    if shown:
        print(f"--- {which} pairs (greedy decoding): source -> output ---")
    for i, out in enumerate(shown):
        target = data.targets[i]
        right = out.shape == target.shape and bool((out == target).all())
        print(f"{objectives.shown(tokenizer.decode(data.sources[i].tolist()))} -> "
              f"{objectives.shown(tokenizer.decode(out.tolist()))}"
              + ("  (right)" if right else
                 f"  (target: {objectives.shown(tokenizer.decode(target.tolist()))})"))
    if shown:
        print("---")
    scored = objectives.first_pairs(data, REPORT_LIMIT)
    score = exact_match(model, scored, bos_id=objective.bos_id, eos_id=objective.eos_id)
    print(f"exact match on the {which} pairs: {score:.3f} ({round(score * len(scored)):,} of "
          f"{len(scored):,}, greedy decoding"
          + (f"; the first {len(scored):,} of {len(data):,}: numpyllm eval scores them all"
             if len(scored) < len(data) else "") + ")")

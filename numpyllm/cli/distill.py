"""``numpyllm distill``: train a small student GPT (or Llama) from a teacher, on the CPU.

    numpyllm distill --teacher CKPT|HF_DIR --data FILE --out DIR
        [--student-config FILE.json] [--n_layer N --n_embd C --n_head H ...]
        [--temperature 2] [--alpha 0.5] [--init-from-teacher-layers 0,2,4]
        [--sequence-level N_TOKENS [--sequence-level-mix]] [training options] [--resume]

The teacher is a numpyllm checkpoint (of ``numpyllm train``) or a Hugging Face directory
(GPT-2, Llama, Qwen2, Mistral). The student is of the teacher's family, with its
vocabulary and tokenizer: its shape is the teacher's changed by --student-config (a JSON
object of config fields, e.g. ``{"n_layer": 2, "n_embd": 128, "n_head": 4}``) and then
by the model flags. --init-from-teacher-layers 0,2,4 makes a student of those blocks of
the teacher, at its width, with its embeddings, final norm and head (DistilGPT2's
recipe); without it the student starts from random weights (--seed).

Each step the teacher reads the batch without a graph and the student learns
``alpha T^2 KL(teacher^T || student^T) + (1 - alpha) CE`` (docs/distillation.md).
--sequence-level N first has the teacher write N tokens (continuations of prompts cut
from the training split, sampled at temperature 1: Kim and Rush's sequence-level
distillation); the student then trains on them instead of the text, or, with
--sequence-level-mix, on both. --alpha 0 with it is pure sequence-level distillation
(the teacher is then not run during training).

The last --val_fraction of the text is held out. Checkpoints go to DIR/ckpt: they hold
the student as an ordinary causal LM (``numpyllm eval``, ``sample``, ``convert`` read
it) and record the teacher (path and a SHA-256 of its weights), T, alpha and the
sequence-level corpus (DIR/teacher-corpus.npy), so that ``--resume`` carries on exactly.
Training options are ``numpyllm train``'s (--max_iters, --learning_rate, --batch_size,
--block_size (the windows, at most the teacher's context), --eval_interval, --seed ...).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import time
from pathlib import Path

import numpy as np

from . import CLIError

# model options that change the student's shape (the rest are the teacher's)
STUDENT_OPTIONS = ("n_layer", "n_head", "n_embd", "dropout", "bias", "positions",
                   "attn_block_size", "dtype")
EVAL_TOKENS = 16384          # the held-out figures at the end: at most this many tokens


def register(subparsers) -> None:
    from .train import add_options
    p = subparsers.add_parser("distill", help="train a small student from a teacher "
                              "(knowledge distillation)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", metavar="CKPT|HF_DIR", help="the teacher: a numpyllm "
                   "checkpoint or a Hugging Face directory (with --resume: default the "
                   "recorded one)")
    p.add_argument("--data", metavar="FILE", help="UTF-8 text to train on (with --resume: "
                   "default the recorded file)")
    p.add_argument("--out", default="out", metavar="DIR", help="output directory (default: out)")
    p.add_argument("--student-config", "--student_config", dest="student_config",
                   metavar="FILE", help="JSON object of the student's config fields "
                   "(n_layer, n_embd, n_head, ...), applied to the teacher's")
    p.add_argument("--temperature", type=float, default=None,
                   help="T, the softening temperature (default 2)")
    p.add_argument("--alpha", type=float, default=None,
                   help="weight of the soft (teacher) term, in [0, 1] (default 0.5)")
    p.add_argument("--init-from-teacher-layers", "--init_from_teacher_layers",
                   dest="init_layers", metavar="I,J,...",
                   help="start the student from these blocks of the teacher (its width, "
                   "embeddings, final norm and head)")
    p.add_argument("--sequence-level", "--sequence_level", dest="sequence_level", type=int,
                   default=None, metavar="N", help="train on N tokens the teacher writes "
                   "(sequence-level distillation)")
    p.add_argument("--sequence-level-mix", "--sequence_level_mix", dest="sequence_mix",
                   action="store_true", help="with --sequence-level: the text and the "
                   "teacher's tokens together")
    p.add_argument("--val_fraction", "--val-fraction", type=float, default=None,
                   help="last fraction held out (default 0.1)")
    p.add_argument("--config", metavar="FILE", help="JSON file of training options")
    p.add_argument("--resume", action="store_true", help="continue the run in DIR/ckpt")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_options(p)
    p.set_defaults(func=run)


# ---------------------------------------------------------------------- the teacher
def load_teacher(path: str, dtype: str):
    """``(model, tokenizer, kind)`` of --teacher: a Hugging Face directory (it holds
    config.json) or a numpyllm checkpoint of a GPT or Llama; in eval mode, frozen."""
    from ._common import load_model_and_tokenizer, load_pretrained_model
    where = Path(path)
    if not where.is_dir():
        raise CLIError(f"--teacher {path}: no such directory")
    if (where / "config.json").is_file():
        model, tokenizer = load_pretrained_model(where, "train a student with it", dtype)
        kind = "hf"
    else:
        model, tokenizer, _ = load_model_and_tokenizer(where, "train a student with it")
        kind = "checkpoint"
        if np.dtype(model.config.dtype) != np.dtype(dtype):
            model.to(np.dtype(dtype))
    if type(model).__name__ not in ("GPT", "Llama"):
        raise CLIError(f"--teacher {path}: a {type(model).__name__}; a teacher is a GPT or "
                       "Llama (a decoder)")
    model.requires_grad_(False)
    model.eval()
    return model, tokenizer, kind


def weights_sha256(model) -> str:
    """A fingerprint of a model's weights (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(f"{name}:{p.data.shape}:{p.data.dtype};".encode())
        h.update(np.ascontiguousarray(p.data).tobytes())
    return h.hexdigest()


def same_tokenizer(a, b, probe: str) -> bool:
    """Whether two tokenizers are one: same kind and size, same ids for `probe` (the
    training text's start) and the same text for every id."""
    if type(a).__name__ != type(b).__name__ or a.vocab_size != b.vocab_size:
        return False
    enc = lambda t: getattr(t, "encode_ordinary", t.encode)(probe)   # noqa: E731
    try:
        if list(enc(a)) != list(enc(b)):
            return False
        return all(a.decode([i]) == b.decode([i]) for i in range(a.vocab_size))
    except (ValueError, KeyError, UnicodeDecodeError):
        return False


# ---------------------------------------------------------------------- the student
def parse_layers(text: str) -> list:
    try:
        layers = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        layers = []
    if not layers:
        raise CLIError(f"--init-from-teacher-layers {text}: expected block indices such as "
                       "0,2,4")
    return layers


def student_changes(args, explicit: set, opts: dict) -> dict:
    """The student's config fields that differ from the teacher's: --student-config's,
    then the model flags'."""
    from .train import _boolean
    changes = {}
    if args.student_config:
        from ._common import read_json_object
        changes.update(read_json_object("--student-config", args.student_config,
                                        "config fields"))
    for name in STUDENT_OPTIONS:
        if name in explicit:
            changes[name] = _boolean("--bias", opts[name]) if name == "bias" else opts[name]
    return changes


def build_student(teacher, block: int, changes: dict, layers, seed: int):
    from ..training.objectives.distill import init_from_teacher_layers, student_config
    changes = {**changes, "block_size": block}
    if layers is not None:
        if changes.get("n_layer", len(layers)) != len(layers):
            raise CLIError(f"--init-from-teacher-layers gives {len(layers)} blocks, the "
                           f"student config {changes['n_layer']}: drop one of them")
        changes["n_layer"] = len(layers)
    if "vocab_size" in changes and changes["vocab_size"] != teacher.config.vocab_size:
        raise CLIError(f"the student's vocab_size {changes['vocab_size']} is not the "
                       f"teacher's {teacher.config.vocab_size}: teacher and student share one "
                       "tokenizer")
    try:
        cfg = student_config(teacher.config, **changes)
        student = type(teacher)(cfg, rng=np.random.default_rng(seed))
        if layers is not None:
            init_from_teacher_layers(student, teacher, layers)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"the student: {exc}") from None
    return student


# ---------------------------------------------------------------------- the corpus
def save_ids(path: Path, ids: np.ndarray) -> None:
    """An int64 .npy file, written atomically."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(ids, dtype=np.int64), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_ids(path: Path, sha: str) -> np.ndarray:
    try:
        ids = np.load(path, allow_pickle=False)          # never runs code
    except (OSError, ValueError) as exc:
        raise CLIError(f"{path}: not the run's teacher corpus ({exc}): start a new run") \
            from None
    if ids.dtype != np.int64 or ids.ndim != 1 or ids_sha256(ids) != sha:
        raise CLIError(f"{path} has changed since the run began: start a new run")
    return ids


def ids_sha256(ids) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()


# ---------------------------------------------------------------------- run
def run(args) -> int:
    from ..data import train_val_split
    from ..training import TrainConfig, Trainer, evaluate_tokens
    from ..training.checkpoint import CheckpointError
    from ..training.objectives import Distill
    from ..training.objectives.distill import teacher_corpus
    from ._common import encode, run_checkpoint, run_text
    from ._fit import fit_logged, schedule_line
    from .train import TRAIN_OPTIONS, _check_out, _options

    out = Path(args.out)
    _check_out(out)
    _, ckpt = run_checkpoint(out, args.resume)
    record = {}
    if ckpt is not None:
        data_record = ckpt.trainer_state.get("data") or {}
        record = data_record.get("distill") if isinstance(data_record, dict) else None
        if not isinstance(record, dict) or ckpt.optimizer_state is None:
            raise CLIError(f"--resume: {ckpt.path} is not a run of numpyllm distill")
        given = [f"--{n.replace('_', '-')}" for n in ("student_config", "init_layers",
                                                      "sequence_level")
                 if getattr(args, n) is not None] + \
            [f"--{n}" for n in STUDENT_OPTIONS if getattr(args, n) is not None] + \
            (["--sequence-level-mix"] if args.sequence_mix else [])
        if given:
            raise CLIError(f"--resume: the student and its data are the checkpoint's: drop "
                           f"{', '.join(given)}")
    elif args.teacher is None:
        raise CLIError("--teacher CKPT|HF_DIR is required: the model to learn from")
    saved = ckpt.trainer_state.get("train_config", {}) if ckpt else None
    opts, explicit = _options(args, saved)
    if args.sequence_mix and args.sequence_level is None and not record.get("sequence_level"):
        raise CLIError("--sequence-level-mix needs --sequence-level N")

    # the teacher, and (resuming) the proof that it is the run's
    teacher_path = args.teacher or record.get("teacher")
    teacher, tokenizer, kind = load_teacher(teacher_path, opts["dtype"]
                                            if ckpt is None else ckpt.model_config.get(
                                                "config", {}).get("dtype", "float32"))

    # the settings: the run's, when resuming (given again, they must agree)
    T = args.temperature if args.temperature is not None else record.get("temperature", 2.0)
    alpha = args.alpha if args.alpha is not None else record.get("alpha", 0.5)
    for flag, value in (("--temperature", T), ("--alpha", alpha)):
        if ckpt is not None and value != record[flag[2:]]:
            raise CLIError(f"--resume: {flag} {value} differs from the run's {record[flag[2:]]}")
    if not (math.isfinite(T) and T > 0):
        raise CLIError(f"--temperature must be a finite number > 0, got {T}")
    if not 0 <= alpha <= 1:
        raise CLIError(f"--alpha must be in [0, 1], got {alpha}")

    # the text
    source, data_record = run_text(args.data, ckpt, required="the text to distill on")
    if ckpt is not None and not same_tokenizer(ckpt.tokenizer, tokenizer, source.text[:10000]):
        raise CLIError(f"--teacher {teacher_path}: its tokenizer is not the student's: teacher "
                       "and student must share one tokenizer")
    fingerprint = weights_sha256(teacher)
    if ckpt is not None and fingerprint != record.get("teacher_sha256"):
        raise CLIError(f"--teacher {teacher_path}: not the teacher this run began with (its "
                       f"weights differ from those recorded, {record.get('teacher')})")
    val_fraction = args.val_fraction if args.val_fraction is not None else \
        (data_record or {}).get("val_fraction", 0.1)
    if not 0 <= val_fraction < 1:
        raise CLIError(f"--val_fraction must be in [0, 1), got {val_fraction}")
    ids = encode(tokenizer, source)
    train_ids, val_ids = train_val_split(ids, val_fraction)

    # the student's windows: at most the teacher's context
    context = teacher.config.block_size
    if ckpt is not None:
        block = int(record["block_size"])
    else:
        block = opts["block_size"] if "block_size" in explicit else min(context,
                                                                        opts["block_size"])
        if block > context and teacher.config.positions == "learned":
            raise CLIError(f"--block_size {block} is longer than the teacher's context of "
                           f"{context}")
    for part_name, part in (("training", train_ids), ("validation", val_ids)):
        if len(part) < block + 1 and not (part_name == "validation" and val_fraction == 0):
            raise CLIError(f"the {part_name} split has {len(part)} tokens, fewer than "
                           f"block_size + 1 = {block + 1}: use a longer text or a smaller "
                           "--block_size")

    # sequence level: the teacher's corpus, written once and kept beside the checkpoints
    n_seq = record.get("sequence_level") if ckpt is not None else args.sequence_level
    mix = record.get("mix", False) if ckpt is not None else args.sequence_mix
    corpus_file = out / "teacher-corpus.npy"
    train_data = train_ids
    if n_seq:
        if ckpt is not None:
            corpus = load_ids(corpus_file, record["corpus_sha256"])
        else:
            if n_seq < block + 1:
                raise CLIError(f"--sequence-level {n_seq}: fewer tokens than one window "
                               f"({block + 1})")
            print(f"numpyllm distill: the teacher writes {n_seq:,} tokens ...", flush=True)
            start = time.perf_counter()
            corpus = teacher_corpus(teacher, train_ids, n_seq, prompt_length=min(8, block),
                                    rows=32, rng=opts["seed"])
            out.mkdir(parents=True, exist_ok=True)
            save_ids(corpus_file, corpus)
            print(f"  {corpus.size:,} tokens in {time.perf_counter() - start:.0f} s: "
                  f"{corpus_file}")
        train_data = np.concatenate([train_ids, corpus]) if mix else corpus

    record = {"teacher": str(Path(teacher_path).resolve()), "teacher_kind": kind,
              "teacher_sha256": fingerprint, "temperature": float(T), "alpha": float(alpha),
              "block_size": block, "init_from_teacher_layers": record.get(
                  "init_from_teacher_layers", args.init_layers and parse_layers(args.init_layers)),
              "sequence_level": n_seq or 0, "mix": bool(mix)}
    if n_seq:
        record["corpus_sha256"] = ids_sha256(corpus)
    data_source = {**source.record, "val_fraction": val_fraction, "distill": record}

    def objective(model):
        return Distill(block, temperature=float(T), alpha=float(alpha), teacher=teacher)

    try:
        cfg = TrainConfig.from_dict({**(saved or {}), **{k: opts[k] for k in TRAIN_OPTIONS}})
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    val_data = val_ids if len(val_ids) > block else None
    if ckpt is not None:
        if cfg.max_iters <= ckpt.step:
            raise CLIError(f"--resume: the checkpoint is at step {ckpt.step} and --max_iters "
                           f"is {cfg.max_iters}: nothing to train; pass a larger --max_iters")
        try:
            trainer, _ = Trainer.resume(ckpt, train_data, val_data, config=cfg,
                                        objective=objective)
        except CheckpointError as exc:
            raise CLIError(f"--resume: {exc}") from None
    else:
        layers = parse_layers(args.init_layers) if args.init_layers else None
        changes = student_changes(args, explicit, opts)
        if not changes and layers is None:
            raise CLIError("the student would be the teacher: give its shape with "
                           "--student-config FILE, the model flags (--n_layer, --n_embd, "
                           "--n_head) or --init-from-teacher-layers")
        student = build_student(teacher, block, changes, layers, opts["seed"])
        try:
            trainer = Trainer(student, train_data, val_data, cfg, objective=objective(student))
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    trainer.data_source = data_source
    model = trainer.model

    c, tc = model.config, teacher.config
    print(f"numpyllm distill: {len(source.text):,} characters of {source.label} -> "
          f"{len(ids):,} tokens; {len(train_ids):,} train / {len(val_ids):,} val"
          + (f"; + {n_seq:,} teacher tokens" if n_seq and mix else
             f"; training on {n_seq:,} teacher tokens" if n_seq else ""))
    print(f"teacher: {type(teacher).__name__} of {teacher_path}, {tc.n_layer} layers x "
          f"{tc.n_embd}, {teacher.num_parameters():,} parameters")
    print(f"student: {type(model).__name__}, {c.n_layer} layers x {c.n_embd}, "
          f"{c.n_head} heads, {model.num_parameters():,} parameters"
          + (f", from the teacher's blocks {record['init_from_teacher_layers']}"
             if record["init_from_teacher_layers"] else "")
          + f"; windows of {block}; {cfg.max_iters} steps of batch {cfg.batch_size}"
          + (f" (resuming at step {trainer.step})" if ckpt is not None else ""))
    print(f"loss: {alpha:g} T^2 KL(teacher || student at T = {T:g}) + {1 - alpha:g} CE")
    print(schedule_line(cfg, trainer.step))
    if alpha > 0:
        print("(the evaluations report that loss; the student's cross-entropy comes at the "
              "end)")
    code = fit_logged(trainer, out=out, ckpt=ckpt, quiet=args.quiet, command="distill",
                      tokenizer=tokenizer)
    if code is not None:
        return code
    if val_data is not None:
        held = val_ids[:EVAL_TOKENS + 1]
        s = evaluate_tokens(model, held, block_size=block)["loss"]
        t = evaluate_tokens(teacher, held, block_size=block)["loss"]
        print(f"held-out cross-entropy ({len(held) - 1:,} tokens"
              + (f", the first of {len(val_ids) - 1:,}" if len(held) < len(val_ids) else "")
              + f"): student {s:.4f}, teacher {t:.4f}")
    return 0

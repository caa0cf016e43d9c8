"""``numpyllm finetune classify | sft | dpo``: fine-tune a model for a task, on the CPU.

  classify  --data FILE of labelled texts (label<TAB>text; or .csv / .jsonl with
            --text-column, --label-column): a SequenceClassifier over a GPT or Llama,
            from --init-from (a checkpoint of ``numpyllm train`` or a Hugging Face
            directory) or from scratch (a character tokenizer and the model options).
            --balance undersamples to the rarest class, --split train,val,test
            (stratified, --seed). At the end: the test split's accuracy, per-class
            precision, recall and F1, and the confusion matrix. --adversarial pgd|freelb
            trains on adversarial input embeddings (--adv-epsilon, --adv-norm l2|linf,
            --adv-steps, --adv-alpha, --adv-weight, --adv-random-start; see
            docs/adversarial_training.md).
  sft       --data FILE of instructions (JSON: instruction, input, output), the loss on the
            responses (--train-on-prompt: the prompts too); --format alpaca | chat (chat:
            the tokenizer's chat template). At the end: the held-out response loss, and
            the test split's responses (greedy) in DIR/test-responses.json.
  dpo       --data FILE of preference pairs (JSON: instruction, input, chosen, rejected):
            DPO (--beta, --label-smoothing; --sft-weight adds the chosen responses'
            NLL, RPO) against the model as it starts. At the end:
            the held-out reward margin, preference accuracy and rewards.

sft and dpo need --init-from (a decoder and a tokenizer with an end token). What trains:
everything (default); --train-blocks N the last N blocks, the final norm and the head;
--lora-r R low-rank adapters on the --lora-targets (default: every attention and MLP
projection), the base frozen (a classifier's new score layer trains too). With LoRA, the
DPO reference is the model with its adapters switched off: no second copy of the weights.

--split is train,validation,test everywhere (sft's default 0.85,0.05,0.1 is the
LLMs-from-scratch book's 85% train, 5% validation, 10% test). The training options are
``numpyllm train``'s; from a pretrained model the learning rate defaults to 1e-4 (1e-3
with LoRA, whose adapters start at zero). Checkpoints go to DIR/ckpt; they record the
data file (path, size, SHA-256) and how it was read and split, so that ``--resume``
carries on exactly and ``numpyllm eval --ckpt DIR/ckpt`` scores a classifier's test split
(or any --data file, read the same way).
"""
from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

import numpy as np

from . import CLIError

TASKS = {"classify": "a sequence classifier on labelled texts",
         "sft": "instruction tuning (supervised fine-tuning) of a decoder",
         "dpo": "direct preference optimisation of a decoder"}
SPLITS = {"classify": "0.7,0.1,0.2", "sft": "0.85,0.05,0.1", "dpo": "0.85,0.05,0.1"}
LORA_DEFAULTS = {"learning_rate": 1e-3, "min_lr": 1e-4}


def register(subparsers) -> None:
    p = subparsers.add_parser("finetune", help="fine-tune a model: classify, sft or dpo",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True
    for task, text in TASKS.items():
        t = tasks.add_parser(task, help=text, description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_arguments(t, task)
        t.set_defaults(func=run)


def _add_arguments(p, task: str) -> None:
    from .train import add_options
    p.add_argument("--data", metavar="FILE", help="the examples (required; with --resume: "
                   "default the checkpoint's file)")
    p.add_argument("--init-from", "--init_from", dest="init_from", metavar="CKPT|HF_DIR",
                   help="start from a numpyllm checkpoint or a Hugging Face directory"
                   + (" (default: a new model, the model options)" if task == "classify"
                      else " (required)"))
    p.add_argument("--split", default=None, metavar="TRAIN,VAL,TEST",
                   help=f"fractions of the examples (default {SPLITS[task]})")
    p.add_argument("--out", default="out", metavar="DIR", help="output directory (default: out)")
    p.add_argument("--config", metavar="FILE", help="JSON file of training options")
    p.add_argument("--resume", action="store_true", help="continue the run in DIR/ckpt")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--train-blocks", "--train_blocks", dest="train_blocks", type=int,
                   default=None, metavar="N", help="train the last N blocks, the final norm "
                   "and the head (default: everything)")
    p.add_argument("--lora-r", "--lora_r", dest="lora_r", type=int, default=None, metavar="R",
                   help="LoRA adapters of rank R (the base frozen)")
    p.add_argument("--lora-alpha", "--lora_alpha", dest="lora_alpha", type=float, default=None,
                   help="LoRA scale numerator: the adapter is scaled by alpha / r (default 16)")
    p.add_argument("--lora-dropout", "--lora_dropout", dest="lora_dropout", type=float,
                   default=None, help="dropout on the adapters' input (default 0)")
    p.add_argument("--lora-targets", "--lora_targets", dest="lora_targets", default=None,
                   metavar="A,B", help="module-name patterns to adapt (default: every "
                   "attention and MLP projection)")
    p.add_argument("--use-rslora", "--use_rslora", dest="use_rslora", action="store_true",
                   help="scale by alpha / sqrt(r) (rank-stabilised LoRA)")
    if task == "classify":
        p.add_argument("--text-column", default="text", help="CSV/JSONL: the text's column")
        p.add_argument("--label-column", default="label", help="CSV/JSONL: the label's column")
        p.add_argument("--balance", action="store_true",
                       help="undersample every class to the rarest one's count")
        from ._finetune_classify import add_adversarial_options
        add_adversarial_options(p)
    if task == "sft":
        p.add_argument("--format", choices=["alpaca", "chat"], default="alpaca",
                       help="how an example becomes a prompt (chat: the tokenizer's template)")
        p.add_argument("--train-on-prompt", action="store_true",
                       help="the prompt's tokens count in the loss too")
        p.add_argument("--pack", action="store_true",
                       help="pack short examples into rows of --max-length tokens")
        p.add_argument("--max-new-tokens", type=int, default=64,
                       help="tokens of each test response at the end (default 64)")
    if task in ("sft", "dpo"):
        p.add_argument("--max-length", type=int, default=None,
                       help="tokens of a prompt and its response (default: the model's "
                       "context + 1)")
    if task == "dpo":
        p.add_argument("--beta", type=float, default=0.1, help="DPO's beta (default 0.1)")
        p.add_argument("--label-smoothing", type=float, default=0.0,
                       help="conservative DPO's epsilon in [0, 0.5) (default 0)")
        p.add_argument("--sft-weight", type=float, default=0.0,
                       help="add this times the chosen responses' per-token negative "
                       "log-likelihood (RPO; keeps the right answers likely; default 0)")
    add_options(p)


# ---------------------------------------------------------------------- checks
def _fractions(text: str) -> list:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        parts = None
    if parts is None or len(parts) != 3 or not all(math.isfinite(f) and f >= 0 for f in parts) \
            or parts[0] <= 0 or abs(sum(parts) - 1) > 1e-6:
        raise CLIError(f"--split {text}: expected three fractions TRAIN,VAL,TEST, each >= 0 "
                       "(train > 0), that sum to 1, such as 0.7,0.1,0.2")
    return parts


def _lora_settings(args) -> dict | None:
    given = [f"--{name.replace('_', '-')}" for name in ("lora_alpha", "lora_dropout",
                                                          "lora_targets")
             if getattr(args, name) is not None] + (["--use-rslora"] if args.use_rslora else [])
    if args.lora_r is None:
        if given:
            raise CLIError(f"{', '.join(given)} without --lora-r: pass --lora-r R to train "
                           "LoRA adapters")
        return None
    if args.lora_r < 1:
        raise CLIError(f"--lora-r must be >= 1 (the adapters' rank), got {args.lora_r}")
    alpha = 16.0 if args.lora_alpha is None else args.lora_alpha
    if not (math.isfinite(alpha) and alpha > 0):
        raise CLIError(f"--lora-alpha must be a finite number > 0, got {alpha}")
    dropout = 0.0 if args.lora_dropout is None else args.lora_dropout
    if not 0 <= dropout < 1:
        raise CLIError(f"--lora-dropout must be in [0, 1), got {dropout}")
    targets = None
    if args.lora_targets is not None:
        targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
        if not targets:
            raise CLIError("--lora-targets: no pattern given")
    return {"r": args.lora_r, "alpha": alpha, "dropout": dropout, "targets": targets,
            "use_rslora": args.use_rslora}


def _file_record(path: Path) -> dict:
    raw = path.read_bytes()
    return {"source": "file", "path": str(path.resolve()), "bytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest()}


def _data_file(args, recorded: dict | None) -> Path:
    """--data, or (resuming without it) the file the checkpoint records, unchanged."""
    if args.data is None:
        if recorded is None:
            raise CLIError("--data FILE is required")
        path = Path(str(recorded.get("path")))
        if not path.is_file() or _file_record(path)["sha256"] != recorded.get("sha256"):
            raise CLIError(f"the checkpoint was trained on {recorded.get('path')}, which is "
                           "no longer there or has changed: pass --data FILE")
        return path
    path = Path(args.data)
    if not path.is_file():
        raise CLIError(f"--data {path}: no such file")
    if recorded is not None and _file_record(path)["sha256"] != recorded.get("sha256"):
        raise CLIError(f"--resume: --data {path} is not the file this run was trained on "
                       f"({recorded.get('path')})")
    return path


# ---------------------------------------------------------------------- the model
def _is_decoder(model) -> bool:
    return type(model).__name__ in ("GPT", "Llama")


def load_init(args, opts: dict, explicit: set):
    """``(decoder, tokenizer)`` from --init-from: a Hugging Face directory (it holds
    config.json) or a numpyllm checkpoint of a GPT or Llama; in training mode."""
    from ..hub import PretrainedError, load_pretrained
    from ..training.checkpoint import CheckpointError, load_model
    from ._init_from import SHAPE_OPTIONS
    where = f"--init-from {args.init_from}"
    path = Path(args.init_from)
    if not path.is_dir():
        raise CLIError(f"{where}: no such directory")
    given = [f"--{name}" for name in SHAPE_OPTIONS if name in explicit]
    if given:
        raise CLIError(f"{where}: {', '.join(given)} would shape another model; the model "
                       "is the one it holds: drop them")
    dtype = opts["dtype"] if "dtype" in explicit else None
    if (path / "config.json").is_file():
        dropout = opts["dropout"] if "dropout" in explicit else None
        try:
            model, tokenizer = load_pretrained(path, dtype or "float32", dropout=dropout)
        except PretrainedError as exc:
            raise CLIError(str(exc)) from None
    else:
        if "dropout" in explicit:
            raise CLIError(f"{where}: --dropout: a checkpoint's model keeps its own rates")
        try:
            model, tokenizer, _ = load_model(path, dtype=dtype)
        except CheckpointError as exc:
            raise CLIError(f"{where}: {exc}") from None
        if not _is_decoder(model):
            raise CLIError(f"{where}: a {type(model).__name__} checkpoint; fine-tuning starts "
                           "from a GPT or Llama (a checkpoint of numpyllm train)")
    if tokenizer is None:
        raise CLIError(f"{where}: it has no tokenizer")
    from ..nn.lora import lora_layers
    if lora_layers(model):
        raise CLIError(f"{where}: the model carries LoRA adapters: merge them first "
                       "(numpyllm.nn.unload_lora), or continue that run with --resume")
    model.requires_grad_(True)
    model.train()
    return model, tokenizer


def _choose_trainable(model, args, lora: dict | None, keep=()) -> None:
    """--train-blocks and --lora-r: what trains. `keep`: modules that train whatever the
    choice (a classifier's new score layer)."""
    from ..nn import apply_lora, train_blocks
    if args.train_blocks is not None:
        blocks = model.backbone if hasattr(model, "backbone") else model
        n = blocks.config.n_layer
        if not 0 <= args.train_blocks <= n:
            raise CLIError(f"--train-blocks {args.train_blocks}: the model has {n} blocks "
                           f"(expected 0..{n})")
        train_blocks(model, args.train_blocks)
    if lora is not None:
        chosen = [p for p in model.parameters() if p.requires_grad] \
            if args.train_blocks is not None else []
        try:
            apply_lora(model, lora["r"], lora["alpha"], lora["dropout"], lora["targets"],
                       use_rslora=lora["use_rslora"], rng=np.random.default_rng(args.seed_))
        except (TypeError, ValueError) as exc:
            raise CLIError(f"--lora-targets: {exc}" if "target" in str(exc) else str(exc)) \
                from None
        for p in chosen:
            p.requires_grad_(True)
    for module in keep:
        module.requires_grad_(True)


def _fine_tune_defaults(opts: dict, explicit: set, lora) -> None:
    from ._init_from import FINE_TUNE_DEFAULTS
    for name, value in (LORA_DEFAULTS if lora else FINE_TUNE_DEFAULTS).items():
        if name not in explicit:
            opts[name] = value


# ---------------------------------------------------------------------- run
def run(args) -> int:
    from ._common import run_checkpoint
    from .train import _check_out, _options
    out = Path(args.out)
    _check_out(out)
    if args.resume and args.init_from is not None:
        raise CLIError(f"--init-from {args.init_from}: --resume continues the run's own "
                       "checkpoint; drop one of them")
    _, ckpt = run_checkpoint(out, args.resume)
    if ckpt is not None:
        if not ckpt.trainer_state or ckpt.optimizer_state is None or ckpt.tokenizer is None:
            raise CLIError(f"--resume: {ckpt.path} holds no trainer state and tokenizer "
                           "to resume")
        task = _record(ckpt).get("task")
        if task != args.task:
            raise CLIError(f"--resume: {ckpt.path} is not a run of numpyllm finetune "
                           f"{args.task}")
    elif args.init_from is None and args.task != "classify":
        raise CLIError(f"finetune {args.task} needs --init-from CKPT|HF_DIR: a decoder "
                       "and its tokenizer to start from")
    saved = ckpt.trainer_state.get("train_config", {}) if ckpt else None
    opts, explicit = _options(args, saved)
    args.seed_ = opts["seed"]
    lora = _lora_settings(args)
    if ckpt is not None and (lora is not None or args.train_blocks is not None):
        raise CLIError("--resume: what trains is the checkpoint's: drop --lora-* and "
                       "--train-blocks")
    if args.train_blocks is not None and args.train_blocks < 0:
        raise CLIError(f"--train-blocks must be >= 0, got {args.train_blocks}")
    record = _record(ckpt) if ckpt else {}
    split = record.get("split") or _fractions(args.split or SPLITS[args.task])
    if ckpt is not None and args.split is not None and _fractions(args.split) != split:
        raise CLIError(f"--resume: --split {args.split} differs from the run's "
                       f"{','.join(map(str, split))}")
    from ._finetune_classify import run_classify
    from ._finetune_dpo import run_dpo
    from ._finetune_sft import run_sft
    setup = {"classify": run_classify, "sft": run_sft, "dpo": run_dpo}[args.task]
    return setup(args, opts, explicit, lora, ckpt, record, split, out)


def _train(args, model, tokenizer, objective, train, val, opts, ckpt, out, data_source,
           summary: str):
    """Build (or resume) the trainer, run it with progress lines, stop cleanly on Ctrl-C;
    returns the trainer, or an exit code when the run stopped early."""
    from ..training import TrainConfig, Trainer
    from ..training.checkpoint import CheckpointError
    from ._fit import fit_logged, schedule_line
    from .train import TRAIN_OPTIONS
    saved = ckpt.trainer_state.get("train_config", {}) if ckpt else {}
    try:
        cfg = TrainConfig.from_dict({**saved, **{k: opts[k] for k in TRAIN_OPTIONS}})
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if ckpt is not None:
        if cfg.max_iters <= ckpt.step:
            raise CLIError(f"--resume: the checkpoint is at step {ckpt.step} and --max_iters "
                           f"is {cfg.max_iters}: nothing to train; pass a larger --max_iters")
        try:
            trainer, _ = Trainer.resume(ckpt, train, val, config=cfg, objective=objective)
        except CheckpointError as exc:
            raise CLIError(f"--resume: {exc}") from None
    else:
        try:
            trainer = Trainer(model, train, val, cfg, objective=objective(model))
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    trainer.data_source = data_source
    model = trainer.model
    print(f"numpyllm finetune {args.task}: {summary}")
    print(f"model: {type(model).__name__}, {model.num_parameters():,} parameters, "
          f"{model.parameter_summary()}; {cfg.max_iters} steps of batch {cfg.batch_size}"
          + (f" (resuming at step {trainer.step})" if ckpt is not None else ""))
    print(schedule_line(cfg, trainer.step))
    code = fit_logged(trainer, out=out, ckpt=ckpt, quiet=args.quiet,
                      command=f"finetune {args.task}", tokenizer=tokenizer)
    return trainer if code is None else code


def _data_source(path: Path, record: dict) -> dict:
    """What the trainer state keeps under "data": the file (path, size, SHA-256) and the
    task's record (how the file was read and split, the settings), for --resume and eval."""
    return {**_file_record(path), "finetune": record}


def _record(ckpt) -> dict:
    """The task record of a finetune checkpoint ({} for another)."""
    data = ckpt.trainer_state.get("data")
    record = data.get("finetune") if isinstance(data, dict) else None
    return record if isinstance(record, dict) else {}


def _decoder(args, opts, explicit, lora, ckpt):
    """The decoder to fine-tune (None when resuming: the checkpoint's) and its tokenizer."""
    if ckpt is not None:
        return None, ckpt.tokenizer
    model, tokenizer = load_init(args, opts, explicit)
    _fine_tune_defaults(opts, explicit, lora)
    _choose_trainable(model, args, lora)
    return model, tokenizer


def _max_length(args, model, record) -> int:
    context = model.config.block_size if model is not None else record["context"]
    if record:
        return record["max_length"]
    if args.max_length is None:
        return context + 1
    if not 2 <= args.max_length <= context + 1:
        raise CLIError(f"--max-length must be in [2, {context + 1}] (the model's context + "
                       f"1), got {args.max_length}")
    return args.max_length


# what `numpyllm eval` uses to score a classifier, defined with the classify task (imported
# last: that module uses the helpers above)
from ._finetune_classify import classifier_report, labelled_splits, read_labelled  # noqa: E402,F401

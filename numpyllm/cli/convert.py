"""``numpyllm convert``: numpyllm checkpoints <-> Hugging Face model directories.

    numpyllm convert --ckpt out/ckpt --to my-model         # a checkpoint -> a directory
    numpyllm convert --from path/to/gpt2 --out gpt2-ckpt   # a directory -> a checkpoint

``--to`` writes ``config.json``, ``model.safetensors`` (or shards with
``--max-shard-size``, e.g. 200MB) and the tokenizer's files, so that transformers'
``AutoModelForCausalLM.from_pretrained`` loads the model (numpyllm.hub.save_pretrained):
a GPT as GPT2LMHeadModel (learned positions, pre-LN, with biases), a Llama as
LlamaForCausalLM, Qwen2ForCausalLM or MistralForCausalLM. A model that no Hugging Face
architecture expresses (a RoPE or ALiBi GPT, an encoder) is refused, saying why.
``--dtype`` chooses the stored precision (float32, float16, bfloat16, float64; default:
the model's).

``--from`` reads a directory (numpyllm.hub.load_pretrained: safetensors only; a
``pytorch_model.bin`` is refused, as unpickling it would run code) and writes a numpyllm
checkpoint at step 0, with the tokenizer, which ``numpyllm sample``, ``eval`` and
``train --resume`` take.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import CLIError


def register(subparsers) -> None:
    p = subparsers.add_parser("convert", help="a checkpoint to a Hugging Face model directory, "
                              "or back", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", metavar="DIR", help="a numpyllm checkpoint to export (with --to)")
    source.add_argument("--from", dest="source", metavar="DIR",
                        help="a Hugging Face model directory to import (with --out)")
    p.add_argument("--to", metavar="DIR", help="the Hugging Face directory to write")
    p.add_argument("--out", metavar="DIR", help="the checkpoint directory to write")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16", "float64"], default=None,
                   help="--to: the stored precision (default: the model's); --from: the "
                   "model's dtype, float32 or float64 (default float32)")
    p.add_argument("--max-shard-size", "--max_shard_size", dest="max_shard_size", default=None,
                   metavar="SIZE", help="--to: split the weights into shards of at most SIZE "
                   "(e.g. 200MB, 5GB)")
    p.set_defaults(func=run)


def _empty_or_new(path: Path, flag: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CLIError(f"{flag} {path}: already exists and is not an empty directory: choose "
                       "a new path")


def run(args) -> int:
    from ..hub import PretrainedError, load_pretrained, save_pretrained
    if args.ckpt is not None:
        if args.to is None or args.out is not None:
            raise CLIError("--ckpt exports a checkpoint: pass --to DIR (not --out)")
        from ..training.checkpoint import CheckpointError, load_model
        try:
            model, tokenizer, ckpt = load_model(args.ckpt)
        except CheckpointError as exc:
            raise CLIError(str(exc)) from None
        from ..quantize.model import quantization_record
        quantized = quantization_record(model)
        if quantized is not None:
            raise CLIError(f"{ckpt.path}: a checkpoint quantized to {quantized['format']}: a "
                           "Hugging Face directory holds float weights; convert the float "
                           "checkpoint it was quantized from")
        to = Path(args.to)
        _empty_or_new(to, "--to")
        try:
            save_pretrained(model, tokenizer, to, dtype=args.dtype,
                            max_shard_size=args.max_shard_size)
        except PretrainedError as exc:
            raise CLIError(f"{ckpt.path}: {exc}") from None
        files = sorted(p.name for p in to.iterdir())
        print(f"{ckpt.path} (step {ckpt.step}, {type(model).__name__}, "
              f"{model.num_parameters():,} parameters) -> {to}: {', '.join(files)}")
        return 0
    if args.out is None or args.to is not None:
        raise CLIError("--from imports a directory: pass --out DIR (not --to)")
    if args.max_shard_size is not None:
        raise CLIError("--max-shard-size applies to --to")
    dtype = args.dtype or "float32"
    if dtype not in ("float32", "float64"):
        raise CLIError(f"--from: --dtype {dtype}: a numpyllm model computes in float32 or "
                       "float64 (half-precision weights are converted as they are read)")
    out = Path(args.out)
    _empty_or_new(out, "--out")
    try:
        model, tokenizer = load_pretrained(args.source, dtype)
    except PretrainedError as exc:
        raise CLIError(str(exc)) from None
    from ..training.checkpoint import save_checkpoint
    step_dir = save_checkpoint(out, step=0, model=model, tokenizer=tokenizer)
    print(f"{args.source} ({type(model).__name__}, {model.num_parameters():,} parameters, "
          f"{dtype}) -> {step_dir}"
          + ("" if tokenizer is not None else " (no tokenizer: the directory has none "
             "numpyllm reads)"))
    return 0

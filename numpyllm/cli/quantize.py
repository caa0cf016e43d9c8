"""``numpyllm quantize``: a checkpoint (or a Hugging Face directory) with its weights in
8 or 4 bits, written as a new checkpoint.

    numpyllm quantize --ckpt out/ckpt --format q4_0 --out out/ckpt-q4_0
    numpyllm quantize --model path/to/gpt2 --format q8_0 --out gpt2-q8_0

Formats (numpyllm.quantize, docs/quantization.md): ``int8`` (one float32 scale per output
channel), ``q8_0`` and ``q4_0`` (ggml's blocks of 32 with a float16 scale: 8.5 and 4.5
bits per weight). Every Linear layer is quantized (GPT's fused attention projection as
one matrix); token and position embeddings stay float, and so does an untied output head
unless ``--head``. ``--embeddings`` stores the token table in the format too (blocks of
32 along the embedding dimension, one row per token, as llama.cpp's token_embd); a head
tied to it then multiplies by the quantized table. The position table stays float. ``--llm-int8`` (with int8) makes the layers compute by LLM.int8():
activations quantized per token too, outlier input columns kept in float. The checkpoint stores each layer's codes and scales as tensors of
their own and loads back quantized: ``numpyllm sample`` and ``numpyllm eval`` take it as
they take any checkpoint. Training it is refused (its weights are not parameters), except
LoRA adapters over it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import CLIError

FORMATS = ("int8", "q8_0", "q4_0")


def register(subparsers) -> None:
    p = subparsers.add_parser("quantize", help="a checkpoint with int8, Q8_0 or Q4_0 weights",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", metavar="DIR", help="a numpyllm checkpoint")
    source.add_argument("--model", metavar="DIR", help="a Hugging Face model directory")
    p.add_argument("--format", required=True, choices=FORMATS, help="the weight format")
    p.add_argument("--out", required=True, metavar="DIR", help="the checkpoint to write (a new "
                   "or empty directory)")
    p.add_argument("--head", action="store_true", help="quantize an untied output head too")
    p.add_argument("--embeddings", action="store_true",
                   help="quantize the token table too (GPT's wte, Llama's embed_tokens) and "
                   "with it a tied head; the embedding size must be a multiple of 32 for "
                   "q8_0 and q4_0")
    p.add_argument("--llm-int8", "--llm_int8", dest="llm_int8", nargs="?", type=float,
                   const=6.0, default=None, metavar="THRESHOLD",
                   help="with --format int8: the layers compute by LLM.int8() (activations "
                   "in int8, input columns with |x| >= THRESHOLD in float; default 6.0)")
    p.set_defaults(func=run)


def _weight_bytes(model) -> int:
    from ..quantize import quantized_embeddings, quantized_layers
    return (sum(p.data.nbytes for p in model.parameters())
            + sum(m.qweight.nbytes for _, m in quantized_layers(model)
                  + quantized_embeddings(model)))


def run(args) -> int:
    from ..quantize import quantize
    from ..training.checkpoint import save_checkpoint
    from ._common import load_pretrained_model
    if args.llm_int8 is not None and args.format != "int8":
        raise CLIError(f"--llm-int8 needs --format int8 (LLM.int8() multiplies int8 weights "
                       f"with one scale per output channel), got --format {args.format}")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CLIError(f"--out {out}: already exists and is not an empty directory: choose a "
                       "new path")
    if args.ckpt is not None:
        from ..training.checkpoint import CheckpointError, load_model
        try:
            model, tokenizer, ckpt = load_model(args.ckpt)
        except CheckpointError as exc:
            raise CLIError(str(exc)) from None
        step, source = ckpt.step, str(ckpt.path)
        # what eval needs to score the text the model was trained on; no RNG states or
        # training settings: a quantized model is not trained further (but with LoRA)
        state = {k: v for k, v in ckpt.trainer_state.items() if k in ("data", "objective")}
    else:
        model, tokenizer = load_pretrained_model(args.model, None)
        step, source, state = 0, args.model, {}
    before = _weight_bytes(model)
    try:
        quantize(model, args.format, head=args.head, threshold=args.llm_int8,
                 embeddings=args.embeddings)
    except ValueError as exc:
        raise CLIError(f"{source}: {exc}") from None
    after = _weight_bytes(model)
    step_dir = save_checkpoint(out, step=step, model=model, tokenizer=tokenizer,
                               trainer_state=state)
    tied = getattr(model.config, "tie_weights", False)
    learned = any(n.rsplit(".", 1)[-1] == "wpe" for n, _ in model.named_modules())
    kept = (["token embeddings"] if not args.embeddings else []) \
        + (["positions"] if learned else []) \
        + (["head"] if not args.head and not (tied and args.embeddings) else [])
    print(f"{source} -> {step_dir}: {args.format}, weights {before / 2**20:,.2f} MiB -> "
          f"{after / 2**20:,.2f} MiB ({before / after:.2f}x smaller; "
          f"{', '.join(kept) or 'nothing'} kept float)")
    return 0

"""``numpyllm train --init-from DIR``: fine-tune a pretrained Hugging Face model.

The model (GPT-2, Llama, Qwen2, Mistral) and its tokenizer are the directory's
(`numpyllm.hub.load_pretrained`): the options that would shape another model
(--n_layer, --n_head, --n_embd, --positions, --bias, --attn_block_size, --tokenizer,
--vocab_size) are refused rather than silently ignored. --block_size is the length of the
training windows, at most the model's context (default: the smaller of the two, as the
model's context of 1,024 or 8,192 tokens is slow to train on a CPU); --dropout replaces
the file's rates; --dtype is the dtype the weights are converted to. The learning rate
defaults to 1e-4 decaying to 1e-5 (a pretrained model's rate: from-scratch's 1e-3 would
undo much of what it knows). The run is a decoder's:
--objective clm (default) or prefix_lm. Its checkpoints are numpyllm checkpoints
(``numpyllm convert --ckpt OUT/ckpt --to DIR`` writes a Hugging Face directory back).
"""
from __future__ import annotations

from . import CLIError

FINE_TUNE_DEFAULTS = {"learning_rate": 1e-4, "min_lr": 1e-5}

# model options that describe the model's shape: the directory's, never a flag's
SHAPE_OPTIONS = ("n_layer", "n_head", "n_embd", "positions", "bias", "attn_block_size")


def init_from(args, opts: dict, explicit: set, objective: str, decoder: bool):
    """``(model, tokenizer, block)``: the directory's model in training mode, its
    tokenizer, and the training window."""
    from ..hub import PretrainedError, load_pretrained
    where = f"--init-from {args.init_from}"
    if not decoder:
        raise CLIError(f"{where}: --objective {objective} trains an encoder or an "
                       "encoder-decoder; a pretrained directory holds a decoder: use clm or "
                       "prefix_lm")
    given = [f"--{name}" for name in SHAPE_OPTIONS if name in explicit]
    if args.tokenizer != "char" or args.vocab_size_given:
        given.append("--tokenizer/--vocab_size")
    if given:
        raise CLIError(f"{where}: {', '.join(given)} would shape another model; the model "
                       "and its tokenizer are the directory's: drop them")
    dropout = opts["dropout"] if "dropout" in explicit else None
    try:
        model, tokenizer = load_pretrained(args.init_from, opts["dtype"], dropout=dropout)
    except PretrainedError as exc:
        raise CLIError(str(exc)) from None
    if tokenizer is None:
        raise CLIError(f"{where}: the directory has no tokenizer numpyllm reads "
                       "(tokenizer.json, or vocab.json and merges.txt)")
    context = model.config.block_size
    block = opts["block_size"] if "block_size" in explicit else min(context, opts["block_size"])
    if block > context:
        raise CLIError(f"{where}: --block_size {block} is longer than the model's context "
                       f"of {context}")
    # a pretrained model is fine-tuned gently: a rate of 1e-3 (from-scratch's default)
    # undoes much of what it knows within a few steps
    for name, value in FINE_TUNE_DEFAULTS.items():
        if name not in explicit:
            opts[name] = value
    model.train()
    return model, tokenizer, block

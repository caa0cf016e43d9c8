"""``numpyllm attention``: draw every head's attention weights over a text, as a PNG.

The text is encoded with the checkpoint's tokenizer and run through the model once
(evaluation mode, no dropout); each panel of the picture is one head of one layer, row
i holding where token i looks (its weights over tokens 0..i sum to 1). Needs matplotlib
(``pip install matplotlib``).
"""
from __future__ import annotations

import numpy as np

from . import CLIError


def register(subparsers) -> None:
    p = subparsers.add_parser("attention", help="draw each head's attention weights over a text",
                              description=__doc__)
    p.add_argument("--ckpt", required=True, metavar="DIR", help="checkpoint directory")
    p.add_argument("--text", required=True, help="the text to look at (at most block_size tokens)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the picture to write")
    p.add_argument("--layer", type=int, default=None, metavar="L",
                   help="only layer L (0 is the first; negative counts from the last); "
                        "default: every layer")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..inspect import attention_maps
    from ..plots import plot_attention
    from ._common import load_model_and_tokenizer, require_matplotlib

    model, tokenizer, ckpt = load_model_and_tokenizer(args.ckpt, "encode --text for it")
    if type(model).__name__ != "GPT":
        raise CLIError(f"attention maps are drawn for a GPT (a decoder, --objective clm or "
                       f"prefix_lm); this checkpoint is a {type(model).__name__}")
    require_matplotlib()
    ids = tokenizer.encode(args.text)
    block = model.config.block_size
    if not ids:
        raise CLIError("--text encodes to no tokens")
    if len(ids) > block:
        raise CLIError(f"--text is {len(ids)} tokens, more than the model's context of "
                       f"{block} (block_size): shorten it")
    maps = attention_maps(model, np.array([ids]))           # {"h.i.attn": [1, nh, T, T]}
    layers = [(f"layer {i}", maps[f"h.{i}.attn"][0]) for i in range(model.config.n_layer)]
    if args.layer is not None:
        n = len(layers)
        if not -n <= args.layer < n:
            raise CLIError(f"--layer {args.layer}: the model has {n} layers (0..{n - 1})")
        layers = [layers[args.layer]]
    tokens = [tokenizer.decode([i]) for i in ids]
    title = (f"attention weights at step {ckpt.step}, {len(ids)} tokens "
             "(rows: queries, columns: keys)")
    png = plot_attention(layers, tokens, args.out, title=title)
    print(f"attention maps ({len(layers)} layer{'s' * (len(layers) > 1)} x "
          f"{model.config.n_head} heads, {len(ids)} tokens): {png}")
    return 0

"""``numpyllm sample``: generate text with a trained checkpoint or a pretrained model.

A decoder (a GPT or a Llama, trained with --objective clm or prefix_lm; or a Hugging
Face directory of GPT-2, Llama, Qwen2 or Mistral given with --model) continues a prompt:

    numpyllm sample --ckpt out/ckpt --prompt "ROMEO:" --max-new-tokens 200 \\
        --temperature 0.8 --top-k 50 --top-p 0.95 --seed 1 --stream
    numpyllm sample --model path/to/gpt2 --prompt "Hello, I'm a language model," --greedy
    numpyllm sample --model path/to/SmolLM2-135M-Instruct --chat --prompt "What is 2+2?"

``--chat`` renders the prompt as a user's message (after an optional ``--system``
message) with the directory's chat template, and prints only the reply.

It prints the prompt and its continuation. ``--stream`` prints the text as it is
generated (whole characters only, also with a byte-level BPE tokenizer). Sampling
applies temperature, then top-k, then top-p; ``--greedy`` takes the most likely token
every time. The same ``--seed`` gives the same text. Generation stops after
``--max-new-tokens`` tokens, at the end token (``--eos``; by default the tokenizer's
``<|endoftext|>`` when it has one), or at a ``--stop`` string (not printed).

An encoder-decoder (--objective seq2seq or span) writes the output for a ``--source``:

    numpyllm sample --ckpt out/s2s/ckpt --source "hello"                  # greedy
    numpyllm sample --ckpt out/s2s/ckpt --source "hello" --beam 4 --num-samples 2
    numpyllm sample --ckpt out/span/ckpt --source "ROMEO: <extra_id_0> light"

It decodes greedily, samples when --temperature, --top-k or --top-p is given, or runs a
beam search of --beam N beams (--num-samples: how many of the best to print). A span
model fills in the sentinels <extra_id_0>, <extra_id_1> ... written in the source, and
also prints the source with them filled in.

An encoder (--objective mlm) does not generate; it predicts the tokens at [MASK] in a
``--text``, printing the --top-k (default 5) most likely for each and the text filled in.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from . import CLIError


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="generate text from a checkpoint (or fill in "
                              "[MASK]s with an encoder)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--ckpt", metavar="DIR", help="checkpoint directory")
    where.add_argument("--model", metavar="DIR", help="a Hugging Face model directory (GPT-2, "
                       "Llama, Qwen2, Mistral: config.json, model.safetensors, tokenizer)")
    p.add_argument("--prompt", default=None, help="a decoder's text to continue (default: a "
                   "line break)")
    p.add_argument("--chat", action="store_true", help="send --prompt as a user's message "
                   "through the tokenizer's chat template (a Hugging Face directory's) and "
                   "print only the reply")
    p.add_argument("--system", default=None, metavar="TEXT",
                   help="with --chat: a system message before the user's")
    p.add_argument("--source", default=None, metavar="TEXT",
                   help="an encoder-decoder's input (required for one)")
    p.add_argument("--text", default=None, help="an encoder's (mlm) text, with [MASK] where "
                   "tokens are to be predicted")
    p.add_argument("--max-new-tokens", "--max_new_tokens", dest="max_new_tokens", type=int,
                   default=200, metavar="N", help="tokens to generate at most (default 200; "
                   "an encoder-decoder: at most its context)")
    p.add_argument("--temperature", type=float, default=None, metavar="T",
                   help="> 0; lower is more conservative (default 0.8; an encoder-decoder "
                   "samples only when this, --top-k or --top-p is given)")
    p.add_argument("--top-k", "--top_k", dest="top_k", type=int, default=None, metavar="K",
                   help="sample among the K most likely tokens only (an encoder: show K "
                   "predictions for each [MASK], default 5)")
    p.add_argument("--top-p", "--top_p", dest="top_p", type=float, default=None, metavar="P",
                   help="sample among the most likely tokens that make up probability P")
    p.add_argument("--greedy", action="store_true", help="always the most likely token")
    p.add_argument("--beam", type=int, default=None, metavar="N",
                   help="an encoder-decoder: beam search with N beams")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="random seed (same seed, same text)")
    p.add_argument("--stream", action="store_true", help="print the text as it is generated")
    p.add_argument("--stop", action="append", default=None, metavar="TEXT",
                   help="stop at this text (repeatable; not printed)")
    p.add_argument("--eos", default=None, metavar="TOKEN",
                   help="the end token's name (default: <|endoftext|> if the tokenizer has it; "
                   "an encoder-decoder: </s>)")
    p.add_argument("--num-samples", "--num_samples", dest="num_samples", type=int, default=1,
                   metavar="N", help="how many samples to print (default 1)")
    p.add_argument("--no-cache", dest="use_cache", action="store_false",
                   help="recompute the whole context every step (slow; for comparison)")
    p.set_defaults(func=run)


def _eos_id(tokenizer, name, default=None):
    specials = getattr(tokenizer, "special_tokens", None) or {}
    if name is None:       # a Hugging Face tokenizer names its end token; ours spell it
        declared = getattr(tokenizer, "eos_token_id", None)
        return declared if declared is not None else specials.get("<|endoftext|>", default)
    try:
        return tokenizer.token_id(name)
    except (ValueError, KeyError):
        raise CLIError(f"--eos {name!r} is not a token of this tokenizer") from None


def _refuse(args, flags: dict, what: str) -> None:
    """A one-line error for the first of `flags` (flag -> given?) that was given."""
    for flag, given in flags.items():
        if given:
            raise CLIError(f"{flag} does not apply: {what}")


def run(args) -> int:
    from ._common import load_model_and_tokenizer, load_pretrained_model
    if args.num_samples < 1:
        raise CLIError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.model is not None:           # a pretrained decoder: no objective record, causal
        model, tokenizer = load_pretrained_model(args.model, "encode a prompt for it")
        return _continue(args, model, tokenizer, None)
    model, tokenizer, ckpt = load_model_and_tokenizer(args.ckpt, "encode a prompt for it")
    kind = type(model).__name__
    if kind in ("GPT", "Llama"):
        return _continue(args, model, tokenizer, ckpt)
    if kind == "Transformer":
        return _translate(args, model, tokenizer, ckpt)
    if kind == "TransformerEncoderModel":
        return _fill_masks(args, model, tokenizer, ckpt)
    raise CLIError(f"a {kind} checkpoint does not generate text")


# ---------------------------------------------------------------------- decoders
def _continue(args, model, tokenizer, ckpt) -> int:
    from ..generate import stream_text
    from ..tokenizers import UnknownCharacterError
    from . import _objectives as objectives
    _refuse(args, {"--source": args.source is not None, "--text": args.text is not None,
                   "--beam": args.beam is not None},
            f"this model is a decoder ({type(model).__name__}): it continues a --prompt")
    text = "\n" if args.prompt is None else args.prompt
    if args.system is not None and not args.chat:
        raise CLIError("--system is a chat message: add --chat")
    try:
        if args.chat:
            prompt, text = _chat_prompt(args, tokenizer), ""     # print the reply only
        elif getattr(tokenizer, "special_tokens", None) and hasattr(tokenizer, "add_special_tokens"):
            prompt = tokenizer.encode(text, allowed_special="all")   # the user's own text
        else:
            prompt = tokenizer.encode(text)
    except UnknownCharacterError as exc:      # its advice (unk_token) is for Python code
        raise CLIError(f"--prompt: {str(exc).split(';')[0]}: the model never saw it in "
                       "training") from None
    if not prompt:
        raise CLIError("--prompt encodes to no tokens")
    temperature = 0.8 if args.temperature is None else args.temperature
    if not args.greedy and temperature <= 0:     # the library's advice is Python's
        raise CLIError(f"--temperature must be > 0, got {temperature:g} (for the most "
                       "likely token every time, pass --greedy)")
    rng = np.random.default_rng(args.seed)
    options = dict(temperature=temperature, top_k=args.top_k, top_p=args.top_p,
                   greedy=args.greedy, rng=rng, stop=args.stop,
                   eos_id=_eos_id(tokenizer, args.eos), use_cache=args.use_cache)
    if ckpt is not None and objectives.objective_of(ckpt)[0] == "prefix_lm":
        # a prefix decoder reads its prompt both ways, as in training (needs the cache)
        if args.use_cache:
            options["prefix"] = True
        else:
            print("note: without the KV cache the prompt is read causally, not as the "
                  "prefix this model was trained to read both ways", file=sys.stderr)
    for i in range(args.num_samples):
        pieces = stream_text(model, tokenizer, np.array(prompt), args.max_new_tokens,
                             **options)                   # checks the options at once
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        if args.stream:
            sys.stdout.write(text)
            sys.stdout.flush()
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
        else:
            print(text + "".join(pieces))
    return 0


def _chat_prompt(args, tokenizer) -> list:
    """The ids of --prompt as a user's message (after --system's), rendered by the
    tokenizer's chat template with the assistant's turn opened."""
    if not getattr(tokenizer, "chat_template", None):
        raise CLIError("--chat: this tokenizer has no chat template (a Hugging Face "
                       "directory declares one in tokenizer_config.json)")
    if args.prompt is None:
        raise CLIError("--chat: pass the user's message as --prompt")
    messages = ([{"role": "system", "content": args.system}] if args.system is not None
                else []) + [{"role": "user", "content": args.prompt}]
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                              tokenize=True))


# ---------------------------------------------------------------------- encoder-decoders
def _translate(args, model, tokenizer, ckpt) -> int:
    from ..generate import beam_search, generate_seq2seq
    from . import _objectives as objectives
    name, objective = objectives.objective_of(ckpt)
    what = (f"this checkpoint is an encoder-decoder ({name}): it writes the output for a "
            "--source")
    _refuse(args, {"--prompt": args.prompt is not None, "--text": args.text is not None,
                   "--stream": args.stream, "--stop": args.stop is not None}, what)
    if args.source is None:
        hint = (' with sentinels where text is missing, e.g. --source "the <extra_id_0> fox"'
                if name == "span" else "")
        raise CLIError(f"{what}: pass --source TEXT{hint}")
    if name == "span":
        names = [objectives.sentinel(i) for i in range(len(objective.sentinel_ids))]
        unknown = [m for m in objectives.sentinels_in(args.source) if m not in names]
        if unknown:
            raise CLIError(f"--source: {unknown[0]} is not one of this model's sentinels, "
                           + names[0] + (f" ... {names[-1]}" if len(names) > 1 else "")
                           + " (one per span of a training window)")
        src = objectives.encode_marked(tokenizer, args.source, names, "--source")
        if not set(src) & set(objective.sentinel_ids):
            raise CLIError(f"--source has no sentinel: a span model fills in {names[0]}"
                           + (f" ... {names[-1]}" if len(names) > 1 else "")
                           + " written where text is missing")
        src.append(objective.eos_id)                # as span corruption ends every input
    else:
        src = objectives.encode_marked(tokenizer, args.source, [], "--source")
    if not src:
        raise CLIError("--source encodes to no tokens")
    limit = model.config.max_len
    if len(src) > limit:
        raise CLIError(f"--source is {len(src)} tokens, more than the model's context of "
                       f"{limit}: shorten it")
    eos = _eos_id(tokenizer, args.eos, objective.eos_id)
    n = min(args.max_new_tokens, limit)
    if n < 1:
        raise CLIError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    sampling = any(v is not None for v in (args.temperature, args.top_k, args.top_p))
    outputs = []
    if args.beam is not None:
        _refuse(args, {"--temperature": args.temperature is not None,
                       "--top-k": args.top_k is not None, "--top-p": args.top_p is not None,
                       "--greedy": args.greedy},
                "--beam searches for the most likely outputs")
        if args.beam < 1 or args.num_samples > args.beam:
            raise CLIError(f"--beam must be >= 1 and at least --num-samples "
                           f"({args.num_samples}), got {args.beam}")
        hyps = beam_search(model, np.array(src), bos_id=objective.bos_id, eos_id=eos,
                           beam_width=args.beam, max_new_tokens=n, use_cache=args.use_cache)
        outputs = [(h.tokens, f" (score {h.score:.3f})") for h in hyps[:args.num_samples]]
    else:
        temperature = 0.8 if args.temperature is None else args.temperature
        if sampling and not args.greedy and temperature <= 0:
            raise CLIError(f"--temperature must be > 0, got {temperature:g}")
        rng = np.random.default_rng(args.seed)
        for _ in range(args.num_samples):
            out = generate_seq2seq(model, np.array(src), n, bos_id=objective.bos_id,
                                   eos_id=eos, temperature=temperature, top_k=args.top_k, top_p=args.top_p,
                                   greedy=args.greedy or not sampling, rng=rng,
                                   use_cache=args.use_cache)
            outputs.append((out, ""))
    for i, (out, note) in enumerate(outputs):
        out = out[:-1] if out.size and out[-1] == eos else out
        if len(outputs) > 1:
            print(f"--- {'hypothesis' if args.beam else 'sample'} {i + 1}{note} ---")
        print(tokenizer.decode(out.tolist()))
        if name == "span":
            print("filled in: " + objectives.fill_spans(tokenizer, objective, src, out))
    return 0


# ---------------------------------------------------------------------- encoders
def _fill_masks(args, model, tokenizer, ckpt) -> int:
    from ..autograd import no_grad
    from . import _objectives as objectives
    name, objective = objectives.objective_of(ckpt)
    what = (f"this checkpoint is an encoder ({name}): it does not generate text, it "
            f"predicts the tokens at {objectives.MASK} in a --text")
    _refuse(args, {"--prompt": args.prompt is not None, "--source": args.source is not None,
                   "--beam": args.beam is not None, "--stream": args.stream}, what)
    if args.text is None:
        raise CLIError(f"{what}: pass --text with {objectives.MASK} where tokens are missing, "
                       f'e.g. --text "ROMEO: I {objectives.MASK}ll go"')
    mask_id = getattr(objective, "mask_id", None)
    if mask_id is None:
        raise CLIError(f"this encoder was trained with {name}, which has no "
                       f"{objectives.MASK} token to fill in")
    ids = objectives.encode_marked(tokenizer, args.text, [objectives.MASK], "--text")
    at = [i for i, t in enumerate(ids) if t == mask_id]
    if not at:
        raise CLIError(f"--text has no {objectives.MASK}: write it where a token is to be "
                       "predicted")
    if len(ids) > model.config.max_len:
        raise CLIError(f"--text is {len(ids)} tokens, more than the model's context of "
                       f"{model.config.max_len}: shorten it")
    k = 5 if args.top_k is None else args.top_k
    if k < 1:
        raise CLIError(f"--top-k must be >= 1, got {k}")
    with no_grad():
        logits = model(np.array([ids]))[0].data[0].astype(np.float64)    # [T, V]
    logits[:, list(objective.special_ids)] = -np.inf       # never a special token
    filled = list(ids)
    for n, pos in enumerate(at, 1):
        z = logits[pos] - logits[pos].max()
        p = np.exp(z) / np.exp(z).sum()
        best = np.argsort(-p, kind="stable")[:k]
        filled[pos] = int(best[0])
        print(f"{objectives.MASK} {n} (token {pos}): "
              + ", ".join(f"{tokenizer.decode([int(t)])!r} {p[t]:.3f}" for t in best))
    print("filled in: " + tokenizer.decode(filled))
    return 0

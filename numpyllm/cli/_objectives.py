"""What `numpyllm train | eval | sample` need to know of each training objective (not a
command itself: the leading underscore).

    --objective  model                    data                      special tokens added
    clm          GPT                      a text                    -
    prefix_lm    GPT                      a text                    -
    mlm          TransformerEncoderModel  a text                    [MASK]
    span         Transformer              a text                    <pad> <s> </s> <extra_id_0> ...
    seq2seq      Transformer              source<TAB>target lines   <pad> <s> </s>

The model options of `numpyllm train` (nanoGPT's names) map onto the encoder and the
encoder-decoder: --n_layer is the number of layers of each stack, --n_embd the width
(d_model), --n_head, --dropout and --dtype as they are, and --block_size the context: the
window of text (clm, prefix_lm, mlm, span) or the longest source or target (seq2seq).
The encoder is BERT-like (learned positions, GELU, BERT's MLM head), the encoder-decoder
T5-like (sinusoidal positions, ReLU, one embedding matrix shared by both sides and the
output); both are pre-LN, as the GPT is, so nanoGPT's learning rate and short warmup suit
all of them.

Special tokens take the ids after the ordinary ones. A CharTokenizer reaches them by id
only, never by spelling their names in a text, so a text that contains "[MASK]" or "</s>"
is just those characters; a BPETokenizer is told the same (`encode_ordinary`). Only the
text a user types to `numpyllm sample` (--text, --source) turns the names into the
tokens (`encode_marked`).
"""
from __future__ import annotations

import re
from dataclasses import fields

import numpy as np

from . import CLIError

MODELS = {"clm": "GPT", "prefix_lm": "GPT", "mlm": "TransformerEncoderModel",
          "span": "Transformer", "seq2seq": "Transformer"}
KINDS = {"GPT": "decoder", "TransformerEncoderModel": "encoder",
         "Transformer": "encoder-decoder"}

MASK, PAD, BOS, EOS = "[MASK]", "<pad>", "<s>", "</s>"
_SENTINEL = re.compile(r"<extra_id_([0-9]+)>")


def sentinel(i: int) -> str:
    return f"<extra_id_{i}>"


def sentinels_in(text: str) -> list:
    """The sentinel names written in `text`, in order."""
    return [m.group() for m in _SENTINEL.finditer(text)]


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


# ---------------------------------------------------------------------- which objective
def objective_of(ckpt):
    """``(name, Objective)`` of a checkpoint, from the record its trainer state keeps;
    a checkpoint without one (older numpyllm, or a Python script) is causal LM."""
    from ..training.objectives import CausalLM, objective_from_dict
    record = (ckpt.trainer_state or {}).get("objective")
    if record is None:
        block = ckpt.model_config.get("config", {}).get("block_size")
        if ckpt.model_config.get("type") not in ("GPT", "Llama"):     # decoders: causal
            raise CLIError(f"{ckpt.path}: a {ckpt.model_config.get('type')} checkpoint that "
                           "records no training objective: cannot tell how to score it")
        return "clm", CausalLM(int(block))
    try:
        objective = objective_from_dict(record)
    except ValueError as exc:
        raise CLIError(f"{ckpt.path / 'manifest.json'}: trainer.objective: {exc}") from None
    return objective.name, objective


def _default(cls, name: str):
    return next(f.default for f in fields(cls) if f.name == name)


# --label_smoothing and the like: which objective each setting belongs to
SETTINGS = {"label_smoothing": "seq2seq", "mask_prob": "mlm", "noise_density": "span",
            "mean_span_length": "span"}


def check_settings(name: str, settings: dict, resuming: bool) -> None:
    """Each setting given must be one of `name`'s, and a new run's: the checkpoint's
    objective keeps its own."""
    for key in settings:
        if resuming:
            raise CLIError(f"--resume: --{key} does not apply: the objective is the "
                           "checkpoint's, with its settings; start a new run in another --out")
        if SETTINGS[key] != name:
            raise CLIError(f"--{key} is a setting of --objective {SETTINGS[key]}, not of {name}")


def span_counts(block_size: int, settings: dict | None = None) -> tuple[int, int]:
    """(noise tokens, spans) of a window of `block_size` tokens, at T5's defaults or the
    --noise_density / --mean_span_length given."""
    from ..training.objectives import SpanCorruption
    from ..training.objectives.span import span_lengths
    settings = settings or {}
    density = settings.get("noise_density", _default(SpanCorruption, "noise_density"))
    mean = settings.get("mean_span_length", _default(SpanCorruption, "mean_span_length"))
    if not (0 < density < 1 and mean >= 1):
        raise CLIError(f"--noise_density must be in (0, 1) and --mean_span_length >= 1, got "
                       f"{density} and {mean}")
    return span_lengths(max(block_size, 2), density, mean)


def special_tokens(name: str, block_size: int, settings: dict | None = None) -> list[str]:
    """The special tokens the objective needs in the tokenizer, in id order."""
    if name == "mlm":
        return [MASK]
    if name == "span":
        return [PAD, BOS, EOS] + [sentinel(i) for i in
                                  range(span_counts(block_size, settings)[1])]
    if name == "seq2seq":
        return [PAD, BOS, EOS]
    return []


def _special_ids(tokenizer, names) -> dict:
    specials = getattr(tokenizer, "special_tokens", None) or {}
    missing = [n for n in names if n not in specials]
    if missing:
        raise CLIError(f"the tokenizer has no special token {missing[0]}: it was not built "
                       "for this objective")
    return {n: specials[n] for n in names}


def make_objective(name: str, tokenizer, block_size: int, settings: dict | None = None):
    """The objective `name` for a new run, its special ids taken from `tokenizer`, its
    settings (--label_smoothing, --mask_prob, --noise_density, --mean_span_length) those
    given, else the library's defaults."""
    from ..training.objectives import CausalLM, MaskedLM, PrefixLM, Seq2Seq, SpanCorruption
    settings = settings or {}
    ids = _special_ids(tokenizer, special_tokens(name, block_size, settings))
    try:
        if name == "clm":
            return CausalLM(block_size)
        if name == "prefix_lm":
            return PrefixLM(block_size)
        if name == "mlm":
            # random replacements come from ordinary tokens: none of the tokenizer's
            # special ones ([PAD], [CLS], [SEP], <|endoftext|> ...), the mask included
            specials = getattr(tokenizer, "special_tokens", None) or {}
            return MaskedLM(block_size, mask_id=ids[MASK], vocab_size=tokenizer.vocab_size,
                            special_ids=tuple(sorted(specials.values())), **settings)
        if name == "span":
            sentinels = tuple(ids[n] for n in ids if _SENTINEL.fullmatch(n))
            return SpanCorruption(block_size, sentinels, eos_id=ids[EOS], bos_id=ids[BOS],
                                  **settings)
        return Seq2Seq(pad_id=ids[PAD], bos_id=ids[BOS], eos_id=ids[EOS], **settings)
    except ValueError as exc:
        raise CLIError(f"--objective {name}: {exc}") from None


def describe_objective(objective, tokenizer) -> str:
    """One line saying what the objective does, with its special tokens' ids."""
    specials = getattr(tokenizer, "special_tokens", None) or {}
    ids = ", ".join(f"{n}={i}" for n, i in sorted(specials.items(), key=lambda kv: kv[1]))
    name = objective.name
    if name == "clm":
        text = "causal LM: every token predicts the next"
    elif name == "prefix_lm":
        text = (f"prefix LM: each window's first 1..{objective.context_length - 1} tokens "
                "read both ways, the tokens after them predicted")
    elif name == "mlm":
        text = (f"BERT's masked LM: {objective.mask_prob:.0%} of the tokens predicted, "
                f"{objective.replace_prob:.0%} of those shown as {MASK}, "
                f"{objective.random_prob:.0%} as a random token, the rest as they are")
    elif name == "span":
        text = (f"T5's span corruption: {objective.n_noise} tokens of each "
                f"{objective.context_length}-token window, in {objective.n_spans} span"
                f"{'s' * (objective.n_spans > 1)}, each replaced by a sentinel, which the "
                "decoder writes out with what it hid")
    else:
        text = "source -> target pairs, the decoder taught with the true target tokens"
    return f"objective: {name} ({text})" + (f"; special tokens {ids}" if ids else "")


# ---------------------------------------------------------------------- models
def model_options(model_type: str, config: dict) -> dict:
    """A checkpoint's model config under the names of `numpyllm train`'s options."""
    if model_type == "GPT":
        return dict(config)
    if model_type == "Llama":              # fine-tuned from a pretrained directory
        return {"n_layer": config.get("n_layer"), "n_head": config.get("n_head"),
                "n_embd": config.get("n_embd"), "block_size": config.get("block_size"),
                "dropout": config.get("dropout"), "positions": "rope",
                "dtype": config.get("dtype"), "bias": False,
                "attn_block_size": config.get("attn_block_size")}
    if model_type == "TransformerEncoderModel":
        return {"n_layer": config.get("n_layers"), "n_head": config.get("n_head"),
                "n_embd": config.get("d_model"), "block_size": config.get("max_len"),
                "dropout": config.get("dropout"), "positions": config.get("positions"),
                "dtype": config.get("dtype"), "bias": True, "attn_block_size": None}
    if model_type == "Transformer":
        return {"n_layer": config.get("n_encoder_layers"), "n_head": config.get("n_head"),
                "n_embd": config.get("d_model"), "block_size": int(config.get("max_len", 2)) - 1,
                "dropout": config.get("dropout"), "positions": "sinusoidal",
                "dtype": config.get("dtype"), "bias": True, "attn_block_size": None}
    raise CLIError(f"a {model_type} checkpoint cannot be trained by numpyllm train")


def positions_allowed(name: str) -> tuple:
    return {"GPT": ("learned", "sinusoidal", "rope", "alibi"),
            "TransformerEncoderModel": ("learned", "sinusoidal"),
            "Transformer": ("sinusoidal",)}[MODELS[name]]


def check_options_fit(name: str, explicit: set, opts: dict, bias: bool) -> None:
    """Model options asked for (by a flag or --config) that the objective's model cannot
    take are a one-line error, not silently dropped. `bias`: --bias as a boolean."""
    model = MODELS[name]
    if model == "GPT":
        return
    where = f"--objective {name} trains the {KINDS[model]} ({model})"
    if "attn_block_size" in explicit and opts["attn_block_size"] is not None:
        raise CLIError(f"--attn_block_size applies to the GPT (--objective clm or prefix_lm) "
                       f"only: {where}, whose attention is the standard one")
    if "bias" in explicit and not bias:
        raise CLIError(f"--bias false applies to the GPT (--objective clm or prefix_lm) only: "
                       f"{where}, which always has biases in its Linear and LayerNorm layers")
    allowed = positions_allowed(name)
    if "positions" in explicit and opts["positions"] not in allowed:
        raise CLIError(f"--positions {opts['positions']} does not fit --objective {name}: its "
                       f"{KINDS[model]} ({model}) takes {' or '.join(allowed)} positions")


def build_model(name: str, opts: dict, vocab_size: int, tokenizer):
    """A new model for objective `name` (not the GPT: train.py builds it as it always
    has) from `numpyllm train`'s options; a bad value is a one-line error."""
    from ..nn import (Transformer, TransformerConfig, TransformerEncoderConfig,
                      TransformerEncoderModel)
    common = dict(d_model=opts["n_embd"], n_head=opts["n_head"], dropout=opts["dropout"],
                  norm="pre", dtype=opts["dtype"])
    rng = np.random.default_rng(opts["seed"])
    try:
        if name == "mlm":
            positions = opts["positions"] if opts["positions"] in positions_allowed(name) \
                else "learned"
            cfg = TransformerEncoderConfig(vocab_size=vocab_size, n_layers=opts["n_layer"],
                                           max_len=opts["block_size"], activation="gelu",
                                           positions=positions, mlm_head=True, **common)
            return TransformerEncoderModel(cfg, rng=rng)
        pad = _special_ids(tokenizer, [PAD])[PAD]
        # +1: the EOS after a span-corrupted window (or a target), the BOS before a target
        cfg = TransformerConfig(src_vocab_size=vocab_size, tgt_vocab_size=vocab_size,
                                n_encoder_layers=opts["n_layer"],
                                n_decoder_layers=opts["n_layer"],
                                max_len=opts["block_size"] + 1, share_embeddings=True,
                                activation="relu", pad_id=pad, **common)
        return Transformer(cfg, rng=rng)
    except (TypeError, ValueError) as exc:
        said = [f"{field} is {flag}" for field, flag in _CONFIG_NAMES.items()
                if re.search(rf"\b{field}\b", str(exc))]
        raise CLIError(f"{exc}" + (f" ({', '.join(said)})" if said else "")) from None


# the config fields of the encoder and the encoder-decoder that `numpyllm train`'s options
# set under other names (for messages)
_CONFIG_NAMES = {"d_model": "--n_embd", "n_layers": "--n_layer",
                 "n_encoder_layers": "--n_layer", "n_decoder_layers": "--n_layer",
                 "max_len": "--block_size (+1 for the encoder-decoder)"}


def describe_model(model) -> str:
    """The "model: ..." line's start for the encoder and the encoder-decoder."""
    c = model.config
    if type(model).__name__ == "TransformerEncoderModel":
        return (f"model: encoder (TransformerEncoderModel: {c.norm}-LN, {c.activation}, "
                f"{c.positions} positions, MLM head), {c.n_layers} layers, {c.n_head} heads, "
                f"{c.d_model} wide, context {c.max_len}")
    return (f"model: encoder-decoder (Transformer: {c.norm}-LN, {c.activation}, sinusoidal "
            f"positions, shared embeddings), {c.n_encoder_layers} + {c.n_decoder_layers} "
            f"layers, {c.n_head} heads, {c.d_model} wide, context {c.max_len - 1}")


# ---------------------------------------------------------------------- text in
def encode_ordinary(tokenizer, text: str) -> list:
    """`text` as ids, special-token names in it being ordinary text."""
    if hasattr(tokenizer, "encode_ordinary"):
        return tokenizer.encode_ordinary(text)
    return tokenizer.encode(text)


def encode_marked(tokenizer, text: str, names, what: str) -> list:
    """`text` as ids, where each of the special tokens `names` written in it becomes that
    token (a user's --text or --source); an unknown character is a one-line error."""
    from ..tokenizers import UnknownCharacterError
    names = sorted(names, key=len, reverse=True)
    ids = _special_ids(tokenizer, names)
    out = []
    pieces = re.split("(" + "|".join(map(re.escape, names)) + ")", text) if names else [text]
    try:
        for piece in pieces:
            out += [ids[piece]] if piece in ids else encode_ordinary(tokenizer, piece)
    except UnknownCharacterError as exc:
        raise CLIError(f"{what}: {str(exc).split(';')[0]}: the model never saw it in "
                       "training") from None
    return out


def shown(text: str) -> str:
    """A text on one line: line breaks and tabs written as \\n and \\t."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


# ---------------------------------------------------------------------- pairs
def read_pairs(path, label: str) -> tuple[list, list]:
    """(sources, targets) of a file of source<TAB>target lines, or a one-line error."""
    from ..data.examples import read_tsv_pairs
    try:
        return read_tsv_pairs(path)
    except ValueError as exc:
        message = str(exc).replace(str(path), label, 1)
        raise CLIError(f"--data {message} (a seq2seq file holds one source<TAB>target pair "
                       "a line)") from None


def encode_pairs(tokenizer, sources, targets, label: str):
    """`Pairs` of ids; a character the tokenizer lacks is a one-line error."""
    from ..data.examples import Pairs
    from ..tokenizers import UnknownCharacterError
    try:
        return Pairs([encode_ordinary(tokenizer, s) for s in sources],
                     [encode_ordinary(tokenizer, t) for t in targets])
    except UnknownCharacterError as exc:
        raise CLIError(f"{label}: {str(exc).split(';')[0]}: the checkpoint's tokenizer was "
                       "built from another text") from None
    except ValueError as exc:                     # a line that encodes to no token
        raise CLIError(f"{label}: {exc}") from None


def _rows(pairs, rows):
    from ..data.examples import Pairs
    if not len(rows):
        return None
    return Pairs([pairs.sources[i] for i in rows], [pairs.targets[i] for i in rows])


def split_pairs(pairs, val_fraction: float):
    """The first `1 - val_fraction` of the pairs for training, the rest for validation
    (in file order, as a text is split); an empty part is None."""
    n_train = int(len(pairs) * (1.0 - val_fraction))     # as train_val_split cuts a text
    return _rows(pairs, range(n_train)), _rows(pairs, range(n_train, len(pairs)))


def first_pairs(pairs, n: int):
    """The first `n` pairs (all of them when there are no more)."""
    return pairs if len(pairs) <= n else _rows(pairs, range(n))


def check_pair_lengths(pairs, block_size: int, label: str, advice: str) -> None:
    """Every source and target fits a model of context `block_size`; else a one-line
    error ending with `advice` (where "{longest}" is the longest one's length)."""
    longest = max(max(len(s), len(t)) for s, t in zip(pairs.sources, pairs.targets))
    if longest > block_size:
        too_long = sum(max(len(s), len(t)) > block_size
                       for s, t in zip(pairs.sources, pairs.targets))
        i = next(i for i, (s, t) in enumerate(zip(pairs.sources, pairs.targets))
                 if max(len(s), len(t)) == longest)
        side = "source" if len(pairs.sources[i]) == longest else "target"
        advice = advice.format(longest=longest)
        raise CLIError(f"{label}: {too_long:,} of {len(pairs):,} pairs have a source or target "
                       f"longer than --block_size {block_size} tokens (the longest: pair "
                       f"{i + 1}, a {side} of {longest} tokens): {advice}")


def pair_tokens(pairs) -> tuple[int, int]:
    return sum(map(len, pairs.sources)), sum(map(len, pairs.targets))


# ---------------------------------------------------------------------- decoding
def decode_pairs(model, objective, pairs, limit: int | None = None) -> list:
    """Greedy outputs (ids, EOS dropped) of the first `limit` sources of `pairs`."""
    from ..data import pad_sequences
    from ..generate import generate_seq2seq
    n = len(pairs) if limit is None else min(limit, len(pairs))
    outputs = []
    for start in range(0, n, 32):
        rows = range(start, min(start + 32, n))
        src = pad_sequences([pairs.sources[i] for i in rows], model.config.pad_id)[0]
        longest = max(len(pairs.targets[i]) for i in rows) + 1
        outs = generate_seq2seq(model, src, min(longest, model.config.max_len),
                                bos_id=objective.bos_id, eos_id=objective.eos_id, greedy=True)
        outputs += [o[:-1] if o.size and o[-1] == objective.eos_id else o for o in outs]
    return outputs


def fill_spans(tokenizer, objective, src_ids, out_ids) -> str:
    """The source text with each sentinel replaced by what the decoder wrote after it (a
    sentinel the output skips stays as it is)."""
    sentinels = set(objective.sentinel_ids)
    spans, current = {}, None
    for t in out_ids:
        t = int(t)
        if t == objective.eos_id:
            break
        if t in sentinels:
            current = t
            spans[current] = []
        elif current is not None:
            spans[current].append(t)
    ids = []
    for t in src_ids:
        t = int(t)
        if t == objective.eos_id:
            break
        ids += spans.get(t, [t])
    return tokenizer.decode(ids)

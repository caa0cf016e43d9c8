"""Hugging Face model directories in and out: `load_pretrained`, `save_pretrained`.

A Hugging Face model directory (what ``transformers``' ``save_pretrained`` writes, and
what a model page on the Hub holds) is

    config.json                   the architecture and its sizes (numpyllm.hub.hfconfig)
    model.safetensors             the weights by name, or, for a large model, shards
    model.safetensors.index.json    and the index saying which shard holds each tensor
    tokenizer.json, vocab.json, merges.txt, tokenizer_config.json ...   the tokenizer
    generation_config.json        decoding defaults (not read)

`load_pretrained(directory)` reads config.json, finds the architecture in the table
(`numpyllm.hub.architectures`), builds the numpyllm config (refusing settings numpyllm
cannot express), checks every stored tensor against the architecture's map (all missing,
unexpected, misshapen and non-float tensors listed in one `PretrainedError`) *before* the
model is allocated, then copies the weights in one at a time through memory maps,
converting them to the chosen dtype. Nothing is downloaded: point it at a directory.

Refused, with the reason: a directory whose only weights are pickles
(``pytorch_model.bin``, ``*.pt``): unpickling runs code from the file. Convert such a
model once, where you trust it, with transformers:
``AutoModelForCausalLM.from_pretrained(d).save_pretrained(d, safe_serialization=True)``.

`save_pretrained(model, tokenizer, directory)` writes the directory back, so that
``transformers.AutoModelForCausalLM.from_pretrained(directory)`` computes the same
logits; a model no architecture of the table can express is refused, saying why.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..nn.layers import uninitialized_weights
from ..validation import DTYPES
from .architectures import Architecture, for_config, for_model
from .errors import NotExpressible, PretrainedError
from .hfconfig import HFConfig, read_json_file
from .safetensors import FLOAT_CODES
from .sharded import INDEX, SINGLE, WeightFiles, open_weights, write_weights

__all__ = ["load_pretrained", "save_pretrained", "PretrainedError", "NotExpressible",
           "PICKLE_SUFFIXES"]

log = logging.getLogger(__name__)

CONFIG = "config.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_SAVE_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16"}
_TORCH_NAMES = {code: name for name, code in _SAVE_DTYPES.items()}


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------ the directory
def _refuse_pickles(directory: Path) -> None:
    """Called when the directory holds no safetensors weights: explain what it holds."""
    pickles = sorted(p.name for p in directory.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise PretrainedError(
            f"{directory}: the weights are PyTorch pickles ({', '.join(pickles[:5])}), which "
            "numpyllm does not load: unpickling a file runs code that the file contains, so "
            "a model file could run anything on your machine. Convert it once to safetensors "
            "(only numbers), where you trust the file: python -c \"import transformers; "
            f"m = transformers.AutoModelForCausalLM.from_pretrained('{directory}'); "
            f"m.save_pretrained('{directory}', safe_serialization=True)\"")
    raise PretrainedError(f"{directory}: no {SINGLE} and no {INDEX}: the directory holds no "
                          "safetensors weights")


def _read_config(directory: Path) -> tuple:
    """``(HFConfig, Architecture)`` of the directory's config.json."""
    where = directory / CONFIG
    if not os.path.lexists(where):
        raise PretrainedError(f"{directory}: no {CONFIG}: not a Hugging Face model directory "
                              "(config.json says which architecture the weights are)")
    raw = read_json_file(where, "the model's config")
    hf = HFConfig(raw, where)
    arch = for_config(raw.get("architectures"), raw.get("model_type"), where)
    hf.used |= {"architectures", "model_type"}
    if raw.get("quantization_config") is not None:
        raise hf.refuse("quantization_config", "quantized weights (GPTQ, AWQ, bitsandbytes "
                        "...) are not plain floats")
    if hf.bool("is_encoder_decoder", False):
        raise hf.refuse("is_encoder_decoder", f"{arch.name} is decoder-only")
    return hf, arch


# ------------------------------------------------------------------ checking the weights
def _canonical(names: list, arch: Architecture) -> dict:
    """canonical name -> stored name. A base model's save (GPT-2's own release) lacks the
    base prefix: ``h.0.attn.c_attn.weight`` is ``transformer.h.0.attn.c_attn.weight``."""
    prefix = arch.base_prefix
    if not prefix or any(n.startswith(prefix) for n in names):
        return {n: n for n in names}
    return {(n if n in arch.head else prefix + n): n for n in names}


def _layer_index(text: str):
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _check_layers(arch: Architecture, config, names, where: Path) -> None:
    """Each stack of layers in the config against the layers the file holds: before the
    tensor table is listed (a config may claim 10**9 layers)."""
    for prefix, count in arch.layers(config).items():
        found = {_layer_index(n[len(prefix) + 1:].split(".", 1)[0]) for n in names
                 if n.startswith(prefix + ".")}
        found.discard(None)
        # distinct indices: count of them from 0 to count - 1 are exactly 0..count-1
        if not (len(found) == count and min(found, default=0) == 0
                and max(found, default=-1) == count - 1):
            shown = sorted(found)
            text = ", ".join(map(str, shown[:20])) + (" ..." if len(shown) > 20 else "")
            raise PretrainedError(
                f"{where}: config.json and the weights disagree: {prefix}: config.json "
                f"says {count} layers (0..{count - 1}), the weights hold {len(found)} "
                f"({text or 'none'})")


def _check_tensors(table: list, stored: dict, weights: WeightFiles, arch: Architecture,
                   config, where: Path) -> None:
    """Every missing, unexpected, misshapen or non-float tensor, in one error."""
    rows = {row.hf: row for row in table}
    assert len(rows) == len(table), f"{arch.name}: a tensor name appears twice in the table"
    aliases = {a: t for a, t in arch.aliases(config).items() if a in stored}
    missing, misshapen, not_float, unexpected = [], [], [], []
    for name, row in rows.items():
        if name not in stored:
            missing.append(name)
    for name, stored_name in stored.items():
        row = rows.get(name) or (rows.get(aliases[name]) if name in aliases else None)
        if row is None:
            if not (arch.ignored is not None and arch.ignored.fullmatch(name)):
                unexpected.append(stored_name)
            continue
        shape = weights.shape(stored_name)
        if shape != tuple(row.shape):
            misshapen.append(f"{stored_name} {list(shape)} (expected {list(row.shape)})")
        elif weights.dtype(stored_name) not in FLOAT_CODES:
            not_float.append(f"{stored_name} {weights.dtype(stored_name)}")
    problems = []
    for what, items in (("missing", missing), ("unexpected", unexpected),
                        ("misshapen", misshapen), ("not floating-point", not_float)):
        if items:
            problems.append(f"{what} ({len(items)}): {', '.join(items)}")
    if problems:
        raise PretrainedError(f"{where}: the weights do not fit config.json ({arch.name}, "
                              f"{len(rows)} tensors expected): " + "; ".join(problems))


def _fill(model, table: list, stored: dict, weights: WeightFiles, where: Path) -> None:
    """Copy every tensor into the model's parameters, one at a time (converted to the
    parameter's dtype on the way)."""
    params = dict(model.named_parameters())
    filled = dict.fromkeys(params, 0)
    for row in table:
        param = params[row.ours]                 # KeyError: a bug in the architecture's table
        region = param.data[row.index] if row.index else param.data
        if row.transform.view:
            target = row.transform.to_hf(region)
            assert target.shape == tuple(row.shape) and np.shares_memory(target, region), row
            weights.read_into(stored[row.hf], target)
        else:
            temporary = np.empty(row.shape, region.dtype)
            weights.read_into(stored[row.hf], temporary)
            region[...] = row.transform.to_ours(temporary)
        filled[row.ours] += region.size
    unfilled = [n for n, p in params.items() if filled[n] != p.data.size]
    if unfilled:     # the model was allocated uninitialized: nothing may be left unread
        raise RuntimeError(f"numpyllm bug: the {where} architecture table fills these "
                           f"parameters wrongly: {unfilled}")


def _check_aliases(arch: Architecture, config, stored: dict, weights: WeightFiles,
                   where: Path) -> None:
    for alias, target in arch.aliases(config).items():
        if alias not in stored:
            continue
        a, b = weights.get(stored[alias]), weights.get(stored[target])
        if not np.array_equal(a, b, equal_nan=True):
            raise PretrainedError(
                f"{where}: {stored[alias]} is stored, and config.json ties it to "
                f"{stored[target]} (one tensor), but their values differ: the file "
                "contradicts its config")
        del a, b
        weights.file_of(stored[alias]).release(stored[alias])
        weights.file_of(stored[target]).release(stored[target])


def load_pretrained(directory, dtype: str = "float32", *, dropout: float | None = None):
    """``(model, tokenizer or None)`` from a local Hugging Face model directory.

    `dtype` ("float32" or "float64") is the model's: float16 and bfloat16 weights are
    converted (exactly) as they are copied in. `dropout` replaces the file's dropout
    rates (numpyllm's GPT has one; GPT-2's three may differ). The model is in eval mode.

    Raises `PretrainedError` (a ValueError naming the directory or file, on one line) for
    anything missing, malformed, or inexpressible (`NotExpressible`, a subclass), and for
    pickle-only directories; OSError only when a file cannot be read at all.

    >>> model, tokenizer = load_pretrained("gpt2-directory")        # doctest: +SKIP
    """
    if dtype not in DTYPES:
        raise ValueError(f"load_pretrained: dtype must be one of {DTYPES}, got {dtype!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise PretrainedError(f"{directory}: expected a Hugging Face model directory, "
                              f"{'got a file' if directory.exists() else 'it does not exist'}")
    if not (os.path.lexists(directory / SINGLE) or os.path.lexists(directory / INDEX)):
        _refuse_pickles(directory)
    hf, arch = _read_config(directory)
    try:
        model_cls, config = arch.config_from_hf(hf, dtype=dtype, dropout=dropout)
    except PretrainedError:
        raise
    except (TypeError, ValueError) as exc:
        raise PretrainedError(f"{hf.where}: the config is invalid: {exc}") from None
    with open_weights(directory) as weights:
        stored = _canonical(weights.names(), arch)
        _check_layers(arch, config, stored, directory)
        table = arch.tensors(config)
        _check_tensors(table, stored, weights, arch, config, directory)
        with uninitialized_weights():        # every weight is about to be overwritten
            model = model_cls(config, rng=np.random.default_rng(0))
        _fill(model, table, stored, weights, directory)
        _check_aliases(arch, config, stored, weights, directory)
    model.eval()
    return model, load_tokenizer(directory, arch)


# ------------------------------------------------------------------ tokenizer
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                    "tokenizer.model")


def load_tokenizer(directory, arch: Architecture):
    """The directory's tokenizer (`numpyllm.tokenizers.load_hf_tokenizer`: tokenizer.json,
    or vocab.json and merges.txt), or None when it has neither. A SentencePiece
    ``tokenizer.model`` alone (a protobuf, not read) leaves it None, with a warning."""
    from ..tokenizers import TokenizerError, load_hf_tokenizer
    directory = Path(directory)
    if not ((directory / "tokenizer.json").is_file()
            or ((directory / "vocab.json").is_file() and (directory / "merges.txt").is_file())):
        present = [f for f in _TOKENIZER_FILES if (directory / f).is_file()]
        if present:
            log.warning("%s: no tokenizer.json (nor vocab.json and merges.txt): the tokenizer "
                        "files %s are not read; the model loads without a tokenizer",
                        directory, ", ".join(present))
        return None
    try:
        return load_hf_tokenizer(directory)
    except TokenizerError as exc:
        raise PretrainedError(str(exc)) from None


# ------------------------------------------------------------------ saving
def _special_ids(arch: Architecture, tokenizer, config: dict) -> None:
    """bos/eos ids in config.json from the tokenizer's special tokens, where it has them."""
    special = getattr(tokenizer, "special_tokens", None) or {}
    for key, text in arch.special_tokens.items():
        if text in special and special[text] < config["vocab_size"]:
            config[key] = special[text]
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):   # a Hugging Face tokenizer's
        value = getattr(tokenizer, key, None)
        if isinstance(value, int) and 0 <= value < config["vocab_size"]:
            config[key] = value


def save_pretrained(model, tokenizer, directory, *, dtype: str | None = None,
                    max_shard_size=None) -> Path:
    """Write `model` (and `tokenizer`, unless None) as a Hugging Face model directory that
    ``transformers.AutoModelForCausalLM.from_pretrained(directory)`` loads with the same
    logits. Returns the directory.

    `dtype`: "float32", "float64", "float16" or "bfloat16" for the stored weights (default:
    the model's own; float16 and bfloat16 round to nearest even). `max_shard_size` (bytes,
    or "200MB", "5GB") splits the weights into shards with an index. Weight files of an
    earlier save in the directory are replaced; other files are left alone.

    Raises `NotExpressible` (a `PretrainedError`) when no architecture in the table can
    express the model, saying why for each candidate.
    """
    arch, config = for_model(model)
    if dtype is None:
        dtype = model.config.dtype
    if dtype not in _SAVE_DTYPES:
        raise ValueError(f"save_pretrained: dtype must be one of {tuple(_SAVE_DTYPES)}, got "
                         f"{dtype!r}")
    code = _SAVE_DTYPES[dtype]
    if tokenizer is not None:
        from ..tokenizers import save_hf_tokenizer
        if type(tokenizer).__name__ not in ("HFTokenizer", "BPETokenizer"):
            raise NotExpressible(f"a {type(tokenizer).__name__} has no Hugging Face form "
                                 "(tokenizer.json holds byte-level or SentencePiece-style "
                                 "BPE): pass tokenizer=None to save the model alone")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = dict(model.named_parameters())
    tensors = {}
    for row in arch.tensors(model.config):
        data = params[row.ours].data
        hf = row.transform.to_hf(data[row.index] if row.index else data)
        assert hf.shape == tuple(row.shape), (row, hf.shape)
        tensors[row.hf] = hf
    config["dtype"] = _TORCH_NAMES[code]
    if tokenizer is not None:
        _special_ids(arch, tokenizer, config)
    write_weights(tensors, directory, dtype=code, max_shard_size=max_shard_size,
                  metadata={"format": "pt", "producer": "numpyllm"})
    tmp = directory / f".tmp-{os.getpid()}-{CONFIG}"
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, directory / CONFIG)
    if tokenizer is not None:
        save_hf_tokenizer(tokenizer, directory)
    return directory

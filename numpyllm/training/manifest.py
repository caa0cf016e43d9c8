"""What a checkpoint's manifest may say, checked before anything is read or built.

A checkpoint is untrusted input: its manifest names files, sizes, hashes, a model's
config, an optimizer's hyperparameters, random generators' states. `check_manifest`
checks every field a loader reads, each for its type and range, before any other file of
the checkpoint is opened; `check_sizes` checks a model config's sizes against the stored
weights before the model is allocated (each size is pinned to an "anchor" tensor, so a
config cannot claim more numbers than the file holds). Any problem is one
`CheckpointError` naming the file, the field and what was expected.

`numpyllm.training.checkpoint` saves and loads checkpoints with these checks.
"""
from __future__ import annotations

import math
import re
from dataclasses import fields

import numpy as np

__all__ = ["CheckpointError", "FORMAT", "VERSION", "check_manifest", "check_sizes",
           "check_config_types", "model_types"]


FORMAT = "numpyllm-checkpoint"
VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")
# A file of the checkpoint: a plain name in the step directory, never a path.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_OPTIMIZERS = ("SGD", "Adam", "AdamW")
_TOKENIZERS = ("CharTokenizer", "BPETokenizer", "HFTokenizer", "WordPieceTokenizer",
               "UnigramTokenizer")
# a Hugging Face tokenizer is two files, as in a model directory (read together)
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_RNG_TYPES = ("PCG64", "PCG64DXSM")    # the generators whose state is plain ints (JSON)


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt, or does not fit its config."""


def _show(value) -> str:
    """A short one-line repr of a value read from a file, for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(where, field: str, expected: str, got) -> CheckpointError:
    return CheckpointError(f"{where}: {field}: expected {expected}, got {_show(got)}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)   # JSON true is no int


def _index(text: str) -> int | None:
    """`text` as a non-negative index if it is one written in ASCII digits, else None.
    (Bounded: int() of a 5,000-digit string raises ValueError, of a long one is slow.)"""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_rng_state(state, where, field: str) -> None:
    """A `bit_generator.state` NumPy can take back. Checked here, field by field, rather
    than by trying it: NumPy's setters raise TypeError or OverflowError on some bad
    states and silently accept others that break the generator later."""
    inner = state.get("state") if isinstance(state, dict) else None
    ok = (isinstance(state, dict) and state.get("bit_generator") in _RNG_TYPES
          and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
          and isinstance(inner, dict) and set(inner) == {"state", "inc"}
          and all(_is_int(inner[k]) and 0 <= inner[k] < 2 ** 128 for k in ("state", "inc"))
          and _is_int(state["has_uint32"]) and state["has_uint32"] in (0, 1)
          and _is_int(state["uinteger"]) and 0 <= state["uinteger"] < 2 ** 32)
    if not ok:
        raise _bad(where, field, "a PCG64 generator state {'bit_generator': 'PCG64', "
                   "'state': {'state': int, 'inc': int}, 'has_uint32': 0|1, 'uinteger': int}",
                   state)


def _check_trainer_state(trainer, where) -> dict:
    """The keys `Trainer.state_dict` writes, checked for type; the rest passed through."""
    if trainer is None:
        return {}
    if not isinstance(trainer, dict):
        raise _bad(where, "trainer", "a JSON object", trainer)
    if "step" in trainer and not (_is_int(trainer["step"]) and trainer["step"] >= 0):
        raise _bad(where, "trainer.step", "an integer >= 0", trainer["step"])
    if "data_rng" in trainer:
        _check_rng_state(trainer["data_rng"], where, "trainer.data_rng")
    if "model_rngs" in trainer:
        if not isinstance(trainer["model_rngs"], list):
            raise _bad(where, "trainer.model_rngs", "a list of generator states",
                       trainer["model_rngs"])
        for i, state in enumerate(trainer["model_rngs"]):
            _check_rng_state(state, where, f"trainer.model_rngs[{i}]")
    if "stage_rngs" in trainer:               # a pipeline's stages, each its generators
        stages = trainer["stage_rngs"]
        if not (isinstance(stages, list) and all(isinstance(s, list) for s in stages)):
            raise _bad(where, "trainer.stage_rngs", "a list of lists of generator states",
                       stages)
        for i, states in enumerate(stages):
            for j, state in enumerate(states):
                _check_rng_state(state, where, f"trainer.stage_rngs[{i}][{j}]")
    if "train_config" in trainer and not isinstance(trainer["train_config"], dict):
        raise _bad(where, "trainer.train_config", "a JSON object", trainer["train_config"])
    return trainer


def _optimizer_class(kind: str):
    from ..optim import SGD, Adam, AdamW      # a fixed table: never a name looked up in a module
    return {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}[kind]


def _check_hyperparameters(kind: str, group: dict, where, field: str) -> None:
    """A param group's hyperparameters, checked by the optimizer's own rules: a throwaway
    optimizer over one scalar parameter is built with them."""
    for key, value in group.items():
        if key == "params":
            continue
        values = value if isinstance(value, list) and len(value) <= 8 else [value]
        if not all(_is_number(v) or isinstance(v, bool) for v in values):
            raise _bad(where, f"{field}.{key}", "a finite number, a boolean or a short list "
                       "of numbers", value)
    from ..nn.module import Parameter
    cls = _optimizer_class(kind)
    hyper = {k: v for k, v in group.items() if k != "params"}
    try:
        probe = cls([{"params": [Parameter(np.zeros(1))], **hyper}], lr=0.0)
    except (TypeError, ValueError) as exc:
        raise _bad(where, field, f"hyperparameters {kind} accepts ({exc})", hyper) from None
    missing = sorted(set(probe.defaults) - set(hyper))
    if missing:
        raise _bad(where, field, f"every hyperparameter of {kind} (missing {missing})", hyper)
    for key, value in hyper.items():     # true is no learning rate, nor 0.9 a nesterov flag
        default = probe.defaults[key]
        if (isinstance(value, bool) != isinstance(default, bool)
                or isinstance(value, list) != isinstance(default, (list, tuple))):
            raise _bad(where, f"{field}.{key}", f"a value of the kind of {kind}'s default "
                       f"{default!r}", value)


def _check_optimizer(opt, where) -> int | None:
    """The optimizer entry checked; returns how many parameters its groups hold."""
    if opt is None:
        return None
    if not isinstance(opt, dict):
        raise _bad(where, "optimizer", "null or a JSON object", opt)
    if opt.get("type") not in _OPTIMIZERS:
        raise _bad(where, "optimizer.type", f"one of {list(_OPTIMIZERS)}", opt.get("type"))
    groups = opt.get("param_groups")
    if not isinstance(groups, list) or not groups:
        raise _bad(where, "optimizer.param_groups", "a non-empty list", groups)
    indices = []
    for g, group in enumerate(groups):
        field_ = f"optimizer.param_groups[{g}]"
        if not isinstance(group, dict):
            raise _bad(where, field_, "a JSON object", group)
        params = group.get("params")
        if not isinstance(params, list) or not all(_is_int(i) for i in params):
            raise _bad(where, f"{field_}.params", "a list of parameter indices", params)
        indices += params
        _check_hyperparameters(opt["type"], group, where, field_)
    if sorted(indices) != list(range(len(indices))):
        raise _bad(where, "optimizer.param_groups", f"the parameter indices 0..{len(indices) - 1}, "
                   "each in one group once", indices)
    scalars = opt.get("scalars")
    if not isinstance(scalars, dict):
        raise _bad(where, "optimizer.scalars", "a JSON object", scalars)
    for index, entry in scalars.items():
        field_ = f"optimizer.scalars[{index!r}]"
        if _index(index) is None or _index(index) >= len(indices):
            raise _bad(where, "optimizer.scalars", f"keys that are parameter indices "
                       f"0..{len(indices) - 1}", index)
        if not isinstance(entry, dict) or not all(_is_number(v) for v in entry.values()):
            raise _bad(where, field_, "a JSON object of finite numbers", entry)
        if "step" in entry and not (_is_int(entry["step"]) and entry["step"] >= 0):
            raise _bad(where, f"{field_}.step", "an integer >= 0", entry["step"])
    return len(indices)


def check_optimizer_arrays(arrays: dict, scalars: dict, n_params: int, file) -> None:
    for key in arrays:
        parts = key.split(".", 2)
        index = _index(parts[1]) if len(parts) == 3 else None
        if parts[0] != "state" or index is None or index >= n_params or not parts[2]:
            raise CheckpointError(f"{file}: tensor {_show(key)}: expected a name "
                                  f"'state.<index>.<name>' with an index below {n_params}")
        if parts[2] in scalars.get(str(index), {}):
            raise CheckpointError(f"{file}: tensor {key!r}: expected each state entry once, "
                                  "got it here and among the manifest's optimizer.scalars")


def _check_files(files, where) -> dict:
    if not isinstance(files, dict) or not files:
        raise _bad(where, "files", "a JSON object listing every file of the checkpoint", files)
    for name, info in files.items():
        if not _FILE_NAME.fullmatch(name) or name == "manifest.json":
            raise _bad(where, "files", "plain file names (letters, digits, '_', '-', '.'; no "
                       "'/', no '..', not absolute)", name)
        if (not isinstance(info, dict) or not _is_int(info.get("bytes")) or info["bytes"] < 0
                or not isinstance(info.get("sha256"), str) or not _SHA256.fullmatch(info["sha256"])):
            raise _bad(where, f"files[{name!r}]", "{'bytes': size, 'sha256': 64 hex digits}", info)
    return files


# a dotted module or parameter name ("backbone.h.0.attn.c_attn"): checked before it is
# matched against the rebuilt model's names
_DOTTED = re.compile(r"[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64}){0,15}")
_LORA_KEYS = {"r", "alpha", "dropout", "use_rslora", "merged", "targets"}


def _check_names(names, where, field: str) -> None:
    if not isinstance(names, list) or not names or \
            not all(isinstance(n, str) and _DOTTED.fullmatch(n) for n in names) \
            or len(set(names)) != len(names):
        raise _bad(where, field, "a non-empty list of distinct dotted names such as "
                   "'h.0.attn.c_attn'", names)


def _check_lora(record, where) -> None:
    """``model.lora`` (`numpyllm.nn.lora.lora_record`): absent or null for a model without
    adapters, else a list of groups {r, alpha, dropout, use_rslora, merged, targets}."""
    if record is None:
        return
    if not isinstance(record, list) or not record:
        raise _bad(where, "model.lora", "null or a non-empty list of adapter groups", record)
    seen = set()
    for g, group in enumerate(record):
        field_ = f"model.lora[{g}]"
        if not isinstance(group, dict) or set(group) != _LORA_KEYS:
            raise _bad(where, field_, f"a JSON object with the keys {sorted(_LORA_KEYS)}", group)
        if not (_is_int(group["r"]) and 1 <= group["r"] <= 2 ** 20):
            raise _bad(where, f"{field_}.r", "an integer in [1, 2**20]", group["r"])
        if not (_is_number(group["alpha"]) and group["alpha"] > 0):
            raise _bad(where, f"{field_}.alpha", "a finite number > 0", group["alpha"])
        if not (_is_number(group["dropout"]) and 0 <= group["dropout"] < 1):
            raise _bad(where, f"{field_}.dropout", "a number in [0, 1)", group["dropout"])
        for flag in ("use_rslora", "merged"):
            if not isinstance(group[flag], bool):
                raise _bad(where, f"{field_}.{flag}", "true or false", group[flag])
        _check_names(group["targets"], where, f"{field_}.targets")
        if seen & set(group["targets"]):
            raise _bad(where, f"{field_}.targets", "layers no other group adapts",
                       sorted(seen & set(group["targets"])))
        seen |= set(group["targets"])


def _check_trainable(names, where) -> None:
    """``model.trainable``: absent or null (every parameter trains), else the names of the
    parameters that train (the rest frozen: LoRA's base, `train_blocks`)."""
    if names is not None:          # (an empty list: nothing would train; refused)
        _check_names(names, where, "model.trainable")


def check_manifest(manifest, where) -> dict:
    """Every field `load_checkpoint` reads, checked before any file is opened."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{where}: format: expected a numpyllm checkpoint manifest "
                              f"(format {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{where}: version: checkpoint format version "
                              f"{_show(manifest.get('version'))} is not supported (this "
                              f"numpyllm reads version {VERSION})")
    if not (_is_int(manifest.get("step")) and manifest["step"] >= 0):
        raise _bad(where, "step", "an integer >= 0", manifest.get("step"))
    model = manifest.get("model")
    if (not isinstance(model, dict) or not isinstance(model.get("type"), str)
            or not isinstance(model.get("config"), dict)):
        raise _bad(where, "model", "{'type': name, 'config': {...}}", model)
    _check_lora(model.get("lora"), where)
    _check_trainable(model.get("trainable"), where)
    files = _check_files(manifest.get("files"), where)
    needed = ["model.safetensors"]
    n_params = _check_optimizer(manifest.get("optimizer"), where)
    if n_params is not None:
        needed.append("optimizer.safetensors")
    tok = manifest.get("tokenizer")
    if tok is not None:
        if (not isinstance(tok, dict) or tok.get("type") not in _TOKENIZERS
                or not isinstance(tok.get("file"), str)):
            raise _bad(where, "tokenizer", f"null or {{'type': one of {list(_TOKENIZERS)}, "
                       "'file': name}", tok)
        if tok["type"] == "HFTokenizer":
            if tok["file"] != HF_TOKENIZER_FILES[0]:
                raise _bad(where, "tokenizer.file", repr(HF_TOKENIZER_FILES[0]), tok["file"])
            needed += HF_TOKENIZER_FILES
        else:
            needed.append(tok["file"])
    for name in needed:
        if name not in files:
            raise _bad(where, "files", f"an entry for {name!r}", sorted(files))
    _check_trainer_state(manifest.get("trainer"), where)
    for key in ("optimizer", "tokenizer", "trainer"):     # optional: absent means none
        manifest.setdefault(key, None)
    return manifest


_JSON_TYPES = {"int": ((int,), "an integer"), "float": ((int, float), "a number"),
               "bool": ((bool,), "true or false"), "str": ((str,), "a string"),
               "int | None": ((int, type(None)), "an integer or null")}


def check_config_types(cls, config: dict, where, field: str = "model.config") -> None:
    """Each known field of a config dataclass has its annotated JSON type (a bool is not
    an int here, though Python says it is). Values are left to the config's own checks."""
    for f in fields(cls):
        if f.name not in config or f.type not in _JSON_TYPES:
            continue
        types, expected = _JSON_TYPES[f.type]
        value = config[f.name]
        # isinstance(True, int) holds in Python, so a bool is told apart explicitly.
        if (not isinstance(value, types) or isinstance(value, bool) != (bool in types)
                or (isinstance(value, float) and not math.isfinite(value))):
            raise _bad(where, f"{field}.{f.name}", expected, value)


def model_types() -> dict:
    """name -> (model class, config class): the models a checkpoint can rebuild. A fixed
    table: the name in a manifest is looked up here, never in a module."""
    from ..nn import (GPT, ClassifierConfig, GPTConfig, Llama, LlamaConfig, SequenceClassifier,
                      Transformer, TransformerConfig, TransformerEncoderConfig,
                      TransformerEncoderModel)
    from ..nn.vae import SentenceVAE, SentenceVAEConfig
    return {"GPT": (GPT, GPTConfig), "Llama": (Llama, LlamaConfig),
            "Transformer": (Transformer, TransformerConfig),
            "TransformerEncoderModel": (TransformerEncoderModel, TransformerEncoderConfig),
            "SequenceClassifier": (SequenceClassifier, ClassifierConfig),
            "SentenceVAE": (SentenceVAE, SentenceVAEConfig)}


def _anchors(kind: str, config, prefix: str = "") -> tuple[dict, dict]:
    """({tensor name: the shape the config gives it}, {layer-list prefix: layer count}):
    together they pin every size in the config to the stored weights."""
    p = prefix
    if kind == "GPT":
        V, C, T = config.vocab_size, config.n_embd, config.block_size
        shapes = {f"{p}wte.weight": (V, C), f"{p}h.0.mlp.c_fc.weight": (C, 4 * C)}
        if config.positions == "learned":
            shapes[f"{p}wpe.weight"] = (T, C)
        if not config.tie_weights:
            shapes[f"{p}lm_head.weight"] = (C, V)
        return shapes, {f"{p}h": config.n_layer}
    if kind == "Llama":
        V, C, hs = config.vocab_size, config.n_embd, config.head_dim
        shapes = {f"{p}embed_tokens.weight": (V, C),
                  f"{p}layers.0.self_attn.q_proj.weight": (C, config.n_head * hs),
                  f"{p}layers.0.self_attn.k_proj.weight": (C, config.n_kv_head * hs),
                  f"{p}layers.0.mlp.gate_proj.weight": (C, config.intermediate_size)}
        if not config.tie_weights:
            shapes[f"{p}lm_head.weight"] = (C, V)
        return shapes, {f"{p}layers": config.n_layer}
    if kind == "Transformer":
        d = config.d_model
        shapes = {f"{p}encoder.embed.weight": (config.src_vocab_size, d),
                  f"{p}encoder.layers.0.mlp.c_fc.weight": (d, config.d_ff)}
        if not config.share_embeddings:
            shapes[f"{p}decoder.embed.weight"] = (config.tgt_vocab_size, d)
            shapes[f"{p}lm_head.weight"] = (d, config.tgt_vocab_size)
        return shapes, {f"{p}encoder.layers": config.n_encoder_layers,
                        f"{p}decoder.layers": config.n_decoder_layers}
    if kind == "TransformerEncoderModel":
        V, d = config.vocab_size, config.d_model
        shapes = {f"{p}encoder.embed.weight": (V, d),
                  f"{p}encoder.layers.0.mlp.c_fc.weight": (d, config.d_ff)}
        if config.positions == "learned":
            shapes[f"{p}encoder.pos_embed.weight"] = (config.max_len, d)
        if config.mlm_head:
            shapes[f"{p}mlm_head.bias"] = (V,)
        elif not config.tie_embeddings:
            shapes[f"{p}head.weight"] = (d, config.n_outputs)
        return shapes, {f"{p}encoder.layers": config.n_layers}
    if kind == "SequenceClassifier":
        backbone = config.backbone_cfg()
        shapes, layers = _anchors(config.backbone, backbone, "backbone.")
        for head in ("lm_head.weight", "head.weight", "mlm_head.bias"):   # dropped: unused
            shapes.pop("backbone." + head, None)
        width = getattr(backbone, "n_embd", None) or backbone.d_model
        shapes["score.weight"] = (width, config.n_classes)
        return shapes, layers
    if kind == "SentenceVAE":                     # its encoder and its GPT, and z's layers
        shapes, layers = _anchors("TransformerEncoderModel", config.encoder_config(),
                                  f"{p}encoder.")
        more, more_layers = _anchors("GPT", config.decoder_config(), f"{p}decoder.")
        shapes.update(more)
        layers.update(more_layers)
        C, Z = config.n_embd, config.latent
        shapes[f"{p}to_mu.weight"] = shapes[f"{p}to_logvar.weight"] = (C, Z)
        if config.latent_mode in ("add", "both"):
            shapes[f"{p}z_add.weight"] = (Z, C)
        if config.latent_mode in ("prefix", "both"):
            shapes[f"{p}z_prefix.weight"] = (Z, C)
        return shapes, layers
    raise AssertionError(kind)


def check_sizes(kind: str, config, weights: dict, file) -> None:
    """The config's sizes against the stored weights, before a model of that size is
    allocated: then the model holds as many numbers as the file, not what the config
    claims (a vocab_size of 10**12 in a 1 MB checkpoint is refused here)."""
    shapes, layer_lists = _anchors(kind, config)
    for name, shape in shapes.items():
        got = weights.get(name)
        if got is None or got.shape != shape:
            raise CheckpointError(
                f"{file}: {name}: expected shape {list(shape)} from the config, got "
                f"{'no such tensor' if got is None else list(got.shape)}: the weights do not "
                "fit the config")
    for prefix, L in layer_lists.items():
        depth = prefix.count(".") + 1            # the layer index's place in a dotted name
        layers = {_index(parts[depth]) for key in weights
                  if key.startswith(prefix + ".")
                  and len(parts := key.split(".", depth + 1)) == depth + 2}
        # (not `layers != set(range(L))`: L comes from the file, and may be 10**9)
        if None in layers or len(layers) != L or min(layers, default=0) != 0 \
                or max(layers, default=-1) != L - 1:
            raise CheckpointError(f"{file}: {prefix}.*: expected the weights of layers "
                                  f"0..{L - 1} ({L} layers in the config), got layers "
                                  f"{_show(sorted(layers, key=str))}: the weights do not fit "
                                  "the config")

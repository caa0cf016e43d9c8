"""Checkpoints: everything needed to use a model or resume its training, saved safely.

A checkpoint directory looks like this:

    out/ckpt/
      latest                  "step-000500": the name of the newest complete checkpoint
      step-000500/
        manifest.json         format, version, step, model config, optimizer
                              hyperparameters, trainer state (RNG states, data position),
                              and the size and SHA-256 of every file below
        model.safetensors     the weights, by GPT-2 names (readable by PyTorch / HF)
        optimizer.safetensors the optimizer's moment arrays (absent without an optimizer)
        tokenizer.json|.bpe   the tokenizer, in its own documented format

**Atomic.** A save writes a fresh ``.tmp-*`` directory, fsyncs every file, renames the
directory into place, and only then moves the ``latest`` pointer with `os.replace`, the
one rename POSIX guarantees to be atomic. A process killed at any instant leaves
``latest`` naming a complete checkpoint (the new one or the previous one).

Re-saving a step that already has a directory is the one case a rename cannot cover:
POSIX cannot swap two directories atomically, so the old ``step-N`` is first renamed to
``.old-step-N-<pid>`` and the new one then takes its name. A process killed between those
two renames leaves ``latest`` naming a missing directory; `resolve` then loads the
moved-aside copy (the old checkpoint, complete), and the next save into the directory
renames it back before it starts. So whatever instant a save is killed at, the directory
loads, with the old weights or the new, never a mix. Leftovers of killed saves
(``.tmp-*``, ``.old-*``, ``.latest-*``) are removed by the next save, unless the process
that made them is still running: one saver per directory at a time.

**Safe to load.** Arrays are read from safetensors (raw numbers), everything else from
strict JSON (`numpyllm._json`): loading never runs code from the file. The manifest is
checked whole before any file is opened (`numpyllm.training.manifest`): each field's type and range, file names that
are plain names (no ``/``, no ``..``, not absolute), ``latest`` naming a ``step-NNNNNN``
sibling, no symbolic links, the optimizer's hyperparameters checked by the optimizer's own
rules, RNG states that NumPy can take. Every file is checked against the size and
SHA-256 in the manifest, so a truncated or corrupted checkpoint is refused before
anything is built from it, and `build_model` checks the config's sizes against the
stored weights before it allocates the model. Any problem raises `CheckpointError` (a
ValueError) naming the file, the field and what was expected; OSError only when a file
cannot be read at all.

The trainer's state (``manifest["trainer"]``) is an open JSON object: the keys
`numpyllm.training.Trainer` writes (``step``, ``data_rng``, ``model_rngs``,
``train_config``) are checked for type here, any other key (``objective``, ``data``) is
passed through for its reader to validate (`Trainer.resume`, the command line).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _json
from ..hub.safetensors import SafetensorsError, load_file, save_file
from .manifest import (FORMAT, HF_TOKENIZER_FILES, VERSION, CheckpointError, _bad, _show,
                       check_config_types, check_manifest, check_optimizer_arrays, check_sizes,
                       model_types)

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint",
           "load_model", "resolve"]

# Always used with fullmatch, and [0-9] rather than \d (which takes any Unicode digit).
_STEP_DIR = re.compile(r"step-([0-9]+)")
_ASIDE = re.compile(r"\.old-(step-([0-9]+))-([0-9]+)")   # (name, its step, the saver's pid)
_LEFTOVER = re.compile(r"\.(?:tmp|old)-step-[0-9]+-([0-9]+)|\.latest-([0-9]+)")
_POINTER_BYTES = 64                    # `latest` holds one short name


@dataclass
class Checkpoint:
    """What `load_checkpoint` read. Arrays are owned copies."""

    path: Path                      # the step directory
    step: int
    model_config: dict              # {"type": "GPT", "config": {...}}
    weights: dict                   # name -> np.ndarray
    optimizer_state: dict | None    # as Optimizer.state_dict() returns it, or None
    trainer_state: dict = field(default_factory=dict)
    tokenizer: object = None        # a Char/BPE/WordPiece/Unigram/HFTokenizer, or None


# ------------------------------------------------------------------ helpers
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:      # some platforms cannot open a directory; the rename still stands
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _split_optimizer_state(state: dict) -> tuple[dict, dict]:
    """Optimizer.state_dict() -> (arrays for safetensors, the rest for JSON)."""
    arrays, scalars = {}, {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                arrays[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return arrays, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer_state(arrays: dict, meta: dict) -> dict:
    """The inverse of `_split_optimizer_state`; both parts already checked."""
    state: dict = {}
    for key, value in arrays.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


# ------------------------------------------------------------------ save
def _model_record(model, model_type: str) -> dict:
    """``{"type", "config"}``, and what the config cannot say: the LoRA adapters on the
    model (``lora``, `numpyllm.nn.lora.lora_record`) and, when some parameters are frozen,
    the names of those that train (``trainable``), so a resumed run trains the same ones."""
    from ..nn.lora import lora_record
    record = {"type": model_type, "config": model.config.to_dict()}
    lora = lora_record(model)
    if lora is not None:
        record["lora"] = lora
    from ..quantize.model import quantization_record
    quantization = quantization_record(model)
    if quantization is not None:                  # the layers held as codes and scales
        record["quantization"] = quantization
    params = list(model.named_parameters())
    if not all(p.requires_grad for _, p in params):
        record["trainable"] = [name for name, p in params if p.requires_grad]
    return record


def save_checkpoint(directory, *, step: int, model, model_type: str | None = None,
                    optimizer=None, tokenizer=None, trainer_state: dict | None = None,
                    keep: int = 2) -> Path:
    """Save a checkpoint of `model` (and optionally optimizer, tokenizer, trainer state)
    under `directory`, atomically; keep the newest `keep` checkpoints. Returns the step
    directory. `model.config.to_dict()` must give the model's config; `model_type` is the
    name `build_model` rebuilds it by (default: the model's class name)."""
    model_type = type(model).__name__ if model_type is None else model_type
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _recover(directory)
    name = f"step-{int(step):06d}"
    tmp = directory / f".tmp-{name}-{os.getpid()}"
    final = directory / name
    aside = directory / f".old-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        files = {"model.safetensors": None}
        record = _model_record(model, model_type)
        state, metadata = model.state_dict(), {"format": "pt", "producer": "numpyllm"}
        if "quantization" in record:              # the codes and scales, as tensors
            from ..quantize.checkpoint import quantized_tensors
            state.update(quantized_tensors(model))
            metadata["quantization"] = record["quantization"]["format"]
        save_file(state, tmp / "model.safetensors", metadata=metadata)
        manifest = {
            "format": FORMAT, "version": VERSION, "step": int(step),
            "model": record,
            "trainer": trainer_state or {}, "optimizer": None, "tokenizer": None,
        }
        if optimizer is not None:
            arrays, meta = _split_optimizer_state(optimizer.state_dict())
            save_file(arrays, tmp / "optimizer.safetensors")
            files["optimizer.safetensors"] = None
            # (a sharded optimizer saves its consolidated state under its inner type)
            kind = getattr(optimizer, "saves_as", type(optimizer).__name__)
            manifest["optimizer"] = {"type": kind, **meta}
        if tokenizer is not None:
            kind = type(tokenizer).__name__
            if kind == "HFTokenizer":      # tokenizer.json + tokenizer_config.json, as HF's
                written = _save_hf_tokenizer(tokenizer, tmp)
            else:
                # numpyllm's JSON formats (char, wordpiece, unigram), or its BPE file
                written = ["tokenizer.bpe" if kind == "BPETokenizer" else "tokenizer.json"]
                tokenizer.save(tmp / written[0])
            for tok_name in written:
                with open(tmp / tok_name, "rb+") as f:
                    os.fsync(f.fileno())
                files[tok_name] = None
            manifest["tokenizer"] = {"type": kind, "file": written[0]}
        manifest["files"] = {f: {"bytes": (tmp / f).stat().st_size, "sha256": _sha256(tmp / f)}
                             for f in files}
        _write_json(tmp / "manifest.json", manifest)   # last: a dir without it is incomplete
        _fsync_dir(tmp)
        if final.exists():
            # Re-saving a step. The name must be free before the new directory can take
            # it, and POSIX has no atomic swap of two directories: from here to the next
            # rename, `latest` may name a missing directory. `resolve` then loads `aside`
            # (the old checkpoint, complete), and `_recover` puts it back if we die here.
            os.replace(final, aside)
            _fsync_dir(directory)
        os.replace(tmp, final)
        _fsync_dir(directory)
        pointer = directory / f".latest-{os.getpid()}"
        pointer.write_text(name + "\n", encoding="utf-8")
        with open(pointer, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(pointer, directory / "latest")     # the commit point
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside.exists() and not final.exists():     # failed between the two renames
            os.replace(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    _prune(directory, keep, current=name)
    return directory / name


def _save_hf_tokenizer(tokenizer, step_dir: Path) -> list:
    """Write a Hugging Face tokenizer's two files into the step directory (its save also
    writes GPT-2's vocab.json and merges.txt, which tokenizer.json repeats: left out)."""
    side = step_dir / ".tokenizer"
    tokenizer.save(side)
    for name in HF_TOKENIZER_FILES:
        os.replace(side / name, step_dir / name)
    shutil.rmtree(side)
    return list(HF_TOKENIZER_FILES)


def _alive(pid: int) -> bool:
    """Whether process `pid` may still be running (and saving)."""
    if pid == os.getpid():
        return False           # our own leftovers are from a save that already ended
    if os.name != "posix":     # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):   # (a name with 30 digits is no pid)
        return False
    except OSError:            # exists, but is another user's
        return True
    return True


def _recover(directory: Path) -> None:
    """Tidy up after saves that were killed, before a new one starts: put back an old
    step directory that an interrupted re-save moved aside (so `latest` names a directory
    again), and remove the other leftovers of processes that are no longer running."""
    try:
        current = _read_pointer(directory / "latest")
    except (CheckpointError, OSError):
        current = None
    for entry in sorted(directory.iterdir()):
        m = _LEFTOVER.fullmatch(entry.name)
        if m is None or _alive(int(m.group(1) or m.group(2))):
            continue
        aside = _ASIDE.fullmatch(entry.name)
        if aside and aside.group(1) == current and not os.path.lexists(directory / current):
            os.replace(entry, directory / current)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _prune(directory: Path, keep: int, current: str) -> None:
    steps = sorted((int(m.group(1)), p) for p in directory.iterdir()
                   if p.is_dir() and (m := _STEP_DIR.fullmatch(p.name)))
    for _, path in steps[:-keep] if keep > 0 else []:
        if path.name != current:
            shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ resolve
def _read_pointer(pointer: Path) -> str:
    """The step directory name that a ``latest`` file holds, checked to be one."""
    mode = os.lstat(pointer).st_mode
    if stat.S_ISLNK(mode):
        raise CheckpointError(f"{pointer}: expected a file, got a symbolic link (a checkpoint "
                              "never follows a link out of its directory)")
    if not stat.S_ISREG(mode):           # a directory, or a FIFO that would block the read
        raise CheckpointError(f"{pointer}: expected a file naming a step directory, got a "
                              "directory or a special file")
    with open(pointer, "rb") as f:
        raw = f.read(_POINTER_BYTES + 1)
    name = raw.decode("ascii", errors="replace").strip()
    if len(raw) > _POINTER_BYTES or not _STEP_DIR.fullmatch(name):
        raise CheckpointError(f"{pointer}: expected the name of a sibling step directory "
                              f"such as 'step-000500', got {_show(raw[:_POINTER_BYTES])}")
    return name


def _complete(step_dir: Path) -> bool:
    """A real directory (not a link) holding a manifest.json that is a regular file."""
    try:
        return (stat.S_ISDIR(os.lstat(step_dir).st_mode)
                and stat.S_ISREG(os.lstat(step_dir / "manifest.json").st_mode))
    except OSError:
        return False


def resolve(path) -> Path:
    """The step directory that `path` names: itself if it holds a manifest, else the one
    its ``latest`` pointer names (a ``step-NNNNNN`` directory beside it). If that one is
    missing because a re-save of it was killed half-way, the old copy the save moved
    aside (``.old-step-NNNNNN-<pid>``) is used; see the module docstring."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return path
    pointer = path / "latest"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the directory does not exist")
    if not os.path.lexists(pointer):
        raise CheckpointError(f"no checkpoint at {path}: neither manifest.json nor a 'latest' "
                              "pointer is there")
    name = _read_pointer(pointer)
    step_dir = path / name
    if os.path.islink(step_dir):
        raise CheckpointError(f"{pointer}: names {name!r}, which is a symbolic link: expected "
                              "a step directory inside the checkpoint directory")
    if _complete(step_dir):
        return step_dir
    if not os.path.lexists(step_dir):
        for entry in sorted(path.iterdir()):
            m = _ASIDE.fullmatch(entry.name)
            if m and m.group(1) == name and _complete(entry):
                return entry
    raise CheckpointError(f"{pointer}: names {name!r}, which is not a complete checkpoint "
                          f"(expected a directory {step_dir} holding manifest.json)")


# ------------------------------------------------------------------ check the manifest


# ------------------------------------------------------------------ load
def _verify_file(file: Path, info: dict, verify: bool) -> None:
    try:
        mode = os.lstat(file).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{file} is missing from the checkpoint") from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{file}: expected a regular file, got a "
                              f"{'symbolic link' if stat.S_ISLNK(mode) else 'directory or special file'}")
    size = os.lstat(file).st_size
    if size != info["bytes"]:
        raise CheckpointError(f"{file} has {size} bytes, the manifest says {info['bytes']}: "
                              "truncated or replaced")
    if verify and _sha256(file) != info["sha256"]:
        raise CheckpointError(f"{file} does not match its SHA-256 in the manifest: corrupt")


def load_checkpoint(path, *, verify: bool = True, trust_pattern: bool = False) -> Checkpoint:
    """Read a checkpoint directory (or its parent with a ``latest`` pointer).

    Raises `CheckpointError` for anything missing, malformed or corrupt (see the module
    docstring); `verify=False` skips the SHA-256 of each file (sizes are still checked).
    `trust_pattern=True` loads a tokenizer whose custom split pattern
    `numpyllm.tokenizers.pattern_safety` would refuse (a checkpoint you made yourself).
    """
    step_dir = resolve(path)
    where = step_dir / "manifest.json"
    if not stat.S_ISREG(os.lstat(where).st_mode):
        raise CheckpointError(f"{where}: expected a regular file, got a symbolic link or "
                              "a special file")
    try:
        manifest = _json.loads(where.read_bytes())
    except _json.JSONFormatError as exc:
        raise CheckpointError(f"{where} is not valid JSON: {exc}") from None
    check_manifest(manifest, where)
    named = _STEP_DIR.fullmatch(step_dir.name) or _ASIDE.fullmatch(step_dir.name)
    if named and int(named.group(1 if named.re is _STEP_DIR else 2)) != manifest["step"]:
        raise _bad(where, "step", f"the step its directory {step_dir.name} is named after",
                   manifest["step"])
    for name, info in manifest["files"].items():
        _verify_file(step_dir / name, info, verify)
    try:
        weights = load_file(step_dir / "model.safetensors")
        optimizer_state = None
        if manifest["optimizer"] is not None:
            n_params = len([i for g in manifest["optimizer"]["param_groups"] for i in g["params"]])
            arrays = load_file(step_dir / "optimizer.safetensors")
            check_optimizer_arrays(arrays, manifest["optimizer"]["scalars"], n_params,
                                    step_dir / "optimizer.safetensors")
            optimizer_state = _join_optimizer_state(arrays, manifest["optimizer"])
    except SafetensorsError as exc:
        raise CheckpointError(str(exc)) from None
    tokenizer = None
    if manifest["tokenizer"] is not None:
        from ..tokenizers import TokenizerError, load_tokenizer
        file = step_dir / manifest["tokenizer"]["file"]
        try:
            if manifest["tokenizer"]["type"] == "HFTokenizer":   # the two files beside it
                from ..tokenizers.hf import load_hf_tokenizer
                tokenizer = load_hf_tokenizer(step_dir)
            else:
                tokenizer = load_tokenizer(file, trust_pattern=trust_pattern)
        except TokenizerError as exc:
            raise CheckpointError(str(exc)) from None
        if type(tokenizer).__name__ != manifest["tokenizer"]["type"]:
            raise _bad(where, "tokenizer.type", f"{type(tokenizer).__name__}, the kind of "
                       f"tokenizer {file.name} holds", manifest["tokenizer"]["type"])
    return Checkpoint(step_dir, manifest["step"], manifest["model"], weights,
                      optimizer_state, manifest.get("trainer") or {}, tokenizer)


# ------------------------------------------------------------------ build


def build_model(ckpt: Checkpoint, *, dtype: str | None = None):
    """The model a checkpoint describes (GPT, Transformer, TransformerEncoderModel or
    SequenceClassifier), with its weights loaded (shapes checked). `dtype` overrides the
    config's ("float32" / "float64")."""
    info = ckpt.model_config
    where = ckpt.path / "manifest.json"
    types = model_types()
    kind = info.get("type") if isinstance(info, dict) else info
    if not isinstance(kind, str) or kind not in types:
        raise _bad(where, "model.type", f"one of {list(types)}", kind)
    model_cls, config_cls = types[kind]
    if not isinstance(info.get("config"), dict):
        raise _bad(where, "model.config", "a JSON object", info.get("config"))
    config_dict = dict(info["config"])
    check_config_types(config_cls, config_dict, where, "model.config")
    if kind == "SequenceClassifier":
        backbone = config_dict.get("backbone")
        if backbone not in ("GPT", "Llama", "TransformerEncoderModel"):
            raise _bad(where, "model.config.backbone",
                       "'GPT', 'Llama' or 'TransformerEncoderModel'",
                       backbone)
        if not isinstance(config_dict.get("backbone_config"), dict):
            raise _bad(where, "model.config.backbone_config", "a JSON object",
                       config_dict.get("backbone_config"))
        inner = dict(config_dict["backbone_config"])
        check_config_types(types[backbone][1], inner, where, "model.config.backbone_config")
        if dtype is not None:
            inner["dtype"] = dtype
        config_dict["backbone_config"] = inner
    elif dtype is not None:
        config_dict["dtype"] = dtype
    try:
        config = config_cls.from_dict(config_dict)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: model.config: the model config is invalid: "
                              f"{exc}") from None
    weights = ckpt.weights
    quantization = info.get("quantization")
    if quantization is not None:                  # numpyllm.quantize.checkpoint
        from ..quantize.checkpoint import check_record, float_shapes
        try:
            check_record(quantization)
        except ValueError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        check_sizes(kind, config, float_shapes(quantization, weights),
                    ckpt.path / "model.safetensors")
    else:
        check_sizes(kind, config, weights, ckpt.path / "model.safetensors")
    if quantization is not None:
        # allocated, never drawn: the float weights of the quantized layers are replaced
        # before anything writes to them, so their pages never become resident memory
        from ..nn.layers import uninitialized_weights
        with uninitialized_weights():
            model = model_cls(config, rng=np.random.default_rng(0))
    else:
        model = model_cls(config, rng=np.random.default_rng(0))
    if quantization is not None:                  # the quantized layers first, then LoRA
        from ..quantize.checkpoint import restore_quantized
        try:
            weights = restore_quantized(model, quantization, weights,
                                        file=str(ckpt.path / "model.safetensors"))
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
    if info.get("lora") is not None:           # the adapters first: their weights load next
        from ..nn.lora import restore_lora
        _check_lora_sizes(info["lora"], weights, ckpt.path / "model.safetensors")
        try:
            restore_lora(model, info["lora"], rng=0)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: model.lora: the adapters do not fit the model: "
                                  f"{exc}") from None
    try:
        model.load_state_dict(weights, strict=True)
    except (KeyError, ValueError) as exc:
        detail = "; ".join(line.strip() for line in str(exc).splitlines())   # one line
        raise CheckpointError(f"{ckpt.path / 'model.safetensors'}: the weights do not fit the "
                              f"config: {detail}") from None
    _freeze(model, info.get("trainable"), where)
    return model


def _check_lora_sizes(record: list, weights: dict, file) -> None:
    """Each adapter's rank against its stored A and B, before they are allocated (as
    `check_sizes` does for the config: an r of 10**6 in a small file is refused here)."""
    for group in record:
        r = group["r"]
        for name in group["targets"]:
            a, b = weights.get(f"{name}.lora_A"), weights.get(f"{name}.lora_B")
            if a is None or b is None or a.ndim != 2 or b.ndim != 2 or a.shape[1] != r \
                    or b.shape[0] != r:
                raise CheckpointError(
                    f"{file}: {name}.lora_A/lora_B: expected [in, {r}] and [{r}, out] from "
                    f"the manifest's model.lora, got "
                    f"{'no such tensors' if a is None or b is None else [a.shape, b.shape]}: "
                    "the weights do not fit the config")


def _freeze(model, trainable, where) -> None:
    """Every parameter trains (`trainable` None), or only those named."""
    params = dict(model.named_parameters())
    if trainable is None:
        model.requires_grad_(True)
        return
    unknown = [name for name in trainable if name not in params]
    if unknown:
        raise _bad(where, "model.trainable", "names of the model's parameters", unknown[:4])
    model.requires_grad_(False)
    for name in trainable:
        params[name].requires_grad_(True)


def load_model(path, *, dtype: str | None = None, trust_pattern: bool = False):
    """``(model, tokenizer, checkpoint)`` from a checkpoint directory, ready for eval."""
    ckpt = load_checkpoint(path, trust_pattern=trust_pattern)
    model = build_model(ckpt, dtype=dtype)
    model.eval()
    return model, ckpt.tokenizer, ckpt

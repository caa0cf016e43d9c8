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

**Safe to load.** Arrays are read from safetensors (raw numbers), everything else from
JSON: loading never runs code from the file. Every file is checked against the size
and SHA-256 in the manifest, so a truncated or corrupted checkpoint is refused with a
`CheckpointError` naming the file, before anything is built from it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .safetensors import SafetensorsError, load_file, save_file

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint",
           "load_model", "resolve"]

FORMAT = "numpyllm-checkpoint"
VERSION = 1
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt, or does not fit its config."""


@dataclass
class Checkpoint:
    """What `load_checkpoint` read. Arrays are owned copies."""

    path: Path                      # the step directory
    step: int
    model_config: dict              # {"type": "GPT", "config": {...}}
    weights: dict                   # name -> np.ndarray
    optimizer_state: dict | None    # as Optimizer.state_dict() returns it, or None
    trainer_state: dict = field(default_factory=dict)
    tokenizer: object = None        # a CharTokenizer / BPETokenizer, or None


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
    state: dict = {}
    for key, value in arrays.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


# ------------------------------------------------------------------ save
def save_checkpoint(directory, *, step: int, model, model_type: str = "GPT", optimizer=None,
                    tokenizer=None, trainer_state: dict | None = None, keep: int = 2) -> Path:
    """Save a checkpoint of `model` (and optionally optimizer, tokenizer, trainer state)
    under `directory`, atomically; keep the newest `keep` checkpoints. Returns the step
    directory. `model.config.to_dict()` must give the model's config."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{int(step):06d}"
    tmp = directory / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        files = {"model.safetensors": None}
        save_file(model.state_dict(), tmp / "model.safetensors",
                  metadata={"format": "pt", "producer": "numpyllm"})
        manifest = {
            "format": FORMAT, "version": VERSION, "step": int(step),
            "model": {"type": model_type, "config": model.config.to_dict()},
            "trainer": trainer_state or {}, "optimizer": None, "tokenizer": None,
        }
        if optimizer is not None:
            arrays, meta = _split_optimizer_state(optimizer.state_dict())
            save_file(arrays, tmp / "optimizer.safetensors")
            files["optimizer.safetensors"] = None
            manifest["optimizer"] = {"type": type(optimizer).__name__, **meta}
        if tokenizer is not None:
            tok_name = "tokenizer.json" if type(tokenizer).__name__ == "CharTokenizer" else "tokenizer.bpe"
            tokenizer.save(tmp / tok_name)
            with open(tmp / tok_name, "rb+") as f:
                os.fsync(f.fileno())
            files[tok_name] = None
            manifest["tokenizer"] = {"type": type(tokenizer).__name__, "file": tok_name}
        manifest["files"] = {f: {"bytes": (tmp / f).stat().st_size, "sha256": _sha256(tmp / f)}
                             for f in files}
        _write_json(tmp / "manifest.json", manifest)   # last: a dir without it is incomplete
        _fsync_dir(tmp)
        final = directory / name
        if final.exists():                       # re-saving a step: move the old one aside
            stale = directory / f".old-{name}-{os.getpid()}"
            os.replace(final, stale)
            os.replace(tmp, final)
            shutil.rmtree(stale, ignore_errors=True)
        else:
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
        raise
    _prune(directory, keep, current=name)
    return directory / name


def _prune(directory: Path, keep: int, current: str) -> None:
    steps = sorted((int(m.group(1)), p) for p in directory.iterdir()
                   if p.is_dir() and (m := _STEP_DIR.match(p.name)))
    for _, path in steps[:-keep] if keep > 0 else []:
        if path.name != current:
            shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ load
def resolve(path) -> Path:
    """The step directory that `path` names: itself if it holds a manifest, else the one
    its ``latest`` pointer names."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return path
    pointer = path / "latest"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the directory does not exist")
    if not pointer.is_file():
        raise CheckpointError(f"no checkpoint at {path}: neither manifest.json nor a 'latest' "
                              "pointer is there")
    name = pointer.read_text(encoding="utf-8").strip()
    if not _STEP_DIR.match(name) or not (path / name / "manifest.json").is_file():
        raise CheckpointError(f"{pointer} names {name!r}, which is not a complete checkpoint")
    return path / name


def load_checkpoint(path, *, verify: bool = True) -> Checkpoint:
    """Read a checkpoint directory (or its parent with a ``latest`` pointer)."""
    step_dir = resolve(path)
    try:
        manifest = json.loads((step_dir / "manifest.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{step_dir}/manifest.json is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{step_dir}/manifest.json is not a numpyllm checkpoint manifest")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{step_dir}: checkpoint format version {manifest.get('version')} "
                              f"is not supported (this numpyllm reads version {VERSION})")
    for name, info in manifest.get("files", {}).items():
        file = step_dir / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing from the checkpoint")
        size = file.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(f"{file} has {size} bytes, the manifest says {info['bytes']}: "
                                  "truncated or replaced")
        if verify and _sha256(file) != info["sha256"]:
            raise CheckpointError(f"{file} does not match its SHA-256 in the manifest: corrupt")
    try:
        weights = load_file(step_dir / "model.safetensors")
        optimizer_state = None
        if manifest.get("optimizer"):
            optimizer_state = _join_optimizer_state(
                load_file(step_dir / "optimizer.safetensors"), manifest["optimizer"])
    except SafetensorsError as exc:
        raise CheckpointError(str(exc)) from None
    tokenizer = None
    if manifest.get("tokenizer"):
        from .tokenizers import load_tokenizer
        tokenizer = load_tokenizer(step_dir / manifest["tokenizer"]["file"])
    return Checkpoint(step_dir, int(manifest["step"]), manifest["model"], weights,
                      optimizer_state, manifest.get("trainer") or {}, tokenizer)


def build_model(ckpt: Checkpoint, *, dtype: str | None = None):
    """The model a checkpoint describes, with its weights loaded (shapes checked)."""
    info = ckpt.model_config
    if info.get("type") != "GPT":
        raise CheckpointError(f"{ckpt.path}: unknown model type {info.get('type')!r}")
    from .nn.gpt import GPT, GPTConfig
    config_dict = dict(info["config"])
    if dtype is not None:
        config_dict["dtype"] = dtype
    try:
        config = GPTConfig.from_dict(config_dict)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt.path}: the model config is invalid: {exc}") from None
    model = GPT(config, rng=np.random.default_rng(0))
    try:
        model.load_state_dict(ckpt.weights, strict=True)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{ckpt.path}: the weights do not fit the config: {exc}") from None
    return model


def load_model(path, *, dtype: str | None = None):
    """``(model, tokenizer, checkpoint)`` from a checkpoint directory, ready for eval."""
    ckpt = load_checkpoint(path)
    model = build_model(ckpt, dtype=dtype)
    model.eval()
    return model, ckpt.tokenizer, ckpt

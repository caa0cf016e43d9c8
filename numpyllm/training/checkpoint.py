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
checked whole before any file is opened: each field's type and range, file names that
are plain names (no ``/``, no ``..``, not absolute), ``latest`` naming a ``step-NNNNNN``
sibling, no symbolic links, the optimizer's hyperparameters checked by the optimizer's own
rules, RNG states that NumPy can take. Every file is checked against the size and
SHA-256 in the manifest, so a truncated or corrupted checkpoint is refused before
anything is built from it, and `build_model` checks the config's sizes against the
stored weights before it allocates the model. Any problem raises `CheckpointError` (a
ValueError) naming the file, the field and what was expected; OSError only when a file
cannot be read at all.

The trainer's state (``manifest["trainer"]``) is an open JSON object: the keys
`numpyllm.train.Trainer` writes (``step``, ``data_rng``, ``model_rngs``,
``train_config``) are checked for type here, any other key is passed through unchecked
for its reader to validate.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .. import _json
from ..hub.safetensors import SafetensorsError, load_file, save_file

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint",
           "load_model", "resolve"]

FORMAT = "numpyllm-checkpoint"
VERSION = 1
# Always used with fullmatch, and [0-9] rather than \d (which takes any Unicode digit).
_STEP_DIR = re.compile(r"step-([0-9]+)")
_ASIDE = re.compile(r"\.old-(step-([0-9]+))-([0-9]+)")   # (name, its step, the saver's pid)
_LEFTOVER = re.compile(r"\.(?:tmp|old)-step-[0-9]+-([0-9]+)|\.latest-([0-9]+)")
# A file of the checkpoint: a plain name in the step directory, never a path.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_POINTER_BYTES = 64                    # `latest` holds one short name
_OPTIMIZERS = ("SGD", "Adam", "AdamW")
_TOKENIZERS = ("CharTokenizer", "BPETokenizer")
_RNG_TYPES = ("PCG64", "PCG64DXSM")    # the generators whose state is plain ints (JSON)


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


def _check_optimizer_arrays(arrays: dict, scalars: dict, n_params: int, file) -> None:
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


def _check_manifest(manifest, where) -> dict:
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
        needed.append(tok["file"])
    for name in needed:
        if name not in files:
            raise _bad(where, "files", f"an entry for {name!r}", sorted(files))
    _check_trainer_state(manifest.get("trainer"), where)
    for key in ("optimizer", "tokenizer", "trainer"):     # optional: absent means none
        manifest.setdefault(key, None)
    return manifest


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
    _check_manifest(manifest, where)
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
            _check_optimizer_arrays(arrays, manifest["optimizer"]["scalars"], n_params,
                                    step_dir / "optimizer.safetensors")
            optimizer_state = _join_optimizer_state(arrays, manifest["optimizer"])
    except SafetensorsError as exc:
        raise CheckpointError(str(exc)) from None
    tokenizer = None
    if manifest["tokenizer"] is not None:
        from ..tokenizers import TokenizerError, load_tokenizer
        file = step_dir / manifest["tokenizer"]["file"]
        try:
            tokenizer = load_tokenizer(file, trust_pattern=trust_pattern)
        except TokenizerError as exc:
            raise CheckpointError(str(exc)) from None
        if type(tokenizer).__name__ != manifest["tokenizer"]["type"]:
            raise _bad(where, "tokenizer.type", f"{type(tokenizer).__name__}, the kind of "
                       f"tokenizer {file.name} holds", manifest["tokenizer"]["type"])
    return Checkpoint(step_dir, manifest["step"], manifest["model"], weights,
                      optimizer_state, manifest.get("trainer") or {}, tokenizer)


# ------------------------------------------------------------------ build
_JSON_TYPES = {"int": ((int,), "an integer"), "float": ((int, float), "a number"),
               "bool": ((bool,), "true or false"), "str": ((str,), "a string"),
               "int | None": ((int, type(None)), "an integer or null")}


def _check_config_types(cls, config: dict, where, field: str = "model.config") -> None:
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


def _model_types() -> dict:
    """name -> (model class, config class): the models a checkpoint can rebuild. A fixed
    table: the name in a manifest is looked up here, never in a module."""
    from ..nn import (GPT, ClassifierConfig, GPTConfig, SequenceClassifier, Transformer,
                      TransformerConfig, TransformerEncoderConfig, TransformerEncoderModel)
    return {"GPT": (GPT, GPTConfig), "Transformer": (Transformer, TransformerConfig),
            "TransformerEncoderModel": (TransformerEncoderModel, TransformerEncoderConfig),
            "SequenceClassifier": (SequenceClassifier, ClassifierConfig)}


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
        width = backbone.n_embd if config.backbone == "GPT" else backbone.d_model
        shapes["score.weight"] = (width, config.n_classes)
        return shapes, layers
    raise AssertionError(kind)


def _check_sizes(kind: str, config, weights: dict, file) -> None:
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


def build_model(ckpt: Checkpoint, *, dtype: str | None = None):
    """The model a checkpoint describes (GPT, Transformer, TransformerEncoderModel or
    SequenceClassifier), with its weights loaded (shapes checked). `dtype` overrides the
    config's ("float32" / "float64")."""
    info = ckpt.model_config
    where = ckpt.path / "manifest.json"
    types = _model_types()
    kind = info.get("type") if isinstance(info, dict) else info
    if not isinstance(kind, str) or kind not in types:
        raise _bad(where, "model.type", f"one of {list(types)}", kind)
    model_cls, config_cls = types[kind]
    if not isinstance(info.get("config"), dict):
        raise _bad(where, "model.config", "a JSON object", info.get("config"))
    config_dict = dict(info["config"])
    _check_config_types(config_cls, config_dict, where, "model.config")
    if kind == "SequenceClassifier":
        backbone = config_dict.get("backbone")
        if backbone not in ("GPT", "TransformerEncoderModel"):
            raise _bad(where, "model.config.backbone", "'GPT' or 'TransformerEncoderModel'",
                       backbone)
        if not isinstance(config_dict.get("backbone_config"), dict):
            raise _bad(where, "model.config.backbone_config", "a JSON object",
                       config_dict.get("backbone_config"))
        inner = dict(config_dict["backbone_config"])
        _check_config_types(types[backbone][1], inner, where, "model.config.backbone_config")
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
    _check_sizes(kind, config, ckpt.weights, ckpt.path / "model.safetensors")
    try:
        model = model_cls(config, rng=np.random.default_rng(0))
        model.load_state_dict(ckpt.weights, strict=True)
    except (KeyError, ValueError) as exc:
        detail = "; ".join(line.strip() for line in str(exc).splitlines())   # one line
        raise CheckpointError(f"{ckpt.path / 'model.safetensors'}: the weights do not fit the "
                              f"config: {detail}") from None
    return model


def load_model(path, *, dtype: str | None = None, trust_pattern: bool = False):
    """``(model, tokenizer, checkpoint)`` from a checkpoint directory, ready for eval."""
    ckpt = load_checkpoint(path, trust_pattern=trust_pattern)
    model = build_model(ckpt, dtype=dtype)
    model.eval()
    return model, ckpt.tokenizer, ckpt

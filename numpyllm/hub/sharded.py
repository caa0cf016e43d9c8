"""The weights of a model directory: one safetensors file, or shards listed by an index.

A large model's weights are split into shards, ``model-00001-of-00004.safetensors`` ...,
and ``model.safetensors.index.json`` says which shard holds each tensor:

    {"metadata": {"total_size": 60224},
     "weight_map": {"transformer.wte.weight": "model-00001-of-00004.safetensors", ...}}

The index is untrusted input, checked before any shard is opened: strict JSON of bounded
size; ``weight_map`` an object of tensor name -> file name; each file name a plain name
inside the directory (no ``/``, no ``..``, not absolute, ending in ``.safetensors``); every
named shard present. Then each shard's header is checked (`SafetensorsFile`) and must hold
exactly the tensors the index gives it: a tensor in two shards, a tensor the index does
not list, or one the index puts in a shard that lacks it, is an error. All problems are
listed in one `PretrainedError`.

`WeightFiles` reads the tensors of either form through memory maps, one at a time;
`write_weights` writes either form (shards when ``max_shard_size`` is given).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from .errors import PretrainedError
from .hfconfig import read_json_file
from .safetensors import FLOAT_CODES, SafetensorsError, SafetensorsFile, save_file

__all__ = ["SINGLE", "INDEX", "WeightFiles", "read_index", "open_weights", "write_weights",
           "parse_size", "weight_file_names"]

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
# A shard: a plain file name in the directory, never a path.
_SHARD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}\.safetensors")
_OUR_SHARDS = re.compile(r"model-[0-9]{5}-of-[0-9]{5}\.safetensors")


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _listing(problems: list) -> str:
    return "; ".join(problems)


def read_index(directory) -> dict:
    """``{shard file name: [tensor names]}`` from the directory's index, checked (see the
    module docstring) up to the shards' own contents."""
    directory = Path(directory)
    where = directory / INDEX
    index = read_json_file(where, "the index of the weight shards")
    if not isinstance(index, dict):
        raise PretrainedError(f"{where}: expected a JSON object with a weight_map, got "
                              f"{type(index).__name__}")
    metadata = index.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise PretrainedError(f"{where}: metadata: expected a JSON object, got "
                                  f"{_show(metadata)}")
        total = metadata.get("total_size")
        if total is not None and (isinstance(total, bool) or not isinstance(total, int)
                                  or total < 0):
            raise PretrainedError(f"{where}: metadata.total_size: expected an integer >= 0, "
                                  f"got {_show(total)}")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise PretrainedError(f"{where}: weight_map: expected a non-empty JSON object of "
                              f"tensor name -> shard file, got {_show(weight_map)}")
    shards: dict = {}
    bad = []
    for name, file in weight_map.items():
        if not isinstance(file, str) or not _SHARD_NAME.fullmatch(file):
            bad.append(f"{_show(name)} -> {_show(file)}")
        else:
            shards.setdefault(file, []).append(name)
    if bad:
        raise PretrainedError(
            f"{where}: weight_map: expected plain .safetensors file names in the directory "
            f"(no '/', no '..', not absolute), got {len(bad)} others: {_listing(bad[:10])}"
            + (f" and {len(bad) - 10} more" if len(bad) > 10 else ""))
    missing = [f for f in shards if not (directory / f).is_file()]
    if missing:
        raise PretrainedError(f"{where}: weight_map names {len(missing)} shard(s) that are not "
                              f"files in {directory}: {', '.join(sorted(missing))}")
    return shards


class WeightFiles:
    """The tensors of one or more safetensors files, by name: `names`, `shape`, `dtype`,
    `read_into`, `get` as `SafetensorsFile` has them. Close it (or use ``with``)."""

    def __init__(self, files: dict, location: dict):
        self.files = files                 # file name -> SafetensorsFile
        self._location = location          # tensor name -> file name

    def names(self) -> list:
        return list(self._location)

    def __contains__(self, name) -> bool:
        return name in self._location

    def file_of(self, name) -> SafetensorsFile:
        return self.files[self._location[name]]

    def shape(self, name) -> tuple:
        return self.file_of(name).shape(name)

    def dtype(self, name) -> str:
        return self.file_of(name).dtype(name)

    def get(self, name) -> np.ndarray:
        return self.file_of(name).get(name)

    def read_into(self, name, out: np.ndarray) -> None:
        self.file_of(name).read_into(name, out)

    def close(self) -> None:
        for file in self.files.values():
            file.close()

    def __enter__(self) -> "WeightFiles":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open(path) -> SafetensorsFile:
    try:
        return SafetensorsFile(path)
    except SafetensorsError as exc:
        raise PretrainedError(str(exc)) from None


def open_weights(directory) -> WeightFiles:
    """The weights of a model directory: ``model.safetensors`` if it is there (as
    transformers prefers it), else the shards of ``model.safetensors.index.json``.
    Raises `PretrainedError` when neither is there."""
    directory = Path(directory)
    if (directory / SINGLE).exists():
        if not (directory / SINGLE).is_file():
            raise PretrainedError(f"{directory / SINGLE}: expected a regular file, got a "
                                  "directory or a special file")
        file = _open(directory / SINGLE)
        return WeightFiles({SINGLE: file}, {name: SINGLE for name in file.names()})
    if not os.path.lexists(directory / INDEX):
        raise PretrainedError(f"{directory}: no {SINGLE} and no {INDEX}: the directory holds "
                              "no safetensors weights")
    shards = read_index(directory)
    files: dict = {}
    try:
        for shard in sorted(shards):
            files[shard] = _open(directory / shard)
        problems, location = [], {}
        for shard, file in files.items():
            listed = set(shards[shard])
            for name in file.names():
                if name in location:
                    problems.append(f"{name!r} is in both {location[name]} and {shard}")
                elif name not in listed:
                    problems.append(f"{shard} holds {name!r}, which the weight_map does not "
                                    "give it")
                else:
                    location[name] = shard
            for name in sorted(listed - set(file.names())):
                problems.append(f"the weight_map puts {name!r} in {shard}, which lacks it")
        if problems:
            raise PretrainedError(f"{directory / INDEX}: the shards do not match the index "
                                  f"({len(problems)} problems): {_listing(problems)}")
    except BaseException:
        for file in files.values():
            file.close()
        raise
    return WeightFiles(files, location)


_UNITS = {"B": 1, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "KIB": 2 ** 10,
          "MIB": 2 ** 20, "GIB": 2 ** 30}


def parse_size(size) -> int:
    """A shard size in bytes, from an int or a string such as "5GB", "200MB", "20KiB"
    (decimal units, as transformers reads them; KiB/MiB/GiB binary)."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    if isinstance(size, str):
        m = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]*)\s*", size)
        if m and m.group(2).upper() in _UNITS and int(m.group(1)) > 0:
            return int(m.group(1)) * _UNITS[m.group(2).upper()]
    raise ValueError(f"max_shard_size: expected a positive number of bytes or a size such "
                     f"as '5GB' or '200MB', got {size!r}")


def weight_file_names(directory) -> list:
    """The weight files a save of ours writes and a new save replaces."""
    return [p.name for p in Path(directory).iterdir()
            if p.name in (SINGLE, INDEX) or _OUR_SHARDS.fullmatch(p.name)]


def _stored_nbytes(array: np.ndarray, dtype: str | None) -> int:
    if dtype is not None and array.dtype.kind == "f":
        return array.size * {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}[dtype]
    return array.nbytes


def write_weights(tensors: dict, directory, *, dtype: str | None = None,
                  max_shard_size=None, metadata: dict | None = None) -> list:
    """Write `tensors` (HF name -> array) into `directory` as ``model.safetensors``, or,
    with `max_shard_size`, as shards of at most that many bytes each (a tensor larger
    than that gets a shard of its own) and their index. Weight files of an earlier save
    that this one does not write are removed. Returns the names of the files written."""
    if dtype is not None and dtype not in FLOAT_CODES:
        raise ValueError(f"dtype must be one of {FLOAT_CODES} or None, got {dtype!r}")
    directory = Path(directory)
    names = list(tensors)
    groups = [names]
    if max_shard_size is not None:
        limit, groups, size = parse_size(max_shard_size), [], 0
        for name in names:
            nbytes = _stored_nbytes(tensors[name], dtype)
            if not groups or size + nbytes > limit:
                groups.append([])
                size = 0
            groups[-1].append(name)
            size += nbytes
    written = []
    if max_shard_size is None:
        files = {SINGLE: names}
    else:
        n = len(groups)
        files = {f"model-{k + 1:05d}-of-{n:05d}.safetensors": group
                 for k, group in enumerate(groups)}
    for file, group in files.items():
        tmp = directory / f".tmp-{os.getpid()}-{file}"
        save_file({name: tensors[name] for name in group}, tmp, metadata=metadata, dtype=dtype)
        os.replace(tmp, directory / file)
        written.append(file)
    if max_shard_size is not None:
        total = sum(_stored_nbytes(a, dtype) for a in tensors.values())
        index = {"metadata": {"total_size": total},
                 "weight_map": {name: file for file, group in files.items()
                                for name in sorted(group)}}
        tmp = directory / f".tmp-{os.getpid()}-{INDEX}"
        tmp.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, directory / INDEX)
        written.append(INDEX)
    for stale in set(weight_file_names(directory)) - set(written):
        (directory / stale).unlink()
    return written

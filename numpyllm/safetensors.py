"""Read and write the safetensors format with NumPy alone.

safetensors (Hugging Face's format, read by PyTorch, JAX and the HF libraries) is

    [8 bytes: N, little-endian u64] [N bytes: JSON header] [raw little-endian tensor bytes]

where the header maps each tensor name to ``{"dtype": "F32", "shape": [..], "data_offsets":
[begin, end]}`` (offsets into the byte buffer after the header), plus an optional
``"__metadata__"`` dict of strings. Nothing in the file is executed on load: it is JSON
and raw numbers, so a file from anywhere is safe to open.

    save_file({"wte.weight": np.zeros((3, 4), np.float32)}, "model.safetensors")
    tensors = load_file("model.safetensors")

Every malformed file (truncated, a header that does not parse, offsets outside the
buffer or overlapping, a shape that disagrees with the byte count) raises
`SafetensorsError` naming the problem.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

__all__ = ["save_file", "load_file", "SafetensorsError"]

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}
_MAX_HEADER = 100 * 1024 * 1024   # the reference implementation's limit


class SafetensorsError(ValueError):
    """A safetensors file that cannot be read as one."""


def _code(dtype: np.dtype) -> str:
    """The safetensors code of a NumPy dtype (files are little-endian)."""
    little = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
    for code, spec in _DTYPES.items():
        if np.dtype(spec) == little:
            return code
    raise SafetensorsError(f"dtype {dtype} has no safetensors code")


def save_file(tensors: dict, path, metadata: dict | None = None) -> None:
    """Write `tensors` (name -> np.ndarray) to `path`. Not atomic by itself: write to a
    temporary name and rename (as numpyllm.checkpoint does) if a crash must not leave a
    half-written file."""
    header, offset, chunks = {}, 0, []
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        code = _code(array.dtype)
        data = np.ascontiguousarray(array, dtype=np.dtype(_DTYPES[code])).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)          # pad so the tensor bytes start 8-aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for data in chunks:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())


def load_file(path, with_metadata: bool = False):
    """Read a safetensors file into a dict name -> np.ndarray (native byte order, owned
    arrays). With ``with_metadata=True`` return ``(tensors, metadata)``."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SafetensorsError(f"{path}: {len(blob)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > _MAX_HEADER or 8 + n > len(blob):
        raise SafetensorsError(f"{path}: header length {n} runs past the end of the file "
                               f"({len(blob)} bytes): truncated or not safetensors")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"{path}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    buffer = memoryview(blob)[8 + n:]
    tensors, spans = {}, []
    for name, info in header.items():
        try:
            code, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: entry {name!r} lacks dtype/shape/data_offsets") from None
        if code not in _DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {code!r}")
        dtype = np.dtype(_DTYPES[code])
        if any(not isinstance(s, int) or s < 0 for s in shape):
            raise SafetensorsError(f"{path}: tensor {name!r} has a bad shape {list(shape)}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if not (0 <= begin <= end <= len(buffer)) or end - begin != expected:
            raise SafetensorsError(
                f"{path}: tensor {name!r} (shape {list(shape)}, {code}) has byte range "
                f"[{begin}, {end}) but needs {expected} bytes within {len(buffer)}: truncated or corrupt")
        spans.append((begin, end, name))
        tensors[name] = np.frombuffer(buffer[begin:end], dtype=dtype).reshape(shape).astype(
            dtype.newbyteorder("="), copy=True)
    spans.sort()
    for (b1, e1, n1), (b2, e2, n2) in zip(spans, spans[1:]):
        if b2 < e1:
            raise SafetensorsError(f"{path}: tensors {n1!r} and {n2!r} overlap")
    return (tensors, metadata) if with_metadata else tensors

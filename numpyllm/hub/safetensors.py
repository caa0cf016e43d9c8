"""Read and write the safetensors format with NumPy alone.

safetensors (Hugging Face's format, read by PyTorch, JAX and the HF libraries) is

    [8 bytes: N, little-endian u64] [N bytes: JSON header] [raw little-endian tensor bytes]

where the header maps each tensor name to ``{"dtype": "F32", "shape": [..], "data_offsets":
[begin, end]}`` (offsets into the byte buffer after the header), plus an optional
``"__metadata__"`` dict of strings. Nothing in the file is executed on load: it is JSON
and raw numbers, so a file from anywhere is safe to open.

    save_file({"wte.weight": np.zeros((3, 4), np.float32)}, "model.safetensors")
    tensors = load_file("model.safetensors")

Every malformed file raises `SafetensorsError` (a ValueError) naming the file, the
field and what was expected: a truncated file, a header length past the end of the file,
a header that is not strict JSON (see `numpyllm._json`), a dtype that is not one of the
codes above, a shape that is not a list of non-negative integers (``true`` is not a
dimension), offsets that are not two integers, a byte range that disagrees with shape
and dtype, ``__metadata__`` that is not an object of strings, and tensors that overlap,
leave a gap or stop before the end of the file (the format requires them to tile the
data exactly). Shapes are multiplied with Python's exact integers, and every check is
made before any tensor is read, so a header claiming 2**40 elements in a 1 KB file is
refused without allocating anything.
"""
from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

from .. import _json

__all__ = ["save_file", "load_file", "SafetensorsError"]

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}
_MAX_HEADER = 100 * 1024 * 1024   # the reference implementation's limit
_MAX_NDIM = 32                     # NumPy 1.x's limit (2.x allows 64); no model needs more


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
    temporary name and rename (as numpyllm.training.checkpoint does) if a crash must not leave a
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


def _show(value) -> str:
    """A short one-line repr of a value read from a file, for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)   # JSON true is no int


def load_file(path, with_metadata: bool = False):
    """Read a safetensors file into a dict name -> np.ndarray (native byte order, owned
    arrays). With ``with_metadata=True`` return ``(tensors, metadata)``.

    Raises `SafetensorsError` (a ValueError naming the file, the field and what was
    expected) for any file that does not follow the format, and OSError when the file
    cannot be read. The header is checked whole before any tensor is read, so nothing
    larger than the file is ever allocated.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors header "
                                   "(8 bytes of header length come first)")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > min(_MAX_HEADER, size - 8):
            why = ("runs past the end of the file: truncated or not safetensors" if n > size - 8
                   else f"exceeds the format's limit of {_MAX_HEADER} bytes")
            raise SafetensorsError(
                f"{path}: header length: expected at most {min(_MAX_HEADER, size - 8)} bytes "
                f"(the file has {size}), got {n}, which {why}")
        raw = f.read(n)
        if len(raw) != n:
            raise SafetensorsError(f"{path}: header: expected {n} bytes, the file ends after "
                                   f"{len(raw)}: truncated")
        header, metadata = _parse_header(raw, path)
        entries = _check_layout(header, size - 8 - n, path)
        tensors = {}
        for name, dtype, shape, begin, end in entries:      # in file order
            f.seek(8 + n + begin)
            data = f.read(end - begin)
            if len(data) != end - begin:     # the file shrank while we read it
                raise SafetensorsError(f"{path}: tensor {name!r}: expected {end - begin} bytes "
                                       f"at offset {begin}, the file ends first: truncated")
            array = np.frombuffer(data, dtype=dtype)
            if dtype == np.bool_ and np.frombuffer(data, dtype=np.uint8).max(initial=0) > 1:
                raise SafetensorsError(f"{path}: tensor {name!r}: expected BOOL bytes of 0 or 1, "
                                       "got other values")
            tensors[name] = array.reshape(shape).astype(dtype.newbyteorder("="), copy=True)
    return (tensors, metadata) if with_metadata else tensors


def _parse_header(raw: bytes, path) -> tuple[dict, dict]:
    """The header's JSON object, split into (tensor entries, metadata)."""
    try:
        header = _json.loads(raw)
    except _json.JSONFormatError as exc:
        raise SafetensorsError(f"{path}: header: expected a JSON object, got text that is "
                               f"{exc}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header: expected a JSON object, got "
                               f"{type(header).__name__}")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    # The format (and the reference implementation) allows only strings here.
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError(f"{path}: __metadata__: expected a JSON object of strings, "
                               f"got {_show(metadata)}")
    return header, metadata


def _check_layout(header: dict, buffer_size: int, path) -> list:
    """Each entry checked: ``(name, dtype, shape, begin, end)`` sorted by offset.

    The format requires the tensors to tile the byte buffer: sorted by offset, the first
    starts at 0, each starts where the previous one ends, the last ends at the end of the
    file. So the arrays together hold exactly the file's data bytes, never more.
    """
    entries = []
    for name, info in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict):
            raise SafetensorsError(f"{where}: expected an object with dtype, shape and "
                                   f"data_offsets, got {_show(info)}")
        missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
        if missing:
            raise SafetensorsError(f"{where}: expected dtype, shape and data_offsets, but the "
                                   f"entry lacks {'/'.join(missing)}")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(code, str) or code not in _DTYPES:
            raise SafetensorsError(f"{where}: dtype: expected one of {sorted(_DTYPES)}, got "
                                   f"unsupported dtype {_show(code)}")
        dtype = np.dtype(_DTYPES[code])
        if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
                or not all(_is_int(d) and d >= 0 for d in shape)):
            raise SafetensorsError(f"{where}: shape: expected a list of at most {_MAX_NDIM} "
                                   f"non-negative integers, got {_show(shape)}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_int(o) for o in offsets) or not 0 <= offsets[0] <= offsets[1]):
            raise SafetensorsError(f"{where}: data_offsets: expected [begin, end] with integers "
                                   f"0 <= begin <= end, got {_show(offsets)}")
        begin, end = offsets
        # Python integers: exact, so a product that would overflow int64 is just large.
        count = math.prod(shape)
        expected = count * dtype.itemsize
        if end - begin != expected:
            raise SafetensorsError(
                f"{where}: data_offsets: expected a range as long as the tensor (shape "
                f"{_show(shape)} of {code} needs {expected} bytes), got [{begin}, {end}) "
                f"({end - begin} bytes): truncated or corrupt")
        if math.prod(d for d in shape if d) * dtype.itemsize >= 2 ** 63:
            raise SafetensorsError(f"{where}: shape: expected dimensions NumPy can hold, got "
                                   f"{_show(shape)}")
        entries.append((name, dtype, tuple(shape), begin, end))
    entries.sort(key=lambda e: (e[3], e[4]))
    position, previous = 0, None
    for name, _, _, begin, end in entries:
        if begin != position:
            what = "overlap" if begin < position else "leave a gap"
            after = f"tensor {previous!r} ends" if previous is not None else "the data starts"
            raise SafetensorsError(
                f"{path}: tensor {name!r}: data_offsets: expected to start at byte {position}, "
                f"where {after}, got {begin}: tensors that {what} are not allowed")
        position, previous = end, name
    if position != buffer_size:
        raise SafetensorsError(
            f"{path}: data: expected the tensors to end at the end of the file "
            f"({buffer_size} data bytes), they end at byte {position}: "
            + ("truncated or corrupt" if position > buffer_size else "trailing bytes"))
    return entries

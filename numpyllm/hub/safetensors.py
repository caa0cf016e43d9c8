"""Read and write the safetensors format with NumPy alone.

safetensors (Hugging Face's format, read by PyTorch, JAX and the HF libraries) is

    [8 bytes: N, little-endian u64] [N bytes: JSON header] [raw little-endian tensor bytes]

where the header maps each tensor name to ``{"dtype": "F32", "shape": [..], "data_offsets":
[begin, end]}`` (offsets into the byte buffer after the header), plus an optional
``"__metadata__"`` dict of strings. Nothing in the file is executed on load: it is JSON
and raw numbers, so a file from anywhere is safe to open.

    save_file({"wte.weight": np.zeros((3, 4), np.float32)}, "model.safetensors")
    tensors = load_file("model.safetensors")                 # owned arrays, all read now
    with SafetensorsFile("model.safetensors") as f:          # one tensor at a time
        f.read_into("wte.weight", out)                       # converted into `out`

Dtypes: F64, F32, F16, the integers, BOOL, and BF16 (bfloat16, which NumPy lacks: read as
float32, exactly, by `numpyllm.hub.bfloat16`). `save_file(..., dtype="BF16")` writes the
floating-point tensors as bfloat16 (or F16, F32, F64), rounding to nearest even.

**Memory maps.** `SafetensorsFile` (and ``load_file(path, mmap=True)``) map the file
instead of reading it: a tensor's bytes are read from disk when they are touched, and the
operating system can drop them again. `SafetensorsFile.read_into` copies one tensor into a
destination array (converting its dtype, transposed if the destination is a transposed
view) a few megabytes at a time, and releases each piece of the map after copying it, so
loading a model this way needs little more memory than the model itself. A mapped file
must not be truncated while it is open: reading a mapped page past the end of a file
kills the process (SIGBUS), a property of memory maps, not of this reader.

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
import mmap
import os
import struct

import numpy as np

from .. import _json
from .bfloat16 import bfloat16_to_float32, float32_to_bfloat16

__all__ = ["save_file", "load_file", "SafetensorsFile", "SafetensorsError", "FLOAT_CODES"]

# BF16's bits are read as uint16 and decoded (`numpyllm.hub.bfloat16`); every other code
# is a NumPy dtype. A uint16 array is saved as U16: BF16 is written only when asked for.
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8",
           "BOOL": "?"}
FLOAT_CODES = ("F64", "F32", "F16", "BF16")
_CHUNK_BYTES = 8 * 2 ** 20         # read_into copies (and releases) this much at a time
_MAX_HEADER = 100 * 1024 * 1024   # the reference implementation's limit
_MAX_NDIM = 32                     # NumPy 1.x's limit (2.x allows 64); no model needs more


class SafetensorsError(ValueError):
    """A safetensors file that cannot be read as one."""


def _code(dtype: np.dtype) -> str:
    """The safetensors code of a NumPy dtype (files are little-endian)."""
    little = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
    for code, spec in _DTYPES.items():
        if np.dtype(spec) == little and code != "BF16":   # uint16 is U16; BF16 is asked for
            return code
    raise SafetensorsError(f"dtype {dtype} has no safetensors code")


def _stored(array: np.ndarray, code: str) -> np.ndarray:
    """`array` as the little-endian array whose bytes the file holds for `code`."""
    if code == "BF16":
        return float32_to_bfloat16(array)
    return np.ascontiguousarray(array, dtype=np.dtype(_DTYPES[code]))


def save_file(tensors: dict, path, metadata: dict | None = None, *,
              dtype: str | None = None) -> None:
    """Write `tensors` (name -> np.ndarray) to `path`. With `dtype` ("F64", "F32", "F16" or
    "BF16") every floating-point tensor is stored in that format, rounded to nearest even;
    other tensors keep their own dtype.

    Tensors are converted and written one at a time, so the writer needs memory for one
    tensor's bytes, not the file's. Not atomic by itself: write to a temporary name and
    rename (as numpyllm.training.checkpoint does) if a crash must not leave a half-written
    file."""
    if dtype is not None and dtype not in FLOAT_CODES:
        raise ValueError(f"save_file: dtype must be one of {FLOAT_CODES} or None, got {dtype!r}")
    header, offset, order = {}, 0, []
    for name in sorted(tensors):
        array = tensors[name]
        if not isinstance(array, np.ndarray):
            array = np.asarray(array)
        code = dtype if dtype is not None and array.dtype.kind == "f" else _code(array.dtype)
        nbytes = array.size * np.dtype(_DTYPES[code]).itemsize
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + nbytes]}
        order.append((name, code))
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)          # pad so the tensor bytes start 8-aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, code in order:
            data = _stored(np.asarray(tensors[name]), code)
            f.write(data.reshape(-1).view(np.uint8).data)
            del data
        f.flush()
        os.fsync(f.fileno())


def _show(value) -> str:
    """A short one-line repr of a value read from a file, for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)   # JSON true is no int


def _read_header(f, path) -> tuple[int, list, dict]:
    """``(data start, entries, metadata)`` of the open file `f`, every field checked."""
    size = os.fstat(f.fileno()).st_size
    if size < 8:
        raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors header "
                               "(8 bytes of header length come first)")
    f.seek(0)
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
    return 8 + n, _check_layout(header, size - 8 - n, path), metadata


def _check_bool(array: np.ndarray, path, name: str) -> None:
    if array.dtype == np.bool_ and array.view(np.uint8).max(initial=0) > 1:
        raise SafetensorsError(f"{path}: tensor {name!r}: expected BOOL bytes of 0 or 1, "
                               "got other values")


def load_file(path, with_metadata: bool = False, *, mmap: bool = False):
    """Read a safetensors file into a dict name -> np.ndarray (native byte order, owned
    arrays; BF16 tensors decoded to float32). With ``with_metadata=True`` return
    ``(tensors, metadata)``.

    ``mmap=True`` maps the file instead of reading it: the arrays are read-only views of
    the map (BF16 ones are still decoded copies), read from disk as they are touched. See
    `SafetensorsFile` to read one tensor at a time.

    Raises `SafetensorsError` (a ValueError naming the file, the field and what was
    expected) for any file that does not follow the format, and OSError when the file
    cannot be read. The header is checked whole before any tensor is read, so nothing
    larger than the file is ever allocated.
    """
    if mmap:
        with SafetensorsFile(path) as file:
            tensors = {name: file.get(name) for name in file.names()}
            metadata = file.metadata
        return (tensors, metadata) if with_metadata else tensors
    with open(path, "rb") as f:
        start, entries, metadata = _read_header(f, path)
        tensors = {}
        for name, code, dtype, shape, begin, end in entries:      # in file order
            f.seek(start + begin)
            data = f.read(end - begin)
            if len(data) != end - begin:     # the file shrank while we read it
                raise SafetensorsError(f"{path}: tensor {name!r}: expected {end - begin} bytes "
                                       f"at offset {begin}, the file ends first: truncated")
            array = np.frombuffer(data, dtype=dtype).reshape(shape)
            _check_bool(array, path, name)
            if code == "BF16":
                tensors[name] = bfloat16_to_float32(array)
            else:
                tensors[name] = array.astype(dtype.newbyteorder("="), copy=True)
    return (tensors, metadata) if with_metadata else tensors


class SafetensorsFile:
    """A safetensors file opened for reading tensor by tensor, through a memory map.

    The header is checked whole on opening (as `load_file` checks it); no tensor is read
    until asked for.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.safetensors")
    >>> save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, path, dtype="BF16")
    >>> with SafetensorsFile(path) as f:
    ...     out = np.zeros((3, 2))                 # float64, and transposed
    ...     f.read_into("w", out.T)
    ...     f.names(), f.shape("w"), f.dtype("w")
    (['w'], (2, 3), 'BF16')
    >>> out.T.tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self._start, entries, self.metadata = _read_header(f, path)
            size = os.fstat(f.fileno()).st_size
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        self._entries = {e[0]: e[1:] for e in entries}       # name -> (code, dtype, shape, begin, end)
        self._order = [e[0] for e in entries]

    # ------------------------------------------------------------------ what it holds
    def names(self) -> list:
        """The tensors' names, in the order of their bytes in the file."""
        return list(self._order)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, name):
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor {name!r}") from None

    def shape(self, name) -> tuple:
        return self._entry(name)[2]

    def dtype(self, name) -> str:
        """The tensor's safetensors code: "F32", "BF16" ..."""
        return self._entry(name)[0]

    def nbytes(self, name) -> int:
        """How many bytes the tensor takes in the file."""
        _, _, _, begin, end = self._entry(name)
        return end - begin

    # ------------------------------------------------------------------ reading
    def _raw(self, name) -> np.ndarray:
        """The tensor's stored values as a read-only view of the map (BF16: uint16 bits)."""
        _, dtype, shape, begin, _ = self._entry(name)
        if self._map is None:
            raise ValueError(f"{self.path}: the file is closed")
        return np.frombuffer(self._map, dtype=dtype, count=math.prod(shape),
                             offset=self._start + begin).reshape(shape)

    def get(self, name) -> np.ndarray:
        """The tensor as a read-only array backed by the map (read from disk as it is
        touched; valid after `close`). BF16 tensors come decoded, as an owned float32
        array."""
        code = self._entry(name)[0]
        array = self._raw(name)
        _check_bool(array, self.path, name)
        if code == "BF16":
            out = bfloat16_to_float32(array)
            self.release(name)
            return out
        if not array.dtype.isnative:          # a big-endian machine: a converted copy
            array = array.astype(array.dtype.newbyteorder("="))
        return array

    def read_into(self, name, out: np.ndarray) -> None:
        """Copy the tensor into `out` (an array of its shape, of any dtype it converts to
        without changing kind: floats to floats, ints to ints or floats; a view such as a
        transpose or a slice of a larger array is fine), a few megabytes at a time,
        releasing each piece of the map once copied. Peak memory: one piece."""
        code, dtype, shape, _, _ = self._entry(name)
        if not isinstance(out, np.ndarray) or out.shape != shape:
            raise ValueError(f"{self.path}: tensor {name!r}: read_into needs an array of shape "
                             f"{list(shape)}, got {getattr(out, 'shape', type(out).__name__)}")
        source = self._raw(name)
        _check_bool(source, self.path, name)
        if source.ndim == 0 or source.size == 0:
            self._copy(source, out, code)
            return
        # Pieces along the first axis: the rows of a C-order tensor are contiguous bytes.
        row_bytes = max(source[0].nbytes, 1)
        step = max(1, _CHUNK_BYTES // row_bytes)
        for i in range(0, len(source), step):
            self._copy(source[i:i + step], out[i:i + step], code)
            self._release_range(source[i:i + step])

    @staticmethod
    def _copy(source: np.ndarray, out: np.ndarray, code: str) -> None:
        if code == "BF16":
            if out.dtype == np.float32:            # decoded straight into place
                bfloat16_to_float32(source, out=out)
                return
            source = bfloat16_to_float32(source)
        np.copyto(out, source, casting="same_kind")

    def release(self, name) -> None:
        """Let the operating system drop the tensor's pages from this process's memory
        (they are read again from the file if touched). A no-op where madvise is absent."""
        self._release_range(self._raw(name))

    def _release_range(self, view: np.ndarray) -> None:
        if self._map is None or not hasattr(self._map, "madvise") or view.nbytes == 0:
            return
        start = view.__array_interface__["data"][0] - _address(self._map)
        page = mmap.PAGESIZE
        begin = start - start % page
        self._map.madvise(mmap.MADV_DONTNEED, begin, start + view.nbytes - begin)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Close the map. Arrays `get` returned keep their part of it alive: the map is
        then unmapped when the last of them is gone."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:          # arrays from get() still point into it
                pass
            self._map = None

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _address(buffer) -> int:
    """The address of the first byte of a buffer (a memory map)."""
    return np.frombuffer(buffer, dtype=np.uint8, count=1).__array_interface__["data"][0]


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
    """Each entry checked: ``(name, code, dtype, shape, begin, end)`` sorted by offset.

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
        entries.append((name, code, dtype, tuple(shape), begin, end))
    entries.sort(key=lambda e: (e[4], e[5]))
    position, previous = 0, None
    for name, _, _, _, begin, end in entries:
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

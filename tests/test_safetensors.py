"""Our NumPy safetensors reader/writer: round trips and refusal of malformed files."""
import json
import struct

import numpy as np
import pytest

from numpyllm.safetensors import SafetensorsError, load_file, save_file

DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8,
          np.uint16, np.uint32, np.uint64, np.bool_]


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype(tmp_path, dtype):
    a = (np.arange(24).reshape(2, 3, 4) % 5).astype(dtype)
    save_file({"x": a, "scalar": np.array(3, dtype=dtype), "empty": np.zeros((0, 2), dtype)},
              tmp_path / "t.safetensors", metadata={"k": "v"})
    out, meta = load_file(tmp_path / "t.safetensors", with_metadata=True)
    assert meta == {"k": "v"}
    for name, ref in (("x", a), ("scalar", np.array(3, dtype=dtype)), ("empty", np.zeros((0, 2), dtype))):
        assert out[name].dtype == ref.dtype and out[name].shape == ref.shape
        np.testing.assert_array_equal(out[name], ref)
        assert out[name].flags.writeable


def test_big_endian_input_is_stored_little_endian(tmp_path):
    a = np.arange(5, dtype=">f4")
    save_file({"a": a}, tmp_path / "t.safetensors")
    np.testing.assert_array_equal(load_file(tmp_path / "t.safetensors")["a"], a)


def _write(path, header: dict, payload: bytes, header_len=None):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", header_len if header_len is not None else len(raw)) + raw + payload)


@pytest.mark.parametrize("header, payload, header_len, match", [
    ({}, b"", 10**9, "runs past the end"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, None, "truncated or corrupt"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None, "needs 12 bytes"),
    ({"a": {"dtype": "X9", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None, "unsupported dtype"),
    ({"a": {"shape": [1]}}, b"", None, "lacks"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, None, "overlap"),
])
def test_malformed_files_are_refused(tmp_path, header, payload, header_len, match):
    path = tmp_path / "bad.safetensors"
    _write(path, header, payload, header_len)
    with pytest.raises(SafetensorsError, match=match):
        load_file(path)


def test_garbage_is_refused(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"abc")
    with pytest.raises(SafetensorsError, match="too short"):
        load_file(path)
    path.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(SafetensorsError, match="not valid JSON"):
        load_file(path)

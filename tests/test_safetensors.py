"""Our NumPy safetensors reader/writer: round trips and refusal of malformed files."""
import json
import struct

import numpy as np
import pytest

from numpyllm.hub.safetensors import SafetensorsError, load_file, save_file

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


# Issue 12: every field the header holds is checked for type and range, with a message
# that names the file and the field, before anything is allocated.
F32_8 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("entry, match", [
    ({**F32_8, "data_offsets": [0.0, 8]}, "data_offsets: expected"),          # a float offset
    ({**F32_8, "data_offsets": [0, 8, 9]}, "data_offsets: expected"),
    ({**F32_8, "data_offsets": [8, 0]}, "data_offsets: expected"),
    ({**F32_8, "data_offsets": [False, 8]}, "data_offsets: expected"),
    ({**F32_8, "data_offsets": "0-8"}, "data_offsets: expected"),
    ({**F32_8, "dtype": ["F32"]}, "dtype: expected one of"),                  # unhashable
    ({**F32_8, "dtype": None}, "dtype: expected one of"),
    ({**F32_8, "shape": [2 ** 70]}, "data_offsets: expected a range"),        # names 2**70
    ({**F32_8, "shape": [2 ** 32, 2 ** 32]}, "data_offsets: expected a range"),  # int64 overflow
    ({**F32_8, "shape": [True, 2]}, "shape: expected"),                       # true is no dimension
    ({**F32_8, "shape": [2.0]}, "shape: expected"),
    ({**F32_8, "shape": [-2]}, "shape: expected"),
    ({**F32_8, "shape": [1] * 33}, "shape: expected"),
    ({**F32_8, "shape": "2"}, "shape: expected"),
    ({"dtype": "F32", "shape": [0, 2 ** 62], "data_offsets": [0, 0]}, "shape: expected dimensions"),
    ([1, 2], "expected an object"),
])
def test_bad_fields_are_refused_by_name(tmp_path, entry, match):
    path = tmp_path / "bad.safetensors"
    payload = b"\0" * 8 if isinstance(entry, list) or entry["data_offsets"] != [0, 0] else b""
    _write(path, {"a": entry}, payload)
    with pytest.raises(SafetensorsError, match=match) as info:
        load_file(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "'a'" in message and "\n" not in message


@pytest.mark.parametrize("metadata", [[], "x", 3, {"k": 1}, {"k": None}, {"k": ["v"]}])
def test_metadata_must_be_an_object_of_strings(tmp_path, metadata):
    path = tmp_path / "bad.safetensors"
    _write(path, {"__metadata__": metadata, "a": F32_8}, b"\0" * 8)
    with pytest.raises(SafetensorsError, match="__metadata__: expected a JSON object of strings"):
        load_file(path)


def test_null_metadata_is_no_metadata(tmp_path):
    path = tmp_path / "t.safetensors"
    _write(path, {"__metadata__": None, "a": F32_8}, b"\0" * 8)
    assert load_file(path, with_metadata=True)[1] == {}


@pytest.mark.parametrize("header, payload, match", [
    ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, b"\0" * 4, "leave a gap"),
    ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
      "b": {"dtype": "U8", "shape": [1], "data_offsets": [3, 4]}}, b"\0" * 4, "leave a gap"),
    ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
      "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, b"\0" * 3, "overlap"),
    ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 3, "trailing bytes"),
])
def test_tensors_must_tile_the_data(tmp_path, header, payload, match):
    """The format forbids gaps, overlaps and bytes after the last tensor."""
    path = tmp_path / "bad.safetensors"
    _write(path, header, payload)
    with pytest.raises(SafetensorsError, match=match):
        load_file(path)


def test_zero_sized_tensors_may_share_an_offset(tmp_path):
    path = tmp_path / "t.safetensors"
    _write(path, {"a": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
                  "b": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                  "c": {"dtype": "I64", "shape": [2, 0], "data_offsets": [1, 1]}}, b"\7")
    out = load_file(path)
    assert out["a"].shape == (0, 3) and out["b"].tolist() == [7] and out["c"].shape == (2, 0)


@pytest.mark.parametrize("header_len", [2 ** 60, 2 ** 64 - 1, 100 * 1024 * 1024 + 1])
def test_huge_header_length_is_refused_before_reading(tmp_path, header_len):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", header_len) + b"{}")
    with pytest.raises(SafetensorsError, match="header length"):
        load_file(path)


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": 1, "a": 2}', b"[" * 5000, b"\xff{}",
                                 b'{"a": ' + b"9" * 5000 + b"}"])
def test_header_must_be_strict_json(tmp_path, raw):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(SafetensorsError, match="header: expected a JSON object"):
        load_file(path)


def test_bool_bytes_other_than_0_and_1_are_refused(tmp_path):
    path = tmp_path / "bad.safetensors"
    _write(path, {"a": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\1\2")
    with pytest.raises(SafetensorsError, match="BOOL"):
        load_file(path)


def test_a_file_claiming_2_40_elements_allocates_nothing(tmp_path):
    import tracemalloc
    path = tmp_path / "bad.safetensors"
    _write(path, {"a": {"dtype": "F64", "shape": [2 ** 40], "data_offsets": [0, 2 ** 43]}}, b"\0" * 1000)
    tracemalloc.start()
    try:
        with pytest.raises(SafetensorsError):
            load_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000

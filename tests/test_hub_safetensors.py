"""safetensors, issue 14: bfloat16 by bit manipulation, F16/BF16 writing, and reading
through memory maps one tensor at a time (`SafetensorsFile`)."""
import doctest
import json
import struct
import tracemalloc

import numpy as np
import pytest

from numpyllm.hub import bfloat16 as bf16_module
from numpyllm.hub import safetensors as st_module
from numpyllm.hub.bfloat16 import bfloat16_to_float32, float32_to_bfloat16
from numpyllm.hub.safetensors import SafetensorsError, SafetensorsFile, load_file, save_file


def test_doctests():
    assert doctest.testmod(bf16_module).failed == 0
    assert doctest.testmod(st_module).failed == 0


# ------------------------------------------------------------------ bfloat16, by hand
# bits -> value, worked out from the layout s eeeeeeee mmmmmmm: value = (-1)^s 2^(e-127) 1.m
DECODED = [(0x0000, 0.0), (0x3F80, 1.0), (0xC020, -2.5), (0x3E80, 0.25),
           (0x4049, 3.140625),                      # 2 * (1 + 0x49 / 128)
           (0x7F7F, (2 - 2 ** -7) * 2.0 ** 127),    # the largest finite bfloat16
           (0x0080, 2.0 ** -126),                   # the smallest normal
           (0x0001, 2.0 ** -133),                   # the smallest subnormal: 2^-126 * 2^-7
           (0x7F80, np.inf), (0xFF80, -np.inf)]


def test_bfloat16_decodes_to_the_values_worked_out_by_hand():
    bits = np.array([b for b, _ in DECODED] + [0x8000, 0x7FC0], dtype=np.uint16)
    values = bfloat16_to_float32(bits)
    assert values.dtype == np.float32
    assert values[:-2].tolist() == [v for _, v in DECODED]
    assert values[-2] == 0 and np.signbit(values[-2])        # -0.0
    assert np.isnan(values[-1])


# float32 value -> nearest bfloat16 bits, ties to even (the kept bit is the mantissa's 7th)
ROUNDED = [(1.0 + 2 ** -8, 0x3F80),              # exactly half way, kept bit 0: stays
           (1.0 + 3 * 2 ** -8, 0x3F82),          # half way, kept bit 1: up to even
           (1.0 + 2 ** -8 + 2 ** -20, 0x3F81),   # just above half: up
           (1.0 + 2 ** -9, 0x3F80),              # below half: down
           (-(1.0 + 3 * 2 ** -8), 0xBF82),       # the sign does not change the rounding
           (2.0 ** -133, 0x0001), (2.0 ** -149, 0x0000),    # under half the smallest: 0
           (float(np.finfo(np.float32).max), 0x7F80),        # rounds past the largest: inf
           (np.inf, 0x7F80), (-np.inf, 0xFF80), (-0.0, 0x8000)]


def test_float32_rounds_to_nearest_even_bfloat16_as_worked_out_by_hand():
    values = np.array([v for v, _ in ROUNDED], dtype=np.float32)
    assert [hex(b) for b in float32_to_bfloat16(values)] == [hex(b) for _, b in ROUNDED]
    # a float32 just below the top's rounding point stays finite
    top = np.array([0x7F7F7FFF], np.uint32).view(np.float32)
    assert float32_to_bfloat16(top)[0] == 0x7F7F


def test_nan_stays_a_quiet_nan_with_its_sign():
    # a NaN whose mantissa is all ones would carry into the sign bit if simply rounded
    nans = np.array([0x7FFFFFFF, 0xFFFFFFFF, 0x7F800001, 0x7FC00000], np.uint32).view(np.float32)
    assert [hex(b) for b in float32_to_bfloat16(nans)] == ["0x7fc0", "0xffc0", "0x7fc0", "0x7fc0"]


def test_float64_is_rounded_to_float32_first():
    # 1 + 2^-8 + 2^-30: above the tie as a float64 (direct rounding would go up to
    # 0x3F81), exactly the tie once rounded to float32 (2^-30 is below float32's step):
    # then to even, 0x3F80. PyTorch rounds the same way (tests/oracle/test_hf_pretrained.py).
    assert float32_to_bfloat16(np.array([1.0 + 2 ** -8 + 2 ** -30]))[0] == 0x3F80


def test_every_bfloat16_survives_a_round_trip():
    bits = np.arange(2 ** 16, dtype=np.uint16)
    back = float32_to_bfloat16(bfloat16_to_float32(bits))
    nan = (bits & 0x7FFF) > 0x7F80
    np.testing.assert_array_equal(back[~nan], bits[~nan])
    np.testing.assert_array_equal(back[nan], (bits[nan] & 0x8000) | 0x7FC0)


def test_bfloat16_refuses_wrong_dtypes():
    with pytest.raises(TypeError, match="uint16"):
        bfloat16_to_float32(np.zeros(2, np.int16))
    with pytest.raises(TypeError, match="floating-point"):
        float32_to_bfloat16(np.zeros(2, np.int32))


# ------------------------------------------------------------------ writing F16 / BF16
def _header(path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


@pytest.mark.parametrize("code, itemsize", [("F16", 2), ("BF16", 2), ("F32", 4), ("F64", 8)])
def test_save_file_writes_floats_in_the_asked_format(tmp_path, code, itemsize):
    w = np.random.default_rng(0).standard_normal((3, 5))
    ids = np.arange(4, dtype=np.int64)
    save_file({"w": w, "ids": ids}, tmp_path / "t.safetensors", dtype=code)
    header = _header(tmp_path / "t.safetensors")
    assert header["w"]["dtype"] == code and header["ids"]["dtype"] == "I64"
    assert header["w"]["data_offsets"][1] - header["w"]["data_offsets"][0] == 15 * itemsize
    out = load_file(tmp_path / "t.safetensors")
    expected = {"F16": w.astype(np.float16), "F32": w.astype(np.float32), "F64": w,
                "BF16": bfloat16_to_float32(float32_to_bfloat16(w))}[code]
    assert out["w"].dtype == expected.dtype
    np.testing.assert_array_equal(out["w"], expected)
    np.testing.assert_array_equal(out["ids"], ids)


def test_uint16_arrays_stay_u16(tmp_path):
    save_file({"u": np.arange(3, dtype=np.uint16)}, tmp_path / "t.safetensors")
    assert _header(tmp_path / "t.safetensors")["u"]["dtype"] == "U16"


def test_save_file_refuses_unknown_dtypes(tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        save_file({"w": np.zeros(2)}, tmp_path / "t.safetensors", dtype="I8")


def test_bf16_is_read_exactly_as_float32(tmp_path):
    bits = np.array([b for b, _ in DECODED], dtype="<u2")
    header = json.dumps({"x": {"dtype": "BF16", "shape": [len(bits)],
                               "data_offsets": [0, bits.nbytes]}}).encode()
    (tmp_path / "t.safetensors").write_bytes(struct.pack("<Q", len(header)) + header
                                             + bits.tobytes())
    for out in (load_file(tmp_path / "t.safetensors")["x"],
                load_file(tmp_path / "t.safetensors", mmap=True)["x"]):
        assert out.dtype == np.float32 and out.tolist() == [v for _, v in DECODED]


def test_saving_needs_about_one_tensor_of_memory(tmp_path):
    """Tensors are converted and written one at a time: saving 8 MB of tensors does not
    hold 8 MB of bytes (the writer used to join every tensor's bytes first)."""
    tensors = {f"t{i}": np.ones((256, 1024), np.float32) for i in range(8)}   # 1 MB each
    tracemalloc.start()
    try:
        save_file(tensors, tmp_path / "t.safetensors")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2 ** 20, peak


# ------------------------------------------------------------------ SafetensorsFile
@pytest.fixture
def stored(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {"w": rng.standard_normal((40, 24)).astype(np.float32),
               "h": rng.standard_normal((7, 3)).astype(np.float16),
               "v": np.arange(5, dtype=np.int32), "s": np.array(2.5),
               "e": np.zeros((0, 3), np.float32), "b": np.array([True, False])}
    save_file(tensors, tmp_path / "t.safetensors", metadata={"k": "v"})
    return tmp_path / "t.safetensors", tensors


def test_the_file_lists_its_tensors_without_reading_them(stored):
    path, tensors = stored
    with SafetensorsFile(path) as f:
        assert sorted(f.names()) == sorted(tensors) and len(f) == len(tensors)
        assert "w" in f and "x" not in f
        assert f.shape("w") == (40, 24) and f.dtype("h") == "F16" and f.nbytes("w") == 40 * 24 * 4
        assert f.metadata == {"k": "v"}
        with pytest.raises(KeyError, match="no tensor 'x'"):
            f.shape("x")


def test_get_gives_read_only_views_of_the_map_valid_after_close(stored):
    path, tensors = stored
    with SafetensorsFile(path) as f:
        arrays = {name: f.get(name) for name in f.names()}
    for name, ref in tensors.items():
        assert arrays[name].dtype == ref.dtype and arrays[name].shape == ref.shape
        np.testing.assert_array_equal(arrays[name], ref)
    assert not arrays["w"].flags.writeable and not arrays["w"].flags.owndata
    mapped = load_file(path, mmap=True)
    for name, ref in tensors.items():
        np.testing.assert_array_equal(mapped[name], ref)


def test_read_into_converts_into_any_float_view(stored):
    path, tensors = stored
    with SafetensorsFile(path) as f:
        out = np.zeros((24, 40))                       # float64, filled through its transpose
        f.read_into("w", out.T)
        np.testing.assert_array_equal(out.T, tensors["w"].astype(np.float64))
        big = np.full((10, 8), -1.0, np.float32)       # a slice of a larger array
        f.read_into("h", big[1:8, 2:5])
        np.testing.assert_array_equal(big[1:8, 2:5], tensors["h"].astype(np.float32))
        assert (big[0] == -1).all() and (big[:, :2] == -1).all()
        scalar = np.zeros((), np.float32)
        f.read_into("s", scalar)
        assert scalar == 2.5
        f.read_into("e", np.zeros((0, 3)))
        ints = np.zeros(5)
        f.read_into("v", ints)                         # ints into floats: fine
        assert ints.tolist() == [0, 1, 2, 3, 4]
        with pytest.raises(ValueError, match=r"shape \[40, 24\]"):
            f.read_into("w", np.zeros((24, 40)))
        with pytest.raises(TypeError):                 # floats into ints would truncate
            f.read_into("w", np.zeros((40, 24), np.int64))


@pytest.mark.parametrize("code", ["F32", "F16", "BF16"])
def test_read_into_goes_piece_by_piece(tmp_path, monkeypatch, code):
    """Several pieces (a chunk of 3 rows here): the pieces join into the whole tensor,
    through a transposed destination too."""
    monkeypatch.setattr(st_module, "_CHUNK_BYTES", 3 * 24 * 4)
    w = np.random.default_rng(2).standard_normal((40, 24)).astype(np.float32)
    save_file({"w": w}, tmp_path / "t.safetensors", dtype=code)
    expected = load_file(tmp_path / "t.safetensors")["w"].astype(np.float64)
    with SafetensorsFile(tmp_path / "t.safetensors") as f:
        out = np.zeros((24, 40))
        f.read_into("w", out.T)
        f.release("w")
    np.testing.assert_array_equal(out.T, expected)


def test_read_into_needs_memory_for_one_piece_only(tmp_path):
    """A BF16 tensor of 8 MB decoded into a float32 array: temporaries of one piece
    (8 MB of file bytes at most, so 16 MB of float32), never the whole decoded tensor."""
    rows = 2 ** 13
    w = np.ones((rows, 1024), np.float32)                      # 32 MB as float32
    save_file({"w": w}, tmp_path / "t.safetensors", dtype="BF16")  # 16 MB on disk
    out = np.zeros_like(w)
    with SafetensorsFile(tmp_path / "t.safetensors") as f:
        tracemalloc.start()
        try:
            f.read_into("w", out)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert (out == 1).all()
    assert peak <= 2 * st_module._CHUNK_BYTES + 2 ** 20, peak


def test_a_closed_file_reads_nothing(stored):
    path, _ = stored
    f = SafetensorsFile(path)
    f.close()
    f.close()                                   # twice is fine
    with pytest.raises(ValueError, match="closed"):
        f.get("w")


def test_the_header_is_checked_on_opening(tmp_path, stored):
    path, _ = stored
    raw = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-3])
    with pytest.raises(SafetensorsError, match="truncated or corrupt"):
        SafetensorsFile(tmp_path / "cut.safetensors")
    save_file({"b": np.array([True, False])}, tmp_path / "bool.safetensors")
    raw = (tmp_path / "bool.safetensors").read_bytes()
    (tmp_path / "bool.safetensors").write_bytes(raw[:-2] + b"\x01\x02")   # 2 is no bool
    with SafetensorsFile(tmp_path / "bool.safetensors") as f:
        with pytest.raises(SafetensorsError, match="BOOL"):
            f.get("b")
        with pytest.raises(SafetensorsError, match="BOOL"):
            f.read_into("b", np.zeros(2, bool))

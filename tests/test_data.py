"""numpyllm.data: corpora as arrays and files, windows, batches, padding and masks."""
import ast
import doctest
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import data
from numpyllm.data import IGNORE_INDEX, TokenWindows
from numpyllm.tokenizers import BPETokenizer, CharTokenizer

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\n   \n  Indented line\n\tTabbed 123\n'Tis so.\n") * 4


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer(special_tokens=["<|endoftext|>"]).train(TEXT, 300)


def test_data_does_not_import_the_autograd():
    # Pure NumPy in and out: the model side wraps arrays into Tensors, not this package;
    # its modules import only each other.
    for path in Path(data.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                    for a in n.names]
        imported += [("." * n.level) + (n.module or "") for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom)]
        outside = [m for m in imported if "autograd" in m or m.startswith("..")
                   or m.startswith("numpyllm")]
        assert not outside, (path.name, outside)


# ------------------------------------------------------------------ corpus as an array
def test_token_dtype_is_the_smallest_that_fits():
    assert data.token_dtype(65) == np.uint16
    assert data.token_dtype(65536) == np.uint16
    assert data.token_dtype(65537) == np.uint32
    for bad in (0, -3, 2**33, 1.5):
        with pytest.raises(ValueError):
            data.token_dtype(bad)


def test_to_token_array_checks_the_ids():
    arr = data.to_token_array([1, 2, 3], 50257)
    assert arr.dtype == np.uint16 and arr.tolist() == [1, 2, 3]
    assert data.to_token_array([], 10).dtype == np.uint16
    with pytest.raises(ValueError, match=r"\[0, 10\), got values in \[-1, 3\]"):
        data.to_token_array([-1, 3], 10)
    with pytest.raises(ValueError, match="got values in"):
        data.to_token_array(np.array([10]), 10)
    with pytest.raises(ValueError, match="1-D"):
        data.to_token_array(np.zeros((2, 2), int), 10)
    with pytest.raises(ValueError, match="integers"):
        data.to_token_array(np.array([1.5]), 10)


def test_encode_text_uses_the_tokenizer(bpe):
    ids = data.encode_text(bpe, TEXT + "<|endoftext|>", allowed_special="all")
    assert ids.dtype == np.uint16
    assert ids.tolist() == bpe.encode(TEXT + "<|endoftext|>", allowed_special="all")


def test_encode_file_equals_encoding_the_whole_text(tmp_path, bpe):
    src = tmp_path / "corpus.txt"
    src.write_text(TEXT, encoding="utf-8")
    whole = data.encode_text(bpe, TEXT)
    seen = []
    in_memory = data.encode_file(bpe, src, block_bytes=7, progress=lambda d, t: seen.append((d, t)))
    np.testing.assert_array_equal(in_memory, whole)
    assert seen[-1] == (src.stat().st_size, src.stat().st_size)
    on_disk = data.encode_file(bpe, src, tmp_path / "corpus.npy", block_bytes=13)
    assert isinstance(on_disk, np.memmap) and not on_disk.flags.writeable
    np.testing.assert_array_equal(on_disk, whole)
    # a valid .npy file: np.load reads it without our help, and never needs pickle
    np.testing.assert_array_equal(np.load(tmp_path / "corpus.npy", allow_pickle=False), whole)


def test_encode_file_on_tiny_shakespeare_in_blocks(tmp_path, shakespeare_path):
    text = shakespeare_path.read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    ids = data.encode_file(tok, shakespeare_path, tmp_path / "s.npy", block_bytes=1 << 16)
    assert ids.dtype == np.uint16 and len(ids) == len(text)
    assert tok.decode(ids) == text


@given(st.lists(st.one_of(st.sampled_from(["\n", "\n\n", " \n", "a\nb", "x.\n/y", "\r\n",
                                           "Word", " ", "  ", "é", "😀", "12", "'s", ".\n"]),
                          st.text(max_size=4)), max_size=30).map("".join),
       st.integers(1, 12), st.sampled_from(["gpt2", "gpt4", "gpt4o"]))
def test_block_cuts_never_change_the_tokens(tmp_path_factory, text, block, pattern):
    tok = BPETokenizer(pattern=pattern)
    path = tmp_path_factory.mktemp("blocks") / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    blocks = list(data.read_text_blocks(path, block))
    assert "".join(blocks) == text
    assert sum((tok.split(b) for b in blocks), []) == tok.split(text)


def test_empty_file(tmp_path, bpe):
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert data.encode_file(bpe, path).size == 0
    assert data.encode_file(bpe, path, tmp_path / "e.npy").size == 0


def test_save_and_load_tokens(tmp_path):
    ids = np.arange(1000, dtype=np.uint16)
    data.save_tokens(tmp_path / "a.npy", ids)
    loaded = data.load_tokens(tmp_path / "a.npy")
    assert isinstance(loaded, np.memmap) and loaded.dtype == np.uint16
    np.testing.assert_array_equal(loaded, ids)
    assert not isinstance(data.load_tokens(tmp_path / "a.npy", mmap=False), np.memmap)
    # nanoGPT's headerless .bin files
    ids.tofile(tmp_path / "train.bin")
    np.testing.assert_array_equal(data.load_tokens(tmp_path / "train.bin"), ids)
    np.testing.assert_array_equal(data.load_tokens(tmp_path / "train.bin", mmap=False), ids)
    as32 = data.load_tokens(tmp_path / "train.bin", dtype=np.uint32)
    assert as32.dtype == np.uint32 and len(as32) == 500
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(ValueError, match="not a whole number"):
        data.load_tokens(tmp_path / "odd.bin")
    with pytest.raises(ValueError, match="1-D integer"):
        data.save_tokens(tmp_path / "f.npy", np.zeros(3))
    np.save(tmp_path / "f.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="1-D integer"):
        data.load_tokens(tmp_path / "f.npy")


def test_train_val_split_is_contiguous_and_copies_nothing(tmp_path):
    tokens = np.arange(100, dtype=np.uint16)
    train, val = data.train_val_split(tokens, 0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    assert np.shares_memory(train, tokens) and np.shares_memory(val, tokens)
    data.save_tokens(tmp_path / "t.npy", tokens)
    mtrain, mval = data.train_val_split(data.load_tokens(tmp_path / "t.npy"))
    assert isinstance(mtrain, np.memmap) and len(mval) == 10
    assert len(data.train_val_split(tokens, 0.0)[1]) == 0
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="val_fraction"):
            data.train_val_split(tokens, bad)


# ------------------------------------------------------------------------- windows
@given(st.integers(2, 60), st.integers(1, 10), st.integers(1, 12))
def test_windows_shift_by_one_and_step_by_stride(n, context, stride):
    tokens = np.arange(n, dtype=np.uint16) * 3
    if n < context + 1:
        with pytest.raises(ValueError, match="too few"):
            TokenWindows(tokens, context, stride)
        return
    w = TokenWindows(tokens, context, stride)
    assert len(w) == (n - context - 1) // stride + 1
    x, y = w.batch(np.arange(len(w)))
    assert x.dtype == y.dtype == np.int64 and x.shape == y.shape == (len(w), context)
    for i in range(len(w)):
        start = i * stride
        assert x[i].tolist() == tokens[start:start + context].tolist()
        assert y[i].tolist() == tokens[start + 1:start + context + 1].tolist()
    # the last window fits, one more would not
    assert (len(w) - 1) * stride + context + 1 <= n < len(w) * stride + context + 1


def test_window_indexing_and_errors():
    w = TokenWindows(np.arange(10), context_length=4)
    assert len(w) == 2 and w.stride == 4
    np.testing.assert_array_equal(w[-1][0], [4, 5, 6, 7])
    for bad in (2, -3, 1.0):
        with pytest.raises(IndexError):
            w[bad]
    with pytest.raises(IndexError):
        w.batch([0, 5])
    for kwargs in ({"context_length": 0}, {"context_length": 2, "stride": 0}):
        with pytest.raises(ValueError):
            TokenWindows(np.arange(10), **kwargs)
    with pytest.raises(ValueError, match="1-D"):
        TokenWindows(np.zeros((3, 3), int), 2)
    with pytest.raises(ValueError, match="integer"):
        TokenWindows(np.zeros(10), 2)


def test_evaluation_order_is_deterministic_and_complete():
    w = TokenWindows(np.arange(50), context_length=5, stride=3)
    batches = list(w.iter_batches(4))
    assert [len(x) for x, _ in batches] == [4, 4, 4, 3]
    firsts = np.concatenate([x[:, 0] for x, _ in batches])
    assert firsts.tolist() == [3 * i for i in range(len(w))]
    assert [len(x) for x, _ in w.iter_batches(4, drop_last=True)] == [4, 4, 4]
    again = list(w.iter_batches(4))
    assert all((a[0] == b[0]).all() for a, b in zip(batches, again))


def test_random_batches_come_from_the_generator_only():
    w = TokenWindows(np.arange(1000), context_length=8, stride=1)
    a = w.sample(16, np.random.default_rng(7))
    np.random.seed(0)                 # global state must not matter
    b = w.sample(16, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[0][:, 1:], a[1][:, :-1])
    c = w.sample(16, np.random.default_rng(8))
    assert not np.array_equal(a[0], c[0])
    epoch = np.concatenate([x[:, 0] for x, _ in
                            w.iter_batches(100, shuffle=True, rng=np.random.default_rng(1))])
    assert sorted(epoch.tolist()) == list(range(len(w)))      # each window exactly once
    with pytest.raises(ValueError, match="Generator"):
        w.sample(4, rng=None)
    with pytest.raises(ValueError, match="Generator"):
        next(w.iter_batches(4, shuffle=True))
    with pytest.raises(ValueError, match="batch_size"):
        w.sample(0, np.random.default_rng(0))


def test_windows_over_a_memmap_read_only_what_they_need(tmp_path):
    data.save_tokens(tmp_path / "t.npy", np.arange(10_000, dtype=np.uint16))
    w = TokenWindows(data.load_tokens(tmp_path / "t.npy"), context_length=64)
    x, y = w.sample(4, np.random.default_rng(0))
    assert x.dtype == np.int64 and type(x) is np.ndarray
    np.testing.assert_array_equal(y - x, 1)


# ---------------------------------------------------------- variable-length batches
def test_lm_batch_pads_inputs_and_ignores_padded_targets():
    x, y, mask = data.lm_batch([[1, 2, 3, 4], [5, 6], [7, 8, 9]], pad_id=0)
    np.testing.assert_array_equal(x, [[1, 2, 3], [5, 0, 0], [7, 8, 0]])
    np.testing.assert_array_equal(y, [[2, 3, 4], [6, -100, -100], [8, 9, -100]])
    np.testing.assert_array_equal(mask, x != 0)
    assert IGNORE_INDEX == -100 and x.dtype == y.dtype == np.int64 and mask.dtype == bool
    xl, yl, ml = data.lm_batch([[1, 2, 3], [4, 5]], pad_id=9, side="left", ignore_index=-1)
    np.testing.assert_array_equal(xl, [[1, 2], [9, 4]])
    np.testing.assert_array_equal(yl, [[2, 3], [-1, 5]])
    np.testing.assert_array_equal(ml, [[True, True], [False, True]])


@given(st.lists(st.lists(st.integers(1, 50), min_size=2, max_size=12), min_size=1, max_size=6),
       st.sampled_from(["left", "right"]))
def test_lm_batch_properties(seqs, side):
    batch = data.lm_batch(seqs, pad_id=0, side=side)
    assert batch.inputs.shape == batch.targets.shape == batch.mask.shape
    assert batch.mask.sum() == sum(len(s) - 1 for s in seqs)
    assert (batch.targets[~batch.mask] == IGNORE_INDEX).all()
    assert (batch.inputs[~batch.mask] == 0).all()
    for row, s in enumerate(seqs):
        assert batch.inputs[row][batch.mask[row]].tolist() == s[:-1]
        assert batch.targets[row][batch.mask[row]].tolist() == s[1:]


def test_lm_batch_errors_and_truncation():
    x, y, _ = data.lm_batch([list(range(10))], pad_id=0, max_length=4)
    assert x.tolist() == [[0, 1, 2, 3]] and y.tolist() == [[1, 2, 3, 4]]
    with pytest.raises(ValueError, match="sequence 1 has 1 token"):
        data.lm_batch([[1, 2], [3]], pad_id=0)
    with pytest.raises(ValueError, match="empty list"):
        data.lm_batch([], pad_id=0)
    with pytest.raises(ValueError, match="side"):
        data.pad_sequences([[1]], 0, side="middle")
    with pytest.raises(ValueError, match="does not fit"):
        data.pad_sequences([[1, 2, 3]], 0, length=2)
    with pytest.raises(ValueError, match="max_length"):
        data.lm_batch([[1, 2]], pad_id=0, max_length=0)


def test_iter_lm_batches():
    seqs = [[i, i + 1, i + 2][: 2 + i % 2] for i in range(7)]
    batches = list(data.iter_lm_batches(seqs, 3, pad_id=0))
    assert [b.inputs.shape[0] for b in batches] == [3, 3, 1]
    assert batches[0].inputs[:, 0].tolist() == [0, 1, 2]
    shuffled = list(data.iter_lm_batches(seqs, 3, pad_id=0, shuffle=True,
                                         rng=np.random.default_rng(0), drop_last=True))
    assert len(shuffled) == 2
    with pytest.raises(ValueError, match="Generator"):
        list(data.iter_lm_batches(seqs, 3, pad_id=0, shuffle=True))


@given(st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=1, max_size=4),
       st.booleans())
def test_attention_mask(rows, causal):
    mask = np.array(rows)
    allowed = data.attention_mask(mask, causal=causal)
    B, L = mask.shape
    assert allowed.shape == (B, 1, L, L) and allowed.dtype == bool
    assert allowed.any(axis=-1).all()             # no query is left without a key
    for b in range(B):
        for i in range(L):
            for j in range(L):
                expected = mask[b, j] and (j <= i or not causal)
                if not any(mask[b, k] and (k <= i or not causal) for k in range(L)):
                    expected = i == j             # an empty row keeps its diagonal
                assert allowed[b, 0, i, j] == expected
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        data.attention_mask(np.ones(3, bool))


def test_docstring_examples():
    assert doctest.testmod(data).failed == 0

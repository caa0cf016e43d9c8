"""Fuzzing every file loader (issue 12).

Each test starts from a valid file made on the spot, damages it (truncation at a random
byte, flipped, replaced, inserted or deleted bytes; JSON fields deleted, added, or
changed in type: int, float, str, list, dict, bool, null, huge and negative numbers,
unicode, very long strings, path tricks; lines of text formats replaced, duplicated,
swapped; random headers and hostile regexes), and requires that the loader

- returns a valid object or raises exactly its documented error class, nothing else
  (`SafetensorsError`, `CheckpointError`, `VocabularyFileError`);
- never allocates much more than the file holds: the peak of `tracemalloc` (which sees
  NumPy's buffers too) stays under a constant times the file's size plus a fixed slack,
  so a header claiming 2**40 elements or a vocabulary of 10**11 ids fails loudly.

The "ci" profile runs 25 derandomized examples per test; hunt with more:
    HYPOTHESIS_PROFILE=dev python -m pytest tests/test_fuzz_loaders.py
"""
import copy
import json
import os
import shutil
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from numpyllm.training.checkpoint import CheckpointError, load_model
from numpyllm.nn.gpt import GPT, GPTConfig
from numpyllm.hub.safetensors import SafetensorsError, load_file, save_file
from numpyllm.tokenizers import (BPETokenizer, CharTokenizer, VocabularyFileError, gpt2,
                                 load_tokenizer)
from numpyllm.tokenizers.pattern_safety import check_pattern, is_known

SLACK = 8 * 2 ** 20          # imports of lazily loaded modules, regex caches, small objects
PER_BYTE = 64                # a byte of JSON can become dozens of bytes of Python objects
CORPUS = ("the quick brown fox jumps over the lazy dog. It's 2024, they'll say 12345!\n"
          "naïve café 日本 😀 ") * 4


# ------------------------------------------------------------------ bounded calls
def bounded(load, size: int, errors, where):
    """`load()` under tracemalloc: returns its result, or None when it raised one of
    `errors` with a one-line message naming `where` (the file or directory); any other
    exception propagates and fails the test. Asserts the peak."""
    tracemalloc.start()
    try:
        try:
            result = load()
        except errors as exc:
            message = str(exc)
            assert "\n" not in message and str(where) in message, message
            result = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= PER_BYTE * size + SLACK, f"peak {peak} bytes for a file of {size} bytes"
    return result


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink() and p.is_file())


# ------------------------------------------------------------------ hostile values
HOSTILE_STRINGS = ["", "..", "../model.safetensors", "/etc/passwd", "a/b", "model.safetensors",
                   "tokenizer.json", "tokenizer.bpe", "manifest.json", "latest", "step-000001",
                   "step-000003", "\u00b2", "\u0663", "F32", "U8", "BOOL", "PCG64", "MT19937",
                   "GPT", "AdamW", "SGD", "CharTokenizer", "BPETokenizer", "x" * 100_000, "\x00",
                   "😀", "\ud800", "<|endoftext|>", "[PAD]", "numpyllm-char", "numpyllm-checkpoint",
                   "(a|a)*b", "1e999", "NaN", "9" * 5000, "0" * 30, "state.0.exp_avg",
                   "state." + "9" * 5000 + ".exp_avg", "h.0.attn.c_attn.weight", "wte.weight"]
HOSTILE = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, 1, -1, 2, 3, 7, 255, 256, 257, 2 ** 31, 2 ** 32, 2 ** 53 + 1, 2 ** 63,
                     2 ** 64, 2 ** 70, 2 ** 128, 99999999999, 10 ** 30, -2 ** 63]),
    st.integers(),
    st.sampled_from([0.0, -0.0, 0.5, 1.5, 3.0, 1e308, -1e-308, 2.0 ** 70]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(HOSTILE_STRINGS), st.text(max_size=8),
    st.lists(st.integers(-3, 2 ** 64), max_size=4), st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(-3, 3), max_size=3),
)


def _flips(value) -> list:
    """The same value in other JSON types, and nearby values of its own type."""
    out = [None, True, False, str(value)[:100], [value], {"k": value}]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        out += [float(value), -value, value + 1, value * 2 ** 40, 2 ** 64 - 1]
        if isinstance(value, float) and value.is_integer():
            out.append(int(value))
    if isinstance(value, str):
        out += [value[::-1], "../" + value, "/" + value, value + "\u00b2", value * 50]
    if isinstance(value, list):
        out += [value * 3, value[:-1], value[::-1], len(value)]
    if isinstance(value, dict):
        out += [list(value), list(value.values()), {**value, "extra": 1}]
    return out


def _places(doc) -> list:
    """(container, key) for every value inside `doc`, found without recursion."""
    places, stack = [], [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            places.append((node, key))
            if isinstance(child, (dict, list)) and child:
                stack.append(child)
    return places


@st.composite
def mutated_json(draw, doc, max_ops: int = 3):
    """`doc` with 1..max_ops mutations: a value replaced (by a hostile value or the same
    one in another type), a key or item deleted, a key or item added; rarely the whole
    document replaced."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_ops))):
        places = _places(doc) if isinstance(doc, (dict, list)) else []
        if not places or draw(st.integers(0, 30)) == 0:
            doc = draw(HOSTILE)
            continue
        node, key = draw(st.sampled_from(places))
        op = draw(st.sampled_from(["replace", "flip", "delete", "add"]))
        if op == "replace":
            node[key] = draw(HOSTILE)
        elif op == "flip":
            node[key] = draw(st.sampled_from(_flips(node[key])))
        elif op == "delete":
            del node[key]
        elif isinstance(node, dict):
            if draw(st.booleans()) and node:        # an existing key, to keep its value
                value = node[draw(st.sampled_from(list(node)))]
            else:
                value = draw(HOSTILE)
            node[draw(st.sampled_from(HOSTILE_STRINGS) | st.text(max_size=6))] = value
        else:
            node.insert(draw(st.integers(0, len(node))), draw(HOSTILE | st.sampled_from(node)))
    return doc


SPECIAL_BYTES = [0x00, 0xff, 0x7f, 0x80, 0xc3, ord('"'), ord("{"), ord("}"), ord("["),
                 ord("9"), ord("-"), ord("\n"), ord(" "), ord("\\")]


@st.composite
def mutated_bytes(draw, data: bytes, max_ops: int = 4):
    """`data` truncated, with bytes flipped, set, inserted, deleted or duplicated."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["truncate", "flip", "set", "insert", "delete", "duplicate"]))
        i = draw(st.integers(0, len(data)))
        if op == "truncate":
            del data[i:]
        elif op == "flip" and i < len(data):
            data[i] ^= draw(st.integers(1, 255))
        elif op == "set" and i < len(data):
            data[i] = draw(st.sampled_from(SPECIAL_BYTES) | st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8)
                             | st.sampled_from([b"\xff", b"\xc3", b"\n", b"9" * 30, b"[" * 200]))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 16))]
        elif op == "duplicate":
            data[i:i] = data[i:i + draw(st.integers(1, 32))]
    return bytes(data)


HOSTILE_TOKENS = ["\u00b2", "\u0663", "99999999999", "-1", "+3", "1e5", "3_0", "", "Ġ", "ĠĠ",
                  "<|endoftext|>", '"x"', "[" * 100, "9" * 5000, '"\\ud800"', "0", "256",
                  "\u4e00", "YWI=", "!!", "\t", "a b"]


@st.composite
def mutated_lines(draw, text: str, extra_lines=(), max_ops: int = 3):
    """`text` with lines deleted, duplicated, swapped or inserted, or one space-separated
    field of a line replaced by a hostile token."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["field", "field", "delete", "duplicate", "swap", "insert"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if not lines:
            lines = [""]
        if op == "field":
            fields = lines[i].split(" ")
            j = draw(st.integers(0, len(fields) - 1))
            fields[j] = draw(st.sampled_from(HOSTILE_TOKENS) | st.text(max_size=4))
            lines[i] = " ".join(fields)
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines.insert(i, draw(st.sampled_from(list(extra_lines) or [""]) | st.text(max_size=12)))
    return "\n".join(lines)


# ------------------------------------------------------------------ safetensors
def _valid_safetensors() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.safetensors"
        save_file({"w": np.arange(12, dtype=np.float32).reshape(3, 4),
                   "b": np.array([True, False]), "i": np.arange(3, dtype=np.int64),
                   "h": np.ones(5, np.float16), "s": np.array(7, np.uint8),
                   "e": np.zeros((0, 4), np.float64)}, path, metadata={"format": "pt"})
        return path.read_bytes()


SAFETENSORS = _valid_safetensors()
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=6),
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                           max_leaves=12)


@st.composite
def damaged_safetensors(draw):
    n = struct.unpack("<Q", SAFETENSORS[:8])[0]
    header, payload = json.loads(SAFETENSORS[8:8 + n]), SAFETENSORS[8 + n:]
    kind = draw(st.sampled_from(["bytes", "header", "header", "length", "random"]))
    if kind == "bytes":
        return draw(mutated_bytes(SAFETENSORS))
    if kind == "length":
        length = draw(st.sampled_from([0, 1, n - 1, n + 1, 2 ** 60, 2 ** 64 - 1, 100 * 2 ** 20 + 1])
                      | st.integers(0, 2 ** 64 - 1))
        return struct.pack("<Q", length) + SAFETENSORS[8:]
    if kind == "header":
        header = draw(mutated_json(header))
    else:
        header = draw(JSON_VALUES)
        payload = draw(st.binary(max_size=64))
    raw = json.dumps(header).encode()
    if draw(st.booleans()):
        payload = draw(mutated_bytes(payload)) if payload else payload
    return struct.pack("<Q", len(raw)) + raw + payload


HUGE_HEADER = b'{"a":{"dtype":"F64","shape":[1099511627776],"data_offsets":[0,8796093022208]}}'


@given(data=damaged_safetensors())
@example(data=struct.pack("<Q", len(HUGE_HEADER)) + HUGE_HEADER + b"\0" * 1000)   # 2**40 elements
@example(data=struct.pack("<Q", 2 ** 60) + b"{}")
def test_fuzz_safetensors(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.safetensors"
        path.write_bytes(data)
        out = bounded(lambda: load_file(path, with_metadata=True), len(data), SafetensorsError,
                      path)
    if out is not None:
        tensors, metadata = out
        assert all(isinstance(v, str) for v in metadata.values())
        assert sum(a.nbytes for a in tensors.values()) <= len(data)
        assert all(isinstance(a, np.ndarray) and a.flags.owndata for a in tensors.values())


# ------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def checkpoint_template(tmp_path_factory):
    """A trainer's checkpoint (model, AdamW, BPE tokenizer, RNG states), made once."""
    from numpyllm.training import TrainConfig, Trainer
    tok = BPETokenizer(special_tokens=["<|endoftext|>"]).train(CORPUS, 270)
    ids = np.array(tok.encode(CORPUS))
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8,
                          dropout=0.1), rng=np.random.default_rng(0))
    trainer = Trainer(model, ids, ids, TrainConfig(batch_size=2, max_iters=2, warmup_iters=1,
                                                   lr_decay_iters=2))
    trainer.train_step()
    root = tmp_path_factory.mktemp("ckpt") / "ckpt"
    trainer.save(root, tokenizer=tok)
    load_model(root)                                   # the template itself is valid
    return root


def _json_file(path: Path):
    """The JSON in `path`, or None when an earlier damage left none there."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _resign(step_dir: Path, name: str) -> None:
    """Make the manifest's size and SHA-256 of `name` match the file again, so the damage
    reaches the file's own loader instead of stopping at the checksum."""
    from numpyllm.training.checkpoint import _sha256
    manifest = _json_file(step_dir / "manifest.json")
    if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict):
        manifest["files"][name] = {"bytes": (step_dir / name).stat().st_size,
                                   "sha256": _sha256(step_dir / name)}
        (step_dir / "manifest.json").write_text(json.dumps(manifest))


FILES = ["manifest.json", "model.safetensors", "optimizer.safetensors", "tokenizer.bpe"]


def _damage_checkpoint(draw, root: Path, outside: Path) -> None:
    """One damage to the checkpoint under `root`; `outside` is a directory beside it.
    (A second damage may find the first one's work: each checks what it needs.)"""
    step_dir = root / "step-000001"
    kind = draw(st.sampled_from(["manifest", "manifest", "file", "file-resigned",
                                 "header-resigned", "latest", "filesystem"]))
    name = draw(st.sampled_from(FILES))
    path = step_dir / name
    regular = path.is_file() and not path.is_symlink() and not step_dir.is_symlink()
    if kind == "manifest":
        doc = _json_file(step_dir / "manifest.json")
        if doc is not None and (step_dir / "manifest.json").is_file():
            (step_dir / "manifest.json").write_text(json.dumps(draw(mutated_json(doc, max_ops=4))))
    elif kind in ("file", "file-resigned") and regular:
        path.write_bytes(draw(mutated_bytes(path.read_bytes())))
        if kind == "file-resigned" and name != "manifest.json":
            _resign(step_dir, name)
    elif kind == "header-resigned" and regular and name.endswith(".safetensors"):
        if _mutate_header(draw, path):
            _resign(step_dir, name)
    elif kind == "latest" and not (root / "latest").is_symlink():
        content = draw(st.sampled_from([s.encode("utf-8", "surrogatepass") for s in HOSTILE_STRINGS])
                       | st.binary(max_size=80) | mutated_bytes(b"step-000001\n"))
        (root / "latest").write_bytes(content)
    elif kind == "filesystem":
        trick = draw(st.sampled_from(["symlink-file", "symlink-dir", "delete", "dir-for-file",
                                      "aside", "symlink-latest"]))
        if trick == "symlink-file" and regular:     # same bytes, but outside the checkpoint
            shutil.copy(path, outside / name)
            path.unlink()
            path.symlink_to(outside / name)
        elif trick == "symlink-dir" and step_dir.is_dir() and not step_dir.is_symlink():
            shutil.copytree(step_dir, outside / "step", symlinks=True)
            shutil.rmtree(step_dir)
            step_dir.symlink_to(outside / "step")
        elif trick == "delete" and regular:
            path.unlink()
        elif trick == "dir-for-file" and regular:
            path.unlink()
            path.mkdir()
        elif trick == "aside" and step_dir.is_dir() and not step_dir.is_symlink():
            # what a re-save killed between its two renames leaves
            os.replace(step_dir, root / f".old-step-000001-{draw(st.integers(1, 2 ** 22))}")
        elif trick == "symlink-latest" and not (root / "latest").is_symlink():
            (outside / "pointer").write_text("step-000001\n")
            (root / "latest").unlink()
            (root / "latest").symlink_to(outside / "pointer")


def _mutate_header(draw, path: Path) -> bool:
    """Mutate the JSON header of the safetensors file at `path`, keeping its data bytes;
    False when the header is not JSON (an earlier damage)."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0] if len(raw) >= 8 else 0
    header = _json_file_bytes(raw[8:8 + n])
    if header is None:
        return False
    header = json.dumps(draw(mutated_json(header))).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + raw[8 + n:])
    return True


def _json_file_bytes(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None


@given(data=st.data())
def test_fuzz_checkpoint(checkpoint_template, data):
    with tempfile.TemporaryDirectory() as d:
        root, outside = Path(d) / "ckpt", Path(d) / "outside"
        shutil.copytree(checkpoint_template, root, symlinks=True)
        outside.mkdir()
        for _ in range(data.draw(st.integers(1, 2))):
            _damage_checkpoint(data.draw, root, outside)
        size = tree_size(root)
        out = bounded(lambda: load_model(root), size, CheckpointError, root)
        if out is not None:
            model, tokenizer, ckpt = out
            assert ckpt.path.parent == root and not ckpt.path.is_symlink()
            n_bytes = sum(p.data.nbytes for p in model.parameters())
            assert n_bytes <= 2 * sum(a.nbytes for a in ckpt.weights.values())
            if tokenizer is not None:
                _check_tokenizer(tokenizer, size)


@given(data=st.data())
def test_fuzz_resume_trainer_state(checkpoint_template, data):
    """Trainer.resume reads the RNG states and step through checkpoint.py: a damaged one
    is a CheckpointError, never the TypeError NumPy's setters raise."""
    from numpyllm.training import Trainer
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "ckpt"
        shutil.copytree(checkpoint_template, root)
        manifest_path = root / "step-000001" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        trainer = manifest["trainer"]
        key = data.draw(st.sampled_from(["data_rng", "model_rngs", "step"]))
        trainer[key] = data.draw(mutated_json(trainer[key]) if key != "step" else HOSTILE)
        manifest_path.write_text(json.dumps(manifest))
        ids = np.arange(100) % 7
        try:
            resumed, _ = Trainer.resume(root, ids, ids)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(root) in str(exc)
            return
        resumed.train_step()            # the generators it restored work


@pytest.fixture(scope="module")
def other_templates(tmp_path_factory):
    """Checkpoints of the other model kinds, each saved by a trainer with its objective:
    an encoder-decoder (span corruption), a classifier over an encoder, a GPT with
    LoRA adapters (its manifest records them and which parameters train), and LoRA over a
    Q4_0-quantized GPT (its manifest also records the quantized layers)."""
    from numpyllm.data.examples import Labelled
    from numpyllm.nn import (ClassifierConfig, SequenceClassifier, Transformer,
                             TransformerConfig, TransformerEncoderConfig)
    from numpyllm.training import Classification, SpanCorruption, TrainConfig, Trainer
    ids = np.arange(300) % 11
    cfg = TrainConfig(batch_size=2, max_iters=2, warmup_iters=1, lr_decay_iters=2)
    t5 = Transformer(TransformerConfig(16, 16, d_model=8, n_head=2, n_encoder_layers=1,
                                       n_decoder_layers=1, d_ff=8, max_len=16,
                                       share_embeddings=True, pad_id=15), rng=0)
    clf = SequenceClassifier(ClassifierConfig("TransformerEncoderModel", TransformerEncoderConfig(
        vocab_size=16, d_model=8, n_head=2, n_layers=1, d_ff=8, max_len=8).to_dict(),
        n_classes=2), rng=0)
    labelled = Labelled([ids[i:i + 5] for i in range(20)], [i % 2 for i in range(20)], 2)
    from numpyllm.nn import apply_lora
    from numpyllm.training import CausalLM
    lora = apply_lora(GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=8),
                          rng=0), r=2, alpha=4, dropout=0.1, targets=["attn.c_attn"], rng=0)
    from numpyllm.quantize import quantize            # LoRA over a Q4_0 base (QLoRA)
    qlora = apply_lora(quantize(GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2,
                                              n_embd=32), rng=0), "q4_0"),
                       r=2, alpha=4, targets=["attn.c_attn"], rng=0)
    out = {}
    for name, model, objective, data in [
            ("t5", t5, SpanCorruption(8, (11, 12), eos_id=13, bos_id=14), ids),
            ("classifier", clf, Classification(2, pad_id=15), labelled),
            ("lora", lora, CausalLM(8), ids), ("qlora", qlora, CausalLM(8), ids)]:
        trainer = Trainer(model, data, data, cfg, objective=objective)
        trainer.train_step()
        root = tmp_path_factory.mktemp(name) / "ckpt"
        trainer.save(root)
        load_model(root)
        out[name] = (root, data)
    return out


@pytest.mark.parametrize("kind", ["t5", "classifier", "lora", "qlora"])
@given(data=st.data())
def test_fuzz_checkpoint_of_other_models(other_templates, kind, data):
    """The same damage on an encoder-decoder's and a classifier's checkpoints: loading
    gives a working model or a one-line CheckpointError, and resuming (the objective record
    included) likewise."""
    from numpyllm.training import Trainer
    template, examples = other_templates[kind]
    with tempfile.TemporaryDirectory() as d:
        root, outside = Path(d) / "ckpt", Path(d) / "outside"
        shutil.copytree(template, root, symlinks=True)
        outside.mkdir()
        if data.draw(st.booleans(), label="damage the objective record"):
            manifest_path = root / "step-000001" / "manifest.json"
            manifest = json.loads(manifest_path.read_text())
            # (the LoRA checkpoint: its adapter record, or the names of what trains; the
            # QLoRA one: its model record, quantization included, or its quantization)
            record = manifest["model"] if kind in ("lora", "qlora") and data.draw(st.booleans()) \
                else manifest["model"]["lora"][0] if kind == "lora" \
                else manifest["model"]["quantization"] if kind == "qlora" \
                else manifest["trainer"]["objective"]
            key = data.draw(st.sampled_from(sorted(record)))
            record[key] = data.draw(mutated_json(record[key]))
            manifest_path.write_text(json.dumps(manifest))
        else:
            _damage_checkpoint(data.draw, root, outside)
        size = tree_size(root)
        out = bounded(lambda: load_model(root), size, CheckpointError, root)
        if out is None:
            return
        model, _, ckpt = out
        assert sum(p.data.nbytes for p in model.parameters()) <= \
            2 * sum(a.nbytes for a in ckpt.weights.values())
        try:
            resumed, _ = Trainer.resume(root, examples, examples)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            return
        resumed.train_step()


# ------------------------------------------------------------------ tokenizer files
TOKENIZER_ERRORS = VocabularyFileError


def _check_tokenizer(tok, size: int) -> None:
    assert tok.vocab_size <= size + 1024
    if isinstance(tok, BPETokenizer):
        check_pattern(tok.pattern)          # known, or proven tame
        text = "a" * 40 + "!" + " " * 40 + "x'll 2024 😀"
        back = tok.decode(tok.encode(text, disallowed_special=()))
        # (a custom pattern need not match every character: `\w+|\s+` drops the rest)
        assert back == text or not is_known(tok.pattern)


def _load_all(path: Path, loaders, size: int):
    for load in loaders:
        tok = bounded(lambda: load(path), size, TOKENIZER_ERRORS, path)
        if tok is not None:
            _check_tokenizer(tok, size)


@given(data=st.data())
def test_fuzz_char_tokenizer_file(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tok.json"
        CharTokenizer.from_text("hello wörld 😀\n", special_tokens=["[PAD]"],
                                unk_token="[UNK]").save(path)
        if data.draw(st.booleans()):
            doc = data.draw(mutated_json(json.loads(path.read_text(encoding="utf-8"))))
            path.write_text(json.dumps(doc, ensure_ascii=data.draw(st.booleans())),
                            encoding="utf-8", errors="surrogatepass")
        else:
            path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))
        _load_all(path, (CharTokenizer.load, load_tokenizer), path.stat().st_size)


HOSTILE_PATTERN_LINES = ["pattern-regex " + json.dumps(p) for p in [
    "(a|a)*b", r"(\s+)+$", r"(\w+\s?)*$", "(unclosed", "(?R)", r"(a)\1", "x" * 2000,
    "(?:foo){e<=1}", "[", r"\s*\s*\s*x", "(" * 60 + ")" * 60, r"\w+|\s+", r"\p{L}+|\p{N}+|.",
    r"(?P<x>a)(?P=x)", r"a{99999999999}", "", gpt2.CL100K_PATTERN]] + [
    "pattern-regex " + "[" * 3000, "pattern gpt4o", "pattern nonsense", "pattern", "pattern-regex 3"]


@pytest.fixture(scope="module")
def bpe_text():
    tok = BPETokenizer(special_tokens=["<|endoftext|>", "[PAD]"]).train(CORPUS, 300)
    with tempfile.TemporaryDirectory() as d:
        tok.save(Path(d) / "t.bpe")
        return (Path(d) / "t.bpe").read_text(encoding="utf-8")


@given(data=st.data())
def test_fuzz_bpe_file(bpe_text, data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.bpe"
        kind = data.draw(st.sampled_from(["lines", "lines", "pattern", "bytes"]))
        if kind == "bytes":
            path.write_bytes(data.draw(mutated_bytes(bpe_text.encode("utf-8"))))
        else:
            lines = bpe_text.split("\n")
            if kind == "pattern":
                pattern_at = next(i for i, line in enumerate(lines) if line.startswith("pattern"))
                lines[pattern_at] = data.draw(st.sampled_from(HOSTILE_PATTERN_LINES))
            text = data.draw(mutated_lines("\n".join(lines), extra_lines=HOSTILE_PATTERN_LINES
                                           + ["tokens 99999999999", "specials 2", "tokens ²"]))
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _load_all(path, (BPETokenizer.load, load_tokenizer), path.stat().st_size)


@pytest.fixture(scope="module")
def small_gpt2_files():
    """GPT-2's two files for a small trained vocabulary, as GPT-2 writes them."""
    tok = BPETokenizer().train(CORPUS, 290)
    table = gpt2.byte_to_unicode()
    order = sorted(range(256), key=lambda b: (table[b] != chr(b), ord(table[b])))
    encoder = {table[b]: i for i, b in enumerate(order)}
    merges = tok.merges
    for i, (left, right) in enumerate(merges):
        encoder[gpt2.token_to_text(left + right)] = 256 + i
    encoder["<|endoftext|>"] = len(encoder)
    vocab = "#version: 0.2\n" + "".join(f"{gpt2.token_to_text(a)} {gpt2.token_to_text(b)}\n"
                                        for a, b in merges)
    return encoder, vocab


@given(data=st.data())
def test_fuzz_gpt2_files(small_gpt2_files, data):
    encoder, vocab = small_gpt2_files
    with tempfile.TemporaryDirectory() as d:
        enc, bpe = Path(d) / "encoder.json", Path(d) / "vocab.bpe"
        enc.write_text(json.dumps(encoder), encoding="utf-8")
        bpe.write_text(vocab, encoding="utf-8")
        kind = data.draw(st.sampled_from(["encoder-json", "encoder-bytes", "vocab-lines",
                                          "vocab-bytes"]))
        if kind == "encoder-json":
            enc.write_text(json.dumps(data.draw(mutated_json(encoder))), encoding="utf-8")
        elif kind == "encoder-bytes":
            enc.write_bytes(data.draw(mutated_bytes(enc.read_bytes())))
        elif kind == "vocab-lines":
            bpe.write_text(data.draw(mutated_lines(vocab)), encoding="utf-8",
                           errors="surrogatepass")
        else:
            bpe.write_bytes(data.draw(mutated_bytes(bpe.read_bytes())))
        size = enc.stat().st_size + bpe.stat().st_size
        _load_all(Path(d), (load_tokenizer, lambda p: BPETokenizer.from_gpt2(enc, bpe)), size)


@pytest.fixture(scope="module")
def tiktoken_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiktoken") / "t.tiktoken"
    BPETokenizer().train(CORPUS, 290).save_tiktoken(path)
    return path.read_bytes()


@given(data=st.data())
def test_fuzz_tiktoken_file(tiktoken_bytes, data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.tiktoken"
        path.write_bytes(tiktoken_bytes)
        if data.draw(st.booleans()):
            text = data.draw(mutated_lines(path.read_text(encoding="ascii"),
                                           extra_lines=["YWI= 99999999999", "YWI= ²", "!!! 3"]))
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        else:
            path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))
        _load_all(path, (BPETokenizer.from_tiktoken, load_tokenizer), path.stat().st_size)


# ------------------------------------------------------------------ Hugging Face directories
@pytest.fixture(scope="module")
def hf_templates(tmp_path_factory):
    """Hugging Face directories numpyllm wrote: GPT-2 in one file, a Llama in shards, a
    Qwen2 with a window stored in bfloat16."""
    from numpyllm.hub import save_pretrained
    from numpyllm.nn import Llama, LlamaConfig
    small = dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8)
    models = {
        "gpt2": (GPT(GPTConfig(**small), rng=0), {}),
        "llama-sharded": (Llama(LlamaConfig(**small, n_kv_head=1, intermediate_size=12,
                                            tie_weights=False), rng=0),
                          {"max_shard_size": 700}),
        "qwen2-bf16": (Llama(LlamaConfig(**small, n_kv_head=2, intermediate_size=12,
                                         attention_bias=True,
                                         sliding_window=3), rng=0), {"dtype": "bfloat16"}),
    }
    root = tmp_path_factory.mktemp("hf")
    for name, (model, options) in models.items():
        save_pretrained(model, None, root / name, **options)
    return root


def _damage_hf_directory(draw, root: Path) -> None:
    files = sorted(p.name for p in root.iterdir())
    name = draw(st.sampled_from(files))
    path = root / name
    kind = draw(st.sampled_from(["json", "json", "bytes", "header", "delete", "dir-for-file",
                                 "pickle"]))
    if kind == "json" and name.endswith(".json") and path.is_file():
        doc = _json_file(path)
        if doc is not None:
            path.write_text(json.dumps(draw(mutated_json(doc, max_ops=4))))
    elif kind == "bytes" and path.is_file():
        path.write_bytes(draw(mutated_bytes(path.read_bytes())))
    elif kind == "header" and name.endswith(".safetensors") and path.is_file():
        _mutate_header(draw, path)
    elif kind == "delete" and path.is_file():
        path.unlink()
    elif kind == "dir-for-file" and path.is_file():
        path.unlink()
        path.mkdir()
    elif kind == "pickle":
        (root / "pytorch_model.bin").write_bytes(b"\x80\x04cos\nsystem\n(S'touch x'\ntR.")


@pytest.mark.parametrize("kind", ["gpt2", "llama-sharded", "qwen2-bf16"])
@given(data=st.data())
def test_fuzz_hugging_face_directory(hf_templates, kind, data):
    """load_pretrained of a damaged directory: a model whose weights are all finite
    numbers read from the files, or one PretrainedError naming the directory; peak
    memory bounded by the files' size (a config claiming 2**40 layers or positions
    allocates nothing)."""
    from numpyllm.hub import PretrainedError, load_pretrained
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / kind
        shutil.copytree(hf_templates / kind, root)
        for _ in range(data.draw(st.integers(1, 2))):
            _damage_hf_directory(data.draw, root)
        size = tree_size(root)
        # float32 stored as float64 is twice the bytes, bfloat16 four times
        out = bounded(lambda: load_pretrained(root, "float64"), 4 * size, PretrainedError,
                      root)
        if out is not None:
            model, tokenizer = out
            assert tokenizer is None
            assert sum(p.data.nbytes for p in model.parameters()) <= 4 * size

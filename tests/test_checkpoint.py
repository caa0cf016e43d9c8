"""Checkpoints: round trip, refusal of damaged ones, atomicity under a real kill."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from numpyllm import checkpoint as ck
from numpyllm.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from numpyllm.nn.gpt import GPT, GPTConfig
from numpyllm.optim import AdamW
from numpyllm.tokenizers import CharTokenizer


def tiny_model(seed=0, **kw):
    cfg = dict(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg), rng=np.random.default_rng(seed))


def trained_parts():
    model = tiny_model()
    opt = AdamW(model.parameters(), lr=1e-2)
    x = np.random.default_rng(0).integers(0, 7, size=(2, 8))
    _, loss = model(x, targets=x)
    loss.backward()
    opt.step()
    return model, opt, CharTokenizer.from_text("abcdefg")


def test_round_trip(tmp_path):
    model, opt, tok = trained_parts()
    path = save_checkpoint(tmp_path, step=3, model=model, optimizer=opt, tokenizer=tok,
                           trainer_state={"note": "hi"})
    assert path == tmp_path / "step-000003"
    assert (tmp_path / "latest").read_text().strip() == "step-000003"
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.step == 3 and ckpt.trainer_state == {"note": "hi"}
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(ckpt.weights[name], p.data)
        assert ckpt.weights[name].dtype == p.dtype
    state = opt.state_dict()
    for i, entry in state["state"].items():
        for k, v in entry.items():
            np.testing.assert_array_equal(ckpt.optimizer_state["state"][i][k], v)
    assert ckpt.tokenizer.decode(ckpt.tokenizer.encode("cafe")) == "cafe"
    loaded, tok2, _ = load_model(tmp_path)
    x = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(loaded(x)[0].data, model(x)[0].data)
    assert not loaded.training


def test_files_are_json_and_safetensors_only(tmp_path):
    model, opt, tok = trained_parts()
    step_dir = save_checkpoint(tmp_path, step=1, model=model, optimizer=opt, tokenizer=tok)
    names = sorted(p.name for p in step_dir.iterdir())
    assert names == ["manifest.json", "model.safetensors", "optimizer.safetensors", "tokenizer.json"]


def test_keeps_the_newest(tmp_path):
    model = tiny_model()
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step=step, model=model, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000003", "step-000004"]


def _one(tmp_path):
    model, opt, tok = trained_parts()
    return save_checkpoint(tmp_path, step=5, model=model, optimizer=opt, tokenizer=tok)


def test_truncated_file_is_refused(tmp_path):
    step_dir = _one(tmp_path)
    f = step_dir / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=r"model\.safetensors has \d+ bytes.*truncated"):
        load_checkpoint(tmp_path)


def test_corrupt_file_is_refused(tmp_path):
    step_dir = _one(tmp_path)
    f = step_dir / "optimizer.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256.*corrupt"):
        load_checkpoint(tmp_path)


def test_missing_pieces_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="latest"):
        load_checkpoint(tmp_path)
    step_dir = _one(tmp_path)
    (step_dir / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer.json is missing"):
        load_checkpoint(tmp_path)


def _rewrite_manifest(step_dir, change):
    m = json.loads((step_dir / "manifest.json").read_text())
    change(m)
    (step_dir / "manifest.json").write_text(json.dumps(m))


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    step_dir = _one(tmp_path)
    _rewrite_manifest(step_dir, lambda m: m["model"]["config"].update(n_embd=16))
    with pytest.raises(CheckpointError, match="do not fit the config"):
        load_model(tmp_path)


def test_bad_manifest_is_refused(tmp_path):
    step_dir = _one(tmp_path)
    _rewrite_manifest(step_dir, lambda m: m.update(version=99))
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path)
    (step_dir / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(step_dir)


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny_model()
    save_checkpoint(tmp_path, step=1, model=model)
    before = load_checkpoint(tmp_path).weights

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(ck, "save_file", crash)
    model.wte.weight.data += 1
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, step=2, model=model)
    after = load_checkpoint(tmp_path)
    assert after.step == 1
    np.testing.assert_array_equal(after.weights["wte.weight"], before["wte.weight"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


SAVER = textwrap.dedent("""
    import sys, numpy as np
    from numpyllm.checkpoint import save_checkpoint
    from numpyllm.nn.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=32),
                rng=np.random.default_rng(0))
    step = 0
    print("ready", flush=True)
    while True:
        step += 1
        for p in model.parameters():
            p.data[...] = step          # every weight holds its step number
        save_checkpoint(sys.argv[1], step=step, model=model)
""")


def test_killed_mid_save_leaves_a_whole_checkpoint(tmp_path):
    """SIGKILL a process that saves in a loop, at several moments: what `latest` names
    always loads, and its weights are all from one step."""
    checked = 0
    for trial in range(4):
        directory = tmp_path / f"run{trial}"
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(directory)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3 + 0.17 * trial)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if not (directory / "latest").exists():
            continue          # killed before the first commit: nothing to check
        ckpt = load_checkpoint(directory)
        values = {float(v) for a in ckpt.weights.values() for v in np.unique(a)}
        assert values == {float(ckpt.step)}
        checked += 1
    assert checked >= 2, "the saver was killed before it committed anything: nothing tested"

"""Checkpoints: round trip, refusal of damaged ones, atomicity under a real kill."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from numpyllm.training import checkpoint as ck
from numpyllm.training.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from numpyllm.nn.gpt import GPT, GPTConfig
from numpyllm.optim import SGD, Adam, AdamW
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


@pytest.mark.parametrize("make", [lambda ps: AdamW(ps, lr=1e-2), lambda ps: Adam(ps, lr=1e-2),
                                  lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True)])
def test_every_optimizer_round_trips(tmp_path, make):
    """The hyperparameter checks accept what each optimizer writes."""
    model = tiny_model()
    opt = make(model.parameters())
    x = np.random.default_rng(0).integers(0, 7, size=(2, 8))
    model(x, targets=x)[1].backward()
    opt.step()
    save_checkpoint(tmp_path, step=1, model=model, optimizer=opt)
    fresh = make(tiny_model().parameters())
    fresh.load_state_dict(load_checkpoint(tmp_path).optimizer_state)
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


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
    from numpyllm.training.checkpoint import save_checkpoint
    from numpyllm.nn.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=32),
                rng=np.random.default_rng(0))
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        for p in model.parameters():
            p.data[...] = i             # every weight holds the save's number
        # each step is saved twice: the second save of a step re-saves it in place
        save_checkpoint(sys.argv[1], step=(i + 1) // 2, model=model)
""")


def test_killed_mid_save_leaves_a_whole_checkpoint(tmp_path):
    """SIGKILL a process that saves in a loop, half of its saves re-saving the step it
    just saved, at several moments: what `latest` names always loads, and its weights are
    all from one save of that step (the first or the second)."""
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
        assert len(values) == 1 and values.pop() in (2 * ckpt.step - 1, 2 * ckpt.step)
        checked += 1
    assert checked >= 2, "the saver was killed before it committed anything: nothing tested"


# One process imports numpyllm once, then forks a child per kill point: the child
# re-saves step 5 (weights 2.0 over weights 1.0) and SIGKILLs itself just before its
# k-th filesystem call, for k = 1, 2, ... until a re-save completes untouched.
RESAVER = textwrap.dedent("""
    import os, shutil, signal, sys
    import numpy as np
    from numpyllm.training import checkpoint as ck
    from numpyllm.nn.gpt import GPT, GPTConfig
    from numpyllm.optim import SGD, Adam, AdamW
    from numpyllm.tokenizers import CharTokenizer

    model = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8),
                rng=np.random.default_rng(0))
    opt = AdamW(model.parameters(), lr=1e-2)
    tok = CharTokenizer.from_text("abcdefg")
    CALLS = [(os, "replace"), (os, "rename"), (os, "mkdir"), (os, "fsync"), (os, "unlink"),
             (os, "rmdir"), (shutil, "rmtree"), (ck, "save_file"), (ck, "_write_json")]

    def fill(value):
        for p in model.parameters():
            p.data[...] = value

    def kill_before_call(k):
        count = [0]
        def wrap(module, name):
            real = getattr(module, name)
            def call(*args, **kwargs):
                count[0] += 1
                if count[0] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(*args, **kwargs)
            setattr(module, name, call)
        for module, name in CALLS:
            wrap(module, name)

    k = 0
    while True:
        k += 1
        directory = os.path.join(sys.argv[1], f"kill{k:03d}")
        fill(1.0)
        ck.save_checkpoint(directory, step=5, model=model, optimizer=opt, tokenizer=tok)
        pid = os.fork()
        if pid == 0:
            kill_before_call(k)
            fill(2.0)
            ck.save_checkpoint(directory, step=5, model=model, optimizer=opt, tokenizer=tok)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(directory, "killed" if os.WIFSIGNALED(status) else "finished", flush=True)
        if not os.WIFSIGNALED(status):
            break
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and SIGKILL (POSIX)")
def test_killed_at_every_point_of_a_resave_leaves_a_whole_checkpoint(tmp_path):
    """Issue 12: re-saving the step `latest` names used to leave, for a moment, `latest`
    pointing at a missing directory. Kill the re-save before each of its filesystem
    calls in turn: the checkpoint always loads, with all the old weights or all the new
    ones, and the next save tidies up (puts back a moved-aside copy, removes leftovers)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", RESAVER, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    runs = [line.split() for line in out.splitlines()]
    assert runs[-1][1] == "finished" and all(r[1] == "killed" for r in runs[:-1])
    assert len(runs) > 15, "fewer kill points than the protocol has calls: is the hook working?"
    seen, dangling = set(), 0
    for directory, _ in runs:
        directory = Path(directory)
        dangling += not (directory / "step-000005").exists()
        ckpt = load_checkpoint(directory)
        values = {float(v) for a in ckpt.weights.values() for v in np.unique(a)}
        assert len(values) == 1, f"{directory.name}: a mix of old and new weights"
        seen |= values
        assert ckpt.step == 5 and ckpt.tokenizer.decode([0, 1]) == "ab"
        assert ckpt.optimizer_state is not None
        model = tiny_model()
        for p in model.parameters():
            p.data[...] = 3.0
        save_checkpoint(directory, step=5, model=model)          # recovers, then saves
        assert {float(v) for a in load_checkpoint(directory).weights.values()
                for v in np.unique(a)} == {3.0}
        assert sorted(p.name for p in directory.iterdir()) == ["latest", "step-000005"]
    assert seen == {1.0, 2.0}
    assert dangling >= 1, "no kill landed between the two renames of the re-save"


# ------------------------------------------------------------------ issue 12: refusals
def _manifest_refused(tmp_path, change, match, loader=load_checkpoint):
    step_dir = _one(tmp_path)
    _rewrite_manifest(step_dir, change)
    with pytest.raises(CheckpointError, match=match) as info:
        loader(tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message
    return message


def _set(path, value):
    """A change to the manifest: set the value at a path of keys."""
    def change(m):
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _delete(*path):
    def change(m):
        node = m
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


@pytest.mark.parametrize("change, match", [
    (_delete("files"), "files: expected a JSON object listing every file"),   # verified nothing
    (_set(["files"], {}), "files: expected"),
    (_delete("files", "model.safetensors"), r"files: expected an entry for 'model\.safetensors'"),
    (_delete("files", "tokenizer.json"), r"files: expected an entry for 'tokenizer\.json'"),
    (_delete("step"), "step: expected an integer >= 0, got None"),
    (_set(["step"], "5"), "step: expected an integer"),
    (_set(["step"], True), "step: expected an integer"),
    (_set(["step"], 6), "step: expected the step its directory step-000005 is named after"),
    (_delete("model"), "model: expected"),
    (_set(["model", "config"], [1]), "model: expected"),
    (_set(["files", "model.safetensors", "bytes"], "12"), r"files\['model\.safetensors'\]"),
    (_set(["files", "model.safetensors", "sha256"], 5), r"files\['model\.safetensors'\]"),
    (_set(["files", "model.safetensors"], None), r"files\['model\.safetensors'\]"),
    (_set(["tokenizer"], {"type": "CharTokenizer", "file": 3}), "tokenizer: expected"),
    (_set(["tokenizer"], {"type": "os.system", "file": "tokenizer.json"}), "tokenizer: expected"),
    (_set(["tokenizer", "type"], "BPETokenizer"), "tokenizer.type: expected CharTokenizer"),
    (_set(["optimizer", "type"], "Lion"), "optimizer.type: expected one of"),
    (_set(["optimizer", "param_groups"], {}), "optimizer.param_groups: expected a non-empty list"),
    (_set(["optimizer", "scalars"], {"0": {"step": "1"}}), r"optimizer.scalars\['0'\]"),
    (_set(["optimizer", "scalars"], {"99": {"step": 1}}), "keys that are parameter indices"),
    (_set(["optimizer", "scalars"], {"0": {"step": -1}}), r"step: expected an integer >= 0"),
    (_set(["trainer"], [1]), "trainer: expected a JSON object"),
    (_set(["trainer", "step"], -1), "trainer.step: expected an integer >= 0"),
    (_set(["trainer", "train_config"], "fast"), "trainer.train_config: expected a JSON object"),
    (_set(["version"], "1"), "version"),
])
def test_malformed_manifest_is_a_checkpoint_error(tmp_path, change, match):
    """Issue 12: a manifest without `files` verified nothing, and missing or mistyped
    fields raised bare KeyError/TypeError. Each is now a one-line CheckpointError naming
    the manifest and the field."""
    _manifest_refused(tmp_path, change, match)


@pytest.mark.parametrize("group_change, match", [
    ({"lr": -1.0}, "learning rate must be >= 0"),
    ({"lr": "0.1"}, "expected a finite number"),
    ({"lr": [0.1, 0.2]}, "hyperparameters AdamW accepts"),
    ({"betas": [1.5, 0.9]}, r"betas must be in \[0, 1\)"),
    ({"betas": [0.9]}, "hyperparameters AdamW accepts"),
    ({"eps": None}, "expected a finite number"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
    ({"momentum": 0.9}, "no hyperparameter"),
    ({"params": [0, 0]}, "each in one group once"),
    ({"params": "all"}, "a list of parameter indices"),
    ({"lr": True}, r"\.lr: expected a value of the kind of AdamW's default"),
    ({"betas": 0.9}, r"hyperparameters AdamW accepts"),
])
def test_optimizer_hyperparameters_are_validated_on_load(tmp_path, group_change, match):
    """Issue 12: hyperparameters went into the optimizer unchecked; now the optimizer's
    own rules check them when the checkpoint is read."""
    _manifest_refused(tmp_path, lambda m: m["optimizer"]["param_groups"][0].update(group_change),
                      match)


@pytest.mark.parametrize("key", ["optimizer", "tokenizer", "trainer"])
def test_optional_manifest_entries_may_be_absent(tmp_path, key):
    """Found by the fuzzer: a manifest without "optimizer" raised a bare KeyError."""
    _rewrite_manifest(_one(tmp_path), _delete(key))
    ckpt = load_checkpoint(tmp_path)
    assert {"optimizer": ckpt.optimizer_state, "tokenizer": ckpt.tokenizer,
            "trainer": ckpt.trainer_state or None}[key] is None


def test_missing_hyperparameter_is_refused(tmp_path):
    _manifest_refused(tmp_path, lambda m: m["optimizer"]["param_groups"][0].pop("eps"),
                      r"every hyperparameter of AdamW \(missing \['eps'\]\)")


@pytest.mark.parametrize("name", ["../model.safetensors", "/etc/passwd", "a/b", "..", ".", "",
                                  "model.safetensors/", "\\evil", "con\nfig", "x" * 200])
def test_file_names_must_be_plain(tmp_path, name):
    """Issue 12: file names were joined unchecked, so '..' or an absolute path made the
    loader read (and hash) files outside the checkpoint."""
    def change(m):
        m["files"][name] = m["files"].pop("tokenizer.json")
        m["tokenizer"]["file"] = name
    _manifest_refused(tmp_path, change, "files: expected plain file names")


def test_symlinks_out_of_the_checkpoint_are_refused(tmp_path):
    step_dir = _one(tmp_path / "ckpt")
    outside = tmp_path / "outside.json"
    outside.write_bytes((step_dir / "tokenizer.json").read_bytes())
    (step_dir / "tokenizer.json").unlink()
    (step_dir / "tokenizer.json").symlink_to(outside)      # same bytes: hashes would match
    with pytest.raises(CheckpointError, match="expected a regular file, got a symbolic link"):
        load_checkpoint(tmp_path / "ckpt")
    # `latest` naming a step directory that is a link to elsewhere
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "ckpt" / "step-000009")
    (tmp_path / "ckpt" / "latest").write_text("step-000009\n")
    with pytest.raises(CheckpointError, match="symbolic link"):
        load_checkpoint(tmp_path / "ckpt")
    # `latest` itself a link
    (tmp_path / "ckpt" / "latest").unlink()
    (tmp_path / "pointer").write_text("step-000005\n")
    (tmp_path / "ckpt" / "latest").symlink_to(tmp_path / "pointer")
    with pytest.raises(CheckpointError, match="symbolic link"):
        load_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize("content", [b"../step-000005", b"/tmp", b"step-000005/../..",
                                     b"step-\xd9\xa3", b"step-5 x", b"step-000005" * 10,
                                     b"\xff\xfe", b"", b"latest", b"step-000006"])
def test_latest_must_name_a_sibling_step_directory(tmp_path, content):
    _one(tmp_path)
    (tmp_path / "latest").write_bytes(content + b"\n")
    with pytest.raises(CheckpointError, match="latest") as info:
        load_checkpoint(tmp_path)
    assert "\n" not in str(info.value)


def test_dangling_latest_falls_back_to_the_copy_a_resave_moved_aside(tmp_path):
    """The state a re-save killed between its two renames leaves behind."""
    step_dir = _one(tmp_path)
    aside = tmp_path / ".old-step-000005-999999999"      # no such process
    os.replace(step_dir, aside)
    assert ck.resolve(tmp_path) == aside
    assert load_checkpoint(tmp_path).step == 5
    save_checkpoint(tmp_path, step=6, model=tiny_model(), keep=5)   # recovery puts it back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000005", "step-000006"]


def test_bad_rng_state_is_a_checkpoint_error_on_resume(tmp_path):
    """Issue 12: a bad RNG state raised a bare TypeError out of Trainer.resume (and NumPy
    accepts some bad states silently, e.g. MT19937 with pos past its key)."""
    from numpyllm.training import TrainConfig, Trainer
    tokens = np.arange(200) % 7
    trainer = Trainer(tiny_model(dropout=0.1), tokens, tokens,
                      TrainConfig(batch_size=2, max_iters=3, warmup_iters=1, lr_decay_iters=3))
    trainer.train_step()
    trainer.save(tmp_path)
    assert Trainer.resume(tmp_path, tokens)[0].step == 1
    good = json.loads((tmp_path / "step-000001" / "manifest.json").read_text())
    bad_states = [None, [1], {"bit_generator": "MT19937", "state": {"key": [1] * 624, "pos": 10 ** 6}},
                  {**good["trainer"]["data_rng"], "state": {"state": "x", "inc": 1}},
                  {**good["trainer"]["data_rng"], "state": {"state": -1, "inc": 1}},
                  {**good["trainer"]["data_rng"], "state": {"state": 2 ** 200, "inc": 1}},
                  {**good["trainer"]["data_rng"], "has_uint32": [1]},
                  {**good["trainer"]["data_rng"], "uinteger": 1.5}]
    for state in bad_states:
        for key, value in (("data_rng", state), ("model_rngs", [state]), ("model_rngs", state),
                           ("stage_rngs", [[state]]), ("stage_rngs", [state])):
            m = json.loads(json.dumps(good))
            m["trainer"][key] = value
            (tmp_path / "step-000001" / "manifest.json").write_text(json.dumps(m))
            with pytest.raises(CheckpointError, match=f"trainer.{key}"):
                Trainer.resume(tmp_path, tokens)


def test_huge_config_is_refused_before_the_model_is_allocated(tmp_path):
    import tracemalloc
    step_dir = _one(tmp_path)
    for change, match in [({"vocab_size": 10 ** 12}, r"wte\.weight: expected shape \[1000000000000, 8\]"),
                          ({"n_embd": 2 ** 20, "n_head": 1}, r"wte\.weight: expected shape"),
                          ({"block_size": 10 ** 9}, r"wpe\.weight: expected shape"),
                          ({"n_layer": 10 ** 6}, r"layers 0\.\.999999"),
                          ({"tie_weights": False}, r"lm_head\.weight: expected shape"),
                          ({"tie_weights": "no"}, r"model.config.tie_weights: expected true or false"),
                          ({"n_layer": 1.0}, r"model.config.n_layer: expected an integer"),
                          ({"layer_norm_eps": "tiny"}, r"model.config.layer_norm_eps: expected a number")]:
        m = json.loads((step_dir / "manifest.json").read_text())
        m["model"]["config"].update(change)
        (step_dir / "manifest.json").write_text(json.dumps(m))
        tracemalloc.start()
        try:
            with pytest.raises(CheckpointError, match=match):
                load_model(tmp_path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * 2 ** 20
        _rewrite_manifest(step_dir, lambda m: m["model"]["config"].update(
            json.loads(json.dumps(tiny_model().config.to_dict()))))


def test_tokenizer_errors_are_checkpoint_errors(tmp_path):
    step_dir = _one(tmp_path)
    tok = step_dir / "tokenizer.json"
    tok.write_bytes(b'{"format": "numpyllm-char", "version": 1, "chars": ["\xff"]}')
    _rewrite_manifest(step_dir, lambda m: m["files"]["tokenizer.json"].update(
        bytes=tok.stat().st_size, sha256=ck._sha256(tok)))
    with pytest.raises(CheckpointError, match="expected UTF-8 text"):
        load_checkpoint(tmp_path)


def test_optimizer_state_given_twice_is_refused(tmp_path):
    step_dir = _one(tmp_path)
    _rewrite_manifest(step_dir, lambda m: m["optimizer"]["scalars"]["0"].update(exp_avg=1.0))
    with pytest.raises(CheckpointError, match="expected each state entry once"):
        load_checkpoint(tmp_path)


def test_optimizer_tensor_names_are_checked(tmp_path):
    from numpyllm.hub.safetensors import save_file
    step_dir = _one(tmp_path)
    opt = step_dir / "optimizer.safetensors"
    save_file({"state.99.exp_avg": np.zeros(2, np.float32)}, opt)
    _rewrite_manifest(step_dir, lambda m: m["files"]["optimizer.safetensors"].update(
        bytes=opt.stat().st_size, sha256=ck._sha256(opt)))
    with pytest.raises(CheckpointError, match=r"tensor 'state\.99\.exp_avg': expected a name"):
        load_checkpoint(tmp_path)


def test_indices_of_thousands_of_digits_are_refused(tmp_path):
    """Found in review: int() of a 5,000-digit key raised a bare ValueError."""
    from numpyllm.hub.safetensors import save_file
    huge = "9" * 5000
    _manifest_refused(tmp_path / "a", lambda m: m["optimizer"]["scalars"].update({huge: {"step": 1}}),
                      "keys that are parameter indices")
    step_dir = _one(tmp_path / "b")
    opt = step_dir / "optimizer.safetensors"
    save_file({f"state.{huge}.exp_avg": np.zeros(2, np.float32)}, opt)
    _rewrite_manifest(step_dir, lambda m: m["files"]["optimizer.safetensors"].update(
        bytes=opt.stat().st_size, sha256=ck._sha256(opt)))
    with pytest.raises(CheckpointError, match="expected a name 'state.<index>.<name>'"):
        load_checkpoint(tmp_path / "b")
    step_dir = _one(tmp_path / "c")
    model = step_dir / "model.safetensors"
    weights = load_checkpoint(tmp_path / "c").weights
    weights[f"h.{huge}.ln_1.weight"] = weights["h.0.ln_1.weight"]
    save_file(weights, model)
    _rewrite_manifest(step_dir, lambda m: m["files"]["model.safetensors"].update(
        bytes=model.stat().st_size, sha256=ck._sha256(model)))
    with pytest.raises(CheckpointError, match="the weights do not fit the config"):
        load_model(tmp_path / "c")


def test_a_custom_split_pattern_loads_only_when_trusted(tmp_path):
    """A tokenizer built in Python with a pattern the file loader refuses (it could take
    super-linear time on a hostile text) is saved; loading it takes trust_pattern=True."""
    from numpyllm.tokenizers import BPETokenizer
    tok = BPETokenizer(pattern=r"(?:a|b)+|\s+|.")
    tok.train(["abba baab ab"] * 4, 260)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=4, n_layer=1, n_head=1,
                          n_embd=4), rng=np.random.default_rng(0))
    save_checkpoint(tmp_path, step=1, model=model, tokenizer=tok)
    with pytest.raises(CheckpointError, match="trust_pattern"):
        load_checkpoint(tmp_path)
    loaded = load_model(tmp_path, trust_pattern=True)[1]
    assert loaded.encode("abba ab") == tok.encode("abba ab")


# ------------------------------------------------------------------ every model type
def _every_model():
    from numpyllm.nn import (ClassifierConfig, Llama, LlamaConfig, SequenceClassifier,
                             Transformer, TransformerConfig, TransformerEncoderConfig,
                             TransformerEncoderModel)
    gpt_cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8)
    enc_cfg = TransformerEncoderConfig(vocab_size=11, d_model=8, n_head=2, n_layers=2,
                                       d_ff=12, max_len=6, positions="learned", mlm_head=True)
    ids = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    return {
        "GPT": (GPT(gpt_cfg, rng=1), lambda m: m(ids)[0]),
        "Llama": (Llama(LlamaConfig(vocab_size=11, block_size=6, n_layer=2, n_head=4,
                                    n_kv_head=2, n_embd=8, intermediate_size=12,
                                    attention_bias=True, tie_weights=False), rng=1),
                  lambda m: m(ids)[0]),
        "Transformer": (Transformer(TransformerConfig(11, 13, d_model=8, n_head=2,
                                                      n_encoder_layers=1, n_decoder_layers=2,
                                                      d_ff=12, pad_id=0), rng=1),
                        lambda m: m(ids, ids[:, :3])[0]),
        "TransformerEncoderModel": (TransformerEncoderModel(enc_cfg, rng=1),
                                    lambda m: m(ids)[0]),
        "SequenceClassifier": (SequenceClassifier(ClassifierConfig(
            "TransformerEncoderModel", enc_cfg.to_dict(), n_classes=3), rng=1),
            lambda m: m(ids, np.array([4, 2]))[0]),
        "SequenceClassifier (GPT, untied)": (SequenceClassifier(ClassifierConfig(
            "GPT", {**gpt_cfg.to_dict(), "tie_weights": False}, n_classes=2), rng=1),
            lambda m: m(ids, np.array([4, 2]))[0]),
    }


@pytest.mark.parametrize("kind", list(_every_model()))
def test_every_model_type_round_trips(tmp_path, kind):
    model, logits = _every_model()[kind]
    model.eval()
    save_checkpoint(tmp_path, step=3, model=model)
    loaded, _, ckpt = load_model(tmp_path)
    assert type(loaded) is type(model) and ckpt.model_config["type"] == type(model).__name__
    assert [n for n, _ in loaded.named_parameters()] == [n for n, _ in model.named_parameters()]
    np.testing.assert_array_equal(logits(loaded).data, logits(model).data)
    assert load_model(tmp_path, dtype="float64")[0].parameters().__next__().dtype == np.float64


@pytest.mark.parametrize("kind, field, value, match", [
    ("Transformer", "d_ff", 10**9, "c_fc.weight: expected shape"),
    ("Transformer", "n_decoder_layers", 10**9, "decoder.layers"),
    ("Transformer", "tgt_vocab_size", 10**12, "decoder.embed.weight: expected shape"),
    ("TransformerEncoderModel", "max_len", 10**9, "pos_embed.weight: expected shape"),
    ("TransformerEncoderModel", "vocab_size", 10**10, "model.config"),
    ("SequenceClassifier", "n_classes", 10**9, "score.weight: expected shape"),
    ("SequenceClassifier", "backbone", "BERT", "model.config.backbone"),
    ("SequenceClassifier", "backbone_config", 7, "model.config.backbone_config"),
    ("GPT", "type", "Nope", "model.type"),
    ("Llama", "intermediate_size", 10**9, "gate_proj.weight: expected shape"),
    ("Llama", "n_kv_head", 1, "k_proj.weight: expected shape"),
    ("Llama", "n_layer", 10**8, "layers"),
])
def test_a_config_the_weights_do_not_fit_is_refused_before_building(tmp_path, kind, field,
                                                                    value, match):
    """Sizes come from the manifest: each is checked against the stored weights, so a
    hostile manifest cannot make the loader allocate a model larger than the file."""
    model, _ = _every_model()[kind]
    step_dir = save_checkpoint(tmp_path, step=1, model=model)
    manifest = json.loads((step_dir / "manifest.json").read_text())
    if field == "type":
        manifest["model"]["type"] = value
    else:
        manifest["model"]["config"][field] = value
    (step_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=match):
        load_model(tmp_path)


def test_a_hugging_face_tokenizer_is_kept_as_its_two_files(tmp_path):
    """A model fine-tuned from a Hugging Face directory keeps its tokenizer as that
    directory has it (tokenizer.json, tokenizer_config.json), both in the manifest."""
    from numpyllm.tokenizers import BPETokenizer, HFTokenizer
    text = "the quick brown fox jumps over the lazy dog " * 20
    tok = HFTokenizer.from_bpe(BPETokenizer(special_tokens=["<|endoftext|>"]).train(text, 280))
    save_checkpoint(tmp_path, step=3, model=tiny_model(vocab_size=tok.vocab_size), tokenizer=tok)
    step = tmp_path / "step-000003"
    assert sorted(p.name for p in step.iterdir()) == ["manifest.json", "model.safetensors",
                                                      "tokenizer.json", "tokenizer_config.json"]
    back = load_checkpoint(tmp_path).tokenizer
    assert type(back) is HFTokenizer
    assert back.encode(text + "<|endoftext|>", allowed_special="all") == \
        tok.encode(text + "<|endoftext|>", allowed_special="all")
    manifest = json.loads((step / "manifest.json").read_text())
    del manifest["files"]["tokenizer_config.json"]
    (step / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="an entry for 'tokenizer_config.json'"):
        load_checkpoint(tmp_path)

"""``numpyllm distill`` end to end on tiny data written on the spot: a checkpoint that eval
and sample read as a causal LM, exact resume, the student from the teacher's layers,
sequence-level distillation's corpus, a Hugging Face teacher, and one-line errors."""
import json

import numpy as np
import pytest

from numpyllm.cli import main
from numpyllm.hub import save_pretrained
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import BPETokenizer, CharTokenizer
from numpyllm.training.checkpoint import load_checkpoint, load_model, save_checkpoint

TEXT = ("First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. "
        "First Citizen: You are all resolved rather to die than to famish? ") * 12
QUICK = ["--batch_size", "4", "--eval_interval", "3", "--eval_iters", "1", "--quiet",
         "--block_size", "16"]


def teacher_model(vocab, n_layer=3, block=24, seed=0):
    model = GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=2,
                          n_embd=16), rng=seed)
    for p in model.parameters():
        p.data += 0.2 * np.random.default_rng(seed).standard_normal(p.shape).astype(p.dtype)
    return model


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture
def teacher(tmp_path):
    tok = CharTokenizer.from_text(TEXT)
    save_checkpoint(tmp_path / "teacher", step=0, model=teacher_model(tok.vocab_size),
                    tokenizer=tok)
    return tmp_path / "teacher"


def distill(*args):
    return main(["distill", *map(str, args)])


def state(path):
    model, _, ckpt = load_model(path)
    return ckpt.step, {k: v.copy() for k, v in model.state_dict().items()}


def test_distill_then_eval_and_sample(tmp_path, text, teacher, capsys):
    out = tmp_path / "run"
    assert distill("--teacher", teacher, "--data", text, "--out", out, "--n_layer", 1,
                   "--max_iters", 6, "--temperature", 3, "--alpha", 0.7, *QUICK) == 0
    printed = capsys.readouterr().out
    assert "student: GPT, 1 layers x 16" in printed and "0.7 T^2 KL" in printed
    assert "held-out cross-entropy" in printed and "teacher" in printed
    ckpt = load_checkpoint(out / "ckpt")
    assert ckpt.step == 6
    assert ckpt.trainer_state["objective"] == {"name": "clm", "context_length": 16}
    record = ckpt.trainer_state["data"]["distill"]
    assert (record["temperature"], record["alpha"], record["block_size"]) == (3.0, 0.7, 16)
    assert main(["eval", "--ckpt", str(out / "ckpt")]) == 0
    assert "tokens predicted in windows of" in capsys.readouterr().out
    assert main(["sample", "--ckpt", str(out / "ckpt"), "--prompt", "All:",
                 "--max_new_tokens", "5"]) == 0


def test_resume_equals_uninterrupted(tmp_path, text, teacher, capsys):
    common = ["--teacher", teacher, "--data", text, "--n_layer", 1, "--alpha", 0.6,
              "--dropout", 0.1, *QUICK]
    assert distill(*common, "--out", tmp_path / "a", "--max_iters", 6) == 0
    assert distill(*common, "--out", tmp_path / "b", "--max_iters", 6,
                   "--lr_decay_iters", 6, "--max_iters", 3) == 0
    assert distill("--out", tmp_path / "b", "--resume", "--max_iters", 6, "--quiet") == 0
    capsys.readouterr()
    (sa, wa), (sb, wb) = state(tmp_path / "a" / "ckpt"), state(tmp_path / "b" / "ckpt")
    assert sa == sb == 6
    for name in wa:
        assert np.array_equal(wa[name], wb[name]), name


def test_init_from_teacher_layers(tmp_path, text, teacher):
    out = tmp_path / "run"
    # learning rate 0: the checkpoint holds the student as it started
    assert distill("--teacher", teacher, "--data", text, "--out", out,
                   "--init-from-teacher-layers", "0,2", "--max_iters", 1, "--learning_rate", 0,
                   "--min_lr", 0, "--weight_decay", 0, *QUICK) == 0
    (_, student), (t, _, _) = state(out / "ckpt"), load_model(teacher)
    ref = t.state_dict()
    assert load_model(out / "ckpt")[0].config.n_layer == 2
    for name, value in student.items():
        theirs = name.replace("h.1.", "h.2.") if name.startswith("h.1.") else name
        expected = ref[theirs][:16] if name == "wpe.weight" else ref[theirs]   # context 16 of 24
        np.testing.assert_array_equal(value, expected, err_msg=name)


def test_sequence_level(tmp_path, text, teacher, capsys, one_line_error):
    out = tmp_path / "run"
    assert distill("--teacher", teacher, "--data", text, "--out", out, "--n_layer", 1,
                   "--sequence-level", 300, "--sequence-level-mix", "--alpha", 0,
                   "--max_iters", 3, *QUICK) == 0
    corpus = np.load(out / "teacher-corpus.npy", allow_pickle=False)
    assert corpus.shape == (300,) and corpus.dtype == np.int64
    record = load_checkpoint(out / "ckpt").trainer_state["data"]["distill"]
    assert record["sequence_level"] == 300 and record["mix"] is True
    assert distill("--out", out, "--resume", "--max_iters", 4, "--quiet") == 0
    np.save(out / "teacher-corpus.npy", corpus[::-1].copy())
    capsys.readouterr()
    one_line_error(capsys, ["distill", "--out", str(out), "--resume", "--max_iters", "5"],
                   "has changed since the run began")


def test_a_hugging_face_teacher(tmp_path, text, capsys):
    tok = BPETokenizer(special_tokens=["<|endoftext|>"]).train(TEXT, 300)
    save_pretrained(teacher_model(tok.vocab_size, n_layer=2, block=32), tok, tmp_path / "hf")
    assert distill("--teacher", tmp_path / "hf", "--data", text, "--out", tmp_path / "run",
                   "--n_embd", 8, "--max_iters", 2, *QUICK) == 0
    assert "teacher: GPT of" in capsys.readouterr().out


@pytest.mark.parametrize("extra, fragments", [
    ([], ["--teacher CKPT|HF_DIR is required"]),
    (["--teacher", "nowhere"], ["--teacher nowhere: no such directory"]),
    (["--teacher", "{teacher}"], ["the student would be the teacher"]),
    (["--teacher", "{teacher}", "--n_layer", "1", "--alpha", "1.5"], ["--alpha must be in"]),
    (["--teacher", "{teacher}", "--n_layer", "1", "--temperature", "0"], ["--temperature"]),
    (["--teacher", "{teacher}", "--init-from-teacher-layers", "a,b"], ["expected block"]),
    (["--teacher", "{teacher}", "--init-from-teacher-layers", "0,5"],
     ["layer 5 is not one of the teacher's 0..2"]),
    (["--teacher", "{teacher}", "--init-from-teacher-layers", "0,1", "--n_embd", "8"],
     ["the student needs the teacher's width"]),
    (["--teacher", "{teacher}", "--student-config", "{bad_json}"], ["not valid JSON"]),
    (["--teacher", "{teacher}", "--student-config", "{unknown}"], ["unknown fields"]),
    (["--teacher", "{teacher}", "--student-config", "{vocab}"], ["share one tokenizer"]),
    (["--teacher", "{teacher}", "--n_layer", "1", "--block_size", "64"],
     ["longer than the teacher's context of 24"]),
    (["--teacher", "{teacher}", "--n_layer", "1", "--sequence-level-mix"],
     ["needs --sequence-level"]),
])
def test_bad_arguments_are_one_line_errors(tmp_path, text, teacher, capsys, one_line_error,
                                           extra, fragments):
    files = {"teacher": teacher, "bad_json": tmp_path / "bad.json",
             "unknown": tmp_path / "unknown.json", "vocab": tmp_path / "vocab.json"}
    files["bad_json"].write_text("{n_layer: 1")
    files["unknown"].write_text(json.dumps({"n_layers": 1}))
    files["vocab"].write_text(json.dumps({"n_layer": 1, "vocab_size": 7}))
    args = ["distill", "--data", str(text), "--out", str(tmp_path / "run"), "--max_iters", "2",
            *[a.format(**files) for a in extra]]
    one_line_error(capsys, args, *fragments)


def test_resume_refuses_another_teacher_or_a_student_change(tmp_path, text, teacher, capsys,
                                                            one_line_error):
    out = tmp_path / "run"
    assert distill("--teacher", teacher, "--data", text, "--out", out, "--n_layer", 1,
                   "--max_iters", 2, *QUICK) == 0
    tok = CharTokenizer.from_text(TEXT)
    save_checkpoint(tmp_path / "other", step=0, model=teacher_model(tok.vocab_size, seed=1),
                    tokenizer=tok)
    bigger = CharTokenizer.from_text(TEXT + "#")
    save_checkpoint(tmp_path / "wider", step=0, model=teacher_model(bigger.vocab_size),
                    tokenizer=bigger)
    capsys.readouterr()
    base = ["distill", "--out", str(out), "--resume", "--max_iters", "4"]
    one_line_error(capsys, base + ["--teacher", str(tmp_path / "other")],
                   "not the teacher this run began with")
    one_line_error(capsys, base + ["--teacher", str(tmp_path / "wider")],
                   "must share one tokenizer")
    one_line_error(capsys, base + ["--n_layer", "2"], "the student and its data are the")
    one_line_error(capsys, base + ["--alpha", "0.9"], "differs from the run's 0.5")
    # numpyllm train would carry a student on without its teacher
    one_line_error(capsys, ["train", "--out", str(out), "--resume", "--max_iters", "4"],
                   "is a run of numpyllm distill")
    assert main(["train", "--data", str(text), "--out", str(tmp_path / "plain"), "--n_layer",
                 "1", "--n_embd", "16", "--max_iters", "1", "--quiet", "--no_plot",
                 "--samples", "0", "--block_size", "16"]) == 0
    capsys.readouterr()
    one_line_error(capsys, ["distill", "--out", str(tmp_path / "plain"), "--resume",
                            "--teacher", str(teacher)], "not a run of numpyllm distill")

"""Data parallelism and ZeRO stages 1 and 2 over MPI ranks (issue 18): N ranks train
exactly as one process on the same global batches (float64, gradient accumulation and
clipping too), a run resumes under another world size and strategy, ZeRO's optimizer
state per rank is 1/N of the whole, the bytes sent are the gradient buffer, and a failing
rank ends every rank with its one-line error instead of a hang. Each multi-rank case starts `mpiexec` itself,
with a timeout; 4 ranks oversubscribe the 2-core machine on purpose."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py")

from numpyllm.training.checkpoint import load_checkpoint  # noqa: E402

TIMEOUT = 120
ROOT = Path(__file__).resolve().parents[2]
TINY = ["--n_layer", "4", "--n_embd", "16", "--n_head", "4", "--block_size", "16",
        "--dtype", "float64", "--eval_iters", "2", "--no_plot", "--samples", "0", "--quiet"]


def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"        # the venv's (pip install mpich)
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpi4py is installed but no mpiexec is: pip install mpich")
    return found


def launch(ranks: int, args: list, cwd, expect: int | None = 0) -> subprocess.CompletedProcess:
    """`numpyllm ARGS` on `ranks` MPI ranks (1: a plain process), in `cwd`; the exit
    code must be `expect` (None: any failure)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "numpyllm", *map(str, args)]
    if ranks > 1:
        command = [mpiexec(), "-n", str(ranks), *command]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    if expect is None:
        assert done.returncode != 0, done.stdout + done.stderr
    else:
        assert done.returncode == expect, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpi") / "text.txt"
    rng = np.random.default_rng(0)
    path.write_text("".join(rng.choice(list("abcdefgh \n"), size=20_000)))
    return path


def weights(out: Path) -> dict:
    return load_checkpoint(out / "ckpt").weights


def same_run(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        np.testing.assert_allclose(wb[name], wa[name], rtol=0, atol=1e-10, err_msg=name)
    log_a = (a / "log.csv").read_text().splitlines()
    log_b = (b / "log.csv").read_text().splitlines()
    # the same losses step by step (the tokens/s column differs)
    cut = lambda rows: [r.split(",")[:6] for r in rows]              # noqa: E731
    assert cut(log_a) == cut(log_b)


@pytest.mark.parametrize("strategy", ["dp", "zero1", "zero2", "zero3", "tp", "pp"])
@pytest.mark.parametrize("ranks", [2, 4])
def test_n_ranks_train_as_one_process(tmp_path, text, ranks, strategy):
    """Weights, AdamW's moments (ZeRO: consolidated into the checkpoint) and every logged
    loss; --grad_clip 0.05 so that clipping by the global norm acts on every step."""
    args = ["train", "--data", text, *TINY, "--batch_size", "8", "--max_iters", "5",
            "--eval_interval", "5", "--gradient_accumulation_steps", "2", "--grad_clip", "0.05"]
    launch(1, [*args, "--out", tmp_path / "one"], tmp_path)
    done = launch(ranks, [*args, "--out", tmp_path / "many", "--parallel", strategy], tmp_path)
    assert f"over {ranks} MPI ranks" in done.stdout
    assert done.stdout.count("trained 5 steps") == 1           # rank 0 reports, alone
    same_run(tmp_path / "one", tmp_path / "many")
    a = load_checkpoint(tmp_path / "one" / "ckpt").optimizer_state
    b = load_checkpoint(tmp_path / "many" / "ckpt").optimizer_state
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    for i, entry in a["state"].items():
        assert b["state"][i]["step"] == entry["step"] == 5
        for name in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(b["state"][i][name], entry[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("first, then", [((2, "dp"), (1, None)),
                                         ((2, "zero2"), (4, "zero1")),
                                         ((1, None), (3, "zero2")),
                                         ((2, "tp"), (4, "tp")),
                                         ((4, "tp"), (2, "zero1")),
                                         ((3, "pp"), (2, "tp")),
                                         ((2, "zero3"), (3, "zero3")),
                                         ((4, "zero3"), (2, "pp"))],
                         ids=["dp2-then-one", "zero2x2-then-zero1x4", "one-then-zero2x3",
                              "tp2-then-tp4", "tp4-then-zero1x2", "pp3-then-tp2",
                              "zero3x2-then-zero3x3", "zero3x4-then-pp2"])
def test_a_run_resumes_under_another_world_size_and_strategy(tmp_path, text, first, then):
    args = ["train", "--data", text, *TINY, "--batch_size", "4", "--max_iters", "6",
            "--eval_interval", "3", "--lr_decay_iters", "6"]
    launch(1, [*args, "--out", tmp_path / "one"], tmp_path)
    (n1, s1), (n2, s2) = first, then
    launch(n1, [*args, "--out", tmp_path / "mixed", "--max_iters", "3",
                *(["--parallel", s1] if s1 else [])], tmp_path)
    launch(n2, ["train", "--out", tmp_path / "mixed", "--resume", "--max_iters", "6",
                "--quiet", "--no_plot", "--samples", "0", *(["--parallel", s2] if s2 else [])],
           tmp_path)
    same_run(tmp_path / "one", tmp_path / "mixed")


def test_tensor_times_data_parallel_trains_as_one_process_and_resumes(tmp_path, text):
    """4 ranks as a 2 x 2 grid (--tp 2): two data-parallel copies of a model split in two;
    then the run carries on as pure tensor parallelism on 2 ranks."""
    args = ["train", "--data", text, *TINY, "--batch_size", "8", "--max_iters", "6",
            "--eval_interval", "3", "--lr_decay_iters", "6", "--grad_clip", "0.05"]
    launch(1, [*args, "--out", tmp_path / "one"], tmp_path)
    done = launch(4, [*args, "--out", tmp_path / "grid", "--max_iters", "3", "--parallel",
                      "tp", "--tp", "2"], tmp_path)
    assert "x data parallel over 2 groups of 2" in done.stdout
    launch(2, ["train", "--out", tmp_path / "grid", "--resume", "--max_iters", "6", "--quiet",
               "--no_plot", "--samples", "0", "--parallel", "tp"], tmp_path)
    same_run(tmp_path / "one", tmp_path / "grid")
    done = launch(4, [*args, "--out", tmp_path / "x", "--parallel", "tp", "--tp", "3"],
                  tmp_path, expect=None)
    assert "--tp 3 does not divide the 4 ranks" in done.stderr


@pytest.mark.parametrize("ranks, micro", [(3, 4), (4, 3), (2, 1)])
def test_the_1f1b_schedule_trains_as_gpipe_and_one_process(tmp_path, text, ranks, micro):
    """1F1B (warm-up forwards, then one forward one backward) with more, fewer and as
    many micro-batches as stages; the bubble is reported."""
    args = ["train", "--data", text, *TINY, "--batch_size", "8", "--max_iters", "4",
            "--eval_interval", "4", "--grad_clip", "0.05"]
    launch(1, [*args, "--out", tmp_path / "one"], tmp_path)
    done = launch(ranks, [*args, "--out", tmp_path / "pp", "--parallel", "pp", "--schedule",
                          "1f1b", "--micro_batches", str(micro)], tmp_path)
    bubble = [ln for ln in done.stdout.splitlines() if ln.startswith("pipeline bubble")]
    assert len(bubble) == 1 and "% of the last step" in bubble[0]
    same_run(tmp_path / "one", tmp_path / "pp")


def test_pipeline_refusals_are_one_clear_error(tmp_path, text):
    done = launch(5, ["train", "--data", text, *TINY, "--max_iters", "2", "--out",
                      tmp_path / "x", "--parallel", "pp"], tmp_path, expect=None)
    assert "needs at least one block per stage; the model has n_layer=4" in done.stderr
    done = launch(2, ["train", "--data", text, *TINY, "--max_iters", "2", "--out",
                      tmp_path / "y", "--parallel", "pp", "--objective", "prefix_lm"],
                  tmp_path, expect=None)
    assert "pipeline parallelism trains next-token prediction (clm), not prefix_lm" \
        in done.stderr


def test_a_batch_smaller_than_the_world_is_one_clear_error(tmp_path, text):
    done = launch(2, ["train", "--data", text, *TINY, "--batch_size", "1", "--max_iters", "2",
                      "--out", tmp_path / "x", "--parallel", "dp"], tmp_path, expect=None)
    lines = [ln for ln in done.stderr.splitlines() if "numpyllm train: error" in ln]
    assert lines and all("--batch_size 1 cannot be shared by 2 ranks" in ln for ln in lines)
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x" / "ckpt").exists()


WORKER = """
import sys
import numpy as np
from numpyllm.distributed import MPIDataParallel, abort, world
from numpyllm.nn import GPT, GPTConfig
comm = world()
try:
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8), rng=0)
    if comm.rank == 1:
        raise ValueError("the disk is full")
    MPIDataParallel(model, comm)        # rank 0 waits here for rank 1, which never comes
except Exception as exc:
    abort(comm, f"error: {exc}")
"""


def test_a_failing_rank_ends_every_rank_with_its_error(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode != 0
    assert "rank 1/2: error: the disk is full" in done.stderr


DIES = """
import os
import numpy as np
from numpyllm.distributed import MPIDataParallel, world
from numpyllm.nn import GPT, GPTConfig
comm = world()
model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8), rng=0)
if comm.rank == 1:
    os._exit(9)                         # killed: no message, no MPI_Finalize
MPIDataParallel(model, comm)            # rank 0 waits for rank 1 in a broadcast
"""


def test_a_rank_that_dies_ends_the_run_instead_of_hanging(tmp_path):
    script = tmp_path / "dies.py"
    script.write_text(DIES)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode != 0


def test_the_bytes_sent_are_the_gradient_buffer_in_few_calls():
    """In a world of one (no mpiexec: MPI's singleton), the reduce is the identity and
    reports what it sent: every trained parameter once, plus the loss, in buckets."""
    from numpyllm.distributed import MPIDataParallel
    from numpyllm.nn import GPT, GPTConfig
    from numpyllm.training import TrainConfig, Trainer
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8,
                          dtype="float64"), rng=0)
    tokens = np.random.default_rng(0).integers(0, 11, 400)
    trainer = Trainer(model, tokens, config=TrainConfig(batch_size=4, max_iters=2))
    reference = Trainer(GPT(model.config, rng=0), tokens,
                        config=TrainConfig(batch_size=4, max_iters=2))
    trainer.parallel = MPIDataParallel(model, bucket_mb=0.004)          # ~4 KB buckets
    for _ in range(2):
        a, b = trainer.train_step(), reference.train_step()
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-13)
    n = sum(p.data.size for p in model.parameters())
    assert trainer.parallel.last_bytes == 8 * (n + 1)
    assert 1 < trainer.parallel.last_calls <= 8 * (n + 1) // 4000 + 2
    for p, q in zip(model.parameters(), reference.model.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=0, atol=1e-13)


def test_without_mpi4py_the_error_names_the_install(monkeypatch):
    from numpyllm.distributed import MPIUnavailable, world
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(MPIUnavailable, match="pip install mpi4py mpich"):
        world()


SFT_WORKER = """
import sys
import numpy as np
from numpyllm.data.instruction import Instructions
from numpyllm.nn import GPT, GPTConfig
from numpyllm.training import TrainConfig, Trainer
from numpyllm.training.objectives import InstructionTuning
rng = np.random.default_rng(0)
# responses of 1..9 tokens: rows count very different numbers of targets
data = Instructions([rng.integers(1, 15, rng.integers(1, 5)) for _ in range(40)],
                    [np.append(rng.integers(1, 15, rng.integers(0, 9)), 15) for _ in range(40)],
                    [{}] * 40)
model = GPT(GPTConfig(vocab_size=17, block_size=16, n_layer=1, n_head=2, n_embd=8,
                      dtype="float64"), rng=0)
trainer = Trainer(model, data, config=TrainConfig(batch_size=6, max_iters=4, warmup_iters=1,
                  gradient_accumulation_steps=2), objective=InstructionTuning(pad_id=16))
if sys.argv[2] == "mpi":
    from numpyllm.distributed import MPIDataParallel
    trainer.parallel = MPIDataParallel(model)
losses = [trainer.train_step()["loss"] for _ in range(4)]
if trainer.parallel.writes_checkpoints:
    np.savez(sys.argv[1], losses=losses, **{n: p.data for n, p in model.named_parameters()})
"""


def test_ranks_weigh_their_rows_by_counted_targets(tmp_path):
    """Instruction tuning: each row counts its response tokens only, so the ranks' shares
    of a batch differ; the sum weighted by n_r / N_t is still the one-process gradient."""
    script = tmp_path / "sft.py"
    script.write_text(SFT_WORKER)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name, prefix in (("one", []), ("mpi", [mpiexec(), "-n", "3"])):
        done = subprocess.run([*prefix, sys.executable, str(script), str(tmp_path / name),
                               name], env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
    one, mpi = np.load(tmp_path / "one.npz"), np.load(tmp_path / "mpi.npz")
    assert one.files == mpi.files
    for key in one.files:
        np.testing.assert_allclose(mpi[key], one[key], rtol=0, atol=1e-10, err_msg=key)


ZERO_MEMORY = """
import json, sys
import numpy as np
from numpyllm.distributed import ZeRO, world
from numpyllm.nn import GPT, GPTConfig
from numpyllm.training import TrainConfig, Trainer
comm = world()
model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=2, n_head=2, n_embd=12), rng=0)
trainer = Trainer(model, np.arange(400) % 50, config=TrainConfig(batch_size=4))
zero = ZeRO(model, trainer.optimizer, comm, stage=int(sys.argv[1]))
trainer.parallel, trainer.optimizer = zero, zero.optimizer
trainer.train_step()
held = sum(s["exp_avg"].nbytes + s["exp_avg_sq"].nbytes for s in zero.optimizer.state)
rows = comm.gather({"rank": comm.rank, "memory": zero.memory(), "held": held,
                    "whole": 2 * 4 * sum(p.data.size for p in model.parameters())})
if comm.rank == 0:
    print(json.dumps(rows))
"""


@pytest.mark.parametrize("stage", [1, 2])
def test_zero_holds_one_nth_of_the_optimizer_state(tmp_path, stage):
    import json
    script = tmp_path / "zero_memory.py"
    script.write_text(ZERO_MEMORY)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([mpiexec(), "-n", "3", sys.executable, str(script), str(stage)],
                          env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    whole = rows[0]["whole"]                     # AdamW's two float32 moments, every weight
    rounding = 2 * 4 * 3             # the shards are ⌈P/3⌉ long: at most 2 elements off
    for row in rows:
        # the moments actually held, and what memory() says, are a third of the whole
        assert abs(row["held"] - whole / 3) <= rounding
        assert row["held"] <= row["memory"]["optimizer"] <= whole / 3 + rounding
        grads = row["memory"]["gradients"]
        assert grads == (row["memory"]["weights"] if stage == 1 else row["memory"]["optimizer"] // 2)
    assert sum(r["held"] for r in rows) == whole


TP_WORKER = """
import numpy as np
from numpyllm import Tensor
from numpyllm.autograd import gradcheck
from numpyllm.checks import perturb
from numpyllm.distributed import tensor_parallel, world
from numpyllm.nn import GPT, GPTConfig
comm = world()
rng = np.random.default_rng(0)
cfg = GPTConfig(vocab_size=13, block_size=6, n_layer=2, n_head=6, n_embd=12, dtype="float64",
                positions="{positions}", tie_weights={tie})
full = perturb(GPT(cfg, rng=1), np.random.default_rng(2))      # the same on every rank
split = perturb(GPT(cfg, rng=1), np.random.default_rng(2))
blocks = split.h
split, parts = tensor_parallel(split, comm, vocab={vocab})
x = rng.integers(0, 13, (2, 6))
y = rng.integers(0, 13, (2, 6))
y[0, :2] = -100                                   # ignored targets count nowhere
_, a = full(x, targets=y)
_, b = split(x, targets=y)
assert abs(a.item() - b.item()) < 1e-12, (a.item(), b.item())
a.backward(); b.backward()
theirs = dict(full.named_parameters())
for name, p in split.named_parameters():
    target, index = parts.get(name, (name, None))
    want = theirs[target].grad if index is None else theirs[target].grad[index(comm.rank)]
    assert np.allclose(p.grad, want, rtol=1e-10, atol=1e-12), name
# the split block as a whole, by finite differences of its input (the same on every rank;
# its gradient comes back through f's sum over the ranks)
h = Tensor(rng.standard_normal((2, 5, 12)), requires_grad=True)
R = rng.standard_normal((2, 5, 12))
assert gradcheck(lambda t: (blocks[0](t) * R).sum(), h)
print("ok", comm.rank)
"""


@pytest.mark.parametrize("positions, vocab, tie, ranks", [
    ("learned", False, True, 2), ("rope", False, True, 2),
    ("learned", True, True, 2), ("sinusoidal", True, False, 3), ("alibi", True, True, 2)],
    ids=["blocks", "blocks-rope", "vocab-tied", "vocab-untied-13-over-3", "alibi"])
def test_tensor_parallel_gradients_are_the_whole_model_s_slices(tmp_path, positions, vocab,
                                                                tie, ranks):
    """The loss equals the whole model's and each rank's gradient is its slice of the
    whole model's gradient: the blocks split, and (vocab) the table and head over a
    vocabulary of 13 (uneven over 3 ranks) with the parallel cross-entropy. ALiBi: each
    rank's heads take the slopes of their global indices (6 heads, 3 a rank, slopes that
    differ from head to head)."""
    script = tmp_path / "tp.py"
    script.write_text(TP_WORKER.replace("{positions}", positions).replace(
        "{vocab}", str(vocab)).replace("{tie}", str(tie)))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok") == ranks       # every rank (their lines may interleave)


LLAMA_TP_WORKER = """
import numpy as np
from numpyllm import Tensor
from numpyllm.autograd import gradcheck
from numpyllm.checks import perturb
from numpyllm.distributed import tensor_parallel, world
from numpyllm.nn import Llama, LlamaConfig
comm = world()
rng = np.random.default_rng(0)
cfg = LlamaConfig(vocab_size=13, block_size=6, n_layer=2, n_head={nh}, n_kv_head={nkv},
                  n_embd=16, head_dim=4, intermediate_size=12, dtype="float64",
                  attention_bias={bias},
                  tie_weights={tie}, sliding_window={window})
full = perturb(Llama(cfg, rng=1), np.random.default_rng(2))     # the same on every rank
split = perturb(Llama(cfg, rng=1), np.random.default_rng(2))
layers = split.layers
split, parts = tensor_parallel(split, comm, vocab={vocab})
x = rng.integers(0, 13, (2, 6))
y = rng.integers(0, 13, (2, 6))
y[0, :2] = -100
_, a = full(x, targets=y)
_, b = split(x, targets=y)
assert abs(a.item() - b.item()) < 1e-12, (a.item(), b.item())
a.backward(); b.backward()
theirs = dict(full.named_parameters())
mine = dict(split.named_parameters())
assert {parts.get(n, (n,))[0] for n in mine} == set(theirs)     # every weight, once
for name, p in mine.items():
    target, index = parts.get(name, (name, None))
    want = theirs[target].grad if index is None else theirs[target].grad[index(comm.rank)]
    assert p.grad.shape == want.shape, name
    assert np.allclose(p.grad, want, rtol=1e-10, atol=1e-12), name
h = Tensor(rng.standard_normal((2, 5, 16)), requires_grad=True)
R = rng.standard_normal((2, 5, 16))
assert gradcheck(lambda t: (layers[0](t) * R).sum(), h)
print("ok", comm.rank)
"""


@pytest.mark.parametrize("nh, nkv, bias, tie, vocab, window, ranks", [
    (4, 2, False, True, True, None, 2), (4, 2, True, False, True, None, 2),
    (6, 2, True, True, False, 3, 2), (4, 4, False, False, True, None, 4)],
    ids=["gqa-4q-2kv-tied", "qwen2-biases-untied", "gqa-6q-2kv-window-blocks",
         "mha-13-over-4"])
def test_tensor_parallel_llama_gradients_are_the_whole_model_s_slices(
        tmp_path, nh, nkv, bias, tie, vocab, window, ranks):
    """A Llama split over the ranks (grouped-query heads: each rank's query heads and the
    key/value heads they read; SwiGLU's units; the vocabulary) has the whole model's loss,
    and each rank's gradient is its slice of the whole model's; the split layer passes a
    finite-difference check of its input. Qwen2's q/k/v biases, tied and untied heads, a
    Mistral window, a vocabulary of 13 over 4 ranks."""
    script = tmp_path / "tp_llama.py"
    settings = dict(nh=nh, nkv=nkv, bias=bias, tie=tie, vocab=vocab, window=window)
    code = LLAMA_TP_WORKER
    for key, value in settings.items():
        code = code.replace("{%s}" % key, str(value))
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok") == ranks


def test_tensor_parallel_refuses_what_it_cannot_split(tmp_path, text):
    done = launch(3, ["train", "--data", text, *TINY, "--max_iters", "2", "--out",
                      tmp_path / "x", "--parallel", "tp"], tmp_path, expect=None)
    assert "needs the heads (n_head=4) divisible by 3" in done.stderr
    assert "Traceback" not in done.stderr


ZERO3_MEMORY = """
import json
import numpy as np
from numpyllm.distributed import ZeRO3, world
from numpyllm.distributed import zero3
from numpyllm.nn import GPT, GPTConfig
from numpyllm.training import TrainConfig, Trainer
comm = world()
live, peak = set(), [0]
gather, release = zero3._Unit.gather, zero3._Unit.release
def tracked_gather(unit):
    gather(unit)
    if unit is not outer[0]:
        live.add(id(unit))
        peak[0] = max(peak[0], len(live))
def tracked_release(unit):
    release(unit)
    live.discard(id(unit))
zero3._Unit.gather, zero3._Unit.release = tracked_gather, tracked_release
outer = [None]
model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=3, n_head=2, n_embd=12,
                      dropout=0.1), rng=0)
trainer = Trainer(model, np.arange(400) % 50, config=TrainConfig(batch_size=4,
                  gradient_accumulation_steps=2))
zero = ZeRO3(trainer, comm)
outer[0] = zero.outer
trainer.parallel = zero
for _ in range(2):
    trainer.train_step()
trainer.estimate_loss(2)
blocks = [p for u in zero.units[:-1] for p in u.params]
held = sum(u.shard.nbytes for u in zero.units)
whole = 4 * sum(u.S * comm.size for u in zero.units)
rows = comm.gather({"peak": peak[0], "held": held, "whole": whole,
                    "dropped": all(p.data.strides == (0,) * p.data.ndim for p in blocks)})
if comm.rank == 0:
    print(json.dumps(rows))
"""


def test_zero3_holds_a_shard_and_at_most_one_gathered_block(tmp_path):
    """Between steps every block's weights are dropped (a zero-byte view); during the
    forward, the recomputing backward and an evaluation, at most one block is gathered
    at a time; each rank's shards are a third of the (padded) weights. Dropout on: the
    recomputation rewinds the block's generator."""
    import json
    script = tmp_path / "zero3.py"
    script.write_text(ZERO3_MEMORY)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([mpiexec(), "-n", "3", sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    for row in rows:
        assert row["peak"] == 1 and row["dropped"]
        assert row["held"] * 3 == row["whole"]


def test_zero3_recomputes_each_block_with_the_forward_s_dropout():
    """In a world of one, ZeRO stage 3 with dropout == the plain Trainer step for step:
    the backward's recomputation rewinds each block's generator to the forward's draws
    (and leaves it where the forward did)."""
    from numpyllm.distributed import ZeRO3
    from numpyllm.nn import GPT, GPTConfig
    from numpyllm.training import TrainConfig, Trainer
    from numpyllm.training.data_parallel import DataParallel
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.2,
                    dtype="float64")
    tokens = np.random.default_rng(0).integers(0, 11, 400)
    plain = Trainer(GPT(cfg, rng=3), tokens, config=TrainConfig(batch_size=4, max_iters=3))
    plain.parallel = DataParallel(plain.model, threads=1)      # dropout draws: one thread's
    sharded = Trainer(GPT(cfg, rng=3), tokens, config=TrainConfig(batch_size=4, max_iters=3))
    sharded.parallel = ZeRO3(sharded)
    for _ in range(3):
        a, b = plain.train_step(), sharded.train_step()
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-12)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-10)
    sharded.parallel.prepare_checkpoint()
    whole, _ = sharded.parallel.to_save(None, None)
    mine = dict(whole.named_parameters())
    for name, q in plain.model.named_parameters():
        np.testing.assert_allclose(mine[name].data, q.data, rtol=0, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------------- a Llama, by CLI
@pytest.fixture(scope="module")
def llama_dirs(tmp_path_factory, text):
    """Two tiny Llamas (grouped-query: 4 query heads, 2 key/value heads) and their BPE
    tokenizer, as Hugging Face directories for --init-from: "qwen2" with q/k/v biases and
    an untied head, "tied" a plain Llama whose head is its token table."""
    from numpyllm.hub import save_pretrained
    from numpyllm.nn import Llama, LlamaConfig
    from numpyllm.tokenizers import BPETokenizer
    tokenizer = BPETokenizer().train(text.read_text()[:4000], 264)
    dirs = {}
    for kind in ("qwen2", "tied"):
        model = Llama(LlamaConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=4,
                                  n_head=4, n_kv_head=2, n_embd=16, intermediate_size=24,
                                  attention_bias=kind == "qwen2", tie_weights=kind == "tied"),
                      rng=0)
        dirs[kind] = tmp_path_factory.mktemp(kind)
        save_pretrained(model, tokenizer, dirs[kind])
    return dirs


LLAMA_ARGS = ["--dtype", "float64", "--block_size", "16", "--eval_iters", "2", "--no_plot",
              "--samples", "0", "--quiet", "--batch_size", "4", "--learning_rate", "3e-3",
              "--grad_clip", "0.05"]


@pytest.mark.parametrize("kind, strategy, then, objective", [
    ("qwen2", "tp", "pp", "clm"), ("qwen2", "pp", "tp", "clm"), ("tied", "pp", "pp", "clm"),
    ("tied", "tp", "tp", "clm"), ("tied", "tp", "tp", "prefix_lm"),
    ("qwen2", "zero3", "zero3", "clm"), ("tied", "zero3", "tp", "clm")])
def test_a_llama_trains_on_2_ranks_as_one_process_and_resumes(tmp_path, text, llama_dirs,
                                                              kind, strategy, then, objective):
    """--init-from a Llama directory: 2 ranks (tensor parallel: grouped-query heads split;
    pipeline: 2 stages of 2 layers) train as one process (weights after AdamW, every
    logged loss, clipping by the global norm on every step); a run saved on 2 ranks (an
    ordinary Llama checkpoint, which numpyllm eval reads) and resumed on 2 ranks, under
    the same or the other strategy, == the uninterrupted one-process run. prefix_lm: the
    layers split, the table and head whole on every rank."""
    args = ["train", "--init-from", llama_dirs[kind], "--data", text, *LLAMA_ARGS,
            "--objective", objective,
            "--max_iters", "4", "--eval_interval", "2", "--lr_decay_iters", "4",
            "--gradient_accumulation_steps", "2"]
    launch(1, [*args, "--out", tmp_path / "one"], tmp_path)
    done = launch(2, [*args, "--out", tmp_path / "many", "--parallel", strategy], tmp_path)
    assert "over 2 MPI ranks" in done.stdout
    if strategy == "tp":
        assert "2 heads (1 key/value) and 12 MLP units of each block per rank" in done.stdout
    same_run(tmp_path / "one", tmp_path / "many")
    assert load_checkpoint(tmp_path / "many" / "ckpt").model_config["type"] == "Llama"
    scored = launch(1, ["eval", "--ckpt", tmp_path / "many" / "ckpt", "--data", text,
                        "--context", "16"], tmp_path)
    assert "perplexity" in scored.stdout
    # stopped at step 2 on 2 ranks, resumed on 2 ranks to step 4
    launch(2, [*args, "--out", tmp_path / "resumed", "--max_iters", "2", "--parallel",
               strategy], tmp_path)
    launch(2, ["train", "--out", tmp_path / "resumed", "--resume", "--max_iters", "4",
               "--quiet", "--no_plot", "--samples", "0", "--parallel", then], tmp_path)
    same_run(tmp_path / "one", tmp_path / "resumed")


def test_alibi_trains_under_tensor_parallelism_as_one_process(tmp_path, text):
    """ALiBi's slopes follow the global head index: 2 ranks of 2 heads each train as one
    process of 4 heads."""
    args = ["train", "--data", text, *TINY, "--positions", "alibi", "--batch_size", "4",
            "--max_iters", "3", "--eval_interval", "3", "--grad_clip", "0.05"]
    launch(1, [*args, "--out", tmp_path / "one"], tmp_path)
    launch(2, [*args, "--out", tmp_path / "tp", "--parallel", "tp"], tmp_path)
    same_run(tmp_path / "one", tmp_path / "tp")


def test_a_llama_split_it_cannot_make_is_one_line(tmp_path, text, llama_dirs):
    done = launch(3, ["train", "--init-from", llama_dirs["qwen2"], "--data", text, *LLAMA_ARGS,
                      "--max_iters", "2", "--out", tmp_path / "x", "--parallel", "tp"],
                  tmp_path, expect=None)
    lines = [ln for ln in done.stderr.splitlines() if "numpyllm train: error" in ln]
    assert lines and "needs the query heads (n_head=4) divisible by 3" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("strategy", ["tp", "pp", "zero3", "dp"])
def test_a_run_with_dropout_resumes_as_uninterrupted(tmp_path, text, strategy):
    """Dropout draws from the model's generators, whose states the checkpoint carries: a
    split model's consolidated checkpoint carries the ranks' own (a pipeline's stages each
    draw their layers' masks: one state per stage), so 3 steps + a resumed 3 on the same
    ranks == 6 uninterrupted."""
    args = ["train", "--data", text, *TINY, "--batch_size", "4", "--max_iters", "6",
            "--eval_interval", "3", "--lr_decay_iters", "6", "--dropout", "0.2",
            "--parallel", strategy]
    launch(2, [*args, "--out", tmp_path / "whole"], tmp_path)
    launch(2, [*args, "--out", tmp_path / "split", "--max_iters", "3"], tmp_path)
    launch(2, ["train", "--out", tmp_path / "split", "--resume", "--max_iters", "6", "--quiet",
               "--no_plot", "--samples", "0", "--parallel", strategy], tmp_path)
    same_run(tmp_path / "whole", tmp_path / "split")

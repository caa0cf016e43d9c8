"""runtime: keep_freed_memory applied on glibc Linux and harmless elsewhere; BLAS thread
counts scoped and restored; numbers unchanged by either."""
import platform
import sys

import numpy as np
import pytest

from numpyllm.runtime import keep_freed_memory


def test_keep_freed_memory_applies_on_glibc_and_changes_no_result():
    before = np.linalg.norm(np.arange(1e6))
    applied = keep_freed_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert applied is True
    else:
        assert applied in (True, False)
    big = [np.ones(2_000_000) for _ in range(3)]       # allocations above the old threshold
    del big
    assert np.linalg.norm(np.arange(1e6)) == before


def test_blas_threads_is_scoped_and_restored():
    from numpyllm.runtime import blas_threads, get_blas_threads, set_blas_threads
    before = get_blas_threads()
    if before is None:
        pytest.skip("numpy's BLAS here is not an OpenBLAS numpyllm can reach")
    a = np.random.default_rng(0).standard_normal((300, 300))
    expected = a @ a
    with blas_threads(1):
        assert get_blas_threads() == 1
        np.testing.assert_allclose(a @ a, expected, rtol=1e-12, atol=1e-10)
    assert get_blas_threads() == before
    with pytest.raises(RuntimeError):
        with blas_threads(1):
            raise RuntimeError("inside")
    assert get_blas_threads() == before
    assert set_blas_threads(before) is True


@pytest.mark.parametrize("bad", [0, -2, 1.0, True])
def test_set_blas_threads_refuses_non_positive_counts(bad):
    from numpyllm.runtime import set_blas_threads
    with pytest.raises(ValueError, match="positive integer"):
        set_blas_threads(bad)


def test_blas_core_names_openblas_kernels_or_none():
    from numpyllm.runtime import blas_core, get_blas_threads
    core = blas_core()
    assert (core is None) == (get_blas_threads() is None)
    if core is not None:
        assert isinstance(core, str) and core


def test_numpys_own_openblas_comes_first():
    # scipy brings an OpenBLAS of its own: the thread count must be numpy's
    pytest.importorskip("scipy.linalg")
    from numpyllm.runtime import _loaded_openblas_paths
    paths = _loaded_openblas_paths()
    if not paths:
        pytest.skip("no OpenBLAS library found")
    numpy_dir = __import__("os").path.dirname(np.__file__)
    owned = [p for p in paths if p.startswith(numpy_dir) or "numpy.libs" in p]
    if owned:
        assert paths[0] == owned[0]


FAULTS = """
import resource
import numpy as np
from numpyllm.nn import GPT, GPTConfig
from numpyllm.optim import AdamW
model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128), rng=0)
opt = AdamW(model.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
x, y = rng.integers(0, 65, (12, 64)), rng.integers(0, 65, (12, 64))
def step():
    _, loss = model(x, targets=y)
    loss.backward()
    opt.step()
    opt.zero_grad()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="glibc's malloc settings")
def test_a_plain_training_loop_reuses_its_memory_unless_told_not_to(tmp_path):
    """The first backward pass keeps freed memory for reuse: a user's own loop, with no
    setting of its own, stops faulting its temporaries in every step (page faults are
    counted, not timed). NUMPYLLM_MALLOC=default leaves glibc as it comes."""
    import os
    import subprocess
    from pathlib import Path
    script = tmp_path / "faults.py"
    script.write_text(FAULTS)
    root = str(Path(__file__).resolve().parents[1])

    def faults(**env):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=root, **env), timeout=120)
        assert done.returncode == 0, done.stderr
        return float(done.stdout.split()[-1])
    kept, default = faults(), faults(NUMPYLLM_MALLOC="default")
    assert kept * 20 < default, (kept, default)


def test_restore_malloc_defaults_settles_the_question():
    from numpyllm import runtime
    was = runtime._malloc_settled
    try:
        runtime.restore_malloc_defaults()
        assert runtime._malloc_settled and not runtime.keep_freed_memory_for_training()
    finally:
        runtime._malloc_settled = was
        keep_freed_memory()


THREAD_FAULTS = """
import resource, sys
import numpy as np
from concurrent.futures import ThreadPoolExecutor
from numpyllm.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
pool = ThreadPoolExecutor(1)
def work():     # 40 x 4 MB of activations on a thread: more than one of glibc's 64 MB heaps
    kept = [np.ones(1 << 20, np.float32) for _ in range(40)]
    return sum(float(a[0]) for a in kept)
for _ in range(3):
    pool.submit(work).result()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    pool.submit(work).result()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="glibc's malloc settings")
def test_a_worker_thread_reuses_its_memory_too(tmp_path):
    """A thread's own glibc arena unmaps a heap that becomes wholly free, whatever the
    trim threshold: keep_freed_memory() also gives new threads the main arena, so a
    data-parallel thread's 160 MB of temporaries fault in once, not every step."""
    import os
    import subprocess
    from pathlib import Path
    script = tmp_path / "thread_faults.py"
    script.write_text(THREAD_FAULTS)
    root = str(Path(__file__).resolve().parents[1])

    def faults(mode):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        done = subprocess.run([sys.executable, str(script), mode], capture_output=True,
                              text=True, env=dict(env, PYTHONPATH=root), timeout=120)
        assert done.returncode == 0, done.stderr
        return float(done.stdout.split()[-1])
    kept, default = faults("keep"), faults("default")
    assert default > 10_000                      # 40 MB+ refaulted per step as glibc comes
    assert kept < 500, (kept, default)


def test_data_parallel_settles_malloc_before_its_threads_allocate(monkeypatch):
    from numpyllm import runtime
    from numpyllm.nn.gpt import GPT, GPTConfig
    from numpyllm.training.data_parallel import DataParallel
    calls = []
    monkeypatch.setattr(runtime, "_malloc_settled", False)
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda *a: calls.append(a) or True)
    DataParallel(GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4),
                     rng=0), threads=2)
    assert calls == [()] and runtime._malloc_settled

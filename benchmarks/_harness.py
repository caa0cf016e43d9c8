"""Process-alternation harness for the framework comparisons in benchmarks/.

Each side of a comparison (numpyllm, PyTorch, ...) runs in a fresh Python process per
round: two frameworks in one process disturb each other (their thread pools spin on the
same cores, one's malloc settings change the other's page faults), and a process that
has run the other framework is not what a user runs. The rounds alternate the order of
the sides (A B, B A, A B, ...) so that a drift in machine load hits both alike, and
every process gets the same thread count explicitly:

- ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` (every BLAS and
  OpenMP runtime either side can load) and ``NUMPYLLM_NUM_THREADS`` (numpyllm's own
  threads: `numpyllm.parallel`, `numpyllm.training.data_parallel`) in the child's environment;
- ``torch.set_num_threads(n)`` in a PyTorch worker (`torch_threads`).

A benchmark script is both the parent and the worker: ``script.py --worker SIDE
--worker-config JSON`` runs one side and prints one JSON line (its timings and what it
observed: thread counts, BLAS kernels, peak RSS) as the last line of stdout. The parent
(`alternate`) starts the workers with ``cwd`` and ``PYTHONPATH`` at the repository root,
so they import this checkout's numpyllm, and only the side's own imports: a numpyllm
worker never imports torch, and vice versa.

Reported (`report_pair`): every round's figure, the median over rounds, the range, the
ratio of the medians, and the ratio within each round (the two sides of one round ran
back to back, so their ratio is the least disturbed by load drift).

This module imports only the standard library.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:            # the parent imports this checkout's numpyllm too,
    sys.path.insert(0, str(REPO))        # as its workers do (PYTHONPATH), installed or not
START_LOAD: str | None = None    # load average before the first worker (ours add to it)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMPYLLM_NUM_THREADS")


# ---------------------------------------------------------------------- parent side
def child_env(threads: int, extra: dict | None = None) -> dict:
    """The environment of a worker: ours, with the thread variables set to `threads`
    and the repository root first on PYTHONPATH."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(extra or {})
    return env


def run_worker(script, side: str, config: dict, threads: int, *, show_stderr: bool = False,
               timeout: float | None = None) -> dict:
    """Run ``script --worker side`` in a fresh process; its result (the last stdout line,
    JSON). A failing worker raises with its stderr."""
    cmd = [sys.executable, str(script), "--worker", side, "--worker-config", json.dumps(config)]
    proc = subprocess.run(cmd, cwd=str(REPO), env=child_env(threads), text=True,
                          stdout=subprocess.PIPE,
                          stderr=None if show_stderr else subprocess.PIPE, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {side!r} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{(proc.stderr or '')[-4000:]}")
    return json.loads(lines[-1])


def alternate(script, sides: list, rounds: int, config_of, threads: int, *,
              on_result=None) -> dict:
    """Run every side once per round, each in its own process, the order reversed every
    other round (A B C, C B A, A B C ...). `config_of(side)` gives a side's config.
    Returns ``{side: [result of round 0, round 1, ...]}``; `on_result(side, round,
    result)` is called as each arrives (to check results early)."""
    global START_LOAD, WATCH
    START_LOAD, WATCH = load(), CpuWatch()            # what print_setup reports
    results = {side: [] for side in sides}
    for r in range(rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            t0, watch = time.perf_counter(), CpuWatch()
            result = run_worker(script, side, config_of(side), threads)
            result["_wall"] = time.perf_counter() - t0
            others, _ = watch.shares()
            results[side].append(result)
            print(f"  round {r + 1}/{rounds}: {side} done ({result['_wall']:.1f} s; other "
                  f"processes used {'?' if others is None else f'{100 * others:.0f}%'} of the "
                  f"CPUs meanwhile)", file=sys.stderr, flush=True)
            if on_result is not None:
                on_result(side, r, result)
    return results


def load() -> str:
    """The 1-, 5- and 15-minute load averages, as `uptime` prints them."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_setup(threads: int, rounds: int, observed: dict) -> None:
    """The lines a skeptic needs before any figure: machine, thread counts, BLAS kernels.
    `observed` maps a side to one worker result (what that process saw)."""
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"load average before the first worker {START_LOAD or load()}, now {load()} "
          "(the workers' own threads count in it)")
    print(f"threads: {threads} on every side (" + ", ".join(f"{v}={threads}" for v in THREAD_VARS)
          + "; torch.set_num_threads in PyTorch workers)")
    print(openblas_env_line())
    width = max(len(side) for side in observed)
    for side, res in observed.items():
        seen = res.get("env", {})
        print(f"  {side:{width}s}  " + "; ".join(f"{k} {v}" for k, v in seen.items()))
    print(f"rounds: {rounds}, each side in a fresh process per round, order alternating")
    busy = busy_warning()
    if busy:
        print(busy)


def openblas_env_line() -> str:
    """Whether the environment forces numpy's OpenBLAS kernels. Some machines set
    OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) because older OpenBLAS builds failed on their
    CPUs; a current numpy then runs slower kernels than its own choice (AVX2 instead of
    AVX-512, say), which is not what ``pip install numpy`` gives a user. To measure that,
    unset both for the benchmark's command alone: ``env -u OPENBLAS_CORETYPE -u
    OPENBLAS_L2_SIZE python benchmarks/...``; the workers report the kernels they ran."""
    forced = {v: os.environ[v] for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
              if os.environ.get(v)}
    if not forced:
        return ("OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are not set: numpy's OpenBLAS picks "
                "its kernels for this CPU")
    return ("set in the environment: " + ", ".join(f"{k}={v}" for k, v in forced.items())
            + " (numpy's OpenBLAS runs those kernels, not its own choice for this CPU; "
            "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` measures that)")


def blas_of_each(threads: int) -> list:
    """One line per framework: the BLAS kernels a fresh process of it runs here, in a
    worker's environment (for benchmarks whose sides are whole commands)."""
    probes = {"numpy": "import sys; sys.path.insert(0, '.'); from benchmarks import _harness as H; "
                       "print(H.numpy_env())",
              "torch": "import sys; sys.path.insert(0, '.'); from benchmarks import _harness as H; "
                       f"print(H.torch_threads({threads}))"}
    lines = []
    for name, code in probes.items():
        proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), text=True,
                              env=child_env(threads), capture_output=True)
        seen = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() \
            else f"not importable ({(proc.stderr.strip().splitlines() or ['?'])[-1]})"
        lines.append(f"  {name}: {seen}")
    return lines


def busy_warning() -> str:
    """A warning when other processes used the CPUs while the benchmark ran
    (multithreaded BLAS and OpenMP then wait on descheduled threads: both sides slow
    down, by different factors, and the ratio means little)."""
    if WATCH is None:
        return ""
    others, ours = WATCH.shares()
    if others is None:
        return ""
    line = (f"other processes used {100 * others:.0f}% of the {os.cpu_count()} CPUs while the "
            f"benchmark ran (its own processes {100 * ours:.0f}%)")
    if others > 0.05:
        line += ("\nWARNING: other work competed for the cores: these figures are not the "
                 "machine's own. Measure on an idle machine.")
    return line


class CpuWatch:
    """CPU time used by the whole machine (/proc/stat) and by this process and its
    children (getrusage) since `start`: the difference is what other processes used."""

    def __init__(self):
        self.t0, self.busy0, self.ours0 = time.monotonic(), self._busy(), self._ours()

    @staticmethod
    def _busy():
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours():
        import resource
        return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                      resource.getrusage(resource.RUSAGE_CHILDREN)))

    def shares(self):
        """(others, ours): fractions of all CPUs' time since start."""
        busy = self._busy()
        if busy is None or self.busy0 is None:
            return None, None
        capacity = (time.monotonic() - self.t0) * (os.cpu_count() or 1)
        ours = self._ours() - self.ours0
        return max(0.0, (busy - self.busy0 - ours) / capacity), ours / capacity


WATCH: CpuWatch | None = None


# ---------------------------------------------------------------------- statistics
def med(values) -> float:
    return statistics.median(values)


def fmt_range(values, scale: float = 1.0, digits: int = 1) -> str:
    return f"{min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f}"


def report_pair(label_a: str, a: list, label_b: str, b: list, *, unit: str = "ms",
                scale: float = 1e3, digits: int = 1, lower_is_better: bool = True) -> dict:
    """Print per-round values of two sides (paired by round), their medians and ranges,
    the ratio of the medians and the per-round ratios (a / b). Returns the figures."""
    ratios = [x / y for x, y in zip(a, b)]
    width = max(len(label_a), len(label_b))
    for label, vals in ((label_a, a), (label_b, b)):
        print(f"    {label:{width}s} per round: " + " ".join(f"{v * scale:.{digits}f}" for v in vals)
              + f" {unit}; median {med(vals) * scale:.{digits}f}, range {fmt_range(vals, scale, digits)}")
    ratio = med(a) / med(b)
    print(f"    ratio {label_a} / {label_b}: {ratio:.2f} (ratio of medians); per round "
          + " ".join(f"{r:.2f}" for r in ratios) + f" (range {min(ratios):.2f}-{max(ratios):.2f})"
          + ("" if lower_is_better else "  [higher is better]"))
    return {"median_a": med(a), "median_b": med(b), "ratio": ratio,
            "round_ratios": ratios}


# ---------------------------------------------------------------------- worker side
def worker_args(argv=None):
    """``(side, config)`` if this process was started as a worker, else None."""
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" not in argv:
        return None
    side = argv[argv.index("--worker") + 1]
    config = json.loads(argv[argv.index("--worker-config") + 1])
    return side, config


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MiB (ru_maxrss as a fallback: on
    Linux it can carry the parent's peak over fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result: dict) -> None:
    """Print a worker's result as the last line of stdout."""
    result.setdefault("peak_rss_mb", peak_rss_mb())
    sys.stdout.flush()
    print(json.dumps(result), flush=True)


def numpy_env() -> dict:
    """What a numpy / numpyllm process sees: BLAS kernels and thread counts."""
    import numpy as np

    from numpyllm import parallel, runtime
    return {"numpy": np.__version__, "BLAS": f"OpenBLAS {runtime.blas_core()} kernels"
            if runtime.blas_core() else "not OpenBLAS",
            "BLAS threads": runtime.get_blas_threads(),
            "numpyllm threads": parallel.num_threads(),
            "torch imported": "torch" in sys.modules}


def torch_threads(n: int) -> dict:
    """Set PyTorch's intra-op threads to `n`; what the process sees."""
    import torch
    torch.set_num_threads(n)
    return {"torch": torch.__version__,
            "BLAS": "MKL" if torch.backends.mkl.is_available() else "not MKL",
            "ATen kernels": torch.backends.cpu.get_cpu_capability(),
            "torch threads": torch.get_num_threads()}


def report_decoding_probes(results: dict, names: dict, probes: dict,
                           ours: str = "numpyllm", ref: str = "pytorch-kv") -> None:
    """The tail of a decoding comparison: each side's median time of one token's
    matrix-vector products (`probes`: result key -> what it multiplies; decoding is a chain
    of them, so they show how much of a ratio is the BLAS library's), each side's peak RSS,
    and the load average. `results`: side -> its workers' results, `names`: side -> label."""
    sides = list(results)
    print("  one token's matrix-vector products in each process (median µs; decoding is a "
          "chain of them, so these show how much of a ratio is the BLAS library's):")
    for key, what in probes.items():
        t = {s: statistics.median(r["probes"][key] for r in results[s]) for s in sides}
        print(f"    {what}: " + "; ".join(f"{names[s]} {t[s] * 1e6:.0f}" for s in sides)
              + f" ({names[ours]} / {names[ref]}: {t[ours] / t[ref]:.2f})")
    print("  peak RSS (VmHWM, median over rounds): " + "; ".join(
        f"{names[s]} {statistics.median(r['peak_rss_mb'] for r in results[s]):.0f} MB"
        for s in sides))
    print(f"  load average at end: {load()}")

"""Loading Hugging Face model directories: numpyllm's ``load_pretrained`` against
transformers' ``AutoModelForCausalLM.from_pretrained``, the same directories, each side in
its own fresh process per round, the rounds alternating, the same thread count on both.

    python benchmarks/bench_load.py                  # GPT-2 small and SmolLM2-135M's shapes
    python benchmarks/bench_load.py --rounds 6
    python benchmarks/bench_load.py --model gpt2     # one shape
    python benchmarks/bench_load.py --quick          # tiny shapes, 1 round (a smoke run)

The directories (random weights: nothing is downloaded) are written once by transformers
(``Model(config).save_pretrained``, seed 0) into a cache (``--cache``, default
benchmarks/.cache, ignored by git; ``--quick`` uses a temporary directory), three per
shape, the same weights in each: ``f32`` (one model.safetensors in float32), ``bf16``
(``model.to(torch.bfloat16).save_pretrained``) and ``f32-sharded``
(``max_shard_size="100MB"``, with model.safetensors.index.json). Shapes:

- ``gpt2``: GPT2LMHeadModel, GPT-2 small (12 layers, 768 wide, 12 heads, vocabulary 50257,
  1024 positions, tied head; 124M parameters);
- ``smollm2``: LlamaForCausalLM, SmolLM2-135M (30 layers, 576 wide, 9 heads, 3 key/value
  heads, MLP 1536, vocabulary 49152, tied, rope_theta 100000, 8192 positions; 135M).

The sides, both asked for float32 weights:

- **numpyllm**: ``numpyllm.hub.load_pretrained(directory, "float32")``;
- **transformers**: ``AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)``
  (default attention; ``HF_HUB_OFFLINE=1``).

Each worker times its imports (numpy and numpyllm.hub; torch, transformers and the
architecture's modeling module, which transformers otherwise imports lazily inside the
first from_pretrained) and, separately, the load call alone ("load"), then the call plus
one read of a value in every 4 KiB page of every weight ("ready"). The second is the same
work on both sides: transformers maps float32 safetensors files and hands out tensors
that are views of the map, so its call returns before the weights are read (the first
forward pass reads them), where numpyllm copies every weight into its own arrays.

Memory: right before the call the worker resets its peak resident set
(``/proc/self/clear_refs``, so that the imports' own peak does not hide the load's) and
reads its resident set; after the call, and again after the read, the peak (VmHWM) and
the resident set. Reported: their increase over the resident set before the call,
divided by the size of the weights in float32 (the model's parameters, a tied matrix
once), and how much of the resident increase is file-backed (pages of a mapped file,
shared with the page cache). The files are read once by the parent before the rounds,
so every load reads them from the page cache (a cold cache adds the same disk time to
both sides).

In the first round each side also computes the logits of a fixed 8-token input; the
benchmark stops with an error unless they agree to 1e-4 (so both loaded the same
weights into the same model). Printed: thread counts and kernels each process saw, how
much CPU other processes used meanwhile, every round's figures, medians, ranges, the
ratio of medians and the ratio within each round, then a summary table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

SHAPES = {   # name -> (transformers class, config keyword arguments)
    "gpt2": ("GPT2LMHeadModel", dict(vocab_size=50257, n_positions=1024, n_embd=768,
                                     n_layer=12, n_head=12, tie_word_embeddings=True)),
    "smollm2": ("LlamaForCausalLM", dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
        rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
        hidden_act="silu")),
}
QUICK = {    # --quick: the same architectures, tiny
    "gpt2": ("GPT2LMHeadModel", dict(vocab_size=500, n_positions=64, n_embd=32, n_layer=2,
                                     n_head=4, tie_word_embeddings=True)),
    "smollm2": ("LlamaForCausalLM", dict(
        vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
        hidden_act="silu")),
}
VARIANTS = ("f32", "bf16", "f32-sharded")
SIDES = {"numpyllm": "numpyllm load_pretrained", "transformers": "transformers from_pretrained"}
WEIGHT_FILES = (".safetensors", ".json")
INPUT_LEN = 8
TOLERANCE = 1e-4
PAGE_FLOATS = 1024                 # float32 values in a 4 KiB page


# ====================================================================== memory
def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """This process's resident set now (VmRSS), MiB."""
    kb = _status_kb("VmRSS")
    if kb is None:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return kb / 1024


def reset_peak() -> bool:
    """Reset VmHWM to the current resident set (Linux: write 5 to clear_refs). False if
    the kernel refused: the peak then includes the imports' (ru_maxrss behaves so too)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 1024


def _measured_load(load, touch) -> dict:
    """Call `load()` between memory and time readings, then `touch(result)` (read one
    value of every page of every weight: a memory-mapped weight is then resident, as
    after a first forward pass). The result and the figures."""
    import gc
    gc.collect()
    reset = reset_peak()
    before, file_before = rss_mb(), _status_kb("RssFile")
    t0 = time.perf_counter()
    result = load()
    seconds = time.perf_counter() - t0
    figures = {"load_s": seconds, "rss_before_mb": before, "peak_mb": H.peak_rss_mb(),
               "rss_after_mb": rss_mb(), "peak_reset": reset}
    touch(result)
    figures.update(ready_s=time.perf_counter() - t0, ready_peak_mb=H.peak_rss_mb(),
                   ready_rss_mb=rss_mb())
    if file_before is not None:
        figures["ready_file_mb"] = (_status_kb("RssFile") - file_before) / 1024
    return result, figures


def _input_ids(vocab: int):
    import numpy as np
    return np.random.default_rng(1).integers(0, vocab, size=(1, INPUT_LEN))


# ====================================================================== workers
def worker_numpyllm(cfg: dict) -> None:
    t0 = time.perf_counter()
    import numpy as np

    from numpyllm import no_grad
    from numpyllm.hub import load_pretrained
    import_s = time.perf_counter() - t0
    env = H.numpy_env()
    (model, _), figures = _measured_load(
        lambda: load_pretrained(cfg["dir"], "float32"),
        lambda loaded: [float(p.data.reshape(-1)[::PAGE_FLOATS].sum())
                        for _, p in loaded[0].named_parameters()])
    params = {id(p): p for _, p in model.named_parameters()}     # a tied matrix once
    figures["weights_mb"] = sum(p.data.size * 4 for p in params.values()) / 2**20
    figures["dtype"] = str(next(iter(params.values())).data.dtype)
    if cfg.get("logits"):
        with no_grad():
            logits = model(_input_ids(cfg["vocab"]))[0].data
        np.save(cfg["logits"], logits.astype(np.float32))
    H.emit({"import_s": import_s, **figures, "env": env})


def worker_transformers(cfg: dict) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    t0 = time.perf_counter()
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    getattr(transformers, cfg["hf_class"])             # the lazy import of its modeling module
    import_s = time.perf_counter() - t0
    env = H.torch_threads(cfg["threads"])
    env["transformers"] = transformers.__version__
    model, figures = _measured_load(
        lambda: AutoModelForCausalLM.from_pretrained(cfg["dir"], dtype=torch.float32),
        lambda loaded: [float(p.detach().reshape(-1)[::PAGE_FLOATS].sum())
                        for p in loaded.parameters()])
    params = list(model.parameters())                  # unique: a tied matrix once
    figures["weights_mb"] = sum(p.numel() * 4 for p in params) / 2**20
    figures["dtype"] = str(params[0].dtype)
    env["attention"] = model.config._attn_implementation
    if cfg.get("logits"):
        with torch.no_grad():
            logits = model(torch.as_tensor(_input_ids(cfg["vocab"]))).logits
        np.save(cfg["logits"], logits.float().numpy())
    H.emit({"import_s": import_s, **figures, "env": env})


def worker_make(cfg: dict) -> None:
    """Write one shape's directories with transformers (random weights, seed 0)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    cls_name, kwargs = cfg["shape"]
    model_cls = getattr(transformers, cls_name)
    config_cls = model_cls.config_class
    torch.manual_seed(0)
    model = model_cls(config_cls(**kwargs)).eval()
    done = {}
    for variant, path in cfg["dirs"].items():
        path = Path(path)
        if path.exists():
            shutil.rmtree(path)
        if variant == "f32":
            model.save_pretrained(path)
        elif variant == "f32-sharded":
            model.save_pretrained(path, max_shard_size=cfg["shard_size"])
        elif variant == "bf16":
            model.to(torch.bfloat16).save_pretrained(path)
            model.to(torch.float32)        # (bf16 last: the others keep the float32 values)
        (path / "stamp.json").write_text(json.dumps(cfg["stamp"], sort_keys=True))
        done[variant] = str(path)
    H.emit({"dirs": done})


WORKERS = {"numpyllm": worker_numpyllm, "transformers": worker_transformers,
           "make": worker_make}


# ====================================================================== parent
def stamp_of(name: str, shape, shard_size: str) -> dict:
    import importlib.metadata as md
    return {"shape": name, "config": shape, "shard_size": shard_size, "seed": 0,
            "transformers": md.version("transformers"), "torch": md.version("torch")}


def make_dirs(name: str, shape, cache: Path, shard_size: str, threads: int) -> dict:
    """``{variant: directory}``, written (in a worker process) unless the cache holds
    them from the same shape, seed and library versions."""
    stamp = stamp_of(name, shape, shard_size)
    dirs = {v: cache / f"{name}-{v}" for v in VARIANTS}
    if all((d / "stamp.json").is_file()
           and json.loads((d / "stamp.json").read_text()) == json.loads(json.dumps(stamp))
           for d in dirs.values()):
        print(f"  {name}: directories found in {cache}", flush=True)
        return dirs
    print(f"  {name}: writing the directories into {cache} with transformers ...", flush=True)
    t0 = time.perf_counter()
    cache.mkdir(parents=True, exist_ok=True)
    H.run_worker(__file__, "make", {"shape": shape, "dirs": {v: str(d) for v, d in dirs.items()},
                                    "shard_size": shard_size, "stamp": stamp}, threads)
    print(f"  {name}: written in {time.perf_counter() - t0:.0f} s", flush=True)
    return dirs


def weight_files(directory: Path) -> list:
    return sorted(p for p in directory.iterdir() if p.name.endswith(WEIGHT_FILES))


def warm(directory: Path) -> int:
    """Read every file once (into the page cache); their total size in bytes."""
    total = 0
    for p in weight_files(directory):
        with open(p, "rb") as f:
            while chunk := f.read(1 << 24):
                total += len(chunk)
    return total


def check_logits(tmp: str, label: str):
    """`on_result` callback: after both sides' first round, compare their logits."""
    def check(side, r, result):
        paths = [os.path.join(tmp, f"{label}-{s}.npy") for s in SIDES]
        if r != 0 or not all(os.path.exists(p) for p in paths):
            return
        import numpy as np
        ours, theirs = (np.load(p) for p in paths)
        if ours.shape != theirs.shape:
            raise AssertionError(f"{label}: logits of shapes {ours.shape} and {theirs.shape}")
        diff = float(np.max(np.abs(ours - theirs)))
        if not diff <= TOLERANCE:
            raise AssertionError(f"{label}: the logits differ by up to {diff:.2e} "
                                 f"(> {TOLERANCE}): not the same model")
        check.diff, check.scale = diff, float(np.max(np.abs(theirs)))
    check.diff = None
    return check


def run_directory(label: str, directory: Path, hf_class: str, vocab: int, args,
                  tmp: str) -> dict:
    size = warm(directory)
    shards = [p.name for p in weight_files(directory) if p.name.endswith(".safetensors")]
    print(f"\ndirectory {label}: {len(shards)} safetensors file{'s' * (len(shards) > 1)}, "
          f"{size / 2**20:.0f} MB on disk (read once: in the page cache)", flush=True)
    written = set()

    def config_of(side):       # the logits once per side: in its first process
        cfg = {"dir": str(directory), "hf_class": hf_class, "vocab": vocab,
               "threads": args.threads}
        if side not in written:
            written.add(side)
            cfg["logits"] = os.path.join(tmp, f"{label}-{side}.npy")
        return cfg
    check = check_logits(tmp, label)
    results = H.alternate(__file__, list(SIDES), args.rounds, config_of, args.threads,
                          on_result=check)
    H.print_setup(args.threads, args.rounds, {SIDES[s]: results[s][0] for s in SIDES})
    weights = {s: results[s][0]["weights_mb"] for s in SIDES}
    if abs(weights["numpyllm"] - weights["transformers"]) > 0.01 * weights["transformers"]:
        print(f"  NOTE: the models' parameters differ in size: {weights}")
    for s in SIDES:
        if not all(r["peak_reset"] for r in results[s]):
            print(f"  NOTE: {SIDES[s]}: the peak could not be reset before the load: its peak "
                  "includes the imports'")
    print(f"  logits of an {INPUT_LEN}-token input agree: largest difference "
          f"{check.diff:.1e} (largest logit {check.scale:.2f})")
    print(f"  the load call alone, seconds (float32 weights: {weights['numpyllm']:.0f} MB)")
    pair = H.report_pair(SIDES["numpyllm"], [r["load_s"] for r in results["numpyllm"]],
                         SIDES["transformers"], [r["load_s"] for r in results["transformers"]],
                         unit="s", scale=1.0, digits=2)
    print("  the load call, then one read of every page of every weight (every weight "
          "resident), seconds")
    ready = H.report_pair(SIDES["numpyllm"], [r["ready_s"] for r in results["numpyllm"]],
                          SIDES["transformers"], [r["ready_s"] for r in results["transformers"]],
                          unit="s", scale=1.0, digits=2)
    out = {"label": label, "weights_mb": weights["numpyllm"], "disk_mb": size / 2**20,
           "pair": pair, "ready_pair": ready}
    print("  memory: increase over the resident set right before the call / the float32 "
          "weights (medians over rounds)")
    for s in SIDES:
        rs = results[s]
        w = weights[s]
        fig = {"load": [r["load_s"] for r in rs], "ready": [r["ready_s"] for r in rs],
               "import": [r["import_s"] for r in rs],
               "before": [r["rss_before_mb"] for r in rs],
               "peak": [(r["peak_mb"] - r["rss_before_mb"]) / w for r in rs],
               "kept": [(r["rss_after_mb"] - r["rss_before_mb"]) / w for r in rs],
               "ready_peak": [(r["ready_peak_mb"] - r["rss_before_mb"]) / w for r in rs],
               "ready_kept": [(r["ready_rss_mb"] - r["rss_before_mb"]) / w for r in rs],
               "ready_file": [r.get("ready_file_mb", float("nan")) / w for r in rs]}
        out[s] = fig
        print(f"    {SIDES[s]}: imports {H.med(fig['import']):.2f} s (range "
              f"{H.fmt_range(fig['import'], digits=2)}), resident before the call "
              f"{H.med(fig['before']):.0f} MB; during the call: peak "
              f"{H.med(fig['peak']):.2f}x (range {H.fmt_range(fig['peak'], digits=2)}), "
              f"resident after {H.med(fig['kept']):.2f}x; with every weight read: peak "
              f"{H.med(fig['ready_peak']):.2f}x, resident {H.med(fig['ready_kept']):.2f}x, "
              f"of which file-backed (mapped file pages) {H.med(fig['ready_file']):.2f}x; "
              f"parameters {rs[0]['dtype']}")
    print(f"  load average at end: {H.load()}")
    return out


def _cell(values, digits: int = 2) -> str:
    return f"{H.med(values):.{digits}f} ({H.fmt_range(values, digits=digits)})"


def print_table(rows: list, args) -> None:
    print("\nsummary: medians over rounds (range); imports excluded. load: the call alone; "
          "ready: the call, then one read of every weight page. ratio: numpyllm / "
          "transformers, ratio of medians (range of the per-round ratios). peak: the "
          "increase of the peak resident set over the resident set before the call, with "
          "every weight read, / the float32 weights")
    cols = [("directory", 20), ("weights MB", 10), ("numpyllm load s", 17),
            ("transformers load s", 19), ("ratio", 17), ("numpyllm ready s", 17),
            ("transformers ready s", 20), ("ratio", 17), ("peak numpyllm", 13),
            ("peak transformers", 17)]
    print(" | ".join(f"{name:>{w}s}" if i else f"{name:{w}s}"
                     for i, (name, w) in enumerate(cols)))
    for row in rows:
        a, b = row["numpyllm"], row["transformers"]
        ratio = {k: f"{row[k]['ratio']:.2f} ({min(row[k]['round_ratios']):.2f}-"
                    f"{max(row[k]['round_ratios']):.2f})" for k in ("pair", "ready_pair")}
        weights = row["weights_mb"]
        cells = [row["label"], f"{weights:.{0 if weights >= 10 else 3}f}",
                 _cell(a["load"]), _cell(b["load"]), ratio["pair"],
                 _cell(a["ready"]), _cell(b["ready"]), ratio["ready_pair"],
                 f"{H.med(a['ready_peak']):.2f}x", f"{H.med(b['ready_peak']):.2f}x"]
        print(" | ".join(f"{c:>{w}s}" if i else f"{c:{w}s}"
                         for i, (c, (_, w)) in enumerate(zip(cells, cols))))
    imp = {s: [x for row in rows for x in row[s]["import"]] for s in SIDES}
    print("imports (median over every process, range): " + "; ".join(
        f"{SIDES[s]} {_cell(imp[s])} s" for s in SIDES))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("gpt2", "smollm2", "both"), default="both",
                    help="which shape (default both)")
    ap.add_argument("--variant", choices=VARIANTS + ("all",), default="all",
                    help="which directories of each shape (default all)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds (processes per side per directory), default 3 (--quick: 1)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads on every side (default: the number of CPUs, %(default)s)")
    ap.add_argument("--cache", default=None,
                    help="where the directories are written once (default benchmarks/.cache; "
                         "--quick: a temporary directory)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny shapes of the same architectures, one round: a smoke run")
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


def main() -> int:
    worker = H.worker_args()
    if worker is not None:
        side, cfg = worker
        WORKERS[side](cfg)
        return 0
    args = parse_args()
    print(__doc__.split("\n\n")[0].replace("\n", " "))
    shapes = QUICK if args.quick else SHAPES
    shard_size = "20KB" if args.quick else "100MB"
    names = list(shapes) if args.model == "both" else [args.model]
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        cache = Path(args.cache) if args.cache else (
            Path(tmp) / "cache" if args.quick else Path(__file__).resolve().parent / ".cache")
        rows = []
        for name in names:
            hf_class, kwargs = shapes[name]
            dirs = make_dirs(name, [hf_class, kwargs], cache, shard_size, args.threads)
            for v in variants:
                rows.append(run_directory(f"{name}-{v}", dirs[v], hf_class,
                                          kwargs["vocab_size"], args, tmp))
        print_table(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

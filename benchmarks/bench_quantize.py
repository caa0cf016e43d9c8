"""Quantization figures (issue 16): for float32, int8, Q8_0, Q4_0 and int8 computed by
LLM.int8() (``llm.int8``: the same file as int8, activations quantized too), and each of
int8, Q8_0 and Q4_0 with the token table quantized too (``q4_0+emb``: ``quantize(...,
embeddings=True)``, ``numpyllm quantize --embeddings``; the tied head multiplies by the
quantized table), on the README's Tiny
Shakespeare model and on GPT-2 small's shape with random weights: checkpoint file size,
resident memory of the loaded model, validation perplexity (the trained model), and
generation speed (tokens per second, KV cache, greedy). Figures, not a test: it prints them.

    PYTHONPATH=$PWD python -m numpyllm train --data ../shared/data/tinyshakespeare.txt \\
        --out /tmp/quant_ckpt                                  # the README's model, ~5 min
    python benchmarks/bench_quantize.py --ckpt /tmp/quant_ckpt/ckpt [--rounds 3]
        [--threads 1] [--gpt2 | --no-gpt2] [--tokens 200] [--gpt2-tokens 16]
        [--embeddings | --no-embeddings]

**How.** The parent writes one checkpoint per format (`numpyllm.quantize.quantize`, then
`save_checkpoint`: what ``numpyllm quantize`` does) and measures each file. Then, for
every round, each format runs in a fresh process, the order reversed every other round
(`_harness.alternate`): the process loads its checkpoint as ``numpyllm sample`` does
(`load_model`), which gives

  resident   the growth of the process's resident set (VmRSS) from before the load to
             after it, the file's own arrays released (the model's memory as the OS
             counts it: it includes what malloc keeps of freed buffers), and "held", the
             exact bytes of the arrays the model holds (float parameters + codes +
             scales);
  peak       the process's peak resident set (VmHWM) at the end, loading and generation
             both, minus VmRSS before the load: the most memory the model ever needed
             (a float copy of a table, had one been made, would show here);
  tok/s      greedy generation of `--tokens` new tokens after an 8-token prompt, with
             the KV cache, after one warm-up generation; median over rounds, and the
             ratio to float32 within each round;
  perplexity (round 0 only; deterministic) of the Tiny Shakespeare model on the
             validation split of the text it was trained on (the last 10%), windows of
             its context, as ``numpyllm eval --split val`` computes it.

GPT-2's shape (12 layers, 768 wide, 50,257 tokens, tied embeddings: 124.4M parameters)
uses random weights (N(0, 0.02²) as GPT-2's init): memory and speed do not depend on the
values, perplexity would mean nothing. Without ``+emb`` the embeddings stay float32 (see
docs/quantization.md: wte is 38.6M of GPT-2's 124.4M weights), so the whole-model ratios
are smaller than the per-matrix ones (4x for int8, 3.8x for Q8_0, 7.1x for Q4_0); with it
only the position table (wpe, 0.8M) and the norms and biases stay float.
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

MB = 1024 * 1024
FORMATS = ("float32", "int8", "q8_0", "q4_0", "llm.int8")   # the last: int8 weights and
# LLM.int8()'s product (activations in int8 per token, outlier columns |x| >= 6 in float)
EMB_FORMATS = ("int8+emb", "q8_0+emb", "q4_0+emb")          # the token table quantized too


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------- worker
def worker(side: str, cfg: dict) -> dict:
    import numpy as np
    from numpyllm.autograd import no_grad
    from numpyllm.generate import generate
    from numpyllm.quantize import quantized_embeddings, quantized_layers
    from numpyllm.runtime import keep_freed_memory
    from numpyllm.training.checkpoint import load_model

    # the modules a load imports, imported before the first RSS reading (not the model's)
    import numpyllm.nn  # noqa: F401
    import numpyllm.tokenizers  # noqa: F401
    gc.collect()
    before = _rss_mb()
    model, tokenizer, ckpt = load_model(cfg["ckpt"])
    ckpt.weights = None            # the arrays read from the file: now the model's, or gone
    gc.collect()
    resident = _rss_mb() - before
    keep_freed_memory()            # after the reading: as the command line runs generation
    held = (sum(p.data.nbytes for p in model.parameters())
            + sum(m.qweight.nbytes for _, m in quantized_layers(model)
                  + quantized_embeddings(model)))
    prompt = np.random.default_rng(0).integers(0, model.config.vocab_size, (1, 8))
    generate(model, prompt, 4, greedy=True)                                  # warm-up
    start = time.perf_counter()
    out = generate(model, prompt, cfg["tokens"], greedy=True)
    seconds = time.perf_counter() - start
    peak = _rss_mb("VmHWM") - before          # the high-water mark of load and generation
    result = {"resident_mb": resident, "peak_mb": peak, "held_bytes": held, "seconds": seconds,
              "tokens": int(out.shape[1] - prompt.shape[1]), "env": H.numpy_env()}
    if cfg.get("ppl"):
        from numpyllm.cli._common import encode, recorded_text
        from numpyllm.data import train_val_split
        from numpyllm.training import evaluate_tokens
        record = ckpt.trainer_state.get("data")
        text = recorded_text(record, advice="retrain it")
        _, val = train_val_split(encode(tokenizer, text), record.get("val_fraction", 0.1))
        with no_grad():
            scored = evaluate_tokens(model, val, batch_size=32,
                                     block_size=model.config.block_size)
        result["loss"], result["perplexity"] = scored["loss"], scored["perplexity"]
    return result


# ---------------------------------------------------------------------- parent
def _checkpoints(source: Path | None, root: Path, label: str, formats) -> dict:
    """{format: step directory}: the float checkpoint (given, or GPT-2-shaped random
    weights written here) and one quantized copy per format."""
    import numpy as np
    from numpyllm.nn import GPT, GPTConfig
    from numpyllm.quantize import quantize
    from numpyllm.training.checkpoint import load_model, resolve, save_checkpoint
    dirs = {}
    if source is None:
        model = GPT(GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12,
                              n_embd=768), rng=np.random.default_rng(0))
        dirs["float32"] = save_checkpoint(root / f"{label}-float32", step=0, model=model)
        del model
    else:
        dirs["float32"] = resolve(source)
    for fmt in formats[1:]:
        model, tokenizer, ckpt = load_model(dirs["float32"])
        state = {k: v for k, v in ckpt.trainer_state.items() if k in ("data", "objective")}
        if fmt == "llm.int8":
            quantize(model, "int8", threshold=6.0)
        else:
            quantize(model, fmt.removesuffix("+emb"), embeddings=fmt.endswith("+emb"))
        dirs[fmt] = save_checkpoint(root / f"{label}-{fmt}", step=ckpt.step, model=model,
                                    tokenizer=tokenizer, trainer_state=state)
        del model
        gc.collect()
    return dirs


def _run(label: str, dirs: dict, rounds: int, threads: int, tokens: int, ppl: bool,
         formats) -> dict:
    print(f"\n## {label}")
    sizes = {fmt: (d / "model.safetensors").stat().st_size for fmt, d in dirs.items()}
    first = set()

    def config_of(side):
        cfg = {"ckpt": str(dirs[side]), "tokens": tokens, "ppl": ppl and side not in first}
        first.add(side)
        return cfg
    results = H.alternate(Path(__file__), list(formats), rounds, config_of, threads)
    H.print_setup(threads, rounds, {"numpyllm": results["float32"][0]})
    base = results["float32"]
    print(f"\n  {'format':8s} {'file MB':>9s} {'x smaller':>9s} {'resident MB':>12s} "
          f"{'x smaller':>9s} {'peak MB':>8s} {'held MB':>8s} {'x smaller':>9s}"
          + (f" {'val ppl':>8s} {'change':>8s}" if ppl else ""))
    table = {}
    for fmt in formats:
        r = results[fmt]
        res = H.med([x["resident_mb"] for x in r])
        peak = H.med([x["peak_mb"] for x in r])
        row = {"file_bytes": sizes[fmt], "resident_mb": res, "peak_mb": peak,
               "held_bytes": r[0]["held_bytes"]}
        line = (f"  {fmt:8s} {sizes[fmt] / MB:9.2f} {sizes['float32'] / sizes[fmt]:9.2f} "
                f"{res:12.1f} {H.med([x['resident_mb'] for x in base]) / res:9.2f} "
                f"{peak:8.1f} "
                f"{r[0]['held_bytes'] / MB:8.2f} {base[0]['held_bytes'] / r[0]['held_bytes']:9.2f}")
        if ppl:
            p, p0 = r[0]["perplexity"], base[0]["perplexity"]
            line += f" {p:8.4f} {100 * (p / p0 - 1):+7.3f}%"
            row["perplexity"] = p
        print(line)
        table[fmt] = row
    print(f"\n  generation: {tokens} new tokens, greedy, KV cache (tokens per second; "
          "ratio = float32 time / format time, so > 1 is faster than float32)")
    for fmt in formats[1:]:
        print(f"  {fmt}:")
        tps = [x["tokens"] / x["seconds"] for x in results[fmt]]
        tps0 = [x["tokens"] / x["seconds"] for x in base]
        fig = H.report_pair(fmt, tps, "float32", tps0, unit="tok/s", scale=1.0, digits=1,
                            lower_is_better=False)
        table[fmt]["tokens_per_s"] = fig["median_a"]
        table[fmt]["speed_ratio"] = fig["ratio"]
    table["float32"]["tokens_per_s"] = H.med([x["tokens"] / x["seconds"] for x in base])
    return table


def main(argv=None) -> int:
    w = H.worker_args(argv)
    if w is not None:
        H.emit(worker(*w))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", default="/tmp/quant_ckpt/ckpt", help="the trained float "
                   "checkpoint (numpyllm train --data tinyshakespeare.txt); '' skips it "
                   "(GPT-2's shape only)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--gpt2-tokens", type=int, default=16)
    p.add_argument("--gpt2", action=argparse.BooleanOptionalAction, default=True,
                   help="also GPT-2 small's shape (writes ~0.9 GB of checkpoints to a "
                   "temporary directory)")
    p.add_argument("--embeddings", action=argparse.BooleanOptionalAction, default=True,
                   help="also int8, Q8_0 and Q4_0 with the token table quantized (+emb)")
    p.add_argument("--formats", metavar="LIST", help="comma-separated subset of "
                   f"{','.join(FORMATS + EMB_FORMATS)} (float32 always runs: the baseline)")
    p.add_argument("--json", metavar="FILE", help="write the figures here too")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_quantize-"))
    figures = {}
    formats = FORMATS + (EMB_FORMATS if args.embeddings else ())
    if args.formats:
        chosen = set(args.formats.split(","))
        unknown = chosen - set(FORMATS + EMB_FORMATS)
        if unknown:
            p.error(f"--formats: unknown {sorted(unknown)}")
        formats = tuple(f for f in formats if f == "float32" or f in chosen)
    try:
        if args.ckpt:
            dirs = _checkpoints(Path(args.ckpt), root, "shakespeare", formats)
            figures["shakespeare"] = _run(f"the trained model {args.ckpt} (the README's: Tiny "
                                          "Shakespeare, 4 layers, 128 wide, char-level)", dirs,
                                          args.rounds, args.threads, args.tokens, ppl=True,
                                          formats=formats)
        if args.gpt2:
            dirs = _checkpoints(None, root, "gpt2", formats)
            figures["gpt2"] = _run("GPT-2 small's shape, random weights", dirs, args.rounds,
                                   args.threads, args.gpt2_tokens, ppl=False, formats=formats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

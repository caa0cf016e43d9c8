"""Greedy generation with a KV cache: numpyllm against a hand-written PyTorch KV-cache
loop and Hugging Face's GPT-2 `generate`, same model and weights, each in its own fresh
process per round, the rounds alternating, the same thread count on every side.

    python benchmarks/bench_generate.py                   # GPT-2 small's shape and a small model
    python benchmarks/bench_generate.py --model small --rounds 8
    python benchmarks/bench_generate.py --threads 1       # one thread on every side
    python benchmarks/bench_generate.py --cache-study     # numpyllm alone: cache vs recompute

The sides, all greedy, all with a key/value cache:

- **numpyllm**: ``numpyllm.generate.generate(model, prompt, n, greedy=True)``.
- **PyTorch KV loop** (the reference): the same model written with torch.nn.functional
  (benchmarks/_torch_gpt.py), run under ``torch.inference_mode()``: one forward over the
  prompt (prefill) filling a preallocated cache, then one token per step attending to
  the cached keys and values (``F.scaled_dot_product_attention``), the head on the last
  position only, argmax. Projection weights ``[in, out]`` with ``torch.addmm``, as HF's
  GPT-2 ``Conv1D``: MKL's matrix-vector products run faster that way than with nn.Linear's
  ``[out, in]`` here (``--torch-layout out_in`` measures that one).
- **HF generate** (second row): ``transformers.GPT2LMHeadModel`` with the same weights,
  ``generate(ids, max_new_tokens=n, do_sample=False, use_cache=True)``, called as a user
  calls it; its per-step Python overhead (logits processors, stopping criteria, cache
  objects) is part of what it measures.

Models, random weights (nothing is downloaded), learned positions, biases, tied head,
tanh GELU: ``gpt2`` is GPT-2 small's shape (12 layers, 12 heads, 768 wide, vocabulary
50257, context 1024; 124M parameters), ``small`` a 6-layer, 6-head, 384-wide model with
a 65-token vocabulary (nanoGPT's Shakespeare shape). The parent builds the weights once
(numpyllm's GPT init, seed 0) and writes them to a temporary .npz that every worker reads.

Each worker warms up with a short generation, then times `--runs` generations of the
same prompt; a round's figure is the median of those, in new tokens per second (the
prefill included). The benchmark stops with an error unless all three sides produce the
same tokens. Printed: thread counts and kernels each process saw, how much CPU other
processes used meanwhile (a warning when the machine was not idle), every round's tokens/s,
medians, ranges, the ratio of medians and the ratio within each round, the time of one
token's first MLP projection and LM head in each process (decoding a token is a chain of
such matrix-vector products, so these show how much of a ratio is the BLAS library's),
peak RSS (VmHWM).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

MODELS = {   # name -> shape, prompt length, new tokens
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, vocab=50257, block_size=1024,
                 prompt=32, new_tokens=64),
    "small": dict(n_layer=6, n_head=6, n_embd=384, vocab=65, block_size=256,
                  prompt=16, new_tokens=200),
}
SIDES = {"numpyllm": "numpyllm generate", "pytorch-kv": "PyTorch KV loop",
         "hf": "HF generate"}


# ====================================================================== workers
def _load(cfg: dict):
    import numpy as np
    data = np.load(cfg["data"])
    return {k[2:]: data[k] for k in data.files if k.startswith("p:")}, data["prompt"].tolist()


def _time_runs(cfg: dict, run) -> tuple:
    run(min(8, cfg["new_tokens"]))                      # warm-up
    times, tokens = [], None
    for _ in range(cfg["runs"]):
        t0 = time.perf_counter()
        out = run(cfg["new_tokens"])
        times.append(time.perf_counter() - t0)
        tokens = tokens or [int(t) for t in out]
    return times, tokens


def _probe(fn) -> float:
    """Median seconds of `fn()` over 10 calls (after one)."""
    fn()
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _torch_probes(wte, c_fc) -> dict:
    """One token's LM head (F.linear, as nn.Linear) and first MLP projection (`c_fc`, a
    function of [1, 1, C]) in PyTorch: seconds each."""
    import torch
    x = torch.randn(1, 1, wte.shape[1], generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return {"head": _probe(lambda: torch.nn.functional.linear(x, wte)),
                "c_fc": _probe(lambda: c_fc(x))}


def worker_numpyllm(cfg: dict) -> None:
    import numpy as np

    from numpyllm.generate import generate
    from numpyllm.nn import GPT, GPTConfig
    params, prompt = _load(cfg)
    m = cfg["model"]
    model = GPT(GPTConfig(vocab_size=m["vocab"], block_size=m["block_size"], n_layer=m["n_layer"],
                          n_head=m["n_head"], n_embd=m["n_embd"]), rng=np.random.default_rng(0))
    model.load_state_dict(params)
    model.eval()
    prompt = np.array(prompt)
    times, tokens = _time_runs(cfg, lambda n: generate(model, prompt, n, greedy=True))
    wte = model.wte.weight.data
    x = np.random.default_rng(0).standard_normal((1, 1, wte.shape[1])).astype(wte.dtype)
    probes = {"head": _probe(lambda: x @ wte.T),        # as GPT.head does it
              "c_fc": _probe(lambda: model.h[0].mlp.c_fc(x))}
    H.emit({"times": times, "tokens": tokens, "probes": probes, "env": H.numpy_env()})


def worker_pytorch_kv(cfg: dict) -> None:
    env = H.torch_threads(cfg["threads"])
    from _torch_gpt import TorchGPT
    params, prompt = _load(cfg)
    m = cfg["model"]
    model = TorchGPT(params, m["n_layer"], m["n_head"], layout=cfg["torch_layout"])
    times, tokens = _time_runs(cfg, lambda n: model.generate(prompt, n))
    env["weights"] = {"out_in": "[out, in], F.linear", "in_out": "[in, out], addmm"}[model.layout]
    probes = _torch_probes(model.p["wte.weight"], lambda x: model._lin("h.0.mlp.c_fc", x))
    H.emit({"times": times, "tokens": tokens, "probes": probes, "env": env})


def worker_hf(cfg: dict) -> None:
    env = H.torch_threads(cfg["threads"])
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    params, prompt = _load(cfg)
    m = cfg["model"]
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=m["vocab"], n_positions=m["block_size"], n_embd=m["n_embd"],
        n_layer=m["n_layer"], n_head=m["n_head"], layer_norm_epsilon=1e-5,
        activation_function="gelu_new")).eval()      # GPT-2's tanh GELU, as numpyllm's
    state = {"transformer." + k: torch.from_numpy(v) for k, v in params.items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if [k for k in missing if k != "lm_head.weight"] or unexpected:
        raise RuntimeError(f"HF weights: missing {missing}, unexpected {unexpected}")
    if hf.lm_head.weight.data_ptr() != hf.transformer.wte.weight.data_ptr():
        raise RuntimeError("HF's lm_head is not tied to wte")
    hf.generation_config.eos_token_id = None              # exactly n tokens, as the others
    hf.generation_config.pad_token_id = 0
    ids = torch.tensor([prompt])
    mask = torch.ones_like(ids)

    def run(n):
        return hf.generate(ids, attention_mask=mask, max_new_tokens=n, do_sample=False,
                           use_cache=True)[0].tolist()
    times, tokens = _time_runs(cfg, run)
    env.update({"transformers": transformers.__version__,
                "attention": hf.config._attn_implementation})
    probes = _torch_probes(hf.lm_head.weight.detach(), hf.transformer.h[0].mlp.c_fc)
    H.emit({"times": times, "tokens": tokens, "probes": probes, "env": env})


def worker_cache_study(cfg: dict) -> None:
    """numpyllm alone: generation with and without the cache, and the time of one
    decoding step by context length."""
    import numpy as np

    from numpyllm.generate import generate
    from numpyllm.nn import GPT, GPTConfig
    params, prompt = _load(cfg)
    m = cfg["model"]
    model = GPT(GPTConfig(vocab_size=m["vocab"], block_size=m["block_size"], n_layer=m["n_layer"],
                          n_head=m["n_head"], n_embd=m["n_embd"]), rng=np.random.default_rng(0))
    model.load_state_dict(params)
    model.eval()
    prompt, n = np.array(prompt), cfg["new_tokens"]

    def timed(fn, runs):
        fn()
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return statistics.median(out)
    cached = timed(lambda: generate(model, prompt, n, greedy=True), cfg["runs"])
    full = timed(lambda: generate(model, prompt, n, greedy=True, use_cache=False),
                 max(1, cfg["runs"] - 1))
    same = np.array_equal(generate(model, prompt, n, greedy=True),
                          generate(model, prompt, n, greedy=True, use_cache=False))
    rng = np.random.default_rng(0)
    table, steps = [], 8
    for L in [x for x in (16, 64, 128, 256, 512, 1000) if x + steps <= m["block_size"]]:
        ids = rng.integers(0, m["vocab"], size=(1, L))
        nxt = rng.integers(0, m["vocab"], size=(1, steps))

        def decode_steps():
            cache = model.new_cache(L + steps)
            model.forward_cached(ids, cache, last_only=True)
            t0 = time.perf_counter()
            for s in range(steps):
                model.forward_cached(nxt[:, s:s + 1], cache, last_only=True)
            return (time.perf_counter() - t0) / steps
        with_cache = statistics.median(decode_steps() for _ in range(cfg["runs"]))
        recompute = timed(lambda: model(ids), cfg["runs"])
        table.append([L, with_cache, recompute])
    H.emit({"cached": cached, "full": full, "same": bool(same), "table": table,
            "env": H.numpy_env()})


WORKERS = {"numpyllm": worker_numpyllm, "pytorch-kv": worker_pytorch_kv, "hf": worker_hf,
           "cache-study": worker_cache_study}


# ====================================================================== parent
def write_data(m: dict, path: str, seed: int = 0) -> None:
    """The shared weights (numpyllm's GPT init, seed 0) and the prompt (seed 1)."""
    import numpy as np

    from numpyllm.nn import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=m["vocab"], block_size=m["block_size"], n_layer=m["n_layer"],
                          n_head=m["n_head"], n_embd=m["n_embd"]), rng=np.random.default_rng(seed))
    prompt = np.random.default_rng(seed + 1).integers(0, m["vocab"], size=m["prompt"])
    np.savez(path, prompt=prompt, **{"p:" + n: p.data for n, p in model.named_parameters()})


def check_tokens(seen: dict):
    """`on_result` callback: every side's tokens must equal the first side's."""
    def check(side, r, result):
        ref_side, ref = next(iter(seen.items())) if seen else (side, result["tokens"])
        seen.setdefault(side, result["tokens"])
        got = result["tokens"]
        if got != ref:
            at = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), min(len(got), len(ref)))
            raise AssertionError(
                f"greedy tokens differ: {SIDES[side]} (round {r + 1}) and {SIDES[ref_side]} "
                f"first differ at position {at} of {len(ref)}: {got[at:at + 5]} vs {ref[at:at + 5]}")
    return check


def run_model(name: str, args, tmp: str) -> dict:
    m = dict(MODELS[name])
    if args.prompt:
        m["prompt"] = args.prompt
    if args.new_tokens:
        m["new_tokens"] = args.new_tokens
    data = os.path.join(tmp, f"{name}.npz")
    write_data(m, data)
    cfg = dict(data=data, model=m, threads=args.threads, runs=args.runs,
               new_tokens=m["new_tokens"], torch_layout=args.torch_layout)
    print(f"\nmodel {name}: {m['n_layer']} layers, {m['n_head']} heads, {m['n_embd']} wide, "
          f"vocabulary {m['vocab']}, context {m['block_size']}; greedy, {m['new_tokens']} new "
          f"tokens after a {m['prompt']}-token prompt; {args.runs} timed generations per "
          f"process (a round's figure: their median)", flush=True)
    if args.cache_study:
        res = H.run_worker(__file__, "cache-study", cfg, args.threads)
        n = m["new_tokens"]
        print(f"  numpyllm alone: {n / res['cached']:.1f} tokens/s with the KV cache, "
              f"{n / res['full']:.1f} recomputing the context: {res['full'] / res['cached']:.1f}x "
              f"(same tokens: {res['same']})")
        print("  one decoding step after a context of L tokens (ms): L, with the cache, "
              "recomputing the whole context")
        for L, c, f in res["table"]:
            print(f"    {L:5d} {c * 1e3:9.2f} {f * 1e3:9.2f}")
        return {}
    sides = list(SIDES)
    results = H.alternate(__file__, sides, args.rounds, lambda s: cfg, args.threads,
                          on_result=check_tokens({}))
    speed = {s: [m["new_tokens"] / statistics.median(r["times"]) for r in results[s]]
             for s in sides}
    H.print_setup(args.threads, args.rounds, {SIDES[s]: results[s][0] for s in sides})
    print(f"  the three produce the same {m['new_tokens']} greedy tokens in every round")
    print("  tokens/s (prefill included)")
    out = {}
    for ref in ("pytorch-kv", "hf"):
        out[ref] = H.report_pair(SIDES["numpyllm"], speed["numpyllm"], SIDES[ref], speed[ref],
                                 unit="tokens/s", scale=1.0, lower_is_better=False)
    C, V = m["n_embd"], m["vocab"]
    H.report_decoding_probes({s: results[s] for s in sides}, SIDES,
                             {"c_fc": f"first MLP projection [1, {C}] x [{C}, {4 * C}]",
                               "head": f"LM head [1, {C}] x [{C}, {V}]"})
    return out


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("gpt2", "small", "both"), default="both",
                    help="which model (default both)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (processes per side), default 5")
    ap.add_argument("--runs", type=int, default=3,
                    help="timed generations per process (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads on every side (default: the number of CPUs, %(default)s)")
    ap.add_argument("--prompt", type=int, default=None,
                    help="prompt length (default: gpt2 32, small 16)")
    ap.add_argument("--new-tokens", type=int, default=None,
                    help="tokens to generate (default: gpt2 64, small 200)")
    ap.add_argument("--torch-layout", choices=("in_out", "out_in"), default="in_out",
                    help="the PyTorch loop's projection weights: in_out (default: [in, out] and "
                         "addmm, as HF's GPT-2 Conv1D; the faster here) or out_in (nn.Linear's "
                         "[out, in] and F.linear)")
    ap.add_argument("--cache-study", action="store_true",
                    help="instead: numpyllm alone, with and without the cache, and one "
                         "decoding step's time by context length")
    return ap.parse_args()


def main() -> int:
    worker = H.worker_args()
    if worker is not None:
        side, cfg = worker
        WORKERS[side](cfg)
        return 0
    args = parse_args()
    print(__doc__.split("\n\n")[0].replace("\n", " "))
    names = ["gpt2", "small"] if args.model == "both" else [args.model]
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        for name in names:
            run_model(name, args, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Greedy generation with a KV cache for the LLaMA family: numpyllm's `Llama` against a
hand-written PyTorch KV-cache loop and Hugging Face's `generate`, same model and weights,
each in its own fresh process per round, the rounds alternating, the same thread count
on every side.

    python benchmarks/bench_llama_generate.py                  # SmolLM2-135M's shape
    python benchmarks/bench_llama_generate.py --rounds 8 --new-tokens 128
    python benchmarks/bench_llama_generate.py --model qwen2 --rounds 3 --runs 1
    python benchmarks/bench_llama_generate.py --threads 1      # one thread on every side

The sides, all greedy, all with a key/value cache that holds the key/value heads only:

- **numpyllm**: ``numpyllm.generate.generate(model, prompt, n, greedy=True)`` with
  ``numpyllm.nn.Llama``.
- **PyTorch KV loop** (the reference): the same model written with torch.nn.functional
  (benchmarks/_torch_llama.py) under ``torch.inference_mode()``: ``F.rms_norm``, RoPE
  tables computed once, a preallocated cache of the key/value heads, grouped-query
  attention with ``F.scaled_dot_product_attention`` (no key or value repeated), the
  head on the last position only, argmax. Projection weights ``[in, out]`` (``h @ w``,
  ``addmm`` with a bias) by default, as in bench_generate.py: MKL's matrix-vector
  products run faster that way here; ``--torch-layout out_in`` measures nn.Linear's
  ``[out, in]`` with ``F.linear``.
- **HF generate**: ``transformers.LlamaForCausalLM`` (``Qwen2ForCausalLM`` for qwen2)
  with the same weights, ``generate(ids, max_new_tokens=n, do_sample=False,
  use_cache=True)``, called as a user calls it (its default attention, sdpa); its
  per-step Python overhead (logits processors, stopping criteria, cache objects) is part
  of what it measures.

Models, random weights (nothing is downloaded), float32, RoPE in Hugging Face's
rotate-half layout, tied head:

- ``smollm2``: SmolLM2-135M's shape, `numpyllm.nn.LlamaConfig`'s defaults: 30 layers,
  576 wide, 9 query heads sharing 3 key/value heads (head 64), SwiGLU 1536, vocabulary
  49,152, rope_theta 1e5 (135M parameters).
- ``qwen2``: Qwen2.5-0.5B's shape: 24 layers, 896 wide, 14 query heads sharing 2
  key/value heads, biases on q, k and v, SwiGLU 4864, vocabulary 151,936, rope_theta 1e6
  (494M parameters; each process holds 2 GB of weights, a round takes minutes).

The parent builds the weights once and writes them to a temporary .npz that every
worker reads: numpyllm's names and ``[in, out]`` layout, which the PyTorch workers map to
Hugging Face's (``model.`` + the same name, 2-D weights transposed to ``[out, in]``, as
tests/oracle/test_hf_llama.py). The embedding is numpyllm's initialisation (N(0, 0.02²)),
the norms' weights ones; every projection is N(0, 0.06²), three times numpyllm's
initial scale, and the q/k/v biases N(0, 0.02²) (numpyllm starts them at zero). With
numpyllm's own N(0, 0.02²) projections the layers barely change the residual stream, and
a tied model then repeats its input token (2 distinct tokens in 64): a weak check that
the sides agree. At 0.06, 250 or more of the 256 tokens are distinct.

Each worker warms up with a short generation, then `--runs` times: one generation of a
single token (the prefill: the whole prompt through the model, then one argmax) and one
of `--new-tokens` tokens. A round's figures are medians over the runs: tokens/s of the
whole generation (prefill included), the prefill's time, and one decoding step's time,
``(t(n) - t(1)) / (n - 1)``. The benchmark stops with an error unless all three sides
produce the same tokens. Printed, as bench_generate.py: thread counts and kernels each
process saw, how much CPU other processes used meanwhile (a warning when the machine was
not idle), every round's figures, medians, ranges, the ratio of medians and the ratio
within each round, one token's first MLP projection (``gate_proj``) and LM head in each
process, peak RSS (VmHWM).
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
from bench_generate import _probe, check_tokens  # noqa: E402  (shared with the GPT bench)

MODELS = {   # name -> LlamaConfig fields, Hugging Face class, prompt length, new tokens
    "smollm2": dict(config=dict(), hf="LlamaForCausalLM", prompt=32, new_tokens=256),
    "qwen2": dict(config=dict(vocab_size=151936, block_size=32768, n_layer=24, n_head=14,
                              n_kv_head=2, n_embd=896, intermediate_size=4864,
                              rope_theta=1000000.0, rms_norm_eps=1e-6, attention_bias=True),
                  hf="Qwen2ForCausalLM", prompt=32, new_tokens=256),
}
PROJECTION_STD = 0.06     # the projections' initial scale (see the module doc)
SIDES = {"numpyllm": "numpyllm generate", "pytorch-kv": "PyTorch KV loop",
         "hf": "HF generate"}


def llama_config(m: dict):
    from numpyllm.nn import LlamaConfig
    return LlamaConfig(**m["config"])


# ====================================================================== workers
def _load(cfg: dict):
    """numpyllm's parameters (``[in, out]``) and the prompt."""
    import numpy as np
    data = np.load(cfg["data"])
    return {k[2:]: data[k] for k in data.files if k.startswith("p:")}, data["prompt"].tolist()


def _hf_tensors(params: dict) -> dict:
    """numpyllm's arrays under Hugging Face's names and layout (the mapping of
    tests/oracle/test_hf_llama.py): ``model.`` + name, 2-D Linear weights transposed."""
    import torch
    out = {}
    for name, a in params.items():
        if a.ndim == 2 and name != "embed_tokens.weight":
            a = a.T                                     # [in, out] -> nn.Linear's [out, in]
        out[name if name == "lm_head.weight" else "model." + name] = \
            torch.from_numpy(a.copy())                  # contiguous
    return out


def _time_runs(cfg: dict, run) -> dict:
    """Warm up, then `runs` times: a 1-token generation (the prefill) and an n-token one."""
    n = cfg["new_tokens"]
    run(min(8, n))                                      # warm-up
    full, first, tokens = [], [], None
    for _ in range(cfg["runs"]):
        t0 = time.perf_counter()
        run(1)
        first.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = run(n)
        full.append(time.perf_counter() - t0)
        tokens = tokens or [int(t) for t in out]
    return {"times": full, "prefill": first, "tokens": tokens}


def _torch_probes(C: int, head, gate) -> dict:
    """One token's LM head and first MLP projection in PyTorch, as the side computes
    them (`head`, `gate`: functions of [1, 1, C]): seconds each."""
    import torch
    x = torch.randn(1, 1, C, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return {"head": _probe(lambda: head(x)), "gate": _probe(lambda: gate(x))}


def worker_numpyllm(cfg: dict) -> None:
    import numpy as np

    from numpyllm.generate import generate
    from numpyllm.nn import Llama
    params, prompt = _load(cfg)
    model = Llama(llama_config(cfg["model"]), rng=0)
    model.load_state_dict(params)
    del params
    model.eval()
    prompt = np.array(prompt)
    result = _time_runs(cfg, lambda n: generate(model, prompt, n, greedy=True))
    wte = model.embed_tokens.weight.data
    x = np.random.default_rng(0).standard_normal((1, 1, wte.shape[1])).astype(wte.dtype)
    result["probes"] = {"head": _probe(lambda: model.head(x)),
                        "gate": _probe(lambda: model.layers[0].mlp.gate_proj(x))}
    result["env"] = H.numpy_env()
    H.emit(result)


def worker_pytorch_kv(cfg: dict) -> None:
    env = H.torch_threads(cfg["threads"])
    from _torch_llama import TorchLlama
    params, prompt = _load(cfg)
    c = llama_config(cfg["model"])
    model = TorchLlama(_hf_tensors(params), dict(
        n_layer=c.n_layer, n_head=c.n_head, n_kv_head=c.n_kv_head, head_dim=c.head_dim,
        rope_theta=c.rope_theta, rms_norm_eps=c.rms_norm_eps), layout=cfg["torch_layout"])
    del params
    result = _time_runs(cfg, lambda n: model.generate(prompt, n))
    env["weights"] = {"out_in": "[out, in], F.linear", "in_out": "[in, out], matmul"}[model.layout]
    result["probes"] = _torch_probes(c.n_embd, model._head,
                                     lambda x: model._lin("layers.0.mlp.gate_proj", x))
    result["env"] = env
    H.emit(result)


def worker_hf(cfg: dict) -> None:
    env = H.torch_threads(cfg["threads"])
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    params, prompt = _load(cfg)
    c = llama_config(cfg["model"])
    kind = cfg["model"]["hf"]
    config_cls = {"LlamaForCausalLM": transformers.LlamaConfig,
                  "Qwen2ForCausalLM": transformers.Qwen2Config}[kind]
    extra = {} if kind == "Qwen2ForCausalLM" else {"attention_bias": c.attention_bias}
    hf_cfg = config_cls(vocab_size=c.vocab_size, hidden_size=c.n_embd,
                        intermediate_size=c.intermediate_size, num_hidden_layers=c.n_layer,
                        num_attention_heads=c.n_head, num_key_value_heads=c.n_kv_head,
                        max_position_embeddings=c.block_size, rope_theta=c.rope_theta,
                        rms_norm_eps=c.rms_norm_eps, tie_word_embeddings=c.tie_weights,
                        **extra)
    hf = getattr(transformers, kind)(hf_cfg).eval()
    missing, unexpected = hf.load_state_dict(_hf_tensors(params), strict=False)
    del params
    if [k for k in missing if k != "lm_head.weight"] or unexpected:
        raise RuntimeError(f"HF weights: missing {missing}, unexpected {unexpected}")
    if c.tie_weights and hf.lm_head.weight.data_ptr() != hf.model.embed_tokens.weight.data_ptr():
        raise RuntimeError("HF's lm_head is not tied to embed_tokens")
    hf.generation_config.eos_token_id = None              # exactly n tokens, as the others
    hf.generation_config.pad_token_id = 0
    ids = torch.tensor([prompt])
    mask = torch.ones_like(ids)

    def run(n):
        return hf.generate(ids, attention_mask=mask, max_new_tokens=n, do_sample=False,
                           use_cache=True)[0].tolist()
    result = _time_runs(cfg, run)
    env.update({"transformers": transformers.__version__,
                "attention": hf.config._attn_implementation})
    result["probes"] = _torch_probes(c.n_embd, hf.lm_head, hf.model.layers[0].mlp.gate_proj)
    result["env"] = env
    H.emit(result)


WORKERS = {"numpyllm": worker_numpyllm, "pytorch-kv": worker_pytorch_kv, "hf": worker_hf}


# ====================================================================== parent
def write_data(m: dict, path: str, seed: int = 0) -> None:
    """The shared weights and the prompt (seed 1): numpyllm's Llama (seed 0), every
    projection scaled to N(0, 0.06²) and the q/k/v biases drawn N(0, 0.02²) (seed 2)."""
    import numpy as np

    from numpyllm.nn import Llama
    cfg = llama_config(m)
    model = Llama(cfg, rng=seed)
    rng = np.random.default_rng(seed + 2)
    params = {}
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            p.data[...] = 0.02 * rng.standard_normal(p.data.shape)
        elif p.data.ndim == 2 and name != "embed_tokens.weight":     # N(0, 0.02²) ->
            p.data *= PROJECTION_STD / 0.02                               # N(0, 0.06²)
        params["p:" + name] = p.data
    prompt = np.random.default_rng(seed + 1).integers(0, cfg.vocab_size, size=m["prompt"])
    np.savez(path, prompt=prompt, **params)


def run_model(name: str, args, tmp: str) -> dict:
    m = dict(MODELS[name])
    if args.prompt:
        m["prompt"] = args.prompt
    if args.new_tokens:
        m["new_tokens"] = args.new_tokens
    n = m["new_tokens"]
    data = os.path.join(tmp, f"{name}.npz")
    write_data(m, data)
    c = llama_config(m)
    cfg = dict(data=data, model=m, threads=args.threads, runs=args.runs, new_tokens=n,
               torch_layout=args.torch_layout)
    print(f"\nmodel {name}: {c.n_layer} layers, {c.n_embd} wide, {c.n_head} query heads "
          f"sharing {c.n_kv_head} key/value heads (head {c.head_dim}), SwiGLU "
          f"{c.intermediate_size}, vocabulary {c.vocab_size}, q/k/v biases "
          f"{'yes' if c.attention_bias else 'no'}, tied head; float32, greedy, {n} new tokens "
          f"after a {m['prompt']}-token prompt; {args.runs} timed generations per process "
          "(a round's figure: their median)", flush=True)
    sides = list(SIDES)
    results = H.alternate(__file__, sides, args.rounds, lambda s: cfg, args.threads,
                          on_result=check_tokens({}))
    speed = {s: [n / statistics.median(r["times"]) for r in results[s]] for s in sides}
    prefill = {s: [statistics.median(r["prefill"]) for r in results[s]] for s in sides}
    decode = {s: [statistics.median((t - p) / (n - 1) for t, p in zip(r["times"], r["prefill"]))
                  for r in results[s]] for s in sides}
    H.print_setup(args.threads, args.rounds, {SIDES[s]: results[s][0] for s in sides})
    tokens = results["numpyllm"][0]["tokens"][m["prompt"]:]
    print(f"  the three produce the same {n} greedy tokens in every round "
          f"({len(set(tokens))} distinct)")
    out = {}
    for what, values, unit, scale, higher in (
            ("tokens/s (prefill included)", speed, "tokens/s", 1.0, True),
            (f"prefill: the {m['prompt']}-token prompt and one argmax", prefill, "ms", 1e3, False),
            ("one decoding step, (t(n) - t(1)) / (n - 1)", decode, "ms", 1e3, False)):
        print(f"  {what}")
        for ref in ("pytorch-kv", "hf"):
            out[(what, ref)] = H.report_pair(SIDES["numpyllm"], values["numpyllm"], SIDES[ref],
                                             values[ref], unit=unit, scale=scale,
                                             digits=1 if scale == 1.0 else 2,
                                             lower_is_better=not higher)
    C, I, V = c.n_embd, c.intermediate_size, c.vocab_size
    H.report_decoding_probes({s: results[s] for s in sides}, SIDES,
                             {"gate": f"first MLP projection [1, {C}] x [{C}, {I}]",
                               "head": f"LM head [1, {C}] x [{C}, {V}]"})
    return out


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("smollm2", "qwen2", "both"), default="smollm2",
                    help="which model (default smollm2)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (processes per side), default 5")
    ap.add_argument("--runs", type=int, default=3,
                    help="timed generations per process (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads on every side (default: the number of CPUs, %(default)s)")
    ap.add_argument("--prompt", type=int, default=None, help="prompt length (default 32)")
    ap.add_argument("--new-tokens", type=int, default=None,
                    help="tokens to generate (default 256)")
    ap.add_argument("--torch-layout", choices=("in_out", "out_in"), default="in_out",
                    help="the PyTorch loop's projection weights: in_out (default: [in, out], "
                         "matmul; the faster here) or out_in (nn.Linear's [out, in], F.linear)")
    return ap.parse_args()


def main() -> int:
    worker = H.worker_args()
    if worker is not None:
        side, cfg = worker
        WORKERS[side](cfg)
        return 0
    args = parse_args()
    if args.new_tokens is not None and args.new_tokens < 2:
        raise SystemExit("--new-tokens must be at least 2 (a decoding step is t(n) - t(1))")
    print(__doc__.split("\n\n")[0].replace("\n", " "))
    names = ["smollm2", "qwen2"] if args.model == "both" else [args.model]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            run_model(name, args, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

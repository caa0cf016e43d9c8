"""Generation speed: the KV cache against recomputing the context, per-token time by
context length, and numpyllm against Hugging Face `transformers`' GPT-2 `generate`.

    python benchmarks/bench_generate.py                  # everything (HF part if installed)
    python benchmarks/bench_generate.py --threads 1      # one BLAS / torch thread each
    python benchmarks/bench_generate.py --skip-hf --new-tokens 256 --runs 3

1. **Cache vs recompute**: a 256-token greedy continuation of a 16-token prompt by a
   6-layer, 384-wide, 6-head GPT (block 1024, 65-token vocabulary: the shape of
   nanoGPT's Shakespeare model), with ``use_cache=True`` and ``False``: tokens/s and the
   speedup.
2. **Per-token time by context length** (same model): the median time of one decoding
   step after a prompt of L tokens, with the cache (should stay flat: the matmuls are
   O(1) per token, only attention's O(L) grows) and without (a forward over L tokens).
3. **Against Hugging Face** (when `transformers` and `torch` are installed): a randomly
   initialised GPT-2 small (``GPT2Config()`` defaults, 124M parameters), its weights
   loaded into a numpyllm GPT (Conv1D weights are already [in, out]; names drop the
   ``transformer.`` prefix), greedy continuation of the same prompt by both: whether
   the tokens are identical, tokens/s of each and the ratio numpyllm / HF.

Medians of several runs, printed; nothing is asserted. On a machine shared with other
busy processes, multi-threaded BLAS wakes its threads late at every small matmul (a
decoding step is made of them); ``--threads 1`` gives steadier numbers for both sides.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS and torch threads (default: their own defaults)")
    p.add_argument("--new-tokens", type=int, default=256, help="continuation length (256)")
    p.add_argument("--hf-new-tokens", type=int, default=64,
                   help="continuation length against HF (64)")
    p.add_argument("--prompt", type=int, default=16, help="prompt length (16)")
    p.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    p.add_argument("--contexts", default="16,64,128,256,512,1000",
                   help="context lengths of the per-token table")
    p.add_argument("--skip-hf", action="store_true", help="skip the Hugging Face comparison")
    return p.parse_args()


ARGS = _parse()
if ARGS.threads is not None:          # before NumPy starts its BLAS thread pool
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

from numpyllm.generate import generate  # noqa: E402
from numpyllm.nn import GPT, GPTConfig  # noqa: E402

SMALL = GPTConfig(vocab_size=65, block_size=1024, n_layer=6, n_head=6, n_embd=384)


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cache_vs_recompute(model, prompt, n: int, runs: int) -> None:
    print(f"\n1. {n}-token greedy continuation of a {len(prompt)}-token prompt "
          f"({model.num_parameters() / 1e6:.1f}M parameters, {SMALL.n_layer} layers x "
          f"{SMALL.n_embd} wide)")
    generate(model, prompt, 4, greedy=True)                                # warm up
    cached = median_time(lambda: generate(model, prompt, n, greedy=True), runs)
    full = median_time(lambda: generate(model, prompt, n, greedy=True, use_cache=False),
                       max(1, runs - 1))
    same = np.array_equal(generate(model, prompt, n, greedy=True),
                          generate(model, prompt, n, greedy=True, use_cache=False))
    print(f"   with the KV cache : {n / cached:8.1f} tokens/s  ({cached:.2f} s)")
    print(f"   recomputing       : {n / full:8.1f} tokens/s  ({full:.2f} s)")
    print(f"   speedup           : {full / cached:8.1f}x   (same tokens: {same})")


def per_token_table(model, contexts, runs: int) -> None:
    print("\n2. one decoding step after a context of L tokens (median ms per token)")
    print(f"   {'L':>6} {'with cache':>11} {'recompute':>10}")
    rng = np.random.default_rng(0)
    steps = 8
    for L in contexts:
        ids = rng.integers(0, model.config.vocab_size, size=(1, L))
        nxt = rng.integers(0, model.config.vocab_size, size=(1, steps))

        def cached_steps():
            cache = model.new_cache(L + steps)
            model.forward_cached(ids, cache, last_only=True)
            t0 = time.perf_counter()
            for s in range(steps):
                model.forward_cached(nxt[:, s:s + 1], cache, last_only=True)
            return (time.perf_counter() - t0) / steps

        def recompute_step():
            t0 = time.perf_counter()
            model(ids)
            return time.perf_counter() - t0

        with_cache = statistics.median(cached_steps() for _ in range(runs))
        without = statistics.median(recompute_step() for _ in range(runs))
        print(f"   {L:>6} {with_cache * 1e3:>11.2f} {without * 1e3:>10.2f}")


def against_hf(prompt_len: int, n: int, runs: int) -> None:
    try:
        import torch
        import transformers
    except ImportError as exc:
        print(f"\n3. Hugging Face comparison skipped ({exc.name} is not installed: "
              "pip install transformers)")
        return
    if ARGS.threads is not None:
        torch.set_num_threads(ARGS.threads)
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    hf.generation_config.eos_token_id = None          # exactly n tokens, as numpyllm
    hf.generation_config.pad_token_id = 0
    c = hf.config
    ours = GPT(GPTConfig(vocab_size=c.vocab_size, block_size=c.n_positions, n_layer=c.n_layer,
                         n_head=c.n_head, n_embd=c.n_embd, layer_norm_eps=c.layer_norm_epsilon),
               rng=np.random.default_rng(0))
    ours.load_state_dict({k.removeprefix("transformer."): v.detach().numpy()
                          for k, v in hf.state_dict().items() if k != "lm_head.weight"})
    ours.eval()
    prompt = np.random.default_rng(0).integers(0, c.vocab_size, size=prompt_len)
    ids, mask = torch.tensor(prompt[None]), torch.ones(1, prompt_len, dtype=torch.long)

    def run_hf():
        with torch.no_grad():
            return hf.generate(ids, attention_mask=mask, max_new_tokens=n,
                               do_sample=False)[0].numpy()

    def run_ours():
        return generate(ours, prompt, n, greedy=True)

    same = np.array_equal(run_ours(), run_hf())                       # also warms both up
    t_hf, t_ours = median_time(run_hf, runs), median_time(run_ours, runs)
    print(f"\n3. GPT-2 small (random init, {ours.num_parameters() / 1e6:.0f}M parameters), "
          f"greedy, {n} new tokens after {prompt_len}; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), transformers {transformers.__version__}")
    print(f"   numpyllm           : {n / t_ours:8.1f} tokens/s")
    print(f"   HF generate        : {n / t_hf:8.1f} tokens/s")
    print(f"   ratio numpyllm/HF  : {t_hf / t_ours:8.2f}   (greedy tokens identical: {same})")


def main() -> int:
    print(f"numpyllm generation benchmark; NumPy {np.__version__}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"{os.cpu_count()} CPUs")
    model = GPT(SMALL, rng=np.random.default_rng(0)).eval()
    prompt = np.random.default_rng(1).integers(0, SMALL.vocab_size, size=ARGS.prompt)
    cache_vs_recompute(model, prompt, ARGS.new_tokens, ARGS.runs)
    per_token_table(model, [int(x) for x in ARGS.contexts.split(",")], ARGS.runs)
    if not ARGS.skip_hf:
        against_hf(ARGS.prompt, ARGS.hf_new_tokens, ARGS.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

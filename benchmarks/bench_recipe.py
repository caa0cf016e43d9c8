"""The whole Tiny Shakespeare recipe, wall time: ``numpyllm train`` against the same recipe
in PyTorch, each a fresh command per round, the rounds alternating, the same threads.

    python benchmarks/bench_recipe.py                    # 2 rounds, 2,000 steps, 3 sides
    python benchmarks/bench_recipe.py --rounds 3 --max_iters 1000

The sides, as a user runs them (wall time from the command's start to its exit, imports
and data preparation included):

- **numpyllm**: ``numpyllm train --data tinyshakespeare.txt --out TMP`` (the README's
  command on the same file): nanoGPT's CPU recipe (4 x 4 x 128, block 64, batch 12,
  2,000 steps, cosine schedule, AdamW, clipping), with its periodic evaluations
  (``--eval_interval``, ``--eval_iters`` defaults), checkpoints, and the final score.
- **PyTorch**: ``benchmarks/shakespeare_torch_reference.py``: the same model, initial
  weights, batches, schedule, AdamW and clipping in PyTorch (nanoGPT's forward written
  with torch.nn.functional), then the deterministic validation score. It does *less*
  than nanoGPT's ``train.py`` (no periodic evaluation, no checkpoint), so the ratio is
  conservative for numpyllm.
- **PyTorch, train.py's work**: the same script with ``--train_py DIR``: besides the steps,
  what nanoGPT's ``train.py`` does with its README's CPU command (``--eval_iters=20
  --log_interval=1``): the train and val loss estimated on 20 random batches each every
  250 steps and at the end, a checkpoint (model and AdamW state) whenever the val loss
  improves, a line printed every step. nanoGPT itself is not on this machine: this is the
  stand-in for its wall time.

Printed: each round's wall times, the medians and their ratio, and both final
validation losses (they must agree to ~0.01: same weights, batches and math).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

DATA = H.REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def run(cmd: list, threads: int) -> tuple:
    """(wall seconds, stdout) of `cmd` run from the repository root."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(H.REPO), env=H.child_env(threads), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}")
    return wall, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max_iters", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()
    if not Path(args.data).is_file():
        print(f"bench_recipe: no corpus at {args.data} (pass --data)", file=sys.stderr)
        return 2
    walls = {"numpyllm": [], "pytorch": [], "train.py": []}
    scores = {}
    with tempfile.TemporaryDirectory(prefix="bench_recipe_") as tmp:
        sides = {
            "numpyllm": lambda r: [sys.executable, "-m", "numpyllm", "train", "--data", args.data,
                                   "--out", os.path.join(tmp, f"run{r}"),
                                   "--max_iters", str(args.max_iters)],
            "pytorch": lambda r: [sys.executable, "benchmarks/shakespeare_torch_reference.py",
                                  "--data", args.data, "--max_iters", str(args.max_iters)],
            "train.py": lambda r: [sys.executable, "benchmarks/shakespeare_torch_reference.py",
                                   "--data", args.data, "--max_iters", str(args.max_iters),
                                   "--train_py", os.path.join(tmp, f"torch{r}")],
        }
        order = list(sides)
        for r in range(args.rounds):
            for side in (order if r % 2 == 0 else order[::-1]):
                wall, out = run(sides[side](r), args.threads)
                walls[side].append(wall)
                found = re.findall(r"(?:val(?:idation)? loss|val_loss)[^0-9]*([0-9]+\.[0-9]+)",
                                   out)
                scores[side] = found[-1] if found else "?"
                print(f"  round {r + 1}/{args.rounds}: {side} {wall:.1f} s", file=sys.stderr,
                      flush=True)
    print(__doc__.split("\n\n")[0].replace("\n", " "))
    print(f"{args.max_iters} steps, {args.threads} threads on both sides, {args.rounds} rounds; "
          f"load at end {H.load()}")
    print(H.openblas_env_line())
    print("\n".join(H.blas_of_each(args.threads)))
    H.report_pair("numpyllm train", walls["numpyllm"], "PyTorch recipe", walls["pytorch"],
                  unit="s", scale=1.0)
    H.report_pair("numpyllm train", walls["numpyllm"], "PyTorch, train.py's work",
                  walls["train.py"], unit="s", scale=1.0)
    print(f"  last validation loss printed: numpyllm {scores['numpyllm']}, PyTorch "
          f"{scores['pytorch']}, with train.py's work {scores['train.py']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``numpyllm gradcheck``: check every op, fused function, layer and model against
finite differences and print a table. Exits 1 if anything fails."""
from __future__ import annotations

import time

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gradcheck", help="gradient-check every op, layer and model (float64 finite differences)",
        description="Run numpyllm.autograd.gradcheck over every registered op, fused "
                    "function, layer and model on random float64 inputs, and print a table.")
    p.add_argument("--filter", default="", metavar="TEXT",
                   help="only names that contain TEXT")
    p.add_argument("--seed", type=int, default=0, help="random seed for the inputs")
    p.add_argument("--list", action="store_true", help="list the names and exit")
    p.set_defaults(func=run)


def _rows(seed: int):
    """(name, shapes, thunk) for every op example and every registered check."""
    from numpyllm.autograd.gradcheck import gradcheck_report
    from numpyllm.autograd.optable import OP_CASES, normalize_shapes, run_case
    from numpyllm.checks import all_checks

    for case in OP_CASES:
        for example in case.examples:
            shapes = normalize_shapes(case, example)

            def thunk(case=case, shapes=shapes):
                fn, tensors, _, _ = run_case(case, shapes, np.random.default_rng(seed))
                return gradcheck_report(fn, *tensors)
            yield case.name, " ".join(str(list(s)) for s in shapes), thunk
    for check in all_checks():
        def thunk(check=check):
            fn, inputs = check.build(np.random.default_rng(seed))
            return gradcheck_report(fn, *inputs, **dict(check.options))
        yield check.name, check.shapes, thunk


def run(args) -> int:
    rows = [r for r in _rows(args.seed) if args.filter in r[0]]
    if args.list:
        for name, shapes, _ in rows:
            print(f"{name:28s} {shapes}")
        return 0
    header = f"{'name':28s} {'shapes':28s} {'mode':10s} {'max abs err':>12s} {'max rel err':>12s}  result"
    print(header)
    print("-" * len(header))
    failed, start = [], time.perf_counter()
    for name, shapes, thunk in rows:
        try:
            r = thunk()
            status, mode, abs_err, rel_err = ("pass" if r.ok else "FAIL"), r.mode, r.max_abs_err, r.max_rel_err
        except Exception as exc:  # a crash is a failure of that row, not of the command
            r, status, mode, abs_err, rel_err = None, "ERROR", "-", float("nan"), float("nan")
            failed.append((name, f"{type(exc).__name__}: {exc}"))
        else:
            if not r.ok:
                failed.append((name, "; ".join(r.failures)))
        print(f"{name:28s} {shapes[:28]:28s} {mode:10s} {abs_err:12.2e} {rel_err:12.2e}  {status}",
              flush=True)
    print("-" * len(header))
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed "
          f"in {time.perf_counter() - start:.1f} s (float64 central differences)")
    for name, why in failed:
        print(f"  {name}: {why}")
    return 1 if failed else 0

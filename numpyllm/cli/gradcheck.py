"""``numpyllm gradcheck``: check every op, fused function, layer and model against
finite differences and print a table. Exits 1 if anything fails.

With ``--mutants`` each check is also mutation-tested: every input's gradient is
corrupted in turn (zeroed, scaled by 1.01, one element's sign flipped) and the check
must fail on each; the table shows the share of corruptions caught.
"""
from __future__ import annotations

import time

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gradcheck", help="gradient-check every op, layer and model (float64 finite differences)",
        description="Run numpyllm.autograd.gradcheck over every op, fused function, layer and "
                    "model on random float64 inputs, and print a table. Exits 1 on any failure.")
    p.add_argument("--filter", default="", metavar="TEXT",
                   help="only checks whose name contains TEXT (case-insensitive)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the inputs")
    p.add_argument("--list", action="store_true", help="list the names and exit")
    p.add_argument("--mutants", action="store_true",
                   help="also corrupt each input's gradient in turn (zeroed, scaled by 1.01, "
                        "one sign flipped) and report the share the check catches (must be 100%%)")
    p.set_defaults(func=run)


def run(args) -> int:
    from numpyllm.checks import all_checks

    checks = [c for c in all_checks() if args.filter.lower() in c.name.lower()]
    if not checks:
        print(f"numpyllm gradcheck: no check's name contains {args.filter!r} "
              "(numpyllm gradcheck --list shows them)")
        return 2
    if args.list:
        for c in checks:
            print(f"{c.kind:9s} {c.name:36s} {c.shapes}")
        return 0
    header = (f"{'name':36s} {'shapes':28s} {'mode':10s} {'max abs err':>11s} {'err/tol':>8s}"
              + (f" {'mutants':>9s}" if args.mutants else "") + "  result")
    print(header)
    print("-" * len(header))
    failed, caught, total, start = [], 0, 0, time.perf_counter()
    for check in checks:
        row, why, counts = _run_check(check, args.seed, args.mutants)
        print(f"{check.name[:36]:36s} {check.shapes[:28]:28s} " + row, flush=True)
        if why:
            failed.append((check.name, why))
        caught, total = caught + counts[0], total + counts[1]
    print("-" * len(header))
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed "
          f"in {time.perf_counter() - start:.1f} s (float64 central differences)")
    if args.mutants:
        print(f"mutation score: {caught} of {total} corrupted gradients caught "
              f"({100 * caught / max(total, 1):.1f}%)")
    for name, why in failed:
        print(f"  {name}: {why}")
    return 1 if failed else 0


def _run_check(check, seed: int, mutants: bool) -> tuple[str, str, tuple]:
    """(the table row after the name and shapes, why it failed or "",
    (mutants caught, mutants tried))."""
    from numpyllm.autograd.gradcheck import measure
    from numpyllm.autograd.mutation import score_measurements

    options = dict(check.options)
    judge_options = {k: options.pop(k) for k in ("atol", "rtol") if k in options}
    try:
        case = check.make(np.random.default_rng(seed))
        m = measure(case.fn, *case.inputs, **options)
        r = m.judge(**judge_options)
    except Exception as exc:      # a crash is a failure of that row, not of the command
        return (f"{'-':10s} {'nan':>11s} {'nan':>8s}" + (f" {'-':>9s}" if mutants else "")
                + "  ERROR", f"{type(exc).__name__}: {exc}", (0, 0))
    status, why, mutation, counts = "pass", "", "", (0, 0)
    if not r.ok:
        status, why = "FAIL", "; ".join(r.failures)
    if mutants:
        report = score_measurements(m, names=case.names, **judge_options)
        mutation = f" {100 * report.score:8.1f}%"
        counts = (len(report.mutants) - len(report.survivors), len(report.mutants))
        if r.ok and report.score < 1:      # passes, but would pass some wrong gradients too
            status, why = "WEAK", "mutants survive: " + report.describe_survivors()
    return (f"{r.mode:10s} {r.max_abs_err:11.2e} {r.max_err_ratio:8.1e}{mutation}  {status}", why,
            counts)

"""``numpyllm plot``: the loss curves of a training run, from its CSV log, as a PNG.

Reads the ``log.csv`` that ``numpyllm train`` writes (`numpyllm.training.CSVLogger`) and
draws the training loss of each logged step and the train and validation losses of each
evaluation. Needs matplotlib (``pip install matplotlib``).
"""
from __future__ import annotations

from pathlib import Path

from . import CLIError
from ._common import require_matplotlib


def register(subparsers) -> None:
    p = subparsers.add_parser("plot", help="draw the loss curves of a training log (CSV) as a PNG",
                              description=__doc__)
    p.add_argument("--log", required=True, metavar="FILE.csv",
                   help="the training log (numpyllm train writes OUT/log.csv)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the picture to write")
    p.add_argument("--title", default=None, help="the picture's title")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..plots import plot_loss_csv, read_loss_csv

    require_matplotlib()
    log = Path(args.log)
    if not log.is_file():
        raise CLIError(f"--log {log}: no such file")
    try:
        curves = read_loss_csv(log)
    except (KeyError, ValueError) as exc:
        raise CLIError(f"--log {log}: not a numpyllm training log (the CSV of "
                       f"numpyllm train: step, kind, loss, ...): {exc!r}") from None
    steps = len(curves["loss"][0])
    evals = len(curves["val_loss"][0]) or len(curves["train_loss"][0])
    if not steps and not evals:
        raise CLIError(f"--log {log}: no losses in it yet")
    png = plot_loss_csv(log, args.out, title=args.title)
    print(f"loss curves ({steps} logged steps, {evals} evaluations): {png}")
    return 0

"""Pictures for study: loss curves from a training log. matplotlib is optional
(``pip install numpyllm[plot]``); without it the functions return None."""
from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["plot_loss_csv", "have_matplotlib"]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")          # files only: no window, works without a display
    import matplotlib.pyplot as plt
    return plt


def read_loss_csv(path) -> dict:
    """The columns of a `numpyllm.train.CSVLogger` file: {"step": (steps, losses), ...}."""
    train, evals = ([], []), {"train_loss": ([], []), "val_loss": ([], [])}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            if row["kind"] == "step" and row["loss"]:
                train[0].append(step)
                train[1].append(float(row["loss"]))
            elif row["kind"] == "eval":
                for key, (xs, ys) in evals.items():
                    if row.get(key):
                        xs.append(step)
                        ys.append(float(row[key]))
    return {"loss": train, **evals}


def plot_loss_csv(csv_path, png_path, title: str | None = None):
    """Draw the training loss (per logged step) and the evaluation losses from a
    training run's CSV into `png_path`. Returns the path, or None without matplotlib."""
    if not have_matplotlib():
        return None
    curves = read_loss_csv(csv_path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    (xs, ys) = curves["loss"]
    if xs:
        ax.plot(xs, ys, color="0.7", lw=1, label="train loss (batch)")
    styles = {"train_loss": ("tab:blue", "train loss (eval)"), "val_loss": ("tab:red", "val loss (eval)")}
    for key, (color, label) in styles.items():
        xs, ys = curves[key]
        if xs:
            ax.plot(xs, ys, "o-", color=color, ms=3, lw=1.5, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(title or f"numpyllm training: {Path(csv_path).parent.name or 'run'}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return Path(png_path)

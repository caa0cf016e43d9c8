"""Pictures for study: loss curves from a training log, attention maps. matplotlib is
optional (``pip install numpyllm[plot]``); without it the functions return None."""
from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["plot_loss_csv", "plot_attention", "have_matplotlib", "token_label"]


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
    """The columns of a `numpyllm.training.CSVLogger` file: {"step": (steps, losses), ...}."""
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


def token_label(text: str) -> str:
    r"""A token's text as a tick label: whitespace made visible, long tokens shortened.

    >>> token_label(" the"), token_label("\n"), token_label("")
    ('␣the', '\\n', '∅')
    """
    text = text.replace(" ", "␣").replace("\n", "\\n").replace("\t", "\\t")
    if not text:
        return "∅"
    return text if len(text) <= 12 else text[:11] + "…"


def plot_attention(layers, tokens, png_path, title: str | None = None, key_tokens=None):
    """Draw attention weights as a grid of heat maps: one row per layer, one column per head.

    `layers` is a list of ``(name, weights)`` with weights ``[n_head, Tq, Tk]`` (one
    sequence of a batch); `tokens` labels the Tq queries (rows) and `key_tokens` the Tk
    keys (columns; by default the same tokens: self-attention). Row i of a map is where
    query i looks: it sums to 1. Every panel shares one colour scale from 0 to 1, drawn
    with a square root so that small weights stay visible, and so heads compare
    directly. Returns the path, or None without matplotlib.
    """
    if not have_matplotlib():
        return None
    from matplotlib.colors import PowerNorm
    key_tokens = tokens if key_tokens is None else key_tokens
    rows = len(layers)
    cols = max(w.shape[0] for _, w in layers)
    Tq, Tk = len(tokens), len(key_tokens)
    cell = min(4.4, max(1.8, 0.1 * max(Tq, Tk)))           # inches per panel: 9 px a token
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell + 1.2, rows * cell + 0.9),
                             dpi=90, squeeze=False, layout="constrained")
    step_q, step_k = max(1, -(-Tq // 44)), max(1, -(-Tk // 44))   # at most 44 labels an axis
    query_labels = [token_label(t) for t in tokens[::step_q]]
    key_labels = [token_label(t) for t in key_tokens[::step_k]]
    rotation = 90 if max(map(len, key_labels)) > 2 else 0         # characters stay upright
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    image = None
    for r, (name, weights) in enumerate(layers):
        for c in range(cols):
            ax = axes[r][c]
            if c >= weights.shape[0]:
                ax.axis("off")
                continue
            image = ax.imshow(weights[c], cmap="viridis", norm=norm, interpolation="nearest",
                              aspect="auto")
            ax.set_title(f"{name} · head {c}", fontsize=8)
            ax.set_xticks(range(0, Tk, step_k))
            ax.set_yticks(range(0, Tq, step_q))
            ax.set_xticklabels(key_labels if r == rows - 1 else [], rotation=rotation,
                               fontsize=7, fontfamily="monospace")
            ax.set_yticklabels(query_labels if c == 0 else [], fontsize=7,
                               fontfamily="monospace")
            ax.tick_params(length=0, pad=1)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.5, aspect=30)
        bar.set_label("attention weight (square-root scale)", fontsize=8)
        bar.set_ticks([0, 0.05, 0.2, 0.5, 1.0])
        bar.ax.tick_params(labelsize=7)
    fig.suptitle(title or "attention weights (rows: queries, columns: keys)", fontsize=10)
    fig.savefig(png_path)
    plt.close(fig)
    return Path(png_path)

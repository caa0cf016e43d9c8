"""Pieces the sub-commands share (not a command itself: the leading underscore)."""
from __future__ import annotations

from . import CLIError


def load_model_and_tokenizer(path, purpose: str):
    """``(model, tokenizer, checkpoint)`` from a checkpoint directory, in eval mode, or a
    one-line CLIError; `purpose` says what the tokenizer is needed for."""
    from ..checkpoint import CheckpointError, load_model
    try:
        model, tokenizer, ckpt = load_model(path)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    if tokenizer is None:
        raise CLIError(f"{ckpt.path} has no tokenizer: cannot {purpose}")
    return model, tokenizer, ckpt


def require_matplotlib() -> None:
    """A one-line CLIError when matplotlib (an optional extra) is not installed."""
    from ..plots import have_matplotlib
    if not have_matplotlib():
        raise CLIError("matplotlib is not installed: pip install matplotlib "
                       "(or pip install numpyllm[plot])")

"""Pieces the sub-commands share (not a command itself: the leading underscore)."""
from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from pathlib import Path

from . import CLIError


def load_model_and_tokenizer(path, purpose: str):
    """``(model, tokenizer, checkpoint)`` from a checkpoint directory, in eval mode, or a
    one-line CLIError; `purpose` says what the tokenizer is needed for."""
    from ..training.checkpoint import CheckpointError, load_model
    try:
        model, tokenizer, ckpt = load_model(path)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    if tokenizer is None:
        raise CLIError(f"{ckpt.path} has no tokenizer: cannot {purpose}")
    return model, tokenizer, ckpt


def load_pretrained_model(path, purpose: str, dtype: str = "float32"):
    """``(model, tokenizer)`` from a Hugging Face model directory (`numpyllm.hub`), in eval
    mode, or a one-line CLIError; `purpose` says what the tokenizer is needed for (None:
    a directory without one is fine)."""
    from ..hub import PretrainedError, load_pretrained
    try:
        model, tokenizer = load_pretrained(path, dtype)
    except PretrainedError as exc:
        raise CLIError(str(exc)) from None
    if tokenizer is None and purpose is not None:
        raise CLIError(f"{path} has no tokenizer numpyllm reads (tokenizer.json, or "
                       f"vocab.json and merges.txt): cannot {purpose}")
    return model, tokenizer


def require_matplotlib() -> None:
    """A one-line CLIError when matplotlib (an optional extra) is not installed."""
    from ..plots import have_matplotlib
    if not have_matplotlib():
        raise CLIError("matplotlib is not installed: pip install matplotlib "
                       "(or pip install numpyllm[plot])")


# ---------------------------------------------------------------------- the training text
# A checkpoint of `numpyllm train` records what it was trained on, in its trainer state
# under "data" (numpyllm.training.Trainer.data_source):
#   {"source": "file", "path": "/abs/input.txt", "bytes": 1115394, "sha256": "...",
#    "val_fraction": 0.1}
#   {"source": "default corpus", "python": "3.11.7", "max_bytes": 4000000,
#    "characters": 4000000, "sha256": "<of its UTF-8 bytes>", "val_fraction": 0.1}
# so that `train --resume` and `eval` without --data use the same text, or say plainly
# which --data to pass when it moved or changed.
DEFAULT_CORPUS = "the Python standard library's source"


@dataclass
class Text:
    """A training or evaluation text, with the record a checkpoint keeps of it."""

    text: str
    record: dict          # as above, without val_fraction
    label: str            # for messages: the path as given, or DEFAULT_CORPUS


def read_text(path) -> Text:
    """The text of a UTF-8 file (a one-line CLIError when it cannot be), or the default
    corpus when `path` is None."""
    if path is None:
        from ..data.corpus import DEFAULT_MAX_BYTES, default_corpus
        text = default_corpus(DEFAULT_MAX_BYTES)
        return Text(text, {"source": "default corpus", "python": platform.python_version(),
                           "max_bytes": DEFAULT_MAX_BYTES, "characters": len(text),
                           "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()},
                    DEFAULT_CORPUS)
    path = Path(path)
    if not path.exists():
        raise CLIError(f"--data {path}: no such file")
    if path.is_dir():
        raise CLIError(f"--data {path}: is a directory, not a text file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(f"--data {path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not text:
        raise CLIError(f"--data {path}: the file is empty")
    return Text(text, {"source": "file", "path": str(path.resolve()), "bytes": len(raw),
                       "sha256": hashlib.sha256(raw).hexdigest()}, str(path))


def same_text(record: dict, recorded: dict) -> bool:
    """Whether two records describe the same text (by content: a moved file is the same)."""
    return record.get("sha256") == recorded.get("sha256")


def describe(recorded: dict) -> str:
    """'/abs/input.txt (1,115,394 bytes, SHA-256 1a2b3c4d5e6f...)' for messages."""
    sha = str(recorded.get("sha256", "?"))[:12]
    if recorded.get("source") == "default corpus":
        return (f"the default corpus ({DEFAULT_CORPUS} under Python {recorded.get('python')}, "
                f"{recorded.get('characters', 0):,} characters, SHA-256 {sha}...)")
    return f"{recorded.get('path')} ({recorded.get('bytes', 0):,} bytes, SHA-256 {sha}...)"


def run_text(data, ckpt, *, required: str) -> tuple:
    """``(text, record)``: the text of a run that reads one file: ``--data`` (`data`), or,
    resuming (`ckpt`) without it, the text the checkpoint records; a resumed run given
    another text is one line. `required` says what --data should hold, for the message
    when a new run has none. `record` is the checkpoint's data record (None: a new run)."""
    recorded = ckpt.trainer_state.get("data") if ckpt else None
    if ckpt is not None and data is None:
        return recorded_text(recorded, advice="pass --data FILE with that text"), recorded
    if data is None:
        raise CLIError(f"--data FILE is required: {required}")
    source = read_text(data)
    if recorded is not None and source.record.get("sha256") != recorded.get("sha256"):
        raise CLIError(f"--resume: --data {data} is not the text this run was trained on")
    return source, recorded


def recorded_text(recorded: dict | None, *, advice: str) -> Text:
    """The text a checkpoint's data record names, when it is still there unchanged;
    else a one-line CLIError that names it and ends with `advice` (which --data to
    pass). No record (a checkpoint of an older numpyllm, or of a Python script): the
    default corpus, as before records existed."""
    if recorded is None:
        return read_text(None)
    if recorded.get("source") == "default corpus":
        try:
            text = read_text(None)
        except FileNotFoundError:
            raise CLIError(f"the checkpoint was trained on {describe(recorded)}, and this Python "
                           f"has no standard-library sources to rebuild it: {advice}") from None
        if not same_text(text.record, recorded):
            raise CLIError(f"the checkpoint was trained on {describe(recorded)}; Python "
                           f"{platform.python_version()} builds a different one: {advice}")
        return text
    path = Path(str(recorded.get("path")))
    if not path.is_file():
        raise CLIError(f"the checkpoint was trained on {describe(recorded)}, which is no longer "
                       f"there: {advice}")
    try:
        text = read_text(path)
    except CLIError:
        text = None
    if text is None or not same_text(text.record, recorded):
        raise CLIError(f"the checkpoint was trained on {describe(recorded)}, which has changed "
                       f"since: {advice}")
    return text


def encode(tokenizer, text: Text):
    """`text` as an int64 id array for the checkpoint's tokenizer, or a one-line CLIError
    that says the tokenizer was built from another text."""
    import numpy as np
    from ..tokenizers import UnknownCharacterError
    # special-token names in a text are ordinary text (a BPETokenizer would refuse them)
    encode_ordinary = getattr(tokenizer, "encode_ordinary", tokenizer.encode)
    try:
        return np.asarray(encode_ordinary(text.text), dtype=np.int64)
    except UnknownCharacterError as exc:
        what = str(exc).split(";")[0]
        raise CLIError(f"{text.label}: {what}: the checkpoint's tokenizer was built from "
                       "another text") from None


def read_json_object(flag: str, path, what: str) -> dict:
    """The JSON object in file `path` (a --config-like flag's), or a one-line CLIError
    naming the flag: missing file, not JSON, not an object of `what`."""
    import json
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"{flag} {path}: no such file")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CLIError(f"{flag} {path}: not valid JSON ({exc})") from None
    if not isinstance(loaded, dict):
        raise CLIError(f"{flag} {path}: not a JSON object of {what}")
    return loaded


def run_checkpoint(out: Path, resume: bool) -> tuple:
    """``(out/ckpt, checkpoint)`` for a training command's --out: the run's newest
    checkpoint with --resume (`resume_checkpoint`), else None, and a run already there is
    refused in one line rather than written over."""
    ckpt_dir = Path(out) / "ckpt"
    if resume:
        return ckpt_dir, resume_checkpoint(ckpt_dir)
    if (ckpt_dir / "latest").exists():
        raise CLIError(f"--out {out} already holds a run (a checkpoint in {ckpt_dir}): add "
                       "--resume to continue it, or pass another --out")
    return ckpt_dir, None


def resume_checkpoint(ckpt_dir):
    """The newest checkpoint of a run in `ckpt_dir`, for ``--resume``, or a one-line
    CLIError (no such directory, an unreadable checkpoint)."""
    from ..training.checkpoint import CheckpointError, load_checkpoint
    if not Path(ckpt_dir).exists():
        raise CLIError(f"--resume: no checkpoint in {ckpt_dir}")
    try:
        return load_checkpoint(ckpt_dir)
    except CheckpointError as exc:
        raise CLIError(f"--resume: {exc}") from None

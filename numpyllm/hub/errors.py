"""The errors of `numpyllm.hub`'s Hugging Face directories (ValueErrors, like every file
error of numpyllm: `SafetensorsError`, `CheckpointError`, `VocabularyFileError`)."""
from __future__ import annotations

__all__ = ["PretrainedError", "NotExpressible"]


class PretrainedError(ValueError):
    """A Hugging Face model directory that cannot be loaded (missing or malformed files,
    a config numpyllm cannot express, weights that do not fit it), or a model that
    cannot be saved as one. The message names the directory or file, on one line."""


class NotExpressible(PretrainedError):
    """A numpyllm model (or a config.json) whose settings a given architecture cannot
    express: loading or saving it would silently compute something else."""

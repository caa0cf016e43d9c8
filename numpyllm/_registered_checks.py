"""Check builders for `numpyllm.checks`, one section per part of the library.

Each builder returns ``(fn, inputs)``; inputs are float64 Tensors (Parameters included)
with requires_grad=True where the gradient is checked.
"""
from __future__ import annotations

import numpy as np  # noqa: F401

from .autograd import Tensor  # noqa: F401
from .checks import register  # noqa: F401

# Sections (added as the parts land): functional (fused ops), positions, attention,
# layers, models.

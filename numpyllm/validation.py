"""Checks of user-given settings, raising errors that name the setting and the value.

Errors, not asserts, at the user's boundary: a config or an argument a person typed is
checked here and refused with a ValueError that says which one and why.
"""
from __future__ import annotations

from dataclasses import asdict, fields

import numpy as np

__all__ = ["positive_int", "check_positive_fields", "check_choice", "ConfigDict"]


def positive_int(name: str, value) -> int:
    """`value` as an int if it is a positive integer (bools are not), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_fields(owner: str, obj, names) -> None:
    """positive_int for each attribute `names` of `obj`, named ``owner.name`` in errors."""
    for name in names:
        positive_int(f"{owner}.{name}", getattr(obj, name))


def check_choice(owner: str, obj, choices: dict) -> None:
    """Each attribute named in `choices` must be one of its allowed values."""
    for name, allowed in choices.items():
        if getattr(obj, name) not in allowed:
            raise ValueError(f"{owner}.{name} must be one of {tuple(allowed)}, "
                             f"got {getattr(obj, name)!r}")


class ConfigDict:
    """`to_dict` / `from_dict` for a config dataclass (what a checkpoint stores as JSON)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Build from a dict; unknown keys are an error (a typo must not pass silently)."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
        return cls(**d)


def check_fraction(owner: str, name: str, value, *, closed: bool = False) -> float:
    """A real number in [0, 1) (or [0, 1] with `closed`), such as a dropout rate."""
    import numbers
    upper_ok = value <= 1.0 if closed else value < 1.0
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value \
            or not upper_ok:
        raise ValueError(f"{owner}.{name} must be a number in [0, 1{']' if closed else ')'}, "
                         f"got {value!r}")
    return float(value)


def check_positive_number(owner: str, name: str, value) -> float:
    """A finite real number > 0, such as a layer norm's epsilon."""
    import math
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {value!r}")
    return float(value)


DTYPES = ("float32", "float64")


def as_generator(rng) -> np.random.Generator:
    """The random generator a model draws its initial weights and dropout masks from:
    an `np.random.Generator` as it is, an int as its seed, or None for a fresh unseeded
    one (interactive use: not reproducible)."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be an np.random.Generator, a seed (int >= 0) or None; "
                    f"got {rng!r}")

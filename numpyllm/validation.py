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

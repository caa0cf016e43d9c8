"""The worked examples in the docstrings of numpyllm.quantize run and give what they show."""
import doctest
import importlib
import pkgutil

import pytest

import numpyllm.quantize as package

MODULES = sorted(m.name for m in pkgutil.iter_modules(package.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(f"numpyllm.quantize.{name}")
    assert doctest.testmod(module).failed == 0

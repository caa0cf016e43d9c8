"""The worked examples in the cleaning modules' docstrings run and print what they say."""
import doctest
import importlib

import pytest

MODULES = ["documents", "exact", "minhash", "lsh", "neardup", "quality", "pii", "pipeline"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"numpyllm.data.clean.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0, result

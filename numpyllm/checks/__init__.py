"""Gradient checks of every op, fused function, layer and model, in one list.

``numpyllm gradcheck`` prints them as a table; tests/test_checks.py runs each one and
its mutation test (every input's gradient corrupted in turn must fail the check).

- case.py        `Check` (a name and a builder), `Case` (fn, inputs, names), `perturb`
- ops.py         the op table's rows (numpyllm/autograd/optable.py) as checks
- functional.py  the fused functions of numpyllm.functional
- layers.py      the layers of numpyllm.nn, MultiHeadAttention included
- models.py      GPT in every configuration, the encoder-decoder, the encoder-only model
- registry.py    `all_checks()`, and `register` for checks of your own

A check of your own:

    from numpyllm.checks import Case, leaf, perturb, register

    @register("my layer", "x [2, 4]")
    def _my_layer(rng):
        layer = perturb(MyLayer(4, dtype=np.float64), rng)
        return Case(lambda x, *params: layer(x), (leaf(rng, 2, 4), *layer.parameters()))
"""
from .case import Case, Check, leaf, module_case, perturb
from .registry import USER_CHECKS, all_checks, register

__all__ = ["Case", "Check", "leaf", "module_case", "perturb", "all_checks", "register",
           "USER_CHECKS"]

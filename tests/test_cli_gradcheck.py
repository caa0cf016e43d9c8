"""`numpyllm gradcheck` prints a table and exits non-zero on any failure."""
import numpy as np

from numpyllm import checks
from numpyllm.autograd import Function, Tensor
from numpyllm.cli import main


def test_gradcheck_command_passes_and_prints_a_table(capsys):
    assert main(["gradcheck", "--filter", "__matmul__"]) == 0
    out = capsys.readouterr().out
    assert "max abs err" in out and "__matmul__" in out and " 0 failed" in out


def test_gradcheck_command_lists_everything(capsys):
    assert main(["gradcheck", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("__add__", "sum", "concat", "__getitem__"):
        assert name in out


class _Wrong(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_gradcheck_command_fails_on_a_wrong_gradient(capsys, monkeypatch):
    def build(rng):
        return _Wrong.apply, (Tensor(rng.standard_normal(3), requires_grad=True),)

    monkeypatch.setattr(checks, "all_checks", lambda: [checks.Check("wrong_op", build, "[3]")])
    assert main(["gradcheck", "--filter", "wrong_op"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "wrong_op" in out and "1 failed" in out

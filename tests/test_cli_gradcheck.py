"""`numpyllm gradcheck` prints a table and exits non-zero on any failure."""
import numpy as np
import pytest

from numpyllm import checks
from numpyllm.autograd import Function, Tensor
from numpyllm.cli import main


def test_gradcheck_command_passes_and_prints_a_table(capsys):
    assert main(["gradcheck", "--filter", "__matmul__"]) == 0
    out = capsys.readouterr().out
    assert "max abs err" in out and "err/tol" in out and "__matmul__" in out and " 0 failed" in out


def test_gradcheck_command_lists_everything(capsys):
    assert main(["gradcheck", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("__add__", "sum", "concat", "__getitem__", "layer_norm", "MHA cross",
                 "GPT (rope, post-LN, no bias)", "Transformer (post-LN)"):
        assert name in out


def test_a_filter_that_matches_nothing_is_an_error(capsys):
    assert main(["gradcheck", "--filter", "no such check"]) == 2
    out = capsys.readouterr().out
    assert "no check's name contains 'no such check'" in out and "--list" in out


def test_mutants_column_and_score(capsys):
    assert main(["gradcheck", "--filter", "layernorm", "--mutants"]) == 0
    out = capsys.readouterr().out
    assert "mutants" in out and "100.0%" in out
    assert "mutation score: 15 of 15 corrupted gradients caught (100.0%)" in out


class _Wrong(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 2


def _only(monkeypatch, *items):
    monkeypatch.setattr(checks, "all_checks", lambda: list(items))


def test_gradcheck_command_fails_on_a_wrong_gradient(capsys, monkeypatch):
    def build(rng):
        return _Wrong.apply, (Tensor(rng.standard_normal(3), requires_grad=True),)

    _only(monkeypatch, checks.Check("wrong_op", build, "[3]"))
    assert main(["gradcheck", "--filter", "wrong_op"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "wrong_op" in out and "1 failed" in out


def test_a_check_that_passes_wrong_gradients_is_weak(capsys, monkeypatch):
    """A check whose input never reaches the output passes, and proves nothing."""
    def build(rng):
        a, b = (Tensor(rng.standard_normal(3), requires_grad=True) for _ in range(2))
        return checks.Case(lambda a, b: (a * a).sum() + 0 * b.sum(), (a, b), {1: "b"})

    _only(monkeypatch, checks.Check("blind", build, "[3] [3]"))
    assert main(["gradcheck"]) == 0                      # without --mutants: it passes
    assert main(["gradcheck", "--mutants"]) == 1
    out = capsys.readouterr().out
    assert "WEAK" in out and "b zeroed" in out and "true gradient is zero" in out


def test_a_crashing_check_is_an_error_row(capsys, monkeypatch):
    def build(rng):
        raise RuntimeError("broken builder")

    _only(monkeypatch, checks.Check("crash", build, ""))
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "RuntimeError: broken builder" in out


@pytest.mark.parametrize("seed", [0, 3])
def test_the_command_passes_everything(capsys, seed):
    assert main(["gradcheck", "--seed", str(seed), "--filter", "GPT (alibi"]) == 0
    assert " 0 failed" in capsys.readouterr().out

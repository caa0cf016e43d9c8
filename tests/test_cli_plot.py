"""`numpyllm plot`: loss curves from a training run's CSV log (numpyllm/plots.py)."""
import sys

import pytest

from numpyllm.cli import main
from numpyllm.plots import read_loss_csv
from numpyllm.training import CSVLogger

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def log(tmp_path):
    """A log as CSVLogger writes it: steps every 10, evaluations every 50."""
    path = tmp_path / "run" / "log.csv"
    logger = CSVLogger(path)
    for step in range(10, 101, 10):
        logger({"kind": "step", "step": step, "loss": 4.0 / step ** 0.3, "lr": 1e-3,
                "grad_norm": 1.0, "tokens": 768, "seconds": 0.1})
        if step % 50 == 0:
            logger({"kind": "eval", "step": step, "lr": 1e-3, "train_loss": 3.0 - step / 100,
                    "val_loss": 3.1 - step / 100, "val_perplexity": 10.0})
        logger({"kind": "checkpoint", "step": step, "path": "x"})        # not a loss: skipped
    return path


def test_read_loss_csv(log):
    curves = read_loss_csv(log)
    assert curves["loss"][0] == list(range(10, 101, 10))
    assert curves["val_loss"] == ([50, 100], [2.6, 2.1])
    assert curves["train_loss"][0] == [50, 100]


def test_plot_command_writes_a_png(log, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "loss.png"
    assert main(["plot", "--log", str(log), "--out", str(out), "--title", "a run"]) == 0
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert capsys.readouterr().out == f"loss curves (10 logged steps, 2 evaluations): {out}\n"


def test_a_log_with_only_steps_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "log.csv"
    CSVLogger(path)({"kind": "step", "step": 1, "loss": 4.2, "lr": 1e-3, "grad_norm": 1.0})
    assert main(["plot", "--log", str(path), "--out", str(tmp_path / "l.png")]) == 0
    assert (tmp_path / "l.png").exists()


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("a,b\n1,2\n", "not a numpyllm training log"),
    ("step,kind,loss\nten,step,1.0\n", "not a numpyllm training log"),
    (",".join(CSVLogger.COLUMNS) + "\n", "no losses in it yet"),
])
def test_plot_command_errors_are_one_line(tmp_path, capsys, content, message):
    pytest.importorskip("matplotlib")
    path = tmp_path / "log.csv"
    if content is not None:
        path.write_text(content)
    assert main(["plot", "--log", str(path), "--out", str(tmp_path / "l.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpyllm plot: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "l.png").exists()


def test_plot_command_without_matplotlib(log, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)               # import fails
    assert main(["plot", "--log", str(log), "--out", str(tmp_path / "l.png")]) == 2
    assert capsys.readouterr().err == ("numpyllm plot: error: matplotlib is not installed: pip "
                                       "install matplotlib (or pip install numpyllm[plot])\n")

"""Shared test set-up: the hypothesis profiles, the path to ../shared, and the rule that
makes optional oracles mandatory where they are meant to run (CI)."""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# "ci" (the default): a fixed number of examples, derandomized, so every run tries the
# same cases and the suite stays fast. "dev": many more random examples, for hunting bugs:
#   HYPOTHESIS_PROFILE=dev pytest
settings.register_profile(
    "ci", max_examples=25, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"


def _one_line_error(capsys, args, *fragments):
    """`numpyllm ARGS` fails as a user error should: exit code 2 and one line on stderr,
    ``numpyllm COMMAND: error: ...``, holding every fragment; no traceback."""
    from numpyllm.cli import main
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"numpyllm {args[0]}: error:"), err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def one_line_error():
    """The check of a command-line user error (`_one_line_error`), for the CLI tests."""
    return _one_line_error


@pytest.fixture
def shakespeare_path():
    path = SHARED_DATA / "tinyshakespeare.txt"
    if not path.exists():
        pytest.skip(f"needs {path} (../shared beside the project); absent in a user's clone")
    return path


@pytest.fixture
def instruction_path():
    path = SHARED_DATA / "instruction" / "instruction-data.json"
    if not path.exists():
        pytest.skip(f"needs {path} (../shared beside the project); absent in a user's clone")
    return path


@pytest.fixture
def gpt2_files():
    enc, bpe = SHARED_DATA / "gpt2" / "encoder.json", SHARED_DATA / "gpt2" / "vocab.bpe"
    if not (enc.exists() and bpe.exists()):
        pytest.skip(f"needs GPT-2's vocabulary files in {enc.parent} (../shared beside the project)")
    return enc, bpe


# ------------------------------------------------------------------ oracles that must run
# Without an optional package (torch, tiktoken, transformers, matplotlib ...) its tests
# skip, so a user's plain `pytest` passes. CI sets NUMPYLLM_REQUIRE_ORACLES=1 after
# installing them: there, a test in tests/oracle/ that skips, or any test skipped by
# pytest.importorskip, fails instead, so an oracle cannot stop running unnoticed.
REQUIRE_ORACLES = os.environ.get("NUMPYLLM_REQUIRE_ORACLES") == "1"


def _must_not_skip(path: str, report) -> bool:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    in_oracles = "/tests/oracle/" in path.replace("\\", "/") or path.startswith("tests/oracle/")
    return in_oracles or "could not import" in reason


def _fail_instead(report, what: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"NUMPYLLM_REQUIRE_ORACLES=1: {what} was meant to run but skipped: {reason} "
                       "(install the pinned oracles: pip install -e '.[test,oracle]')")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if REQUIRE_ORACLES and report.skipped and _must_not_skip(str(item.path), report):
        _fail_instead(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    report = (yield).get_result()
    if REQUIRE_ORACLES and report.skipped and _must_not_skip(str(collector.path), report):
        _fail_instead(report, collector.nodeid)

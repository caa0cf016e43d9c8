"""NUMPYLLM_REQUIRE_ORACLES=1 (set by .ci/run) turns an oracle's skip into a failure."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py").read_text()

ORACLE_TEST = '''
import pytest
missing = pytest.importorskip("numpyllm_no_such_oracle")

def test_against_the_oracle():
    assert missing
'''

OTHER_TESTS = '''
import pytest

def test_needs_an_optional_package():
    pytest.importorskip("numpyllm_no_such_package")

def test_skips_for_another_reason():
    pytest.skip("needs Graphviz's dot program")
'''


def _run(tmp_path, require: bool):
    (tmp_path / "tests" / "oracle").mkdir(parents=True)
    (tmp_path / "tests" / "conftest.py").write_text(CONFTEST)
    (tmp_path / "tests" / "oracle" / "test_oracle.py").write_text(ORACLE_TEST)
    (tmp_path / "tests" / "test_other.py").write_text(OTHER_TESTS)
    env = dict(os.environ, NUMPYLLM_REQUIRE_ORACLES="1" if require else "0")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           "--import-mode=importlib", "--continue-on-collection-errors", "tests"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("require", [False, True])
def test_skips_become_failures_only_when_oracles_are_required(tmp_path, require):
    code, out = _run(tmp_path, require)
    if not require:
        assert code == 0 and "3 skipped" in out, out
    else:
        assert code == 1, out
        # the module-level importorskip fails collection; the in-test one fails the test
        assert "1 failed" in out and "1 skipped" in out and "1 error" in out, out
        assert "NUMPYLLM_REQUIRE_ORACLES=1" in out and "numpyllm_no_such_oracle" in out
        assert "Graphviz" in out                     # a skip for another reason stays a skip

"""Shared test set-up: the hypothesis profiles and the path to ../shared."""
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


@pytest.fixture
def shakespeare_path():
    path = SHARED_DATA / "tinyshakespeare.txt"
    if not path.exists():
        pytest.skip(f"needs {path} (../shared beside the project); absent in a user's clone")
    return path


@pytest.fixture
def gpt2_files():
    enc, bpe = SHARED_DATA / "gpt2" / "encoder.json", SHARED_DATA / "gpt2" / "vocab.bpe"
    if not (enc.exists() and bpe.exists()):
        pytest.skip(f"needs GPT-2's vocabulary files in {enc.parent} (../shared beside the project)")
    return enc, bpe

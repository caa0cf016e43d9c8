"""keep_freed_memory: applied on glibc Linux, harmless elsewhere, and numbers unchanged."""
import platform
import sys

import numpy as np

from numpyllm.runtime import keep_freed_memory


def test_keep_freed_memory_applies_on_glibc_and_changes_no_result():
    before = np.linalg.norm(np.arange(1e6))
    applied = keep_freed_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert applied is True
    else:
        assert applied in (True, False)
    big = [np.ones(2_000_000) for _ in range(3)]       # allocations above the old threshold
    del big
    assert np.linalg.norm(np.arange(1e6)) == before

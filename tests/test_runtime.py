"""runtime: keep_freed_memory applied on glibc Linux and harmless elsewhere; BLAS thread
counts scoped and restored; numbers unchanged by either."""
import platform
import sys

import numpy as np
import pytest

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


def test_blas_threads_is_scoped_and_restored():
    from numpyllm.runtime import blas_threads, get_blas_threads, set_blas_threads
    before = get_blas_threads()
    if before is None:
        pytest.skip("numpy's BLAS here is not an OpenBLAS numpyllm can reach")
    a = np.random.default_rng(0).standard_normal((300, 300))
    expected = a @ a
    with blas_threads(1):
        assert get_blas_threads() == 1
        np.testing.assert_allclose(a @ a, expected, rtol=1e-12, atol=1e-10)
    assert get_blas_threads() == before
    with pytest.raises(RuntimeError):
        with blas_threads(1):
            raise RuntimeError("inside")
    assert get_blas_threads() == before
    assert set_blas_threads(before) is True


@pytest.mark.parametrize("bad", [0, -2, 1.0, True])
def test_set_blas_threads_refuses_non_positive_counts(bad):
    from numpyllm.runtime import set_blas_threads
    with pytest.raises(ValueError, match="positive integer"):
        set_blas_threads(bad)


def test_blas_core_names_openblas_kernels_or_none():
    from numpyllm.runtime import blas_core, get_blas_threads
    core = blas_core()
    assert (core is None) == (get_blas_threads() is None)
    if core is not None:
        assert isinstance(core, str) and core


def test_numpys_own_openblas_comes_first():
    # scipy brings an OpenBLAS of its own: the thread count must be numpy's
    pytest.importorskip("scipy.linalg")
    from numpyllm.runtime import _loaded_openblas_paths
    paths = _loaded_openblas_paths()
    if not paths:
        pytest.skip("no OpenBLAS library found")
    numpy_dir = __import__("os").path.dirname(np.__file__)
    owned = [p for p in paths if p.startswith(numpy_dir) or "numpy.libs" in p]
    if owned:
        assert paths[0] == owned[0]

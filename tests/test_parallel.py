"""numpyllm.parallel: pieces cover the range once, errors propagate, results do not
depend on the number of threads (attention, bit for bit)."""
import numpy as np
import pytest

from numpyllm import parallel
from numpyllm.autograd import Tensor
from numpyllm.functional import attention, scaled_dot_product_attention


@pytest.fixture
def threads():
    before = parallel.num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


@pytest.mark.parametrize("n_threads, n", [(1, 5), (2, 5), (3, 7), (4, 2), (2, 1)])
def test_pieces_cover_the_range_once(threads, n_threads, n):
    threads(n_threads)
    seen = np.zeros(n, dtype=int)

    def work(sl):
        seen[sl] += 1
    parallel.for_slices(n, work)
    assert (seen == 1).all()


def test_small_work_stays_serial(threads):
    threads(2)
    calls = []
    parallel.for_slices(8, calls.append, min_work=100, work_per_item=1)
    assert calls == [slice(0, 8)]


def test_errors_propagate(threads):
    threads(2)

    def work(sl):
        if sl.start > 0:
            raise RuntimeError("piece failed")
    with pytest.raises(RuntimeError, match="piece failed"):
        parallel.for_slices(4, work)


def test_bad_thread_count():
    with pytest.raises(ValueError, match="positive integer"):
        parallel.set_num_threads(0)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_attention_is_bit_identical_on_one_or_two_threads(threads, dropout_p):
    rng = np.random.default_rng(0)
    # 6 x 4 x 128 x 128 scores: above the size attention starts splitting at
    arrays = [rng.standard_normal((6, 4, 128, 32)).astype(np.float32) for _ in range(3)]
    g = rng.standard_normal((6, 4, 128, 32)).astype(np.float32)
    assert 6 * 4 * 128 * 128 >= attention._PARALLEL_MIN_SCORES
    results = []
    for n in (1, 2):
        threads(n)
        q, k, v = (Tensor(a, requires_grad=True) for a in arrays)
        out = scaled_dot_product_attention(q, k, v, causal=True, dropout_p=dropout_p,
                                           rng=np.random.default_rng(1))
        out.backward(g)
        results.append([out.data, q.grad, k.grad, v.grad])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_a_region_inside_a_piece_runs_serially(threads):
    # nested regions do not wait on the pool from one of its own threads (a deadlock
    # with one worker): the inner call runs whole in the piece's thread
    threads(2)
    inner = []

    def work(sl):
        parallel.for_slices(6, inner.append)
    parallel.for_slices(2, work)
    assert inner == [slice(0, 6), slice(0, 6)]

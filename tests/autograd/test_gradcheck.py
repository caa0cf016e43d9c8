"""gradcheck must pass right gradients and catch wrong ones, with a useful message."""
import numpy as np
import pytest

from numpyllm.autograd import Function, GradcheckError, Tensor, gradcheck, gradcheck_report


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved
        return 2 * x * g           # d/dx x^2 = 2x


class WrongSquare(Square):
    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved
        return 2.01 * x * g        # off by half a percent


class ScaledProduct(Function):
    """A user op with a non-tensor argument: out = scale * a * b."""

    @staticmethod
    def forward(ctx, a, b, scale):
        ctx.save_for_backward(a, b)
        ctx.scale = scale
        return scale * a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return ctx.scale * g * b, ctx.scale * g * a, None


def rand(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).uniform(0.5, 2, shape), requires_grad=True)


def test_user_function_passes():
    assert gradcheck(Square.apply, rand(3, 4))
    assert gradcheck(lambda a, b: ScaledProduct.apply(a, b, 3.0), rand(2, 3), rand(3, seed=1))


def test_wrong_backward_is_caught_with_details():
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongSquare.apply, rand(3, 4))
    msg = str(info.value)
    assert "input 0" in msg and "(3, 4)" in msg
    assert "analytic" in msg and "numeric" in msg and "abs err" in msg and "rel err" in msg


def test_wrong_backward_caught_by_projections_too():
    x = rand(40, 30)                  # 1200 elements: beyond the full-Jacobian limit
    report = gradcheck_report(WrongSquare.apply, x)
    assert report.mode == "projection" and not report.ok
    assert "random projection" in report.failures[0]
    assert gradcheck_report(Square.apply, x).ok


def test_raise_exception_false_returns_false():
    assert gradcheck(WrongSquare.apply, rand(3), raise_exception=False) is False


def test_names_the_failing_input_among_several():
    class HalfWrong(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved
            return g * b, g * a * 1.1   # b's gradient is wrong

    report = gradcheck_report(HalfWrong.apply, rand(3), rand(3, seed=1))
    assert not report.ok
    assert all(f.startswith("input 1") for f in report.failures)


def test_needs_float64():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="float64"):
        gradcheck(Square.apply, x)


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(Square.apply, Tensor(np.ones(3)))


def test_callers_arrays_and_grads_are_untouched():
    data = np.random.default_rng(0).standard_normal((3, 3))
    before = data.copy()
    x = Tensor(data, requires_grad=True)
    x.grad = np.full((3, 3), 7.0)
    gradcheck(lambda t: (t * t).sum(), x)
    assert x.data is data
    np.testing.assert_array_equal(data, before)
    np.testing.assert_array_equal(x.grad, np.full((3, 3), 7.0))


def test_non_tensor_and_constant_inputs_pass_through():
    const = Tensor(np.arange(3.0))          # does not require grad: not checked
    assert gradcheck(lambda a, c, k: (a * c * k).sum(), rand(3), const, 2.0)


def test_report_fields():
    r = gradcheck_report(Square.apply, rand(2, 2))
    assert r.ok and bool(r) and r.mode == "jacobian"
    assert 0 <= r.max_abs_err < 1e-6 and r.failures == []


def test_non_leaf_input_is_refused():
    x = rand(3)
    with pytest.raises(ValueError, match="input 0 was made by an operation.*leaf"):
        gradcheck(Square.apply, x * 2)


# ------------------------------------------------------------------ the tolerance model
def test_a_zeroed_small_gradient_fails_in_projection_mode():
    """b's gradient is about 1e-6 per element: an absolute tolerance of 1e-5 * sqrt(size)
    (the old projection bar, 3e-4 here) passed a zero in its place."""
    a, b = rand(1000), Tensor(np.random.default_rng(1).standard_normal(1000), requires_grad=True)

    class ForgetsB(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a)
            return a + 1e-6 * a * b

        @staticmethod
        def backward(ctx, g):
            a, = ctx.saved
            return g * (1 + 1e-6 * b.data), None       # b's gradient forgotten

    report = gradcheck_report(lambda a, b: ForgetsB.apply(a, b).sum(), a, b)
    assert report.mode == "projection" and not report.ok
    assert all(f.startswith("input 1") for f in report.failures)


@pytest.mark.parametrize("shape", [(3, 4), (40, 30)])
def test_a_gradient_one_percent_off_fails(shape):
    class OnePercent(Square):
        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved
            return 1.01 * 2 * x * g

    assert not gradcheck_report(OnePercent.apply, rand(*shape)).ok


@pytest.mark.parametrize("fn", [
    lambda t: ((t + 1e6) ** 2).sum(),                # large values, small differences
    lambda t: (t * 1e8).sum() - (t * 1e8).sum() + t.tanh().sum(),   # cancellation
    lambda t: (t * 5).exp(),                         # a large third derivative
    lambda t: t[:2] * 1e8,                           # exact zeros in the Jacobian, big values
    lambda t: (t * 1e-8).sum(),                      # a tiny gradient, still checked
], ids=["offset", "cancellation", "exp", "zeros", "tiny"])
def test_correct_gradients_pass_where_finite_differences_are_noisy(fn):
    x = Tensor(np.random.default_rng(3).uniform(0.5, 1.5, 6), requires_grad=True)
    r = gradcheck_report(fn, x)
    assert r.ok, r.failures
    assert r.max_err_ratio < 0.5


def test_the_message_gives_the_tolerance_and_the_report_the_error_ratio():
    r = gradcheck_report(WrongSquare.apply, rand(3, 4))
    assert "tolerance" in r.failures[0] and "estimated finite-difference error" in r.failures[0]
    assert r.max_err_ratio > 1
    assert 0 < gradcheck_report(Square.apply, rand(3, 4)).max_err_ratio < 1

"""Fuzzing the public API with hypothesis: every F.* function, every layer, the losses, the
optimizers, ag.tensor and ag.load, with generated shapes, dtypes (ints, bools, float16/32/64,
strings, objects), values (NaN, Inf, huge, empty, 0-d) and argument values.

The property, for every call: either a result equal to a NumPy reference (where a cheap one
exists), or one of our errors (an AutogradError) whose message names the op or an argument;
never a raw NumPy or Python exception, never a silent coercion (text becoming numbers, a
float32 input coming back float64, a bool taken as an axis).

Bounded so that the file runs in well under a minute: derandomized (the same examples each run).
Set AUTOGRAD_CNN_FUZZ_EXAMPLES=N to try N fresh random examples per test instead.
Each call tried is counted; the module prints the total at its end.
"""
from __future__ import annotations

import collections
import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import autograd_cnn as ag  # noqa: E402
import autograd_cnn.functional as F  # noqa: E402
from autograd_cnn import nn, optim  # noqa: E402

_EXPLORE = int(os.environ.get("AUTOGRAD_CNN_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int) -> Any:
    """The settings of one fuzz test: ``examples`` fixed examples (or the explore count, random)."""
    return settings(max_examples=_EXPLORE or examples, deadline=None, derandomize=not _EXPLORE, database=None,
                    suppress_health_check=list(HealthCheck))


# --------------------------------------------------------------------------- the property

CALLS: collections.Counter = collections.Counter()  # calls tried, per function
RESULTS: collections.Counter = collections.Counter()  # of them, calls that gave a result (not an error)
REFUSED = object()  # what attempt() returns when the call raised one of our errors


@pytest.fixture(scope="module", autouse=True)
def _count_calls():
    yield
    print(f"\nfuzzing: {sum(CALLS.values())} calls tried on {len(CALLS)} functions, "
          f"{sum(RESULTS.values())} gave a result, the others one of our errors")
    # A function that refused every call would pass the property without being tested.
    never = sorted(op for op in CALLS if not RESULTS[op])
    assert not never, f"no generated call of {never} gave a result: the generators need fixing"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No NumPy notes about overflow, NaN or empty slices: the values themselves are checked."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _plain(text: str) -> str:
    return text.lower().replace("_", "").replace(" ", "")


def attempt(op: str, fn: Any, *args: Any, aliases: tuple = (), **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``'s result, or REFUSED when it raised an AutogradError whose message
    names ``op``, one of ``aliases`` (the ops it is built from) or an argument it was given.
    Any other exception propagates, and fails the test."""
    CALLS[op] += 1
    try:
        with quiet():
            result = fn(*args, **kwargs)
        RESULTS[op] += 1
        return result
    except ag.AutogradError as err:
        message = _plain(str(err))
        names = (op, *aliases, *kwargs)
        assert any(_plain(n) in message for n in names), f"{op}: the error names none of {names}: {err}"
        return REFUSED


def text_or_objects(*values: Any) -> bool:
    """Whether any input holds text or Python objects, which no op may take as numbers."""
    for v in values:
        array = v.data if isinstance(v, ag.Tensor) else v
        if isinstance(array, str) or (isinstance(array, np.ndarray) and array.dtype.kind in "OUSV"):
            return True
        if isinstance(array, (list, tuple)) and text_or_objects(*array):
            return True
    return False


def tolerance(dtype: Any) -> float:
    return {"float16": 2e-2, "float32": 1e-4}.get(np.dtype(dtype).name, 1e-9)


def assert_matches(op: str, out: Any, expected: Any, precision: Any = None) -> None:
    """out is a Tensor equal to the float64 reference ``expected``: rounded to out's precision when out
    holds floats (or to ``precision``, the coarsest dtype a part of it was computed in), exactly when
    it holds integers (an erf of integers must not come back as 0), NaN where NaN is expected."""
    assert isinstance(out, ag.Tensor), f"{op} returned {type(out).__name__}"
    expected = np.asarray(expected)
    assert out.shape == expected.shape, f"{op}: shape {out.shape}, expected {expected.shape}"
    got = out.numpy().astype(np.float64)
    with quiet():  # rounded to a float output's precision; an integer output must be exact
        want = expected.astype(out.dtype).astype(np.float64) if out.dtype.kind == "f" else expected
    tol = tolerance(precision or out.dtype) if out.dtype.kind == "f" else 0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True, err_msg=op)


# --------------------------------------------------------------------------- what is generated

FLOATS = ("float16", "float32", "float64")
NUMERIC = (*FLOATS, "int8", "int32", "int64", "uint8", "bool")
SPECIAL = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e300, -1e300, 1e-300, 65504.0, 3.4e38)


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 0, max_side: int = 4) -> Any:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


@st.composite
def arrays(draw: Any, dtypes: tuple = NUMERIC, shape: Any = None, finite: bool = False) -> np.ndarray:
    """A NumPy array: any of ``dtypes``, values with NaN, Inf and huge ones among them (unless finite)."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(shape if shape is not None else shapes())
    base = draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3, width=16)))
    if dtype.kind == "f" and not finite and base.size and draw(st.booleans()):
        index = draw(st.integers(0, base.size - 1))
        base.flat[index] = draw(st.sampled_from(SPECIAL))
    with quiet():
        if dtype.kind in "iu":
            return np.round(base).astype(dtype)
        return (base > 0) if dtype.kind == "b" else base.astype(dtype)


@st.composite
def tensors(draw: Any, dtypes: tuple = NUMERIC, shape: Any = None, finite: bool = False) -> ag.Tensor:
    return ag.tensor(draw(arrays(dtypes, shape, finite)))


JUNK = st.sampled_from([None, "x", "mean", 1.5, -1, 0, True, math.nan, (1, 2), [3], {}, object()])
TEXT = st.sampled_from([np.array(["1", "2"]), np.array([[b"a"]]), np.array([1, "a"], dtype=object),
                        np.array([1.0, 2.0], dtype=object), "12", ["1", "2"], [[1, 2], [3]]])


def often(good: Any, bad: Any = None) -> Any:
    """Mostly ``good`` values (three times in four), else ``bad`` ones (JUNK by default): enough good
    calls get through to compare results, enough bad ones to check the refusals."""
    return st.one_of(good, good, good, JUNK if bad is None else bad)


def inputs(dtypes: tuple = NUMERIC, shape: Any = None) -> Any:
    """What a user may pass where a tensor goes: mostly tensors and arrays, sometimes numbers,
    lists, text, objects or junk."""
    return st.one_of(tensors(dtypes, shape), tensors(dtypes, shape), arrays(dtypes, shape),
                     st.sampled_from([2.0, 0, True, [1.0, 2.0]]), TEXT, JUNK)


# Argument values: plausible ones mixed with wrong ones (0, negatives, floats, bools, text, None).
SMALL_INTS = st.integers(-2, 5)
INT_ARGS = st.one_of(SMALL_INTS, SMALL_INTS, st.tuples(SMALL_INTS, SMALL_INTS), JUNK, st.just(2 ** 40))
AXES = st.one_of(st.none(), st.integers(-5, 5), st.tuples(st.integers(-4, 4)), st.tuples(st.integers(-4, 4),
                 st.integers(-4, 4)), st.sampled_from([True, 1.0, "0", [0]]))
FLAGS = st.sampled_from([True, False, True, False, 0, 1, "yes", None])
REDUCTIONS = st.sampled_from(["mean", "sum", "none", "mean", "avg", None, 1])
REALS = st.one_of(st.floats(-2, 2), st.sampled_from([math.nan, math.inf, -1.0, 0.0, 1.0, "0.1", None, True]))


# --------------------------------------------------------------------------- ag.tensor

TENSOR_DATA = st.one_of(
    arrays(), arrays(FLOATS),
    st.lists(st.floats(), max_size=4), st.lists(st.integers(-2 ** 70, 2 ** 70), max_size=3),
    st.lists(st.lists(st.floats(-3, 3), max_size=3), max_size=3),  # ragged, sometimes
    st.floats(), st.integers(-2 ** 70, 2 ** 70), st.booleans(), TEXT, JUNK,
)
DTYPE_ARGS = st.sampled_from([None, None, None, "float32", "float64", "float16", "int64", "int8", "uint8", "bool",
                              np.float32, "str", "object", "U3", "foo", 3, float])


def expected_tensor(data: Any, dtype: Any) -> np.ndarray:
    """What ag.tensor(data, dtype) holds: NumPy's array, Python floats as float32, cast to dtype."""
    host = data if isinstance(data, np.ndarray) else np.asarray(data)
    if dtype is None and not isinstance(data, np.ndarray) and host.dtype == np.float64:
        return host.astype(np.float32)
    return host if dtype is None else host.astype(dtype)


@fuzz(400)
@given(data=TENSOR_DATA, dtype=DTYPE_ARGS, requires_grad=FLAGS)
def test_fuzz_tensor(data, dtype, requires_grad):
    out = attempt("tensor", ag.tensor, data, dtype=dtype, requires_grad=requires_grad)
    if out is REFUSED:
        return
    assert not text_or_objects(data), f"tensor() made numbers of {data!r}"
    assert requires_grad in (True, False) and out.requires_grad is requires_grad
    assert out.dtype.kind in "biufc", out.dtype
    with quiet():
        want = expected_tensor(data, dtype)
        # Nothing changes on the way but what the dtype asks for: no finite number becomes Inf,
        # no NaN or out-of-range number becomes some integer.
        host = np.asarray(data, dtype=np.float64) if want.dtype.kind in "iuf" else None
    assert out.dtype == want.dtype and out.shape == want.shape
    np.testing.assert_array_equal(out.numpy(), want)
    if host is not None and host.dtype.kind == "f" and want.dtype.kind in "iu":
        assert np.isfinite(host).all() and (np.trunc(host) == want).all(), f"{data!r} became {want!r}"
    if host is not None and want.dtype.kind == "f":
        assert (np.isinf(want) <= np.isinf(host)).all(), f"{data!r} overflowed to {want!r}"


# --------------------------------------------------------------------------- elementwise ops


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x) if x.size else x


UNARY = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
    "exp": (F.exp, np.exp),
    "log": (F.log, np.log),
    "sqrt": (F.sqrt, np.sqrt),
    "abs": (F.abs, np.abs),
    "erf": (F.erf, _erf),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    "softplus": (F.softplus, lambda x: np.where(x > 20, x, np.logaddexp(0, x))),
    "leaky_relu": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x)),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@fuzz(60)
@given(x=inputs())
def test_fuzz_unary(op, x):
    fn, reference = UNARY[op]
    out = attempt(op, fn, x)
    if out is REFUSED:
        return
    assert not text_or_objects(x)
    source = x.numpy() if isinstance(x, ag.Tensor) else np.asarray(x)
    with quiet():
        assert_matches(op, out, reference(source.astype(np.float64)))
    if source.dtype.kind == "f" and isinstance(x, (ag.Tensor, np.ndarray)):
        assert out.dtype == source.dtype, f"{op}: {source.dtype} in, {out.dtype} out"


ACTIVATION_ARGS = {
    "leaky_relu": (lambda x, a, b: F.leaky_relu(x, negative_slope=a),  # the slope in x's dtype
                   lambda x, a, b, dtype=None: np.where(x > 0, x, x.astype(dtype) * np.asarray(a).astype(dtype)),
                   ("negative_slope",)),
    "softplus": (lambda x, a, b: F.softplus(x, beta=a, threshold=b),  # beta x and threshold in x's dtype
                 lambda x, a, b, dtype=None: np.where(x.astype(dtype) * np.asarray(a).astype(dtype)
                                                      > np.asarray(b).astype(dtype), x,
                                                      np.logaddexp(0, a * x) / a), ("beta", "threshold")),
    "gelu": (lambda x, a, b: F.gelu(x, approximate=a),
             lambda x, a, b: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
             if a == "tanh" else 0.5 * x * (1 + _erf(x / math.sqrt(2))), ("approximate",)),
}


@pytest.mark.parametrize("op", sorted(ACTIVATION_ARGS))
@fuzz(80)
@given(x=tensors(FLOATS, shapes(0, 2, 0, 3)), a=st.one_of(REALS, st.sampled_from(["none", "tanh", "erf"])),
       b=REALS)
def test_fuzz_activation_arguments(op, x, a, b):
    fn, reference, names = ACTIVATION_ARGS[op]
    if op == "softplus" and isinstance(a, float) and 0 < abs(a) < 1e-3:
        a = 1e-3  # a beta below float16's resolution divides by 0 there: a degenerate call, not tried
    out = attempt(op, fn, x, a, b, aliases=names)
    if out is REFUSED:
        return
    if op == "gelu":
        assert a in ("none", "tanh")
    else:
        assert isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a), a
    if op == "softplus":
        assert a != 0 and isinstance(b, (int, float)) and not isinstance(b, bool) and not math.isnan(b), (a, b)
    with quiet():
        extra = {"dtype": x.dtype} if op != "gelu" else {}
        assert_matches(op, out, reference(x.numpy().astype(np.float64), a, b, **extra))
    assert out.dtype == x.dtype


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@fuzz(80)
@given(x=inputs(FLOATS), axis=AXES)
def test_fuzz_softmax(op, x, axis):
    out = attempt(op, getattr(F, op), x, axis=axis)
    if out is REFUSED:
        return
    assert isinstance(axis, int) and not isinstance(axis, bool), f"{op} took axis={axis!r}"
    source = (x.numpy() if isinstance(x, ag.Tensor) else np.asarray(x)).astype(np.float64)
    with quiet():
        shifted = source - source.max(axis=axis, keepdims=True) if source.size else source
        log_p = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    assert_matches(op, out, log_p if op == "log_softmax" else np.exp(log_p))


def promoted(a: np.ndarray, b: np.ndarray, divide: bool) -> tuple:
    """The documented type promotion: an int or bool meeting a float takes the float's dtype;
    int / int is float32."""
    fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
    if fa and not fb:
        return a, b.astype(a.dtype)
    if fb and not fa:
        return a.astype(b.dtype), b
    if divide and not fa:
        return a.astype(np.float32), b.astype(np.float32)
    return a, b


def constant(a: ag.Tensor, b: Any) -> np.ndarray:
    """b as the array an op makes of it beside the tensor a: Python floats and lists of them take
    a's float dtype (else float32), Python ints a's integer dtype, as PyTorch's scalars; NumPy
    scalars count as Python numbers."""
    if isinstance(b, (ag.Tensor, np.ndarray)):
        return b.numpy() if isinstance(b, ag.Tensor) else b
    if isinstance(b, np.generic):
        b = b.item()
    host = np.asarray(b)
    if host.dtype.kind == "f":
        return host.astype(a.dtype if a.dtype.kind == "f" else np.float32)
    if isinstance(b, int) and not isinstance(b, bool) and a.dtype.kind in "iu":
        return host.astype(a.dtype)
    if isinstance(b, bool) and a.dtype.kind == "f":
        return host.astype(a.dtype)
    return host


BINARY = {
    "add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply), "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a ** b, np.power), "maximum": (F.maximum, np.maximum), "minimum": (F.minimum, np.minimum),
}


@pytest.mark.parametrize("op", sorted(BINARY))
@fuzz(60)
@given(a=tensors(shape=shapes(max_dims=3, max_side=3)), b=inputs(shape=shapes(max_dims=3, max_side=3)))
def test_fuzz_binary(op, a, b):
    fn, reference = BINARY[op]
    out = attempt(op, fn, a, b)
    if out is REFUSED:
        return
    assert not text_or_objects(b)
    x, y = promoted(a.numpy(), constant(a, b), divide=op == "div")
    with quiet():
        want = reference(x, y)
    assert out.dtype == want.dtype, f"{op}: {x.dtype} and {y.dtype} gave {out.dtype}, expected {want.dtype}"
    assert_matches(op, out, want)


@fuzz(100)
@given(cond=inputs(("bool", "float32", "int64"), shapes(max_dims=3, max_side=3)),
       a=tensors(FLOATS, shapes(max_dims=3, max_side=3)), b=inputs(FLOATS, shapes(max_dims=3, max_side=3)))
def test_fuzz_where(cond, a, b):
    out = attempt("where", F.where, cond, a, b)
    if out is REFUSED:
        return
    assert not text_or_objects(cond, b)
    c = cond.numpy() if isinstance(cond, ag.Tensor) else np.asarray(cond)
    other = b.numpy() if isinstance(b, ag.Tensor) else np.asarray(b)
    assert_matches("where", out, np.where(c, a.numpy().astype(np.float64), other.astype(np.float64)))


@fuzz(120)
@given(a=inputs(FLOATS, shapes(0, 3, 0, 3)), b=inputs(FLOATS, shapes(0, 3, 0, 3)))
def test_fuzz_matmul(a, b):
    out = attempt("matmul", F.matmul, a, b)
    if out is REFUSED:
        return
    assert not text_or_objects(a, b)
    x = a.numpy() if isinstance(a, ag.Tensor) else np.asarray(a)
    y = b.numpy() if isinstance(b, ag.Tensor) else np.asarray(b)
    with quiet():  # in the result's dtype: an overflow to Inf, then Inf - Inf, is float16's own
        want = x.astype(out.dtype) @ y.astype(out.dtype)
    assert_matches("matmul", out, want)


# --------------------------------------------------------------------------- reductions


def _numpy_reduce(op: str, x: np.ndarray, axis: Any, keepdims: bool, ddof: int) -> np.ndarray:
    if op == "var":
        return x.var(axis=axis, keepdims=keepdims, ddof=ddof)
    return getattr(np, op)(x, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "var"])
@fuzz(80)
@given(x=inputs(), axis=AXES, keepdims=FLAGS, ddof=st.one_of(st.integers(-1, 3), JUNK))
def test_fuzz_reductions(op, x, axis, keepdims, ddof):
    extra = {"ddof": ddof} if op == "var" else {}
    out = attempt(op, getattr(F, op), x, axis=axis, keepdims=keepdims, **extra)
    if out is REFUSED:
        return
    assert not text_or_objects(x)
    assert keepdims in (True, False), f"{op} took keepdims={keepdims!r}"
    assert axis is None or all(isinstance(a, int) and not isinstance(a, bool)
                               for a in (axis if isinstance(axis, (tuple, list)) else (axis,))), f"{op}: axis={axis!r}"
    axis = tuple(axis) if isinstance(axis, list) else axis
    source = (x.numpy() if isinstance(x, ag.Tensor) else np.asarray(x)).astype(np.float64)
    with quiet():
        want = _numpy_reduce(op, source, axis, keepdims, ddof if op == "var" else 0)
    assert_matches(op, out, want)


# --------------------------------------------------------------------------- shape ops

SHAPE_ARGS = st.one_of(st.lists(st.integers(-2, 6), max_size=4).map(tuple), st.integers(-2, 12),
                       st.sampled_from([(2.0, 3), (True, 6), "23", None, (2, None)]))


def host(x: Any) -> np.ndarray:
    return x.numpy() if isinstance(x, ag.Tensor) else np.asarray(x)


@fuzz(150)
@given(x=tensors(shape=shapes(max_side=3)), shape=SHAPE_ARGS)
def test_fuzz_reshape(x, shape):
    out = attempt("reshape", F.reshape, x, shape)
    if out is REFUSED:
        return
    dims = shape if isinstance(shape, tuple) else (shape,)
    assert all(isinstance(n, int) and not isinstance(n, bool) for n in dims), shape
    assert_matches("reshape", out, np.reshape(x.numpy(), shape))


@fuzz(150)
@given(x=tensors(shape=shapes(max_side=3)), axes=st.one_of(st.none(), st.permutations(range(4)).map(tuple),
                                                             st.lists(st.integers(-4, 4), max_size=4).map(tuple), AXES))
def test_fuzz_transpose(x, axes):
    out = attempt("transpose", F.transpose, x, axes)
    if out is REFUSED:
        return
    axes = (axes,) if isinstance(axes, int) else axes  # one axis, for a 1-D tensor, as PyTorch's permute
    assert axes is None or all(isinstance(a, int) and not isinstance(a, bool) for a in axes)
    assert_matches("transpose", out, np.transpose(x.numpy(), axes))


@fuzz(150)
@given(x=inputs(shape=shapes(max_side=3)), start_axis=st.one_of(st.integers(-5, 5), JUNK))
def test_fuzz_flatten(x, start_axis):
    out = attempt("flatten", F.flatten, x, start_axis, aliases=("reshape",))
    if out is REFUSED:
        return
    a = host(x)
    assert isinstance(start_axis, int) and not isinstance(start_axis, bool)
    assert -max(a.ndim, 1) <= start_axis < max(a.ndim, 1), f"flatten took start_axis={start_axis} of {a.shape}"
    start = start_axis % max(a.ndim, 1)
    assert_matches("flatten", out, a.reshape(a.shape[:start] + (math.prod(a.shape[start:]),)))


JOINED = st.one_of(st.lists(tensors(shape=shapes(1, 3, 1, 3)), max_size=3),
                   st.lists(tensors(shape=st.just((2, 3))), min_size=1, max_size=3), inputs())


@pytest.mark.parametrize("op", ["concat", "stack"])
@fuzz(120)
@given(parts=JOINED, axis=st.one_of(st.integers(-3, 3), JUNK))
def test_fuzz_concat_and_stack(op, parts, axis):
    out = attempt(op, getattr(F, op), parts, axis=axis)
    if out is REFUSED:
        return
    assert isinstance(parts, (list, tuple)) and not text_or_objects(*parts), parts
    assert isinstance(axis, int) and not isinstance(axis, bool)
    with quiet():
        want = (np.concatenate if op == "concat" else np.stack)([host(p) for p in parts], axis=axis)
    if all(isinstance(p, ag.Tensor) for p in parts):  # numbers among them become constants first
        assert out.dtype == want.dtype
    assert_matches(op, out, want)


SECTIONS = st.one_of(st.integers(-1, 4), st.lists(st.integers(-4, 5), max_size=3), JUNK)


@pytest.mark.parametrize("op", ["split", "chunk", "unbind"])
@fuzz(120)
@given(x=inputs(shape=shapes(max_side=4)), sections=SECTIONS, axis=st.one_of(st.integers(-3, 3), JUNK))
def test_fuzz_split_chunk_and_unbind(op, x, sections, axis):
    args = (x, axis) if op == "unbind" else (x, sections, axis)
    out = attempt(op, getattr(F, op), *args, aliases=("split", "sections_or_indices", "n", "axis"))
    if out is REFUSED:
        return
    assert isinstance(out, tuple) and isinstance(axis, int) and not isinstance(axis, bool)
    a = host(x)
    with quiet():
        if op == "split":
            want = np.split(a, sections, axis=axis)
        elif op == "chunk":
            step = max(-(-a.shape[axis] // sections), 1)
            want = np.split(a, list(range(step, a.shape[axis], step)), axis=axis) if a.shape[axis] else [a]
        else:
            want = [np.take(a, i, axis=axis) for i in range(a.shape[axis])]
    assert len(out) == len(want), f"{op}: {len(out)} pieces, NumPy {len(want)}"
    for piece, expected in zip(out, want):
        assert_matches(op, piece, expected)


PAD_WIDTHS = st.one_of(st.integers(-1, 3), st.tuples(st.integers(-1, 2), st.integers(-1, 2)),
                       st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=4).map(tuple), JUNK)


@fuzz(150)
@given(x=tensors(shape=shapes(max_side=3)), pad_width=PAD_WIDTHS, value=REALS)
def test_fuzz_pad(x, pad_width, value):
    out = attempt("pad", F.pad, x, pad_width, value=value)
    if out is REFUSED:
        return
    with quiet():
        want = np.pad(x.numpy(), pad_width, constant_values=value)
    assert_matches("pad", out, want)


INDEXES = st.one_of(st.integers(-4, 4), st.slices(4), st.none(), st.just(Ellipsis),
                    st.tuples(st.integers(-3, 3), st.slices(3)), st.lists(st.integers(-4, 4), max_size=3),
                    st.sampled_from([1.5, "0", True, (0, 0, 0, 0, 0), np.array([True, False]), [[0, 1]],
                                     np.array([0.5]), ag.tensor([0, 1])]))


@fuzz(200)
@given(x=tensors(shape=shapes(min_dims=1, max_side=3)), index=INDEXES)
def test_fuzz_getitem(x, index):
    out = attempt("getitem", lambda: x[index])
    if out is REFUSED:
        return
    plain = index.numpy() if isinstance(index, ag.Tensor) else index
    with quiet():
        want = x.numpy()[plain]
    assert_matches("getitem", out, want)


# --------------------------------------------------------------------------- convolutions and pooling


def ref_conv2d(x: np.ndarray, w: np.ndarray, b: Any, stride: tuple, pads: tuple, dilation: tuple,
               groups: int) -> np.ndarray:
    """Cross-correlation from its definition: padded windows, dilated, strided, per group."""
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, pads, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    kh, kw = w.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    y = np.concatenate([np.einsum("nchwij,ocij->nohw", windows[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og])
                        for g in range(groups)], axis=1)
    return y if b is None else y + b[None, :, None, None]


def checks_groups(groups: Any) -> int:
    """groups where it is a usable int (to size the channels by), else 1."""
    return groups if isinstance(groups, int) and not isinstance(groups, bool) and groups > 0 else 1


def pair_or_none(value: Any, minimum: int) -> Any:
    """value as a pair of ints >= minimum, or None where it is not one (the op must refuse it)."""
    if isinstance(value, bool) or not isinstance(value, (int, tuple)):
        return None
    pair = (value, value) if isinstance(value, int) else value
    ok = len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in pair)
    return pair if ok else None


# Paddings stay below 2**10: a padding of 2**40 asks for terabytes, and NumPy's MemoryError says so.
CONV_PADDING = st.one_of(SMALL_INTS, st.tuples(SMALL_INTS, SMALL_INTS), JUNK, st.just(1000),
                         st.sampled_from(["same", "valid", "full"]))


@fuzz(200)
@given(n=st.integers(0, 2), hw=st.tuples(st.integers(0, 5), st.integers(1, 5)),
       k=st.tuples(st.integers(1, 3), st.integers(1, 3)), dtype=st.sampled_from(FLOATS),
       stride=often(st.integers(1, 2), INT_ARGS), padding=often(st.sampled_from([0, 1, (1, 0), "same", "valid"]),
                                                                CONV_PADDING),
       dilation=often(st.integers(1, 2), INT_ARGS), groups=often(st.integers(1, 2), st.integers(-1, 4)),
       per_group=st.tuples(st.integers(1, 2), st.integers(1, 2)), weight_in=st.one_of(st.none(), st.integers(1, 4)),
       bias=st.booleans())
def test_fuzz_conv2d(n, hw, k, dtype, stride, padding, dilation, groups, per_group, weight_in, bias):
    c, o = (g * checks_groups(groups) for g in per_group)
    weight_in = c // checks_groups(groups) if weight_in is None else weight_in
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, *hw)).astype(dtype)
    w = rng.standard_normal((o, weight_in, *k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    out = attempt("conv2d", F.conv2d, ag.tensor(x), ag.tensor(w), None if b is None else ag.tensor(b),
                  stride=stride, padding=padding, dilation=dilation, groups=groups)
    if out is REFUSED:
        return
    s, d = pair_or_none(stride, 1), pair_or_none(dilation, 1)
    assert s and d and isinstance(groups, int) and not isinstance(groups, bool), (stride, dilation, groups)
    if padding == "same":
        totals = [dd * (kk - 1) for kk, dd in zip(k, d)]
        pads = tuple((t // 2, t - t // 2) for t in totals)
        assert out.shape[2:] == x.shape[2:]
    else:
        p = (0, 0) if padding == "valid" else pair_or_none(padding, 0)
        assert p, padding
        pads = ((p[0], p[0]), (p[1], p[1]))
    with quiet():
        want = ref_conv2d(x.astype(np.float64), w.astype(np.float64), b, s, pads, d, groups)
    assert out.dtype == np.dtype(dtype)
    assert_matches("conv2d", out, want)


@fuzz(120)
@given(n=st.integers(0, 2), c=st.integers(1, 3), width=st.integers(0, 6), o=st.integers(1, 3), k=st.integers(1, 3),
       stride=often(st.integers(1, 2), INT_ARGS), padding=often(st.sampled_from([0, 1, "same", "valid"]), CONV_PADDING),
       dilation=often(st.integers(1, 2), INT_ARGS), groups=often(st.just(1), st.integers(0, 3)))
def test_fuzz_conv1d(n, c, width, o, k, stride, padding, dilation, groups):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((n, c, width)), rng.standard_normal((o, c, k))
    out = attempt("conv1d", F.conv1d, ag.tensor(x), ag.tensor(w), stride=stride, padding=padding,
                  dilation=dilation, groups=groups, aliases=("conv2d",))
    if out is REFUSED:
        return
    stride, dilation = single(stride), single(dilation)  # an int, or a sequence of one
    padding = padding if isinstance(padding, str) else single(padding)
    assert isinstance(stride, int) and isinstance(dilation, int) and not isinstance(stride, bool), (stride, dilation)
    assert not isinstance(dilation, bool) and not isinstance(groups, bool), (dilation, groups)
    assert isinstance(padding, int) and not isinstance(padding, bool) or padding in ("same", "valid"), padding
    if padding in ("same", "valid"):
        total = dilation * (k - 1) if padding == "same" else 0
        pads = ((0, 0), (total // 2, total - total // 2))
    else:
        pads = ((0, 0), (padding, padding))
    want = ref_conv2d(x[:, :, None], w[:, :, None], None, (1, stride), pads, (1, dilation), groups)[:, :, 0]
    assert_matches("conv1d", out, want)


def single(value: Any) -> Any:
    """A 1-D setting as an int: it may be given as a sequence of one."""
    return value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value


def ref_conv_transpose2d(x: np.ndarray, w: np.ndarray, stride: tuple, padding: tuple, out_hw: tuple,
                         dilation: tuple, groups: int) -> np.ndarray:
    """Each input element adds its value times the kernel into the output window it maps to."""
    n, c, h, wd = x.shape
    cg, og = c // groups, w.shape[1]
    full = np.zeros((n, og * groups, out_hw[0] + 2 * padding[0] + 8, out_hw[1] + 2 * padding[1] + 8))
    for ci in range(c):
        g = ci // cg
        for i in range(h):
            for j in range(wd):
                for ki in range(w.shape[2]):
                    for kj in range(w.shape[3]):
                        row, col = i * stride[0] + ki * dilation[0], j * stride[1] + kj * dilation[1]
                        full[:, g * og:(g + 1) * og, row, col] += x[:, ci, i, j, None] * w[ci, :, ki, kj]
    return full[:, :, padding[0]:padding[0] + out_hw[0], padding[1]:padding[1] + out_hw[1]]


@fuzz(100)
@given(n=st.integers(1, 2), c=st.integers(1, 3), hw=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       o=st.integers(1, 3), k=st.integers(1, 3), stride=often(st.integers(1, 3), SMALL_INTS),  # no huge stride:
       padding=often(st.integers(0, 1)), output_padding=often(st.just(0), st.integers(0, 2)),  # terabytes
       groups=often(st.just(1), st.integers(0, 3)), dilation=often(st.integers(1, 2)))
def test_fuzz_conv_transpose2d(n, c, hw, o, k, stride, padding, output_padding, groups, dilation):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((n, c, *hw)), rng.standard_normal((c, o, k, k))
    out = attempt("conv_transpose2d", F.conv_transpose2d, ag.tensor(x), ag.tensor(w), stride=stride,
                  padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    if out is REFUSED:
        return
    s, p, e, d = (pair_or_none(stride, 1), pair_or_none(padding, 0), pair_or_none(output_padding, 0),
                  pair_or_none(dilation, 1))
    assert s and p and e and d and isinstance(groups, int) and not isinstance(groups, bool)
    if c % groups:
        pytest.fail(f"conv_transpose2d took groups={groups} for {c} channels")
    want = ref_conv_transpose2d(x, w, s, p, out.shape[2:], d, groups)
    assert out.shape[2:] == tuple((i - 1) * ss - 2 * pp + dd * (k - 1) + ee + 1
                                  for i, ss, pp, dd, ee in zip(hw, s, p, d, e))
    assert_matches("conv_transpose2d", out, want)


@fuzz(100)
@given(n=st.integers(1, 2), c=st.integers(1, 2), hw=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       o=st.integers(1, 2), k=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=INT_ARGS,
       out_hw=st.tuples(st.integers(1, 4), st.integers(1, 4)), bias=st.booleans())
def test_fuzz_locally_connected2d(n, c, hw, o, k, stride, out_hw, bias):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((n, c, *hw)), rng.standard_normal((*out_hw, o, c, *k))
    b = rng.standard_normal((o, *out_hw)) if bias else None
    out = attempt("locally_connected2d", F.locally_connected2d, ag.tensor(x), ag.tensor(w),
                  None if b is None else ag.tensor(b), stride=stride)
    if out is REFUSED:
        return
    s = pair_or_none(stride, 1)
    assert s, stride
    want = np.zeros((n, o, *out_hw))
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            patch = x[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
            want[:, :, i, j] = np.einsum("ncij,ocij->no", patch, w[i, j])
    assert_matches("locally_connected2d", out, want if b is None else want + b)


POOL_INTS = st.one_of(st.integers(0, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)), JUNK)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@fuzz(150)
@given(x=often(tensors(FLOATS, shapes(4, 4, 1, 5)), tensors(FLOATS, shapes(3, 5, 0, 5))),
       kernel_size=often(st.integers(1, 3), POOL_INTS), stride=often(st.sampled_from([None, 1, 2]), POOL_INTS),
       padding=often(st.integers(0, 1), st.integers(-1, 2)), ceil_mode=often(st.booleans(), FLAGS))
def test_fuzz_pool2d(op, x, kernel_size, stride, padding, ceil_mode):
    out = attempt(op, getattr(F, op), x, kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode)
    if out is REFUSED:
        return
    assert x.ndim == 4 and ceil_mode in (True, False)
    k, p = pair_or_none(kernel_size, 1), pair_or_none(padding, 0)
    s = k if stride is None else pair_or_none(stride, 1)
    assert k and s and p, (kernel_size, stride, padding)
    assert out.dtype == x.dtype
    if ceil_mode:
        return  # the windows past the edge: checked against PyTorch in test_pool.py
    a = x.numpy().astype(np.float64)
    fill = -np.inf if op == "max_pool2d" else 0.0
    padded = np.pad(a, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    with quiet():
        want = windows.max(axis=(4, 5)) if op == "max_pool2d" else windows.mean(axis=(4, 5))
    assert_matches(op, out, want)


@pytest.mark.parametrize("op", ["max_pool1d", "avg_pool1d"])
@fuzz(100)
@given(x=often(tensors(FLOATS, shapes(3, 3, 1, 5)), tensors(FLOATS, shapes(2, 4, 0, 5))),
       kernel_size=often(st.integers(1, 3), POOL_INTS), stride=often(st.sampled_from([None, 1, 2]), POOL_INTS),
       padding=often(st.integers(0, 1), st.integers(-1, 2)))
def test_fuzz_pool1d(op, x, kernel_size, stride, padding):
    out = attempt(op, getattr(F, op), x, kernel_size, stride=stride, padding=padding,
                  aliases=(op.replace("1d", "2d"),))
    if out is REFUSED:
        return
    assert x.ndim == 3

    want = getattr(F, op.replace("1d", "2d"))(x.reshape(x.shape[0], x.shape[1], 1, x.shape[2]),
                                              (1, single(kernel_size)), None if stride is None else (1, single(stride)),
                                              (0, single(padding)))
    assert_matches(op, out, want.numpy()[:, :, 0])


@pytest.mark.parametrize("op", ["global_avg_pool2d", "global_max_pool2d", "adaptive_avg_pool2d"])
@fuzz(80)
@given(x=often(tensors(FLOATS, shapes(4, 4, 1, 4)), inputs(FLOATS, shapes(2, 5, 0, 4))),
       output_size=often(st.integers(1, 3), POOL_INTS))
def test_fuzz_global_and_adaptive_pools(op, x, output_size):
    args = (output_size,) if op == "adaptive_avg_pool2d" else ()
    out = attempt(op, getattr(F, op), x, *args, aliases=("mean", "max", "avgpool2d"))
    if out is REFUSED:
        return
    a = host(x).astype(np.float64)
    assert a.ndim == 4
    if op == "adaptive_avg_pool2d":
        oh, ow = pair_or_none(output_size, 1)
        h, w = a.shape[2:]
        want = np.zeros(a.shape[:2] + (oh, ow))
        for i in range(oh):
            for j in range(ow):
                rows = slice(i * h // oh, -(-(i + 1) * h // oh))
                cols = slice(j * w // ow, -(-(j + 1) * w // ow))
                with quiet():
                    want[:, :, i, j] = a[:, :, rows, cols].mean(axis=(2, 3))
    else:
        with quiet():
            want = a.mean(axis=(2, 3)) if op == "global_avg_pool2d" else a.max(axis=(2, 3))
    assert_matches(op, out, want)


# --------------------------------------------------------------------------- linear, normalisation, dropout


@fuzz(150)
@given(data=st.data(), n=st.integers(0, 3), i=st.integers(0, 3), o=st.integers(1, 3))
def test_fuzz_linear(data, n, i, o):
    x = data.draw(often(tensors(FLOATS, st.just((n, i))), inputs(FLOATS, shapes(0, 3, 0, 3))))
    weight = data.draw(often(tensors(FLOATS, st.just((o, i))), inputs(FLOATS, shapes(1, 3, 0, 3))))
    bias = data.draw(st.one_of(st.none(), often(tensors(FLOATS, st.just((o,))), inputs(FLOATS, shapes(0, 2, 0, 3)))))
    out = attempt("linear", F.linear, x, weight, bias)
    if out is REFUSED:
        return
    assert not text_or_objects(x, weight, bias)
    a, w = host(x).astype(out.dtype), host(weight).astype(out.dtype)  # in the result's dtype, as matmul
    assert w.ndim == 2 and a.ndim >= 1, (a.shape, w.shape)
    with quiet():
        want = a @ w.T + (0 if bias is None else host(bias).astype(out.dtype))
    assert_matches("linear", out, want)


@fuzz(200)
@given(x=inputs(FLOATS, shapes(0, 3, 0, 4)), p=REALS, training=FLAGS)
def test_fuzz_dropout(x, p, training):
    out = attempt("dropout", F.dropout, x, p, training=training)
    if out is REFUSED:
        return
    assert not text_or_objects(x) and training in (True, False)
    assert isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1, p
    a = host(x).astype(np.float64)
    got = out.numpy().astype(np.float64)
    if not training or p == 0:
        np.testing.assert_array_equal(got, a)
        return
    with quiet():  # each element is dropped (0) or kept and scaled by 1 / (1 - p)
        kept = a / (1 - p) if p < 1 else np.zeros_like(a)
    tol = tolerance(out.dtype)
    ok = (got == 0) | np.isclose(got, kept.astype(out.dtype), rtol=tol, atol=tol, equal_nan=True)
    ok |= ~np.isfinite(a)  # a dropped NaN or Inf stays NaN (NaN times 0), as in PyTorch
    assert ok.all(), (a, got, p)


@fuzz(200)
@given(x=often(tensors(FLOATS, st.sampled_from([(4, 2), (3, 2, 2), (2, 2, 2, 3)])), inputs(FLOATS, shapes(1, 5, 1, 3))),
       channels=often(st.just(2), st.integers(1, 3)), training=often(st.booleans(), FLAGS),
       momentum=often(st.floats(0, 1), REALS), eps=often(st.floats(1e-6, 1), REALS), affine=st.booleans(),
       stats=st.booleans())
def test_fuzz_batch_norm(x, channels, training, momentum, eps, affine, stats):
    rng = np.random.default_rng(4)
    mean, var = rng.standard_normal(channels), rng.uniform(0.5, 2, channels)
    weight, bias = rng.standard_normal(channels), rng.standard_normal(channels)
    like = x.dtype if isinstance(x, ag.Tensor) else np.float32  # the parameters in the input's dtype
    args = (ag.tensor(mean.copy()), ag.tensor(var.copy())) if stats else (None, None)  # float64 statistics
    out = attempt("batch_norm", F.batch_norm, x, *args, ag.tensor(weight.astype(like)) if affine else None,
                  ag.tensor(bias.astype(like)) if affine else None, training=training, momentum=momentum, eps=eps)
    if out is REFUSED:
        return
    assert not text_or_objects(x) and training in (True, False)
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (momentum, eps))
    assert eps > 0 and 0 <= momentum <= 1, (eps, momentum)
    a = host(x)  # the statistics in x's own dtype: a batch near float32's largest overflows there
    a = a.astype(np.float32) if a.dtype.kind != "f" else a
    axes, shape = (0, *range(2, a.ndim)), (1, -1) + (1,) * (a.ndim - 2)
    with quiet():
        m, v = (a.mean(axis=axes), a.var(axis=axes)) if training else (mean, var)
        want = (a - m.reshape(shape)) / np.sqrt(v.reshape(shape) + eps)
    if affine:
        want = want * weight.astype(like).reshape(shape) + bias.astype(like).reshape(shape)
    if isinstance(x, ag.Tensor):
        assert out.dtype == x.dtype, f"batch_norm: {x.dtype} in, {out.dtype} out"
    assert_matches("batch_norm", out, want)


# --------------------------------------------------------------------------- losses

LOGITS = tensors(FLOATS, st.sampled_from([(3, 4), (2, 3, 2), (0, 3), (4,), (), (2, 1)]))
TARGETS = st.one_of(
    arrays(("int64", "int32", "uint8", "bool"), st.sampled_from([(3,), (2, 2), (0,), (3, 4), ()])).map(ag.tensor),
    arrays(("int64",), st.sampled_from([(3,), (2, 2)])).map(lambda a: a * 3),  # some indices out of range
    tensors(FLOATS, st.sampled_from([(3, 4), (2, 3, 2), (3,)])),
    st.lists(st.integers(-1, 4), min_size=3, max_size=3), TEXT, JUNK)


def ref_log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def reduce_ref(losses: np.ndarray, reduction: str) -> np.ndarray:
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


def class_indices(target: Any) -> np.ndarray | None:
    """The target as class indices, or None when it holds probabilities."""
    t = host(target)
    return t if t.dtype.kind in "iub" else None


@fuzz(300)
@given(logits=LOGITS, target=TARGETS, label_smoothing=REALS, reduction=REDUCTIONS)
def test_fuzz_cross_entropy(logits, target, label_smoothing, reduction):
    out = attempt("cross_entropy", F.cross_entropy, logits, target, label_smoothing=label_smoothing,
                  reduction=reduction)
    if out is REFUSED:
        return
    assert not text_or_objects(target) and reduction in ("mean", "sum", "none")
    assert isinstance(label_smoothing, (int, float)) and not isinstance(label_smoothing, bool)
    assert 0 <= label_smoothing <= 1, label_smoothing
    z = np.moveaxis(logits.numpy().astype(np.float64), 1, -1)
    classes = z.shape[-1]
    t = class_indices(target)
    if t is not None:
        assert t.dtype.kind != "b", "a bool target taken as class indices"
        assert t.shape == z.shape[:-1] and (t.size == 0 or (t.min() >= 0 and t.max() < classes)), t
        q = np.eye(classes)[t.astype(np.int64)]
    else:
        q = np.moveaxis(host(target).astype(np.float64), 1, -1)
    q = q * (1 - label_smoothing) + label_smoothing / classes
    with quiet():
        want = reduce_ref(-(q * ref_log_softmax(z, -1)).sum(axis=-1), reduction)
    assert_matches("cross_entropy", out, want)


@fuzz(200)
@given(log_probs=LOGITS, target=TARGETS, reduction=REDUCTIONS)
def test_fuzz_nll_loss(log_probs, target, reduction):
    out = attempt("nll_loss", F.nll_loss, log_probs, target, reduction=reduction)
    if out is REFUSED:
        return
    assert not text_or_objects(target) and reduction in ("mean", "sum", "none")
    t = class_indices(target)
    assert t is not None and t.dtype.kind != "b", f"nll_loss took the target {target!r}"
    lp = log_probs.numpy().astype(np.float64)
    assert lp.ndim == 2 and t.shape == lp.shape[:1] and (t.size == 0 or (t.min() >= 0 and t.max() < lp.shape[1]))
    with quiet():
        want = reduce_ref(-lp[np.arange(len(t)), t.astype(np.int64)], reduction)
    assert_matches("nll_loss", out, want)


@pytest.mark.parametrize("op", ["mse_loss", "binary_cross_entropy_with_logits"])
@fuzz(150)
@given(pred=tensors(FLOATS, shapes(0, 3, 0, 3)), target=inputs(shape=shapes(0, 3, 0, 3)), reduction=REDUCTIONS)
def test_fuzz_elementwise_losses(op, pred, target, reduction):
    out = attempt(op, getattr(F, op), pred, target, reduction=reduction, aliases=("BCEWithLogits",))
    if out is REFUSED:
        return
    assert not text_or_objects(target) and reduction in ("mean", "sum", "none")
    z, t = pred.numpy().astype(np.float64), host(target).astype(np.float64)
    with quiet():
        losses = (z - t) ** 2 if op == "mse_loss" else np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        want = reduce_ref(losses, reduction)
    assert_matches(op, out, want, precision=pred.dtype)  # parts run in pred's dtype, whatever the target's


# --------------------------------------------------------------------------- layers

# Sizes of 1 and 2, so that a generated input often fits a generated layer. No sizes of 2**40:
# a layer that large asks for terabytes, and NumPy's MemoryError says so.
ANY_ARG = st.one_of(SMALL_INTS, st.tuples(SMALL_INTS, SMALL_INTS), JUNK, REALS, FLAGS,
                    st.sampled_from(["same", "valid", "tanh", "none"]))
SIZE, ONE, ZERO = often(st.integers(1, 2), ANY_ARG), often(st.just(1), ANY_ARG), often(st.just(0), ANY_ARG)
POOL = (SIZE, often(st.sampled_from([None, 1, 2]), ANY_ARG), ZERO)
# Each layer: the class, a strategy per positional argument, the rank of its input.
LAYERS = {
    "Linear": (nn.Linear, (SIZE, SIZE, often(st.booleans(), ANY_ARG)), 2),
    "Conv1d": (nn.Conv1d, (SIZE, SIZE, SIZE, ONE), 3),
    "Conv2d": (nn.Conv2d, (SIZE, SIZE, SIZE, ONE, often(st.sampled_from([0, 1, "same", "valid"]), ANY_ARG)), 4),
    "ConvTranspose2d": (nn.ConvTranspose2d, (SIZE, SIZE, SIZE, ONE, ZERO), 4),
    "LocallyConnected2d": (nn.LocallyConnected2d, (SIZE, SIZE, SIZE, often(st.integers(2, 3), ANY_ARG), ONE), 4),
    "MaxPool2d": (nn.MaxPool2d, POOL, 4), "AvgPool2d": (nn.AvgPool2d, POOL, 4),
    "MaxPool1d": (nn.MaxPool1d, POOL, 3), "AvgPool1d": (nn.AvgPool1d, POOL, 3),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, (SIZE,), 4),
    "GlobalAvgPool2d": (nn.GlobalAvgPool2d, (), 4), "GlobalMaxPool2d": (nn.GlobalMaxPool2d, (), 4),
    "Flatten": (nn.Flatten, (often(st.integers(-1, 1), ANY_ARG),), 3), "Identity": (nn.Identity, (), 2),
    "ReLU": (nn.ReLU, (), 2), "LeakyReLU": (nn.LeakyReLU, (often(st.floats(-1, 1), ANY_ARG),), 2),
    "Sigmoid": (nn.Sigmoid, (), 2), "Tanh": (nn.Tanh, (), 2),
    "GELU": (nn.GELU, (often(st.sampled_from(["none", "tanh"]), ANY_ARG),), 2),
    "Softmax": (nn.Softmax, (often(st.integers(-1, 0), ANY_ARG),), 2),
    "Dropout": (nn.Dropout, (often(st.floats(0, 0.9), ANY_ARG),), 2),
    "BatchNorm1d": (nn.BatchNorm1d, (SIZE,), 2), "BatchNorm2d": (nn.BatchNorm2d, (SIZE,), 4),
}


def fitting_shape(layer: nn.Module, rank: int, shape: tuple) -> tuple:
    """``shape`` of ``rank`` dimensions, changed to what ``layer`` takes (its channels or features)."""
    shape = list(shape)
    if isinstance(getattr(layer, "in_features", None), int):
        shape[-1] = layer.in_features
    for name in ("in_channels", "num_features"):
        if isinstance(getattr(layer, name, None), int):
            shape[1] = getattr(layer, name)
    if isinstance(layer, nn.LocallyConnected2d):
        shape[2:] = layer.input_size
    return tuple(shape)


@pytest.mark.parametrize("name", sorted(LAYERS))
@fuzz(50)
@given(data=st.data())
def test_fuzz_layers(name, data):
    """Built with generated arguments, then called on a generated input (mostly one that fits):
    every refusal names the layer (at construction) or the layer or its op (at the call)."""
    make, strategies, rank = LAYERS[name]
    args = [data.draw(strategy) for strategy in strategies]
    layer = attempt(name + "()", make, *args, aliases=(name,))
    if layer is REFUSED:
        return
    assert isinstance(layer, nn.Module)
    fits = shapes(rank, rank, 1, 3).map(lambda shape: fitting_shape(layer, rank, shape))
    x = data.draw(often(tensors(FLOATS, fits), inputs(FLOATS, shapes(1, 4, 1, 3))))
    op = {"Linear": "linear", "Conv1d": "conv1d", "Conv2d": "conv2d", "ConvTranspose2d": "conv_transpose2d",
          "LocallyConnected2d": "locally_connected2d", "Softmax": "softmax", "BatchNorm1d": "batch_norm",
          "BatchNorm2d": "batch_norm"}.get(name, name.lower())
    out = attempt(name, layer, x, aliases=(op, "pool", "Dropout", "reshape"))
    if out is REFUSED:
        return
    if name == "Identity":  # returns what it is given, whatever it is: nothing is converted
        assert out is x
        return
    assert not text_or_objects(x) and isinstance(out, ag.Tensor)
    if isinstance(x, ag.Tensor) and isinstance(out, ag.Tensor):
        assert out.dtype == x.dtype or name.startswith(("Linear", "Conv", "Locally", "BatchNorm")), out.dtype


# --------------------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "SGD": (optim.SGD, ("lr", "momentum", "weight_decay", "nesterov", "dampening")),
    "RMSprop": (optim.RMSprop, ("lr", "alpha", "eps", "momentum", "weight_decay")),
    "Adam": (optim.Adam, ("lr", "betas", "eps", "weight_decay")),
    "AdamW": (optim.AdamW, ("lr", "betas", "eps", "weight_decay")),
    "Adadelta": (optim.Adadelta, ("lr", "rho", "eps", "weight_decay")),
}
HYPER = st.one_of(st.floats(0, 1), st.floats(0, 1), st.floats(-1, 3), REALS,
                  st.tuples(st.floats(0, 1), st.floats(0, 1)), FLAGS)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@fuzz(120)
@given(data=st.data(), g=arrays(("float32",), st.just((3,)), finite=True),
       params=st.sampled_from(["good", "empty", "ints", "twice", "array", "module", "tensor"]))
def test_fuzz_optimizers(name, data, g, params):
    """Accepted hyper-parameters give finite parameters after a step with a finite gradient; SGD's
    and Adam's first step equal their formulas."""
    make, names = OPTIMIZERS[name]
    hyper = {k: data.draw(HYPER if k != "nesterov" else FLAGS)
             for k in data.draw(st.lists(st.sampled_from(names), unique=True))}
    w = ag.tensor(np.array([1.0, -2.0, 0.5], dtype="float32"), requires_grad=True)
    given_params = {"good": [w], "empty": [], "ints": [ag.arange(3)], "twice": [w, w], "array": [w.numpy()],
                    "module": nn.Linear(2, 2), "tensor": w}[params]
    opt = attempt(name + "()", make, given_params, aliases=(name, "params"), **hyper)
    if opt is REFUSED:
        return
    assert params == "good", f"{name} took params={params}"
    w.grad = ag.tensor(g)
    if attempt(name + ".step", opt.step, aliases=("eps",)) is REFUSED:
        return
    p = w.numpy().astype(np.float64)
    assert np.isfinite(p).all(), (hyper, p)
    group = opt.param_groups[0]
    w0, g0 = np.array([1.0, -2.0, 0.5]), g.astype(np.float64)
    if name == "SGD":
        step = g0 + group["weight_decay"] * w0
        if group["momentum"] and group["nesterov"]:
            step = step + group["momentum"] * step
        np.testing.assert_allclose(p, w0 - group["lr"] * step, rtol=1e-4, atol=1e-5)
    if name == "Adam" and not group["weight_decay"]:  # m_hat / sqrt(v_hat) = g / |g| at the first step
        np.testing.assert_allclose(p, w0 - group["lr"] * g0 / (np.abs(g0) + group["eps"]), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- ag.load


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small checkpoint and what it holds."""
    path = tmp_path_factory.mktemp("fuzz") / "good.npz"
    state = {"w": ag.tensor(np.arange(6, dtype="float32").reshape(2, 3)), "step": 3, "name": "cnn"}
    ag.save(state, path)
    return path.read_bytes(), state


@st.composite
def damaged(draw: Any, good: bytes) -> bytes:
    """The good checkpoint's bytes with some flipped, cut short, or replaced by other bytes."""
    kind = draw(st.sampled_from(["flip", "flip", "cut", "random", "text"]))
    if kind == "cut":
        return good[:draw(st.integers(0, len(good) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "text":
        return draw(st.text(max_size=100)).encode()
    raw = bytearray(good)
    for _ in range(draw(st.integers(1, 4))):
        raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
    return bytes(raw)


@fuzz(250)
@given(data=st.data())
def test_fuzz_load(checkpoint, tmp_path_factory, data):
    """Any bytes: ag.load either gives back exactly what was saved, or a CheckpointError naming the file."""
    good, state = checkpoint
    path = tmp_path_factory.mktemp("load") / "model.npz"
    path.write_bytes(data.draw(damaged(good)))
    out = attempt("ag.load", ag.load, path, aliases=(str(path),))
    if out is REFUSED:
        return
    assert out["step"] == 3 and out["name"] == "cnn" and set(out) == {"w", "step", "name"}
    np.testing.assert_array_equal(out["w"].numpy(), state["w"].numpy())
    assert out["w"].dtype == np.float32


@fuzz(30)
@given(path=st.one_of(JUNK, st.just(""), st.just(b"missing.npz"), st.text(max_size=10)))
def test_fuzz_load_paths(path):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(os.path.dirname(__file__))  # a relative name never finds a real file here
        out = attempt("ag.load", ag.load, path, aliases=("path", "checkpoint"))
    assert out is REFUSED


FUZZED = {*UNARY, *ACTIVATION_ARGS, "softmax", "log_softmax", "maximum", "minimum", "where", "matmul", "sum", "mean",
          "max", "min", "var", "reshape", "transpose", "flatten", "concat", "stack", "split", "chunk", "unbind", "pad",
          "conv2d", "conv1d",
          "conv_transpose2d", "locally_connected2d", "max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d",
          "global_avg_pool2d", "global_max_pool2d", "adaptive_avg_pool2d", "linear", "dropout", "batch_norm",
          "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits"}


def test_every_public_function_and_layer_is_fuzzed():
    assert set(F.__all__) <= FUZZED, f"not fuzzed: {sorted(set(F.__all__) - FUZZED)}"
    layers = {name for name in nn.__all__ if isinstance(getattr(nn, name), type)
              and issubclass(getattr(nn, name), nn.Module) and name not in ("Module", "Sequential")}
    assert layers <= set(LAYERS), f"not fuzzed: {sorted(layers - set(LAYERS))}"
    optimizers = {name for name in optim.__all__ if name not in ("Optimizer", "StepLR", "CosineAnnealingLR")}
    assert optimizers <= set(OPTIMIZERS), f"not fuzzed: {sorted(optimizers - set(OPTIMIZERS))}"

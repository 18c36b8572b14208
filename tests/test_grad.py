"""Every op through gradcheck and gradgradcheck in float64, on every backend present.

Rows live in ``grad_cases_*.py`` beside this file; the coverage test fails when a
``Function`` subclass appears in no row's forward or backward graph. Each row runs twice on the
CPU: every kernel on the whole batch, then in parts of one image on two worker threads (the
``parts`` fixture), the path a large batch takes.
"""
from __future__ import annotations

import importlib
import pathlib

import pytest
from conftest import PARTS

import autograd_cnn as ag
from autograd_cnn.autograd import Function

_HERE = pathlib.Path(__file__).parent
CASES = []
for _path in sorted(_HERE.glob("grad_cases_*.py")):
    CASES.extend(importlib.import_module(_path.stem).CASES)


def _inputs(case, backend):
    tensors = [ag.tensor(a, dtype="float64", requires_grad=True, backend=backend) for a in case.arrays()]
    return tensors + case.extras(backend)


def _skip_parts_on_gpu(parts):
    if parts != PARTS[0] and ag.get_backend().launch_bound:
        pytest.skip("a launch-bound backend takes every batch whole: the same run as the whole batch's")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradcheck(case, backend, parts):
    _skip_parts_on_gpu(parts)
    assert ag.gradcheck(case.fn, _inputs(case, backend), atol=case.atol, rtol=case.rtol)


@pytest.mark.parametrize("case", [c for c in CASES if c.double], ids=[c.name for c in CASES if c.double])
def test_gradgradcheck(case, backend, parts):
    _skip_parts_on_gpu(parts)
    assert ag.gradgradcheck(case.fn, _inputs(case, backend), atol=case.atol, rtol=case.rtol)


def _all_functions(cls=Function) -> set:
    out = set()
    for sub in cls.__subclasses__():
        out.add(sub)
        out |= _all_functions(sub)
    return out


def test_every_function_has_a_case(applied_functions):
    """Each Function runs in some row, forward or in its recorded (create_graph) backward."""
    used = applied_functions
    for case in CASES:
        inputs = _inputs(case, "numpy")
        out = case.fn(*inputs)
        loss = sum((o * o).sum() for o in (out if isinstance(out, tuple) else (out,)))
        ag.grad(loss, [x for x in inputs if isinstance(x, ag.Tensor) and x.requires_grad],
                create_graph=True, allow_unused=True)
    # A private base (``_Extreme``) holds what two ops share and never runs on its own.
    missing = sorted(f.__name__ for f in _all_functions() - used
                     if not f.__module__.startswith(("tests", "test_", "grad_cases"))
                     and not f.__name__.startswith("_"))
    assert not missing, f"Function subclasses without a gradcheck case: {missing}"

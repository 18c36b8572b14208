"""Fuzzing the picture and data entry points with hypothesis, as test_fuzz.py does the ops: every
call either gives a result or raises one of our errors (an AutogradError) whose message names
the call or one of its arguments; never a raw Python, NumPy or Graphviz exception.

Derandomized and bounded (the same examples each run). Nothing is downloaded: every fetch runs
with download_missing=False.
"""
from __future__ import annotations

import collections
import math
import os
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import autograd_cnn as ag  # noqa: E402
from autograd_cnn import data, nn, visual  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
MORE = settings(SETTINGS, max_examples=150)  # for calls of many arguments
JUNK = st.sampled_from([None, "x", "", 1.5, -1, 0, True, math.nan, (1, 2), [3], {}, b"a.svg", object()])
FOLDER = tempfile.mkdtemp(prefix="fuzz-visual-data-")
# Entry points that may refuse every generated call: nothing is downloaded, so a data set
# missing from this machine is always refused.
MAY_ALWAYS_REFUSE = {"fetch"}


def or_junk(valid):
    """Mostly ``valid`` values, sometimes junk: a call with several arguments still gets through."""
    return st.one_of(valid, valid, valid, JUNK)


CALLS: collections.Counter = collections.Counter()  # calls tried, per entry point
RESULTS: collections.Counter = collections.Counter()  # of them, calls that gave a result


@pytest.fixture(scope="module", autouse=True)
def _every_entry_point_gave_a_result_sometimes():
    yield
    never = sorted(call for call in CALLS if not RESULTS[call] and call not in MAY_ALWAYS_REFUSE)
    assert not never, f"no generated call of {never} gave a result: the generators need fixing"


def _plain(text: str) -> str:
    return text.lower().replace("_", "").replace(" ", "")


def attempt(call: str, fn, *args, aliases: tuple = (), **kwargs):
    """``fn``'s result, or None when it raised an AutogradError whose message names ``call``, one
    of ``aliases`` or an argument given by name; any other exception fails the test."""
    CALLS[call] += 1
    try:
        result = fn(*args, **kwargs)
        RESULTS[call] += 1
        return result
    except ag.AutogradError as err:
        message = _plain(str(err))
        names = (call, *aliases, *kwargs)
        assert any(_plain(n) in message for n in names), f"{call}: the error names none of {names}: {err}"
        return None


def a_loss() -> ag.Tensor:
    x = ag.tensor(np.array([[1.0, -2.0], [0.5, 3.0]]), requires_grad=True, name="x")
    return (nn.Linear(2, 3)(x).relu() * 2.0).sum()


OUTPUTS = st.one_of(st.just("loss"), st.just("loss"), st.just("leaf"), JUNK)
PATHS = or_junk(st.sampled_from(["a.dot", "a.html", "a", "sub/b.dot", "a.jpgx", "a.svg", "a.DOT", ".dot",
                                   "a.dot.png", "folder/"]))


def _output(which):
    return a_loss() if which == "loss" else ag.tensor([1.0, 2.0]) if which == "leaf" else which


@SETTINGS
@given(which=OUTPUTS, path=PATHS, kind=or_junk(st.sampled_from(["forward", "backward", "both", "sideways"])),
       format=or_junk(st.sampled_from([None, "dot", "html", "svg", "jpgx", "DOT"])),
       collapse=or_junk(st.sampled_from([None, "module", "layer"])),
       rankdir=or_junk(st.sampled_from(["TB", "LR", "XX"])),
       fold=st.one_of(st.booleans(), st.integers(-2, 50), JUNK))
def test_fuzz_visual_save(which, path, kind, format, collapse, rankdir, fold):
    target = os.path.join(FOLDER, path) if isinstance(path, str) and path else path
    written = attempt("visual.save", visual.save, _output(which), target, kind=kind, format=format,
                      collapse=collapse, rankdir=rankdir, fold=fold, aliases=("visual", "dot", "save"))
    if written is not None:
        assert isinstance(written, str) and os.path.isfile(written)
        assert isinstance(_output(which), ag.Tensor) and kind in ("forward", "backward", "both")


@MORE
@given(which=OUTPUTS, picture=st.sampled_from(["forward_graph", "backward_graph", "both_graph", "draw"]),
       collapse=or_junk(st.sampled_from([None, "module"])),
       collapse_depth=or_junk(st.one_of(st.none(), st.integers(-1, 3))),
       rankdir=or_junk(st.sampled_from(["TB", "LR", "BT", "RL", "XX"])),
       timeout=or_junk(st.one_of(st.none(), st.floats(-1, 5))))
def test_fuzz_the_pictures(which, picture, collapse, collapse_depth, rankdir, timeout):
    g = attempt(f"visual.{picture}", getattr(visual, picture), _output(which), collapse=collapse,
                collapse_depth=collapse_depth, rankdir=rankdir, timeout=timeout, aliases=("visual",))
    if g is not None:
        assert "digraph" in g.source


@SETTINGS
@given(which=OUTPUTS, folder=or_junk(st.sampled_from(["frames"])),
       format=or_junk(st.sampled_from(["svg", "png", "gif"])),
       kind=or_junk(st.sampled_from(["backward", "both", "forward"])))
def test_fuzz_backprop_frames(which, folder, format, kind):
    # The folder alone is fuzzed with "frames"; a format that reaches dot needs Graphviz (RenderError without).
    target = os.path.join(FOLDER, folder) if folder == "frames" else folder
    paths = attempt("backprop_frames", visual.backprop_frames, _output(which), target, format=format, kind=kind,
                    aliases=("visual", "dot", "folder"))
    if paths is not None:
        assert all(os.path.isfile(p) for p in paths)


@SETTINGS
@given(history=st.one_of(st.just({"loss": [1.0, 0.5]}), st.just({}), JUNK))
def test_fuzz_plot_training(history):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    attempt("plot_training", visual.plot_training, history)


@SETTINGS
@given(split=or_junk(st.booleans()), seed=or_junk(st.integers(0, 5)),
       test_size=or_junk(st.integers(-2, 5001)))
def test_fuzz_load_sample(split, seed, test_size):
    out = attempt("load_sample", data.load_sample, split=split, seed=seed, test_size=test_size)
    if out is not None:
        assert isinstance(test_size, int) and 0 < test_size < 5000


@SETTINGS
@given(name=or_junk(st.sampled_from(["mnist", "fashion-mnist", "cifar10", "nope"])),
       mirrors=st.one_of(st.none(), st.just("http://127.0.0.1:9/"), st.lists(st.just("http://127.0.0.1:9"),
                                                                                max_size=2), JUNK))
def test_fuzz_fetch_finds_or_refuses(name, mirrors):
    # download_missing=False: nothing is downloaded; a data set present on this machine is found.
    out = attempt("fetch", data.fetch, name, mirrors=mirrors, download_missing=False, aliases=(str(name),))
    if out is not None:
        assert all(os.path.isfile(p) for p in out.values())


@SETTINGS
@given(name=or_junk(st.sampled_from(["sample", "nope", "mnist"])))
def test_fuzz_load_dataset(name):
    attempt("load_dataset", data.load_dataset, name, download_missing=False, aliases=(str(name),))


@SETTINGS
@given(content=st.one_of(st.binary(max_size=40), st.just(b"\0\0\x08\x01\0\0\0\x03abc"),
                         st.just(b"\0\0\x08\x02\0\0\0\x02\0\0\0\x02abcd")),
       path=st.one_of(st.just("file"), st.just("missing"), JUNK))
def test_fuzz_read_idx(content, path):
    target = path
    if path == "file":
        target = os.path.join(FOLDER, "data.idx")
        with open(target, "wb") as f:
            f.write(content)
    elif path == "missing":
        target = os.path.join(FOLDER, "no such file")
    out = attempt("read_idx", data.read_idx, target, aliases=("path",))
    if out is not None:
        assert isinstance(out, np.ndarray)


@MORE
@given(n=st.integers(0, 5), batch_size=or_junk(st.integers(-1, 4)), shuffle=or_junk(st.booleans()),
       seed=or_junk(st.one_of(st.none(), st.integers(-1, 3))), drop_last=or_junk(st.booleans()),
       labels=st.sampled_from(["pair", "pair", "pair", "none", "short", "text"]))
def test_fuzz_data_loader(n, batch_size, shuffle, seed, drop_last, labels):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = {"pair": np.arange(n), "short": np.arange(max(n - 1, 0)), "none": None,
         "text": np.array(["a"] * n)}[labels]
    loader = attempt("DataLoader", data.DataLoader, x, y, batch_size=batch_size, shuffle=shuffle, seed=seed,
                     drop_last=drop_last)
    if loader is None:
        return
    batches = attempt("DataLoader", list, loader)
    if batches is not None:
        rows = sum(len(b[0] if isinstance(b, tuple) else b) for b in batches)
        assert rows == (n - n % batch_size if drop_last else n)

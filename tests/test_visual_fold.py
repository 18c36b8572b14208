"""Big graphs never hang: the "both" layout lines up, folding past the limit, dot under a timeout,
and the names a student reads (saved values in the op's words, the labels, z − z*)."""
from __future__ import annotations

import re
import shutil
import stat
import time

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import models, visual
from autograd_cnn.visual import fold as vfold
from autograd_cnn.visual import render as vrender

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")


def chain(n: int) -> ag.Tensor:
    h = ag.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True, name="x")
    for i in range(n - 1):
        h = h * 1.01 if i % 2 else h.tanh()
    return h.sum()


def resnet_loss(blocks=(3, 3, 3)) -> ag.Tensor:
    ag.manual_seed(0)
    model = models.resnet(blocks, in_channels=1)
    x = ag.tensor(np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32), name="images")
    return F.cross_entropy(model(x), ag.tensor(np.array([1, 2]), name="labels"))


def same_rank_pairs(source: str) -> set[tuple[str, str]]:
    return set(re.findall(r"\{\s*rank=same\s*(\w+) -> (\w+) \[style=invis\]", source))


def test_both_puts_each_backward_step_on_its_forward_ops_rank():
    loss = chain(6)
    g = visual.draw(loss, kind="both")
    pairs = same_rank_pairs(g.source)
    tr = visual.trace(loss)
    assert {(op.id, "b" + op.id) for op in tr.ops} <= pairs  # every step beside its op, forward on the left
    assert ("t0", "gt0") in pairs  # x.grad beside x
    assert any(b == "seed" for _, b in pairs)


@needs_dot
def test_a_300_op_chain_lays_out_unfolded_in_seconds_not_minutes():
    loss = chain(300)
    start = time.perf_counter()
    g = visual.draw(loss, kind="both")
    assert g.drawing.fold_note == ""  # under the limit: every op drawn
    g.pipe(format="svg")
    assert time.perf_counter() - start < 20  # before the fix: minutes (65 s at 150 ops)


def test_past_the_limit_a_chain_folds_to_a_few_nodes_with_a_message():
    loss = chain(3000)
    g = visual.draw(loss, kind="both")
    note = g.drawing.fold_note
    assert "3,000 ops" in note and "×N" in note and "fold=False" in note
    assert len(g.drawing.units) < 10
    assert "Tanh → Mul  ×1,499" in g.source or "×1499" in g.source
    assert note in g.source  # the one-line message is the picture's caption
    full = visual.draw(loss, kind="forward", fold=False)
    assert full.drawing.fold_note == "" and len(full.drawing.units) == 3000


def test_a_resnet_folds_its_stages_blocks_into_one_node_each():
    loss = resnet_loss()
    g = visual.draw(loss, kind="both", fold=80)  # a low limit: fold this small ResNet-20 on purpose
    titles = [u.title() for u in g.drawing.units]
    runs = [t for t in titles if "×" in t]
    # the blocks of each stage that repeat exactly (the first of stages 2 and 3 downsamples)
    assert runs == [t for t in titles if re.match(r"^(3 … 5|7 … 8|10 … 11): .*×(3|2)$", t)], titles
    assert len(runs) == 3
    assert "one node per layer" in g.drawing.fold_note and "3 runs of repeated blocks" in g.drawing.fold_note
    assert vfold.picture_size(g.drawing.tr, g.drawing.units, "both") <= 80


def test_still_too_big_after_the_rules_the_middle_is_elided():
    x = ag.tensor(np.ones(1), requires_grad=True, name="x")
    h = x
    for _ in range(400):  # each op's output one longer than the last: nothing repeats
        h = ag.concat([h, x], axis=0)
    loss = h.sum()
    units, note = vfold.fold_units(visual.trace(loss), vfold.build_units(visual.trace(loss), None, None),
                                   None, None, "both", limit=200)
    elided = [u for u in units if u.elided]
    assert len(elided) == 1 and "in the middle drawn as one node" in note
    assert units[0].ops[0].name == "Concat" and units[-1].ops[0].name == "Sum"  # the first and last kept
    assert sorted(t.label for t in elided[0].inputs) == ["Concat output", "x"]  # x is read everywhere


def test_saved_values_are_named_in_the_ops_own_words():
    loss = models_cnn_loss()
    _, _, edges = parse_edges(visual.draw(loss, kind="both"))
    saved = [a for a in edges if "style=dashed" in a]
    text = " ".join(saved)
    assert "the max-pool mask" in text and "the ReLU mask [x &gt; 0]" in text.replace(">", "&gt;") or \
        "the ReLU mask [x > 0]" in text
    assert "label=x" in text and "label=weight" in text and "label=logits" in text
    assert "ndarray" not in text and "saved (" not in text


def test_the_labels_appear_under_their_name_and_z_minus_z_star_is_explained():
    source = visual.draw(models_cnn_loss(), kind="both").source
    assert "<B>labels (one-hot)</B>" in source and "SoftmaxCrossEntropy.q" not in source
    assert "z − z*: the probabilities softmax(z) minus z*, the one-hot labels" in source


def models_cnn_loss() -> ag.Tensor:
    ag.manual_seed(0)
    model = models.lecture_cnn(softmax=False)
    x = ag.tensor(np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32), name="digits")
    return F.cross_entropy(model(x), ag.tensor(np.array([3, 5]), name="labels"))


def parse_edges(g):
    edges = [line.strip() for line in g.body if "->" in line]
    return g.body, len(edges), edges


def fake_dot(folder, body: str) -> None:
    path = folder / "dot"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_a_dot_that_runs_too_long_is_stopped_with_a_clear_error(tmp_path, monkeypatch):
    fake_dot(tmp_path, "exec /bin/sleep 30")
    monkeypatch.setenv("PATH", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(visual.RenderError, match=r"took longer than 0.5 s .*fold=True.*timeout="):
        visual.save(chain(3), tmp_path / "g.svg", timeout=0.5)
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "g.svg").exists()
    monkeypatch.setenv("AUTOGRAD_CNN_RENDER_TIMEOUT", "0.3")
    with pytest.raises(visual.RenderError, match="took longer than 0.3 s"):
        visual.draw(chain(3)).pipe(format="png")
    assert "took longer" in visual.draw(chain(3))._repr_mimebundle_()["text/plain"]  # a notebook cell ends
    monkeypatch.setenv("AUTOGRAD_CNN_RENDER_TIMEOUT", "soon")
    with pytest.raises(visual.RenderError, match="AUTOGRAD_CNN_RENDER_TIMEOUT='soon'"):
        vrender.default_timeout()


def test_a_failing_dot_says_so(tmp_path, monkeypatch):
    fake_dot(tmp_path, "echo 'syntax error in line 3' >&2; exit 1")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(visual.RenderError, match="failed .*exit status 1.*syntax error in line 3"):
        visual.save(chain(3), tmp_path / "g.png")


def test_without_dot_svg_fails_saying_how_to_install_and_that_html_works(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(visual.RenderError) as err:
        visual.save(chain(3), tmp_path / "x.svg")
    assert "apt-get install graphviz" in str(err.value) and 'format="html"' in str(err.value)
    assert not (tmp_path / "x.svg").exists()
    page = visual.save(chain(3), tmp_path / "x.html")  # no dot needed: drawn in the browser
    text = open(page, encoding="utf-8").read()
    assert not re.search(r"<figure[^>]*><svg", text)  # not laid out here: the DOT travels as escaped JSON
    assert '"dot": ["digraph forward' in text and "integrity=\"sha384-" in text


def test_an_unknown_extension_is_an_error_naming_the_formats(tmp_path):
    loss = chain(3)
    with pytest.raises(ValueError, match=r"\.jpgx is none of \.svg, \.png, \.pdf, \.dot, \.html"):
        visual.save(loss, tmp_path / "a.jpgx")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="ends in .png but format='svg'"):
        visual.save(loss, tmp_path / "a.png", format="svg")
    assert visual.save(loss, tmp_path / "plain", format="dot").endswith("plain.dot")
    assert visual.save(loss, tmp_path / "noformat").endswith("noformat.svg") or shutil.which("dot") is None


def test_fold_and_timeout_arguments_are_checked():
    with pytest.raises(ValueError, match="fold must be True, False or a positive number"):
        visual.draw(chain(3), fold="yes")
    with pytest.raises(ValueError, match="timeout must be a number of seconds above 0"):
        visual.draw(chain(3), timeout=0)

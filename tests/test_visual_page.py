"""The HTML page in headless Chromium: drawn by Graphviz compiled to WebAssembly where ``dot`` is
missing (the pinned npm package, installed into a temporary folder), laid out by ``dot`` where it
exists; a click on a node shows its arrays and rule; a tensor's name cannot inject markup."""
from __future__ import annotations

import base64
import hashlib
import html
import re
import shutil
import subprocess

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import visual
from autograd_cnn.visual import page as vpage

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
EVIL = '<img src=x onerror="document.title=1">'


@pytest.fixture(scope="module")
def viz_folder(tmp_path_factory):
    """The pinned @viz-js/viz, installed from the npm registry into a temporary folder."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed, so @viz-js/viz cannot be fetched for the browser test")
    folder = tmp_path_factory.mktemp("viz")
    try:
        done = subprocess.run([npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                               f"@viz-js/viz@{vpage.VIZ_VERSION}"], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install @viz-js/viz took over 180 s (no registry?)")
    if done.returncode != 0:
        pytest.skip(f"npm install @viz-js/viz failed (no registry?): {done.stderr.strip()[-300:]}")
    return folder


def chromium(tmp_path, url: str, *args: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
             "--run-all-compositor-stages-before-draw"]
    done = subprocess.run([CHROMIUM, *flags, *args, url], capture_output=True, text=True, timeout=90)
    return done.stdout


def dump(tmp_path, url: str) -> str:
    """The page's DOM once its script has finished (drawn, or an error shown). Compiling the
    WebAssembly runs in real time, which headless Chromium's virtual clock may outrun on a busy
    machine: a page caught before it finished is opened again, up to three times."""
    for _ in range(3):
        dom = chromium(tmp_path, url, "--dump-dom")
        if "data-state=" in dom:
            break
    return dom


def neuron_loss() -> ag.Tensor:
    x = ag.tensor(np.array([[1.0, -2.0, 3.0]]), name="x " + EVIL)
    w = ag.tensor(np.array([[0.5, -0.25, 0.1], [0.2, 0.4, -0.3]]), requires_grad=True, name="W</script>")
    b = ag.tensor(np.array([0.1, -0.1]), requires_grad=True, name="b")
    loss = F.cross_entropy(F.linear(x, w, b), ag.tensor([1], name="labels"))
    loss.backward(retain_graph=True)
    return loss


def state(dom: str) -> dict:
    body = re.search(r"<body([^>]*)>", dom).group(1)
    error = re.search(r'<div id="error" role="alert"([^>]*)>(.*?)</div>', dom, re.S)
    panel = re.search(r'<aside id="details"([^>]*)>(.*?)</aside>', dom, re.S)
    return {"state": re.search(r'data-state="(\w+)"', body).group(1) if "data-state" in body else None,
            "nodes": int(re.search(r'data-nodes="(\d+)"', body).group(1)) if "data-nodes" in body else 0,
            "error": None if "hidden" in error.group(1) else html.unescape(error.group(2)),
            "panel": None if "hidden" in panel.group(1) else html.unescape(re.sub(r"<[^>]+>", "\n", panel.group(2)))}


def test_the_pinned_integrity_hash_is_that_of_the_npm_packages_file(viz_folder):
    data = (viz_folder / "node_modules" / "@viz-js" / "viz" / vpage.VIZ_FILE).read_bytes()
    assert vpage.VIZ_INTEGRITY == "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")
    assert f"@viz-js/viz@{vpage.VIZ_VERSION}/{vpage.VIZ_FILE}" in vpage.VIZ_URL
    tag = vpage.viz_script(vpage.VIZ_URL)
    assert f'integrity="{vpage.VIZ_INTEGRITY}"' in tag and 'crossorigin="anonymous"' in tag


def test_without_dot_the_page_draws_in_the_browser_and_a_click_shows_the_arrays(tmp_path, monkeypatch, viz_folder):
    loss = neuron_loss()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot: the page carries DOT text for the browser
    monkeypatch.setenv("AUTOGRAD_CNN_VIZ_JS", str(viz_folder))
    path = visual.save(loss, tmp_path / "both.html", kind="both")
    monkeypatch.undo()
    text = open(path, encoding="utf-8").read()
    assert not re.search(r"<figure[^>]*><svg", text) and EVIL not in text and "W</script>" not in text
    expected = len(re.findall(r"^\s*\w+ \[label=", visual.draw(loss, kind="both").source, re.M))
    shown = state(dump(tmp_path, f"file://{path}#node=bop0"))
    assert shown["error"] is None and shown["state"] == "drawn", shown
    assert shown["nodes"] == expected > 10
    panel = shown["panel"]
    assert "LinearBackward" in panel and "∂L/∂W = ∂L/∂yᵀ @ x" in panel  # its rule
    assert "gradient sent to weight" in panel and "[[ 0.1" in panel or "[[" in panel  # its arrays


def test_a_tensor_name_cannot_inject_markup(tmp_path, monkeypatch, viz_folder):
    loss = neuron_loss()
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("AUTOGRAD_CNN_VIZ_JS", str(viz_folder))
    path = visual.save(loss, tmp_path / "evil.html", kind="forward")
    monkeypatch.undo()
    dom = dump(tmp_path, f"file://{path}#node=t0")
    shown = state(dom)
    assert shown["state"] == "drawn" and shown["error"] is None
    assert "<img" not in dom and "<title>both graph" not in dom.lower()  # the name stayed text
    assert EVIL in shown["panel"]  # shown as the name it is, in the panel too
    assert "&lt;img src=x" in dom


def test_with_dot_the_page_comes_laid_out_and_needs_no_network(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")
    loss = neuron_loss()
    path = visual.save(loss, tmp_path / "both.html", kind="both")
    text = open(path, encoding="utf-8").read()
    assert "<svg" in text and "<script src=" not in text  # nothing to load
    shown = state(dump(tmp_path, f"file://{path}#node=t0"))
    assert shown["state"] == "drawn" and shown["error"] is None and shown["nodes"] > 10
    assert "[[ 1. -2.  3.]]" in shown["panel"]  # x's whole value
    shot = tmp_path / "page.png"
    chromium(tmp_path, f"file://{path}", f"--screenshot={shot}", "--window-size=1200,800")
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_a_viz_that_cannot_load_is_an_error_on_the_page_not_a_blank(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    missing = tmp_path / "nothing"
    with pytest.raises(visual.RenderError, match="no @viz-js/viz script"):
        visual.save(neuron_loss(), tmp_path / "g.html", viz_js=missing)
    path = visual.save(neuron_loss(), tmp_path / "g.html", viz_js="http://127.0.0.1:9/viz-global.js")
    monkeypatch.undo()
    shown = state(dump(tmp_path, f"file://{path}"))
    assert shown["state"] == "error" and "Could not load Graphviz for the browser" in shown["error"]

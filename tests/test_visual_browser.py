"""The step-by-step page in a real browser: headless Chromium opens it from disk, moves the slider
(a ``#step=k`` link sets it and fires the same ``input`` event a drag does) and the shown frame changes."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import visual

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed"),
]


def chromium(tmp_path, *args: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000"]
    done = subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=60)
    return done.stdout


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    x = ag.tensor(np.array([[1.0, -2.0, 3.0]]), name="x")
    w = ag.tensor(np.array([[0.5, -0.25, 0.1], [0.2, 0.4, -0.3]]), requires_grad=True, name="w")
    b = ag.tensor(np.array([0.1, -0.1]), requires_grad=True, name="b")
    loss = F.cross_entropy(F.relu(F.linear(x, w, b)), ag.tensor([1]))
    paths = visual.backprop_frames(loss, folder)
    return folder, len(paths)


def shown(dom: str) -> tuple[list[str], str, str]:
    """The ids of the frames not hidden, the caption text and the position text."""
    visible = re.findall(r'<figure class="frame" id="(frame-\d+)"[^>]*?(?<!hidden="")>', dom)
    caption = re.search(r'<div id="caption">(.*?)</div>', dom, re.S).group(1)
    position = re.search(r'<output id="position">(.*?)</output>', dom).group(1)
    return visible, caption, position


def test_the_slider_changes_the_shown_frame(tmp_path, frames):
    folder, count = frames
    assert count >= 3
    url = (folder / "index.html").as_uri()
    first = shown(chromium(tmp_path, "--dump-dom", url))
    third = shown(chromium(tmp_path, "--dump-dom", url + "#step=3"))
    assert first[0] == ["frame-1"] and first[2] == f"1 / {count}"
    assert third[0] == ["frame-3"] and third[2] == f"3 / {count}"
    assert first[1].startswith("Step 1 of") and third[1].startswith("Step 3 of")
    # past the end the slider stops at the last frame
    last = shown(chromium(tmp_path, "--dump-dom", url + "#step=99"))
    assert last[0] == [f"frame-{count}"]


def test_the_page_looks_different_at_two_steps(tmp_path, frames):
    folder, count = frames
    url = (folder / "index.html").as_uri()
    pictures = []
    for k in (1, count):
        out = tmp_path / f"shot{k}.png"
        chromium(tmp_path, f"--screenshot={out}", "--window-size=1000,900", f"{url}#step={k}")
        pictures.append(out.read_bytes())
    assert all(p.startswith(b"\x89PNG") for p in pictures)
    assert pictures[0] != pictures[1]

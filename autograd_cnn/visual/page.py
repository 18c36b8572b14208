"""One HTML page for every picture: ``visual.save(..., format="html")``, the step-by-step film
strip's ``index.html`` and Jupyter's display where ``dot`` is missing.

The page pans (drag), zooms (wheel, buttons) and shows a node's whole value and gradient
arrays (rounded) and its rule when the node is clicked. Where Graphviz's ``dot`` is installed
the pictures come laid out as SVG; elsewhere the page carries the DOT text and draws it in the
browser with Graphviz compiled to WebAssembly (the npm package ``@viz-js/viz``), loaded from
``VIZ_URL``, pinned to one version, with its Subresource Integrity hash so that a browser
refuses a changed file. ``AUTOGRAD_CNN_VIZ_JS`` (or ``viz_js=``) names another URL, or a local
file or folder of the package, whose script is then written into the page (offline use).
No third-party code ships with this package.

Everything a tensor's name reaches is escaped: the labels in DOT (``labels.html_label``), the page's
data (JSON with ``<``, ``>`` and ``&`` written as escapes) and the click panel (set as text).
"""
from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AutogradError
from .render import RenderError, have_dot, run_dot

VIZ_VERSION = "3.31.0"
VIZ_FILE = "dist/viz-global.js"  # the build that defines the global ``Viz`` for a script tag
VIZ_URL = f"https://cdn.jsdelivr.net/npm/@viz-js/viz@{VIZ_VERSION}/{VIZ_FILE}"
VIZ_INTEGRITY = "sha384-iX6VK6ib27dxYB4T470zbHOsDDoLewuYvrIgv2B3XXe8kgfKsGMf8QIleFy6VPi4"  # of that file

ARRAY_LIMIT = 10_000  # elements shown in full in the click panel; bigger arrays are summarised


def viz_source(viz_js: str | os.PathLike | None = None) -> str:
    """Where the page loads Graphviz for the browser from: ``viz_js``, else ``AUTOGRAD_CNN_VIZ_JS``,
    else the pinned ``VIZ_URL``."""
    return os.fspath(viz_js) if viz_js else (os.environ.get("AUTOGRAD_CNN_VIZ_JS") or VIZ_URL)


def viz_script(viz_js: str | os.PathLike | None = None) -> str:
    """The script tag that defines ``Viz``: the pinned URL with its integrity hash, another URL as
    given, or a local copy written into the page."""
    source = viz_source(viz_js)
    if source == VIZ_URL:
        return f'<script src="{VIZ_URL}" integrity="{VIZ_INTEGRITY}" crossorigin="anonymous"></script>'
    if re.match(r"^https?://", source):
        return f'<script src="{html.escape(source, quote=True)}"></script>'
    path = local_viz_file(source)
    text = path.read_text(encoding="utf-8")
    return "<script>\n" + text.replace("</script", "<\\/script") + "\n</script>"


def local_viz_file(source: str) -> Path:
    """The ``viz-global.js`` that a local file or folder (the package, or an npm prefix) holds."""
    path = Path(source).expanduser()
    candidates = [path] if path.is_file() else [path / VIZ_FILE, path / "node_modules" / "@viz-js" / "viz" / VIZ_FILE,
                                                  path / "viz-global.js"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RenderError(
        f"AUTOGRAD_CNN_VIZ_JS (or viz_js=) is {source!r}, where there is no @viz-js/viz script. Point it at "
        f"the file {VIZ_FILE} of the package, at the package's folder, or at a folder where "
        f"`npm install --prefix FOLDER @viz-js/viz@{VIZ_VERSION}` was run; or leave it unset for {VIZ_URL}.")


def _json(value: Any) -> str:
    """JSON that cannot end the script element it sits in, nor start markup."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def page(frames: list[dict], title: str, details: dict[str, dict] | None = None,
         viz_js: str | os.PathLike | None = None, legend: bool = False) -> str:
    """The page for ``frames``, each ``{"caption": text, "svg": markup}`` (laid out by dot),
    ``{"caption", "png": base64}``, or ``{"caption", "dot": source}`` (drawn in the browser);
    several frames get a slider. ``details`` maps a node id to what a click on it shows."""
    template = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    figures, sources = [], []
    for k, frame in enumerate(frames):
        if "svg" in frame:
            body = frame["svg"][frame["svg"].index("<svg"):]  # drop the XML prologue and doctype
        elif "png" in frame:
            body = f'<img alt="step {k + 1}" src="data:image/png;base64,{frame["png"]}">'
        else:
            body = ""
        sources.append(frame.get("dot", ""))
        caption = html.escape(frame["caption"], quote=True)
        figures.append(f'<figure class="frame" id="frame-{k + 1}" data-caption="{caption}"'
                       f'{"" if k == 0 else " hidden"}>{body}</figure>')
    needs_viz = any(frame.get("dot") and "svg" not in frame and "png" not in frame for frame in frames)
    data = {"dot": sources, "details": details or {}, "viz": viz_source(viz_js) if needs_viz else ""}
    values = {"TITLE": html.escape(title), "COUNT": str(len(frames)), "FRAMES": "\n".join(figures),
              "FIRST": html.escape(frames[0]["caption"] if frames else ""), "DATA": _json(data),
              "VIZ": viz_script(viz_js) if needs_viz else "",
              "STEPS_HIDDEN": "" if len(frames) > 1 else " hidden", "LEGEND_HIDDEN": "" if legend else " hidden"}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)


def picture_page(g: Any, title: str, viz_js: str | os.PathLike | None = None) -> str:
    """The page of one picture: laid out by ``dot`` where it is installed, else in the browser."""
    frame: dict = {"caption": g.drawing.note if g.drawing is not None else ""}
    if have_dot():
        frame["svg"] = run_dot(g.source, "svg", g.timeout).decode("utf-8")
    else:
        frame["dot"] = g.source
    return page([frame], title, details=node_details(g.drawing), viz_js=viz_js)


def notebook_html(g: Any, viz_js: str | os.PathLike | None = None, height: int = 640) -> str:
    """Jupyter's view of a picture where ``dot`` is missing: the page, in a frame of its own."""
    try:
        text = page([{"caption": g.drawing.note if g.drawing is not None else "", "dot": g.source}],
                    title=g.name, details=node_details(g.drawing), viz_js=viz_js)
    except AutogradError as e:  # a bad AUTOGRAD_CNN_VIZ_JS: say so in the cell, do not fail it
        return f"<pre>{html.escape(str(e))}</pre>"
    return (f'<iframe srcdoc="{html.escape(text, quote=True)}" style="width:100%;height:{height}px;border:0" '
            'title="graph"></iframe>')


# --------------------------------------------------------------------------- the click panel


def array_text(a: np.ndarray | None, gone: str = "(freed by backward)") -> str:
    """A whole array, rounded to 4 significant places; past ARRAY_LIMIT elements, summarised;
    ``gone`` where there is none."""
    if a is None:
        return gone
    a = np.asarray(a)
    with np.printoptions(precision=4, suppress=True, threshold=ARRAY_LIMIT, edgeitems=4, linewidth=110):
        text = np.array2string(a)
    if a.size > ARRAY_LIMIT:
        text = f"({a.size:,} elements: the corners shown)\n{text}"
    return text


def node_details(drawing: Any) -> dict[str, dict]:
    """What a click on each node of ``drawing``'s pictures shows, by node id."""
    if drawing is None:
        return {}
    return drawing.details(array_text)

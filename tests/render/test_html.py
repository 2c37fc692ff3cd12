"""The HTML report and the plot: the width profile with the squeeze marked.

The browser test opens the page in headless Chromium (Debian's ``chromium``): it must
render, show the profile and name the cut's layer. Deep decoders (GPT-2 of 12 layers,
Llama of 64, d=64, random weights) and a U-Net are measured on the page and through
matplotlib's renderer: no label, legend entry or mark covers another or the curve.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import pytest
from PIL import Image

from onnx_flow.options import Options
from onnx_flow.pipeline import run as audit
from onnx_flow.render import html, plot
from onnx_flow.render.picture import CROSS_SECTION, picture
from onnx_flow.report import Report
from tests.browser import Browser, needs_chromium
from tests.runner import SHIPPED, invoke, run

_PICTURE = dataclasses.replace(Options.checked(), picture=True)


@pytest.fixture(scope="module")
def deep(exported, decoder) -> dict[str, Report]:
    """The reports, with profiles, of GPT-2 of 12 layers, Llama of 64 and a U-Net."""
    sequence = dataclasses.replace(Options.checked(dims={"sequence": 16}), picture=True)
    return {
        "gpt2_12": audit(decoder("gpt2", 12), sequence),
        "llama_64": audit(decoder("llama", 64), sequence),
        "unet": audit(exported("unet", "dynamo"), _PICTURE),
    }


def _html(exported, tmp_path: Path) -> Path:
    target = tmp_path / "report.html"
    result = invoke(
        "audit", exported("autoencoder", "dynamo"), "--format", "html", "--output", target
    )
    assert result.returncode == 1, result.stderr
    return target


def test_html_is_self_contained_and_names_the_cut(exported, tmp_path: Path) -> None:
    page = _html(exported, tmp_path).read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "<script" not in page and "src=" not in page and "href=" not in page
    assert page.count("enc.2") >= 3  # the verdict line, the profile's mark, the cut table


def test_the_profile_marks_the_cut_in_the_verdicts_colour_and_draws_the_skips(
    exported, tmp_path: Path
) -> None:
    target = tmp_path / "residual.html"
    invoke("audit", exported("residual", "dynamo"), "--format", "html", "--output", target)
    page = target.read_text()
    assert "<path class='skip' d='M" in page  # the skip around the 4-wide branch
    # The model passes: its cut (the input, 64 wide) is green, nothing is red.
    assert "<circle class='cut'" in page and "fill='#1e8449'" in page
    assert "#c0392b" not in page[page.index("<svg") : page.index("</svg>")]
    squeeze = tmp_path / "squeeze.html"
    invoke("audit", SHIPPED, "--format", "html", "--output", squeeze)
    assert "<circle class='cut' cx='" in squeeze.read_text()
    assert "fill='#c0392b'/>" in squeeze.read_text()


#: Measures each drawing on the page: its box, its texts' boxes, the cut marks' colours
#: and boxes, the legend's words and entries' boxes, the max-flow line's height, the
#: cross-section's points (in the drawing's units, and on the page), the depth axis's
#: labels and the number of arcs of skips.
_MEASURE = """(() => {
  const box = e => { const b = e.getBoundingClientRect();
    return {left: b.left, right: b.right, top: b.top, bottom: b.bottom}; };
  const drawings = [...document.querySelectorAll('svg')].map(svg => ({
    frame: box(svg),
    texts: [...svg.querySelectorAll('text')].map(t => ({text: t.textContent, ...box(t)})),
    marks: [...svg.querySelectorAll('circle.cut')].map(c => c.getAttribute('fill')),
    circles: [...svg.querySelectorAll('circle.cut')].map(box),
    legend: [...svg.querySelectorAll('g.legend text')].map(t => t.textContent),
    entries: [...svg.querySelectorAll('g.legend')].map(box),
    curve: [...svg.querySelectorAll('polyline')]
      .filter(p => p.getAttribute('stroke') === '#2e86c1')
      .flatMap(p => Array.from({length: p.points.length}, (_, i) => {
        const q = p.points.getItem(i).matrixTransform(p.getScreenCTM());
        return [q.x, q.y]; })),
    blocks: [...svg.querySelectorAll('text.block')].map(t => t.textContent),
    skips: svg.querySelectorAll('path.skip').length,
    level: Number(svg.querySelector('line.max-flow').getAttribute('y1')),
    section: [...svg.querySelectorAll('polyline')]
      .filter(p => p.getAttribute('stroke') === '#2e86c1')
      .flatMap(p => p.getAttribute('points').split(' ').map(xy => Number(xy.split(',')[1]))),
  }));
  return {drawings, scroll: document.documentElement.scrollWidth, width: innerWidth};
})()"""


@pytest.fixture(scope="module")
def pages(exported, deep, tmp_path_factory) -> dict[str, tuple[Path, bool]]:
    """One HTML page per kind of report: (page, whether the model has a bottleneck)."""
    import numpy as np

    folder = tmp_path_factory.mktemp("pages")
    samples = folder / "samples.npz"
    np.savez(samples, x=np.random.default_rng(0).standard_normal((64, 784)).astype(np.float32))
    cases = {
        "squeeze": [SHIPPED],
        "unet": [exported("unet", "dynamo")],
        "gpt2": [exported("gpt2", "torchscript"), "--dim", "sequence=16"],
        "rank": [SHIPPED, "--measure", "rank", "--energy", "0.99"],
        "data": [exported("autoencoder", "dynamo"), "--measure", "data", "--inputs", samples],
    }
    built = {}
    for name, arguments in cases.items():
        page = folder / f"{name}.html"
        result = invoke("audit", *arguments, "--format", "html", "--output", page)
        assert result.returncode in (0, 1), result.stderr
        built[name] = (page, result.returncode == 1)
    for name, report in deep.items():
        page = folder / f"deep-{name}.html"
        page.write_text(html.render([report]))
        built[f"deep-{name}"] = (page, report.bottleneck)
    return built


def _overlap(a: dict, b: dict) -> float:
    width = min(a["right"], b["right"]) - max(a["left"], b["left"])
    height = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    return max(width, 0) * max(height, 0)


def _crosses(curve: list[list[float]], box: dict) -> bool:
    """Whether the polyline through ``curve``'s points enters the box (less half a
    pixel each side): each segment clipped to the box (Liang and Barsky)."""
    left, right = box["left"] + 0.5, box["right"] - 0.5
    top, bottom = box["top"] + 0.5, box["bottom"] - 0.5
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        enter, leave = 0.0, 1.0
        for p, q in (
            (x0 - x1, x0 - left),
            (x1 - x0, right - x0),
            (y0 - y1, y0 - top),
            (y1 - y0, bottom - y0),
        ):
            if p == 0:
                if q < 0:
                    break
            elif p < 0:
                enter = max(enter, q / p)
            else:
                leave = min(leave, q / p)
        else:
            if enter <= leave:
                return True
    return False


def test_crosses_finds_a_segment_through_a_box_and_misses_one_beside_it() -> None:
    box = {"left": 10, "right": 20, "top": 10, "bottom": 20}
    assert _crosses([[0, 15], [30, 15]], box)  # straight through, no point inside
    assert _crosses([[15, 0], [15, 12]], box)  # ends inside
    assert not _crosses([[0, 0], [30, 5]], box)  # above it
    assert not _crosses([[0, 30], [9, 0]], box)  # beside it


@needs_chromium
@pytest.mark.parametrize("width", [1400, 800])
def test_every_page_draws_its_profile_whole_in_a_browser(pages, width: int, tmp_path: Path) -> None:
    """At 1400 and 800 pixels: every label inside its drawing and none over another, a
    legend, the cut marked in the verdict's colour (red only for a bottleneck), nothing
    wider than the window, and the U-Net's cross-section never below its max-flow.
    The screenshots are left in the test's folder."""
    with Browser(width, 900) as browser:
        for name, (page, bottleneck) in pages.items():
            browser.open(page.as_uri())
            measured = browser.evaluate(_MEASURE)
            assert measured["scroll"] <= measured["width"], name
            (drawing,) = measured["drawings"]
            frame = drawing["frame"]
            for text in drawing["texts"]:
                assert frame["left"] - 0.5 <= text["left"] and text["right"] <= frame["right"] + 0.5
                assert frame["top"] - 0.5 <= text["top"] and text["bottom"] <= frame["bottom"] + 0.5
            for first, second in itertools.combinations(drawing["texts"], 2):
                assert _overlap(first, second) < 1, (name, first["text"], second["text"])
            for box in drawing["texts"] + drawing["entries"]:
                assert not _crosses(drawing["curve"], box), (name, box.get("text"))
            for circle, text in itertools.product(drawing["circles"], drawing["texts"]):
                assert _overlap(circle, text) < 1, (name, text["text"])
            assert drawing["legend"][0] == "cross-section: total width alive"
            assert any(words.startswith("max-flow ") for words in drawing["legend"])
            assert any(words.startswith("minimum cut") for words in drawing["legend"])
            colour = "#c0392b" if bottleneck else "#1e8449"
            assert drawing["marks"] and set(drawing["marks"]) == {colour}, name
            if name.endswith("unet"):  # y grows downward: never below the level is never greater
                assert max(drawing["section"]) <= drawing["level"] + 0.01
            _check_depth_axis(name, drawing["blocks"], drawing["skips"])
            shot = browser.screenshot(tmp_path / f"{name}-{width}.png")
            colours = {c for _, c in Image.open(shot).convert("RGB").getcolors(1 << 24)}
            red = any(r > 150 and g < 90 and b < 90 for r, g, b in colours)
            assert red == bottleneck, name


def _check_depth_axis(name: str, blocks: list[str], skips: int) -> None:
    """GPT-2's 12 blocks fit one label each; Llama's 64 do not (about 13 of the drawing's
    960 units a block, a label "layers.NN" about 50): a regular step of 5 or 10, from 0.
    Every skip in these decoders stays in its block or reaches the next: at most two
    arcs a block, where they are more than 20 a block."""
    if name == "deep-gpt2_12":
        assert blocks == [f"h.{i}" for i in range(12)]
        assert skips <= 2 * 12
    elif name == "deep-llama_64":
        numbers = [int(label.removeprefix("layers.")) for label in blocks]
        step = numbers[1]
        assert step in (5, 10) and numbers == list(range(0, 64, step))
        assert skips <= 2 * 64


@pytest.mark.parametrize("name", ["gpt2_12", "llama_64", "unet"])
def test_plot_labels_cover_nothing_in_matplotlib(
    deep, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Through matplotlib's renderer, every text as it is drawn: every label of the cut
    is there, none covers another text, the legend, the cut's marks or the
    cross-section; GPT-2's depth axis is labelled by its blocks."""
    from matplotlib.collections import PathCollection
    from matplotlib.text import Text

    drawn: list[tuple[Text, object]] = []
    draw = Text.draw

    def recorded(text: Text, renderer) -> None:
        draw(text, renderer)
        if text.get_visible() and text.get_text():  # the words alone, without a leader
            drawn.append((text, Text.get_window_extent(text, renderer)))

    figure = plot.figure([deep[name]])
    monkeypatch.setattr(Text, "draw", recorded)
    figure.canvas.draw()
    axis = figure.axes[0]
    legend = axis.get_legend()

    def box(extent) -> dict:
        # Display y grows upward: flipped, as on a page.
        return {"left": extent.x0, "right": extent.x1, "top": -extent.y1, "bottom": -extent.y0}

    inside = set(legend.get_texts())
    boxes = [box(extent) | {"text": t.get_text()} for t, extent in drawn if t not in inside]
    shown = picture(deep[name], deep[name].profile)
    assert {m.label for m in shown.marks if m.label} <= {b["text"] for b in boxes}
    key = box(legend.get_window_extent())
    for first, second in itertools.combinations(boxes, 2):
        assert _overlap(first, second) < 1, (first["text"], second["text"])
    (curve,) = [line for line in axis.get_lines() if line.get_color() == CROSS_SECTION]
    points = [[x, -y] for x, y in curve.get_transform().transform(curve.get_xydata())]
    marks = [
        [x, -y]
        for collection in axis.findobj(PathCollection)
        for x, y in collection.get_offset_transform().transform(collection.get_offsets())
    ]
    assert marks
    for area in [*boxes, key]:
        assert _overlap(area, key) < 1 or area is key, area["text"]
        assert not _crosses(points, area), area.get("text")
        # A mark is a dot about 3 pixels across its centre.
        assert not any(
            area["left"] - 3 < x < area["right"] + 3 and area["top"] - 3 < y < area["bottom"] + 3
            for x, y in marks
        ), area.get("text")
    if name == "gpt2_12":
        ticks = [t.get_text() for t in figure.axes[-1].get_xticklabels()]
        assert ticks == [f"h.{i}" for i in range(12)]
    figure.savefig(tmp_path / f"{name}.png")


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_plot_draws_the_profile(exported, tmp_path: Path, suffix: str) -> None:
    model = exported("autoencoder", "torchscript")
    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    assert run("audit", model, "--plot", first).returncode == 1
    assert run("audit", model, "--plot", second).returncode == 1
    data = first.read_bytes()
    assert data == second.read_bytes()  # the same model, the same bytes
    if suffix == ".svg":
        assert b"enc.2 (32)" in data
    else:
        assert data.startswith(b"\x89PNG")


def test_plot_refuses_other_suffixes(tmp_path: Path) -> None:
    result = invoke("audit", "models/squeeze.onnx", "--plot", tmp_path / "p.jpg")
    assert result.returncode == 2 and ".png or .svg" in result.stderr


def test_the_page_lists_the_layers_furthest_below_random(tmp_path: Path) -> None:
    wheels = Path(__file__).parents[1] / "corpus" / "wheels"
    target = tmp_path / "ocr.html"
    flags = ["--input-shape", "x=1,3,640,640", "--measure", "rank", "--energy", "0.99"]
    result = invoke(
        "audit",
        wheels / "ch_PP-OCRv4_det_infer.onnx",
        *flags,
        "--format",
        "html",
        "--output",
        target,
    )
    assert result.returncode == 0, result.stderr
    page = target.read_text()
    heading = "layers furthest below a random matrix of their shape (energy rank at 0.99;"
    table = page[page.index(heading) :]
    rows = table[: table.index("</table>")].split("<tr>")[2:]
    assert len(rows) == 12 and "... and 50 more" in table
    cells = [re.findall(r"<td>([^<]*)</td>", row) for row in rows]
    # layer, op, matrix, rank, energy rank (* capped), random, ...
    below = [1 - int(energy.rstrip("*")) / int(random) for _, _, _, _, energy, random, *_ in cells]
    assert below == sorted(below, reverse=True) and below[0] > 0.5
    # The most compressed layer is clearly below random, so --energy capped it.
    assert cells[0][4].endswith("*")


def test_the_page_shows_every_layer_on_a_cut_and_the_bypassed_layers(
    exported, tmp_path: Path
) -> None:
    capped = tmp_path / "capped.html"
    invoke("audit", SHIPPED, "--measure", "rank", "--format", "html", "--output", capped)
    page = capped.read_text()
    # Ranks cap the squeeze's last layer at 4 too: both are on a minimum cut, and
    # widening the inner one gains nothing, the output being as narrow.
    table = page[page.index("<h3>every layer on a minimum cut (several cuts are as narrow)</h3>") :]
    table = table[: table.index("</table>")]
    assert "<th>width or cap</th>" in table
    assert table.count("<td>4</td><td>100%</td></tr>") == 2
    assert "gains nothing: 3 (Gemm, 4) is as narrow" in page
    residual = tmp_path / "residual.html"
    invoke("audit", exported("residual", "dynamo"), "--format", "html", "--output", residual)
    table = residual.read_text().split("<h3>narrow layers bypassed by skips</h3>")[1]
    rows = table[: table.index("</table>")].split("<tr>")[2:]
    # One row: the module down squeezes x's 64 to 4, 64 flowing around it; the ReLU
    # after it (no module of its own in the file) is not a layer.
    assert rows == ["<td>down</td><td>Gemm</td><td>64 -&gt; 4</td><td>64</td></tr>"]

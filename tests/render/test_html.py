"""The HTML report and the plot: the width profile with the squeeze marked.

The browser test opens the page in headless Chromium (Debian's ``chromium``): it must
render, show the profile and name the cut's layer.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.browser import Browser, needs_chromium
from tests.runner import SHIPPED, run


def _html(exported, tmp_path: Path) -> Path:
    target = tmp_path / "report.html"
    result = run("audit", exported("autoencoder", "dynamo"), "--format", "html", "--output", target)
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
    run("audit", exported("residual", "dynamo"), "--format", "html", "--output", target)
    page = target.read_text()
    assert "<path class='skip' d='M" in page  # the skip around the 4-wide branch
    # The model passes: its cut (the input, 64 wide) is green, nothing is red.
    assert "<circle class='cut'" in page and "fill='#1e8449'" in page
    assert "#c0392b" not in page[page.index("<svg") : page.index("</svg>")]
    squeeze = tmp_path / "squeeze.html"
    run("audit", SHIPPED, "--format", "html", "--output", squeeze)
    assert "<circle class='cut' cx='" in squeeze.read_text()
    assert "fill='#c0392b'/>" in squeeze.read_text()


#: Measures each drawing on the page: its box, its texts' boxes, the cut marks' colours,
#: the legend's words, the max-flow line's height and the cross-section's points.
_MEASURE = """(() => {
  const box = e => { const b = e.getBoundingClientRect();
    return {left: b.left, right: b.right, top: b.top, bottom: b.bottom}; };
  const drawings = [...document.querySelectorAll('svg')].map(svg => ({
    frame: box(svg),
    texts: [...svg.querySelectorAll('text')].map(t => ({text: t.textContent, ...box(t)})),
    marks: [...svg.querySelectorAll('circle.cut')].map(c => c.getAttribute('fill')),
    legend: [...svg.querySelectorAll('g.legend text')].map(t => t.textContent),
    level: Number(svg.querySelector('line.max-flow').getAttribute('y1')),
    section: [...svg.querySelectorAll('polyline')]
      .filter(p => p.getAttribute('stroke') === '#2e86c1')
      .flatMap(p => p.getAttribute('points').split(' ').map(xy => Number(xy.split(',')[1]))),
  }));
  return {drawings, scroll: document.documentElement.scrollWidth, width: innerWidth};
})()"""


@pytest.fixture(scope="module")
def pages(exported, tmp_path_factory) -> dict[str, tuple[Path, bool]]:
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
        result = run("audit", *arguments, "--format", "html", "--output", page)
        assert result.returncode in (0, 1), result.stderr
        built[name] = (page, result.returncode == 1)
    return built


def _overlap(a: dict, b: dict) -> float:
    width = min(a["right"], b["right"]) - max(a["left"], b["left"])
    height = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    return max(width, 0) * max(height, 0)


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
            assert drawing["legend"][0] == "cross-section: total width alive"
            assert any(words.startswith("max-flow ") for words in drawing["legend"])
            assert any(words.startswith("minimum cut") for words in drawing["legend"])
            colour = "#c0392b" if bottleneck else "#1e8449"
            assert drawing["marks"] and set(drawing["marks"]) == {colour}, name
            if name == "unet":  # y grows downward: never below the level is never greater
                assert max(drawing["section"]) <= drawing["level"] + 0.01
            shot = browser.screenshot(tmp_path / f"{name}-{width}.png")
            colours = {c for _, c in Image.open(shot).convert("RGB").getcolors(1 << 24)}
            red = any(r > 150 and g < 90 and b < 90 for r, g, b in colours)
            assert red == bottleneck, name


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
    result = run("audit", "models/squeeze.onnx", "--plot", tmp_path / "p.jpg")
    assert result.returncode == 2 and ".png or .svg" in result.stderr


def test_the_page_lists_the_layers_furthest_below_their_width(tmp_path: Path) -> None:
    wheels = Path(__file__).parents[1] / "corpus" / "wheels"
    target = tmp_path / "ocr.html"
    flags = ["--input-shape", "x=1,3,640,640", "--measure", "rank", "--energy", "0.99"]
    result = run(
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
    heading = "layers whose energy rank (at 0.99) falls furthest below their width"
    table = page[page.index(heading) :]
    rows = table[: table.index("</table>")].split("<tr>")[2:]
    assert len(rows) == 12 and "... and 50 more" in table
    cells = [re.findall(r"<td>([^<]*)</td>", row) for row in rows]
    shortfalls = [1 - int(energy) / int(width) for _, _, width, _, energy, *_ in cells]
    assert shortfalls == sorted(shortfalls, reverse=True) and shortfalls[0] > 0.5


def test_the_page_shows_every_layer_on_a_cut_and_the_bypassed_layers(
    exported, tmp_path: Path
) -> None:
    capped = tmp_path / "capped.html"
    run("audit", SHIPPED, "--measure", "rank", "--format", "html", "--output", capped)
    page = capped.read_text()
    # Ranks cap the squeeze's last layer at 4 too: both are on a minimum cut, and
    # widening the inner one gains nothing, the output being as narrow.
    table = page[page.index("<h3>every layer on a minimum cut (several cuts are as narrow)</h3>") :]
    table = table[: table.index("</table>")]
    assert "<th>width or cap</th>" in table
    assert table.count("<td>4</td><td>100%</td></tr>") == 2
    assert "gains nothing: 3 (Gemm, 4) is as narrow" in page
    residual = tmp_path / "residual.html"
    run("audit", exported("residual", "dynamo"), "--format", "html", "--output", residual)
    table = residual.read_text().split("<h3>narrow layers bypassed by skips</h3>")[1]
    rows = table[: table.index("</table>")].split("<tr>")[2:]
    # One row: the module down squeezes x's 64 to 4, 64 flowing around it; the ReLU
    # after it (no module of its own in the file) is not a layer.
    assert rows == ["<td>down</td><td>Gemm</td><td>64 -&gt; 4</td><td>64</td></tr>"]

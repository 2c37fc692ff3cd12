"""The HTML report and the plot: the width profile with the squeeze marked.

The browser test opens the page in headless Chromium (Debian's ``chromium``): it must
render, show the profile and name the cut's layer.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

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


def test_the_profile_marks_the_cut_and_draws_the_skips(exported, tmp_path: Path) -> None:
    target = tmp_path / "residual.html"
    run("audit", exported("residual", "dynamo"), "--format", "html", "--output", target)
    page = target.read_text()
    assert "<path d='M" in page  # the skip around the 4-wide branch
    assert "fill='#c0392b'" in page  # the cut (the input, 64 wide)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_headless_chromium_renders_the_profile(exported, tmp_path: Path) -> None:
    page = _html(exported, tmp_path)
    shot = tmp_path / "shot.png"
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,700"]
    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert "enc.2" in dom.stdout and "<svg" in dom.stdout
    assert "Uncaught" not in dom.stderr  # no script errors
    subprocess.run(
        [*browser, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120
    )
    image = Image.open(shot).convert("RGB")
    # The profile's line (blue) and the cut's mark (red) are on the screenshot.
    colors = {color for _, color in image.getcolors(1 << 24)}
    assert any(b > 150 and r < 100 for r, g, b in colors)
    assert any(r > 150 and g < 90 and b < 90 for r, g, b in colors)


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
    # The 4-wide branch (down, relu, up) with 64 flowing around it.
    assert rows and all(row.endswith("<td>4</td><td>64</td></tr>") for row in rows)

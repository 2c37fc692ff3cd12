"""Hostile and broken models: each is refused with one line on stderr and exit 2.

External-data references are checked without being opened: a location that leaves the
model's folder (absolute, ``..``, a symlink out), a missing file, keys and numbers the
format does not define. Nothing is written to stdout when a model is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.onnx_builders import model, squeeze_mlp
from tests.test_cli import run


def _external(folder: Path) -> tuple[onnx.ModelProto, Path]:
    """The squeeze MLP saved with its weights in ``weights.bin``; the loaded graph."""
    path = folder / "model.onnx"
    onnx.save(
        squeeze_mlp(), path, save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    return onnx.load(path, load_external_data=False), path


def _with_entry(key: str, value: str) -> Callable[[Path], Path]:
    """A case: the first weight's external-data ``key`` set to ``value``."""

    def build(folder: Path) -> Path:
        loaded, path = _external(folder)
        entries = loaded.graph.initializer[0].external_data
        for entry in entries:
            if entry.key == key:
                entry.value = value
                break
        else:
            entries.add(key=key, value=value)
        path.write_bytes(loaded.SerializeToString())
        return path

    return build


def _symlink_out(folder: Path) -> Path:
    outside = folder / "outside"
    outside.mkdir()
    inside = folder / "model"
    inside.mkdir()
    _external(outside)
    _external(inside)
    (inside / "weights.bin").unlink()
    (inside / "weights.bin").symlink_to(outside / "weights.bin")
    return inside / "model.onnx"


def _missing_file(folder: Path) -> Path:
    _, path = _external(folder)
    (folder / "weights.bin").unlink()
    return path


def _over_two_gigabytes(folder: Path) -> Path:
    path = folder / "huge.onnx"
    with path.open("wb") as file:  # sparse: no disk is used
        file.truncate(2**31 + 1)
    return path


def _undefined_tensor(folder: Path) -> Path:
    built = squeeze_mlp()
    built.graph.node[1].input[0] = "nowhere"
    path = folder / "dangling.onnx"
    path.write_bytes(built.SerializeToString())
    return path


def _contradicting_dims(folder: Path) -> Path:
    add = helper.make_node("Add", ["a", "b"], ["c"], name="add")
    built = model(
        [add],
        [("a", TensorProto.FLOAT, ["batch", "m"]), ("b", TensorProto.FLOAT, ["batch", "n"])],
        [("c", TensorProto.FLOAT, ["batch", "m"])],
    )
    path = folder / "add.onnx"
    onnx.save(built, path)
    return path


CASES: dict[str, tuple[Callable[[Path], Path], list[str], str]] = {
    "absolute location": (_with_entry("location", "/etc/passwd"), [], "leaves the model's folder"),
    "parent location": (_with_entry("location", "../weights.bin"), [], "leaves the model's folder"),
    "windows location": (_with_entry("location", "C:\\w.bin"), [], "leaves the model's folder"),
    "symlink out": (_symlink_out, [], "through a link"),
    "missing file": (_missing_file, [], "'weights.bin' is missing"),
    "unknown key": (_with_entry("shard", "3"), [], "unknown key 'shard'"),
    "negative offset": (_with_entry("offset", "-4"), [], "offset '-4' is not a non-negative"),
    "bad length": (_with_entry("length", "lots"), [], "length 'lots' is not a non-negative"),
    "past the end": (_with_entry("offset", "4096"), [], "past the end of 'weights.bin'"),
    "over 2 GB": (_over_two_gigabytes, [], "over 2 GB"),
    "undefined tensor": (_undefined_tensor, [], "'nowhere'"),
    "contradicting dims": (_contradicting_dims, ["--dim", "m=3", "--dim", "n=5"], "shape"),
}


@pytest.mark.parametrize("case", CASES)
def test_refused_with_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    build, flags, message = CASES[case]
    result = run("audit", build(tmp_path), *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnx-flow: error: "), result.stderr
    assert message in lines[0]


def test_a_link_inside_the_folder_is_fine(tmp_path: Path) -> None:
    _, path = _external(tmp_path)
    os.rename(tmp_path / "weights.bin", tmp_path / "real.bin")
    (tmp_path / "weights.bin").symlink_to("real.bin")
    assert run("audit", path).returncode == 1

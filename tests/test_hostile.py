"""Hostile and broken models: each is refused with one line on stderr and exit 2.

External-data references are checked without being opened: a location that leaves the
model's folder (absolute, ``..``, a symlink out), a missing file, keys and numbers the
format does not define. Nothing is written to stdout when a model is refused.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.onnx_builders import (
    endless_loop,
    external_entry,
    external_squeeze_mlp,
    model,
    squeeze_mlp,
)
from tests.runner import invoke, run


def _weights_from_outside(folder: Path, link: Callable[[Path, Path], None]) -> Path:
    """A squeeze in ``folder/model`` whose weights.bin is ``link``ed to the weights of
    another one in ``folder/outside``."""
    outside = folder / "outside"
    outside.mkdir()
    inside = folder / "model"
    inside.mkdir()
    external_squeeze_mlp(outside)
    external_squeeze_mlp(inside)
    (inside / "weights.bin").unlink()
    link(outside / "weights.bin", inside / "weights.bin")
    return inside / "model.onnx"


def _symlink_out(folder: Path) -> Path:
    return _weights_from_outside(folder, lambda target, name: name.symlink_to(target))


def _missing_file(folder: Path) -> Path:
    _, path = external_squeeze_mlp(folder)
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


def _node_name_not_utf8(folder: Path) -> Path:
    built = squeeze_mlp()
    built.graph.node[0].name = "layer/NAME"
    path = folder / "latin1.onnx"
    path.write_bytes(built.SerializeToString().replace(b"/NAME", b"/N\xc4ME"))
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


def _without_outputs(folder: Path) -> Path:
    built = squeeze_mlp()
    del built.graph.output[:]
    path = folder / "no-outputs.onnx"
    onnx.save(built, path)
    return path


def _output_nothing_writes(folder: Path) -> Path:
    built = squeeze_mlp()
    built.graph.output[0].name = "ghost"
    path = folder / "ghost.onnx"
    onnx.save(built, path)
    return path


def _relu(shape: list[int], folder: Path) -> Path:
    relu = helper.make_node("Relu", ["x"], ["y"], name="relu")
    path = folder / "relu.onnx"
    onnx.save(
        model([relu], [("x", TensorProto.FLOAT, shape)], [("y", TensorProto.FLOAT, shape)]), path
    )
    return path


def _doubling_functions(folder: Path, depth: int = 24) -> Path:
    """Local functions ``f1 .. f{depth}``, each calling the one before twice: a 2 KB
    file that inlines into 2**depth Relus."""
    functions = [
        helper.make_function(
            "local",
            "f0",
            ["a"],
            ["b"],
            [helper.make_node("Relu", ["a"], ["b"])],
            [helper.make_opsetid("", 17)],
        )
    ]
    for level in range(1, depth + 1):
        calls = [
            helper.make_node(f"f{level - 1}", ["a"], ["m"], domain="local"),
            helper.make_node(f"f{level - 1}", ["m"], ["b"], domain="local"),
        ]
        functions.append(
            helper.make_function(
                "local",
                f"f{level}",
                ["a"],
                ["b"],
                calls,
                [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
            )
        )
    call = helper.make_node(f"f{depth}", ["x"], ["y"], domain="local", name="top")
    graph = helper.make_graph(
        [call],
        "doubling",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]
    built = helper.make_model(graph, opset_imports=opsets, functions=functions)
    path = folder / "doubling.onnx"
    onnx.save(built, path)
    assert path.stat().st_size < 4096
    return path


def _hungry_run(folder: Path) -> Path:
    """A model whose output's shape only a run tells (NonZero), over a tensor of 2**28
    elements (1 GiB) that the run must make first."""
    graph = helper.make_graph(
        [
            helper.make_node("Expand", ["x", "shape"], ["big"], name="expand"),
            helper.make_node("NonZero", ["big"], ["nz"], name="nonzero"),
        ],
        "hungry",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("nz", TensorProto.INT64, None)],
        initializer=[numpy_helper.from_array(np.array([2**26, 4], np.int64), "shape")],
    )
    path = folder / "hungry.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _symlink_loop(folder: Path) -> Path:
    (folder / "a.onnx").symlink_to(folder / "b.onnx")
    (folder / "b.onnx").symlink_to(folder / "a.onnx")
    return folder / "a.onnx"


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "pipe.onnx")  # opening it for reading would wait for a writer
    return folder / "pipe.onnx"


def _hard_link_out(folder: Path) -> Path:
    """No symbolic link to see: the same inode as a file outside the folder."""
    return _weights_from_outside(folder, os.link)


def _sparse_outside(folder: Path) -> Path:
    """A sparse initializer whose values are stored in /etc/passwd."""
    built = squeeze_mlp()
    values = helper.make_tensor("s.values", TensorProto.FLOAT, [1], [1.0])
    values.data_location = TensorProto.EXTERNAL
    del values.float_data[:]
    values.external_data.add(key="location", value="/etc/passwd")
    indices = helper.make_tensor("s.indices", TensorProto.INT64, [1], [0])
    built.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    path = folder / "sparse.onnx"
    path.write_bytes(built.SerializeToString())
    return path


def _location_not_utf8(folder: Path) -> Path:
    _, path = external_squeeze_mlp(folder)
    path.write_bytes(path.read_bytes().replace(b"weights.bin", b"weights\xff.bi"))
    return path


CASES: dict[str, tuple[Callable[[Path], Path], list[str], str]] = {
    "a location not UTF-8": (_location_not_utf8, [], "'location' = b'weights\\xff.bi' is not"),
    "a hard link out, weights read": (
        _hard_link_out,
        ["--measure", "rank"],
        "'weights.bin' has 2 hard links: one may lead out of the folder",
    ),
    "sparse data outside": (_sparse_outside, [], "'s.values': location '/etc/passwd' leaves"),
    "a loop of symbolic links": (_symlink_loop, [], "a.onnx: a loop of symbolic links"),
    "a name too long": (lambda folder: folder / ("m" * 300 + ".onnx"), [], "file name too long"),
    "a FIFO": (_fifo, [], "pipe.onnx: not a file"),
    "a dim above int64": (
        lambda folder: _relu([1, 4], folder),
        ["--dim", "batch=99999999999999999999"],
        "the size must be a positive integer below 2**63",
    ),
    "a run that never ends": (
        endless_loop,
        ["--limit", "run-seconds=3"],
        "the onnxruntime run took more than 3 s, to find the shapes inference left open",
    ),
    "a run past its memory": (
        _hungry_run,
        ["--limit", "run-memory=300000000"],
        "the onnxruntime run ran out of memory",
    ),
    "functions that double per level": (
        _doubling_functions,
        [],
        "has 16,777,216 nodes, above the limit of 2,000,000 (--limit nodes=N)",
    ),
    "no outputs": (_without_outputs, [], "the graph has no outputs"),
    "an output nothing writes": (
        _output_nothing_writes,
        [],
        "output 'ghost' is written by no node",
    ),
    # 240 dims of 2**62: a width of 4,336 digits, past what Python prints by default.
    "over 2**64 elements": (
        lambda folder: _relu([2**62] * 240, folder),
        [],
        "tensor 'x' has more than 2**64 elements (240 dims)",
    ),
    "absolute location": (
        external_entry("location", "/etc/passwd"),
        [],
        "leaves the model's folder",
    ),
    "parent location": (
        external_entry("location", "../weights.bin"),
        [],
        "leaves the model's folder",
    ),
    "windows location": (
        external_entry("location", "C:\\w.bin"),
        [],
        "leaves the model's folder",
    ),
    "symlink out": (_symlink_out, [], "through a link"),
    "missing file, weights read": (
        _missing_file,
        ["--measure", "rank"],
        "'weights.bin' is missing",
    ),
    "unknown key": (external_entry("shard", "3"), [], "unknown key 'shard'"),
    "negative offset": (
        external_entry("offset", "-4"),
        [],
        "offset '-4' is not a non-negative",
    ),
    "bad length": (
        external_entry("length", "lots"),
        [],
        "length 'lots' is not a non-negative",
    ),
    "past the end": (external_entry("offset", "4096"), [], "past the end of 'weights.bin'"),
    "over 2 GB": (_over_two_gigabytes, [], "over 2 GB"),
    "undefined tensor": (_undefined_tensor, [], "'nowhere'"),
    "node name not UTF-8": (_node_name_not_utf8, [], "not UTF-8: b'layer/N\\xc4ME'"),
    "contradicting dims": (_contradicting_dims, ["--dim", "m=3", "--dim", "n=5"], "shape"),
}


@pytest.mark.slow  # each a process of its own under a memory limit: seconds
@pytest.mark.parametrize("case", CASES)
def test_refused_with_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    """Each under 2 GiB of address space and the runner's time limit: a regression that
    would take the machine down fails here instead."""
    build, flags, message = CASES[case]
    result = run("audit", build(tmp_path), *flags, memory=2**31)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnx-flow: error: "), result.stderr
    assert message in lines[0]


def test_a_missing_file_is_no_matter_where_no_weight_is_read(tmp_path: Path) -> None:
    result = invoke("audit", _missing_file(tmp_path))
    assert result.returncode == 1 and "max-flow 4 of 64" in result.stdout, result.stderr


def test_a_link_inside_the_folder_is_fine(tmp_path: Path) -> None:
    _, path = external_squeeze_mlp(tmp_path)
    os.rename(tmp_path / "weights.bin", tmp_path / "real.bin")
    (tmp_path / "weights.bin").symlink_to("real.bin")
    assert invoke("audit", path).returncode == 1


@pytest.mark.slow  # waits out its time limits
def test_a_run_that_never_ends_costs_its_own_model_only(tmp_path: Path) -> None:
    """In a folder audited by two workers, the endless model gets its error entry and
    the squeeze its verdict."""
    folder = tmp_path / "models"
    folder.mkdir()
    endless_loop(folder)
    onnx.save(squeeze_mlp(), folder / "squeeze.onnx")
    result = run("audit", folder, "--jobs", "2", "--limit", "run-seconds=3", "--format", "json")
    assert result.returncode == 2, result.stderr
    endless, squeeze = json.loads(result.stdout)
    assert "took more than 3 s" in endless["error"]
    assert squeeze["max_flow"] == 4


@pytest.mark.slow  # waits out its time limits
def test_a_model_that_hangs_is_cut_at_the_model_time_limit(tmp_path: Path) -> None:
    """Serially too, each of several models has its own process and time limit: the
    endless model (its onnxruntime run allowed far longer) is killed at 2 s."""
    folder = tmp_path / "models"
    folder.mkdir()
    endless = endless_loop(folder)
    onnx.save(squeeze_mlp(), folder / "squeeze.onnx")
    started = time.monotonic()
    result = run(
        "audit", folder, "--limit", "run-seconds=100", "--limit", "model-seconds=2",
        "--format", "json",
    )  # fmt: skip
    assert time.monotonic() - started < 30
    assert result.returncode == 2, result.stderr
    cut, squeeze = json.loads(result.stdout)
    assert cut["error"] == (
        f"{endless}: the audit took more than 2 s (--limit model-seconds=N, model-memory=BYTES)"
    )
    assert squeeze["max_flow"] == 4


def test_a_path_with_a_nul_byte_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the Python entry can pass one: no command line holds a NUL."""
    from onnx_flow.cli.main import main

    assert main(["audit", "a\x00b.onnx"]) == 2
    assert (
        capsys.readouterr().err
        == "onnx-flow: error: 'a\\x00b.onnx': a path cannot hold a NUL byte\n"
    )

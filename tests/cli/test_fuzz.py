"""Fuzzing: mutated model files give exit 0, 1 or 2, never a traceback or an internal error.

Each example starts from a valid model (the shipped squeeze MLP, or a residual block with
its weights as external data) and breaks it: truncates it, flips bytes, sets a dim to a
strange value, renames a tensor a node reads.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnx_flow.cli.main import main
from tests.onnx_builders import squeeze_mlp

VALID = squeeze_mlp().SerializeToString()


def _audit(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["audit", str(path), "--format", "json"])
    return code, out.getvalue(), err.getvalue()


def _check(path: Path) -> None:
    code, out, err = _audit(path)
    assert code in (0, 1, 2)
    if code == 2:
        assert out == "" and len(err.splitlines()) == 1, err
        assert err.startswith("onnx-flow: error: ") and "internal error" not in err, err
    else:
        assert err == "" and out.startswith("{")


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(cut=st.integers(0, len(VALID) - 1))
def test_truncated(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(VALID[:cut])
    _check(path)


@FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)), min_size=1, max_size=8
    )
)
def test_flipped_bytes(tmp_path: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for position, mask in flips:
        data[position] ^= mask
    path = tmp_path / "m.onnx"
    path.write_bytes(bytes(data))
    _check(path)


@FUZZ
@given(
    which=st.sampled_from(["input", "output", "weight"]),
    value=st.one_of(st.integers(-(2**40), 2**40), st.sampled_from([0, -1, 1, 2**31, 2**63 - 1])),
)
def test_strange_dims(tmp_path: Path, which: str, value: int) -> None:
    built = squeeze_mlp()
    if which == "weight":
        built.graph.initializer[0].dims[1] = value
    else:
        value_info = built.graph.input[0] if which == "input" else built.graph.output[0]
        value_info.type.tensor_type.shape.dim[1].dim_value = value
    path = tmp_path / "m.onnx"
    path.write_bytes(built.SerializeToString())
    _check(path)


@FUZZ
@given(node=st.integers(0, 1), slot=st.integers(0, 1), name=st.text(max_size=6))
def test_dangling_names(tmp_path: Path, node: int, slot: int, name: str) -> None:
    built = squeeze_mlp()
    built.graph.node[node].input[slot] = name
    path = tmp_path / "m.onnx"
    path.write_bytes(built.SerializeToString())
    _check(path)


def test_the_unmutated_model_passes_the_same_check(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(VALID)
    assert _audit(path)[0] == 1
    _check(path)
    assert onnx.load(path).graph.node

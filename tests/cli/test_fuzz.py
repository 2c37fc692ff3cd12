"""Fuzzing: mutated model files give exit 0, 1 or 2, never a traceback or an internal error.

Each example starts from a valid model (the squeeze MLP, or models written by Keras, JAX,
Paddle and scikit-learn exporters) and breaks it: truncates it, flips bytes, sets a dim
to a strange value, changes a node's op or what it reads, drops a node.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnx_flow.cli.main import main
from tests.onnx_builders import squeeze_mlp

VALID = squeeze_mlp().SerializeToString()


def _audit(path: Path, *flags: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["audit", str(path), "--format", "json", *flags])
    return code, out.getvalue(), err.getvalue()


def _check(path: Path, *flags: str) -> None:
    code, out, err = _audit(path, *flags)
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


#: Models written by other exporters, each a seed for the mutants below.
SEEDS = {
    "squeeze": VALID,
    **{
        name: (Path(__file__).parents[1] / "corpus" / "exporters" / f"{name}.onnx").read_bytes()
        for name in (
            "keras_transformer_block",
            "paddle_mlp",
            "jax_nnx_residual",
            "keras_cnn_squeeze",
            "sklearn_mlp_classifier_zipmap",
            "sklearn_random_forest_regressor",
        )
    },
}

#: Ops a mutant may turn a node into: shape-dependent, subgraph-holding, unknown.
_OPS = ["NonZero", "Loop", "If", "Reshape", "ConstantOfShape", "Range", "Expand", "Unknown"]

#: Budgets that keep every mutant's audit short whatever it asks for.
_LIMITS = ["--limit", "run-seconds=10", "--limit", "nodes=100000"]


def _mutant(seed: bytes, kind: str, data: st.DataObject) -> bytes:
    """The seed, broken one way: cut, bytes flipped, a dim, a node's op, input or
    presence changed."""
    if kind == "truncate":
        return seed[: data.draw(st.integers(0, len(seed) - 1))]
    if kind == "flip":
        mutated = bytearray(seed)
        for _ in range(data.draw(st.integers(1, 8))):
            mutated[data.draw(st.integers(0, len(seed) - 1))] ^= data.draw(st.integers(1, 255))
        return bytes(mutated)
    built = onnx.load_from_string(seed)
    graph = built.graph
    if kind == "dim":
        values = [*graph.input, *graph.output, *graph.value_info]
        dims = [d for v in values for d in v.type.tensor_type.shape.dim]
        if dims:
            dim = dims[data.draw(st.integers(0, len(dims) - 1))]
            dim.dim_value = data.draw(st.sampled_from([0, -1, -64, 2**31, 2**62, 2**63 - 1]))
    elif graph.node:
        node = graph.node[data.draw(st.integers(0, len(graph.node) - 1))]
        if kind == "op":
            node.op_type = data.draw(st.sampled_from(_OPS))
        elif kind == "rewire" and node.input:
            names = [*(i.name for i in graph.input), *(o for n in graph.node for o in n.output)]
            slot = data.draw(st.integers(0, len(node.input) - 1))
            node.input[slot] = data.draw(st.sampled_from(names))
        elif kind == "drop":
            graph.node.remove(node)
    return built.SerializeToString()


@pytest.mark.slow  # audits mutants of every exporter's models: seconds
@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    kind=st.sampled_from(["truncate", "flip", "dim", "op", "rewire", "drop"]),
    data=st.data(),
)
def test_mutants_of_every_exporters_models(
    tmp_path: Path, seed: str, kind: str, data: st.DataObject
) -> None:
    """Mutants of seven models from six exporters: exit 0, 1 or 2 in one line, within
    budgets that bound each audit whatever the mutant asks for."""
    path = tmp_path / "m.onnx"
    path.write_bytes(_mutant(SEEDS[seed], kind, data))
    _check(path, *_LIMITS)

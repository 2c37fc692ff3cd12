"""Small ONNX models built by hand with onnx.helper, for tests of single behaviours."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, outputs, initializers=(), opset: int = 17, domains=()) -> onnx.ModelProto:
    """A checked model from nodes and (name, elem_type, shape) inputs/outputs."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=list(initializers),
    )
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    built = helper.make_model(graph, opset_imports=opsets)
    onnx.checker.check_model(built)
    return built


def cycle() -> onnx.ModelProto:
    """x + b -> a -> Relu -> b: a cycle, so not checked (the checker rejects cycles too)."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "b"], ["a"], name="first"),
            helper.make_node("Relu", ["a"], ["b"], name="second"),
        ],
        "cycle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph)


def weight(name: str, *shape: int, dtype=np.float32) -> TensorProto:
    return numpy_helper.from_array(np.zeros(shape, dtype=dtype), name)


def linear(name: str, source: str, inputs: int, outputs: int) -> tuple[list, list]:
    """``source @ W`` as a MatMul with its weight initializer."""
    return [helper.make_node("MatMul", [source, f"{name}.w"], [name], name=name)], [
        weight(f"{name}.w", inputs, outputs)
    ]


def squeeze_mlp(dtype: int = TensorProto.FLOAT, narrow: int = 4) -> onnx.ModelProto:
    """x[batch, 64] -> narrow -> 64 (layers ``down`` and ``up``), with a symbolic batch dim."""
    first, w1 = linear("down", "x", 64, narrow)
    second, w2 = linear("up", "down", narrow, 64)
    return model(
        first + second, [("x", dtype, ["batch", 64])], [("up", dtype, ["batch", 64])], w1 + w2
    )


def external_squeeze_mlp(folder: Path) -> tuple[onnx.ModelProto, Path]:
    """The squeeze MLP saved with its weights in ``weights.bin``; the loaded graph."""
    path = folder / "model.onnx"
    onnx.save(
        squeeze_mlp(), path, save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    return onnx.load(path, load_external_data=False), path


def external_entry(key: str, value: str) -> Callable[[Path], Path]:
    """A case: the first weight's external-data ``key`` set to ``value``."""

    def build(folder: Path) -> Path:
        loaded, path = external_squeeze_mlp(folder)
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


def endless_loop(folder: Path) -> Path:
    """A 300-byte model whose output's shape only a run tells (NonZero), after a Loop
    of 2**62 iterations: its audit lasts as long as ``--limit run-seconds`` allows."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond"], ["cond_out"]),
            helper.make_node("Neg", ["v"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 4]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 4]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Loop", ["trips", "go", "x"], ["y"], body=body, name="loop"),
            helper.make_node("NonZero", ["y"], ["nz"], name="nonzero"),
        ],
        "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("nz", TensorProto.INT64, None)],
        initializer=[
            numpy_helper.from_array(np.array(2**62, np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "go"),
        ],
    )
    path = folder / "endless.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert path.stat().st_size < 400
    return path

"""Small ONNX models built by hand with onnx.helper, for tests of single behaviours."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def attention_layers(
    heads: Sequence[int],
    *,
    queries: int,
    keys: int | None = None,
    head: int = 16,
    residual: bool = True,
) -> onnx.ModelProto:
    """One attention layer per item of ``heads``, that many heads of size ``head``, over
    x[1, queries, 32]: self-attention, or with ``keys`` cross-attention to
    memory[1, keys, 32], which each layer reads its K and V from. Named as the
    TorchScript exporter names them: layer i's nodes are in module
    ``encoder.layer.i.attention``, its Softmax ``/encoder/layer.i/attention/Softmax``
    reads ``li.scores`` and writes ``li.p``."""
    layers = _AttentionLayers(queries, keys if keys is not None else queries, head)
    x = "x"
    for i, count in enumerate(heads):
        x = layers.add(i, count, x, "memory" if keys is not None else x, residual=residual)
    layers.nodes.append(helper.make_node("Identity", [x], ["y"]))
    inputs = [("x", TensorProto.FLOAT, [1, queries, layers.width])]
    if keys is not None:
        inputs.append(("memory", TensorProto.FLOAT, [1, keys, layers.width]))
    outputs = [("y", TensorProto.FLOAT, [1, queries, layers.width])]
    return model(layers.nodes, inputs, outputs, layers.constants)


class _AttentionLayers:
    """The nodes and constants of :func:`attention_layers`, one layer at a time."""

    width = 32

    def __init__(self, queries: int, keys: int, head: int) -> None:
        self.queries, self.keys, self.head = queries, keys, head
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[TensorProto] = []
        self.rng = np.random.default_rng(0)

    def add(self, i: int, heads: int, x: str, memory: str, *, residual: bool) -> str:
        """Layer ``i`` on ``x``, its keys and values from ``memory``; its output."""
        scope, inner = f"/encoder/layer.{i}/attention", heads * self.head
        q = self._heads(scope, f"l{i}.q", x, (self.queries, heads), [0, 2, 1, 3])
        kt = self._heads(scope, f"l{i}.k", memory, (self.keys, heads), [0, 2, 3, 1])
        v = self._heads(scope, f"l{i}.v", memory, (self.keys, heads), [0, 2, 1, 3])
        self._node(scope, "MatMul", [q, kt], f"l{i}.scores")
        self._node(scope, "Softmax", [f"l{i}.scores"], f"l{i}.p", axis=-1)
        self._node(scope, "MatMul", [f"l{i}.p", v], f"l{i}.mixed")
        self._node(scope, "Transpose", [f"l{i}.mixed"], f"l{i}.mixed.t", perm=[0, 2, 1, 3])
        joined = self._constant(f"l{i}.joined.shape", np.array([1, self.queries, inner], np.int64))
        self._node(scope, "Reshape", [f"l{i}.mixed.t", joined], f"l{i}.joined")
        out = self._constant(f"l{i}.wo", self._weight(inner, self.width))
        self._node(scope, "MatMul", [f"l{i}.joined", out], f"l{i}.o")
        if not residual:
            return f"l{i}.o"
        self._node(scope, "Add", [x, f"l{i}.o"], f"l{i}.h")
        return f"l{i}.h"

    def _heads(
        self, scope: str, name: str, source: str, sizes: tuple[int, int], perm: list[int]
    ) -> str:
        """``source`` projected, split into ``sizes`` = (length, heads) heads and
        transposed by ``perm``."""
        length, heads = sizes
        weight = self._constant(f"{name}.w", self._weight(self.width, heads * self.head))
        self._node(scope, "MatMul", [source, weight], name)
        shape = self._constant(f"{name}.shape", np.array([1, length, heads, self.head], np.int64))
        self._node(scope, "Reshape", [name, shape], f"{name}.heads")
        self._node(scope, "Transpose", [f"{name}.heads"], f"{name}.t", perm=perm)
        return f"{name}.t"

    def _weight(self, rows: int, columns: int) -> np.ndarray:
        return self.rng.standard_normal((rows, columns)).astype(np.float32)

    def _constant(self, name: str, value: np.ndarray) -> str:
        self.constants.append(numpy_helper.from_array(value, name))
        return name

    def _node(
        self, scope: str, op: str, inputs: list[str], output: str, **attributes: object
    ) -> None:
        name = f"{scope}/{op}" if op == "Softmax" else f"{scope}/{op}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attributes))


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


def sequence_model() -> onnx.ModelProto:
    """x [batch, sequence, 8] -> Relu -> y: no bottleneck, and a dim named sequence."""
    return model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [("x", TensorProto.FLOAT, ["batch", "sequence", 8])],
        [("y", TensorProto.FLOAT, ["batch", "sequence", 8])],
    )


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

"""An ``If`` whose condition constants, bound shapes or given input values decide is
audited as the branch it takes; one they do not decide stays one operator and says which
inputs would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_flow
from tests.onnx_builders import model
from tests.runner import invoke

X = ("x", TensorProto.FLOAT, [1, 64])
FLAG = ("flag", TensorProto.BOOL, [1])
Y = ("y", TensorProto.FLOAT, [1, 64])


def _squeeze_branch(rank: int = 4) -> onnx.GraphProto:
    """x @ down (64 x 4, of ``rank``) @ up (4 x 64): 4 values wide; weights inside."""
    rng = np.random.default_rng(0)
    down = rng.standard_normal((64, rank)) @ rng.standard_normal((rank, 4))
    return helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "down.w"], ["down"], name="down"),
            helper.make_node("MatMul", ["down", "up.w"], ["then_y"], name="up"),
        ],
        "squeeze",
        [],
        [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, [1, 64])],
        [
            numpy_helper.from_array(down.astype(np.float32), "down.w"),
            numpy_helper.from_array(rng.standard_normal((4, 64)).astype(np.float32), "up.w"),
        ],
    )


def _relu_branch() -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node("Relu", ["x"], ["else_y"], name="relu")],
        "relu",
        [],
        [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, [1, 64])],
    )


def _switch(condition: str, then: onnx.GraphProto, otherwise: onnx.GraphProto) -> onnx.NodeProto:
    return helper.make_node(
        "If", [condition], ["y"], name="switch", then_branch=then, else_branch=otherwise
    )


def _flagged(then: onnx.GraphProto | None = None) -> onnx.ModelProto:
    """x[1, 64], flag -> If(flag) {x -> 4 -> 64} else {relu(x)} -> y."""
    return model([_switch("flag", then or _squeeze_branch(), _relu_branch())], [X, FLAG], [Y])


def _figures(report: onnx_flow.Report) -> tuple[int, int]:
    return report.total.max_flow, report.total.reference


def test_a_given_value_follows_the_branch_it_selects() -> None:
    squeezed = onnx_flow.audit(_flagged(), input_values={"flag": True})
    assert _figures(squeezed) == (4, 64)
    assert [t.node for t in squeezed.total.cut_near_inputs] == ["down"]
    assert [(b.node, b.taken, b.inputs) for b in squeezed.branches] == [
        ("switch", "then_branch", ("flag",))
    ]
    relu = onnx_flow.audit(_flagged(), input_values={"flag": False})
    assert _figures(relu) == (64, 64)
    assert relu.branches[0].taken == "else_branch"


def test_without_a_value_the_if_is_one_operator_that_names_its_input() -> None:
    report = onnx_flow.audit(_flagged())
    # One vertex reads x (64) and flag (1) and writes y (64).
    assert _figures(report) == (64, 64)
    assert [(b.taken, b.inputs) for b in report.branches] == [(None, ("flag",))]
    assert report.to_dict()["branches"] == [
        {"node": "switch", "condition": "flag", "branch": None, "inputs": ["flag"]}
    ]


def test_a_constant_condition_needs_no_value() -> None:
    constant = helper.make_node(
        "Constant", [], ["yes"], value=helper.make_tensor("v", TensorProto.BOOL, [], [True])
    )
    built = model([constant, _switch("yes", _squeeze_branch(), _relu_branch())], [X], [Y])
    report = onnx_flow.audit(built)
    assert _figures(report) == (4, 64)
    assert [(b.taken, b.inputs) for b in report.branches] == [("then_branch", ())]


@pytest.mark.parametrize(
    ("n", "figures", "taken"), [(64, (4, 64), "then_branch"), (16, (16, 16), "else_branch")]
)
def test_a_condition_on_a_bound_shape_is_decided_by_it(
    n: int, figures: tuple[int, int], taken: str
) -> None:
    """If(Size(x) > 32): the bound dim decides it; the branch not taken would not even
    fit (a 64-row weight on 16 values)."""
    nodes = [
        helper.make_node("Size", ["x"], ["size"]),
        helper.make_node("Greater", ["size", "half"], ["large"]),
        _switch("large", _squeeze_branch(), _relu_branch()),
    ]
    half = numpy_helper.from_array(np.array(32, dtype=np.int64), "half")
    built = model(
        nodes,
        [("x", TensorProto.FLOAT, [1, "n"])],
        [("y", TensorProto.FLOAT, [1, None])],
        [half],
    )
    report = onnx_flow.audit(built, dims={"n": n})
    assert _figures(report) == figures
    assert report.branches[0].taken == taken
    assert report.branches[0].inputs == ("x",)


def test_an_if_inside_a_taken_branch_is_followed_too() -> None:
    inner = _switch("flag", _squeeze_branch(), _relu_branch())
    inner.output[:] = ["inner_y"]
    inner.name = "inner"
    outer_then = helper.make_graph(
        [inner],
        "outer_then",
        [],
        [helper.make_tensor_value_info("inner_y", TensorProto.FLOAT, [1, 64])],
    )
    report = onnx_flow.audit(_flagged(outer_then), input_values={"flag": True})
    assert _figures(report) == (4, 64)
    assert [(b.node, b.taken) for b in report.branches] == [
        ("switch", "then_branch"),
        ("inner", "then_branch"),
    ]


def test_a_branch_output_given_twice_writes_the_second_by_identity() -> None:
    twice = _squeeze_branch()
    twice.output.append(twice.output[0])
    otherwise = _relu_branch()
    otherwise.output.append(otherwise.output[0])
    switch = _switch("flag", twice, otherwise)
    switch.output.append("z")
    built = model([switch], [X, FLAG], [Y, ("z", TensorProto.FLOAT, [1, 64])])
    report = onnx_flow.audit(built, input_values={"flag": 1})
    assert [(o.name, o.max_flow, o.reference) for o in report.outputs] == [
        ("y", 4, 64),
        ("z", 4, 64),
    ]


def test_the_rank_measure_reads_the_weights_of_the_branch_taken() -> None:
    """down.w has rank 2: the flow through the taken branch is capped at 2."""
    report = onnx_flow.audit(
        _flagged(_squeeze_branch(rank=2)), measure="rank", input_values={"flag": True}
    )
    assert _figures(report) == (2, 64)


def test_the_onnxruntime_run_takes_the_same_branch() -> None:
    """NonZero's output length depends on values: only a run of the model with the
    branch taken can measure it, by the names of the branch's tensors."""
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    counted = helper.make_graph(
        [
            helper.make_node("Greater", ["x", "zero"], ["positive"]),
            helper.make_node("NonZero", ["positive"], ["where"]),
            helper.make_node("Cast", ["where"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["as_float"], ["then_y"], keepdims=1),
        ],
        "counted",
        [],
        [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, [None, None])],
        [zero],
    )
    summed = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["else_y"], keepdims=1)],
        "summed",
        [],
        [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, [None, None])],
    )
    built = model(
        [_switch("flag", counted, summed)], [X, FLAG], [("y", TensorProto.FLOAT, [None, None])]
    )
    report = onnx_flow.audit(built, input_values={"flag": True})
    assert report.unknown == ()
    assert any("onnxruntime run" in method for method, _ in report.shape_fallbacks)
    assert _figures(report) == (1, 1)


def test_a_branch_that_redefines_a_graph_name_is_refused(tmp_path: Path) -> None:
    clashing = _squeeze_branch()
    clashing.node[0].output[0] = "taken"
    clashing.node[1].input[0] = "taken"
    nodes = [helper.make_node("Relu", ["x"], ["taken"]), _switch("flag", clashing, _relu_branch())]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(*X), helper.make_tensor_value_info(*FLAG)],
        [helper.make_tensor_value_info(*Y)],
    )
    path = tmp_path / "clash.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    result = invoke("audit", path, "--input-value", "flag=true")
    assert result.returncode == 2
    assert "its then_branch defines 'taken', which the graph defines too" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nope=1", "the model has no data input named 'nope' (its data inputs: x, flag)"),
        ("flag=1,0", "'flag' has shape [1]: 1 values, not 2"),
        ("flag=maybe", "expected NAME=V1,V2,... with numbers, true or false"),
        ("flag=nan", "expected NAME=V1,V2,... with numbers, true or false"),
    ],
)
def test_a_value_that_does_not_fit_is_refused(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "flagged.onnx"
    onnx.save(_flagged(), path)
    result = invoke("audit", path, "--input-value", value)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert message in result.stderr


def test_a_value_for_an_input_of_open_shape_asks_for_its_shape() -> None:
    built = model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [("x", TensorProto.FLOAT, [1, "n"])],
        [("y", TensorProto.FLOAT, [1, "n"])],
    )
    with pytest.raises(onnx_flow.AuditError, match=r"'x' has shape \[1, n\]; give its shape"):
        onnx_flow.audit(built, input_values={"x": [1.0]})


def test_an_unknown_width_behind_an_undecided_if_says_which_value_to_give() -> None:
    """The branches write different widths, and onnxruntime cannot run the model (an op
    it does not know) to tell: without the flag, y has no known width."""
    wide = helper.make_graph(
        [helper.make_node("Concat", ["x", "x"], ["then_y"], axis=1)],
        "wide",
        [],
        [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, [1, 128])],
    )
    mystery = helper.make_graph(
        [helper.make_node("Mystery", ["x"], ["else_y"], domain="custom")],
        "mystery",
        [],
        [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, [1, None])],
    )
    built = model(
        [_switch("flag", wide, mystery)],
        [X, FLAG],
        [("y", TensorProto.FLOAT, [1, None])],
        domains=("custom",),
    )
    with pytest.raises(onnx_flow.AuditError, match="choose its branch with --input-value flag="):
        onnx_flow.audit(built)
    # The flow is the 64 values of x, copied twice.
    assert _figures(onnx_flow.audit(built, input_values={"flag": True})) == (64, 64)


def test_values_come_from_the_project_and_the_text_says_what_was_followed(
    tmp_path: Path,
) -> None:
    onnx.save(_flagged(), tmp_path / "flagged.onnx")
    whole = invoke("audit", "flagged.onnx", cwd=tmp_path)
    assert whole.returncode == 0
    words = " ".join(whole.stdout.split())  # the text wraps long lines
    assert "its condition reads flag; choose a branch with --input-value flag=..." in words
    (tmp_path / "pyproject.toml").write_text("[tool.onnx-flow]\ninput_values = { flag = true }\n")
    followed = invoke("audit", "flagged.onnx", cwd=tmp_path)
    assert followed.returncode == 1
    assert "If 'switch' follows its then_branch (decided by flag)" in followed.stdout
    overridden = invoke("audit", "flagged.onnx", "--input-value", "flag=false", cwd=tmp_path)
    assert overridden.returncode == 0


def _unary(op: str, source: str, name: str) -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node(op, [source], [name])],
        name,
        [],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, None])],
    )


def test_unnamed_ifs_are_run_with_the_branches_taken_in_order() -> None:
    """Two nameless Ifs: the first takes its then_branch, whose NonZero only the
    onnxruntime run measures; the second, on not(flag), its else_branch."""
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    counted = helper.make_graph(
        [
            helper.make_node("Greater", ["x", "zero"], ["positive"]),
            helper.make_node("NonZero", ["positive"], ["where"]),
            helper.make_node("Cast", ["where"], ["counted"], to=TensorProto.FLOAT),
        ],
        "counted",
        [],
        [helper.make_tensor_value_info("counted", TensorProto.FLOAT, [None, None])],
        [zero],
    )
    nodes = [
        helper.make_node(
            "If", ["flag"], ["h"], then_branch=counted, else_branch=_unary("Relu", "x", "relu")
        ),
        helper.make_node("Not", ["flag"], ["unflagged"]),
        helper.make_node(
            "If",
            ["unflagged"],
            ["y"],
            then_branch=_unary("Relu", "h", "relu_h"),
            else_branch=_unary("Neg", "h", "neg_h"),
        ),
    ]
    built = model(nodes, [X, FLAG], [("y", TensorProto.FLOAT, [None, None])])
    report = onnx_flow.audit(built, input_values={"flag": True})
    assert [b.taken for b in report.branches] == ["then_branch", "else_branch"]
    assert report.unknown == ()

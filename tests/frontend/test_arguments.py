"""A model that needs arguments is refused once, with all it needs and the command line
to run: real files of paddle2onnx, spox and optimum, as their users hold them."""

from __future__ import annotations

import shlex

import pytest
from onnx import TensorProto, helper

import onnx_flow
from onnx_flow.frontend import symbols
from tests.onnx_builders import model
from tests.runner import invoke

WHEELS = "tests/corpus/wheels"
MERGED = "tests/corpus/exporters/optimum_gpt2_decoder_merged.onnx"


def _asked(model_path: str, *flags: str) -> str:
    """The one line of a refusal for arguments."""
    refused = invoke("audit", model_path, *flags)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    return refused.stderr


def _command(line: str) -> list[str]:
    """The words of the command line a refusal suggests (after ``run: ``)."""
    command = line.partition("; run: ")[2].partition(" (")[0]
    return shlex.split(command)


def _replaced(words: list[str], values: dict[str, str]) -> list[str]:
    """The command with each flag's value that names a key of ``values`` replaced."""
    return [values.get(word.partition("=")[0], word) for word in words]


def test_silero_vad_is_asked_for_both_shapes_and_the_sample_rate_at_once() -> None:
    line = _asked(f"{WHEELS}/silero_vad.onnx")
    assert "needs 3 arguments" in line
    words = _command(line)
    assert words == [
        *("onnx-flow", "audit", f"{WHEELS}/silero_vad.onnx"),
        *("--input-shape", "input=1,N", "--input-shape", "state=2,N,128"),
        *("--input-value", "sr=V"),
    ]
    assert "input_shapes={'input': (1, N), 'state': (2, N, 128)}" in line
    assert "input_values={'sr': V} in Python" in line
    # The placeholders replaced by what silero-vad feeds: 512 samples at 16 kHz.
    given = _replaced(words, {"input": "input=1,512", "state": "state=2,1,128", "sr": "sr=16000"})
    done = invoke(*given[1:])
    assert done.returncode in (0, 1), done.stderr
    assert "If 'If_0' follows its then_branch (decided by sr)" in done.stdout


def test_the_arguments_given_stay_in_the_command_line() -> None:
    line = _asked(f"{WHEELS}/silero_vad.onnx", "--input-shape", "input=1,512")
    assert "needs 2 arguments" in line and "the shape of input 'input'" not in line
    assert _command(line)[3:] == [
        *("--input-shape", "input=1,512", "--input-shape", "state=2,N,128"),
        *("--input-value", "sr=V"),
    ]


@pytest.mark.parametrize(
    ("name", "declared"),
    [
        ("ch_PP-OCRv4_det_infer.onnx", "[1, 3, p2o.DynamicDimension.1, p2o.DynamicDimension.2]"),
        ("ch_PP-OCRv4_rec_infer.onnx", "[1, 3, ?, p2o.DynamicDimension.1]"),
    ],
)
def test_paddle_s_made_up_dims_are_asked_as_the_image_shape(name: str, declared: str) -> None:
    line = _asked(f"{WHEELS}/{name}")
    assert f"needs 1 argument: the shape of input 'x' {declared};" in line
    assert _command(line)[3:] == ["--input-shape", "x=1,3,H,W"]
    assert "--dim" not in line


def test_a_merged_decoder_is_asked_for_its_dims_and_its_branch_at_once() -> None:
    line = _asked(MERGED)
    assert "needs 4 arguments" in line
    words = _command(line)
    assert words[3:] == [
        *("--dim", "attention_mask_sequence_length=N", "--dim", "past_sequence_length=N"),
        *("--dim", "sequence_length=N", "--input-value", "use_cache_branch=V"),
    ]
    # One step with a cache of 8 tokens, as the corpus manifest feeds it.
    given = _replaced(
        words,
        {
            "attention_mask_sequence_length": "attention_mask_sequence_length=9",
            "past_sequence_length": "past_sequence_length=8",
            "sequence_length": "sequence_length=1",
            "use_cache_branch": "use_cache_branch=true",
        },
    )
    done = invoke(*given[1:], "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    assert '"branch": "then_branch"' in done.stdout


def test_a_python_caller_is_told_its_own_spelling() -> None:
    built = model(
        [helper.make_node("Add", ["x", "y"], ["z"])],
        [
            ("x", TensorProto.FLOAT, [1, "sequence", "width"]),
            ("y", TensorProto.FLOAT, [1, "?", "width"]),
        ],
        [("z", TensorProto.FLOAT, [1, "sequence", "width"])],
    )
    with pytest.raises(onnx_flow.AuditError) as raised:
        onnx_flow.audit(built, dims={"width": 8})
    assert str(raised.value) == (
        "<model>: needs 2 arguments: the shape of input 'y' [1, ?, 8], the size of dim"
        " 'sequence'; give --dim width=8 --dim sequence=N --input-shape y=1,N,8"
        " (dims={'width': 8, 'sequence': N}, input_shapes={'y': (1, N, 8)} in Python)"
    )


@pytest.mark.parametrize(
    ("dim", "shape", "usable"),
    [
        ("sequence_length", ("sequence_length",), True),
        ("past_sequence_length + 1", ("past_sequence_length + 1",), True),
        ("?", ("?",), False),
        ("p2o.DynamicDimension.1", ("p2o.DynamicDimension.1",), False),
        ("DynamicDimension.0", ("DynamicDimension.0",), False),
        ("unk__12", ("unk__12",), False),
        ("x_dynamic_axes_1", ("x_dynamic_axes_1",), False),
        ("h-w", ("h-w", "h-w"), False),  # one text for two axes would make them alike
        (None, (None,), False),
    ],
)
def test_a_dim_name_is_usable_unless_an_exporter_made_it_up(
    dim: str | None, shape: tuple[str | None, ...], usable: bool
) -> None:
    assert symbols.usable(dim, shape) is usable

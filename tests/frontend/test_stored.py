"""Weights are read from the file that was checked: each external-data file is opened
once, and onnxruntime is handed the values rather than the path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onnx_flow.frontend.stored import Stored
from tests.onnx_builders import external_squeeze_mlp


def test_a_file_swapped_after_it_was_read_is_never_opened(tmp_path: Path) -> None:
    _, path = external_squeeze_mlp(tmp_path)
    weights = tmp_path / "weights.bin"
    stored = Stored(path)
    down = stored.weight("down.w")
    assert down is not None and down.shape == (64, 4)
    # Swapped for a file of other values: what was opened and checked is still read.
    weights.rename(tmp_path / "checked.bin")
    weights.write_bytes(np.full(64 * 4 + 4 * 64, 7.0, np.float32).tobytes())
    up = stored.weight("up.w")
    assert up is not None and not (up == 7.0).any()
    runner = stored.runner(["down"])
    (value,) = runner.run({"x": np.ones((1, 64), np.float32)}).values()
    assert value.shape == (1, 4) and not (value == 7.0 * 64).any()

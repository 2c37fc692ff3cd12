"""Run a model in onnxruntime and read the values of any of its tensors.

The model as stored (inline weights kept, external data in its checked folder) is
given extra graph outputs, one per tensor wanted, and loaded without graph
optimizations, so that every tensor is computed as the graph says. onnxruntime's logs
and prints are kept out of the user's output.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

__all__ = ["Runner", "quiet"]


class Runner:
    """A session that computes ``names`` (those onnxruntime can give) for given feeds."""

    def __init__(
        self,
        model: onnx.ModelProto,
        folder: Path | None,
        names: Collection[str],
        weights: Mapping[str, np.ndarray],
    ):
        """Load the session. ``names`` become graph outputs for as long as it takes to
        serialize ``model``, which is then left as it was (one read serves many runners).
        ``weights`` are the values of its external initializers, already read: the
        session takes them as they are and opens none of their files (what a subgraph
        stores outside is read by onnxruntime from ``folder``).

        Raises:
            Exception: whatever onnxruntime raises for a model it cannot load.
        """
        import onnxruntime as ort

        outputs = model.graph.output
        kept = len(outputs)
        present = {o.name for o in outputs}
        outputs.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
        try:
            serialized = model.SerializeToString()
        finally:
            del outputs[kept:]
        options = ort.SessionOptions()
        options.log_severity_level = 4  # fatal only
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if folder is not None:
            options.add_session_config_entry(
                "session.model_external_initializers_file_folder_path", str(folder)
            )
        # The arrays must outlive the session, which reads them in place.
        self._weights = [ort.OrtValue.ortvalue_from_numpy(np.asarray(w)) for w in weights.values()]
        if weights:
            options.add_external_initializers(list(weights), self._weights)
        with quiet("onnxruntime"):  # it prints provider errors on stdout
            self._session = ort.InferenceSession(
                serialized, options, providers=["CPUExecutionProvider"]
            )
        wanted = set(names)
        self.names = [o.name for o in self._session.get_outputs() if o.name in wanted]
        """The tensors it computes, in the session's order."""

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Each computed tensor's value for one set of inputs."""
        with quiet("onnxruntime"):
            values = self._session.run(self.names, dict(feeds))
        return dict(zip(self.names, values, strict=True))


@contextlib.contextmanager
def quiet(logger: str) -> Iterator[None]:
    """Silence a library's logger and prints while it runs."""
    log = logging.getLogger(logger)
    disabled, log.disabled = log.disabled, True
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        log.disabled = disabled

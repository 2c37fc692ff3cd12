"""Every model of the onnx package's backend test data: a report or a clear refusal.

About two thousand models (node cases, simple, pytorch-converted, light model zoo) are
audited in worker processes with a per-model watchdog. None may raise anything but an
:class:`onnx_flow.AuditError`, crash or hang. The counts are printed at the end of the
test session so that runs can be compared.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests import sweep

#: The name under which the test records the counts, for the session's summary.
COUNTS = "backend sweep"


@pytest.mark.slow  # some two thousand models
def test_every_backend_model_is_reported_or_refused(
    record_property: Callable[[str, object], None],
) -> None:
    summary = sweep.sweep()
    record_property(COUNTS, summary.line())  # reaches the summary from any test process
    failures = [r for r in summary.results if r.outcome in ("internal", "crashed")]
    assert not failures, "\n".join(f"{r.outcome}: {r.model}: {r.message}" for r in failures)
    refused = [r for r in summary.results if r.outcome == "refused"]
    assert all(r.message and "\n" not in r.message for r in refused)
    # The sweep must have found the package's models: about 1,900 node cases and files.
    assert len(summary.results) > 1500

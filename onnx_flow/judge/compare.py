"""Compare two audits of a model: what changed between an old and a new version.

Outputs are matched by name; findings by kind and layer; layers, bypassed or on a cut,
by name; spectra by module, node and tensor. A layer's name is its module, else its
node; graph inputs (neither) are no layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from onnx_flow.report import (
    Bypassed,
    Change,
    Comparison,
    CutTensor,
    Finding,
    FindingKind,
    LayerSpectrum,
    OutputResult,
    Report,
    SpectrumFall,
)

__all__ = ["compare"]


def compare(old: Report, new: Report) -> Comparison:
    """What the new version changes: outputs, findings, cuts, skips and spectra.

    The new version loses a skip where it newly finds an attention without one, or where
    a layer the old version bypassed is no longer bypassed and lies on a cut of one of
    the new version's bottlenecks: the flow now goes through it. A layer that left the
    bypassed set and limits nothing (widened, renamed, removed) is only listed.
    """
    old_findings, new_findings = _per_layer(old.findings), _per_layer(new.findings)
    added = _findings_missing(new_findings, old_findings)
    no_longer_bypassed = _names_missing(
        (b.layer for b in old.bypassed_layers()), (b.layer for b in new.bypassed_layers())
    )
    on_new_cuts = _cut_layers(o for o in new.outputs if o.bottleneck)
    attentions = _layers(f for f in added if f.kind is FindingKind.ATTENTION_WITHOUT_SKIP)
    limiting = [layer for layer in no_longer_bypassed if layer in on_new_cuts]
    return Comparison(
        old,
        new,
        _changes(old, new),
        findings_added=added,
        findings_removed=_findings_missing(old_findings, new_findings),
        newly_on_cut=_names_missing(on_new_cuts, _cut_layers(old.outputs)),
        no_longer_bypassed=no_longer_bypassed,
        skips_lost=tuple(dict.fromkeys((*attentions, *limiting))),
        spectra_fell=_spectra_fell(old.spectra, new.spectra),
    )


def _per_layer(findings: Iterable[Finding]) -> list[Finding]:
    """Each finding once per layer it stands for: layers appear and go one by one."""
    expanded: list[Finding] = []
    for f in findings:
        expanded += [
            dataclasses.replace(f, node=at.node, module=at.module, tensor=at.tensor, layers=())
            for at in f.layers
        ] or [f]
    return expanded


def _changes(old: Report, new: Report) -> tuple[Change, ...]:
    """Match the two reports' outputs by name (declared outputs included)."""
    before = {o.name: o for o in old.outputs}
    after = {o.name: o for o in new.outputs}
    changes = [Change(name, before.get(name), output) for name, output in after.items()]
    changes += [Change(name, output, None) for name, output in before.items() if name not in after]
    return tuple(changes)


def _layer(record: Finding | CutTensor | Bypassed) -> str | None:
    """The layer's name: its module, else its node; ``None`` for a graph input."""
    return record.module or record.node


def _layers(records: Iterable[Finding | CutTensor | Bypassed]) -> list[str]:
    """The records' layers, in their order; graph inputs left out."""
    return [layer for record in records if (layer := _layer(record)) is not None]


def _findings_missing(
    findings: Iterable[Finding], others: Iterable[Finding]
) -> tuple[Finding, ...]:
    """The ``findings`` of a kind and layer that no finding of ``others`` has."""
    known = {(f.kind, _layer(f)) for f in others}
    return tuple(f for f in findings if (f.kind, _layer(f)) not in known)


def _names_missing(names: Iterable[str], others: Iterable[str]) -> tuple[str, ...]:
    """``names`` not among ``others``, each once, in their order."""
    known = set(others)
    return tuple(name for name in dict.fromkeys(names) if name not in known)


def _cut_layers(outputs: Iterable[OutputResult]) -> list[str]:
    """The layers on the outputs' extreme cuts and on every minimum cut between."""
    return _layers(t for o in outputs for t in (*o.cut_near_inputs, *o.cut_near_outputs, *o.on_cut))


def _spectra_fell(
    old: Iterable[LayerSpectrum], new: Iterable[LayerSpectrum]
) -> tuple[SpectrumFall, ...]:
    """Spectra of the new version whose rank or energy rank is below the old's."""
    before = {_spectrum_key(s): s for s in old}
    return tuple(
        SpectrumFall(was, now)
        for now in new
        if (was := before.get(_spectrum_key(now))) is not None
        and (now.rank < was.rank or now.energy_rank < was.energy_rank)
    )


def _spectrum_key(spectrum: LayerSpectrum) -> tuple[str | None, str | None, str]:
    return spectrum.module, spectrum.node, spectrum.tensor

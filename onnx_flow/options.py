"""The audit's options, checked before any model is read."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, unique
from typing import TypeVar

from onnx_flow.errors import AuditError
from onnx_flow.report import FindingKind

__all__ = [
    "Limits",
    "Measure",
    "Options",
    "parse_dims",
    "parse_input_shapes",
    "parse_input_values",
    "parse_limits",
]


@unique
class Measure(str, Enum):
    """What a width counts."""

    ELEMENTS = "elements"
    BITS = "bits"
    """Elements x the bits of the element type."""
    RANK = "rank"
    """Elements, each linear map's output capped at its weight's rank
    (:mod:`onnx_flow.measure.rank`)."""
    DATA = "data"
    """Elements, each tensor capped at the rank of its activations over real samples
    (:mod:`onnx_flow.measure.data`)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Budgets that bound what a model can make the audit do, whatever the file says
    (``--limit NAME=N``; a model past one is refused, naming it)."""

    nodes: int = 2_000_000
    """Nodes the graph may have once its local functions are inlined (counted before
    inlining: functions that call each other twice per level grow as 2**depth)."""
    sample_bytes: int = 2**31
    """Bytes the arrays of a ``--inputs`` archive may inflate to (checked before any
    is read)."""
    run_seconds: int = 120
    """Seconds the onnxruntime run that resolves shapes inference left open may take."""
    run_memory: int = 2**34
    """Bytes of address space that run may use (it loads the weights)."""
    model_seconds: int = 600
    """Seconds one model's audit may take, when several are audited (each in a process
    of its own: :mod:`onnx_flow.cli.sandbox`)."""
    model_memory: int = 2**34
    """Bytes of address space one model's audit may use, when several are audited."""

    #: The names ``--limit`` takes, as they are spelled there.
    NAMES = ("nodes", "sample-bytes", "run-seconds", "run-memory", "model-seconds", "model-memory")

    def with_given(self, given: Mapping[str, int]) -> Limits:
        """These limits with some replaced, by their ``--limit`` names.

        Raises:
            AuditError: an unknown name, or a value that is not a positive integer.
        """
        values = {}
        for name, value in given.items():
            if name not in self.NAMES:
                raise AuditError(f"--limit {name}: unknown (known: {', '.join(self.NAMES)})")
            if not _positive(value):
                raise AuditError(
                    f"--limit {name}={value}: the limit must be a positive integer below 2**63"
                )
            values[name.replace("-", "_")] = value
        return dataclasses.replace(self, **values)


_DIM = re.compile(r"^([^=\s]+)=(\d+)$")
_SHAPE = re.compile(r"^(.+)=(\d+(?:,\d+)*)$")
_VALUES = re.compile(r"^(.+?)=([^=]+)$")
_BOOLEANS = {"true": 1, "false": 0}


@dataclass(frozen=True, slots=True)
class Options:
    """How to audit a model."""

    dims: Mapping[str, int]
    """Sizes of named symbolic dims."""
    batch_dim: str | None
    """The dim bound to 1; ``None``: the symbolic axis 0 of the data inputs."""
    measure: Measure
    threshold: float
    """A ratio below this is a bottleneck."""
    allow: tuple[str, ...] = ()
    """Declared bottlenecks: tensor names, node names or module paths."""
    inputs: str | None = None
    """Samples for the ``data`` measure: an ``.npz`` file, one array per graph input."""
    fail_on: tuple[FindingKind, ...] = ()
    """Finding kinds that make the exit code 1 (``all`` expanded to the kinds not
    ignored)."""
    ignore: tuple[FindingKind, ...] = ()
    """Finding kinds left out of the report (``all`` expanded); none is in ``fail_on``."""
    picture: bool = False
    """Attach the profile and data flow to the report (HTML, plot, DOT draw them)."""
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Whole shapes of data inputs, by input name: for dims with no usable name."""
    input_values: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """Values of small data inputs, by input name: they decide ``If`` conditions."""
    energy: float | None = None
    """For ``rank`` and ``data``: cap at the energy rank holding this fraction."""
    limits: Limits = field(default_factory=Limits)
    """Budgets on the work a model can ask for."""
    dims_where_declared: bool = False
    """Several models: each of ``dims`` binds the models that declare it (the caller
    checks that one does); else a model without it is an error."""
    uncentred: bool = False
    """``data``: the rank of the activations themselves, not of their differences from
    their mean."""
    whole_model: bool = False
    """Judge the whole model, the logits its reference; else each head (a fixed linear
    map to logits that ends the model) is judged apart from its trunk."""

    @classmethod
    def checked(
        cls,
        *,
        dims: Mapping[str, int] | None = None,
        batch_dim: str | None = None,
        measure: str | Measure = Measure.ELEMENTS,
        threshold: float = 1.0,
        allow: Iterable[str] = (),
        inputs: str | None = None,
        fail_on: Iterable[str] = (),
        ignore: Iterable[str] = (),
        input_shapes: Mapping[str, Iterable[int]] | None = None,
        input_values: Mapping[str, Iterable[float] | float] | None = None,
        energy: float | None = None,
        limits: Mapping[str, int] | None = None,
        whole_model: bool = False,
        uncentred: bool = False,
    ) -> Options:
        """Return the options, or raise :class:`AuditError` naming the bad one."""
        for name, size in (dims or {}).items():
            if not _positive(size):
                raise AuditError(
                    f"--dim {name}={size}: the size must be a positive integer below 2**63"
                )
        shapes: dict[str, tuple[int, ...]] = {}
        for name, given in sorted((input_shapes or {}).items()):
            shape = tuple(given) if isinstance(given, (list, tuple)) else ()
            if not shape or not all(map(_positive, shape)):
                raise AuditError(
                    f"--input-shape {name}={given}: the dims must be positive integers below 2**63"
                )
            shapes[name] = shape
        values: dict[str, tuple[float, ...]] = {}
        for name, value in sorted((input_values or {}).items()):
            numbers = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            if not numbers or not all(map(_finite, numbers)):
                raise AuditError(f"--input-value {name}={value}: the values must be numbers")
            values[name] = numbers
        try:
            chosen = Measure(measure)
        except ValueError:
            known = ", ".join(m.value for m in Measure)
            raise AuditError(f"--measure {measure}: unknown measure (known: {known})") from None
        if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)) or not (
            0 < threshold <= 1
        ):
            raise AuditError(f"--threshold {threshold}: must be a ratio in (0, 1]")
        failing, fail_on_all = _kinds(fail_on, "--fail-on")
        ignored, ignore_all = _kinds(ignore, "--ignore")
        if ignore_all:
            ignored = list(FindingKind)
        for kind in failing:  # named in both: which one is meant?
            if kind in ignored:
                said = "all" if ignore_all else kind.value
                raise AuditError(
                    f"--fail-on {kind.value} --ignore {said}: a kind cannot both count for"
                    " the exit code and be ignored"
                )
        if fail_on_all:  # every kind that is not ignored
            if ignore_all:
                raise AuditError("--fail-on all --ignore all: every kind is ignored")
            failing = [kind for kind in FindingKind if kind not in ignored]
        if (chosen is Measure.DATA) != (inputs is not None):
            raise AuditError("--measure data and --inputs samples.npz go together")
        if uncentred and chosen is not Measure.DATA:
            raise AuditError("--uncentred is about activations: it needs --measure data")
        if energy is not None:
            if isinstance(energy, bool) or not _finite(energy) or not 0 < energy <= 1:
                raise AuditError(f"--energy {energy}: must be a fraction in (0, 1]")
            if chosen not in (Measure.RANK, Measure.DATA):
                raise AuditError("--energy caps ranks: it needs --measure rank or data")
        return cls(
            dims=dict(sorted((dims or {}).items())),
            batch_dim=batch_dim,
            measure=chosen,
            threshold=float(threshold),
            allow=tuple(dict.fromkeys(allow)),
            inputs=inputs,
            fail_on=tuple(dict.fromkeys(failing)),
            ignore=tuple(dict.fromkeys(ignored)),
            input_shapes=shapes,
            input_values=values,
            energy=None if energy is None else float(energy),
            limits=Limits().with_given(limits or {}),
            whole_model=bool(whole_model),
            uncentred=bool(uncentred),
        )


def _kinds(given: Iterable[str], flag: str) -> tuple[list[FindingKind], bool]:
    """The finding kinds named by ``flag``'s values, and whether ``all`` is one of them.

    Raises:
        AuditError: an unknown kind.
    """
    kinds: list[FindingKind] = []
    every = False
    for kind in given:
        if kind == "all":
            every = True
            continue
        try:
            kinds.append(FindingKind(kind))
        except ValueError:
            known = ", ".join(k.value for k in FindingKind)
            raise AuditError(f"{flag} {kind}: unknown (known: {known}, all)") from None
    return kinds, every


def _finite(value: object) -> bool:
    """Whether ``value`` is a finite int, float or bool."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def _positive(size: object) -> bool:
    """Whether ``size`` is a positive int that fits ONNX's int64 dims (a bool is not)."""
    return isinstance(size, int) and not isinstance(size, bool) and 1 <= size < 2**63


def parse_dims(texts: Iterable[str]) -> dict[str, int]:
    """Parse ``NAME=N`` strings from the command line.

    Raises:
        AuditError: a text is not ``NAME=N`` with N a positive integer, or names a dim twice.
    """
    dims: dict[str, int] = {}
    for text in texts:
        match = _DIM.match(text)
        if match is None or int(match.group(2)) < 1:
            raise AuditError(f"--dim {text}: expected NAME=N with N a positive integer")
        name = match.group(1)
        if name in dims:
            raise AuditError(f"--dim {text}: dim {name!r} is given twice")
        dims[name] = int(match.group(2))
    return dims


def parse_limits(texts: Iterable[str]) -> dict[str, int]:
    """``["nodes=500000"]`` -> ``{"nodes": 500000}``; checked by :class:`Limits`.

    Raises:
        AuditError: an item is not NAME=N.
    """
    limits = {}
    for text in texts:
        match = _DIM.match(text)
        if not match:
            raise AuditError(f"--limit {text}: expected NAME=N, e.g. nodes=500000")
        limits[match.group(1)] = int(match.group(2))
    return limits


def parse_input_shapes(texts: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME=D1,D2,...`` strings from the command line (``--input-shape``).

    Raises:
        AuditError: a text is not ``NAME=D1,D2,...`` with positive integers, or names an
            input twice.
    """

    def shape(items: list[str]) -> tuple[int, ...] | None:
        sizes = tuple(int(d) for d in items)
        return sizes if all(d >= 1 for d in sizes) else None

    return _per_input(
        texts,
        "--input-shape",
        _SHAPE,
        shape,
        "expected NAME=D1,D2,... with positive integers (e.g. x=1,3,640,640)",
    )


def parse_input_values(texts: Iterable[str]) -> dict[str, tuple[float, ...]]:
    """Parse ``NAME=V1,V2,...`` strings from the command line (``--input-value``); a
    value is a number, ``true`` or ``false``.

    Raises:
        AuditError: a text is not ``NAME=V1,...`` with numbers, or names an input twice.
    """

    def values(items: list[str]) -> tuple[float, ...] | None:
        numbers = [_number(v) for v in items]
        finite = [n for n in numbers if n is not None and math.isfinite(n)]
        return tuple(finite) if len(finite) == len(numbers) else None

    return _per_input(
        texts,
        "--input-value",
        _VALUES,
        values,
        "expected NAME=V1,V2,... with numbers, true or false (e.g. use_cache_branch=false)",
    )


_Parsed = TypeVar("_Parsed")


def _per_input(
    texts: Iterable[str],
    flag: str,
    pattern: re.Pattern[str],
    parse: Callable[[list[str]], _Parsed | None],
    expected: str,
) -> dict[str, _Parsed]:
    """``NAME=A,B,...`` texts of option ``flag``, each parsed once per input name.

    Raises:
        AuditError: a text does not match or ``parse`` refuses it (saying ``expected``),
            or an input is named twice.
    """
    parsed: dict[str, _Parsed] = {}
    for text in texts:
        match = pattern.match(text)
        value = parse(match.group(2).split(",")) if match else None
        if match is None or value is None:
            raise AuditError(f"{flag} {text}: {expected}")
        name = match.group(1)
        if name in parsed:
            raise AuditError(f"{flag} {text}: input {name!r} is given twice")
        parsed[name] = value
    return parsed


def _number(text: str) -> float | None:
    """``3`` -> 3, ``0.5`` -> 0.5, ``true`` -> 1; ``None`` for anything else."""
    text = text.strip().lower()
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None

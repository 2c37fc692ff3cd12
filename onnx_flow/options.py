"""The audit's options, checked before any model is read."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from onnx_flow.errors import AuditError
from onnx_flow.report import FindingKind, Measure

__all__ = [
    "SETTINGS",
    "Form",
    "Limits",
    "Measure",
    "Options",
    "Setting",
    "describe",
    "parse_dims",
    "parse_input_shapes",
    "parse_input_values",
    "parse_limits",
]


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

    def named(self) -> tuple[tuple[str, int], ...]:
        """Each budget by its ``--limit`` name, with its value."""
        return tuple((name, getattr(self, name.replace("-", "_"))) for name in self.NAMES)

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


class Form(Enum):
    """How a setting is given: on the command line, and in ``[tool.onnx-flow]``."""

    SWITCH = "switch"
    """``--whole-model``; ``true`` or ``false``."""
    VALUE = "value"
    """``--threshold 0.5``; a string or a number."""
    LIST = "list"
    """``--allow enc.2``, repeatable; a list of strings."""
    TABLE = "table"
    """``--dim NAME=N``, repeatable; a table by name."""


#: The commands that read ``.onnx`` files, and the one that exports a module first.
AUDIT, DIFF, AUDIT_MODULE = "audit", "diff", "audit-module"


@dataclass(frozen=True, slots=True)
class Setting:
    """One option of the audit, as every surface spells it: the Python keyword and the
    ``[tool.onnx-flow]`` key (:attr:`name`), the flag, its help. Declared once, on its
    :class:`Options` field; the command line, the project file, the Python API's
    docstring and the report's echo are derived from it."""

    name: str
    flag: str
    form: Form
    help: str
    metavar: str | None = None
    parse: Callable[[Any], Any] | None = None
    """Command line: the flag's text to a value (``VALUE``), or its texts to a table
    (``TABLE``)."""
    choices: tuple[str, ...] | None = None
    item: type | None = None
    """``[tool.onnx-flow]``: the type of a ``TABLE``'s values (``None``: checked with
    the other options)."""
    in_project: bool = True
    """Whether ``[tool.onnx-flow]`` may set it."""
    names_parts: bool = False
    """Its entries name dims, inputs or layers, which a model may lack (left out for
    it, and listed in its report's ``unused``)."""
    commands: tuple[str, ...] = (AUDIT, DIFF, AUDIT_MODULE)

    def spelled(self, value: Any) -> list[str]:
        """``value`` as the command line gives it: ``["--dim sequence=128"]``."""
        if self.form is Form.SWITCH:
            return [self.flag] if value else []
        if self.form is Form.LIST:
            return [f"{self.flag} {_text(item)}" for item in value]
        if self.form is Form.TABLE:
            return [f"{self.flag} {name}={_text(v)}" for name, v in value.items()]
        return [f"{self.flag} {_text(value)}"]


def _text(value: Any) -> str:
    """A value as typed on the command line: ``1,3,48,320``, ``0.5``, ``rank``."""
    if isinstance(value, (tuple, list)):
        return ",".join(map(_text, value))
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _setting(default: Any = None, **declared: Any) -> Any:
    """A field of :class:`Options` that is a user's setting (declared by ``declared``,
    the arguments of :class:`Setting` but its name)."""
    metadata = {"setting": declared}
    if isinstance(default, (dict, Limits)):
        return field(default_factory=lambda: copy.copy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Options:
    """How to audit a model: the user's settings (each declared here, once), then what
    the caller adds."""

    dims: Mapping[str, int] = _setting(
        {},
        flag="--dim",
        form=Form.TABLE,
        metavar="NAME=N",
        parse=lambda texts: parse_dims(texts),
        item=int,
        names_parts=True,
        help="bind a symbolic dim (repeatable), e.g. --dim sequence=128",
    )
    batch_dim: str | None = _setting(
        flag="--batch-dim",
        form=Form.VALUE,
        metavar="NAME",
        help="the symbolic dim bound to 1 (default: axis 0 of the data inputs)",
    )
    input_shapes: Mapping[str, tuple[int, ...]] = _setting(
        {},
        flag="--input-shape",
        form=Form.TABLE,
        metavar="NAME=D1,D2,...",
        parse=lambda texts: parse_input_shapes(texts),
        item=list,
        names_parts=True,
        commands=(AUDIT, DIFF),  # audit-module's --input-shape shapes the inputs it feeds
        help="the whole shape of data input NAME, for dims with no usable name"
        " (repeatable), e.g. --input-shape x=1,3,640,640",
    )
    input_values: Mapping[str, tuple[float, ...]] = _setting(
        {},
        flag="--input-value",
        form=Form.TABLE,
        metavar="NAME=V,...",
        parse=lambda texts: parse_input_values(texts),
        names_parts=True,
        commands=(AUDIT, DIFF),
        help="the value of a small data input, so that an If it decides is audited as the"
        " branch it takes (repeatable), e.g. --input-value use_cache_branch=false",
    )
    measure: Measure = _setting(
        Measure.ELEMENTS,
        flag="--measure",
        form=Form.VALUE,
        choices=tuple(m.value for m in Measure),
        help="elements (default), bits (elements x dtype bits), rank (linear maps capped"
        " at their weight's numerical rank; reads the weights) or data (tensors capped at"
        " the rank of their activations over --inputs; runs the model)",
    )
    energy: float | None = _setting(
        flag="--energy",
        form=Form.VALUE,
        metavar="E",
        parse=float,
        help="with --measure rank or data: cap at the energy rank, the fewest singular"
        " values holding a fraction E (0 < E <= 1) of the sum of their squares, where it"
        " is clearly below a random matrix's (default: the numerical rank)",
    )
    inputs: str | None = _setting(
        flag="--inputs",
        form=Form.VALUE,
        metavar="SAMPLES.npz",
        in_project=False,
        help="samples for --measure data: one array per graph input, first axis = sample",
    )
    uncentred: bool = _setting(
        False,
        flag="--uncentred",
        form=Form.SWITCH,
        help="with --measure data: the rank of the activations themselves (by default"
        " of their differences from their mean, which tells nothing about the sample)",
    )
    threshold: float = _setting(
        1.0,
        flag="--threshold",
        form=Form.VALUE,
        metavar="RATIO",
        parse=float,
        help="a max-flow / reference ratio below this is a bottleneck (default 1.0)",
    )
    allow: tuple[str, ...] = _setting(
        (),
        flag="--allow",
        form=Form.LIST,
        metavar="LAYER",
        names_parts=True,
        help="a layer that is narrow on purpose (module path such as enc.2, node or tensor"
        " name; repeatable): the model is split there and that squeeze passes",
    )
    whole_model: bool = _setting(
        False,
        flag="--whole-model",
        form=Form.SWITCH,
        help="judge the whole model, its logits the reference (by default a model that"
        " ends in a fixed linear map to logits, d -> V, is judged up to the map's input,"
        " and the map is the softmax_bottleneck finding)",
    )
    fail_on: tuple[FindingKind, ...] = _setting(
        (),
        flag="--fail-on",
        form=Form.LIST,
        metavar="KIND",
        help="make findings of KIND count for exit code 1 ("
        + ", ".join(k.value for k in FindingKind)
        + ", or all; repeatable)",
    )
    ignore: tuple[FindingKind, ...] = _setting(
        (),
        flag="--ignore",
        form=Form.LIST,
        metavar="KIND",
        help="leave findings of KIND out of the report and the exit code (the kinds of"
        " --fail-on, or all; repeatable)",
    )
    limits: Limits = _setting(
        Limits(),
        flag="--limit",
        form=Form.TABLE,
        metavar="NAME=N",
        parse=lambda texts: parse_limits(texts),
        item=int,
        help="a budget on what a model can make the audit do (repeatable): "
        + ", ".join(f"{name} (default {value:,})" for name, value in Limits().named())
        + "; see docs/security.md#budgets",
    )
    picture: bool = False
    """Attach the profile and data flow to the report (HTML, plot, DOT draw them)."""
    lenient: bool = False
    """A dim, input shape, input value or allowed layer the model lacks is left out
    and listed in the report's ``unused``; else it is an error. For runs of several
    models and project defaults: the caller checks that each one given on the command
    line serves some model."""

    @classmethod
    def checked(cls, **given: Any) -> Options:
        """The options from settings by their names (see :data:`SETTINGS`; ``None`` for
        the default), or raise :class:`AuditError` naming the bad one."""
        unknown = sorted(set(given) - {s.name for s in SETTINGS})
        if unknown:
            raise TypeError(f"unknown option {unknown[0]!r}")
        given = {name: value for name, value in given.items() if value is not None}
        dims = given.get("dims", {})
        for name, size in dims.items():
            if not _positive(size):
                raise AuditError(
                    f"--dim {name}={size}: the size must be a positive integer below 2**63"
                )
        shapes: dict[str, tuple[int, ...]] = {}
        for name, shape_given in sorted(given.get("input_shapes", {}).items()):
            shape = tuple(shape_given) if isinstance(shape_given, (list, tuple)) else ()
            if not shape or not all(map(_positive, shape)):
                raise AuditError(
                    f"--input-shape {name}={shape_given}: the dims must be positive integers"
                    " below 2**63"
                )
            shapes[name] = shape
        values: dict[str, tuple[float, ...]] = {}
        for name, value in sorted(given.get("input_values", {}).items()):
            numbers = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            if not numbers or not all(map(_finite, numbers)):
                raise AuditError(f"--input-value {name}={value}: the values must be numbers")
            values[name] = numbers
        measure = given.get("measure", Measure.ELEMENTS)
        try:
            chosen = Measure(measure)
        except ValueError:
            known = ", ".join(m.value for m in Measure)
            raise AuditError(f"--measure {measure}: unknown measure (known: {known})") from None
        threshold = given.get("threshold", 1.0)
        if not _finite(threshold) or isinstance(threshold, bool) or not 0 < threshold <= 1:
            raise AuditError(f"--threshold {threshold}: must be a ratio in (0, 1]")
        failing, fail_on_all = _kinds(given.get("fail_on", ()), "--fail-on")
        ignored, ignore_all = _kinds(given.get("ignore", ()), "--ignore")
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
        inputs = given.get("inputs")
        if (chosen is Measure.DATA) != (inputs is not None):
            raise AuditError("--measure data and --inputs samples.npz go together")
        uncentred = bool(given.get("uncentred", False))
        if uncentred and chosen is not Measure.DATA:
            raise AuditError("--uncentred is about activations: it needs --measure data")
        energy = given.get("energy")
        if energy is not None:
            if isinstance(energy, bool) or not _finite(energy) or not 0 < energy <= 1:
                raise AuditError(f"--energy {energy}: must be a fraction in (0, 1]")
            if chosen not in (Measure.RANK, Measure.DATA):
                raise AuditError("--energy caps ranks: it needs --measure rank or data")
        checked: dict[str, Any] = dict(
            dims=dict(sorted(dims.items())),
            measure=chosen,
            threshold=float(threshold),
            allow=tuple(dict.fromkeys(given.get("allow", ()))),
            inputs=inputs,
            fail_on=tuple(dict.fromkeys(failing)),
            ignore=tuple(dict.fromkeys(ignored)),
            input_shapes=shapes,
            input_values=values,
            energy=None if energy is None else float(energy),
            limits=Limits().with_given(given.get("limits", {})),
            whole_model=bool(given.get("whole_model", False)),
            uncentred=uncentred,
        )
        return cls(**{**given, **checked})  # a setting checked above as checked, else as given

    def settings(self) -> dict[str, Any]:
        """The settings that differ from their defaults, by name, as :meth:`checked`
        takes them (``limits`` by their ``--limit`` names)."""
        default = Options()
        changed: dict[str, Any] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if value == getattr(default, setting.name):
                continue
            if isinstance(value, Limits):
                value = {n: v for n, v in value.named() if (n, v) not in default.limits.named()}
            elif setting.form is Form.LIST:
                value = [_text(item) for item in value]
            changed[setting.name] = value
        return changed

    def spelled(self) -> tuple[tuple[str, str], ...]:
        """The settings that differ from their defaults, each name with the command
        line's words (``--input-shape x=1,3,48,320``), in declaration order."""
        by_name = {s.name: s for s in SETTINGS}
        return tuple(
            (name, text)
            for name, value in self.settings().items()
            for text in by_name[name].spelled(value)
        )


#: Every setting of :class:`Options`, in declaration order.
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(name=f.name, **f.metadata["setting"])
    for f in dataclasses.fields(Options)
    if "setting" in f.metadata
)


def describe() -> str:
    """The settings as a docstring's entries: one per setting, with its flag."""
    return "\n".join(
        textwrap.fill(
            f"{setting.name} (``{setting.flag}``): {setting.help}",
            width=88,
            initial_indent=" " * 8,
            subsequent_indent=" " * 12,
            break_on_hyphens=False,
        )
        for setting in SETTINGS
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

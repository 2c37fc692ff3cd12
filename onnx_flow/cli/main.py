"""``onnx-flow``: argparse wiring. Exit 0 = no bottleneck, 1 = bottleneck, 2 = not audited."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from onnx_flow.cli import batch, config, resume, sandbox
from onnx_flow.errors import AuditError, first_line
from onnx_flow.measure import progress
from onnx_flow.options import AUDIT, AUDIT_MODULE, DIFF, SETTINGS, Form, Options
from onnx_flow.pytorch import INPUT_DTYPES
from onnx_flow.render import Format, render
from onnx_flow.render.wording import printable, totals, verdict, verdict_basis
from onnx_flow.report import Failure, FindingKind, Report, Result
from onnx_flow.version import __version__

if TYPE_CHECKING:
    from rich.progress import TaskID

__all__ = ["entry", "main"]

EXIT_CLEAN, EXIT_BOTTLENECK, EXIT_ERROR = 0, 1, 2

#: The shell's code for a command stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def entry() -> NoReturn:
    """The ``onnx-flow`` executable: :func:`main`, then exit at once.

    An audit of a deep model leaves hundreds of thousands of objects behind. The
    collector's passes over them, and freeing them one by one at interpreter exit,
    cost up to a tenth of the run (0.5 s of 5 s on a 200,000-node model), for memory
    the operating system takes back anyway.
    """
    gc.disable()
    try:
        code = main()
    except KeyboardInterrupt:
        code = _interrupted()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed: said
            stream.flush()
    os._exit(code)


def _interrupted() -> int:
    """Ctrl-C: one line, and the shell's code for an interrupted command."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print("onnx-flow: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        project = config.load(Path.cwd())
        given = _given(arguments)
        options = _options(project.defaults, given)
        for pattern, _ in project.per_path:  # every pattern's errors now, once
            try:
                _options(project.settings((pattern,)), given)
            except AuditError as error:
                raise AuditError(f"per_path {pattern!r}: {error}") from None
    except AuditError as error:
        return _fatal(str(error))
    if arguments.command == "diff":
        return _diff(arguments, options, given)
    if arguments.command == "audit-module":
        return _audit_module(arguments, options, given, project.format)
    return _audit(arguments, project, given)


def _given(arguments: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by name (a table's texts parsed)."""
    given = {}
    for setting in SETTINGS:
        value = getattr(arguments, setting.name, None)
        if value is not None:
            parse = setting.parse if setting.form is Form.TABLE else None
            given[setting.name] = value if parse is None else parse(value)
    return given


def _options(project: Mapping[str, Any], given: Mapping[str, Any]) -> Options:
    """The options of a model from its project's settings and the command line's,
    which win (a table's names are added to the project's); a dim, input or layer the
    model lacks is left out for it (:func:`_unmatched` checks the command line's).

    Raises:
        AuditError: a setting is bad.
    """
    settings = dict(project)
    for name, value in given.items():
        merge = isinstance(value, dict) and name in settings
        settings[name] = {**settings[name], **value} if merge else value
    return dataclasses.replace(Options.checked(**settings), lenient=True)


def _unmatched(
    given: Mapping[str, Any], audited: Sequence[tuple[str, Sequence[Mapping[str, str]]]]
) -> list[str]:
    """One line per dim, input or layer named on the command line that no audited
    model has; ``audited``: each model with its report's ``unused`` (JSON objects)."""
    named = [(s.name, name) for s in SETTINGS if s.names_parts for name in given.get(s.name, ())]
    lines = []
    for key in named:
        lacking = [
            next((u for u in unused if (u["setting"], u["name"]) == key), None)
            for _, unused in audited
        ]
        first = lacking[0] if audited and all(lacking) else None
        if first is None:
            continue
        option, model, reason = first["option"], audited[0][0], first["reason"]
        if len(audited) == 1:
            lines.append(f"{model}: {option}: {reason}")
        else:
            none = f"none of the {len(audited)} models audited has it"
            lines.append(f"{option}: {none}; {model}: {reason}")
    return lines


def _audit_module(
    arguments: argparse.Namespace,
    options: Options,
    given: Mapping[str, Any],
    project_format: str | None,
) -> int:
    """``onnx-flow audit-module package.module:factory --input-shape ...``."""
    from onnx_flow import pytorch

    try:
        output_format = _format(arguments.format or project_format or Format.TEXT.value)
        try:
            import torch
        except ImportError:
            raise AuditError("audit-module needs torch: pip install 'onnx-flow[torch]'") from None
        factory = pytorch.load_factory(arguments.factory)
        shapes = pytorch.parse_shapes(arguments.input_shape)

        inputs = pytorch.example_inputs(shapes, arguments.input_dtype)
        built = factory()
        if not isinstance(built, torch.nn.Module):
            raise AuditError(f"{arguments.factory}() returned {type(built).__name__}, not a module")
        report = pytorch.run_module(
            built,
            inputs,
            _drawn(options, output_format, plot=arguments.plot),
            dynamo=arguments.exporter == "dynamo",
        )
        _emit([report], output_format, arguments)
    except AuditError as error:
        if not arguments.input_dtype and _INDICES in str(error):  # floats fed to an embedding
            return _fatal(f"{error}; the module reads ids: give --input-dtype int64")
        return _fatal(str(error))
    except Exception as error:  # the user's factory may raise anything: one line
        return _fatal(f"{arguments.factory}: {type(error).__name__}: {error}")
    if _said(_unmatched(given, [(report.model, _unused(report))])):
        return EXIT_ERROR
    return EXIT_BOTTLENECK if report.failing else EXIT_CLEAN


#: What torch says of floats given to an embedding (or another op that indexes).
_INDICES = "argument #1 'indices'"


def _audit(arguments: argparse.Namespace, project: config.Project, given: Mapping[str, Any]) -> int:
    """``onnx-flow audit``: every model with its options, rendered in one format."""
    try:
        output_format = _format(arguments.format or project.format or Format.TEXT.value)
        if arguments.jobs < 1:
            raise AuditError(f"--jobs {arguments.jobs}: must be at least 1")
        models = batch.expand(arguments.models)
        to_file = arguments.output not in (None, "-")
        if arguments.resume and not (output_format is Format.JSONL and to_file):
            raise AuditError("--resume needs --format jsonl and --output FILE: the lines to resume")
        shared: dict[tuple[str, ...], Options] = {}  # one per set of patterns matched
        options: dict[str, Options] = {}
        for model in models:
            patterns = project.patterns(model)
            if patterns not in shared:
                found = _options(project.settings(patterns), given)
                shared[patterns] = _drawn(found, output_format, plot=arguments.plot)
            options[model] = shared[patterns]
    except AuditError as error:
        return _fatal(str(error))
    stream, spared = None, []
    try:
        if output_format is Format.JSONL:
            digests = {id(o): resume.options_digest(o) for o in shared.values()}

            @functools.cache  # a model --resume hashed is not hashed again for its line
            def fingerprint(model: str) -> str | None:
                chosen = options[model]
                return resume.fingerprint(model, chosen, digests[id(chosen)])

            if arguments.resume:
                spared = _spared(models, fingerprint, arguments.output)
            stream = _stream(arguments.output, fingerprint)
        audited = [m for m in models if m not in {entry["model"] for entry in spared}]
        with _bars(audited) as advance:

            def done(result: Result) -> None:
                if stream is not None:
                    stream(result)
                if advance is not None:
                    advance(result)

            results = batch.audit_all(
                audited,
                options,
                jobs=arguments.jobs,
                scheduler=arguments.scheduler,
                apart=len(models) > 1,  # a corpus, even if --resume leaves one model
                done=done,
            )
    except AuditError as error:  # samples not read, the scheduler not reached, a line not written
        return _fatal(str(error))
    reported = [r for r in results if isinstance(r, Report)]
    spared_reports = [entry for entry in spared if "error" not in entry]
    failures = [r for r in results if isinstance(r, Failure)]
    for failure in failures:
        _fatal(failure.error)
    if len(models) == 1 and failures:
        return EXIT_ERROR  # nothing to show but the reason
    try:
        _emit(results, output_format, arguments, written=stream is not None, spared=spared)
    except AuditError as error:
        return _fatal(str(error))
    if failures or len(spared_reports) < len(spared):
        return EXIT_ERROR  # and a model that failed may have been the one a setting names
    audited_unused = [(r.model, _unused(r)) for r in reported]
    audited_unused += [(entry["model"], entry.get("unused", [])) for entry in spared_reports]
    if _said(_unmatched(given, audited_unused)):
        return EXIT_ERROR
    spared_failing = (
        entry["bottleneck"]
        or any(FindingKind(f["kind"]) in options[entry["model"]].fail_on for f in entry["findings"])
        for entry in spared_reports
    )
    if any(r.failing for r in reported) or any(spared_failing):
        return EXIT_BOTTLENECK
    return EXIT_CLEAN


def _unused(report: Report) -> list[dict[str, str]]:
    return [u.to_dict() for u in report.unused]


def _said(lines: Sequence[str]) -> bool:
    """Say each error line; whether there was one."""
    for line in lines:
        _fatal(line)
    return bool(lines)


def _spared(
    models: Sequence[str], fingerprint: Callable[[str], str | None], output: str
) -> list[dict[str, Any]]:
    """The lines of ``output`` that hold the fingerprint their model has now, in the
    models' order; says on stderr how many models they spare."""
    lines = resume.finished(output)
    found = (lines.get((model, fingerprint(model) or "")) for model in dict.fromkeys(models))
    spared = [entry for entry in found if entry is not None]
    _say(f"--resume: {len(spared)} of {len(models)} models already in {output}")
    return spared


def _stream(
    output: str | None, fingerprint: Callable[[str], str | None]
) -> Callable[[Result], None]:
    """Write each result as a JSON line, with its model's ``fingerprint``, as soon as
    its model is audited: printed, or appended to ``output`` (opened for each line, so
    a stop leaves whole lines only).

    The function raises :class:`AuditError` when the line cannot be written.
    """
    from onnx_flow.render.jsonl import line

    def append(result: Result) -> None:
        data = line(result, fingerprint=fingerprint(result.model)).encode("utf-8")
        if output is None or output == "-":
            _print(data)
            return
        try:
            with open(output, "ab") as file:
                file.write(data)
        except OSError as error:
            raise AuditError(f"--output {output}: {_reason(error)}") from None

    return append


def _emit(
    results: Sequence[Result],
    output_format: Format,
    arguments: argparse.Namespace,
    *,
    written: bool = False,
    spared: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Print the results, or write them to ``--output`` (unless they were ``written`` as
    each model finished) and print one line: one model's verdict, or the totals over
    the results and the JSON lines ``--resume`` ``spared``; draw ``--plot``.

    Raises:
        AuditError: a file cannot be written.
    """
    output = None if arguments.output == "-" else arguments.output
    color = output is None and sys.stdout is not None and sys.stdout.isatty()
    if arguments.plot:
        from onnx_flow.render import plot

        _write(plot.render(results, arguments.plot), arguments.plot)
    if not written:
        _write(render(results, output_format, color=color), output)
    if output is None:
        return
    # The report went to the file: say what it says, in one line.
    if len(results) == 1 and not spared and isinstance(results[0], Report):
        line = f"{results[0].model}: {verdict(results[0])}  {verdict_basis(results[0])}"
    else:
        line = totals(results, spared)
    _print(f"{printable(line)} (report in {output})\n".encode())


def _diff(arguments: argparse.Namespace, options: Options, given: Mapping[str, Any]) -> int:
    """``onnx-flow diff``: exit 1 when the new version regressed (squeezes more than the
    old, adds a failing finding or loses a skip: :class:`onnx_flow.report.Comparison`)."""
    reports = [sandbox.audit_one(model, options) for model in (arguments.old, arguments.new)]
    failures = [r for r in reports if isinstance(r, Failure)]
    if failures:
        for failure in failures:
            _fatal(failure.error)
        return EXIT_ERROR
    from onnx_flow.judge.compare import compare
    from onnx_flow.render.comparison import render as render_comparison  # rich: diff only

    before, after = (r for r in reports if not isinstance(r, Failure))
    comparison = compare(before, after)
    color = arguments.output in (None, "-") and sys.stdout is not None and sys.stdout.isatty()
    try:
        _write(render_comparison(comparison, arguments.format, color=color), arguments.output)
    except AuditError as error:
        return _fatal(str(error))
    if _said(_unmatched(given, [(r.model, _unused(r)) for r in (before, after)])):
        return EXIT_ERROR
    return EXIT_BOTTLENECK if comparison.regressed else EXIT_CLEAN


def _drawn(options: Options, output_format: Format, *, plot: str | None = None) -> Options:
    """The options, asking the audit for its picture when the output draws one."""
    if output_format in (Format.DOT, Format.HTML, Format.MODEL_EXPLORER) or plot:
        return dataclasses.replace(options, picture=True)
    return options


def _format(name: str) -> Format:
    try:
        return Format(name)
    except ValueError:
        known = ", ".join(f.value for f in Format)
        raise AuditError(f"format {name!r} is unknown (known: {known})") from None


def _write(content: str | bytes, output: str | None) -> None:
    """Print (no ``output``, or ``-``), or write ``output``: a regular file atomically,
    so that a failed run never leaves half a file, keeping an existing file's mode; a
    device or a pipe (``/dev/null``, ``/dev/stdout``, a FIFO) directly, never replaced.

    Raises:
        AuditError: the file, or standard output, cannot be written.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    if output is None or output == "-":
        _print(data)
        return
    target = Path(output)
    try:
        existing = target.stat()
    except OSError:
        existing = None
    try:
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            with target.open("wb") as device:  # what it is stays: no file replaces it
                device.write(data)
            return
        with tempfile.NamedTemporaryFile(
            "wb", dir=target.parent, prefix=f".{target.name}.", delete=False
        ) as file:
            file.write(data)
        if existing is not None:
            mode = stat.S_IMODE(existing.st_mode)
        else:  # as an ordinary new file would be
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(file.name, mode)
        os.replace(file.name, target)
    except OSError as error:
        with contextlib.suppress(OSError, NameError):
            os.unlink(file.name)
        raise AuditError(f"--output {output}: {error.strerror or error}") from None


def _print(data: bytes) -> None:
    """Write to standard output, all of it now.

    Raises:
        AuditError: standard output is closed, full, or a pipe nobody reads.
    """
    if sys.stdout is None:
        raise AuditError("standard output is closed: give --output FILE")
    try:
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)  # none when redirected to a StringIO
        if binary is None:
            sys.stdout.write(data.decode("utf-8"))
        else:
            binary.write(data)
            binary.flush()
    except (OSError, ValueError) as error:  # ValueError: a closed file
        raise AuditError(f"cannot write to standard output: {_reason(error)}") from None


def _reason(error: Exception) -> str:
    return (error.strerror if isinstance(error, OSError) else None) or str(error)


#: Seconds between two progress lines when stderr is no terminal (a CI log).
PROGRESS_EVERY = 10.0


@contextlib.contextmanager
def _bars(models: Sequence[str]) -> Iterator[Callable[[Result], None] | None]:
    """Progress on stderr, with several models: the context gives the function to call
    after each. On a terminal, a bar of models audited with the count done and failed
    (with one model, a bar per long measurement); else, as in CI, a line every
    :data:`PROGRESS_EVERY` seconds."""
    if sys.stderr is None or not sys.stderr.isatty():
        yield _lines(len(models)) if len(models) > 1 else None
        return
    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress, TextColumn

    columns = (
        *Progress.get_default_columns(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        if len(models) > 1:
            task = bar.add_task("auditing", total=len(models), failed="")
            failed = 0

            def advance(result: Result) -> None:
                nonlocal failed
                failed += isinstance(result, Failure)
                bar.update(task, advance=1, description=result.model, failed=f"{failed} failed")

            yield advance
            return
        tasks: dict[str, TaskID] = {}

        def show(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total, failed="")
            bar.update(tasks[what], completed=done)

        with progress.listening(show):
            yield None


def _lines(models: int, clock: Callable[[], float] = time.monotonic) -> Callable[[Result], None]:
    """A function to call after each model that says, at most every
    :data:`PROGRESS_EVERY` seconds, how many are done and failed, and the last one."""
    start = last = clock()
    done = failed = 0

    def advance(result: Result) -> None:
        nonlocal done, failed, last
        done += 1
        failed += isinstance(result, Failure)
        now = clock()
        if now - last >= PROGRESS_EVERY and done < models:
            last = now
            seconds = f"{now - start:.0f} s"
            _say(f"{done} of {models} models audited, {failed} failed, {seconds}: {result.model}")

    return advance


def _fatal(message: str) -> int:
    _say(f"error: {first_line(message)}")
    return EXIT_ERROR


def _say(message: str) -> None:
    """One line on stderr, unless it is closed."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(f"onnx-flow: {printable(message)}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (not the whole usage above it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="onnx-flow",
        description="Find information bottlenecks in ONNX models (max-flow / min-cut).",
    )
    parser.add_argument("--version", action="version", version=f"onnx-flow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser(
        "audit",
        help="audit models for bottlenecks",
        description="Exit code: 0 no bottleneck, 1 bottleneck, 2 the model could not be audited.",
    )
    audit.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="an .onnx file, or a folder: every .onnx file under it",
    )
    _format_option(audit)
    _settings(audit, AUDIT)
    _written_options(audit)
    audit.add_argument(
        "--resume",
        action="store_true",
        help="with --format jsonl --output FILE: skip the models whose line FILE holds for"
        " the same file content and options, and append the others",
    )
    audit.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="audit N models at a time in worker processes (default 1)",
    )
    audit.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="audit each model as a task on the Dask cluster of that scheduler (the"
        " workers read the models at the same paths; pip install 'onnx-flow[dask]')",
    )
    audit_module = commands.add_parser(
        "audit-module",
        help="export a PyTorch module and audit it",
        description="Build the module with FACTORY (package.module:name, called without"
        " arguments), export it on inputs of the given shapes (random floats, or zeros of an"
        " integer --input-dtype) and audit it."
        " Exit code as for audit.",
    )
    audit_module.add_argument("factory", metavar="FACTORY", help="package.module:factory")
    audit_module.add_argument(
        "--input-shape",
        action="append",
        required=True,
        metavar="N,N,...",
        help="the shape of one input, e.g. 1,3,224,224 (repeat for several inputs)",
    )
    audit_module.add_argument(
        "--input-dtype",
        action="append",
        default=[],
        choices=INPUT_DTYPES,
        metavar="DTYPE",
        help="the element type of each input, in --input-shape's order (one for all, or one"
        " per input; default float32): integers are fed as zeros, e.g. int64 token ids",
    )
    audit_module.add_argument(
        "--exporter", choices=["dynamo", "torchscript"], default="dynamo", help="default: dynamo"
    )
    _format_option(audit_module)
    _settings(audit_module, AUDIT_MODULE)
    _written_options(audit_module)
    diff = commands.add_parser(
        "diff",
        help="compare two versions of a model",
        description="Exit code: 0 no regression, 1 the new version has a bottleneck the old"
        " did not or a lower ratio, adds a finding of a --fail-on kind, or loses a skip (an"
        " attention without one, or a bypassed layer now on a bottleneck's cut), 2 a model"
        " could not be audited.",
    )
    diff.add_argument("old", metavar="OLD", help="the old version (.onnx)")
    diff.add_argument("new", metavar="NEW", help="the new version (.onnx)")
    diff.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    diff.add_argument(
        "--output",
        metavar="FILE",
        help="write the comparison to FILE (atomically) instead of stdout",
    )
    _settings(diff, DIFF)
    return parser


def _format_option(parser: argparse.ArgumentParser) -> None:
    """``--format``, for the commands that write a report (audit and audit-module)."""
    parser.add_argument(
        "--format",
        choices=[f.value for f in Format],
        help="default: text, or format in [tool.onnx-flow]",
    )


def _written_options(parser: argparse.ArgumentParser) -> None:
    """``--output`` and ``--plot``, for the commands that write a report."""
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="write the report to FILE (atomically) instead of stdout",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw the width profile with matplotlib (.png or .svg)",
    )


def _settings(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of the settings ``command`` takes (:data:`~onnx_flow.options.SETTINGS`);
    each is ``None`` when not given, so that the project's defaults show through."""
    group = parser.add_argument_group(
        "how a model is audited",
        "Each can also be set in [tool.onnx-flow] of the nearest pyproject.toml, by its"
        " Python name (--input-shape: input_shapes), for every model or per path.",
    )
    for setting in SETTINGS:
        if command not in setting.commands:
            continue
        kinds: dict[str, Any] = {"dest": setting.name, "default": None, "help": setting.help}
        if setting.form is Form.SWITCH:
            kinds["action"] = "store_true"
        elif setting.form is Form.VALUE:
            kinds.update(type=setting.parse or str, choices=setting.choices)
        else:
            kinds["action"] = "append"
        if setting.metavar is not None:
            kinds["metavar"] = setting.metavar
        group.add_argument(setting.flag, **kinds)

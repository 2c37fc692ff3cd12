"""``onnx-flow``: argparse wiring. Exit 0 = no bottleneck, 1 = bottleneck, 2 = not audited."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from onnx_flow import __version__
from onnx_flow.audit import run
from onnx_flow.errors import AuditError
from onnx_flow.options import Options, parse_dims
from onnx_flow.render import Format, render
from onnx_flow.report import Report
from onnx_flow.widths import Measure

__all__ = ["entry", "main"]

EXIT_CLEAN, EXIT_BOTTLENECK, EXIT_ERROR = 0, 1, 2


def entry() -> NoReturn:
    """The ``onnx-flow`` executable: :func:`main`, then exit at once.

    An audit of a deep model leaves hundreds of thousands of objects behind. The
    collector's passes over them, and freeing them one by one at interpreter exit,
    cost up to a tenth of the run (0.5 s of 5 s on a 200,000-node model), for memory
    the operating system takes back anyway.
    """
    gc.disable()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        options = Options.checked(
            dims=parse_dims(arguments.dim),
            batch_dim=arguments.batch_dim,
            measure=arguments.measure,
            threshold=arguments.threshold,
            allow=arguments.allow,
        )
        reports: list[Report] = []
        for model in arguments.models:
            if reports:
                gc.collect()  # what the previous model left, when collection is off
            reports.append(run(model, options))
        text = render(reports, Format(arguments.format), color=sys.stdout.isatty())
    except AuditError as error:
        return _fatal(str(error))
    except MemoryError:
        return _fatal("out of memory")
    except Exception as error:  # a bug must still end in one line, never a traceback
        return _fatal(f"internal error: {type(error).__name__}: {error}")
    sys.stdout.write(text)
    return EXIT_BOTTLENECK if any(r.bottleneck for r in reports) else EXIT_CLEAN


def _fatal(message: str) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    print(f"onnx-flow: error: {first_line}", file=sys.stderr)
    return EXIT_ERROR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    audit.add_argument("models", nargs="+", metavar="MODEL", help="an .onnx file")
    audit.add_argument(
        "--format",
        choices=[f.value for f in Format],
        default=Format.TEXT.value,
        help="default: text",
    )
    audit.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=N",
        help="bind a symbolic dim (repeatable), e.g. --dim sequence=128",
    )
    audit.add_argument(
        "--batch-dim",
        metavar="NAME",
        help="the symbolic dim bound to 1 (default: axis 0 of the data inputs)",
    )
    audit.add_argument(
        "--measure",
        choices=[m.value for m in Measure],
        default=Measure.ELEMENTS.value,
        help="elements (default) or bits (elements x dtype bits)",
    )
    audit.add_argument(
        "--threshold",
        type=float,
        default=1.0,
        metavar="RATIO",
        help="a max-flow / reference ratio below this is a bottleneck (default 1.0)",
    )
    audit.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="LAYER",
        help="a layer that is narrow on purpose (module path such as enc.2, node or tensor"
        " name; repeatable): the model is split there and that squeeze passes",
    )
    return parser

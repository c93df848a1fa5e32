"""The ``edgepose`` command line: one command, five sub-commands.

``edgepose run [INPUT] --model M [--detector D]`` runs pose estimation on an
image, a folder of images, a video file or a camera index (the sample photo
edgepose ships when INPUT is left out): annotated images or video in
``--out``, one JSON line per frame (:mod:`edgepose.cli._run`).

``edgepose eval MODEL --annotations FILE --images DIR [--detector D | --gt-boxes]``
scores a model with COCO OKS AP/AR (identical to pycocotools) and PCK
(:mod:`edgepose.evaluation.cli`).

``edgepose bench [MODEL ...] [--detector D] [--backend B,B] [--threads T,T]``
times every stage of a frame on this machine (:mod:`edgepose.bench.cli`; the
sample photo when no ``--image`` is given). ``edgepose-bench`` is the same
command under its older name.

``edgepose export SOURCE --out DIR [--to ...] [--precision ...]`` converts and
quantizes a model with the export stage (``edgepose_export.cli``, imported
only for this command; it needs ``pip install 'edgepose[export]'``).

``edgepose models list | info NAME | pull NAME... | import PATH | verify``
manages the model registry and cache (:mod:`edgepose.cli._models`).

The same flag means the same thing everywhere (:mod:`edgepose._cli`):
``--model``/``--detector`` (files or registry names), ``--backend``,
``--threads``, ``--quiet``, ``--json PATH`` (``-`` for stdout), ``--debug``.

Every command reports a mistake as one line ``edgepose: error: ...`` on stderr
(``--debug`` adds the traceback) and exits 0 ok, 1 failed work (a model, card,
annotation or image file that cannot be used, a runtime failure, a missing
runtime or export stage, failed inputs), 2 usage error (bad arguments, a path
or model name that names nothing), 130 interrupted (:mod:`edgepose._cli`).
``edgepose run`` on a folder reports an image it cannot read or estimate,
skips it, processes the others and ends with ``edgepose: error: N of M inputs
failed`` (exit 1). With ``--out -`` or ``--json -`` stdout carries only the
JSON lines.
"""
from __future__ import annotations

import argparse
import shlex

from edgepose._cli import add_debug_flag, run_command
from edgepose.cli._models import add_models_parser
from edgepose.cli._run import add_run_parser

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``edgepose`` and its sub-commands (``export`` only by
    name: its options belong to the export stage, parsed by it)."""
    from edgepose.bench.cli import BENCH_DESCRIPTION, add_bench_arguments
    from edgepose.evaluation.cli import EVAL_DESCRIPTION, add_eval_arguments

    parser = argparse.ArgumentParser(
        prog="edgepose", description="2D human pose estimation on the edge.",
        epilog="Common flags: --model/--detector (a file or a registry name), --backend, "
        "--threads, --quiet, --json PATH ('-': stdout), --debug. Exit codes: 0 ok, 1 failed "
        "work (a bad model, card, annotation or image file, failed inputs, a runtime "
        "failure), 2 usage error, 130 interrupted.")
    add_debug_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parser(sub)
    e = sub.add_parser("eval", help="OKS AP/AR and PCK of a model on an annotation file",
                       description=EVAL_DESCRIPTION)
    add_eval_arguments(e)
    add_debug_flag(e, sub=True)
    b = sub.add_parser("bench", help="latency per stage of pose models on this machine "
                       "(also installed as edgepose-bench)", description=BENCH_DESCRIPTION)
    add_bench_arguments(b)
    add_debug_flag(b, sub=True)
    sub.add_parser("export", add_help=False,
                   help="convert and quantize a model (ONNX, OpenVINO, TFLite) with parity "
                   "reports; needs the export extra (edgepose export --help)")
    add_models_parser(sub)
    return parser


def export(argv: list[str]) -> int:
    """``edgepose export ...``: hands the arguments to the export stage, imported
    here (never at import time: the runtime does not depend on it).

    Raises:
        ImportError: the export stage is not installed (exit 1, a missing
            package, as a missing runtime).
    """
    try:
        from edgepose_export.cli import main as export_main
    except ImportError as exc:
        if (exc.name or "").split(".")[0] == "edgepose_export":
            raise ImportError("edgepose export needs the export stage (edgepose_export), which "
                              "is not installed: pip install 'edgepose[export]'.") from exc
        raise ImportError(f"edgepose export could not load the export stage ({exc}): "
                          "pip install 'edgepose[export]'.") from exc
    return export_main(argv, prog="edgepose export")


def _main(argv: list[str]) -> int:
    if argv[:1] == ["export"] or argv[:2] == ["--debug", "export"]:
        rest = argv[argv.index("export") + 1:]
        return export(rest + ["--debug"] if argv[0] == "--debug" else rest)
    args = build_parser().parse_args(argv)
    args.command_line = " ".join(["edgepose", *(shlex.quote(a) for a in argv)])
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    """Runs ``edgepose``; returns the exit status (0 ok, 1 failed work, 2 usage
    error, 130 interrupted; see :mod:`edgepose._cli`). argparse's errors exit 2
    by ``SystemExit``."""
    return run_command(_main, argv, "edgepose")

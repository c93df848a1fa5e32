"""``edgepose export``: a trained model to device-ready files, with parity reports.

::

    edgepose export SOURCE --out DIR [--to onnx,openvino,tflite]
        [--precision fp32,fp16,int8,int8-dynamic] [--calib DIR|VIDEO]
        [--calib-annotations JSON] [--preset NAME | --card CARD.json]
        [--parity-images DIR] [--max-keypoint-error PX] [--min-oks X]
        [--force] [--json PATH] [--runs N] [--quiet]

SOURCE is an ``.onnx`` or ``.tflite`` file, or ``package.module:factory``
naming a function that returns a ``torch.nn.Module`` (with ``--weights`` a
state dict to load into it; the card from ``--card``, ``--preset`` or the
module's ``card()``). Prints the table of artefacts and their parity (on
stderr with ``--json -``, stdout then carrying only the JSON report), writes
the JSON report (``--json``, default ``DIR/export.json``). ``--runs`` is the
number of timed runs per latency figure, as in ``edgepose bench``; its old
spelling ``--latency-runs`` still works, with a note on stderr.

Exit codes (as every edgepose command, :mod:`edgepose._cli`): 0 every artefact
within its tolerance (or ``--force``); 1 an artefact outside its tolerance, a
conversion that failed, a missing toolchain package; 2 a usage error (bad
arguments, missing files, unsupported combinations: the export stage checks the
whole request before converting anything, so its ``ValueError``s are usage
errors); 130 interrupted. Errors are one line on stderr; ``--debug`` adds the
traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from pathlib import Path
from typing import Any

from edgepose._argtypes import positive_int
from edgepose._cli import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, add_debug_flag,
                           add_deprecated_alias, add_json_flag, add_quiet_flag,
                           check_output_dir, check_output_file, error_line, run_command,
                           stdout_to_stderr)

__all__ = ["build_parser", "main"]

EXIT_TOLERANCE = EXIT_FAILED


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser(prog: str = "edgepose export") -> argparse.ArgumentParser:
    from edgepose_export.api import PRECISIONS, TARGETS, Tolerance

    default = Tolerance()
    p = argparse.ArgumentParser(
        prog=prog, description="Export a pose model to ONNX, OpenVINO and TFLite, in FP32, FP16 "
        "and INT8, each file with its model card and a parity report against the source.",
        epilog="Exit codes: 0 ok, 1 an artefact outside its tolerance (or a failed "
        "conversion), 2 usage error, 130 interrupted.")
    p.add_argument("source", help="an .onnx or .tflite file, or package.module:factory returning "
                   "a torch.nn.Module")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--to", default="onnx", type=_list,
                   help=f"targets, comma-separated: {','.join(TARGETS)} (default: onnx)")
    p.add_argument("--precision", default="fp32", type=_list,
                   help=f"precisions, comma-separated: {','.join(PRECISIONS)} (default: fp32)")
    p.add_argument("--calib", help="calibration images: a folder, an image or a video "
                   "(needed for int8)")
    p.add_argument("--calib-annotations", help="COCO-style annotations with the person boxes of "
                   "the calibration (and parity) images, for top-down models")
    p.add_argument("--max-calib", type=positive_int, default=300, metavar="N",
                   help="at most this many calibration tensors (default: 300)")
    p.add_argument("--preset", help="card preset for a model without a card "
                   "(edgepose.presets.preset_names())")
    p.add_argument("--card", help="a model card JSON file")
    p.add_argument("--weights", help="torch sources: a state dict (.pth) to load")
    p.add_argument("--name", help="file name stem of the artefacts (default: the card's name)")
    p.add_argument("--parity-images", help="images for the parity reports (default: the "
                   "calibration images)")
    p.add_argument("--max-keypoint-error", type=float, default=None,
                   metavar="PX", help="tolerance: mean keypoint error in model-input pixels "
                   f"(default: {default.max_keypoint_error_px}; one-stage YOLO-pose models: "
                   "3 per 256 px of the input's longer side)")
    p.add_argument("--min-oks", type=float, default=None, metavar="X",
                   help=f"tolerance: mean OKS against the source (default: {default.min_oks})")
    p.add_argument("--force", action="store_true",
                   help="exit 0 even when an artefact is outside its tolerance")
    add_json_flag(p, "the report", help="where to write the JSON report (default: "
                  "OUT/export.json; '-': stdout, the table then goes to stderr)")
    p.add_argument("--runs", type=positive_int, default=20, metavar="N",
                   help="timed runs per latency figure (default: 20)")
    add_deprecated_alias(p, "--latency-runs", "--runs")
    add_quiet_flag(p, help="no progress bars")
    add_debug_flag(p)
    return p


def _torch_source(text: str, weights: str | None) -> Any:
    module_name, _, attr = text.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"Cannot import {module_name!r} for the source {text!r}: "
                         f"{exc}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise UsageError(f"{module_name!r} has no {attr!r} (source {text!r}).")
    model = factory() if callable(factory) and not hasattr(factory, "state_dict") else factory
    if weights is not None:
        from edgepose_export.api import require

        torch = require("torch")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    return model


def _source(args: argparse.Namespace) -> Any:
    text = args.source
    if ":" in text and not Path(text).exists():
        return _torch_source(text, args.weights)
    if args.weights is not None:
        raise UsageError("--weights is for torch sources (package.module:factory).")
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"The source {text} does not exist.")
    return path


def _tolerance(args: argparse.Namespace):
    from edgepose_export.api import Tolerance

    if args.max_keypoint_error is None and args.min_oks is None:
        return None  # the model's default (export_model)
    default = Tolerance()
    max_error = (default.max_keypoint_error_px if args.max_keypoint_error is None
                 else args.max_keypoint_error)
    min_oks = default.min_oks if args.min_oks is None else args.min_oks
    if not max_error > 0:
        raise UsageError(f"--max-keypoint-error must be positive, got {max_error}.")
    if not 0 <= min_oks <= 1:
        raise UsageError(f"--min-oks must be between 0 and 1, got {min_oks}.")
    return Tolerance(max_keypoint_error_px=max_error, min_oks=min_oks)


def run(args: argparse.Namespace) -> int:
    from edgepose.card import ModelCard
    from edgepose_export.api import ParityError, export_model

    card = None
    if args.card is not None:
        if args.preset is not None:
            raise UsageError("Pass --card or --preset, not both.")
        if not Path(args.card).is_file():
            raise UsageError(f"--card {args.card} does not exist: pass a model card JSON file.")
        card = ModelCard.from_json(Path(args.card).read_text())
    source = _source(args)
    out = check_output_dir(args.out, "--out")
    if args.json not in (None, "-"):
        check_output_file(args.json, "--json")
    quiet_stdout = stdout_to_stderr() if args.json == "-" else contextlib.nullcontext()
    try:
        with quiet_stdout:  # stdout carries only the JSON report: toolchains' chatter to stderr
            result = export_model(
                source, card=card, preset=args.preset, targets=args.to, precisions=args.precision,
                calibration=args.calib, out_dir=out, parity_inputs=args.parity_images,
                tolerance=_tolerance(args), force=args.force, boxes=args.calib_annotations,
                name=args.name, max_calibration_images=args.max_calib,
                latency_runs=args.runs, progress=not args.quiet)
        code = EXIT_OK
    except ParityError as exc:
        result, code = exc.result, EXIT_TOLERANCE
    except (ValueError, TypeError, FileNotFoundError) as exc:
        # the export stage checks the whole request before converting anything
        raise UsageError(str(exc)) from exc
    print(result.table(), file=sys.stderr if args.json == "-" else sys.stdout)
    text = result.to_json(indent=2)
    if args.json == "-":
        print(text)
    else:
        target = Path(args.json) if args.json else out / "export.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")
        print(f"report: {target}", file=sys.stderr)
    if code == EXIT_TOLERANCE:
        limits = result.failed[0].card.provenance.get("parity", {}).get("tolerance", {})
        error_line(args.prog, f"{len(result.failed)} artefact(s) outside the tolerance (mean "
                   f"keypoint error <= {limits.get('max_keypoint_error_px')} px, OKS >= "
                   f"{limits.get('min_oks')}); --force accepts them.")
    return code


def main(argv: list[str] | None = None, prog: str = "edgepose export") -> int:
    """Runs the export; returns the exit status (argparse's too: 0 for
    ``--help``, 2 for bad arguments)."""
    def body(args_list: list[str]) -> int:
        try:
            args = build_parser(prog).parse_args(args_list)
        except SystemExit as exc:
            return EXIT_USAGE if exc.code else EXIT_OK
        args.prog = prog
        return run(args)

    return run_command(body, argv, prog)


if __name__ == "__main__":
    raise SystemExit(main())

"""``edgepose eval``: a model's accuracy on an annotated image folder.

``edgepose eval MODEL --annotations FILE --images DIR [--detector D | --gt-boxes]
[--backend B] [--threads T] [--device D] [--precision P] [--providers P,...]
[--no-xnnpack] [--score-threshold S] [--iou-threshold IOU] [--max-detections N]
[--input-size PX] [--json PATH] [--per-keypoint] [--quiet]`` runs
MODEL (a file or a registry name; ``--model MODEL`` says the same) over the
annotated images, prints a table of OKS AP/AR (COCO, CrowdPose, AIC files),
box-normalised PCK, MPII PCKh (MPII files), keypoint errors and latency, and
writes them as JSON with ``--json``
(``-`` for stdout, the table then goes to stderr). A progress bar goes to
stderr unless ``--quiet``. A one-stage model (YOLO-pose) is evaluated with
a person score threshold of 0.001 (as ``yolo val``; ``--score-threshold``
sets another), not its card's default, since AP needs the low-scoring people;
the other one-stage flags are those of ``edgepose run``
(:mod:`edgepose._one_stage_flags`).

With ``--cluster ADDR`` (``pip install 'edgepose[fleet]'``) the images are
sharded over the workers of a Dask lab (``--devices`` chooses them; the
security flags are those of ``edgepose bench``, :mod:`edgepose.fleet.flags`),
each running the same model with its own runtime, and the poses merged into
one evaluation, equal to a local run of the same runtime build
(:mod:`edgepose.fleet.eval`). A worker that lacks the model gets it by
sha256, shipped up to ``--max-ship-mb``; images travel with the tasks or are
read from a folder every worker sees (``--images-via``). Poses are appended
to ``--partial FILE`` (default with ``--json PATH``: ``PATH.partial.jsonl``,
removed once PATH is written) as they arrive; shards a worker lost are
redone elsewhere and listed under the table.

Exit codes (as every edgepose command, :mod:`edgepose._cli`): 0 ok; 1 failed
work: an annotation file that is not valid (the message names the entry), one
with nothing to evaluate, a bad model or image file; 2 usage error: bad
arguments, a missing annotation file, image folder or model.

Wire it as a sub-command with :func:`add_eval_arguments` and :func:`run_eval`,
or call :func:`main_eval` with the arguments after ``eval``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from edgepose._cli import (UsageError, add_backend_flag, add_debug_flag, add_json_flag,
                           add_quiet_flag, add_threads_flag, check_model_arg, check_output_file,
                           run_command)
from edgepose._runtime_flags import add_runtime_flags, runtime_from_args
from edgepose._one_stage_flags import add_one_stage_flags, one_stage_from_args
from edgepose.fleet.flags import add_cluster_flags, check_cluster_flags

__all__ = ["main_eval", "add_eval_arguments", "run_eval", "EVAL_DESCRIPTION"]

EVAL_DESCRIPTION = ("Accuracy of a pose model on annotated images: OKS AP/AR, PCK, PCKh, "
                    "keypoint errors.")


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds ``edgepose eval``'s arguments to ``parser`` and sets ``func``."""
    parser.add_argument("model_arg", nargs="?", default=None, metavar="MODEL",
                        help="pose model file (.onnx, .tflite, .xml) or registry name")
    parser.add_argument("--model", dest="model_opt", default=None, metavar="MODEL",
                        help="the pose model, as an option (the same as MODEL; give one)")
    parser.add_argument("--annotations", required=True,
                        help="COCO-format keypoint annotations (COCO, CrowdPose, AIC) or an "
                             "MPII JSON file")
    parser.add_argument("--images", required=True, help="folder with the annotated images")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--detector", help="person detector file or name (top-down models)")
    boxes.add_argument("--gt-boxes", action="store_true",
                       help="run the pose model on the ground-truth person boxes")
    parser.add_argument("--preset", help="card preset of the pose model, if it carries no card")
    parser.add_argument("--detector-preset", help="card preset of the detector")
    add_backend_flag(parser)
    add_one_stage_flags(parser)  # eval's --score-threshold default is 0.001 (see above)
    add_threads_flag(parser)
    add_runtime_flags(parser)
    parser.add_argument("--keypoint-set",
                        help="the dataset's keypoint set, if its names are not recognised "
                             "(e.g. coco17, crowdpose14, aic14)")
    parser.add_argument("--area-source", choices=["auto", "annotation", "bbox"], default="auto",
                        help="ground-truth area for OKS: the 'area' field, or 0.53 x box area "
                             "(CrowdPose, AIC); auto picks 'annotation' when every annotation "
                             "has one")
    add_json_flag(parser, "the results")
    parser.add_argument("--per-keypoint", action="store_true",
                        help="also print and write the per-keypoint breakdown")
    add_quiet_flag(parser, help="no progress bar")
    add_cluster_flags(parser)
    _add_lab_eval_flags(parser)
    parser.set_defaults(func=run_eval)
    return parser


#: The flags only ``edgepose eval --cluster`` takes (dest -> flag).
_LAB_EVAL_ONLY = {"images_via": "--images-via", "max_ship_mb": "--max-ship-mb",
                  "shard_size": "--shard-size", "partial": "--partial"}


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def _add_lab_eval_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("device lab evaluation (with --cluster)")
    g.add_argument("--images-via", choices=["auto", "ship", "shared"], default=None,
                   help="how the images reach the workers: with the tasks (ship), read from "
                        "the same path (shared: every worker must see --images there), or "
                        "shared when a sample of them matches on every worker (auto, the "
                        "default)")
    g.add_argument("--max-ship-mb", type=_positive(float), default=None, metavar="MB",
                   help="the largest model sent to a worker that lacks it (default 200)")
    g.add_argument("--shard-size", type=_positive(int), default=None, metavar="N",
                   help="images per task (default: about four tasks per worker, at most 32 "
                        "images each)")
    g.add_argument("--partial", type=Path, default=None, metavar="FILE",
                   help="append each image's poses to FILE (JSON lines) as they arrive "
                        "(default with --json PATH: PATH.partial.jsonl)")


def _check_lab_eval_flags(args: argparse.Namespace) -> None:
    check_cluster_flags(args)
    if args.cluster is None:
        for dest, flag in _LAB_EVAL_ONLY.items():
            if getattr(args, dest, None) is not None:
                raise UsageError(f"{flag} is an option of the device lab and needs --cluster "
                                 "ADDR (the Dask scheduler): add --cluster, or drop it.")
    elif args.partial is not None:
        check_output_file(args.partial, "--partial")


def _build_parser() -> argparse.ArgumentParser:
    parser = add_eval_arguments(argparse.ArgumentParser(
        prog="edgepose eval", description=EVAL_DESCRIPTION))
    add_debug_flag(parser)
    return parser


def _model(args: argparse.Namespace) -> str:
    """The pose model, given as MODEL or as ``--model`` (exactly one)."""
    if args.model_arg is not None and args.model_opt is not None:
        raise UsageError(f"the pose model was given twice (MODEL {args.model_arg} and --model "
                         f"{args.model_opt}): give it once.")
    model = args.model_arg if args.model_arg is not None else args.model_opt
    if model is None:
        raise UsageError("no pose model given: edgepose eval MODEL --annotations FILE "
                         "--images DIR (MODEL a file or a registry name; or --model MODEL).")
    return model


def run_eval(args: argparse.Namespace) -> int:
    """Runs ``edgepose eval`` for parsed arguments; returns the exit code.

    Raises:
        UsageError: a missing annotation file, image folder or model, or a
            ``--json`` path that cannot be written.
        FileNotFoundError, ValueError, ImportError, RuntimeError: as
            :func:`~edgepose.evaluation.evaluate_model` and
            :class:`~edgepose.Estimator` do (:func:`main_eval` prints them).
    """
    from edgepose import __version__
    from edgepose.evaluation.runner import eval_estimator, evaluate_model, load_annotations

    args.model = _model(args)
    if not Path(args.annotations).is_file():
        raise UsageError(f"annotation file {args.annotations} does not exist (--annotations).")
    if not Path(args.images).is_dir():
        raise UsageError(f"image folder {args.images} does not exist (--images).")
    check_model_arg(args.model, "MODEL")
    check_model_arg(args.detector, "--detector")
    runtime = runtime_from_args(args)
    one_stage = one_stage_from_args(args)
    _check_lab_eval_flags(args)
    if args.json and args.json != "-":
        check_output_file(args.json, "--json")
    annotations = load_annotations(args.annotations)
    started = time.time()
    lab_record, partial = None, None
    if args.cluster is not None:
        report, lab_lines, lab_record, partial = _run_on_lab(args, annotations, runtime)
    else:
        lab_lines = []
        with eval_estimator(args.model, args.detector, runtime=runtime, preset=args.preset,
                            detector_preset=args.detector_preset, **one_stage) as est:
            report = evaluate_model(est, annotations, args.images, gt_boxes=args.gt_boxes,
                                    keypoint_set=args.keypoint_set,
                                    area_source=args.area_source,
                                    per_keypoint=args.per_keypoint, progress=not args.quiet)
    to_stdout = args.json == "-"
    table = report.format_table(per_keypoint=args.per_keypoint)
    print("\n".join([table, *lab_lines]), file=sys.stderr if to_stdout else sys.stdout)
    if args.json:
        import numpy as np

        record: dict[str, Any] = {
            "model": str(args.model), "detector": args.detector,
            "boxes": "ground truth" if args.gt_boxes else ("detector" if args.detector
                                                            else "model"),
            "backend": args.backend or "auto", "threads": args.threads,
            "runtime": runtime.to_dict(),
            "images": str(args.images),
            **report.to_dict(per_keypoint=args.per_keypoint),
            "environment": {"edgepose": __version__, "numpy": np.__version__,
                            "python": platform.python_version(),
                            "machine": platform.machine(), "system": platform.system()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "seconds": round(time.time() - started, 3),
        }
        if lab_record is not None:
            record["lab"] = lab_record
        text = json.dumps(record, indent=2)
        if to_stdout:
            print(text)
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text + "\n", encoding="utf-8")
            if partial is not None and args.partial is None:
                partial.unlink(missing_ok=True)  # the default partial file: the JSON has it all
    return 0


def _run_on_lab(args: argparse.Namespace, annotations: Any, runtime: Any
                ) -> tuple[Any, list[str], dict[str, Any], Path | None]:
    """``edgepose eval --cluster``: (report, lines under the table, the
    JSON's ``lab`` record, the partial file or None)."""
    from edgepose.fleet.eval import evaluate_on_lab
    from edgepose.fleet.flags import open_lab
    from edgepose.fleet.models import DEFAULT_MAX_SHIP_MB

    partial = args.partial
    if partial is None and args.json and args.json != "-":
        partial = Path(str(args.json) + ".partial.jsonl")
    with open_lab(args, quiet=args.quiet) as lab:
        result = evaluate_on_lab(
            lab.client, args.model, annotations, args.images, detector=args.detector,
            runtime=runtime,
            estimator_options={"preset": args.preset, "detector_preset": args.detector_preset,
                               **one_stage_from_args(args)},
            gt_boxes=args.gt_boxes, keypoint_set=args.keypoint_set,
            area_source=args.area_source, per_keypoint=args.per_keypoint,
            workers=None if args.devices is None else [w.name for w in lab.workers],
            images_via=args.images_via or "auto", shard_size=args.shard_size,
            max_ship_mb=args.max_ship_mb or DEFAULT_MAX_SHIP_MB, partial=partial,
            progress=not args.quiet)
        record = {"scheduler": lab.address, "workers": [w.name for w in lab.workers],
                  "versions": lab.versions.to_dict(), **result.to_dict()}
    lines = result.format_lines()
    if args.partial is None:  # the default partial file goes once the JSON is written
        lines = [line for line in lines if not line.startswith("partial results:")]
    return result.report, lines, record, partial


def main_eval(args: list[str]) -> int:
    """``edgepose eval`` with the arguments after ``eval``; returns the exit
    code (an ``edgepose eval: error:`` line on stderr for a user mistake; 2
    for a usage error, 1 for failed work)."""
    return run_command(lambda argv: run_eval(_build_parser().parse_args(argv)), args,
                       "edgepose eval")

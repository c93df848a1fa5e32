"""The flags of one-stage multi-person models, shared by the command lines
(``edgepose run``; ``eval`` and ``bench`` take them the same way):
``--score-threshold``, ``--iou-threshold``, ``--max-detections`` and
``--input-size``, read into the keyword arguments of
:class:`~edgepose.Estimator` (its
:class:`~edgepose.heads._one_stage.OneStageOptions`).

A command adds them with :func:`add_one_stage_flags`, reads them with
:func:`one_stage_from_args`, and checks them against the pose model's card
with :func:`check_model_flags`: on a model that is not one-stage they are a
usage error (exit 2) naming the flags, and so is ``--detector`` with a model
that finds every person itself (one-stage or bottom-up).
:func:`usage_error_for` turns an Estimator that refused to build into that
usage error when the flags are the cause.
"""
from __future__ import annotations

import argparse
from typing import Any

from edgepose._cli import UsageError

__all__ = ["ONE_STAGE_FLAGS", "add_one_stage_flags", "one_stage_from_args",
           "given_one_stage_flags", "check_model_flags", "usage_error_for"]

#: flag -> the Estimator keyword (and OneStageOptions field) it sets.
ONE_STAGE_FLAGS = {"--score-threshold": "score_threshold", "--iou-threshold": "iou_threshold",
                   "--max-detections": "max_detections", "--input-size": "input_size"}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def add_one_stage_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the four flags in a group "one-stage models" (default None each:
    the model card's own)."""
    g = parser.add_argument_group(
        "one-stage models", "Settings of one-stage multi-person models (YOLO-pose, MoveNet "
        "MultiPose: one network finds every person); other models refuse them. Default: "
        "the model card's.")
    g.add_argument("--score-threshold", type=_number, default=None, metavar="S",
                   help="drop people whose person score is at most S, in [0, 1)")
    g.add_argument("--iou-threshold", type=_number, default=None, metavar="IOU",
                   help="box NMS threshold in (0, 1] (models whose graph suppresses "
                        "duplicates itself, such as MoveNet MultiPose, refuse it)")
    g.add_argument("--max-detections", type=_count, default=None, metavar="N",
                   help="the most people per image")
    g.add_argument("--input-size", type=_count, default=None, metavar="PX",
                   help="longer side of the model input for models with a dynamic input "
                        "size (a multiple of 32 for MoveNet MultiPose and YOLO-pose)")


def given_one_stage_flags(args: argparse.Namespace) -> list[str]:
    """The one-stage flags given on the command line, in their order above."""
    return [flag for flag, field in ONE_STAGE_FLAGS.items()
            if getattr(args, field, None) is not None]


def one_stage_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The Estimator keywords of the flags given (none: ``{}``).

    Raises:
        UsageError: a value out of its range, naming the flag.
    """
    from edgepose.heads._one_stage import OneStageOptions

    kwargs = {ONE_STAGE_FLAGS[flag]: getattr(args, ONE_STAGE_FLAGS[flag])
              for flag in given_one_stage_flags(args)}
    for flag in given_one_stage_flags(args):
        field = ONE_STAGE_FLAGS[flag]
        try:
            OneStageOptions(**{field: kwargs[field]})
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    return kwargs


def check_model_flags(card: Any, args: argparse.Namespace, *, model: str,
                      detector: str | None = None) -> None:
    """Checks the one-stage flags and ``--detector`` against the pose model's card.

    Args:
        card: the pose model's :class:`~edgepose.card.ModelCard`.
        args: the parsed flags.
        model: the pose model as the user named it, for messages.
        detector: the ``--detector`` given, or None.

    Raises:
        UsageError: one-stage flags for a model that is not one-stage, or a
            detector for a model that finds every person itself.
    """
    given = given_one_stage_flags(args)
    if given and card.task != "onestage":
        verb, pronoun = ("applies", "it") if len(given) == 1 else ("apply", "them")
        raise UsageError(
            f"{', '.join(given)} {verb} to one-stage multi-person models (YOLO-pose, MoveNet "
            f"MultiPose); {model} is a {card.task!r} model. Drop {pronoun}.")
    if detector is not None and card.finds_people:
        kind = "one-stage multi-person" if card.task == "onestage" else "bottom-up"
        raise UsageError(
            f"--detector is for top-down models; {model} is a {kind} model that finds every "
            "person itself. Drop --detector.")


def usage_error_for(args: argparse.Namespace, *, model: str, detector: str | None,
                    preset: str | None = None, runtime: Any = None) -> UsageError | None:
    """After an Estimator refused to build: the usage error of
    :func:`check_model_flags` when the flags (or the detector) do not fit
    the model, else None (the Estimator's own error stands). Opens the
    model once more to read its card, only on this error path; a model that
    cannot be opened gives None."""
    if not given_one_stage_flags(args) and detector is None:
        return None
    from edgepose.model import LoadedModel

    try:
        loaded = LoadedModel(model, preset=preset, runtime=runtime)
    except Exception:  # noqa: BLE001 - the Estimator's error is the one to report
        return None
    try:
        check_model_flags(loaded.card, args, model=model, detector=detector)
    except UsageError as exc:
        return exc
    finally:
        loaded.close()
    return None

"""The runtime flags of ``edgepose run``, ``eval`` and ``bench``, read into one
:class:`~edgepose.runtime.RuntimeOptions`.

``--backend`` and ``--threads`` come from :mod:`edgepose._cli`; this module
adds the options of one runtime each, named as the runtime names them:
``--device`` (OpenVINO), ``--precision`` (OpenVINO), ``--providers``
(onnxruntime) and ``--no-xnnpack`` (TFLite). An option that no model of the
command can take (``--device GPU --backend onnxruntime``) is a usage error,
not an option silently dropped.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from edgepose._cli import UsageError
from edgepose.runtime import OPENVINO_PRECISIONS, RuntimeOptions

__all__ = ["add_runtime_flags", "runtime_from_args"]

#: flag -> (RuntimeOptions field, the backend that takes it)
_FLAGS = {"--device": ("device", "openvino"), "--precision": ("precision", "openvino"),
          "--providers": ("providers", "onnxruntime"), "--no-xnnpack": ("xnnpack", "tflite")}


def _precision(text: str) -> str | None:
    if text == "auto":
        return None
    if text not in OPENVINO_PRECISIONS:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(OPENVINO_PRECISIONS)} or auto (the plugin's own "
            f"choice), got {text!r}")
    return text


def _providers(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(
            f"expected onnxruntime execution providers, comma-separated, got {text!r}")
    return items


def add_runtime_flags(parser: argparse.ArgumentParser) -> None:
    """Adds ``--device``, ``--precision``, ``--providers`` and ``--no-xnnpack``."""
    parser.add_argument("--device", default=None, metavar="D",
                        help="OpenVINO device: CPU, GPU, NPU, AUTO, ... (default: CPU)")
    parser.add_argument("--precision", type=_precision, default="f32",
                        metavar="{" + ",".join(OPENVINO_PRECISIONS) + ",auto}",
                        help="OpenVINO inference precision (default: f32; auto: the plugin's "
                             "own choice)")
    parser.add_argument("--providers", type=_providers, default=None, metavar="P[,P...]",
                        help="onnxruntime execution providers in order of preference "
                             "(default: CPUExecutionProvider)")
    parser.add_argument("--no-xnnpack", action="store_true",
                        help="TFLite: run the reference kernels instead of XNNPACK (slower)")


def _given(args: argparse.Namespace) -> dict[str, str]:
    """flag -> the backend that takes it, for each runtime flag given."""
    values = {"--device": args.device is not None, "--precision": args.precision != "f32",
              "--providers": args.providers is not None, "--no-xnnpack": args.no_xnnpack}
    return {flag: _FLAGS[flag][1] for flag, given in values.items() if given}


def runtime_from_args(args: argparse.Namespace, *,
                      backends: Sequence[str | None] | None = None) -> RuntimeOptions:
    """One RuntimeOptions from the parsed flags.

    Args:
        args: with ``backend``, ``threads`` and the flags of
            :func:`add_runtime_flags`.
        backends: ``bench``: the backends swept (its ``--backend`` list;
            None entries: by file type). The options then carry neither
            backend nor threads (each configuration sets them).

    Raises:
        UsageError: a runtime flag that none of the chosen backends takes,
            or a value the runtime options refuse.
    """
    sweep = backends is not None
    chosen = list(backends) if sweep else [args.backend]
    if chosen and None not in chosen:
        for flag, owner in _given(args).items():
            if owner not in chosen:
                raise UsageError(
                    f"{flag} is an option of {owner}, and --backend {','.join(chosen)} does not "
                    f"run {owner}: drop {flag}, or add {owner} to --backend.")
    try:
        return RuntimeOptions(
            backend=None if sweep else args.backend, threads=None if sweep else args.threads,
            device=args.device, providers=args.providers, precision=args.precision,
            xnnpack=not args.no_xnnpack)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

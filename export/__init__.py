"""edgepose_export: the workstation half of edgepose.

Converts trained pose models (PyTorch modules, ONNX and TFLite files) to ONNX,
OpenVINO IR and TFLite, in FP32, FP16 and INT8, writes the model card into each
file and reports parity with the source on real images. Needs the ``export``
extra (torch, onnx, onnxscript, onnxruntime, openvino, nncf); TFLite from
PyTorch needs ``export-tflite`` (litert-torch). Never imported by the runtime.
"""
from __future__ import annotations

from edgepose_export.api import (PRECISIONS, TARGETS, Artifact, CalibrationSet, ExportResult,
                                 ParityError, ParityReport, Tolerance, export_model)

__all__ = ["PRECISIONS", "TARGETS", "Artifact", "CalibrationSet", "ExportResult", "ParityError",
           "ParityReport", "Tolerance", "export_model"]

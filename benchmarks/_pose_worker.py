"""One side of ``bench_vs_ultralytics.py``, in a process of its own.

The parent starts one worker per side (Ultralytics in its own virtual
environment, edgepose in the project's) and speaks to it in JSON lines: one
request on stdin, one reply on stdout. Only one side works at a time (the
other waits for its next request), so two onnxruntime thread pools never spin
against each other.

Requests (``op``):

* ``images``: ``{"paths": [...]}`` reads the images once (OpenCV, BGR uint8).
* ``load``: ``{"name", "side": "ultralytics" | "edgepose", "model",
  "threads", "options"}`` builds a pipeline; replies with what it knows of
  itself (versions, input shape, onnxruntime threads).
* ``time``: ``{"name", "repeat"}`` runs every image ``repeat`` times; replies
  ``total_ms[image][run]`` (``perf_counter_ns`` around the whole call) and
  ``stages_ms[image][run]`` (the stage times the library itself reports).
* ``detect``: ``{"name"}`` runs every image once; replies the people found,
  per image: ``boxes`` (N, 4) xyxy, ``person_scores`` (N,), ``keypoints``
  (N, K, 3) x, y, score in image pixels (NaN where a keypoint was not found).
* ``quit``.

A failed request replies ``{"error": "...", "traceback": "..."}``; the worker
stays up. This file imports only the standard library at module level: the
Ultralytics environment has no edgepose, the edgepose one no Ultralytics.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any


class UltralyticsSide:
    """Ultralytics' own pipeline: ``YOLO(model, task="pose").predict(image, conf=...)``.

    Ultralytics opens its onnxruntime session with default options; after the
    first call the session is reopened with ``intra_op_num_threads=threads``
    (same file, same provider), so that both sides use the same threads.

    Without torchvision (see :func:`skip_torchvision_warmup`) Ultralytics'
    non-maximum suppression is its own pure-torch ``TorchNMS``.
    """

    def __init__(self, model: str, threads: int, options: dict[str, Any]) -> None:
        import importlib.util

        import onnxruntime as ort
        from ultralytics import YOLO

        if importlib.util.find_spec("torchvision") is None:
            skip_torchvision_warmup()

        self.conf = float(options.get("conf", 0.25))
        self.yolo = YOLO(model, task="pose")
        self.model = model
        self.threads = threads
        self._ort = ort
        self._reopened = False

    def _reopen_session(self) -> None:
        backend = self.yolo.predictor.model.backend
        so = self._ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.log_severity_level = 3
        backend.session = self._ort.InferenceSession(self.model, sess_options=so,
                                                     providers=["CPUExecutionProvider"])
        self._reopened = True

    def predict(self, image):
        if not self._reopened:
            self.yolo.predict(image, conf=self.conf, verbose=False)
            self._reopen_session()
        return self.yolo.predict(image, conf=self.conf, verbose=False)[0]

    def info(self) -> dict[str, Any]:
        import importlib.metadata as md

        session = self.yolo.predictor.model.backend.session
        return {"ultralytics": md.version("ultralytics"), "torch": md.version("torch"),
                "onnxruntime": self._ort.__version__,
                "input_shape": session.get_inputs()[0].shape,
                "threads": session.get_session_options().intra_op_num_threads,
                "conf": self.conf}

    @staticmethod
    def stages(result) -> dict[str, float]:
        return {k: float(v) for k, v in result.speed.items()}

    @staticmethod
    def people(result) -> dict[str, list]:
        kp = result.keypoints
        return {"boxes": result.boxes.xyxy.cpu().numpy().tolist(),
                "person_scores": result.boxes.conf.cpu().numpy().tolist(),
                "keypoints": kp.data.cpu().numpy().tolist() if kp is not None else []}


def skip_torchvision_warmup() -> None:
    """Lets Ultralytics predict without torchvision installed.

    ``AutoBackend.warmup`` starts with ``import torchvision`` (to make its NMS
    use torchvision's) and then, for an ONNX file on the CPU, does nothing
    else: the warm-up forward pass is only for GPUs, TorchScript and Triton.
    For exactly that case the import is skipped; any other format or device
    raises, so this never changes what Ultralytics runs.
    """
    from ultralytics.nn.autobackend import AutoBackend

    def warmup(self, imgsz=(1, 3, 640, 640), im=None):
        if self.format != "onnx" or self.device.type != "cpu":
            raise RuntimeError("the benchmark's warm-up without torchvision covers ONNX on the CPU "
                               f"only, got format {self.format!r} on {self.device.type!r}")

    AutoBackend.warmup = warmup


class EdgeposeSide:
    """``edgepose.Estimator(model, threads=threads, **options)``."""

    def __init__(self, model: str, threads: int, options: dict[str, Any]) -> None:
        import edgepose

        self.estimator = edgepose.Estimator(model, threads=threads, **options)
        self.options = options

    def predict(self, image):
        return self.estimator(image)

    def info(self) -> dict[str, Any]:
        import importlib.metadata as md

        import onnxruntime as ort

        out: dict[str, Any] = {"edgepose": md.version("edgepose"), "onnxruntime": ort.__version__,
                               "options": self.options}
        model = getattr(self.estimator, "_pose", None)
        backend = getattr(model, "backend", None)
        if backend is not None:
            out["backend"] = type(backend).__name__
        for attr in ("input_hw", "dynamic_input"):
            value = getattr(model, attr, None)
            if value is not None and not callable(value):
                out[attr] = value if isinstance(value, (bool, int, float, str)) else str(value)
        return out

    @staticmethod
    def stages(result) -> dict[str, float]:
        return {k: float(v) for k, v in result.timings_ms.items()}

    @staticmethod
    def people(result) -> dict[str, list]:
        import numpy as np

        n = len(result.keypoints)
        kp = np.concatenate([np.asarray(result.keypoints, np.float64),
                             np.asarray(result.scores, np.float64)[..., None]], axis=2)
        boxes = np.zeros((0, 4)) if result.boxes is None else np.asarray(result.boxes, np.float64)
        scores = getattr(result, "person_scores", None)
        scores = np.zeros(n) if scores is None else np.asarray(scores, np.float64)
        return {"boxes": boxes.tolist(), "person_scores": scores.tolist(), "keypoints": kp.tolist()}


SIDES = {"ultralytics": UltralyticsSide, "edgepose": EdgeposeSide}


class Worker:
    def __init__(self) -> None:
        self.images: list = []
        self.pipelines: dict[str, Any] = {}

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "images":
            import cv2

            self.images = []
            for path in req["paths"]:
                image = cv2.imread(path, cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"image {path!r} could not be read")
                self.images.append(image)
            return {"shapes": [list(im.shape) for im in self.images]}
        if op == "load":
            side = SIDES[req["side"]](req["model"], int(req["threads"]), req.get("options", {}))
            self.pipelines[req["name"]] = side
            side.predict(self.images[0])            # builds lazily-made parts before timing
            return {"info": side.info()}
        if op == "time":
            side = self.pipelines[req["name"]]
            total, stages = [], []
            for image in self.images:
                t_row, s_row = [], []
                for _ in range(int(req["repeat"])):
                    t0 = time.perf_counter_ns()
                    result = side.predict(image)
                    t_row.append((time.perf_counter_ns() - t0) / 1e6)
                    s_row.append(side.stages(result))
                total.append(t_row)
                stages.append(s_row)
            return {"total_ms": total, "stages_ms": stages}
        if op == "detect":
            side = self.pipelines[req["name"]]
            return {"people": [side.people(side.predict(image)) for image in self.images]}
        if op == "close":
            side = self.pipelines.pop(req["name"])
            close = getattr(getattr(side, "estimator", None), "close", None)
            if close is not None:
                close()
            return {}
        raise ValueError(f"unknown op {op!r}; expected images, load, time, detect, close or quit")


def serve(stdin=None) -> int:
    """Answers requests until ``quit`` or end of input. Library prints go to
    stderr: stdout is kept for the replies."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = os.fdopen(reply_fd, "w", buffering=1)
    worker = Worker()
    for line in stdin or sys.stdin:
        req = json.loads(line)
        if req.get("op") == "quit":
            break
        try:
            reply = worker.handle(req)
        except Exception as exc:        # reported to the parent, which stops the benchmark
            reply = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(serve())

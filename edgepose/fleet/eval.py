"""``edgepose eval`` over a device lab: the images sharded over Dask workers, one COCO evaluation.

:func:`evaluate_on_lab` splits the annotated images of a COCO-format file
(COCO, CrowdPose, AIC) into shards and runs them on the lab's workers, each
with its own runtime, the same model file (by sha256, :mod:`.models`) and
the same Estimator options a local run would use. Every worker runs
:func:`edgepose.evaluation.runner.predict_image`, the step the local
evaluation runs per image; the poses come back per image, are put back in the
annotation file's image order and scored once
(:func:`edgepose.evaluation.runner.score_coco`): the report is the one a
single machine with the same runtime build gives, detection for detection.

Images travel with the tasks as their encoded bytes, or as paths when every
worker reads the same files at the same path (checked on a sample by size
and sha256); ``images_via`` forces either.

Faults: a worker that dies has its unfinished shards run again elsewhere by
Dask's scheduler; the result says which shards were redone, where they were
lost and where they were done, and which workers left. Each shard's poses
are appended to a partial file (JSON lines) as they arrive, so a run cut
short keeps what was measured. Shards run one at a time per device when every
worker offers the ``device`` resource (``dask worker --resources device=1``).
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgepose.fleet.cluster import lab_workers
from edgepose.fleet.models import (DEFAULT_MAX_SHIP_MB, ModelRef, deliver_model, describe_model,
                                   local_model_path)

if TYPE_CHECKING:
    from distributed import Client

    from edgepose.evaluation.runner import EvaluationReport
    from edgepose.runtime import RuntimeOptions

__all__ = ["IMAGES_VIA", "Redo", "LabEvaluation", "evaluate_on_lab", "run_shard",
           "check_images", "release_run"]

#: How images reach the workers: decide per run, always as bytes, or always by path.
IMAGES_VIA = ("auto", "ship", "shared")
#: Shards sent to a worker ahead of the one it runs (the rest wait on the client).
_AHEAD = 2
#: Images compared by size and sha256 to decide that workers share the folder.
_SAMPLES = 3
#: Seconds between looks at the shards while none has arrived.
_POLL_S = 0.05
#: Seconds to wait for a finished shard's result (its worker may have left).
_FETCH_S = 10.0


@dataclass(frozen=True)
class Redo:
    """A shard a worker lost (it left before returning it), done again elsewhere."""

    shard: int
    images: int
    lost_on: str
    done_on: str


@dataclass(frozen=True, eq=False)
class LabEvaluation:
    """What :func:`evaluate_on_lab` measured, and how the lab ran it.

    Attributes:
        report: the :class:`~edgepose.evaluation.EvaluationReport` of all the
            images, as a local evaluation gives it.
        results: ``{image_id: PoseResult}`` in the annotations' image order
            (the poses in the dataset's keypoint set, image pixels).
        images_via: "ship" (bytes with the tasks) or "shared" (a path every
            worker reads).
        models: ``{"pose" | "detector": {worker: how it had the model}}``
            ("lab cache", "registry", "model dir", "mirror" or "shipped").
        images_by_worker: ``{worker: images it ran}``.
        redone: the shards lost by a worker that left, and where they were done.
        workers_left: the workers that left during the run.
        partial: the partial file written, or None.
    """

    report: EvaluationReport
    results: dict[int, Any]
    images_via: str
    models: dict[str, dict[str, str]]
    images_by_worker: dict[str, int]
    redone: tuple[Redo, ...] = ()
    workers_left: tuple[str, ...] = ()
    partial: str | None = None
    shards: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The lab's part, JSON-ready (the report has its own ``to_dict``)."""
        return {"images_via": self.images_via, "shards": self.shards,
                "models": self.models, "images_by_worker": self.images_by_worker,
                "redone": [vars(r) for r in self.redone],
                "workers_left": list(self.workers_left), "partial": self.partial}

    def format_lines(self) -> list[str]:
        """Plain-text lines about the lab: who ran what, what was redone."""
        lines = [f"lab: {self.shards} shards, images {self.images_via} "
                 + ("(bytes with the tasks)" if self.images_via == "ship"
                    else "(a path every worker reads)"),
                 "images per worker: " + ", ".join(f"{w} {n}" for w, n in
                                                   sorted(self.images_by_worker.items()))]
        for role, how in self.models.items():
            lines.append(f"{role} model: " + ", ".join(f"{w} {h}" for w, h in sorted(how.items())))
        for name in self.workers_left:
            lines.append(f"worker {name} left during the run")
        for r in self.redone:
            lines.append(f"shard {r.shard} ({r.images} images) was lost on {r.lost_on} and "
                         f"redone on {r.done_on}")
        if self.partial:
            lines.append(f"partial results: {self.partial}")
        return lines


# --- on the workers ---------------------------------------------------------------------

def check_images(folder: str, samples: list[tuple[str, int, str]]) -> bool:
    """Runs on a worker: whether it reads each sample ``(file, size, sha256)``
    in ``folder`` with the same size and sha256 as the client."""
    from edgepose._files import sha256_file

    for name, size, sha in samples:
        path = Path(folder) / name
        try:
            if path.stat().st_size != size or sha256_file(path) != sha:
                return False
        except OSError:
            return False
    return True


def _local_model(ref: ModelRef, cache_dir: str | None) -> str:
    return str(local_model_path(ref, cache_dir))


def _image(item: dict[str, Any]) -> np.ndarray:
    from edgepose.evaluation.runner import _read

    if item["path"] is not None:
        return _read(Path(item["path"]))
    from edgepose.images import import_cv2

    cv2 = import_cv2()
    image = cv2.imdecode(np.frombuffer(item["data"], np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{item['file']} could not be decoded as an image.")
    return image


# A worker keeps the Estimators of the run it is in, so that a run opens (and
# warms up) its model once per worker thread rather than once per shard: run key
# -> Estimators no shard is using. A shard of another run closes them;
# release_run closes them when the run ends. Process-wide by necessity: each
# task is a fresh call, and a Dask worker holds no other per-run state.
_IDLE: dict[str, list[Any]] = {}
_IDLE_LOCK = threading.Lock()


def _take_estimator(job: dict[str, Any]) -> Any:
    with _IDLE_LOCK:
        for key in [k for k in _IDLE if k != job["key"]]:
            for est in _IDLE.pop(key):
                est.close()
        idle = _IDLE.get(job["key"])
        if idle:
            return idle.pop()
    from edgepose.evaluation.runner import eval_estimator

    options = dict(job["options"])
    model = _local_model(job["model"], job["cache_dir"])
    _entry_preset(job["model"], model, options, "preset")
    detector = None
    if job["detector"] is not None:
        detector = _local_model(job["detector"], job["cache_dir"])
        _entry_preset(job["detector"], detector, options, "detector_preset")
    return eval_estimator(model, detector, runtime=job["runtime"], **options)


def _entry_preset(ref: ModelRef, path: str, options: dict[str, Any], key: str) -> None:
    """A registry model opened from a path: its entry's preset when no preset
    is given and the file carries no card (the order a name is opened in)."""
    if ref.preset is None or options.get(key) is not None:
        return
    from edgepose.card import read_card

    if read_card(path) is None:
        options[key] = ref.preset


def release_run(key: str) -> int:
    """Runs on a worker: closes the Estimators kept for run ``key``; returns how many."""
    with _IDLE_LOCK:
        idle = _IDLE.pop(key, [])
    for est in idle:
        est.close()
    return len(idle)


def run_shard(job: dict[str, Any], shard: dict[str, Any]) -> dict[str, Any]:
    """Runs on a worker: one shard's images through an Estimator of the job's
    model, each by :func:`~edgepose.evaluation.runner.predict_image`.

    Args:
        job: ``key`` (the run's), ``model``, ``detector``
            (:class:`~edgepose.fleet.models.ModelRef` or None), ``runtime``
            (RuntimeOptions), ``options`` (Estimator keywords), ``target``
            (the dataset's KeypointSet or None), ``k``, ``cache_dir``.
        shard: ``index`` and ``items``, each ``index`` (image position),
            ``image_id``, ``file``, ``path`` or ``data``, ``boxes``.

    Returns:
        ``{"shard", "worker", "images": [{"index", "image_id", "result",
        "latency_ms"}, ...]}``.
    """
    from distributed import get_worker

    from edgepose.evaluation.runner import predict_image

    worker = get_worker()
    est = _take_estimator(job)
    out = []
    try:
        for item in shard["items"]:
            latency: list[float] = []
            result = predict_image(est, _image(item), item["boxes"], job["target"], job["k"],
                                   latency)
            out.append({"index": item["index"], "image_id": item["image_id"], "result": result,
                        "latency_ms": latency[0]})
    except BaseException:
        est.close()
        raise
    with _IDLE_LOCK:
        _IDLE.setdefault(job["key"], []).append(est)
    return {"shard": shard["index"], "worker": str(worker.name), "images": out}


# --- on the client ----------------------------------------------------------------------

@dataclass
class _Run:
    """The client's bookkeeping of one lab evaluation."""

    key: str
    names: dict[str, str]                      # worker address -> name
    results: dict[int, Any] = field(default_factory=dict)    # image position -> result
    latency: dict[int, float] = field(default_factory=dict)
    done_on: dict[int, str] = field(default_factory=dict)    # shard -> worker name
    images_by_worker: dict[str, int] = field(default_factory=dict)


def _choose_images_via(client: Client, addresses: list[str], folder: Path, files: list[str],
                       images_via: str) -> str:
    if images_via not in IMAGES_VIA:
        raise ValueError(f"images_via must be one of {', '.join(IMAGES_VIA)}, got "
                         f"{images_via!r}.")
    if images_via == "ship":
        return "ship"
    from edgepose._files import sha256_file

    unique = list(dict.fromkeys(files))
    picks = sorted({0, len(unique) // 2, len(unique) - 1})[:_SAMPLES]
    samples = [(unique[i], (folder / unique[i]).stat().st_size, sha256_file(folder / unique[i]))
               for i in picks]
    where = str(folder.resolve())
    seen = {a: client.submit(check_images, where, samples, workers=[a],
                             allow_other_workers=False, pure=False,
                             key=f"edgepose-check-images-{uuid.uuid4().hex[:8]}")
            for a in addresses}
    blind = [a for a, f in seen.items() if not f.result()]
    if not blind:
        return "shared"
    if images_via == "shared":
        raise ValueError(
            f"{len(blind)} worker(s) ({', '.join(blind)}) do not read the images at {where} "
            "with the sizes and sha256 the client reads: mount the same folder at the same "
            "path on every worker, or let the images travel with the tasks (images_via='ship', "
            "--images-via ship).")
    return "ship"


def _plain(a: np.ndarray | None) -> Any:
    """An array as JSON-ready nested lists, NaN and inf as null."""
    if a is None:
        return None
    out = np.asarray(a, dtype=np.float64).astype(object)
    out[~np.isfinite(np.asarray(a, dtype=np.float64))] = None
    return out.tolist()


def _append_partial(path: Path, files: list[str], done: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for img in done["images"]:
            r = img["result"]
            f.write(json.dumps({
                "image_id": int(img["image_id"]), "file": files[img["index"]],
                "shard": done["shard"], "worker": done["worker"],
                "latency_ms": round(float(img["latency_ms"]), 3),
                "keypoints": _plain(r.keypoints), "scores": _plain(r.scores),
                "boxes": _plain(r.boxes), "person_scores": _plain(r.person_scores)}) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _redone(client: Client, run: _Run, shard_sizes: dict[int, int]
            ) -> tuple[tuple[Redo, ...], tuple[str, ...]]:
    """The shards on workers that left during the run (the scheduler's
    ``remove-worker`` events naming this run's task keys), and those of the
    run's workers that left (their addresses were live when it began; the
    scheduler's clock is not compared with this one)."""
    prefix = f"{run.key}-"
    redone, left = [], []
    for _, msg in client.get_events("all"):
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            continue
        worker = run.names.get(msg.get("worker", ""), msg.get("worker", "?"))
        if msg.get("worker") in run.names:
            left.append(worker)
        keys = set(msg.get("processing-tasks", ())) | set(msg.get("lost-computed-tasks", ()))
        for key in sorted(str(k) for k in keys if str(k).startswith(prefix)):
            shard = int(key[len(prefix):])
            redone.append(Redo(shard, shard_sizes[shard], worker, run.done_on.get(shard, "?")))
    return tuple(redone), tuple(dict.fromkeys(left))


def evaluate_on_lab(
    client: Client,
    model: str | os.PathLike[str],
    annotations: Any,
    images: str | os.PathLike[str],
    *,
    detector: str | os.PathLike[str] | None = None,
    runtime: RuntimeOptions | None = None,
    estimator_options: dict[str, Any] | None = None,
    gt_boxes: bool = False,
    keypoint_set: Any = None,
    sigmas: Any = None,
    area_source: str = "auto",
    pck_alphas: tuple[float, ...] = (0.05, 0.1, 0.2),
    per_keypoint: bool = False,
    workers: list[str] | None = None,
    images_via: str = "auto",
    shard_size: int | None = None,
    max_ship_mb: float = DEFAULT_MAX_SHIP_MB,
    retries: int = 1,
    partial: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool | Callable[[int, int], None] = False,
    no_worker_timeout_s: float = 60.0,
) -> LabEvaluation:
    """Evaluates a model over annotated images, sharded over a Dask lab.

    Args:
        client: a connected ``distributed.Client``.
        model: the pose model file (.onnx, .tflite, OpenVINO .xml) or
            registry name; the workers get it by sha256 (:mod:`.models`).
        annotations: a COCO-format annotation file (COCO, CrowdPose, AIC),
            or loaded annotations.
        images: the folder of the annotated images, on the client.
        detector: the person detector file or name, sent like the model.
        runtime: the :class:`~edgepose.runtime.RuntimeOptions` every worker
            opens the models with.
        estimator_options: further :class:`~edgepose.Estimator` keywords
            (``preset``, ``detector_preset``, ``padding``, ...) and a one-stage
            model's ``score_threshold``, applied on the workers as the local
            eval applies them (:func:`~edgepose.evaluation.runner.eval_estimator`).
        gt_boxes, keypoint_set, sigmas, area_source, pck_alphas,
            per_keypoint: as :func:`~edgepose.evaluation.evaluate_model`.
        workers: the workers to use, by name or address (``--devices``;
            None: all, and any that joins during the run).
        images_via: "auto" (a path when every worker reads the same files
            there, else bytes), "ship" or "shared".
        shard_size: images per task (None: about four shards per worker,
            at most 32 images each).
        max_ship_mb: the largest model shipped to a worker that lacks it.
        retries: times a shard that raised is tried again (a shard of a
            worker that died is always run again elsewhere).
        partial: a JSON-lines file each shard's poses are appended to as
            they arrive (None: none).
        cache_dir: the workers' edgepose cache (None: their environment's).
        progress: True for a progress bar on stderr counting the images
            done across the lab, or a callable ``(done, total)``.
        no_worker_timeout_s: give up when no worker that may run the shards
            (``workers``, or any) has been in the lab for this long.

    Returns:
        :class:`LabEvaluation`.

    Raises:
        FileNotFoundError: the annotation file, the image folder, an
            annotated image or the model is missing.
        ValueError: MPII annotations (evaluate them locally), nothing to
            evaluate, an unknown worker, a model over ``max_ship_mb`` that a
            worker lacks, ``images_via="shared"`` with a worker that does not
            see the folder, ``shard_size`` < 1.
        RuntimeError: the lab has no worker, a shard failed on the workers
            (the message names it and carries the worker's error), or every
            worker that may run the shards left (what was done is in
            ``partial``).
    """
    from edgepose.evaluation.mpii import MpiiAnnotations
    from edgepose.evaluation.runner import (_check_files, _check_not_empty, _dataset_set,
                                            _progress, image_boxes, load_annotations, score_coco)

    if shard_size is not None and not (isinstance(shard_size, int) and shard_size >= 1):
        raise ValueError(f"shard_size must be a positive integer or None, got {shard_size!r}.")
    ann = annotations if not isinstance(annotations, (str, os.PathLike)) \
        else load_annotations(annotations)
    if isinstance(ann, MpiiAnnotations):
        raise ValueError(f"{ann.source} is an MPII file: a lab evaluates COCO-format files "
                         "(COCO, CrowdPose, AIC); evaluate MPII without --cluster.")
    _check_not_empty(ann)
    folder = Path(images)
    files = list(ann.image_files)
    _check_files(folder, files)
    target = _dataset_set(ann.keypoint_names, keypoint_set)
    lab = lab_workers(client, workers)
    names = {w.address: w.name for w in lab}
    addresses = list(names)
    resources = {"device": 1} if all(w.is_device for w in lab) else None

    refs = {"pose": describe_model(model, "pose")}
    if detector is not None:
        refs["detector"] = describe_model(detector, "detector")
    delivered = {role: {names[a]: how for a, how in
                        deliver_model(client, ref, paths, addresses, max_ship_mb=max_ship_mb,
                                      cache_dir=cache_dir).items()}
                 for role, (ref, paths) in refs.items()}
    via = _choose_images_via(client, addresses, folder, files, images_via)

    eligible = ann.eligible_for_boxes()
    items = []
    for i, image_id in enumerate(ann.image_ids.tolist()):
        boxes = image_boxes(ann, i, gt_boxes, eligible)
        if boxes is None or len(boxes):
            items.append({"index": i, "image_id": image_id, "file": files[i], "boxes": boxes})
    size = shard_size or max(1, min(32, math.ceil(len(items) / (4 * len(addresses)))))
    shards = [items[s:s + size] for s in range(0, len(items), size)]
    run = _Run(key=f"edgepose-eval-{uuid.uuid4().hex[:8]}", names=names)
    job = {"key": run.key, "model": refs["pose"][0],
           "detector": refs["detector"][0] if detector else None,
           "runtime": runtime, "options": dict(estimator_options or {}), "target": target,
           "k": ann.num_keypoint_channels,
           "cache_dir": None if cache_dir is None else str(cache_dir)}

    partial_path = Path(partial) if partial is not None else None
    if partial_path is not None:
        partial_path.parent.mkdir(parents=True, exist_ok=True)
        partial_path.write_text("", encoding="utf-8")
    tick = _progress(progress, ann.num_images, "eval (lab)")
    done_images = ann.num_images - len(items)  # gt-boxes images without people: nothing to run
    try:
        _run_shards(client, run, job, shards, via, folder, resources,
                    addresses if workers is not None else None, retries, partial_path, files,
                    lambda n: tick(n, ann.num_images) if tick is not None else None,
                    done_images, no_worker_timeout_s)
    finally:
        client.run(release_run, run.key, on_error="ignore")

    results = {int(ann.image_ids[i]): run.results[i] for i in sorted(run.results)}
    latency = np.array([run.latency[i] for i in sorted(run.latency)])
    report = score_coco(ann, results, latency, gt_boxes=gt_boxes, target=target, sigmas=sigmas,
                        area_source=area_source, pck_alphas=pck_alphas,
                        per_keypoint=per_keypoint)
    redone, left = _redone(client, run, {s: len(sh) for s, sh in enumerate(shards)})
    return LabEvaluation(report=report, results=results, images_via=via, models=delivered,
                         images_by_worker=dict(run.images_by_worker), redone=redone,
                         workers_left=left,
                         partial=None if partial_path is None else str(partial_path),
                         shards=len(shards))


class _Watch:
    """Notices a lab left without a worker that may run the shards (they
    would wait for one forever) and gives up after ``timeout_s``."""

    def __init__(self, client: Client, allowed: list[str] | None, timeout_s: float) -> None:
        self.client, self.allowed, self.timeout_s = client, allowed, timeout_s
        self.last_look = 0.0
        self.alone_since: float | None = None

    def check(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last_look < 1.0:
            return
        self.last_look = now
        live = set(self.client.scheduler_info(n_workers=-1)["workers"])
        usable = live & set(self.allowed) if self.allowed is not None else live
        if usable:
            self.alone_since = None
            return
        self.alone_since = self.alone_since or now
        if now - self.alone_since >= self.timeout_s:
            who = ("the chosen workers (--devices) have" if self.allowed is not None
                   else "every worker has")
            raise RuntimeError(
                f"{who} left the lab for {self.timeout_s:g} s with {total - done} of {total} "
                "images still to run: start workers again (dask worker SCHEDULER ...) and run "
                "again; the poses done so far are in the partial file, if one was asked for.")


def _run_shards(client: Client, run: _Run, job: dict[str, Any], shards: list[list[dict]],
                via: str, folder: Path, resources: dict[str, float] | None,
                allowed: list[str] | None, retries: int,
                partial: Path | None, files: list[str], tick: Callable[[int], None],
                done_images: int, no_worker_timeout_s: float) -> None:
    """Submits the shards, a few per worker ahead, and collects them as they
    finish (looking at their futures' states: a finished shard whose worker
    leaves before it is fetched is run again, and is fetched then)."""
    # chosen workers (allowed) run the shards alone; the whole lab (None) lets
    # a worker that joins, or that its nanny restarted, take shards too
    in_flight = _AHEAD * (len(allowed) if allowed else len(run.names))

    def submit(index: int):
        items = [{**item, "path": str(folder.resolve() / item["file"]) if via == "shared" else None,
                  "data": (folder / item["file"]).read_bytes() if via == "ship" else None}
                 for item in shards[index]]
        return client.submit(run_shard, job, {"index": index, "items": items},
                             key=f"{run.key}-{index}", workers=allowed, resources=resources,
                             retries=retries, pure=False)

    done_images_at_start = done_images
    waiting = iter(range(len(shards)))
    pending = {}
    for index in waiting:
        pending[index] = submit(index)
        if len(pending) >= in_flight:
            break
    if done_images:
        tick(done_images)
    watch = _Watch(client, allowed, no_worker_timeout_s)
    try:
        while pending:
            arrived = 0
            for index, future in sorted(pending.items()):
                if future.status == "error":
                    exc = future.exception()
                    files_of = ", ".join(item["file"] for item in shards[index][:3])
                    raise RuntimeError(
                        f"shard {index} ({files_of}{', ...' if len(shards[index]) > 3 else ''}) "
                        f"failed on the lab: {type(exc).__name__}: {exc}") from exc
                if future.status != "finished":
                    continue
                try:
                    done = future.result(timeout=_FETCH_S)
                except TimeoutError:  # its worker left with it: the shard runs again
                    continue
                del pending[index]
                future.release()
                arrived += 1
                run.done_on[index] = done["worker"]
                run.images_by_worker[done["worker"]] = (
                    run.images_by_worker.get(done["worker"], 0) + len(done["images"]))
                for img in done["images"]:
                    run.results[img["index"]] = img["result"]
                    run.latency[img["index"]] = img["latency_ms"]
                if partial is not None:
                    _append_partial(partial, files, done)
                done_images += len(done["images"])
                tick(done_images)
                following = next(waiting, None)
                if following is not None:
                    pending[following] = submit(following)
            if not arrived:
                watch.check(done_images, sum(len(s) for s in shards) + done_images_at_start)
                time.sleep(_POLL_S)
    finally:
        for future in pending.values():
            future.cancel()

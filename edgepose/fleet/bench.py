"""``edgepose bench --cluster``: every configuration on every device of the
lab, one at a time per device.

**One at a time per device.** Each configuration is a task pinned to one
worker (``workers=[address]``, ``allow_other_workers=False``), and a
device's next configuration is submitted only when its previous one has
returned: a device never runs two configurations at once, whatever its
thread count, so timings never overlap. Dask resources alone (``device=1``)
cannot do this job: they would keep tasks apart, but let the scheduler put a
configuration on any device, while the lab wants *every* configuration on
*every* device. The tasks also ask for ``device=1`` on workers that declare
it (``dask worker --resources device=1``), so that the lab's other work
(``edgepose eval --cluster``) never runs beside a timing.

**Faults.** Each row is handed to ``on_row`` as it arrives (the CLI appends
it to a JSON-lines file), so nothing measured is lost. A worker that leaves
the scheduler (shut down, crashed, unplugged) is marked ``left`` with the
count of configurations it finished ("left after N of M configurations");
its unfinished configuration is not moved to another device (a timing
belongs to its device), and the other devices go on.

**Accuracy.** With annotations (``--annotations`` and ``--images``), each
device also measures the OKS AP of each configuration on those images with
its own runtime (:func:`edgepose.evaluation.evaluate_model`): the
annotation file and the images travel with the tasks (one copy per worker),
so keep them small, a few hundred images at most. Top-down models without a
detector are scored on the ground-truth boxes (``ap_mode`` says which).

**Models** travel by name and sha256 (:mod:`edgepose.fleet.models`): before
the sweep, each device looks for each model in its own lab cache, registry,
model dir or mirror and verifies the hash; the client ships the file to a
device that lacks it (:func:`edgepose.fleet.models.deliver_model`, up to
its size limit), and each task then finds the device's verified copy.

Worker-side functions (:func:`bench_on_worker`) are module-level, take and
return plain data, and import nothing of Dask.
"""
from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepose.bench.runner import BenchConfig, RunSettings
from edgepose.fleet.models import ModelRef
from edgepose.runtime import RuntimeOptions

if TYPE_CHECKING:
    import distributed

    from edgepose.fleet.cluster import LabWorker

__all__ = ["MAX_ACCURACY_BYTES", "config_to_dict", "config_from_dict",
           "accuracy_payload", "bench_on_worker", "LabBench", "run_lab_bench"]

#: The most bytes of annotations and images shipped for the AP (256 MB).
MAX_ACCURACY_BYTES = 256 * 1024 * 1024


# --- plain data across the wire -----------------------------------------------------

def config_to_dict(config: BenchConfig) -> dict[str, Any]:
    """A :class:`BenchConfig` as plain data (:func:`config_from_dict` undoes it)."""
    runtime = None if config.runtime is None else config.runtime.to_dict()
    return {"model": config.model, "detector": config.detector, "backend": config.backend,
            "detector_backend": config.detector_backend, "threads": config.threads,
            "runtime": runtime,
            "one_stage": None if config.one_stage is None else dict(config.one_stage)}


def config_from_dict(data: dict[str, Any]) -> BenchConfig:
    """The :class:`BenchConfig` of :func:`config_to_dict`."""
    runtime = None if data.get("runtime") is None else RuntimeOptions(**data["runtime"])
    return BenchConfig(model=data["model"], detector=data["detector"], backend=data["backend"],
                       detector_backend=data["detector_backend"], threads=data["threads"],
                       runtime=runtime, one_stage=data.get("one_stage"))


def accuracy_payload(annotations: str | os.PathLike, images: str | os.PathLike,
                     max_bytes: int = MAX_ACCURACY_BYTES) -> dict[str, Any]:
    """The annotation file and the images it names, as bytes, for the devices.

    Args:
        annotations: a COCO-format keypoint annotation file.
        images: the folder of its images.
        max_bytes: refuse more than this many bytes in all.

    Returns:
        ``{"annotations_name", "annotations", "images": {file name: bytes}}``.

    Raises:
        FileNotFoundError: the file, the folder or an annotated image is missing.
        ValueError: not COCO-format keypoints, or more than ``max_bytes``.
    """
    import json

    ann_path, folder = Path(annotations), Path(images)
    if not ann_path.is_file():
        raise FileNotFoundError(f"--annotations {ann_path} does not exist: pass a COCO-format "
                                "keypoint annotation file.")
    if not folder.is_dir():
        raise FileNotFoundError(f"--images {folder} is not a folder: pass the folder of the "
                                "annotated images.")
    raw = ann_path.read_bytes()
    try:
        names = [img["file_name"] for img in json.loads(raw)["images"]]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"--annotations {ann_path} is not a COCO-format file (expected "
                         "'images' with 'file_name's): the device lab's AP takes COCO "
                         "keypoint annotations.") from None
    total, files = len(raw), {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is annotated in {ann_path} but missing from "
                                    f"--images {folder}.")
        total += path.stat().st_size
        if total > max_bytes:
            raise ValueError(f"--annotations/--images: more than {max_bytes / 2**20:.0f} MB "
                             f"to send to every device ({len(files) + 1} of {len(names)} "
                             "images so far): the lab's AP is a quick check; pass a smaller "
                             "subset, or use edgepose eval --cluster for a full evaluation.")
        files[name] = path.read_bytes()
    return {"annotations_name": ann_path.name, "annotations": raw, "images": files}


# --- on the worker ------------------------------------------------------------------

def _model_on_worker(ref: ModelRef | None, cache_dir: str | None) -> Path | None:
    """This device's verified copy of a model, or None for no model."""
    if ref is None:
        return None
    from edgepose.fleet.models import local_model_path

    return local_model_path(ref, cache_dir)


def _accuracy_on_worker(config: BenchConfig, path: Path, det_path: Path | None,
                        accuracy: dict[str, Any]) -> dict[str, Any]:
    from edgepose.estimator import Estimator
    from edgepose.evaluation import evaluate_model

    backend = config.backend or RuntimeOptions().backend_for(path)
    with tempfile.TemporaryDirectory(prefix="edgepose-lab-") as tmp:
        folder = Path(tmp)
        ann = folder / accuracy["annotations_name"]
        ann.write_bytes(accuracy["annotations"])
        for name, data in accuracy["images"].items():
            target = folder / "images" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        det = None
        if det_path is not None:
            from edgepose.detectors import PersonDetector

            det_backend = config.detector_backend or RuntimeOptions().backend_for(det_path)
            det = PersonDetector.from_file(det_path, runtime=config.runtime_for(det_backend))
        try:
            with Estimator(path, det, runtime=config.runtime_for(backend)) as est:
                gt_boxes = det is None and not est.card.finds_people
                report = evaluate_model(est, ann, folder / "images", gt_boxes=gt_boxes)
        finally:
            if det is not None and hasattr(det, "close"):
                det.close()
    ap = None if report.coco is None else float(report.coco["AP"])
    return {"ap": ap, "ap_mode": report.mode, "ap_images": report.num_images}


def bench_on_worker(config: dict[str, Any], model: ModelRef, detector: ModelRef | None,
                    image_bytes: bytes, settings: dict[str, Any],
                    accuracy: dict[str, Any] | None = None, *,
                    cache_dir: str | None = None) -> dict[str, Any]:
    """Runs one configuration on the worker it is sent to (a Dask task).

    Args:
        config: :func:`config_to_dict` of the configuration.
        model, detector: the pose model and detector
            (:class:`edgepose.fleet.models.ModelRef`), found on this device
            by name and sha256 (:func:`edgepose.fleet.models.find_model`).
        image_bytes: the encoded image to time.
        settings: ``{"runs", "warmup", "duration_s"}``.
        accuracy: :func:`accuracy_payload`, or None for no AP.
        cache_dir: the device's edgepose cache (None: from its environment).

    Returns:
        the row of :func:`edgepose.bench.runner.run_config`, plus ``ap``,
        ``ap_mode``, ``ap_images`` (None without ``accuracy``) and
        ``ap_error`` (why the AP could not be measured, else None). A model
        the device cannot find or open gives an ``error`` row, not an
        exception.
    """
    from edgepose.bench.runner import _skipped, run_config

    cfg = config_from_dict(config)
    extra: dict[str, Any] = {"ap": None, "ap_mode": None, "ap_images": None, "ap_error": None}
    try:
        path = _model_on_worker(model, cache_dir)
        det_path = _model_on_worker(detector, cache_dir)
    except (FileNotFoundError, ValueError, OSError) as exc:
        return _skipped(cfg, str(exc), "error") | extra
    row = run_config(cfg, image_bytes, RunSettings(**settings), model_path=path,
                     detector_path=det_path)
    if accuracy is not None and row["status"] == "ok":
        try:
            extra |= _accuracy_on_worker(cfg, path, det_path, accuracy)
        except Exception as exc:  # noqa: BLE001 - the timing stands; the row says why
            extra["ap_error"] = f"{type(exc).__name__}: {exc}"
    return row | extra


# --- on the client ------------------------------------------------------------------

@dataclass
class LabBench:
    """What a lab run gave.

    Attributes:
        rows: one per configuration and device that returned, in arrival
            order; each has ``worker`` (the device's name) and ``index``
            (the configuration's position).
        devices: worker name -> ``{"address", "status" ("done" or "left"),
            "done", "total", "note"}``.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)


def _left_note(done: int, total: int) -> str:
    return f"left after {done} of {total} configuration{'s' if total != 1 else ''}"


def run_lab_bench(client: distributed.Client, workers: list[LabWorker],
                  configs: list[BenchConfig], *, models: dict[str, ModelRef],
                  image_bytes: bytes, settings: RunSettings,
                  accuracy: dict[str, Any] | None = None,
                  cache_dir: str | os.PathLike | None = None,
                  on_row: Callable[[dict[str, Any]], None] | None = None,
                  on_event: Callable[[str, dict[str, Any]], None] | None = None,
                  poll_s: float = 0.2) -> LabBench:
    """Runs every configuration on every worker, one at a time per worker.

    Args:
        client: a client of the lab.
        workers: the devices (:func:`edgepose.fleet.cluster.lab_workers`).
        configs: the configurations, run in this order on each device.
        models: argument -> :class:`~edgepose.fleet.models.ModelRef` of every
            model and detector of ``configs``, already on every worker
            (:func:`edgepose.fleet.models.deliver_model`).
        image_bytes: the encoded image to time.
        settings: runs, warm-up and duration of each configuration.
        accuracy: :func:`accuracy_payload` to measure the AP on each device.
        cache_dir: the workers' edgepose cache, where delivered models are
            (None: their environment's).
        on_row: called with each row as it arrives.
        on_event: called as ``on_event(kind, info)`` for ``"start"`` (a
            configuration sent: ``worker``, ``index``) and ``"left"`` (a
            device left: ``worker``, ``note``).
        poll_s: seconds between checks of the workers still present.

    Returns:
        the :class:`LabBench`.
    """
    from edgepose.fleet.cluster import scheduler_workers

    total = len(configs)
    data = {"image": image_bytes,
            "settings": {"runs": settings.runs, "warmup": settings.warmup,
                         "duration_s": settings.duration_s},
            "cache_dir": None if cache_dir is None else str(cache_dir)}
    # one copy on each worker, referenced by its tasks (scatter(broadcast=True) would log
    # a 'replicate' event the scheduler cannot serialize, breaking get_events for everyone)
    payload = data | ({"accuracy": accuracy} if accuracy else {})
    shared = {w.address: client.scatter([payload], workers=[w.address], hash=False)[0]
              for w in workers}
    queues = {w.address: deque(range(total)) for w in workers}
    result = LabBench(devices={w.name: {"address": w.address, "status": "running", "done": 0,
                                        "total": total, "note": None} for w in workers})
    running: dict[Any, tuple[LabWorker, int]] = {}
    run_id = uuid.uuid4().hex[:8]

    def submit(worker: LabWorker) -> None:
        if not queues[worker.address]:
            result.devices[worker.name]["status"] = "done"
            return
        i = queues[worker.address].popleft()
        config = configs[i]
        fut = client.submit(
            _run_task, config_to_dict(config), models[config.model],
            models[config.detector] if config.detector else None, shared[worker.address],
            key=f"edgepose-bench-{run_id}-{worker.name}-{i}", workers=[worker.address],
            allow_other_workers=False, resources={"device": 1} if worker.is_device else None,
            pure=False)
        running[fut] = (worker, i)
        if on_event is not None:
            on_event("start", {"worker": worker.name, "index": i})

    for w in workers:
        submit(w)
    def leave(fut: Any, worker: LabWorker) -> None:
        running.pop(fut, None)
        fut.cancel()
        queues[worker.address].clear()
        dev = result.devices[worker.name]
        dev["status"], dev["note"] = "left", _left_note(dev["done"], total)
        if on_event is not None:
            on_event("left", {"worker": worker.name, "note": dev["note"]})

    while running:
        finished = [f for f in running if f.done()]
        present = set(scheduler_workers(client)) if finished else set()
        for fut in finished:
            worker, i = running[fut]
            if fut.status != "finished" and worker.address not in present:
                leave(fut, worker)  # lost with its device (e.g. KilledWorker)
                continue
            running.pop(fut)
            if fut.status == "finished":
                row = fut.result()
            else:
                exc = fut.exception()
                row = {"status": "error", "reason": f"{type(exc).__name__}: {exc}",
                       **config_to_dict(configs[i])}
                row.pop("runtime", None)
                row.pop("one_stage", None)
            row = {"worker": worker.name, "index": i} | row
            result.rows.append(row)
            result.devices[worker.name]["done"] += 1
            submit(worker)
            if on_row is not None:
                on_row(row)
        if not running:
            break
        if not finished:
            time.sleep(poll_s)
        present = set(scheduler_workers(client))
        for fut, (worker, _) in list(running.items()):
            if worker.address not in present and not fut.done():
                leave(fut, worker)
    return result


def _run_task(config: dict[str, Any], model: ModelRef, detector: ModelRef | None,
              shared: dict[str, Any]) -> dict[str, Any]:
    """The task: :func:`bench_on_worker` with the image and settings sent once;
    the row also gets ``started_at`` and ``ended_at`` (the worker's Unix time)."""
    started = time.time()
    try:
        row = bench_on_worker(config, model, detector, shared["image"], shared["settings"],
                              shared.get("accuracy"), cache_dir=shared.get("cache_dir"))
    except Exception as exc:  # noqa: BLE001 - a row that says why beats a lost device
        from edgepose.bench.runner import _skipped

        row = _skipped(config_from_dict(config), f"{type(exc).__name__}: {exc}", "error")
        row |= {"ap": None, "ap_mode": None, "ap_images": None, "ap_error": None}
    return row | {"started_at": started, "ended_at": time.time()}

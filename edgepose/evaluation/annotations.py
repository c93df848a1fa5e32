"""COCO-format keypoint ground truth and detections, as columnar arrays.

Ground truth (:class:`CocoKeypoints`) loads COCO, CrowdPose and AI
Challenger annotation files (any keypoint count); detections
(:class:`KeypointDetections`) load COCO result files or come from
:class:`~edgepose.results.PoseResult` objects. Both keep the values exactly
as pycocotools reads them (float64, file order), so that
:func:`edgepose.evaluation.evaluate_coco` reproduces ``COCOeval``.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgepose._arrays import read_only
from edgepose.keypoints import KEYPOINT_SETS, KeypointSet
from edgepose.results import coco_keypoints

__all__ = ["CocoKeypoints", "KeypointDetections", "load_coco_keypoints", "load_json",
           "match_keypoint_set"]

# Category keypoint names in annotation files that differ from edgepose's.
_NAME_ALIASES = {"head": "head_top", "top_head": "head_top"}


def match_keypoint_set(names: Sequence[str]) -> KeypointSet | None:
    """The registered keypoint set whose names are ``names`` once
    normalised ("Right Shoulder" -> "right_shoulder", CrowdPose's "head" ->
    "head_top"), or None. Recognises COCO, CrowdPose and AIC files."""
    wanted = tuple(_NAME_ALIASES.get(n, n) for n in (
        "_".join(str(x).strip().lower().replace("-", " ").split()) for x in names))
    for kset in KEYPOINT_SETS.values():
        if kset.names == wanted:
            return kset
    return None


def load_json(source: str | Path | Mapping | Sequence, what: str) -> Any:
    """The parsed JSON of a file path, or ``source`` itself if already parsed."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{what} file {path} does not exist.")
        with open(path, encoding="utf-8") as f:
            try:
                return json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{what} file {path} is not valid JSON: {exc}.") from None
    return source


def _int_ids(values: list, what: str) -> NDArray[np.int64]:
    arr = np.array(values)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, got e.g. {list(values[:3])!r}.")
    return arr.astype(np.int64)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


_JSON_NUMBERS = frozenset({int, float})


def _numbers(values: Any) -> bool:
    """``values`` is a list of numbers (bools are not)."""
    if not isinstance(values, list):
        return False
    return _JSON_NUMBERS.issuperset(map(type, values)) or all(_is_number(v) for v in values)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + " ...>"


def _check_list(data: Mapping, key: str, where: str, example: str) -> list:
    value = data[key]
    if not isinstance(value, list):
        raise ValueError(f"{where}: {key!r} is a {type(value).__name__} ({_short(value)}); "
                         f"expected a list of objects such as {example}.")
    return value


def _check_coco(data: Mapping, where: str) -> None:
    """Checks the structure of a COCO-format keypoint file: every image an
    object with an integer 'id', every annotation one with integer 'id' and
    'image_id', a 'keypoints' list of numbers and a 'bbox' of 4 numbers.

    Raises:
        ValueError: naming the first offending entry (its index, key and
            value) and what is expected.
    """
    images = _check_list(data, "images", where, "{'id': 1, 'file_name': 'a.jpg'}")
    for i, im in enumerate(images):
        if not isinstance(im, Mapping):
            raise ValueError(f"{where}: images[{i}] is {_short(im)}; expected an object "
                             "{'id': <integer>, 'file_name': <name>}.")
        if "id" not in im:
            raise ValueError(f"{where}: images[{i}] has no 'id'; every image needs an integer "
                             "'id' (and its 'file_name').")
        if not _is_int(im["id"]):
            raise ValueError(f"{where}: images[{i}] has 'id' {_short(im['id'])}; expected an "
                             "integer.")
    anns = _check_list(data, "annotations", where,
                       "{'id': 1, 'image_id': 1, 'keypoints': [...], 'bbox': [x, y, w, h]}")
    for i, a in enumerate(anns):
        if not isinstance(a, Mapping):
            raise ValueError(f"{where}: annotations[{i}] is {_short(a)}; expected an object "
                             "with 'id', 'image_id', 'keypoints' and 'bbox'.")
        name = f"annotations[{i}]" + (f" (id {a['id']!r})" if "id" in a else "")
        for key in ("id", "image_id"):
            if key not in a:
                raise ValueError(f"{where}: {name} has no {key!r}; every annotation needs an "
                                 f"integer {key!r}.")
            if not _is_int(a[key]):
                raise ValueError(f"{where}: {name} has {key!r} {_short(a[key])}; expected an "
                                 "integer.")
        for key in ("category_id", "num_keypoints"):
            if key in a and not _is_int(a[key]):
                raise ValueError(f"{where}: {name} has {key!r} {_short(a[key])}; expected an "
                                 "integer.")
        if "area" in a and not _is_number(a["area"]):
            raise ValueError(f"{where}: {name} has 'area' {_short(a['area'])}; expected a "
                             "number (square pixels).")
        kp = a.get("keypoints")
        if "keypoints" in a and (not _numbers(kp) or len(kp) % 3):
            raise ValueError(f"{where}: {name} has 'keypoints' {_short(kp)}; expected a list "
                             "of numbers, x, y, v for each keypoint.")
        box = a.get("bbox")
        if "bbox" in a and (not _numbers(box) or len(box) != 4):
            raise ValueError(f"{where}: {name} has 'bbox' {_short(box)}; expected 4 numbers "
                             "[x, y, width, height].")
    if "categories" in data:
        cats = _check_list(data, "categories", where,
                           "{'id': 1, 'name': 'person', 'keypoints': [...]}")
        for i, cat in enumerate(cats):
            if not isinstance(cat, Mapping) or not _is_int(cat.get("id")):
                raise ValueError(f"{where}: categories[{i}] is {_short(cat)}; expected an "
                                 "object with an integer 'id' (and 'keypoints', the names).")
            if "keypoints" in cat and not isinstance(cat["keypoints"], list):
                raise ValueError(f"{where}: categories[{i}] has 'keypoints' "
                                 f"{_short(cat['keypoints'])}; expected a list of names.")


@dataclass(frozen=True, eq=False)
class CocoKeypoints:
    """Keypoint ground truth of a COCO-format annotation file.

    One row per annotation, in file order (the order pycocotools keeps
    within an image). Images are sorted by id, as ``COCOeval`` evaluates them.

    Attributes:
        image_ids: ``(I,)`` int64 ids of every image in the file, sorted.
        image_files: ``(I,)`` file names, aligned with ``image_ids``.
        crowd_index: ``(I,)`` float64 CrowdPose crowd index per image, NaN
            where the file has none.
        keypoint_names: the K names of the (first) category with keypoints.
        categories: ``(C,)`` int64 sorted ids of the file's categories (those
            ``COCOeval`` evaluates; annotations of unlisted categories are
            not evaluated).
        ids: ``(M,)`` int64 annotation ids.
        image_index: ``(M,)`` int64 index into ``image_ids`` of each annotation.
        category_ids: ``(M,)`` int64.
        keypoints: ``(M, K, 3)`` float64 (x, y, v) in image pixels, v = 0
            (not labelled), 1 (labelled, occluded) or 2 (visible).
        bbox_xywh: ``(M, 4)`` float64 boxes as the file gives them
            (COCO's x, y, width, height); see :attr:`boxes` for xyxy.
        area: ``(M,)`` float64 ``area`` field, NaN where absent (CrowdPose
            and AI Challenger files have none).
        iscrowd: ``(M,)`` bool (absent: False).
        num_keypoints: ``(M,)`` int64 ``num_keypoints`` field (absent: the
            number of keypoints with v > 0). pycocotools ignores annotations
            whose field is 0.
        source: where the annotations came from (a path, or "<dict>").
    """

    image_ids: NDArray[np.int64]
    image_files: tuple[str, ...]
    crowd_index: NDArray[np.float64]
    keypoint_names: tuple[str, ...]
    categories: NDArray[np.int64]
    ids: NDArray[np.int64]
    image_index: NDArray[np.int64]
    category_ids: NDArray[np.int64]
    keypoints: NDArray[np.float64]
    bbox_xywh: NDArray[np.float64]
    area: NDArray[np.float64]
    iscrowd: NDArray[np.bool_]
    num_keypoints: NDArray[np.int64]
    source: str = "<dict>"

    @property
    def num_images(self) -> int:
        return int(self.image_ids.shape[0])

    @property
    def num_keypoint_channels(self) -> int:
        """K."""
        return int(self.keypoints.shape[1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def boxes(self) -> NDArray[np.float64]:
        """``(M, 4)`` float64 xyxy boxes in image pixels."""
        b = self.bbox_xywh
        return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)

    @property
    def labelled(self) -> NDArray[np.bool_]:
        """``(M, K)`` bool: the keypoint is labelled (v > 0)."""
        return self.keypoints[:, :, 2] > 0

    def eligible_for_boxes(self) -> NDArray[np.bool_]:
        """``(M,)`` bool: annotations a top-down model is run on with
        ground-truth boxes: not crowd, at least one labelled keypoint, and a
        box of positive size (as MMPose's COCO loader)."""
        b = self.bbox_xywh
        return (~self.iscrowd & self.labelled.any(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0))


def load_coco_keypoints(source: str | Path | Mapping) -> CocoKeypoints:
    """Loads a COCO-format keypoint annotation file (COCO, CrowdPose, AIC).

    Args:
        source: the path of the JSON file, or its parsed content.

    Returns:
        the :class:`CocoKeypoints`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not COCO-format keypoint annotations (the message names
            the offending entry, its key and value, and what is expected),
            keypoints of different lengths, or repeated annotation ids.
    """
    data = load_json(source, "annotation")
    return coco_from_data(data, str(source) if isinstance(source, (str, Path)) else "<dict>")


def coco_from_data(data: Any, where: str) -> CocoKeypoints:
    """:func:`load_coco_keypoints` of parsed JSON ``data`` that came from
    ``where`` (named in the errors)."""
    if not isinstance(data, Mapping) or "annotations" not in data or "images" not in data:
        raise ValueError(
            f"{where} is not a COCO-format annotation file: expected a JSON object with "
            "'images' and 'annotations' (an MPII file is a list; load it with load_mpii).")
    _check_coco(data, where)
    images = sorted(data["images"], key=lambda im: im["id"])
    image_ids = _int_ids([im["id"] for im in images], "image ids")
    if len(np.unique(image_ids)) != len(image_ids):
        raise ValueError(f"{where} lists an image id more than once.")
    files = tuple(str(im.get("file_name", "")) for im in images)
    crowd = np.array([float(im.get("crowdIndex", np.nan)) for im in images], np.float64)

    names: tuple[str, ...] = ()
    for cat in data.get("categories", []):
        if cat.get("keypoints"):
            names = tuple(str(n) for n in cat["keypoints"])
            break

    anns = data["annotations"]
    position = {int(i): n for n, i in enumerate(image_ids)}
    kept = [a for a in anns if int(a["image_id"]) in position]
    if len(kept) != len(anns):
        warnings.warn(
            f"{len(anns) - len(kept)} annotations in {where} refer to images that are not in "
            "its 'images' list; they are left out, as pycocotools does.", stacklevel=2)
    k = len(names)
    rows = []
    for a in kept:
        if "keypoints" not in a:
            raise ValueError(f"annotation {a.get('id')} in {where} has no 'keypoints'.")
        kp = a["keypoints"]
        if k == 0:
            k = len(kp) // 3
        if len(kp) != 3 * k:
            raise ValueError(
                f"annotation {a.get('id')} in {where} has {len(kp)} keypoint values; expected "
                f"{3 * k} (x, y, v for {k} keypoints).")
        rows.append(kp)
    m = len(kept)
    keypoints = np.array(rows, dtype=np.float64).reshape(m, k, 3)
    ids = _int_ids([a["id"] for a in kept], "annotation ids")
    if len(np.unique(ids)) != m:
        raise ValueError(
            f"{where} repeats annotation ids; pycocotools would silently evaluate one of them "
            "twice. Give every annotation a unique id.")
    for a in kept:
        if "bbox" not in a:
            raise ValueError(f"annotation {a.get('id')} in {where} has no 'bbox'.")
    bbox = np.array([a["bbox"] for a in kept], dtype=np.float64).reshape(m, 4)
    num = np.array([a["num_keypoints"] if "num_keypoints" in a
                    else int(np.count_nonzero(keypoints[i, :, 2] > 0))
                    for i, a in enumerate(kept)], dtype=np.int64)
    category_ids = _int_ids([a.get("category_id", 1) for a in kept], "category ids")
    listed = [c["id"] for c in data.get("categories", [])]
    categories = np.unique(_int_ids(listed, "category ids") if listed else category_ids)
    return CocoKeypoints(
        image_ids=read_only(image_ids),
        image_files=files,
        crowd_index=read_only(crowd),
        keypoint_names=names or tuple(f"keypoint_{i}" for i in range(k)),
        categories=read_only(categories),
        ids=read_only(ids),
        image_index=read_only(np.array([position[int(a["image_id"])] for a in kept], np.int64)),
        category_ids=read_only(category_ids),
        keypoints=read_only(keypoints),
        bbox_xywh=read_only(bbox),
        area=read_only(np.array([float(a.get("area", np.nan)) for a in kept], np.float64)),
        iscrowd=read_only(np.array([bool(a.get("iscrowd", 0)) for a in kept], bool)),
        num_keypoints=read_only(num),
        source=where,
    )


@dataclass(frozen=True, eq=False)
class KeypointDetections:
    """Keypoint detections (COCO results) as arrays, D rows in result order.

    Attributes:
        image_ids: ``(D,)`` int64.
        category_ids: ``(D,)`` int64.
        keypoints: ``(D, K, 3)`` float64 (x, y, keypoint score), image pixels.
        scores: ``(D,)`` float64 person scores (the ranking key).
        area: ``(D,)`` float64 area used for COCO's area ranges: as
            pycocotools' ``loadRes``, the area of the box around all K
            keypoints (zeros included), or the ``bbox`` area when the
            results carry a ``bbox`` field.
    """

    image_ids: NDArray[np.int64]
    category_ids: NDArray[np.int64]
    keypoints: NDArray[np.float64]
    scores: NDArray[np.float64]
    area: NDArray[np.float64]

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[2] != 3:
            raise ValueError(f"keypoints must have shape (D, K, 3) as x, y, score, got {kp.shape}.")
        d = kp.shape[0]
        fields = {"image_ids": np.int64, "category_ids": np.int64, "scores": np.float64,
                  "area": np.float64}
        for name, dtype in fields.items():
            value = np.asarray(getattr(self, name), dtype=dtype)
            if value.shape != (d,):
                raise ValueError(f"{name} must have shape ({d},), got {value.shape}.")
            object.__setattr__(self, name, read_only(value))
        if not np.isfinite(kp[:, :, :2]).all():
            raise ValueError("detection keypoints must be finite, check for NaN or inf values.")
        if not np.isfinite(self.scores).all():
            raise ValueError("detection scores must be finite, check for NaN or inf values.")
        object.__setattr__(self, "keypoints", read_only(kp))

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @staticmethod
    def keypoint_box_area(keypoints: NDArray[np.float64]) -> NDArray[np.float64]:
        """pycocotools' ``loadRes`` area: ``(max x - min x) * (max y - min y)``
        over all K keypoints of each ``(D, K, >=2)`` detection."""
        x, y = keypoints[:, :, 0], keypoints[:, :, 1]
        if keypoints.shape[1] == 0:
            return np.zeros(len(keypoints))
        return (x.max(axis=1) - x.min(axis=1)) * (y.max(axis=1) - y.min(axis=1))

    @classmethod
    def empty(cls, num_keypoints: int) -> KeypointDetections:
        z = np.zeros(0)
        return cls(z, z, np.zeros((0, num_keypoints, 3)), z, z)

    @classmethod
    def from_coco(cls, results: str | Path | Sequence[Mapping], *,
                  num_keypoints: int | None = None) -> KeypointDetections:
        """Detections from a COCO keypoint results file (or its parsed list).

        Each result has ``image_id``, ``category_id``, ``keypoints`` (x, y,
        score triples) and ``score``. As pycocotools' ``loadRes``: when the
        first result has a non-empty ``bbox``, every area is the bbox's
        ``w * h``; otherwise the area of the keypoints' extent.

        Raises:
            ValueError: a result without those fields, or of another length.
        """
        data = load_json(results, "results")
        if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
            raise ValueError("results must be a list of COCO keypoint results (dicts).")
        if len(data) == 0:
            if num_keypoints is None:
                raise ValueError("empty results: pass num_keypoints= to say what K is.")
            return cls.empty(num_keypoints)
        for key in ("image_id", "keypoints", "score"):
            missing = [i for i, r in enumerate(data) if key not in r]
            if missing:
                raise ValueError(f"result {missing[0]} has no {key!r}; COCO keypoint results "
                                 "need image_id, category_id, keypoints and score.")
        lengths = {len(r["keypoints"]) for r in data}
        if len(lengths) != 1 or next(iter(lengths)) % 3:
            raise ValueError(f"results must all have 3 * K keypoint values, got lengths "
                             f"{sorted(lengths)}.")
        k = next(iter(lengths)) // 3
        if num_keypoints is not None and k != num_keypoints:
            raise ValueError(f"results have {k} keypoints, expected {num_keypoints}.")
        kp = np.array([r["keypoints"] for r in data], dtype=np.float64).reshape(len(data), k, 3)
        first_bbox = data[0].get("bbox")
        if first_bbox is not None and len(first_bbox) != 0:
            if any("bbox" not in r for r in data):
                raise ValueError("results: the first has a 'bbox', so every one needs one.")
            area = np.array([float(r["bbox"][2]) * float(r["bbox"][3]) for r in data])
        else:
            area = cls.keypoint_box_area(kp)
        return cls(_int_ids([r["image_id"] for r in data], "result image ids"),
                   _int_ids([r.get("category_id", 1) for r in data], "result category ids"),
                   kp, np.array([r["score"] for r in data], dtype=np.float64), area)

    @classmethod
    def from_results(cls, results: Mapping[int, Any], *, category_id: int = 1
                     ) -> KeypointDetections:
        """Detections from ``{image_id: PoseResult}``, exactly as
        ``PoseResult.to_coco`` would write them
        (:func:`edgepose.results.coco_keypoints`: a keypoint not found is
        0, 0 with score 0; NaN scores become 0; the person score ranks).
        Images are taken in the mapping's order."""
        kps, image_ids, scores = [], [], []
        k = None
        for image_id, result in results.items():
            n = len(result)
            k = result.keypoints.shape[1] if k is None else k
            if result.keypoints.shape[1] != k:
                raise ValueError("every PoseResult must have the same keypoint count.")
            if n == 0:
                continue
            kps.append(coco_keypoints(result.keypoints, result.scores))
            scores.append(np.nan_to_num(result.person_scores.astype(np.float64), nan=0.0))
            image_ids.append(np.full(n, int(image_id), np.int64))
        if not kps:
            return cls.empty(k or 0)
        kp = np.concatenate(kps)
        return cls(np.concatenate(image_ids), np.full(len(kp), category_id, np.int64), kp,
                   np.concatenate(scores), cls.keypoint_box_area(kp))

    def to_coco(self) -> list[dict[str, Any]]:
        """COCO keypoint results (plain Python types)."""
        return [{"image_id": int(i), "category_id": int(c), "keypoints": k.ravel().tolist(),
                 "score": float(s)}
                for i, c, k, s in zip(self.image_ids, self.category_ids, self.keypoints,
                                      self.scores)]

"""edgepose.evaluation: OKS AP/AR against pycocotools, PCK, PCKh, errors, runner.

pycocotools' ``COCOeval(..., "keypoints")`` is the reference: every OKS
case compares all ten stats (and the precision / recall arrays) with it on
the same detections. CrowdPose's official evaluation (crowdposetools) is
pycocotools with CrowdPose's sigmas and ``area = 0.53 * w * h``; the tests
reproduce it that way.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest

from edgepose.evaluation import (CocoKeypoints, KeypointDetections, bbox_size, compute_oks,
                                 evaluate_coco, evaluate_model, evaluate_pckh,
                                 head_size_from_boxes, keypoint_errors, load_coco_keypoints,
                                 load_mpii, main_eval, pck, resolve_sigmas, torso_size)
from edgepose.evaluation.coco import STAT_NAMES
from edgepose.evaluation.oks import REFERENCE_SIGMAS
from edgepose.keypoints import AIC14, COCO17, CROWDPOSE14, KeypointSet
from edgepose.results import PoseResult

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

COCO_SIGMAS = REFERENCE_SIGMAS["coco17"]
CROWDPOSE_SIGMAS = REFERENCE_SIGMAS["crowdpose14"]


# --- the reference -------------------------------------------------------------

def reference(gt: dict, dets: list, sigmas=None, image_ids=None) -> COCOeval:
    """pycocotools on deep copies (it mutates its inputs), quietly. Empty
    results are built by hand: ``loadRes`` cannot load an empty list."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"],
                               "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def crowdpose_as_coco(gt: dict) -> dict:
    """The ground truth as crowdposetools sees it: area = 0.53 * w * h."""
    out = copy.deepcopy(gt)
    for a in out["annotations"]:
        a["area"] = a["bbox"][3] * a["bbox"][2] * 0.53
    return out


def assert_parity(gt: dict, dets: list, sigmas=COCO_SIGMAS, *, ref_gt: dict | None = None,
                  **kwargs):
    """Our evaluation equals pycocotools' (stats to 1e-12, arrays exactly)."""
    ours = evaluate_coco(load_coco_keypoints(gt), _detections(dets, gt), sigmas=sigmas, **kwargs)
    ref = reference(ref_gt or gt, dets, sigmas, kwargs.get("image_ids"))
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.precision, ref.eval["precision"][..., 0])
    np.testing.assert_array_equal(ours.recall, ref.eval["recall"][..., 0])
    return ours, ref


def _detections(dets: list, gt: dict) -> KeypointDetections:
    k = len(gt["annotations"][0]["keypoints"]) // 3 if gt["annotations"] else 17
    return KeypointDetections.from_coco(dets, num_keypoints=k)


# --- synthetic datasets ----------------------------------------------------------

def _person(rng, k: int, x: float, y: float, w: float, h: float, labelled: float = 0.9):
    kp = np.zeros((k, 3))
    kp[:, 0] = x + rng.uniform(0, w, k)
    kp[:, 1] = y + rng.uniform(0, h, k)
    kp[:, 2] = np.where(rng.random(k) < labelled, rng.integers(1, 3, k), 0)
    kp[kp[:, 2] == 0, :2] = 0
    return kp


def make_dataset(rng, n_images: int = 60, k: int = 17, *, crowd_index: bool = False,
                 with_area: bool = True, max_people: int = 6):
    """Annotations with crowd regions, unlabelled people and all area ranges;
    detections: jittered copies with random (often tied) scores, false
    positives, and now and then more than 20 per image."""
    images, anns, dets = [], [], []
    next_id = 1
    for i in range(n_images):
        image_id = 1000 + 13 * i
        image = {"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480}
        if crowd_index:
            image["crowdIndex"] = float(np.round(rng.uniform(0, 1), 2))
        images.append(image)
        for _ in range(int(rng.integers(0, max_people))):
            w, h = np.exp(rng.uniform(np.log(8), np.log(400), 2))
            x, y = rng.uniform(0, 300, 2)
            crowd = rng.random() < 0.06
            kp = np.zeros((k, 3)) if crowd or rng.random() < 0.08 else _person(rng, k, x, y, w, h)
            ann = {"id": next_id, "image_id": image_id, "category_id": 1, "iscrowd": int(crowd),
                   "keypoints": kp.ravel().tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
                   "bbox": [float(x), float(y), float(w), float(h)]}
            if with_area:
                ann["area"] = float(w * h * rng.uniform(0.4, 0.9))
            anns.append(ann)
            next_id += 1
            if crowd or kp[:, 2].max() == 0:
                # detections inside crowd regions / around unlabelled people
                for _ in range(int(rng.integers(0, 3))):
                    d = _person(rng, k, x, y, w, h, labelled=1.0)
                    d[:, 2] = rng.random(k)
                    dets.append(_det(image_id, d, rng))
                continue
            for _ in range(int(rng.integers(0, 3))):
                d = kp.copy()
                d[:, :2] += rng.normal(0, rng.uniform(0.2, 0.06 * max(w, h)), (k, 2))
                d[:, 2] = rng.random(k)
                dets.append(_det(image_id, d, rng))
        extra = int(rng.integers(18, 30)) if rng.random() < 0.1 else int(rng.integers(0, 3))
        for _ in range(extra):
            d = _person(rng, k, *rng.uniform(0, 300, 2), *rng.uniform(10, 300, 2), labelled=1.0)
            d[:, 2] = rng.random(k)
            dets.append(_det(image_id, d, rng))
    cat = {"id": 1, "name": "person", "keypoints": list(COCO17.names) if k == 17 else []}
    return {"images": images, "annotations": anns, "categories": [cat]}, dets


def _det(image_id, kp, rng):
    # Scores rounded to one decimal: many ties, within and across images.
    return {"image_id": image_id, "category_id": 1, "keypoints": kp.ravel().tolist(),
            "score": float(np.round(rng.random(), 1))}


def simple_dataset():
    """Two images, four people: two medium, two large, all keypoints labelled."""
    rng = np.random.default_rng(7)
    anns = []
    boxes = [(1, 10, 10, 60, 120), (1, 200, 30, 150, 300), (2, 50, 50, 40, 90),
             (2, 300, 20, 200, 400)]
    for n, (image_id, x, y, w, h) in enumerate(boxes):
        kp = _person(rng, 17, x, y, w, h, labelled=1.0)
        anns.append({"id": n + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                     "keypoints": kp.ravel().tolist(), "num_keypoints": 17,
                     "bbox": [x, y, w, h], "area": 0.6 * w * h})
    gt = {"images": [{"id": 1, "file_name": "1.jpg"}, {"id": 2, "file_name": "2.jpg"}],
          "annotations": anns,
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names)}]}
    return gt


def perfect(gt: dict, scores=None) -> list:
    out = []
    for n, a in enumerate(gt["annotations"]):
        if a.get("iscrowd") or a["num_keypoints"] == 0:
            continue
        kp = np.array(a["keypoints"], float).reshape(-1, 3)
        kp[:, 2] = 1.0
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                    "score": 0.9 if scores is None else scores[n]})
    return out


# --- OKS -----------------------------------------------------------------------

def test_oks_is_bit_identical_to_pycocotools():
    gt, dets = make_dataset(np.random.default_rng(0), n_images=40)
    ref = reference(gt, dets)
    checked = 0
    for (image_id, cat), ious in ref.ious.items():
        if len(ious) == 0:
            continue
        gts, dts = ref._gts[image_id, cat], ref._dts[image_id, cat]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[:20]
        dk = np.array([dts[i]["keypoints"] for i in order]).reshape(len(order), 17, 3)
        gk = np.array([g["keypoints"] for g in gts]).reshape(len(gts), 17, 3)
        ours = compute_oks(dk, gk, [g["bbox"] for g in gts], [g["area"] for g in gts],
                           COCO_SIGMAS)
        np.testing.assert_array_equal(ours, ious)
        checked += ours.size
    assert checked > 500


def test_oks_of_ground_truth_without_keypoints_uses_the_doubled_box():
    gt = np.zeros((1, 17, 3))
    inside = np.full((1, 17, 2), 50.0)          # within [x - w, x + 2w] x [y - h, y + 2h]
    outside = np.full((1, 17, 2), 400.0)
    box, area = [[40, 40, 20, 20]], [300.0]
    assert compute_oks(inside, gt, box, area, COCO_SIGMAS)[0, 0] == 1.0
    d = 400.0 - 80.0
    expected = np.mean(np.exp(-(2 * d * d) / (2 * COCO_SIGMAS) ** 2 / (300 + np.spacing(1)) / 2))
    assert compute_oks(outside, gt, box, area, COCO_SIGMAS)[0, 0] == pytest.approx(expected, rel=1e-12)


def test_compute_oks_shapes_are_checked():
    with pytest.raises(ValueError, match=r"det_keypoints must have shape \(D, 17, 2\)"):
        compute_oks(np.zeros((1, 16, 2)), np.zeros((1, 17, 3)), [[0, 0, 1, 1]], [1], COCO_SIGMAS)
    assert compute_oks(np.zeros((0, 17, 2)), np.zeros((2, 17, 3)), np.ones((2, 4)), [1, 1],
                       COCO_SIGMAS).shape == (0, 2)


# --- parity with pycocotools ---------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_randomized_parity_with_pycocotools(seed):
    gt, dets = make_dataset(np.random.default_rng(seed), n_images=120)
    ours, _ = assert_parity(gt, dets)
    assert ours.stats[0] > 0.05 and ours.num_detections > 100


def test_perfect_predictions_give_ap_1():
    gt = simple_dataset()
    ours, _ = assert_parity(gt, perfect(gt))
    np.testing.assert_array_equal(ours.stats, np.ones(10))
    assert len(ours.matches) == 4


def test_shuffled_people_give_the_same_result():
    gt, dets = make_dataset(np.random.default_rng(11), n_images=30)
    rng = np.random.default_rng(0)
    for d, s in zip(dets, rng.permutation(len(dets))):
        d["score"] = float(s) / len(dets)          # distinct scores: order cannot matter
    shuffled = [dets[i] for i in rng.permutation(len(dets))]
    a, _ = assert_parity(gt, dets)
    b, _ = assert_parity(gt, shuffled)
    np.testing.assert_array_equal(a.stats, b.stats)
    gt2 = simple_dataset()
    assert_parity(gt2, perfect(gt2)[::-1])


def test_unlabelled_ground_truth_keypoints_do_not_count():
    gt = simple_dataset()
    dets = perfect(gt)
    for a, d in zip(gt["annotations"], dets):
        kp = np.array(a["keypoints"], float).reshape(-1, 3)
        kp[:5, :] = 0                             # the face is not labelled ...
        a["keypoints"] = kp.ravel().tolist()
        a["num_keypoints"] = 12
        dk = np.array(d["keypoints"]).reshape(-1, 3)
        dk[:5, :2] = 999.0                        # ... so wrong predictions there are free
        d["keypoints"] = dk.ravel().tolist()
    ours, _ = assert_parity(gt, dets)
    assert ours.stats[0] == 1.0


def test_missing_predicted_keypoints_cost_oks():
    gt = simple_dataset()
    dets = perfect(gt)
    for d in dets:
        dk = np.array(d["keypoints"]).reshape(-1, 3)
        dk[11:, :] = 0                            # legs not predicted: (0, 0, 0)
        d["keypoints"] = dk.ravel().tolist()
    ours, _ = assert_parity(gt, dets)
    assert 0 < ours.stats[0] < 1


def test_crowd_regions_absorb_detections():
    gt = simple_dataset()
    gt["annotations"].append({"id": 99, "image_id": 1, "category_id": 1, "iscrowd": 1,
                              "keypoints": [0] * 51, "num_keypoints": 0,
                              "bbox": [400, 300, 100, 100], "area": 8000.0})
    dets = perfect(gt)
    base, _ = assert_parity(gt, dets)
    in_crowd = [{"image_id": 1, "category_id": 1, "score": 0.95,
                 "keypoints": np.column_stack([np.full(17, 450.0), np.full(17, 350.0),
                                               np.ones(17)]).ravel().tolist()}] * 3
    ours, _ = assert_parity(gt, dets + in_crowd)
    np.testing.assert_array_equal(ours.stats, base.stats)   # ignored, not false positives
    far = [dict(d, keypoints=(np.array(d["keypoints"]) * 0 + 5).tolist()) for d in in_crowd]
    worse, _ = assert_parity(gt, dets + far)
    assert worse.stats[0] < 1


def test_empty_predictions():
    gt = simple_dataset()
    ours, ref = assert_parity(gt, [])
    np.testing.assert_array_equal(ours.stats, np.zeros(10))
    assert ours.num_detections == 0 and len(ours.matches) == 0


def test_images_without_ground_truth():
    gt = simple_dataset()
    gt["images"].append({"id": 3, "file_name": "3.jpg"})
    stray = [dict(perfect(gt)[0], image_id=3, score=0.99)]
    ours, _ = assert_parity(gt, perfect(gt) + stray)   # a false positive on image 3
    assert ours.stats[1] < 1
    gt["annotations"] = []
    ours, _ = assert_parity(gt, stray)
    np.testing.assert_array_equal(ours.stats, -np.ones(10))


def test_no_ground_truth_in_an_area_range_gives_minus_one():
    gt = simple_dataset()
    gt["annotations"] = [a for a in gt["annotations"] if a["area"] > 96 ** 2]
    ours, _ = assert_parity(gt, perfect(gt))
    assert ours["APm"] == -1 and ours["ARm"] == -1 and ours["AP"] == 1


def test_ties_in_scores_keep_result_order():
    gt = simple_dataset()
    good = perfect(gt)[:1]
    bad = [dict(good[0], keypoints=(np.array(good[0]["keypoints"]) + 2).tolist())]
    # Same score: the first in result order takes the person.
    first, _ = assert_parity(gt, good + bad)
    second, _ = assert_parity(gt, bad + good)
    assert first.stats[0] > second.stats[0]
    assert first.matches[:, 1].tolist() == [0] and second.matches[:, 1].tolist() == [0]
    # Ties across images: the lower image id comes first.
    gt2, dets2 = make_dataset(np.random.default_rng(5), n_images=25)
    for d in dets2:
        d["score"] = 0.5
    assert_parity(gt2, dets2)


def test_more_than_20_detections_per_image_are_cut():
    gt = simple_dataset()
    good = perfect(gt)
    junk = [{"image_id": 1, "category_id": 1, "score": 0.95,
             "keypoints": np.column_stack([np.full(17, 600.0 + i), np.full(17, 5.0),
                                           np.ones(17)]).ravel().tolist()} for i in range(20)]
    ours, _ = assert_parity(gt, junk + good)
    # image 1's two true detections rank 21st and 22nd and are dropped
    assert ours.stats[5] == pytest.approx(0.5)
    assert ours.num_detections == 22
    assert_parity(gt, junk + good, max_detections=20)


def test_area_ranges_and_image_subsets():
    gt, dets = make_dataset(np.random.default_rng(21), n_images=50)
    ids = [im["id"] for im in gt["images"]][::3]
    assert_parity(gt, dets, image_ids=ids)


def test_ground_truth_id_zero_quirk_is_reproduced():
    gt = simple_dataset()
    gt["annotations"][0]["id"] = 0
    with pytest.warns(UserWarning, match="id 0"):
        ours, _ = assert_parity(gt, perfect(gt))
    assert ours.stats[0] < 1


def test_results_with_a_bbox_use_its_area_as_pycocotools():
    gt = simple_dataset()
    dets = perfect(gt)
    for d in dets:
        d["bbox"] = [0, 0, 10, 10]  # area 100: outside "medium" and "large"
    ours, _ = assert_parity(gt, dets)
    assert ours.stats[0] == 1.0
    assert KeypointDetections.from_coco(dets).area.tolist() == [100.0] * 4


def test_several_categories():
    gt, dets = make_dataset(np.random.default_rng(3), n_images=30)
    rng = np.random.default_rng(1)
    gt["categories"].append({"id": 2, "name": "other", "keypoints": []})
    for a in gt["annotations"]:
        a["category_id"] = int(rng.integers(1, 3))
    for d in dets:
        d["category_id"] = int(rng.integers(1, 3))
    assert_parity(gt, dets)


def test_annotations_of_unlisted_categories_are_not_evaluated():
    gt, dets = make_dataset(np.random.default_rng(8), n_images=20)
    for a in gt["annotations"][::4]:
        a["category_id"] = 3                      # not in "categories"
    assert_parity(gt, dets)


def test_matching_in_many_small_chunks(monkeypatch):
    from edgepose.evaluation import coco

    gt, dets = make_dataset(np.random.default_rng(9), n_images=60)
    whole, _ = assert_parity(gt, dets)
    monkeypatch.setattr(coco, "_CHUNK_ELEMENTS", 1000)
    chunked, _ = assert_parity(gt, dets)
    np.testing.assert_array_equal(whole.precision, chunked.precision)


def test_crowdpose_parity_and_crowd_index_splits():
    gt, dets = make_dataset(np.random.default_rng(4), n_images=80, k=14, crowd_index=True,
                            with_area=False)
    gt["categories"][0]["keypoints"] = ["left_shoulder", "right_shoulder", "left_elbow",
                                        "right_elbow", "left_wrist", "right_wrist", "left_hip",
                                        "right_hip", "left_knee", "right_knee", "left_ankle",
                                        "right_ankle", "head", "neck"]
    ref_gt = crowdpose_as_coco(gt)
    ours = evaluate_coco(load_coco_keypoints(gt), KeypointDetections.from_coco(dets))
    assert ours.area_source == "bbox"
    np.testing.assert_array_equal(ours.sigmas, CROWDPOSE_SIGMAS)
    ref = reference(ref_gt, dets, CROWDPOSE_SIGMAS)
    np.testing.assert_allclose(ours.stats, ref.stats, atol=1e-12)
    # AP easy / medium / hard: crowdposetools re-runs on each image subset
    for name, (lo, hi) in {"easy": (0, 0.2), "medium": (0.2, 0.8), "hard": (0.8, 2)}.items():
        ids = [im["id"] for im in gt["images"] if lo <= im["crowdIndex"] < hi]
        sub = reference(ref_gt, [d for d in dets if d["image_id"] in ids], CROWDPOSE_SIGMAS,
                        image_ids=ids)
        p = sub.eval["precision"][:, :, :, 0, :]
        assert ours.crowd_ap[name] == pytest.approx(float(np.mean(p[p > -1])), abs=1e-12)
        assert ours[f"AP({name})"] == ours.crowd_ap[name]


# --- sigmas and loading -------------------------------------------------------------

def test_sigmas_come_from_the_file_names_or_the_set():
    assert resolve_sigmas(17, keypoint_names=COCO17.names).tolist() == COCO_SIGMAS.tolist()
    crowd = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
             "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
             "right_ankle", "head", "neck")
    np.testing.assert_array_equal(resolve_sigmas(14, keypoint_names=crowd), CROWDPOSE_SIGMAS)
    aic_names = ("Right Shoulder", "Right Elbow", "Right Wrist", "Left Shoulder", "Left Elbow",
                 "Left Wrist", "Right Hip", "Right Knee", "Right Ankle", "Left Hip",
                 "Left Knee", "Left Ankle", "Head top", "Neck")
    aic = resolve_sigmas(14, keypoint_names=aic_names)
    assert aic[0] == 0.01388152 and aic.dtype == np.float64
    np.testing.assert_array_equal(resolve_sigmas(14, keypoint_set="aic14"), aic)
    np.testing.assert_allclose(aic, AIC14.sigmas, rtol=1e-6)
    assert resolve_sigmas(14, keypoint_set=CROWDPOSE14).tolist() == CROWDPOSE_SIGMAS.tolist()
    assert resolve_sigmas(2, sigmas=[0.1, 0.2]).tolist() == [0.1, 0.2]


@pytest.mark.parametrize("kwargs, message", [
    ({"keypoint_names": ("a", "b")}, r"Cannot tell which OKS sigmas fit these 2 keypoints \(a, b\)"),
    ({"sigmas": [0.1]}, r"sigmas must have shape \(2,\)"),
    ({"sigmas": [0.1, -1]}, "positive and finite"),
    ({"keypoint_set": "coco17"}, "has 17 keypoints but the annotations have 2"),
    ({"keypoint_set": KeypointSet("two", ("a", "b"), (), ())}, "defines no OKS sigmas"),
])
def test_sigma_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resolve_sigmas(2, **kwargs)


def test_loading_errors():
    with pytest.raises(ValueError, match="not a COCO-format annotation file"):
        load_coco_keypoints({"images": []})
    gt = simple_dataset()
    gt["annotations"][1]["id"] = 1
    with pytest.raises(ValueError, match="repeats annotation ids"):
        load_coco_keypoints(gt)
    with pytest.raises(FileNotFoundError, match="annotation file /nonexistent.json"):
        load_coco_keypoints("/nonexistent.json")
    with pytest.raises(ValueError, match="not an MPII annotation file"):
        load_mpii(simple_dataset())
    with pytest.raises(ValueError, match="empty results: pass num_keypoints"):
        KeypointDetections.from_coco([])
    with pytest.raises(ValueError, match="has no 'score'"):
        KeypointDetections.from_coco([{"image_id": 1, "keypoints": [0] * 51}])


def test_evaluation_errors():
    gt = load_coco_keypoints(simple_dataset())
    dets = perfect(simple_dataset())
    with pytest.raises(ValueError, match=r"images that are not in the annotations \(image ids \[5\]\)"):
        evaluate_coco(gt, KeypointDetections.from_coco([dict(dets[0], image_id=5)]))
    with pytest.raises(ValueError, match="detections have 14 keypoints but the annotations have 17"):
        evaluate_coco(gt, KeypointDetections.empty(14))
    no_area = simple_dataset()
    del no_area["annotations"][0]["area"]
    with pytest.raises(ValueError, match="1 annotations have no 'area'; use area_source='bbox'"):
        evaluate_coco(load_coco_keypoints(no_area), KeypointDetections.from_coco(dets),
                      area_source="annotation")
    with pytest.raises(ValueError, match="detection keypoints must be finite"):
        KeypointDetections.from_coco([dict(dets[0], keypoints=[float("nan")] * 51)])


def test_annotation_arrays():
    gt = load_coco_keypoints(simple_dataset())
    assert len(gt) == 4 and gt.num_images == 2 and gt.keypoints.shape == (4, 17, 3)
    np.testing.assert_array_equal(gt.boxes[0], [10, 10, 70, 130])
    assert not gt.keypoints.flags.writeable
    assert np.isnan(gt.crowd_index).all()


def test_per_keypoint_breakdown():
    gt = simple_dataset()
    dets = perfect(gt)
    for d in dets:
        dk = np.array(d["keypoints"]).reshape(-1, 3)
        dk[0, 0] += 3.0                           # the nose is 3 px off, the rest exact
        d["keypoints"] = dk.ravel().tolist()
    m = evaluate_coco(load_coco_keypoints(gt), KeypointDetections.from_coco(dets),
                      per_keypoint=True)
    pk = m.per_keypoint
    assert pk.count.tolist() == [4] * 17
    assert pk.error_px[0] == pytest.approx(3.0) and (pk.error_px[1:] == 0).all()
    assert pk.similarity[0] < 1 and (pk.similarity[1:] == 1).all()
    assert m.to_dict()["per_keypoint"]["nose"]["count"] == 4


def test_from_results_matches_to_coco():
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 100, (3, 17, 2)).astype(np.float32)
    sc = rng.uniform(0, 1, (3, 17)).astype(np.float32)
    sc[0, 0] = np.nan
    r = PoseResult(kp, sc, COCO17)
    ours = KeypointDetections.from_results({7: r, 8: PoseResult.empty(COCO17)})
    ref = KeypointDetections.from_coco(r.to_coco(7))
    np.testing.assert_array_equal(ours.keypoints, ref.keypoints)
    np.testing.assert_array_equal(ours.scores, ref.scores)
    np.testing.assert_array_equal(ours.area, ref.area)
    assert ours.to_coco()[0]["keypoints"] == r.to_coco(7)[0]["keypoints"]


# --- PCK and errors -----------------------------------------------------------------

def test_pck_by_hand():
    gt = np.zeros((2, 3, 2))
    pred = np.zeros((2, 3, 2))
    pred[0, :, 0] = [1.0, 4.99, 5.0]      # person 0, box side 50: 0.1 * 50 = 5 px
    pred[1, :, 1] = [3.0, 30.0, 0.0]      # person 1, box side 100: 10 px
    mask = np.array([[True, True, True], [True, True, False]])
    size = bbox_size([[0, 0, 50, 20], [0, 0, 40, 100]])
    assert size.tolist() == [50, 100]
    r = pck(pred, gt, mask, size, 0.1, normaliser_name="bbox", names=("a", "b", "c"))
    assert r.correct.tolist() == [2, 1, 0] and r.counts.tolist() == [2, 2, 1]
    np.testing.assert_allclose(r.per_keypoint, [1.0, 0.5, 0.0])
    assert r.mean == pytest.approx(0.5) and r.pooled == pytest.approx(3 / 5)  # 5.0 is not < 5
    assert r.name == "PCK@0.1" and r.to_dict()["per_keypoint"]["b"] == 0.5


def test_pck_takes_read_only_and_strided_inputs():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (5, 4, 2))
    pred = gt + rng.normal(0, 3, gt.shape)
    wide = np.zeros((5, 8, 2))
    wide[:, ::2] = pred                           # a non-contiguous view
    gt.setflags(write=False)
    mask = np.ones((5, 4), bool)
    a = pck(wide[:, ::2], gt, mask, np.full(5, 50.0), 0.1)
    b = pck(pred, gt.copy(), mask, np.full(5, 50.0), 0.1)
    assert a.correct.tolist() == b.correct.tolist()
    assert pck(np.zeros((0, 4, 2)), np.zeros((0, 4, 2)), np.zeros((0, 4), bool),
               np.zeros(0), 0.1).counts.tolist() == [0] * 4


def test_pck_misses_and_bad_normalisers():
    gt = np.zeros((3, 2, 2))
    pred = np.zeros((3, 2, 2))
    pred[1] = np.nan                                  # a person the model missed
    r = pck(pred, gt, np.ones((3, 2), bool), [10.0, 10.0, 0.0], 0.2)
    assert r.counts.tolist() == [2, 2] and r.correct.tolist() == [1, 1]
    e = keypoint_errors(pred, gt, np.ones((3, 2), bool), [10.0, 10.0, 0.0])
    assert e.counts.tolist() == [2, 2] and e.mean_px == 0 and e.nme == 0
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        pck(pred, gt, np.ones((3, 2), bool), [1, 1, 1], 0)
    with pytest.raises(ValueError, match=r"normaliser must have shape \(3,\)"):
        pck(pred, gt, np.ones((3, 2), bool), [1, 1], 0.1)
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 2\)"):
        pck(pred, gt, np.ones((3, 3), bool), [1, 1, 1], 0.1)


def test_keypoint_errors_by_hand():
    gt = np.zeros((2, 2, 2))
    pred = np.array([[[3, 4], [0, 0]], [[0, 0], [6, 8]]], float)   # distances 5, 0, 0, 10
    mask = np.array([[True, True], [False, True]])
    e = keypoint_errors(pred, gt, mask, [10.0, 20.0], names=("a", "b"))
    assert e.counts.tolist() == [1, 2]
    np.testing.assert_allclose(e.per_keypoint_px, [5.0, 5.0])
    assert e.mean_px == pytest.approx(15 / 3)
    assert e.nme == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert e.nmse == pytest.approx((0.25 + 0 + 0.25) / 3)
    assert keypoint_errors(pred, gt, mask).nme != keypoint_errors(pred, gt, mask).nme  # NaN


def test_torso_and_head_normalisers():
    gt = np.zeros((2, 17, 2))
    gt[:, 5] = [10, 10]
    gt[:, 12] = [13, 14]
    mask = np.ones((2, 17), bool)
    mask[1, 12] = False
    t = torso_size(gt, mask, "left_shoulder", "right_hip", COCO17)
    assert t[0] == pytest.approx(5.0) and np.isnan(t[1])
    assert torso_size(gt, mask, 5, 12)[0] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="pass keypoint_set= to resolve it"):
        torso_size(gt, mask, "left_shoulder", 12)
    assert head_size_from_boxes([[0, 0, 30, 40]]).tolist() == [pytest.approx(30.0)]


# --- MPII ------------------------------------------------------------------------

def _mpii_people():
    joints = np.tile(np.arange(16, dtype=float)[:, None] * [10, 5], (2, 1, 1)) + 100
    joints[:, 9] = joints[:, 8] + [0, -60]        # head segment 60 px
    vis = np.ones((2, 16), int)
    vis[1, [0, 5]] = 0
    joints[1, [0, 5]] = -1
    return [{"image": f"{i}.jpg", "center": [200.0, 150.0], "scale": 1.8,
             "joints": joints[i].tolist(), "joints_vis": vis[i].tolist()} for i in range(2)]


def test_mpii_loading_and_pckh_by_hand():
    ann = load_mpii(_mpii_people())
    assert len(ann) == 2
    np.testing.assert_array_equal(ann.joints[0, 0], [99, 99])        # 1-based -> 0-based
    np.testing.assert_array_equal(ann.boxes[0], [199 - 180, 149 + 27 - 180, 199 + 180, 149 + 27 + 180])
    assert ann.head_sizes().tolist() == [60.0, 60.0]
    perfect_result = evaluate_pckh(ann.joints, ann)
    assert perfect_result.mean == 1.0 and perfect_result.pckh.counts.sum() == 30
    pred = ann.joints.copy()
    pred[:, 10] += [29.0, 0]                      # wrists: 29 px < 0.5 * 60 -> correct
    pred[:, 15] += [31.0, 0]                      # 31 px -> wrong
    pred[:, 6] += [100.0, 0]                      # pelvis: not in MPII's mean
    r = evaluate_pckh(pred, ann)
    assert r.pckh.per_keypoint[10] == 1 and r.pckh.per_keypoint[15] == 0
    assert r.mean == pytest.approx((26 - 2) / 26)  # 14 joints x 2 people - 2 invisible = 26
    assert r.body_parts["wrist"] == pytest.approx(0.5)
    assert r.mean_01 < r.mean
    assert evaluate_pckh(pred, ann, head_sizes=[100.0, 100.0]).pckh.per_keypoint[15] == 1
    with pytest.raises(ValueError, match=r"pred must have shape \(2, 16, 2\)"):
        evaluate_pckh(pred[:1], ann)


def test_mpii_head_size_falls_back_to_the_scale():
    people = _mpii_people()
    people[0]["joints_vis"][9] = 0
    ann = load_mpii(people)
    assert ann.head_sizes()[0] == pytest.approx(200 * 1.8 / 6)


# --- the runner on a fake model ------------------------------------------------------

class _Oracle:
    """A 'model' returning the ground truth (optionally only for given boxes)."""

    def __init__(self, gt: CocoKeypoints, files: dict[str, int]):
        self.gt, self.calls = gt, []
        self.by_shape = files

    def __call__(self, image, boxes=None):
        index = self.by_shape[int(image[0, 0, 0])]
        rows = np.flatnonzero(self.gt.image_index == index)
        if boxes is not None:
            rows = np.array([r for r in rows
                             if any(np.allclose(self.gt.boxes[r], b) for b in boxes)], int)
        self.calls.append(boxes is not None)
        kp = self.gt.keypoints[rows, :, :2].astype(np.float32)
        return PoseResult(kp, np.ones(kp.shape[:2], np.float32), COCO17,
                          boxes=self.gt.boxes[rows].astype(np.float32))


def _write_images(tmp_path, gt_dict):
    cv2 = pytest.importorskip("cv2")
    for i, im in enumerate(gt_dict["images"]):
        cv2.imwrite(str(tmp_path / im["file_name"]), np.full((480, 640, 3), i, np.uint8))


def test_evaluate_model_with_an_oracle(tmp_path):
    gt_dict = simple_dataset()
    _write_images(tmp_path, gt_dict)
    gt = load_coco_keypoints(gt_dict)
    oracle = _Oracle(gt, {0: 0, 1: 1})
    seen = []
    report = evaluate_model(oracle, gt, tmp_path, progress=lambda done, total: seen.append(done))
    assert seen == [1, 2] and oracle.calls == [False, False]
    assert report.coco.stats.tolist() == [1.0] * 10
    assert all(r.mean == 1.0 for r in report.pck)
    assert report.errors.mean_px == pytest.approx(0, abs=1e-4)  # float32 PoseResult
    boxed = evaluate_model(oracle, gt, tmp_path, gt_boxes=True, per_keypoint=True)
    assert oracle.calls[-2:] == [True, True] and boxed.coco["AP"] == 1.0
    assert boxed.to_dict(per_keypoint=True)["pck"][0]["per_keypoint"]["nose"] == 1.0
    table = boxed.format_table(per_keypoint=True)
    assert "AP " in table and "PCK@0.1" in table and "right_ankle" in table
    assert json.loads(json.dumps(boxed.to_dict()))["summary"]["AP"] == 1.0


def test_evaluate_model_errors(tmp_path):
    gt_dict = simple_dataset()
    gt = load_coco_keypoints(gt_dict)
    with pytest.raises(FileNotFoundError, match="2 annotated images are not in"):
        evaluate_model(lambda image: None, gt, tmp_path)
    _write_images(tmp_path, gt_dict)
    with pytest.raises(TypeError, match="the model must return a PoseResult, got NoneType"):
        evaluate_model(lambda image: None, gt, tmp_path)
    with pytest.raises(ValueError, match="returned 0 poses for 2 boxes"):
        evaluate_model(lambda image, boxes=None: PoseResult.empty(COCO17), gt, tmp_path,
                       gt_boxes=True)
    with pytest.raises(ValueError, match="evaluate them with gt_boxes=True"):
        evaluate_model(lambda image: None, load_mpii(_mpii_people()), tmp_path)


def _broken(change):
    gt = simple_dataset()
    change(gt)
    return gt


@pytest.mark.parametrize("change, message", [
    (lambda gt: gt["images"][1].pop("id"),
     r"<dict>: images\[1\] has no 'id'; every image needs an integer 'id'"),
    (lambda gt: gt["images"][0].update(id="1"),
     r"images\[0\] has 'id' '1'; expected an integer"),
    (lambda gt: gt.update(images={"id": 1, "file_name": "1.jpg"}),
     r"'images' is a dict \(\{'id': 1, 'file_name': '1.jpg'\}\); expected a list of objects"),
    (lambda gt: gt["images"].append("3.jpg"),
     r"images\[2\] is '3.jpg'; expected an object"),
    (lambda gt: gt["annotations"][2].pop("image_id"),
     r"annotations\[2\] \(id 3\) has no 'image_id'; every annotation needs an integer"),
    (lambda gt: gt["annotations"][0].pop("id"),
     r"annotations\[0\] has no 'id'"),
    (lambda gt: gt["annotations"][1].update(bbox=[1, 2, 3]),
     r"annotations\[1\] \(id 2\) has 'bbox' \[1, 2, 3\]; expected 4 numbers \[x, y, width, "
     r"height\]"),
    (lambda gt: gt["annotations"][1].update(bbox=[1, 2, 3, None]),
     r"annotations\[1\] \(id 2\) has 'bbox' \[1, 2, 3, None\]; expected 4 numbers"),
    (lambda gt: gt["annotations"][3].update(keypoints=[0, 0, "2"] * 17),
     r"annotations\[3\] \(id 4\) has 'keypoints' \[0, 0, '2', .* ...>; expected a list of "
     r"numbers, x, y, v"),
    (lambda gt: gt["annotations"][3].update(keypoints=[0, 0]),
     r"annotations\[3\] \(id 4\) has 'keypoints' \[0, 0\]; expected a list of numbers"),
    (lambda gt: gt["annotations"][0].update(num_keypoints=True),
     r"annotations\[0\] \(id 1\) has 'num_keypoints' True; expected an integer"),
    (lambda gt: gt["annotations"][0].update(area="big"),
     r"annotations\[0\] \(id 1\) has 'area' 'big'; expected a number"),
    (lambda gt: gt.update(annotations=None),
     r"'annotations' is a NoneType \(None\); expected a list of objects"),
    (lambda gt: gt["categories"].append({"name": "dog"}),
     r"categories\[1\] is \{'name': 'dog'\}; expected an object with an integer 'id'"),
])
def test_annotation_entries_are_checked_one_by_one(change, message):
    with pytest.raises(ValueError, match=message):
        load_coco_keypoints(_broken(change))


def test_annotation_checks_accept_numpy_numbers_and_every_real_file(shared_dir):
    gt = simple_dataset()
    gt["annotations"][0]["bbox"] = list(np.array(gt["annotations"][0]["bbox"], np.float32))
    gt["images"][0]["id"] = np.int64(1)
    assert load_coco_keypoints(gt).bbox_xywh.shape == (4, 4)
    for name in ("coco/test_coco.json", "crowdpose/test_crowdpose.json", "aic/test_aic.json"):
        assert len(load_coco_keypoints(shared_dir / "data" / name)) > 0


def test_nothing_to_evaluate_is_an_error(tmp_path):
    for change in (lambda gt: gt.update(annotations=[]),
                   lambda gt: [a.update(num_keypoints=0) for a in gt["annotations"]],
                   lambda gt: [a.update(iscrowd=1) for a in gt["annotations"]]):
        with pytest.raises(ValueError, match=r"nothing to evaluate: <dict> has 2 images and "
                                             r"\d annotations, none of them a person with a "
                                             r"labelled keypoint"):
            evaluate_model(lambda image: None, _broken(change), tmp_path)
    with pytest.raises(ValueError, match="nothing to evaluate: <list> has no annotated person"):
        evaluate_model(lambda image: None, load_mpii([]), tmp_path, gt_boxes=True)


def test_main_eval_reports_user_errors(capsys, tmp_path):
    rc = main_eval(["model.onnx", "--annotations", str(tmp_path / "none.json"),
                    "--images", str(tmp_path)])
    assert rc == 2
    assert "error: annotation file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main_eval(["m", "--annotations", "a", "--images", "i", "--detector", "d", "--gt-boxes"])


def test_stat_names_follow_pycocotools():
    assert STAT_NAMES == ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def test_evaluate_model_builds_an_estimator_with_runtime(shared_dir, tmp_path, monkeypatch):
    """A model file is opened with runtime= (the whole object reaches the
    Estimator and its backends), evaluated, and closed; the report equals
    that of the same Estimator built by hand."""
    import edgepose.estimator
    from edgepose.evaluation import load_annotations
    from edgepose.runtime import RuntimeOptions

    movenet = shared_dir / "models/movenet/onnx_converted/movenet_singlepose_lightning_int8_4.onnx"
    ann = load_annotations(shared_dir / "data/mpii/test_mpii.json")
    ov = RuntimeOptions(backend="openvino", threads=1)
    built = []

    class Spy(edgepose.estimator.Estimator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(edgepose.estimator, "Estimator", Spy)
    report = evaluate_model(movenet, ann, shared_dir / "data/mpii", gt_boxes=True, runtime=ov)
    (est,) = built
    assert est.runtime is ov and type(est._pose.backend).__name__ == "OpenVINOBackend"
    with pytest.raises(RuntimeError, match="closed"):
        est(np.zeros((64, 64, 3), np.uint8))        # closed by evaluate_model
    with Spy(movenet, runtime=ov) as by_hand:
        expected = evaluate_model(by_hand, ann, shared_dir / "data/mpii", gt_boxes=True)
    assert report.pckh.mean == expected.pckh.mean and report.pckh.mean > 0.5
    with pytest.raises(ValueError, match="runtime= build an Estimator for a model file or name; "
                                         "the model given is a ready function"):
        evaluate_model(lambda image: None, ann, tmp_path, runtime=ov)


# --- predictions with keypoints not found (NaN) ---------------------------------------------

def _oracle_results(gt_dict, lose):
    """{image_id: PoseResult} of the ground truth, keypoints ``lose`` not found
    (NaN, score -0.5 as a decoder gives it), person score 0.9."""
    results = {}
    for image in gt_dict["images"]:
        anns = [a for a in gt_dict["annotations"] if a["image_id"] == image["id"]]
        kp = np.array([a["keypoints"] for a in anns], np.float32).reshape(len(anns), 17, 3)
        xy, sc = kp[..., :2].copy(), np.ones((len(anns), 17), np.float32)
        xy[:, lose] = np.nan
        sc[:, lose] = -0.5
        results[image["id"]] = PoseResult(xy, sc, COCO17, person_scores=np.full(len(anns), 0.9))
    return results


def test_predictions_not_found_are_read_as_their_coco_file_says():
    # from_results reads NaN exactly as to_coco writes it (0, 0, score 0), so our
    # evaluation of the PoseResults equals pycocotools' on the written file.
    gt = simple_dataset()
    results = _oracle_results(gt, [11, 12, 15])
    written = [d for image_id, r in results.items() for d in r.to_coco(image_id)]
    triples = np.array(written[0]["keypoints"]).reshape(17, 3)
    np.testing.assert_array_equal(triples[[11, 12, 15]], 0.0)
    ours = KeypointDetections.from_results(results)
    np.testing.assert_array_equal(ours.keypoints, KeypointDetections.from_coco(written).keypoints)
    got = evaluate_coco(load_coco_keypoints(gt), ours, sigmas=COCO_SIGMAS)
    ref, _ = assert_parity(gt, written)
    np.testing.assert_array_equal(got.stats, ref.stats)
    assert 0 < got.stats[0] < 1                          # the lost keypoints cost OKS


@pytest.mark.parametrize("gt_boxes", [False, True])
def test_runner_leaves_keypoints_not_found_out_of_the_errors_and_fails_them_in_pck(
        tmp_path, gt_boxes):
    gt_dict = simple_dataset()
    _write_images(tmp_path, gt_dict)
    gt = load_coco_keypoints(gt_dict)
    lose = [0, 9]

    class Losing(_Oracle):
        def __call__(self, image, boxes=None):
            r = super().__call__(image, boxes)
            kp, sc = r.keypoints.copy(), r.scores.copy()
            kp[:, lose], sc[:, lose] = np.nan, 0.0
            return PoseResult(kp, sc, COCO17, boxes=r.boxes, person_scores=np.full(len(r), 0.9))

    report = evaluate_model(Losing(gt, {0: 0, 1: 1}), gt, tmp_path, gt_boxes=gt_boxes)
    counts = report.errors.counts
    assert counts[lose].tolist() == [0, 0] and (np.delete(counts, lose) == 4).all()
    assert report.errors.mean_px == pytest.approx(0, abs=1e-4)  # not the distance to (0, 0)
    for r in report.pck:
        assert r.mean == pytest.approx(15 / 17)          # the 2 lost keypoints are incorrect

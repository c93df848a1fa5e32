"""PoseResult: validation, selection, serialisation and drawing."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepose.keypoints import COCO17, MPII16
from edgepose.results import PoseResult, coco_keypoints, found_mask


def _result(n=3, boxes=True):
    rng = np.random.default_rng(0)
    kp = rng.uniform(10, 90, (n, 17, 2)).astype(np.float32)
    sc = rng.uniform(0, 1, (n, 17)).astype(np.float32)
    b = np.tile(np.array([[5, 5, 95, 95]], np.float32), (n, 1)) if boxes else None
    return PoseResult(kp, sc, COCO17, boxes=b, person_scores=np.arange(n, dtype=np.float32))


def test_arrays_are_read_only_copies():
    kp = np.zeros((1, 17, 2), np.float32)
    r = PoseResult(kp, np.zeros((1, 17), np.float32), COCO17)
    kp[0, 0] = 5
    assert r.keypoints[0, 0].tolist() == [0, 0]
    with pytest.raises(ValueError):
        r.keypoints[0, 0, 0] = 1


@pytest.mark.parametrize("kp, sc, message", [
    (np.zeros((1, 16, 2)), np.zeros((1, 16)), r"shape \(N, 17, 2\)"),
    (np.zeros((2, 17, 2)), np.zeros((1, 17)), r"scores must have shape \(2, 17\)"),
])
def test_shapes_are_checked(kp, sc, message):
    with pytest.raises(ValueError, match=message):
        PoseResult(kp, sc, COCO17)


def test_selection_by_int_slice_mask_and_indices():
    r = _result()
    assert len(r) == 3
    assert r[1].person_scores.tolist() == [1] and r[-1].person_scores.tolist() == [2]
    assert r[1:].person_scores.tolist() == [1, 2]
    assert r[np.array([True, False, True])].person_scores.tolist() == [0, 2]
    assert r[[2, 0]].person_scores.tolist() == [2, 0]
    np.testing.assert_array_equal(r[2].keypoints[0], r.keypoints[2])
    with pytest.raises(IndexError):
        r[3]
    with pytest.raises(IndexError, match="boolean mask"):
        r[np.array([True, False])]


def test_empty():
    r = PoseResult.empty(MPII16, with_boxes=True)
    assert len(r) == 0 and r.keypoints.shape == (0, 16, 2) and r.boxes.shape == (0, 4)
    assert r.to_coco(1) == [] and json.loads(r.to_json())["people"] == []


def test_default_person_score_is_the_mean_keypoint_score():
    sc = np.array([[0.5] * 16 + [np.nan]], np.float32)
    r = PoseResult(np.zeros((1, 17, 2)), sc, COCO17)
    assert r.person_scores[0] == pytest.approx(0.5 * 16 / 17)


def test_to_json_and_to_coco():
    r = _result(2)
    data = json.loads(r.to_json())
    assert data["keypoint_set"] == "coco17" and len(data["keypoint_names"]) == 17
    assert len(data["people"]) == 2 and len(data["people"][0]["keypoints"]) == 17
    assert data["people"][1]["box"] == [5, 5, 95, 95]
    coco = r.to_coco(image_id=7)
    assert coco[0]["image_id"] == 7 and coco[0]["category_id"] == 1
    triples = np.array(coco[1]["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(triples[:, :2], r.keypoints[1], rtol=1e-6)
    np.testing.assert_allclose(triples[:, 2], r.scores[1], rtol=1e-6)
    assert coco[1]["score"] == 1.0


def test_nan_scores_serialise_as_null():
    sc = np.full((1, 17), np.nan, np.float32)
    r = PoseResult(np.full((1, 17, 2), np.nan), sc, COCO17)
    assert json.loads(r.to_json())["people"][0]["scores"][0] is None


def test_draw_returns_an_annotated_copy():
    pytest.importorskip("cv2")
    image = np.zeros((100, 100, 3), np.uint8)
    r = _result(1)
    out = r.draw(image, score_threshold=0.0)
    assert image.sum() == 0  # the input is untouched
    assert out.shape == image.shape and out.sum() > 0
    with pytest.raises(ValueError, match="BGR uint8"):
        r.draw(np.zeros((10, 10), np.uint8))


# --- "not found" is NaN coordinates, and every writer says it its own way ------------------

def _with_missing():
    """Person 0 has keypoints 3 (score -0.5) and 9 (score NaN) not found; person 1
    has keypoint 0 not found (score 0); everything else found."""
    r = _result(2)
    kp, sc = r.keypoints.copy(), r.scores.copy()
    kp[0, 3] = kp[0, 9] = kp[1, 0] = np.nan
    sc[0, 3], sc[0, 9], sc[1, 0] = -0.5, np.nan, 0.0
    return PoseResult(kp, sc, COCO17, boxes=r.boxes, person_scores=r.person_scores)


def test_found_mask_reads_nan_coordinates():
    kp = np.array([[[1, 2], [np.nan, np.nan], [np.nan, 3], [np.inf, 0], [-1, -1]]], np.float32)
    assert found_mask(kp).tolist() == [[True, False, False, False, True]]
    assert found_mask(np.zeros((0, 17, 2))).shape == (0, 17)
    with pytest.raises(ValueError, match=r"keypoints must have shape \(\.\.\., K, 2\).*got \(3, 4\)"):
        found_mask(np.zeros((3, 4)))


def test_to_coco_writes_a_missing_keypoint_as_zero_zero_with_score_zero():
    r = _with_missing()
    coco = r.to_coco(image_id=3)
    for i in range(2):
        triples = np.array(coco[i]["keypoints"]).reshape(17, 3)
        found = np.isfinite(r.keypoints[i]).all(axis=1)  # independent reading
        np.testing.assert_array_equal(triples[~found], 0.0)
        np.testing.assert_allclose(triples[found, :2], r.keypoints[i][found], rtol=1e-6)
        np.testing.assert_allclose(triples[found, 2], r.scores[i][found], rtol=1e-6)
        assert np.isfinite(triples).all()
    assert np.flatnonzero(~np.array(coco[0]["keypoints"]).reshape(17, 3).any(axis=1)).tolist() \
        == [3, 9]
    json.dumps(coco, allow_nan=False)  # valid JSON for pycocotools


def test_coco_keypoints_zeroes_nan_scores_of_found_keypoints_only():
    kp = np.array([[[4, 5], [np.nan, np.nan]]], np.float32)
    sc = np.array([[np.nan, -0.25]], np.float32)
    np.testing.assert_array_equal(coco_keypoints(kp, sc), [[[4, 5, 0], [0, 0, 0]]])


def test_to_json_writes_a_missing_keypoint_as_null():
    r = _with_missing()
    people = json.loads(r.to_json(allow_nan=False))["people"]
    assert people[0]["keypoints"][3] == [None, None] and people[0]["keypoints"][9] == [None, None]
    assert people[1]["keypoints"][0] == [None, None]
    assert people[0]["scores"][3] == -0.5 and people[0]["scores"][9] is None
    assert people[0]["keypoints"][4] == pytest.approx(r.keypoints[0, 4].tolist(), abs=0.006)
    assert sum(p == [None, None] for person in people for p in person["keypoints"]) == 3
    assert r.to_dict()["people"][0]["keypoints"][3] == [None, None]


def test_draw_skips_a_missing_keypoint_and_its_limbs():
    pytest.importorskip("cv2")
    image = np.zeros((100, 100, 3), np.uint8)
    r = _result(1)
    kp, sc = r.keypoints.copy(), np.ones((1, 17), np.float32)
    kp[0, 0] = np.nan                                    # not found, though it scores 1
    hidden = sc.copy()
    hidden[0, 0] = 0.0                                   # the same picture: keypoint 0 skipped
    missing = PoseResult(kp, sc, COCO17, boxes=r.boxes).draw(image, score_threshold=0.5)
    kp_ok = kp.copy()
    kp_ok[0, 0] = r.keypoints[0, 0]
    skipped = PoseResult(kp_ok, hidden, COCO17, boxes=r.boxes).draw(image, score_threshold=0.5)
    drawn = PoseResult(kp_ok, sc, COCO17, boxes=r.boxes).draw(image, score_threshold=0.5)
    np.testing.assert_array_equal(missing, skipped)
    assert (missing != drawn).any()

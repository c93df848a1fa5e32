"""Keypoint boxes of the tracker with keypoints not found (NaN)."""
from __future__ import annotations

import numpy as np

from edgepose.video._boxes import keypoint_boxes


def _reference(kp, valid):
    """One pose at a time: the box of its found, valid keypoints, each side at
    least a quarter of the longer side and 2 px; NaN when there is none."""
    out = np.full((len(kp), 4), np.nan)
    for i in range(len(kp)):
        pts = kp[i][valid[i] & np.isfinite(kp[i]).all(axis=1)]
        if len(pts) == 0:
            continue
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        side = np.maximum(hi - lo, max((hi - lo).max() / 4, 2.0))
        c = (lo + hi) / 2
        out[i] = [c[0] - side[0] / 2, c[1] - side[1] / 2, c[0] + side[0] / 2, c[1] + side[1] / 2]
    return out


def test_keypoints_not_found_never_make_a_box_and_a_pose_without_any_has_none():
    rng = np.random.default_rng(4)
    kp = rng.uniform(0, 300, (4, 17, 2))
    valid = rng.uniform(size=(4, 17)) > 0.2
    kp[0, 2:6] = np.nan
    valid[0, 2:6] = True                                 # NaN, even if marked valid
    kp[1, 7, 0] = np.nan                                 # one NaN coordinate is enough
    kp[2] = np.nan                                       # nothing found: no box
    valid[2] = True
    valid[3] = False                                     # nothing valid: no box
    boxes = keypoint_boxes(kp, valid)
    np.testing.assert_allclose(boxes, _reference(kp, valid), rtol=1e-12)
    assert np.isfinite(boxes[:2]).all() and np.isnan(boxes[2:]).all()
    assert keypoint_boxes(np.zeros((0, 17, 2)), np.zeros((0, 17), bool)).shape == (0, 4)

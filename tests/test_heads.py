"""edgepose.heads: the typed head parameters, their validation, and the decode-time checks.

The decoders themselves are checked against NumPy references in tests/ops and
tests/test_estimator.py; here: every family's ``from_dict`` (types, ranges,
unknown and missing keys, context), the cards of every preset, and the checks
that need the output's size.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgepose import _validate as v
from edgepose import ops
from edgepose.card import ModelCard
from edgepose.heads import (
    HEAD_DECODERS,
    HEAD_PARAMS,
    BlazePoseParams,
    HeatmapParams,
    MoveNetParams,
    NanoDetParams,
    PafParams,
    PoseNetParams,
    SimCCParams,
    YoloxParams,
    decode_blazepose,
    decode_head,
    decode_heatmap,
    decode_movenet,
    decode_simcc,
    params_from_dict,
)
from edgepose.paf import group_people
from edgepose.presets import PRESETS, preset_card, preset_names

PAF = {"num_parts": 3, "limbs": [[0, 1], [1, 2]], "paf_channels": [[0, 1], [2, 3]]}


def test_every_head_has_a_parameters_class_and_no_regression_head():
    from edgepose.card import HEADS

    assert set(HEADS) == set(HEAD_PARAMS) and "regression" not in HEADS
    assert set(HEAD_DECODERS) <= set(HEAD_PARAMS)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_validates_and_exposes_typed_params(name):
    card = preset_card(name, (257, 257))
    assert isinstance(card.params, HEAD_PARAMS[card.head])
    for key, value in PRESETS[name]["head_params"].items():
        got = getattr(card.params, key)
        if key == "dequantize":
            assert {r: list(e) for r, e in got.items()} == value
        elif isinstance(value, list):
            assert np.array_equal(np.asarray(got), np.asarray(value))
        else:
            assert got == value


def test_defaults_are_the_decoders_defaults():
    assert SimCCParams().split_ratio == 2.0
    h = HeatmapParams()
    assert (h.layout, h.refine, h.blur_kernel, h.activation, h.offset) == (
        "NCHW", "dark", 11, "none", 0.0)
    p = PoseNetParams()
    import inspect

    from edgepose.posenet import decode_posenet

    sig = inspect.signature(decode_posenet).parameters
    assert all(sig[k].default == val for k, val in p.decoder_kwargs().items())
    sig = inspect.signature(ops.group_paf).parameters
    kwargs = PafParams(**PAF).grouping_kwargs((100, 100))
    assert all(sig[k].default == kwargs[k] for k in kwargs if k not in ("stride", "layout"))


@pytest.mark.parametrize("cls, data, message", [
    (SimCCParams, {"split_ratio": 0}, r"head_params.split_ratio must be a finite number in "
                                      r"\(0, 64\], got 0."),
    (SimCCParams, {"split_ratio": "2"}, r"head_params.split_ratio must be .* got '2'."),
    (SimCCParams, {"split_ratio": True}, r"head_params.split_ratio must be .* got True."),
    (SimCCParams, {"split_ration": 2.0}, r"head_params has an unknown field 'split_ration'. "
                                         r"Did you mean 'split_ratio'\? Valid fields: "
                                         r"split_ratio, channels, dequantize."),
    (SimCCParams, {"channels": [0, 1, 1]}, r"head_params.channels must not repeat a value, "
                                           r"got \[1\] more than once."),
    (SimCCParams, {"channels": [-1]}, r"head_params.channels must be a list of .* integers "
                                      r"from 0 to 4095, got \[-1\]."),
    (SimCCParams, {"channels": "012"}, r"head_params.channels must be a list of integers"),
    (HeatmapParams, {"blur_kernel": 10}, r"head_params.blur_kernel must be odd .* got 10."),
    (HeatmapParams, {"blur_kernel": 103}, r"head_params.blur_kernel must be an integer from 1 "
                                          r"to 101, got 103."),
    (HeatmapParams, {"refine": "DARK"}, r"head_params.refine must be one of 'none', 'dark', "
                                        r"'dark_udp', got 'DARK'."),
    (HeatmapParams, {"layot": "NHWC"}, r"Did you mean 'layout'\?"),
    (HeatmapParams, {"offset": 1e9}, r"head_params.offset must be a finite number in "
                                     r"\[-1024, 1024\], got 1000000000.0."),
    (MoveNetParams, {"split_ratio": 2.0}, r"head_params has an unknown field 'split_ratio'"),
    (BlazePoseParams, {"refine_kernel": 4}, r"head_params.refine_kernel must be odd .*or 0"),
    (BlazePoseParams, {"channels": [38, 39]}, r"head_params.channels names landmark 39, but "
                                              r"num_landmarks is 39"),
    (BlazePoseParams, {"refine_min_confidence": 1.5},
     r"head_params.refine_min_confidence must be a finite number in \[0, 1\], got 1.5."),
    (PoseNetParams, {"output_stride": "sixteen"}, r"head_params.output_stride must be an "
                                                  r"integer from 1 to 256, got 'sixteen'."),
    (PoseNetParams, {"max_poses": 10 ** 9}, r"head_params.max_poses must be an integer from 0 "
                                            r"to 1000"),
    (PoseNetParams, {"nms_radius": 0}, r"head_params.nms_radius must be a finite number in "
                                       r"\(0, 4096\]"),
    (PoseNetParams, {"local_max_radius": 1e7}, r"head_params.local_max_radius must be an "
                                               r"integer from 0 to 16, got 10000000.0."),
    (PoseNetParams, {"variant": "coarl"}, r"head_params.variant must be one of 'tfjs', 'coral'"),
    (PoseNetParams, {"dequantize": {"heatmaps": [0, 128]}},
     r"head_params.dequantize\['heatmaps'\] scale must be a finite number in \(0, 1e\+06\]"),
    (PoseNetParams, {"dequantize": {"heatmaps": 0.5}},
     r"head_params.dequantize\['heatmaps'\] must be \[scale, zero_point\], got 0.5."),
    (PafParams, {}, r"head_params is missing required field\(s\) 'num_parts', 'limbs', "
                    r"'paf_channels'."),
    (PafParams, {**PAF, "max_peaks": 65536}, r"head_params.max_peaks must be an integer from 1 "
                                             r"to 1024, got 65536."),
    (PafParams, {**PAF, "max_peaks": 0}, r"head_params.max_peaks must be an integer from 1"),
    (PafParams, {**PAF, "peak_radius": 10 ** 7}, r"head_params.peak_radius must be an integer "
                                                 r"from 0 to 16, got 10000000."),
    (PafParams, {**PAF, "stride": "eight"}, r"head_params.stride must be a finite number in "
                                            r"\(0, 1024\], got 'eight'."),
    (PafParams, {**PAF, "samples": 1}, r"head_params.samples must be an integer from 2 to 100"),
    (PafParams, {**PAF, "refine": 1}, r"head_params.refine must be one of True, False, got 1."),
    (PafParams, {**PAF, "limbs": [[0, 3], [1, 2]]}, r"head_params.limbs names part 3, but "
                                                    r"num_parts is 3"),
    (PafParams, {**PAF, "limbs": [[1, 1], [1, 2]]}, r"head_params.limbs row 0 joins 1 to itself"),
    (PafParams, {**PAF, "limbs": [[0, 1, 2]]}, r"head_params.limbs must be a list of \[a, b\] "
                                               r"pairs .* row 0 is \[0, 1, 2\]."),
    (PafParams, {**PAF, "paf_channels": [[0, 1]]}, r"head_params.limbs and "
                                                   r"head_params.paf_channels must have one row "
                                                   r"per limb, got 2 and 1 rows."),
    (PafParams, {**PAF, "paf_start": 2}, r"head_params.paf_start must be >= num_parts \(3\)"),
    (PafParams, {**PAF, "min_parts": 4}, r"head_params.min_parts must be at most num_parts"),
    (PafParams, {**PAF, "heatmap_threshold": float("nan")},
     r"head_params.heatmap_threshold must be a finite number in \[0, 1\], got nan."),
    (PafParams, {**PAF, "max_peak": 10}, r"Did you mean 'max_peaks'\?"),
    (YoloxParams, {"strides": [8, 8]}, r"head_params.strides must not repeat a value"),
    (YoloxParams, {"strides": [0]}, r"head_params.strides must be a list of 1 to 8 integers "
                                    r"from 1 to 1024, got \[0\]."),
    (YoloxParams, {"class_index": -1}, r"head_params.class_index must be an integer from 0"),
    (YoloxParams, {"reg_max": 7}, r"head_params has an unknown field 'reg_max'"),
    (NanoDetParams, {"reg_max": 0}, r"head_params.reg_max must be an integer from 1 to 64"),
    (NanoDetParams, {"center_offset": 2}, r"head_params.center_offset must be a finite number "
                                          r"in \[0, 1\], got 2."),
])
def test_from_dict_refuses(cls, data, message):
    with pytest.raises(ValueError, match=message):
        cls.from_dict(data)


def test_from_dict_checks_the_card_context():
    with pytest.raises(ValueError, match=r"head_params.channels must give one channel per "
                                         r"keypoint \(17\), got 2."):
        SimCCParams.from_dict({"channels": [0, 1]}, num_keypoints=17)
    with pytest.raises(ValueError, match=r"head_params.num_parts must equal the keypoint set's "
                                         r"18 keypoints, got 3."):
        PafParams.from_dict(PAF, num_keypoints=18)
    with pytest.raises(ValueError, match=r"head_params.paf_start is required when the outputs "
                                         r"are one 'maps' tensor"):
        PafParams.from_dict(PAF, roles=("maps",))
    with pytest.raises(ValueError, match=r"outputs has an unknown role 'heatmap' for this head. "
                                         r"Did you mean 'heatmaps'\?"):
        HeatmapParams.from_dict({}, roles=("heatmap",))
    NanoDetParams.from_dict({"strides": [8, 16]}, roles=("cls_8", "dis_16"))
    with pytest.raises(ValueError, match=r"unknown role 'cls_32'"):
        NanoDetParams.from_dict({"strides": [8, 16]}, roles=("cls_32",))
    with pytest.raises(ValueError, match=r"outputs is missing the role\(s\) 'simcc_y'"):
        SimCCParams().check_roles(("simcc_x",))


def test_params_are_frozen_and_hashable_apart_from_dequantize():
    p = PafParams.from_dict(PAF)
    assert p.limbs == ((0, 1), (1, 2)) and type(p.limbs[0][0]) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.max_peaks = 10
    assert PafParams.from_dict(PAF) == p
    assert hash(SimCCParams(split_ratio=2)) == hash(SimCCParams(split_ratio=2.0))
    with pytest.raises(ValueError, match="head must be one of"):
        params_from_dict("regression", {})


def test_card_refuses_what_the_params_refuse_and_names_the_field():
    data = preset_card("tfpose-mobilenet-v2").to_dict()
    data["head_params"] = dict(data["head_params"], max_peaks=65536)
    with pytest.raises(ValueError, match=r"head_params.max_peaks must be an integer from 1 to "
                                         r"1024, got 65536."):
        ModelCard.from_dict(data)
    del data["head_params"]["num_parts"]
    data["head_params"]["max_peaks"] = 10
    with pytest.raises(ValueError, match=r"head_params is missing required field\(s\) "
                                         r"'num_parts'."):
        ModelCard.from_dict(data)


# --- the shared checkers -------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, False, np.bool_(True), 1.0, "1", None, [1]])
def test_integer_is_never_a_bool_float_or_text(value):
    with pytest.raises(ValueError, match=r"^x must be an integer >= 0, got "):
        v.integer("x", value, low=0)


def test_checkers_accept_numpy_scalars_and_coerce():
    assert v.integer("x", np.int64(3), low=0, high=5) == 3
    assert type(v.integer("x", np.int64(3))) is int
    assert v.real("x", np.float32(0.5), low=0, high=1) == 0.5
    assert type(v.real("x", 1, low=0)) is float
    with pytest.raises(ValueError, match=r"x must be a finite number > 0, got 0"):
        v.real("x", 0, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"x must be a finite number, got inf."):
        v.real("x", float("inf"))
    assert v.choice("x", True, (True, False)) is True
    with pytest.raises(ValueError, match="x must be one of True, False, got 1."):
        v.choice("x", 1, (True, False))
    with pytest.raises(ValueError, match=r"x must be a list of 2 integers from 0 to 9, "
                                         r"got \(1, 2, 3\)."):
        v.int_tuple("x", (1, 2, 3), high=9, min_len=2, max_len=2)


# --- decode-time checks (the map size is known only then) ----------------------------------

def _heatmaps(n: int, k: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, k, h, w)).astype(np.float32)


def test_blur_kernel_must_fit_the_map():
    hm = _heatmaps(1, 2, 5, 8)
    with pytest.raises(ValueError, match=r"head_params.blur_kernel = 11 does not fit the "
                                         r"model's 5x8 map: it must be at most 9."):
        decode_head("heatmap", {"heatmaps": hm}, HeatmapParams(), (20, 32))
    kp, _ = decode_head("heatmap", {"heatmaps": hm}, HeatmapParams(blur_kernel=9), (20, 32))
    assert kp.shape == (1, 2, 2)
    # refine "none" uses no kernel
    decode_head("heatmap", {"heatmaps": hm}, HeatmapParams(refine="none"), (20, 32))


def test_channels_beyond_the_output_fail_naming_the_field():
    hm = _heatmaps(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"head_params.channels names channel 3, but the "
                                         r"model's output has 3 channels \(0 to 2\)."):
        decode_head("heatmap", {"heatmaps": hm}, {"channels": [0, 3]}, (64, 64))
    simcc = {"simcc_x": np.zeros((1, 2, 8), np.float32), "simcc_y": np.zeros((1, 2, 8), np.float32)}
    with pytest.raises(ValueError, match=r"head_params.channels names channel 5"):
        decode_head("simcc", simcc, {"channels": [5]}, (4, 4))


def test_decoding_with_a_mapping_equals_decoding_with_params():
    """decode_head validates a head_params mapping into the same typed object."""
    hm = _heatmaps(2, 4, 16, 12, seed=3)
    mapping = {"refine": "dark_udp", "blur_kernel": 5, "channels": [3, 1, 0, 2], "offset": 0.5}
    a = decode_head("heatmap", {"heatmaps": hm}, mapping, (64, 48))
    b = decode_head("heatmap", {"heatmaps": hm}, HeatmapParams.from_dict(mapping), (64, 48))
    np.testing.assert_array_equal(a[0], b[0])
    # independent NumPy reference of the channel selection, scaling and offset (refine none)
    kp, sc = decode_head("heatmap", {"heatmaps": hm}, {**mapping, "refine": "none"}, (64, 48))
    sel = hm[:, [3, 1, 0, 2]]
    flat = sel.reshape(2, 4, -1)
    idx = flat.argmax(-1)
    ref = np.stack([idx % 12, idx // 12], -1) * np.array([4.0, 4.0]) + 0.5
    np.testing.assert_allclose(kp, ref, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(sc, flat.max(-1))


def test_max_peaks_is_capped_by_the_map_size():
    """A card's max_peaks (up to 1024) never exceeds h * w of the map: the grouping
    equals that with max_peaks = h * w, and the kernel is never asked for more."""
    rng = np.random.default_rng(5)
    hm = rng.uniform(0, 1, (3, 4, 5)).astype(np.float32)
    pafs = rng.uniform(-1, 1, (4, 4, 5)).astype(np.float32)
    params = PafParams.from_dict({**PAF, "max_peaks": 1024, "layout": "NCHW", "min_parts": 1,
                                  "heatmap_threshold": 0.0, "min_paf_score": -1.0})
    assert params.grouping_kwargs((4, 5))["max_peaks"] == 20
    got = group_people(hm, pafs, params)
    want = ops.group_paf(hm, pafs, PAF["limbs"], PAF["paf_channels"], layout="CHW",
                         max_peaks=20, stride=8.0, heatmap_threshold=0.0, min_paf_score=-1.0,
                         min_parts=1)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


# --- "not found" at decode time: NaN coordinates, the score as decoded ---------------------

def _not_found_reference(kp, sc):
    """NumPy reading of the decoders' contract: found iff score > 0 (not NaN)."""
    found = np.nan_to_num(sc, nan=-1.0) > 0
    return np.where(found[..., None], kp, np.nan), found


def test_simcc_decoder_marks_not_found_with_nan_not_minus_one_over_split_ratio():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 1, (2, 17, 384)).astype(np.float32)
    y = rng.uniform(0.1, 1, (2, 17, 512)).astype(np.float32)
    x[0, 3] = -1.0                                       # max <= 0: not found
    y[1, 5] = 0.0                                        # score exactly 0: not found
    x[1, 7, 10] = np.nan                                 # NaN row: score NaN, not found
    kp, sc = decode_simcc({"simcc_x": x, "simcc_y": y}, SimCCParams(split_ratio=2.0), (256, 192))
    raw_kp, raw_sc = ops.decode_simcc(x, y, 2.0)
    np.testing.assert_array_equal(raw_kp[0, 3], [-0.5, -0.5])  # the C core's mark, unchanged
    expected, found = _not_found_reference(raw_kp, raw_sc)
    assert found.sum() == 2 * 17 - 3
    np.testing.assert_array_equal(kp, expected)
    np.testing.assert_array_equal(sc, raw_sc)              # scores as decoded (<= 0 or NaN)
    assert sc[0, 3] <= 0 and sc[1, 5] == 0 and np.isnan(sc[1, 7])


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_heatmap_decoder_marks_a_non_positive_peak_with_nan(layout):
    hm = _heatmaps(2, 17, 64, 48)
    hm[1, 4] = -0.5                                      # peak <= 0: not found
    hm[0, 2] = 0.0
    maps = hm if layout == "NCHW" else np.ascontiguousarray(hm.transpose(0, 2, 3, 1))
    params = HeatmapParams(layout=layout, refine="none", offset=0.5)
    kp, sc = decode_heatmap({"heatmaps": maps}, params, (256, 192))
    raw_kp, raw_sc = ops.decode_heatmap(hm, "none")
    expected, found = _not_found_reference(raw_kp * np.float32(4.0) + np.float32(0.5), raw_sc)
    assert not found[1, 4] and not found[0, 2] and found.sum() == 32
    np.testing.assert_allclose(kp, expected, rtol=1e-6)  # NaN where not found, equal_nan
    np.testing.assert_array_equal(sc, raw_sc)


def test_movenet_and_blazepose_decoders_mark_a_zero_score_with_nan():
    rng = np.random.default_rng(2)
    raw = rng.uniform(0.05, 1, (1, 1, 17, 3)).astype(np.float32)
    raw[0, 0, 6, 2] = 0.0
    kp, sc = decode_movenet({"keypoints": raw}, MoveNetParams(), (192, 192))
    assert np.isnan(kp[0, 6]).all() and sc[0, 6] == 0
    np.testing.assert_allclose(np.delete(kp[0], 6, 0),
                               np.delete(raw[0, 0, :, 1::-1] * 192, 6, 0), rtol=1e-6)
    lm = rng.uniform(10, 200, (1, 39, 5)).astype(np.float32)
    lm[0, 11, 3] = -200.0                                # sigmoid underflows to 0
    kp, sc = decode_blazepose({"landmarks": lm.reshape(1, -1)},
                              BlazePoseParams(num_landmarks=39, refine_kernel=0), (256, 256))
    assert np.isnan(kp[0, 11]).all() and sc[0, 11] == 0
    assert np.isfinite(np.delete(kp[0], 11, 0)).all()
    np.testing.assert_array_equal(np.delete(kp[0], 11, 0), np.delete(lm[0, :, :2], 11, 0))

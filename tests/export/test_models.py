"""The reference architectures (edgepose_export.models) and the synthetic training data.

RTMPose's parameter names and shapes are checked against the state dict of an
MMPose checkpoint as MMPose's code builds it, written out here from MMPose's
and MMDetection's sources (``CSPNeXt``, ``CSPLayer``, ``CSPNeXtBlock``,
``SPPBottleneck``, MMCV's ``ConvModule`` / ``DepthwiseSeparableConvModule``,
``RTMCCHead``, ``RTMCCBlock``, ``ScaleNorm``) and the RTMPose body configs,
without the official weights; parameter totals against the figures MMPose
publishes for its models.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")

from edgepose_export.models import (OpenPose, RTMPose, SimpleBaseline,  # noqa: E402
                                    keypoint_error_px, load_mmpose_checkpoint, openpose,
                                    render_figures, rtmpose, simplebaseline, train_briefly)
from edgepose_export.models.synthetic import (coco17_to_coco18, heatmap_targets,  # noqa: E402
                                              paf_targets, preprocess, simcc_targets)

# --- the MMPose state dict, written out from MMPose's modules -------------------------------

# RTMPose body configs (projects/rtmpose/rtmpose/body_2d_keypoint/rtmpose-*_coco-256x192.py):
# CSPNeXt P5, expand_ratio 0.5, channel_attention True; stem widths int(64 w // 2), int(64 w);
# stage i: int(c_i * w) channels, max(round(n_i * d), 1) blocks, n = (3, 6, 6, 3).
MMPOSE_RTMPOSE = {
    #     stem mid/out, stage channels,        blocks,        head in, params (MMPose)
    "t": ((12, 24), (48, 96, 192, 384), (1, 1, 1, 1), 384, 3.34e6),
    "s": ((16, 32), (64, 128, 256, 512), (1, 2, 2, 1), 512, 5.47e6),
    "m": ((24, 48), (96, 192, 384, 768), (2, 4, 4, 2), 768, 13.59e6),
    "l": ((32, 64), (128, 256, 512, 1024), (3, 6, 6, 3), 1024, 27.66e6),
}


def _conv_module(prefix: str, cin: int, cout: int, k: int, groups: int = 1) -> dict:
    """MMCV ConvModule(norm_cfg=BN): conv without bias, then bn (+ its buffers)."""
    keys = {f"{prefix}.conv.weight": (cout, cin // groups, k, k)}
    for name in ("weight", "bias", "running_mean", "running_var"):
        keys[f"{prefix}.bn.{name}"] = (cout,)
    keys[f"{prefix}.bn.num_batches_tracked"] = ()
    return keys


def _dwsep(prefix: str, cin: int, cout: int, k: int) -> dict:
    return {**_conv_module(f"{prefix}.depthwise_conv", cin, cin, k, groups=cin),
            **_conv_module(f"{prefix}.pointwise_conv", cin, cout, 1)}


def mmpose_rtmpose_state(size: str, k: int = 17, input_hw=(256, 192)) -> dict[str, tuple]:
    """Key -> shape of an MMPose RTMPose checkpoint's state_dict (without data_preprocessor)."""
    (stem_mid, stem_out), channels, blocks, head_in, _ = MMPOSE_RTMPOSE[size]
    keys = {}
    keys.update(_conv_module("backbone.stem.0", 3, stem_mid, 3))
    keys.update(_conv_module("backbone.stem.1", stem_mid, stem_mid, 3))
    keys.update(_conv_module("backbone.stem.2", stem_mid, stem_out, 3))
    cin = stem_out
    for i, (cout, n) in enumerate(zip(channels, blocks), start=1):
        stage = f"backbone.stage{i}"
        keys.update(_conv_module(f"{stage}.0", cin, cout, 3))
        csp = f"{stage}.1"
        if i == 4:  # SPPBottleneck(kernel sizes 5, 9, 13) before the CSP layer
            keys.update(_conv_module(f"{stage}.1.conv1", cout, cout // 2, 1))
            keys.update(_conv_module(f"{stage}.1.conv2", cout // 2 * 4, cout, 1))
            csp = f"{stage}.2"
        mid = cout // 2
        keys.update(_conv_module(f"{csp}.main_conv", cout, mid, 1))
        keys.update(_conv_module(f"{csp}.short_conv", cout, mid, 1))
        keys.update(_conv_module(f"{csp}.final_conv", 2 * mid, cout, 1))
        for b in range(n):  # CSPNeXtBlock(expansion 1.0): 3x3 ConvModule + 5x5 DW-separable
            keys.update(_conv_module(f"{csp}.blocks.{b}.conv1", mid, mid, 3))
            keys.update(_dwsep(f"{csp}.blocks.{b}.conv2", mid, mid, 5))
        keys[f"{csp}.attention.fc.weight"] = (2 * mid, 2 * mid, 1, 1)
        keys[f"{csp}.attention.fc.bias"] = (2 * mid,)
        cin = cout
    h, w = input_hw
    flat = (h // 32) * (w // 32)
    keys.update({
        "head.final_layer.weight": (k, head_in, 7, 7), "head.final_layer.bias": (k,),
        "head.mlp.0.g": (1,), "head.mlp.1.weight": (256, flat),
        "head.gau.gamma": (2, 128), "head.gau.beta": (2, 128),
        "head.gau.o.weight": (256, 512), "head.gau.uv.weight": (2 * 512 + 128, 256),
        "head.gau.ln.g": (1,), "head.gau.res_scale.scale": (256,),
        "head.cls_x.weight": (int(w * 2), 256), "head.cls_y.weight": (int(h * 2), 256),
    })
    return keys


# A few keys per size with their shapes, checked by hand against the configs.
REPRESENTATIVE = {
    "t": {"backbone.stem.0.conv.weight": (12, 3, 3, 3), "backbone.stem.2.bn.running_var": (24,),
          "backbone.stage1.0.conv.weight": (48, 24, 3, 3),
          "backbone.stage1.1.blocks.0.conv2.depthwise_conv.conv.weight": (24, 1, 5, 5),
          "backbone.stage3.1.attention.fc.weight": (192, 192, 1, 1),
          "backbone.stage4.1.conv2.conv.weight": (384, 768, 1, 1),
          "backbone.stage4.2.final_conv.conv.weight": (384, 384, 1, 1),
          "head.final_layer.weight": (17, 384, 7, 7), "head.mlp.1.weight": (256, 48),
          "head.gau.uv.weight": (1152, 256), "head.cls_x.weight": (384, 256),
          "head.cls_y.weight": (512, 256)},
    "s": {"backbone.stem.0.conv.weight": (16, 3, 3, 3),
          "backbone.stage2.1.blocks.1.conv1.conv.weight": (64, 64, 3, 3),
          "backbone.stage4.2.attention.fc.bias": (512,),
          "head.final_layer.weight": (17, 512, 7, 7), "head.gau.o.weight": (256, 512)},
    "m": {"backbone.stem.1.conv.weight": (24, 24, 3, 3),
          "backbone.stage3.1.blocks.3.conv2.pointwise_conv.conv.weight": (192, 192, 1, 1),
          "backbone.stage4.1.conv1.conv.weight": (384, 768, 1, 1),
          "backbone.stage4.2.blocks.1.conv2.depthwise_conv.bn.weight": (384,),
          "head.final_layer.weight": (17, 768, 7, 7), "head.gau.res_scale.scale": (256,)},
}


def _random_state(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.1
    return state


@pytest.mark.parametrize("size", ["t", "s", "m", "l"])
def test_rtmpose_state_dict_keys_and_shapes_are_mmposes(size):
    model = rtmpose(size)
    expected = mmpose_rtmpose_state(size)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]}, extra {extra[:5]}"
    assert got == expected
    for key, shape in REPRESENTATIVE.get(size, {}).items():
        assert got[key] == shape, key
    state = _random_state(expected)
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.head.gau.uv.weight, state["head.gau.uv.weight"])
    assert torch.equal(model.backbone.stage4[2].attention.fc.bias,
                       state["backbone.stage4.2.attention.fc.bias"])


@pytest.mark.parametrize("size", ["t", "s", "m", "l"])
def test_rtmpose_parameter_counts_match_mmposes_figures(size):
    count = sum(p.numel() for p in rtmpose(size).parameters())
    assert round(count / 1e6, 2) == MMPOSE_RTMPOSE[size][4] / 1e6


def test_rtmpose_other_input_size_and_keypoints():
    # e.g. rtmpose-m 384x288 (13.72 M) and a 26-keypoint Halpe head
    model = rtmpose("m", input_size=(384, 288))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 13.72
    got = {k: tuple(v.shape) for k, v in rtmpose("m", 26, (384, 288)).state_dict().items()}
    assert got == mmpose_rtmpose_state("m", 26, (384, 288))


def test_rtmpose_forward_shapes_and_card():
    model = rtmpose("t")
    with torch.no_grad():
        simcc_x, simcc_y = model(torch.randn(2, 3, 256, 192))
    assert simcc_x.shape == (2, 17, 384) and simcc_y.shape == (2, 17, 512)
    card = model.card()
    assert (card.task, card.head, card.keypoints) == ("topdown", "simcc", "coco17")
    assert card.input.name == "input" and card.input.size == (256, 192)
    assert card.input.color == "RGB" and card.input.mean == (123.675, 116.28, 103.53)
    assert dict(card.outputs) == {"simcc_x": "simcc_x", "simcc_y": "simcc_y"}
    assert card.head_params["split_ratio"] == 2.0
    small = rtmpose("t", input_size=(128, 96), widen_factor=0.125)
    assert small.card().input.size == (128, 96)
    with torch.no_grad():
        x, y = small(torch.randn(1, 3, 128, 96))
    assert x.shape == (1, 17, 192) and y.shape == (1, 17, 256)


def test_rtmpose_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Unknown RTMPose size 'xl'; available: t, s, m, l"):
        rtmpose("xl")
    with pytest.raises(ValueError, match="multiples of 32"):
        rtmpose("t", input_size=(250, 192))
    with pytest.raises(ValueError, match="name its keypoint set"):
        rtmpose("t", 26).card()
    with pytest.raises(ValueError, match="has 17 keypoints, the model 26"):
        rtmpose("t", 26).card("coco17")
    assert rtmpose("t", 18).card("coco18").keypoints == "coco18"


class _NotATensor:
    """An object the safe loader refuses (stands for MMEngine's objects in ``meta``)."""


def _mmpose_checkpoint(size: str, seed: int = 0) -> dict:
    state = _random_state(mmpose_rtmpose_state(size), seed)
    state["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
    state["data_preprocessor.std"] = torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)
    return {"meta": {"epoch": 420, "mmpose_version": "1.0.0", "seed": np.int64(21),
                     "best_score": np.float32(0.7),
                     "dataset_meta": {"sigmas": np.full(17, 0.079, np.float32),
                                      "flip_indices": [0, 2, 1]}},
            "state_dict": state}


def test_load_mmpose_checkpoint_takes_state_dict_and_drops_data_preprocessor(tmp_path):
    checkpoint = _mmpose_checkpoint("t")
    path = tmp_path / "rtmpose-t.pth"
    torch.save(checkpoint, path)
    state = load_mmpose_checkpoint(path)  # the safe loader accepts NumPy metadata
    assert set(state) == set(mmpose_rtmpose_state("t"))
    assert torch.equal(state["head.cls_x.weight"], checkpoint["state_dict"]["head.cls_x.weight"])
    bare = {k: v for k, v in checkpoint["state_dict"].items()}
    assert set(load_mmpose_checkpoint(bare)) == set(state)  # a plain state dict works too

    model = RTMPose.from_mmpose_checkpoint(path)
    assert model.name == "rtmpose-t-256x192" and not model.training
    direct = rtmpose("t")
    direct.load_state_dict(state, strict=True)
    direct.eval()
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        for a, b in zip(model(x), direct(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_from_mmpose_checkpoint_recognises_each_size():
    for size in ("s", "m"):
        model = RTMPose.from_mmpose_checkpoint(_mmpose_checkpoint(size))
        assert model.name == f"rtmpose-{size}-256x192"
    state = _random_state(mmpose_rtmpose_state("m", 26, (384, 288)))
    model = RTMPose.from_mmpose_checkpoint(state)
    assert model.num_keypoints == 26 and model.input_size == (384, 288)


def test_from_mmpose_checkpoint_errors(tmp_path):
    checkpoint = _mmpose_checkpoint("t")
    checkpoint["meta"]["object"] = _NotATensor()
    path = tmp_path / "unsafe.pth"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="safe loader refuses.*trusted=True"):
        load_mmpose_checkpoint(path)
    assert "head.gau.gamma" in load_mmpose_checkpoint(path, trusted=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mmpose_checkpoint(tmp_path / "missing.pth")

    state = _random_state(mmpose_rtmpose_state("t"))
    widened = dict(state, **{"backbone.stem.2.conv.weight": torch.zeros(40, 12, 3, 3)})
    with pytest.raises(ValueError, match="stem width 40.*not a known RTMPose size; known: t "):
        RTMPose.from_mmpose_checkpoint(widened)
    with pytest.raises(ValueError, match="missing head.cls_x.weight"):
        RTMPose.from_mmpose_checkpoint({k: v for k, v in state.items() if k != "head.cls_x.weight"})
    with pytest.raises(RuntimeError, match="Missing key.*head.gau.res_scale.scale"):
        RTMPose.from_mmpose_checkpoint(
            {k: v for k, v in state.items() if k != "head.gau.res_scale.scale"})
    prefixed = {f"module.{k}": v for k, v in state.items()}  # nothing is stripped but "state_dict"
    with pytest.raises(ValueError, match="Not an RTMPose"):
        RTMPose.from_mmpose_checkpoint({"state_dict": prefixed})
    with pytest.raises(ValueError, match="is a str, not a tensor"):
        load_mmpose_checkpoint({"state_dict": {"a": "b"}})


# --- SimpleBaseline ----------------------------------------------------------------------------

def mmpose_res50_heatmap_state(k: int = 17) -> dict[str, tuple]:
    """td-hm_res50_8xb64-210e_coco-256x192: MMPose ResNet-50 + HeatmapHead(2048 -> 3 x 256)."""
    def bn(prefix, c):
        return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}

    keys = {"backbone.conv1.weight": (64, 3, 7, 7), **bn("backbone.bn1", 64)}
    cin = 64
    for i, n in enumerate((3, 4, 6, 3), start=1):
        c = 64 * 2 ** (i - 1)
        for b in range(n):
            p = f"backbone.layer{i}.{b}"
            keys.update({f"{p}.conv1.weight": (c, cin if b == 0 else 4 * c, 1, 1),
                         **bn(f"{p}.bn1", c), f"{p}.conv2.weight": (c, c, 3, 3),
                         **bn(f"{p}.bn2", c), f"{p}.conv3.weight": (4 * c, c, 1, 1),
                         **bn(f"{p}.bn3", 4 * c)})
            if b == 0:
                keys.update({f"{p}.downsample.0.weight": (4 * c, cin, 1, 1),
                             **bn(f"{p}.downsample.1", 4 * c)})
        cin = 4 * c
    for j, c_in in enumerate((2048, 256, 256)):
        keys[f"head.deconv_layers.{3 * j}.weight"] = (c_in, 256, 4, 4)  # ConvTranspose2d(in, out)
        keys.update(bn(f"head.deconv_layers.{3 * j + 1}", 256))
    keys.update({"head.final_layer.weight": (k, 256, 1, 1), "head.final_layer.bias": (k,)})
    return keys


def test_simplebaseline_res50_is_mmposes():
    model = simplebaseline(50)
    expected = mmpose_res50_heatmap_state()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 34.00  # MMPose: 34.0 M
    loaded = SimpleBaseline.from_mmpose_checkpoint({"state_dict": _random_state(expected)})
    assert loaded.name == "simplebaseline-res50" and loaded.num_keypoints == 17


def test_simplebaseline_forward_shapes_and_card():
    model = simplebaseline(18, base_channels=16, deconv_out_channels=(32, 32, 32))
    with torch.no_grad():
        assert model(torch.randn(2, 3, 256, 192)).shape == (2, 17, 64, 48)
    card = model.card()
    assert (card.task, card.head, card.keypoints) == ("topdown", "heatmap", "coco17")
    assert dict(card.head_params) == {"layout": "NCHW", "refine": "dark", "blur_kernel": 11}
    assert card.input.mean == (123.675, 116.28, 103.53)
    assert card.input.std == (58.395, 57.12, 57.375)
    assert card.input.color == "RGB" and card.input.name == "input"
    assert dict(card.outputs) == {"heatmaps": "heatmaps"}
    with pytest.raises(ValueError, match="Unknown ResNet depth 20"):
        simplebaseline(20)


# --- OpenPose ----------------------------------------------------------------------------------

# tf-pose-estimation common.CocoPairs
TF_POSE_COCO_PAIRS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
                      (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
                      (2, 16), (5, 17)]


def _tiny_openpose() -> OpenPose:
    return openpose(channels=(8, 16, 16, 16), stage_channels=16, stages=2, stage_depth=1)


def test_openpose_any_size_and_card():
    model = _tiny_openpose()
    with torch.no_grad():
        for h, w in ((64, 96), (120, 80)):
            heatmaps, pafs = model(torch.randn(1, 3, h, w))
            assert heatmaps.shape == (1, 19, h // 8, w // 8)
            assert pafs.shape == (1, 38, h // 8, w // 8)
    card = model.card()
    assert (card.task, card.head, card.keypoints) == ("bottomup", "paf", "coco18")
    assert card.input.size == (368, 432) and card.input.resize == "letterbox"
    params = card.head_params
    assert params["layout"] == "NCHW" and params["num_parts"] == 18
    assert [tuple(limb) for limb in params["limbs"]] == TF_POSE_COCO_PAIRS
    assert [tuple(c) for c in params["paf_channels"]] == [(2 * i, 2 * i + 1) for i in range(19)]
    assert params["stride"] == 8 and params["offset"] == 3.5
    assert dict(card.outputs) == {"heatmaps": "heatmaps", "pafs": "pafs"}
    with pytest.raises(ValueError, match="multiples of 8"):
        openpose((100, 100))


def test_openpose_map_pixel_centre_is_8j_plus_3_5():
    # The receptive field of map pixel j is centred on input pixel 8 j + 3.5: probe it with
    # the gradient of one output pixel of a model whose pools average (max pools pick one
    # input of each 2x2 window, averages weigh all four: same windows, same centre).
    model = _tiny_openpose()
    for i, layer in enumerate(model.backbone):
        if isinstance(layer, torch.nn.MaxPool2d):
            model.backbone[i] = torch.nn.AvgPool2d(2, 2)
    for p in model.parameters():
        torch.nn.init.constant_(p, 0.01)
    model.eval()
    x = torch.zeros(1, 3, 96, 96, requires_grad=True)
    heatmaps, _ = model(x + 1.0)
    heatmaps[0, 0, 5, 6].backward()
    g = x.grad[0].abs().sum(0)
    ys, xs = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    cy, cx = float((g * ys).sum() / g.sum()), float((g * xs).sum() / g.sum())
    assert cy == pytest.approx(8 * 5 + 3.5, abs=1e-3) and cx == pytest.approx(8 * 6 + 3.5, abs=1e-3)


# --- ONNX export and onnxruntime parity -------------------------------------------------------

def _export_and_compare(model, x: torch.Tensor, path, output_names, dynamic_shapes=None,
                        others=()):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False,
                      input_names=["input"], output_names=list(output_names),
                      dynamic_shapes=dynamic_shapes)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], \
        "the export wrote more than one file (external data?)"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(output_names)
    for tensor in (x, *others):
        with torch.no_grad():
            expected = model(tensor)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, {"input": tensor.numpy()})
        for e, g in zip(expected, got):
            assert g.shape == tuple(e.shape)
            np.testing.assert_allclose(g, e.numpy(), rtol=0, atol=1e-4)
    return session


def _batch_dim():
    # positional (a tuple matching the inputs): torch matches dict keys to the
    # forward's argument names, not to the ONNX input name
    return ({0: torch.export.Dim("batch", min=1, max=64)},)


def test_rtmpose_t_exports_with_rtmposes_exact_signature(tmp_path):
    from edgepose import Estimator
    from edgepose.card import write_card

    model = rtmpose("t")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 256, 192, generator=gen)
    path = tmp_path / "rtmpose-t.onnx"
    session = _export_and_compare(model, x, path, ["simcc_x", "simcc_y"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("input", [1, 3, 256, 192])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [
        ("simcc_x", [1, 17, 384]), ("simcc_y", [1, 17, 512])]
    carded = write_card(path, tmp_path / "rtmpose-t-card.onnx", model.card())
    image = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    with Estimator(carded) as est:
        poses = est(image, boxes=[[50, 20, 250, 280]])
    assert poses.keypoints.shape == (1, 17, 2)


def test_tiny_rtmpose_exports_and_matches_onnxruntime(tmp_path):
    model = rtmpose("t", input_size=(128, 96), widen_factor=0.125)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 128, 96, generator=gen)
    _export_and_compare(model, x, tmp_path / "rtmpose.onnx", ["simcc_x", "simcc_y"],
                        _batch_dim(), others=[torch.randn(5, 3, 128, 96, generator=gen)])


def test_tiny_simplebaseline_exports_and_matches_onnxruntime(tmp_path):
    model = simplebaseline(18, input_size=(128, 96), base_channels=8,
                           deconv_out_channels=(16, 16, 16))
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 128, 96, generator=gen)
    _export_and_compare(model, x, tmp_path / "simplebaseline.onnx", ["heatmaps"], _batch_dim(),
                        others=[torch.randn(3, 3, 128, 96, generator=gen)])


def test_tiny_openpose_exports_with_dynamic_size_and_matches_onnxruntime(tmp_path):
    model = _tiny_openpose()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 3, 64, 80, generator=gen)
    dims = ({0: torch.export.Dim("batch", min=1, max=16),
             2: 8 * torch.export.Dim("h8", min=2, max=128),
             3: 8 * torch.export.Dim("w8", min=2, max=128)},)
    _export_and_compare(model, x, tmp_path / "openpose.onnx", ["heatmaps", "pafs"], dims,
                        others=[torch.randn(2, 3, 96, 120, generator=gen)])


# --- synthetic figures -------------------------------------------------------------------------

def test_render_figures_shapes_determinism_and_ground_truth():
    a = render_figures(12, (128, 96), seed=5)
    b = render_figures(12, (128, 96), seed=5)
    assert a.images.shape == (12, 128, 96, 3) and a.images.dtype == np.uint8
    assert a.keypoints.shape == (12, 1, 17, 2) and a.keypoints.dtype == np.float32
    assert a.visible.shape == (12, 1, 17) and a.people.tolist() == [1] * 12
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert not np.array_equal(a.images, render_figures(12, (128, 96), seed=6).images)
    kp = a.keypoints[:, 0]
    inside = (kp[..., 0] >= 0) & (kp[..., 0] <= 95) & (kp[..., 1] >= 0) & (kp[..., 1] <= 127)
    np.testing.assert_array_equal(a.visible[:, 0], inside)
    assert a.visible.mean() > 0.95  # top-down crops: the figure is (nearly always) inside
    # anatomy: the head above the hips, the person's left at +x (facing the viewer), mostly
    assert (kp[:, 0, 1] < kp[:, 11:13, 1].mean(1)).all()
    assert (kp[:, 5, 0] > kp[:, 6, 0]).mean() > 0.8


def test_render_figures_draws_limbs_in_their_colours():
    data = render_figures(40, (256, 192), seed=7)
    hits = 0
    for image, kp in zip(data.images, data.keypoints[:, 0]):
        mid = (kp[13] + kp[15]) / 2  # the left shin: BGR (120, 255, 120) +- 35
        x, y = int(round(mid[0])), int(round(mid[1]))
        if 0 <= x < 192 and 0 <= y < 256:
            hits += np.abs(image[y, x].astype(int) - (120, 255, 120)).max() <= 45
    assert hits >= 32  # limbs drawn later may cross it


def test_render_scenes_with_several_people():
    data = render_figures(6, (184, 216), seed=8, people=(1, 3))
    assert data.keypoints.shape == (6, 3, 17, 2)
    assert set(data.people.tolist()) <= {1, 2, 3}
    for i, count in enumerate(data.people):
        assert not data.visible[i, count:].any()
    with pytest.raises(ValueError, match="people must be >= 1"):
        render_figures(1, people=(0, 2))


def test_targets():
    kp = np.array([[[10.25, 20.0], [40.0, 3.5]]], np.float32)  # (N=1, K=2, 2)
    tx, ty = simcc_targets(kp, (64, 48))
    assert tx.shape == (1, 2, 96) and ty.shape == (1, 2, 128)
    assert tx[0, 0].argmax() == 20 and ty[0, 0].argmax() == 40 and ty[0, 1].argmax() == 7
    hm = heatmap_targets(kp, (16, 12), 4)
    assert hm.shape == (1, 2, 16, 12)
    assert np.unravel_index(hm[0, 1].argmax(), (16, 12)) == (1, 10)  # (3.5 / 4, 40 / 4)
    kp17 = np.zeros((1, 17, 2), np.float32)
    kp17[0, 5], kp17[0, 6] = (30, 10), (10, 14)
    kp18, vis18 = coco17_to_coco18(kp17, np.ones((1, 17), bool))
    np.testing.assert_array_equal(kp18[0, 1], (20, 12))      # the neck
    np.testing.assert_array_equal(kp18[0, 2], kp17[0, 6])    # right shoulder
    assert vis18.all()
    people = np.array([[[3.5, 3.5], [35.5, 3.5]]], np.float32)  # map pixels (0, 0) and (4, 0)
    heat, pafs = paf_targets(people, np.ones((1, 2), bool), np.array([[0, 1]]), (4, 6), 8, 3.5)
    assert heat.shape == (3, 4, 6) and pafs.shape == (2, 4, 6)
    assert heat[0, 0, 0] == 1.0 and heat[1, 0, 4] == 1.0
    np.testing.assert_allclose(heat[2], 1 - heat[:2].max(0))
    np.testing.assert_allclose(pafs[:, 0, 1:4], [[1, 1, 1], [0, 0, 0]])  # along the limb: +x
    assert (pafs[:, 3] == 0).all()


def test_preprocess_follows_the_card():
    card = rtmpose("t", input_size=(64, 64), widen_factor=0.125).card()
    images = np.zeros((2, 64, 64, 3), np.uint8)
    images[..., 2] = 255  # red, in BGR
    x = preprocess(images, card)
    assert x.shape == (2, 3, 64, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], (np.array([255, 0, 0]) - card.input.mean)
                               / card.input.std, rtol=1e-6)


# --- training ------------------------------------------------------------------------------------

def test_a_short_training_reduces_the_loss():
    torch.manual_seed(0)
    model = rtmpose("t", input_size=(64, 64), widen_factor=0.125)
    report = train_briefly(model, steps=40, batch_size=8, seed=0, lr=4e-3, pool=64,
                           eval_images=8)
    assert report.head == "simcc" and len(report.losses) == 40
    assert report.loss_end < 0.7 * report.loss_start
    assert not model.training
    with pytest.raises(ValueError, match="card says head 'simcc', not 'heatmap'"):
        train_briefly(model, "heatmap", steps=1)


def _mean_pose_error(size) -> float:
    """The error of always answering the mean pose: what a model that learnt nothing scores."""
    train, held_out = render_figures(256, size, seed=0), render_figures(64, size, seed=1_000_003)
    mean = train.keypoints[:, 0].mean(axis=0)
    return keypoint_error_px(np.broadcast_to(mean, held_out.keypoints[:, 0].shape),
                             held_out.keypoints[:, 0], held_out.visible[:, 0])


@pytest.mark.slow
def test_train_briefly_tiny_rtmpose_localises():
    # Measured here: 400 steps, 7.7 px (seed 1: 8.2 px) in 36 CPU s, against 14.2 px for
    # the mean pose, on 128 x 96 crops.
    torch.manual_seed(0)
    model = rtmpose("t", input_size=(128, 96), widen_factor=0.125)
    report = train_briefly(model, steps=400, batch_size=16, seed=0)
    print(report)
    assert report.keypoint_error_px < 0.7 * _mean_pose_error((128, 96))
    assert report.keypoint_error_px < 10.0 and report.recall == 1.0
    assert report.loss_end < 0.75 * report.loss_start
    with torch.no_grad():  # peaked: most of the softmax mass near the argmax
        simcc_x, _ = model(torch.from_numpy(preprocess(render_figures(8, (128, 96)).images,
                                                       model.card())))
    prob = torch.softmax(simcc_x * 10.0, dim=-1)  # the loss's beta
    assert float(prob.max(dim=-1).values.mean()) > 0.05  # uniform: 1 / 192


@pytest.mark.slow
def test_train_briefly_tiny_simplebaseline_reaches_a_few_pixels():
    # Measured here: 4.6 px after 300 steps (28 CPU s), against 14.2 px for the mean pose.
    torch.manual_seed(0)
    model = simplebaseline(18, input_size=(128, 96), base_channels=16,
                           deconv_out_channels=(32, 32, 32))
    report = train_briefly(model, steps=300, batch_size=16, seed=0)
    print(report)
    assert report.keypoint_error_px < 6.0 and report.recall == 1.0
    assert report.loss_end < 0.4 * report.loss_start


@pytest.mark.slow
def test_train_briefly_tiny_openpose_groups_people_end_to_end(tmp_path):
    # Measured here: 6.7-7.0 px (less than a map pixel), 94 % of parts found (35 CPU s).
    from edgepose import Estimator
    from edgepose.card import write_card

    torch.manual_seed(0)
    model = openpose((128, 160), channels=(8, 16, 32, 32), stage_channels=32, stages=2,
                     stage_depth=2)
    report = train_briefly(model, steps=300, batch_size=8, seed=0)
    print(report)
    assert report.keypoint_error_px < 9.0 and report.recall > 0.85
    assert report.loss_end < 0.3 * report.loss_start

    # The exported file, with its card, through the runtime's bottom-up pipeline: the
    # card's stride, offset, limbs and field channels must be the ones the model learnt.
    path = tmp_path / "openpose.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 128, 160),), str(path), dynamo=True,
                      external_data=False, input_names=["input"],
                      output_names=["heatmaps", "pafs"])
    carded = write_card(path, tmp_path / "openpose-card.onnx", model.card())
    scenes = render_figures(12, (128, 160), seed=123, people=(1, 3))
    truth, visible = coco17_to_coco18(scenes.keypoints, scenes.visible)
    errors, found, total = [], 0, 0
    with Estimator(carded) as est:
        for i, image in enumerate(scenes.images):
            poses = est(image)
            for p in range(int(scenes.people[i])):
                total += int(visible[i, p].sum())
                if len(poses) == 0:
                    continue
                both = (poses.keypoints[:, :, 0] >= 0) & visible[i, p][None]
                d = np.linalg.norm(poses.keypoints - truth[i, p][None], axis=-1)
                mean = np.where(both, d, 0).sum(1) / np.maximum(both.sum(1), 1)
                mean[both.sum(1) == 0] = np.inf
                best = int(np.argmin(mean))
                if np.isfinite(mean[best]):
                    errors.extend(d[best][both[best]].tolist())
                    found += int(both[best].sum())
    print(f"runtime: {np.mean(errors):.2f} px, {found / total:.0%} of parts")
    assert np.mean(errors) < 9.0 and found / total > 0.85

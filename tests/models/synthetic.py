"""Small ONNX models with real pose-model signatures, built in the tests.

``rtmpose_like``: RTMPose's exact I/O (``input [N, 3, 256, 192]`` ->
``simcc_x [N, 17, 384]``, ``simcc_y [N, 17, 512]``) with a graph whose logits
peak where the crop is brightest: the channel mean is max-pooled over rows
(for x) or columns (for y) and upsampled 2x (the SimCC split ratio), the same
for all 17 keypoints. A bright dot placed in an image must therefore come back
from the whole top-down pipeline at the dot's position.
"""
from __future__ import annotations

from pathlib import Path


def rtmpose_like(path: Path, *, batch: int | str = "N", size_hw=(256, 192), k: int = 17) -> Path:
    import onnx
    from onnx import TensorProto, helper

    h, w = size_hw
    nodes = [
        helper.make_node("ReduceMean", ["input", "axes_c"], ["gray"], keepdims=1),       # N,1,H,W
        helper.make_node("ReduceMax", ["gray", "axes_h"], ["col"], keepdims=0),          # N,1,W
        helper.make_node("ReduceMax", ["gray", "axes_w"], ["row"], keepdims=0),          # N,1,H
        helper.make_node("Unsqueeze", ["col", "axes_last"], ["col4"]),                   # N,1,W,1
        helper.make_node("Unsqueeze", ["row", "axes_last"], ["row4"]),
        helper.make_node("Tile", ["col4", "rep2"], ["col2"]),                            # N,1,W,2
        helper.make_node("Tile", ["row4", "rep2"], ["row2"]),
        helper.make_node("Reshape", ["col2", "shape_x"], ["col1"]),                      # N,1,2W
        helper.make_node("Reshape", ["row2", "shape_y"], ["row1"]),
        helper.make_node("Tile", ["col1", "rep_k"], ["simcc_x"]),                        # N,K,2W
        helper.make_node("Tile", ["row1", "rep_k"], ["simcc_y"]),
    ]
    ints = lambda name, v: helper.make_tensor(name, TensorProto.INT64, [len(v)], v)  # noqa: E731
    inits = [ints("axes_c", [1]), ints("axes_h", [2]), ints("axes_w", [3]), ints("axes_last", [3]),
             ints("rep2", [1, 1, 1, 2]), ints("shape_x", [0, 1, 2 * w]), ints("shape_y", [0, 1, 2 * h]),
             ints("rep_k", [1, k, 1])]
    graph = helper.make_graph(
        nodes, "rtmpose_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [batch, k, 2 * w]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [batch, k, 2 * h])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path

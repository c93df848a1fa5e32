"""Parameters and FLOPs counted from a model file's graph.

* ONNX: parameters are the elements of the weight initializers (and
  ``Constant`` nodes); FLOPs come from the Conv, ConvTranspose, Gemm and
  MatMul nodes (and their quantized forms) with shapes from
  ``onnx.shape_inference``. Needs the ``onnx`` package.
* TFLite: parameters are the elements of the constant tensors; FLOPs come
  from CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED and
  BATCH_MATMUL with the shapes stored in the file. Needs a TFLite interpreter.
* OpenVINO IR: parameters are the elements of the weight ``Constant`` ops;
  FLOPs come from Convolution, GroupConvolution and MatMul. Needs OpenVINO.

A multiply-add counts as 2 FLOPs; dynamic dimensions (a symbolic batch)
count as 1, so figures are per image. Elementwise ops, pooling and
activations are not counted (they are a few percent in these networks).
Integer shape tensors (int64, and int32 tensors other than biases) are not
parameters. Whatever cannot be counted is ``None`` with a note saying why.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["GraphStats", "count_graph"]


@dataclass(frozen=True)
class GraphStats:
    """What :func:`count_graph` found.

    Attributes:
        params: number of weight elements, or None (see ``note``).
        gflops: GFLOPs of one forward pass at batch 1, or None.
        method: how they were counted.
        note: why something is None or incomplete, else None.
    """

    params: int | None
    gflops: float | None
    method: str
    note: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"params": self.params, "gflops": self.gflops, "method": self.method,
                "note": self.note}


def _prod(dims) -> int:
    return math.prod(int(d) for d in dims)


def _known(dims) -> bool:
    return dims is not None and all(isinstance(d, int) and d >= 0 for d in dims)


def _batch1(dims):
    """Dynamic dims as 1 (per image); None if the rank is unknown."""
    if dims is None:
        return None
    return [d if isinstance(d, int) and d >= 0 else 1 for d in dims]


def count_graph(path: str | os.PathLike,
                input_shape: tuple[int, ...] | None = None) -> GraphStats:
    """Counts the parameters and GFLOPs of an ``.onnx``, ``.tflite`` or
    OpenVINO ``.xml`` file (cached by path, size and modification time).

    Args:
        path: the model file.
        input_shape: ONNX and TFLite: the shape of the first input, for
            models whose input size is dynamic (the model card's size).
            Without it, GFLOPs of such a model are None.

    Never raises for a file it cannot count: the result says "n/a" in
    ``note`` instead.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        return GraphStats(None, None, "none", f"n/a: {exc}")
    shape = None if input_shape is None else tuple(int(d) for d in input_shape)
    return _count_cached(str(p.resolve()), st.st_size, st.st_mtime_ns, shape)


@lru_cache(maxsize=32)
def _count_cached(path: str, size: int, mtime_ns: int,
                  input_shape: tuple[int, ...] | None) -> GraphStats:
    suffix = Path(path).suffix.lower()
    counters = {".onnx": _count_onnx, ".tflite": _count_tflite, ".xml": _count_openvino}
    if suffix not in counters:
        return GraphStats(None, None, "none",
                          f"n/a: cannot read graphs of {suffix or 'this'} files")
    try:
        if suffix in (".onnx", ".tflite"):
            return counters[suffix](Path(path), input_shape)
        return counters[suffix](Path(path))
    except ImportError as exc:
        return GraphStats(None, None, "none", f"n/a: {exc}")
    except Exception as exc:  # a graph we cannot parse must not stop a benchmark
        return GraphStats(None, None, "none",
                          f"n/a: could not read the graph ({type(exc).__name__}: {exc})")


# --- ONNX -----------------------------------------------------------------------------

def _count_onnx(path: Path, input_shape: tuple[int, ...] | None = None) -> GraphStats:
    try:
        import onnx
        from onnx import TensorProto, shape_inference
    except ImportError:
        raise ImportError("counting ONNX graphs needs the onnx package (pip install onnx)") \
            from None
    model = onnx.load(str(path))
    init_names = {i.name for i in model.graph.initializer}
    feeds = [i for i in model.graph.input if i.name not in init_names]
    dynamic = False
    for n, vi in enumerate(feeds):
        dims = vi.type.tensor_type.shape.dim
        if n == 0 and input_shape is not None and len(dims) == len(input_shape):
            for d, value in zip(dims, input_shape):
                d.dim_value = int(value)
        elif any(not d.HasField("dim_value") for d in list(dims)[1:]):
            dynamic = True
    try:
        model = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - counting continues with the shapes stored in the file
        pass
    graph = model.graph
    weight_types = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16,
                    TensorProto.DOUBLE, TensorProto.INT8, TensorProto.UINT8}
    shapes: dict[str, list] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                               for d in t.shape.dim]
    consts: dict[str, tuple[int, list[int]]] = {}
    for init in graph.initializer:
        consts[init.name] = (init.data_type, list(init.dims))
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t is not None:
                    consts[node.output[0]] = (attr.t.data_type, list(attr.t.dims))
    for name, (_, dims) in consts.items():
        shapes.setdefault(name, dims)

    bias_inputs = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2, "QLinearConv": 8}
    biases = {node.input[bias_inputs[node.op_type]] for node in graph.node
              if node.op_type in bias_inputs and len(node.input) > bias_inputs[node.op_type]}
    params = sum(_prod(dims) for name, (dtype, dims) in consts.items()
                 if _prod(dims) > 1 and (dtype in weight_types
                                         or (dtype == TensorProto.INT32 and name in biases)))

    flops, skipped = 0, 0
    weight_index = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
    for node in graph.node:
        op = node.op_type
        try:
            if op in weight_index:
                w = shapes.get(node.input[weight_index[op]])
                out = _batch1(shapes.get(node.output[0]))
                if not (_known(w) and out and _known(out)):
                    skipped += 1
                    continue
                # out (N, Cout, *spatial), w (Cout, Cin/g, *k)
                flops += 2 * out[0] * _prod(out[1:]) * _prod(w[1:])
            elif op == "ConvTranspose":
                w = shapes.get(node.input[1])
                x = _batch1(shapes.get(node.input[0]))
                if not (_known(w) and x and _known(x)):
                    skipped += 1
                    continue
                # x (N, Cin, *spatial), w (Cin, Cout/g, *k)
                flops += 2 * x[0] * _prod(x[1:]) * _prod(w[1:])
            elif op in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
                a = _batch1(shapes.get(node.input[0]))
                out = _batch1(shapes.get(node.output[0]))
                if not (a and out and _known(a) and _known(out)):
                    skipped += 1
                    continue
                trans_a = any(at.name == "transA" and at.i for at in node.attribute)
                k = a[0] if (op == "Gemm" and trans_a) else a[-1]
                flops += 2 * _prod(out) * k
        except (IndexError, TypeError):
            skipped += 1
    method = "onnx initializers + shape inference"
    if dynamic:
        return GraphStats(int(params), None, method,
                          "GFLOPs n/a: the input size is dynamic (pass the input shape)")
    note = (f"{skipped} Conv/MatMul node(s) with unknown shapes not counted" if skipped
            else None)
    return GraphStats(int(params), flops / 1e9, method, note)


# --- TFLite ---------------------------------------------------------------------------

def _count_tflite(path: Path, input_shape: tuple[int, ...] | None = None) -> GraphStats:
    from edgepose.backends.tflite import graph_interpreter

    # plain kernels: op details must describe the file, not a delegate's partition
    interpreter, package = graph_interpreter(path)
    if not hasattr(interpreter, "_get_ops_details"):
        return GraphStats(None, None, "none",
                          f"n/a: the {package} interpreter does not list its ops")
    # A dynamic input (shape signature -1) is stored at size 1: the shapes of the
    # ops follow only once the input is resized and the tensors allocated.
    first = interpreter.get_input_details()[0]
    signature = first.get("shape_signature")
    dynamic = signature is not None and any(int(d) < 0 for d in list(signature)[1:])
    if dynamic and input_shape is not None and len(input_shape) == len(signature):
        interpreter.resize_tensor_input(first["index"], [int(d) for d in input_shape],
                                        strict=True)
        interpreter.allocate_tensors()
        dynamic = False
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    produced = {int(i) for op in ops for i in op["outputs"]}
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    bias_slot = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
    biases = {int(op["inputs"][bias_slot[op["op_name"]]]) for op in ops
              if op["op_name"] in bias_slot and len(op["inputs"]) > bias_slot[op["op_name"]]}
    consts = {int(i) for op in ops for i in op["inputs"]
              if int(i) >= 0 and int(i) not in produced and int(i) not in graph_inputs}
    import numpy as np

    weights = {np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.int8), np.dtype(np.uint8)}
    params = 0
    for i in consts:
        t = tensors.get(i)
        if t is None:
            continue
        n = _prod(t["shape"])
        if n > 1 and (np.dtype(t["dtype"]) in weights
                      or (np.dtype(t["dtype"]) == np.int32 and i in biases)):
            params += n

    def shape(i: int):
        t = tensors.get(int(i))
        return None if t is None else [int(d) for d in t["shape"]]

    flops, skipped = 0, 0
    for op in ops:
        name, ins, outs = op["op_name"], op["inputs"], op["outputs"]
        try:
            if name == "CONV_2D":          # filter (Cout, kh, kw, Cin), out (N, H, W, Cout)
                flops += 2 * _prod(shape(outs[0])) * _prod(shape(ins[1])[1:])
            elif name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, Cout)
                flops += 2 * _prod(shape(outs[0])) * _prod(shape(ins[1])[1:3])
            elif name == "TRANSPOSE_CONV":     # inputs: output_shape, filter, input
                w, x = shape(ins[1]), shape(ins[2])
                flops += 2 * _prod(x) * w[0] * w[1] * w[2]
            elif name == "FULLY_CONNECTED":    # weights (units, in)
                flops += 2 * _prod(shape(outs[0])) * shape(ins[1])[-1]
            elif name == "BATCH_MATMUL":
                flops += 2 * _prod(shape(outs[0])) * shape(ins[0])[-1]
        except (TypeError, IndexError):
            skipped += 1
    method = f"tflite tensors ({package})"
    if dynamic:
        return GraphStats(int(params), None, method,
                          "GFLOPs n/a: the input size is dynamic (pass the input shape)")
    note = f"{skipped} conv/matmul op(s) with unknown shapes not counted" if skipped else None
    return GraphStats(int(params), flops / 1e9, method, note)


# --- OpenVINO -------------------------------------------------------------------------

def _count_openvino(path: Path) -> GraphStats:
    try:
        import openvino as ov
    except ImportError:
        raise ImportError("counting OpenVINO IR graphs needs OpenVINO (pip install openvino)") \
            from None
    model = ov.Core().read_model(str(path))
    weight_types = {"f32", "f16", "bf16", "f64", "i8", "u8", "i4", "u4", "nf4"}

    def static(partial):
        return [d.get_length() for d in partial] if partial.is_static else None

    params, flops, skipped = 0, 0, 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Constant":
            dims = static(op.get_output_partial_shape(0))
            if dims and _prod(dims) > 1 and op.get_output_element_type(0).get_type_name() \
                    in weight_types:
                params += _prod(dims)
            continue
        if kind not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        out = static(op.get_output_partial_shape(0))
        if kind == "MatMul":
            a = static(op.input_value(0).get_partial_shape())
            if not (a and out):
                skipped += 1
                continue
            trans_a = bool(op.get_attributes().get("transpose_a", False))
            flops += 2 * _prod(out) * (a[-2] if trans_a and len(a) > 1 else a[-1])
            continue
        w = static(op.input_value(1).get_partial_shape())
        if not (w and out):
            skipped += 1
            continue
        # Convolution: w (Cout, Cin, *k); GroupConvolution: w (G, Cout/G, Cin/G, *k)
        per_output = _prod(w[1:]) if kind == "Convolution" else _prod(w[2:])
        flops += 2 * _prod(out) * per_output
    note = f"{skipped} conv/matmul op(s) with dynamic shapes not counted" if skipped else None
    return GraphStats(int(params), flops / 1e9, "openvino constants", note)

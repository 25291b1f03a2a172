"""FP16 copies of the exported ONNX graphs, for strongly typed TensorRT (11+).

TensorRT 11 has no ``BuilderFlag.FP16``: a network runs in the types its ONNX graph states. This
rewrites a float32 graph so that its arithmetic is float16 while

- the graph inputs and outputs stay float32 (the backend's buffers and the template state passed
  between the two engines do not change; one Cast at each end),
- LayerNorm, softmax, reductions, powers, square roots and exponentials stay float32 (Cast nodes
  around them): their sums of squares and exponentials are where float16 loses the result, and
  the arithmetic that follows them stays float32 until the next matrix product or convolution,
- weights above float16's range are clipped to it (none in AsymTrack).

Needs the ``onnx`` package, not torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1
FP16_KEY = "asymtrack_fp16"
FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
_FP16_MAX = float(np.finfo(np.float16).max)

# Ops that run in float32 whatever their inputs are.
KEEP_FP32_OPS = frozenset((
    "LayerNormalization", "Softmax", "LogSoftmax", "ReduceMean", "ReduceSum", "ReduceSumSquare",
    "ReduceL2", "ReduceLogSumExp", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "InstanceNormalization",
    "GroupNormalization",
))
# Elementwise ops: float32 if any of their computed inputs is float32, else float16.
FOLLOW_OPS = frozenset((
    "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Max", "Min", "Sum", "Mean", "Clip", "Where", "Equal",
    "Greater", "GreaterOrEqual", "Less", "LessOrEqual",
))
# Ops that move data: the type of their first computed float input, no Cast.
MOVE_OPS = frozenset((
    "Reshape", "Transpose", "Concat", "Slice", "Gather", "GatherElements", "Flatten", "Squeeze",
    "Unsqueeze", "Pad", "Identity", "Split", "Expand", "Tile", "DepthToSpace", "SpaceToDepth",
    "Dropout", "Resize",
))
# Ops whose outputs keep the types of the original graph and whose inputs are left alone or
# given back their original types.
FIXED_OPS = frozenset(("Cast", "CastLike", "Shape", "Size", "ConstantOfShape", "Range", "EyeLike",
                       "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike"))
_ANY_INPUT_OPS = frozenset(("Cast", "Shape", "Size", "EyeLike", "RandomNormalLike", "RandomUniformLike"))
# (op, input index) that must keep their original float32 type.
_FP32_SLOTS = frozenset((("Resize", 1), ("Resize", 2), ("Upsample", 1)))


def _elem_types(model: onnx.ModelProto) -> Dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.input) + list(graph.value_info)
             + list(graph.output)}
    types.update({i.name: i.data_type for i in graph.initializer})
    return types


class _Converter:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.types = _elem_types(model)
        self.graph = model.graph
        self.consts: Dict[str, TensorProto] = {i.name: i for i in self.graph.initializer}
        self.dtype: Dict[str, int] = {i.name: i.type.tensor_type.elem_type for i in self.graph.input}
        self.actual: Dict[str, str] = {}
        self.outputs = {o.name for o in self.graph.output}
        self.nodes: List[onnx.NodeProto] = []
        self.casts: Dict[Tuple[str, int], str] = {}
        self.half_consts: Dict[str, str] = {}
        self.clipped = 0

    def is_float(self, name: str) -> bool:
        return self.types.get(name) == FLOAT or self.dtype.get(name) in (FLOAT, HALF)

    def computed(self, node: onnx.NodeProto) -> List[str]:
        return [n for n in node.input if n and n not in self.consts and self.is_float(n)]

    def precision(self, node: onnx.NodeProto) -> int:
        op = node.op_type
        if op in KEEP_FP32_OPS or op in FIXED_OPS:
            return FLOAT
        inputs = [self.dtype.get(self.actual.get(n, n)) for n in self.computed(node)]
        if op in FOLLOW_OPS:
            return FLOAT if FLOAT in inputs else HALF
        if op in MOVE_OPS and inputs:
            return inputs[0]  # type: ignore[return-value]
        return HALF

    def const_as(self, name: str, want: int) -> str:
        if want == FLOAT or self.consts[name].data_type != FLOAT:
            return name
        if name not in self.half_consts:
            values = numpy_helper.to_array(self.consts[name])
            finite = np.isfinite(values)
            self.clipped += int((np.abs(values[finite]) > _FP16_MAX).sum())
            half = np.clip(values, -_FP16_MAX, _FP16_MAX).astype(np.float16)
            new = f"{name}__fp16"
            self.consts[new] = numpy_helper.from_array(half, new)
            self.half_consts[name] = new
        return self.half_consts[name]

    def tensor_as(self, name: str, want: int) -> str:
        if name in self.consts:
            return self.const_as(name, want)
        current = self.actual.get(name, name)
        if self.dtype.get(current) == want:
            return current
        key = (current, want)
        if key not in self.casts:
            new = f"{current}__to_{'fp16' if want == HALF else 'fp32'}"
            self.nodes.append(helper.make_node("Cast", [current], [new], to=want, name=f"{new}_cast"))
            self.dtype[new] = want
            self.casts[key] = new
        return self.casts[key]

    def convert_node(self, node: onnx.NodeProto) -> None:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            self.consts[tensor.name] = tensor
            return
        want = self.precision(node)
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for i, name in enumerate(node.input):
            if not name or not self.is_float(name) or node.op_type in _ANY_INPUT_OPS:
                new.input[i] = self.actual.get(name, name)
            elif (node.op_type, i) in _FP32_SLOTS or node.op_type in FIXED_OPS:
                new.input[i] = self.tensor_as(name, FLOAT)
            else:
                new.input[i] = self.tensor_as(name, want)
        for i, name in enumerate(node.output):
            if not name:
                continue
            kept = node.op_type in FIXED_OPS or self.types.get(name) != FLOAT
            out_type = self.types.get(name, FLOAT) if kept else want
            if name in self.outputs and out_type == HALF:
                new.output[i] = f"{name}__fp16"
                self.actual[name] = new.output[i]
            self.dtype[new.output[i]] = out_type
        self.nodes.append(new)

    def finish(self) -> None:
        for name in self.outputs:
            current = self.actual.get(name, name)
            if current != name:
                cast = helper.make_node("Cast", [current], [name], to=FLOAT, name=f"{name}_out_cast")
                self.nodes.append(cast)
        used = {n for node in self.nodes for n in node.input}
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)
        del self.graph.initializer[:]
        self.graph.initializer.extend(t for n, t in self.consts.items() if n in used or n in self.outputs)
        del self.graph.value_info[:]
        if self.clipped:
            log.warning("%d weights beyond float16's range were clipped to +-%g", self.clipped, _FP16_MAX)


def convert_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of a float32 graph (float32 inputs and outputs); ``model`` is not changed."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    converter = _Converter(copy)
    for node in model.graph.node:
        converter.convert_node(node)
    converter.finish()
    entry = next((p for p in copy.metadata_props if p.key == FP16_KEY), None) or copy.metadata_props.add()
    entry.key, entry.value = FP16_KEY, str(CONVERTER_VERSION)
    copy = onnx.shape_inference.infer_shapes(copy, strict_mode=True)
    onnx.checker.check_model(copy, full_check=True)
    return copy


def convert_file(path: Union[str, Path], out: Optional[Union[str, Path]] = None) -> bytes:
    """Convert an ONNX file; returns the serialized float16 model (and writes it to ``out``)."""
    data = convert_model(onnx.load(str(path))).SerializeToString()
    if out is not None:
        tmp = Path(f"{out}.tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    return data


def float_types(model: onnx.ModelProto) -> Set[str]:
    """The float element types computed in ``model`` (for tests and reports)."""
    names = {FLOAT: "float32", HALF: "float16"}
    return {names[t] for t in _elem_types(model).values() if t in names}


def ops_by_type(model: onnx.ModelProto, ops: Iterable[str]) -> Dict[str, int]:
    """How many nodes of each of ``ops`` the graph has."""
    wanted = set(ops)
    counts: Dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in wanted:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts

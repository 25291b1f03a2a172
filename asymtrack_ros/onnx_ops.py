"""Which ONNX graphs TensorRT 8.5 (JetPack 5) can parse: an op allow-list and a checker.

The list is the subset of onnx-tensorrt's 8.5 operator matrix (release/8.5-GA
docs/operators.md) that a convolutional/attention tracker may reasonably use, with the
restrictions that matter here: static weights for convolutions, constant axes, 2-D pooling, no
control flow or data-dependent shapes, no float64. TensorRT 8.6 adds LayerNormalization
(opset 17 exports use it) and TensorRT 10 opset 18-20 and Gelu.
Needs the ``onnx`` package but not torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, FrozenSet, List, Set, Tuple, Union

if TYPE_CHECKING:
    import onnx

TENSORRT_85_MAX_OPSET = 17

TENSORRT_85_OPS: FrozenSet[str] = frozenset((
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast", "Ceil",
    "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "DepthToSpace",
    "Div", "Dropout", "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather",
    "GatherElements", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater", "GreaterOrEqual",
    "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "LeakyRelu", "Less", "LessOrEqual",
    "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mul", "Neg", "Not", "Or", "Pad",
    "Pow", "PRelu", "Range", "Reciprocal", "ReduceL2", "ReduceMax", "ReduceMean", "ReduceMin",
    "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize", "Round", "Shape",
    "Sigmoid", "Sign", "Sin", "Slice", "Softmax", "Softplus", "SpaceToDepth", "Split", "Sqrt",
    "Squeeze", "Sub", "Sum", "Tanh", "Tile", "TopK", "Transpose", "Unsqueeze", "Where",
))

# Supported by TensorRT but rejected here: control flow and data-dependent shapes make engines
# slow or unbuildable on 8.5, Einsum is restricted (no ellipsis, no broadcasting), and the rest
# are missing from 8.5 altogether.
TENSORRT_86_OPS = TENSORRT_85_OPS | {"LayerNormalization"}
TENSORRT_10_OPS = TENSORRT_86_OPS | {"Gelu", "GroupNormalization"}
# TensorRT version -> (highest ONNX opset it parses, allowed ops).
TARGETS: Dict[str, Tuple[int, FrozenSet[str]]] = {
    "8.5": (TENSORRT_85_MAX_OPSET, TENSORRT_85_OPS),
    "8.6": (17, TENSORRT_86_OPS),
    "10": (20, TENSORRT_10_OPS),
}

REJECTED_REASONS: Dict[str, str] = {
    "Loop": "control flow", "Scan": "control flow", "If": "control flow",
    "NonZero": "data-dependent output shape", "NonMaxSuppression": "data-dependent output shape",
    "Einsum": "restricted in TensorRT (no ellipsis, no broadcasting); write it as MatMul/Transpose",
    "LayerNormalization": "needs TensorRT 8.6+ (export with opset <= 16 to decompose it)",
    "GroupNormalization": "needs TensorRT 8.6+", "Gelu": "opset 20, needs TensorRT 10",
    "IsInf": "not in TensorRT 8.5",
}

# Inputs (by position) that TensorRT 8.5 requires to be initializers / Constant outputs.
_CONSTANT_INPUTS: Dict[str, Tuple[int, ...]] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Slice": (3,), "Squeeze": (1,), "Unsqueeze": (1,),
    "TopK": (1,), "InstanceNormalization": (1, 2), "BatchNormalization": (1, 2, 3, 4),
}
_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_COORDS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
_FLOAT64 = 11
_STRING = 8


def _constant_names(graph: onnx.GraphProto) -> Set[str]:
    names = {init.name for init in graph.initializer}
    names.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    return names


def _attr(node: onnx.NodeProto, name: str, default: Union[int, str, None] = None) -> Union[int, str, None]:
    for a in node.attribute:
        if a.name == name:
            if a.type == a.STRING:
                return a.s.decode()
            if a.type == a.INTS:
                return len(a.ints)
            return a.i
    return default


def target_for(version: Tuple[int, int]) -> str:
    """The allow-list that applies to a TensorRT (major, minor) version."""
    if version >= (10, 0):
        return "10"
    return "8.6" if version >= (8, 6) else "8.5"


def target_for_opset(opset: int) -> str:
    """The oldest TensorRT an export of this opset is meant for (16: 8.5, 17: 8.6, newer: 10)."""
    return "8.5" if opset <= 16 else "8.6" if opset == 17 else "10"


def _node_problems(node: onnx.NodeProto, constants: Set[str], allowed: FrozenSet[str],
                   target: str) -> List[str]:
    op, where = node.op_type, f"{node.op_type} '{node.name or node.output[0]}'"
    if node.domain not in ("", "ai.onnx"):
        return [f"{where}: custom domain {node.domain!r}"]
    if op not in allowed:
        return [f"{where}: {REJECTED_REASONS.get(op, f'not in the TensorRT {target} allow-list')}"]
    problems = []
    for index in _CONSTANT_INPUTS.get(op, ()):
        if index < len(node.input) and node.input[index] and node.input[index] not in constants:
            kind = "dynamic weights" if op.startswith("Conv") else "a non-constant input"
            problems.append(f"{where}: {kind} (input {index} '{node.input[index]}')")
    if op == "Resize":
        if _attr(node, "mode", "nearest") not in _RESIZE_MODES:
            problems.append(f"{where}: mode {_attr(node, 'mode')!r}")
        if _attr(node, "coordinate_transformation_mode", "half_pixel") not in _RESIZE_COORDS:
            problems.append(f"{where}: coordinate mode {_attr(node, 'coordinate_transformation_mode')!r}")
    if op in ("AveragePool", "MaxPool") and _attr(node, "kernel_shape", 2) not in (2, 3):
        problems.append(f"{where}: only 2-D or 3-D pooling")
    if op == "MaxPool" and len([o for o in node.output if o]) > 1:
        problems.append(f"{where}: the Indices output")
    return problems


def _tensor_type_problems(model: onnx.ModelProto) -> List[str]:
    graph = model.graph
    problems = []
    for init in graph.initializer:
        if init.data_type in (_FLOAT64, _STRING):
            problems.append(f"initializer '{init.name}' is float64/string")
    for value in list(graph.input) + list(graph.output):
        tensor = value.type.tensor_type
        if tensor.elem_type in (_FLOAT64, _STRING):
            problems.append(f"graph input/output '{value.name}' is float64/string")
        dims = tensor.shape.dim
        if any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims):
            problems.append(f"graph input/output '{value.name}' has a dynamic shape")
    return problems


def check_tensorrt_compat(model: onnx.ModelProto, target: str = "8.5") -> List[str]:
    """Everything in ``model`` that TensorRT ``target`` (8.5, 8.6, 10) would not parse; empty if fine."""
    max_opset, allowed = TARGETS[target]
    problems = []
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > max_opset:
            problems.append(f"opset {opset.version} > {max_opset}")
        elif opset.domain not in ("", "ai.onnx"):
            problems.append(f"custom opset domain {opset.domain!r}")
    graph = model.graph
    if len(graph.node) == 0:
        problems.append("empty graph")
    constants = _constant_names(graph)
    for node in graph.node:
        problems.extend(_node_problems(node, constants, allowed, target))
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            problems.append(f"{node.op_type} '{node.name}': subgraph attribute")
    problems.extend(_tensor_type_problems(model))
    return problems


def op_types(model: onnx.ModelProto) -> Dict[str, int]:
    """Count of each op type in the top-level graph, sorted by name."""
    counts: Dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def check_onnx_file(path: Union[str, Path], target: str = "8.5") -> List[str]:
    """``check_tensorrt_compat`` for a file; needs the ``onnx`` package."""
    import onnx

    return check_tensorrt_compat(onnx.load(str(path)), target=target)

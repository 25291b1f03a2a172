"""Export an AsymTrack model to two static ONNX graphs: ``template`` and ``search``.

``PREFIX.template.onnx``: template crop (1,3,Z,Z) -> the TemplateState tensors.
``PREFIX.search.onnx``: search crop (1,3,X,X) + TemplateState tensors -> boxes, prob_tl, prob_br.
Both carry the model's ``ModelInfo`` JSON and a shared pair id in ``metadata_props``. Opset 16
by default so that TensorRT 8.5 (JetPack 5) parses them; the ops are checked against
``asymtrack_ros.onnx_ops``.
"""

from __future__ import annotations

import io
import uuid
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import Tensor, nn

from asymtrack_ros.backends.model_files import (
    GRAPH_KEY,
    INFO_KEY,
    PAIR_KEY,
    SEARCH_INPUT,
    SEARCH_OUTPUTS,
    TEMPLATE_INPUT,
    onnx_pair_paths,
)
from asymtrack_ros.model.inference_graph import SearchGraph
from asymtrack_ros.onnx_ops import check_tensorrt_compat, target_for_opset

DEFAULT_OPSET = 16
MIN_OPSET, MAX_OPSET = 13, 20
# From this opset on a LayerNorm exports as one LayerNormalization node, which TensorRT 8.6+ runs
# as its normalization layer; the search graph then stays channel-last (see inference_graph).
LAYER_NORM_OPSET = 17


class TemplateGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: Tensor) -> Tuple[Tensor, ...]:
        return tuple(self.model.init_template(z).as_dict().values())


# Largest difference tolerated between the export formulation and ``AsymTrack.track``: float32
# sums in another order, amplified by peaked corner softmaxes. On the reference vectors it is at
# most 1.1e-5 (probabilities; boxes 3e-6), the size of the difference between ``AsymTrack.track``
# and the published implementation itself (1.9e-5).
REWRITE_TOLERANCE = 3e-5


def _to_onnx(module: nn.Module, args: Tuple[Tensor, ...], input_names: List[str], output_names: List[str],
             opset: int) -> onnx.ModelProto:
    # The exporter restores each module's own training flag afterwards: a wrapper left in
    # training mode would switch the wrapped model (and its BatchNorm statistics) to training.
    module.eval()
    outputs = module(*args)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, input_names=input_names, output_names=output_names,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    _set_output_shapes(proto, outputs)
    return fold_constants(proto)


def _static_shapes(proto: onnx.ModelProto) -> Dict[str, Tuple[int, ...]]:
    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    graph = inferred.graph
    shapes = {}
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _evaluate(node: onnx.NodeProto, inputs: List[np.ndarray], opset: int) -> List[np.ndarray]:
    names = [f"in{i}" for i in range(len(inputs))]
    renamed = helper.make_node(node.op_type, names, [f"out{i}" for i in range(len(node.output))],
                               domain=node.domain)
    renamed.attribute.extend(node.attribute)
    values = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for n, a in zip(names, inputs)]
    outputs = [helper.make_empty_tensor_value_info(o) for o in renamed.output]
    model = helper.make_model(helper.make_graph([renamed], "fold", values, outputs),
                              opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, dict(zip(names, inputs)))


def fold_constants(proto: onnx.ModelProto, max_rounds: int = 8) -> onnx.ModelProto:
    """Replace shape arithmetic and constant-only nodes by initializers.

    The TorchScript exporter keeps ``x.shape`` lookups as Shape/Gather/Concat chains even for
    static inputs; folding them gives TensorRT a graph of plain layers and static output shapes.
    Each round's folding lets shape inference see further, hence the rounds.
    """
    for _ in range(max_rounds):
        count = len(proto.graph.node)
        proto = _fold_round(proto)
        if len(proto.graph.node) == count:
            break
    return proto


def _fold_round(proto: onnx.ModelProto) -> onnx.ModelProto:
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    graph = proto.graph
    shapes = _static_shapes(proto)
    consts: Dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    kept = []
    for node in graph.node:
        inputs = [n for n in node.input if n]
        if node.op_type == "Shape" and node.input[0] in shapes and not node.attribute:
            consts[node.output[0]] = np.array(shapes[node.input[0]], dtype=np.int64)
        elif node.op_type != "Shape" and all(n in consts for n in inputs) and len(node.input) == len(inputs):
            for name, value in zip(node.output, _evaluate(node, [consts[n] for n in inputs], opset)):
                consts[name] = np.asarray(value)
        else:
            kept.append(node)
    used = {n for node in kept for n in node.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items() if k in used)
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(proto, strict_mode=True)


def _set_output_shapes(proto: onnx.ModelProto, outputs: Tuple[Tensor, ...]) -> None:
    for value, tensor in zip(proto.graph.output, outputs):
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for size in tensor.shape:
            dims.add().dim_value = int(size)


def _finish(proto: onnx.ModelProto, role: str, info_json: str, pair_id: str, path: Path,
            strict: bool) -> None:
    del proto.metadata_props[:]
    for key, value in ((INFO_KEY, info_json), (PAIR_KEY, pair_id), (GRAPH_KEY, role)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "asymtrack_ros"
    proto.doc_string = f"AsymTrack {role} graph"
    _check_and_save(proto, path, strict)


def _check_and_save(proto: onnx.ModelProto, path: Path, strict: bool) -> None:
    onnx.checker.check_model(proto, full_check=True)
    target = target_for_opset(max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")))
    problems = check_tensorrt_compat(proto, target)
    if problems:
        message = f"{path.name} uses what TensorRT {target} cannot parse: " + "; ".join(problems)
        if strict:
            raise RuntimeError(message)
        warnings.warn(message, stacklevel=3)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(path)


def _check_rewrite(graph: SearchGraph, template_size: int, search_size: int) -> None:
    """The export formulation must compute what ``AsymTrack.track`` computes (random crops)."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(1, 3, template_size, template_size, generator=gen)
    x = torch.randn(1, 3, search_size, search_size, generator=gen)
    diff = graph.max_difference(x, graph.model.init_template(z).as_dict())
    if not diff <= REWRITE_TOLERANCE:
        raise RuntimeError(f"the search graph's export formulation differs from AsymTrack.track by "
                           f"{diff:.3g}; export with rewrite=False and report this")


def write_fp16_pair(template_path: Path, search_path: Path, strict: bool = True) -> Tuple[Path, Path]:
    """``NAME.template.fp16.onnx`` / ``NAME.search.fp16.onnx`` beside an exported pair: float16
    arithmetic, float32 inputs and outputs, for strongly typed TensorRT (11+) FP16 engines."""
    from asymtrack_ros.backends.tensorrt_backend import fp16_onnx_path
    from asymtrack_ros.onnx_fp16 import convert_model

    paths = []
    for path in (template_path, search_path):
        out = fp16_onnx_path(path)
        _check_and_save(convert_model(onnx.load(str(path))), out, strict)
        paths.append(out)
    return paths[0], paths[1]


def export_onnx(model: nn.Module, out_prefix: Union[str, Path], opset: int = DEFAULT_OPSET,
                strict: Optional[bool] = None, rewrite: bool = True, fp16: bool = False) -> Tuple[Path, Path]:
    """Write ``PREFIX.template.onnx`` and ``PREFIX.search.onnx``; return their paths.

    The graphs are checked against the TensorRT allow-list of the opset's target (16: TensorRT
    8.5, 17: 8.6, 18+: 10); ``strict`` (default on) makes findings errors, else warnings.
    ``rewrite`` exports the search branch in the formulation of ``inference_graph.SearchGraph``
    (same results, faster on ONNX Runtime; channel-first stages below ``LAYER_NORM_OPSET``);
    ``False`` traces ``AsymTrack.track`` as it is. ``fp16`` also writes the float16 pair
    (``write_fp16_pair``) that TensorRT 11 builds FP16 engines from.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} outside the supported range {MIN_OPSET}..{MAX_OPSET}")
    strict = True if strict is None else strict
    template_path, search_path = onnx_pair_paths(out_prefix)
    template_path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    info = model.info
    z = torch.zeros(1, 3, info.template_size, info.template_size)
    x = torch.zeros(1, 3, info.search_size, info.search_size)
    with torch.no_grad():
        state = model.init_template(z).as_dict()
        names = list(state)
        template = _to_onnx(TemplateGraph(model), (z,), [TEMPLATE_INPUT], names, opset)
        search_graph = SearchGraph(model, names, rewrite=rewrite, channels_first=opset < LAYER_NORM_OPSET)
        if rewrite:
            _check_rewrite(search_graph, info.template_size, info.search_size)
        search = _to_onnx(search_graph, (x,) + tuple(state.values()), [SEARCH_INPUT] + names,
                          list(SEARCH_OUTPUTS), opset)
    model.train(was_training)
    pair_id = uuid.uuid4().hex
    _finish(template, "template", info.to_json(), pair_id, template_path, strict)
    _finish(search, "search", info.to_json(), pair_id, search_path, strict)
    if fp16:
        write_fp16_pair(template_path, search_path, strict)
    return template_path, search_path

"""Read what a runtime needs from an ONNX file without the ``onnx`` package.

Robots often carry onnxruntime or TensorRT but not ``onnx``; the metadata (``ModelInfo``) and
the graph's inputs and outputs are a few top-level protobuf fields, walked here directly. A
truncated or non-ONNX file fails this walk, which is how corrupt files are told apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Tuple, Union

# Field numbers from onnx.proto (stable since IR version 3).
_MODEL_IR_VERSION, _MODEL_GRAPH, _MODEL_OPSET, _MODEL_METADATA = 1, 7, 8, 14
_GRAPH_NODE, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 11, 12
_ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
               11: "float64"}

Dim = Union[int, str]


class OnnxParseError(ValueError):
    pass


@dataclass(frozen=True)
class TensorDecl:
    name: str
    shape: Tuple[Dim, ...]
    dtype: str

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)


@dataclass(frozen=True)
class OnnxSummary:
    path: Path
    ir_version: int
    opsets: Dict[str, int]
    metadata: Dict[str, str]
    inputs: Tuple[TensorDecl, ...]
    outputs: Tuple[TensorDecl, ...]
    num_nodes: int


def _varint(buf: memoryview, pos: int) -> Tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise OnnxParseError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxParseError("malformed varint")


def _fields(buf: memoryview) -> Iterator[Tuple[int, Union[int, memoryview]]]:
    """Yield (field number, value) of one message: ints for scalars, views for bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OnnxParseError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise OnnxParseError("truncated field")
            yield number, buf[pos:pos + size]
            pos += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise OnnxParseError("truncated field")
            yield number, int.from_bytes(bytes(buf[pos:pos + size]), "little")
            pos += size
        else:
            raise OnnxParseError(f"unsupported wire type {wire}")


def _text(value: Union[int, memoryview]) -> str:
    if isinstance(value, int):
        raise OnnxParseError("expected a string field")
    return bytes(value).decode("utf-8")


def _sub(value: Union[int, memoryview]) -> memoryview:
    if isinstance(value, int):
        raise OnnxParseError("expected a message field")
    return value


def _shape(buf: memoryview) -> Tuple[Dim, ...]:
    dims: List[Dim] = []
    for number, dim in _fields(buf):
        if number != 1:
            continue
        value: Dim = "?"
        for field, v in _fields(_sub(dim)):
            if field == 1:
                value = int(v)  # type: ignore[arg-type]
            elif field == 2:
                value = _text(v)
        dims.append(value)
    return tuple(dims)


def _value_info(buf: memoryview) -> TensorDecl:
    name, shape, dtype = "", (), "unknown"  # type: ignore[var-annotated]
    for number, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:
            for tfield, tensor_type in _fields(_sub(value)):
                if tfield != 1:
                    continue
                for field, v in _fields(_sub(tensor_type)):
                    if field == 1:
                        dtype = _ELEM_TYPES.get(int(v), f"onnx type {v}")  # type: ignore[arg-type]
                    elif field == 2:
                        shape = _shape(_sub(v))
    return TensorDecl(name, shape, dtype)


def _string_entry(buf: memoryview) -> Tuple[str, str]:
    key, val = "", ""
    for number, value in _fields(buf):
        if number == 1:
            key = _text(value)
        elif number == 2:
            val = _text(value)
    return key, val


def parse_onnx(data: bytes, path: Path = Path("<bytes>")) -> OnnxSummary:
    """Summarise a serialised ModelProto; raises OnnxParseError if it is not one."""
    buf = memoryview(data)
    ir_version, opsets, metadata = 0, {}, {}
    inputs: List[TensorDecl] = []
    outputs: List[TensorDecl] = []
    num_nodes, has_graph = 0, False
    for number, value in _fields(buf):
        if number == _MODEL_IR_VERSION:
            ir_version = int(value)  # type: ignore[arg-type]
        elif number == _MODEL_OPSET:
            entry = dict(_fields(_sub(value)))
            domain = _text(entry[1]) if 1 in entry else ""
            opsets[domain] = int(entry.get(2, 0))  # type: ignore[arg-type]
        elif number == _MODEL_METADATA:
            key, val = _string_entry(_sub(value))
            metadata[key] = val
        elif number == _MODEL_GRAPH:
            has_graph = True
            for field, item in _fields(_sub(value)):
                if field == _GRAPH_NODE:
                    num_nodes += 1
                elif field == _GRAPH_INPUT:
                    inputs.append(_value_info(_sub(item)))
                elif field == _GRAPH_OUTPUT:
                    outputs.append(_value_info(_sub(item)))
    if not has_graph or ir_version == 0:
        raise OnnxParseError("no graph or IR version: not an ONNX model")
    return OnnxSummary(path, ir_version, opsets, metadata, tuple(inputs), tuple(outputs), num_nodes)


def read_onnx(path: Union[str, Path]) -> OnnxSummary:
    path = Path(path)
    return parse_onnx(path.read_bytes(), path)

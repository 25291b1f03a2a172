"""TensorRT backend (Jetson, desktop GPUs): engines built from the ONNX pair, cached on disk.

Works with TensorRT 8.5 to 11: the binding API of 8.5/8.6 (``execute_async_v2``, binding indices)
and the tensor-name API of 8.5+ (``set_tensor_address``, ``execute_async_v3``); FP16 through the
builder flag where it exists (up to 10.x), else (11+, no ``BuilderFlag.FP16``) a strongly typed
network over an FP16 ONNX graph (``asymtrack_ros.onnx_fp16``). Device buffers are
allocated once: the template engine writes the TemplateState straight into the buffers the search
engine reads, so the template tensors never leave the GPU and each frame copies only the search
crop in and three small outputs back. CUDA memory comes from ``cuda_memory`` (cuda-python, else
pycuda). Does not import torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from asymtrack_ros.backends import engine_cache
from asymtrack_ros.backends.base import Backend, BackendError, SearchOutput, check_input
from asymtrack_ros.backends.cuda_memory import CudaApi, DeviceInfo, load_cuda
from asymtrack_ros.backends.model_files import (
    SEARCH_INPUT,
    SEARCH_OUTPUTS,
    TEMPLATE_INPUT,
    ModelFiles,
    resolve_model_files,
)
from asymtrack_ros.backends.options import BackendOptions

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 1024
DEFAULT_PRECISION = engine_cache.DEFAULT_PRECISION
IO_APIS = ("auto", "tensors", "bindings")
FP16_ONNX_SUFFIX = ".fp16.onnx"

# TensorRT dtype name -> numpy dtype. ``trt.nptype`` is not used: TensorRT 8.5's builds a dict
# with ``np.bool`` on every call, an AttributeError under numpy >= 1.24 (NVIDIA/TensorRT#2557).
_NUMPY_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
                 "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8}

# Every attribute of the tensorrt module this backend uses, by API; test_tensorrt_bindings.py
# checks them against the real bindings of each supported TensorRT version.
API_USED: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "common": {
        "": ("Logger", "Runtime", "Builder", "OnnxParser", "BuilderFlag", "MemoryPoolType",
             "NetworkDefinitionCreationFlag", "DataType", "TensorIOMode", "__version__"),
        "Logger": ("WARNING",),
        "Runtime": ("deserialize_cuda_engine",),
        "Builder": ("create_network", "create_builder_config", "build_serialized_network"),
        "OnnxParser": ("parse", "num_errors", "get_error"),
        "IBuilderConfig": ("set_memory_pool_limit", "set_flag", "clear_flag"),
        "MemoryPoolType": ("WORKSPACE",),
        "BuilderFlag": ("TF32",),
        "ICudaEngine": ("create_execution_context",),
        "TensorIOMode": ("INPUT",),
    },
    "tensors": {
        "ICudaEngine": ("num_io_tensors", "get_tensor_name", "get_tensor_shape", "get_tensor_dtype",
                        "get_tensor_mode"),
        "IExecutionContext": ("set_tensor_address", "execute_async_v3"),
    },
    "bindings": {
        "ICudaEngine": ("num_bindings", "get_binding_name", "get_binding_shape", "get_binding_dtype",
                        "binding_is_input"),
        "IExecutionContext": ("execute_async_v2",),
    },
}


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:
        # The missing libnvinfer of a broken install is in the exception text: say it.
        raise BackendError(f"the tensorrt Python package is not importable ({type(exc).__name__}: {exc}); "
                           "on Jetson it comes with JetPack (python3-libnvinfer), elsewhere "
                           "pip install tensorrt") from exc
    return trt


def trt_version(trt: Any) -> Tuple[int, int]:
    major, minor = (str(trt.__version__).split(".") + ["0"])[:2]
    return int(major), int(minor)


def numpy_dtype(trt_dtype: Any) -> np.dtype:
    """The numpy dtype of a TensorRT ``DataType``, by its name (works on 8.5 to 11)."""
    name = getattr(trt_dtype, "name", None) or str(trt_dtype).rsplit(".", 1)[-1]
    if name not in _NUMPY_DTYPES:
        raise BackendError(f"TensorRT tensor type {name} has no numpy equivalent")
    return np.dtype(_NUMPY_DTYPES[name])


@dataclass(frozen=True)
class NetworkPlan:
    """How a precision is built on this TensorRT: the network creation flags, the builder flags
    to set and clear, and whether the ONNX graph itself must carry the FP16 types."""

    network_flags: int
    set_flags: Tuple[str, ...]
    clear_flags: Tuple[str, ...]
    strongly_typed: bool
    fp16_graph: bool

    @property
    def typing(self) -> str:
        return "strong" if self.strongly_typed else "weak"


def network_plan(trt: Any, precision: str) -> NetworkPlan:
    """Builder flag FP16 where it exists (8.5 to 10.x; deprecated from 10.12), else (11+) a
    strongly typed network over an FP16 ONNX graph."""
    if precision not in engine_cache.PRECISIONS:
        raise ValueError(f"precision must be one of {engine_cache.PRECISIONS}, got {precision!r}")
    creation = trt.NetworkDefinitionCreationFlag
    flags = 0
    if trt_version(trt) < (10, 0):
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    weak = hasattr(trt.BuilderFlag, "FP16")
    if not weak:
        if not hasattr(creation, "STRONGLY_TYPED"):
            raise BackendError(f"TensorRT {trt.__version__} has neither BuilderFlag.FP16 nor strongly "
                               "typed networks")
        flags |= 1 << int(creation.STRONGLY_TYPED)
    set_flags = ("FP16",) if precision == "fp16" and weak else ()
    # TF32 is on by default from Ampere (Orin) on: a 10-bit mantissa in "fp32" convolutions.
    clear = ("TF32",) if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32") else ()
    return NetworkPlan(flags, set_flags, clear, not weak, precision == "fp16" and not weak)


def resolve_io_api(trt: Any, requested: str) -> str:
    """``auto`` -> ``tensors`` where the tensor-name API exists (8.5+), else ``bindings``."""
    if requested not in IO_APIS:
        raise ValueError(f"io_api must be one of {IO_APIS}, got {requested!r}")
    has = {api: all(hasattr(getattr(trt, cls, None), attr)
                    for cls, attrs in API_USED[api].items() for attr in attrs)
           for api in ("tensors", "bindings")}
    if requested == "auto":
        requested = "tensors" if has["tensors"] else "bindings"
    if not has[requested]:
        other = "tensor-name" if requested == "bindings" else "binding-index"
        raise BackendError(f"io_api={requested!r} is not available in TensorRT {trt.__version__}, which has "
                           f"only the {other} API; use io_api='auto'")
    return requested


def fp16_onnx_path(onnx_path: Path) -> Path:
    """``NAME.search.onnx`` -> ``NAME.search.fp16.onnx`` (``asymtrack-export --fp16``)."""
    return onnx_path.with_name(onnx_path.name[:-len(".onnx")] + FP16_ONNX_SUFFIX)


def fp16_graph_source(onnx_path: Path) -> Tuple[str, Callable[[], bytes]]:
    """(what goes into the engine key, how to get the bytes) of the FP16 graph that strongly typed
    TensorRT builds an FP16 engine from: the exported file if present, else converted here."""
    exported = fp16_onnx_path(onnx_path)
    if exported.is_file():
        return f"fp16 graph {engine_cache.sha256_file(exported)}", exported.read_bytes
    try:
        from asymtrack_ros.onnx_fp16 import CONVERTER_VERSION, convert_file
    except ImportError as exc:
        raise BackendError(f"TensorRT 11+ builds FP16 engines from an FP16 ONNX graph; {exported} is missing "
                           f"and converting needs the onnx package ({exc}): pip install onnx, or write it "
                           "where onnx is installed: asymtrack-build-engine MODEL --fp16-onnx") from exc
    return f"fp16 graph converted (v{CONVERTER_VERSION})", lambda: convert_file(onnx_path)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Tuple[int, ...]
    dtype: np.dtype
    is_input: bool
    index: int

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


def _io_specs(trt: Any, engine: Any, api: str) -> Dict[str, TensorSpec]:
    specs = []
    if api == "tensors":
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            specs.append(TensorSpec(name, tuple(engine.get_tensor_shape(name)),
                                    numpy_dtype(engine.get_tensor_dtype(name)),
                                    engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT, i))
    else:
        for i in range(engine.num_bindings):
            specs.append(TensorSpec(engine.get_binding_name(i), tuple(engine.get_binding_shape(i)),
                                    numpy_dtype(engine.get_binding_dtype(i)),
                                    bool(engine.binding_is_input(i)), i))
    for spec in specs:
        if any(d <= 0 for d in spec.shape):
            raise BackendError(f"engine tensor {spec.name} has a dynamic shape {spec.shape}; re-export the "
                               "ONNX files with asymtrack-export (static shapes)")
    return {s.name: s for s in specs}


class EngineRunner:
    """One engine, its execution context and its tensor addresses (set once)."""

    def __init__(self, trt: Any, engine: Any, api: str = "auto") -> None:
        self.engine = engine
        self.api = api = resolve_io_api(trt, api)
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
        self.tensors = _io_specs(trt, engine, api)
        self._bindings: List[int] = [0] * len(self.tensors)

    @property
    def inputs(self) -> List[TensorSpec]:
        return [s for s in self.tensors.values() if s.is_input]

    @property
    def outputs(self) -> List[TensorSpec]:
        return [s for s in self.tensors.values() if not s.is_input]

    def bind(self, name: str, ptr: int) -> None:
        if self.api == "tensors":
            if self.context.set_tensor_address(name, ptr) is False:
                raise BackendError(f"TensorRT refused the address of tensor {name}")
        else:
            self._bindings[self.tensors[name].index] = ptr

    def execute(self, stream: int) -> None:
        if self.api == "tensors":
            ok = self.context.execute_async_v3(stream)
        else:
            ok = self.context.execute_async_v2(self._bindings, stream)
        if not ok:
            raise BackendError("TensorRT execution failed (see the TensorRT log above)")

    def release(self) -> None:
        self.context = None
        self.engine = None


def _precheck(trt: Any, onnx_path: Path) -> List[str]:
    """This TensorRT version's allow-list findings; none when the ``onnx`` package is absent (the
    parser's own errors then explain a failure)."""
    from asymtrack_ros.onnx_ops import check_onnx_file, target_for

    try:
        return check_onnx_file(onnx_path, target_for(trt_version(trt)))
    except ImportError:
        return []


def build_plan(trt: Any, logger: Any, onnx_path: Path, precision: str, workspace_mb: int,
               graph: Optional[Callable[[], bytes]] = None) -> bytes:
    """Parse ``onnx_path`` (or the bytes ``graph`` gives) and build a serialized engine;
    BackendError with the parser's reasons."""
    problems = _precheck(trt, onnx_path)
    if problems:
        raise BackendError(f"{onnx_path} uses operators TensorRT {trt.__version__} cannot parse: "
                           + "; ".join(problems[:10]))
    plan = network_plan(trt, precision)
    builder = trt.Builder(logger)
    network = builder.create_network(plan.network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph() if graph is not None else onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BackendError(f"TensorRT {trt.__version__} could not parse {onnx_path}: " + " | ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    for flag in plan.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, flag))
    for flag in plan.set_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if precision == "fp16" and not getattr(builder, "platform_has_fast_fp16", True):
        log.warning("this GPU has no fast FP16; building an FP16 engine anyway")
    log.info("building TensorRT %s %s engine (%s typed) for %s (this takes a while, once)",
             trt.__version__, precision, plan.typing, onnx_path.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine for {onnx_path} (see the TensorRT log)")
    return bytes(serialized)


@dataclass(frozen=True)
class EngineSpec:
    """One engine to load or build: its ONNX source, cache key and cache locations."""

    role: str
    onnx_path: Path
    key: engine_cache.EngineKey
    locations: Tuple[Path, ...]
    graph: Optional[Callable[[], bytes]] = None  # the FP16 graph of a strongly typed build


def engine_specs(trt: Any, files: ModelFiles, precision: str, device: DeviceInfo,
                 cache_dir: Optional[Path] = None) -> List[EngineSpec]:
    """The template and search engines this TensorRT and GPU need for ``files``."""
    plan = network_plan(trt, precision)
    specs = []
    for role, onnx_path in (("template", files.template), ("search", files.search)):
        sha = engine_cache.sha256_file(onnx_path)
        typing, graph = plan.typing, None
        if plan.fp16_graph:
            source, graph = fp16_graph_source(onnx_path)
            typing = f"strong, {source}"
        major, minor = device.compute_capability
        key = engine_cache.EngineKey(sha, str(trt.__version__), device.name, f"{major}.{minor}",
                                     device.sm_count, device.total_memory_gib, precision, typing)
        locations = engine_cache.engine_locations(onnx_path, precision, sha, cache_dir)
        specs.append(EngineSpec(role, onnx_path, key, tuple(locations), graph))
    return specs


class TensorRTBackend(Backend):
    """``TensorRTBackend(model_path, precision=DEFAULT_PRECISION, device=0, cache_dir=None,
    rebuild=False)``."""

    name = "tensorrt"

    @classmethod
    def from_options(cls, model_path: Union[str, Path], options: BackendOptions) -> TensorRTBackend:
        """``precision``, ``device`` (a GPU index), ``engine_cache_dir``, ``rebuild``."""
        return cls(model_path, precision=options.precision, device=options.gpu_index(),
                   cache_dir=options.engine_cache_dir or None, rebuild=options.rebuild)

    def __init__(self, model_path: Union[str, Path], precision: str = DEFAULT_PRECISION, device: int = 0,
                 cache_dir: Optional[Union[str, Path]] = None, rebuild: bool = False,
                 workspace_mb: int = DEFAULT_WORKSPACE_MB, cuda: Union[None, str, CudaApi] = None,
                 io_api: str = "auto") -> None:
        if precision not in engine_cache.PRECISIONS:
            raise ValueError(f"precision must be one of {engine_cache.PRECISIONS}, got {precision!r}")
        if io_api not in IO_APIS:
            raise ValueError(f"io_api must be one of {IO_APIS}, got {io_api!r}")
        self._buffers: Dict[str, int] = {}
        self._host: Dict[str, np.ndarray] = {}
        self._runners: List[EngineRunner] = []
        self._stream: Optional[int] = None
        self._has_template = False
        self.files: ModelFiles = resolve_model_files(model_path)
        self.info = self.files.info
        self.precision = precision
        self._trt = trt = import_tensorrt()
        self.io_api = resolve_io_api(trt, io_api)
        self._cuda = cuda if isinstance(cuda, CudaApi) else load_cuda(cuda)
        self._select_device(device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        cache = Path(cache_dir) if cache_dir is not None else None
        self.built: Dict[str, bool] = {}
        self.engine_paths: Dict[str, Optional[Path]] = {}
        try:
            specs = engine_specs(trt, self.files, precision, self.device_info, cache)
            self._template, self._search = (self._runner(s, rebuild, workspace_mb) for s in specs)
            self._check_io()
            self._stream = self._cuda.create_stream()
            self._allocate()
        except BaseException:
            self.close()
            raise

    def _select_device(self, device: int) -> None:
        count = self._cuda.device_count()
        if count == 0:
            raise BackendError("no CUDA device found for the TensorRT backend")
        if not 0 <= device < count:
            raise BackendError(f"CUDA device {device} does not exist ({count} found)")
        self._cuda.set_device(device)
        self.device = device
        self.device_info = self._cuda.device_info(device)
        self.gpu_name = self.device_info.name
        major, minor = self.device_info.compute_capability
        self.compute_capability = f"{major}.{minor}"

    def _runner(self, spec: EngineSpec, rebuild: bool, workspace_mb: int) -> EngineRunner:
        result = engine_cache.load_or_build(
            spec.locations, spec.key,
            build=lambda: build_plan(self._trt, self._logger, spec.onnx_path, self.precision, workspace_mb,
                                     spec.graph),
            deserialize=self._runtime.deserialize_cuda_engine, rebuild=rebuild)
        self.built[spec.role], self.engine_paths[spec.role] = result.built, result.path
        runner = EngineRunner(self._trt, result.engine, self.io_api)
        self._runners.append(runner)
        return runner

    def _check_io(self) -> None:
        t_in = {s.name for s in self._template.inputs}
        t_out = {s.name: s for s in self._template.outputs}
        s_in = {s.name: s for s in self._search.inputs}
        s_out = {s.name for s in self._search.outputs}
        state = set(self.files.state_names)
        problems = []
        if t_in != {TEMPLATE_INPUT} or set(t_out) != state:
            problems.append(f"template engine io {sorted(t_in)} -> {sorted(t_out)}")
        if set(s_in) != state | {SEARCH_INPUT} or not set(SEARCH_OUTPUTS) <= s_out:
            problems.append(f"search engine io {sorted(s_in)} -> {sorted(s_out)}")
        for name in state & set(t_out) & set(s_in):
            a, b = t_out[name], s_in[name]
            if a.shape != b.shape or a.dtype != b.dtype:
                problems.append(f"{name}: template gives {a.shape} {a.dtype}, "
                                f"search takes {b.shape} {b.dtype}")
        if problems:
            raise BackendError("TensorRT engines do not match the model files (rebuild=True rebuilds them): "
                               + "; ".join(problems))

    def _device_buffer(self, spec: TensorSpec) -> int:
        ptr = self._cuda.malloc(spec.nbytes)
        self._buffers[spec.name] = ptr
        return ptr

    def _allocate(self) -> None:
        for spec in self._template.tensors.values():
            ptr = self._device_buffer(spec)
            self._template.bind(spec.name, ptr)
            if spec.name in self.files.state_names:
                self._search.bind(spec.name, ptr)
        for spec in self._search.tensors.values():
            if spec.name not in self._buffers:
                self._search.bind(spec.name, self._device_buffer(spec))
        host = [self._template.tensors[TEMPLATE_INPUT], self._search.tensors[SEARCH_INPUT]]
        host += [self._search.tensors[n] for n in SEARCH_OUTPUTS]
        for spec in host:
            self._host[spec.name] = self._cuda.pinned_empty(spec.shape, spec.dtype)

    def init_template(self, z: np.ndarray) -> None:
        z = check_input(z, self.info.template_size, "template crop")
        self._require_open()
        np.copyto(self._host[TEMPLATE_INPUT], z.reshape(self._host[TEMPLATE_INPUT].shape))
        self._cuda.htod_async(self._buffers[TEMPLATE_INPUT], self._host[TEMPLATE_INPUT], self._stream)
        self._template.execute(self._stream)
        self._cuda.synchronize(self._stream)
        self._has_template = True

    def track(self, x: np.ndarray) -> SearchOutput:
        self._require_template()
        x = check_input(x, self.info.search_size, "search crop")
        np.copyto(self._host[SEARCH_INPUT], x.reshape(self._host[SEARCH_INPUT].shape))
        self._cuda.htod_async(self._buffers[SEARCH_INPUT], self._host[SEARCH_INPUT], self._stream)
        self._search.execute(self._stream)
        for name in SEARCH_OUTPUTS:
            self._cuda.dtoh_async(self._host[name], self._buffers[name], self._stream)
        self._cuda.synchronize(self._stream)
        boxes, prob_tl, prob_br = (self._host[n].reshape(-1).astype(np.float32) for n in SEARCH_OUTPUTS)
        return SearchOutput(boxes, prob_tl, prob_br)

    def _require_open(self) -> None:
        if self._stream is None:
            raise BackendError("tensorrt: the backend is closed")

    def close(self) -> None:
        self._has_template = False
        cuda = getattr(self, "_cuda", None)
        if self._stream is not None and cuda is not None:
            cuda.synchronize(self._stream)
        for runner in self._runners:
            runner.release()
        self._runners = []
        if cuda is not None:
            for ptr in self._buffers.values():
                cuda.free(ptr)
            for array in self._host.values():
                cuda.free_pinned(array)
            if self._stream is not None:
                cuda.destroy_stream(self._stream)
        self._buffers, self._host, self._stream = {}, {}, None

"""TensorRT backend (Jetson, desktop GPUs): engines built from the ONNX pair, cached on disk.

Works with the TensorRT 8.5/8.6 binding API (``execute_async_v2``, binding indices) and the
tensor-name API of 8.5+ and 10 (``set_tensor_address``, ``execute_async_v3``). Device buffers are
allocated once: the template engine writes the TemplateState straight into the buffers the search
engine reads, so the template tensors never leave the GPU and each frame copies only the search
crop in and three small outputs back. CUDA memory comes from ``cuda_memory`` (cuda-python, else
pycuda). Does not import torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from asymtrack_ros.backends import engine_cache
from asymtrack_ros.backends.base import Backend, BackendError, SearchOutput, check_input
from asymtrack_ros.backends.cuda_memory import CudaApi, load_cuda
from asymtrack_ros.backends.model_files import (
    SEARCH_INPUT,
    SEARCH_OUTPUTS,
    TEMPLATE_INPUT,
    ModelFiles,
    resolve_model_files,
)

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 1024
IO_APIS = ("auto", "tensors", "bindings")


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError("the tensorrt Python package is not importable (on Jetson it comes with JetPack: "
                           "python3-libnvinfer; elsewhere pip install tensorrt)") from exc
    return trt


def trt_version(trt: Any) -> Tuple[int, int]:
    major, minor = (str(trt.__version__).split(".") + ["0"])[:2]
    return int(major), int(minor)


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
                                    np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                                    engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT, i))
    else:
        for i in range(engine.num_bindings):
            specs.append(TensorSpec(engine.get_binding_name(i), tuple(engine.get_binding_shape(i)),
                                    np.dtype(trt.nptype(engine.get_binding_dtype(i))),
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
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
        if api == "auto":
            modern = hasattr(engine, "num_io_tensors") and hasattr(self.context, "execute_async_v3")
            api = "tensors" if modern else "bindings"
        self.api = api
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


def build_plan(trt: Any, logger: Any, onnx_path: Path, precision: str, workspace_mb: int) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine; BackendError with the parser's reasons."""
    problems = _precheck(trt, onnx_path)
    if problems:
        raise BackendError(f"{onnx_path} uses operators TensorRT {trt.__version__} cannot parse: "
                           + "; ".join(problems[:10]))
    builder = trt.Builder(logger)
    flags = 0
    if trt_version(trt) < (10, 0):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BackendError(f"TensorRT {trt.__version__} could not parse {onnx_path}: " + " | ".join(errors))
    config = builder.create_builder_config()
    workspace = int(workspace_mb) << 20
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:
        config.max_workspace_size = workspace
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default from Ampere (Orin) on: 10-bit mantissa
    if precision == "fp16":
        if not getattr(builder, "platform_has_fast_fp16", True):
            log.warning("this GPU has no fast FP16; building an FP16 engine anyway")
        config.set_flag(trt.BuilderFlag.FP16)
    log.info("building TensorRT %s engine for %s (this takes a while, once)", precision, onnx_path.name)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"TensorRT failed to build an engine for {onnx_path} (see the TensorRT log)")
    return bytes(plan)


class TensorRTBackend(Backend):
    """``TensorRTBackend(model_path, precision='fp32', device=0, cache_dir=None, rebuild=False)``."""

    name = "tensorrt"

    def __init__(self, model_path: Union[str, Path], precision: str = "fp32", device: int = 0,
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
        self._cuda = cuda if isinstance(cuda, CudaApi) else load_cuda(cuda)
        self._select_device(device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        cache = Path(cache_dir) if cache_dir is not None else None
        self.built: Dict[str, bool] = {}
        self.engine_paths: Dict[str, Path] = {}
        try:
            build = (cache, rebuild, workspace_mb, io_api)
            self._template = self._runner(self.files.template, "template", *build)
            self._search = self._runner(self.files.search, "search", *build)
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
        self.gpu_name = self._cuda.device_name(device)
        major, minor = self._cuda.compute_capability(device)
        self.compute_capability = f"{major}.{minor}"

    def _key(self, onnx_path: Path) -> engine_cache.EngineKey:
        return engine_cache.EngineKey(engine_cache.sha256_file(onnx_path), str(self._trt.__version__),
                                      self.gpu_name, self.compute_capability, self.precision)

    def _runner(self, onnx_path: Path, role: str, cache_dir: Optional[Path], rebuild: bool,
                workspace_mb: int, io_api: str) -> EngineRunner:
        path = engine_cache.engine_path(onnx_path, self.precision, cache_dir)
        engine, built = engine_cache.load_or_build(
            path, self._key(onnx_path),
            build=lambda: build_plan(self._trt, self._logger, onnx_path, self.precision, workspace_mb),
            deserialize=self._runtime.deserialize_cuda_engine, rebuild=rebuild)
        self.built[role], self.engine_paths[role] = built, path
        runner = EngineRunner(self._trt, engine, io_api)
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

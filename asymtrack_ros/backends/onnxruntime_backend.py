"""ONNX Runtime backend: CPU by default, CUDA or TensorRT execution providers when asked.

The template outputs stay as OrtValues (on the execution device) bound to the search session
once per target with IOBinding; each frame only the search crop goes in and three small
outputs come back. Does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from asymtrack_ros.backends.base import Backend, BackendError, SearchOutput, check_input
from asymtrack_ros.backends.engine_cache import DEFAULT_PRECISION
from asymtrack_ros.backends.model_files import (
    SEARCH_INPUT,
    SEARCH_OUTPUTS,
    TEMPLATE_INPUT,
    ModelFiles,
    resolve_model_files,
)
from asymtrack_ros.backends.options import DEFAULT_SPIN_US, BackendOptions

try:
    import onnxruntime as ort
except ImportError:  # pragma: no cover - reported when the backend is created
    ort = None

ProviderSpec = Union[str, Tuple[str, Dict[str, Any]]]
Providers = Union[None, str, Sequence[ProviderSpec]]
PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider"}
_DEVICE_OF = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}


def available_providers() -> List[str]:
    return list(ort.get_available_providers()) if ort is not None else []


def _provider_options(name: str, cache_dir: Optional[Path], fp16: bool) -> Dict[str, Any]:
    if name != "TensorrtExecutionProvider":
        return {}
    options: Dict[str, Any] = {"trt_fp16_enable": fp16}
    if cache_dir is not None:
        options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
    return options


def resolve_providers(providers: Providers, cache_dir: Optional[Path] = None,
                      fp16: bool = False) -> List[ProviderSpec]:
    """``None``/'cpu' -> CPU; 'cuda', 'tensorrt'; 'auto' -> the fastest present; or an explicit list.

    CPU is always appended as the fallback. Asking for a provider this onnxruntime build lacks
    is an error rather than a silent CPU run.
    """
    present = available_providers()
    if providers is None:
        providers = ["cpu"]
    elif isinstance(providers, str):
        if providers == "auto":
            providers = [p for p in ("tensorrt", "cuda") if PROVIDER_ALIASES[p] in present] or ["cpu"]
        else:
            providers = [p.strip() for p in providers.split(",") if p.strip()]
    resolved: List[ProviderSpec] = []
    for spec in providers:
        name, options = (spec, None) if isinstance(spec, str) else spec
        name = PROVIDER_ALIASES.get(name.lower(), name)
        if name not in present:
            raise BackendError(f"onnxruntime execution provider {name} is not available in this build "
                               f"(available: {present}); install onnxruntime-gpu or pick another")
        resolved.append((name, options if options is not None else _provider_options(name, cache_dir, fp16)))
    if all(name != "CPUExecutionProvider" for name, _ in resolved):  # type: ignore[misc]
        resolved.append(("CPUExecutionProvider", {}))
    return resolved


# onnxruntime's transpose optimizer (a level-1 pass, run again for the CPU provider's layout)
# pushes the NHWC->NCHW Transposes around each Conv into the channel-last LayerNorms that follow
# and leaves them half in NCHW: 10 of the 18 LayerNorms of AsymTrack-T's search graph then miss
# LayerNormFusion (5 run as ReduceMean/Sub/Pow/... over axis 1, 5 as SimplifiedLayerNorm after
# an unfused mean). Without it all 18 fuse, and the NCHWc pass still folds the Transposes into
# its channels_last reorders: about 6% faster on the CPU, outputs within 4e-6. Names that a
# given onnxruntime does not know are ignored.
DISABLED_OPTIMIZERS = ("TransposeOptimizer", "TransposeOptimizer_CPUExecutionProvider")


def session_options(threads: Optional[int] = None, spin_us: int = DEFAULT_SPIN_US) -> ort.SessionOptions:
    """``spin_us``: 0 never spin, N > 0 spin up to N microseconds, -1 spin by onnxruntime's policy
    (see ``options.DEFAULT_SPIN_US``). An onnxruntime that does not know
    session.intra_op.spin_duration_us ignores it and spins by its own policy."""
    spin_us = int(spin_us)
    if spin_us < -1:
        raise BackendError(f"onnxruntime spin_us must be -1, 0 or a duration in microseconds, got {spin_us}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # 0 lets onnxruntime use one thread per physical core, which is what we want by default.
    opts.intra_op_num_threads = int(threads or 0)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0" if spin_us == 0 else "1")
    if spin_us > 0:
        opts.add_session_config_entry("session.intra_op.spin_duration_us", str(spin_us))
    opts.log_severity_level = 3
    return opts


class OnnxRuntimeBackend(Backend):
    """``OnnxRuntimeBackend(model_path, providers=None, threads=None)``; see ``resolve_providers``.

    ``fp16`` applies to the TensorRT execution provider only (default: ``DEFAULT_PRECISION``, as
    TensorRT's); ``spin_us`` is how long idle worker threads spin before they sleep (see
    ``options.DEFAULT_SPIN_US``).
    """

    name = "onnxruntime"

    @classmethod
    def from_options(cls, model_path: Union[str, Path], options: BackendOptions) -> OnnxRuntimeBackend:
        """``device`` names the execution providers; ``threads``, ``precision``, ``spin_us``."""
        return cls(model_path, providers=options.device or None, threads=options.threads or None,
                   fp16=options.fp16, spin_us=options.spin_us)

    def __init__(self, model_path: Union[str, Path], providers: Providers = None,
                 threads: Optional[int] = None, fp16: bool = DEFAULT_PRECISION == "fp16",
                 spin_us: int = DEFAULT_SPIN_US) -> None:
        if ort is None:
            raise BackendError("onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu)")
        self.files: ModelFiles = resolve_model_files(model_path)
        self.info = self.files.info
        cache_dir = self.files.template.parent
        self.providers = resolve_providers(providers, cache_dir, fp16)
        opts = session_options(threads, spin_us)
        try:
            self._template = ort.InferenceSession(str(self.files.template), opts, providers=self.providers,
                                                  disabled_optimizers=list(DISABLED_OPTIMIZERS))
            self._search = ort.InferenceSession(str(self.files.search), opts, providers=self.providers,
                                                disabled_optimizers=list(DISABLED_OPTIMIZERS))
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise BackendError(f"onnxruntime could not load {self.files.prefix}: {exc}") from exc
        self.device = _DEVICE_OF.get(self._search.get_providers()[0], "cpu")
        self._template_binding = self._template.io_binding()
        self._search_binding = self._search.io_binding()
        self._outputs = self._bind_outputs()
        self._search_input = self._bind_search_input()
        self._state: Dict[str, Any] = {}
        self._has_template = False

    @property
    def active_providers(self) -> List[str]:
        return list(self._search.get_providers())

    def _bind_outputs(self) -> Dict[str, np.ndarray]:
        """Preallocated host arrays that every ``track`` writes into (no per-frame allocation)."""
        outputs = {}
        for decl in self.files.outputs:
            if decl.name not in SEARCH_OUTPUTS:
                continue
            array = np.empty(decl.shape, dtype=np.float32)
            if self.device == "cpu":
                self._search_binding.bind_ortvalue_output(decl.name, ort.OrtValue.ortvalue_from_numpy(array))
            else:
                self._search_binding.bind_output(decl.name, "cpu")
            outputs[decl.name] = array
        return outputs

    def _bind_search_input(self) -> Optional[np.ndarray]:
        if self.device != "cpu":
            return None
        x = self.info.search_size
        array = np.zeros((1, 3, x, x), dtype=np.float32)
        self._search_binding.bind_ortvalue_input(SEARCH_INPUT, ort.OrtValue.ortvalue_from_numpy(array))
        return array

    def init_template(self, z: np.ndarray) -> None:
        z = check_input(z, self.info.template_size, "template crop")
        if not hasattr(self, "_template"):
            raise BackendError("onnxruntime: the backend is closed")
        binding = self._template_binding
        binding.bind_cpu_input(TEMPLATE_INPUT, z)
        for name in self.files.state_names:
            binding.bind_output(name, self.device)
        self._template.run_with_iobinding(binding)
        values = binding.get_outputs()
        self._state = dict(zip(self.files.state_names, values))
        for name, value in self._state.items():
            self._search_binding.bind_ortvalue_input(name, value)
        self._has_template = True

    def track(self, x: np.ndarray) -> SearchOutput:
        self._require_template()
        x = check_input(x, self.info.search_size, "search crop")
        if self._search_input is not None:
            np.copyto(self._search_input, x)
        else:
            self._search_binding.bind_cpu_input(SEARCH_INPUT, x)
        self._search.run_with_iobinding(self._search_binding)
        if self.device == "cpu":
            out = self._outputs
        else:
            out = dict(zip(self._outputs, self._search_binding.copy_outputs_to_cpu()))
        return SearchOutput(out["boxes"].reshape(4).copy(), out["prob_tl"].reshape(-1).copy(),
                            out["prob_br"].reshape(-1).copy())

    def close(self) -> None:
        self._state = {}
        self._has_template = False
        for attr in ("_search_binding", "_template_binding", "_search", "_template"):
            if hasattr(self, attr):
                delattr(self, attr)

"""Just enough CUDA for the TensorRT backend: device buffers, pinned host arrays, one stream.

cuda-python (NVIDIA's ``cuda.bindings.runtime`` / ``cuda.cudart``) is preferred: it is the CUDA
runtime API, so it shares the primary context that TensorRT itself uses and works from any thread
(ROS 2 executors call back on worker threads) without context juggling. pycuda is the fallback
because many JetPack images already have it; it is driven through the retained primary context,
pushed around each call for the same reason.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from asymtrack_ros.backends.base import BackendError


class CudaError(BackendError):
    pass


# Said next to "no driver" errors, which cuda-python words differently by version: 11.8 and
# 12.0-12.5 raise RuntimeError("Failed to dlopen libcuda.so.1"), 12.9+ return "CUDA driver version
# is insufficient for CUDA runtime version".
NO_DRIVER_HINT = ("no usable NVIDIA driver: is this a machine with an NVIDIA GPU and its driver "
                  "(libcuda.so.1), and is the driver at least as new as cuda-python's CUDA version?")


@dataclass(frozen=True)
class DeviceInfo:
    """What identifies a GPU for an engine: every Orin module is named "Orin"."""

    name: str
    compute_capability: Tuple[int, int]
    sm_count: int
    total_memory: int  # bytes

    @property
    def total_memory_gib(self) -> int:
        return int(round(self.total_memory / (1 << 30)))


class CudaApi:
    """The operations the TensorRT backend needs; pointers and stream handles are ints."""

    name = "abstract"

    def device_count(self) -> int:
        raise NotImplementedError

    def device_name(self, device: int) -> str:
        raise NotImplementedError

    def compute_capability(self, device: int) -> Tuple[int, int]:
        raise NotImplementedError

    def device_info(self, device: int) -> DeviceInfo:
        raise NotImplementedError

    def set_device(self, device: int) -> None:
        raise NotImplementedError

    def malloc(self, nbytes: int) -> int:
        raise NotImplementedError

    def free(self, ptr: int) -> None:
        raise NotImplementedError

    def pinned_empty(self, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        raise NotImplementedError

    def free_pinned(self, array: np.ndarray) -> None:
        raise NotImplementedError

    def create_stream(self) -> int:
        raise NotImplementedError

    def destroy_stream(self, stream: int) -> None:
        raise NotImplementedError

    def htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        raise NotImplementedError

    def dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        raise NotImplementedError

    def synchronize(self, stream: int) -> None:
        raise NotImplementedError


class CudaPythonApi(CudaApi):
    name = "cuda-python"

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        except ImportError:
            from cuda import cudart  # older cuda-python (11.x, 12.0-12.5)
        self._rt = cudart
        self._pinned: Dict[int, int] = {}

    def _call(self, name: str, *args: Any) -> Any:
        try:
            result = getattr(self._rt, name)(*args)
        except RuntimeError as exc:  # cuda-python 11.8 / 12.0-12.5 without a driver
            raise CudaError(f"{name} failed: {exc} ({NO_DRIVER_HINT})") from exc
        err, rest = result[0], result[1:]
        if err != self._rt.cudaError_t.cudaSuccess:
            text = self._rt.cudaGetErrorString(err)[1]
            text = text.decode() if isinstance(text, bytes) else str(text)
            if "driver" in text.lower():
                text = f"{text} ({NO_DRIVER_HINT})"
            raise CudaError(f"{name} failed: {text}")
        return rest[0] if len(rest) == 1 else rest

    def device_count(self) -> int:
        return int(self._call("cudaGetDeviceCount"))

    def _props(self, device: int) -> Any:
        return self._call("cudaGetDeviceProperties", device)

    def device_name(self, device: int) -> str:
        name = self._props(device).name
        return (name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)).strip()

    def compute_capability(self, device: int) -> Tuple[int, int]:
        props = self._props(device)
        return int(props.major), int(props.minor)

    def device_info(self, device: int) -> DeviceInfo:
        props = self._props(device)
        return DeviceInfo(self.device_name(device), (int(props.major), int(props.minor)),
                          int(props.multiProcessorCount), int(props.totalGlobalMem))

    def set_device(self, device: int) -> None:
        self._call("cudaSetDevice", device)

    def malloc(self, nbytes: int) -> int:
        return int(self._call("cudaMalloc", max(nbytes, 1)))

    def free(self, ptr: int) -> None:
        self._call("cudaFree", ptr)

    def pinned_empty(self, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)
        ptr = int(self._call("cudaMallocHost", nbytes))
        raw = (ctypes.c_byte * nbytes).from_address(ptr)
        array = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
        self._pinned[id(array)] = ptr
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        ptr = self._pinned.pop(id(array), None)
        if ptr is not None:
            self._call("cudaFreeHost", ptr)

    def create_stream(self) -> int:
        return int(self._call("cudaStreamCreate"))

    def destroy_stream(self, stream: int) -> None:
        self._call("cudaStreamDestroy", stream)

    def _copy(self, dst: int, src: int, nbytes: int, kind: str, stream: int) -> None:
        self._call("cudaMemcpyAsync", dst, src, nbytes, getattr(self._rt.cudaMemcpyKind, kind), stream)

    def htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        self._copy(dst, src.ctypes.data, src.nbytes, "cudaMemcpyHostToDevice", stream)

    def dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        self._copy(dst.ctypes.data, src, dst.nbytes, "cudaMemcpyDeviceToHost", stream)

    def synchronize(self, stream: int) -> None:
        self._call("cudaStreamSynchronize", stream)


class PyCudaApi(CudaApi):
    name = "pycuda"

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as drv

        drv.init()
        self._drv = drv
        self._device = device
        self._ctx = drv.Device(device).retain_primary_context()
        self._allocations: Dict[int, Any] = {}
        self._streams: Dict[int, Any] = {}
        self._pinned: List[np.ndarray] = []

    def _run(self, fn: Any, *args: Any) -> Any:
        self._ctx.push()
        try:
            return fn(*args)
        except self._drv.Error as exc:
            raise CudaError(f"pycuda: {exc}") from exc
        finally:
            self._drv.Context.pop()

    def device_count(self) -> int:
        return int(self._drv.Device.count())

    def device_name(self, device: int) -> str:
        return str(self._drv.Device(device).name()).strip()

    def compute_capability(self, device: int) -> Tuple[int, int]:
        major, minor = self._drv.Device(device).compute_capability()
        return int(major), int(minor)

    def device_info(self, device: int) -> DeviceInfo:
        dev = self._drv.Device(device)
        sms = dev.get_attribute(self._drv.device_attribute.MULTIPROCESSOR_COUNT)
        return DeviceInfo(self.device_name(device), self.compute_capability(device), int(sms),
                          int(dev.total_memory()))

    def set_device(self, device: int) -> None:
        if device != self._device:
            self.__init__(device)  # type: ignore[misc]

    def malloc(self, nbytes: int) -> int:
        allocation = self._run(self._drv.mem_alloc, max(nbytes, 1))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        allocation = self._allocations.pop(ptr, None)
        if allocation is not None:
            self._run(allocation.free)

    def pinned_empty(self, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        array = self._run(self._drv.pagelocked_empty, shape, dtype)
        self._pinned.append(array)
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        self._pinned = [a for a in self._pinned if a is not array]

    def create_stream(self) -> int:
        stream = self._run(self._drv.Stream)
        self._streams[int(stream.handle)] = stream
        return int(stream.handle)

    def destroy_stream(self, stream: int) -> None:
        self._streams.pop(stream, None)

    def htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        self._run(self._drv.memcpy_htod_async, dst, src, self._streams[stream])

    def dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        self._run(self._drv.memcpy_dtoh_async, dst, src, self._streams[stream])

    def synchronize(self, stream: int) -> None:
        self._run(self._streams[stream].synchronize)


def load_cuda(prefer: Optional[str] = None) -> CudaApi:
    """cuda-python, else pycuda (``prefer='pycuda'`` flips the order); BackendError if neither."""
    order = [CudaPythonApi, PyCudaApi]
    if prefer == "pycuda":
        order.reverse()
    errors = []
    for cls in order:
        try:
            return cls()
        except ImportError as exc:
            errors.append(f"{cls.name}: {exc}")
        except Exception as exc:  # driver missing or no device: reported below
            errors.append(f"{cls.name}: {type(exc).__name__}: {exc}")
    raise CudaError("the TensorRT backend needs cuda-python (pip install cuda-python, matching the CUDA "
                       "major version) or pycuda; " + "; ".join(errors))

"""What a caller may ask of any backend, in one value; each backend reads the fields it knows.

The node (its parameters), the command-line tools and the benchmark all build a
``BackendOptions`` and hand it to ``backends.open_backend``; only a backend's own
``from_options`` knows its constructor's keywords. Imports neither torch, onnxruntime nor
tensorrt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from asymtrack_ros.backends.engine_cache import DEFAULT_PRECISION, PRECISIONS

# How long onnxruntime's intra-op worker threads spin waiting for work before they sleep. Spinning
# spares each parallel op of a frame a futex wake-up, but onnxruntime's own policy (-1 here) keeps
# every worker spinning between frames too: on a Jetson with one thread per core that is the whole
# CPU, taken from the robot's other nodes. Hence 0 (sleep at once) by default; docs/BACKENDS.md has
# what each setting costs.
DEFAULT_SPIN_US = 0


@dataclass(frozen=True)
class BackendOptions:
    """Backend settings; the defaults are each backend's own, and the node's parameters' defaults.

    - ``device``: "" for the backend's default. pytorch: a torch device (``cpu``, ``cuda:0``);
      tensorrt: a GPU index (``0``, ``cuda:1``); onnxruntime: execution providers (``cpu``,
      ``cuda``, ``tensorrt``, ``auto`` or a comma list).
    - ``threads``: intra-op threads of onnxruntime and PyTorch; 0: the runtime's default.
    - ``precision``: TensorRT engine precision, and the onnxruntime TensorRT provider's.
    - ``spin_us``: onnxruntime worker spin before sleeping (0 never, -1 onnxruntime's policy).
    - ``engine_cache_dir``: where TensorRT engines are cached; None: beside the ONNX files.
    - ``rebuild``: build the TensorRT engines even if the cache holds valid ones.
    - ``variant``: t|s|b, for PyTorch loading a published checkpoint without metadata.
    """

    device: str = ""
    threads: int = 0
    precision: str = DEFAULT_PRECISION
    spin_us: int = DEFAULT_SPIN_US
    engine_cache_dir: Optional[str] = None
    rebuild: bool = False
    variant: Optional[str] = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if int(self.threads) < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if int(self.spin_us) < -1:
            raise ValueError(f"spin_us must be -1, 0 or a duration in microseconds, got {self.spin_us}")

    @property
    def fp16(self) -> bool:
        return self.precision == "fp16"

    def gpu_index(self) -> int:
        """``device`` as a CUDA device index: '' or 'cuda' -> 0, '1' or 'cuda:1' -> 1."""
        text = str(self.device).strip().lower()
        if text in ("", "cuda", "gpu"):
            return 0
        index = text.split(":")[-1]
        if not index.isdigit():
            raise ValueError(f"device {self.device!r} is not a GPU index (0, 1, cuda:1)")
        return int(index)

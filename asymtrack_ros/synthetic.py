"""Seeded synthetic tracking sequences with exact ground truth, and the GOT-10k folder layout.

``make_sequence(seed, length)`` renders a procedurally textured target that moves, changes scale,
can be hidden behind an occluder and can leave the frame, over a textured background with a few
distractor shapes. The same seed gives the same frames on every machine (only numpy's seeded
generator and OpenCV's deterministic warps are used). ``visible[i]`` is True when at least
``visible_threshold`` of the target's area is inside the frame and not occluded.

GOT-10k layout: ``00000001.jpg ...``, ``groundtruth.txt`` (one ``x,y,w,h`` line per frame) and
``absence.label`` (``1`` where the target is absent, optional when reading).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union
from typing import Sequence as SequenceT

import cv2
import numpy as np

Segment = Tuple[int, int]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class Sequence:
    frames: SequenceT[np.ndarray]  # list of HxWx3 uint8 RGB (or a LazyFrames from read_got10k)
    boxes: np.ndarray  # (N, 4) float64 x, y, w, h in pixels
    visible: np.ndarray  # (N,) bool
    name: str = "synthetic"

    def __len__(self) -> int:
        return len(self.frames)


class LazyFrames:
    """Frames of an image folder, decoded (as RGB) only when indexed."""

    def __init__(self, paths: SequenceT[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return read_rgb(self.paths[index])

    def __iter__(self) -> Iterator[np.ndarray]:
        return (read_rgb(p) for p in self.paths)


def read_rgb(path: Union[str, Path]) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def noise_texture(rng: np.random.Generator, shape: Tuple[int, int], cells: int,
                  octaves: int = 3, saturation: float = 1.0) -> np.ndarray:
    """Multi-octave coloured value noise, HxWx3 uint8."""
    h, w = shape
    acc = np.zeros((h, w, 3), np.float32)
    weight = 1.0
    for octave in range(octaves):
        n = max(2, cells * 2 ** octave)
        grid = rng.random((n, n, 3)).astype(np.float32)
        acc += weight * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        weight *= 0.5
    acc -= acc.min()
    acc /= max(float(acc.max()), 1e-6)
    palette = rng.random((2, 3)).astype(np.float32) * 255.0
    grey = acc.mean(axis=2, keepdims=True)
    mixed = saturation * acc + (1.0 - saturation) * grey
    return np.clip(palette[0] + mixed * (palette[1] - palette[0]) + (mixed - 0.5) * 120.0,
                   0, 255).astype(np.uint8)


def draw_shapes(rng: np.random.Generator, image: np.ndarray, count: int) -> np.ndarray:
    h, w = image.shape[:2]
    for _ in range(count):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(2, max(3, min(h, w) // 6)))
        if rng.random() < 0.5:
            cv2.circle(image, (cx, cy), r, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(image, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
    return image


def target_texture(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A distinctive, saturated target pattern: noise, stripes and shapes with a dark outline."""
    tex = noise_texture(rng, (size, size), cells=3, saturation=1.0)
    period = int(rng.integers(8, 20))
    stripes = ((np.arange(size)[:, None] + np.arange(size)[None, :]) // period) % 2 == 0
    tex[stripes] = (0.6 * tex[stripes] + 0.4 * rng.integers(0, 256, 3)).astype(np.uint8)
    draw_shapes(rng, tex, 4)
    cv2.rectangle(tex, (0, 0), (size - 1, size - 1), (20, 20, 20), 10)
    return tex


def smooth_path(rng: np.random.Generator, length: int, start: np.ndarray, speed: float,
                low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Centres of a target with momentum that bounces off the [low, high] box."""
    pos = np.empty((length, 2))
    p = start.astype(np.float64).copy()
    angle = rng.uniform(0, 2 * np.pi)
    v = speed * np.array([np.cos(angle), np.sin(angle)])
    for i in range(length):
        pos[i] = p
        v = 0.9 * v + 0.1 * speed * rng.normal(size=2)
        norm = np.linalg.norm(v)
        if norm > 0:
            v *= speed / norm
        p = p + v
        for k in range(2):
            if p[k] < low[k] or p[k] > high[k]:
                v[k] = -v[k]
                p[k] = np.clip(p[k], low[k], high[k])
    return pos


def exit_offsets(centres: np.ndarray, sizes: np.ndarray, frame_wh: Tuple[int, int],
                 segments: SequenceT[Segment]) -> np.ndarray:
    """Offsets that move the target out through its nearest edge and back during each segment."""
    offsets = np.zeros_like(centres)
    w, h = frame_wh
    for start, end in segments:
        if end <= start:
            continue
        c, s = centres[start], sizes[start]
        gaps = np.array([c[0], w - c[0], c[1], h - c[1]])
        side = int(np.argmin(gaps))
        out = np.zeros(2)
        axis = 0 if side < 2 else 1
        sign = -1.0 if side % 2 == 0 else 1.0
        out[axis] = sign * (gaps[side] + s[axis])
        n = end - start
        ramp = max(1, n // 3)
        for i in range(start, min(end, len(centres))):
            k = i - start
            t = min(1.0, (k + 1) / ramp, (n - k) / ramp)
            offsets[i] = out * t
    return offsets


def visible_fraction(box: np.ndarray, frame_wh: Tuple[int, int], occluder: Optional[np.ndarray]) -> float:
    x, y, w, h = box
    area = w * h
    ix1, iy1 = max(x, 0.0), max(y, 0.0)
    ix2, iy2 = min(x + w, frame_wh[0]), min(y + h, frame_wh[1])
    inside = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    if occluder is not None and inside > 0:
        ox, oy, ow, oh = occluder
        cx1, cy1 = max(ix1, ox), max(iy1, oy)
        cx2, cy2 = min(ix2, ox + ow), min(iy2, oy + oh)
        inside -= max(0.0, cx2 - cx1) * max(0.0, cy2 - cy1)
    return float(inside / area) if area > 0 else 0.0


def paste(frame: np.ndarray, texture: np.ndarray, box: np.ndarray) -> None:
    """Alpha-blend ``texture`` warped onto the sub-pixel box ``(x, y, w, h)``, in place."""
    th, tw = texture.shape[:2]
    x, y, w, h = box
    m = np.array([[w / tw, 0.0, x], [0.0, h / th, y]])
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpAffine(texture, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(np.ones((th, tw), np.float32), m, size, flags=cv2.INTER_LINEAR)
    region = alpha > 0
    if region.any():
        a = alpha[region][:, None]
        frame[region] = (a * warped[region] + (1.0 - a) * frame[region] + 0.5).astype(np.uint8)


def make_sequence(seed: int, length: int = 60, size: Tuple[int, int] = (240, 320), *,
                  target_size: Optional[Tuple[float, float]] = None, speed: float = 3.0,
                  scale_range: Tuple[float, float] = (0.75, 1.35),
                  occlusions: SequenceT[Segment] = (), exits: SequenceT[Segment] = (),
                  distractors: int = 6, noise: float = 2.0,
                  visible_threshold: float = 0.5) -> Sequence:
    """Render a seeded sequence of ``length`` RGB frames of ``size`` = (H, W).

    ``target_size`` is the initial (w, h) in pixels (default: random, 12-22 % of the short side).
    ``occlusions`` are [start, end) frame ranges in which an occluder covers the whole target;
    ``exits`` are ranges in which the target leaves through its nearest edge and comes back.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    h, w = int(size[0]), int(size[1])
    if h < 32 or w < 32:
        raise ValueError(f"frame size must be at least 32x32, got {size}")
    rng = np.random.default_rng(seed)
    short = min(h, w)
    if target_size is None:
        side = rng.uniform(0.12, 0.22) * short
        aspect = rng.uniform(0.7, 1.4)
        target_size = (side * np.sqrt(aspect), side / np.sqrt(aspect))
    base_wh = np.array(target_size, np.float64)
    if not np.all(np.isfinite(base_wh)) or np.any(base_wh <= 1):
        raise ValueError(f"target_size must be two finite sizes > 1 px, got {target_size}")

    background = draw_shapes(rng, noise_texture(rng, (h, w), cells=5, octaves=4, saturation=0.5), distractors)
    texture = target_texture(rng)
    occluder_tex = noise_texture(rng, (64, 64), cells=2, saturation=0.3)

    t = np.arange(length)
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(40, 90)
    lo, hi = scale_range
    scales = lo + (hi - lo) * 0.5 * (1 + np.sin(2 * np.pi * t / period + phase))
    sizes = base_wh[None, :] * scales[:, None]
    margin = base_wh * hi / 2 + 2
    low, high = margin, np.array([w, h]) - margin
    if np.any(low >= high):
        raise ValueError(f"target_size {target_size} is too large for a {w}x{h} frame")
    centres = smooth_path(rng, length, rng.uniform(low, high), speed, low, high)
    centres = centres + exit_offsets(centres, sizes, (w, h), exits)
    boxes = np.concatenate([centres - sizes / 2, sizes], axis=1)

    occluded = np.zeros(length, bool)
    for start, end in occlusions:
        occluded[max(0, start):max(0, end)] = True
    frames: List[np.ndarray] = []
    visible = np.zeros(length, bool)
    for i in range(length):
        frame = background.copy()
        paste(frame, texture, boxes[i])
        occluder = None
        if occluded[i]:
            occluder = np.concatenate([centres[i] - sizes[i] * 0.7, sizes[i] * 1.4])
            paste(frame, occluder_tex, occluder)
        if noise > 0:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
        visible[i] = visible_fraction(boxes[i], (w, h), occluder) >= visible_threshold
    return Sequence(frames=frames, boxes=boxes, visible=visible, name=f"synthetic_{seed:04d}")


def write_got10k(seq: Sequence, folder: Union[str, Path], quality: int = 95) -> Path:
    """Write ``seq`` in GOT-10k layout into ``folder`` (created); returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(seq.frames):
        path = out / f"{i + 1:08d}.jpg"
        if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
            raise OSError(f"cannot write {path}")
    lines = [",".join(f"{v:.4f}" for v in box) for box in np.asarray(seq.boxes, np.float64)]
    (out / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    absence = ["0" if v else "1" for v in np.asarray(seq.visible, bool)]
    (out / "absence.label").write_text("\n".join(absence) + "\n")
    return out


def image_paths(folder: Union[str, Path]) -> List[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_boxes(path: Union[str, Path]) -> np.ndarray:
    """Read ``x,y,w,h`` lines (comma, tab or space separated) as an (N, 4) float64 array."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.replace(",", " ").replace("\t", " ").split()
        try:
            values = [float(v) for v in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ValueError(f"{path}:{number}: expected 'x,y,w,h', got {line!r}")
        rows.append(values)
    return np.array(rows, np.float64).reshape(-1, 4)


def read_got10k(folder: Union[str, Path], lazy: bool = False) -> Sequence:
    """Read a GOT-10k sequence folder. ``lazy`` decodes frames only when indexed."""
    root = Path(folder)
    gt = root / "groundtruth.txt"
    if not gt.is_file():
        raise FileNotFoundError(f"{root} has no groundtruth.txt (not a GOT-10k sequence folder)")
    paths = image_paths(root)
    if not paths:
        raise ValueError(f"{root} contains no images")
    boxes = read_boxes(gt)
    absence_file = root / "absence.label"
    if absence_file.is_file():
        visible = np.array([v.strip() != "1" for v in absence_file.read_text().split()], bool)
    else:
        visible = np.ones(len(boxes), bool)
    frames = LazyFrames(paths) if lazy else [read_rgb(p) for p in paths]
    return Sequence(frames=frames, boxes=boxes, visible=visible, name=root.name)

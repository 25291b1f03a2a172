"""Template/search training pairs: sources, the paper's jitter, crops made like inference crops.

A pair is a pure function of ``(seed, index)``: ``PairDataset[k]`` seeds a fresh generator with
``[seed, k]``, picks a source, draws two frames with the target's box in each, crops the template
around its box (factor 2, no jitter) and the search region around a jittered copy of its box
(factor 4, the paper's centre/scale jitter), exactly with ``asymtrack_ros.tracking.crop`` and
normalised with ``asymtrack_ros.tracking.preprocess``. So training can resume at any index
without saving sampler state, and two runs with one seed see the same pairs.

Sources (``parse_source``):
- ``synthetic[:N]``: ``asymtrack_ros.synthetic.make_sequence`` with seeds ``SYNTHETIC_SEED_BASE + i``,
  i < N. A few sequences are alive at a time (a sliding window over the seeds), each rendered
  once and cached, so a rendered sequence gives many pairs.
- ``got10k:DIR``: the GOT-10k sequences under DIR (list.txt, absence/cover labels).
- ``real:DIR`` / ``otb:DIR``: OTB-layout sequence folders (``asymtrack-prepare-real`` writes the
  real sequences so); ``lasot:DIR``: a LaSOT root; ``uav123:DIR``: a UAV123 root (whole videos).
- ``coco:DIR``: COCO photos with their boxes (instances json or YOLO labels), synthetic motion.
- ``stills:DIR``: photos and video frames under DIR with synthetic motion (``stills.py``).

Video sources draw a template and a search frame, both visible, at most ``max_gap`` frames apart.
Every video source leaves out the sequences named in ``exclude`` (the manifest's held-out split);
``real:`` refuses to run without such a list.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from asymtrack_ros.datasets.coco import coco_images
from asymtrack_ros.datasets.got10k import got10k_sequences
from asymtrack_ros.datasets.lasot import lasot_sequences
from asymtrack_ros.datasets.otb import otb_sequences, uav123_sequences
from asymtrack_ros.model_info import ModelInfo
from asymtrack_ros.synthetic import Sequence as Seq
from asymtrack_ros.synthetic import make_sequence
from asymtrack_ros.tracking import crop, crop_window, preprocess
from asymtrack_ros.training.box_stills import BoxStillsRenderer
from asymtrack_ros.training.stills import Pair, StillsRenderer, load_photos

# Training sequences use seeds from here up; keep evaluation seeds below it (or far above N).
SYNTHETIC_SEED_BASE = 1_000_000
SYNTHETIC_SIZES = ((240, 320), (200, 280), (288, 384))


@dataclass(frozen=True)
class Jitter:
    """Search-box jitter of the paper (OSTrack convention): centre factor and log-scale sigma."""

    centre: float = 3.5
    scale: float = 0.5


def jitter_box(box: Sequence[float], jitter: Jitter, rng: np.random.Generator) -> np.ndarray:
    """Size times ``exp(N(0, scale))``; centre moved uniformly by up to ``centre/2`` jittered sides."""
    x, y, w, h = (float(v) for v in box)
    wh = np.array([w, h]) * np.exp(rng.normal(0.0, jitter.scale, 2))
    offset = math.sqrt(float(wh.prod())) * jitter.centre * (rng.random(2) - 0.5)
    cx, cy = x + w / 2 + offset[0], y + h / 2 + offset[1]
    return np.array([cx - wh[0] / 2, cy - wh[1] / 2, wh[0], wh[1]])


def box_in_crop(box: Sequence[float], crop_box: Sequence[float], factor: float) -> np.ndarray:
    """``box`` as normalised (cx, cy, w, h) in the crop around ``crop_box``, as the tracker decodes it.

    The tracker maps the network box back with the crop side and the crop centre (not the rounded
    corner), so we express the target in the same frame.
    """
    _, _, side = crop_window(crop_box, factor)
    x, y, w, h = (float(v) for v in box)
    cx0 = crop_box[0] + crop_box[2] / 2 - side / 2
    cy0 = crop_box[1] + crop_box[3] / 2 - side / 2
    return np.array([(x + w / 2 - cx0) / side, (y + h / 2 - cy0) / side, w / side, h / side])


class SyntheticSource:
    """``count`` synthetic sequences; ``pool`` of them alive at a time, the window sliding every
    ``refresh`` pair indices."""

    name = "synthetic"

    def __init__(self, count: int = 1000, length: int = 60, pool: int = 8, refresh: int = 64,
                 seed_base: int = SYNTHETIC_SEED_BASE, max_gap: int = 100):
        if count < 1:
            raise ValueError(f"synthetic needs at least one sequence, got {count}")
        self.count, self.length, self.pool, self.refresh = count, length, pool, refresh
        self.seed_base, self.max_gap = seed_base, max_gap
        self._cache: OrderedDict[int, Seq] = OrderedDict()

    def sequence(self, index: int) -> Seq:
        if index not in self._cache:
            seed = self.seed_base + index
            ev = np.random.default_rng([seed, 1])
            size = SYNTHETIC_SIZES[int(ev.integers(len(SYNTHETIC_SIZES)))]
            start = int(ev.integers(self.length // 4, self.length // 2))
            occ = [(start, start + self.length // 8)] if ev.random() < 0.5 else []
            exits = [(int(self.length * 0.65), int(self.length * 0.85))] if ev.random() < 0.3 else []
            self._cache[index] = make_sequence(seed, self.length, size, occlusions=occ, exits=exits)
            while len(self._cache) > self.pool + 2:
                self._cache.popitem(last=False)
        return self._cache[index]

    def sample(self, rng: np.random.Generator, k: int) -> Pair:
        index = (k // self.refresh + int(rng.integers(self.pool))) % self.count
        return sample_frames(self.sequence(index), rng, self.max_gap)


class VideoSource:
    """Real sequences (any reader of ``asymtrack_ros.datasets``): uniform over sequences."""

    def __init__(self, name: str, sequences: Sequence, max_gap: int = 100):
        usable = [s for s in sequences if np.asarray(s.visible, bool).any()]
        if not usable:
            raise ValueError(f"{name}: no sequence with a visible target")
        self.name, self.sequences, self.max_gap = name, usable, max_gap

    def sample(self, rng: np.random.Generator, k: int) -> Pair:
        seq = self.sequences[int(rng.integers(len(self.sequences)))]
        return sample_frames(seq, rng, self.max_gap)


class CocoSource:
    """COCO photos and their boxes with synthetic motion (``box_stills.py``)."""

    name = "coco"

    def __init__(self, root: str):
        self.renderer = BoxStillsRenderer(coco_images(root))

    def sample(self, rng: np.random.Generator, k: int) -> Pair:
        return self.renderer.render(rng)


class StillsSource:
    """Photos/video frames under a folder, with synthetic motion."""

    name = "stills"

    def __init__(self, root: str, frame_size: Tuple[int, int] = (240, 320)):
        self.renderer = StillsRenderer(load_photos([root]), frame_size)

    def sample(self, rng: np.random.Generator, k: int) -> Pair:
        return self.renderer.render(rng)


def sample_frames(seq: Seq, rng: np.random.Generator, max_gap: int) -> Pair:
    """A visible template frame and a visible search frame at most ``max_gap`` frames away."""
    visible = np.flatnonzero(np.asarray(seq.visible, bool)[:len(seq.boxes)])
    if visible.size == 0:
        raise ValueError(f"{seq.name}: the target is never visible")
    t = int(visible[rng.integers(visible.size)])
    near = visible[np.abs(visible - t) <= max_gap]
    s = int(near[rng.integers(near.size)])
    return seq.frames[t], np.asarray(seq.boxes[t]), seq.frames[s], np.asarray(seq.boxes[s])


VIDEO_READERS: Dict[str, Callable[..., List]] = {
    "got10k": got10k_sequences, "real": otb_sequences, "otb": otb_sequences, "lasot": lasot_sequences,
    "uav123": uav123_sequences}


def parse_source(spec: str, max_gap: int = 100, exclude: Optional[Iterable[str]] = None):
    """``synthetic[:N]``, ``KIND:DIR`` for a video kind of ``VIDEO_READERS``, ``coco:DIR`` or
    ``stills:DIR`` -> a source object; video sources leave out the sequences named in ``exclude``."""
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        return SyntheticSource(int(arg) if arg else 1000, max_gap=max_gap)
    if kind in VIDEO_READERS and arg:
        if kind == "real" and exclude is None:
            raise ValueError("real:DIR needs the held-out split (a manifest) so as never to train on it")
        sequences = VIDEO_READERS[kind](arg, exclude=list(exclude or ()))
        return VideoSource(f"{kind}:{arg}", sequences, max_gap)
    if kind == "coco" and arg:
        return CocoSource(arg)
    if kind == "stills" and arg:
        return StillsSource(arg)
    raise ValueError(f"bad data spec {spec!r}: expected synthetic[:N], {':DIR, '.join(VIDEO_READERS)}:DIR, "
                     "coco:DIR or stills:DIR")


def parse_weighted(spec: str) -> Tuple[str, float]:
    """``SPEC@WEIGHT`` -> (SPEC, WEIGHT); weight 1 when absent."""
    head, sep, tail = spec.rpartition("@")
    if sep and head:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return spec, 1.0


def _brightness(patch: np.ndarray, rng: np.random.Generator, amount: float = 0.2) -> np.ndarray:
    gain = rng.uniform(1.0 - amount, 1.0 + amount)
    return np.clip(patch.astype(np.float32) * gain, 0, 255).astype(np.uint8)


class PairDataset(torch.utils.data.Dataset):
    """``dataset[k]`` -> (z (3,Z,Z), x (3,X,X) normalised float32, box (4,) normalised cx,cy,w,h)."""

    def __init__(self, sources: Sequence, info: ModelInfo, seed: int = 0,
                 weights: Optional[Sequence[float]] = None, jitter: Jitter = Jitter(),
                 length: int = 10 ** 9, flip_prob: float = 0.5, gray_prob: float = 0.05):
        if not sources:
            raise ValueError("PairDataset needs at least one source")
        w = np.ones(len(sources)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(sources),) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"bad source weights {weights}")
        self.sources: List = list(sources)
        self.probs = w / w.sum()
        self.info, self.seed, self.jitter, self.length = info, seed, jitter, length
        self.flip_prob, self.gray_prob = flip_prob, gray_prob

    def __len__(self) -> int:
        return self.length

    def crops(self, k: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """uint8 template crop, uint8 search crop, normalised target box in the search crop."""
        rng = np.random.default_rng([self.seed, k])
        source = self.sources[int(rng.choice(len(self.sources), p=self.probs))]
        frame_z, box_z, frame_x, box_x = source.sample(rng, k)
        info = self.info
        z, _ = crop(frame_z, box_z, info.template_factor, info.template_size)
        search_box = jitter_box(box_x, self.jitter, rng)
        x, _ = crop(frame_x, search_box, info.search_factor, info.search_size)
        box = box_in_crop(box_x, search_box, info.search_factor)
        if rng.random() < self.flip_prob:
            z, x = z[:, ::-1], x[:, ::-1]
            box[0] = 1.0 - box[0]
        if rng.random() < self.gray_prob:
            z, x = (np.repeat(p.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8) for p in (z, x))
        return _brightness(z, rng), _brightness(x, rng), box.astype(np.float32)

    def __getitem__(self, k: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z, x, box = self.crops(int(k))
        zt = torch.from_numpy(preprocess(np.ascontiguousarray(z), self.info.mean, self.info.std)[0])
        xt = torch.from_numpy(preprocess(np.ascontiguousarray(x), self.info.mean, self.info.std)[0])
        return zt, xt, torch.from_numpy(box)

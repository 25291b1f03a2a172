"""Still photographs (and video frames) as training data: a target pasted with synthetic motion.

As the paper does with COCO, one still gives a template/search pair by moving the target between
two frames. Without box annotations we make the target ourselves: a patch of one photo (or a
procedural texture from ``asymtrack_ros.synthetic``) pasted over a crop of another photo, moved,
rescaled and relit between the two frames, with camera shift, distractor patches and a partial
occluder. The ground truth is exact by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple, Union

import cv2
import numpy as np

from asymtrack_ros.synthetic import draw_shapes, noise_texture, paste, target_texture

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov")
Pair = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # frame_z, box_z, frame_x, box_x


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _video_frames(path: Path, count: int) -> List[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for index in np.linspace(0, max(total - 1, 0), count).astype(int) if total > 0 else []:
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
        if ok and frame is not None:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def load_photos(folders: Sequence[Union[str, Path]], max_side: int = 512, min_side: int = 64,
                frames_per_video: int = 6) -> List[np.ndarray]:
    """RGB uint8 photos from image files (and a few frames of each video) under ``folders``."""
    photos: List[np.ndarray] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"stills folder {root} does not exist")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                images = [] if image is None else [cv2.cvtColor(image, cv2.COLOR_BGR2RGB)]
            elif suffix in VIDEO_SUFFIXES:
                images = _video_frames(path, frames_per_video)
            else:
                continue
            photos.extend(_shrink(im, max_side) for im in images if min(im.shape[:2]) >= min_side)
    if not photos:
        raise ValueError(f"no readable images or videos under {[str(f) for f in folders]}")
    return photos


def random_patch(rng: np.random.Generator, photo: np.ndarray, aspect: float, min_frac: float = 0.15,
                 max_frac: float = 0.6) -> np.ndarray:
    """A random sub-rectangle of ``photo`` with width/height ``aspect``."""
    h, w = photo.shape[:2]
    side = rng.uniform(min_frac, max_frac) * min(h, w)
    pw = int(np.clip(side * np.sqrt(aspect), 8, w))
    ph = int(np.clip(side / np.sqrt(aspect), 8, h))
    x = int(rng.integers(0, w - pw + 1))
    y = int(rng.integers(0, h - ph + 1))
    return photo[y:y + ph, x:x + pw]


class StillsRenderer:
    """Renders template/search frame pairs from a photo library (see module docstring)."""

    def __init__(self, photos: Sequence[np.ndarray], frame_size: Tuple[int, int] = (240, 320),
                 photo_target_prob: float = 0.6, photo_background_prob: float = 0.8):
        if not photos:
            raise ValueError("StillsRenderer needs at least one photo")
        self.photos = list(photos)
        self.frame_size = frame_size
        self.photo_target_prob = photo_target_prob
        self.photo_background_prob = photo_background_prob

    def _photo(self, rng: np.random.Generator) -> np.ndarray:
        return self.photos[int(rng.integers(len(self.photos)))]

    def _background(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        if rng.random() < self.photo_background_prob:
            photo = self._photo(rng)
            patch = random_patch(rng, photo, w / h, 0.5, 1.0)
            background = cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR)
        else:
            background = noise_texture(rng, (h, w), cells=5, octaves=4, saturation=0.5)
        return draw_shapes(rng, np.ascontiguousarray(background), int(rng.integers(0, 5)))

    def _texture(self, rng: np.random.Generator, aspect: float) -> np.ndarray:
        if rng.random() < self.photo_target_prob:
            texture = np.ascontiguousarray(random_patch(rng, self._photo(rng), aspect, 0.1, 0.5))
            if rng.random() < 0.5:
                cv2.rectangle(texture, (0, 0), (texture.shape[1] - 1, texture.shape[0] - 1),
                              tuple(int(c) for c in rng.integers(0, 256, 3)), 2)
            return texture
        return target_texture(rng)

    def render(self, rng: np.random.Generator) -> Pair:
        """(frame_z, box_z, frame_x, box_x): two RGB frames and the target's (x, y, w, h) in each."""
        h, w = self.frame_size
        margin = 16
        canvas = self._background(rng, h + 2 * margin, w + 2 * margin)
        short = min(h, w)
        side = rng.uniform(0.1, 0.3) * short
        aspect = float(np.exp(rng.uniform(-0.5, 0.5)))
        wh_z = np.array([side * np.sqrt(aspect), side / np.sqrt(aspect)])
        wh_x = wh_z * np.exp(rng.normal(0.0, 0.15))
        c_z = rng.uniform(wh_z / 2 + 2, np.array([w, h]) - wh_z / 2 - 2)
        c_x = np.clip(c_z + rng.normal(0.0, 0.5 * side, 2), wh_x / 2, np.array([w, h]) - wh_x / 2)
        box_z = np.concatenate([c_z - wh_z / 2, wh_z])
        box_x = np.concatenate([c_x - wh_x / 2, wh_x])
        texture = self._texture(rng, aspect)
        distractor = self._texture(rng, float(np.exp(rng.uniform(-0.5, 0.5)))) if rng.random() < 0.4 else None
        frames = []
        for box in (box_z, box_x):
            sx, sy = (int(v) for v in rng.integers(0, 2 * margin + 1, 2))
            frame = canvas[sy:sy + h, sx:sx + w].copy()
            if distractor is not None:
                d_side = side * rng.uniform(0.7, 1.3)
                paste(frame, distractor, np.array([rng.uniform(0, w - d_side), rng.uniform(0, h - d_side),
                                                   d_side, d_side]))
            paste(frame, texture, box)
            frames.append(frame)
        frame_z, frame_x = frames
        if rng.random() < 0.25:
            self._occlude(rng, frame_x, box_x)
        frame_x = self._relight(rng, frame_x)
        return frame_z, box_z, frame_x, box_x

    def _occlude(self, rng: np.random.Generator, frame: np.ndarray, box: np.ndarray) -> None:
        """Cover at most ~40 % of the target with a patch sliding in from one side."""
        x, y, bw, bh = box
        frac = rng.uniform(0.15, 0.4)
        side = int(rng.integers(4))
        occ = {0: [x - bw, y - 0.2 * bh, bw * (1 + frac), bh * 1.4],
               1: [x + bw * (1 - frac), y - 0.2 * bh, bw * (1 + frac), bh * 1.4],
               2: [x - 0.2 * bw, y - bh, bw * 1.4, bh * (1 + frac)],
               3: [x - 0.2 * bw, y + bh * (1 - frac), bw * 1.4, bh * (1 + frac)]}[side]
        paste(frame, random_patch(rng, self._photo(rng), 1.0, 0.1, 0.4), np.array(occ))

    @staticmethod
    def _relight(rng: np.random.Generator, frame: np.ndarray) -> np.ndarray:
        gain = rng.uniform(0.75, 1.25)
        noise = rng.normal(0.0, rng.uniform(0.0, 4.0), frame.shape)
        return np.clip(frame * gain + noise, 0, 255).astype(np.uint8)

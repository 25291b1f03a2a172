"""Where the extra search looks while the target is LOST: wider around the last box, then tiles.

Frame k of the extra search (k = 0, 1, ...) looks at a crop of factor ``factor`` around the last
confident box for the first ``wide_frames`` frames, then at one tile per frame of a grid that
covers the whole image with crops of the same side (overlapping by a quarter), cycling. A tile
is a box of the last confident size centred on the tile, so the crop keeps the target's scale.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

from asymtrack_ros.tracking.inputs import Box


def _centres(length: int, side: float) -> List[float]:
    if side >= length:
        return [0.5 * length]
    count = math.ceil((length - side) / (0.75 * side)) + 1
    step = (length - side) / (count - 1)
    return [0.5 * side + i * step for i in range(count)]


def tile_boxes(confident: Sequence[float], factor: float, image_size: Tuple[int, int]) -> List[Box]:
    """Boxes of the confident size whose crops (side sqrt(w*h)*factor) tile the image."""
    _, _, w, h = confident
    side = math.sqrt(w * h) * factor
    width, height = image_size
    return [(cx - 0.5 * w, cy - 0.5 * h, float(w), float(h))
            for cy in _centres(height, side) for cx in _centres(width, side)]


def extra_search(step: int, confident: Sequence[float], factor: float, wide_frames: int,
                 image_size: Tuple[int, int]) -> Box:
    """The box whose crop (with ``factor``) the ``step``-th extra search looks at."""
    if step < wide_frames:
        return tuple(float(v) for v in confident)  # type: ignore[return-value]
    tiles = tile_boxes(confident, factor, image_size)
    return tiles[(step - wide_frames) % len(tiles)]

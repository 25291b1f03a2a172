"""Overlays that cost bytes: image markers as plain data, and the JPEG debug image.

visualization_msgs/ImageMarker has no text type, and image panels (Foxglove's Image panel,
rqt_image_overlay) draw only its shapes: the box is a closed LINE_STRIP, and the label (track id,
state, confidence) is drawn with a small stroke font as a LINE_LIST, a few hundred bytes a frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

Point = Tuple[float, float]
Colour = Tuple[float, float, float, float]  # r, g, b, a in [0, 1]

LINE_STRIP = "line_strip"
LINE_LIST = "line_list"
BOX_ID, LABEL_ID = 0, 1
STATE_COLOURS: Dict[str, Colour] = {
    "TRACKING": (0.0, 1.0, 0.0, 1.0),
    "LOST": (1.0, 0.55, 0.0, 1.0),
    "IDLE": (0.6, 0.6, 0.6, 1.0),
}

# Glyphs on a 2 x 4 cell (y down), each a list of polylines.
_RECT = [(0, 0), (2, 0), (2, 4), (0, 4), (0, 0)]
_FIVE = [[(2, 0), (0, 0), (0, 2), (2, 2), (2, 4), (0, 4)]]
_GLYPHS: Dict[str, List[List[Point]]] = {
    "0": [_RECT, [(2, 0), (0, 4)]], "1": [[(0.5, 1), (1, 0), (1, 4)]],
    "2": [[(0, 0), (2, 0), (2, 2), (0, 2), (0, 4), (2, 4)]],
    "3": [[(0, 0), (2, 0), (2, 4), (0, 4)], [(0, 2), (2, 2)]],
    "4": [[(0, 0), (0, 2), (2, 2)], [(2, 0), (2, 4)]], "5": _FIVE,
    "6": [[(2, 0), (0, 0), (0, 4), (2, 4), (2, 2), (0, 2)]], "7": [[(0, 0), (2, 0), (2, 4)]],
    "8": [_RECT, [(0, 2), (2, 2)]], "9": [[(2, 2), (0, 2), (0, 0), (2, 0), (2, 4), (0, 4)]],
    ".": [[(1, 3.6), (1, 4)]], "-": [[(0, 2), (2, 2)]], ":": [[(1, 1), (1, 1.4)], [(1, 2.6), (1, 3)]],
    "A": [[(0, 4), (0, 0), (2, 0), (2, 4)], [(0, 2), (2, 2)]], "C": [[(2, 0), (0, 0), (0, 4), (2, 4)]],
    "D": [[(0, 0), (0, 4), (1.4, 4), (2, 3), (2, 1), (1.4, 0), (0, 0)]],
    "E": [[(2, 0), (0, 0), (0, 4), (2, 4)], [(0, 2), (1.5, 2)]],
    "G": [[(2, 0), (0, 0), (0, 4), (2, 4), (2, 2), (1, 2)]], "I": [[(1, 0), (1, 4)], [(0, 0), (2, 0)],
                                                                  [(0, 4), (2, 4)]],
    "K": [[(0, 0), (0, 4)], [(2, 0), (0, 2), (2, 4)]], "L": [[(0, 0), (0, 4), (2, 4)]],
    "N": [[(0, 4), (0, 0), (2, 4), (2, 0)]], "O": [_RECT], "R": [[(0, 4), (0, 0), (2, 0), (2, 2), (0, 2),
                                                                (2, 4)]],
    "S": _FIVE, "T": [[(0, 0), (2, 0)], [(1, 0), (1, 4)]],
}
_ADVANCE = 3.0  # glyph cell width (2) plus spacing, in glyph units


@dataclass(frozen=True)
class Marker:
    """One ImageMarker as plain data: ``points`` in pixels (x right, y down)."""

    marker_id: int
    kind: str  # LINE_STRIP or LINE_LIST
    points: List[Point]
    colour: Colour
    scale: float  # line width, pixels


def box_outline(box: Sequence[float]) -> List[Point]:
    """The closed outline of (x, y, w, h): five corners, the first repeated."""
    x, y, w, h = (float(v) for v in box)
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]


def stroke_text(text: str, origin: Point, height: float) -> List[Point]:
    """Segments (point pairs, for LINE_LIST) drawing ``text`` with its top left at ``origin``.
    Characters without a glyph are left blank."""
    unit = height / 4.0
    segments: List[Point] = []
    for i, char in enumerate(text.upper()):
        left = origin[0] + i * _ADVANCE * unit
        for line in _GLYPHS.get(char, []):
            for (x0, y0), (x1, y1) in zip(line, line[1:]):
                top = origin[1]
                segments += [(left + x0 * unit, top + y0 * unit), (left + x1 * unit, top + y1 * unit)]
    return segments


def label_text(track_id: str, state: str, confidence: float) -> str:
    return f"{track_id} {state} {confidence:.2f}" if track_id else f"{state} {confidence:.2f}"


def markers(box: Sequence[float], track_id: str, state: str, confidence: float,
            text_height: float = 12.0, line_width: float = 2.0) -> List[Marker]:
    """The box outline and its label above the box (inside the image's top edge)."""
    colour = STATE_COLOURS.get(state, STATE_COLOURS["IDLE"])
    x, y = float(box[0]), float(box[1])
    top = y - text_height - 4.0 if y - text_height - 4.0 >= 0 else y + 4.0
    text = stroke_text(label_text(track_id, state, confidence), (x, top), text_height)
    return [Marker(BOX_ID, LINE_STRIP, box_outline(box), colour, line_width),
            Marker(LABEL_ID, LINE_LIST, text, colour, max(1.0, line_width / 2))]


def draw(rgb: np.ndarray, box: Sequence[float], track_id: str, state: str, confidence: float) -> np.ndarray:
    """A copy of ``rgb`` with the box and its label drawn."""
    image = np.array(rgb, copy=True)
    r, g, b, _ = STATE_COLOURS.get(state, STATE_COLOURS["IDLE"])
    colour = (int(r * 255), int(g * 255), int(b * 255))
    x, y, w, h = (int(round(v)) for v in box)
    cv2.rectangle(image, (x, y), (x + w, y + h), colour, 2)
    cv2.putText(image, label_text(track_id, state, confidence), (x, max(12, y - 4)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return image


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """RGB uint8 HxWx3 -> JPEG bytes (stored as BGR, as image_transport's compressed plugin does)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {rgb.shape}")
    return data.tobytes()

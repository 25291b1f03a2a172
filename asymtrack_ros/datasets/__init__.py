"""Readers of real tracking datasets (OTB/UAV123, GOT-10k, LaSOT, COCO stills): numpy and OpenCV only."""

from __future__ import annotations

"""Rosbag2 input and output without ROS: frames and boxes in, tracks and TrackStatus out (``rosbags``)."""

from __future__ import annotations

from asymtrack_ros.bag.reader import (
                                      BagError,
                                      BagOpenError,
                                      BagReader,
                                      CorruptBagError,
                                      EncodingError,
                                      Frame,
                                      StampedBox,
                                      TopicError,
)
from asymtrack_ros.bag.writer import BagWriteError, BagWriter, TrackWriter

__all__ = ["BagError", "BagOpenError", "BagReader", "CorruptBagError", "EncodingError", "Frame", "StampedBox",
           "TopicError", "BagWriteError", "BagWriter", "TrackWriter"]

"""The demo bag: a seeded synthetic flight with ground truth, as a rosbag2 that replays anywhere.

Topics (``log time == header.stamp``, 30 fps, frame_id ``camera``):

- ``/camera/image_raw/compressed`` sensor_msgs/CompressedImage, JPEG, 320x240
- ``/ground_truth`` vision_msgs/Detection2DArray: one detection (the exact box, score 1) per frame,
  no detection where the target is hidden (occluded or out of view)
- ``/init_box`` vision_msgs/Detection2D: the first frame's box, stamped with the first frame

The same seed gives the same frames and ground truth on every machine (``synthetic``). The bag is
written under ``data/demo/`` of a source checkout, else under ``~/.cache/asymtrack_ros/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from asymtrack_ros.packaged import CHECKOUT, share_dirs
from asymtrack_ros.synthetic import Sequence, make_sequence

SEED = 90210  # well away from the seeds the training sets use
FRAMES = 150
SIZE = (240, 320)  # H, W
FPS = 30.0
START_NS = 1_700_000_000_000_000_000
OCCLUSIONS = ((96, 106),)
IMAGE_TOPIC = "/camera/image_raw/compressed"
GT_TOPIC = "/ground_truth"
INIT_TOPIC = "/init_box"
FRAME_ID = "camera"
BAG_NAME = "asymtrack_demo"



def demo_sequence(seed: int = SEED, frames: int = FRAMES) -> Sequence:
    return make_sequence(seed, frames, SIZE, occlusions=OCCLUSIONS if frames > OCCLUSIONS[0][1] else ())


def stamp_of(index: int) -> int:
    return START_NS + int(round(index * 1e9 / FPS))


def default_bag_path() -> Path:
    """``data/demo/asymtrack_demo`` of a checkout or an installed package, else the user's cache."""
    if (CHECKOUT / "setup.py").is_file():
        return CHECKOUT / "data" / "demo" / BAG_NAME
    for folder in share_dirs():
        if (folder / "data" / "demo" / BAG_NAME).is_dir():
            return folder / "data" / "demo" / BAG_NAME
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "asymtrack_ros" / BAG_NAME


def write_demo_bag(path: Union[str, Path], seed: int = SEED, frames: int = FRAMES, storage: str = "mcap",
                   raw: bool = False, quality: int = 90, overwrite: bool = False) -> Path:
    """Write the demo bag (``raw``: sensor_msgs/Image rgb8 on ``/camera/image_raw`` instead of JPEG)."""
    from asymtrack_ros.bag import BagWriter
    from asymtrack_ros.bag import messages as m
    from asymtrack_ros.bag.types import COMPRESSED_IMAGE, DETECTION_2D, DETECTION_2D_ARRAY, IMAGE

    seq = demo_sequence(seed, frames)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    topic, msgtype = (image_topic(raw), IMAGE if raw else COMPRESSED_IMAGE)
    with BagWriter(out, storage=storage, overwrite=overwrite) as bag:
        for i, frame in enumerate(seq.frames):
            stamp = stamp_of(i)
            if raw:
                image = m.raw_image(stamp, FRAME_ID, frame)
            else:
                image = m.compressed_image(stamp, FRAME_ID, frame, quality)
            bag.write(topic, msgtype, stamp, image)
            if i == 0:
                bag.write(INIT_TOPIC, DETECTION_2D, stamp, m.detection(stamp, FRAME_ID, seq.boxes[0]))
            gt = [m.detection(stamp, FRAME_ID, seq.boxes[i])] if seq.visible[i] else []
            bag.write(GT_TOPIC, DETECTION_2D_ARRAY, stamp, m.detection_array(stamp, FRAME_ID, gt))
    return out


def image_topic(raw: bool = False) -> str:
    return "/camera/image_raw" if raw else IMAGE_TOPIC


def ensure_demo_bag(path: Optional[Union[str, Path]] = None) -> Path:
    """The demo bag at ``path`` (default: ``default_bag_path()``), generated if it is missing."""
    bag = Path(path) if path is not None else default_bag_path()
    if not (bag / "metadata.yaml").is_file():
        write_demo_bag(bag, overwrite=bag.exists())
    return bag

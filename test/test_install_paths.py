"""Both install paths, for real: a colcon build of the ROS packages asymtrack_msgs and asymtrack_ros
(as on Humble/Jazzy) and a pip wheel of the core library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP_IN_COPY = {".venv", "build", "install", "log", "out", ".git", "__pycache__", ".pytest_cache"}
# colcon (and rosdep) stop crawling at a package, so the nested asymtrack_msgs is a base path of its
# own: the README's colcon command.
BASE_PATHS = ["src", "src/asymtrack_ros/asymtrack_msgs"]


def copy_package(dest: Path) -> None:
    shutil.copytree(REPO, dest, ignore=lambda _dir, names: [n for n in names if n in SKIP_IN_COPY])


def workspace_env(venv: str) -> dict:
    """A ROS system's environment: the underlay only, not this checkout's development build. The
    wheels' bootstrapper re-executes Python with its library path unless told it already has."""
    dropped = ("PYTHONPATH", "LD_LIBRARY_PATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(AMENT_PREFIX_PATH=venv, CMAKE_PREFIX_PATH=venv)
    return env


@pytest.mark.slow
def test_colcon_build_installs_msgs_python_package_and_node(tmp_path: Path):
    colcon = shutil.which("colcon")
    venv = os.environ.get("VIRTUAL_ENV")
    if colcon is None or venv is None:
        pytest.skip("colcon or the ROS 2 wheel environment is missing: run scripts/setup.sh")
    src = tmp_path / "ws" / "src"
    copy_package(src / "asymtrack_ros")
    shutil.copytree(REPO / "ros_interfaces" / "vision_msgs", src / "vision_msgs")
    (src / "asymtrack_ros" / "ros_interfaces" / "COLCON_IGNORE").touch()
    workspace = tmp_path / "ws"
    env = workspace_env(venv)
    build = subprocess.run(
        [colcon, "build", "--base-paths", *BASE_PATHS, "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    events = [line.split()[:3] for line in build.stdout.splitlines()]
    # asymtrack_ros waits for its dependency asymtrack_msgs.
    msgs_done = events.index(["Finished", "<<<", "asymtrack_msgs"])
    assert msgs_done < events.index(["Starting", ">>>", "asymtrack_ros"]), build.stdout

    install = workspace / "install"
    prefix = install / "asymtrack_ros"
    msgs = install / "asymtrack_msgs"
    for name in ("TrackStatus", "TargetBearing"):
        assert (msgs / "share" / "asymtrack_msgs" / "msg" / f"{name}.msg").read_bytes() == \
            (REPO / "asymtrack_msgs" / "msg" / f"{name}.msg").read_bytes()
    assert not list(prefix.glob("lib/lib*rosidl*")), "asymtrack_ros generates no interfaces any more"
    assert os.access(prefix / "lib" / "asymtrack_ros" / "asymtrack_node", os.X_OK)
    for tool in ("asymtrack-track", "asymtrack-replay", "asymtrack-demo"):  # ros2 run asymtrack_ros <tool>
        assert os.access(prefix / "lib" / "asymtrack_ros" / tool, os.X_OK), tool
    share = prefix / "share" / "asymtrack_ros"
    for name in ("package.xml", "launch/tracker.launch.py", "launch/demo.launch.py",
                 "config/asymtrack_t.yaml"):
        assert (share / name).is_file(), name

    prefixes = [prefix, msgs, install / "vision_msgs"]
    site = next(prefix.glob("lib/python3*/site-packages"))
    env.update(
        PYTHONPATH=os.pathsep.join(str(next(p.glob("lib/python3*/site-packages"))) for p in prefixes),
        LD_LIBRARY_PATH=os.pathsep.join(str(p / "lib") for p in prefixes),
        AMENT_PREFIX_PATH=os.pathsep.join([str(p) for p in prefixes] + [venv]))
    check = subprocess.run(
        [sys.executable, "-c",
         "import asymtrack_ros, asymtrack_ros.tracking;"
         "from asymtrack_msgs.msg import TargetBearing, TrackStatus;"
         "from ament_index_python.packages import get_package_share_directory as d;"
         "print(asymtrack_ros.__file__, TrackStatus.__module__, TrackStatus.LOST, TargetBearing.LOST,"
         " d('asymtrack_ros'))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    module_file, status_module, lost, bearing_lost, share_dir = check.stdout.split()
    assert module_file.startswith(str(site)) and share_dir == str(share)
    assert status_module == "asymtrack_msgs.msg._track_status" and lost == bearing_lost == "2"

    # The installed executable runs and rejects a bad parameter with a reason, not a traceback.
    node = subprocess.run(
        [sys.executable, str(prefix / "lib" / "asymtrack_ros" / "asymtrack_node"),
         "--ros-args", "-p", "backend:=no_such_backend"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert node.returncode != 0
    assert "backend" in node.stderr + node.stdout and "Traceback" not in node.stderr


def test_pip_wheel_has_package_and_console_scripts(tmp_path: Path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("asymtrack_ros-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for module in ("asymtrack_ros/tracking/tracker.py", "asymtrack_ros/backends/onnxruntime_backend.py",
                   "asymtrack_ros/ros/node.py", "asymtrack_ros/model/asymtrack.py"):
        assert module in names
    for script in ("asymtrack-node", "asymtrack-track", "asymtrack-bench", "asymtrack-export",
                   "asymtrack-replay", "asymtrack-demo", "asymtrack-train", "asymtrack-eval"):
        assert f"{script} = " in entry_points

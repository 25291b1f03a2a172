"""The tools' one launcher for ``ros2 run asymtrack_ros asymtrack-<tool>``, and its three name lists
agreeing: asymtrack_ros.tools.TOOLS, setup.py's console scripts and what CMakeLists.txt installs."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asymtrack_ros.tools import TOOLS

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "scripts" / "asymtrack_tool"


def setup_py_tools() -> dict:
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"(asymtrack-[a-z-]+)": "asymtrack_ros\.tools\.([a-z_]+):main"', text))


def test_every_pip_tool_is_a_ros2_run_tool_with_a_main() -> None:
    assert setup_py_tools() == TOOLS
    for module in TOOLS.values():
        tree = ast.parse((REPO / "asymtrack_ros" / "tools" / f"{module}.py").read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), module


def test_cmake_installs_the_launcher_under_each_tool_name(tmp_path: Path) -> None:
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("no cmake")
    lists = (REPO / "CMakeLists.txt").read_text()
    block = re.search(r"^file\(STRINGS \S+/tools/__init__\.py.*?^endforeach\(\)", lists, re.S | re.M)
    assert block is not None, "CMakeLists.txt no longer reads the tool names from asymtrack_ros/tools"
    install = (r"install\(PROGRAMS scripts/asymtrack_tool DESTINATION lib/\$\{PROJECT_NAME\} "
               r"RENAME \$\{tool\}\)")
    assert re.search(install, block.group(0))
    script = tmp_path / "tools.cmake"
    script.write_text(f"set(PROJECT_NAME asymtrack_ros)\nset(CMAKE_CURRENT_SOURCE_DIR {REPO.as_posix()})\n"
                      + re.sub(install, 'message("TOOL ${tool}")', block.group(0)))
    run = subprocess.run([cmake, "-P", str(script)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert re.findall(r"TOOL (\S+)", run.stderr) == list(TOOLS)


def _launch(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    installed = tmp_path / name
    shutil.copy(LAUNCHER, installed)  # as CMake installs it: the launcher renamed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(installed), *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)


def test_launcher_runs_the_tool_it_is_named_after(tmp_path: Path) -> None:
    run = _launch(tmp_path, "asymtrack-replay", "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: asymtrack-replay") and "--init-topic" in run.stdout
    bad = _launch(tmp_path, "asymtrack-nothing", "--help")
    assert bad.returncode != 0 and "asymtrack-track" in bad.stderr

"""Command-line tools: each module has a ``main()``.

``TOOLS`` names each tool's command and module: pip installs them as console scripts (setup.py),
and a colcon build installs ``scripts/asymtrack_tool`` once under each command name (CMakeLists.txt
reads the names below, one per line), so that ``ros2 run asymtrack_ros asymtrack-track ...`` runs
the same ``main()``.
"""

TOOLS = {
    "asymtrack-info": "info",
    "asymtrack-convert": "convert",
    "asymtrack-export": "export",
    "asymtrack-build-engine": "build_engine",
    "asymtrack-bench": "bench",
    "asymtrack-track": "track",
    "asymtrack-eval": "evaluate",
    "asymtrack-bench-real": "bench_real",
    "asymtrack-calibrate": "calibrate",
    "asymtrack-synth": "synth",
    "asymtrack-replay": "replay",
    "asymtrack-demo": "demo",
    "asymtrack-train": "train",
    "asymtrack-prepare-real": "prepare_real",
    "asymtrack-distill": "distill",
}

"""asymtrack-track, asymtrack-eval and asymtrack-synth end to end, on the shipped demo model."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from asymtrack_ros import packaged
from asymtrack_ros.packaged import CHECKOUT, DEMO_MODEL_NAME, model_exists
from asymtrack_ros.synthetic import make_sequence, write_got10k
from asymtrack_ros.tools import evaluate, synth, track

DEMO_MODEL = CHECKOUT / "models" / DEMO_MODEL_NAME


@pytest.fixture(scope="module")
def model() -> str:
    """The shipped demo model (its ONNX pair runs on ONNX Runtime, no torch needed)."""
    if not model_exists(DEMO_MODEL):
        pytest.skip(f"demo model {DEMO_MODEL} is not in the checkout")
    return str(DEMO_MODEL)


@pytest.fixture(scope="module")
def seq_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("seqs")
    for seed in (1, 2):
        write_got10k(make_sequence(seed, 10, occlusions=[(4, 6)]), root / f"seq{seed}")
    return root


def test_track_image_folder_writes_csv_and_video(model, seq_folder, tmp_path, capsys):
    out_csv, out_video = tmp_path / "boxes.csv", tmp_path / "out.avi"
    rc = track.main([str(seq_folder / "seq1"), "--init", "100,80,40,30", "--model", model, "--backend",
                     "onnxruntime", "--csv", str(out_csv), "--video-out", str(out_video), "--quiet"])
    assert rc == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 10 and rows[0]["frame"] == "0" and float(rows[0]["x"]) == 100.0
    ids = {"TRACKING": "1", "LOST": "2"}
    assert all(ids[r["state"]] == r["state_id"] for r in rows)
    assert all(0.0 <= float(r["confidence"]) <= 1.0 for r in rows)
    video = cv2.VideoCapture(str(out_video))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    out = capsys.readouterr().out
    assert "frames: 10" in out and "mean FPS" in out and "mean latency" in out


def test_track_video_file(model, tmp_path, capsys, monkeypatch):
    seq = make_sequence(4, 6)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for frame in seq.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    monkeypatch.chdir(tmp_path)
    box = ",".join(f"{v:.1f}" for v in seq.boxes[0])
    assert track.main([str(path), "--init", box, "--model", model, "--quiet", "--max-frames", "4"]) == 0
    rows = list(csv.DictReader((tmp_path / "clip_track.csv").open()))
    assert len(rows) == 4


@pytest.mark.parametrize("args,message", [
    (["missing.mp4", "--init", "1,2,3,4"], "no such file"),
    (["{seq}", "--init", "1000,2,3,4"], "outside"),
    (["{seq}", "--init", "1,2,0,4"], "positive width"),
])
def test_track_user_errors_exit_2(model, seq_folder, tmp_path, capsys, args, message):
    args = [a.replace("{seq}", str(seq_folder / "seq1")) for a in args]
    rc = track.main(args + ["--model", model, "--csv", str(tmp_path / "x.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_track_bad_init_string_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        track.main(["video.mp4", "--init", "1,2,3"])
    assert exc.value.code == 2 and "x,y,w,h" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(seq_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ASYMTRACK_MODEL", raising=False)
    monkeypatch.setattr(packaged, "share_dirs", lambda: [])  # as if the demo model were not installed
    monkeypatch.chdir(tmp_path)
    rc = track.main([str(seq_folder / "seq1"), "--init", "1,2,30,40", "--quiet"])
    assert rc == 2 and "--model" in capsys.readouterr().err


def test_evaluate_reports_auc_and_precision(model, seq_folder, tmp_path, capsys):
    out_json = tmp_path / "metrics.json"
    rc = evaluate.main([str(seq_folder), "--model", model, "--json", str(out_json),
                        "--results-dir", str(tmp_path / "res"), "--quiet"])
    assert rc == 0
    metrics = json.loads(out_json.read_text())
    assert set(metrics["sequences"]) == {"seq1", "seq2"}
    assert metrics["summary"]["frames"] == 2 * 7  # 10 frames - init - 2 occluded
    assert 0.0 <= metrics["summary"]["auc"] <= 1.0
    assert (tmp_path / "res" / "seq1_001.txt").is_file()
    out = capsys.readouterr().out
    assert "seq1" in out and "AUC" in out and "P@20" in out
    wider = ["--lost-search-factor", "8"]
    assert evaluate.main([str(seq_folder / "seq2"), "--model", model, "--quiet"] + wider) == 0


def test_evaluate_user_errors(model, tmp_path, capsys):
    assert evaluate.main([str(tmp_path / "nowhere"), "--model", model]) == 2
    assert evaluate.main([str(tmp_path), "--model", model]) == 2
    assert "groundtruth.txt" in capsys.readouterr().err


def test_synth_writes_sequences(tmp_path, capsys):
    args = [str(tmp_path), "--count", "2", "--seed", "5", "--length", "12", "--size", "160x120"]
    assert synth.main(args) == 0
    names = (tmp_path / "list.txt").read_text().split()
    assert names == ["synthetic_000005", "synthetic_000006"]
    frames = sorted((tmp_path / names[1]).glob("*.jpg"))
    assert len(frames) == 12 and cv2.imread(str(frames[0])).shape == (120, 160, 3)
    absent = (tmp_path / names[1] / "absence.label").read_text().split()
    assert "1" in absent
    with pytest.raises(SystemExit):
        synth.main([str(tmp_path), "--size", "big"])


def test_track_with_a_real_backend(reference_dir, tmp_path, capsys):
    import asymtrack_ros.backends as backends

    if not hasattr(backends, "create_backend"):
        pytest.skip("asymtrack_ros.backends.create_backend not available yet")
    pytest.importorskip("torch").set_num_threads(1)
    ref = np.load(reference_dir / "tracker_tiny.npz")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(ref["frames"][:4]):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    box = ",".join(str(v) for v in ref["init_box"])
    model = str(reference_dir / "official_tiny_random.pth.tar")
    rc = track.main([str(folder), "--init", box, "--model", model, "--backend", "pytorch",
                     "--csv", str(tmp_path / "t.csv"), "--quiet"])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    np.testing.assert_allclose([float(rows[1][k]) for k in "xywh"], ref["official_states"][1], atol=0.01)


# --- damaged input, backend choice, --start-frame, early output checks (issue 12) -----------------

def damaged_folder(seq_folder, tmp_path):
    """seq1 with frame 5 cut to 60 % (a partly written JPEG) and frame 7 not a JPEG at all."""
    folder = tmp_path / "damaged"
    shutil.copytree(seq_folder / "seq1", folder)
    frames = sorted(folder.glob("*.jpg"))
    data = frames[5].read_bytes()
    frames[5].write_bytes(data[:int(len(data) * 0.6)])
    frames[7].write_bytes(b"not an image" * 20)
    return folder, frames


def test_damaged_images_are_skipped_with_a_warning(model, seq_folder, tmp_path, capsys):
    folder, frames = damaged_folder(seq_folder, tmp_path)
    out_csv = tmp_path / "t.csv"
    rc = track.main([str(folder), "--init", "100,80,40,30", "--model", model, "--backend", "onnxruntime",
                     "--csv", str(out_csv), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"frame 5 ({frames[5].name}): truncated JPEG" in err and "skipped, not tracked" in err
    assert f"frame 7 ({frames[7].name}): cannot be decoded" in err
    rows = list(csv.DictReader(out_csv.open()))
    assert [int(r["frame"]) for r in rows] == [0, 1, 2, 3, 4, 6, 8, 9]  # the input's numbering, gaps shown


def test_a_frame_of_another_size_ends_the_run(model, seq_folder, tmp_path, capsys):
    """The tracking session ends the track at a frame of another size; the tool says where and keeps
    the rows before it."""
    folder = tmp_path / "resized"
    shutil.copytree(seq_folder / "seq1", folder)
    frames = sorted(folder.glob("*.jpg"))
    cv2.imwrite(str(frames[4]), cv2.resize(cv2.imread(str(frames[4])), (160, 120)))
    out_csv = tmp_path / "t.csv"
    rc = track.main([str(folder), "--init", "100,80,40,30", "--model", model, "--backend", "onnxruntime",
                     "--csv", str(out_csv), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and f"frame 4 ({frames[4].name}): image size changed from 320x240 to 160x120" in err
    assert [int(r["frame"]) for r in csv.DictReader(out_csv.open())] == [0, 1, 2, 3]


def test_damaged_start_frame_is_an_error(model, seq_folder, tmp_path, capsys):
    folder, frames = damaged_folder(seq_folder, tmp_path)
    rc = track.main([str(folder), "--init", "100,80,40,30", "--model", model, "--start-frame", "5",
                     "--csv", str(tmp_path / "t.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "start frame 5" in err and "truncated JPEG" in err and "Traceback" not in err


def test_image_damage_markers():
    ok, _ = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    jpeg = ok and _.tobytes()
    assert track.image_damage(jpeg) == "" and track.image_damage(jpeg + b"\0\0") == ""
    assert "FFD9" in track.image_damage(jpeg[:-2])
    png = cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))[1].tobytes()
    assert track.image_damage(png) == "" and "PNG" in track.image_damage(png[:-20])


def test_start_frame_inits_there_and_skips_earlier_frames(model, seq_folder, tmp_path, capsys):
    out_csv = tmp_path / "t.csv"
    rc = track.main([str(seq_folder / "seq1"), "--init", "100,80,40,30", "--model", model, "--start-frame",
                     "4", "--max-frames", "3", "--csv", str(out_csv), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    rows = list(csv.DictReader(out_csv.open()))
    assert [int(r["frame"]) for r in rows] == [4, 5, 6]
    assert [float(rows[0][k]) for k in "xywh"] == [100.0, 80.0, 40.0, 30.0]  # the template is frame 4's
    assert track.main([str(seq_folder / "seq1"), "--init", "1,2,30,40", "--model", model, "--start-frame",
                       "10", "--quiet"]) == 2
    assert "has 10 images" in capsys.readouterr().err


def test_start_frame_in_a_video(model, tmp_path, capsys):
    path, seq = write_video(tmp_path / "clip.avi", 8)
    out_csv = tmp_path / "t.csv"
    box = ",".join(f"{v:.1f}" for v in seq.boxes[3])
    assert track.main([str(path), "--init", box, "--model", model, "--start-frame", "3", "--csv",
                       str(out_csv), "--quiet"]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [int(r["frame"]) for r in rows] == [3, 4, 5, 6, 7]
    assert track.main([str(path), "--init", box, "--model", model, "--start-frame", "20", "--quiet",
                       "--csv", str(out_csv)]) == 2
    assert "ends after 8 frames" in capsys.readouterr().err


def write_video(path, n):
    seq = make_sequence(4, n)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for frame in seq.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path, seq


def test_video_announcing_more_frames_than_it_holds(model, tmp_path, capsys):
    """A cut AVI keeps its header's frame count: the bar ends at the frames read, with a warning."""
    path, seq = write_video(tmp_path / "clip.avi", 20)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:int(len(data) * 0.3)])
    capture = cv2.VideoCapture(str(cut))
    announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert announced == 20, "OpenCV reads the count from the AVI header"
    box = ",".join(f"{v:.1f}" for v in seq.boxes[0])
    out_csv = tmp_path / "t.csv"
    assert track.main([str(cut), "--init", box, "--model", model, "--csv", str(out_csv)]) == 0
    read = len(list(csv.DictReader(out_csv.open())))
    err = capsys.readouterr().err
    assert 0 < read < 20
    assert f"{read} frames read from the start frame on, the file announced 20" in err
    last = [line for line in err.replace("\r", "\n").splitlines() if "frame/s" in line][-1]
    assert f"{read}/{read}" in last and "100%" in last, last


def test_auto_backend_is_named(model, seq_folder, tmp_path, capsys):
    from asymtrack_ros.backends import auto_kind

    rc = track.main([str(seq_folder / "seq1"), "--init", "100,80,40,30", "--model", model, "--max-frames",
                     "2", "--csv", str(tmp_path / "t.csv"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and f"backend: {auto_kind()} (picked by --backend auto:" in out
    assert evaluate.main([str(seq_folder / "seq2"), "--model", model, "--backend", "onnxruntime",
                          "--quiet"]) == 0
    assert "backend: onnxruntime\n" in capsys.readouterr().out


@pytest.mark.parametrize("video_out,message", [
    ("{tmp}/no/such/folder/out.mp4", "does not exist"),
    ("{tmp}/out.xyz", "unknown video extension '.xyz'"),
    ("{tmp}/ro/out.avi", "cannot write it"),
])
def test_bad_video_out_fails_before_tracking(model, seq_folder, tmp_path, capsys, monkeypatch, video_out,
                                             message):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    if message == "cannot write it" and os.access(tmp_path / "ro", os.W_OK):
        pytest.skip("running as a user who can write into a read-only folder (root)")
    monkeypatch.setattr(track, "open_backend_from_args", lambda *a: pytest.fail("the backend was opened"))
    rc = track.main([str(seq_folder / "seq1"), "--init", "100,80,40,30", "--model", model, "--csv",
                     str(tmp_path / "t.csv"), "--video-out", video_out.replace("{tmp}", str(tmp_path)),
                     "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err


def test_missing_model_file_is_named_by_every_tool(seq_folder, tmp_path, capsys, monkeypatch):
    from asymtrack_ros.tools import replay

    monkeypatch.chdir(tmp_path)
    bag = CHECKOUT / "data" / "demo" / "asymtrack_demo"
    runs = {"track": lambda b: track.main([str(seq_folder / "seq1"), "--init", "1,2,30,40", "--model",
                                           "nope.pt", "--backend", b, "--quiet"]),
            "eval": lambda b: evaluate.main([str(seq_folder), "--model", "nope.pt", "--backend", b]),
            "replay": lambda b: replay.main([str(bag), "--init-topic", "/init_box", "--model", "nope.pt",
                                             "--backend", b, "--out", str(tmp_path / "o"), "--no-progress"])}
    for name, main in runs.items():
        for backend in ("onnxruntime", "auto"):
            assert main(backend) == 2, name
            err = capsys.readouterr().err
            assert "model file not found: nope.pt " in err, (name, err)  # the file named, not an .onnx


def test_backend_without_its_package_names_the_extra(seq_folder, tmp_path):
    """torch made unimportable in a child process (as on a machine without the [torch] extra)."""
    code = ("import sys; sys.modules['torch'] = None; from asymtrack_ros.tools import track; "
            "sys.exit(track.main(sys.argv[1:]))")
    args = [str(seq_folder / "seq1"), "--init", "1,2,30,40", "--backend", "pytorch", "--model",
            str(CHECKOUT / "models" / DEMO_MODEL_NAME), "--csv", str(tmp_path / "t.csv"), "--quiet"]
    proc = subprocess.run([sys.executable, "-c", code] + args, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(CHECKOUT)))
    assert proc.returncode == 2, proc.stderr
    assert "the pytorch backend needs torch" in proc.stderr
    assert "pip install 'asymtrack_ros[torch]'" in proc.stderr


def test_resolve_model_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASYMTRACK_MODEL", raising=False)
    with pytest.raises(packaged.ModelNotFoundError, match=r"model file not found: nope\.pt \(looked in "):
        packaged.resolve_model("nope.pt")
    monkeypatch.setenv("ASYMTRACK_MODEL", str(tmp_path / "env.pt"))
    with pytest.raises(packaged.ModelNotFoundError, match=r"model file not found: .*env\.pt$"):
        packaged.resolve_model()
    (tmp_path / "mine.pt").write_bytes(b"")
    assert packaged.resolve_model("mine.pt") == Path("mine.pt")  # found in the working directory
    monkeypatch.setattr(packaged, "share_dirs", lambda: [])  # as if the demo model were not installed
    with pytest.raises(packaged.ModelNotFoundError,
                       match=f"demo model {DEMO_MODEL_NAME} is not installed .*: set the 'model' parameter"):
        packaged.resolve_model(None, use_env=False, hint="set the 'model' parameter")


def test_every_tool_offers_the_one_backend_list():
    from asymtrack_ros.backends import BACKEND_CHOICES
    from asymtrack_ros.tools import bench_real, calibrate, replay

    for tool in (track, evaluate, replay, bench_real, calibrate):
        backend = next(a for a in tool.build_parser()._actions if a.dest == "backend")
        assert tuple(backend.choices) == BACKEND_CHOICES and backend.default == "auto", tool.__name__

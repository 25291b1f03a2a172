"""Dataset readers and asymtrack-prepare-real on tiny generated datasets with real JPEG files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from asymtrack_ros.datasets.boxes import format_boxes, parse_boxes, read_boxes, visible_mask
from asymtrack_ros.datasets.coco import coco_images, read_coco_json, read_yolo
from asymtrack_ros.datasets.got10k import got10k_sequences
from asymtrack_ros.datasets.lasot import lasot_sequences, read_split
from asymtrack_ros.datasets.manifest import ManifestEntry, frame_range, load_manifest
from asymtrack_ros.datasets.otb import otb_sequences, read_otb, read_uav123, uav123_sequences
from asymtrack_ros.datasets.sources import GitDir, WorkTree, find_repository, open_source
from asymtrack_ros.tools import prepare_real

NAN = float("nan")


def write_frames(folder: Path, count: int, pattern: str = "{:04d}.jpg", start: int = 1,
                 size=(48, 64)) -> list:
    """JPEG frames whose mean grey level encodes the frame number (10 * number)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = np.full((size[0], size[1], 3), 10 * (start + i), np.uint8)
        path = folder / pattern.format(start + i)
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def frame_number(path: Path) -> int:
    return int(round(float(cv2.imread(str(path)).mean()) / 10))


def test_parse_boxes_separators_nan_and_polygons():
    boxes = parse_boxes("1,2,3,4\n5\t6\t7\t8\nNaN,NaN,NaN,NaN\n9 10 11 12\n0,0,4,0,4,2,0,2\n\n")
    assert boxes.shape == (5, 4)
    expected = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [0, 0, 4, 2]]
    np.testing.assert_allclose(boxes[[0, 1, 3, 4]], expected)
    assert np.isnan(boxes[2]).all()
    assert visible_mask(np.array([[0, 0, 1, 1], [0, 0, 0, 5], [NAN] * 4])).tolist() == [True, False, False]
    assert np.isnan(parse_boxes(format_boxes(boxes))[2]).all()
    np.testing.assert_allclose(parse_boxes(format_boxes(boxes))[[0, 4]], boxes[[0, 4]])


def test_otb_reader_keeps_nan_rows_as_not_visible(tmp_path):
    seq_dir = tmp_path / "otb" / "Walk"
    write_frames(seq_dir / "img", 4)
    (seq_dir / "groundtruth_rect.txt").write_text("1,1,10,10\nNaN,NaN,NaN,NaN\n2,2,10,10\n3\t3\t10\t10\n")
    seq = read_otb(seq_dir)
    assert len(seq) == 4 and seq.name == "Walk"
    assert seq.visible.tolist() == [True, False, True, True]
    assert frame_number(seq.paths[3]) == 4
    assert seq.frames[2].shape == (48, 64, 3)
    (tmp_path / "otb" / "Other").mkdir()  # no ground truth: not a sequence
    assert [s.name for s in otb_sequences(tmp_path / "otb")] == ["Walk"]
    with pytest.raises(ValueError):
        otb_sequences(tmp_path / "otb", exclude=["Walk"])


def test_otb_reader_frames_from_a_later_start(tmp_path):
    write_frames(tmp_path / "s" / "img", 5)
    (tmp_path / "s" / "groundtruth_rect.txt").write_text("1,1,5,5\n2,2,5,5\n")
    seq = read_otb(tmp_path / "s", first=3)
    assert [frame_number(p) for p in seq.paths] == [3, 4]
    with pytest.raises(ValueError):
        read_otb(tmp_path / "s", first=5)


def test_uav123_subsequences_share_a_video_folder(tmp_path):
    root = tmp_path / "UAV123"
    write_frames(root / "data_seq" / "UAV123" / "truck4", 6, "{:06d}.jpg")
    anno = root / "anno" / "UAV123"
    anno.mkdir(parents=True)
    (anno / "truck4_1.txt").write_text("1,1,4,4\n2,2,4,4\n3,3,4,4\n")
    (anno / "truck4_2.txt").write_text("NaN,NaN,NaN,NaN\n5,5,4,4\n6,6,4,4\n7,7,4,4\n")
    second = read_uav123(root, "truck4_2", frames=(3, 6))
    assert [frame_number(p) for p in second.paths] == [3, 4, 5, 6]
    assert second.visible.tolist() == [False, True, True, True]
    with pytest.raises(ValueError, match="frame range"):
        read_uav123(root, "truck4_1")
    with pytest.raises(ValueError):
        read_uav123(root, "truck4_1", frames=(1, 4))  # 4 frames for 3 boxes
    seqs = uav123_sequences(root, ranges={"truck4_1": (1, 3), "truck4_2": (3, 6)})
    assert [s.name for s in seqs] == ["truck4_1", "truck4_2"]


def test_got10k_list_absence_and_cover(tmp_path):
    root = tmp_path / "train"
    for name in ("GOT-10k_Train_000001", "GOT-10k_Train_000002"):
        write_frames(root / name, 4, "{:08d}.jpg")
        (root / name / "groundtruth.txt").write_text("1,1,5,5\n2,2,5,5\n3,3,5,5\n4,4,5,5\n")
    first = root / "GOT-10k_Train_000001"
    (first / "absence.label").write_text("0\n1\n0\n0\n")
    (first / "cover.label").write_text("8\n0\n0\n5\n")
    (root / "list.txt").write_text("GOT-10k_Train_000001\n")
    seqs = got10k_sequences(root)
    assert [s.name for s in seqs] == ["GOT-10k_Train_000001"]
    assert seqs[0].visible.tolist() == [True, False, False, True]
    (root / "list.txt").unlink()
    assert len(got10k_sequences(root)) == 2
    assert len(got10k_sequences(root, exclude=["GOT-10k_Train_000002"])) == 1
    (first / "cover.label").write_text("8\n0\n")
    with pytest.raises(ValueError, match="labels"):
        got10k_sequences(first)


def test_got10k_test_split_first_box_only(tmp_path):
    write_frames(tmp_path / "t", 3, "{:08d}.jpg")
    (tmp_path / "t" / "groundtruth.txt").write_text("1,1,5,5\n")
    seq = got10k_sequences(tmp_path / "t")[0]
    assert seq.visible.tolist() == [True, False, False]


def test_lasot_occlusion_and_out_of_view(tmp_path):
    seq_dir = tmp_path / "lasot" / "airplane" / "airplane-1"
    write_frames(seq_dir / "img", 5, "{:08d}.jpg")
    (seq_dir / "groundtruth.txt").write_text("\n".join(["1,1,8,8"] * 5) + "\n")
    (seq_dir / "full_occlusion.txt").write_text("0,1,0,0,0")
    (seq_dir / "out_of_view.txt").write_text("0,0,0,1,0")
    other = tmp_path / "lasot" / "bird" / "bird-3"
    write_frames(other / "img", 2, "{:08d}.jpg")
    (other / "groundtruth.txt").write_text("1,1,8,8\n0,0,0,0\n")
    seqs = lasot_sequences(tmp_path / "lasot")
    assert [s.name for s in seqs] == ["airplane-1", "bird-3"]
    assert seqs[0].visible.tolist() == [True, False, True, False, True]
    assert seqs[1].visible.tolist() == [True, False]
    (tmp_path / "testing_set.txt").write_text("bird-3\n")
    only = lasot_sequences(tmp_path / "lasot", names=read_split(tmp_path / "testing_set.txt"))
    assert [s.name for s in only] == ["bird-3"]


def test_coco_json_and_yolo_labels(tmp_path):
    write_frames(tmp_path / "coco" / "val2017", 2, "{:012d}.jpg", size=(100, 200))
    ann = {"images": [{"id": 1, "file_name": "000000000001.jpg"}, {"id": 2, "file_name": "000000000002.jpg"}],
           "annotations": [{"image_id": 1, "bbox": [10, 20, 30, 40], "category_id": 3, "iscrowd": 0},
                           {"image_id": 2, "bbox": [0, 0, 50, 50], "category_id": 1, "iscrowd": 1}]}
    (tmp_path / "coco" / "annotations").mkdir()
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").write_text(json.dumps(ann))
    images = coco_images(tmp_path / "coco")
    assert len(images) == 1  # the crowd-only image is left out
    image, boxes = images[0].load()
    assert image.shape == (100, 200, 3)
    np.testing.assert_allclose(boxes, [[10, 20, 30, 40]])
    assert read_coco_json(tmp_path / "coco" / "annotations" / "instances_val2017.json",
                          tmp_path / "coco" / "val2017")[0].labels.tolist() == [3]

    write_frames(tmp_path / "yolo" / "images" / "train", 2, "im{}.jpg", size=(100, 200))
    (tmp_path / "yolo" / "labels" / "train").mkdir(parents=True)
    (tmp_path / "yolo" / "labels" / "train" / "im1.txt").write_text("5 0.5 0.5 0.2 0.4\n")
    yolo = read_yolo(tmp_path / "yolo" / "images" / "train")
    assert len(yolo) == 1  # im2 has no label file
    _, boxes = yolo[0].load()
    np.testing.assert_allclose(boxes, [[80, 30, 40, 40]])
    assert len(coco_images(tmp_path / "yolo")) == 1
    with pytest.raises(ValueError):
        coco_images(tmp_path / "coco" / "val2017")


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture
def repos(tmp_path):
    """A clone with a work tree (ab/work) and a git directory alone (cd+vid/repo/.git)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    work = tmp_path / "repos" / "ab" / "work"
    write_frames(work / "seq" / "car", 6, "{:06d}.jpg")
    (work / "seq" / "car_2.txt").write_text("NaN,NaN,NaN,NaN\n4,4,8,8\n5,5,8,8\n")
    write_frames(work / "vot" / "imgs", 2, "{:08d}.png")
    (work / "vot" / "groundtruth.txt").write_text("0,0,10,0,10,6,0,6\n1,1,11,1,11,7,1,7\n")
    git("init", "-q", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "data", cwd=work)
    only_git = tmp_path / "repos" / "cd+vid" / "repo"
    only_git.mkdir(parents=True)
    shutil.copytree(work / ".git", only_git / ".git")
    return tmp_path / "repos"


def test_sources_read_work_trees_and_git_dirs(repos):
    tree = open_source(repos / "ab" / "work")
    assert isinstance(tree, WorkTree)
    in_git = open_source(find_repository(repos, "cd/vid"))
    assert isinstance(in_git, GitDir)
    for source in (tree, in_git):
        assert source.list_folder("seq/car")[:2] == ["000001.jpg", "000002.jpg"]
        assert source.exists("seq/car_2.txt") and not source.exists("seq/none.txt")
        original = (repos / "ab" / "work" / "seq/car/000004.jpg").read_bytes()
        assert source.read("seq/car/000004.jpg") == original
        with pytest.raises(FileNotFoundError):
            source.list_folder("nope")
        source.close()
    with pytest.raises(FileNotFoundError):
        find_repository(repos, "no/such")


def test_frame_range_checks_rows_against_frames():
    entry = ManifestEntry("a", "o/r", "f", "g", 3, None, "train")
    assert frame_range(entry, 10, 4) == range(2, 6)
    assert frame_range(ManifestEntry("b", "o/r", "f", "g", None, None, "train"), 5, 5) == range(0, 5)
    with pytest.raises(ValueError):
        frame_range(ManifestEntry("c", "o/r", "f", "g", 1, 3, "train"), 10, 4)
    with pytest.raises(ValueError):
        frame_range(entry, 4, 4)


def test_prepare_real_writes_otb_layout_from_both_kinds_of_snapshot(repos, tmp_path):
    manifest = tmp_path / "sequences.json"
    manifest.write_text(json.dumps({"sequences": [
        {"name": "car_2", "repository": "cd/vid", "image_folder": "seq/car", "ground_truth": "seq/car_2.txt",
         "first": 3, "last": 5, "split": "train"},
        {"name": "ball", "repository": "ab/work", "image_folder": "vot/imgs",
         "ground_truth": "vot/groundtruth.txt", "first": 1, "last": None, "split": "heldout"}]}))
    assert [e.heldout for e in load_manifest(manifest)] == [False, True]
    out = tmp_path / "out"
    assert prepare_real.main([str(manifest), str(repos), str(out)]) == 0
    assert (out / "READY").is_file()
    car = read_otb(out / "car_2")
    assert [frame_number(p) for p in car.paths] == [3, 4, 5]
    assert [p.name for p in car.paths] == ["0001.jpg", "0002.jpg", "0003.jpg"]
    assert (out / "car_2" / "img" / "0002.jpg").read_bytes() == (
        repos / "ab" / "work" / "seq" / "car" / "000004.jpg").read_bytes()
    assert car.visible.tolist() == [False, True, True]
    ball = read_boxes(out / "ball" / "groundtruth_rect.txt")
    np.testing.assert_allclose(ball, [[0, 0, 10, 6], [1, 1, 10, 6]])
    assert [frame_number(p) for p in read_otb(out / "ball").paths] == [1, 2]  # PNG frames -> JPEG


def test_prepare_real_reports_a_bad_sequence_and_writes_no_ready(repos, tmp_path):
    manifest = tmp_path / "sequences.json"
    manifest.write_text(json.dumps({"sequences": [
        {"name": "car_2", "repository": "ab/work", "image_folder": "seq/car", "ground_truth": "seq/car_2.txt",
         "first": 5, "last": 7, "split": "train"}]}))
    out = tmp_path / "out"
    assert prepare_real.main([str(manifest), str(repos), str(out)]) == 1
    assert not (out / "READY").exists()

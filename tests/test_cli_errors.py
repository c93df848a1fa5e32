"""One error path on the command line (edgepose._cli): a user mistake is one
line ``<prog>: error: ...`` on stderr, the exit code says what kind (2 usage,
1 failed work, 130 interrupted), stdout keeps only what it carries.

The subprocess tests run the real commands, each in a fresh process, on real
models (copied into tmp_path before being damaged) and real images.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import pytest

from edgepose._cli import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError,
                           check_output_dir, check_output_file, run_command, stdout_to_stderr)
from edgepose.registry import ModelNotFoundError
from tests.conftest import REPO_ROOT

ONNX_MOVENET = "models/movenet/onnx_converted/movenet_singlepose_lightning_int8_4.onnx"
IMAGE = "data/coco/000000000785.jpg"


def _run(*args: str) -> subprocess.CompletedProcess:
    """``python -m <args>`` from the repository root (its edgepose first)."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)


def _one_error_line(done: subprocess.CompletedProcess, code: int, prog: str = "edgepose"
                    ) -> str:
    assert done.returncode == code, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


# --- the shared error path, in process ---------------------------------------------

def _raises(exc: BaseException):
    def body(argv):
        raise exc
    return body


@pytest.mark.parametrize("exc, code, line", [
    (UsageError("--out x is a file"), EXIT_USAGE, "prog: error: --out x is a file"),
    (FileNotFoundError("model m.onnx does not exist."), EXIT_USAGE,
     "prog: error: model m.onnx does not exist."),
    (FileNotFoundError(2, "No such file or directory", "a.json"), EXIT_USAGE,
     "prog: error: a.json: No such file or directory"),
    (ModelNotFoundError("No copy of model 'x' was found. Looked in:\n  - cache\n  - mirror"),
     EXIT_FAILED, "prog: error: No copy of model 'x' was found. Looked in: - cache - mirror"),
    (ValueError("m.onnx carries an invalid edgepose card: head must be ..."), EXIT_FAILED,
     "prog: error: m.onnx carries an invalid edgepose card: head must be ..."),
    (ImportError("Backend 'openvino' needs the OpenVINO runtime: pip install ..."), EXIT_FAILED,
     "prog: error: Backend 'openvino' needs the OpenVINO runtime: pip install ..."),
    (RuntimeError("onnxruntime failed to run m.onnx"), EXIT_FAILED,
     "prog: error: onnxruntime failed to run m.onnx"),
    (PermissionError(13, "Permission denied", "/out"), EXIT_FAILED,
     "prog: error: /out: Permission denied"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "prog: error: interrupted"),
    (KeyError("people"), EXIT_FAILED,
     "prog: error: unexpected KeyError: 'people' (probably a bug in edgepose; run with --debug "
     "for the traceback and report it)"),
])
def test_every_error_is_one_line_with_its_exit_code(capsys, exc, code, line):
    assert run_command(_raises(exc), ["a"], "prog") == code
    out, err = capsys.readouterr()
    assert out == "" and err == line + "\n"


def test_debug_prints_the_traceback_then_the_same_line(capsys):
    assert run_command(_raises(ValueError("bad card")), ["--debug"], "prog") == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("ValueError: bad card\nprog: error: bad card\n")


def test_a_closed_stdout_ends_quietly(capsys):
    assert run_command(_raises(BrokenPipeError(32, "Broken pipe")), [], "prog") == EXIT_FAILED
    assert capsys.readouterr() == ("", "")


def test_stdout_to_stderr_moves_python_and_c_level_writes(capfd):
    import os

    print("before", flush=True)
    with stdout_to_stderr():
        print("python chatter", flush=True)
        os.write(1, b"fd-1 chatter\n")  # as a C/C++ library writes
    print("after", flush=True)
    out, err = capfd.readouterr()
    assert out == "before\nafter\n" and err == "python chatter\nfd-1 chatter\n"


def test_argparse_errors_and_help_pass_through():
    def body(argv):
        raise SystemExit(2)
    with pytest.raises(SystemExit):
        run_command(body, [], "prog")


def test_output_paths_are_checked(tmp_path):
    (tmp_path / "file").write_text("x")
    assert check_output_dir(tmp_path / "new" / "dir", "--out") == tmp_path / "new" / "dir"
    with pytest.raises(UsageError, match=r"--out .*file is a file, not a folder"):
        check_output_dir(tmp_path / "file", "--out")
    with pytest.raises(UsageError, match=r"--out .*file/sub is below .*file, which is a file"):
        check_output_dir(tmp_path / "file" / "sub", "--out")
    with pytest.raises(UsageError, match=r"--json .* is a folder: name a file"):
        check_output_file(tmp_path, "--json")
    with pytest.raises(UsageError, match=r"--json .*file/r.json is below .*file, which is a file"):
        check_output_file(tmp_path / "file" / "r.json", "--json")


def test_every_command_takes_debug():
    from edgepose.bench.cli import build_parser as bench_parser
    from edgepose.cli import build_parser
    from edgepose.evaluation.cli import _build_parser as eval_parser

    parser = build_parser()
    assert parser.parse_args(["--debug", "models", "list"]).debug is True
    assert parser.parse_args(["models", "list", "--debug"]).debug is True
    assert parser.parse_args(["run", "x", "--model", "m", "--debug"]).debug is True
    assert parser.parse_args(["run", "x", "--model", "m"]).debug is False
    assert bench_parser().parse_args(["--debug"]).debug is True
    assert parser.parse_args(["bench", "m", "--debug"]).debug is True
    assert parser.parse_args(["--debug", "bench", "m"]).debug is True
    assert parser.parse_args(["models", "list", "--json", "-"]).debug is False
    assert eval_parser().parse_args(["m", "--annotations", "a", "--images", "i",
                                     "--debug"]).debug is True


# --- edgepose run, as a fresh process ----------------------------------------------

def test_out_naming_a_file_is_a_usage_error(shared_dir, tmp_path):
    (tmp_path / "taken").write_text("x")
    for out in ("taken", "taken/sub"):
        done = _run("edgepose.cli", "run", str(shared_dir / IMAGE), "--model",
                    str(shared_dir / ONNX_MOVENET), "--out", str(tmp_path / out))
        line = _one_error_line(done, EXIT_USAGE)
        assert f"--out {tmp_path / out} " in line and "a file, not a folder" in line
        assert done.stdout == ""


def _damaged(shared_dir, tmp_path, how: str):
    path = tmp_path / f"{how}.onnx"
    data = bytearray((shared_dir / ONNX_MOVENET).read_bytes())
    if how == "truncated":
        data = data[:len(data) // 2]
    else:  # these flips make onnxruntime print its "EP Error" banner (on stdout, by print)
        rng = random.Random(0)
        for _ in range(200):
            data[rng.randrange(len(data))] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["truncated", "bit-flipped"])
def test_a_damaged_model_is_one_line_and_stdout_stays_clean(shared_dir, tmp_path, how):
    model = _damaged(shared_dir, tmp_path, how)
    done = _run("edgepose.cli", "run", str(shared_dir / IMAGE), "--model", str(model),
                "--out", "-", "--quiet")
    line = _one_error_line(done, EXIT_FAILED)
    assert f"{model} could not be loaded as an ONNX model by onnxruntime" in line
    assert done.stdout == ""


def test_debug_adds_the_traceback(shared_dir, tmp_path):
    model = _damaged(shared_dir, tmp_path, "truncated")
    done = _run("edgepose.cli", "run", str(shared_dir / IMAGE), "--model", str(model),
                "--out", "-", "--debug")
    assert done.returncode == EXIT_FAILED and done.stdout == ""
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"edgepose: error: {model} could not be")


def test_an_invalid_card_is_one_line(shared_dir, tmp_path):
    onnx = pytest.importorskip("onnx")
    from edgepose.card import ONNX_METADATA_KEY
    from edgepose.presets import preset_card

    card = preset_card("movenet-lightning").to_dict()
    card["head"] = "nope"
    model = onnx.load(str(shared_dir / ONNX_MOVENET))
    model.metadata_props.add(key=ONNX_METADATA_KEY, value=json.dumps(card))
    path = tmp_path / "bad_card.onnx"
    onnx.save(model, str(path))
    done = _run("edgepose.cli", "run", str(shared_dir / IMAGE), "--model", str(path),
                "--out", "-")
    line = _one_error_line(done, EXIT_FAILED)
    assert f"{path} carries an invalid edgepose card" in line and "'nope'" in line
    assert done.stdout == ""


def test_a_corrupt_image_in_a_folder_is_skipped_and_counted(shared_dir, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    names = ["000000000785.jpg", "000000040083.jpg"]
    for name in names:
        shutil.copy(shared_dir / "data/coco" / name, folder / name)
    (folder / "000000000900.jpg").write_bytes(random.Random(1).randbytes(3000))
    done = _run("edgepose.cli", "run", str(folder), "--model", str(shared_dir / ONNX_MOVENET),
                "--out", "-", "--quiet")
    assert done.returncode == EXIT_FAILED
    assert done.stderr.splitlines() == [
        f"edgepose: error: skipped 000000000900.jpg: {folder / '000000000900.jpg'} could not be "
        "read as an image (OpenCV cannot decode it: a damaged file, or not an image).",
        "edgepose: error: 1 of 3 inputs failed (each reported above; the others were "
        "processed)"]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    # every good image processed, each keeping its position in the folder
    assert [(r["frame"], r["source"]) for r in records] == [(0, names[0]), (2, names[1])]
    assert all(len(r["people"]) == 1 for r in records)


def test_one_unreadable_image_is_the_commands_error(shared_dir, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    done = _run("edgepose.cli", "run", str(bad), "--model", str(shared_dir / ONNX_MOVENET),
                "--out", str(tmp_path / "out"), "--quiet")
    assert "bad.jpg could not be read as an image" in _one_error_line(done, EXIT_FAILED)
    assert not (tmp_path / "out").exists()  # found before any work


def _video_with_a_damaged_frame(tmp_path, damaged: int = 4, frames: int = 10):
    """An MJPEG .avi whose frame ``damaged`` has its JPEG data zeroed: OpenCV's read fails
    there (and, without edgepose's skipping, ends the stream)."""
    import cv2
    import numpy as np

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (192, 144))
    for i in range(frames):
        writer.write(np.full((144, 192, 3), 20 * i, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == frames
    data[starts[damaged] + 2:starts[damaged] + 300] = bytes(298)
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_video_frame_is_skipped_and_the_rest_decoded(tmp_path):
    from edgepose.video import video_frames

    bad: list[int] = []
    frames = list(video_frames(_video_with_a_damaged_frame(tmp_path), on_bad_frame=bad.append))
    assert bad == [4]
    # the nine good frames, in order (their grey levels 0, 20, ... without 80)
    levels = [int(round(float(frame.mean()) / 20)) for frame, _ in frames]
    assert levels == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    stamps = [t for _, t in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == 9


def test_run_on_a_video_with_a_damaged_frame_counts_it_and_exits_1(shared_dir, tmp_path):
    clip = _video_with_a_damaged_frame(tmp_path)
    done = _run("edgepose.cli", "run", str(clip), "--model", str(shared_dir / ONNX_MOVENET),
                "--out", "-", "--quiet", "--serial")
    assert done.returncode == EXIT_FAILED
    assert done.stderr.splitlines()[-2:] == [
        f"edgepose: error: skipped frame 4 of {clip}: it could not be decoded (a damaged frame)",
        f"edgepose: error: 1 damaged frame(s) of {clip} were skipped (each reported above; the "
        "others were processed)"]
    assert len(done.stdout.splitlines()) == 9


# --- edgepose eval -----------------------------------------------------------------

def _annotations(shared_dir, tmp_path, change) -> str:
    gt = json.loads((shared_dir / "data/coco/test_coco.json").read_text())
    change(gt)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(gt))
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda gt: gt["images"][2].pop("id"), "images[2] has no 'id'"),
    (lambda gt: gt["annotations"][1].pop("image_id"), "annotations[1] (id "),
    (lambda gt: gt["annotations"][0].update(bbox=[1, 2, 3]),
     "has 'bbox' [1, 2, 3]; expected 4 numbers [x, y, width, height]"),
    (lambda gt: gt.update(images={"id": 1}), "'images' is a dict ({'id': 1}); expected a list"),
    (lambda gt: gt.update(annotations=[]), "nothing to evaluate: "),
])
def test_eval_rejects_a_bad_annotation_file_in_one_line(shared_dir, tmp_path, change, message):
    ann = _annotations(shared_dir, tmp_path, change)
    done = _run("edgepose.cli", "eval", str(shared_dir / ONNX_MOVENET), "--annotations", ann,
                "--images", str(shared_dir / "data/coco"), "--gt-boxes", "--quiet")
    line = _one_error_line(done, EXIT_FAILED)
    assert message in line and (ann in line or message == "nothing to evaluate: ")
    assert done.stdout == ""


def test_eval_json_to_stdout_is_only_json(shared_dir):
    done = _run("edgepose.cli", "eval", str(shared_dir / ONNX_MOVENET), "--annotations",
                str(shared_dir / "data/coco/test_coco.json"), "--images",
                str(shared_dir / "data/coco"), "--gt-boxes", "--json", "-", "--quiet")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["num_images"] == 4 and "AP" in report["summary"]
    assert "AP" in done.stderr  # the table


# --- edgepose-bench ----------------------------------------------------------------

def test_bench_bad_image_is_failed_work_and_missing_image_a_usage_error(shared_dir, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    done = _run("edgepose.bench", str(shared_dir / ONNX_MOVENET), "--image", str(bad))
    line = _one_error_line(done, EXIT_FAILED, "edgepose-bench")
    assert f"cannot read the image {bad}: it is not an image OpenCV can decode" in line
    done = _run("edgepose.bench", str(shared_dir / ONNX_MOVENET), "--image",
                str(tmp_path / "none.jpg"), "--json", "-")
    line = _one_error_line(done, EXIT_USAGE, "edgepose-bench")
    assert f"--image {tmp_path / 'none.jpg'} does not exist" in line and done.stdout == ""
    # edgepose bench: the same errors, under the one command's name
    done = _run("edgepose.cli", "bench", str(shared_dir / ONNX_MOVENET), "--image", str(bad))
    line = _one_error_line(done, EXIT_FAILED, "edgepose")
    assert f"cannot read the image {bad}: it is not an image OpenCV can decode" in line
    done = _run("edgepose.cli", "bench", str(tmp_path / "none.onnx"), "--json", "-")
    line = _one_error_line(done, EXIT_USAGE, "edgepose")
    assert f"MODEL {tmp_path / 'none.onnx'} does not exist" in line and done.stdout == ""


# --- the shared flag converters ------------------------------------------------------

def test_the_flag_converters():
    import argparse

    from edgepose._cli import backend_name, backend_names, thread_count, thread_counts

    assert thread_count("3") == 3 and thread_counts(" 1, default,4 ") == [1, None, 4]
    assert backend_name("tflite") == "tflite"
    assert backend_names("openvino,onnxruntime") == ["openvino", "onnxruntime"]
    for call, text, message in [
            (thread_count, "0", "expected an int >= 1, got '0'"),
            (thread_count, "1.5", "expected an int >= 1, got '1.5'"),
            (thread_counts, "2,-1", "expected ints >= 1 or 'default' .*got '-1'"),
            (thread_counts, " , ", "expected a comma-separated list, got ' , '"),
            (backend_name, "onnxruntime,tflite", "unknown backend 'onnxruntime,tflite' \\(one "
                                                 "backend here; only bench takes a comma list\\)"),
            (backend_names, "tflite,coreml", "unknown backend 'coreml'; available: onnxruntime, "
                                             "tflite, openvino")]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            call(text)

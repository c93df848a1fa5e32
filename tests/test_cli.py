"""`edgepose run` on real models: an image, a folder and a video."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edgepose.cli import main  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402


@pytest.fixture(scope="module")
def movenet(shared_dir):
    return str(shared_dir / "models/movenet/movenet_singlepose_lightning_int8_4.tflite")


def test_run_on_an_image_writes_json_and_a_drawing(shared_dir, movenet, tmp_path):
    image = shared_dir / "data/coco/000000000785.jpg"
    assert main(["run", str(image), "--model", movenet, "--out", str(tmp_path), "--quiet"]) == 0
    lines = (tmp_path / "poses.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert len(lines) == 1 and record["source"] == "000000000785.jpg"
    assert len(record["people"]) == 1 and len(record["people"][0]["keypoints"]) == 17
    assert cv2.imread(str(tmp_path / "000000000785_pose.jpg")) is not None


def test_run_on_a_folder_with_a_detector(shared_dir, movenet, tmp_path):
    detector = str(shared_dir / "models/detectors/yolox_yolox_nano_416x416.onnx")
    out = tmp_path / "out"
    code = main(["run", str(shared_dir / "data/coco"), "--model", movenet, "--detector", detector,
                 "--out", str(out), "--no-draw", "--quiet"])
    assert code == 0
    records = [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]
    assert len(records) == 4 and sum(len(r["people"]) for r in records) >= 10
    assert all("box" in p for r in records for p in r["people"])


def test_run_on_a_video(shared_dir, movenet, tmp_path):
    image = cv2.imread(str(shared_dir / "data/coco/000000000785.jpg"))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (image.shape[1], image.shape[0]))
    for shift in range(5):
        writer.write(np.roll(image, 4 * shift, axis=1))
    writer.release()
    out = tmp_path / "out"
    assert main(["run", str(video), "--model", movenet, "--out", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([r["timestamp_ms"] for r in records], [0, 100, 200, 300, 400])
    # one person, tracked: the same id in every frame
    assert [[p["track_id"] for p in r["people"]] for r in records] == [[0]] * 5
    assert (out / "annotated.mp4").stat().st_size > 0


def _records(out):
    return [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]


def test_run_tracks_a_video_pipelined_exactly_as_serially(shared_dir, movenet, panning_video,
                                                         tmp_path, capsys):
    detector = str(shared_dir / "models/detectors/yolox_yolox_nano_416x416.onnx")
    args = ["run", str(panning_video), "--model", movenet, "--detector", detector,
            "--detect-every", "3", "--no-draw"]
    assert main([*args, "--out", str(tmp_path / "piped")]) == 0
    err = capsys.readouterr().err
    assert "24 frame(s) in" in err and "pipelined, detector every 3 frame(s)" in err
    assert main([*args, "--out", str(tmp_path / "serial"), "--serial", "--quiet"]) == 0
    piped, serial = _records(tmp_path / "piped"), _records(tmp_path / "serial")
    assert piped == serial
    assert [r["detected"] for r in piped] == [f % 3 == 0 for f in range(24)]
    stamps = [r["timestamp_ms"] for r in piped]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    people = [p for r in piped for p in r["people"]]
    assert len(people) >= 3 * 24 and all(isinstance(p["track_id"], int) for p in people)
    assert all(len({p["track_id"] for p in r["people"]}) == len(r["people"]) for r in piped)
    summary = json.loads((tmp_path / "piped" / "summary.json").read_text())
    assert summary["frames"] == 24 and summary["pipelined"] and summary["detect_every"] == 3
    assert set(summary["stage_ms_per_frame"]) == {"read", "detect", "pose", "track"}
    assert summary["stage_ms_per_frame"]["pose"] > 0 and summary["fps"] > 0
    assert summary["smoothing"] is None
    # detector and pose model run at once: half the cores each, unless --threads says
    from edgepose.backends._base import available_cores
    assert summary["threads"] == max(1, available_cores() // 2)
    serial_summary = json.loads((tmp_path / "serial" / "summary.json").read_text())
    assert serial_summary["pipelined"] is False and serial_summary["threads"] is None


def test_run_smooths_a_video_and_stops_at_max_frames(shared_dir, movenet, panning_video,
                                                    tmp_path):
    detector = str(shared_dir / "models/detectors/yolox_yolox_nano_416x416.onnx")
    args = ["run", str(panning_video), "--model", movenet, "--detector", detector,
            "--no-draw", "--quiet", "--max-frames", "10"]
    assert main([*args, "--out", str(tmp_path / "raw")]) == 0
    assert main([*args, "--out", str(tmp_path / "smooth"), "--smooth", "--min-cutoff", "0.5",
                 "--beta", "0.01"]) == 0
    raw, smooth = _records(tmp_path / "raw"), _records(tmp_path / "smooth")
    assert len(raw) == len(smooth) == 10
    # the first frame starts each filter; later frames are filtered, ids unchanged
    assert raw[0] == smooth[0]
    assert [[p["track_id"] for p in r["people"]] for r in raw] == \
        [[p["track_id"] for p in r["people"]] for r in smooth]
    moved = [np.abs(np.subtract(a["keypoints"], b["keypoints"])).max()
             for r, q in zip(raw[1:], smooth[1:]) for a, b in zip(r["people"], q["people"])]
    assert max(moved) > 0.5
    summary = json.loads((tmp_path / "smooth" / "summary.json").read_text())
    assert summary["smoothing"] == {"min_cutoff": 0.5, "beta": 0.01, "d_cutoff": 1.0}


def test_run_tracks_a_bottom_up_model_without_sigmas(shared_dir, panning_video, tmp_path):
    # tf-pose's COCO-18 has no OKS sigmas: tracks are matched by box IoU (metric "auto")
    model = str(shared_dir / "models/openpose_paf/tfpose_mobilenet_v2_small.onnx")
    out = tmp_path / "out"
    assert main(["run", str(panning_video), "--model", model, "--out", str(out), "--no-draw",
                 "--quiet", "--max-frames", "6"]) == 0
    records = _records(out)
    assert len(records) == 6 and all(r["detected"] for r in records)
    assert records[0]["keypoint_set"] == "coco18" and records[0]["people"]
    first = {p["track_id"] for p in records[0]["people"]}
    assert first == set(range(len(first)))
    assert all({p["track_id"] for p in r["people"]} & first for r in records[1:])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detect_every"] is None and summary["threads"] is None


@pytest.mark.parametrize("flag, value", [("--detect-every", "0"), ("--max-frames", "x")])
def test_video_options_are_checked(movenet, flag, value, capsys):
    with pytest.raises(SystemExit):
        main(["run", "0", "--model", movenet, flag, value])
    assert "expected an int >= 1" in capsys.readouterr().err


def test_a_camera_is_tracked_live_dropping_frames_while_busy(shared_dir, movenet,
                                                            panning_video, tmp_path,
                                                            monkeypatch):
    import time

    import edgepose.cli._run
    import edgepose.video.pipeline

    frames = list(edgepose.video.pipeline.video_frames(panning_video))

    def camera(source, fps=None, on_bad_frame=None):  # 24 frames, 2 ms apart: faster than the models
        assert source == "0"
        for frame, _ in frames:
            time.sleep(0.002)
            yield frame, time.monotonic() * 1000.0

    monkeypatch.setattr(edgepose.video.pipeline, "video_frames", camera)
    monkeypatch.setattr(edgepose.cli._run, "_video_info", lambda source: (None, 30.0))
    detector = str(shared_dir / "models/detectors/yolox_yolox_nano_416x416.onnx")
    out = tmp_path / "live"
    assert main(["run", "0", "--model", movenet, "--detector", detector, "--out", str(out),
                 "--no-draw", "--quiet"]) == 0
    records = _records(out)
    index = [r["frame"] for r in records]
    assert index[-1] == 23 and all(b > a for a, b in zip(index, index[1:]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropped"] == 24 - len(records) > 0
    out = tmp_path / "all"
    assert main(["run", "0", "--model", movenet, "--detector", detector, "--out", str(out),
                 "--no-draw", "--quiet", "--all-frames"]) == 0
    assert [r["frame"] for r in _records(out)] == list(range(24))
    assert json.loads((out / "summary.json").read_text())["dropped"] is None


def test_a_camera_that_cannot_be_opened_says_so(movenet, capsys):
    assert main(["run", "97", "--model", movenet, "--out", "-"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("edgepose: error: camera 97 could not be opened")


def test_missing_input_exits_2_with_a_message(tmp_path, movenet, capsys):
    assert main(["run", str(tmp_path / "x.jpg"), "--model", movenet]) == 2
    assert capsys.readouterr().err == (f"edgepose: error: {tmp_path / 'x.jpg'} does not exist "
                                       "(expected an image, a folder, a video file or a camera "
                                       "index).\n")
    assert main(["run", str(tmp_path), "--model", movenet]) == 2
    assert capsys.readouterr().err.startswith("edgepose: error: no images (.bmp, ")


def test_missing_model_is_reported_on_stderr(shared_dir, tmp_path, capsys):
    code = main(["run", str(shared_dir / "data/coco/000000000785.jpg"),
                 "--model", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepose: error: --model") and "does not exist" in err
    assert not (tmp_path / "o").exists()  # checked before any work


def test_console_script_is_installed(movenet, shared_dir):
    out = subprocess.run([sys.executable, "-m", "edgepose.cli", "run",
                          str(shared_dir / "data/coco/000000000785.jpg"), "--model", movenet,
                          "--out", "-", "--quiet"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["people"]) == 1


def test_eval_scores_a_model_on_coco(shared_dir, movenet, tmp_path):
    out = tmp_path / "eval.json"
    code = main(["eval", movenet, "--annotations", str(shared_dir / "data/coco/test_coco.json"),
                 "--images", str(shared_dir / "data/coco"), "--gt-boxes", "--json", str(out),
                 "--quiet"])
    assert code == 0
    report = json.loads(out.read_text())
    text = json.dumps(report)
    assert '"AP"' in text and "PCK" in text


# --- one command, the same flags everywhere ------------------------------------------

def test_run_writes_json_lines_to_json_and_drawings_to_out(shared_dir, movenet, tmp_path,
                                                          capsys):
    image = shared_dir / "data/coco/000000000785.jpg"
    lines = tmp_path / "sub" / "poses.jsonl"
    assert main(["run", str(image), "--model", movenet, "--out", str(tmp_path / "out"),
                 "--json", str(lines), "--quiet"]) == 0
    (record,) = [json.loads(line) for line in lines.read_text().splitlines()]
    assert record["source"] == "000000000785.jpg" and len(record["people"]) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000000000785_pose.jpg"]
    # --json -: the same record on stdout, and only it
    capsys.readouterr()
    assert main(["run", str(image), "--model", movenet, "--out", str(tmp_path / "out2"),
                 "--json", "-", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == record and err == ""
    assert (tmp_path / "out2" / "000000000785_pose.jpg").is_file()


def test_run_without_input_uses_the_sample_photo(movenet, shared_dir, tmp_path, capsys):
    from edgepose.data import sample_path

    detector = str(shared_dir / "models/detectors/yolox_yolox_nano_416x416.onnx")
    assert main(["run", "--model", movenet, "--detector", detector, "--out", "-"]) == 0
    out, err = capsys.readouterr()
    record = json.loads(out)
    assert record["source"] == "sample_people.jpg" and len(record["people"]) == 2
    assert f"(no INPUT given: running on the sample photo edgepose ships, {sample_path()})" in err
    assert main(["run", "--model", movenet, "--out", "-", "--quiet"]) == 0
    assert "sample photo" not in capsys.readouterr().err


def _subparser(name):
    from edgepose.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices[name]


COMMON = ["--backend", "openvino", "--threads", "2", "--quiet", "--json", "-", "--debug"]


@pytest.mark.parametrize("argv, backend, threads", [
    (["run", "x.jpg", "--model", "m.onnx"], "openvino", 2),
    (["eval", "m.onnx", "--annotations", "a.json", "--images", "i"], "openvino", 2),
    (["eval", "--model", "m.onnx", "--annotations", "a.json", "--images", "i"], "openvino", 2),
    (["bench", "m.onnx"], ["openvino"], [2]),
    (["bench", "--model", "m.onnx"], ["openvino"], [2]),
])
def test_every_command_takes_the_common_flags(argv, backend, threads):
    from edgepose.cli import build_parser

    args = build_parser().parse_args(argv + COMMON)
    assert (args.backend, args.threads, args.quiet, args.json, args.debug) == \
        (backend, threads, True, "-", True)
    models = build_parser().parse_args(["models", "list", "--json", "-", "--debug"])
    assert (models.json, models.debug) == ("-", True)


@pytest.mark.parametrize("command", ["run", "eval", "bench"])
@pytest.mark.parametrize("flag, value, message", [
    ("--backend", "tensorrt", "argument --backend: unknown backend 'tensorrt'; available: "
                              "onnxruntime, tflite, openvino"),
    ("--threads", "0", "argument --threads: expected "),
    ("--threads", "two", "argument --threads: expected "),
    ("--threads", ",", "argument --threads: expected "),
])
def test_every_command_checks_backend_and_threads_alike(command, flag, value, message, capsys):
    argv = {"run": ["run", "x.jpg", "--model", "m"],
            "eval": ["eval", "m", "--annotations", "a", "--images", "i"],
            "bench": ["bench", "m"]}[command]
    with pytest.raises(SystemExit) as exc:
        main(argv + [flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: edgepose {command} ") and message in err
    assert f"got '{value}'" in err or flag == "--backend"


def test_backend_choices_come_from_the_backend_table():
    from edgepose.backends import BACKENDS

    for name in ("run", "eval", "bench"):
        action = _subparser(name)._option_string_actions["--backend"]
        assert action.metavar.startswith("{" + ",".join(BACKENDS) + "}")
    args = _subparser("bench").parse_args(["--backend", "onnxruntime, tflite",
                                           "--threads", "1,default,4"])
    assert args.backend == ["onnxruntime", "tflite"] and args.threads == [1, None, 4]


def test_eval_takes_the_model_once_as_model_or_option(shared_dir, movenet, tmp_path, capsys):
    common = ["--annotations", str(shared_dir / "data/coco/test_coco.json"), "--images",
              str(shared_dir / "data/coco"), "--gt-boxes", "--quiet"]
    assert main(["eval", "--model", movenet, *common, "--json", str(tmp_path / "o.json")]) == 0
    assert main(["eval", movenet, *common, "--json", str(tmp_path / "p.json")]) == 0
    by_option, by_position = (json.loads((tmp_path / n).read_text()) for n in ("o.json", "p.json"))
    assert by_option["model"] == by_position["model"] == movenet
    def accuracy(report):  # the figures, not the latency of this run
        return {k: v for k, v in report["summary"].items() if not k.startswith("latency")}

    assert accuracy(by_option) == accuracy(by_position)
    capsys.readouterr()
    assert main(["eval", movenet, "--model", movenet, *common]) == 2
    assert capsys.readouterr().err == (
        f"edgepose: error: the pose model was given twice (MODEL {movenet} and --model "
        f"{movenet}): give it once.\n")
    assert main(["eval", *common]) == 2
    assert capsys.readouterr().err.startswith("edgepose: error: no pose model given: edgepose "
                                              "eval MODEL --annotations FILE --images DIR")


def test_models_list_json(shared_dir, monkeypatch, tmp_path, capsys):
    from edgepose.registry import ModelStore

    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEPOSE_MIRROR", str(shared_dir / "models"))
    monkeypatch.setenv("EDGEPOSE_OFFLINE", "1")
    monkeypatch.delenv("EDGEPOSE_MODEL_DIR", raising=False)
    assert main(["models", "list", "--json", "-"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    names = [e.name for e in ModelStore.from_env().registry]
    assert [m["name"] for m in doc["models"]] == names
    assert doc["cache"] == str(tmp_path / "cache" / "models") or doc["cache"].startswith(
        str(tmp_path / "cache"))
    assert doc["offline"] is True and all(m["path"] is None for m in doc["models"])
    assert "NAME" in err and "movenet-lightning" in err  # the table, on stderr
    assert main(["models", "list", "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text()) == doc
    assert "NAME" in capsys.readouterr().out


def test_the_runtime_never_imports_the_export_stage_or_torch():
    code = ("import sys, edgepose.cli; edgepose.cli.build_parser(); "
            "print(sorted(m for m in ('edgepose_export', 'torch', 'onnxruntime', 'cv2') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["export", "m.onnx", "--out", "o"], ["export", "--help"],
                                  ["--debug", "export", "m.onnx", "--out", "o"]])
def test_export_without_the_export_stage_says_which_extra(argv):
    code = ("import sys; sys.modules['edgepose_export'] = None  # as if not installed\n"
            "from edgepose.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 1 and done.stdout == ""
    line = ("edgepose: error: edgepose export needs the export stage (edgepose_export), which "
            "is not installed: pip install 'edgepose[export]'.")
    if "--debug" in argv:
        assert "Traceback" in done.stderr and done.stderr.splitlines()[-1] == line
    else:
        assert done.stderr == line + "\n"


def test_models_verify_json(shared_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEPOSE_MIRROR", str(shared_dir / "models"))
    monkeypatch.delenv("EDGEPOSE_MODEL_DIR", raising=False)
    assert main(["models", "pull", "movenet-lightning", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["models", "verify", "--json", "-"]) == 0
    out, err = capsys.readouterr()
    (ok,) = json.loads(out)["files"]
    path = tmp_path / "cache" / "models" / "movenet_singlepose_lightning_int8_4.tflite"
    assert (ok["path"], ok["name"], ok["status"], ok["removed"]) == \
        (str(path), "movenet-lightning", "ok", False)
    assert err.startswith("ok        movenet-lightning")
    with open(path, "r+b") as f:
        f.truncate(100)
    assert main(["models", "verify", "--json", "-"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    (bad,) = doc["files"]
    assert doc["bad"] == 1 and bad["status"] == "mismatch" and bad["removed"] is False
    assert bad["expected_sha256"] == ok["expected_sha256"] != bad["actual_sha256"]
    assert bad["actual_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert err.splitlines()[0].startswith("MISMATCH  movenet-lightning")
    assert err.splitlines()[-1].startswith("edgepose: error: 1 bad file(s)")


def test_models_info_json(monkeypatch, tmp_path, capsys):
    from edgepose.registry import ModelStore

    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEPOSE_OFFLINE", "1")
    for var in ("EDGEPOSE_MIRROR", "EDGEPOSE_MODEL_DIR"):
        monkeypatch.delenv(var, raising=False)
    entry = ModelStore.from_env().registry.get("rtmpose-m")
    assert main(["models", "info", "rtmpose-m", "--json", "-"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert (doc["name"], doc["file"], doc["sha256"], doc["url"]) == \
        (entry.name, entry.file, entry.sha256, entry.url)
    assert doc["archive"]["member"] == entry.archive.member == "end2end.onnx"
    assert doc["expected_sha256"] is None and doc["local"] is None  # never imported here
    assert err.startswith("rtmpose-m\n") and "edgepose models import FILE" in err
    assert main(["models", "info", "nope", "--json", "-"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("edgepose: error: Unknown model name 'nope'")

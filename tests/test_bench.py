"""edgepose bench (and edgepose-bench, the same command): statistics, stage
attribution, the machine probe on fake /proc and /sys trees, graph counting,
the JSON schema, and short real runs on the models in ../shared (no timing
assertions)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgepose.bench import report
from edgepose.bench.cli import IMAGE_ENV, default_models, main
from edgepose.bench.graph import count_graph
from edgepose.bench.probe import probe_machine, read_temperatures
from edgepose.bench.runner import STAGES, RunSettings, attribute_stages, backend_supports
from edgepose.bench.stats import drift, percentile, summarize

# --- the package -----------------------------------------------------------------------


def test_importing_the_bench_loads_no_runtime():
    import subprocess
    import sys

    heavy = ["onnxruntime", "openvino", "ai_edge_litert", "tflite_runtime", "tensorflow",
             "torch", "cv2", "onnx"]
    code = ("import sys, edgepose.bench.cli, edgepose.bench.runner, edgepose.bench.report, "
            f"edgepose.bench.graph; print(sorted(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]" and result.stderr == ""


# --- statistics -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
@pytest.mark.parametrize("q", [0, 1, 50, 90, 99, 100])
def test_percentile_matches_numpy(n, q):
    values = np.random.default_rng(n).lognormal(3.0, 0.5, size=n)
    assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12, abs=1e-12)


def test_percentile_with_ties_and_unsorted_input():
    values = [5.0, 1.0, 5.0, 5.0, 2.0, 9.0]
    for q in (10, 50, 90, 99):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_summarize_against_numpy():
    values = np.random.default_rng(0).gamma(2.0, 3.0, size=257)
    s = summarize(values)
    assert s.n == 257
    assert (s.p50, s.p90, s.p99) == pytest.approx(tuple(np.percentile(values, [50, 90, 99])))
    assert s.mean == pytest.approx(values.mean())
    assert (s.min, s.max) == (values.min(), values.max())
    assert set(s.to_dict()) == {"n", "p50", "p90", "p99", "mean", "min", "max"}


@pytest.mark.parametrize("values, q, match", [
    ([], 50, "at least one value"),
    ([1.0, float("nan")], 50, "finite"),
    ([1.0, float("inf")], 50, "finite"),
    ([1.0], 101, r"\[0, 100\]"),
    ([1.0], -1, r"\[0, 100\]"),
])
def test_percentile_rejects_bad_input(values, q, match):
    with pytest.raises(ValueError, match=match):
        percentile(values, q)


def test_drift_short_window_compares_first_and_last_fifth():
    starts = [i * 0.1 for i in range(100)]              # 10 s
    totals = [10.0 if s < 5 else 12.0 for s in starts]
    d = drift(starts, totals)
    assert d["label"] == "first 20% vs last 20% of the window"
    assert d["first_p50_ms"] == 10.0 and d["last_p50_ms"] == 12.0
    assert d["change_pct"] == pytest.approx(20.0)
    assert d["first_n"] == pytest.approx(20, abs=1) and d["last_n"] == pytest.approx(20, abs=1)


def test_drift_long_window_compares_first_and_last_minute():
    starts = [float(i) for i in range(180)]              # 3 minutes, one run a second
    totals = [20.0 + 0.1 * i for i in range(180)]         # slows down steadily
    d = drift(starts, totals)
    assert d["label"] == "first minute vs last minute"
    assert d["first_n"] == 60 and d["last_n"] == 60
    assert d["first_p50_ms"] == pytest.approx(np.median(totals[:60]))
    assert d["last_p50_ms"] == pytest.approx(np.median(totals[-60:]))
    assert d["change_pct"] > 0


def test_drift_edge_cases():
    assert drift([], []) is None
    with pytest.raises(ValueError, match="same length"):
        drift([0.0], [])


# --- stage attribution ----------------------------------------------------------------


def test_stages_add_up_to_the_total():
    ms = 1_000_000
    t = (0, 3 * ms, 45 * ms, 92 * ms)   # decode 3, detector 42, Estimator 47 ms
    timings = {"detect": 0.0, "preprocess": 2.5, "inference": 40.0, "decode": 4.0,
               "total": 46.9}
    parts = attribute_stages(t, timings, with_detector=True)
    assert set(parts) == {*STAGES, "total"}
    assert parts["decode_image"] == 3.0 and parts["detector"] == 42.0
    assert parts["other"] == pytest.approx(0.5)
    assert math.fsum(v for k, v in parts.items() if k != "total") == pytest.approx(parts["total"])
    assert parts["total"] == 92.0


def test_no_detector_stage_without_a_detector():
    parts = attribute_stages((0, 10, 10, 110), {"preprocess": 0.0, "inference": 0.0,
                                                "decode": 0.0}, with_detector=False)
    assert "detector" not in parts
    assert parts["other"] + parts["decode_image"] == pytest.approx(parts["total"])


def test_run_settings_are_checked():
    with pytest.raises(ValueError, match="runs must be an int >= 1"):
        RunSettings(runs=0)
    with pytest.raises(ValueError, match="positive number of seconds"):
        RunSettings(duration_s=float("nan"))


def test_backend_supports_file_types():
    assert backend_supports("onnxruntime", "m.onnx") and backend_supports("openvino", "m.onnx")
    assert backend_supports("tflite", "m.TFLITE") and not backend_supports("tflite", "m.onnx")
    assert not backend_supports("onnxruntime", "m.tflite")


# --- the machine probe on fake trees --------------------------------------------------


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _arm_cpuinfo(n, part, trailer=""):
    block = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull "
             "sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"
             "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n"
             f"CPU part\t: {part}\nCPU revision\t: 1\n\n")
    return "".join(block.format(i=i) for i in range(n)) + trailer


@pytest.fixture
def raspberry_pi_5(tmp_path):
    root = tmp_path / "pi5"
    _write(root, "proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\x00")
    _write(root, "proc/cpuinfo", _arm_cpuinfo(
        4, "0xd0b", "Revision\t: d04170\nSerial\t\t: 0123456789abcdef\n"
                    "Model\t\t: Raspberry Pi 5 Model B Rev 1.0\n"))
    for i in range(4):
        _write(root, f"sys/devices/system/cpu/cpu{i}/cpufreq/scaling_governor", "ondemand\n")
        _write(root, f"sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq", "1500000\n")
        _write(root, f"sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq", "2400000\n")
    _write(root, "sys/class/thermal/thermal_zone0/temp", "52650\n")
    _write(root, "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    _write(root, "sys/devices/platform/soc/soc:firmware/get_throttled", "0\n")
    _write(root, "etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    _write(root, "proc/sys/kernel/osrelease", "6.6.31+rpt-rpi-2712\n")
    _write(root, "proc/meminfo", "MemTotal:        8245612 kB\nMemFree:         7000000 kB\n")
    _write(root, "proc/loadavg", "0.08 0.03 0.01 1/250 1234\n")
    return root


@pytest.fixture
def jetson_orin(tmp_path):
    root = tmp_path / "orin"
    _write(root, "proc/device-tree/model", "NVIDIA Jetson AGX Orin Developer Kit\x00")
    _write(root, "etc/nv_tegra_release",
           "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
           "DATE: Tue Aug  1 19:57:35 UTC 2023\n# KERNEL_VARIANT: oot\n")
    _write(root, "proc/cpuinfo", _arm_cpuinfo(12, "0xd42"))
    for i in range(12):
        _write(root, f"sys/devices/system/cpu/cpu{i}/cpufreq/scaling_governor", "schedutil\n")
    for i, (kind, milli) in enumerate([("CPU-therm", 47500), ("GPU-therm", 45000),
                                       ("SOC0-therm", 46250)]):
        _write(root, f"sys/class/thermal/thermal_zone{i}/type", kind + "\n")
        _write(root, f"sys/class/thermal/thermal_zone{i}/temp", f"{milli}\n")
    _write(root, "sys/class/thermal/thermal_zone3/type", "tj-therm\n")  # unreadable temp: skipped
    _write(root, "etc/os-release", 'PRETTY_NAME="Ubuntu 20.04.6 LTS"\n')
    return root


def test_probe_raspberry_pi_5(raspberry_pi_5):
    m = probe_machine(raspberry_pi_5)
    assert m["board"]["kind"] == "raspberry_pi"
    assert m["board"]["model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert m["board"]["l4t"] is None and m["board"]["throttled"] == "0"
    assert m["cpu"]["model"] == "4x Cortex-A76"
    assert m["cpu"]["cores_logical"] == 4 and m["cpu"]["architecture"] == "aarch64"
    assert "asimddp" in m["cpu"]["simd"]
    assert m["cpufreq"] == {"governor": "ondemand", "cur_mhz": [1500] * 4, "max_mhz": 2400.0}
    assert m["temperatures"] == [{"zone": "thermal_zone0", "type": "cpu-thermal",
                                  "celsius": 52.65}]
    assert m["os"] == {"name": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.6.31+rpt-rpi-2712"}
    assert m["memory_mb"] == 8052 and m["load_avg"] == [0.08, 0.03, 0.01]


def test_probe_jetson_orin(jetson_orin):
    m = probe_machine(jetson_orin)
    assert m["board"] == {"model": "NVIDIA Jetson AGX Orin Developer Kit", "kind": "jetson",
                          "l4t": "R35.4.1"}
    assert m["cpu"]["model"] == "12x Cortex-A78AE" and m["cpu"]["cores_logical"] == 12
    assert m["cpufreq"]["governor"] == "schedutil" and m["cpufreq"]["max_mhz"] is None
    assert [t["type"] for t in m["temperatures"]] == ["CPU-therm", "GPU-therm", "SOC0-therm"]
    assert m["temperatures"][0]["celsius"] == 47.5
    assert m["os"]["name"] == "Ubuntu 20.04.6 LTS" and m["memory_mb"] is None


def test_probe_of_an_empty_tree_reports_nothing_and_does_not_fail(tmp_path):
    m = probe_machine(tmp_path)
    assert m["board"] == {"model": None, "kind": None, "l4t": None}
    assert m["cpu"]["model"] is None and m["cpu"]["cores_logical"] is None
    assert m["cpufreq"] == {"governor": None, "cur_mhz": None, "max_mhz": None}
    assert m["temperatures"] == [] and read_temperatures(tmp_path) == []
    assert m["python"] and "numpy" in m["runtimes"]   # this process, whatever the root


def test_probe_this_machine():
    m = probe_machine()
    assert m["cpu"]["cores_logical"] >= 1 and m["cpu"]["architecture"]
    json.dumps(m)  # serialisable


# --- counting parameters and FLOPs ----------------------------------------------------


def _conv_gemm_onnx(path, batch="N", hw=(32, 32)):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    fc = numpy_helper.from_array(rng.normal(size=(8, 10)).astype(np.float32), "fc")
    shape = numpy_helper.from_array(np.array([0, -1], np.int64), "shape")   # not a parameter
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Reshape", ["g", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, *hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], [w, b, fc, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_params_and_flops_are_counted_from_the_graph(tmp_path):
    pytest.importorskip("onnx")
    stats = count_graph(_conv_gemm_onnx(tmp_path / "tiny.onnx"))
    assert stats.params == 8 * 3 * 3 * 3 + 8 + 8 * 10
    conv = 2 * 8 * 32 * 32 * 3 * 3 * 3
    assert stats.gflops * 1e9 == pytest.approx(conv + 2 * 8 * 10)
    assert stats.note is None


def test_onnx_with_a_dynamic_input_size_needs_the_shape(tmp_path):
    pytest.importorskip("onnx")
    path = _conv_gemm_onnx(tmp_path / "dyn.onnx", hw=("H", "W"))
    assert count_graph(path).gflops is None
    assert "dynamic" in count_graph(path).note
    assert count_graph(path, (1, 3, 16, 16)).gflops * 1e9 == pytest.approx(
        2 * 8 * 16 * 16 * 27 + 2 * 80)


def test_tflite_with_a_dynamic_input_size_needs_the_shape(shared_dir):
    path = shared_dir / "models/movenet/movenet_multipose_lightning_fp16.tflite"
    plain = count_graph(path)
    assert plain.gflops is None and "dynamic" in plain.note and plain.params > 4e6
    square = count_graph(path, (1, 256, 256, 3))
    wide = count_graph(path, (1, 160, 256, 3))
    assert square.params == wide.params == plain.params and square.note is None
    # every convolution scales with the pixels: 160 x 256 is 5/8 of 256 x 256
    assert wide.gflops == pytest.approx(square.gflops * 160 / 256, rel=0.01)
    assert square.gflops > 1.0


def test_real_tflite_and_onnx_conversions_count_alike(shared_dir):
    tfl = count_graph(shared_dir / "models/movenet/movenet_singlepose_lightning_int8_4.tflite")
    onx = count_graph(shared_dir / "models/movenet/onnx_converted/"
                                   "movenet_singlepose_lightning_int8_4.onnx")
    assert tfl.params > 1e6 and tfl.gflops > 0.1
    assert onx.gflops == pytest.approx(tfl.gflops, rel=0.01)
    assert onx.params == pytest.approx(tfl.params, rel=0.02)


def test_unknown_files_are_not_counted(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"x")
    stats = count_graph(tmp_path / "m.pt")
    assert stats.params is None and stats.note.startswith("n/a")
    assert count_graph(tmp_path / "missing.onnx").params is None


# --- the command: JSON schema and short real runs -------------------------------------

STAGE_KEYS = {"n", "p50", "p90", "p99", "mean", "min", "max"}


def _check_document(doc):
    assert doc["schema"] == report.SCHEMA
    assert set(doc) == {"schema", "created", "command", "settings", "machine", "models",
                        "results", "video"}
    s = doc["settings"]
    assert {"runs", "warmup", "duration_s", "backends", "threads", "detector",
            "detector_backend", "opencv_threads", "units", "image", "video"} <= set(s)
    assert s["units"] == "ms" and isinstance(s["threads"], list)
    assert s["image"] is None or {"path", "sha256", "bytes", "width", "height"} == set(s["image"])
    assert s["video"] is None or {"path", "sha256", "bytes", "width", "height", "frames", "fps",
                                  "max_frames", "detect_every", "repeats"} == set(s["video"])
    assert bool(doc["video"]) == (s["video"] is not None)
    for row in doc["video"]:
        assert {"status", "reason", "model", "detector", "backend", "detector_backend",
                "threads", "detect_every"} <= set(row)
        if row["status"] != "ok":
            continue
        assert row["identical"] is True and row["frames"] >= 1
        assert row["serial_fps"] > 0 and row["pipelined_fps"] > 0 and row["speedup"] > 0
        assert len(row["serial_ms"]) == len(row["pipelined_ms"]) == s["video"]["repeats"]
        for stages in (row["serial_stage_ms"], row["pipelined_stage_ms"]):
            assert list(stages) == ["read", "detect", "pose", "track"]
    assert {"cpu", "board", "os", "memory_mb", "load_avg", "cpufreq", "temperatures", "python",
            "runtimes", "edgepose"} == set(doc["machine"])
    for info in doc["models"].values():
        assert {"name", "role", "path", "format", "size_bytes", "sha256", "registry", "params",
                "gflops", "graph_count", "card"} == set(info)
        assert isinstance(info["size_bytes"], int) and len(info["sha256"]) == 64
        assert info["params"] is None or isinstance(info["params"], int)
        assert info["gflops"] is None or isinstance(info["gflops"], float)
        assert isinstance(info["card"], dict) and "task" in info["card"]
    for row in doc["results"]:
        assert row["status"] in ("ok", "skipped", "error")
        assert {"status", "reason", "model", "detector", "backend", "detector_backend",
                "threads"} <= set(row)
        if row["status"] != "ok":
            assert isinstance(row["reason"], str)
            continue
        assert isinstance(row["runs"], int) and isinstance(row["people"], int)
        assert isinstance(row["fps"], float) and isinstance(row["peak_rss_mb"], float)
        assert row["rss_scope"] in ("configuration", "process")
        assert set(row["temperature_c"]) == {"start", "end"}
        stages = row["stages_ms"]
        assert {"decode_image", "preprocess", "inference", "decode", "other", "total"} \
            <= set(stages) <= {*STAGES, "total"}
        for st in stages.values():
            assert set(st) == STAGE_KEYS and st["n"] == row["runs"]
            assert st["min"] <= st["p50"] <= st["p90"] <= st["p99"] <= st["max"]
        # means are additive: the stages' means add up to the total's
        assert math.fsum(v["mean"] for k, v in stages.items() if k != "total") == \
            pytest.approx(stages["total"]["mean"], rel=1e-9)


@pytest.fixture
def isolated_registry(monkeypatch, tmp_path):
    for var in ("EDGEPOSE_MODEL_DIR", "EDGEPOSE_MIRROR", IMAGE_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEPOSE_OFFLINE", "1")
    return tmp_path


def test_real_run_top_down_json_and_markdown(shared_dir, tmp_path, capsys, isolated_registry):
    models = shared_dir / "models"
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    code = main([str(models / "movenet/movenet_singlepose_lightning_int8_4.tflite"),
                 "--detector", str(models / "detectors/yolox_yolox_nano_416x416.onnx"),
                 "--image", str(shared_dir / "data/coco/000000197388.jpg"),
                 "--runs", "3", "--warmup", "1", "--threads", "1",
                 "--json", str(out_json), "--markdown", str(out_md), "--quiet"])
    assert code == 0
    doc = json.loads(out_json.read_text())
    _check_document(doc)
    (row,) = doc["results"]
    assert row["status"] == "ok" and row["backend"] == "tflite"
    assert row["detector_backend"] == "onnxruntime" and row["threads"] == 1
    assert row["people"] >= 3 and "detector" in row["stages_ms"]
    roles = sorted(m["role"] for m in doc["models"].values())
    assert roles == ["detector", "pose"]
    text = capsys.readouterr().out
    for needle in ("CPU:", "crop/preprocess", "postprocess/decode", "FPS", "peak RSS",
                   "cd7cc22fa946"):
        assert needle in text
    md = out_md.read_text()
    assert md.startswith("## edgepose-bench") and "| crop/preprocess | inference |" in md
    assert "| model | detector | backend | threads |" in md


def test_real_run_across_backends_by_name_with_a_sustained_window(
        shared_dir, tmp_path, capsys, monkeypatch, isolated_registry):
    monkeypatch.setenv("EDGEPOSE_MIRROR", str(shared_dir / "models"))
    monkeypatch.setenv(IMAGE_ENV, str(shared_dir / "data/coco/000000000785.jpg"))
    out_json = tmp_path / "b.json"
    code = main(["movenet-lightning-onnx", "--backend", "onnxruntime,tflite",
                 "--threads", "1", "--duration", "0.3", "--warmup", "0",
                 "--json", str(out_json), "--quiet"])
    assert code == 0
    doc = json.loads(out_json.read_text())
    _check_document(doc)
    ok, skipped = doc["results"]
    assert ok["status"] == "ok" and ok["drift"]["label"].startswith("first 20%")
    assert ok["timeline"] and ok["people"] == 1
    assert skipped == {"status": "skipped", "reason": "tflite cannot open .onnx files",
                       "model": "movenet-lightning-onnx", "detector": None,
                       "backend": "tflite", "detector_backend": None, "threads": 1}
    (info,) = doc["models"].values()
    assert info["registry"] == "movenet-lightning-onnx"
    assert "skipped: tflite cannot open .onnx files" in capsys.readouterr().out


def test_json_to_stdout_moves_the_table_to_stderr(shared_dir, capsys, isolated_registry):
    code = main([str(shared_dir / "models/movenet/movenet_singlepose_lightning_int8_4.tflite"),
                 "--image", str(shared_dir / "data/coco/000000000785.jpg"), "--runs", "1",
                 "--warmup", "0", "--json", "-", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0
    _check_document(json.loads(captured.out))
    assert "crop/preprocess" in captured.err


def test_video_serial_against_pipelined(shared_dir, tmp_path, capsys, isolated_registry,
                                        panning_video):
    models = shared_dir / "models"
    out_json, out_md = tmp_path / "v.json", tmp_path / "v.md"
    code = main([str(models / "movenet/movenet_singlepose_lightning_int8_4.tflite"),
                 "--detector", str(models / "detectors/yolox_yolox_nano_416x416.onnx"),
                 "--video", str(panning_video), "--max-frames", "8", "--detect-every", "2",
                 "--repeats", "1", "--warmup", "1", "--threads", "1", "--json", str(out_json),
                 "--markdown", str(out_md), "--quiet"])
    assert code == 0
    doc = json.loads(out_json.read_text())
    _check_document(doc)
    assert doc["results"] == [] and doc["settings"]["image"] is None   # --video alone
    (row,) = doc["video"]
    assert row["status"] == "ok" and row["frames"] == 8 and row["detect_every"] == 2
    assert row["backend"] == "tflite" and row["detector_backend"] == "onnxruntime"
    assert row["serial_stage_ms"]["detect"] > 0
    text = capsys.readouterr().out
    assert "video: tracked serially, then pipelined" in text
    assert "serial FPS" in text and "pipelined FPS" in text
    md = out_md.read_text()
    assert "### Video: serial vs pipelined tracking" in md and "Latency per frame" not in md


def test_video_and_image_together_and_a_bad_video(shared_dir, tmp_path, capsys,
                                                  isolated_registry, panning_video):
    model = str(shared_dir / "models/movenet/movenet_singlepose_lightning_int8_4.tflite")
    out_json = tmp_path / "v.json"
    code = main([model, "--image", str(shared_dir / "data/coco/000000000785.jpg"), "--runs", "2",
                 "--warmup", "0", "--video", str(panning_video), "--max-frames", "3",
                 "--repeats", "2", "--json", str(out_json), "--quiet"])
    assert code == 0
    doc = json.loads(out_json.read_text())
    _check_document(doc)
    assert len(doc["results"]) == len(doc["video"]) == 1
    assert doc["video"][0]["detector"] is None and doc["video"][0]["frames"] == 3
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    capsys.readouterr()
    assert main([model, "--video", str(bad)]) == 1  # 1: the file exists but is no video
    assert "cannot read the video" in capsys.readouterr().err


def test_without_models_the_message_says_how_to_point_at_them(
        shared_dir, capsys, isolated_registry):
    assert default_models() == ([], "")
    code = main(["--image", str(shared_dir / "data/coco/000000000785.jpg")])
    err = capsys.readouterr().err
    assert code == 2
    for needle in ("EDGEPOSE_MODEL_DIR", "EDGEPOSE_MIRROR", "edgepose models pull"):
        assert needle in err


def test_default_models_come_from_the_mirror_folder(shared_dir, monkeypatch, isolated_registry):
    monkeypatch.setenv("EDGEPOSE_MIRROR", str(shared_dir / "models"))
    names, where = default_models()
    assert "movenet-lightning" in names and "yolox-nano" not in names
    assert "mirror" in where


MOVENET = "models/movenet/movenet_singlepose_lightning_int8_4.tflite"
QUICK = ["--runs", "2", "--warmup", "0", "--threads", "1"]


def test_without_an_image_the_sample_photo_is_timed(shared_dir, tmp_path, capsys,
                                                   isolated_registry):
    from edgepose.data import sample_path

    out_json = tmp_path / "b.json"
    assert main([str(shared_dir / MOVENET), *QUICK, "--json", str(out_json)]) == 0
    err = capsys.readouterr().err
    assert f"(no --image given: timing the sample photo edgepose ships, {sample_path()}" in err
    doc = json.loads(out_json.read_text())
    _check_document(doc)
    image = doc["settings"]["image"]
    assert image["path"] == str(sample_path()) and (image["width"], image["height"]) == (640, 426)
    (row,) = doc["results"]
    assert row["status"] == "ok" and row["people"] == 1   # single-person MoveNet
    # --quiet: no note, no "wrote" line; the table still on stdout
    assert main([str(shared_dir / MOVENET), *QUICK, "--json", str(out_json), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "sample photo" not in captured.err and "wrote" not in captured.err
    assert "crop/preprocess" in captured.out


def test_bench_is_a_subcommand_of_edgepose_equal_to_edgepose_bench(shared_dir, tmp_path,
                                                                   isolated_registry):
    from edgepose.cli import main as edgepose_main

    detector = str(shared_dir / "models/detectors/yolox_yolox_nano_416x416.onnx")
    args = [str(shared_dir / MOVENET), "--detector", detector, "--image",
            str(shared_dir / "data/coco/000000197388.jpg"), *QUICK, "--quiet"]
    assert main([*args, "--json", str(tmp_path / "a.json")]) == 0
    assert edgepose_main(["bench", *args, "--json", str(tmp_path / "b.json")]) == 0
    alias, sub = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    _check_document(sub)
    assert alias["command"].startswith("edgepose-bench ")
    assert sub["command"].startswith("edgepose bench ")
    assert alias["settings"] == sub["settings"] and alias["models"] == sub["models"]
    timing = {"stages_ms", "fps", "peak_rss_mb", "rss_scope", "temperature_c", "load_s",
              "timeline", "drift", "window_s"}
    for a, b in zip(alias["results"], sub["results"], strict=True):
        assert {k: v for k, v in a.items() if k not in timing} == \
            {k: v for k, v in b.items() if k not in timing}
        assert set(a) == set(b) and a["status"] == "ok" and a["people"] >= 3


def test_bench_and_edgepose_bench_take_the_same_options():
    from edgepose.bench.cli import build_parser
    from edgepose.cli import build_parser as edgepose_parser

    def options(parser):
        return sorted((a.dest, tuple(a.option_strings), a.nargs, a.default)
                      for a in parser._actions if a.dest not in ("help", "debug"))

    sub = edgepose_parser()._subparsers._group_actions[0].choices["bench"]
    assert options(sub) == options(build_parser())
    assert "--quiet" in sub._option_string_actions and "--max-frames" in sub._option_string_actions


def test_the_old_spellings_still_work_with_a_note(shared_dir, tmp_path, capsys,
                                                  isolated_registry, panning_video):
    from edgepose.bench.cli import build_parser

    args = build_parser().parse_args(["--no-progress", "--video-frames", "4"])
    assert args.quiet is True and args.max_frames == 4
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "edgepose-bench: note: --no-progress is deprecated, use --quiet (the old spelling still "
        "works, for now)",
        "edgepose-bench: note: --video-frames is deprecated, use --max-frames (the old spelling "
        "still works, for now)"]
    out_json = tmp_path / "v.json"
    assert main([str(shared_dir / MOVENET), "--video", str(panning_video), "--video-frames", "3",
                 "--repeats", "1", "--warmup", "0", "--threads", "1", "--no-progress",
                 "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["video"][0]["frames"] == 3


def test_model_as_an_option_adds_to_the_positional_models(shared_dir, tmp_path,
                                                          isolated_registry):
    onnx = str(shared_dir / "models/movenet/onnx_converted/"
               "movenet_singlepose_lightning_int8_4.onnx")
    out_json = tmp_path / "b.json"
    assert main([str(shared_dir / MOVENET), "--model", onnx, *QUICK, "--quiet",
                 "--json", str(out_json)]) == 0
    rows = json.loads(out_json.read_text())["results"]
    assert [(r["model"].rsplit("/", 1)[-1], r["backend"]) for r in rows] == [
        ("movenet_singlepose_lightning_int8_4.tflite", "tflite"),
        ("movenet_singlepose_lightning_int8_4.onnx", "onnxruntime")]


def test_bad_arguments_exit_with_usage(capsys):
    for argv in (["--threads", "0"], ["--backend", "tensorrt"], ["--runs", "0"],
                 ["--duration", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads: expected ints >= 1 or 'default' (the runtime's own), got '0'" in err
    assert "unknown backend 'tensorrt'; available: onnxruntime, tflite, openvino" in err


def test_a_detector_given_as_the_model_is_refused(shared_dir, capsys, isolated_registry):
    code = main([str(shared_dir / "models/detectors/yolox_yolox_nano_416x416.onnx"),
                 "--image", str(shared_dir / "data/coco/000000000785.jpg")])
    assert code == 2 and "pass it as --detector" in capsys.readouterr().err


# --- the side-by-side benchmarks run (smoke tests: correctness checks, no timing) -----


def _load_benchmark(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_overhead_checks_and_reports(shared_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEPOSE_SHARED", str(shared_dir))
    out = tmp_path / "overhead.json"
    assert _load_benchmark("bench_overhead").main(
        ["--runs", "2", "--warmup", "1", "--threads", "1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["people"] == 3
    assert {"overhead_ms", "overhead_pct_of_inference", "wrapper_ms"} <= set(doc)
    assert "bit-identical" in capsys.readouterr().out


def test_bench_vs_rtmlib_quick(shared_dir, tmp_path, monkeypatch):
    pytest.importorskip("rtmlib")
    monkeypatch.setenv("EDGEPOSE_SHARED", str(shared_dir))
    out = tmp_path / "rtmlib.json"
    assert _load_benchmark("bench_vs_rtmlib").main(
        ["--quick", "--runs", "2", "--threads", "1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [k["case"] for k in doc["kernels"]][:2] == ["decode_simcc N=1 K=17",
                                                        "decode_simcc N=3 K=17"]
    assert doc["checks"]["people"] == 3 and doc["checks"]["dot_error_px"]["edgepose"] <= 2.0
    (row,) = doc["pipelines"]
    assert row["model"].startswith("rtmpose_like") and row["full_ratio"] > 0


def test_edgepose_bench_stays_an_entry_point_beside_edgepose():
    import importlib
    import sys

    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import tomllib

    from tests.conftest import REPO_ROOT

    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"edgepose": "edgepose.cli:main", "edgepose-bench": "edgepose.bench.cli:main"}
    for target in scripts.values():
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name))


def test_run_config_passes_each_model_its_runtime_options(shared_dir, monkeypatch):
    """BenchConfig.runtime reaches the models: xnnpack=False only the TFLite
    pose model, the detector on onnxruntime gets threads and nothing else."""
    import edgepose.estimator
    from edgepose.bench.runner import BenchConfig, RunSettings, run_config
    from edgepose.detectors import PersonDetector
    from edgepose.runtime import RuntimeOptions

    built = {}

    class Spy(edgepose.estimator.Estimator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built["pose"] = (self.runtime, self._pose.backend.xnnpack)

    original = PersonDetector.from_file.__func__

    def from_file(cls, path, **kwargs):
        built["detector"] = kwargs["runtime"]
        return original(cls, path, **kwargs)

    monkeypatch.setattr(edgepose.estimator, "Estimator", Spy)
    monkeypatch.setattr(PersonDetector, "from_file", classmethod(from_file))
    models = shared_dir / "models"
    config = BenchConfig(str(models / "movenet/movenet_singlepose_lightning_int8_4.tflite"),
                         str(models / "detectors/yolox_yolox_nano_416x416.onnx"), threads=1,
                         runtime=RuntimeOptions(xnnpack=False, device="GPU"))
    image = (shared_dir / "data/coco/000000197388.jpg").read_bytes()
    row = run_config(config, image, RunSettings(runs=2, warmup=0))
    assert row["status"] == "ok", row["reason"]
    assert built["pose"] == (RuntimeOptions(backend="tflite", threads=1, xnnpack=False), False)
    assert built["detector"] == RuntimeOptions(backend="onnxruntime", threads=1)
    with pytest.raises(ValueError, match="BenchConfig.runtime carries the options besides "
                                         "backend and threads"):
        BenchConfig("m.onnx", runtime=RuntimeOptions(threads=2))


def test_bench_runtime_flags_reach_the_configurations(shared_dir, tmp_path, capsys,
                                                      isolated_registry):
    models = shared_dir / "models"
    out_json = tmp_path / "b.json"
    code = main([str(models / "movenet/movenet_singlepose_lightning_int8_4.tflite"),
                 "--image", str(shared_dir / "data/coco/000000000785.jpg"), "--backend", "tflite",
                 "--no-xnnpack", "--runs", "2", "--warmup", "0", "--threads", "1",
                 "--json", str(out_json), "--quiet"])
    assert code == 0
    doc = json.loads(out_json.read_text())
    _check_document(doc)
    assert doc["settings"]["runtime"] == {"device": None, "providers": None,
                                          "precision": "f32", "xnnpack": False}
    assert doc["results"][0]["status"] == "ok"
    code = main([str(models / "movenet/movenet_singlepose_lightning_int8_4.tflite"),
                 "--backend", "onnxruntime,tflite", "--device", "GPU", "--quiet"])
    assert code == 2
    assert ("--device is an option of openvino, and --backend onnxruntime,tflite does not run "
            "openvino") in capsys.readouterr().err

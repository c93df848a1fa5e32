"""``edgepose export``: the table, the JSON report, the exit codes (0 ok, 1 tolerance, 2 usage)."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("cv2")

from edgepose.card import read_card  # noqa: E402
from edgepose.cli import main as edgepose_main  # noqa: E402
from edgepose_export.cli import main  # noqa: E402
from tests.models.synthetic import rtmpose_like  # noqa: E402


@pytest.fixture(scope="module")
def paths(shared_dir):
    return {"cpm": str(shared_dir / "models/heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"),
            "movenet": str(shared_dir
                           / "models/movenet/movenet_singlepose_lightning_int8_4.tflite"),
            "coco": str(shared_dir / "data/coco"),
            "ann": str(shared_dir / "data/coco/test_coco.json")}


def run(argv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "only 12 calibration crops"
        return main(argv)


def test_fp32_and_fp16_within_tolerance_exit_0(paths, tmp_path, capsys):
    src = rtmpose_like(tmp_path / "end2end.onnx")  # recognised by RTMPose's I/O signature
    out = tmp_path / "out"
    code = run([str(src), "--to", "onnx", "--precision", "fp32,fp16", "--parity-images",
                paths["coco"], "--calib-annotations", paths["ann"], "--out", str(out),
                "--runs", "2", "--quiet"])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert "onnx      fp32" in stdout and "onnx      fp16" in stdout and "yes" in stdout
    report = json.loads((out / "export.json").read_text())
    assert report["passed"] is True and report["skipped"] == []
    assert [a["precision"] for a in report["artifacts"]] == ["fp32", "fp16"]
    assert all(a["parity"]["images"] == 12 for a in report["artifacts"])
    card = read_card(out / "rtmpose_fp16.onnx")
    assert card.provenance["parity"]["passed"] is True
    assert card.provenance["parity"]["inputs"].endswith("boxes from test_coco.json)")


def test_an_artefact_outside_its_tolerance_exits_1_unless_forced(paths, tmp_path, capsys):
    # CPM FP16 moves keypoints by ~0.015 px: a 0.001 px tolerance must fail.
    args = [paths["cpm"], "--precision", "fp16", "--parity-images", paths["coco"],
            "--calib-annotations", paths["ann"], "--max-keypoint-error", "0.001",
            "--runs", "1", "--quiet"]
    out = tmp_path / "strict"
    assert run(args + ["--out", str(out), "--json", str(tmp_path / "r.json")]) == 1
    captured = capsys.readouterr()
    assert "NO" in captured.out and "outside the tolerance" in captured.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is False
    assert read_card(out / "cpm-aic14_fp16.onnx").provenance["parity"]["passed"] is False
    assert run(args + ["--out", str(tmp_path / "forced"), "--force"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["{missing}", "--out", "{out}"], "does not exist"),
    (["{cpm}", "--out", "{out}", "--precision", "fp64"], "precisions must be one or more"),
    (["{cpm}", "--out", "{out}", "--to", "coreml"], "targets must be one or more"),
    (["{cpm}", "--out", "{out}", "--precision", "int8"], "needs calibration images"),
    (["{cpm}", "--out", "{out}", "--to", "tflite"], "TFLite from an ONNX source"),
    (["{movenet}", "--out", "{out}", "--to", "onnx"], "ONNX from a TFLite source"),
    (["{movenet}", "--out", "{out}", "--to", "tflite", "--precision", "int8",
      "--calib", "{coco}"], "only copied with its card"),
    (["{cpm}", "--out", "{out}", "--to", "openvino", "--precision", "int8-dynamic"],
     "no dynamic-range INT8"),
    (["{cpm}", "--out", "{out}", "--min-oks", "2"], "--min-oks"),
    (["{cpm}", "--out", "{out}", "--preset", "nope"], "Unknown preset"),
    (["no_such_module:factory", "--out", "{out}"], "Cannot import"),
])
def test_usage_errors_exit_2_with_a_message(paths, tmp_path, capsys, argv, message):
    values = dict(paths, missing=str(tmp_path / "missing.onnx"), out=str(tmp_path / "out"))
    assert run([a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepose export: error:") and message in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_argparse_errors_exit_2_and_help_exits_0(capsys):
    assert run([]) == 2
    assert run(["--help"]) == 0
    assert "Exit codes" in capsys.readouterr().out


def test_edgepose_export_is_a_subcommand(paths, tmp_path, capsys):
    out = tmp_path / "out"
    code = edgepose_main(["export", paths["cpm"], "--out", str(out), "--parity-images",
                          paths["coco"], "--calib-annotations", paths["ann"], "--json", "-",
                          "--runs", "1", "--quiet"])
    assert code == 0
    stdout = capsys.readouterr().out
    report = json.loads(stdout[stdout.index("{"):])
    assert report["artifacts"][0]["parity"]["max_abs_diff"] == {"heatmaps": 0.0}
    assert edgepose_main(["export", "--help"]) == 0
    assert edgepose_main(["export", str(tmp_path / "x.onnx"), "--out", str(out)]) == 2


def test_the_console_script_runs_the_export(paths, tmp_path):
    command = [sys.executable, "-m", "edgepose.cli", "export", paths["cpm"], "--out",
               str(tmp_path), "--precision", "fp32", "--quiet", "--latency-runs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "need real images" in done.stderr  # parity needs images
    done = subprocess.run(command + ["--parity-images", paths["coco"]], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cpm-aic14_fp32.onnx").is_file()
    # --latency-runs is the old spelling of --runs: it still works, with a note
    assert ("edgepose export: note: --latency-runs is deprecated, use --runs (the old "
            "spelling still works, for now)") in done.stderr


def test_export_takes_the_common_flags_and_checks_counts(capsys):
    from edgepose_export.cli import build_parser

    args = build_parser().parse_args(["m.onnx", "--out", "o", "--quiet", "--json", "-",
                                      "--debug", "--runs", "3", "--max-calib", "50"])
    assert (args.quiet, args.json, args.debug, args.runs, args.max_calib) == \
        (True, "-", True, 3, 50)
    assert build_parser().parse_args(["m.onnx", "--out", "o"]).runs == 20
    assert build_parser().parse_args(["m.onnx", "--out", "o", "--latency-runs", "4"]).runs == 4
    assert capsys.readouterr().err == ("edgepose export: note: --latency-runs is deprecated, "
                                       "use --runs (the old spelling still works, for now)\n")
    for flag in ("--runs", "--max-calib", "--latency-runs"):
        assert run(["m.onnx", "--out", "o", flag, "0"]) == 2
        assert f"argument {flag}: expected an int >= 1, got '0'" in capsys.readouterr().err


def tiny_heatmap_model():
    """A torch source for ``edgepose export tests.export.test_cli:tiny_heatmap_model``."""
    import torch

    from edgepose.card import ModelCard
    from edgepose.presets import preset_card

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 4, 1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 17, 1))

        def forward(self, x):
            return self.body(x)

        def card(self):
            data = preset_card("rtmpose").to_dict()
            data.update(name="tiny-heatmap", head="heatmap", outputs={"heatmaps": "heatmaps"},
                        head_params={"refine": "none"})
            data["input"]["size"] = [64, 48]
            return ModelCard.from_dict(data)

    torch.manual_seed(0)
    return Tiny().eval()


@pytest.mark.slow
def test_a_torch_factory_as_source_to_onnx_and_openvino(paths, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("edgepose_export.openvino")
    out = tmp_path / "out"
    code = run(["tests.export.test_cli:tiny_heatmap_model", "--to", "onnx,openvino",
                "--precision", "fp32,fp16", "--parity-images", paths["coco"],
                "--calib-annotations", paths["ann"], "--out", str(out), "--force",
                "--runs", "2", "--quiet"])
    assert code == 0, capsys.readouterr()
    report = json.loads((out / "export.json").read_text())
    names = sorted(a["path"].rsplit("/", 1)[-1] for a in report["artifacts"])
    assert names == ["tiny-heatmap_fp16.onnx", "tiny-heatmap_fp16.xml",
                     "tiny-heatmap_fp32.onnx", "tiny-heatmap_fp32.xml"]
    fp32 = [a for a in report["artifacts"] if a["precision"] == "fp32"]
    assert all(max(a["parity"]["max_abs_diff"].values()) < 1e-4 for a in fp32)
    assert np.isfinite([a["parity"]["latency_ms_p50"] for a in report["artifacts"]]).all()

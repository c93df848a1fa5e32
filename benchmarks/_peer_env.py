"""The virtual environment in which ``bench_vs_ultralytics.py`` runs Ultralytics.

Ultralytics (AGPL-3.0) is never a dependency of edgepose: the benchmark makes
its own environment, outside the repository, on first use::

    python -m venv <peer-venv>
    <peer-venv>/bin/python -m pip install torch==<TORCH>[+cpu]
    <peer-venv>/bin/python -m pip install --no-deps ultralytics==<ULTRALYTICS>
    <peer-venv>/bin/python -m pip install <Ultralytics' other requirements> \\
        onnxruntime==<same as here> numpy==<same> onnx==<same> opencv-python-headless==<same>

torchvision is left out: PyPI's torchvision does not import beside a CPU torch
2.13 (``operator torchvision::nms does not exist``), and the pair that does
(torch 2.14.1 + torchvision 0.29.1) is a 5.5 GB CUDA build. Without it
Ultralytics uses its own pure-torch NMS, but its import-time version probe
(``importlib.metadata.version("torchvision")``) still wants the package's
metadata; :func:`write_torchvision_placeholder` writes a metadata-only
``torchvision-0.0.0.dist-info`` (no module: ``import torchvision`` still
fails) into that environment only. Ultralytics then warns once that
"torchvision==0.0 is incompatible"; ``pip uninstall torchvision`` removes the
placeholder. The worker skips the one ``import torchvision`` Ultralytics makes
on the prediction path (see ``_pose_worker.skip_torchvision_warmup``).

onnxruntime, NumPy, onnx and OpenCV are pinned to the versions installed beside
edgepose, so both sides run the same onnxruntime build.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ULTRALYTICS = "8.4.190"
TORCH = "2.13.0"

#: Ultralytics 8.4.190's install requirements other than torch, torchvision
#: and OpenCV (OpenCV is pinned below, as the headless build).
ULTRALYTICS_REQUIREMENTS = ("matplotlib>=3.3.0", "pillow>=7.1.2", "pyyaml>=5.3.1",
                            "requests>=2.23.0", "psutil>=5.8.0", "polars>=0.20.0",
                            "nvidia-ml-py>=12.0.0", "ultralytics-thop>=2.2.3",
                            "ultralytics-platform>=0.1.45")

#: Packages the peer gets at the same version as this environment.
SAME_AS_HERE = ("onnxruntime", "numpy", "onnx")
OPENCV_DISTS = ("opencv-python-headless", "opencv-python")

#: The file that records what a finished setup installed.
MARKER = "edgepose-peer.json"

PLACEHOLDER_VERSION = "0.0.0"


def torch_requirement(machine: str | None = None, system: str | None = None) -> str:
    """The torch pin: the ``+cpu`` build on x86-64 Linux (PyPI's plain wheel
    there is the multi-GB CUDA build), the plain version elsewhere (aarch64
    and macOS wheels are CPU builds)."""
    machine = (machine or platform.machine()).lower()
    system = system or platform.system()
    if system == "Linux" and machine in ("x86_64", "amd64"):
        return f"torch=={TORCH}+cpu"
    return f"torch=={TORCH}"


def pinned_here() -> list[str]:
    """``name==version`` of :data:`SAME_AS_HERE` and OpenCV as installed in this
    environment (packages missing here are left unpinned)."""
    pins = []
    for name in SAME_AS_HERE:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    for name in OPENCV_DISTS:
        try:
            pins.append(f"opencv-python-headless=={importlib.metadata.version(name)}")
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    else:
        pins.append("opencv-python-headless")
    return pins


def pip_commands(python: Path, pins: list[str], torch: str) -> list[list[str]]:
    """The pip commands that fill a fresh peer environment, in order."""
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    return [pip + [torch],
            pip + ["--no-deps", f"ultralytics=={ULTRALYTICS}"],
            pip + list(ULTRALYTICS_REQUIREMENTS) + pins]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def write_torchvision_placeholder(site_packages: Path) -> Path:
    """Writes the metadata-only ``torchvision-0.0.0.dist-info`` into
    site_packages (see the module docstring) and returns its folder."""
    info = Path(site_packages) / f"torchvision-{PLACEHOLDER_VERSION}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\n"
        "Name: torchvision\n"
        f"Version: {PLACEHOLDER_VERSION}\n"
        "Summary: Metadata only, written by edgepose's benchmarks/bench_vs_ultralytics.py. "
        "torchvision is NOT installed; this lets Ultralytics' version probe pass so that it "
        "uses its own NMS. Remove with: pip uninstall torchvision\n")
    (info / "INSTALLER").write_text("edgepose-benchmark\n")
    name = info.name
    (info / "RECORD").write_text(f"{name}/METADATA,,\n{name}/INSTALLER,,\n{name}/RECORD,,\n")
    return info


def wanted(pins: list[str], torch: str) -> dict[str, object]:
    """What a finished setup records in :data:`MARKER`."""
    return {"ultralytics": ULTRALYTICS, "torch": torch, "pins": sorted(pins)}


def ensure_peer_venv(venv: Path, log=sys.stderr) -> Path:
    """The peer environment's Python, after creating and filling the
    environment if its :data:`MARKER` is missing or records other versions.

    Raises:
        SystemExit: a setup step failed (the message names the command and
            the log lines to read).
    """
    venv = Path(venv).expanduser()
    python = venv_python(venv)
    pins, torch = pinned_here(), torch_requirement()
    want = wanted(pins, torch)
    marker = venv / MARKER
    if python.exists() and marker.exists():
        try:
            if json.loads(marker.read_text()) == want:
                return python
        except ValueError:
            pass
    print(f"setting up Ultralytics {ULTRALYTICS} in {venv} (once; torch is the large part)",
          file=log, flush=True)
    steps = ([] if python.exists() else [[sys.executable, "-m", "venv", str(venv)]]) + \
        pip_commands(python, pins, torch)
    for cmd in steps:
        print("  $ " + shlex.join(cmd), file=log, flush=True)
        done = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        if done.returncode != 0:
            tail = "\n".join(done.stdout.splitlines()[-15:])
            raise SystemExit(f"error: setting up the Ultralytics environment failed at\n  "
                             f"{shlex.join(cmd)}\n{tail}\nFix the cause (network, disk) and rerun; "
                             f"or delete {venv} to start over.")
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(python), "-c", purelib],
                          check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    write_torchvision_placeholder(Path(site))
    marker.write_text(json.dumps(want, indent=1) + "\n")
    return python


def peer_environ(venv: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables of the Ultralytics worker: offline, no
    auto-install, quiet, settings kept inside the peer environment."""
    env = dict(os.environ if base is None else base)
    env.update({"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false",
                "YOLO_CONFIG_DIR": str(Path(venv).expanduser() / "ultralytics-settings")})
    env.pop("PYTHONPATH", None)
    return env

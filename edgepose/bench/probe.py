"""What machine a benchmark ran on: CPU, board, OS, runtimes, governor, temperature.

Everything is read from files (``/proc``, ``/sys``, ``/etc``) below a root
folder, so a test can point :func:`probe_machine` at a fake tree (a Raspberry
Pi 5, a Jetson Orin). Nothing here imports an inference runtime: versions come
from the installed packages' metadata. Unreadable files give ``None``, never
an error: a probe must not stop a benchmark.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from edgepose.versions import installed_versions

__all__ = ["probe_machine", "read_temperatures", "runtime_versions", "ARM_CORES"]

#: ARM (implementer 0x41) and NVIDIA (0x4e) CPU part numbers of /proc/cpuinfo.
ARM_CORES: dict[tuple[int, int], str] = {
    (0x41, 0xd03): "Cortex-A53", (0x41, 0xd04): "Cortex-A35", (0x41, 0xd05): "Cortex-A55",
    (0x41, 0xd07): "Cortex-A57", (0x41, 0xd08): "Cortex-A72", (0x41, 0xd09): "Cortex-A73",
    (0x41, 0xd0a): "Cortex-A75", (0x41, 0xd0b): "Cortex-A76", (0x41, 0xd0c): "Neoverse-N1",
    (0x41, 0xd0d): "Cortex-A77", (0x41, 0xd0e): "Cortex-A76AE", (0x41, 0xd40): "Neoverse-V1",
    (0x41, 0xd41): "Cortex-A78", (0x41, 0xd42): "Cortex-A78AE", (0x41, 0xd44): "Cortex-X1",
    (0x41, 0xd46): "Cortex-A510", (0x41, 0xd47): "Cortex-A710", (0x41, 0xd48): "Cortex-X2",
    (0x41, 0xd49): "Neoverse-N2", (0x41, 0xd4b): "Cortex-A78C", (0x41, 0xd4d): "Cortex-A715",
    (0x41, 0xd4e): "Cortex-X3", (0x41, 0xd4f): "Neoverse-V2", (0x41, 0xd80): "Cortex-A520",
    (0x41, 0xd81): "Cortex-A720", (0x41, 0xd82): "Cortex-X4", (0x41, 0xc07): "Cortex-A7",
    (0x41, 0xc0f): "Cortex-A15", (0x41, 0xb76): "ARM1176",
    (0x4e, 0x004): "NVIDIA Carmel",
}

_RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime",
                     "openvino", "numpy", "opencv-python", "opencv-python-headless",
                     "opencv-contrib-python", "onnx", "rtmlib")


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text or None


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _cpuinfo(text: str | None) -> tuple[list[dict[str, str]], dict[str, str]]:
    """(one dict per processor block, the fields outside processor blocks)."""
    blocks: list[dict[str, str]] = []
    extra: dict[str, str] = {}
    current: dict[str, str] | None = None
    for line in (text or "").splitlines():
        if ":" not in line:
            current = None
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            current = {}
            blocks.append(current)
        if current is not None:
            current[key] = value
        else:
            extra[key] = value
    return blocks, extra


def _core_name(block: dict[str, str]) -> str | None:
    try:
        key = (int(block["CPU implementer"], 16), int(block["CPU part"], 16))
    except (KeyError, ValueError):
        return None
    return ARM_CORES.get(key, f"implementer {key[0]:#x} part {key[1]:#05x}")


def _cpu(root: Path, live: bool) -> dict[str, Any]:
    blocks, extra = _cpuinfo(_read(root, "proc/cpuinfo"))
    model = None
    for block in blocks:
        model = block.get("model name") or block.get("cpu model") or block.get("uarch")
        if model:
            break
    names = [n for n in (_core_name(b) for b in blocks) if n]
    if names:
        counts: dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        cores = " + ".join(f"{c}x {n}" for n, c in counts.items())
        model = cores if not model or model.startswith("ARMv") else f"{model} ({cores})"
    if not model:
        model = extra.get("Hardware") or (platform.processor() if live else None)
    logical = len(blocks) or (os.cpu_count() if live else None)
    usable = None
    if live and hasattr(os, "sched_getaffinity"):
        usable = len(os.sched_getaffinity(0))
    flags = set((blocks[0].get("flags") or blocks[0].get("Features") or "").split()) if blocks \
        else set()
    simd = [f for f in ("sse4_2", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                        "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16", "neon") if f in flags]
    if live:
        arch = platform.machine()
    elif any("CPU architecture" in b for b in blocks):
        arch = "aarch64" if blocks[0].get("CPU architecture") == "8" else "armv7l"
    elif "lm" in flags:
        arch = "x86_64"
    else:
        arch = None
    return {"model": model, "cores_logical": logical, "cores_usable": usable,
            "architecture": arch, "simd": simd}


def _board(root: Path) -> dict[str, Any]:
    model = (_clean(_read(root, "proc/device-tree/model"))
             or _clean(_read(root, "sys/firmware/devicetree/base/model")))
    if model is None:
        _, extra = _cpuinfo(_read(root, "proc/cpuinfo"))
        model = extra.get("Model")
    tegra = _clean(_read(root, "etc/nv_tegra_release"))
    l4t = None
    if tegra:
        m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)", tegra)
        l4t = f"R{m.group(1)}.{m.group(2)}" if m else tegra.splitlines()[0]
    if tegra or (model and "jetson" in model.lower()):
        kind = "jetson"
    elif model and "raspberry pi" in model.lower():
        kind = "raspberry_pi"
    else:
        kind = None
    if model is None:
        vendor = _clean(_read(root, "sys/class/dmi/id/sys_vendor"))
        product = _clean(_read(root, "sys/class/dmi/id/product_name"))
        model = " ".join(p for p in (vendor, product) if p) or None
    out: dict[str, Any] = {"model": model, "kind": kind, "l4t": l4t}
    throttled = _clean(_read(root, "sys/devices/platform/soc/soc:firmware/get_throttled"))
    if throttled is not None:
        out["throttled"] = throttled  # Raspberry Pi firmware flags; 0 = never throttled
    return out


def _os(root: Path, live: bool) -> dict[str, Any]:
    pretty = None
    for line in (_read(root, "etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip().strip('"')
    kernel = _clean(_read(root, "proc/sys/kernel/osrelease")) or (platform.release() if live
                                                                 else None)
    return {"name": pretty or (platform.system() if live else None), "kernel": kernel}


def _cpufreq(root: Path) -> dict[str, Any]:
    base = root / "sys/devices/system/cpu"
    governors: dict[str, int] = {}
    cur, top = [], []
    for cpu in sorted(base.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        gov = _clean(_read(cpu, "cpufreq/scaling_governor"))
        if gov:
            governors[gov] = governors.get(gov, 0) + 1
        if (v := _int(_read(cpu, "cpufreq/scaling_cur_freq"))) is not None:
            cur.append(v / 1e3)
        if (v := _int(_read(cpu, "cpufreq/cpuinfo_max_freq"))) is not None:
            top.append(v / 1e3)
    governor = None
    if governors:
        governor = (next(iter(governors)) if len(governors) == 1
                    else ", ".join(f"{g} ({n} cpus)" for g, n in governors.items()))
    return {"governor": governor,
            "cur_mhz": [round(v) for v in cur] or None,
            "max_mhz": max(top) if top else None}


def read_temperatures(root: str | os.PathLike = "/") -> list[dict[str, Any]]:
    """Every readable thermal zone: ``[{"zone", "type", "celsius"}]``,
    from ``/sys/class/thermal/thermal_zone*/temp`` (millidegrees)."""
    base = Path(root) / "sys/class/thermal"
    out = []
    zones = sorted(base.glob("thermal_zone*"),
                   key=lambda p: int(p.name[12:]) if p.name[12:].isdigit() else 0)
    for zone in zones:
        milli = _int(_read(zone, "temp"))
        if milli is None:
            continue
        out.append({"zone": zone.name, "type": _clean(_read(zone, "type")),
                    "celsius": milli / 1000.0})
    return out


def runtime_versions() -> dict[str, str]:
    """Installed versions of the runtimes and libraries a benchmark depends on
    (package metadata; nothing is imported)."""
    return installed_versions(_RUNTIME_PACKAGES)


def _edgepose() -> dict[str, Any]:
    import edgepose

    out: dict[str, Any] = {"version": edgepose.__version__, "git": None}
    here = Path(edgepose.__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            out["git"] = rev.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def probe_machine(root: str | os.PathLike = "/") -> dict[str, Any]:
    """Describes the machine.

    Args:
        root: the folder that holds ``proc``, ``sys`` and ``etc``; ``"/"``
            for this machine. With another root, facts that only the running
            system can give (the live architecture, usable cores, Python and
            package versions) still describe this process.

    Returns:
        ``{"cpu", "board", "os", "memory_mb", "load_avg", "cpufreq",
        "temperatures", "python", "runtimes", "edgepose"}``; missing facts are
        None. ``load_avg`` is the 1, 5 and 15 minute load average when
        probed: a busy machine gives noisy figures.
    """
    root = Path(root)
    live = root.resolve() == Path("/").resolve()
    meminfo = _read(root, "proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo, re.MULTILINE)
    load = (_read(root, "proc/loadavg") or "").split()[:3]
    try:
        load_avg = [float(v) for v in load] if len(load) == 3 else None
    except ValueError:
        load_avg = None
    return {
        "cpu": _cpu(root, live),
        "board": _board(root),
        "os": _os(root, live),
        "memory_mb": round(int(m.group(1)) / 1024) if m else None,
        "load_avg": load_avg,
        "cpufreq": _cpufreq(root),
        "temperatures": read_temperatures(root),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "runtimes": runtime_versions(),
        "edgepose": _edgepose(),
    }

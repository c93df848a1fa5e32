"""The benchmark document and its three views: plain text, JSON, markdown.

The JSON document (``SCHEMA``) is::

    {
      "schema": "edgepose-bench/1",
      "created": ISO 8601 UTC time,
      "command": the command line,
      "settings": {"runs", "warmup", "duration_s", "backends", "threads",
                   "detector", "detector_backend", "one_stage" (the one-stage
                   flags given, or null), "opencv_threads", "units": "ms",
                   "image": {"path", "sha256", "bytes", "width", "height"} or null,
                   "video": {"path", "sha256", "bytes", "width", "height", "frames",
                             "fps", "max_frames", "detect_every", "repeats"} or null},
      "machine": edgepose.bench.probe.probe_machine(),
      "models": {argument: {"name", "role", "path", "format", "size_bytes", "sha256",
                            "registry", "params", "gflops", "graph_count", "card"}},
      "results": [row, ...],
      "video": [video row, ...]
    }

A row (one model x backend x threads) has ``status`` ("ok", "skipped",
"error"), ``reason``, ``model``, ``detector``, ``backend``,
``detector_backend``, ``threads``; rows that ran also have ``runs``,
``warmup``, ``window_s``, ``load_s``, ``people``, ``people_range``,
``stages_ms`` (stage -> ``{"n", "p50", "p90", "p99", "mean", "min", "max"}``
for ``decode_image``, ``detector``, ``preprocess``, ``inference``,
``decode``, ``other`` and ``total``), ``fps``, ``peak_rss_mb``,
``rss_scope``, ``temperature_c`` (``{"start", "end"}``), ``drift`` and
``timeline`` (sustained runs only, else null). Every time is milliseconds.

A video row (``--video``: one model x backend x threads tracked through the
video) has the same identifying keys plus ``detect_every``; rows that ran
also have the fields of :class:`edgepose.video.pipeline.PipeliningReport`:
``frames``, ``serial_fps``, ``pipelined_fps``, ``speedup`` (median of
serial / pipelined time over back-to-back pairs), ``identical``,
``serial_ms``, ``pipelined_ms`` (wall time of each run), ``queue_size``,
``serial_stage_ms`` and ``pipelined_stage_ms`` (mean ms per frame of
``read``, ``detect``, ``pose``, ``track``).
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from edgepose.bench.runner import STAGES

__all__ = ["SCHEMA", "build_document", "machine_lines", "to_json", "to_markdown", "to_text"]

SCHEMA = "edgepose-bench/1"

_STAGE_LABELS = {"decode_image": "decode image", "detector": "detector",
                 "preprocess": "crop/preprocess", "inference": "inference",
                 "decode": "postprocess/decode", "other": "other", "total": "total"}


def build_document(*, command: str, settings: dict[str, Any], machine: dict[str, Any],
                   models: dict[str, dict[str, Any]], results: list[dict[str, Any]],
                   video: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON document of one benchmark (see the module docstring)."""
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "settings": settings,
        "machine": machine,
        "models": models,
        "results": results,
        "video": list(video or []),
    }


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


# --- formatting helpers -------------------------------------------------------------

def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def _mb(size: float | None) -> str:
    return "-" if size is None else f"{size / 1e6:.1f} MB"


def _count(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def _gflops(g: float | None) -> str:
    return "n/a" if g is None else f"{g:.2f}"


def _model_label(doc: dict[str, Any], arg: str | None) -> str:
    if arg is None:
        return "-"
    info = doc["models"].get(arg)
    if info is None:
        return Path(arg).name
    return info["registry"] or Path(info["path"]).name


def _threads(t: int | None) -> str:
    return "default" if t is None else str(t)


def _grid(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def _card_text(card: dict[str, Any]) -> str:
    spec = card.get("input", {})
    size = "x".join(str(v) for v in spec.get("size", []))
    return (f"{card.get('task')}/{card.get('head')} {card.get('keypoints') or ''} {size} "
            f"{spec.get('layout')} {spec.get('dtype')} {spec.get('color')}").replace("  ", " ")


def machine_lines(machine: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs describing the machine, for the text and markdown views."""
    cpu, board, osinfo = machine["cpu"], machine["board"], machine["os"]
    cores = f"{cpu.get('cores_logical')} logical cores"
    if cpu.get("cores_usable") is not None and cpu.get("cores_usable") != cpu.get("cores_logical"):
        cores += f", {cpu['cores_usable']} usable"
    lines = [("CPU", f"{cpu.get('model') or 'unknown'} ({cores}), {cpu.get('architecture')}"
                     + (f"; {' '.join(cpu['simd'])}" if cpu.get("simd") else ""))]
    if board.get("model") or board.get("kind"):
        text = board.get("model") or board.get("kind")
        if board.get("l4t"):
            text += f" (L4T {board['l4t']})"
        if board.get("throttled") is not None:
            text += f", firmware throttled flags {board['throttled']}"
        lines.append(("board", text))
    lines.append(("OS", f"{osinfo.get('name')}, kernel {osinfo.get('kernel')}"
                        + (f", {machine['memory_mb']} MB RAM" if machine.get("memory_mb") else "")))
    freq = machine.get("cpufreq") or {}
    gov = freq.get("governor") or "n/a (not readable)"
    if freq.get("max_mhz"):
        gov += f", max {freq['max_mhz']:.0f} MHz"
    temps = machine.get("temperatures") or []
    temp = (", ".join(f"{t['type'] or t['zone']} {t['celsius']:.1f} C" for t in temps)
            if temps else "n/a (no thermal zone readable)")
    lines.append(("governor", gov))
    lines.append(("temperature", temp))
    load = machine.get("load_avg")
    if load:
        cores_n = cpu.get("cores_usable") or cpu.get("cores_logical") or 1
        busy = "  (busy: other processes compete for the CPU; figures will be noisy)" \
            if load[0] > 0.5 * cores_n else ""
        lines.append(("load average", f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}{busy}"))
    runtimes = machine.get("runtimes") or {}
    lines.append(("software", f"{machine.get('python')}; "
                              + ", ".join(f"{k} {v}" for k, v in runtimes.items())))
    ep = machine.get("edgepose") or {}
    git = f" ({ep['git']})" if ep.get("git") else ""
    lines.append(("edgepose", f"{ep.get('version')}{git}"))
    return lines


def _settings_lines(doc: dict[str, Any]) -> list[tuple[str, str]]:
    s = doc["settings"]
    lines = []
    img = s.get("image")
    if img:
        timing = (f"{s['duration_s']:g} s sustained per configuration" if s.get("duration_s")
                  else f"{s['runs']} timed runs per configuration")
        lines += [("image", f"{img['path']} ({img['width']}x{img['height']}, "
                            f"sha256 {img['sha256'][:12]})"),
                  ("timing", f"{timing}, after {s['warmup']} warm-up runs; OpenCV threads "
                             f"{s.get('opencv_threads')}; times in ms")]
    vid = s.get("video")
    if vid:
        frames = vid["max_frames"] or vid["frames"] or "all"
        lines += [("video", f"{vid['path']} ({vid['width']}x{vid['height']}, "
                            f"sha256 {vid['sha256'][:12]}); {frames} frames per run, "
                            f"detector every {vid['detect_every']}, {vid['repeats']} serial/"
                            "pipelined pairs")]
    return lines


def _stage_rows(row: dict[str, Any]) -> list[list[str]]:
    rows = [["stage", "p50", "p90", "p99", "mean"]]
    for stage in (*STAGES, "total"):
        st = row["stages_ms"].get(stage)
        if st is None:
            continue
        rows.append([_STAGE_LABELS[stage], _ms(st["p50"]), _ms(st["p90"]), _ms(st["p99"]),
                     _ms(st["mean"])])
    return rows


def _threads_text(doc: dict[str, Any], t: int | None) -> str:
    if t is None:
        return "the runtime's default threads"
    text = f"{t} thread{'s' if t != 1 else ''}"
    cpu = doc["machine"]["cpu"]
    cores = cpu.get("cores_usable") or cpu.get("cores_logical")
    if cores and t > cores:
        text += f" (more than the {cores} usable cores)"
    return text


def _config_title(doc: dict[str, Any], row: dict[str, Any]) -> str:
    title = (f"{_model_label(doc, row['model'])} on {row['backend'] or '(by file type)'}, "
             f"{_threads_text(doc, row['threads'])}")
    if row.get("detector"):
        title += (f", detector {_model_label(doc, row['detector'])} on "
                  f"{row.get('detector_backend') or '(by file type)'}")
    return title


def _drift_text(d: dict[str, Any] | None) -> str | None:
    if not d:
        return None
    change = "n/a" if d.get("change_pct") is None else f"{d['change_pct']:+.1f}%"
    return (f"drift ({d['label']}, {d['window_s']:.0f} s window): total p50 "
            f"{_ms(d['first_p50_ms'])} -> {_ms(d['last_p50_ms'])} ms ({change})")


def _temp_text(t: dict[str, Any] | None) -> str | None:
    if not t or (t.get("start") is None and t.get("end") is None):
        return None
    return f"temperature {t['start']:.1f} -> {t['end']:.1f} C"


# --- views --------------------------------------------------------------------------

def to_text(doc: dict[str, Any]) -> str:
    """A plain-text report for people: machine, models, one stage table per
    configuration, then a summary."""
    out = [f"edgepose-bench ({doc['created']})", ""]
    for label, text in machine_lines(doc["machine"]) + _settings_lines(doc):
        out.append(f"{label + ':':13} {text}")
    out += ["", "models"]
    rows = [["model", "role", "format", "size", "params", "GFLOPs", "sha256", "card"]]
    for info in doc["models"].values():
        rows.append([info["registry"] or Path(info["path"]).name, info["role"], info["format"],
                     _mb(info["size_bytes"]), _count(info["params"]), _gflops(info["gflops"]),
                     info["sha256"][:12], _card_text(info["card"])])
    out += ["  " + line for line in _grid(rows, {3, 4, 5})]
    notes = [f"  {info['registry'] or Path(info['path']).name}: {info['graph_count']['note']}"
             for info in doc["models"].values() if info["graph_count"].get("note")]
    out += notes
    out.append("  (GFLOPs per image at batch 1, a multiply-add = 2 FLOPs; full sha256 and "
               "cards in the JSON)")
    for row in doc["results"]:
        out.append("")
        out.append(_config_title(doc, row))
        if row["status"] != "ok":
            out.append(f"  {row['status']}: {row['reason']}")
            continue
        people = f"{row['people']} {'person' if row['people'] == 1 else 'people'}"
        out.append(f"  {people}, {row['runs']} runs"
                   + (f" (people varied {row['people_range'][0]}-{row['people_range'][1]})"
                      if row["people_range"][0] != row["people_range"][1] else ""))
        out += ["  " + line for line in _grid(_stage_rows(row), {1, 2, 3, 4})]
        scope = "this configuration" if row["rss_scope"] == "configuration" else "whole process"
        extra = [f"{row['fps']:.1f} FPS" if row.get("fps") else None,
                 f"peak RSS {row['peak_rss_mb']:.0f} MB ({scope})"
                 if row.get("peak_rss_mb") is not None else None,
                 f"load {row['load_s']:.2f} s", _temp_text(row.get("temperature_c"))]
        out.append("  " + ", ".join(e for e in extra if e))
        if (d := _drift_text(row.get("drift"))):
            out.append("  " + d)
        if row["people"] == 0:
            out.append("  warning: no person found in the image: the pose stages did not run. "
                       "Pass --image with people in it.")
    ok = [r for r in doc["results"] if r["status"] == "ok"]
    if len(ok) > 1:
        out += ["", "summary (total ms per frame)"]
        rows = [["model", "detector", "backend", "threads", "people", "p50", "p90", "p99",
                 "FPS", "peak RSS"]]
        for r in ok:
            t = r["stages_ms"]["total"]
            rows.append([_model_label(doc, r["model"]), _model_label(doc, r.get("detector")),
                         r["backend"], _threads(r["threads"]), str(r["people"]), _ms(t["p50"]),
                         _ms(t["p90"]), _ms(t["p99"]), f"{r['fps']:.1f}",
                         f"{r['peak_rss_mb']:.0f} MB"])
        out += ["  " + line for line in _grid(rows, {3, 4, 5, 6, 7, 8, 9})]
    out += _video_text(doc)
    return "\n".join(out) + "\n"


_FRAME_STAGES = ("read", "detect", "pose", "track")


def _video_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = [["model", "detector", "backend", "threads", "every", "frames", "serial FPS",
             "pipelined FPS", "gain", *(f"{s} ms" for s in _FRAME_STAGES)]]
    for r in doc["video"]:
        if "speedup" not in r:
            continue
        st = r["serial_stage_ms"]
        rows.append([_model_label(doc, r["model"]), _model_label(doc, r.get("detector")),
                     r["backend"], _threads(r["threads"]), str(r["detect_every"]),
                     str(r["frames"]), f"{r['serial_fps']:.1f}", f"{r['pipelined_fps']:.1f}",
                     f"{r['speedup']:.2f}x", *(_ms(st.get(s)) for s in _FRAME_STAGES)])
    return rows


def _video_text(doc: dict[str, Any]) -> list[str]:
    if not doc["video"]:
        return []
    out = ["", "video: tracked serially, then pipelined (reading and detection on worker "
               "threads); stage ms per frame of the serial runs"]
    rows = _video_rows(doc)
    if len(rows) > 1:
        out += ["  " + line for line in _grid(rows, set(range(3, len(rows[0]))))]
    for r in doc["video"]:
        if r["status"] != "ok":
            out.append(f"  {_config_title(doc, r)}: {r['status']}: {r['reason']}")
    return out


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(doc: dict[str, Any]) -> str:
    """A markdown report (for a README or an issue)."""
    cpu = doc["machine"]["cpu"]
    board = doc["machine"]["board"].get("model")
    out = [f"## edgepose-bench: {board or cpu.get('model') or 'unknown machine'}", "",
           "| | |", "|---|---|"]
    for label, text in machine_lines(doc["machine"]) + _settings_lines(doc):
        out.append(f"| {label} | {_md_escape(text)} |")
    out += ["", "### Models", "",
            "| model | role | format | size | params | GFLOPs | sha256 |",
            "|---|---|---|---:|---:|---:|---|"]
    for info in doc["models"].values():
        out.append(f"| {info['registry'] or Path(info['path']).name} | {info['role']} | "
                   f"{info['format']} | {_mb(info['size_bytes'])} | {_count(info['params'])} | "
                   f"{_gflops(info['gflops'])} | `{info['sha256'][:16]}` |")
    stage_cols = [s for s in STAGES if any(r["status"] == "ok" and s in r["stages_ms"]
                                             for r in doc["results"])]
    if doc["results"]:
        out += ["", "### Latency per frame (ms; stages p50, total p50 / p90 / p99)", "",
                "| model | detector | backend | threads | people | "
                + " | ".join(_STAGE_LABELS[s] for s in stage_cols)
                + " | total p50 | p90 | p99 | FPS | peak RSS |",
                "|---|---|---|---:|---:|" + "---:|" * (len(stage_cols) + 6)]
    skipped = []
    for r in doc["results"]:
        if r["status"] != "ok":
            skipped.append(r)
            continue
        st, t = r["stages_ms"], r["stages_ms"]["total"]
        cells = [_md_escape(_model_label(doc, r["model"])),
                 _md_escape(_model_label(doc, r.get("detector"))),
                 r["backend"], _threads(r["threads"]), str(r["people"])]
        cells += [_ms(st[s]["p50"]) if s in st else "-" for s in stage_cols]
        cells += [_ms(t["p50"]), _ms(t["p90"]), _ms(t["p99"]), f"{r['fps']:.1f}",
                  f"{r['peak_rss_mb']:.0f} MB"]
        out.append("| " + " | ".join(cells) + " |")
    drifts = [(r, _drift_text(r.get("drift"))) for r in doc["results"] if r.get("drift")]
    if drifts:
        out += ["", "### Sustained runs", ""]
        out += [f"- {_md_escape(_config_title(doc, r))}: {d}" for r, d in drifts]
    rows = _video_rows(doc)
    if len(rows) > 1:
        out += ["", "### Video: serial vs pipelined tracking (FPS; stage ms per frame, serial)",
                "", "| " + " | ".join(rows[0]) + " |", "|---|---|---|" + "---:|" * (len(rows[0]) - 3)]
        out += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows[1:]]
    skipped += [r for r in doc["video"] if r["status"] != "ok"]
    if skipped:
        out += ["", "Not run:", ""]
        out += [f"- {_md_escape(_config_title(doc, r))}: {r['status']}: "
                f"{_md_escape(str(r['reason']))}" for r in skipped]
    return "\n".join(out) + "\n"

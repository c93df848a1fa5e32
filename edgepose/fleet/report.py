"""The device lab's one report: JSON document, plain text, markdown (the
picture is :mod:`edgepose.fleet.plot`).

The JSON document (``SCHEMA``) is the bench's (:mod:`edgepose.bench.report`)
with the lab in place of one machine::

    {
      "schema": "edgepose-lab-bench/1",
      "created", "command", "settings" (the bench's, plus "ap_tolerance" and
          "accuracy": {"annotations", "images", "count"} or null),
      "scheduler": the scheduler's address,
      "versions": {"client", "workers", "mismatches"} (edgepose.fleet.cluster),
      "workers": {name: {"address", "status" ("done", "left", "running"),
                         "done", "total", "note", "machine": probe_machine(),
                         "models": {argument: how the device has it: "lab cache",
                                    "registry", "model dir", "mirror" or "shipped"}}},
      "models": {argument: describe_model(...)},
      "results": [row, ...],
      "choice": {name: row index in "results" or null}
    }

A row is the bench's row plus ``worker`` (the device's name), ``index``
(the configuration's position in the sweep), ``ap``, ``ap_mode``,
``ap_images``, ``ap_error``, ``started_at`` and ``ended_at`` (the worker's
Unix time when it began and ended the configuration). ``choice`` is each device's fastest
configuration (total p50) among those whose AP is within ``ap_tolerance``
of that device's best AP (absolute AP points); without AP, its fastest.

The rows are also appended, as they arrive, to a JSON-lines file
(:func:`append_jsonl`): a first ``{"kind": "lab", ...}`` line with the
workers and their probes, then one ``{"kind": "row", ...}`` line per row.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from edgepose.bench.report import _grid, _md_escape, _model_label, _ms, _threads

__all__ = ["SCHEMA", "DEFAULT_AP_TOLERANCE", "build_lab_document", "choose", "append_jsonl",
           "to_json", "to_text", "to_markdown", "config_label", "device_line"]

SCHEMA = "edgepose-lab-bench/1"

#: AP points a configuration may lose against the device's best and still be chosen.
DEFAULT_AP_TOLERANCE = 0.02


def _p50(row: dict[str, Any]) -> float:
    return row["stages_ms"]["total"]["p50"]


def choose(rows: list[dict[str, Any]], ap_tolerance: float = DEFAULT_AP_TOLERANCE
           ) -> int | None:
    """The position in ``rows`` (one device's) of the fastest configuration
    whose AP is within ``ap_tolerance`` of the best AP; without AP, of the
    fastest; None when no row ran.

    Args:
        rows: result rows of one device.
        ap_tolerance: AP points (0-1 scale) below the best still accepted.
    """
    ok = [(i, r) for i, r in enumerate(rows) if r["status"] == "ok"]
    if not ok:
        return None
    scored = [(i, r) for i, r in ok if r.get("ap") is not None]
    if scored:
        best = max(r["ap"] for _, r in scored)
        ok = [(i, r) for i, r in scored if r["ap"] >= best - ap_tolerance - 1e-12]
    return min(ok, key=lambda ir: _p50(ir[1]))[0]


def build_lab_document(*, command: str, settings: dict[str, Any], scheduler: str,
                       versions: dict[str, Any], workers: dict[str, dict[str, Any]],
                       models: dict[str, dict[str, Any]], results: list[dict[str, Any]],
                       ap_tolerance: float = DEFAULT_AP_TOLERANCE) -> dict[str, Any]:
    """The lab's JSON document (see the module docstring); the rows are
    sorted by device, then configuration."""
    rows = sorted(results, key=lambda r: (r["worker"], r["index"]))
    choice: dict[str, int | None] = {}
    for name in workers:
        mine = [i for i, r in enumerate(rows) if r["worker"] == name]
        pick = choose([rows[i] for i in mine], ap_tolerance)
        choice[name] = None if pick is None else mine[pick]
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "settings": settings | {"ap_tolerance": ap_tolerance},
        "scheduler": scheduler,
        "versions": versions,
        "workers": workers,
        "models": models,
        "results": rows,
        "choice": choice,
    }


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Appends one JSON record as a line to ``path`` and flushes it to disk."""
    import os

    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


# --- views --------------------------------------------------------------------------

def config_label(doc: dict[str, Any], row: dict[str, Any]) -> str:
    """``model [+ detector] backend tN``: a configuration in a few words."""
    label = _model_label(doc, row["model"])
    if row.get("detector"):
        label += f" + {_model_label(doc, row['detector'])}"
    return f"{label} {row.get('backend') or 'auto'} t{_threads(row.get('threads'))}"


def device_line(machine: dict[str, Any] | None) -> str:
    """A device's hardware in one line: CPU, cores, architecture, board, OS, RAM."""
    if not machine:
        return "(no probe)"
    cpu, board, osinfo = machine.get("cpu", {}), machine.get("board", {}), machine.get("os", {})
    cores = cpu.get("cores_usable") or cpu.get("cores_logical")
    parts = [f"{cpu.get('model') or 'unknown CPU'} ({cores} cores, {cpu.get('architecture')})"]
    if board.get("model"):
        parts.append(board["model"])
    parts.append(f"{osinfo.get('name')}")
    if machine.get("memory_mb"):
        parts.append(f"{machine['memory_mb']} MB RAM")
    return ", ".join(parts)


def _status(info: dict[str, Any]) -> str:
    text = (info["note"] if info["status"] == "left"
            else f"{info['done']} of {info['total']} configurations")
    shipped = [Path(a).name for a, how in (info.get("models") or {}).items() if how == "shipped"]
    if shipped:
        text += f" (shipped to it: {', '.join(shipped)})"
    return text


def _ap(row: dict[str, Any]) -> str:
    if row.get("ap") is not None:
        return f"{row['ap']:.3f}"
    return "err" if row.get("ap_error") else "-"


def _result_cells(doc: dict[str, Any], i: int, row: dict[str, Any]) -> list[str]:
    chosen = doc["choice"].get(row["worker"]) == i
    t = row["stages_ms"]["total"]
    return [row["worker"], ("* " if chosen else "") + config_label(doc, row), _ms(t["p50"]),
            _ms(t["p90"]), f"{row['fps']:.1f}", _ap(row)]


def _not_run(doc: dict[str, Any]) -> list[str]:
    return [f"{r['worker']}: {config_label(doc, r)}: {r['status']}: {r['reason']}"
            for r in doc["results"] if r["status"] != "ok"]


def _choice_note(doc: dict[str, Any]) -> str:
    tol = doc["settings"]["ap_tolerance"]
    has_ap = any(r.get("ap") is not None for r in doc["results"])
    return (f"the device's fastest configuration with an AP within {tol:g} of its best"
            if has_ap else "the device's fastest configuration (no AP measured)")


def to_text(doc: dict[str, Any]) -> str:
    """The report for a terminal: devices, one table of every configuration
    on every device, what did not run."""
    out = [f"edgepose lab bench ({doc['created']}), scheduler {doc['scheduler']}", "",
           "devices"]
    for name, info in doc["workers"].items():
        out.append(f"  {name}: {device_line(info.get('machine'))}; {_status(info)}")
    mism = doc["versions"].get("mismatches") or {}
    for name, diffs in mism.items():
        out.append(f"  warning: {name} runs other versions: " + ", ".join(
            f"{p} {d['got']} (expected {d['expected']})" for p, d in diffs.items()))
    ok = [(i, r) for i, r in enumerate(doc["results"]) if r["status"] == "ok"]
    if ok:
        out += ["", "total ms per frame"]
        rows = [["device", "configuration", "p50", "p90", "FPS", "AP"]]
        rows += [_result_cells(doc, i, r) for i, r in ok]
        out += ["  " + line for line in _grid(rows, {2, 3, 4, 5})]
        out.append("  * = " + _choice_note(doc))
    failed = _not_run(doc)
    if failed:
        out += ["", "not run"] + [f"  {line}" for line in failed]
    ap_errors = [f"  {r['worker']}: {config_label(doc, r)}: {r['ap_error']}"
                 for r in doc["results"] if r.get("ap_error")]
    if ap_errors:
        out += ["", "AP not measured"] + ap_errors
    return "\n".join(out) + "\n"


def to_markdown(doc: dict[str, Any]) -> str:
    """The report in markdown (for a README or an issue)."""
    out = [f"## edgepose lab bench: {len(doc['workers'])} devices", "",
           (f"`{_md_escape(doc['command'])}` ({doc['created']}, scheduler "
            f"`{doc['scheduler']}`)"), "", "### Devices", "",
           "| device | hardware | software | status |", "|---|---|---|---|"]
    for name, info in doc["workers"].items():
        m = info.get("machine") or {}
        soft = ", ".join(f"{k} {v}" for k, v in (m.get("runtimes") or {}).items())
        soft = f"{m.get('python')}; edgepose {(m.get('edgepose') or {}).get('version')}; {soft}"
        out.append(f"| {_md_escape(name)} | {_md_escape(device_line(m))} | {_md_escape(soft)} "
                   f"| {_md_escape(_status(info))} |")
    mism = doc["versions"].get("mismatches") or {}
    if mism:
        out += ["", "Versions differ (run with --allow-mixed-versions):", ""]
        out += [f"- {_md_escape(n)}: " + ", ".join(
            f"{p} {d['got']} (expected {d['expected']})" for p, d in diffs.items())
            for n, diffs in mism.items()]
    ok = [(i, r) for i, r in enumerate(doc["results"]) if r["status"] == "ok"]
    if ok:
        out += ["", "### Latency per frame (total ms) and accuracy", "",
                "| device | configuration | p50 | p90 | FPS | AP |",
                "|---|---|---:|---:|---:|---:|"]
        out += ["| " + " | ".join(_md_escape(c) for c in _result_cells(doc, i, r)) + " |"
                for i, r in ok]
        out += ["", f"`*` marks {_choice_note(doc)}."]
    failed = _not_run(doc)
    if failed:
        out += ["", "Not run:", ""] + [f"- {_md_escape(line)}" for line in failed]
    return "\n".join(out) + "\n"

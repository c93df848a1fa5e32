"""``edgepose bench --cluster``'s command side: opens the lab, runs the sweep
(:func:`edgepose.fleet.bench.run_lab_bench`), writes rows as they arrive and
the one report at the end.

With ``--json PATH`` the rows are appended to ``PATH.partial.jsonl`` as
they arrive (:func:`edgepose.fleet.report.append_jsonl`), and that file is
removed once ``PATH`` is written: a run that is interrupted or crashes keeps
everything measured so far. Each row is also one note on stderr (unless
``--quiet``).

Exit status: 0 when every configuration ran (or was skipped) on every
device; 1 when one failed, or a device left before the end (the report says
which and after how many configurations); the errors of
:func:`edgepose.fleet.flags.open_lab` before any work.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from edgepose.bench.runner import BenchConfig, RunSettings

__all__ = ["run_lab_command"]


def _deliver_models(lab, described: dict[str, dict[str, Any]], note
                    ) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Makes every model reach every device (by name and sha256, shipped
    when a device lacks it). Returns (argument -> ModelRef, worker name ->
    {argument: how the device has it})."""
    from edgepose.fleet.models import DEFAULT_MAX_SHIP_MB, deliver_model, describe_model

    refs: dict[str, Any] = {}
    delivered: dict[str, dict[str, str]] = {w.name: {} for w in lab.workers}
    names = {w.address: w.name for w in lab.workers}
    for arg, info in described.items():
        ref, paths = describe_model(arg, info["role"])
        refs[arg] = ref
        how = deliver_model(lab.client, ref, paths, list(names), max_ship_mb=DEFAULT_MAX_SHIP_MB)
        for address, place in how.items():
            delivered[names[address]][arg] = place
        shipped = sorted(names[a] for a, place in how.items() if place == "shipped")
        if shipped:
            note(f"(shipped {ref.name}, {ref.size / 1e6:.1f} MB, to {', '.join(shipped)}: "
                 "verified by sha256 and kept in their lab cache)")
    return refs, delivered


def run_lab_command(args: argparse.Namespace, *, configs: list[BenchConfig],
                    described: dict[str, dict[str, Any]], image_bytes: bytes,
                    settings: RunSettings, run_settings: dict[str, Any], out: TextIO,
                    json_path: Path | None) -> int:
    """Runs the bench's configurations on the lab of ``args.cluster``.

    Args:
        args: the bench's parsed arguments (with the lab flags).
        configs: the sweep (model x backend x threads).
        described: argument -> ``describe_model`` of every model and detector.
        image_bytes: the image to time.
        settings: runs, warm-up, duration.
        run_settings: the report's ``settings``.
        out: where the text report goes.
        json_path: ``--json`` (None, or ``-`` for stdout, handled by the caller's ``args.json``).

    Returns:
        the exit status.
    """
    from edgepose.fleet import report
    from edgepose.fleet.bench import accuracy_payload, run_lab_bench
    from edgepose.fleet.cluster import probe_workers
    from edgepose.fleet.flags import open_lab

    accuracy, acc_info = None, None
    if args.annotations is not None:
        accuracy = accuracy_payload(args.annotations, args.images)
        acc_info = {"annotations": str(args.annotations), "images": str(args.images),
                    "count": len(accuracy["images"])}
    command = getattr(args, "command_line", "edgepose-bench")
    tolerance = report.DEFAULT_AP_TOLERANCE if args.ap_tolerance is None else args.ap_tolerance
    partial = None
    if json_path is not None and args.json != "-":
        partial = json_path.with_name(json_path.name + ".partial.jsonl")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)

    def note(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    with open_lab(args, quiet=args.quiet) as lab:
        probes = probe_workers(lab.client, lab.workers)
        refs, delivered = _deliver_models(lab, described, note)
        note(f"(lab {lab.address}: {len(lab.workers)} device(s), "
             f"{', '.join(w.name for w in lab.workers)}; {len(configs)} configuration(s) each, "
             "one at a time per device)")
        if partial is not None:
            report.append_jsonl(partial, {"kind": "lab", "scheduler": lab.address,
                                          "command": command,
                                          "workers": {w.name: {"address": w.address,
                                                               "machine": probes.get(w.name)}
                                                      for w in lab.workers}})
        total = len(configs) * len(lab.workers)
        arrived = [0]

        def on_row(row: dict[str, Any]) -> None:
            arrived[0] += 1
            if partial is not None:
                report.append_jsonl(partial, {"kind": "row"} | row)
            p50 = (f"{row['stages_ms']['total']['p50']:.2f} ms p50" if row["status"] == "ok"
                   else f"{row['status']}: {row['reason']}")
            ap = f", AP {row['ap']:.3f}" if row.get("ap") is not None else ""
            note(f"[{arrived[0]}/{total}] {row['worker']}: {Path(row['model']).name} "
                 f"{row.get('backend') or 'auto'} threads={row.get('threads') or 'default'}: "
                 f"{p50}{ap}")

        def on_event(kind: str, info: dict[str, Any]) -> None:
            if kind == "left":
                note(f"warning: device {info['worker']} left the lab ({info['note']}); the "
                     "others go on")

        run = run_lab_bench(lab.client, lab.workers, configs, models=refs,
                            image_bytes=image_bytes, settings=settings, accuracy=accuracy,
                            on_row=on_row, on_event=on_event)
        workers = {name: info | {"machine": probes.get(name), "models": delivered[name]}
                   for name, info in run.devices.items()}
        doc = report.build_lab_document(
            command=command, settings=run_settings | {"accuracy": acc_info},
            scheduler=lab.address, versions=lab.versions.to_dict(), workers=workers,
            models=described, results=run.rows, ap_tolerance=tolerance)
    out.write(report.to_text(doc))
    out.flush()
    if json_path is not None:
        text = report.to_json(doc)
        if args.json == "-":
            sys.stdout.write(text)
        else:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(text)
            if partial is not None:
                partial.unlink(missing_ok=True)
            note(f"wrote {json_path}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report.to_markdown(doc))
        note(f"wrote {args.markdown}")
    if args.plot is not None:
        from edgepose.fleet.plot import plot_lab

        if any(r["status"] == "ok" for r in doc["results"]):
            plot_lab(doc, args.plot)
            note(f"wrote {args.plot}")
        else:
            note(f"(--plot {args.plot}: no configuration ran, nothing to draw)")
    left = any(info["status"] == "left" for info in doc["workers"].values())
    return 1 if left or any(r["status"] == "error" for r in doc["results"]) else 0

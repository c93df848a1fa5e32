"""``edgepose models list | info NAME | pull NAME... | import PATH [--name N] |
verify [--remove-bad]``: the model registry and cache (:mod:`edgepose.registry`)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from edgepose._cli import (UsageError, add_debug_flag, add_json_flag, add_quiet_flag,
                           check_output_file, error_line)
from edgepose.progress import ProgressBar

__all__ = ["add_models_parser"]


def _size_text(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def _store():
    from edgepose.registry import ModelStore

    return ModelStore.from_env()


def _text_out(args: argparse.Namespace):
    """Where the human-readable text goes: stderr when ``--json -`` takes stdout.
    Checks a ``--json`` file path first."""
    json_path = getattr(args, "json", None)
    if json_path not in (None, "-"):
        check_output_file(json_path, "--json")
    return sys.stderr if json_path == "-" else sys.stdout


def _write_json(args: argparse.Namespace, doc: dict) -> None:
    """Writes ``doc`` where ``--json`` says (nothing without it)."""
    json_path = getattr(args, "json", None)
    if json_path is None:
        return
    text = json.dumps(doc, indent=2)
    if json_path == "-":
        print(text)
    else:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text + "\n", encoding="utf-8")


def _entry(store, name: str):
    """The registry entry of ``name``; an unknown name is a usage error."""
    try:
        return store.registry.get(name)
    except ValueError as exc:  # an unknown name: the command line is wrong
        raise UsageError(str(exc)) from None


def _where_text(store) -> str:
    from edgepose.registry import MIRROR_ENV, MODEL_DIR_ENV

    model_dir = str(store.model_dir) if store.model_dir else f"none ({MODEL_DIR_ENV} not set)"
    mirror = store.mirror or f"none ({MIRROR_ENV} not set)"
    offline = "  [offline]" if store.offline else ""
    return f"cache: {store.models_dir}\nmodel dir: {model_dir}\nmirror: {mirror}{offline}"


def _local_status(store, entry) -> str:
    if store.expected_sha256(entry) is None:
        return "needs import"
    local = store.local_path(entry)
    if local is not None:
        return "cached" if local[0] == "cache" else "model dir"
    if entry.url is None:
        return "- (no upstream)"
    return "-"


def models_list(args: argparse.Namespace) -> int:
    store = _store()
    out = _text_out(args)
    print(_where_text(store), file=out)
    print(file=out)
    rows = [("NAME", "TASK", "HEAD", "FORMAT", "SIZE", "LICENSE", "LOCAL")]
    records = []
    for entry in store.registry:
        size = entry.size or store.expected_size(entry)
        rows.append((entry.name, entry.task, entry.head, entry.format, _size_text(size),
                     entry.license, _local_status(store, entry)))
        local = store.local_path(entry)
        records.append({"name": entry.name, "task": entry.task, "head": entry.head,
                        "format": entry.format, "size_bytes": size,
                        "status": _local_status(store, entry),
                        "path": str(local[1]) if local else None,
                        "license": entry.license})
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)
    copyleft = [e.name for e in store.registry if e.license.startswith(("AGPL", "GPL"))]
    if copyleft:
        print(f"Copyleft (AGPL) weights, recognised but never fetched: {', '.join(copyleft)}; "
              "their licence binds your use and distribution (edgepose models info NAME).",
              file=out)
    _write_json(args, {"cache": str(store.models_dir),
                       "model_dir": str(store.model_dir) if store.model_dir else None,
                       "mirror": store.mirror or None, "offline": bool(store.offline),
                       "models": records})
    return 0


def models_info(args: argparse.Namespace) -> int:
    store = _store()
    entry = _entry(store, args.name)
    out = _text_out(args)
    expected = store.expected_sha256(entry)
    lines = [entry.name, f"  {entry.description}"]

    def field(key: str, value: object) -> None:
        lines.append(f"  {key:<12} {value}")

    field("task", f"{entry.task}, head {entry.head}, keypoints {entry.keypoints or '-'}"
          + (f", input {entry.input_hw[0]}x{entry.input_hw[1]}" if entry.input_hw else ""))
    field("preset", entry.preset or "none (the card comes from the file, or edgepose has "
          "none for it yet)")
    size = entry.size or store.expected_size(entry)
    field("file", f"{entry.file} ({size} bytes)" if size else entry.file)
    if entry.sha256 is not None:
        field("sha256", entry.sha256)
    elif expected is not None:
        record = store.imported(entry) or {}
        field("sha256", f"{expected} (not pinned by edgepose: imported by you from "
              f"{record.get('imported_from', '?')})")
    else:
        field("sha256", "unknown: this edgepose release has not pinned it")
    field("licence", entry.license)
    if entry.archive is not None:
        field("upstream", f"{entry.url}")
        archive = entry.archive
        field("archive", f"{archive.file}, holding {archive.member} (extracted into the cache "
              f"as {entry.file}); archive sha256 {archive.sha256 or 'unknown'}")
    else:
        field("upstream", entry.url or "none: edgepose does not download it (a conversion "
              "with no public release, or weights under a licence edgepose does not "
              "distribute); it resolves only from the model dir, the cache or the mirror")
    field("source", entry.source)
    if entry.note:
        field("note", entry.note)
    local = store.local_path(entry)
    field("local", f"{local[1]} ({local[0]})" if local else "none")
    if expected is None:
        lines += [
            "",
            f"  edgepose will not use {entry.name} until you vouch for a copy: its sha256 could",
            "  not be pinned in this release, and edgepose uses no file it cannot verify.",
            f"  Download {entry.url or entry.file}, check it, then run",
            f"      edgepose models import FILE --name {entry.name}",
            "  (FILE: the zip or the extracted .onnx). This copies the model into the cache and",
            "  records its sha256 in",
            f"      {store.cache_dir / 'imported.json'}",
            "  which later copies (model dir, mirror) must match.",
        ]
    print("\n".join(lines), file=out)
    _write_json(args, {**dataclasses.asdict(entry), "expected_sha256": expected,
                       "local": str(local[1]) if local else None,
                       "local_origin": local[0] if local else None})
    return 0


def models_pull(args: argparse.Namespace) -> int:
    store = _store()
    for name in args.names:
        _entry(store, name)  # unknown names fail before any download
    for name in args.names:
        bar = ProgressBar(name, enabled=not args.quiet)
        try:
            found = store.pull(name, progress=bar, force=args.force)
        finally:
            bar.close()
        origin = "already cached" if found.origin == "cache" else f"from {found.detail}"
        print(f"{name}: {found.path} ({origin}, sha256 verified)")
    return 0


def models_import(args: argparse.Namespace) -> int:
    store = _store()
    found = store.import_file(args.path, name=args.name)
    print(f"{found.entry.name}: imported {args.path} -> {found.path} (sha256 "
          f"{store.expected_sha256(found.entry)})")
    return 0


def models_verify(args: argparse.Namespace) -> int:
    store = _store()
    out = _text_out(args)
    results = store.verify(remove_bad=args.remove_bad)
    bad = sum(r.status in ("mismatch", "partial") for r in results)
    _write_json(args, {"cache": str(store.models_dir), "bad": bad, "files": [
        {"path": str(r.path), "name": r.entry.name if r.entry else None, "status": r.status,
         "expected_sha256": r.expected, "actual_sha256": r.actual, "removed": r.removed}
        for r in results]})
    if not results:
        print(f"{store.models_dir}: empty", file=out)
        return 0
    for r in results:
        name = r.entry.name if r.entry else "-"
        removed = " (removed)" if r.removed else ""
        if r.status == "ok":
            line = f"ok        {name:<34} {r.path.name}"
        elif r.status == "mismatch":
            line = (f"MISMATCH  {name:<34} {r.path.name}: sha256 {r.actual}, expected "
                    f"{r.expected}{removed}")
        elif r.status == "partial":
            line = f"PARTIAL   {'-':<34} {r.path.name}: an interrupted download{removed}"
        elif r.status == "unpinned":
            line = (f"unpinned  {name:<34} {r.path.name}: no sha256 to check against "
                    f"(edgepose models import {r.path} --name {name})")
        else:
            line = f"unknown   {'-':<34} {r.path.name}: not a registry file"
        print(line, file=out)
    if bad and not args.remove_bad:
        error_line("edgepose", f"{bad} bad file(s): `edgepose models verify --remove-bad` "
                   "removes them.")
    return 1 if bad and not args.remove_bad else 0


def add_models_parser(sub) -> None:
    """Adds ``models`` and its sub-commands to the sub-parsers ``sub``."""
    p = sub.add_parser("models", help="list, fetch, import and verify models by name",
                       description="The model registry and cache. Environment: EDGEPOSE_CACHE "
                       "(cache folder), EDGEPOSE_MODEL_DIR (your model files), EDGEPOSE_MIRROR "
                       "(a folder or an http(s) base URL that holds model files), "
                       "EDGEPOSE_OFFLINE=1 (no network).")
    add_debug_flag(p, sub=True)
    msub = p.add_subparsers(dest="models_command", required=True)
    q = msub.add_parser("list", help="every known model and whether it is available locally")
    add_json_flag(q, "the list (name, task, head, format, size, status, local path)")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_list)
    q = msub.add_parser("info", help="everything about one model")
    q.add_argument("name")
    add_json_flag(q, "the registry entry, its expected sha256 and local copy")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_info)
    q = msub.add_parser("pull", help="fetch models into the cache (mirror, then upstream)")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.add_argument("--force", action="store_true", help="fetch again even if cached")
    add_quiet_flag(q, help="no progress bar")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_pull)
    q = msub.add_parser("import", help="copy a model file you have into the cache "
                        "(recognised by its sha256, or named with --name)")
    q.add_argument("path")
    q.add_argument("--name", help="the registry name; needed for models without a pinned "
                   "sha256 (rtmpose-*), whose hash you then vouch for")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_import)
    q = msub.add_parser("verify", help="hash every cached file again")
    q.add_argument("--remove-bad", action="store_true",
                   help="delete files with a wrong sha256 and leftover partial downloads")
    add_json_flag(q, "each file's status (ok, mismatch, partial, unpinned, unknown)",
                  help="write each file's status as JSON to PATH ('-': stdout; the lines then "
                       "go to stderr)")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_verify)


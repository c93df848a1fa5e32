"""A card fuzzer: hostile model cards in real model files, run end to end.

Random cards (wrong types, huge / negative / NaN values, deep nesting,
unicode, missing and extra keys, mutated real preset cards, swapped head
parameters) are written into copies of real models of ../shared/models and run
through ``edgepose.Estimator(path)`` (``PersonDetector.from_file`` for the
detector) plus one call on a real COCO image, in a subprocess under a memory
limit (RLIMIT_AS). The rules: the subprocess never dies of a signal, and every
rejection is a ValueError whose message names the field that was mutated.
Cards that ModelCard accepts are written with ``write_card``; the others are
written at the byte level the way ``read_card`` reads them (an ONNX
``metadata_props`` entry appended to the protobuf, a zip member appended to
the TFLite file).

The findings of issue 14 are pinned as fixed regression cases below.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgepose.card import (MAX_CARD_BYTES, MAX_CARD_DEPTH, ONNX_METADATA_KEY,
                           TFLITE_ASSOCIATED_FILE, ModelCard, read_card, write_card)
from edgepose.heads import HEAD_PARAMS
from edgepose.presets import PRESETS, preset_card

REPO = Path(__file__).resolve().parent.parent
#: Address-space limit of the worker: onnxruntime and TFLite reserve some.
MEMORY_LIMIT = 3 << 30

# model file (under models/), preset, kind ("pose" or "detector"), static input size
MODELS = {
    "tfpose": ("openpose_paf/tfpose_mobilenet_v2_small.onnx", "tfpose-mobilenet-v2", "pose",
               False),
    "movenet": ("movenet/movenet_singlepose_lightning_int8_4.tflite", "movenet-lightning",
                "pose", True),
    "cpm": ("heatmap_cpm_hourglass/cpm_model.tflite", "cpm-aic14", "pose", True),
    "posenet": ("posenet/posenet_mobilenet_v1_075_353_481_quant.tflite", "posenet-mobilenet-v1",
                "pose", True),
    "yolox": ("detectors/yolox_yolox_nano_416x416.onnx", "yolox-nano", "detector", True),
}
POSENET_HW = (353, 481)


# --- writing cards the way read_card reads them --------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def write_raw_card(src: Path, dst: Path, text: str | bytes) -> Path:
    """A copy of ``src`` carrying ``text`` as its card, whatever the text is."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    shutil.copyfile(src, dst)
    if src.suffix == ".onnx":
        # ModelProto.metadata_props (14) = StringStringEntryProto(key 1, value 2);
        # protobuf merges a field appended to the message.
        entry = _field(1, ONNX_METADATA_KEY.encode()) + _field(2, data)
        with open(dst, "ab") as f:
            f.write(_field(14, entry))
    else:
        with zipfile.ZipFile(dst, "a") as archive:
            archive.writestr(TFLITE_ASSOCIATED_FILE, data)
    return dst


def write_any_card(src: Path, dst: Path, data) -> Path:
    """write_card for cards ModelCard accepts, the raw writer for the rest."""
    if isinstance(data, dict):
        try:
            card = ModelCard.from_dict(copy.deepcopy(data))
        except (ValueError, TypeError, RecursionError):
            pass
        else:
            return write_card(src, dst, card)
    text = data if isinstance(data, (str, bytes)) else json.dumps(data, allow_nan=True,
                                                                  ensure_ascii=False)
    return write_raw_card(src, dst, text)


# --- the worker (runs in a subprocess) ------------------------------------------------------

def _worker(jobs_path: str, limit: int) -> None:
    """Runs every job of the JSON file, printing one JSON line of outcome per job."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import cv2

    import edgepose
    from edgepose.detectors import PersonDetector

    jobs = json.loads(Path(jobs_path).read_text())
    images: dict[str, np.ndarray] = {}
    for job in jobs:
        image = images.get(job["image"])
        if image is None:
            image = images[job["image"]] = cv2.imread(job["image"])
        try:
            if job["kind"] == "detector":
                with PersonDetector.from_file(job["path"]) as detector:
                    detector(image)
            else:
                with edgepose.Estimator(job["path"]) as estimator:
                    estimator(image)
            outcome = {"id": job["id"], "result": "ok"}
        except Exception as e:  # noqa: BLE001 - classified by the parent
            # without the file's folder, so that only the message itself can name the field
            message = str(e).replace(str(Path(job["path"]).parent), "<dir>")
            outcome = {"id": job["id"], "result": type(e).__name__, "message": message}
        print(json.dumps(outcome), flush=True)


def run_jobs(jobs: list[dict], tmp_path: Path, limit: int = MEMORY_LIMIT) -> dict[str, dict]:
    """Runs the jobs in one subprocess under ``limit`` bytes of address space."""
    jobs_path = tmp_path / "jobs.json"
    jobs_path.write_text(json.dumps(jobs))
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); "
            "from tests.test_card_fuzz import _worker; "
            f"_worker({str(jobs_path)!r}, {limit})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    outcomes = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            item = json.loads(line)
            outcomes[item["id"]] = item
    done = len(outcomes)
    assert proc.returncode == 0, (
        f"the worker exited with {proc.returncode} (a negative code is a signal) after "
        f"{done} of {len(jobs)} jobs; the next was {jobs[done] if done < len(jobs) else None}."
        f"\nstderr: {proc.stderr[-3000:]}")
    assert done == len(jobs)
    return outcomes


# --- random cards ---------------------------------------------------------------------------

HOSTILE = [-1, 0, 1, 3, 2 ** 31, 10 ** 30, 1e308, -1e-308, 0.5, 65536, 1e7, -65536,
           float("nan"), float("inf"), "eight", "", "ünïcödé ✓ \u202e", "\x00", None, True,
           False, [], {}, [1, 2], [[0, 1]], [[0, 99]], {"a": 1}, [-5, 3], [1e7, 1e7],
           list(range(40))]
EDGES = [0, 1, 2, 15, 16, 17, 100, 101, 103, 1000, 1001, 1023, 1024, 1025, 4095, 4096, 0.0,
         1.0, 1e-9, 0.999, 1023.9, -1023.9, -1.0, 63.9]
SIZES = [[100000, 100000], [0, 10], [-1, 5], [2.5, 3.0], "256x192", [256], [2 ** 40, 2 ** 40],
         [1, 1], [4096, 4096], [True, 5], None, [float("nan"), 3]]
TOP = {"task": ["topdown", "bottomup", "single", "detector"],
       "head": list(HEAD_PARAMS) + ["regression"],
       "keypoints": ["coco17", "coco18", "aic14", "mpii16", "blazepose33", None]}


def _deep(depth: int):
    """A Python value nested ``depth`` lists and dicts deep."""
    value: object = 0
    for i in range(depth):
        value = [value] if i % 2 else {"n": value}
    return value


def _with_deep(data: dict, where: str, depth: int) -> str:
    """The JSON text of ``data`` with ``data[where]["deep"]`` nested ``depth``
    arrays deep (json.dumps itself would recurse that deep)."""
    data = copy.deepcopy(data)
    data[where] = {"deep": "__DEEP__"}
    return json.dumps(data).replace('"__DEEP__"', "[" * depth + "0" + "]" * depth)


def _card_dict(preset: str) -> dict:
    hw = POSENET_HW if preset == "posenet-mobilenet-v1" else None
    return preset_card(preset, hw).to_dict()


def _mutations(rng: np.random.Generator, base: dict, model: str) -> tuple[object, list[str]]:
    """One mutated card (a dict, or raw text) and the names one of which a
    rejection must mention."""
    data = copy.deepcopy(base)
    head_fields = [f.name for f in dataclasses.fields(HEAD_PARAMS[data["head"]])]
    kind = rng.integers(13)
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    if kind <= 2:  # a head parameter gets a hostile value
        key = pick(sorted(set(head_fields) | set(data["head_params"])))
        data["head_params"][key] = copy.deepcopy(pick(HOSTILE))
        return data, [key]
    if kind == 12:  # a head parameter at or near the edge of its range
        key = pick(sorted(set(head_fields) | set(data["head_params"])))
        data["head_params"][key] = pick(EDGES)
        return data, [key]
    if kind == 3:  # a head parameter goes missing
        if not data["head_params"]:
            return data, ["ok"]
        key = pick(sorted(data["head_params"]))
        del data["head_params"][key]
        return data, [key]
    if kind == 4:  # an extra key, misspelt or unicode
        where = pick(["head_params", "input", None])
        target = data if where is None else data[where]
        valid = sorted(target) or ["x"]
        key = pick([pick(valid)[:-1] + "s", pick(valid).upper(), "ünï✓", "__proto__",
                    pick(valid) + " "])
        if key in target:
            key += "_"
        target[key] = pick(HOSTILE[:12])
        return data, [key]
    if kind == 5:  # the input size
        if not MODELS[model][3]:  # a dynamic model: only sizes the card refuses
            data["input"]["size"] = copy.deepcopy(pick(SIZES[:8]))
        else:
            data["input"]["size"] = copy.deepcopy(pick(SIZES))
        return data, ["size"]
    if kind == 6:  # another input field
        key = pick(["name", "layout", "dtype", "color", "mean", "std", "resize", "pad_value"])
        data["input"][key] = copy.deepcopy(pick(HOSTILE + ["NHWC", "NCHW", "uint8", "BGR",
                                                           "stretch", "fit_height"]))
        return data, [key, "size", "input"]
    if kind == 7:  # a top-level field
        key = pick(sorted(TOP))
        data[key] = pick(TOP[key] + HOSTILE[14:20])
        return data, [key, "head_params", "outputs", "task"]
    if kind == 8:  # outputs
        roles = sorted(data["outputs"])
        choice = int(rng.integers(3))
        if choice == 0 and roles:
            role = pick(roles)
            data["outputs"][role] = pick(["missing:0", "", 7, None])
            return data, [role, "outputs"]
        if choice == 1 and roles:
            role = pick(roles)
            data["outputs"][role + "x"] = data["outputs"].pop(role)
            return data, [role, "outputs"]
        data["outputs"] = pick([[], "maps", {"a": {"b": 1}}])
        return data, ["outputs"]
    if kind == 9:  # deep nesting somewhere
        where = pick(["provenance", "head_params", "input"])
        return _with_deep(data, where, int(pick([MAX_CARD_DEPTH, 100, 1000, 5000]))), ["nest"]
    if kind == 10:  # another preset's head_params (a mutated real card)
        other = pick(sorted(PRESETS))
        data["head_params"] = copy.deepcopy(PRESETS[other]["head_params"])
        if PRESETS[other]["head"] == data["head"]:
            return data, ["ok"]
        return data, ["head_params"]
    # raw text: truncated, not an object, a bad version, invalid UTF-8
    text = json.dumps(data)
    raw = pick([text[: int(rng.integers(1, len(text)))], "[]", "null", '"card"',
                json.dumps({**data, "edgepose_card": pick([0, 2, "1", None, 1.0])}),
                b"\xff\xfe" + text.encode()[:50]])
    return raw, ["JSON", "card", "UTF-8", "edgepose_card", "version"]


def _names_field(outcome: dict, names: list[str]) -> bool:
    message = outcome.get("message", "")
    return any(name in message or repr(name) in message for name in names)


def test_fuzzed_cards_never_crash_and_every_rejection_names_its_field(shared_dir, tmp_path):
    # EDGEPOSE_FUZZ_SEED / EDGEPOSE_FUZZ_CASES explore further than the pinned run
    rng = np.random.default_rng(int(os.environ.get("EDGEPOSE_FUZZ_SEED", 20261203)))
    image = str(sorted((shared_dir / "data" / "coco").glob("*.jpg"))[0])
    jobs, expected = [], {}
    per_model = int(os.environ.get("EDGEPOSE_FUZZ_CASES", 30))
    for model, (rel, preset, kind, _) in MODELS.items():
        src = shared_dir / "models" / rel
        base = _card_dict(preset)
        for i in range(per_model):
            card, names = _mutations(rng, base, model)
            dst = write_any_card(src, tmp_path / f"{model}-{i}{src.suffix}", card)
            job_id = f"{model}-{i}"
            jobs.append({"id": job_id, "path": str(dst), "kind": kind, "image": image})
            expected[job_id] = (names, card)
    outcomes = run_jobs(jobs, tmp_path)
    bad = []
    for job_id, outcome in outcomes.items():
        names, card = expected[job_id]
        if outcome["result"] == "ok":
            continue
        if outcome["result"] != "ValueError" or not _names_field(outcome, names):
            text = card if isinstance(card, (str, bytes)) else json.dumps(card)[:300]
            bad.append(f"{job_id}: {outcome['result']}: {outcome.get('message')!r} "
                       f"(expected a ValueError naming one of {names}; card {text!r})")
    if os.environ.get("EDGEPOSE_FUZZ_VERBOSE"):
        for job_id, outcome in outcomes.items():
            print(job_id, expected[job_id][0], outcome["result"], outcome.get("message", "")[:150])
    assert not bad, "\n".join(bad)
    rejected = sum(o["result"] == "ValueError" for o in outcomes.values())
    assert rejected >= len(jobs) // 2  # the fuzzer does reach the validation


def test_unmutated_cards_run(shared_dir, tmp_path):
    """The baseline of the fuzzer: each preset card, written with write_card, runs."""
    image = str(sorted((shared_dir / "data" / "coco").glob("*.jpg"))[0])
    jobs = []
    for model, (rel, preset, kind, _) in MODELS.items():
        src = shared_dir / "models" / rel
        dst = write_card(src, tmp_path / f"{model}{src.suffix}",
                         ModelCard.from_dict(_card_dict(preset)))
        jobs.append({"id": model, "path": str(dst), "kind": kind, "image": image})
    outcomes = run_jobs(jobs, tmp_path)
    assert all(o["result"] == "ok" for o in outcomes.values()), outcomes


# --- the findings of issue 14, fixed --------------------------------------------------------

def _tfpose(shared_dir: Path, tmp_path: Path, name: str, change) -> Path:
    data = _card_dict("tfpose-mobilenet-v2")
    text = change(data)
    data = text if isinstance(text, str) else data
    src = shared_dir / "models" / MODELS["tfpose"][0]
    return write_any_card(src, tmp_path / f"{name}.onnx", data)


FINDINGS = {
    "max_peaks": (lambda d: d["head_params"].update(max_peaks=65536),
                  r"head_params.max_peaks must be an integer from 1 to 1024, got 65536."),
    "peak_radius": (lambda d: d["head_params"].update(peak_radius=10 ** 7),
                    r"head_params.peak_radius must be an integer from 0 to 16, got 10000000."),
    "peak_radius_float": (lambda d: d["head_params"].update(peak_radius=1e7),
                          r"head_params.peak_radius must be an integer from 0 to 16, got "
                          r"10000000.0."),
    "size": (lambda d: d["input"].update(size=[100000, 100000]),
             r"input size must be at most 4096 pixels per side \(edgepose.card.MAX_INPUT_SIDE\), "
             r"got \(100000, 100000\)."),
    "num_parts": (lambda d: d["head_params"].pop("num_parts"),
                  r"head_params is missing required field\(s\) 'num_parts'."),
    "stride": (lambda d: d["head_params"].update(stride="eight"),
               r"head_params.stride must be a finite number in \(0, 1024\], got 'eight'."),
    "nesting": (lambda d: _with_deep(d, "provenance", 1000),
                r"The card nests arrays and objects 1002 levels deep; at most 32 are allowed"),
}


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_issue_14_findings_are_refused_when_the_card_is_read(shared_dir, tmp_path, name):
    change, message = FINDINGS[name]
    path = _tfpose(shared_dir, tmp_path, name, change)
    with pytest.raises(ValueError, match=message):
        read_card(path)


def test_issue_14_findings_end_to_end_under_a_memory_limit(shared_dir, tmp_path):
    """The same cards through Estimator in a subprocess: ValueErrors, no crash."""
    image = str(sorted((shared_dir / "data" / "coco").glob("*.jpg"))[0])
    jobs = [{"id": name, "path": str(_tfpose(shared_dir, tmp_path, name, FINDINGS[name][0])),
             "kind": "pose", "image": image} for name in sorted(FINDINGS)]
    outcomes = run_jobs(jobs, tmp_path)
    for name, (_, message) in FINDINGS.items():
        assert outcomes[name]["result"] == "ValueError", outcomes[name]
        assert __import__("re").search(message, outcomes[name]["message"]), outcomes[name]


def test_a_static_model_refuses_a_card_of_another_size(shared_dir, tmp_path):
    """A card saying 256x192 on a graph whose static input is 192x192 fails at load,
    naming both."""
    data = _card_dict("movenet-lightning")
    data["input"]["size"] = [256, 192]
    src = shared_dir / "models" / MODELS["movenet"][0]
    path = write_any_card(src, tmp_path / "movenet.tflite", data)
    import edgepose

    with pytest.raises(ValueError, match=r"describes a NHWC input of size \(256, 192\), i\.e\. "
                                         r"shape \(None, 256, 192, 3\), but the model's input "
                                         r"'serving_default_input:0' has shape "
                                         r"\(1, 192, 192, 3\). Fix the card's input size"):
        edgepose.Estimator(path)


def test_missing_output_role_fails_at_load_not_on_the_first_frame(shared_dir, tmp_path):
    data = _card_dict("posenet-mobilenet-v1")
    del data["outputs"]["mid_offsets"]
    src = shared_dir / "models" / MODELS["posenet"][0]
    path = write_any_card(src, tmp_path / "posenet.tflite", data)
    from edgepose.model import LoadedModel

    with pytest.raises(ValueError, match=r"The card of posenet.tflite: outputs is missing the "
                                         r"role\(s\) 'mid_offsets' this head decodes"):
        LoadedModel(path)


# --- bounded reads --------------------------------------------------------------------------

_BOMB_CODE = """
import json, resource, sys
from edgepose.card import read_card
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_card(sys.argv[1])
    result = "accepted"
except ValueError as e:
    result = str(e)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_kib": after - before, "result": result}))
"""


def _bomb(src: Path, dst: Path, size: int, forge_size: int | None = None) -> Path:
    """A copy of ``src`` whose trailing zip card inflates to ``size`` bytes of
    spaces (written in chunks); ``forge_size`` rewrites the sizes its headers declare."""
    shutil.copyfile(src, dst)
    with zipfile.ZipFile(dst, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(TFLITE_ASSOCIATED_FILE, "w", force_zip64=False) as member:
            chunk = b" " * (1 << 20)
            for _ in range(size >> 20):
                member.write(chunk)
    if forge_size is not None:
        raw = bytearray(dst.read_bytes())
        name = TFLITE_ASSOCIATED_FILE.encode()
        for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
            pos = raw.rfind(sig + b"")
            while pos >= 0 and name not in raw[pos:pos + 80]:
                pos = raw.rfind(sig, 0, pos)
            raw[pos + offset:pos + offset + 4] = forge_size.to_bytes(4, "little")
        dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize("forge", [None, 100])
def test_a_zip_bomb_card_is_read_in_bounded_memory(shared_dir, tmp_path, forge):
    """A 3 MB .tflite whose card inflates to 300 MB: refused, < 100 MB extra RSS
    (with honest sizes in the zip headers, and with forged small ones)."""
    src = shared_dir / "models" / MODELS["movenet"][0]
    path = _bomb(src, tmp_path / "bomb.tflite", 300 << 20, forge)
    assert path.stat().st_size < src.stat().st_size + (2 << 20)
    with zipfile.ZipFile(path) as archive:
        declared = archive.getinfo(TFLITE_ASSOCIATED_FILE).file_size
    assert declared == (300 << 20 if forge is None else forge)
    proc = subprocess.run([sys.executable, "-c", _BOMB_CODE, str(path)], capture_output=True,
                          text=True, cwd=REPO, check=True, timeout=120)
    report = json.loads(proc.stdout)
    assert report["extra_kib"] < 100 * 1024, report
    if forge is None:
        assert f"edgepose reads at most {MAX_CARD_BYTES} bytes" in report["result"], report
    else:
        assert "damaged zip archive" in report["result"], report


def test_every_format_refuses_a_card_over_the_limit(shared_dir, tmp_path):
    big = json.dumps({**_card_dict("movenet-lightning"),
                      "provenance": {"pad": "x" * MAX_CARD_BYTES}})
    onnx = write_raw_card(shared_dir / "models" / MODELS["yolox"][0], tmp_path / "big.onnx", big)
    with pytest.raises(ValueError, match=r"big.onnx carries an ONNX metadata value of \d+ "
                                         r"bytes; edgepose reads at most 1048576 bytes"):
        read_card(onnx)
    tflite = write_raw_card(shared_dir / "models" / MODELS["cpm"][0], tmp_path / "big.tflite", big)
    with pytest.raises(ValueError, match=r"carries a edgepose_card.json of \d+ bytes; edgepose "
                                         r"reads at most 1048576 bytes"):
        read_card(tflite)
    from xml.sax.saxutils import quoteattr

    xml = tmp_path / "big.xml"
    xml.write_text(f"<net><rt_info><edgepose><card value={quoteattr(big)}/></edgepose>"
                   "</rt_info></net>")
    with pytest.raises(ValueError, match=r"big.xml carries an rt_info card of \d+ bytes"):
        read_card(xml)
    # the same card text passed directly
    with pytest.raises(ValueError, match=r"a card is at most 1048576 bytes"):
        ModelCard.from_json(big)


@pytest.mark.parametrize("text", ["[" * 33 + "]" * 33, '{"a":' * 40 + "1" + "}" * 40,
                                  "[" * 100000])
def test_nesting_is_checked_before_parsing(text):
    with pytest.raises(ValueError, match=r"The card nests arrays and objects \d+ levels deep; "
                                         r"at most 32 are allowed"):
        ModelCard.from_json(text)


def test_brackets_inside_strings_do_not_count_as_nesting():
    data = _card_dict("movenet-lightning")
    data["provenance"] = {"note": "[[[[{{{{" * 20 + '\\"]]' * 40}
    card = ModelCard.from_json(json.dumps(data))
    assert card.provenance["note"].startswith("[[[[")


def test_deep_python_objects_are_refused_without_recursion_error():
    data = _card_dict("movenet-lightning")
    data["provenance"] = {"deep": _deep(5000)}
    with pytest.raises(ValueError, match=r"provenance\['deep'\].* nests deeper than 32 levels"):
        ModelCard.from_dict(data)


def test_the_worker_memory_limit_is_enforced(tmp_path):
    """The fuzzer's limit is real: a worker asking for more than it fails cleanly."""
    code = ("import resource, numpy as np; "
            f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
            "try:\n    np.ones(4 << 30, np.uint8)\nexcept MemoryError:\n    print('limited')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ}).stdout
    assert out.strip() == "limited"

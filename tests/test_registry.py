"""Models by name: the registry, resolution order, verification, downloads, the CLI.

No test touches the internet: downloads come from a local HTTP server on
127.0.0.1 started here (serving the real files of ``../shared/models`` by
file name), test registry entries point their upstream URLs at it, and
``edgepose.registry.fetch._urlopen`` refuses any other host.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from edgepose import registry
from edgepose.cli import main
from edgepose.presets import KNOWN_FILES, PRESETS, recognise
from edgepose.registry import catalog as registry_catalog
from edgepose.registry import fetch as registry_fetch
from edgepose.registry import store as registry_store
from edgepose.registry import (HashMismatchError, ModelEntry, ModelNotFoundError, ModelRegistry,
                               ModelStore, UnverifiedModelError)

POSENET = "posenet-mobilenet-v1-353x481"  # the smallest real file (1.3 MB)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- fixtures: no internet, a clean environment, a local server ------------------


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No EDGEPOSE_* settings from the outside, a private cache, and no host
    but 127.0.0.1."""
    for var in (registry.CACHE_ENV, registry.MODEL_DIR_ENV, registry.MIRROR_ENV,
                registry.OFFLINE_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    real = registry_fetch._urlopen

    def loopback_only(request, timeout):
        host = urllib.parse.urlsplit(request.full_url).hostname
        if host != "127.0.0.1":
            raise AssertionError(f"a test tried to reach {request.full_url}")
        return real(request, timeout)

    monkeypatch.setattr(registry_fetch, "_urlopen", loopback_only)


def test_the_isolation_guards_the_downloads(tmp_path):
    """The fixture patches the _urlopen every download goes through: another
    host than 127.0.0.1 fails the test instead of reaching the network."""
    store = _store(tmp_path, mirror="http://192.0.2.1/models")
    with pytest.raises(AssertionError, match="a test tried to reach http://192.0.2.1/models/"):
        store.pull(POSENET)


class _Server:
    """Files by name under /files/NAME; /broken/NAME sends half the bytes and
    hangs up; /wrong/NAME sends other bytes of the right length."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.extra: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                kind, _, name = self.path.lstrip("/").partition("/")
                name = urllib.parse.unquote(name)
                if name in server.extra:
                    data = server.extra[name]
                elif name in server.files:
                    data = server.files[name].read_bytes()
                else:
                    self.send_error(404)
                    return
                if kind == "wrong":
                    data = data[::-1]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if kind == "broken":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(shared_dir):
    files = {p.name: p for p in (shared_dir / "models").rglob("*") if p.is_file()}
    s = _Server(files)
    yield s
    s.close()


@pytest.fixture
def web(server):
    server.requests.clear()
    server.extra.clear()
    return server


def _local_registry(base: str, route: str = "files") -> ModelRegistry:
    """The shipped registry with every upstream URL on the local server."""
    return ModelRegistry(
        dataclasses.replace(e, url=f"{base}/{route}/{e.archive.file if e.archive else e.file}")
        for e in registry.default_registry())


def _store(tmp_path, **kwargs) -> ModelStore:
    kwargs.setdefault("cache_dir", tmp_path / "cache")
    return ModelStore(**kwargs)


def _cache_files(store: ModelStore) -> list[str]:
    return sorted(p.name for p in store.models_dir.iterdir()) if store.models_dir.is_dir() else []


# --- the registry as data ----------------------------------------------------------


def test_pinned_entries_match_the_real_files(shared_dir):
    files = {p.name: p for p in (shared_dir / "models").rglob("*") if p.is_file()}
    reg = registry.default_registry()
    pinned = [e for e in reg if e.sha256 is not None]
    assert len(pinned) == 24
    for entry in pinned:
        path = files[entry.file]
        actual = (_sha(path.read_bytes()), path.stat().st_size)
        assert actual == (entry.sha256, entry.size), entry.name
        assert entry.license == ("AGPL-3.0" if entry.file in AGPL_FILES else "Apache-2.0")
    # every real model file is in the registry
    assert {e.file for e in pinned} == set(files)


#: The Ultralytics YOLO11n-pose files: AGPL-3.0, registered so that edgepose recognises
#: them, never fetched (no URL) and never shipped.
AGPL_FILES = {"yolo11n-pose.onnx", "yolo11n-pose-dynamic.onnx", "yolo11n-pose.tflite"}


def test_agpl_entries_are_only_recognised():
    reg = registry.default_registry()
    agpl = [e for e in reg if e.license != "Apache-2.0"]
    assert {e.file for e in agpl} == AGPL_FILES
    for entry in agpl:
        assert entry.license == "AGPL-3.0" and entry.url is None and entry.preset is None
        assert (entry.task, entry.head, entry.keypoints) == ("onestage", "yolo_pose", "coco17")
        assert "v8.3.0 release asset yolo11n-pose.pt" in entry.source
        assert "`yolo export model=yolo11n-pose.pt" in entry.source
        assert entry.note.startswith("AGPL-3.0 weights: edgepose does not ship, fetch or "
                                     "depend on them")
    multipose = reg.get("movenet-multipose")
    assert (multipose.license, multipose.preset, multipose.task) == (
        "Apache-2.0", "movenet-multipose", "onestage")
    assert "movenet/multipose/lightning/tflite/float16/1" in multipose.url


def test_entries_agree_with_the_presets():
    for entry in registry.default_registry():
        if entry.preset is None:
            # the YOLO files' card comes from the Ultralytics metadata inside them
            assert (entry.name in ("blazepose-detector", "tfpose-mobilenet-v2")
                    or entry.file in AGPL_FILES), entry.name
            continue
        preset = PRESETS[entry.preset]
        assert (preset["task"], preset["head"], preset["keypoints"]) == \
            (entry.task, entry.head, entry.keypoints), entry.name


def test_known_files_are_the_pinned_entries_with_a_preset():
    """KNOWN_FILES is read from models.json: every entry with a pinned sha256
    and a preset is in it, under that preset, and nothing else is."""
    entries = list(registry.default_registry())
    expected = [e for e in entries if e.sha256 is not None and e.preset is not None]
    assert len(expected) > 10
    for entry in expected:
        assert KNOWN_FILES[entry.sha256] == entry.preset, entry.name
    assert len(KNOWN_FILES) == len({e.sha256 for e in expected})
    for sha, preset in KNOWN_FILES.items():
        hit = registry.default_registry().by_sha256(sha)
        assert hit is not None and hit[1] is False and hit[0].preset == preset
    # entries without a preset or without a pinned sha256 are not in it
    for entry in entries:
        if entry.preset is None and entry.sha256 is not None:
            assert entry.sha256 not in KNOWN_FILES, entry.name
    assert not any(e.archive and e.archive.sha256 in KNOWN_FILES for e in entries)


def test_known_files_recognise_a_real_file(shared_dir):
    entry = registry.default_registry().get(POSENET)
    path = next((shared_dir / "models").rglob(entry.file))
    assert recognise(path) == KNOWN_FILES[_sha(path.read_bytes())] == "posenet-mobilenet-v1"


def test_known_files_are_read_only_and_follow_the_registry(monkeypatch):
    with pytest.raises(TypeError, match="does not support item assignment"):
        KNOWN_FILES["0" * 64] = "movenet-lightning"  # type: ignore[index]
    base = registry.default_registry().get(POSENET)
    mine = ModelRegistry([
        dataclasses.replace(base, name="mine", file="mine.tflite", sha256="1" * 64),
        dataclasses.replace(base, name="no-preset", file="np.tflite", sha256="2" * 64,
                            preset=None),
        dataclasses.replace(base, name="unpinned", file="u.tflite", sha256=None)])
    monkeypatch.setattr(registry_catalog, "default_registry", lambda: mine)
    assert dict(KNOWN_FILES) == {"1" * 64: base.preset}


def test_importing_the_presets_does_not_read_the_registry():
    code = ("import sys, edgepose.presets as p; a = 'edgepose.registry' in sys.modules; "
            "n = len(p.KNOWN_FILES); print(a, 'edgepose.registry' in sys.modules, n > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "True", "True"]


def test_rtmpose_entries_are_published_zips_without_a_pinned_hash():
    reg = registry.default_registry()
    for size in "tsm":
        entry = reg.get(f"rtmpose-{size}")
        assert entry.sha256 is None and entry.preset == "rtmpose"
        assert entry.url.startswith("https://download.openmmlab.com/mmpose/v1/projects/"
                                    f"rtmposev1/onnx_sdk/rtmpose-{size}_simcc-body7_")
        assert entry.url.endswith(entry.archive.file) and entry.archive.member == "end2end.onnx"
        assert entry.input_hw == (256, 192) and entry.keypoints == "coco17"


def test_conversions_have_no_upstream_and_the_rest_do():
    for entry in registry.default_registry():
        converted = entry.name.endswith("-onnx") or entry.name == "tfpose-mobilenet-v2"
        # the AGPL YOLO files are recognised, never fetched
        assert (entry.url is None) == (converted or entry.file in AGPL_FILES), entry.name


def test_the_registry_file_is_package_data():
    root = Path(__file__).resolve().parent.parent
    assert '"models.json"' in (root / "pyproject.toml").read_text()
    data = json.loads((root / "edgepose" / "models.json").read_text())
    assert ModelRegistry.from_dict(data).names() == registry.default_registry().names()
    entry = registry.default_registry().get("movenet-lightning")
    assert ModelEntry.from_dict(entry.to_dict()) == entry


def test_bad_registry_data_is_rejected():
    good = registry.default_registry().get("yolox-nano").to_dict()
    with pytest.raises(ValueError, match="twice"):
        ModelRegistry.from_dict({"schema": 1, "models": [good, good]})
    with pytest.raises(ValueError, match="sha256 must be 64 lowercase hex"):
        ModelEntry.from_dict({**good, "sha256": "abc"})
    with pytest.raises(ValueError, match="a file name without folders"):
        ModelEntry.from_dict({**good, "file": "../x.onnx"})
    with pytest.raises(ValueError, match=r"missing \['license'\]"):
        ModelEntry.from_dict({k: v for k, v in good.items() if k != "license"})


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ValueError, match="Did you mean 'movenet-lightning'"):
        registry.default_registry().get("movenet-lightnin")


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    store = ModelStore.from_env()
    assert store.models_dir == tmp_path / "cache" / "models"
    assert (store.model_dir, store.mirror, store.offline) == (None, None, False)
    monkeypatch.delenv(registry.CACHE_ENV)
    assert ModelStore.from_env().cache_dir == tmp_path / "xdg" / "edgepose"
    monkeypatch.setenv(registry.MODEL_DIR_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv(registry.MIRROR_ENV, "https://models.example.com/edgepose")
    monkeypatch.setenv(registry.OFFLINE_ENV, "1")
    store = ModelStore.from_env()
    assert store.model_dir == tmp_path / "mine"
    assert store.mirror_url == "https://models.example.com/edgepose/" and store.mirror_dir is None
    assert store.offline


# --- resolution order ----------------------------------------------------------------


def test_model_dir_beats_cache_beats_mirror_beats_upstream(shared_dir, web, tmp_path):
    reg = _local_registry(web.base)
    entry = reg.get(POSENET)
    real = shared_dir / "models" / "posenet" / entry.file
    model_dir, mirror = tmp_path / "mine", tmp_path / "mirror"
    (mirror / "deep" / "er").mkdir(parents=True)
    model_dir.mkdir()
    shutil.copy(real, model_dir / entry.file)
    shutil.copy(real, mirror / "deep" / "er" / entry.file)
    store = _store(tmp_path, model_dir=model_dir, mirror=mirror, registry=reg)
    store.models_dir.mkdir(parents=True)
    shutil.copy(real, store.models_dir / entry.file)

    found = store.resolve(POSENET)
    assert (found.origin, found.path) == ("model dir", model_dir / entry.file)
    (model_dir / entry.file).unlink()
    found = store.resolve(POSENET)
    assert (found.origin, found.path) == ("cache", store.models_dir / entry.file)
    (store.models_dir / entry.file).unlink()
    found = store.resolve(POSENET)
    assert (found.origin, found.detail) == ("mirror", str(mirror / "deep" / "er" / entry.file))
    assert found.path == store.models_dir / entry.file  # the mirror feeds the cache
    (store.models_dir / entry.file).unlink()
    shutil.rmtree(mirror)
    assert web.requests == []
    found = store.resolve(POSENET)
    assert (found.origin, found.detail) == ("upstream", entry.url)
    assert web.requests == [f"/files/{entry.file}"]
    assert _sha(found.path.read_bytes()) == entry.sha256
    assert _cache_files(store) == [entry.file]


def test_an_http_mirror_is_a_base_url_plus_the_file_name(web, tmp_path):
    store = _store(tmp_path, mirror=f"{web.base}/files", registry=_local_registry(web.base))
    found = store.pull(POSENET)
    assert found.origin == "mirror" and web.requests == [f"/files/{found.entry.file}"]
    assert store.pull(POSENET).origin == "cache" and len(web.requests) == 1
    assert store.pull(POSENET, force=True).origin == "mirror" and len(web.requests) == 2


def test_an_explicit_path_is_used_as_it_is(shared_dir, monkeypatch, tmp_path):
    from edgepose.model import locate_model

    path = shared_dir / "models" / "posenet" / "posenet_mobilenet_v1_075_353_481_quant.tflite"
    monkeypatch.setenv(registry.MIRROR_ENV, str(tmp_path / "nowhere"))
    assert locate_model(path) == (path, None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        locate_model(tmp_path / "nope.onnx")
    with pytest.raises(FileNotFoundError, match="not a registry model name.*Did you mean"):
        locate_model("yolox-nan")


# --- verification ----------------------------------------------------------------------


def test_a_wrong_file_is_an_error_naming_both_hashes(tmp_path):
    entry = registry.default_registry().get(POSENET)
    model_dir = tmp_path / "mine"
    model_dir.mkdir()
    (model_dir / entry.file).write_bytes(b"not posenet")
    store = _store(tmp_path, model_dir=model_dir)
    with pytest.raises(HashMismatchError) as info:
        store.resolve(POSENET)
    message = str(info.value)
    assert entry.sha256 in message and _sha(b"not posenet") in message
    assert f"It is 11 bytes, expected {entry.size}" in message


def test_a_truncated_cached_file_is_caught_and_replaced(shared_dir, tmp_path):
    entry = registry.default_registry().get(POSENET)
    data = (shared_dir / "models" / "posenet" / entry.file).read_bytes()
    store = _store(tmp_path, mirror=shared_dir / "models")
    store.models_dir.mkdir(parents=True)
    (store.models_dir / entry.file).write_bytes(data[:1000])
    with pytest.raises(HashMismatchError, match=rf"sha256 {_sha(data[:1000])}, expected "
                       rf"{entry.sha256}\. It is 1000 bytes, expected {entry.size} \(truncated"):
        store.resolve(POSENET)
    (check,) = store.verify()
    assert (check.status, check.actual, check.removed) == ("mismatch", _sha(data[:1000]), False)
    (check,) = store.verify(remove_bad=True)
    assert check.removed and _cache_files(store) == []
    assert store.resolve(POSENET).origin == "mirror"
    assert [c.status for c in store.verify()] == ["ok"]


def test_verification_is_remembered_until_the_file_changes(shared_dir, monkeypatch, tmp_path):
    store = _store(tmp_path, mirror=shared_dir / "models")
    path = store.resolve(POSENET).path
    calls = []
    real = registry_store.sha256_file
    monkeypatch.setattr(registry_store, "sha256_file", lambda p: calls.append(p) or real(p))
    for _ in range(3):
        assert store.resolve(POSENET).origin == "cache"
    assert calls == []
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert store.resolve(POSENET).origin == "cache" and len(calls) == 1


# --- downloads that fail ------------------------------------------------------------


def test_an_interrupted_download_leaves_nothing_in_the_cache(web, tmp_path):
    store = _store(tmp_path, registry=_local_registry(web.base, "broken"))
    entry = store.registry.get(POSENET)
    with pytest.raises(ModelNotFoundError,
                       match=rf"broke off after {entry.size // 2} of {entry.size} bytes"):
        store.resolve(POSENET)
    assert web.requests == [f"/broken/{entry.file}"]
    assert _cache_files(store) == []


def test_a_download_with_the_wrong_content_never_lands(web, tmp_path):
    store = _store(tmp_path, registry=_local_registry(web.base, "wrong"))
    entry = store.registry.get(POSENET)
    with pytest.raises(HashMismatchError, match=rf"expected {entry.sha256}\. Nothing was written"):
        store.resolve(POSENET)
    assert _cache_files(store) == []


def test_offline_the_error_lists_every_place_and_the_url(tmp_path):
    reg = ModelRegistry(dataclasses.replace(e, url="http://127.0.0.1:9/x/" + e.file)
                        if e.name == POSENET else e for e in registry.default_registry())
    store = _store(tmp_path, model_dir=tmp_path / "mine", mirror=tmp_path / "mirror",
                   registry=reg, timeout=5)
    entry = reg.get(POSENET)
    with pytest.raises(ModelNotFoundError) as info:
        store.resolve(POSENET)
    message = str(info.value)
    for part in (f"No copy of model '{POSENET}' ({entry.file}, {entry.size} bytes, sha256 "
                 f"{entry.sha256})", f"model dir: {tmp_path / 'mine'} does not exist",
                 f"cache: no {store.models_dir / entry.file}",
                 f"mirror: {tmp_path / 'mirror'} does not exist",
                 f"upstream: {entry.url}: cannot connect",
                 f"Fetch {entry.url}", f"put {entry.file} at {store.models_dir / entry.file}"):
        assert part in message, part
    offline = _store(tmp_path, registry=reg, offline=True, mirror="http://127.0.0.1:9/m")
    with pytest.raises(ModelNotFoundError,
                       match=r"upstream: .* \(skipped: EDGEPOSE_OFFLINE is set"):
        offline.resolve(POSENET)
    with pytest.raises(ModelNotFoundError, match="has no public download"):
        offline.resolve("movenet-lightning-onnx")


# --- archives and models without a pinned sha256 -------------------------------------


def _zip(member_path: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README.txt", "MMDeploy SDK model")
        zf.writestr(member_path, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def rtmpose_onnx(tmp_path_factory):
    pytest.importorskip("onnx")
    from tests.models.synthetic import rtmpose_like

    return rtmpose_like(tmp_path_factory.mktemp("rtm") / "end2end.onnx").read_bytes()


def test_an_unpinned_model_is_refused_until_imported(rtmpose_onnx, web, tmp_path, monkeypatch):
    reg = _local_registry(web.base)
    entry = reg.get("rtmpose-m")
    archive = _zip("rtmpose-m/end2end.onnx", rtmpose_onnx)
    web.extra[entry.archive.file] = archive
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / entry.file).write_bytes(rtmpose_onnx)
    store = _store(tmp_path, model_dir=tmp_path / "mine", registry=reg)
    found_at = re.escape(str(tmp_path / "mine" / entry.file))
    with pytest.raises(UnverifiedModelError, match=f"A copy was found at {found_at}, .*"
                       f"`edgepose models import {found_at} --name rtmpose-m`"):
        store.resolve("rtmpose-m")
    with pytest.raises(UnverifiedModelError, match=f"Download {re.escape(entry.url)}, check it, "
                       "then import it: `edgepose models import FILE --name rtmpose-m`"):
        store.pull("rtmpose-m")
    assert web.requests == []  # nothing is downloaded that cannot be verified

    zip_path = tmp_path / entry.archive.file
    zip_path.write_bytes(archive)
    imported = store.import_file(zip_path, name="rtmpose-m")
    assert imported.path == store.models_dir / entry.file
    assert imported.path.read_bytes() == rtmpose_onnx
    record = store.imported(entry)
    assert (record["sha256"], record["archive_sha256"]) == (_sha(rtmpose_onnx), _sha(archive))
    assert store.resolve("rtmpose-m").origin == "model dir"  # now verifiable

    (tmp_path / "mine" / entry.file).write_bytes(rtmpose_onnx + b"tampered")
    with pytest.raises(HashMismatchError, match=f"expected {_sha(rtmpose_onnx)}"):
        store.resolve("rtmpose-m")
    (tmp_path / "mine" / entry.file).unlink()
    assert store.resolve("rtmpose-m").origin == "cache"
    # with the vouched hash, the published zip can now be pulled and unpacked
    found = store.pull("rtmpose-m", force=True)
    assert found.origin == "upstream" and found.path.read_bytes() == rtmpose_onnx
    assert _cache_files(store) == [entry.file]
    # and the same zip is recognised without a name
    assert store.import_file(zip_path).entry.name == "rtmpose-m"

    # the model runs by name: the registry entry supplies the rtmpose card
    pytest.importorskip("cv2")
    from edgepose import Estimator

    monkeypatch.setattr(registry_store, "default_registry", lambda: reg)
    with Estimator("rtmpose-m") as est:
        assert est.card.name == "rtmpose" and est.card.head == "simcc"


def test_a_pinned_archive_is_checked_then_unpacked(web, tmp_path):
    data = b"onnx bytes"
    archive = _zip("sdk/end2end.onnx", data)
    base = registry.default_registry().get("rtmpose-t")
    entry = dataclasses.replace(
        base, sha256=_sha(data), size=len(data), url=f"{web.base}/files/{base.archive.file}",
        archive=dataclasses.replace(base.archive, sha256=_sha(archive), size=len(archive)))
    store = _store(tmp_path, registry=ModelRegistry([entry]))
    web.extra[base.archive.file] = archive
    assert store.resolve("rtmpose-t").path.read_bytes() == data
    assert _cache_files(store) == [entry.file]

    other = _store(tmp_path / "other", registry=ModelRegistry([entry]))
    web.extra[base.archive.file] = _zip("sdk/end2end.onnx", b"other bytes")
    with pytest.raises(HashMismatchError, match=f"archive {re.escape(base.archive.file)} .* "
                       f"expected {_sha(archive)}"):
        other.resolve("rtmpose-t")
    assert _cache_files(other) == []


def test_import_recognises_files_by_hash(shared_dir, tmp_path):
    store = _store(tmp_path)
    src = shared_dir / "models" / "detectors" / "yolox_yolox_nano_416x416.onnx"
    found = store.import_file(src)
    assert found.entry.name == "yolox-nano" and found.path.read_bytes() == src.read_bytes()
    other = tmp_path / "mystery.onnx"
    other.write_bytes(b"mystery")
    with pytest.raises(ValueError, match="not a file the registry knows"):
        store.import_file(other)
    with pytest.raises(HashMismatchError, match=f"{_sha(b'mystery')}, expected "):
        store.import_file(other, name="yolox-nano")


# --- the SDK and the CLI by name ------------------------------------------------------


def test_estimator_by_name_with_a_mirror(shared_dir, monkeypatch, tmp_path):
    cv2 = pytest.importorskip("cv2")
    from edgepose import Estimator
    import edgepose.model

    monkeypatch.setenv(registry.MIRROR_ENV, str(shared_dir / "models"))

    def no_hashing(path):
        raise AssertionError("the registry entry's preset should make hashing unnecessary")

    image = cv2.imread(str(shared_dir / "data/coco/000000000785.jpg"))
    for _ in range(2):  # the second time from the cache
        with Estimator("movenet-lightning", detector="yolox-nano") as est:
            assert est.card.name == "movenet-lightning"
            poses = est(image)
        assert len(poses) >= 1 and poses.keypoints.shape[1:] == (17, 2)
        monkeypatch.setattr(edgepose.model, "recognise", no_hashing)
    cache = tmp_path / "cache" / "models"
    assert sorted(p.name for p in cache.iterdir()) == [
        "movenet_singlepose_lightning_int8_4.tflite", "yolox_yolox_nano_416x416.onnx"]


def test_one_stage_models_by_name(shared_dir, monkeypatch, tmp_path):
    """MoveNet MultiPose by its preset, YOLO11n-pose (AGPL, no preset, no URL) by the
    Ultralytics metadata in the file, both from a mirror into the test's cache; a
    one-stage model as the detector of a top-down one."""
    cv2 = pytest.importorskip("cv2")
    from edgepose import Estimator

    monkeypatch.setenv(registry.MIRROR_ENV, str(shared_dir / "models"))
    image = cv2.imread(str(shared_dir / "data/coco/000000196141.jpg"))
    with Estimator("movenet-multipose") as est:
        assert (est.card.name, est.card.task) == ("movenet-multipose", "onestage")
        assert len(est(image)) >= 2
    with Estimator("yolo11n-pose-dynamic") as est:
        assert (est.card.task, est.card.head) == ("onestage", "yolo_pose")
        assert len(est(image)) >= 2
    with Estimator("movenet-lightning", detector="movenet-multipose") as est:
        assert len(est(image)) >= 2


def test_cli_models_list_info_pull_import_verify(shared_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(registry.MIRROR_ENV, str(shared_dir / "models"))
    assert main(["models", "pull", "movenet-lightning", "yolox-nano"]) == 0
    out, err = capsys.readouterr()
    cache = tmp_path / "cache" / "models"
    assert (f"movenet-lightning: {cache / 'movenet_singlepose_lightning_int8_4.tflite'} (from "
            f"{shared_dir / 'models'}") in out
    assert "movenet-lightning [" in err and "2.9/2.9 MB" in err  # the progress bar's last line

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[4:]}
    assert rows["movenet-lightning"].endswith("cached")
    assert rows["rtmpose-m"].endswith("needs import")
    assert rows["blazepose-lite"].split()[1:] == ["single", "blazepose", "tflite", "2.8", "MB",
                                                  "Apache-2.0", "-"]
    assert rows["yolo11n-pose"].split()[1:] == ["onestage", "yolo_pose", "onnx", "11.9", "MB",
                                                "AGPL-3.0", "-", "(no", "upstream)"]
    assert ("Copyleft (AGPL) weights, recognised but never fetched: yolo11n-pose, "
            "yolo11n-pose-dynamic, yolo11n-pose-tflite; their licence binds") in out
    assert f"mirror: {shared_dir / 'models'}" in out

    assert main(["models", "info", "rtmpose-m"]) == 0
    out = capsys.readouterr().out
    assert "sha256       unknown" in out and "edgepose models import FILE --name rtmpose-m" in out
    assert "holding end2end.onnx" in out

    extra = tmp_path / "cpm.tflite"
    shutil.copy(shared_dir / "models/heatmap_cpm_hourglass/cpm_model.tflite", extra)
    assert main(["models", "import", str(extra)]) == 0
    assert f"cpm-aic14: imported {extra} -> {cache / 'cpm_model.tflite'}" in capsys.readouterr().out

    assert main(["models", "verify"]) == 0
    assert capsys.readouterr().out.count("ok ") == 3
    with open(cache / "cpm_model.tflite", "r+b") as f:
        f.truncate(100)
    assert main(["models", "verify"]) == 1
    out, err = capsys.readouterr()
    assert "MISMATCH  cpm-aic14" in out and "--remove-bad" in err
    assert main(["models", "verify", "--remove-bad"]) == 0
    assert not (cache / "cpm_model.tflite").exists()

    assert main(["models", "pull", "nope"]) == 2
    assert "Unknown model name 'nope'" in capsys.readouterr().err
    monkeypatch.delenv(registry.MIRROR_ENV)
    monkeypatch.setenv(registry.OFFLINE_ENV, "1")
    assert main(["models", "pull", "blazepose-full"]) == 1  # 1: failed work (no copy reachable)
    err = capsys.readouterr().err
    assert err.startswith("edgepose: error: No copy of model 'blazepose-full'")
    assert "Fetch https://storage.googleapis.com/mediapipe-assets/pose_landmark_full.tflite" in err


def test_cli_run_by_name(shared_dir, monkeypatch, tmp_path, capsys):
    pytest.importorskip("cv2")
    monkeypatch.setenv(registry.MIRROR_ENV, str(shared_dir / "models"))
    image = shared_dir / "data/coco/000000000785.jpg"
    assert main(["run", str(image), "--model", "movenet-lightning", "--detector", "yolox-nano",
                 "--out", "-", "--quiet"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert len(record["people"]) >= 1


# --- many imports at once into one cache ------------------------------------------------


def _unpinned_registry(n: int) -> ModelRegistry:
    """n entries without a pinned sha256 (as RTMPose's), each with its own file."""
    base = registry.default_registry().get("rtmpose-m")
    return ModelRegistry(dataclasses.replace(base, name=f"unpinned-{i}", file=f"unpinned_{i}.onnx",
                                             url=None, archive=None) for i in range(n))


def _import_at_once(cache: Path, reg: ModelRegistry, files: dict[str, Path], barrier,
                    errors: list) -> None:
    name = threading.current_thread().name
    barrier.wait()
    try:
        ModelStore(cache_dir=cache, registry=reg).import_file(files[name], name=name)
    except Exception as exc:  # noqa: BLE001 (reported by the test)
        errors.append(exc)


def _check_every_pin(cache: Path, reg: ModelRegistry, files: dict[str, Path]) -> None:
    store = ModelStore(cache_dir=cache, registry=reg)
    pins = json.loads((cache / "imported.json").read_text())["models"]
    assert sorted(pins) == sorted(files)
    for name, src in files.items():
        assert pins[name]["sha256"] == _sha(src.read_bytes())
        found = store.resolve(name)  # UnverifiedModelError if its pin were lost
        assert found.origin == "cache" and found.path.read_bytes() == src.read_bytes()
    assert not [p for p in store.models_dir.iterdir() if p.name.startswith(".partial-")]


def test_concurrent_imports_keep_every_pin(tmp_path):
    n = 8
    reg = _unpinned_registry(n)
    files = {}
    for i in range(n):
        files[f"unpinned-{i}"] = tmp_path / f"src{i}.onnx"
        files[f"unpinned-{i}"].write_bytes(f"model {i} ".encode() * 5000)
    for round_ in range(6):
        cache = tmp_path / f"cache{round_}"
        barrier, errors = threading.Barrier(n), []
        threads = [threading.Thread(target=_import_at_once, name=name,
                                    args=(cache, reg, files, barrier, errors)) for name in files]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        _check_every_pin(cache, reg, files)


def test_concurrent_pulls_and_imports_keep_every_pin_and_verification(shared_dir, tmp_path):
    """Threads pulling real models from a mirror folder (two of them the same
    model) while others import unpinned ones, into one cache."""
    unpinned = _unpinned_registry(4)
    pulled = ["movenet-lightning", "yolox-nano", POSENET, "movenet-lightning"]
    reg = ModelRegistry([*registry.default_registry(), *unpinned])
    files = {e.name: tmp_path / f"{e.name}.onnx" for e in unpinned}
    for i, path in enumerate(files.values()):
        path.write_bytes(f"model {i} ".encode() * 3000)
    barrier, errors = threading.Barrier(len(pulled) + len(files)), []

    def run(job):
        barrier.wait()
        try:
            job(ModelStore(cache_dir=tmp_path / "cache", mirror=shared_dir / "models",
                           registry=reg))
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)

    jobs = [lambda s, n=n: s.pull(n) for n in pulled]
    jobs += [lambda s, n=n: s.import_file(files[n], name=n) for n in files]
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = ModelStore(cache_dir=tmp_path / "cache", registry=reg)
    assert sorted(json.loads((tmp_path / "cache" / "imported.json").read_text())["models"]) \
        == sorted(files)
    index = json.loads((tmp_path / "cache" / "verified.json").read_text())["files"]
    for name in [*set(pulled), *files]:
        path = store.models_dir / reg.get(name).file
        assert str(path.resolve()) in index, name
        assert store.resolve(name).origin == "cache"
    assert not [p for p in store.models_dir.iterdir() if p.name.startswith(".partial-")]


def _import_in_a_process(cache: str, names: list[str], files: dict[str, str], barrier) -> None:
    reg = _unpinned_registry(len(files))
    store = ModelStore(cache_dir=cache, registry=reg)
    barrier.wait()
    for name in names:
        store.import_file(files[name], name=name)
        store.resolve(name)  # and remember the verification, writing verified.json


def test_concurrent_imports_from_processes_keep_every_pin(tmp_path):
    import multiprocessing

    n_procs, per_proc = 3, 12
    reg = _unpinned_registry(n_procs * per_proc)
    files = {}
    for i, entry in enumerate(reg):
        files[entry.name] = tmp_path / f"src{i}.onnx"
        files[entry.name].write_bytes(f"model {i} ".encode() * 2000)
    names = list(files)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n_procs)
    procs = [ctx.Process(target=_import_in_a_process,
                         args=(str(tmp_path / "cache"), names[k::n_procs],
                               {n: str(p) for n, p in files.items()}, barrier))
             for k in range(n_procs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n_procs
    _check_every_pin(tmp_path / "cache", reg, files)
    index = json.loads((tmp_path / "cache" / "verified.json").read_text())["files"]
    cached = {str((tmp_path / "cache" / "models" / e.file).resolve()) for e in reg}
    assert cached <= set(index)  # no verification was lost either


_CLI_AT = ("import sys, time; from edgepose.cli import main; "
           "time.sleep(max(0.0, float(sys.argv[1]) - time.time())); sys.exit(main(sys.argv[2:]))")


def test_concurrent_cli_imports_keep_every_pin(tmp_path):
    """Three `edgepose models import` commands at once (started together once
    Python and edgepose are loaded), several rounds."""
    import subprocess
    import sys
    import time

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                         env.get("PYTHONPATH", "")])
    sources = {}
    for name in ("rtmpose-t", "rtmpose-s", "rtmpose-m"):
        sources[name] = tmp_path / f"{name}.onnx"
        sources[name].write_bytes(name.encode() * 10000)
    for round_ in range(3):
        env[registry.CACHE_ENV] = str(tmp_path / f"cache{round_}")
        start = f"{time.time() + 4.0:.3f}"
        procs = [subprocess.Popen([sys.executable, "-c", _CLI_AT, start, "models", "import",
                                   str(src), "--name", name], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for name, src in sources.items()]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outs
        store = ModelStore(cache_dir=tmp_path / f"cache{round_}")
        for name, src in sources.items():
            assert store.imported(store.registry.get(name))["sha256"] == _sha(src.read_bytes())
            assert store.resolve(name).path.read_bytes() == src.read_bytes()


def test_cache_files_have_the_mode_of_ordinary_new_files(shared_dir, tmp_path):
    previous = os.umask(0o027)
    try:
        store = _store(tmp_path, mirror=shared_dir / "models")
        found = store.pull(POSENET)
        src = tmp_path / "rtm.onnx"
        src.write_bytes(b"rtm")
        store.import_file(src, name="rtmpose-t")
    finally:
        os.umask(previous)
    imported = store.models_dir / store.registry.get("rtmpose-t").file
    for path in (found.path, imported, tmp_path / "cache" / "imported.json",
                 tmp_path / "cache" / "verified.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path

"""edgepose._files: sha256, atomic writes with the user's umask, the file lock."""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from edgepose import _files
from edgepose._files import TEMP_PREFIX, atomic_write, file_lock, sha256_file, sha256_stream


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Sets the process umask for one test (tests run serially) and restores it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3_000_001])
def test_sha256_file_equals_hashlib_on_the_whole_bytes(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()
    with open(path, "rb") as f:
        f.read(7)
        assert sha256_stream(f) == hashlib.sha256(data[7:]).hexdigest()


def test_sha256_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        sha256_file(tmp_path / "nope.bin")


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600),
                                            (0o027, 0o640), (0o000, 0o666)])
def test_atomic_write_gives_the_mode_of_an_ordinary_new_file(tmp_path, umask, mask, expected):
    umask(mask)
    path = atomic_write(tmp_path / "a.bin", b"abc")
    open(tmp_path / "plain.bin", "wb").close()
    assert path == tmp_path / "a.bin" and path.read_bytes() == b"abc"
    assert _mode(path) == expected == _mode(tmp_path / "plain.bin")
    # replacing a file keeps no trace of the old one's mode or bytes
    os.chmod(path, 0o600)
    atomic_write(path, lambda f: f.write(b"defg"))
    assert path.read_bytes() == b"defg" and _mode(path) == expected


def test_atomic_write_leaves_the_old_file_and_no_temporary_on_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")

    def fails(f):
        f.write(b"half of the new")
        raise ValueError("stop here")

    with pytest.raises(ValueError, match="stop here"):
        atomic_write(path, fails)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_atomic_write_fsyncs_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(_files.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(_files.os, "replace",
                        lambda a, b: (events.append(("replace", Path(a).name)), real_replace(a, b)))
    atomic_write(tmp_path / "x.json", b"{}")
    assert events[0] == "fsync"
    assert events[1][0] == "replace" and events[1][1].startswith(f"{TEMP_PREFIX}x.json.")
    assert len(events) == 2


def test_atomic_write_into_a_missing_folder_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "x.bin", b"")


# --- the lock ------------------------------------------------------------------------


def _count_with_lock(lock_path: str, counter: str, rounds: int, barrier) -> None:
    """Read-modify-write of a counter file under the lock (a lost update shows)."""
    if barrier is not None:
        barrier.wait()
    for _ in range(rounds):
        with file_lock(lock_path):
            value = int(Path(counter).read_text())
            time.sleep(0.0005)  # widen the window a lost update needs
            Path(counter).write_text(str(value + 1))


def _count_at_once(tmp_path, n: int, rounds: int, worker, barrier) -> int:
    """Runs n workers (threads or processes) that each add 1 to a counter file
    ``rounds`` times under the lock; returns the count."""
    counter = tmp_path / "n"
    counter.write_text("0")
    workers = [worker(target=_count_with_lock,
                      args=(str(tmp_path / "lock"), str(counter), rounds, barrier))
               for _ in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [getattr(w, "exitcode", 0) for w in workers] == [0] * n
    return int(counter.read_text())


def test_the_lock_excludes_threads(tmp_path):
    assert _count_at_once(tmp_path, 8, 25, threading.Thread, threading.Barrier(8)) == 8 * 25


def test_the_lock_excludes_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    assert _count_at_once(tmp_path, 3, 40, ctx.Process, ctx.Barrier(3)) == 3 * 40


def test_the_lock_nests_in_one_thread_and_is_released_after(tmp_path):
    lock = tmp_path / "lock"
    with file_lock(lock):
        with file_lock(lock):  # would deadlock if not reentrant
            pass
        # still held: another thread must wait
        got = threading.Event()

        def take() -> None:
            with file_lock(lock):
                got.set()

        t = threading.Thread(target=take)
        t.start()
        assert not got.wait(0.2)
    assert got.wait(5)
    t.join()


def test_without_fcntl_or_msvcrt_threads_are_still_excluded(tmp_path, monkeypatch):
    monkeypatch.setattr(_files, "fcntl", None)
    monkeypatch.setattr(_files, "msvcrt", None)
    test_the_lock_excludes_threads(tmp_path)


def test_a_lock_file_that_cannot_be_created_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        with file_lock(tmp_path / "missing" / "lock"):
            pass


# --- every writer that goes through a temporary file: the mode of a new file ---------


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield 0o640
    os.umask(previous)


CPM_ONNX = "models/heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"
MOVENET_TFLITE = "models/movenet/movenet_singlepose_lightning_int8_4.tflite"


def test_write_card_outputs_have_the_mode_of_new_files(shared_dir, tmp_path, umask_027):
    pytest.importorskip("onnx")
    ov = pytest.importorskip("openvino")
    from edgepose.card import read_card, write_card
    from edgepose.presets import preset_card

    card = preset_card("cpm-aic14")
    ir = tmp_path / "src" / "cpm.xml"
    ir.parent.mkdir()
    ov.save_model(ov.convert_model(shared_dir / CPM_ONNX), ir, compress_to_fp16=False)
    written = [write_card(shared_dir / CPM_ONNX, tmp_path / "cpm.onnx", card),
               write_card(shared_dir / MOVENET_TFLITE, tmp_path / "movenet.tflite",
                          preset_card("movenet-lightning")),
               write_card(ir, tmp_path / "cpm.xml", card)]
    for path in written + [tmp_path / "cpm.bin"]:
        assert _mode(path) == umask_027, path
    for path in written:
        assert read_card(path) is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_onnx_exports_have_the_mode_of_new_files(shared_dir, tmp_path, umask_027):
    pytest.importorskip("onnx")
    export_onnx = pytest.importorskip("edgepose_export.onnx")
    from edgepose.card import read_card
    from edgepose.presets import preset_card

    card = preset_card("cpm-aic14")
    fp32 = export_onnx.attach_card(shared_dir / CPM_ONNX, tmp_path / "cpm_fp32.onnx", card)
    fp16 = export_onnx.onnx_to_fp16(fp32, tmp_path / "cpm_fp16.onnx")
    for path in (fp32, fp16):
        assert _mode(path) == umask_027, path
    assert read_card(fp16).provenance["derived_from"]["sha256"] == sha256_file(fp32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpm_fp16.onnx", "cpm_fp32.onnx"]


def test_openvino_exports_have_the_mode_of_new_files_and_no_leftovers(shared_dir, tmp_path,
                                                                        umask_027):
    pytest.importorskip("openvino")
    export_ov = pytest.importorskip("edgepose_export.openvino")
    from edgepose.card import read_card
    from edgepose.presets import preset_card

    xml = export_ov.to_openvino(shared_dir / CPM_ONNX, tmp_path / "cpm.xml",
                                preset_card("cpm-aic14"), "fp32")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpm.bin", "cpm.xml"]
    for path in (xml, xml.with_suffix(".bin")):
        assert _mode(path) == umask_027, path
    card = read_card(xml)
    assert card.provenance["source_sha256"] == sha256_file(shared_dir / CPM_ONNX)


def test_export_model_artefacts_have_the_mode_of_new_files(shared_dir, tmp_path, umask_027):
    """Through the whole export: the card is attached, parity measured, and the
    card rewritten into the artefact (a temporary copy renamed over it)."""
    pytest.importorskip("openvino")
    api = pytest.importorskip("edgepose_export.api")
    from edgepose.card import read_card

    result = api.export_model(shared_dir / CPM_ONNX, targets="onnx,openvino", precisions="fp32",
                              out_dir=tmp_path, parity_inputs=shared_dir / "data/coco",
                              boxes=shared_dir / "data/coco/test_coco.json", latency_runs=1,
                              preset="cpm-aic14", force=True)
    paths = [a.path for a in result.artifacts]
    assert sorted(p.suffix for p in paths) == [".onnx", ".xml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in paths] + [p.with_suffix(".bin").name for p in paths if p.suffix == ".xml"])
    for path in tmp_path.iterdir():
        assert _mode(path) == umask_027, path
    for path in paths:
        assert read_card(path).provenance["parity"]["images"] > 0


def test_fsync_file_flushes_by_path_and_names_a_missing_file(tmp_path, monkeypatch):
    path = tmp_path / "written-by-a-library.bin"
    path.write_bytes(b"ir")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(_files.os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino),
                                                        real_fsync(fd)))
    _files.fsync_file(path)
    assert synced == [path.stat().st_ino]
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        _files.fsync_file(tmp_path / "missing.bin")

"""Models in a device lab: by name and sha256, shipped to a worker that lacks them, verified."""
from __future__ import annotations

import hashlib
import shutil

import pytest

from edgepose.fleet.models import (ModelFile, ModelRef, deliver_model, describe_model, find_model,
                                   lab_cache_dir, receive_model)
from edgepose.registry import HashMismatchError

MOVENET = "models/movenet/movenet_singlepose_lightning_int8_4.tflite"
MOVENET_ONNX = "models/movenet/onnx_converted/movenet_singlepose_lightning_int8_4.onnx"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_model_places(monkeypatch, tmp_path):
    """This process sees no model dir or mirror, and its own empty cache."""
    monkeypatch.delenv("EDGEPOSE_MODEL_DIR", raising=False)
    monkeypatch.delenv("EDGEPOSE_MIRROR", raising=False)
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "client-cache"))


def test_describe_model_hashes_the_file(shared_dir):
    ref, paths = describe_model(shared_dir / MOVENET)
    assert ref == ModelRef("movenet_singlepose_lightning_int8_4.tflite",
                           (ModelFile(paths[0].name, _sha(paths[0]), paths[0].stat().st_size),))
    assert not ref.registry and ref.key == ref.files[0].sha256 and paths == [shared_dir / MOVENET]


def test_describe_model_of_a_registry_name(shared_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEPOSE_MODEL_DIR", str(shared_dir / "models/movenet"))
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path))
    ref, paths = describe_model("movenet-lightning")
    assert ref.registry and ref.name == "movenet-lightning" and len(paths) == 1
    assert ref.key == _sha(shared_dir / MOVENET)
    from edgepose.registry import default_registry

    assert ref.preset == default_registry().get("movenet-lightning").preset is not None


def test_a_registry_models_preset_applies_on_the_worker_as_for_a_name(shared_dir):
    from edgepose.fleet.eval import _entry_preset

    ref = ModelRef("movenet-lightning", (ModelFile("m.tflite", "0" * 64, 1),), registry=True,
                   preset="movenet-lightning")
    options = {"preset": None}
    _entry_preset(ref, str(shared_dir / MOVENET), options, "preset")  # the file has no card
    assert options == {"preset": "movenet-lightning"}
    given = {"preset": "other"}
    _entry_preset(ref, str(shared_dir / MOVENET), given, "preset")
    assert given == {"preset": "other"}


def test_a_worker_without_the_model_gets_it_shipped_and_verified(lab_client, shared_dir,
                                                                  tmp_path):
    ref, paths = describe_model(shared_dir / MOVENET)
    workers = sorted(lab_client.scheduler_info(n_workers=-1)["workers"])
    how = deliver_model(lab_client, ref, paths, workers, cache_dir=tmp_path)
    assert set(how.values()) == {"shipped"} and sorted(how) == workers
    landed = lab_cache_dir(tmp_path) / ref.key / paths[0].name
    assert _sha(landed) == ref.key
    # the next run finds it, checked by hash, and ships nothing
    again = deliver_model(lab_client, ref, paths, workers, cache_dir=tmp_path)
    assert set(again.values()) == {"lab cache"}
    # a damaged cache file is not used: it is shipped again
    landed.write_bytes(b"x" * ref.files[0].size)
    assert set(deliver_model(lab_client, ref, paths, workers, cache_dir=tmp_path).values()) \
        == {"shipped"}
    assert _sha(landed) == ref.key


def test_a_wrong_hash_is_refused_on_the_worker(lab_client, shared_dir, tmp_path):
    ref, paths = describe_model(shared_dir / MOVENET)
    data = bytearray(paths[0].read_bytes())
    data[100] ^= 1
    worker = sorted(lab_client.scheduler_info(n_workers=-1)["workers"])[0]
    future = lab_client.submit(receive_model, ref, 0, bytes(data), cache_dir=str(tmp_path),
                               workers=[worker], pure=False)
    with pytest.raises(HashMismatchError, match=r"refused the shipped file "
                       r"movenet_singlepose_lightning_int8_4\.tflite .* expected \d+ bytes with "
                       f"sha256 {ref.key}"):
        future.result()
    assert not (lab_cache_dir(tmp_path) / ref.key / paths[0].name).exists()


def test_a_model_over_the_shipping_limit_is_refused(lab_client, shared_dir, tmp_path):
    ref, paths = describe_model(shared_dir / MOVENET)
    workers = sorted(lab_client.scheduler_info(n_workers=-1)["workers"])
    with pytest.raises(ValueError, match=r"lack model 'movenet_singlepose_lightning_int8_4"
                       r"\.tflite', which is 2\.\d MB, over the shipping limit of 1 MB "
                       r"\(--max-ship-mb\)\. Put the file into each worker's"):
        deliver_model(lab_client, ref, paths, workers, max_ship_mb=1, cache_dir=tmp_path)


def test_an_openvino_ir_travels_as_its_two_files(lab_client, shared_dir, tmp_path):
    ov = pytest.importorskip("openvino")
    xml = tmp_path / "ir" / "movenet.xml"
    xml.parent.mkdir()
    ov.save_model(ov.convert_model(str(shared_dir / MOVENET_ONNX)), str(xml))
    ref, paths = describe_model(xml)
    assert [f.name for f in ref.files] == ["movenet.xml", "movenet.bin"]
    assert paths == [xml, xml.with_suffix(".bin")]
    worker = sorted(lab_client.scheduler_info(n_workers=-1)["workers"])[0]
    cache = tmp_path / "cache"
    assert deliver_model(lab_client, ref, paths, [worker], cache_dir=cache) == {worker: "shipped"}
    found = lab_client.submit(find_model, ref, cache_dir=str(cache), workers=[worker],
                              pure=False).result()
    assert found["place"] == "lab cache"
    landed = lab_cache_dir(cache) / ref.key
    assert found["path"] == str(landed / "movenet.xml")
    assert _sha(landed / "movenet.bin") == ref.files[1].sha256


def test_an_ir_without_its_bin_is_refused(shared_dir, tmp_path):
    xml = tmp_path / "lonely.xml"
    xml.write_text("<net/>")
    with pytest.raises(FileNotFoundError, match=r"OpenVINO model .*lonely\.xml has no weights "
                       r"file lonely\.bin beside it"):
        describe_model(xml)


def test_find_model_looks_in_the_mirror_and_checks_the_hash(shared_dir, tmp_path, monkeypatch,
                                                            no_model_places):
    ref, _ = describe_model(shared_dir / MOVENET)
    mirror = tmp_path / "mirror" / "deep"
    mirror.mkdir(parents=True)
    monkeypatch.setenv("EDGEPOSE_MIRROR", str(tmp_path / "mirror"))
    (mirror / ref.files[0].name).write_bytes(b"not the model")
    missing = find_model(ref, cache_dir=tmp_path / "cache")
    assert missing["path"] is None
    assert any(f"no {ref.files[0].name} with sha256 {ref.key[:12]}" in t
               for t in missing["looked"])
    shutil.copyfile(shared_dir / MOVENET, mirror / ref.files[0].name)
    assert find_model(ref, cache_dir=tmp_path / "cache") == {
        "path": str(mirror / ref.files[0].name), "place": "mirror"}


def test_find_model_uses_the_workers_registry(shared_dir, tmp_path, monkeypatch,
                                              no_model_places):
    monkeypatch.setenv("EDGEPOSE_MODEL_DIR", str(shared_dir / "models/movenet"))
    ref, _ = describe_model("movenet-lightning")
    found = find_model(ref, cache_dir=tmp_path / "cache")
    assert found["place"] == "registry" and found["path"].endswith(ref.files[0].name)
    # a registry pin that differs from the client's file is not used
    other = ModelRef("movenet-lightning", (ModelFile(ref.files[0].name, "0" * 64,
                                                     ref.files[0].size),), registry=True)
    looked = find_model(other, cache_dir=tmp_path / "cache")
    assert looked["path"] is None
    assert any("is pinned to sha256 cd7cc22f" in t for t in looked["looked"])

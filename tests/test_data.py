"""edgepose.data: the sample photo shipped in the package, and its licence."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgepose
from edgepose.data import SAMPLE_NAME, sample_image, sample_path


def test_sample_path_is_the_packaged_jpeg():
    path = sample_path()
    assert path == Path(edgepose.__file__).parent / "data" / SAMPLE_NAME
    data = path.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and len(data) < 100_000  # a JPEG, small


def test_sample_image_is_the_decoded_photo_in_bgr(shared_dir):
    cv2 = pytest.importorskip("cv2")
    image = sample_image()
    assert image.shape == (426, 640, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, cv2.imread(str(sample_path()), cv2.IMREAD_COLOR))
    # it is the google-coral photo, downscaled: compare with the original, resized here
    original = cv2.imread(str(shared_dir / "data/coral/test_couple.jpg"), cv2.IMREAD_COLOR)
    reference = cv2.resize(original, (640, 426), interpolation=cv2.INTER_AREA)
    error = np.abs(image.astype(np.int16) - reference.astype(np.int16))
    assert error.mean() < 3.0  # JPEG quality 85, nothing else changed


def test_the_notice_names_the_source_and_the_licence_ships_beside_it():
    folder = sample_path().parent
    notice = (folder / "NOTICE").read_text()
    assert "test_couple.jpg" in notice and "https://github.com/google-coral/test_data" in notice
    assert "Apache License 2.0" in notice and "LICENSE-Apache-2.0.txt" in notice
    licence = (folder / "LICENSE-Apache-2.0.txt").read_text()
    assert licence.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in licence


def test_the_sample_is_package_data():
    import sys

    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import tomllib

    from tests.conftest import REPO_ROOT

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {"edgepose.cli", "edgepose.data"} <= set(config["packages"])
    shipped = set(config["package-data"]["edgepose.data"])
    assert {SAMPLE_NAME, "NOTICE", "LICENSE-Apache-2.0.txt"} <= shipped
    for name in shipped:
        assert (sample_path().parent / name).is_file()

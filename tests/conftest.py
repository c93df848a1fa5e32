"""Shared fixtures: where the real models and data live.

The real models and annotated images are read in place from the folder named
by ``EDGEPOSE_SHARED``, else ``../shared`` beside the repository root. Suites
that need them fail loudly, naming the path they looked in, when it is missing.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_path() -> Path:
    env = os.environ.get("EDGEPOSE_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    root = shared_path()
    if not (root / "models").is_dir() or not (root / "data").is_dir():
        pytest.fail(
            f"The real models and data were not found in {root} (models/ and data/). "
            "Set EDGEPOSE_SHARED to the folder that holds them.")
    return root


@pytest.fixture(scope="session")
def panning_video(shared_dir, tmp_path_factory) -> Path:
    """A real 24-frame mp4: 480 x 360 crops panning over a COCO image with
    five people (tests.video.scenes.panning_clip)."""
    from tests.video.scenes import panning_clip, write_video

    clip, _, _ = panning_clip(shared_dir, frames=24)
    path = tmp_path_factory.mktemp("video") / "pan.mp4"
    write_video(path, clip)
    return path


@pytest.fixture(scope="module")
def models(shared_dir):
    """The folder of the real models."""
    return shared_dir / "models"


@pytest.fixture(scope="module")
def coco(shared_dir):
    """data/coco: the pycocotools COCO of test_coco.json and {image_id: BGR image}."""
    import contextlib
    import io

    pycocotools = pytest.importorskip("pycocotools.coco")
    cv2 = pytest.importorskip("cv2")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = pycocotools.COCO(str(shared_dir / "data/coco/test_coco.json"))
    images = {i: cv2.imread(str(shared_dir / "data/coco" / gt.loadImgs(i)[0]["file_name"]))
              for i in gt.getImgIds()}
    return gt, images

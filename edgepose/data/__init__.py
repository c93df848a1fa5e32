"""Data files shipped with edgepose: a sample photo with people in it.

``sample_people.jpg`` is ``test_couple.jpg`` of the google-coral test data
(Apache-2.0, see ``NOTICE`` and ``LICENSE-Apache-2.0.txt`` beside it),
downscaled to 640 x 426. The command line uses it when no image is given
(``edgepose bench MODEL``, ``edgepose run --model MODEL``)::

    from edgepose.data import sample_image, sample_path

    with edgepose.Estimator("movenet.tflite") as est:
        poses = est(sample_image())
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["SAMPLE_NAME", "sample_path", "sample_image"]

#: File name of the sample photo inside this package.
SAMPLE_NAME = "sample_people.jpg"


def sample_path() -> Path:
    """The path of the sample photo (a 640 x 426 JPEG of two people).

    Raises:
        FileNotFoundError: the installation lacks the file (a broken install:
            reinstall edgepose).
    """
    path = Path(str(resources.files(__name__).joinpath(SAMPLE_NAME)))
    if not path.is_file():
        raise FileNotFoundError(f"The sample photo {path} is missing from this edgepose "
                                "installation: reinstall edgepose (pip install --force-reinstall "
                                "edgepose).")
    return path


def sample_image() -> np.ndarray:
    """The sample photo as an ``(H, W, 3)`` uint8 BGR array (OpenCV's order,
    what :class:`edgepose.Estimator` takes), H = 426, W = 640.

    Raises:
        FileNotFoundError: as :func:`sample_path`.
        ImportError: OpenCV is not installed (``pip install 'edgepose[vision]'``).
    """
    from edgepose.images import import_cv2

    cv2 = import_cv2()
    image = cv2.imread(str(sample_path()), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"The sample photo {sample_path()} could not be decoded: reinstall "
                         "edgepose.")
    return image

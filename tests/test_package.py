"""The package as a user meets it: cheap import, lazy submodules, thread safety."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import edgepose

HEAVY = ["onnxruntime", "openvino", "ai_edge_litert", "tflite_runtime", "tensorflow",
         "torch", "cv2", "pycocotools"]


def test_import_loads_no_runtime_and_prints_nothing():
    code = ("import sys, edgepose; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""


def test_submodules_load_on_first_use():
    assert edgepose.ops.decode_simcc is not None
    with pytest.raises(AttributeError, match="no attribute 'Estimatr'"):
        edgepose.Estimatr  # noqa: B018


@pytest.mark.arm64
@pytest.mark.skipif(sys.implementation.name != "cpython" or sys.version_info < (3, 11)
                    or sys.platform == "win32",
                    reason="the stable-ABI build is for CPython 3.11+ (3.10 builds per version)")
def test_extension_is_built_for_the_stable_abi():
    """setup.py builds the C core against the limited API on CPython 3.11+, so
    one cp311-abi3 wheel per architecture serves Python 3.11 and later."""
    import edgepose._core

    assert edgepose._core.__file__.endswith(".abi3.so"), edgepose._core.__file__


def test_version_matches_metadata():
    from importlib.metadata import version
    assert edgepose.__version__ == version("edgepose")


def test_concurrent_decoding_matches_serial():
    """The kernels release the GIL and share no state: threads get the serial answers."""
    rng = np.random.default_rng(7)
    heatmaps = [rng.random((4, 17, 64, 48), dtype=np.float32) for _ in range(8)]
    simcc = [(rng.random((4, 17, 384), dtype=np.float32), rng.random((4, 17, 512), dtype=np.float32))
             for _ in range(8)]

    def work(i):
        return (edgepose.ops.decode_heatmap(heatmaps[i], "dark"),
                edgepose.ops.decode_simcc(*simcc[i]))

    serial = [work(i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(work, range(8)))
    for (hs, ss), (ht, st) in zip(serial, threaded):
        for a, b in zip(hs + ss, ht + st):
            np.testing.assert_array_equal(a, b)

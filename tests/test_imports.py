"""What a device run imports: a TFLite run loads no other runtime, no torch and no export code."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

OTHERS = ("onnxruntime", "openvino", "torch", "tensorflow", "edgepose_export", "onnx", "nncf")


@pytest.mark.parametrize("model, runtime", [
    ("movenet/movenet_singlepose_lightning_int8_4.tflite", "ai_edge_litert"),
    ("detectors/yolox_yolox_nano_416x416.onnx", "onnxruntime"),
])
def test_a_run_imports_only_its_own_runtime(shared_dir, model, runtime):
    code = (
        "import json, sys, numpy as np, edgepose\n"
        f"with edgepose.Estimator({str(shared_dir / 'models' / model)!r}) as est:\n"
        "    est(np.full((240, 320, 3), 90, np.uint8))\n"
        f"print(json.dumps(sorted(m for m in {OTHERS!r} if m in sys.modules)))\n"
    ) if runtime == "ai_edge_litert" else (
        "import json, sys, numpy as np\n"
        "from edgepose.detectors import PersonDetector\n"
        "from edgepose.backends import open_backend\n"
        f"with PersonDetector(open_backend({str(shared_dir / 'models' / model)!r}), "
        "kind='yolox') as det:\n"
        "    det(np.full((240, 320, 3), 90, np.uint8))\n"
        f"print(json.dumps(sorted(m for m in {OTHERS!r} if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    expected = [] if runtime == "ai_edge_litert" else ["onnxruntime"]
    assert loaded == expected, out.stderr[-2000:]

"""The modules' old names (edgepose.tracking, .smoothing, .pipeline) still
work: they re-export the objects of edgepose.video, and importing them warns
with a DeprecationWarning, which Python shows for the user's own code
(``__main__``) and hides when a library (cli.py, the benchmarks) imports
them. Each case runs in a fresh interpreter, as a module warns once."""
from __future__ import annotations

import subprocess
import sys

import pytest

import edgepose
import edgepose.video

OLD = {
    "tracking": ["PoseTracker", "solve_assignment", "match_by_cost"],
    "smoothing": ["OneEuroParams", "OneEuroFilter", "one_euro_step"],
    "pipeline": ["FRAME_STAGES", "TrackedFrame", "PipeliningReport", "video_frames", "prefetch",
                 "latest", "track_frames", "measure_pipelining"],
}


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)


@pytest.mark.parametrize("module", sorted(OLD))
def test_old_module_reexports_the_new_objects(module):
    code = (f"import edgepose.video, edgepose.{module} as old\n"
            f"print(old.__all__ == {OLD[module]!r})\n"
            f"print(all(getattr(old, n) is getattr(edgepose.video, n) for n in old.__all__))")
    assert _python(code).stdout.split() == ["True", "True"]


@pytest.mark.parametrize("module", sorted(OLD))
def test_old_module_warns_the_users_code_once(module):
    result = _python(f"import edgepose.{module}\nimport edgepose.{module}")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("<string>:1: DeprecationWarning: "
                               f"edgepose.{module} is deprecated: import ")
    assert lines[0].endswith("from edgepose.video.")


def test_old_modules_are_quiet_when_a_library_imports_them():
    code = ("import importlib\n"
            "for name in ('tracking', 'smoothing', 'pipeline'):\n"
            "    importlib.import_module('edgepose.' + name)")
    assert _python(code).stderr == ""


def test_top_level_names_come_from_video():
    assert edgepose.PoseTracker is edgepose.video.PoseTracker
    assert edgepose.OneEuroParams is edgepose.video.OneEuroParams
    assert "video" in edgepose.__all__
    assert not {"tracking", "smoothing", "pipeline"} & set(edgepose.__all__)

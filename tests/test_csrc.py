"""Builds the C core's own test program with AddressSanitizer and
UndefinedBehaviorSanitizer and runs it: known answers plus a seeded fuzz loop
over random shapes, strides and values on exactly-sized buffers, so any
out-of-bounds read in the kernels fails this test."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

CSRC = REPO_ROOT / "csrc"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                    reason="needs make and a C compiler (cc)")
def test_c_core_under_sanitizers(tmp_path):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    result = subprocess.run(
        ["make", "-C", str(CSRC), "test", f"BUILD={tmp_path}", "FUZZ_ITERATIONS=20000"],
        capture_output=True, text=True, env=env, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "C core: all checks passed" in output


@pytest.mark.skipif(
    shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64-static") is None,
    reason="needs Debian's gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user-static "
           "(.ci/arm64.sh installs them)")
def test_c_core_on_aarch64_under_qemu(tmp_path):
    """The same C, cross-compiled for aarch64 (NEON argmax path), run under qemu."""
    result = subprocess.run(
        ["make", "-C", str(CSRC), "test", f"BUILD={tmp_path}", "CC=aarch64-linux-gnu-gcc",
         "SANITIZE=", "RUN=qemu-aarch64-static -L /usr/aarch64-linux-gnu",
         "FUZZ_ITERATIONS=5000"],
        capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "argmax paths checked: scalar neon" in output
    assert "C core: all checks passed" in output

"""edgepose.versions: installed versions from package metadata."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.versions import installed_version, installed_versions


def test_an_installed_distribution_and_a_missing_one():
    assert installed_version("numpy") == np.__version__
    assert installed_version("pytest") == pytest.__version__
    assert installed_version("no-such-distribution-edgepose") is None


def test_installed_versions_keep_the_order_and_leave_out_the_absent():
    got = installed_versions(["pytest", "no-such-distribution-edgepose", "numpy"])
    assert list(got) == ["pytest", "numpy"] and got["numpy"] == np.__version__
    assert installed_versions([]) == {}

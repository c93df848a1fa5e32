"""Deprecated alias of :mod:`edgepose.video.tracker` and
:mod:`edgepose.video.assignment`: import from :mod:`edgepose.video`."""
from __future__ import annotations

import warnings

from edgepose.video.assignment import match_by_cost, solve_assignment
from edgepose.video.tracker import PoseTracker

__all__ = ["PoseTracker", "solve_assignment", "match_by_cost"]

warnings.warn("edgepose.tracking is deprecated: import PoseTracker, solve_assignment and "
              "match_by_cost from edgepose.video.", DeprecationWarning, stacklevel=2)

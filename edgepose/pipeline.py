"""Deprecated alias of :mod:`edgepose.video.pipeline`: import from
:mod:`edgepose.video`."""
from __future__ import annotations

import warnings

from edgepose.video.pipeline import (FRAME_STAGES, PipeliningReport, TrackedFrame, latest,
                                     measure_pipelining, prefetch, track_frames, video_frames)

__all__ = ["FRAME_STAGES", "TrackedFrame", "PipeliningReport", "video_frames", "prefetch",
           "latest", "track_frames", "measure_pipelining"]

warnings.warn("edgepose.pipeline is deprecated: import its names from edgepose.video.",
              DeprecationWarning, stacklevel=2)

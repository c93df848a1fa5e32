"""Video: tracking people's poses through frames, smoothing them, pipelining.

Modules:
    tracker: :class:`PoseTracker`, poses per frame into tracks with stable ids.
    assignment: the linear assignment solver and the OKS / IoU similarities
        the tracker matches people by.
    smoothing: the One-Euro filter, each track's keypoints through one.
    pipeline: reading video, and decoding and detecting ahead on threads.
    threads: the worker threads the pipeline runs on.

The names below are those of the modules, re-exported.
"""
from __future__ import annotations

from edgepose.video.assignment import match_by_cost, solve_assignment
from edgepose.video.pipeline import (FRAME_STAGES, PipeliningReport, TrackedFrame, latest,
                                     measure_pipelining, prefetch, track_frames, video_frames)
from edgepose.video.smoothing import OneEuroFilter, OneEuroParams, one_euro_step
from edgepose.video.tracker import PoseTracker

__all__ = ["PoseTracker", "solve_assignment", "match_by_cost", "OneEuroParams", "OneEuroFilter",
           "one_euro_step", "FRAME_STAGES", "TrackedFrame", "PipeliningReport", "video_frames",
           "prefetch", "latest", "track_frames", "measure_pipelining"]

"""Deprecated alias of :mod:`edgepose.video.smoothing`: import from
:mod:`edgepose.video`."""
from __future__ import annotations

import warnings

from edgepose.video.smoothing import OneEuroFilter, OneEuroParams, one_euro_step

__all__ = ["OneEuroParams", "OneEuroFilter", "one_euro_step"]

warnings.warn("edgepose.smoothing is deprecated: import OneEuroParams, OneEuroFilter and "
              "one_euro_step from edgepose.video.", DeprecationWarning, stacklevel=2)

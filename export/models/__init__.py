"""Reference PyTorch architectures for the heads edgepose decodes, and synthetic training data.

- :func:`rtmpose` / :class:`RTMPose`: CSPNeXt + RTMCC SimCC head (sizes t, s,
  m, l) with MMPose's parameter names, so official RTMPose checkpoints load
  (:meth:`RTMPose.from_mmpose_checkpoint`, :func:`load_mmpose_checkpoint`);
- :func:`simplebaseline` / :class:`SimpleBaseline`: ResNet + deconvolution
  heatmap head, MMPose's names;
- :func:`openpose` / :class:`OpenPose`: a small OpenPose-style model with part
  heatmaps and part affinity fields;
- :func:`render_figures`, :func:`train_briefly`: synthetic stick figures and
  a short CPU training loop, for models with peaked outputs.

Each model's ``card()`` returns the :class:`edgepose.card.ModelCard` the
runtime needs. Importing this package imports torch (``edgepose_export``
itself does not import it). The factories ``rtmpose``, ``simplebaseline``
and ``openpose`` share their modules' names and take their place in this
namespace; reach a module's other contents with
``from edgepose_export.models.rtmpose import ...``.
"""
from __future__ import annotations

from edgepose_export.models.openpose import COCO18_LIMBS, OpenPose, openpose
from edgepose_export.models.rtmpose import (RTMPOSE_SIZES, RTMPose, load_mmpose_checkpoint,
                                            rtmpose)
from edgepose_export.models.simplebaseline import RESNET_DEPTHS, SimpleBaseline, simplebaseline
from edgepose_export.models.synthetic import (FigureSet, TrainingReport, keypoint_error_px,
                                              preprocess, render_figures, train_briefly)

__all__ = ["COCO18_LIMBS", "FigureSet", "OpenPose", "RESNET_DEPTHS", "RTMPOSE_SIZES", "RTMPose",
           "SimpleBaseline", "TrainingReport", "keypoint_error_px", "load_mmpose_checkpoint",
           "openpose", "preprocess", "render_figures", "rtmpose", "simplebaseline",
           "train_briefly"]

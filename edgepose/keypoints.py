"""Keypoint sets: names, skeletons, flip pairs, OKS sigmas, and conversions.

A :class:`KeypointSet` describes what the K channels of a pose model mean.
The sets edgepose knows are module constants, registered by name in
:data:`KEYPOINT_SETS` (the name a model card stores):

============  ====  =========================================================
name          K     order
============  ====  =========================================================
coco17        17    COCO (also MoveNet, PoseNet, RTMPose-COCO)
coco18        18    OpenPose COCO-18 (tf-pose-estimation ``CocoPart``)
aic14         14    AI Challenger, as in its annotation files
mpii16        16    MPII
crowdpose14   14    CrowdPose
blazepose33   33    MediaPipe pose landmarks (the models output 39 = 33 + 6
                    auxiliary landmarks; conversions accept both)
unified21     21    COCO-17 + pelvis, thorax, upper_neck, head_top
============  ====  =========================================================

Names are snake_case and mean the same body point in every set they appear
in (``right_shoulder`` is the person's right shoulder everywhere), except
``neck``, which differs between datasets: OpenPose's neck is the midpoint of
the shoulders (the ``thorax`` of MPII), while the AI Challenger and CrowdPose
neck is MPII's ``upper_neck`` (the correspondence MMPose uses to merge these
datasets). :func:`convert_keypoints` accounts for this.

Sigmas are the per-keypoint OKS constants (COCO convention: the COCO
evaluation's ``sigmas``, not ``2 * sigma``); ``None`` where no dataset
defines them.
"""
from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._validate import is_int
from edgepose.ops import COCO17_SIGMAS

__all__ = [
    "KeypointSet",
    "CocoKeypoint",
    "COCO17",
    "COCO18",
    "AIC14",
    "MPII16",
    "CROWDPOSE14",
    "BLAZEPOSE33",
    "UNIFIED21",
    "KEYPOINT_SETS",
    "get_keypoint_set",
    "unnamed_keypoint_set",
    "is_unnamed",
    "can_convert",
    "convert_keypoints",
]


@dataclass(frozen=True, eq=False, repr=False)
class KeypointSet:
    """The meaning of a pose model's K keypoint channels.

    Attributes:
        name: the registry name (``"coco17"``), as stored in model cards.
        names: ``(K,)`` keypoint names, in channel order.
        skeleton: edges ``(i, j)`` between keypoint indices, for drawing.
        flip_pairs: ``(left, right)`` index pairs that swap under a
            horizontal flip; keypoints in no pair map to themselves.
        sigmas: ``(K,)`` float32 read-only OKS sigmas, or None.

    Raises:
        ValueError: duplicate or empty names, indices out of range, a
            keypoint in two flip pairs, or sigmas of the wrong length or
            not positive and finite.
    """

    name: str
    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}.")
        names = tuple(self.names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"names must be non-empty strings, got {self.names!r}.")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Keypoint set {self.name!r} repeats names {duplicates}.")
        k = len(names)
        skeleton = _index_pairs(self.name, "skeleton", self.skeleton, k)
        flip_pairs = _index_pairs(self.name, "flip_pairs", self.flip_pairs, k)
        flipped = [i for pair in flip_pairs for i in pair]
        if len(flipped) != len(set(flipped)):
            raise ValueError(
                f"Keypoint set {self.name!r}: a keypoint appears in more than one flip pair "
                f"in {flip_pairs}.")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "skeleton", skeleton)
        object.__setattr__(self, "flip_pairs", flip_pairs)
        if self.sigmas is not None:
            sigmas = np.array(self.sigmas, dtype=np.float32)  # a private copy
            if sigmas.shape != (k,):
                raise ValueError(
                    f"Keypoint set {self.name!r}: sigmas must have shape ({k},), one per "
                    f"keypoint, got {sigmas.shape}.")
            if not (np.isfinite(sigmas).all() and (sigmas > 0).all()):
                raise ValueError(f"Keypoint set {self.name!r}: sigmas must be positive and finite.")
            sigmas.setflags(write=False)
            object.__setattr__(self, "sigmas", sigmas)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"KeypointSet({self.name!r}, K={len(self.names)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeypointSet):
            return NotImplemented
        if (self.name, self.names, self.skeleton, self.flip_pairs) != (
                other.name, other.names, other.skeleton, other.flip_pairs):
            return False
        if self.sigmas is None or other.sigmas is None:
            return self.sigmas is None and other.sigmas is None
        return bool(np.array_equal(self.sigmas, other.sigmas))

    def __hash__(self) -> int:
        return hash((self.name, self.names, self.skeleton, self.flip_pairs))

    @property
    def num_keypoints(self) -> int:
        """K, the number of keypoints."""
        return len(self.names)

    @property
    def flip_indices(self) -> tuple[int, ...]:
        """``(K,)`` permutation: channel ``i`` of a flipped image is channel ``flip_indices[i]``."""
        perm = list(range(len(self.names)))
        for i, j in self.flip_pairs:
            perm[i], perm[j] = j, i
        return tuple(perm)

    def index(self, name: str) -> int:
        """The channel index of keypoint ``name``.

        Raises:
            ValueError: ``name`` is not in this set (the message lists the names).
        """
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(
                f"Keypoint set {self.name!r} has no keypoint {name!r}; its keypoints are "
                f"{', '.join(self.names)}.") from None


def _index_pairs(set_name: str, what: str, pairs, k: int) -> tuple[tuple[int, int], ...]:
    out = []
    for pair in pairs:
        pair = tuple(pair)
        if (len(pair) != 2 or not all(is_int(i)
                                      for i in pair)):
            raise ValueError(
                f"Keypoint set {set_name!r}: {what} must be pairs of integer indices, got {pair!r}.")
        i, j = int(pair[0]), int(pair[1])
        if not (0 <= i < k and 0 <= j < k) or i == j:
            raise ValueError(
                f"Keypoint set {set_name!r}: {what} pair {(i, j)} must be two different indices "
                f"in [0, {k}).")
        out.append((i, j))
    return tuple(out)


class CocoKeypoint(enum.IntEnum):
    """Indices of the COCO-17 keypoints (``keypoints[:, CocoKeypoint.LEFT_WRIST]``)."""

    NOSE = 0
    LEFT_EYE = 1
    RIGHT_EYE = 2
    LEFT_EAR = 3
    RIGHT_EAR = 4
    LEFT_SHOULDER = 5
    RIGHT_SHOULDER = 6
    LEFT_ELBOW = 7
    RIGHT_ELBOW = 8
    LEFT_WRIST = 9
    RIGHT_WRIST = 10
    LEFT_HIP = 11
    RIGHT_HIP = 12
    LEFT_KNEE = 13
    RIGHT_KNEE = 14
    LEFT_ANKLE = 15
    RIGHT_ANKLE = 16


_COCO17_NAMES = tuple(k.name.lower() for k in CocoKeypoint)
# COCO's own skeleton (person_keypoints annotations), converted to 0-based indices.
_COCO17_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
_COCO17_FLIP = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

#: COCO-17 (COCO keypoints, MoveNet, PoseNet, RTMPose-COCO).
COCO17 = KeypointSet("coco17", _COCO17_NAMES, _COCO17_SKELETON, _COCO17_FLIP, COCO17_SIGMAS)

#: OpenPose COCO-18 (tf-pose-estimation ``CocoPart``). ``neck`` is the
#: shoulder midpoint. The skeleton is tf-pose's ``CocoPairs`` in order, so
#: edge ``i`` is PAF limb ``i``; the last two (shoulder-ear) are usually not
#: drawn.
COCO18 = KeypointSet(
    "coco18",
    ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
     "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
     "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear"),
    ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
     (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17)),
    ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)),
)

#: AI Challenger (annotation order). Sigmas as MMPose's ``aic.py`` (from the
#: AI Challenger evaluation script). ``neck`` is MPII's upper neck.
AIC14 = KeypointSet(
    "aic14",
    ("right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
     "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
     "left_ankle", "head_top", "neck"),
    ((2, 1), (1, 0), (0, 13), (13, 3), (3, 4), (4, 5), (8, 7), (7, 6), (6, 9), (9, 10),
     (10, 11), (12, 13), (0, 6), (3, 9)),
    ((0, 3), (1, 4), (2, 5), (6, 9), (7, 10), (8, 11)),
    (0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144,
     0.03909642, 0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081,
     0.01291456, 0.01236173),
)

#: MPII. Sigmas as MMPose's ``mpii.py`` (adapted there from COCO; note its
#: 0.179 for the shoulders, kept as published so OKS figures match MMPose's).
MPII16 = KeypointSet(
    "mpii16",
    ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
     "pelvis", "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow",
     "right_shoulder", "left_shoulder", "left_elbow", "left_wrist"),
    ((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (8, 12),
     (12, 11), (11, 10), (8, 13), (13, 14), (14, 15)),
    ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    (0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026,
     0.062, 0.072, 0.179, 0.179, 0.072, 0.062),
)

#: CrowdPose (MMPose ``crowdpose.py``; its ``top_head`` is named ``head_top``
#: here). ``neck`` is MPII's upper neck.
CROWDPOSE14 = KeypointSet(
    "crowdpose14",
    ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
     "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
     "right_ankle", "head_top", "neck"),
    ((10, 8), (8, 6), (11, 9), (9, 7), (6, 7), (0, 6), (1, 7), (0, 1), (0, 2), (1, 3),
     (2, 4), (3, 5), (12, 13), (1, 13), (0, 13)),
    ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    (0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
     0.089, 0.089, 0.079, 0.079),
)

#: MediaPipe BlazePose landmarks (``PoseLandmark`` order, ``POSE_CONNECTIONS``).
#: The landmark models output 39 landmarks: these 33, then 6 auxiliary ones
#: used by MediaPipe to track the region of interest.
BLAZEPOSE33 = KeypointSet(
    "blazepose33",
    ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
     "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
     "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
     "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
     "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
     "right_heel", "left_foot_index", "right_foot_index"),
    ((0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
     (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18),
     (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27),
     (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32)),
    ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18),
     (19, 20), (21, 22), (23, 24), (25, 26), (27, 28), (29, 30), (31, 32)),
)
_BLAZEPOSE_OUTPUTS = 39  # 33 landmarks + 6 auxiliary

#: COCO-17 followed by pelvis (hip midpoint), thorax (shoulder midpoint),
#: upper_neck and head_top: a superset every other set converts into.
#: Sigmas: COCO's, then MMPose's MPII values for the four extra points.
UNIFIED21 = KeypointSet(
    "unified21",
    _COCO17_NAMES + ("pelvis", "thorax", "upper_neck", "head_top"),
    _COCO17_SKELETON + ((11, 17), (12, 17), (17, 18), (5, 18), (6, 18), (18, 19), (19, 20)),
    _COCO17_FLIP,
    tuple(COCO17_SIGMAS.tolist()) + (0.026, 0.026, 0.026, 0.026),
)

#: The most keypoints of an unnamed set (:func:`unnamed_keypoint_set`).
MAX_UNNAMED_KEYPOINTS = 1024
_UNNAMED = re.compile(r"keypoints([1-9][0-9]{0,3})")


@functools.lru_cache(maxsize=64)
def unnamed_keypoint_set(k: int) -> KeypointSet:
    """The set of K keypoints whose meaning a model does not state, named
    ``"keypoints<K>"`` (e.g. an Ultralytics pose model with ``kpt_shape``
    other than ``[17, D]``): points ``"keypoint_0"`` ... with no skeleton,
    flip pairs or OKS sigmas. Without sigmas there is no OKS NMS and no OKS
    AP unless the caller gives sigmas; with no meanings it converts to no
    other set. :data:`KEYPOINT_SETS` resolves these names too.

    Raises:
        ValueError: K not an integer from 1 to :data:`MAX_UNNAMED_KEYPOINTS`.
    """
    if not (is_int(k) and 1 <= k <= MAX_UNNAMED_KEYPOINTS):
        raise ValueError(f"An unnamed keypoint set has 1 to {MAX_UNNAMED_KEYPOINTS} keypoints, "
                         f"got {k!r}.")
    return KeypointSet(f"keypoints{int(k)}", tuple(f"keypoint_{i}" for i in range(int(k))), (), ())


def is_unnamed(kset: KeypointSet) -> bool:
    """True for a set of :func:`unnamed_keypoint_set`."""
    match = _UNNAMED.fullmatch(kset.name)
    return match is not None and kset == unnamed_keypoint_set(int(match.group(1)))


class _KeypointSets(Mapping):
    """The registered sets by name; a name ``"keypoints<K>"`` also resolves
    to :func:`unnamed_keypoint_set` (not listed when iterating). Read-only."""

    def __init__(self, named: dict[str, KeypointSet]) -> None:
        self._named = MappingProxyType(named)

    def __getitem__(self, name: str) -> KeypointSet:
        if name in self._named:
            return self._named[name]
        match = _UNNAMED.fullmatch(name) if isinstance(name, str) else None
        if match is not None and int(match.group(1)) <= MAX_UNNAMED_KEYPOINTS:
            return unnamed_keypoint_set(int(match.group(1)))
        raise KeyError(name)

    def __iter__(self):
        return iter(self._named)

    def __len__(self) -> int:
        return len(self._named)

    def __repr__(self) -> str:
        return f"KEYPOINT_SETS({', '.join(self._named)}, keypoints<K>)"


#: Every keypoint set edgepose knows, by name (and ``"keypoints<K>"``, K
#: from 1 to 1024: :func:`unnamed_keypoint_set`, not listed when iterating).
KEYPOINT_SETS: Mapping[str, KeypointSet] = _KeypointSets({
    s.name: s for s in (COCO17, COCO18, AIC14, MPII16, CROWDPOSE14, BLAZEPOSE33, UNIFIED21)})


def get_keypoint_set(name: str) -> KeypointSet:
    """The registered keypoint set called ``name`` (``"coco17"``, ...).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return KEYPOINT_SETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown keypoint set {name!r}; known sets: {', '.join(KEYPOINT_SETS)}.") from None


# --- conversions -------------------------------------------------------------

# The body point each keypoint denotes, where it differs from its name.
_MEANING = {
    "coco18": {"neck": "thorax"},
    "aic14": {"neck": "upper_neck"},
    "crowdpose14": {"neck": "upper_neck"},
}
# Points computed from two others when the source lacks them; score = min of the two.
_DERIVED = {
    "pelvis": ("left_hip", "right_hip"),
    "thorax": ("left_shoulder", "right_shoulder"),
}
# BlazePose-33's face, hand and foot landmarks exist in no other set, so it
# is a source only.
_SOURCE_ONLY = ("blazepose33",)


def _meanings(kset: KeypointSet) -> tuple[str, ...]:
    table = _MEANING.get(kset.name, {})
    return tuple(table.get(n, n) for n in kset.names)


def _resolve(kset: str | KeypointSet, role: str) -> KeypointSet:
    if isinstance(kset, KeypointSet):
        if KEYPOINT_SETS.get(kset.name) != kset:
            raise ValueError(
                f"{role} must be a registered keypoint set to convert, got a custom set "
                f"{kset.name!r}; registered sets: {', '.join(KEYPOINT_SETS)}.")
        return kset
    return get_keypoint_set(kset)


def _targets(src: KeypointSet) -> tuple[str, ...]:
    if is_unnamed(src):
        return (src.name,)
    return tuple(n for n in KEYPOINT_SETS if n == src.name or n not in _SOURCE_ONLY)


def can_convert(src: str | KeypointSet, dst: str | KeypointSet) -> bool:
    """Whether :func:`convert_keypoints` converts ``src`` keypoints to ``dst``.

    Raises:
        ValueError: an unknown set name.
    """
    return _resolve(dst, "dst").name in _targets(_resolve(src, "src"))


def convert_keypoints(
    keypoints: ArrayLike,
    scores: ArrayLike,
    src: str | KeypointSet,
    dst: str | KeypointSet,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Re-expresses keypoints of one set in another.

    A destination keypoint is copied from the source keypoint of the same
    meaning; pelvis and thorax (and OpenPose's neck, which is the thorax) are
    otherwise the midpoint of the hips / shoulders, with the lower of the two
    scores. A keypoint not found (NaN coordinates,
    :func:`edgepose.results.found_mask`) stays not found, and so does a
    midpoint of which either end was not found (NaN, with the lower score);
    a keypoint the source cannot provide is NaN with score 0.
    Any set converts to any other except to ``blazepose33``, whose face, hand
    and foot landmarks no other set has (see :func:`can_convert`).

    Args:
        keypoints: ``(N, K, 2)`` (x, y) in any coordinate space; for
            ``blazepose33`` K may also be 39 (the 6 auxiliary landmarks are
            dropped).
        scores: ``(N, K)``.
        src, dst: keypoint sets or their names.

    Returns:
        keypoints ``(N, K_dst, 2)`` float32 and scores ``(N, K_dst)``
        float32, new arrays.

    Raises:
        ValueError: an unknown set, a pair that cannot be converted (the
            message lists what ``src`` converts to), or shapes that do not
            match ``src``.
    """
    s = _resolve(src, "src")
    d = _resolve(dst, "dst")
    targets = _targets(s)
    if d.name != s.name and (is_unnamed(s) or is_unnamed(d)):
        raise ValueError(
            f"Cannot convert {s.name!r} keypoints to {d.name!r}: the points of an unnamed "
            "keypoint set (a model that does not say what its keypoints are) have no meaning "
            "to match. Keep the model's own keypoint set (keypoint_set=None).")
    if d.name not in targets:
        raise ValueError(
            f"Cannot convert {s.name!r} keypoints to {d.name!r}: {d.name!r} can only be a "
            f"source. {s.name!r} converts to: {', '.join(targets)}.")
    kp = np.asarray(keypoints, dtype=np.float32)
    sc = np.asarray(scores, dtype=np.float32)
    k = len(s)
    allowed = (k, _BLAZEPOSE_OUTPUTS) if s.name == BLAZEPOSE33.name else (k,)
    if kp.ndim != 3 or kp.shape[1] not in allowed or kp.shape[2] != 2:
        expected = " or ".join(f"(N, {a}, 2)" for a in allowed)
        raise ValueError(f"keypoints of {s.name!r} must have shape {expected}, got {kp.shape}.")
    if sc.shape != kp.shape[:2]:
        raise ValueError(
            f"scores must have shape {kp.shape[:2]} to match keypoints {kp.shape}, "
            f"got {sc.shape}.")

    from edgepose.results import found_mask  # results imports this module

    found = found_mask(kp)
    src_index = {m: i for i, m in enumerate(_meanings(s))}
    n = kp.shape[0]
    out_kp = np.full((n, len(d), 2), np.nan, dtype=np.float32)
    out_sc = np.zeros((n, len(d)), dtype=np.float32)
    for j, meaning in enumerate(_meanings(d)):
        if meaning in src_index:
            i = src_index[meaning]
            out_kp[:, j] = np.where(found[:, i, None], kp[:, i], np.float32(np.nan))
            out_sc[:, j] = sc[:, i]
        elif meaning in _DERIVED and all(p in src_index for p in _DERIVED[meaning]):
            a, b = (src_index[p] for p in _DERIVED[meaning])
            both = (found[:, a] & found[:, b])[:, None]
            with np.errstate(invalid="ignore"):
                mid = (kp[:, a] + kp[:, b]) * np.float32(0.5)
            out_kp[:, j] = np.where(both, mid, np.float32(np.nan))
            out_sc[:, j] = np.minimum(sc[:, a], sc[:, b])
    return out_kp, out_sc

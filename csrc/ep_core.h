/*
 * edgepose C core: postprocessing kernels for 2D pose estimation.
 *
 * Plain C99, no Python. Every function takes explicit sizes and strides,
 * writes into caller-allocated outputs and returns a status code. Strides are
 * in elements (not bytes) and may be any value, including negative ones, so
 * callers can pass NCHW, NHWC or sliced views without copying.
 *
 * Conventions shared by all kernels:
 *   - Coordinates are (x, y), x along the width.
 *   - Indices are ptrdiff_t (numpy.intp on every supported platform).
 *   - A keypoint that is not found is written as (-1, -1) in the kernel's own
 *     pixel units before any scaling.
 */
#ifndef EP_CORE_H
#define EP_CORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef ptrdiff_t ep_index;

/* Status codes. */
#define EP_OK 0
#define EP_EINVAL (-1) /* an argument is out of its documented range */
#define EP_ENOMEM (-2) /* a workspace allocation failed */
#define EP_EOVERFLOW (-3) /* a size computed from the arguments overflows */

/*
 * *out = a * b as a size_t, for sizing buffers and checking that a product of
 * dimensions fits. Returns EP_EINVAL when a or b is negative (*out = 0) and
 * EP_EOVERFLOW when the product exceeds PTRDIFF_MAX (*out = 0), so a size
 * that passes also fits ep_index and a byte count of one-byte elements.
 */
int ep_mul_size(ep_index a, ep_index b, size_t *out);

/* *out = a * b * c, with the same checks as ep_mul_size. */
int ep_mul3_size(ep_index a, ep_index b, ep_index c, size_t *out);

/* Refinement methods for ep_decode_heatmap. */
#define EP_REFINE_NONE 0
#define EP_REFINE_DARK 1     /* MMPose refine_keypoints_dark */
#define EP_REFINE_DARK_UDP 2 /* MMPose refine_keypoints_dark_udp */

/* Rescoring of soft OKS NMS. */
#define EP_SOFT_GAUSSIAN 0
#define EP_SOFT_LINEAR 1

/* Largest accepted Gaussian blur kernel (odd, >= 1). */
#define EP_MAX_BLUR_KERNEL 101

/* A strided 3-D float view (n, k, len), e.g. SimCC logits. */
typedef struct {
    const float *data;
    ep_index n, k, len;
    ep_index sn, sk, sl;
} ep_view3;

/* A strided heatmap batch seen as (n, k, h, w) whatever the memory layout. */
typedef struct {
    const float *data;
    ep_index n, k, h, w;
    ep_index sn, sk, sh, sw;
} ep_heatmaps;

/*
 * SimCC decoding with the semantics of MMPose 1.x get_simcc_maximum followed
 * by division by the split ratio.
 *
 * x: (n, k, wx) and y: (n, k, wy) with the same n and k.
 * For each (n, k): ix = first argmax of x, iy = first argmax of y,
 * score = min(max x, max y); location (ix, iy), or (-1, -1) when score <= 0;
 * keypoints = location / split_ratio.
 * A row containing NaN gives score NaN and location (-1, -1).
 *
 * keypoints: n*k*2 floats, row-major (n, k, 2). scores: n*k floats.
 * Returns EP_EINVAL if a size is negative, wx or wy is 0, or split_ratio is not
 * a positive finite number; EP_EOVERFLOW when n * k overflows.
 */
int ep_decode_simcc(ep_view3 x, ep_view3 y, float split_ratio,
                    float *keypoints, float *scores);

/*
 * Heatmap argmax with optional DARK / DARK-UDP refinement, in heatmap pixels.
 *
 * Argmax: first maximum in row-major (y, x) order; score = raw maximum;
 * location (-1, -1) when score <= 0. A map containing NaN gives score NaN
 * and location (-1, -1).
 * refine == EP_REFINE_DARK: MMPose refine_keypoints_dark (Gaussian blur of
 *   size blur_kernel with zero padding and OpenCV's sigma-0 kernel, rescale
 *   to the original maximum, clamp at 1e-10, log, second-order Taylor step
 *   with step-2 derivatives) at valid keypoints with 2 <= x <= w-3 and
 *   2 <= y <= h-3, skipped where the Hessian determinant is 0.
 * refine == EP_REFINE_DARK_UDP: MMPose refine_keypoints_dark_udp (same blur
 *   and rescale, clip to [1e-3, 50], log, edge padding, step-1 differences,
 *   float32 eps on the Hessian diagonal) at every valid keypoint.
 * A refinement whose neighbourhood or result is not finite is skipped.
 * The heatmaps are never modified.
 *
 * keypoints: n*k*2 doubles (exact integer positions on maps of any width;
 * a refined position is kept only where it is finite as a float), scores:
 * n*k floats.
 * Returns EP_EINVAL on negative sizes, h or w equal to 0, an unknown refine
 * value, or an even or out-of-range blur_kernel (only checked when refining);
 * EP_EOVERFLOW when h * w or n * k overflows the address space; EP_ENOMEM
 * if the workspace for an exact full-map blur cannot be allocated.
 */
int ep_decode_heatmap(ep_heatmaps hm, int refine, int blur_kernel,
                      double *keypoints, float *scores);

/*
 * The 1-D Gaussian kernel cv2.getGaussianKernel(size, 0, CV_32F) returns:
 * OpenCV's fixed tables for size 1, 3, 5, 7, else exp(-d^2 / (2 sigma^2))
 * normalised to sum 1 with sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8.
 * out: size floats. Returns EP_EINVAL for an even or out-of-range size.
 */
int ep_gaussian_kernel(int size, float *out);

/*
 * Greedy non-maximum suppression of axis-aligned boxes (x1, y1, x2, y2).
 *
 * Area convention: (x2 - x1) * (y2 - y1), no +1 (as torchvision and ONNX
 * NonMaxSuppression); a negative extent counts as 0. IoU is 0 where the
 * union is not positive. Boxes are visited in descending score order, ties
 * broken by ascending index; a box is suppressed when its IoU with a kept
 * box of the same group is > iou_threshold.
 *
 * boxes: m*4 floats, row-major. scores: m floats. groups: m ints or NULL
 * (NULL: one group). keep: room for m indices; *n_keep receives the count,
 * at most max_keep when max_keep >= 0.
 * Areas, intersections and IoU are computed in double from the float boxes.
 * Returns EP_EINVAL on m < 0, EP_EOVERFLOW when m overflows the workspace
 * sizes, EP_ENOMEM if the sort workspace fails.
 */
int ep_nms_boxes(const float *boxes, const float *scores, const ep_index *groups,
                 ep_index m, double iou_threshold, ep_index max_keep,
                 ep_index *keep, ep_index *n_keep);

/*
 * Object keypoint similarity of two poses with the semantics of MMPose
 * oks_iou: mean over keypoints of exp(-d^2 / (2 (2 sigma)^2 (area + eps))),
 * area = (area_a + area_b) / 2, eps = 2^-52; visibility is ignored.
 * a, b: k*2 floats (x, y). Returns the OKS, or NaN when k < 1 or the
 * workspace cannot be allocated.
 */
double ep_oks(const float *a, const float *b, const float *sigmas, ep_index k,
              double area_a, double area_b);

/*
 * OKS-based NMS with the semantics of MMPose oks_nms: visit poses in
 * descending score order (ties by ascending index), keep the first remaining
 * one and drop every remaining pose of the same group whose OKS with it is
 * > threshold.
 *
 * keypoints: m*k*2 floats (x, y), row-major. scores, areas: m floats.
 * sigmas: k floats. groups: m ints or NULL. keep: room for m indices.
 * OKS and threshold are compared in double (OKS exactly at threshold is kept).
 * Returns EP_EINVAL on m < 0 or k < 1, EP_EOVERFLOW when m * k overflows,
 * EP_ENOMEM if the workspace fails.
 */
int ep_nms_oks(const float *keypoints, const float *scores, const float *areas,
               const ep_index *groups, ep_index m, ep_index k,
               const float *sigmas, double threshold, ep_index *keep,
               ep_index *n_keep);

/*
 * Soft OKS NMS with the semantics of MMPose soft_oks_nms: repeatedly take the
 * highest-scoring remaining pose (ties by ascending index), then rescore the
 * others of the same group by their OKS o with it: gaussian
 * s *= exp(-o^2 / threshold), or linear s *= (1 - o) where o >= threshold.
 * Stops after max_keep poses (all when max_keep < 0).
 *
 * keep: room for m indices; new_scores (may be NULL): m floats receiving each
 * pose's score at the time it was kept, in keep order.
 * Returns EP_EINVAL on m < 0, k < 1, an unknown method, or a gaussian
 * threshold <= 0; EP_EOVERFLOW when m * k overflows; EP_ENOMEM if the workspace fails.
 */
int ep_nms_oks_soft(const float *keypoints, const float *scores,
                    const float *areas, const ep_index *groups, ep_index m,
                    ep_index k, const float *sigmas, double threshold,
                    int method, ep_index max_keep, ep_index *keep,
                    float *new_scores, ep_index *n_keep);

/* A strided stack of maps seen as (c, h, w), e.g. heatmaps or fields. */
typedef struct {
    const float *data;
    ep_index c, h, w;
    ep_index sc, sh, sw;
} ep_maps;

/* Largest accepted number of field samples per candidate limb. */
#define EP_MAX_PAF_SAMPLES 1000

/* Parameters of ep_group_paf (defaults: the OpenVINO model zoo's decoder).
 * Thresholds are doubles compared with double-precision quantities (a
 * float32 map value is widened, never the threshold narrowed), so e.g. a peak
 * of float32(0.1) exceeds a threshold of 0.1 and 8 good samples of 10 meet a
 * ratio of exactly 0.8. Counts are ep_index: peak_radius and max_peaks larger
 * than the map are legal and mean "the whole map" / "every peak". */
typedef struct {
    double heatmap_threshold; /* a peak's value must be > this (0.1) */
    ep_index peak_radius;     /* local-maximum window radius (1: 3 x 3), >= 0 */
    double min_peak_distance; /* thin peaks of a part closer than this, map px (0: off) */
    int refine;               /* sub-pixel peaks by a parabola through 3 x 3 (1) */
    ep_index max_peaks;       /* per part, the highest (100), >= 1 */
    int samples;              /* field samples along a candidate limb, 2..EP_MAX_PAF_SAMPLES (10) */
    double min_paf_score;     /* a sample is good when > this (0.05) */
    double min_good_ratio;    /* good / samples must be >= this (0.9: 9 of 10) */
    double distance_prior;    /* > 0: add min(0, prior * h / length - 1) to a limb (0: off) */
    ep_index min_parts;       /* persons with fewer parts are dropped (3), >= 0 */
    double min_person_score;  /* persons whose score / parts is < this are dropped (0) */
    double stride, offset;    /* output = map position * stride + offset */
} ep_paf_params;

/*
 * Groups heatmap peaks into persons along part affinity fields (OpenPose).
 *
 * heatmaps: (K, h, w), one map per part; pafs: (C, h, w), same h and w.
 * limbs: n_limbs * 2 part ids (a, b); paf_channels: n_limbs * 2 field
 * channels (x, y) of the vector from part a to part b; limbs are assembled
 * in table order. The algorithm, step by step, is in ep_paf.c and pinned by
 * the NumPy reference in tests/paf_reference.py.
 *
 * persons: max_persons * K * 3 floats (x, y, score); a missing part is
 * (-1, -1, 0). scores: max_persons floats, the person's (sum of part and
 * limb scores) / parts. Persons come in descending score. *n_persons gets
 * the number of persons found, which may exceed max_persons: then only the
 * first max_persons are written, and the caller may call again with room
 * for *n_persons (the result is deterministic). Workspaces are sized by
 * the peaks and candidate limbs actually found, never by max_peaks.
 * Returns EP_EINVAL for inconsistent sizes, out-of-range part or channel
 * ids, or parameters out of range; EP_EOVERFLOW when h * w overflows;
 * EP_ENOMEM if a workspace fails.
 */
int ep_group_paf(ep_maps heatmaps, ep_maps pafs, const ep_index *limbs,
                 const ep_index *paf_channels, ep_index n_limbs,
                 const ep_paf_params *params, float *persons, float *scores,
                 ep_index max_persons, ep_index *n_persons);

/* Suppression methods of ep_decode_yolo_pose. */
#define EP_YOLO_NMS_NONE 0
#define EP_YOLO_NMS_BOX 1
#define EP_YOLO_NMS_OKS 2

/* Parameters of ep_decode_yolo_pose (defaults: Ultralytics' pose predict). */
typedef struct {
    ep_index num_classes;    /* C >= 1 (1: person) */
    ep_index num_keypoints;  /* K >= 0 (17) */
    ep_index keypoint_dims;  /* D: 2 (x, y) or 3 (x, y, visibility) */
    int end_to_end;          /* rows are x1, y1, x2, y2, score, class, K*D values */
    double score_threshold;  /* a candidate's best class score must be > this (0.25) */
    double iou_threshold;    /* suppressed when IoU (or OKS) with a kept one is > this (0.7) */
    ep_index max_candidates; /* the best this many candidates are kept before NMS (30000), >= 0 */
    ep_index max_detections; /* kept per image (300), >= 0 */
    int class_agnostic;      /* C > 1: suppress across classes too */
    int nms;                 /* EP_YOLO_NMS_BOX, _OKS or _NONE; ignored when end_to_end */
    const float *sigmas;     /* K OKS sigmas, for EP_YOLO_NMS_OKS */
} ep_yolo_params;

/*
 * *channels = the values per row the parameters describe: 4 + C + K*D, or
 * 6 + K*D end to end. Returns EP_EINVAL for parameters out of range (see
 * ep_yolo_params; OKS NMS needs sigmas and K >= 1), EP_EOVERFLOW when the
 * count overflows.
 */
int ep_yolo_channels(const ep_yolo_params *params, ep_index *channels);

/*
 * Decodes the output of a one-stage YOLO-pose graph with the semantics of
 * Ultralytics 8.x non_max_suppression (multi_label off) followed by
 * scale_boxes / scale_coords, per image of the batch:
 *
 * 1. Candidates, in row order: rows whose best class score (the first
 *    maximum over the C scores) is > score_threshold, compared in double.
 *    A row with NaN among its class scores is no candidate; nor is one with
 *    a non-finite box or keypoint value, or (raw layout) a non-finite corner.
 *    Raw rows: cx, cy, w, h -> x1 = cx - w/2, ... in float32.
 * 2. More than max_candidates: the best max_candidates by descending score,
 *    ties by ascending row.
 * 3. Suppression in input pixels, visiting in descending score with ties by
 *    ascending row: EP_YOLO_NMS_BOX is ep_nms_boxes (IoU > iou_threshold);
 *    EP_YOLO_NMS_OKS is ep_nms_oks on the keypoints (x, y) with the box area
 *    (OKS > iou_threshold; run on a growing prefix of the ranked candidates
 *    until max_detections are kept, which is exact for greedy NMS); per
 *    class when C > 1 and not class_agnostic;
 *    EP_YOLO_NMS_NONE keeps everything. At most max_detections are kept.
 *    End to end: no suppression and no max_candidates; rows whose class
 *    value is not finite or does not round into 0 .. C-1 are dropped.
 * 4. Image pixels: x = (x_input - pad_x) / scale_x, y likewise, in double,
 *    clipped to [0, W] x [0, H] when image_hw is given, rounded to float32.
 *
 * output: (n, rows, channels) strided as ep_view3 (n, k = rows,
 *   len = channels); channels must equal ep_yolo_channels.
 * scale, pad: n * 2 doubles (x, y); scale > 0 and finite, pad finite.
 * image_hw: n * 2 doubles (H, W) > 0 and finite, or NULL (no clipping).
 * Outputs, row-major with `capacity` slots per image (capacity >=
 * min(max_detections, rows)): boxes (n, capacity, 4) xyxy, scores
 * (n, capacity), classes (n, capacity), keypoints (n, capacity, K, 2),
 * keypoint_scores (n, capacity, K) (the visibility for D = 3, else the
 * score); counts (n): detections written per image, by descending score.
 * The workspace is sized by the rows of one image.
 * Returns EP_EINVAL for negative sizes, parameters or transforms out of
 * range, a channel count that does not match, or too small a capacity;
 * EP_EOVERFLOW when a size overflows; EP_ENOMEM if the workspace fails.
 */
int ep_decode_yolo_pose(ep_view3 output, const ep_yolo_params *params, const double *scale,
                        const double *pad, const double *image_hw, ep_index capacity,
                        float *boxes, float *scores, ep_index *classes, float *keypoints,
                        float *keypoint_scores, ep_index *counts);

/*
 * The decode Ultralytics' exported graphs put after a YOLO-pose head, for a
 * head cut before it (distribution focal loss boxes, Ultralytics 8.x):
 *
 * box_class: (n, 4 * reg_max + C, A) as ep_view3 (n, k = channels, len = A):
 *   per side (l, t, r, b) reg_max bin logits, then C class logits.
 * kpts: (n, K * D, A) raw keypoint values, keypoint-major.
 * Anchors: per stride s, the cells of an (input_h / s) x (input_w / s) grid
 * in row-major order, anchor point (gx + 0.5, gy + 0.5); the cell counts
 * must add up to A and every stride must divide input_h and input_w.
 * out: (n, 4 + C + K * D, A) contiguous floats: per side the expectation
 * of the bin index under softmax(logits) (distances l, t, r, b), box
 * (cx, cy, w, h) of x1 = ax - l, y1 = ay - t, x2 = ax + r, y2 = ay + b,
 * times s; class sigmoid(logit); keypoint x = (raw * 2 + ax - 0.5) * s,
 * y likewise, visibility sigmoid(raw). Bin exponentials in float32 (expf),
 * everything else in double; a NaN logit, an
 * infinite one or all -inf give NaN distances.
 * Returns EP_EINVAL for inconsistent sizes or strides; EP_EOVERFLOW when the
 * output size overflows.
 */
int ep_decode_yolo_dfl(ep_view3 box_class, ep_view3 kpts, ep_index input_h, ep_index input_w,
                       const ep_index *strides, ep_index n_strides, ep_index reg_max,
                       ep_index num_keypoints, ep_index keypoint_dims, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EP_CORE_H */

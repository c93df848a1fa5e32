# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin wrappers of the C core (csrc/). Use edgepose.ops, which validates.

Each function takes typed memoryviews (const, so read-only arrays work;
strided where the kernel reads strides), releases the GIL around the C call
and maps the C status code to an exception once the GIL is back.
"""

cdef extern from "ep_core.h" nogil:
    ctypedef Py_ssize_t ep_index
    int EP_OK, EP_EINVAL, EP_ENOMEM, EP_EOVERFLOW

    ctypedef struct ep_view3:
        const float *data
        ep_index n, k, len
        ep_index sn, sk, sl

    ctypedef struct ep_heatmaps:
        const float *data
        ep_index n, k, h, w
        ep_index sn, sk, sh, sw

    int ep_decode_simcc(ep_view3 x, ep_view3 y, float split_ratio,
                        float *keypoints, float *scores)
    int ep_decode_heatmap(ep_heatmaps hm, int refine, int blur_kernel,
                          double *keypoints, float *scores)
    int ep_gaussian_kernel(int size, float *out)
    int ep_nms_boxes(const float *boxes, const float *scores, const ep_index *groups,
                     ep_index m, double iou_threshold, ep_index max_keep,
                     ep_index *keep, ep_index *n_keep)
    double ep_oks(const float *a, const float *b, const float *sigmas, ep_index k,
                  double area_a, double area_b)
    int ep_nms_oks(const float *keypoints, const float *scores, const float *areas,
                   const ep_index *groups, ep_index m, ep_index k,
                   const float *sigmas, double threshold, ep_index *keep,
                   ep_index *n_keep)
    ctypedef struct ep_maps:
        const float *data
        ep_index c, h, w
        ep_index sc, sh, sw

    ctypedef struct ep_paf_params:
        double heatmap_threshold
        ep_index peak_radius
        double min_peak_distance
        int refine
        ep_index max_peaks
        int samples
        double min_paf_score
        double min_good_ratio
        double distance_prior
        ep_index min_parts
        double min_person_score
        double stride, offset

    int ep_group_paf(ep_maps heatmaps, ep_maps pafs, const ep_index *limbs,
                     const ep_index *paf_channels, ep_index n_limbs,
                     const ep_paf_params *params, float *persons, float *scores,
                     ep_index max_persons, ep_index *n_persons)
    int ep_nms_oks_soft(const float *keypoints, const float *scores,
                        const float *areas, const ep_index *groups, ep_index m,
                        ep_index k, const float *sigmas, double threshold,
                        int method, ep_index max_keep, ep_index *keep,
                        float *new_scores, ep_index *n_keep)

    ctypedef struct ep_yolo_params:
        ep_index num_classes, num_keypoints, keypoint_dims
        int end_to_end
        double score_threshold, iou_threshold
        ep_index max_candidates, max_detections
        int class_agnostic
        int nms
        const float *sigmas

    int ep_decode_yolo_pose(ep_view3 output, const ep_yolo_params *params,
                            const double *scale, const double *pad,
                            const double *image_hw, ep_index capacity,
                            float *boxes, float *scores, ep_index *classes,
                            float *keypoints, float *keypoint_scores, ep_index *counts)
    int ep_decode_yolo_dfl(ep_view3 box_class, ep_view3 kpts, ep_index input_h,
                           ep_index input_w, const ep_index *strides, ep_index n_strides,
                           ep_index reg_max, ep_index num_keypoints,
                           ep_index keypoint_dims, float *out)


cdef int _check(int status, str what) except -1:
    if status == EP_OK:
        return 0
    if status == EP_ENOMEM:
        raise MemoryError(f"{what}: the C core could not allocate its workspace.")
    if status == EP_EOVERFLOW:
        raise ValueError(f"{what}: the input sizes overflow the address space "
                         "(a product of dimensions exceeds PTRDIFF_MAX).")
    raise ValueError(f"{what}: the C core rejected its arguments (status {status}).")


cdef ep_view3 _view3(const float[:, :, :] a):
    cdef ep_view3 v
    v.data = &a[0, 0, 0]
    v.n = a.shape[0]
    v.k = a.shape[1]
    v.len = a.shape[2]
    v.sn = a.strides[0] // sizeof(float)
    v.sk = a.strides[1] // sizeof(float)
    v.sl = a.strides[2] // sizeof(float)
    return v


def decode_simcc(const float[:, :, :] simcc_x, const float[:, :, :] simcc_y,
                 float split_ratio, float[:, :, ::1] keypoints, float[:, ::1] scores):
    """Requires N * K > 0 and non-empty bins (the facade checks)."""
    cdef ep_view3 x = _view3(simcc_x)
    cdef ep_view3 y = _view3(simcc_y)
    cdef int status
    with nogil:
        status = ep_decode_simcc(x, y, split_ratio, &keypoints[0, 0, 0], &scores[0, 0])
    _check(status, "decode_simcc")


def decode_heatmap(const float[:, :, :, :] heatmaps, int refine, int blur_kernel,
                   double[:, :, ::1] keypoints, float[:, ::1] scores):
    """heatmaps seen as (N, K, H, W) through its strides; requires N * K > 0.
    keypoints are float64 so that positions on maps wider than 2^24 are exact."""
    cdef ep_heatmaps hm
    cdef int status
    hm.data = &heatmaps[0, 0, 0, 0]
    hm.n = heatmaps.shape[0]
    hm.k = heatmaps.shape[1]
    hm.h = heatmaps.shape[2]
    hm.w = heatmaps.shape[3]
    hm.sn = heatmaps.strides[0] // sizeof(float)
    hm.sk = heatmaps.strides[1] // sizeof(float)
    hm.sh = heatmaps.strides[2] // sizeof(float)
    hm.sw = heatmaps.strides[3] // sizeof(float)
    with nogil:
        status = ep_decode_heatmap(hm, refine, blur_kernel, &keypoints[0, 0, 0], &scores[0, 0])
    _check(status, "decode_heatmap")


def gaussian_kernel(int size, float[::1] out):
    """OpenCV's sigma-0 Gaussian kernel of the given size into out."""
    if out.shape[0] < size:
        raise ValueError(f"out must hold {size} values, got {out.shape[0]}.")
    _check(ep_gaussian_kernel(size, &out[0]), "gaussian_kernel")


cdef const ep_index *_groups_ptr(const ep_index[::1] groups):
    return NULL if groups is None else &groups[0]


def nms_boxes(const float[:, ::1] boxes, const float[::1] scores,
              const ep_index[::1] groups, double iou_threshold, ep_index max_keep,
              ep_index[::1] keep):
    """Requires M > 0; returns the number of kept boxes written to keep."""
    cdef ep_index n_keep = 0
    cdef const ep_index *g = _groups_ptr(groups)
    cdef int status
    with nogil:
        status = ep_nms_boxes(&boxes[0, 0], &scores[0], g, boxes.shape[0],
                              iou_threshold, max_keep, &keep[0], &n_keep)
    _check(status, "nms_boxes")
    return n_keep


def oks(const float[:, ::1] a, const float[:, ::1] b, const float[::1] sigmas,
        double area_a, double area_b):
    """OKS of two (K, 2) poses; requires K > 0 and matching shapes."""
    return ep_oks(&a[0, 0], &b[0, 0], &sigmas[0], a.shape[0], area_a, area_b)


def nms_oks(const float[:, :, ::1] keypoints, const float[::1] scores,
            const float[::1] areas, const ep_index[::1] groups,
            const float[::1] sigmas, double threshold, ep_index[::1] keep):
    """Requires M > 0 and K > 0; returns the number of kept poses."""
    cdef ep_index n_keep = 0
    cdef const ep_index *g = _groups_ptr(groups)
    cdef int status
    with nogil:
        status = ep_nms_oks(&keypoints[0, 0, 0], &scores[0], &areas[0], g,
                            keypoints.shape[0], keypoints.shape[1], &sigmas[0],
                            threshold, &keep[0], &n_keep)
    _check(status, "nms_oks")
    return n_keep


def nms_oks_soft(const float[:, :, ::1] keypoints, const float[::1] scores,
                 const float[::1] areas, const ep_index[::1] groups,
                 const float[::1] sigmas, double threshold, int method,
                 ep_index max_keep, ep_index[::1] keep, float[::1] new_scores):
    """Requires M > 0 and K > 0; returns the number of kept poses."""
    cdef ep_index n_keep = 0
    cdef const ep_index *g = _groups_ptr(groups)
    cdef int status
    with nogil:
        status = ep_nms_oks_soft(&keypoints[0, 0, 0], &scores[0], &areas[0], g,
                                 keypoints.shape[0], keypoints.shape[1], &sigmas[0],
                                 threshold, method, max_keep, &keep[0],
                                 &new_scores[0], &n_keep)
    _check(status, "nms_oks_soft")
    return n_keep


cdef ep_maps _maps(const float[:, :, :] a):
    """A (c, h, w) view of a strided 3-D array."""
    cdef ep_maps m
    m.data = &a[0, 0, 0]
    m.c = a.shape[0]
    m.h = a.shape[1]
    m.w = a.shape[2]
    m.sc = a.strides[0] // sizeof(float)
    m.sh = a.strides[1] // sizeof(float)
    m.sw = a.strides[2] // sizeof(float)
    return m


def group_paf(const float[:, :, :] heatmaps, const float[:, :, :] pafs,
              const ep_index[:, ::1] limbs, const ep_index[:, ::1] paf_channels,
              dict params, float[:, :, ::1] persons, float[::1] scores):
    """heatmaps (K, h, w) and pafs (C, h, w) as strided views; returns the
    number of persons found, which may exceed len(persons): then only the
    first len(persons) were written. Requires non-empty maps (the facade checks)."""
    cdef ep_paf_params p
    cdef ep_index n_persons = 0
    cdef ep_index n_limbs = limbs.shape[0]
    cdef const ep_index *lp = NULL
    cdef const ep_index *cp = NULL
    cdef ep_maps hm = _maps(heatmaps)
    cdef ep_maps pf = _maps(pafs)
    cdef int status
    p.heatmap_threshold = params["heatmap_threshold"]
    p.peak_radius = params["peak_radius"]
    p.min_peak_distance = params["min_peak_distance"]
    p.refine = params["refine"]
    p.max_peaks = params["max_peaks"]
    p.samples = params["samples"]
    p.min_paf_score = params["min_paf_score"]
    p.min_good_ratio = params["min_good_ratio"]
    p.distance_prior = params["distance_prior"]
    p.min_parts = params["min_parts"]
    p.min_person_score = params["min_person_score"]
    p.stride = params["stride"]
    p.offset = params["offset"]
    if n_limbs > 0:
        lp = &limbs[0, 0]
        cp = &paf_channels[0, 0]
    with nogil:
        status = ep_group_paf(hm, pf, lp, cp, n_limbs, &p, &persons[0, 0, 0], &scores[0],
                              persons.shape[0], &n_persons)
    _check(status, "group_paf")
    return n_persons


def decode_yolo_pose(const float[:, :, :] output, dict params, const float[::1] sigmas,
                     const double[:, ::1] scale, const double[:, ::1] pad,
                     const double[:, ::1] image_hw, float[:, :, ::1] boxes,
                     float[:, ::1] scores, ep_index[:, ::1] classes,
                     float[:, :, :, ::1] keypoints, float[:, :, ::1] keypoint_scores,
                     ep_index[::1] counts):
    """output (N, rows, channels) as a strided view; image_hw may be None.
    Requires N, rows and the capacity (boxes.shape[1]) > 0 and K > 0 (the
    facade pads K = 0); sigmas may be None unless params["nms"] is OKS."""
    cdef ep_yolo_params p
    cdef ep_view3 v = _view3(output)
    cdef const double *hw = NULL
    cdef const float *sg = NULL
    cdef int status
    if image_hw is not None:
        hw = &image_hw[0, 0]
    if sigmas is not None:
        sg = &sigmas[0]
    p.num_classes = params["num_classes"]
    p.num_keypoints = params["num_keypoints"]
    p.keypoint_dims = params["keypoint_dims"]
    p.end_to_end = params["end_to_end"]
    p.score_threshold = params["score_threshold"]
    p.iou_threshold = params["iou_threshold"]
    p.max_candidates = params["max_candidates"]
    p.max_detections = params["max_detections"]
    p.class_agnostic = params["class_agnostic"]
    p.nms = params["nms"]
    p.sigmas = sg
    with nogil:
        status = ep_decode_yolo_pose(v, &p, &scale[0, 0], &pad[0, 0], hw, boxes.shape[1],
                                     &boxes[0, 0, 0], &scores[0, 0], &classes[0, 0],
                                     &keypoints[0, 0, 0, 0], &keypoint_scores[0, 0, 0],
                                     &counts[0])
    _check(status, "decode_yolo_pose")


def decode_yolo_dfl(const float[:, :, :] box_class, const float[:, :, :] kpts,
                    ep_index input_h, ep_index input_w, const ep_index[::1] strides,
                    ep_index reg_max, ep_index num_keypoints, ep_index keypoint_dims,
                    float[:, :, ::1] out):
    """box_class (N, 4R + C, A) and kpts (N, K*D, A) as strided views; requires
    N > 0, A > 0 and K*D > 0 (the facade handles the empty cases)."""
    cdef ep_view3 b = _view3(box_class)
    cdef ep_view3 k = _view3(kpts)
    cdef int status
    with nogil:
        status = ep_decode_yolo_dfl(b, k, input_h, input_w, &strides[0], strides.shape[0],
                                    reg_max, num_keypoints, keypoint_dims, &out[0, 0, 0])
    _check(status, "decode_yolo_dfl")

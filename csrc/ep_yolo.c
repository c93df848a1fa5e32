/* One-stage YOLO-pose decoding (candidates, NMS, letterbox undo) and the
 * decode of a raw DFL head. The rules are stated in ep_core.h and pinned by
 * the NumPy reference in tests/yolo_reference.py. */
#include "ep_core.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* Doubles at or beyond 2^128 - 2^103 round to infinity as float32 (IEEE
 * round-to-nearest, as NumPy's cast); between FLT_MAX and that they round to
 * FLT_MAX. C leaves out-of-range conversions undefined, so they are spelled
 * out here. */
static float narrow(double v)
{
    const double to_inf = 0x1.ffffffp127;
    if (v >= to_inf) return INFINITY;
    if (v <= -to_inf) return -INFINITY;
    if (v > FLT_MAX) return FLT_MAX;
    if (v < -FLT_MAX) return -FLT_MAX;
    return (float)v;
}

typedef struct {
    float score;
    ep_index slot;
} candidate;

/* Descending score, then ascending slot (candidate scores are never NaN). */
static int candidate_cmp(const void *pa, const void *pb)
{
    const candidate *a = (const candidate *)pa, *b = (const candidate *)pb;
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    return (a->slot > b->slot) - (a->slot < b->slot);
}

static int index_cmp(const void *pa, const void *pb)
{
    ep_index a = *(const ep_index *)pa, b = *(const ep_index *)pb;
    return (a > b) - (a < b);
}

/* The workspace of one image, sized once by the rows of an image. */
typedef struct {
    candidate *cand;  /* m: score and slot */
    ep_index *rows;   /* m: the row (anchor) of each candidate, ascending */
    float *boxes;     /* m * 4: xyxy, input pixels */
    float *scores;    /* m */
    ep_index *classes, *keep;
    float *points;    /* m * k * 2: (x, y) input pixels, by rank; OKS NMS only */
    float *areas;     /* m: box areas, by rank; OKS NMS only */
    float *ranked_scores;     /* m: scores by rank; OKS NMS only */
    ep_index *ranked_classes; /* m: classes by rank; OKS NMS only */
} workspace;

static void free_workspace(workspace *w)
{
    free(w->cand);
    free(w->rows);
    free(w->boxes);
    free(w->scores);
    free(w->classes);
    free(w->keep);
    free(w->points);
    free(w->areas);
    free(w->ranked_scores);
    free(w->ranked_classes);
}

/* rows * k * 2 floats must be addressable (checked by the caller). */
static int alloc_workspace(workspace *w, ep_index rows, ep_index k, int oks)
{
    size_t r = (size_t)(rows > 0 ? rows : 1), kk = (size_t)(k > 0 ? k : 1);
    w->cand = (candidate *)malloc(r * sizeof(candidate));
    w->rows = (ep_index *)malloc(r * sizeof(ep_index));
    w->boxes = (float *)malloc(r * 4 * sizeof(float));
    w->scores = (float *)malloc(r * sizeof(float));
    w->classes = (ep_index *)malloc(r * sizeof(ep_index));
    w->keep = (ep_index *)malloc(r * sizeof(ep_index));
    w->points = oks ? (float *)malloc(r * kk * 2 * sizeof(float)) : NULL;
    w->areas = oks ? (float *)malloc(r * sizeof(float)) : NULL;
    w->ranked_scores = oks ? (float *)malloc(r * sizeof(float)) : NULL;
    w->ranked_classes = oks ? (ep_index *)malloc(r * sizeof(ep_index)) : NULL;
    if (!w->cand || !w->rows || !w->boxes || !w->scores || !w->classes || !w->keep ||
        (oks && (!w->points || !w->areas || !w->ranked_scores || !w->ranked_classes)))
        return EP_ENOMEM;
    return EP_OK;
}

/* Whether row[c * sl] is finite for c0 <= c < c1. */
static int row_finite(const float *row, ep_index sl, ep_index c0, ep_index c1)
{
    ep_index c;
    for (c = c0; c < c1; ++c)
        if (!isfinite(row[c * sl])) return 0;
    return 1;
}

/* The first column of the keypoints in a row. */
static ep_index keypoint_column(const ep_yolo_params *p)
{
    return p->end_to_end ? 6 : 4 + p->num_classes;
}

/*
 * Collects the candidates of one image into w, in row order: a row whose
 * best class score is > the threshold and whose box and keypoint values
 * (and, raw layout, xyxy corners) are finite. Returns their number.
 */
static ep_index collect(ep_view3 out, ep_index img, const ep_yolo_params *p, workspace *w)
{
    const float *base = out.data + img * out.sn;
    const ep_index sl = out.sl, nc = p->num_classes, k0 = keypoint_column(p);
    const ep_index k1 = k0 + p->num_keypoints * p->keypoint_dims;
    ep_index a, c, m = 0;
    for (a = 0; a < out.k; ++a) {
        const float *row = base + a * out.sk;
        float score = row[4 * sl], x1, y1, x2, y2;
        ep_index cls = 0;
        if (p->end_to_end) {
            double v = row[5 * sl];
            if (!((double)score > p->score_threshold)) continue;
            /* the class must be finite and round into 0 .. C-1 */
            if (!(v >= -0.5 && v < (double)nc - 0.5)) continue;
            cls = (ep_index)floor(v + 0.5);
            if (!row_finite(row, sl, 0, 4) || !row_finite(row, sl, k0, k1)) continue;
            x1 = row[0], y1 = row[sl], x2 = row[2 * sl], y2 = row[3 * sl];
        } else {
            int has_nan = score != score;
            for (c = 1; c < nc; ++c) {
                float s = row[(4 + c) * sl];
                if (s != s) has_nan = 1;
                else if (s > score) score = s, cls = c;
            }
            /* NaN among the class scores: no candidate (torch.amax propagates
             * NaN, and NaN > threshold is false). */
            if (has_nan || !((double)score > p->score_threshold)) continue;
            if (!row_finite(row, sl, 0, 4) || !row_finite(row, sl, k0, k1)) continue;
            {
                float cx = row[0], cy = row[sl];
                float hw = row[2 * sl] / 2.0f, hh = row[3 * sl] / 2.0f;
                x1 = cx - hw, y1 = cy - hh, x2 = cx + hw, y2 = cy + hh;
            }
            if (!isfinite(x1) || !isfinite(y1) || !isfinite(x2) || !isfinite(y2)) continue;
        }
        w->cand[m].score = score;
        w->cand[m].slot = m;
        w->scores[m] = score;
        w->rows[m] = a;
        w->boxes[4 * m] = x1;
        w->boxes[4 * m + 1] = y1;
        w->boxes[4 * m + 2] = x2;
        w->boxes[4 * m + 3] = y2;
        w->classes[m] = cls;
        ++m;
    }
    return m;
}

/*
 * Keeps the `limit` best candidates (descending score, ties by row), packed
 * in row order. Returns the new count.
 */
static ep_index top_candidates(workspace *w, ep_index m, ep_index limit)
{
    ep_index i;
    if (m <= limit) return m;
    qsort(w->cand, (size_t)m, sizeof(candidate), candidate_cmp);
    for (i = 0; i < limit; ++i) w->keep[i] = w->cand[i].slot;
    qsort(w->keep, (size_t)limit, sizeof(ep_index), index_cmp);
    /* keep[i] >= i and ascending: gathering forward never reads a slot
     * already overwritten. */
    for (i = 0; i < limit; ++i) {
        ep_index s = w->keep[i];
        w->rows[i] = w->rows[s];
        w->classes[i] = w->classes[s];
        w->boxes[4 * i] = w->boxes[4 * s];
        w->boxes[4 * i + 1] = w->boxes[4 * s + 1];
        w->boxes[4 * i + 2] = w->boxes[4 * s + 2];
        w->boxes[4 * i + 3] = w->boxes[4 * s + 3];
        w->scores[i] = w->scores[s];
        w->cand[i].score = w->scores[i];
        w->cand[i].slot = i;
    }
    return limit;
}

/* Candidates by descending score (ties by row) into keep; returns the count. */
static ep_index rank_all(workspace *w, ep_index m, ep_index limit)
{
    ep_index i, n = m < limit ? m : limit;
    qsort(w->cand, (size_t)m, sizeof(candidate), candidate_cmp);
    for (i = 0; i < n; ++i) w->keep[i] = w->cand[i].slot;
    return n;
}

/* The keypoints (x, y), box areas, scores and classes of the candidates in
 * rank order (w->cand sorted), for OKS NMS. */
static void gather_ranked(ep_view3 out, ep_index img, const ep_yolo_params *p, workspace *w,
                          ep_index m)
{
    const float *base = out.data + img * out.sn;
    const ep_index sl = out.sl, k = p->num_keypoints, d = p->keypoint_dims;
    const ep_index k0 = keypoint_column(p);
    ep_index i, j;
    for (i = 0; i < m; ++i) {
        const ep_index s = w->cand[i].slot;
        const float *row = base + w->rows[s] * out.sk;
        const float *b = w->boxes + 4 * s;
        double bw = (double)b[2] - b[0], bh = (double)b[3] - b[1];
        for (j = 0; j < k; ++j) {
            w->points[2 * (i * k + j)] = row[(k0 + j * d) * sl];
            w->points[2 * (i * k + j) + 1] = row[(k0 + j * d + 1) * sl];
        }
        w->areas[i] = narrow((bw > 0.0 ? bw : 0.0) * (bh > 0.0 ? bh : 0.0));
        w->ranked_scores[i] = w->scores[s];
        w->ranked_classes[i] = w->classes[s];
    }
}

/*
 * OKS NMS of the m candidates, keeping at most `limit`. Greedy NMS decides
 * each candidate from the higher-ranked ones only, so NMS of the best t
 * candidates keeps exactly the full run's survivors among them: the prefix
 * grows (2 * limit, then doubling) until it keeps `limit` or holds all m.
 * That bounds the work by the detections wanted, not by m^2. keep receives
 * slots, by rank.
 */
static int oks_nms(ep_view3 out, ep_index img, const ep_yolo_params *p, workspace *w,
                   ep_index m, const ep_index *groups, ep_index *n_keep)
{
    const ep_index limit = p->max_detections;
    ep_index t = limit < m / 2 ? 2 * limit : m, i;
    int status;
    qsort(w->cand, (size_t)m, sizeof(candidate), candidate_cmp);
    gather_ranked(out, img, p, w, m);
    for (;;) {
        status = ep_nms_oks(w->points, w->ranked_scores, w->areas,
                            groups ? w->ranked_classes : NULL, t, p->num_keypoints, p->sigmas,
                            p->iou_threshold, w->keep, n_keep);
        if (status != EP_OK || *n_keep >= limit || t == m) break;
        t = t < m / 2 ? 2 * t : m;
    }
    if (*n_keep > limit) *n_keep = limit;
    for (i = 0; i < *n_keep; ++i) w->keep[i] = w->cand[w->keep[i]].slot;
    return status;
}

/* (v - pad) / scale, clipped to [0, hi] when clip; in double. */
static float to_image(double v, double pad, double scale, int clip, double hi)
{
    double x = (v - pad) / scale;
    if (clip) x = x < 0.0 ? 0.0 : (x > hi ? hi : x);
    return narrow(x);
}

/* Writes the kept candidates of one image to slot 0.. of its outputs. */
static void write_image(ep_view3 out, ep_index img, const ep_yolo_params *p,
                        const workspace *w, ep_index n_keep, const double *scale,
                        const double *pad, const double *image_hw, ep_index capacity,
                        float *boxes, float *scores, ep_index *classes, float *keypoints,
                        float *keypoint_scores)
{
    const float *base = out.data + img * out.sn;
    const ep_index sl = out.sl, k = p->num_keypoints, d = p->keypoint_dims;
    const ep_index k0 = keypoint_column(p);
    const double sx = scale[2 * img], sy = scale[2 * img + 1];
    const double px = pad[2 * img], py = pad[2 * img + 1];
    const int clip = image_hw != NULL;
    const double hi_y = clip ? image_hw[2 * img] : 0.0, hi_x = clip ? image_hw[2 * img + 1] : 0.0;
    ep_index i, j;
    for (i = 0; i < n_keep; ++i) {
        ep_index s = w->keep[i], o = img * capacity + i;
        const float *row = base + w->rows[s] * out.sk;
        const float *b = w->boxes + 4 * s;
        float score = w->scores[s];
        boxes[4 * o] = to_image(b[0], px, sx, clip, hi_x);
        boxes[4 * o + 1] = to_image(b[1], py, sy, clip, hi_y);
        boxes[4 * o + 2] = to_image(b[2], px, sx, clip, hi_x);
        boxes[4 * o + 3] = to_image(b[3], py, sy, clip, hi_y);
        scores[o] = score;
        classes[o] = w->classes[s];
        for (j = 0; j < k; ++j) {
            const float *kp = row + (k0 + j * d) * sl;
            keypoints[2 * (o * k + j)] = to_image(kp[0], px, sx, clip, hi_x);
            keypoints[2 * (o * k + j) + 1] = to_image(kp[sl], py, sy, clip, hi_y);
            keypoint_scores[o * k + j] = d == 3 ? kp[2 * sl] : score;
        }
    }
}

/* Whether the per-image transform is usable: scale > 0 and finite, pad
 * finite, image sides > 0 and finite. */
static int transforms_valid(ep_index n, const double *scale, const double *pad,
                            const double *image_hw)
{
    ep_index i;
    for (i = 0; i < 2 * n; ++i) {
        if (!(scale[i] > 0.0 && isfinite(scale[i])) || !isfinite(pad[i])) return 0;
        if (image_hw && !(image_hw[i] > 0.0 && isfinite(image_hw[i]))) return 0;
    }
    return 1;
}

static int params_valid(const ep_yolo_params *p)
{
    return p->num_classes >= 1 && p->num_keypoints >= 0 &&
           (p->keypoint_dims == 2 || p->keypoint_dims == 3) && p->max_candidates >= 0 &&
           p->max_detections >= 0 && p->score_threshold == p->score_threshold &&
           p->iou_threshold == p->iou_threshold &&
           (p->nms == EP_YOLO_NMS_NONE || p->nms == EP_YOLO_NMS_BOX ||
            p->nms == EP_YOLO_NMS_OKS) &&
           (p->nms != EP_YOLO_NMS_OKS || p->end_to_end ||
            (p->sigmas != NULL && p->num_keypoints >= 1));
}

int ep_yolo_channels(const ep_yolo_params *p, ep_index *channels)
{
    size_t kd;
    int status;
    *channels = 0;
    if (!params_valid(p)) return EP_EINVAL;
    status = ep_mul_size(p->num_keypoints, p->keypoint_dims, &kd);
    if (status != EP_OK) return status;
    if (p->end_to_end) {
        if (kd > (size_t)(PTRDIFF_MAX - 6)) return EP_EOVERFLOW;
        *channels = 6 + (ep_index)kd;
    } else {
        if (p->num_classes > PTRDIFF_MAX - 4 || kd > (size_t)(PTRDIFF_MAX - 4 - p->num_classes))
            return EP_EOVERFLOW;
        *channels = 4 + p->num_classes + (ep_index)kd;
    }
    return EP_OK;
}

int ep_decode_yolo_pose(ep_view3 output, const ep_yolo_params *params, const double *scale,
                        const double *pad, const double *image_hw, ep_index capacity,
                        float *boxes, float *scores, ep_index *classes, float *keypoints,
                        float *keypoint_scores, ep_index *counts)
{
    ep_yolo_params p = *params;
    workspace w = {0};
    ep_index channels, img, need;
    size_t size;
    int status, oks;

    if (output.n < 0 || output.k < 0 || output.len < 0 || capacity < 0) return EP_EINVAL;
    status = ep_yolo_channels(&p, &channels);
    if (status != EP_OK) return status;
    if (output.len != channels) return EP_EINVAL;
    if (p.end_to_end) p.nms = EP_YOLO_NMS_NONE;
    oks = p.nms == EP_YOLO_NMS_OKS;
    need = p.max_detections < output.k ? p.max_detections : output.k;
    if (capacity < need) return EP_EINVAL;
    /* the outputs (n, capacity, k, 2) and the workspace (rows, k, 2), in
     * bytes of 8-byte elements at most */
    if ((status = ep_mul3_size(output.n, capacity, p.num_keypoints, &size)) != EP_OK ||
        (status = ep_mul3_size((ep_index)size, 2, 4, &size)) != EP_OK ||
        (status = ep_mul3_size(output.n, capacity, 32, &size)) != EP_OK ||
        (status = ep_mul3_size(output.k, p.num_keypoints > 0 ? p.num_keypoints : 1, 8, &size)) !=
            EP_OK ||
        (status = ep_mul_size(output.k, 32, &size)) != EP_OK)
        return status;
    if (!transforms_valid(output.n, scale, pad, image_hw)) return EP_EINVAL;
    for (img = 0; img < output.n; ++img) counts[img] = 0;
    if (output.n == 0 || output.k == 0 || need == 0) return EP_OK;
    status = alloc_workspace(&w, output.k, p.num_keypoints, oks);
    if (status != EP_OK) {
        free_workspace(&w);
        return status;
    }
    for (img = 0; img < output.n && status == EP_OK; ++img) {
        ep_index m = collect(output, img, &p, &w), n_keep = 0;
        if (!p.end_to_end) m = top_candidates(&w, m, p.max_candidates);
        if (m == 0) {
            n_keep = 0;
        } else if (p.nms == EP_YOLO_NMS_NONE) {
            n_keep = rank_all(&w, m, p.max_detections);
        } else {
            const ep_index *groups =
                p.num_classes > 1 && !p.class_agnostic ? w.classes : NULL;
            if (oks) {
                status = oks_nms(output, img, &p, &w, m, groups, &n_keep);
            } else {
                status = ep_nms_boxes(w.boxes, w.scores, groups, m, p.iou_threshold,
                                      p.max_detections, w.keep, &n_keep);
            }
        }
        if (status != EP_OK) break;
        write_image(output, img, &p, &w, n_keep, scale, pad, image_hw, capacity, boxes, scores,
                    classes, keypoints, keypoint_scores);
        counts[img] = n_keep;
    }
    free_workspace(&w);
    return status;
}

/* sigmoid in double: 1 / (1 + e^-v); 0 at -inf, 1 at +inf, NaN stays NaN. */
static double sigmoid(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

/* Anchors decoded together: the loops run along the anchors, which are
 * contiguous in a channels-first head, instead of striding across channels
 * per anchor (4 * reg_max pages apart). */
#define DFL_TILE 64

/*
 * dist[side * DFL_TILE + i] = the expectation of the bin index 0 .. r-1
 * under softmax of the logits of anchor i (0 <= i < t) and that side; NaN
 * when a logit is NaN or +inf, or all are -inf. The exponentials are
 * float32 (expf, within an ulp; the shift by the maximum keeps them in
 * (0, 1]), the sums double: within ~1e-6 bins of the exact expectation.
 */
static void dfl_distances(const float *bc, ep_index sk, ep_index sl, ep_index r, ep_index t,
                          double *dist)
{
    float top[DFL_TILE];
    double sum[DFL_TILE], weighted[DFL_TILE];
    ep_index side, b, i;
    for (side = 0; side < 4; ++side) {
        const float *logits = bc + side * r * sk;
        for (i = 0; i < t; ++i) top[i] = -INFINITY;
        for (b = 0; b < r; ++b) {
            const float *row = logits + b * sk;
            for (i = 0; i < t; ++i) {
                float v = row[i * sl];
                if (v > top[i] || v != v) top[i] = v; /* NaN sticks: v > NaN is false */
            }
        }
        for (i = 0; i < t; ++i) sum[i] = weighted[i] = 0.0;
        for (b = 0; b < r; ++b) {
            const float *row = logits + b * sk;
            for (i = 0; i < t; ++i) {
                double e = isfinite(top[i]) ? expf(row[i * sl] - top[i]) : 0.0;
                sum[i] += e;
                weighted[i] += e * (double)b;
            }
        }
        for (i = 0; i < t; ++i)
            dist[side * DFL_TILE + i] = isfinite(top[i]) ? weighted[i] / sum[i] : NAN;
    }
}

int ep_decode_yolo_dfl(ep_view3 box_class, ep_view3 kpts, ep_index input_h, ep_index input_w,
                       const ep_index *strides, ep_index n_strides, ep_index reg_max,
                       ep_index num_keypoints, ep_index keypoint_dims, float *out)
{
    ep_index n = box_class.n, a_total = box_class.len, nc, kd, channels, total = 0;
    ep_index level, img;
    size_t size;
    int status;

    if (n < 0 || box_class.k < 0 || a_total < 0 || kpts.n != n || kpts.len != a_total ||
        kpts.k < 0 || reg_max < 1 || num_keypoints < 0 ||
        (keypoint_dims != 2 && keypoint_dims != 3) || n_strides < 1 || input_h < 1 ||
        input_w < 1)
        return EP_EINVAL;
    if ((status = ep_mul_size(reg_max, 4, &size)) != EP_OK) return status;
    if ((ep_index)size > box_class.k) return EP_EINVAL;
    nc = box_class.k - (ep_index)size;
    if ((status = ep_mul_size(num_keypoints, keypoint_dims, &size)) != EP_OK) return status;
    kd = (ep_index)size;
    if (kd != kpts.k) return EP_EINVAL;
    if (nc > PTRDIFF_MAX - 4 - kd) return EP_EOVERFLOW;
    channels = 4 + nc + kd;
    if ((status = ep_mul3_size(n, channels, a_total, &size)) != EP_OK ||
        (status = ep_mul_size((ep_index)size, 4, &size)) != EP_OK)
        return status;
    for (level = 0; level < n_strides; ++level) {
        ep_index s = strides[level];
        if (s < 1 || input_h % s || input_w % s) return EP_EINVAL;
        /* the cells of this level must fit the anchors left (no overflow) */
        if (input_w / s > (a_total - total) / (input_h / s)) return EP_EINVAL;
        total += (input_h / s) * (input_w / s);
    }
    if (total != a_total) return EP_EINVAL;

    for (img = 0; img < n; ++img) {
        const float *bc = box_class.data + img * box_class.sn;
        const float *kp = kpts.data + img * kpts.sn;
        float *o = out + img * channels * a_total;
        ep_index a = 0, c;
        for (level = 0; level < n_strides; ++level) {
            const ep_index s = strides[level], gh = input_h / s, gw = input_w / s;
            const double stride = (double)s;
            ep_index gy, x0, i, j;
            for (gy = 0; gy < gh; ++gy) {
                for (x0 = 0; x0 < gw; x0 += DFL_TILE) {
                    const ep_index t = gw - x0 < DFL_TILE ? gw - x0 : DFL_TILE;
                    const double ay = (double)gy + 0.5;
                    double dist[4 * DFL_TILE];
                    dfl_distances(bc + a * box_class.sl, box_class.sk, box_class.sl, reg_max, t,
                                  dist);
                    for (i = 0; i < t; ++i) {
                        const double ax = (double)(x0 + i) + 0.5;
                        const double x1 = ax - dist[i], y1 = ay - dist[DFL_TILE + i];
                        const double x2 = ax + dist[2 * DFL_TILE + i];
                        const double y2 = ay + dist[3 * DFL_TILE + i];
                        o[a + i] = narrow((x1 + x2) / 2.0 * stride);
                        o[a_total + a + i] = narrow((y1 + y2) / 2.0 * stride);
                        o[2 * a_total + a + i] = narrow((x2 - x1) * stride);
                        o[3 * a_total + a + i] = narrow((y2 - y1) * stride);
                    }
                    for (c = 0; c < nc; ++c) {
                        const float *row = bc + (4 * reg_max + c) * box_class.sk + a * box_class.sl;
                        for (i = 0; i < t; ++i)
                            o[(4 + c) * a_total + a + i] = (float)sigmoid(row[i * box_class.sl]);
                    }
                    for (j = 0; j < kd; ++j) {
                        const float *row = kp + j * kpts.sk + a * kpts.sl;
                        const int d = (int)(j % keypoint_dims);
                        float *dst = o + (4 + nc + j) * a_total + a;
                        for (i = 0; i < t; ++i) {
                            double v = row[i * kpts.sl];
                            double r = d == 0   ? (v * 2.0 + (double)(x0 + i)) * stride
                                       : d == 1 ? (v * 2.0 + (ay - 0.5)) * stride
                                                : sigmoid(v);
                            dst[i] = narrow(r);
                        }
                    }
                    a += t;
                }
            }
        }
    }
    return EP_OK;
}

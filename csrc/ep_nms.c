/* Box NMS, OKS NMS and soft OKS NMS. */
#include "ep_core.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "ep_simd.h"

typedef struct {
    float score;
    ep_index index;
} ranked;

/* Descending score, then ascending index; NaN ranks last (callers reject it,
 * but the order must stay total whatever the input). */
static int rank_cmp(const void *pa, const void *pb)
{
    const ranked *a = (const ranked *)pa, *b = (const ranked *)pb;
    int a_nan = a->score != a->score, b_nan = b->score != b->score;
    if (a_nan != b_nan) return a_nan - b_nan;
    if (!a_nan) {
        if (a->score > b->score) return -1;
        if (a->score < b->score) return 1;
    }
    return (a->index > b->index) - (a->index < b->index);
}

/* The candidates sorted by rank_cmp, or NULL when allocation fails. */
static ranked *rank_scores(const float *scores, ep_index m)
{
    ranked *order = (ranked *)malloc((size_t)(m > 0 ? m : 1) * sizeof(ranked));
    ep_index i;
    if (!order) return NULL;
    for (i = 0; i < m; ++i) {
        order[i].score = scores[i];
        order[i].index = i;
    }
    qsort(order, (size_t)m, sizeof(ranked), rank_cmp);
    return order;
}

static int same_group(const ep_index *groups, ep_index a, ep_index b)
{
    return groups == NULL || groups[a] == groups[b];
}

/* Boxes in rank order, one array per coordinate, so the sweep vectorizes.
 * Double precision: float32 areas overflow for extents above ~1.8e19 and
 * the IoU must be compared with the (double) threshold exactly as the
 * NumPy reference does. */
typedef struct {
    double *x1, *y1, *x2, *y2, *area;
} box_columns;

/*
 * Marks every box b > a that overlaps box a by IoU > threshold. Branch-free
 * (IoU 0 where the boxes are disjoint or the union is not positive), so
 * compilers vectorize it; boxes already dropped are recomputed harmlessly.
 */
static inline void sweep(box_columns c, ep_index a, ep_index m, double threshold,
                         unsigned char *restrict dropped)
{
    const double ax1 = c.x1[a], ay1 = c.y1[a], ax2 = c.x2[a], ay2 = c.y2[a], aa = c.area[a];
    const double *restrict x1 = c.x1, *restrict y1 = c.y1, *restrict x2 = c.x2;
    const double *restrict y2 = c.y2, *restrict area = c.area;
    ep_index b;
    for (b = a + 1; b < m; ++b) {
        double lx = x1[b] > ax1 ? x1[b] : ax1, rx = x2[b] < ax2 ? x2[b] : ax2;
        double ty = y1[b] > ay1 ? y1[b] : ay1, by = y2[b] < ay2 ? y2[b] : ay2;
        double w = rx - lx, h = by - ty;
        double inter = (w > 0.0 ? w : 0.0) * (h > 0.0 ? h : 0.0);
        double uni = aa + area[b] - inter;
        /* Dividing unconditionally lets the loop vectorize; the guard keeps
         * 0 / 0 out (uni > 0 whenever inter > 0, and 0 / 1 is 0). */
        double iou = inter / (uni > 0.0 ? uni : 1.0);
        dropped[b] |= iou > threshold;
    }
}

static void sweep_default(box_columns c, ep_index a, ep_index m, double threshold,
                          unsigned char *dropped)
{
    sweep(c, a, m, threshold, dropped);
}

#ifdef EP_AVX2
EP_TARGET_AVX2 static void sweep_avx2(box_columns c, ep_index a, ep_index m,
                                      double threshold, unsigned char *dropped)
{
    sweep(c, a, m, threshold, dropped);
}
#endif

/* The same test for one pair, for the grouped path. */
static int overlaps(box_columns c, ep_index a, ep_index b, double threshold)
{
    unsigned char flag[2] = {0, 0};
    box_columns pair;
    double x1[2], y1[2], x2[2], y2[2], area[2];
    x1[0] = c.x1[a], y1[0] = c.y1[a], x2[0] = c.x2[a], y2[0] = c.y2[a], area[0] = c.area[a];
    x1[1] = c.x1[b], y1[1] = c.y1[b], x2[1] = c.x2[b], y2[1] = c.y2[b], area[1] = c.area[b];
    pair.x1 = x1, pair.y1 = y1, pair.x2 = x2, pair.y2 = y2, pair.area = area;
    sweep(pair, 0, 2, threshold, flag);
    return flag[1];
}

int ep_nms_boxes(const float *boxes, const float *scores, const ep_index *groups,
                 ep_index m, double iou_threshold, ep_index max_keep,
                 ep_index *keep, ep_index *n_keep)
{
    ranked *order;
    double *columns;
    box_columns c;
    unsigned char *dropped;
    ep_index a, b, count = 0;
    ep_index limit = max_keep < 0 || max_keep > m ? m : max_keep;
    int avx2 = ep_cpu_has_avx2();

    *n_keep = 0;
    if (m < 0) return EP_EINVAL;
    if (m == 0 || limit == 0) return EP_OK;
    if (m > PTRDIFF_MAX / (ep_index)(5 * sizeof(double)) || m > PTRDIFF_MAX / 16)
        return EP_EOVERFLOW;
    order = rank_scores(scores, m);
    columns = (double *)malloc((size_t)m * 5 * sizeof(double));
    dropped = (unsigned char *)calloc((size_t)m, 1);
    if (!order || !columns || !dropped) {
        free(order);
        free(columns);
        free(dropped);
        return EP_ENOMEM;
    }
    c.x1 = columns, c.y1 = columns + m, c.x2 = columns + 2 * m, c.y2 = columns + 3 * m;
    c.area = columns + 4 * m;
    for (a = 0; a < m; ++a) {
        const float *p = boxes + 4 * order[a].index;
        double w = (double)p[2] - p[0], h = (double)p[3] - p[1];
        c.x1[a] = p[0];
        c.y1[a] = p[1];
        c.x2[a] = p[2];
        c.y2[a] = p[3];
        c.area[a] = (w > 0.0 ? w : 0.0) * (h > 0.0 ? h : 0.0);
    }
    for (a = 0; a < m && count < limit; ++a) {
        ep_index i = order[a].index;
        if (dropped[a]) continue;
        keep[count++] = i;
        if (groups) {
            for (b = a + 1; b < m; ++b)
                if (!dropped[b] && groups[order[b].index] == groups[i])
                    dropped[b] = (unsigned char)overlaps(c, a, b, iou_threshold);
        } else {
#ifdef EP_AVX2
            if (avx2) sweep_avx2(c, a, m, iou_threshold, dropped);
            else
#endif
            sweep_default(c, a, m, iou_threshold, dropped);
        }
    }
    (void)avx2;
    *n_keep = count;
    free(order);
    free(columns);
    free(dropped);
    return EP_OK;
}

/* Whether the keypoints (m * k * 2 floats) and the per-pose (m) and
 * per-keypoint (k) workspaces of at most 16 bytes an element are addressable. */
static int sizes_fit(ep_index m, ep_index k)
{
    size_t size;
    return ep_mul3_size(m, k, 2 * (ep_index)sizeof(float), &size) == EP_OK &&
           ep_mul_size(m, 16, &size) == EP_OK && ep_mul_size(k, 16, &size) == EP_OK;
}

/* 1 / (2 sigma)^2 per keypoint, the weights of the OKS exponent. */
static double *oks_weights(const float *sigmas, ep_index k)
{
    double *w = (double *)malloc((size_t)k * sizeof(double));
    ep_index j;
    if (!w) return NULL;
    for (j = 0; j < k; ++j) w[j] = 1.0 / ((2.0 * sigmas[j]) * (2.0 * sigmas[j]));
    return w;
}

/* 1 / (2 (area + eps)) with area the mean of the two; eps = np.spacing(1), as
 * MMPose's oks_iou. */
static double oks_scale(double area_a, double area_b)
{
    return 1.0 / (2.0 * ((area_a + area_b) / 2.0 + 2.220446049250313e-16));
}

static double oks_with_weights(const float *a, const float *b, const double *w,
                               ep_index k, double area_a, double area_b)
{
    double scale = oks_scale(area_a, area_b), sum = 0.0;
    ep_index j;
    for (j = 0; j < k; ++j) {
        double dx = (double)a[2 * j] - b[2 * j];
        double dy = (double)a[2 * j + 1] - b[2 * j + 1];
        sum += exp(-(dx * dx + dy * dy) * w[j] * scale);
    }
    return sum / (double)k;
}

/*
 * Whether OKS(a, b) > threshold, stopping as soon as the answer is known:
 * every term lies in (0, 1], so the running sum only grows and the terms
 * left can add at most one each. The margin keeps rounding in the partial
 * sums from deciding early a case the full sum would decide otherwise.
 */
static int oks_exceeds(const float *a, const float *b, const double *w, ep_index k,
                       double area_a, double area_b, double threshold)
{
    double scale = oks_scale(area_a, area_b), sum = 0.0;
    double target = threshold * (double)k, margin = 1e-9 * (double)k;
    ep_index j;
    for (j = 0; j < k; ++j) {
        double dx = (double)a[2 * j] - b[2 * j];
        double dy = (double)a[2 * j + 1] - b[2 * j + 1];
        sum += exp(-(dx * dx + dy * dy) * w[j] * scale);
        if (sum > target + margin) return 1;
        if (sum + (double)(k - 1 - j) < target - margin) return 0;
    }
    return sum / (double)k > threshold;
}

double ep_oks(const float *a, const float *b, const float *sigmas, ep_index k,
              double area_a, double area_b)
{
    double *w, result;
    if (k < 1) return NAN;
    w = oks_weights(sigmas, k);
    if (!w) return NAN;
    result = oks_with_weights(a, b, w, k, area_a, area_b);
    free(w);
    return result;
}

int ep_nms_oks(const float *keypoints, const float *scores, const float *areas,
               const ep_index *groups, ep_index m, ep_index k,
               const float *sigmas, double threshold, ep_index *keep,
               ep_index *n_keep)
{
    ranked *order;
    double *w;
    unsigned char *dropped;
    ep_index a, b, count = 0;

    *n_keep = 0;
    if (m < 0 || k < 1) return EP_EINVAL;
    if (!sizes_fit(m, k)) return EP_EOVERFLOW;
    if (m == 0) return EP_OK;
    order = rank_scores(scores, m);
    w = oks_weights(sigmas, k);
    dropped = (unsigned char *)calloc((size_t)m, 1);
    if (!order || !w || !dropped) {
        free(order);
        free(w);
        free(dropped);
        return EP_ENOMEM;
    }
    for (a = 0; a < m; ++a) {
        ep_index i = order[a].index;
        if (dropped[a]) continue;
        keep[count++] = i;
        for (b = a + 1; b < m; ++b) {
            ep_index j = order[b].index;
            if (dropped[b] || !same_group(groups, i, j)) continue;
            if (oks_exceeds(keypoints + 2 * k * i, keypoints + 2 * k * j, w, k, areas[i],
                            areas[j], threshold))
                dropped[b] = 1;
        }
    }
    *n_keep = count;
    free(order);
    free(w);
    free(dropped);
    return EP_OK;
}

int ep_nms_oks_soft(const float *keypoints, const float *scores,
                    const float *areas, const ep_index *groups, ep_index m,
                    ep_index k, const float *sigmas, double threshold,
                    int method, ep_index max_keep, ep_index *keep,
                    float *new_scores, ep_index *n_keep)
{
    double *w, *current;
    ep_index *alive;
    ep_index n_alive = m, count = 0, a;
    ep_index limit = max_keep < 0 || max_keep > m ? m : max_keep;

    *n_keep = 0;
    if (m < 0 || k < 1) return EP_EINVAL;
    if (method != EP_SOFT_GAUSSIAN && method != EP_SOFT_LINEAR) return EP_EINVAL;
    if (method == EP_SOFT_GAUSSIAN && !(threshold > 0.0)) return EP_EINVAL;
    if (!sizes_fit(m, k)) return EP_EOVERFLOW;
    if (m == 0) return EP_OK;
    w = oks_weights(sigmas, k);
    current = (double *)malloc((size_t)m * sizeof(double));
    alive = (ep_index *)malloc((size_t)m * sizeof(ep_index));
    if (!w || !current || !alive) {
        free(w);
        free(current);
        free(alive);
        return EP_ENOMEM;
    }
    for (a = 0; a < m; ++a) {
        current[a] = scores[a];
        alive[a] = a; /* ascending index: the scan below breaks ties by it */
    }
    while (n_alive > 0 && count < limit) {
        ep_index top = 0, i;
        for (a = 1; a < n_alive; ++a)
            if (current[alive[a]] > current[alive[top]]) top = a;
        i = alive[top];
        keep[count] = i;
        if (new_scores) new_scores[count] = (float)current[i];
        ++count;
        /* Remove the kept pose while keeping the others in index order. */
        for (a = top; a + 1 < n_alive; ++a) alive[a] = alive[a + 1];
        --n_alive;
        for (a = 0; a < n_alive; ++a) {
            ep_index j = alive[a];
            double o;
            if (!same_group(groups, i, j)) continue;
            o = oks_with_weights(keypoints + 2 * k * i, keypoints + 2 * k * j, w, k,
                                 areas[i], areas[j]);
            if (method == EP_SOFT_GAUSSIAN)
                current[j] *= exp(-o * o / threshold);
            else if (o >= threshold)
                current[j] *= 1.0 - o;
        }
    }
    *n_keep = count;
    free(w);
    free(current);
    free(alive);
    return EP_OK;
}

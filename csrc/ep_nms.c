/* Box NMS, OKS NMS and soft OKS NMS. */
#include "ep_core.h"

#include <math.h>
#include <stdlib.h>

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

typedef struct {
    float x1, y1, x2, y2, area;
} box;

static float iou(box a, box b)
{
    float w = fminf(a.x2, b.x2) - fmaxf(a.x1, b.x1);
    float h = fminf(a.y2, b.y2) - fmaxf(a.y1, b.y1);
    float inter, uni;
    if (!(w > 0.0f) || !(h > 0.0f)) return 0.0f;
    inter = w * h;
    uni = a.area + b.area - inter;
    return uni > 0.0f ? inter / uni : 0.0f;
}

int ep_nms_boxes(const float *boxes, const float *scores, const ep_index *groups,
                 ep_index m, float iou_threshold, ep_index max_keep,
                 ep_index *keep, ep_index *n_keep)
{
    ranked *order;
    box *sorted;
    unsigned char *dropped;
    ep_index a, b, count = 0;
    ep_index limit = max_keep < 0 || max_keep > m ? m : max_keep;

    *n_keep = 0;
    if (m < 0) return EP_EINVAL;
    if (m == 0 || limit == 0) return EP_OK;
    order = rank_scores(scores, m);
    sorted = (box *)malloc((size_t)m * sizeof(box));
    dropped = (unsigned char *)calloc((size_t)m, 1);
    if (!order || !sorted || !dropped) {
        free(order);
        free(sorted);
        free(dropped);
        return EP_ENOMEM;
    }
    /* Boxes in rank order, so the inner loop reads memory sequentially. */
    for (a = 0; a < m; ++a) {
        const float *p = boxes + 4 * order[a].index;
        box *q = &sorted[a];
        float w = p[2] - p[0], h = p[3] - p[1];
        q->x1 = p[0];
        q->y1 = p[1];
        q->x2 = p[2];
        q->y2 = p[3];
        q->area = (w > 0.0f ? w : 0.0f) * (h > 0.0f ? h : 0.0f);
    }
    for (a = 0; a < m && count < limit; ++a) {
        ep_index i = order[a].index;
        if (dropped[a]) continue;
        keep[count++] = i;
        for (b = a + 1; b < m; ++b) {
            if (dropped[b] || !same_group(groups, i, order[b].index)) continue;
            if (iou(sorted[a], sorted[b]) > iou_threshold) dropped[b] = 1;
        }
    }
    *n_keep = count;
    free(order);
    free(sorted);
    free(dropped);
    return EP_OK;
}

/* (2 sigma)^2 per keypoint, the denominator terms of OKS. */
static double *oks_variances(const float *sigmas, ep_index k)
{
    double *vars = (double *)malloc((size_t)k * sizeof(double));
    ep_index j;
    if (!vars) return NULL;
    for (j = 0; j < k; ++j) vars[j] = (2.0 * sigmas[j]) * (2.0 * sigmas[j]);
    return vars;
}

static double oks_with_vars(const float *a, const float *b, const double *vars,
                            ep_index k, double area_a, double area_b)
{
    /* eps: np.spacing(1), as MMPose's oks_iou. */
    double scale = 2.0 * ((area_a + area_b) / 2.0 + 2.220446049250313e-16);
    double sum = 0.0;
    ep_index j;
    for (j = 0; j < k; ++j) {
        double dx = (double)a[2 * j] - b[2 * j];
        double dy = (double)a[2 * j + 1] - b[2 * j + 1];
        sum += exp(-(dx * dx + dy * dy) / vars[j] / scale);
    }
    return sum / (double)k;
}

double ep_oks(const float *a, const float *b, const float *sigmas, ep_index k,
              double area_a, double area_b)
{
    double *vars, result;
    if (k < 1) return NAN;
    vars = oks_variances(sigmas, k);
    if (!vars) return NAN;
    result = oks_with_vars(a, b, vars, k, area_a, area_b);
    free(vars);
    return result;
}

int ep_nms_oks(const float *keypoints, const float *scores, const float *areas,
               const ep_index *groups, ep_index m, ep_index k,
               const float *sigmas, float threshold, ep_index *keep,
               ep_index *n_keep)
{
    ranked *order;
    double *vars;
    unsigned char *dropped;
    ep_index a, b, count = 0;

    *n_keep = 0;
    if (m < 0 || k < 1) return EP_EINVAL;
    if (m == 0) return EP_OK;
    order = rank_scores(scores, m);
    vars = oks_variances(sigmas, k);
    dropped = (unsigned char *)calloc((size_t)m, 1);
    if (!order || !vars || !dropped) {
        free(order);
        free(vars);
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
            if (oks_with_vars(keypoints + 2 * k * i, keypoints + 2 * k * j, vars, k,
                              areas[i], areas[j]) > threshold)
                dropped[b] = 1;
        }
    }
    *n_keep = count;
    free(order);
    free(vars);
    free(dropped);
    return EP_OK;
}

int ep_nms_oks_soft(const float *keypoints, const float *scores,
                    const float *areas, const ep_index *groups, ep_index m,
                    ep_index k, const float *sigmas, float threshold,
                    int method, ep_index max_keep, ep_index *keep,
                    float *new_scores, ep_index *n_keep)
{
    double *vars, *current;
    ep_index *alive;
    ep_index n_alive = m, count = 0, a;
    ep_index limit = max_keep < 0 || max_keep > m ? m : max_keep;

    *n_keep = 0;
    if (m < 0 || k < 1) return EP_EINVAL;
    if (method != EP_SOFT_GAUSSIAN && method != EP_SOFT_LINEAR) return EP_EINVAL;
    if (method == EP_SOFT_GAUSSIAN && !(threshold > 0.0f)) return EP_EINVAL;
    if (m == 0) return EP_OK;
    vars = oks_variances(sigmas, k);
    current = (double *)malloc((size_t)m * sizeof(double));
    alive = (ep_index *)malloc((size_t)m * sizeof(ep_index));
    if (!vars || !current || !alive) {
        free(vars);
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
            o = oks_with_vars(keypoints + 2 * k * i, keypoints + 2 * k * j, vars, k,
                              areas[i], areas[j]);
            if (method == EP_SOFT_GAUSSIAN)
                current[j] *= exp(-o * o / threshold);
            else if (o >= threshold)
                current[j] *= 1.0 - o;
        }
    }
    *n_keep = count;
    free(vars);
    free(current);
    free(alive);
    return EP_OK;
}

#include "ep_argmax.h"

#include <math.h>

#define EP_LANES 8

/*
 * Contiguous rows: the maximum is found with EP_LANES independent running
 * maxima (which compilers turn into SIMD max instructions), then the first
 * position holding it is found by a scan that usually stops early. NaN is
 * detected alongside, since x != x only for NaN.
 */
static ep_index argmax_contiguous(const float *row, ep_index len, float *max_out)
{
    float lane_max[EP_LANES];
    int lane_nan[EP_LANES];
    ep_index i = 0;
    int l;
    float best;
    int has_nan = 0;

    for (l = 0; l < EP_LANES; ++l) {
        lane_max[l] = -INFINITY;
        lane_nan[l] = 0;
    }
    for (; i + EP_LANES <= len; i += EP_LANES) {
        for (l = 0; l < EP_LANES; ++l) {
            float v = row[i + l];
            lane_max[l] = v > lane_max[l] ? v : lane_max[l];
            lane_nan[l] |= v != v;
        }
    }
    best = -INFINITY;
    for (l = 0; l < EP_LANES; ++l) {
        best = lane_max[l] > best ? lane_max[l] : best;
        has_nan |= lane_nan[l];
    }
    for (; i < len; ++i) {
        float v = row[i];
        best = v > best ? v : best;
        has_nan |= v != v;
    }
    if (has_nan) {
        *max_out = NAN;
        return -1;
    }
    *max_out = best;
    for (i = 0; i < len; ++i) {
        if (row[i] == best) return i;
    }
    return 0; /* unreachable: best is one of the values (all -inf included) */
}

static ep_index argmax_strided(const float *row, ep_index len, ep_index stride,
                               float *max_out)
{
    ep_index i, best_i = 0;
    float best = row[0];

    if (best != best) {
        *max_out = NAN;
        return -1;
    }
    for (i = 1; i < len; ++i) {
        float v = row[i * stride];
        if (v > best) {
            best = v;
            best_i = i;
        } else if (v != v) {
            *max_out = NAN;
            return -1;
        }
    }
    *max_out = best;
    return best_i;
}

ep_index ep_argmax_row(const float *row, ep_index len, ep_index stride,
                       float *max_out)
{
    if (stride == 1) return argmax_contiguous(row, len, max_out);
    return argmax_strided(row, len, stride, max_out);
}

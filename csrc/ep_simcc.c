#include "ep_core.h"

#include <math.h>

#include "ep_argmax.h"

int ep_decode_simcc(ep_view3 x, ep_view3 y, float split_ratio,
                    float *keypoints, float *scores)
{
    ep_index n, k;

    if (x.n < 0 || x.k < 0 || x.len < 1 || y.len < 1 || x.n != y.n ||
        x.k != y.k || !(split_ratio > 0.0f) || !isfinite(split_ratio))
        return EP_EINVAL;
    {
        size_t size; /* the outputs (n * k * 2) must be addressable */
        if (ep_mul3_size(x.n, x.k, 2 * (ep_index)sizeof(float), &size) != EP_OK)
            return EP_EOVERFLOW;
    }

    for (n = 0; n < x.n; ++n) {
        for (k = 0; k < x.k; ++k) {
            const float *rx = x.data + n * x.sn + k * x.sk;
            const float *ry = y.data + n * y.sn + k * y.sk;
            float max_x, max_y, score;
            ep_index ix = ep_argmax_row(rx, x.len, x.sl, &max_x);
            ep_index iy = ep_argmax_row(ry, y.len, y.sl, &max_y);
            float *kp = keypoints + 2 * (n * x.k + k);

            score = max_x > max_y ? max_y : max_x;
            if (ix < 0 || iy < 0) score = NAN;
            /* score <= 0 is false for NaN: test validity explicitly. */
            if (!(score > 0.0f)) {
                ix = -1;
                iy = -1;
            }
            kp[0] = (float)ix / split_ratio;
            kp[1] = (float)iy / split_ratio;
            scores[n * x.k + k] = score;
        }
    }
    return EP_OK;
}

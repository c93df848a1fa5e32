/*
 * Heatmap argmax with DARK and DARK-UDP refinement.
 *
 * MMPose blurs every whole heatmap, rescales it to its original maximum,
 * clamps, takes the log and then reads a few values around the peak. The log
 * turns the rescale into an additive constant that cancels in every
 * derivative, so unless the clamp (or UDP's clip) could bite, only the
 * blurred values around the peak are needed: they are computed directly
 * (a (2R+1)^2 block costs about 1% of a 64x48 map). Where the clamp could
 * bite, the whole map is blurred to find the exact rescale factor.
 */
#include "ep_core.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "ep_argmax.h"
#include "ep_simd.h"

#include <stdint.h>

/* Half-size of the block of blurred values a refinement reads. */
#define DARK_RADIUS 2
#define UDP_RADIUS 1
#define BLOCK_MAX (2 * DARK_RADIUS + 1)
#define ROWS_MAX (BLOCK_MAX + EP_MAX_BLUR_KERNEL - 1)

/* MMPose's clamps, applied to the rescaled blurred map before the log. */
#define DARK_FLOOR 1e-10f
#define UDP_FLOOR 1e-3f
#define UDP_CEIL 50.0f

int ep_gaussian_kernel(int size, float *out)
{
    static const float tab3[3] = {0.25f, 0.5f, 0.25f};
    static const float tab5[5] = {0.0625f, 0.25f, 0.375f, 0.25f, 0.0625f};
    static const float tab7[7] = {0.03125f, 0.109375f, 0.21875f, 0.28125f,
                                  0.21875f, 0.109375f, 0.03125f};
    const float *tab = NULL;
    int i;

    if (size < 1 || size > EP_MAX_BLUR_KERNEL || size % 2 == 0) return EP_EINVAL;
    if (size == 1) {
        out[0] = 1.0f;
        return EP_OK;
    }
    if (size == 3) tab = tab3;
    if (size == 5) tab = tab5;
    if (size == 7) tab = tab7;
    if (tab) {
        for (i = 0; i < size; ++i) out[i] = tab[i];
        return EP_OK;
    }
    {
        /* OpenCV's sigma for sigma <= 0: 0.3 * ((size - 1) * 0.5 - 1) + 0.8. */
        double sigma = 0.15 * size + 0.35;
        double scale = -0.5 / (sigma * sigma);
        double values[EP_MAX_BLUR_KERNEL];
        double sum = 0.0;
        int half = (size - 1) / 2;
        for (i = 0; i < size; ++i) {
            double d = (double)(i - half);
            values[i] = exp(scale * d * d);
            sum += values[i];
        }
        for (i = 0; i < size; ++i) out[i] = (float)(values[i] / sum);
    }
    return EP_OK;
}

/* One heatmap as (h, w) with element strides. */
typedef struct {
    const float *data;
    ep_index h, w, sh, sw;
} map2d;

static float map_at(map2d m, ep_index y, ep_index x)
{
    return m.data[y * m.sh + x * m.sw];
}

/*
 * Blurred values (zero padding, separable kernel g of radius r) of the block
 * rows y0..y1, columns x0..x1 (inside the map; at most BLOCK_MAX each), into
 * out[(y - y0) * BLOCK_MAX + (x - x0)].
 */
static void blur_block(map2d m, const float *g, int r, ep_index y0, ep_index y1,
                       ep_index x0, ep_index x1, double *out)
{
    double rows[ROWS_MAX][BLOCK_MAX];
    ep_index y, x;
    int j;

    for (y = y0 - r; y <= y1 + r; ++y) {
        double *row = rows[y - (y0 - r)];
        for (x = x0; x <= x1; ++x) {
            double acc = 0.0;
            if (y >= 0 && y < m.h) {
                ep_index lo = x - r < 0 ? 0 : x - r;
                ep_index hi = x + r >= m.w ? m.w - 1 : x + r;
                ep_index xx;
                for (xx = lo; xx <= hi; ++xx)
                    acc += (double)g[xx - x + r] * map_at(m, y, xx);
            }
            row[x - x0] = acc;
        }
    }
    for (y = y0; y <= y1; ++y) {
        for (x = x0; x <= x1; ++x) {
            double acc = 0.0;
            for (j = 0; j <= 2 * r; ++j) acc += (double)g[j] * rows[y - y0 + j][x - x0];
            out[(y - y0) * BLOCK_MAX + (x - x0)] = acc;
        }
    }
}

/*
 * The whole blurred map into full (h * w, row-major), using tmp (h * w) for
 * the horizontal pass; returns its maximum.
 */
static double blur_full(map2d m, const float *g, int r, double *full, double *tmp)
{
    ep_index y, x;
    double best = -INFINITY;
    int j;

    for (y = 0; y < m.h; ++y) {
        for (x = 0; x < m.w; ++x) {
            ep_index lo = x - r < 0 ? 0 : x - r;
            ep_index hi = x + r >= m.w ? m.w - 1 : x + r;
            ep_index xx;
            double acc = 0.0;
            for (xx = lo; xx <= hi; ++xx) acc += (double)g[xx - x + r] * map_at(m, y, xx);
            tmp[y * m.w + x] = acc;
        }
    }
    for (y = 0; y < m.h; ++y) {
        for (x = 0; x < m.w; ++x) {
            double acc = 0.0;
            for (j = -r; j <= r; ++j) {
                ep_index yy = y + j;
                if (yy >= 0 && yy < m.h) acc += (double)g[j + r] * tmp[yy * m.w + x];
            }
            full[y * m.w + x] = acc;
            if (acc > best) best = acc;
        }
    }
    return best;
}

/* Workspace for the exact whole-map path, allocated on first use. */
typedef struct {
    double *full, *tmp;
    ep_index size;
} workspace;

static int workspace_reserve(workspace *ws, ep_index size)
{
    if (ws->size >= size) return EP_OK;
    free(ws->full);
    free(ws->tmp);
    ws->full = (double *)malloc((size_t)size * sizeof(double));
    ws->tmp = (double *)malloc((size_t)size * sizeof(double));
    if (!ws->full || !ws->tmp) {
        free(ws->full);
        free(ws->tmp);
        ws->full = ws->tmp = NULL;
        ws->size = 0;
        return EP_ENOMEM;
    }
    ws->size = size;
    return EP_OK;
}

/*
 * The log-modulated values of the block around (px, py) as MMPose computes
 * them, into logv (BLOCK_MAX x BLOCK_MAX, indexed from (px - R, py - R));
 * cells outside the map are left unset. Returns EP_OK or EP_ENOMEM.
 */
static int log_block(map2d m, const float *g, int r, int refine, ep_index px,
                     ep_index py, float peak, workspace *ws, double *logv)
{
    const int R = refine == EP_REFINE_DARK ? DARK_RADIUS : UDP_RADIUS;
    ep_index y0 = py - R < 0 ? 0 : py - R, y1 = py + R >= m.h ? m.h - 1 : py + R;
    ep_index x0 = px - R < 0 ? 0 : px - R, x1 = px + R >= m.w ? m.w - 1 : px + R;
    ep_index oy = y0 - (py - R), ox = x0 - (px - R);
    double block[BLOCK_MAX * BLOCK_MAX];
    double lowest = INFINITY;
    int fast;
    ep_index y, x;

    blur_block(m, g, r, y0, y1, x0, x1, block);
    for (y = 0; y <= y1 - y0; ++y)
        for (x = 0; x <= x1 - x0; ++x)
            if (block[y * BLOCK_MAX + x] < lowest) lowest = block[y * BLOCK_MAX + x];

    /* The rescale factor c = peak / max(blurred) is >= 1 (the kernel is a
     * weighted mean), and c * blurred <= peak. So with a 2x margin for
     * rounding, no value of the block can reach the clamp when: */
    if (refine == EP_REFINE_DARK)
        fast = lowest >= 2.0 * DARK_FLOOR;
    else
        fast = lowest >= 2.0 * UDP_FLOOR && peak <= 0.98f * UDP_CEIL;

    if (fast) {
        for (y = 0; y <= y1 - y0; ++y)
            for (x = 0; x <= x1 - x0; ++x)
                logv[(y + oy) * BLOCK_MAX + (x + ox)] = log(block[y * BLOCK_MAX + x]);
        return EP_OK;
    }
    {
        /* Exact path: MMPose's float32 rescale, clamp and log. */
        double bmax;
        float c;
        if (workspace_reserve(ws, m.h * m.w) != EP_OK) return EP_ENOMEM;
        bmax = blur_full(m, g, r, ws->full, ws->tmp);
        c = peak / (float)bmax;
        for (y = y0; y <= y1; ++y) {
            for (x = x0; x <= x1; ++x) {
                float v = (float)ws->full[y * m.w + x] * c;
                if (refine == EP_REFINE_DARK) {
                    v = v < DARK_FLOOR ? DARK_FLOOR : v;
                } else {
                    v = v < UDP_FLOOR ? UDP_FLOOR : v;
                    v = v > UDP_CEIL ? UDP_CEIL : v;
                }
                logv[(y - (py - R)) * BLOCK_MAX + (x - (px - R))] = log((double)v);
            }
        }
    }
    return EP_OK;
}

/* The Taylor step of DARK (step-2 derivatives); 0 if not applied. */
static int dark_offset(const double *L, double *ox, double *oy)
{
#define AT(dy, dx) L[(DARK_RADIUS + (dy)) * BLOCK_MAX + (DARK_RADIUS + (dx))]
    double dx = 0.5 * (AT(0, 1) - AT(0, -1));
    double dy = 0.5 * (AT(1, 0) - AT(-1, 0));
    double dxx = 0.25 * (AT(0, 2) - 2.0 * AT(0, 0) + AT(0, -2));
    double dxy = 0.25 * (AT(1, 1) - AT(-1, 1) - AT(1, -1) + AT(-1, -1));
    double dyy = 0.25 * (AT(2, 0) - 2.0 * AT(0, 0) + AT(-2, 0));
#undef AT
    double det = dxx * dyy - dxy * dxy;
    if (det == 0.0) return 0;
    *ox = -(dyy * dx - dxy * dy) / det;
    *oy = -(dxx * dy - dxy * dx) / det;
    return 1;
}

/* The Newton step of DARK-UDP, reading edge-padded values; 0 if singular. */
static int udp_offset(const double *L, ep_index px, ep_index py, ep_index w,
                      ep_index h, double *ox, double *oy)
{
    /* Edge padding: a neighbour outside the map reads the border value. */
    int xm = px > 0 ? -1 : 0, xp = px < w - 1 ? 1 : 0;
    int ym = py > 0 ? -1 : 0, yp = py < h - 1 ? 1 : 0;
#define AT(dy, dx) L[(UDP_RADIUS + (dy)) * BLOCK_MAX + (UDP_RADIUS + (dx))]
    double i0 = AT(0, 0);
    double ix1 = AT(0, xp), ix1_ = AT(0, xm);
    double iy1 = AT(yp, 0), iy1_ = AT(ym, 0);
    double ix1y1 = AT(yp, xp), ix1_y1_ = AT(ym, xm);
#undef AT
    double dx = 0.5 * (ix1 - ix1_);
    double dy = 0.5 * (iy1 - iy1_);
    double a = ix1 - 2.0 * i0 + ix1_ + FLT_EPSILON;
    double d = iy1 - 2.0 * i0 + iy1_ + FLT_EPSILON;
    double b = 0.5 * (ix1y1 - ix1 - iy1 + i0 + i0 - ix1_ - iy1_ + ix1_y1_);
    double det = a * d - b * b;
    if (det == 0.0) return 0;
    *ox = -(d * dx - b * dy) / det;
    *oy = -(a * dy - b * dx) / det;
    return 1;
}

/* Per-keypoint running state of an argmax over one instance. */
typedef struct {
    float *best;
    ep_index *best_i;
    unsigned char *has_nan;
    /* for the channel-contiguous scan: */
    int32_t *pos32, *nan32;
} argmax_state;

#ifdef EP_AVX2
/*
 * Channels contiguous (NHWC with sk == 1): a branch-free update of all K
 * maxima per pixel, which compilers vectorize across channels for AVX2 (its
 * blend instructions make it ~5x faster than the scalar loop; SSE2's lack of
 * them makes the vector form slower, so only the AVX2 build is used).
 */
static inline void scan_channels(const float *restrict base, ep_index h, ep_index w,
                                 ep_index sh, ep_index sw, ep_index k,
                                 float *restrict best, int32_t *restrict pos32,
                                 int32_t *restrict nan32)
{
    ep_index y, x, c;
    for (y = 0; y < h; ++y) {
        for (x = 0; x < w; ++x) {
            const float *restrict px = base + y * sh + x * sw;
            int32_t pos = (int32_t)(y * w + x);
            for (c = 0; c < k; ++c) {
                float v = px[c];
                int gt = v > best[c];
                best[c] = gt ? v : best[c];
                pos32[c] = gt ? pos : pos32[c];
                nan32[c] |= v != v;
            }
        }
    }
}

EP_TARGET_AVX2 static void scan_channels_avx2(const float *base, ep_index h, ep_index w,
                                              ep_index sh, ep_index sw, ep_index k,
                                              float *best, int32_t *pos32, int32_t *nan32)
{
    scan_channels(base, h, w, sh, sw, k, best, pos32, nan32);
}
#endif

/* Argmax of every map of instance n into keypoints / scores. */
static void argmax_instance(ep_heatmaps hm, ep_index n, double *keypoints,
                            float *scores, argmax_state st)
{
    const float *base = hm.data + n * hm.sn;
    float *best = st.best;
    ep_index *best_i = st.best_i;
    unsigned char *has_nan = st.has_nan;
    ep_index k, y, x;
    ep_index sk = hm.sk < 0 ? -hm.sk : hm.sk, sw = hm.sw < 0 ? -hm.sw : hm.sw;

    for (k = 0; k < hm.k; ++k) {
        best[k] = -INFINITY;
        best_i[k] = 0;
        has_nan[k] = 0;
    }
#ifdef EP_AVX2
    if (hm.k > 1 && hm.sk == 1 && hm.h * hm.w <= INT32_MAX && ep_cpu_has_avx2()) {
        for (k = 0; k < hm.k; ++k) st.pos32[k] = st.nan32[k] = 0;
        scan_channels_avx2(base, hm.h, hm.w, hm.sh, hm.sw, hm.k, best, st.pos32, st.nan32);
        for (k = 0; k < hm.k; ++k) {
            best_i[k] = st.pos32[k];
            has_nan[k] = st.nan32[k] != 0;
        }
    } else
#endif
    if (hm.k > 1 && sk < sw) {
        /* Channels innermost (NHWC): one pass over the pixels updating all K
         * maxima keeps memory access sequential. */
        for (y = 0; y < hm.h; ++y) {
            for (x = 0; x < hm.w; ++x) {
                const float *px = base + y * hm.sh + x * hm.sw;
                ep_index pos = y * hm.w + x;
                for (k = 0; k < hm.k; ++k) {
                    float v = px[k * hm.sk];
                    has_nan[k] |= v != v;
                    if (v > best[k]) {
                        best[k] = v;
                        best_i[k] = pos;
                    }
                }
            }
        }
    } else {
        for (k = 0; k < hm.k; ++k) {
            const float *map = base + k * hm.sk;
            if (hm.sw == 1 && hm.sh == hm.w) {
                best_i[k] = ep_argmax_row(map, hm.h * hm.w, 1, &best[k]);
                has_nan[k] = best_i[k] < 0;
                continue;
            }
            for (y = 0; y < hm.h && !has_nan[k]; ++y) {
                float v;
                ep_index i = ep_argmax_row(map + y * hm.sh, hm.w, hm.sw, &v);
                if (i < 0) has_nan[k] = 1;
                else if (v > best[k] || y == 0) {
                    best[k] = v;
                    best_i[k] = y * hm.w + i;
                }
            }
        }
    }
    for (k = 0; k < hm.k; ++k) {
        double *kp = keypoints + 2 * (n * hm.k + k);
        float score = has_nan[k] ? NAN : best[k];
        scores[n * hm.k + k] = score;
        if (score > 0.0f) {
            /* exact in double for any index (float32 rounds above 2^24) */
            kp[0] = (double)(best_i[k] % hm.w);
            kp[1] = (double)(best_i[k] / hm.w);
        } else {
            kp[0] = -1.0;
            kp[1] = -1.0;
        }
    }
}

int ep_decode_heatmap(ep_heatmaps hm, int refine, int blur_kernel,
                      double *keypoints, float *scores)
{
    float g[EP_MAX_BLUR_KERNEL];
    argmax_state st;
    workspace ws = {NULL, NULL, 0};
    int r = 0, status = EP_OK;
    ep_index n, k;

    if (hm.n < 0 || hm.k < 0 || hm.h < 1 || hm.w < 1) return EP_EINVAL;
    {
        /* Positions y * w + x, the whole-map workspace (h * w doubles) and
         * the outputs (n * k * 2) must be addressable. */
        size_t size;
        if (ep_mul3_size(hm.h, hm.w, (ep_index)sizeof(double), &size) != EP_OK ||
            ep_mul3_size(hm.n, hm.k, 2 * (ep_index)sizeof(double), &size) != EP_OK)
            return EP_EOVERFLOW;
    }
    if (refine != EP_REFINE_NONE && refine != EP_REFINE_DARK &&
        refine != EP_REFINE_DARK_UDP)
        return EP_EINVAL;
    if (refine != EP_REFINE_NONE) {
        if (ep_gaussian_kernel(blur_kernel, g) != EP_OK) return EP_EINVAL;
        r = (blur_kernel - 1) / 2;
    }
    if (hm.n == 0 || hm.k == 0) return EP_OK;

    st.best = (float *)malloc((size_t)hm.k * sizeof(float));
    st.best_i = (ep_index *)malloc((size_t)hm.k * sizeof(ep_index));
    st.has_nan = (unsigned char *)malloc((size_t)hm.k);
    st.pos32 = (int32_t *)malloc((size_t)hm.k * sizeof(int32_t));
    st.nan32 = (int32_t *)malloc((size_t)hm.k * sizeof(int32_t));
    if (!st.best || !st.best_i || !st.has_nan || !st.pos32 || !st.nan32) {
        status = EP_ENOMEM;
        goto done;
    }

    for (n = 0; n < hm.n && status == EP_OK; ++n) {
        argmax_instance(hm, n, keypoints, scores, st);
        if (refine == EP_REFINE_NONE) continue;
        for (k = 0; k < hm.k; ++k) {
            double *kp = keypoints + 2 * (n * hm.k + k);
            float peak = scores[n * hm.k + k];
            ep_index px = (ep_index)kp[0], py = (ep_index)kp[1];
            map2d m;
            /* every cell read is set; zeroed so gcc -O2 -Werror cannot doubt it */
            double logv[BLOCK_MAX * BLOCK_MAX] = {0.0};
            double ox = 0.0, oy = 0.0;
            int ok;

            if (!(peak > 0.0f)) continue;
            if (refine == EP_REFINE_DARK &&
                !(px >= 2 && px <= hm.w - 3 && py >= 2 && py <= hm.h - 3))
                continue;
            m.data = hm.data + n * hm.sn + k * hm.sk;
            m.h = hm.h;
            m.w = hm.w;
            m.sh = hm.sh;
            m.sw = hm.sw;
            status = log_block(m, g, r, refine, px, py, peak, &ws, logv);
            if (status != EP_OK) break;
            if (refine == EP_REFINE_DARK)
                ok = dark_offset(logv, &ox, &oy);
            else
                ok = udp_offset(logv, px, py, hm.w, hm.h, &ox, &oy);
            if (ok) {
                /* Non-finite, or too large for a float: keep the argmax. */
                double fx = (double)px + ox, fy = (double)py + oy;
                if (isfinite((float)fx) && isfinite((float)fy)) {
                    kp[0] = fx;
                    kp[1] = fy;
                }
            }
        }
    }

done:
    free(st.best);
    free(st.best_i);
    free(st.has_nan);
    free(st.pos32);
    free(st.nan32);
    free(ws.full);
    free(ws.tmp);
    return status;
}

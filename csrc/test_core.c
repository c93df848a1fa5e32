/*
 * Tests of the C core without Python: known answers, argument checks, and a
 * seeded fuzz loop over random shapes, strides (negative ones included) and
 * values (NaN and inf included). Every buffer is allocated to exactly the
 * size a view needs, so an out-of-bounds read is caught when this program is
 * built with -fsanitize=address (see the Makefile).
 *
 * Usage: test_core [fuzz_iterations]   (exit status 0 when all checks pass)
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ep_argmax.h"
#include "ep_core.h"

static int failures = 0;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            ++failures;                                                      \
        }                                                                    \
    } while (0)

#define CHECK_NEAR(a, b, tol) CHECK(fabs((double)(a) - (double)(b)) <= (tol))

/* xorshift64*: a small deterministic generator, the same on every platform. */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;

static unsigned long long rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static double rng_uniform(void) { return (double)(rng_next() >> 11) / 9007199254740992.0; }

static ep_index rng_int(ep_index lo, ep_index hi) /* inclusive */
{
    return lo + (ep_index)(rng_next() % (unsigned long long)(hi - lo + 1));
}

/* A value that is sometimes special: NaN, +-inf, 0, a tie, or a big one. */
static float rng_value(void)
{
    double u = rng_uniform();
    if (u < 0.01) return NAN;
    if (u < 0.02) return INFINITY;
    if (u < 0.03) return -INFINITY;
    if (u < 0.08) return 0.0f;
    if (u < 0.12) return 1.0f;
    if (u < 0.14) return 1e30f;
    return (float)(rng_uniform() * 4.0 - 1.0);
}

static void test_gaussian_kernel(void)
{
    float g[EP_MAX_BLUR_KERNEL];
    int size;
    CHECK(ep_gaussian_kernel(3, g) == EP_OK);
    CHECK(g[0] == 0.25f && g[1] == 0.5f && g[2] == 0.25f);
    CHECK(ep_gaussian_kernel(7, g) == EP_OK);
    CHECK(g[3] == 0.28125f);
    for (size = 1; size <= EP_MAX_BLUR_KERNEL; size += 2) {
        double sum = 0.0;
        int i;
        CHECK(ep_gaussian_kernel(size, g) == EP_OK);
        for (i = 0; i < size; ++i) {
            sum += g[i];
            CHECK(g[i] > 0.0f);
            CHECK(g[i] == g[size - 1 - i]);
        }
        CHECK_NEAR(sum, 1.0, 1e-5);
    }
    CHECK(ep_gaussian_kernel(0, g) == EP_EINVAL);
    CHECK(ep_gaussian_kernel(4, g) == EP_EINVAL);
    CHECK(ep_gaussian_kernel(EP_MAX_BLUR_KERNEL + 2, g) == EP_EINVAL);
}

static ep_view3 view3(const float *data, ep_index n, ep_index k, ep_index len)
{
    ep_view3 v;
    v.data = data;
    v.n = n;
    v.k = k;
    v.len = len;
    v.sn = k * len;
    v.sk = len;
    v.sl = 1;
    return v;
}

static void test_simcc(void)
{
    /* One instance, two keypoints; x has a tie (first index wins). */
    const float x[2 * 6] = {0, 3, 1, 3, 0, 0, /**/ -1, -2, -3, -1, -5, -6};
    const float y[2 * 4] = {0, 0, 2, 1, /**/ 0.5f, 0, 0, 0};
    float kp[4], sc[2];
    CHECK(ep_decode_simcc(view3(x, 1, 2, 6), view3(y, 1, 2, 4), 2.0f, kp, sc) == EP_OK);
    CHECK(kp[0] == 0.5f && kp[1] == 1.0f && sc[0] == 2.0f);
    /* all-negative x: score = min(-1, 0.5) <= 0 -> location -1 / split. */
    CHECK(kp[2] == -0.5f && kp[3] == -0.5f && sc[1] == -1.0f);

    {
        float xn[6] = {0, 1, NAN, 0, 0, 0};
        float yn[4] = {0, 3, 0, 0};
        CHECK(ep_decode_simcc(view3(xn, 1, 1, 6), view3(yn, 1, 1, 4), 1.0f, kp, sc) == EP_OK);
        CHECK(sc[0] != sc[0] && kp[0] == -1.0f && kp[1] == -1.0f);
    }
    CHECK(ep_decode_simcc(view3(x, 1, 2, 6), view3(y, 1, 1, 4), 2.0f, kp, sc) == EP_EINVAL);
    CHECK(ep_decode_simcc(view3(x, 1, 2, 0), view3(y, 1, 2, 4), 2.0f, kp, sc) == EP_EINVAL);
    CHECK(ep_decode_simcc(view3(x, 1, 2, 6), view3(y, 1, 2, 4), 0.0f, kp, sc) == EP_EINVAL);
    CHECK(ep_decode_simcc(view3(x, 1, 2, 6), view3(y, 1, 2, 4), NAN, kp, sc) == EP_EINVAL);
}

static ep_heatmaps nchw(const float *data, ep_index n, ep_index k, ep_index h, ep_index w)
{
    ep_heatmaps hm;
    hm.data = data;
    hm.n = n;
    hm.k = k;
    hm.h = h;
    hm.w = w;
    hm.sn = k * h * w;
    hm.sk = h * w;
    hm.sh = w;
    hm.sw = 1;
    return hm;
}

static void test_heatmap(void)
{
    enum { K = 3, H = 32, W = 24 };
    static float hm[K * H * W], hwk[H * W * K];
    const double cx[K] = {10.3, 1.0, 17.75}, cy[K] = {12.6, 20.0, 3.4};
    double kp[2 * K], kp2[2 * K];
    float sc[K], sc2[K];
    ep_heatmaps v;
    int k, y, x, refine;

    for (k = 0; k < K; ++k)
        for (y = 0; y < H; ++y)
            for (x = 0; x < W; ++x) {
                double d2 = (x - cx[k]) * (x - cx[k]) + (y - cy[k]) * (y - cy[k]);
                float val = (float)exp(-d2 / 8.0);
                hm[(k * H + y) * W + x] = val;
                hwk[(y * W + x) * K + k] = val;
            }
    CHECK(ep_decode_heatmap(nchw(hm, 1, K, H, W), EP_REFINE_NONE, 11, kp, sc) == EP_OK);
    CHECK(kp[0] == 10.0f && kp[1] == 13.0f);
    /* DARK recovers a Gaussian's sub-pixel centre. */
    CHECK(ep_decode_heatmap(nchw(hm, 1, K, H, W), EP_REFINE_DARK, 11, kp, sc) == EP_OK);
    CHECK_NEAR(kp[0], 10.3, 0.05);
    CHECK_NEAR(kp[1], 12.6, 0.05);
    CHECK(kp[2] == 1.0f && kp[3] == 20.0f); /* x = 1: outside DARK's range */
    CHECK_NEAR(kp[4], 17.75, 0.05);
    CHECK_NEAR(kp[5], 3.4, 0.05);
    /* The same maps read in NHWC order through strides give the same answer. */
    for (refine = EP_REFINE_NONE; refine <= EP_REFINE_DARK_UDP; ++refine) {
        CHECK(ep_decode_heatmap(nchw(hm, 1, K, H, W), refine, 11, kp, sc) == EP_OK);
        v = nchw(hwk, 1, K, H, W);
        v.sk = 1;
        v.sh = W * K;
        v.sw = K;
        CHECK(ep_decode_heatmap(v, refine, 11, kp2, sc2) == EP_OK);
        CHECK(memcmp(kp, kp2, sizeof kp) == 0 && memcmp(sc, sc2, sizeof sc) == 0);
    }
    /* A negative peak is invalid and never refined. */
    {
        float neg[9] = {-3, -2, -1, -2, -1, -2, -3, -2, -3};
        CHECK(ep_decode_heatmap(nchw(neg, 1, 1, 3, 3), EP_REFINE_DARK_UDP, 3, kp, sc) == EP_OK);
        CHECK(kp[0] == -1.0f && kp[1] == -1.0f && sc[0] == -1.0f);
    }
    CHECK(ep_decode_heatmap(nchw(hm, 1, K, 0, W), EP_REFINE_NONE, 11, kp, sc) == EP_EINVAL);
    CHECK(ep_decode_heatmap(nchw(hm, 1, K, H, W), 7, 11, kp, sc) == EP_EINVAL);
    CHECK(ep_decode_heatmap(nchw(hm, 1, K, H, W), EP_REFINE_DARK, 10, kp, sc) == EP_EINVAL);
    /* The kernel size is not checked when nothing is refined. */
    CHECK(ep_decode_heatmap(nchw(hm, 1, K, H, W), EP_REFINE_NONE, 10, kp, sc) == EP_OK);
}

static void test_nms(void)
{
    const float boxes[4 * 4] = {0, 0, 10, 10, 1, 1, 11, 11, 20, 20, 30, 30, 0, 0, 10, 10};
    const float scores[4] = {0.5f, 0.9f, 0.3f, 0.9f};
    const ep_index groups[4] = {0, 0, 0, 1};
    ep_index keep[4], n_keep;

    /* Box 1 and 3 tie at 0.9: index 1 first; 3 overlaps 1 (IoU 81/119). */
    CHECK(ep_nms_boxes(boxes, scores, NULL, 4, 0.5f, -1, keep, &n_keep) == EP_OK);
    CHECK(n_keep == 2 && keep[0] == 1 && keep[1] == 2);
    CHECK(ep_nms_boxes(boxes, scores, groups, 4, 0.5f, -1, keep, &n_keep) == EP_OK);
    CHECK(n_keep == 3 && keep[0] == 1 && keep[1] == 3 && keep[2] == 2);
    CHECK(ep_nms_boxes(boxes, scores, NULL, 4, 0.7f, 1, keep, &n_keep) == EP_OK);
    CHECK(n_keep == 1 && keep[0] == 1);
    CHECK(ep_nms_boxes(boxes, scores, NULL, 0, 0.5f, -1, keep, &n_keep) == EP_OK && n_keep == 0);
    CHECK(ep_nms_boxes(boxes, scores, NULL, -1, 0.5f, -1, keep, &n_keep) == EP_EINVAL);

    {
        /* Two identical poses and a far one; OKS of identical poses is 1. */
        const float kps[3 * 2 * 2] = {0, 0, 10, 10, 0, 0, 10, 10, 100, 100, 110, 110};
        const float sigmas[2] = {0.1f, 0.1f};
        const float areas[3] = {100, 100, 100};
        const float ps[3] = {0.2f, 0.8f, 0.5f};
        float new_scores[3];
        CHECK_NEAR(ep_oks(kps, kps + 4, sigmas, 2, 100, 100), 1.0, 1e-12);
        CHECK(ep_nms_oks(kps, ps, areas, NULL, 3, 2, sigmas, 0.9f, keep, &n_keep) == EP_OK);
        CHECK(n_keep == 2 && keep[0] == 1 && keep[1] == 2);
        CHECK(ep_nms_oks_soft(kps, ps, areas, NULL, 3, 2, sigmas, 0.3f, EP_SOFT_GAUSSIAN, -1,
                              keep, new_scores, &n_keep) == EP_OK);
        CHECK(n_keep == 3 && keep[0] == 1 && keep[1] == 2 && keep[2] == 0);
        CHECK_NEAR(new_scores[2], 0.2 * exp(-1.0 / 0.3), 1e-6);
        CHECK(ep_nms_oks_soft(kps, ps, areas, NULL, 3, 2, sigmas, 0.0f, EP_SOFT_GAUSSIAN, -1,
                              keep, new_scores, &n_keep) == EP_EINVAL);
        CHECK(ep_nms_oks(kps, ps, areas, NULL, 3, 0, sigmas, 0.9f, keep, &n_keep) == EP_EINVAL);
    }
}

static void test_paf(void)
{
    /* One person, parts 0-1-2 along a row; fields point from part to part. */
    enum { K = 3, H = 8, W = 16 };
    static float hm[K * H * W], paf[4 * H * W];
    const ep_index limbs[4] = {0, 1, 1, 2}, channels[4] = {0, 1, 2, 3};
    const int xs[K] = {2, 7, 12};
    float persons[K * 2 * K * 3], scores[K * 2];
    ep_index n, k, x;
    ep_paf_params p = {0.1f, 1, 0.0, 1, 10, 10, 0.05, 0.9, 0.0, 3, 0.0, 8.0, 0.0};
    ep_maps mh = {hm, K, H, W, H * W, W, 1}, mp = {paf, 4, H, W, H * W, W, 1};

    for (k = 0; k < K; ++k) {
        hm[(k * H + 4) * W + xs[k]] = 1.0f;
        hm[(k * H + 4) * W + xs[k] + 1] = 0.5f; /* pulls the refined peak right */
        hm[(k * H + 4) * W + xs[k] - 1] = 0.2f;
    }
    for (x = 0; x < W; ++x) {
        paf[(0 * H + 4) * W + x] = 1.0f; /* limb 0: +x */
        paf[(2 * H + 4) * W + x] = 1.0f; /* limb 1: +x */
    }
    CHECK(ep_group_paf(mh, mp, limbs, channels, 2, &p, persons, scores, K * 10 / 2 + 1, &n) == EP_OK);
    CHECK(n == 1);
    for (k = 0; k < K; ++k) {
        /* vertex of (0.2, 1, 0.5): x + 0.5 * 0.3 / 1.3 */
        CHECK_NEAR(persons[3 * k], (xs[k] + 0.15 / 1.3) * 8.0, 1e-4);
        CHECK_NEAR(persons[3 * k + 1], 4 * 8.0, 1e-6);
        CHECK(persons[3 * k + 2] == 1.0f);
    }
    /* (3 peaks of 1 + 2 limbs of 1) / 3 parts */
    CHECK_NEAR(scores[0], 5.0 / 3.0, 1e-6);
    /* fields pointing the wrong way: no limbs, no person */
    for (x = 0; x < W; ++x) paf[(0 * H + 4) * W + x] = paf[(2 * H + 4) * W + x] = -1.0f;
    CHECK(ep_group_paf(mh, mp, limbs, channels, 2, &p, persons, scores, 16, &n) == EP_OK && n == 0);
    /* bad tables and parameters */
    {
        const ep_index bad_limbs[2] = {0, 3}, bad_channels[2] = {0, 4};
        CHECK(ep_group_paf(mh, mp, bad_limbs, channels, 1, &p, persons, scores, 16, &n) == EP_EINVAL);
        CHECK(ep_group_paf(mh, mp, limbs, bad_channels, 1, &p, persons, scores, 16, &n) == EP_EINVAL);
        p.samples = 1;
        CHECK(ep_group_paf(mh, mp, limbs, channels, 2, &p, persons, scores, 16, &n) == EP_EINVAL);
    }
}

/*
 * A random view over an exactly-sized buffer: dims[0..rank) with random
 * dimension order in memory, random padding and random signs of strides.
 * Writes element strides to strides[] and returns the pointer to element 0.
 */
static float *random_view(int rank, const ep_index *dims, ep_index *strides, float **base)
{
    int order[4] = {0, 1, 2, 3};
    ep_index step = 1, size, offset = 0;
    int i;
    for (i = rank - 1; i > 0; --i) { /* shuffle the memory order of dims */
        int j = (int)rng_int(0, i), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (i = rank - 1; i >= 0; --i) {
        int d = order[i];
        strides[d] = step;
        /* Padding between rows, never after the outermost dimension, so the
         * buffer ends exactly at the last element. */
        step *= dims[d] + (i > 0 && rng_uniform() < 0.3 ? rng_int(1, 2) : 0);
    }
    size = step;
    *base = (float *)malloc((size_t)(size > 0 ? size : 1) * sizeof(float));
    for (i = 0; i < size; ++i) (*base)[i] = rng_value();
    for (i = 0; i < rank; ++i) {
        if (dims[i] > 1 && rng_uniform() < 0.25) { /* reversed axis */
            offset += (dims[i] - 1) * strides[i];
            strides[i] = -strides[i];
        }
    }
    return *base + offset;
}

/* Random strided heatmaps (c channels) and PAF maps (cf channels) of h x w, and a
 * random table of n_limbs limbs between distinct parts. */
static void random_paf_scene(ep_index c, ep_index cf, ep_index h, ep_index w, ep_index n_limbs,
                             ep_maps *mh, ep_maps *mp, float **base_h, float **base_p,
                             ep_index *limbs, ep_index *channels)
{
    ep_index dims[3], strides[3], l;
    dims[0] = c; dims[1] = h; dims[2] = w;
    mh->data = random_view(3, dims, strides, base_h);
    mh->c = c; mh->h = h; mh->w = w;
    mh->sc = strides[0]; mh->sh = strides[1]; mh->sw = strides[2];
    dims[0] = cf;
    mp->data = random_view(3, dims, strides, base_p);
    mp->c = cf; mp->h = h; mp->w = w;
    mp->sc = strides[0]; mp->sh = strides[1]; mp->sw = strides[2];
    for (l = 0; l < n_limbs; ++l) {
        limbs[2 * l] = rng_int(0, c - 1);
        do limbs[2 * l + 1] = rng_int(0, c - 1); while (limbs[2 * l + 1] == limbs[2 * l]);
        channels[2 * l] = rng_int(0, cf - 1);
        channels[2 * l + 1] = rng_int(0, cf - 1);
    }
}


/* Every SIMD argmax the build and CPU have agrees with the scalar one,
 * including NaN, ties, infinities, signed zeros and all row lengths. */
static void fuzz_argmax(int *impls_run)
{
    ep_index len = rng_int(1, 70), i;
    float *row = (float *)malloc((size_t)len * sizeof(float));
    float want_max, got_max;
    ep_index want;
    int impl;
    double special = rng_uniform();
    for (i = 0; i < len; ++i) {
        row[i] = rng_value();
        if (special < 0.5 && row[i] != row[i]) row[i] = 0.5f; /* half the rows NaN-free */
        if (special > 0.9) row[i] = rng_uniform() < 0.5 ? -0.0f : 0.0f;
    }
    want = ep_argmax_row_impl(EP_ARGMAX_SCALAR, row, len, &want_max);
    for (impl = EP_ARGMAX_SSE2; impl <= EP_ARGMAX_NEON; ++impl) {
        ep_index got = ep_argmax_row_impl(impl, row, len, &got_max);
        if (got == -2) continue;
        impls_run[impl] = 1;
        CHECK(got == want);
        CHECK(got < 0 ? got_max != got_max : got_max == want_max);
    }
    free(row);
}

/* Bitwise equality of two floats, NaN equal to NaN. */
static int same_float(float a, float b)
{
    return (a != a && b != b) || memcmp(&a, &b, sizeof a) == 0;
}

static int same_double(double a, double b)
{
    return (a != a && b != b) || memcmp(&a, &b, sizeof a) == 0;
}

/* The strided view decodes exactly as a contiguous (n, k, h, w) copy of it. */
static void same_as_contiguous(ep_heatmaps hm, int refine, int kernel, const double *kp,
                               const float *sc)
{
    ep_index count = hm.n * hm.k * hm.h * hm.w, i, n, k, y, x;
    float *copy = (float *)malloc((size_t)(count > 0 ? count : 1) * sizeof(float));
    double *kp2 = (double *)malloc((size_t)(2 * hm.n * hm.k + 1) * sizeof(double));
    float *sc2 = (float *)malloc((size_t)(hm.n * hm.k + 1) * sizeof(float));
    for (n = 0; n < hm.n; ++n)
        for (k = 0; k < hm.k; ++k)
            for (y = 0; y < hm.h; ++y)
                for (x = 0; x < hm.w; ++x)
                    copy[((n * hm.k + k) * hm.h + y) * hm.w + x] =
                        hm.data[n * hm.sn + k * hm.sk + y * hm.sh + x * hm.sw];
    CHECK(ep_decode_heatmap(nchw(copy, hm.n, hm.k, hm.h, hm.w), refine, kernel, kp2, sc2) == EP_OK);
    for (i = 0; i < hm.n * hm.k; ++i) {
        CHECK(same_float(sc[i], sc2[i]));
        CHECK(same_double(kp[2 * i], kp2[2 * i]) && same_double(kp[2 * i + 1], kp2[2 * i + 1]));
    }
    free(copy);
    free(kp2);
    free(sc2);
}

static void fuzz_once(void)
{
    float *base_a = NULL, *base_b = NULL;
    ep_index dims[4], strides[4];
    ep_index n = rng_int(0, 3), k = rng_int(0, 5);
    float *kp, *sc;
    double *hkp;

    kp = (float *)malloc((size_t)(n * k * 2 + 1) * sizeof(float));
    hkp = (double *)malloc((size_t)(n * k * 2 + 1) * sizeof(double));
    sc = (float *)malloc((size_t)(n * k + 1) * sizeof(float));

    { /* SimCC */
        ep_view3 x, y;
        dims[0] = n; dims[1] = k; dims[2] = rng_int(1, 40);
        x.data = random_view(3, dims, strides, &base_a);
        x.n = n; x.k = k; x.len = dims[2];
        x.sn = strides[0]; x.sk = strides[1]; x.sl = strides[2];
        dims[2] = rng_int(1, 40);
        y.data = random_view(3, dims, strides, &base_b);
        y.n = n; y.k = k; y.len = dims[2];
        y.sn = strides[0]; y.sk = strides[1]; y.sl = strides[2];
        CHECK(ep_decode_simcc(x, y, (float)(0.5 + rng_uniform() * 3), kp, sc) == EP_OK);
        for (ep_index i = 0; i < n * k; ++i)
            CHECK(sc[i] > 0.0f || (kp[2 * i] < 0.0f && kp[2 * i + 1] < 0.0f));
        free(base_a);
        free(base_b);
    }
    { /* Heatmaps: tiny maps up to a few dozen pixels, any kernel size. */
        ep_heatmaps hm;
        int refine = (int)rng_int(0, 2);
        int kernel = 2 * (int)rng_int(0, 12) + 1;
        if (rng_uniform() < 0.1) kernel = EP_MAX_BLUR_KERNEL;
        dims[0] = n; dims[1] = k; dims[2] = rng_int(1, 24); dims[3] = rng_int(1, 24);
        hm.data = random_view(4, dims, strides, &base_a);
        hm.n = n; hm.k = k; hm.h = dims[2]; hm.w = dims[3];
        hm.sn = strides[0]; hm.sk = strides[1]; hm.sh = strides[2]; hm.sw = strides[3];
        CHECK(ep_decode_heatmap(hm, refine, kernel, hkp, sc) == EP_OK);
        same_as_contiguous(hm, refine, kernel, hkp, sc);
        for (ep_index i = 0; i < n * k; ++i) {
            if (sc[i] > 0.0f) {
                /* Refined keypoints are finite; unrefined ones lie on the map. */
                CHECK(isfinite(hkp[2 * i]) && isfinite(hkp[2 * i + 1]));
                if (refine == EP_REFINE_NONE)
                    CHECK(hkp[2 * i] >= 0 && hkp[2 * i] < hm.w && hkp[2 * i + 1] >= 0 &&
                          hkp[2 * i + 1] < hm.h);
            } else {
                CHECK(hkp[2 * i] == -1.0 && hkp[2 * i + 1] == -1.0);
            }
        }
        free(base_a);
    }
    { /* NMS: exactly-sized arrays, random (finite) boxes and scores. */
        ep_index m = rng_int(0, 30), kk = rng_int(1, 6), i, n_keep;
        float *boxes = (float *)malloc((size_t)(4 * m + 1) * sizeof(float));
        float *scores = (float *)malloc((size_t)(m + 1) * sizeof(float));
        float *areas = (float *)malloc((size_t)(m + 1) * sizeof(float));
        float *kps = (float *)malloc((size_t)(2 * kk * m + 1) * sizeof(float));
        float *sig = (float *)malloc((size_t)kk * sizeof(float));
        float *new_scores = (float *)malloc((size_t)(m + 1) * sizeof(float));
        ep_index *groups = (ep_index *)malloc((size_t)(m + 1) * sizeof(ep_index));
        ep_index *keep = (ep_index *)malloc((size_t)(m + 1) * sizeof(ep_index));
        unsigned char *seen = (unsigned char *)calloc((size_t)(m + 1), 1);
        for (i = 0; i < 4 * m; ++i) boxes[i] = (float)(rng_uniform() * 50);
        for (i = 0; i < m; ++i) {
            scores[i] = rng_uniform() < 0.2 ? 0.5f : (float)rng_uniform();
            areas[i] = (float)(rng_uniform() * 1000);
            groups[i] = rng_int(0, 2);
        }
        for (i = 0; i < 2 * kk * m; ++i) kps[i] = (float)(rng_uniform() * 40);
        for (i = 0; i < kk; ++i) sig[i] = (float)(0.02 + rng_uniform() * 0.1);

        CHECK(ep_nms_boxes(boxes, scores, rng_uniform() < 0.5 ? groups : NULL, m,
                           (float)rng_uniform(), rng_int(-1, m), keep, &n_keep) == EP_OK);
        CHECK(n_keep >= 0 && n_keep <= m);
        for (i = 0; i < n_keep; ++i) {
            CHECK(keep[i] >= 0 && keep[i] < m && !seen[keep[i]]);
            if (keep[i] >= 0 && keep[i] < m) seen[keep[i]] = 1;
            if (i > 0) CHECK(scores[keep[i]] <= scores[keep[i - 1]]);
        }
        CHECK(ep_nms_oks(kps, scores, areas, rng_uniform() < 0.5 ? groups : NULL, m, kk, sig,
                         (float)rng_uniform(), keep, &n_keep) == EP_OK);
        CHECK(n_keep >= 0 && n_keep <= m && (m == 0 || n_keep >= 1));
        CHECK(ep_nms_oks_soft(kps, scores, areas, rng_uniform() < 0.5 ? groups : NULL, m, kk,
                              sig, (float)(0.05 + rng_uniform()), (int)rng_int(0, 1),
                              rng_int(-1, m), keep, new_scores, &n_keep) == EP_OK);
        CHECK(n_keep >= 0 && n_keep <= m);
        free(boxes); free(scores); free(areas); free(kps); free(sig);
        free(new_scores); free(groups); free(keep); free(seen);
    }
    { /* PAF grouping: random strided maps, limb tables and parameters. */
        ep_index c = rng_int(1, 5), cf = rng_int(1, 6), h = rng_int(1, 20), w = rng_int(1, 20);
        ep_index n_limbs = c > 1 ? rng_int(0, 6) : 0, i, n_out = 0;
        ep_index limbs[12], channels[12], capacity;
        float *base_h = NULL, *base_p = NULL, *persons, *scores;
        ep_maps mh, mp;
        ep_paf_params p;
        random_paf_scene(c, cf, h, w, n_limbs, &mh, &mp, &base_h, &base_p, limbs, channels);
        p.heatmap_threshold = (float)(rng_uniform() * 1.2 - 0.1);
        p.peak_radius = (int)rng_int(0, 3);
        p.min_peak_distance = rng_uniform() < 0.3 ? rng_uniform() * 4 : 0.0;
        p.refine = (int)rng_int(0, 1);
        p.max_peaks = (int)rng_int(1, 12);
        p.samples = (int)rng_int(2, 12);
        p.min_paf_score = rng_uniform() * 0.5 - 0.1;
        p.min_good_ratio = rng_uniform();
        p.distance_prior = rng_uniform() < 0.3 ? rng_uniform() : 0.0;
        p.min_parts = (int)rng_int(0, 4);
        p.min_person_score = rng_uniform() - 0.5;
        p.stride = 8.0;
        p.offset = 0.5;
        capacity = c * p.max_peaks / 2 + 1;
        persons = (float *)malloc((size_t)(capacity * c * 3) * sizeof(float));
        scores = (float *)malloc((size_t)capacity * sizeof(float));
        CHECK(ep_group_paf(mh, mp, limbs, channels, n_limbs, &p, persons, scores, capacity,
                           &n_out) == EP_OK);
        CHECK(n_out >= 0 && n_out <= capacity);
        for (i = 0; i < n_out * c; ++i) {
            float px = persons[3 * i], py = persons[3 * i + 1];
            CHECK((px == -1.0f && py == -1.0f) ||
                  (px >= -4.0f + 0.5f && px <= (w - 1) * 8.0f + 4.5f && py >= -4.0f + 0.5f &&
                   py <= (h - 1) * 8.0f + 4.5f));
        }
        free(persons);
        free(scores);
        free(base_h);
        free(base_p);
    }
    free(kp);
    free(hkp);
    free(sc);
}


/* ------------------------------------------------------------------------
 * Card-controlled sizes and parameters (issue 14): every call returns a
 * status, never writes out of bounds (ASan), never loops over a size that
 * could not be allocated.
 * ------------------------------------------------------------------------ */

static void test_size_helpers(void)
{
    size_t out = 1;
    CHECK(ep_mul_size(0, PTRDIFF_MAX, &out) == EP_OK && out == 0);
    CHECK(ep_mul_size(PTRDIFF_MAX, 1, &out) == EP_OK && out == (size_t)PTRDIFF_MAX);
    CHECK(ep_mul_size(PTRDIFF_MAX / 2 + 1, 2, &out) == EP_EOVERFLOW && out == 0);
    CHECK(ep_mul_size(65536, 65536, &out) == (sizeof(ep_index) > 4 ? EP_OK : EP_EOVERFLOW));
    CHECK(ep_mul_size(-1, 0, &out) == EP_EINVAL && out == 0);
    CHECK(ep_mul_size(3, -2, &out) == EP_EINVAL);
    CHECK(ep_mul3_size(2, 3, 4, &out) == EP_OK && out == 24);
    CHECK(ep_mul3_size(PTRDIFF_MAX, 2, 0, &out) == EP_EOVERFLOW);
    CHECK(ep_mul3_size(PTRDIFF_MAX, 2, -1, &out) == EP_EINVAL);
    CHECK(ep_mul3_size(PTRDIFF_MAX / 4, 2, 4, &out) == EP_EOVERFLOW);
}

/* A view of one float repeated everywhere (zero strides): huge dimensions in
 * no memory, as numpy.broadcast_to makes them. */
static const float one_value = 1.0f;

static void test_huge_dimensions(void)
{
    const ep_index huge = PTRDIFF_MAX / 4, root = (ep_index)1 << (sizeof(ep_index) * 4);
    float kp[2], sc[1];
    double dkp[2];
    ep_index keep[1], n_keep, n_out;
    ep_heatmaps hm = {&one_value, 1, 1, 1, 1, 0, 0, 0, 0};
    ep_view3 v = {&one_value, 1, 1, 1, 0, 0, 0};
    ep_maps m = {&one_value, 1, 1, 1, 0, 0, 0};
    ep_paf_params p = {0.1, 1, 0.0, 1, 10, 10, 0.05, 0.9, 0.0, 3, 0.0, 1.0, 0.0};
    const ep_index limbs[2] = {0, 1};

    /* h * w overflows: refused before any scan or allocation */
    hm.h = root;
    hm.w = root;
    CHECK(ep_decode_heatmap(hm, EP_REFINE_NONE, 3, dkp, sc) == EP_EOVERFLOW);
    CHECK(ep_decode_heatmap(hm, EP_REFINE_DARK, 3, dkp, sc) == EP_EOVERFLOW);
    hm.h = 1;
    hm.w = huge;
    CHECK(ep_decode_heatmap(hm, EP_REFINE_DARK_UDP, 3, dkp, sc) == EP_EOVERFLOW);
    /* n * k * 2 outputs overflow */
    hm.w = 1;
    hm.n = huge;
    hm.k = 2;
    CHECK(ep_decode_heatmap(hm, EP_REFINE_NONE, 3, dkp, sc) == EP_EOVERFLOW);
    v.n = huge;
    v.k = 3;
    CHECK(ep_decode_simcc(v, v, 2.0f, kp, sc) == EP_EOVERFLOW);
    /* NMS: m beyond any workspace; m * k keypoints overflow */
    CHECK(ep_nms_boxes(&one_value, &one_value, NULL, PTRDIFF_MAX, 0.5, -1, keep, &n_keep) ==
          EP_EOVERFLOW);
    CHECK(ep_nms_oks(&one_value, &one_value, &one_value, NULL, root, root, &one_value, 0.5,
                     keep, &n_keep) == EP_EOVERFLOW);
    CHECK(ep_nms_oks_soft(&one_value, &one_value, &one_value, NULL, 2, huge, &one_value, 0.5,
                          EP_SOFT_LINEAR, -1, keep, NULL, &n_keep) == EP_EOVERFLOW);
    /* PAF: h * w (times a candidate's size) overflows */
    m.c = 2;
    m.h = root;
    m.w = root / 2;
    CHECK(ep_group_paf(m, m, limbs, limbs, 1, &p, kp, sc, 0, &n_out) == EP_EOVERFLOW);
    m.h = huge;
    m.w = 1;
    CHECK(ep_group_paf(m, m, limbs, limbs, 1, &p, kp, sc, 0, &n_out) == EP_EOVERFLOW);
    /* degenerate: 0 is invalid, 1 is fine */
    m.h = 0;
    CHECK(ep_group_paf(m, m, limbs, limbs, 1, &p, kp, sc, 0, &n_out) == EP_EINVAL);
    m.h = m.w = 1;
    CHECK(ep_group_paf(m, m, limbs, limbs, 1, &p, kp, sc, 0, &n_out) == EP_OK && n_out == 0);
    CHECK(ep_group_paf(m, m, limbs, limbs, 1, &p, kp, sc, -1, &n_out) == EP_EINVAL);
}

/* Blur kernel sizes a card can ask for: only odd 1..101 when refining. */
static void test_blur_kernel_sizes(void)
{
    static const int sizes[] = {0, -1, -11, 2, 100, 102, 103, INT_MAX, INT_MIN, INT_MAX - 1};
    float map[4] = {0.1f, 0.9f, 0.3f, 0.2f};
    double dkp[2];
    float sc[1];
    size_t i;
    int refine;
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        for (refine = EP_REFINE_DARK; refine <= EP_REFINE_DARK_UDP; ++refine)
            CHECK(ep_decode_heatmap(nchw(map, 1, 1, 2, 2), refine, sizes[i], dkp, sc) ==
                  EP_EINVAL);
        CHECK(ep_decode_heatmap(nchw(map, 1, 1, 2, 2), EP_REFINE_NONE, sizes[i], dkp, sc) ==
              EP_OK);
    }
    /* the largest kernel on a 1 x 1 and a 2 x 2 map: zero padding, no overrun */
    CHECK(ep_decode_heatmap(nchw(map, 1, 1, 1, 1), EP_REFINE_DARK_UDP, EP_MAX_BLUR_KERNEL, dkp,
                            sc) == EP_OK);
    CHECK(ep_decode_heatmap(nchw(map, 1, 1, 2, 2), EP_REFINE_DARK_UDP, EP_MAX_BLUR_KERNEL, dkp,
                            sc) == EP_OK);
}

/* Split ratios: every positive finite float is accepted (results may be
 * infinite for subnormal ratios; the facade rejects those), the rest not. */
static void test_split_ratios(void)
{
    static const float ok[] = {FLT_MIN, 1e-45f, 1e-30f, 1.0f, 1e30f, FLT_MAX};
    const float bad[] = {0.0f, -0.0f, -1.0f, -FLT_MAX, NAN, INFINITY, -INFINITY};
    const float x[3] = {0.0f, 2.0f, 1.0f};
    float kp[2], sc[1];
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; ++i) {
        CHECK(ep_decode_simcc(view3(x, 1, 1, 3), view3(x, 1, 1, 3), ok[i], kp, sc) == EP_OK);
        CHECK(kp[0] == 1.0f / ok[i] && sc[0] == 2.0f);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; ++i)
        CHECK(ep_decode_simcc(view3(x, 1, 1, 3), view3(x, 1, 1, 3), bad[i], kp, sc) ==
              EP_EINVAL);
}

/* One of a few values, chosen by the generator. */
static ep_index pick(const ep_index *values, int count)
{
    return values[rng_int(0, count - 1)];
}

/*
 * PAF grouping with extreme card parameters on small random maps: counts
 * and radii far beyond the map (which mean "the whole map": the result must
 * equal the one with the map-sized value), samples out of range (EP_EINVAL),
 * thresholds beyond float32, and output buffers from 0 persons up, sized
 * exactly so that ASan catches any write past max_persons.
 */
static void fuzz_paf_limits(void)
{
    ep_index c = rng_int(2, 4), cf = rng_int(1, 4), h = rng_int(1, 9), w = rng_int(1, 9);
    ep_index limbs[8], channels[8], n_limbs = rng_int(1, 4), n_out = 0, n_ref = 0;
    const ep_index radii[] = {0, 1, 2, 3, h - 1, w, h + w, 1000, INT_MAX, PTRDIFF_MAX};
    const ep_index counts[] = {1, 2, h * w > 1 ? h * w - 1 : 1, h * w, h * w + 1, 46341,
                               65536, INT_MAX, (ep_index)INT_MAX + 1, PTRDIFF_MAX};
    const ep_index parts[] = {0, 2, c, c + 1, INT_MAX, PTRDIFF_MAX};
    const double thresholds[] = {-1e300, -1e39, -1.0, 0.0, 0.1, 0.5, 1e39, 1e300};
    float *base_h = NULL, *base_p = NULL, *persons, *scores, *ref_persons, *ref_scores;
    ep_index max_persons;
    ep_maps mh, mp;
    ep_paf_params p, q;
    int status, ref_status;

    random_paf_scene(c, cf, h, w, n_limbs, &mh, &mp, &base_h, &base_p, limbs, channels);
    p.heatmap_threshold = thresholds[rng_int(0, 7)];
    p.peak_radius = pick(radii, 10);
    p.min_peak_distance = rng_uniform() < 0.3 ? rng_uniform() * 3 : 0.0;
    p.refine = (int)rng_int(0, 1);
    p.max_peaks = pick(counts, 10);
    p.samples = (int)rng_int(2, 6);
    if (rng_uniform() < 0.05) p.samples = EP_MAX_PAF_SAMPLES;
    p.min_paf_score = thresholds[rng_int(0, 7)] * 0.01;
    p.min_good_ratio = rng_uniform() < 0.5 ? 0.0 : rng_uniform();
    p.distance_prior = rng_uniform() < 0.2 ? 1e300 : 0.0;
    p.min_parts = pick(parts, 6);
    p.min_person_score = rng_uniform() < 0.2 ? -1e300 : rng_uniform() - 0.5;
    p.stride = 4.0;
    p.offset = 0.0;
    max_persons = pick(counts, 3) - 1; /* 0, 1, or h * w - 2 */
    if (max_persons < 0) max_persons = 0;

    persons = (float *)malloc((size_t)(max_persons * c * 3 + 1) * sizeof(float));
    scores = (float *)malloc((size_t)(max_persons + 1) * sizeof(float));
    status = ep_group_paf(mh, mp, limbs, channels, n_limbs, &p, persons, scores, max_persons,
                          &n_out);
    CHECK(status == EP_OK);
    CHECK(n_out >= 0);

    /* The map-sized parameters give the same persons, written in full. */
    q = p;
    if (q.peak_radius > (h > w ? h : w)) q.peak_radius = h > w ? h : w;
    if (q.max_peaks > h * w) q.max_peaks = h * w;
    if (q.min_parts > c + 1) q.min_parts = c + 1;
    ref_persons = (float *)malloc((size_t)(n_out * c * 3 + 1) * sizeof(float));
    ref_scores = (float *)malloc((size_t)(n_out + 1) * sizeof(float));
    ref_status = ep_group_paf(mh, mp, limbs, channels, n_limbs, &q, ref_persons, ref_scores,
                              n_out, &n_ref);
    CHECK(ref_status == EP_OK && n_ref == n_out);
    if (status == EP_OK && ref_status == EP_OK && n_ref == n_out) {
        ep_index written = n_out < max_persons ? n_out : max_persons;
        CHECK(memcmp(persons, ref_persons, (size_t)(written * c * 3) * sizeof(float)) == 0);
        CHECK(memcmp(scores, ref_scores, (size_t)written * sizeof(float)) == 0);
    }
    /* Out of range: a status, nothing written. */
    q = p;
    q.samples = rng_uniform() < 0.5 ? EP_MAX_PAF_SAMPLES + 1 : INT_MAX;
    CHECK(ep_group_paf(mh, mp, limbs, channels, n_limbs, &q, persons, scores, max_persons,
                       &n_out) == EP_EINVAL && n_out == 0);
    q = p;
    q.max_peaks = rng_uniform() < 0.5 ? 0 : -PTRDIFF_MAX;
    CHECK(ep_group_paf(mh, mp, limbs, channels, n_limbs, &q, persons, scores, max_persons,
                       &n_out) == EP_EINVAL);
    q = p;
    q.peak_radius = -1;
    CHECK(ep_group_paf(mh, mp, limbs, channels, n_limbs, &q, persons, scores, max_persons,
                       &n_out) == EP_EINVAL);
    q = p;
    q.heatmap_threshold = rng_uniform() < 0.5 ? INFINITY : NAN;
    CHECK(ep_group_paf(mh, mp, limbs, channels, n_limbs, &q, persons, scores, max_persons,
                       &n_out) == EP_EINVAL);
    free(persons);
    free(scores);
    free(ref_persons);
    free(ref_scores);
    free(base_h);
    free(base_p);
}

/* NMS with thresholds beyond float32 and max_keep beyond m. */
static void fuzz_nms_limits(void)
{
    ep_index m = rng_int(0, 12), kk = rng_int(1, 4), i, n_keep;
    const double thresholds[] = {-1e300, -1e39, -0.0, 0.0, 0.5, 1.0, 1e39, 1e300};
    const ep_index limits[] = {-1, 0, 1, PTRDIFF_MAX};
    float *boxes = (float *)malloc((size_t)(4 * m + 1) * sizeof(float));
    float *scores = (float *)malloc((size_t)(m + 1) * sizeof(float));
    float *areas = (float *)malloc((size_t)(m + 1) * sizeof(float));
    float *kps = (float *)malloc((size_t)(2 * kk * m + 1) * sizeof(float));
    float *sig = (float *)malloc((size_t)kk * sizeof(float));
    ep_index *keep = (ep_index *)malloc((size_t)(m + 1) * sizeof(ep_index));
    float *new_scores = (float *)malloc((size_t)(m + 1) * sizeof(float));
    for (i = 0; i < m; ++i) {
        /* extents up to float32's largest: areas overflow float, not double */
        float scale = rng_uniform() < 0.3 ? 1e38f : 10.0f;
        float x = (float)(rng_uniform() * scale), y = (float)(rng_uniform() * scale);
        boxes[4 * i] = x;
        boxes[4 * i + 1] = y;
        boxes[4 * i + 2] = x + (float)(rng_uniform() * scale);
        boxes[4 * i + 3] = y + (float)(rng_uniform() * scale);
        if (!isfinite(boxes[4 * i + 2])) boxes[4 * i + 2] = FLT_MAX;
        if (!isfinite(boxes[4 * i + 3])) boxes[4 * i + 3] = FLT_MAX;
        scores[i] = (float)rng_uniform();
        areas[i] = rng_uniform() < 0.2 ? FLT_MAX : (float)(rng_uniform() * 100);
    }
    for (i = 0; i < 2 * kk * m; ++i) kps[i] = (float)(rng_uniform() * 20);
    for (i = 0; i < kk; ++i) sig[i] = rng_uniform() < 0.1 ? FLT_MIN : 0.1f;
    CHECK(ep_nms_boxes(boxes, scores, NULL, m, thresholds[rng_int(0, 7)], pick(limits, 4), keep,
                       &n_keep) == EP_OK && n_keep <= m);
    CHECK(ep_nms_oks(kps, scores, areas, NULL, m, kk, sig, thresholds[rng_int(0, 7)], keep,
                     &n_keep) == EP_OK && n_keep <= m);
    CHECK(ep_nms_oks_soft(kps, scores, areas, NULL, m, kk, sig,
                          rng_uniform() < 0.5 ? 1e-300 : 1e300, (int)rng_int(0, 1),
                          pick(limits, 4), keep, new_scores, &n_keep) == EP_OK && n_keep <= m);
    free(boxes); free(scores); free(areas); free(kps); free(sig); free(keep); free(new_scores);
}

/* The IoU of boxes with extents near FLT_MAX, in double: 0.05, not inf/inf. */
static void test_nms_huge_boxes(void)
{
    const float boxes[8] = {0, 0, 1e38f, 10, 0, 5, 1e38f, 100};
    const float scores[2] = {0.9f, 0.8f};
    ep_index keep[2], n_keep;
    CHECK(ep_nms_boxes(boxes, scores, NULL, 2, 0.5, -1, keep, &n_keep) == EP_OK && n_keep == 2);
    CHECK(ep_nms_boxes(boxes, scores, NULL, 2, 0.04, -1, keep, &n_keep) == EP_OK && n_keep == 1);
}

/* ------------------------------------------------------------------------
 * One-stage YOLO-pose decoding
 * ------------------------------------------------------------------------ */

/* The outputs of ep_decode_yolo_pose, each buffer exactly its size. */
typedef struct {
    float *boxes, *scores, *kp, *kps;
    ep_index *classes, *counts;
} yolo_outputs;

static void *exact_alloc(size_t count, size_t size)
{
    return malloc(count > 0 ? count * size : 1);
}

static yolo_outputs yolo_alloc(ep_index n, ep_index capacity, ep_index k)
{
    yolo_outputs o;
    size_t slots = (size_t)n * (size_t)capacity;
    o.boxes = (float *)exact_alloc(slots * 4, sizeof(float));
    o.scores = (float *)exact_alloc(slots, sizeof(float));
    o.kp = (float *)exact_alloc(slots * (size_t)k * 2, sizeof(float));
    o.kps = (float *)exact_alloc(slots * (size_t)k, sizeof(float));
    o.classes = (ep_index *)exact_alloc(slots, sizeof(ep_index));
    o.counts = (ep_index *)exact_alloc((size_t)n, sizeof(ep_index));
    return o;
}

static void yolo_free(yolo_outputs *o)
{
    free(o->boxes); free(o->scores); free(o->kp); free(o->kps); free(o->classes);
    free(o->counts);
}

static int yolo_call(ep_view3 v, const ep_yolo_params *p, const double *scale,
                     const double *pad, const double *hw, ep_index capacity, yolo_outputs *o)
{
    return ep_decode_yolo_pose(v, p, scale, pad, hw, capacity, o->boxes, o->scores, o->classes,
                               o->kp, o->kps, o->counts);
}

/* A contiguous (n, k, len) copy of a strided view. */
static float *contiguous_copy(ep_view3 v)
{
    float *c = (float *)exact_alloc((size_t)(v.n * v.k * v.len), sizeof(float));
    ep_index i, j, l;
    for (i = 0; i < v.n; ++i)
        for (j = 0; j < v.k; ++j)
            for (l = 0; l < v.len; ++l)
                c[(i * v.k + j) * v.len + l] = v.data[i * v.sn + j * v.sk + l * v.sl];
    return c;
}

static ep_yolo_params yolo_defaults(ep_index nc, ep_index k, ep_index d)
{
    ep_yolo_params p;
    p.num_classes = nc;
    p.num_keypoints = k;
    p.keypoint_dims = d;
    p.end_to_end = 0;
    p.score_threshold = 0.25;
    p.iou_threshold = 0.7;
    p.max_candidates = 30000;
    p.max_detections = 300;
    p.class_agnostic = 0;
    p.nms = EP_YOLO_NMS_BOX;
    p.sigmas = NULL;
    return p;
}

/* Known answers and argument checks. */
static void test_yolo(void)
{
    /* three rows (channels last): two overlapping people and a far one, K = 1, D = 3 */
    const float rows[3 * 8] = {50, 50, 20, 20, 0.9f, 50, 50, 0.5f,
                               52, 50, 20, 20, 0.8f, 51, 50, 0.4f,
                               300, 200, 10, 40, 0.6f, 300, 210, 0.3f};
    const double scale[2] = {2.0, 2.0}, pad[2] = {10.0, 0.0}, hw[2] = {90.0, 140.0};
    const float sig[1] = {0.1f};
    ep_view3 v = {rows, 1, 3, 8, 24, 8, 1};
    ep_yolo_params p = yolo_defaults(1, 1, 3);
    yolo_outputs o = yolo_alloc(1, 3, 1);
    ep_index channels;
    CHECK(ep_yolo_channels(&p, &channels) == EP_OK && channels == 8);
    CHECK(yolo_call(v, &p, scale, pad, NULL, 3, &o) == EP_OK && o.counts[0] == 2);
    CHECK(o.boxes[0] == 15.0f && o.boxes[1] == 20.0f && o.boxes[2] == 25.0f &&
          o.boxes[3] == 30.0f);
    CHECK(o.scores[1] == 0.6f && o.kp[2] == 145.0f && o.kp[3] == 105.0f && o.kps[1] == 0.3f);
    CHECK(yolo_call(v, &p, scale, pad, hw, 3, &o) == EP_OK && o.counts[0] == 2);
    CHECK(o.boxes[4] == 140.0f && o.boxes[7] == 90.0f && o.kp[2] == 140.0f);
    p.iou_threshold = 0.9; /* IoU 360 / 440 is not > 0.9 */
    CHECK(yolo_call(v, &p, scale, pad, NULL, 3, &o) == EP_OK && o.counts[0] == 3);
    p.nms = EP_YOLO_NMS_NONE;
    p.max_detections = 1;
    CHECK(yolo_call(v, &p, scale, pad, NULL, 1, &o) == EP_OK && o.counts[0] == 1);
    p.nms = EP_YOLO_NMS_OKS;
    p.max_detections = 300;
    CHECK(yolo_call(v, &p, scale, pad, NULL, 3, &o) == EP_EINVAL); /* no sigmas */
    p.sigmas = sig;
    CHECK(yolo_call(v, &p, scale, pad, NULL, 3, &o) == EP_OK && o.counts[0] == 2);
    /* arguments out of range */
    p = yolo_defaults(1, 1, 3);
    CHECK(yolo_call(v, &p, scale, pad, NULL, 2, &o) == EP_EINVAL); /* capacity < 3 */
    p.keypoint_dims = 4;
    CHECK(yolo_call(v, &p, scale, pad, NULL, 3, &o) == EP_EINVAL);
    p = yolo_defaults(2, 1, 3); /* 9 channels, the view has 8 */
    CHECK(yolo_call(v, &p, scale, pad, NULL, 3, &o) == EP_EINVAL);
    p = yolo_defaults(1, 1, 3);
    p.score_threshold = NAN;
    CHECK(yolo_call(v, &p, scale, pad, NULL, 3, &o) == EP_EINVAL);
    p = yolo_defaults(1, 1, 3);
    {
        const double bad_scale[2] = {0.0, 1.0}, bad_pad[2] = {NAN, 0.0}, bad_hw[2] = {0, 5};
        CHECK(yolo_call(v, &p, bad_scale, pad, NULL, 3, &o) == EP_EINVAL);
        CHECK(yolo_call(v, &p, scale, bad_pad, NULL, 3, &o) == EP_EINVAL);
        CHECK(yolo_call(v, &p, scale, pad, bad_hw, 3, &o) == EP_EINVAL);
    }
    yolo_free(&o);
}

/* Sizes that overflow: EP_EOVERFLOW before any read of the (tiny) data. */
static void test_yolo_overflow(void)
{
    const ep_index huge = PTRDIFF_MAX / 4;
    const double scale[2] = {1, 1}, pad[2] = {0, 0};
    const ep_index strides[1] = {1};
    ep_yolo_params p = yolo_defaults(1, 17, 3);
    ep_view3 v = {&one_value, 1, huge, 56, 0, 0, 0};
    ep_index channels, count = 0, cls = 0;
    float f[4];
    CHECK(yolo_call(v, &p, scale, pad, NULL, 300, &(yolo_outputs){f, f, f, f, &cls, &count}) ==
          EP_EOVERFLOW);
    p = yolo_defaults(1, PTRDIFF_MAX / 2, 3);
    CHECK(ep_yolo_channels(&p, &channels) == EP_EOVERFLOW);
    p = yolo_defaults(PTRDIFF_MAX - 3, 1, 2);
    CHECK(ep_yolo_channels(&p, &channels) == EP_EOVERFLOW);
    p = yolo_defaults(1, 17, 3);
    v.n = huge;
    v.k = 1;
    p.max_detections = 1;
    CHECK(yolo_call(v, &p, scale, pad, NULL, 1, &(yolo_outputs){f, f, f, f, &cls, &count}) ==
          EP_EOVERFLOW);
    {
        ep_view3 bc = {&one_value, huge, 65, 8400, 0, 0, 0};
        ep_view3 kp = {&one_value, huge, 51, 8400, 0, 0, 0};
        const ep_index levels[3] = {8, 16, 32};
        CHECK(ep_decode_yolo_dfl(bc, kp, 640, 640, levels, 3, 16, 17, 3, f) == EP_EOVERFLOW);
        bc.n = kp.n = 1;
        bc.len = kp.len = 4;
        /* a grid of PTRDIFF_MAX^2 cells against 4 anchors: rejected, no overflow */
        CHECK(ep_decode_yolo_dfl(bc, kp, PTRDIFF_MAX, PTRDIFF_MAX, strides, 1, 16, 17, 3, f) ==
              EP_EINVAL);
        CHECK(ep_decode_yolo_dfl(bc, kp, 2, 2, strides, 1, PTRDIFF_MAX / 2, 17, 3, f) ==
              EP_EOVERFLOW);
        CHECK(ep_decode_yolo_dfl(bc, kp, 2, 2, strides, 1, huge, 17, 3, f) == EP_EINVAL);
    }
}

static const double yolo_thresholds[] = {-INFINITY, -1e300, -1.0, 0.0, 0.25, 0.5, 0.7,
                                         1.0, 1e39, INFINITY};

/*
 * Random outputs over exactly-sized strided buffers (NaN, inf and huge values
 * included), random parameters (some out of range: EP_EINVAL), every NMS and
 * the end-to-end layout. Checks the documented invariants and that the
 * result does not depend on the memory layout.
 */
static void fuzz_yolo(void)
{
    ep_index n = rng_int(0, 3), a = rng_int(0, 40), nc = rng_int(1, 3), k = rng_int(0, 4);
    ep_index d = rng_int(2, 3), dims[3], strides[3], channels = 0, need, capacity, i, j;
    const ep_index limits[] = {0, 1, 2, 5, 40, PTRDIFF_MAX};
    ep_yolo_params p = yolo_defaults(nc, k, d);
    float *base, *copy, sig[4];
    double *scale = (double *)exact_alloc((size_t)(2 * n), sizeof(double));
    double *pad = (double *)exact_alloc((size_t)(2 * n), sizeof(double));
    double *hw = (double *)exact_alloc((size_t)(2 * n), sizeof(double));
    int bad = 0, clip = rng_uniform() < 0.5, status;
    ep_view3 v;
    yolo_outputs o, o2;

    p.end_to_end = rng_uniform() < 0.25;
    p.score_threshold = rng_uniform() < 0.03 ? NAN : yolo_thresholds[rng_int(0, 9)];
    p.iou_threshold = rng_uniform() < 0.03 ? NAN : yolo_thresholds[rng_int(0, 9)];
    p.max_candidates = pick(limits, 6);
    p.max_detections = pick(limits, 6);
    p.class_agnostic = rng_uniform() < 0.5;
    p.nms = (int)rng_int(0, 2);
    for (i = 0; i < 4; ++i) sig[i] = rng_uniform() < 0.1 ? FLT_MIN : (float)rng_uniform() + 0.01f;
    p.sigmas = rng_uniform() < 0.9 ? sig : NULL;
    bad = p.score_threshold != p.score_threshold || p.iou_threshold != p.iou_threshold ||
          (p.nms == EP_YOLO_NMS_OKS && !p.end_to_end && (p.sigmas == NULL || k == 0));
    CHECK(ep_yolo_channels(&p, &channels) == (bad ? EP_EINVAL : EP_OK));
    if (bad) channels = p.end_to_end ? 6 + k * d : 4 + nc + k * d;
    for (i = 0; i < 2 * n; ++i) {
        scale[i] = rng_uniform() < 0.2 ? 1e-30 : 0.1 + 3 * rng_uniform();
        pad[i] = rng_uniform() < 0.1 ? -1e300 : 100 * rng_uniform() - 20;
        hw[i] = 1 + 500 * rng_uniform();
        if (rng_uniform() < 0.02) {
            scale[i] = rng_uniform() < 0.5 ? 0.0 : NAN;
            bad = 1;
        }
        if (clip && rng_uniform() < 0.02) {
            hw[i] = -1.0;
            bad = 1;
        }
    }
    dims[0] = n; dims[1] = a; dims[2] = channels;
    v.data = random_view(3, dims, strides, &base);
    v.n = n; v.k = a; v.len = channels;
    v.sn = strides[0]; v.sk = strides[1]; v.sl = strides[2];
    if (p.end_to_end && channels > 5) /* mostly valid classes */
        for (i = 0; i < n; ++i)
            for (j = 0; j < a; ++j)
                if (rng_uniform() < 0.8)
                    ((float *)v.data)[i * v.sn + j * v.sk + 5 * v.sl] = (float)rng_int(0, nc);
    need = p.max_detections < a ? p.max_detections : a;
    capacity = need + rng_int(0, 2);
    o = yolo_alloc(n, capacity, k);
    o2 = yolo_alloc(n, capacity, k);
    status = yolo_call(v, &p, scale, pad, clip ? hw : NULL, capacity, &o);
    CHECK(status == (bad ? EP_EINVAL : EP_OK));
    if (status == EP_OK) {
        ep_view3 c = v;
        copy = contiguous_copy(v);
        c.data = copy;
        c.sn = a * channels, c.sk = channels, c.sl = 1;
        CHECK(yolo_call(c, &p, scale, pad, clip ? hw : NULL, capacity, &o2) == EP_OK);
        for (i = 0; i < n; ++i) {
            ep_index m = o.counts[i];
            CHECK(m >= 0 && m <= need && m == o2.counts[i]);
            for (j = 0; j < m; ++j) {
                ep_index s = i * capacity + j, q;
                CHECK(o.scores[s] == o.scores[s] && (j == 0 || o.scores[s] <= o.scores[s - 1]));
                CHECK(o.classes[s] >= 0 && o.classes[s] < nc && o.classes[s] == o2.classes[s]);
                CHECK(same_float(o.scores[s], o2.scores[s]));
                for (q = 0; q < 4; ++q) {
                    float b = o.boxes[4 * s + q];
                    CHECK(same_float(b, o2.boxes[4 * s + q]));
                    if (clip) CHECK(b >= 0.0f && b <= (float)hw[2 * i + 1 - q % 2]);
                }
                for (q = 0; q < k; ++q) {
                    CHECK(same_float(o.kp[2 * (s * k + q)], o2.kp[2 * (s * k + q)]));
                    CHECK(same_float(o.kp[2 * (s * k + q) + 1], o2.kp[2 * (s * k + q) + 1]));
                    CHECK(same_float(o.kps[s * k + q], o2.kps[s * k + q]));
                    CHECK(isfinite(o.kps[s * k + q]) || d == 2);
                }
            }
        }
        free(copy);
    }
    yolo_free(&o);
    yolo_free(&o2);
    free(base);
    free(scale);
    free(pad);
    free(hw);
}

/* Random DFL heads over strided buffers: the decode does not depend on the
 * layout, rejects inconsistent grids, and survives NaN and inf logits. */
static void fuzz_yolo_dfl(void)
{
    const ep_index choices[3] = {1, 2, 4};
    ep_index n = rng_int(0, 2), r = rng_int(1, 4), nc = rng_int(0, 2), k = rng_int(0, 2);
    ep_index d = rng_int(2, 3), levels = rng_int(1, 3), st[3], h = 4 * rng_int(1, 3);
    ep_index w = 4 * rng_int(1, 3), a = 0, dims[3], sb[3], sk[3], i, wrong;
    float *base_b, *base_k, *out, *out2, *copy_b, *copy_k;
    ep_view3 bc, kp;
    int status;
    for (i = 0; i < levels; ++i) {
        st[i] = pick(choices, 3);
        a += (h / st[i]) * (w / st[i]);
    }
    wrong = rng_uniform() < 0.1;
    if (wrong) a += 1;
    dims[0] = n; dims[1] = 4 * r + nc; dims[2] = a;
    bc.data = random_view(3, dims, sb, &base_b);
    bc.n = n; bc.k = dims[1]; bc.len = a; bc.sn = sb[0]; bc.sk = sb[1]; bc.sl = sb[2];
    dims[1] = k * d;
    kp.data = random_view(3, dims, sk, &base_k);
    kp.n = n; kp.k = dims[1]; kp.len = a; kp.sn = sk[0]; kp.sk = sk[1]; kp.sl = sk[2];
    out = (float *)exact_alloc((size_t)(n * (4 + nc + k * d) * a), sizeof(float));
    out2 = (float *)exact_alloc((size_t)(n * (4 + nc + k * d) * a), sizeof(float));
    status = ep_decode_yolo_dfl(bc, kp, h, w, st, levels, r, k, d, out);
    CHECK(status == (wrong ? EP_EINVAL : EP_OK));
    if (status == EP_OK) {
        copy_b = contiguous_copy(bc);
        copy_k = contiguous_copy(kp);
        bc.data = copy_b, bc.sn = bc.k * a, bc.sk = a, bc.sl = 1;
        kp.data = copy_k, kp.sn = kp.k * a, kp.sk = a, kp.sl = 1;
        CHECK(ep_decode_yolo_dfl(bc, kp, h, w, st, levels, r, k, d, out2) == EP_OK);
        for (i = 0; i < n * (4 + nc + k * d) * a; ++i) CHECK(same_float(out[i], out2[i]));
        /* a keypoint count that does not match the keypoint rows */
        CHECK(ep_decode_yolo_dfl(bc, kp, h, w, st, levels, r, k + 1, d, out2) == EP_EINVAL);
        free(copy_b);
        free(copy_k);
    }
    free(out);
    free(out2);
    free(base_b);
    free(base_k);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
    long i;
    int impls_run[4] = {1, 0, 0, 0};
    test_gaussian_kernel();
    test_simcc();
    test_heatmap();
    test_nms();
    test_paf();
    test_size_helpers();
    test_huge_dimensions();
    test_blur_kernel_sizes();
    test_split_ratios();
    test_nms_huge_boxes();
    test_yolo();
    test_yolo_overflow();
    for (i = 0; i < iterations && failures < 20; ++i) {
        fuzz_argmax(impls_run);
        fuzz_once();
        if (i % 6 == 0) {
            fuzz_paf_limits();
            fuzz_nms_limits();
        }
        fuzz_yolo();
        if (i % 3 == 0) fuzz_yolo_dfl();
    }
    printf("%ld fuzz iterations; argmax paths checked: scalar%s%s%s\n", iterations,
           impls_run[EP_ARGMAX_SSE2] ? " sse2" : "", impls_run[EP_ARGMAX_AVX2] ? " avx2" : "",
           impls_run[EP_ARGMAX_NEON] ? " neon" : "");
    if (failures) {
        printf("0 passed, %d failed\n", failures);
        return 1;
    }
    printf("C core: all checks passed\n");
    return 0;
}

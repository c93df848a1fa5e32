/*
 * First-index argmax of a float row.
 *
 * Compilers do not vectorize a max reduction without -ffast-math (which would
 * also break NaN handling), so contiguous rows take explicit SIMD paths: SSE2
 * on every x86-64 CPU, AVX2 where the CPU has it (checked at run time, so the
 * build stays portable), NEON on aarch64, and plain C elsewhere. Each finds
 * the maximum ignoring NaN while noting whether a NaN was seen, then returns
 * the first position holding the maximum; that second scan usually stops
 * early.
 */
#include "ep_argmax.h"

#include <math.h>

#include "ep_simd.h"

#ifdef EP_SSE2
#include <emmintrin.h>
#endif
#ifdef EP_AVX2
#include <immintrin.h>
#endif
#ifdef EP_NEON
#include <arm_neon.h>
#endif

/* The scalar tail shared by every path: folds row[start..len) into *best and
 * *has_nan. */
static void max_tail(const float *row, ep_index start, ep_index len, float *best,
                     int *has_nan)
{
    ep_index i;
    for (i = start; i < len; ++i) {
        float v = row[i];
        *best = v > *best ? v : *best;
        *has_nan |= v != v;
    }
}

static ep_index first_equal_tail(const float *row, ep_index start, ep_index len,
                                 float value)
{
    ep_index i;
    for (i = start; i < len; ++i)
        if (row[i] == value) return i;
    return -1;
}

#ifdef EP_SSE2
/* Index of the lowest set bit of a non-zero mask of at most 8 bits. */
static int lowest_bit(unsigned mask)
{
    int i = 0;
    while (!(mask & 1u)) {
        mask >>= 1;
        ++i;
    }
    return i;
}

static ep_index argmax_sse2(const float *row, ep_index len, float *max_out)
{
    __m128 m0 = _mm_set1_ps(-INFINITY), m1 = m0;
    __m128 n0 = _mm_setzero_ps(), n1 = n0;
    __m128 target;
    float lanes[4], best;
    int has_nan, l;
    ep_index i = 0;

    for (; i + 8 <= len; i += 8) {
        __m128 a = _mm_loadu_ps(row + i), b = _mm_loadu_ps(row + i + 4);
        /* maxps returns its second operand when the first is NaN. */
        m0 = _mm_max_ps(a, m0);
        m1 = _mm_max_ps(b, m1);
        n0 = _mm_or_ps(n0, _mm_cmpunord_ps(a, a));
        n1 = _mm_or_ps(n1, _mm_cmpunord_ps(b, b));
    }
    _mm_storeu_ps(lanes, _mm_max_ps(m0, m1));
    has_nan = _mm_movemask_ps(_mm_or_ps(n0, n1)) != 0;
    best = lanes[0];
    for (l = 1; l < 4; ++l) best = lanes[l] > best ? lanes[l] : best;
    max_tail(row, i, len, &best, &has_nan);
    if (has_nan) {
        *max_out = NAN;
        return -1;
    }
    *max_out = best;
    target = _mm_set1_ps(best);
    for (i = 0; i + 4 <= len; i += 4) {
        int mask = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(row + i), target));
        if (mask) return i + lowest_bit((unsigned)mask);
    }
    return first_equal_tail(row, i, len, best);
}
#endif

#ifdef EP_AVX2
EP_TARGET_AVX2 static ep_index argmax_avx2(const float *row, ep_index len,
                                                             float *max_out)
{
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    __m256 n0 = _mm256_setzero_ps(), n1 = n0;
    __m256 target;
    float lanes[8], best;
    int has_nan, l;
    ep_index i = 0;

    for (; i + 16 <= len; i += 16) {
        __m256 a = _mm256_loadu_ps(row + i), b = _mm256_loadu_ps(row + i + 8);
        m0 = _mm256_max_ps(a, m0);
        m1 = _mm256_max_ps(b, m1);
        n0 = _mm256_or_ps(n0, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
        n1 = _mm256_or_ps(n1, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
    }
    _mm256_storeu_ps(lanes, _mm256_max_ps(m0, m1));
    has_nan = _mm256_movemask_ps(_mm256_or_ps(n0, n1)) != 0;
    best = lanes[0];
    for (l = 1; l < 8; ++l) best = lanes[l] > best ? lanes[l] : best;
    max_tail(row, i, len, &best, &has_nan);
    if (has_nan) {
        *max_out = NAN;
        return -1;
    }
    *max_out = best;
    target = _mm256_set1_ps(best);
    for (i = 0; i + 8 <= len; i += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(row + i), target, _CMP_EQ_OQ));
        if (mask) return i + lowest_bit((unsigned)mask);
    }
    return first_equal_tail(row, i, len, best);
}
#endif

#ifdef EP_NEON
static ep_index argmax_neon(const float *row, ep_index len, float *max_out)
{
    /* vmaxq_f32 propagates NaN, so a NaN anywhere makes the maximum NaN. */
    float32x4_t m0 = vdupq_n_f32(-INFINITY), m1 = m0, target;
    float best;
    int has_nan = 0;
    ep_index i = 0;

    for (; i + 8 <= len; i += 8) {
        m0 = vmaxq_f32(m0, vld1q_f32(row + i));
        m1 = vmaxq_f32(m1, vld1q_f32(row + i + 4));
    }
    best = vmaxvq_f32(vmaxq_f32(m0, m1));
    has_nan = best != best;
    if (!has_nan) max_tail(row, i, len, &best, &has_nan);
    if (has_nan) {
        *max_out = NAN;
        return -1;
    }
    *max_out = best;
    target = vdupq_n_f32(best);
    for (i = 0; i + 4 <= len; i += 4) {
        if (vmaxvq_u32(vceqq_f32(vld1q_f32(row + i), target)))
            return first_equal_tail(row, i, i + 4, best);
    }
    return first_equal_tail(row, i, len, best);
}
#endif

static ep_index argmax_scalar(const float *row, ep_index len, float *max_out)
{
    float best = -INFINITY;
    int has_nan = 0;
    max_tail(row, 0, len, &best, &has_nan);
    if (has_nan) {
        *max_out = NAN;
        return -1;
    }
    *max_out = best;
    return first_equal_tail(row, 0, len, best);
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
    if (stride != 1) return argmax_strided(row, len, stride, max_out);
#ifdef EP_AVX2
    if (ep_cpu_has_avx2()) return argmax_avx2(row, len, max_out);
#endif
#ifdef EP_SSE2
    return argmax_sse2(row, len, max_out);
#elif defined(EP_NEON)
    return argmax_neon(row, len, max_out);
#else
    return argmax_scalar(row, len, max_out);
#endif
}

ep_index ep_argmax_row_impl(int impl, const float *row, ep_index len,
                            float *max_out)
{
    switch (impl) {
    case EP_ARGMAX_SCALAR:
        return argmax_scalar(row, len, max_out);
#ifdef EP_SSE2
    case EP_ARGMAX_SSE2:
        return argmax_sse2(row, len, max_out);
#endif
#ifdef EP_AVX2
    case EP_ARGMAX_AVX2:
        if (ep_cpu_has_avx2()) return argmax_avx2(row, len, max_out);
        break;
#endif
#ifdef EP_NEON
    case EP_ARGMAX_NEON:
        return argmax_neon(row, len, max_out);
#endif
    default:
        break;
    }
    return -2;
}

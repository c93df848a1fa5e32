/*
 * Internal: first-index argmax over a strided float row, shared by the SimCC
 * and heatmap kernels.
 */
#ifndef EP_ARGMAX_H
#define EP_ARGMAX_H

#include "ep_core.h"

/*
 * Finds the first index of the maximum of row[0], row[stride], ...,
 * row[(len - 1) * stride] (len >= 1). Writes the maximum to *max_out and
 * returns its index; returns -1 (with *max_out NaN) when the row holds a NaN.
 */
ep_index ep_argmax_row(const float *row, ep_index len, ep_index stride,
                       float *max_out);

/* The implementations behind ep_argmax_row for contiguous rows, for tests. */
#define EP_ARGMAX_SCALAR 0
#define EP_ARGMAX_SSE2 1
#define EP_ARGMAX_AVX2 2
#define EP_ARGMAX_NEON 3

/*
 * ep_argmax_row (stride 1) through one implementation; returns -2 when that
 * implementation is not compiled in or the CPU lacks it.
 */
ep_index ep_argmax_row_impl(int impl, const float *row, ep_index len,
                            float *max_out);

#endif /* EP_ARGMAX_H */

/*
 * Bottom-up grouping of OpenPose-style part affinity fields (Cao et al.
 * 2017), with the assembly rules of the OpenVINO model zoo's OpenPoseDecoder.
 *
 * 1. peaks: local maxima above a threshold on each part's heatmap, at most
 *    max_peaks per part, optionally thinned by distance and refined to
 *    sub-pixel by a parabola through the 3 x 3 neighbourhood;
 * 2. candidate limbs: every pair of peaks of a limb's two parts, scored by
 *    sampling the field along the segment (bilinear), kept when enough
 *    samples agree with the segment's direction;
 * 3. greedy matching per limb in descending score, each peak used once;
 * 4. assembly: limbs join persons that share a part, and persons merge when
 *    a limb joins two that do not conflict;
 * 5. filtering by part count and mean score.
 *
 * Peaks are found on the native-resolution maps and refined, rather than on
 * maps upsampled 4x (as the model zoo does): the same sub-pixel information
 * at 1/16 of the pixels.
 */
#include "ep_core.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float value;
    ep_index y, x;
} peak_candidate;

typedef struct {
    double x, y;     /* refined position, map pixels */
    float value;     /* raw heatmap value */
    ep_index part;
} peak;

typedef struct {
    double score;
    ep_index i, j;   /* global peak ids */
} connection;

/* Descending value, then row-major position. */
static int candidate_cmp(const void *pa, const void *pb)
{
    const peak_candidate *a = (const peak_candidate *)pa, *b = (const peak_candidate *)pb;
    if (a->value > b->value) return -1;
    if (a->value < b->value) return 1;
    if (a->y != b->y) return a->y < b->y ? -1 : 1;
    return (a->x > b->x) - (a->x < b->x);
}

/* Descending score, then ascending i, then ascending j. */
static int connection_cmp(const void *pa, const void *pb)
{
    const connection *a = (const connection *)pa, *b = (const connection *)pb;
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    if (a->i != b->i) return a->i < b->i ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

static float at(ep_maps m, ep_index c, ep_index y, ep_index x)
{
    return m.data[c * m.sc + y * m.sh + x * m.sw];
}

/* The vertex of the parabola through v(-1), v(0), v(1), within half a pixel. */
static double vertex(double left, double center, double right)
{
    double den = left - 2.0 * center + right;
    double d;
    if (!(den < 0.0)) return 0.0;
    d = -0.5 * (right - left) / den;
    if (!isfinite(d)) return 0.0;
    return d < -0.5 ? -0.5 : (d > 0.5 ? 0.5 : d);
}

/* malloc of count elements of elem bytes; EP_EOVERFLOW when the byte count
 * overflows, EP_ENOMEM when the allocation fails (*out = NULL). */
static int alloc_n(void **out, ep_index count, size_t elem)
{
    size_t bytes;
    int status = ep_mul_size(count > 0 ? count : 1, (ep_index)elem, &bytes);
    *out = NULL;
    if (status != EP_OK) return status;
    *out = malloc(bytes);
    return *out ? EP_OK : EP_ENOMEM;
}

/* Grows *buf (of *cap elements) to hold at least need elements. */
static int reserve(void **buf, ep_index *cap, ep_index need, size_t elem)
{
    ep_index new_cap = *cap > 0 ? *cap : 16;
    size_t bytes;
    void *grown;
    if (need <= *cap) return EP_OK;
    while (new_cap < need) new_cap = new_cap > PTRDIFF_MAX / 2 ? need : 2 * new_cap;
    if (ep_mul_size(new_cap, (ep_index)elem, &bytes) != EP_OK) return EP_EOVERFLOW;
    grown = realloc(*buf, bytes);
    if (!grown) return EP_ENOMEM;
    *buf = grown;
    *cap = new_cap;
    return EP_OK;
}

/*
 * The largest float f <= t (FLT_MAX above it, -inf below -FLT_MAX). No float
 * lies strictly between f and t, so for every float v: v > t (compared in
 * double) exactly when v > f -- the double threshold's semantics at float
 * speed in the scan over every pixel.
 */
static float float_at_or_below(double t)
{
    float f;
    if (t >= FLT_MAX) return FLT_MAX;
    if (t < -FLT_MAX) return -INFINITY;
    f = (float)t;
    if ((double)f > t) f = nextafterf(f, -INFINITY);
    return f;
}

/* Largest non-NaN value of row y of part k over columns x0..x1 (-inf if none). */
static float row_max(ep_maps hm, ep_index k, ep_index y, ep_index x0, ep_index x1)
{
    float best = -INFINITY;
    ep_index x;
    for (x = x0; x <= x1; ++x) {
        float v = at(hm, k, y, x);
        best = v > best ? v : best; /* NaN never wins */
    }
    return best;
}

/*
 * The candidate peaks of part k into cand[0 .. return value), in descending
 * value (ties row-major), at most max_peaks and thinned by distance. A
 * candidate is a value > heatmap_threshold that is >= every non-NaN value of
 * its (2r + 1)^2 window clipped to the map (r <= max(h, w)). Small windows
 * are scanned directly; larger ones through rowmax (h * w floats: the maxima
 * of the (2r + 1)-wide row windows), O(h * w * r) whatever the values.
 */
static ep_index find_peaks(ep_maps hm, ep_index k, const ep_paf_params *p, ep_index r,
                           float *rowmax, peak_candidate *cand)
{
    ep_index y, x, n = 0, kept = 0, i, j;
    const int separable = r > 2;
    const float threshold = float_at_or_below(p->heatmap_threshold);

    if (separable) {
        for (y = 0; y < hm.h; ++y)
            for (x = 0; x < hm.w; ++x)
                rowmax[y * hm.w + x] = row_max(hm, k, y, x - r < 0 ? 0 : x - r,
                                               x + r >= hm.w ? hm.w - 1 : x + r);
    }
    for (y = 0; y < hm.h; ++y) {
        ep_index y0 = y - r < 0 ? 0 : y - r, y1 = y + r >= hm.h ? hm.h - 1 : y + r;
        for (x = 0; x < hm.w; ++x) {
            float v = at(hm, k, y, x);
            ep_index yy;
            int is_peak = 1;
            /* As (double)v > heatmap_threshold: a value equal to
             * float32(0.1) exceeds 0.1, as in the NumPy reference. */
            if (!(v > threshold)) continue; /* NaN is never a peak */
            if (separable) {
                for (yy = y0; yy <= y1 && is_peak; ++yy)
                    if (rowmax[yy * hm.w + x] > v) is_peak = 0;
            } else {
                ep_index x0 = x - r < 0 ? 0 : x - r, x1 = x + r >= hm.w ? hm.w - 1 : x + r;
                for (yy = y0; yy <= y1 && is_peak; ++yy)
                    if (row_max(hm, k, yy, x0, x1) > v) is_peak = 0; /* NaN never suppresses */
            }
            if (is_peak) {
                cand[n].value = v;
                cand[n].y = y;
                cand[n].x = x;
                ++n;
            }
        }
    }
    qsort(cand, (size_t)n, sizeof(peak_candidate), candidate_cmp);
    if (n > p->max_peaks) n = p->max_peaks;
    for (i = 0; i < n; ++i) {
        int far_enough = 1;
        if (p->min_peak_distance > 0.0) {
            for (j = 0; j < kept; ++j) {
                double dx = (double)(cand[i].x - cand[j].x), dy = (double)(cand[i].y - cand[j].y);
                /* The distance itself against the threshold, as the
                 * reference's hypot(dx, dy) < d: squaring d would round
                 * (sqrt(2)^2 > 2 in double) and drop a peak at exactly d.
                 * dx^2 + dy^2 is exact (integers), its sqrt correctly rounded. */
                if (sqrt(dx * dx + dy * dy) < p->min_peak_distance) {
                    far_enough = 0;
                    break;
                }
            }
        }
        if (far_enough) cand[kept++] = cand[i];
    }
    return kept;
}

/* The kept candidates of part k as peaks, refined to sub-pixel if asked. */
static void make_peaks(ep_maps hm, ep_index k, const ep_paf_params *p,
                       const peak_candidate *cand, ep_index kept, peak *out)
{
    ep_index i;
    for (i = 0; i < kept; ++i) {
        peak *q = &out[i];
        ep_index y = cand[i].y, x = cand[i].x;
        q->x = (double)x;
        q->y = (double)y;
        q->value = cand[i].value;
        q->part = k;
        if (p->refine && x >= 1 && x <= hm.w - 2 && y >= 1 && y <= hm.h - 2) {
            double c = at(hm, k, y, x);
            double dx = vertex(at(hm, k, y, x - 1), c, at(hm, k, y, x + 1));
            double dy = vertex(at(hm, k, y - 1, x), c, at(hm, k, y + 1, x));
            q->x += dx;
            q->y += dy;
        }
    }
}

/* Bilinear sample of channel c at (x, y), clamped into the map. */
static double bilinear(ep_maps m, ep_index c, double x, double y)
{
    ep_index x0, y0, x1, y1;
    double fx, fy, top, bottom;
    x = x < 0.0 ? 0.0 : (x > (double)(m.w - 1) ? (double)(m.w - 1) : x);
    y = y < 0.0 ? 0.0 : (y > (double)(m.h - 1) ? (double)(m.h - 1) : y);
    x0 = (ep_index)x;
    y0 = (ep_index)y;
    x1 = x0 + 1 < m.w ? x0 + 1 : x0;
    y1 = y0 + 1 < m.h ? y0 + 1 : y0;
    fx = x - (double)x0;
    fy = y - (double)y0;
    top = at(m, c, y0, x0) + fx * ((double)at(m, c, y0, x1) - at(m, c, y0, x0));
    bottom = at(m, c, y1, x0) + fx * ((double)at(m, c, y1, x1) - at(m, c, y1, x0));
    return top + fy * (bottom - top);
}

/* The score of the limb from peak a to peak b along field channels (cx, cy);
 * returns 0 when the candidate is not valid. */
static int limb_score(ep_maps paf, ep_index cx, ep_index cy, const peak *a, const peak *b,
                      const ep_paf_params *p, ep_index map_h, double *score)
{
    double dx = b->x - a->x, dy = b->y - a->y;
    double len = sqrt(dx * dx + dy * dy), ux, uy, sum = 0.0;
    int s, good = 0;

    if (!isfinite(len) || len < 1e-6) return 0;
    ux = dx / len;
    uy = dy / len;
    for (s = 0; s < p->samples; ++s) {
        double t = (double)s / (double)(p->samples - 1);
        double qx = a->x + dx * t, qy = a->y + dy * t;
        double v = bilinear(paf, cx, qx, qy) * ux + bilinear(paf, cy, qx, qy) * uy;
        if (!isfinite(v)) return 0;
        if (v > p->min_paf_score) {
            sum += v;
            ++good;
        } else if ((double)(p->samples - (s + 1 - good)) / p->samples < p->min_good_ratio) {
            /* Too many bad samples already: the ratio cannot be met. (The
             * same expression as the final test, so the outcome is exact.) */
            return 0;
        }
    }
    if (good == 0) return 0;
    *score = sum / good;
    if (p->distance_prior > 0.0) {
        double prior = p->distance_prior * (double)map_h / len - 1.0;
        *score += prior < 0.0 ? prior : 0.0;
    }
    return (double)good / p->samples >= p->min_good_ratio && *score > 0.0;
}

/* A person under assembly. */
typedef struct {
    ep_index *parts;  /* K peak ids or -1 */
    double score;
    ep_index count;
    int alive;
} person;

static int check_params(ep_maps hm, ep_maps paf, const ep_index *limbs, const ep_index *channels,
                        ep_index n_limbs, const ep_paf_params *p)
{
    ep_index l;
    if (hm.c < 1 || hm.h < 1 || hm.w < 1 || paf.c < 1 || paf.h != hm.h || paf.w != hm.w)
        return 0;
    if (n_limbs < 0 || p->samples < 2 || p->samples > EP_MAX_PAF_SAMPLES || p->max_peaks < 1 ||
        p->peak_radius < 0 || p->min_parts < 0 || !(p->min_good_ratio >= 0.0) ||
        !(p->min_good_ratio <= 1.0) || !isfinite(p->heatmap_threshold) ||
        !isfinite(p->min_paf_score) || !isfinite(p->min_person_score) ||
        !(p->min_peak_distance >= 0.0) || !isfinite(p->min_peak_distance) ||
        !(p->distance_prior >= 0.0) || !isfinite(p->distance_prior) || !isfinite(p->stride) ||
        !isfinite(p->offset))
        return 0;
    for (l = 0; l < n_limbs; ++l) {
        if (limbs[2 * l] < 0 || limbs[2 * l] >= hm.c || limbs[2 * l + 1] < 0 ||
            limbs[2 * l + 1] >= hm.c || limbs[2 * l] == limbs[2 * l + 1])
            return 0;
        if (channels[2 * l] < 0 || channels[2 * l] >= paf.c || channels[2 * l + 1] < 0 ||
            channels[2 * l + 1] >= paf.c)
            return 0;
    }
    return 1;
}

int ep_group_paf(ep_maps heatmaps, ep_maps pafs, const ep_index *limbs,
                 const ep_index *paf_channels, ep_index n_limbs, const ep_paf_params *params,
                 float *persons_out, float *scores_out, ep_index max_persons,
                 ep_index *n_persons)
{
    const ep_index K = heatmaps.c;
    const ep_paf_params *p = params;
    peak_candidate *cand = NULL;
    float *rowmax = NULL;
    peak *peaks = NULL;
    ep_index *first = NULL, *owner = NULL, *order = NULL;
    ep_index *part_storage = NULL;
    connection *conns = NULL;
    unsigned char *used = NULL;
    person *people = NULL;
    ep_index n_peaks = 0, peak_cap = 0, conn_cap = 0, n_people = 0, k, l, i, j, out = 0;
    ep_index radius, map_size;
    size_t size;
    int status = EP_OK;

    *n_persons = 0;
    if (!check_params(heatmaps, pafs, limbs, paf_channels, n_limbs, p)) return EP_EINVAL;
    if (max_persons < 0) return EP_EINVAL;
    /* h * w elements of the largest workspace element must be addressable. */
    if (ep_mul3_size(heatmaps.h, heatmaps.w, (ep_index)sizeof(peak_candidate), &size) != EP_OK)
        return EP_EOVERFLOW;
    map_size = heatmaps.h * heatmaps.w;
    /* A window wider than the map covers the whole map: the same peaks. */
    radius = heatmaps.h > heatmaps.w ? heatmaps.h : heatmaps.w;
    if (p->peak_radius < radius) radius = p->peak_radius;

    if ((status = alloc_n((void **)&cand, map_size, sizeof(peak_candidate))) != EP_OK) goto fail;
    if (radius > 2 && (status = alloc_n((void **)&rowmax, map_size, sizeof(float))) != EP_OK)
        goto fail;
    if ((status = alloc_n((void **)&first, K + 1, sizeof(ep_index))) != EP_OK) goto fail;

    /* 1. peaks; part k owns peaks first[k] .. first[k + 1] - 1 */
    for (k = 0; k < K; ++k) {
        ep_index kept = find_peaks(heatmaps, k, p, radius, rowmax, cand);
        first[k] = n_peaks;
        status = reserve((void **)&peaks, &peak_cap, n_peaks + kept, sizeof(peak));
        if (status != EP_OK) goto fail;
        make_peaks(heatmaps, k, p, cand, kept, peaks + n_peaks);
        n_peaks += kept;
    }
    first[K] = n_peaks;
    free(cand);
    cand = NULL;
    free(rowmax);
    rowmax = NULL;

    if ((status = alloc_n((void **)&used, n_peaks + 1, 1)) != EP_OK) goto fail;
    if ((status = alloc_n((void **)&owner, n_peaks + 1, sizeof(ep_index))) != EP_OK) goto fail;
    /* at most one person per peak: persons never share peaks */
    if ((status = alloc_n((void **)&people, n_peaks + 1, sizeof(person))) != EP_OK) goto fail;
    if ((status = ep_mul_size(n_peaks + 1, K, &size)) != EP_OK) goto fail;
    if ((status = alloc_n((void **)&part_storage, (ep_index)size, sizeof(ep_index))) != EP_OK)
        goto fail;
    for (i = 0; i < n_peaks; ++i) owner[i] = -1;

    /* 2-4. limbs, in table order */
    for (l = 0; l < n_limbs; ++l) {
        ep_index a = limbs[2 * l], b = limbs[2 * l + 1];
        ep_index cx = paf_channels[2 * l], cy = paf_channels[2 * l + 1];
        ep_index n_conn = 0, c;
        for (i = first[a]; i < first[a + 1]; ++i) {
            for (j = first[b]; j < first[b + 1]; ++j) {
                double s;
                if (limb_score(pafs, cx, cy, &peaks[i], &peaks[j], p, heatmaps.h, &s)) {
                    /* sized by the valid candidates, not max_peaks^2 */
                    status = reserve((void **)&conns, &conn_cap, n_conn + 1, sizeof(connection));
                    if (status != EP_OK) goto fail;
                    conns[n_conn].score = s;
                    conns[n_conn].i = i;
                    conns[n_conn].j = j;
                    ++n_conn;
                }
            }
        }
        if (n_conn == 0) continue;
        qsort(conns, (size_t)n_conn, sizeof(connection), connection_cmp);
        memset(used, 0, (size_t)(n_peaks + 1));
        for (c = 0; c < n_conn; ++c) {
            ep_index pi = conns[c].i, pj = conns[c].j, A, B;
            double s = conns[c].score;
            if (used[pi] || used[pj]) continue;
            used[pi] = used[pj] = 1;
            A = owner[pi];
            B = owner[pj];
            if (A < 0 && B < 0) {
                person *q = &people[n_people];
                q->parts = part_storage + n_people * K;
                for (k = 0; k < K; ++k) q->parts[k] = -1;
                q->parts[a] = pi;
                q->parts[b] = pj;
                q->count = 2;
                q->score = (double)peaks[pi].value + peaks[pj].value + s;
                q->alive = 1;
                owner[pi] = owner[pj] = n_people;
                ++n_people;
            } else if (A >= 0 && B >= 0 && A != B) {
                person *pa = &people[A], *pb = &people[B];
                int conflict = 0;
                for (k = 0; k < K; ++k)
                    if (pa->parts[k] >= 0 && pb->parts[k] >= 0 && pa->parts[k] != pb->parts[k])
                        conflict = 1;
                if (conflict) continue;
                for (k = 0; k < K; ++k) {
                    if (pb->parts[k] >= 0) {
                        pa->parts[k] = pb->parts[k];
                        owner[pb->parts[k]] = A;
                    }
                }
                pa->count += pb->count;
                pa->score += pb->score + s;
                pb->alive = 0;
            } else if (A >= 0 && B >= 0) {
                people[A].score += s;
            } else {
                /* one side belongs to a person: add the other part to it */
                ep_index who = A >= 0 ? A : B, part = A >= 0 ? b : a, id = A >= 0 ? pj : pi;
                person *q = &people[who];
                if (q->parts[part] < 0) {
                    q->score += peaks[id].value;
                    q->count += 1;
                } else {
                    owner[q->parts[part]] = -1;
                }
                q->parts[part] = id;
                owner[id] = who;
                q->score += s;
            }
        }
    }

    /* 5. filter, then sort by mean score (stable) */
    if ((status = alloc_n((void **)&order, n_people + 1, sizeof(ep_index))) != EP_OK) goto fail;
    for (i = 0; i < n_people; ++i) {
        person *q = &people[i];
        if (!q->alive || q->count < p->min_parts || q->count == 0) continue;
        if (!(q->score / (double)q->count >= p->min_person_score)) continue;
        order[out++] = i;
    }
    /* insertion sort: stable, and the person count is small */
    for (i = 1; i < out; ++i) {
        ep_index v = order[i];
        double sv = people[v].score / (double)people[v].count;
        j = i - 1;
        while (j >= 0 && people[order[j]].score / (double)people[order[j]].count < sv) {
            order[j + 1] = order[j];
            --j;
        }
        order[j + 1] = v;
    }
    for (i = 0; i < out && i < max_persons; ++i) {
        person *q = &people[order[i]];
        float *row = persons_out + i * K * 3;
        for (k = 0; k < K; ++k) {
            ep_index id = q->parts[k];
            if (id >= 0) {
                row[3 * k] = (float)(peaks[id].x * p->stride + p->offset);
                row[3 * k + 1] = (float)(peaks[id].y * p->stride + p->offset);
                row[3 * k + 2] = peaks[id].value;
            } else {
                row[3 * k] = -1.0f;
                row[3 * k + 1] = -1.0f;
                row[3 * k + 2] = 0.0f;
            }
        }
        scores_out[i] = (float)(q->score / (double)q->count);
    }
    *n_persons = out;

fail:
    free(cand);
    free(rowmax);
    free(peaks);
    free(first);
    free(conns);
    free(used);
    free(owner);
    free(people);
    free(part_storage);
    free(order);
    return status;
}

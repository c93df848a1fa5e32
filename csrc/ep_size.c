/* Overflow-checked size arithmetic shared by the kernels. */
#include "ep_core.h"

#include <stdint.h>

int ep_mul_size(ep_index a, ep_index b, size_t *out)
{
    *out = 0;
    if (a < 0 || b < 0) return EP_EINVAL;
    if (a != 0 && b > PTRDIFF_MAX / a) return EP_EOVERFLOW;
    *out = (size_t)a * (size_t)b;
    return EP_OK;
}

int ep_mul3_size(ep_index a, ep_index b, ep_index c, size_t *out)
{
    size_t ab;
    int status = ep_mul_size(a, b, &ab);
    if (status != EP_OK) {
        *out = 0;
        /* a negative factor wins over an overflow of the others */
        return c < 0 ? EP_EINVAL : status;
    }
    return ep_mul_size((ep_index)ab, c, out);
}

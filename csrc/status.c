/*
 * status.c -- status messages and build facts.
 *
 * Every string returned here is static: callers (the binding's _check)
 * may keep the pointer forever and never free it.
 */
#include "internal.h"

/*
 * The message for a status code.
 *
 * Input:   status, any int value (an unknown code is not an error here)
 * Output:  a static NUL-terminated string, never NULL
 * Complexity: O(1)
 */
const char *cx_strerror(cx_status status) {
    switch (status) {
    case CX_OK:
        return "success";
    case CX_ENOMEM:
        return "out of memory";
    case CX_EINDEX:
        return "neuron id out of range";
    case CX_EEXIST:
        return "synapse already exists";
    case CX_ENOENT:
        return "synapse does not exist";
    case CX_EDUP:
        return "the same (pre, post) pair appears twice in one batch";
    case CX_EINVAL:
        return "invalid argument";
    case CX_ENOSPACE:
        return "not enough absent synapse slots for the request";
    }
    /* Reached for a code outside the enum (the switch covers every member,
     * so -Wswitch stays quiet and a new member must be added above). */
    return "unknown connectome status";
}

/* 1 when the core was compiled with OpenMP (n_threads > 1 can use cores). */
int cx_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

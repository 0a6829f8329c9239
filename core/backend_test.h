/* The test-only backend (core/backend_test.c): the CPU kernels on separate, tracked "device"
 * allocations. Every op checks each device pointer argument (with the extent it touches)
 * against the registry of live device blocks and fails, naming the op and the argument,
 * when it is not inside one — a host pointer where a device pointer belongs is caught.
 * Copies are explicit and counted in be->counters. Internal. */
#ifndef HK_CORE_BACKEND_TEST_H
#define HK_CORE_BACKEND_TEST_H

#include "backend.h"

hk_status hk_backend_test_open(hk_backend **out);

/* Whether [p, p + bytes) lies inside one live block of the test backend (any instance). */
bool hk_backend_test_is_device(const void *p, size_t bytes);

#endif

/* The CPU backend (core/backend_cpu.c): today's kernels behind the backend table.
 * Internal: the test backend (core/backend_test.c) reuses its ops behind its pointer checks. */
#ifndef HK_CORE_BACKEND_CPU_H
#define HK_CORE_BACKEND_CPU_H

#include "backend.h"

/* Every op and memory function of be set to the CPU's (name, device, ctx left alone). */
void hk_backend_cpu_fill(hk_backend *be);
/* A new CPU instance. */
hk_status hk_backend_cpu_open(hk_backend **out);

#endif

/* Small helpers the bench programs share: a monotonic clock, medians, /proc/self/status. */
#ifndef HK_BENCH_UTIL_H
#define HK_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts xs in place and returns the median. */
static inline double bench_median(double *xs, int n) {
    qsort(xs, (size_t)n, sizeof *xs, bench_cmp_double);
    return n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

/* A "VmRSS:" / "VmHWM:" field of /proc/self/status in KiB (0 when unreadable). */
static inline size_t bench_status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0) {
            kb = (size_t)strtoull(line + n, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

#endif

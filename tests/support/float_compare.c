/* tests/support/float_compare.h */
#include "float_compare.h"

#include <math.h>
#include <stdio.h>

float max_abs_diff(const float *a, const float *b, size_t n) {
    float w = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (isnan(d)) return d;
        if (d > w) w = d;
    }
    return w;
}

double abs_diff_inf(float a, float b) {
    if (isinf(a) || isinf(b)) return a == b ? 0.0 : INFINITY;
    return fabs((double)a - (double)b);
}

void note_worst(double e, const char *name, double *worst, char *worst_name, size_t cap) {
    if (!(e <= *worst)) {
        *worst = e;
        snprintf(worst_name, cap, "%s", name);
    }
}

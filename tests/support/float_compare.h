/* Float comparisons for model outputs and activations. */
#ifndef HK_TESTS_SUPPORT_FLOAT_COMPARE_H
#define HK_TESTS_SUPPORT_FLOAT_COMPARE_H

#include <stddef.h>

/* max_i |a[i] - b[i]|, 0 for n == 0; NaN as soon as one difference is NaN, so that both
 * `<= tol` and `> tol` fail on it. */
float max_abs_diff(const float *a, const float *b, size_t n);

/* |a - b| in double; two equal infinities differ by 0, an infinity and anything else by
 * INFINITY. */
double abs_diff_inf(float a, float b);

/* Keep the largest error seen and the name it was seen at: when !(e <= *worst) (e larger,
 * or either one NaN), *worst = e and worst_name = name. */
void note_worst(double e, const char *name, double *worst, char *worst_name, size_t cap);

#endif

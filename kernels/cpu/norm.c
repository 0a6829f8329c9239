/* LayerNorm and RMSNorm over the last dimension. Row statistics are accumulated in double
 * (two passes for the variance), so results match PyTorch f32 to well under 1e-5. */
#include "kernels.h"

#include <math.h>

/* Rows are independent; split them across threads once the work is worth a fork. */
#define HK_NORM_PAR_MIN 32768

void hk_k_layernorm(const float *x, int64_t n, int64_t d, const float *w, const float *b,
                    float eps, float *y, float *scale_out) {
    if (n <= 0 || d <= 0) return;
#pragma omp parallel for schedule(static) if (n > 1 && n * d >= HK_NORM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *xr = x + i * d;
        float *yr = y + i * d;
        double sum = 0.0;
        for (int64_t j = 0; j < d; j++) sum += xr[j];
        const double mean = sum / (double)d;
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) {
            const double c = (double)xr[j] - mean;
            ss += c * c;
        }
        const double scale = sqrt(ss / (double)d + (double)eps);
        if (scale_out) scale_out[i] = (float)scale;
        const double inv = 1.0 / scale;
        for (int64_t j = 0; j < d; j++) {
            const float nrm = (float)(((double)xr[j] - mean) * inv);
            yr[j] = b ? nrm * w[j] + b[j] : nrm * w[j];
        }
    }
}

void hk_k_rmsnorm(const float *x, int64_t n, int64_t d, const float *w, float eps, float *y,
                  float *scale_out) {
    if (n <= 0 || d <= 0) return;
#pragma omp parallel for schedule(static) if (n > 1 && n * d >= HK_NORM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *xr = x + i * d;
        float *yr = y + i * d;
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += (double)xr[j] * (double)xr[j];
        const double scale = sqrt(ss / (double)d + (double)eps);
        if (scale_out) scale_out[i] = (float)scale;
        const double inv = 1.0 / scale;
        for (int64_t j = 0; j < d; j++) yr[j] = (float)((double)xr[j] * inv) * w[j];
    }
}

// Element-wise activations (in place) and add/multiply: grid-stride loops. The formulas are
// the CPU kernels' (PyTorch's), in f32 with the precise device math functions.
#include "common.cuh"

#define GRID_LOOP(i, n)                                                                    \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);              \
         i += (int64_t)blockDim.x * gridDim.x)

__global__ static void gelu_new_kernel(float *x, int64_t n) {
    const float c = 0.7978845608028654f; // sqrt(2/pi) rounded to f32, as PyTorch
    GRID_LOOP(i, n) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * (v * v * v))));
    }
}

__global__ static void gelu_kernel(float *x, int64_t n) {
    GRID_LOOP(i, n) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
    }
}

__global__ static void silu_kernel(float *x, int64_t n) {
    GRID_LOOP(i, n) {
        const float v = x[i];
        x[i] = v / (1.0f + expf(-v));
    }
}

__global__ static void relu_kernel(float *x, int64_t n) {
    GRID_LOOP(i, n) x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

__global__ static void mul_kernel(float *y, const float *x, int64_t n) {
    GRID_LOOP(i, n) y[i] *= x[i];
}

__global__ static void add_kernel(float *y, const float *x, int64_t n) {
    GRID_LOOP(i, n) y[i] += x[i];
}

#define LAUNCH(kernel, n, stream, ...)                                                       \
    do {                                                                                     \
        if ((n) <= 0) return 0;                                                              \
        kernel<<<hk_cu_blocks(n), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(__VA_ARGS__);    \
        return hk_cu_launch_status();                                                        \
    } while (0)

extern "C" int hk_cu_gelu_new(float *x, int64_t n, void *stream) {
    LAUNCH(gelu_new_kernel, n, stream, x, n);
}
extern "C" int hk_cu_gelu(float *x, int64_t n, void *stream) {
    LAUNCH(gelu_kernel, n, stream, x, n);
}
extern "C" int hk_cu_silu(float *x, int64_t n, void *stream) {
    LAUNCH(silu_kernel, n, stream, x, n);
}
extern "C" int hk_cu_relu(float *x, int64_t n, void *stream) {
    LAUNCH(relu_kernel, n, stream, x, n);
}
extern "C" int hk_cu_mul(float *y, const float *x, int64_t n, void *stream) {
    LAUNCH(mul_kernel, n, stream, y, x, n);
}
extern "C" int hk_cu_add(float *y, const float *x, int64_t n, void *stream) {
    LAUNCH(add_kernel, n, stream, y, x, n);
}

// gate[i] = act(gate[i]) * up[i]: the gated MLP (SwiGLU, GeGLU) in one pass
__global__ static void gated_kernel(int act, float *g, const float *up, int64_t n) {
    const float c = 0.7978845608028654f;
    GRID_LOOP(i, n) {
        const float v = g[i];
        float a;
        if (act == 0)
            a = v / (1.0f + expf(-v));
        else if (act == 1)
            a = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
        else if (act == 2)
            a = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * (v * v * v))));
        else
            a = v < 0.0f ? 0.0f : v;
        g[i] = a * up[i];
    }
}

extern "C" int hk_cu_gated(int act, float *gate, const float *up, int64_t n, void *stream) {
    if (act < 0 || act > 3) return (int)cudaErrorInvalidValue;
    LAUNCH(gated_kernel, n, stream, act, gate, up, n);
}

__global__ static void scale_kernel(float *x, int64_t n, float f) {
    GRID_LOOP(i, n) x[i] = __fmul_rn(x[i], f);
}

// Gemma 2's soft-cap, hk_softcap's formula: cap * tanh(x / cap)
__global__ static void softcap_kernel(float *x, int64_t n, float cap) {
    GRID_LOOP(i, n) x[i] = cap * tanhf(x[i] / cap);
}

__global__ static void sigmoid_kernel(float *x, int64_t n) {
    GRID_LOOP(i, n) x[i] = 1.0f / (1.0f + expf(-x[i]));
}

extern "C" int hk_cu_scale(float *x, int64_t n, float f, void *stream) {
    LAUNCH(scale_kernel, n, stream, x, n, f);
}
extern "C" int hk_cu_softcap(float *x, int64_t n, float cap, void *stream) {
    if (!(cap > 0.0f)) return (int)cudaErrorInvalidValue;
    LAUNCH(softcap_kernel, n, stream, x, n, cap);
}
extern "C" int hk_cu_sigmoid(float *x, int64_t n, void *stream) {
    LAUNCH(sigmoid_kernel, n, stream, x, n);
}

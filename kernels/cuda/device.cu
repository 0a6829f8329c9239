// Device discovery, errors, memory: the small host-side surface the tests and the CUDA
// backend need, without CUDA headers in C code.
#include "common.cuh"

extern "C" int hk_cu_device_probe(int *count) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); // no driver / no device: not sticky, clear it
        n = 0;
    }
    *count = n;
    return (int)e;
}

extern "C" int hk_cu_device_count(void) {
    int n = 0;
    (void)hk_cu_device_probe(&n);
    return n;
}

extern "C" int hk_cu_set_device(int ordinal) {
    int cur = -1;
    const cudaError_t e = cudaGetDevice(&cur);
    if (e == cudaSuccess && cur == ordinal) return 0;
    return (int)cudaSetDevice(ordinal);
}

extern "C" const char *hk_cu_error_string(int err) {
    return cudaGetErrorString((cudaError_t)err);
}

extern "C" const char *hk_cu_error_name(int err) { return cudaGetErrorName((cudaError_t)err); }

extern "C" int hk_cu_malloc(void **p, size_t bytes) { return (int)cudaMalloc(p, bytes); }

extern "C" int hk_cu_free(void *p) { return (int)cudaFree(p); }

extern "C" int hk_cu_upload(void *dst_dev, const void *src_host, size_t bytes) {
    return (int)cudaMemcpy(dst_dev, src_host, bytes, cudaMemcpyHostToDevice);
}

extern "C" int hk_cu_download(void *dst_host, const void *src_dev, size_t bytes) {
    return (int)cudaMemcpy(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost);
}

extern "C" int hk_cu_sync(void *stream) {
    return (int)cudaStreamSynchronize(hk_cu_stream(stream));
}

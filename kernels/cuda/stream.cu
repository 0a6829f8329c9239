// Streams, asynchronous copies, pinned host memory and the pinned double buffer that lets
// device -> host copies of activations overlap compute.
#include <stdlib.h>

#include "common.cuh"

extern "C" int hk_cu_stream_create(void **stream) {
    cudaStream_t s = NULL;
    const cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    *stream = e == cudaSuccess ? (void *)s : NULL;
    return (int)e;
}

extern "C" int hk_cu_stream_destroy(void *stream) {
    return stream ? (int)cudaStreamDestroy(hk_cu_stream(stream)) : 0;
}

extern "C" int hk_cu_memset_async(void *dst, int value, size_t bytes, void *stream) {
    return (int)cudaMemsetAsync(dst, value, bytes, hk_cu_stream(stream));
}

extern "C" int hk_cu_upload_async(void *dst_dev, const void *src_host, size_t bytes,
                                  void *stream) {
    return (int)cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice,
                                hk_cu_stream(stream));
}

extern "C" int hk_cu_download_async(void *dst_host, const void *src_dev, size_t bytes,
                                    void *stream) {
    return (int)cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost,
                                hk_cu_stream(stream));
}

extern "C" int hk_cu_copy_async(void *dst_dev, const void *src_dev, size_t bytes, void *stream) {
    if (bytes == 0) return 0;
    return (int)cudaMemcpyAsync(dst_dev, src_dev, bytes, cudaMemcpyDeviceToDevice,
                                hk_cu_stream(stream));
}

extern "C" int hk_cu_host_alloc_pinned(void **p, size_t bytes) {
    return (int)cudaHostAlloc(p, bytes, cudaHostAllocDefault);
}

extern "C" int hk_cu_host_free_pinned(void *p) { return p ? (int)cudaFreeHost(p) : 0; }

extern "C" int hk_cu_mem_info(size_t *free_bytes, size_t *total_bytes) {
    return (int)cudaMemGetInfo(free_bytes, total_bytes);
}

// ---- pinned double buffer ----

struct hk_cu_d2h_ring {
    size_t bytes;
    void *buf[2];         // pinned host buffers
    cudaEvent_t ready[2]; // compute work before the copy is done (recorded on compute stream)
    cudaEvent_t done[2];  // the copy is done
    bool pending[2];      // a copy was queued and not yet waited for
    cudaStream_t copy;    // the ring's copy stream
    int next;
};

extern "C" void hk_cu_d2h_ring_free(hk_cu_d2h_ring *r) {
    if (!r) return;
    if (r->copy) cudaStreamSynchronize(r->copy);
    for (int i = 0; i < 2; i++) {
        if (r->buf[i]) cudaFreeHost(r->buf[i]);
        if (r->ready[i]) cudaEventDestroy(r->ready[i]);
        if (r->done[i]) cudaEventDestroy(r->done[i]);
    }
    if (r->copy) cudaStreamDestroy(r->copy);
    free(r);
}

extern "C" int hk_cu_d2h_ring_new(size_t bytes_per_buffer, hk_cu_d2h_ring **out) {
    *out = NULL;
    hk_cu_d2h_ring *r = (hk_cu_d2h_ring *)calloc(1, sizeof *r);
    if (!r) return (int)cudaErrorMemoryAllocation;
    r->bytes = bytes_per_buffer;
    cudaError_t e = cudaStreamCreateWithFlags(&r->copy, cudaStreamNonBlocking);
    for (int i = 0; i < 2 && e == cudaSuccess; i++) {
        e = cudaHostAlloc(&r->buf[i], bytes_per_buffer ? bytes_per_buffer : 1,
                          cudaHostAllocDefault);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&r->ready[i], cudaEventDisableTiming);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&r->done[i], cudaEventDisableTiming);
    }
    if (e != cudaSuccess) {
        hk_cu_d2h_ring_free(r);
        return (int)e;
    }
    *out = r;
    return 0;
}

extern "C" int hk_cu_d2h_begin(hk_cu_d2h_ring *r, const void *src_dev, size_t bytes,
                               void *compute_stream, int *slot) {
    if (bytes > r->bytes) return (int)cudaErrorInvalidValue;
    const int i = r->next;
    // the host may still read this buffer from two copies ago: finish that copy first
    if (r->pending[i]) {
        const cudaError_t e = cudaEventSynchronize(r->done[i]);
        if (e != cudaSuccess) return (int)e;
        r->pending[i] = false;
    }
    cudaError_t e = cudaEventRecord(r->ready[i], hk_cu_stream(compute_stream));
    if (e == cudaSuccess) e = cudaStreamWaitEvent(r->copy, r->ready[i], 0);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(r->buf[i], src_dev, bytes, cudaMemcpyDeviceToHost, r->copy);
    if (e == cudaSuccess) e = cudaEventRecord(r->done[i], r->copy);
    if (e != cudaSuccess) return (int)e;
    r->pending[i] = true;
    r->next = 1 - i;
    *slot = i;
    return 0;
}

extern "C" int hk_cu_d2h_wait(hk_cu_d2h_ring *r, int slot, const void **host) {
    if (slot < 0 || slot > 1) return (int)cudaErrorInvalidValue;
    const cudaError_t e = cudaEventSynchronize(r->done[slot]);
    if (e != cudaSuccess) return (int)e;
    r->pending[slot] = false;
    *host = r->buf[slot];
    return 0;
}

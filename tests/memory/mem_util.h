/* Helpers for the memory tests: random-weight safetensors checkpoints written in C, resident
 * set sizes from /proc/self/status, and forked children that report back through a pipe. */
#ifndef HK_TESTS_MEMORY_UTIL_H
#define HK_TESTS_MEMORY_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hookformer.h"
#include "test_util.h"
#include "bench/bench_util.h" /* the /proc/self/status reader */

#if defined(__SANITIZE_ADDRESS__)
#define MEM_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_UNDER_ASAN 1
#endif
#endif
#ifndef MEM_UNDER_ASAN
#define MEM_UNDER_ASAN 0
#endif

#define MIB (1024.0 * 1024.0)

/* Under the devtest setup (HK_DEVICE=test) the test backend keeps its "device" copy of the
 * weights and activations beside the host's: resident sizes then describe that backend, not
 * the CPU runtime the estimate predicts. The RSS assertions run in the release setup. */
static inline bool mem_on_test_device(void) {
    const char *d = getenv("HK_DEVICE");
    return d && !strcmp(d, "test");
}

/* ---- checkpoints ---- */

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    float fill; /* 0: random in [-0.05, 0.05); else this constant (norm weights) */
} mem_tensor;

typedef struct {
    mem_tensor *t;
    size_t n, cap;
} mem_tensor_list;

static inline void mem_add(mem_tensor_list *l, const char *name, int ndim, int64_t d0,
                           int64_t d1, float fill) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
        assert_non_null(l->t);
    }
    mem_tensor *t = &l->t[l->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->fill = fill;
}

static inline size_t mem_numel(const mem_tensor *t) {
    return (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
}

/* Writes dir/model.safetensors (F32, streamed in blocks: the writer holds no whole tensor)
 * and returns the bytes of tensor data. */
static inline size_t mem_write_safetensors(const char *dir, const mem_tensor_list *l) {
    size_t cap = 256 + l->n * 160, len = 0, off = 0;
    char *hdr = malloc(cap);
    assert_non_null(hdr);
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    for (size_t i = 0; i < l->n; i++) {
        const mem_tensor *t = &l->t[i];
        size_t bytes = mem_numel(t) * 4;
        if (t->ndim == 2)
            len += (size_t)snprintf(hdr + len, cap - len,
                                    "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],"
                                    "\"data_offsets\":[%zu,%zu]}",
                                    i ? "," : "", t->name, (long long)t->shape[0],
                                    (long long)t->shape[1], off, off + bytes);
        else
            len += (size_t)snprintf(hdr + len, cap - len,
                                    "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],"
                                    "\"data_offsets\":[%zu,%zu]}",
                                    i ? "," : "", t->name, (long long)t->shape[0], off,
                                    off + bytes);
        off += bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' '; /* data starts 8-byte aligned: F32 is read in place */
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = len;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(n >> (8 * i));
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    assert_int_equal(fwrite(hdr, 1, len, f), len);
    free(hdr);
    enum { BLOCK = 1 << 16 };
    float *buf = malloc(BLOCK * sizeof *buf);
    assert_non_null(buf);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < l->n; i++) {
        size_t left = mem_numel(&l->t[i]);
        while (left) {
            size_t k = left < BLOCK ? left : BLOCK;
            for (size_t j = 0; j < k; j++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
                buf[j] = l->t[i].fill != 0.0f
                             ? l->t[i].fill
                             : ((float)(s >> 40) / (float)(1u << 24) - 0.5f) * 0.1f;
            }
            assert_int_equal(fwrite(buf, sizeof *buf, k, f), k);
            left -= k;
        }
    }
    free(buf);
    assert_int_equal(fclose(f), 0);
    return off;
}

/* Llama-family tensors (separate q/k/v and gate/up, or Phi-3's fused qkv_proj/gate_up_proj). */
static inline void mem_llama_tensors(mem_tensor_list *l, int64_t layers, int64_t d,
                                     int64_t heads, int64_t kv_heads, int64_t d_mlp,
                                     int64_t vocab, bool fused) {
    int64_t dh = d / heads, dq = heads * dh, dkv = kv_heads * dh;
    char name[96];
    mem_add(l, "model.embed_tokens.weight", 2, vocab, d, 0);
    for (int64_t i = 0; i < layers; i++) {
#define N(s) (snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)i, s), name)
        mem_add(l, N("input_layernorm.weight"), 1, d, 0, 1.0f);
        mem_add(l, N("post_attention_layernorm.weight"), 1, d, 0, 1.0f);
        if (fused) {
            mem_add(l, N("self_attn.qkv_proj.weight"), 2, dq + 2 * dkv, d, 0);
            mem_add(l, N("mlp.gate_up_proj.weight"), 2, 2 * d_mlp, d, 0);
        } else {
            mem_add(l, N("self_attn.q_proj.weight"), 2, dq, d, 0);
            mem_add(l, N("self_attn.k_proj.weight"), 2, dkv, d, 0);
            mem_add(l, N("self_attn.v_proj.weight"), 2, dkv, d, 0);
            mem_add(l, N("mlp.gate_proj.weight"), 2, d_mlp, d, 0);
            mem_add(l, N("mlp.up_proj.weight"), 2, d_mlp, d, 0);
        }
        mem_add(l, N("self_attn.o_proj.weight"), 2, d, dq, 0);
        mem_add(l, N("mlp.down_proj.weight"), 2, d, d_mlp, 0);
#undef N
    }
    mem_add(l, "model.norm.weight", 1, d, 0, 1.0f);
    mem_add(l, "lm_head.weight", 2, vocab, d, 0);
}

static inline void mem_write_text(const char *dir, const char *file, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* ---- resident set ---- */

/* A "VmRSS:" / "VmHWM:" field of /proc/self/status in bytes (0 when unreadable). */
static inline size_t mem_status_bytes(const char *field) { return bench_status_kib(field) * 1024; }

/* Reset VmHWM to the current VmRSS (Linux >= 4.0). false where that is not possible. */
static inline bool mem_reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* Run fn(arg, out) in a forked child, which writes `size` bytes of results to out; returns
 * true when the child exited 0 and delivered them. */
static inline bool mem_in_child(void (*fn)(const void *arg, void *out), const void *arg,
                                void *out, size_t size) {
    int fd[2];
    if (pipe(fd) != 0) return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        close(fd[0]);
        void *res = calloc(1, size);
        if (!res) _exit(3);
        fn(arg, res);
        ssize_t w = write(fd[1], res, size);
        _exit(w == (ssize_t)size ? 0 : 4);
    }
    close(fd[1]);
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd[0], (char *)out + got, size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        print_error("memory test child failed (status %d)\n", status);
    return got == size && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

#endif

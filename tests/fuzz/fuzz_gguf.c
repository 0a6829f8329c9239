/* Fuzz target for the GGUF reader (core/gguf.c) and the block dequantizers (core/quant.c).
 *
 * With -DHK_LIBFUZZER (clang, -fsanitize=fuzzer) this is a libFuzzer target. Otherwise main()
 * replays files and folders named on the command line, plus the valid image of
 * tests/core/gguf_image.h, each of its truncations and a fixed number of deterministic
 * mutations, so every build exercises the entry point (under ASan/UBSan in the sanitizer
 * builds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/gguf.h"
#include "core/quant.h"

static void fail(const char *what) {
    fprintf(stderr, "fuzz_gguf: invariant violated: %s (last error: %s)\n", what,
            hk_last_error());
    abort();
}

static void in_file(const void *p, size_t n, const uint8_t *data, size_t size) {
    const uint8_t *b = p;
    if (n && (b < data || b > data + size || n > (size_t)(data + size - b)))
        fail("pointer outside the file");
}

static void check(const hk_gguf *g, const uint8_t *data, size_t size) {
    for (size_t i = 0; i < g->n_kv; i++) {
        const hk_gguf_kv *kv = &g->kv[i];
        if (!kv->key || !kv->key[0]) fail("empty key");
        if (hk_gguf_find(g, kv->key) != kv) fail("find does not return the key");
        if (kv->type == HK_GGUF_STRING || kv->elem == HK_GGUF_STRING)
            for (uint64_t j = 0; j < kv->n; j++) in_file(kv->strs[j].p, kv->strs[j].len, data, size);
        int64_t iv;
        double dv;
        bool bv;
        char buf[64];
        (void)hk_gguf_get_int(g, kv->key, true, &iv);
        (void)hk_gguf_get_num(g, kv->key, true, &dv);
        (void)hk_gguf_get_bool(g, kv->key, true, &bv);
        (void)hk_gguf_get_str(g, kv->key, true, buf, sizeof buf);
        if (kv->type == HK_GGUF_ARRAY && kv->n) {
            (void)hk_gguf_arr_int(kv, kv->n - 1);
            (void)hk_gguf_arr_num(kv, kv->n - 1);
        }
    }
    if (g->alignment == 0 || (g->alignment & (g->alignment - 1))) fail("bad alignment");
    for (size_t i = 0; i < g->n_t; i++) {
        const hk_gguf_tensor *t = &g->t[i];
        int64_t block, bytes;
        if (!hk_ggml_layout(t->type, &block, &bytes)) fail("unknown type accepted");
        if (t->ndim < 1 || t->ndim > HK_GGUF_MAX_DIMS) fail("bad ndim");
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->ne[d];
        if (numel / (uint64_t)block * (uint64_t)bytes != t->nbytes) fail("nbytes mismatch");
        in_file(t->data, t->nbytes, data, size);
        if (((size_t)(t->data - data) - g->data_offset) % g->alignment) fail("misaligned data");
        /* dequantize the first blocks (up to 512 elements) */
        if (hk_ggml_can_dequantize(t->type) && numel) {
            float out[512];
            int64_t n = (int64_t)(numel < 512 ? numel : 512);
            n -= n % block;
            if (n > 0) hk_dequantize(t->type, t->data, out, n);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hk_gguf *g = (hk_gguf *)&g; /* must be reset by the parser */
    hk_error_clear();
    const hk_status st = hk_gguf_parse("fuzz.gguf", data, size, &g);
    if (st != HK_OK) {
        if (g != NULL) fail("output not reset on error");
        if (strstr(hk_last_error(), "fuzz.gguf") == NULL) fail("message lacks the file");
        return 0;
    }
    check(g, data, size);
    hk_gguf_free(g);
    return 0;
}

#ifndef HK_LIBFUZZER
#include "fuzz_replay.h"

#include "../core/gguf_image.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_rand(void) { /* xorshift64 */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv) {
    gimg img = gi_valid();
    size_t count = 0;
    for (size_t cut = 0; cut <= img.n; cut++, count++) fuzz_run_copy(img.p, cut);
    uint8_t *mut = malloc(img.n);
    if (!mut) fail("out of memory");
    for (int m = 0; m < 4000; m++, count++) {
        memcpy(mut, img.p, img.n);
        const int edits = 1 + (int)(next_rand() % 4);
        for (int e = 0; e < edits; e++) {
            const size_t at = next_rand() % img.n;
            static const uint8_t special[] = {0, 1, 2, 8, 9, 0x1f, 0x20, 0x7f, 0x80, 0xff};
            mut[at] = (next_rand() & 1) ? (uint8_t)next_rand() : special[next_rand() % 10];
        }
        fuzz_run_copy(mut, img.n);
    }
    free(mut);
    free(img.p);
    for (int i = 1; i < argc; i++)
        count += fuzz_replay_path("fuzz_gguf", argv[i], fuzz_run_copy);
    printf("fuzz_gguf replay: %zu inputs, no crash\n", count);
    return 0;
}
#endif

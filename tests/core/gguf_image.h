/* Builds small GGUF images in memory, field by field, so tests can write valid files and
 * break exactly one thing in them. Header-only (static functions); used by test_gguf.c and
 * the GGUF fuzz target's replay mode. */
#ifndef HK_TESTS_GGUF_IMAGE_H
#define HK_TESTS_GGUF_IMAGE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
} gimg;

static void gi_bytes(gimg *g, const void *src, size_t n) {
    if (g->n + n > g->cap) {
        g->cap = (g->n + n) * 2 + 64;
        g->p = realloc(g->p, g->cap);
        if (!g->p) abort();
    }
    if (n) memcpy(g->p + g->n, src, n);
    g->n += n;
}
static void gi_u8(gimg *g, uint8_t v) { gi_bytes(g, &v, 1); }
static void gi_u32(gimg *g, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    gi_bytes(g, b, 4);
}
static void gi_u64(gimg *g, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    gi_bytes(g, b, 8);
}
static void gi_f32(gimg *g, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    gi_u32(g, v);
}
static void gi_str(gimg *g, const char *s) {
    gi_u64(g, strlen(s));
    gi_bytes(g, s, strlen(s));
}
static void gi_header(gimg *g, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    gi_bytes(g, "GGUF", 4);
    gi_u32(g, version);
    gi_u64(g, n_tensors);
    gi_u64(g, n_kv);
}
static void gi_kv_str(gimg *g, const char *key, const char *val) {
    gi_str(g, key);
    gi_u32(g, 8);
    gi_str(g, val);
}
static void gi_kv_u32(gimg *g, const char *key, uint32_t val) {
    gi_str(g, key);
    gi_u32(g, 4);
    gi_u32(g, val);
}
/* tensor info with up to 4 dims (ne innermost first) */
static void gi_tensor(gimg *g, const char *name, int nd, const uint64_t *ne, uint32_t type,
                      uint64_t offset) {
    gi_str(g, name);
    gi_u32(g, (uint32_t)nd);
    for (int i = 0; i < nd; i++) gi_u64(g, ne[i]);
    gi_u32(g, type);
    gi_u64(g, offset);
}
static void gi_pad(gimg *g, size_t align) {
    while (g->n % align) gi_u8(g, 0);
}

/* The reference valid image: keys general.architecture = "llama", general.alignment = 32,
 * tokenizer.ggml.tokens = ["a", "bc"], a float; tensors "w" F32 [2, 4] (ne 4, 2) = 0..7 and
 * "q" Q8_0 [32] (d = 0.5, q[i] = i - 16). */
static inline gimg gi_valid(void) {
    gimg g = {0};
    gi_header(&g, 3, 2, 4);
    gi_kv_str(&g, "general.architecture", "llama");
    gi_kv_u32(&g, "general.alignment", 32);
    gi_str(&g, "tokenizer.ggml.tokens");
    gi_u32(&g, 9);
    gi_u32(&g, 8);
    gi_u64(&g, 2);
    gi_str(&g, "a");
    gi_str(&g, "bc");
    gi_str(&g, "llama.rope.freq_base");
    gi_u32(&g, 6);
    gi_f32(&g, 10000.0f);
    const uint64_t ne_w[2] = {4, 2}, ne_q[1] = {32};
    gi_tensor(&g, "w", 2, ne_w, 0, 0);
    gi_tensor(&g, "q", 1, ne_q, 8, 32);
    gi_pad(&g, 32);
    for (int i = 0; i < 8; i++) gi_f32(&g, (float)i);
    gi_pad(&g, 32);
    gi_u8(&g, 0x00); /* fp16 0.5 = 0x3800 */
    gi_u8(&g, 0x38);
    for (int i = 0; i < 32; i++) gi_u8(&g, (uint8_t)(int8_t)(i - 16));
    return g;
}

#endif

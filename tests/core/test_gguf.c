/* GGUF reader: a valid image reads back exactly (metadata of each type, tensors, alignment),
 * every malformed kind is rejected with a message naming the file and the key or tensor, every
 * truncation of a valid file is an error, dequantization matches gguf-py's reference on random
 * blocks of each type, and a malformed .gguf given to hk_model_load is a clear error. */
#include <math.h>
#include <stdbool.h>

#include "test_util.h"

#include "core/checkpoint.h"
#include "core/gguf.h"
#include "core/quant.h"
#include "gguf_image.h"

#define PATH "t.gguf"

static void test_valid_image(void **state) {
    (void)state;
    gimg img = gi_valid();
    hk_gguf *g = NULL;
    EXPECT_OK(hk_gguf_parse(PATH, img.p, img.n, &g));
    assert_int_equal(g->version, 3);
    assert_int_equal(g->alignment, 32);
    assert_int_equal(g->n_kv, 4);
    assert_int_equal(g->n_t, 2);
    char arch[16];
    EXPECT_OK(hk_gguf_get_str(g, "general.architecture", true, arch, sizeof arch));
    assert_string_equal(arch, "llama");
    int64_t align = 0;
    EXPECT_OK(hk_gguf_get_int(g, "general.alignment", true, &align));
    assert_int_equal(align, 32);
    double base = 0;
    EXPECT_OK(hk_gguf_get_num(g, "llama.rope.freq_base", true, &base));
    assert_true(base == 10000.0);
    const hk_gguf_kv *toks = hk_gguf_find(g, "tokenizer.ggml.tokens");
    assert_non_null(toks);
    assert_int_equal(toks->type, HK_GGUF_ARRAY);
    assert_int_equal(toks->elem, HK_GGUF_STRING);
    assert_int_equal(toks->n, 2);
    assert_int_equal(toks->strs[1].len, 2);
    assert_memory_equal(toks->strs[1].p, "bc", 2);
    /* missing optional key leaves the default; missing required key names it */
    int64_t dflt = 7;
    EXPECT_OK(hk_gguf_get_int(g, "llama.block_count", false, &dflt));
    assert_int_equal(dflt, 7);
    expect_error(hk_gguf_get_int(g, "llama.block_count", true, &dflt), HK_ERR_NOT_FOUND, PATH,
                 "llama.block_count", NULL);
    expect_error(hk_gguf_get_int(g, "general.architecture", true, &dflt), HK_ERR_FORMAT, PATH,
                 "general.architecture", "integer");
    char small[3];
    expect_error(hk_gguf_get_str(g, "general.architecture", true, small, sizeof small),
                 HK_ERR_FORMAT, "general.architecture", NULL, NULL);
    /* tensors: dims innermost-first, data aligned in the data area */
    const hk_gguf_tensor *w = &g->t[0], *q = &g->t[1];
    assert_string_equal(w->name, "w");
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->ne[0], 4);
    assert_int_equal(w->ne[1], 2);
    assert_int_equal(w->nbytes, 32);
    assert_int_equal(g->data_offset % 32, 0);
    assert_ptr_equal(w->data, img.p + g->data_offset);
    assert_int_equal(q->type, HK_GGML_Q8_0);
    assert_int_equal(q->nbytes, 34);
    assert_ptr_equal(q->data, img.p + g->data_offset + 32);
    float deq[32];
    hk_dequantize(q->type, q->data, deq, 32);
    for (int i = 0; i < 32; i++) assert_true(deq[i] == 0.5f * (float)(i - 16));
    hk_gguf_free(g);
    free(img.p);
}

/* Every proper prefix of the valid image is an error naming the file (never a crash: ASan
 * runs this too). */
static void test_truncations(void **state) {
    (void)state;
    gimg img = gi_valid();
    for (size_t n = 0; n < img.n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, img.p, n);
        hk_gguf *g = (hk_gguf *)&g;
        hk_status st = hk_gguf_parse(PATH, copy, n, &g);
        if (st == HK_OK) fail_msg("prefix of %zu bytes (of %zu) parsed", n, img.n);
        assert_null(g);
        assert_non_null(strstr(hk_last_error(), PATH));
        free(copy);
    }
    free(img.p);
}

typedef enum {
    BAD_MAGIC, VERSION_1, VERSION_9, SWAPPED_VERSION, HUGE_KV_COUNT, HUGE_TENSOR_COUNT, HUGE_KEY_LEN,
    EMPTY_KEY, HUGE_ARRAY, UNKNOWN_VTYPE, NESTED_ARRAY, BAD_BOOL, DUP_KEY, BAD_ALIGN_TYPE,
    ALIGN_NOT_POW2, ZERO_DIMS, FIVE_DIMS, NE_OVERFLOW, UNKNOWN_GGML, ROW_NOT_BLOCKS,
    MISALIGNED, OFFSET_PAST_END, OVERLAP, DUP_TENSOR, N_DEFECTS
} defect;

/* The valid image with exactly one defect. */
static gimg build(defect d) {
    gimg g = {0};
    gi_bytes(&g, d == BAD_MAGIC ? "GGML" : "GGUF", 4);
    gi_u32(&g, d == VERSION_1 ? 1 : d == VERSION_9 ? 9 : d == SWAPPED_VERSION ? 0x03000000u : 3);
    gi_u64(&g, d == HUGE_TENSOR_COUNT ? UINT64_MAX / 2 : 2);
    gi_u64(&g, d == HUGE_KV_COUNT ? (uint64_t)1 << 60 : 3);
    if (d == HUGE_KEY_LEN) {
        gi_u64(&g, UINT64_MAX - 3);
    } else {
        gi_str(&g, d == EMPTY_KEY ? "" : "general.architecture");
    }
    gi_u32(&g, d == UNKNOWN_VTYPE ? 13 : 8);
    gi_str(&g, "llama");
    gi_str(&g, d == DUP_KEY ? "general.architecture" : "general.alignment");
    gi_u32(&g, d == BAD_ALIGN_TYPE ? 10 : 4);
    gi_u32(&g, d == ALIGN_NOT_POW2 ? 24 : 32);
    if (d == BAD_ALIGN_TYPE) gi_u32(&g, 0);
    gi_str(&g, "flags");
    gi_u32(&g, 9);
    gi_u32(&g, d == NESTED_ARRAY ? 9 : 7);
    gi_u64(&g, d == HUGE_ARRAY ? (uint64_t)1 << 62 : 2);
    gi_u8(&g, 1);
    gi_u8(&g, d == BAD_BOOL ? 2 : 0);
    const uint64_t ne_w[5] = {4, 2, 1, 1, 1}, ne_big[2] = {(uint64_t)1 << 40, (uint64_t)1 << 40};
    const uint64_t ne_q[1] = {d == ROW_NOT_BLOCKS ? 31 : 32};
    if (d == NE_OVERFLOW)
        gi_tensor(&g, "w", 2, ne_big, 0, 0);
    else
        gi_tensor(&g, "w", d == ZERO_DIMS ? 0 : d == FIVE_DIMS ? 5 : 2, ne_w, 0, 0);
    const uint64_t q_off = d == MISALIGNED ? 36 : d == OFFSET_PAST_END ? 64 : d == OVERLAP ? 0 : 32;
    gi_tensor(&g, d == DUP_TENSOR ? "w" : "q", 1, ne_q, d == UNKNOWN_GGML ? 99 : 8, q_off);
    gi_pad(&g, 32);
    for (int i = 0; i < 8; i++) gi_f32(&g, (float)i);
    gi_pad(&g, 32);
    gi_u8(&g, 0x00);
    gi_u8(&g, 0x38);
    for (int i = 0; i < 32; i++) gi_u8(&g, (uint8_t)i);
    return g;
}

static void test_defects(void **state) {
    (void)state;
    static const struct {
        defect d;
        hk_status st;
        const char *n1, *n2;
    } cases[] = {
        {BAD_MAGIC, HK_ERR_FORMAT, "not a GGUF file", NULL},
        {VERSION_1, HK_ERR_UNSUPPORTED, "version 1", NULL},
        {VERSION_9, HK_ERR_FORMAT, "version 9", NULL},
        {SWAPPED_VERSION, HK_ERR_UNSUPPORTED, "big-endian", NULL},
        {HUGE_KV_COUNT, HK_ERR_FORMAT, "keys", "bytes left"},
        {HUGE_TENSOR_COUNT, HK_ERR_FORMAT, "tensors", "bytes left"},
        {HUGE_KEY_LEN, HK_ERR_FORMAT, "the key of entry 0", "remain"},
        {EMPTY_KEY, HK_ERR_FORMAT, "the key of entry 0", "1..4096"},
        {HUGE_ARRAY, HK_ERR_FORMAT, "'flags'", "cannot fit"},
        {UNKNOWN_VTYPE, HK_ERR_FORMAT, "'general.architecture'", "unknown value type 13"},
        {NESTED_ARRAY, HK_ERR_UNSUPPORTED, "'flags'", "arrays of arrays"},
        {BAD_BOOL, HK_ERR_FORMAT, "'flags'[1]", "bool value 2"},
        {DUP_KEY, HK_ERR_FORMAT, "key 'general.architecture' appears twice", NULL},
        {BAD_ALIGN_TYPE, HK_ERR_FORMAT, "general.alignment", "uint32"},
        {ALIGN_NOT_POW2, HK_ERR_FORMAT, "general.alignment", "power of two"},
        {ZERO_DIMS, HK_ERR_FORMAT, "tensor 'w' has 0 dims", NULL},
        {FIVE_DIMS, HK_ERR_FORMAT, "tensor 'w' has 5 dims", NULL},
        {NE_OVERFLOW, HK_ERR_FORMAT, "tensor 'w'", "overflow"},
        {UNKNOWN_GGML, HK_ERR_UNSUPPORTED, "tensor 'q'", "ggml type 99"},
        {ROW_NOT_BLOCKS, HK_ERR_FORMAT, "tensor 'q'", "multiple of the Q8_0 block size 32"},
        {MISALIGNED, HK_ERR_FORMAT, "tensor 'q'", "not a multiple of the alignment 32"},
        {OFFSET_PAST_END, HK_ERR_FORMAT, "tensor 'q'", "outside"},
        {OVERLAP, HK_ERR_FORMAT, "'w' and 'q' overlap", NULL},
        {DUP_TENSOR, HK_ERR_FORMAT, "tensor 'w' appears twice", NULL},
    };
    assert_int_equal(sizeof cases / sizeof cases[0], N_DEFECTS);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gimg img = build(cases[i].d);
        hk_gguf *g = (hk_gguf *)&g;
        print_message("defect %zu\n", i);
        expect_error(hk_gguf_parse(PATH, img.p, img.n, &g), cases[i].st, PATH, cases[i].n1,
                     cases[i].n2);
        assert_null(g);
        free(img.p);
    }
    /* and the builder without a defect is valid (so each case breaks exactly one thing) */
    gimg ok = build(N_DEFECTS);
    hk_gguf *g = NULL;
    EXPECT_OK(hk_gguf_parse(PATH, ok.p, ok.n, &g));
    hk_gguf_free(g);
    free(ok.p);
}

/* hk_dequantize of random valid blocks == gguf-py's numpy dequantization. */
static void test_dequantize_vs_gguf_py(void **state) {
    (void)state;
    char path[512];
    const char *root = getenv("HK_FIXTURES");
    snprintf(path, sizeof path, "%s/gguf/quant_blocks.gguf", root ? root : "tests/fixtures");
    hk_ckpt *ck = NULL;
    EXPECT_OK(hk_ckpt_open(path, &ck));
    static const char *const types[] = {"q8_0", "q4_0", "q4_1", "q4_k", "q6_k",
                                        "q5_0", "q5_1", "q5_k", "q3_k", "q2_k"};
    const int64_t shape[2] = {4, 512};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char ref_name[32];
        snprintf(ref_name, sizeof ref_name, "%s.ref", types[i]);
        const hk_st_tensor *t = hk_ckpt_find(ck, types[i]);
        assert_non_null(t);
        assert_true(t->quantized);
        const float *ours, *ref;
        EXPECT_OK(hk_ckpt_f32(ck, types[i], 2, shape, &ours));
        EXPECT_OK(hk_ckpt_f32(ck, ref_name, 2, shape, &ref));
        double worst = 0, scale = 0;
        for (int64_t k = 0; k < 4 * 512; k++) {
            worst = fmax(worst, fabs((double)ours[k] - (double)ref[k]));
            scale = fmax(scale, fabs((double)ref[k]));
        }
        print_message("%s: max |ours - gguf-py| = %.3g (max |x| %.3g)\n", types[i], worst, scale);
        assert_true(scale > 0);
        assert_true(worst <= 1e-6 * scale);
    }
    hk_ckpt_close(ck);
}

/* A file hk_model_load gets: malformed -> the parser's message with the path; an unknown
 * architecture -> named; unknown/undequantizable tensor types -> named. */
static void test_model_load_errors(void **state) {
    (void)state;
    char dir[256], path[512];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.gguf", dir);
    gimg img = build(MISALIGNED);
    write_bytes(path, img.p, img.n);
    hk_model *m = NULL;
    expect_error(hk_model_load(path, &m), HK_ERR_FORMAT, path, "tensor 'q'", "alignment");
    assert_null(m);
    free(img.p);

    img = gi_valid(); /* architecture "llama" but no llama keys */
    write_bytes(path, img.p, img.n);
    expect_error(hk_model_load(path, &m), HK_ERR_NOT_FOUND, path, "llama.block_count", NULL);
    free(img.p);

    img = (gimg){0};
    gi_header(&img, 3, 0, 1);
    gi_kv_str(&img, "general.architecture", "mamba");
    write_bytes(path, img.p, img.n);
    expect_error(hk_model_load(path, &m), HK_ERR_UNSUPPORTED, path, "\"mamba\"", "llama");
    free(img.p);

    img = (gimg){0};
    gi_header(&img, 3, 0, 0);
    write_bytes(path, img.p, img.n);
    expect_error(hk_model_load(path, &m), HK_ERR_NOT_FOUND, path, "general.architecture", NULL);
    free(img.p);

    /* a Q8_K tensor (llama.cpp's intermediate type, never in published files) parses (known
     * layout) but is refused when a weight is bound */
    img = (gimg){0};
    gi_header(&img, 3, 1, 0);
    const uint64_t ne[1] = {256};
    gi_tensor(&img, "t", 1, ne, 15, 0);
    gi_pad(&img, 32);
    for (int i = 0; i < 292; i++) gi_u8(&img, 0);
    write_bytes(path, img.p, img.n);
    hk_ckpt *ck = NULL;
    EXPECT_OK(hk_ckpt_open(path, &ck));
    const float *v;
    const int64_t shape[1] = {256};
    expect_error(hk_ckpt_f32(ck, "t", 1, shape, &v), HK_ERR_UNSUPPORTED, "tensor 't'", "Q8_K",
                 "cannot dequantize");
    hk_ckpt_close(ck);
    free(img.p);
    remove_tree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_image),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_defects),
        cmocka_unit_test(test_dequantize_vs_gguf_py),
        cmocka_unit_test(test_model_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

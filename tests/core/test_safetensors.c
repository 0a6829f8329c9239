/* Safetensors reader and checkpoint: every malformed-header kind is rejected with a message
 * naming the file and the tensor; good files (single, sharded, unaligned) read back exactly. */
#include <stdbool.h>
#include <sys/stat.h>

#include "test_util.h"

#include "core/checkpoint.h"
#include "core/dtype.h"

typedef struct {
    char dir[256];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    make_tmpdir(f->dir, sizeof f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    remove_tree(f->dir);
    free(f);
    return 0;
}

static const char *in_dir(const fixture *f, const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", f->dir, name);
    return buf[k];
}

/* A safetensors image: u64 LE header length, header (padded with spaces so the data area
 * starts at data_mod modulo 8), data. malloc'd; *size receives its length. */
static uint8_t *st_image(const char *header, const void *data, size_t n, unsigned data_mod,
                         size_t *size) {
    size_t hl = strlen(header);
    while ((8 + hl) % 8 != data_mod % 8) hl++;
    uint8_t *img = malloc(8 + hl + n + 1);
    assert_non_null(img);
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memset(img + 8, ' ', hl);
    memcpy(img + 8, header, strlen(header));
    if (n) memcpy(img + 8 + hl, data, n);
    *size = 8 + hl + n;
    return img;
}

static void st_write(const char *path, const char *header, const void *data, size_t n,
                     unsigned data_mod) {
    size_t size;
    uint8_t *img = st_image(header, data, n, data_mod, &size);
    write_bytes(path, img, size);
    free(img);
}

/* Writes dir/model.safetensors and expects hk_ckpt_open to fail with `want`, naming the file
 * and the given needles. */
static void open_bad(const fixture *f, const char *header, size_t ndata, hk_status want,
                     const char *n1, const char *n2) {
    static const uint8_t zeros[256];
    assert_true(ndata <= sizeof zeros);
    st_write(in_dir(f, "model.safetensors"), header, zeros, ndata, 0);
    hk_ckpt *c = (hk_ckpt *)1;
    expect_error(hk_ckpt_open(f->dir, &c), want, "model.safetensors", n1, n2);
    assert_null(c);
}

/* ---- malformed files ---------------------------------------------------- */

static void test_short_file(void **state) {
    fixture *f = *state;
    write_bytes(in_dir(f, "model.safetensors"), "\x05\0\0\0\0", 5);
    hk_ckpt *c;
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "model.safetensors", "5 bytes",
                 "too short");
    write_bytes(in_dir(f, "model.safetensors"), "", 0);
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "model.safetensors", "0 bytes", NULL);
}

static void test_header_length(void **state) {
    fixture *f = *state;
    uint8_t img[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(in_dir(f, "model.safetensors"), img, sizeof img);
    hk_ckpt *c;
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "model.safetensors",
                 "header length 100", "end of the file");
    img[5] = 1; /* 2^40 */
    write_bytes(in_dir(f, "model.safetensors"), img, sizeof img);
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "model.safetensors", "implausibly",
                 NULL);
    const uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    write_bytes(in_dir(f, "model.safetensors"), huge, 8);
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "model.safetensors", "implausibly",
                 NULL);
}

static void test_header_not_json(void **state) {
    fixture *f = *state;
    open_bad(f, "{\"w\": {\"dtype\": \"F32\",, }}", 0, HK_ERR_FORMAT, "invalid JSON",
             "byte offset");
    open_bad(f, "[1, 2]", 0, HK_ERR_FORMAT, "JSON object", "an array");
    open_bad(f, "", 0, HK_ERR_FORMAT, "empty", NULL);
    open_bad(f, "{} trailing", 0, HK_ERR_FORMAT, "after the value", NULL);
}

static void test_entry_fields(void **state) {
    fixture *f = *state;
    open_bad(f, "{\"w.missing_dtype\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
             HK_ERR_FORMAT, "'w.missing_dtype'", "'dtype' is missing");
    open_bad(f, "{\"w.missing_shape\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
             HK_ERR_FORMAT, "'w.missing_shape'", "'shape' is missing");
    open_bad(f, "{\"w.no_offsets\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, HK_ERR_FORMAT,
             "'w.no_offsets'", "'data_offsets' is missing");
    open_bad(f, "{\"w.dt\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
             HK_ERR_FORMAT, "'w.dt'", "'dtype' must be a string, found a number");
    open_bad(f, "{\"w.sh\": {\"dtype\": \"F32\", \"shape\": \"1\", \"data_offsets\": [0, 4]}}", 4,
             HK_ERR_FORMAT, "'w.sh'", "'shape' must be an array of integers");
    open_bad(f, "{\"w.off\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": {}}}", 4,
             HK_ERR_FORMAT, "'w.off'", "'data_offsets' must be an array");
    open_bad(f, "{\"w.off3\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}",
             8, HK_ERR_FORMAT, "'w.off3'", "data_offsets");
    open_bad(f, "{\"w.off1\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4,
             HK_ERR_FORMAT, "'w.off1'", "[begin, end]");
    open_bad(f, "{\"w.scalar\": 3}", 0, HK_ERR_FORMAT, "'w.scalar'", "must be an object");
    open_bad(f, "{\"__metadata__\": {\"format\": 1}}", 0, HK_ERR_FORMAT, "__metadata__",
             "'format'");
    open_bad(f, "{\"__metadata__\": [1]}", 0, HK_ERR_FORMAT, "__metadata__", NULL);
}

static void test_bad_dims(void **state) {
    fixture *f = *state;
    open_bad(f, "{\"w.neg\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 0]}}",
             0, HK_ERR_FORMAT, "'w.neg'", "negative");
    open_bad(f, "{\"w.frac\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}",
             8, HK_ERR_FORMAT, "'w.frac'", "2.5");
    open_bad(f, "{\"w.str\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}",
             8, HK_ERR_FORMAT, "'w.str'", "element 0");
    open_bad(f, "{\"w.9d\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], "
                "\"data_offsets\": [0, 1]}}", 1, HK_ERR_UNSUPPORTED, "'w.9d'", "9 dims");
    /* 2^50 x 2^50 x 2^50 wraps 64 bits: must be caught, not multiplied through */
    open_bad(f, "{\"w.big\": {\"dtype\": \"F32\", \"shape\": [1125899906842624, "
                "1125899906842624, 1125899906842624], \"data_offsets\": [0, 0]}}", 0,
             HK_ERR_FORMAT, "'w.big'", "overflow");
    /* 2^62 elements x 4 bytes wraps too */
    open_bad(f, "{\"w.big2\": {\"dtype\": \"F32\", \"shape\": [4194304, 1099511627776], "
                "\"data_offsets\": [0, 0]}}", 0, HK_ERR_FORMAT, "'w.big2'", "overflow");
}

static void test_bad_offsets(void **state) {
    fixture *f = *state;
    open_bad(f, "{\"w.rev\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8,
             HK_ERR_FORMAT, "'w.rev'", "begin > end");
    open_bad(f, "{\"w.past\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4,
             HK_ERR_FORMAT, "'w.past'", "beyond the data area");
    open_bad(f, "{\"w.negoff\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}",
             4, HK_ERR_FORMAT, "'w.negoff'", "negative");
    open_bad(f, "{\"w.size\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}",
             24, HK_ERR_FORMAT, "'w.size'", "[2, 3] x F32 is 24 bytes");
    open_bad(f, "{\"a.first\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                " \"b.second\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
             12, HK_ERR_FORMAT, "'a.first'", "'b.second'");
    /* a long tensor covering a later, shorter one (overlap with a non-adjacent predecessor) */
    open_bad(f, "{\"long\": {\"dtype\": \"U8\", \"shape\": [16], \"data_offsets\": [0, 16]},"
                " \"mid\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [2, 4]},"
                " \"late\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [8, 10]}}",
             16, HK_ERR_FORMAT, "overlap", "'long'");
    open_bad(f, "{\"dup\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
                " \"dup\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]}}",
             2, HK_ERR_FORMAT, "'dup'", "twice");
}

static void test_unsupported_dtype(void **state) {
    fixture *f = *state;
    open_bad(f, "{\"w.f64\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8,
             HK_ERR_UNSUPPORTED, "'w.f64'", "'F64'");
    open_bad(f, "{\"w.fp8\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
             1, HK_ERR_UNSUPPORTED, "'w.fp8'", "'F8_E4M3'");
    open_bad(f, "{\"w.bool\": {\"dtype\": \"BOOL\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
             1, HK_ERR_UNSUPPORTED, "'w.bool'", "'BOOL'");
}

/* ---- good files --------------------------------------------------------- */

static const float F32_VALS[6] = {1.0f, -2.5f, 0.125f, 3e-3f, -1e6f, 0.0f};
static const float HALF_VALS[4] = {1.0f, -0.5f, 65504.0f, 0x1p-24f}; /* exact in f16 */
static const float BF_VALS[4] = {1.0f, -3.0f, 0x1p100f, 0.5f};      /* exact in bf16 */

/* Data area: a F32 [2, 3] at 0, b F16 [4] at 24, c BF16 [2, 2] at 32, i I64 [2] at 40. */
static size_t good_data(uint8_t *d) {
    memcpy(d, F32_VALS, 24);
    hk_convert_from_f32(HK_DTYPE_F16, HALF_VALS, d + 24, 4);
    hk_convert_from_f32(HK_DTYPE_BF16, BF_VALS, d + 32, 4);
    const int64_t iv[2] = {7, -7};
    memcpy(d + 40, iv, 16);
    return 56;
}

static const char *GOOD_HEADER =
    "{\"__metadata__\": {\"format\": \"pt\"},"
    " \"c\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [32, 40]},"
    " \"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
    " \"b\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [24, 32]},"
    " \"i\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [40, 56]},"
    " \"empty\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [24, 24]}}";

static void check_good(hk_ckpt *c) {
    assert_int_equal(hk_ckpt_count(c), 5);
    assert_string_equal(hk_ckpt_at(c, 0)->name, "a"); /* name order */
    assert_string_equal(hk_ckpt_at(c, 4)->name, "i");
    assert_null(hk_ckpt_at(c, 5));
    const float *p;
    EXPECT_OK(hk_ckpt_f32(c, "a", 2, (const int64_t[]){2, 3}, &p));
    assert_memory_equal(p, F32_VALS, sizeof F32_VALS);
    assert_ptr_equal(p, hk_ckpt_find(c, "a")->data); /* aligned F32: zero-copy */
    EXPECT_OK(hk_ckpt_f32(c, "b", 1, (const int64_t[]){4}, &p));
    assert_memory_equal(p, HALF_VALS, sizeof HALF_VALS);
    EXPECT_OK(hk_ckpt_f32(c, "c", 2, (const int64_t[]){2, 2}, &p));
    assert_memory_equal(p, BF_VALS, sizeof BF_VALS);
    const float *again;
    EXPECT_OK(hk_ckpt_f32(c, "c", 2, (const int64_t[]){2, 2}, &again));
    assert_ptr_equal(p, again); /* converted once */
    EXPECT_OK(hk_ckpt_f32(c, "empty", 2, (const int64_t[]){0, 5}, &p));
    assert_non_null(p);
    const hk_st_tensor *t = hk_ckpt_find(c, "i");
    assert_non_null(t);
    assert_int_equal(t->dtype, HK_DTYPE_I64);
    assert_int_equal(t->nbytes, 16);
    assert_null(hk_ckpt_find(c, "nope"));
    assert_null(hk_ckpt_find(c, "__metadata__"));
}

static void test_single_file(void **state) {
    fixture *f = *state;
    uint8_t data[64];
    const size_t n = good_data(data);
    st_write(in_dir(f, "model.safetensors"), GOOD_HEADER, data, n, 0);
    hk_ckpt *c;
    EXPECT_OK(hk_ckpt_open(f->dir, &c)); /* the folder */
    check_good(c);
    assert_string_equal(hk_ckpt_path(c), f->dir);
    hk_ckpt_close(c);
    EXPECT_OK(hk_ckpt_open(in_dir(f, "model.safetensors"), &c)); /* the file itself */
    check_good(c);
    hk_ckpt_close(c);
    st_write(in_dir(f, "other.safetensors"), "{}", NULL, 0, 0); /* no tensors at all */
    EXPECT_OK(hk_ckpt_open(in_dir(f, "other.safetensors"), &c));
    assert_int_equal(hk_ckpt_count(c), 0);
    hk_ckpt_close(c);
}

static void test_f32_errors(void **state) {
    fixture *f = *state;
    uint8_t data[64];
    const size_t n = good_data(data);
    st_write(in_dir(f, "model.safetensors"), GOOD_HEADER, data, n, 0);
    hk_ckpt *c;
    EXPECT_OK(hk_ckpt_open(f->dir, &c));
    const float *p = (const float *)1;
    expect_error(hk_ckpt_f32(c, "a", 2, (const int64_t[]){3, 2}, &p), HK_ERR_SHAPE,
                 "model.safetensors: tensor 'a' has shape [2, 3], expected [3, 2]", NULL, NULL);
    assert_null(p);
    expect_error(hk_ckpt_f32(c, "a", 1, (const int64_t[]){6}, &p), HK_ERR_SHAPE, "'a'",
                 "[2, 3], expected [6]", NULL);
    expect_error(hk_ckpt_f32(c, "i", 1, (const int64_t[]){2}, &p), HK_ERR_SHAPE, "'i'", "I64",
                 "model.safetensors");
    expect_error(hk_ckpt_f32(c, "model.layers.0.mlp.up_proj.weight", 1, (const int64_t[]){2}, &p),
                 HK_ERR_NOT_FOUND, "'model.layers.0.mlp.up_proj.weight'", f->dir, "not found");
    p = (const float *)1;
    EXPECT_OK(hk_ckpt_f32_opt(c, "absent", 1, (const int64_t[]){2}, &p));
    assert_null(p);
    EXPECT_OK(hk_ckpt_f32_opt(c, "b", 1, (const int64_t[]){4}, &p));
    assert_non_null(p);
    expect_error(hk_ckpt_f32_opt(c, "b", 1, (const int64_t[]){5}, &p), HK_ERR_SHAPE, "'b'", NULL,
                 NULL);
    expect_error(hk_ckpt_f32(c, "a", 9, (const int64_t[9]){0}, &p), HK_ERR_INVALID_ARG, NULL,
                 NULL, NULL);
    float *z = hk_ckpt_alloc_f32(c, 1000); /* [1000] */
    assert_non_null(z);
    for (int i = 0; i < 1000; i++) assert_true(z[i] == 0.0f);
    assert_null(hk_ckpt_alloc_f32(c, SIZE_MAX / 2));
    hk_ckpt_close(c);
}

/* Data area at an odd address: F32 data cannot be viewed in place and is copied. */
static void test_unaligned_f32(void **state) {
    fixture *f = *state;
    const char *hdr =
        "{\"x\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
        " \"w\": {\"dtype\": \"F32\", \"shape\": [6], \"data_offsets\": [1, 25]}}";
    uint8_t data[25];
    data[0] = 9;
    memcpy(data + 1, F32_VALS, 24);
    for (unsigned mod = 0; mod < 8; mod++) {
        st_write(in_dir(f, "model.safetensors"), hdr, data, sizeof data, mod);
        hk_ckpt *c;
        EXPECT_OK(hk_ckpt_open(f->dir, &c));
        const float *p;
        EXPECT_OK(hk_ckpt_f32(c, "w", 1, (const int64_t[]){6}, &p));
        assert_int_equal((uintptr_t)p % 4, 0);
        assert_memory_equal(p, F32_VALS, sizeof F32_VALS);
        const bool aligned = (uintptr_t)hk_ckpt_find(c, "w")->data % 4 == 0;
        assert_true(aligned == ((mod + 1) % 4 == 0));
        if (!aligned) assert_ptr_not_equal(p, hk_ckpt_find(c, "w")->data);
        hk_ckpt_close(c);
    }
}

/* ---- sharded sets ------------------------------------------------------- */

static void write_two_shards(const fixture *f) {
    const float a[4] = {1, 2, 3, 4}, b[2] = {-1, -2};
    st_write(in_dir(f, "model-00001-of-00002.safetensors"),
             "{\"model.embed.weight\": {\"dtype\": \"F32\", \"shape\": [2, 2], "
             "\"data_offsets\": [0, 16]}}", a, sizeof a, 0);
    st_write(in_dir(f, "model-00002-of-00002.safetensors"),
             "{\"lm_head.weight\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"extra\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 8]}}",
             b, sizeof b, 0);
}

static const char *INDEX_OK =
    "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {"
    "\"model.embed.weight\": \"model-00001-of-00002.safetensors\","
    "\"lm_head.weight\": \"model-00002-of-00002.safetensors\"}}";

static void test_sharded(void **state) {
    fixture *f = *state;
    write_two_shards(f);
    write_text(in_dir(f, "model.safetensors.index.json"), INDEX_OK);
    /* a stray single file must not win over the index */
    st_write(in_dir(f, "model.safetensors"), "{}", NULL, 0, 0);
    hk_ckpt *c;
    EXPECT_OK(hk_ckpt_open(f->dir, &c));
    assert_int_equal(hk_ckpt_count(c), 3);
    const float *p;
    EXPECT_OK(hk_ckpt_f32(c, "model.embed.weight", 2, (const int64_t[]){2, 2}, &p));
    assert_true(p[0] == 1 && p[3] == 4);
    EXPECT_OK(hk_ckpt_f32(c, "lm_head.weight", 1, (const int64_t[]){2}, &p));
    assert_true(p[0] == -1 && p[1] == -2);
    assert_non_null(strstr(hk_ckpt_find(c, "lm_head.weight")->path, "model-00002-of-00002"));
    assert_non_null(strstr(hk_ckpt_find(c, "model.embed.weight")->path, "model-00001-of-00002"));
    expect_error(hk_ckpt_f32(c, "lm_head.weight", 1, (const int64_t[]){3}, &p), HK_ERR_SHAPE,
                 "model-00002-of-00002.safetensors", "'lm_head.weight'", NULL);
    hk_ckpt_close(c);
    EXPECT_OK(hk_ckpt_open(in_dir(f, "model.safetensors.index.json"), &c)); /* index path */
    assert_int_equal(hk_ckpt_count(c), 3);
    hk_ckpt_close(c);
}

static void test_sharded_errors(void **state) {
    fixture *f = *state;
    write_two_shards(f);
    const char *index = in_dir(f, "model.safetensors.index.json");
    hk_ckpt *c;

    write_text(index, "{\"weight_map\": {\"model.embed.weight\": \"model-00001-of-00002.safetensors\","
                      " \"x\": \"model-00003-of-00003.safetensors\"}}");
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_NOT_FOUND, "model.safetensors.index.json",
                 "model-00003-of-00003.safetensors", NULL);

    write_text(index, "{\"weight_map\": {\"model.embed.weight\": \"model-00001-of-00002.safetensors\","
                      " \"ghost.weight\": \"model-00002-of-00002.safetensors\"}}");
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "'ghost.weight'",
                 "model-00002-of-00002.safetensors", "no such tensor");

    write_text(index, "{\"weight_map\": {\"lm_head.weight\": \"model-00001-of-00002.safetensors\","
                      " \"model.embed.weight\": \"model-00002-of-00002.safetensors\"}}");
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "'lm_head.weight'",
                 "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors");

    write_text(index, "{\"weight_map\": {\"a\": \"../model.safetensors\"}}");
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "'a'", "../model.safetensors", NULL);

    write_text(index, "{\"weight_map\": {\"a\": 3}}");
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "model.safetensors.index.json", "'a'",
                 "a number");

    write_text(index, "{\"weight_map\": {}}");
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "weight_map", "empty", NULL);

    write_text(index, "{\"metadata\": {}}");
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "model.safetensors.index.json",
                 "'weight_map' is missing", NULL);

    write_text(index, "{\"weight_map\": {\"a\": \"x\",}}");
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "model.safetensors.index.json",
                 "invalid JSON", "line 1");

    /* a broken shard: the message names the index, the shard and the tensor */
    write_text(index, INDEX_OK);
    st_write(in_dir(f, "model-00002-of-00002.safetensors"),
             "{\"lm_head.weight\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}",
             "12345678", 8, 0);
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "model-00002-of-00002.safetensors",
                 "'lm_head.weight'", "model.safetensors.index.json");

    /* the same tensor in two shards */
    const float b[2] = {-1, -2};
    st_write(in_dir(f, "model-00002-of-00002.safetensors"),
             "{\"model.embed.weight\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"lm_head.weight\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 8]}}",
             b, sizeof b, 0);
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_FORMAT, "'model.embed.weight'",
                 "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors");
}

static void test_open_errors(void **state) {
    fixture *f = *state;
    hk_ckpt *c;
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_NOT_FOUND, f->dir,
                 "model.safetensors.index.json", "model.safetensors");
    expect_error(hk_ckpt_open(in_dir(f, "nope"), &c), HK_ERR_NOT_FOUND, "nope", NULL, NULL);
    write_text(in_dir(f, "notes.txt"), "hi");
    expect_error(hk_ckpt_open(in_dir(f, "notes.txt"), &c), HK_ERR_INVALID_ARG, "notes.txt", NULL,
                 NULL);
    assert_int_equal(mkdir(in_dir(f, "model.safetensors"), 0700), 0); /* a folder, not a file */
    expect_error(hk_ckpt_open(f->dir, &c), HK_ERR_NOT_FOUND, "model.safetensors", NULL, NULL);
}

/* Hundreds of tensors: every one found by name, in name order. */
static void test_many_tensors(void **state) {
    fixture *f = *state;
    enum { N = 600 };
    size_t cap = (size_t)N * 120 + 16, k = 0;
    char *hdr = malloc(cap);
    assert_non_null(hdr);
    k += (size_t)snprintf(hdr + k, cap - k, "{");
    for (int i = 0; i < N; i++)
        k += (size_t)snprintf(hdr + k, cap - k,
                              "%s\"model.layers.%d.w\": {\"dtype\": \"F32\", \"shape\": [1], "
                              "\"data_offsets\": [%d, %d]}", i ? "," : "", i, 4 * i, 4 * i + 4);
    snprintf(hdr + k, cap - k, "}");
    float data[N];
    for (int i = 0; i < N; i++) data[i] = (float)i;
    st_write(in_dir(f, "model.safetensors"), hdr, data, sizeof data, 0);
    free(hdr);
    hk_ckpt *c;
    EXPECT_OK(hk_ckpt_open(f->dir, &c));
    assert_int_equal(hk_ckpt_count(c), N);
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof name, "model.layers.%d.w", i);
        const float *p;
        EXPECT_OK(hk_ckpt_f32(c, name, 1, (const int64_t[]){1}, &p));
        assert_true(*p == (float)i);
    }
    for (size_t i = 1; i < hk_ckpt_count(c); i++)
        assert_true(strcmp(hk_ckpt_at(c, i - 1)->name, hk_ckpt_at(c, i)->name) < 0);
    hk_ckpt_close(c);
}

/* hk_st_parse on an in-memory image; every prefix of a good image fails cleanly. */
static void test_parse_memory(void **state) {
    (void)state;
    uint8_t data[64];
    const size_t n = good_data(data);
    size_t size;
    uint8_t *img = st_image(GOOD_HEADER, data, n, 0, &size);
    hk_st_tensor *t;
    size_t nt;
    EXPECT_OK(hk_st_parse("mem.safetensors", img, size, &t, &nt));
    assert_int_equal(nt, 5);
    assert_string_equal(t[0].path, "mem.safetensors");
    hk_st_tensors_free(t, nt);
    for (size_t cut = 0; cut < size; cut++) {
        uint8_t *part = malloc(cut ? cut : 1); /* exact size, so ASan sees any over-read */
        assert_non_null(part);
        memcpy(part, img, cut);
        t = (hk_st_tensor *)1;
        const hk_status st = hk_st_parse("cut.safetensors", part, cut, &t, &nt);
        assert_int_not_equal(st, HK_OK);
        assert_null(t);
        assert_non_null(strstr(hk_last_error(), "cut.safetensors"));
        free(part);
    }
    free(img);
    expect_error(hk_st_parse("x", NULL, 0, &t, &nt), HK_ERR_FORMAT, "too short", NULL, NULL);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_short_file),     T(test_header_length),   T(test_header_not_json),
        T(test_entry_fields),   T(test_bad_dims),        T(test_bad_offsets),
        T(test_unsupported_dtype), T(test_single_file),  T(test_f32_errors),
        T(test_unaligned_f32),  T(test_sharded),         T(test_sharded_errors),
        T(test_open_errors),    T(test_many_tensors),    T(test_parse_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

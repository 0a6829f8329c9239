/* Fuzz target for the safetensors header parser.
 *
 * With -DHK_LIBFUZZER (clang, -fsanitize=fuzzer) this is a libFuzzer target. Otherwise main()
 * replays files and folders named on the command line, plus a built-in corpus of tricky images,
 * their truncations and a fixed number of deterministic mutations, so every build exercises the
 * entry point (under ASan/UBSan in the sanitizer builds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checkpoint.h"
#include "core/dtype.h"
#include "core/error.h"

/* Harness invariant broken: report and crash so the fuzzer keeps the input. */
static void fail(const char *what) {
    fprintf(stderr, "fuzz_safetensors: invariant violated: %s (last error: %s)\n", what,
            hk_last_error());
    abort();
}

static void check_tensor(const hk_st_tensor *t, const uint8_t *data, size_t size) {
    const uint8_t *p = t->data;
    if (!t->name || t->ndim < 0 || t->ndim > HK_ST_MAX_DIMS) fail("bad name/ndim");
    if (p < data || p > data + size || t->nbytes > (size_t)(data + size - p))
        fail("tensor data outside the file");
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0) fail("negative dim");
        numel *= (uint64_t)t->shape[d]; /* cannot wrap: the parser checked the byte count */
    }
    if (numel * hk_dtype_size(t->dtype) != t->nbytes) fail("nbytes != numel * dtype size");
    /* Touch the bytes (ASan sees any stray read) and run the conversions on a prefix. */
    float buf[64];
    const size_t es = hk_dtype_size(t->dtype);
    const size_t n = t->nbytes / es < 64 ? t->nbytes / es : 64;
    hk_convert_to_f32(t->dtype, p, buf, n);
    if (t->nbytes) {
        volatile uint8_t last = p[t->nbytes - 1];
        (void)last;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hk_st_tensor *t = (hk_st_tensor *)&t; /* must be reset by the parser */
    size_t n = 12345;
    hk_error_clear();
    const hk_status st = hk_st_parse("fuzz.safetensors", data, size, &t, &n);
    if (st != HK_OK) {
        if (t != NULL || n != 0) fail("outputs not reset on error");
        if (strstr(hk_last_error(), "fuzz.safetensors") == NULL) fail("message lacks the file");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        check_tensor(&t[i], data, size);
        if (i && strcmp(t[i - 1].name, t[i].name) >= 0) fail("tensors not sorted by name");
    }
    hk_st_tensors_free(t, n);
    return 0;
}

#ifndef HK_LIBFUZZER
#include "fuzz_replay.h"

/* Tricky headers; each becomes an image whose data area holds `data` zero bytes. */
static const struct {
    const char *header;
    size_t data;
} SEEDS[] = {
    {"{}", 0},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
     "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},"
     "\"__metadata__\":{\"format\":\"pt\"}}", 22},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}", 2},
    {"{\"z\":{\"dtype\":\"U8\",\"shape\":[0,4],\"data_offsets\":[0,0]}}", 0},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1152921504606846976,16],\"data_offsets\":[0,0]}}", 0},
    {"{\"a\":{\"dtype\":\"I64\",\"shape\":[9007199254740993],\"data_offsets\":[0,8]}}", 8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551615,4]}}", 4},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 4},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e400],\"data_offsets\":[0,4]}}", 4},
    {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8},
    {"{\"a\":{\"dtype\":null,\"shape\":null,\"data_offsets\":null}}", 0},
    {"{\"\\u0000\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1},
    {"{\"__metadata__\":{\"k\":[]}}", 0},
    {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 0},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}   \x01", 4},
    {"\"just a string\"", 0},
};

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_rand(void) { /* xorshift64 */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint8_t *image(const char *header, size_t ndata, size_t *size) {
    const size_t hl = strlen(header);
    uint8_t *img = calloc(8 + hl + ndata + 1, 1);
    if (!img) fail("out of memory");
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, header, hl);
    *size = 8 + hl + ndata;
    return img;
}

/* Each seed whole, every truncation, and byte-level mutations of it. */
static size_t run_builtin(void) {
    size_t count = 0;
    static const uint8_t raw[][8] = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
                                     {0, 0, 0, 0, 0, 0, 0, 0x80},
                                     {2, 0, 0, 0, 0, 0, 0, 0}};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++, count++) fuzz_run_copy(raw[i], 8);
    for (size_t s = 0; s < sizeof SEEDS / sizeof SEEDS[0]; s++) {
        size_t size;
        uint8_t *img = image(SEEDS[s].header, SEEDS[s].data, &size);
        for (size_t cut = 0; cut <= size; cut++, count++) fuzz_run_copy(img, cut);
        uint8_t *mut = malloc(size);
        if (!mut) fail("out of memory");
        for (int m = 0; m < 400; m++, count++) {
            memcpy(mut, img, size);
            const int edits = 1 + (int)(next_rand() % 4);
            for (int e = 0; e < edits; e++) {
                const size_t at = next_rand() % size;
                mut[at] = (next_rand() & 1) ? (uint8_t)next_rand() : (uint8_t)"{}[]\",:-0129e."[next_rand() % 14];
            }
            fuzz_run_copy(mut, size);
        }
        free(mut);
        free(img);
    }
    return count;
}

int main(int argc, char **argv) {
    size_t count = run_builtin();
    for (int i = 1; i < argc; i++)
        count += fuzz_replay_path("fuzz_safetensors", argv[i], fuzz_run_copy);
    printf("fuzz_safetensors replay: %zu inputs, no crash\n", count);
    return 0;
}
#endif

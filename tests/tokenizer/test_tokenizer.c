/* Tokenizers against Hugging Face tokenizers: ids and decoded text on the 2,100-sample corpus
 * of tests/fixtures/tokenizers for every kind trained there, and for the real tokenizers
 * (MiniLM from the model cache) when present. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookformer.h"
#include "tok_ref.h"

static tok_blob corpus;

static int setup(void **state) {
    (void)state;
    if (!tok_blob_load("corpus.bin.gz", &corpus)) fail_msg("tokenizers/corpus.bin.gz missing");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tok_blob_free(&corpus);
    return 0;
}

static hk_tokenizer *load(const char *path) {
    hk_tokenizer *t = NULL;
    const hk_status s = hk_tokenizer_load(path, &t);
    if (s) fail_msg("%s: %s", path, hk_last_error());
    return t;
}

/* Every sample's ids equal the reference; every decoded reference equals our decode. */
static void check_against(const hk_tokenizer *t, const char *name) {
    char file[256];
    tok_blob ref, dec;
    snprintf(file, sizeof file, "%s.ids.gz", name);
    if (!tok_blob_load(file, &ref)) fail_msg("%s missing", file);
    snprintf(file, sizeof file, "%s.dec.gz", name);
    if (!tok_blob_load(file, &dec)) fail_msg("%s missing", file);
    assert_int_equal(ref.n, corpus.n);
    size_t bad = 0, bad_dec = 0;
    for (size_t i = 0; i < corpus.n; i++) {
        size_t len, nref;
        const unsigned char *text = tok_blob_item(&corpus, i, &len);
        tok_blob_item(&ref, i, &nref);
        int32_t *ids = NULL;
        size_t n = 0;
        if (hk_tokenizer_encode(t, (const char *)text, len, HK_TOK_ADD_SPECIAL, &ids, &n))
            fail_msg("%s sample %zu: %s", name, i, hk_last_error());
        bool same = n == nref;
        for (size_t j = 0; same && j < n; j++) same = ids[j] == tok_blob_id(&ref, i, j);
        if (!same && bad++ < 4) {
            size_t j = 0;
            while (j < n && j < nref && ids[j] == tok_blob_id(&ref, i, j)) j++;
            print_message("%s sample %zu: \"%s\"\n  %zu ids vs reference %zu, first difference "
                          "at %zu: got %d, want %d\n",
                          name, i, tok_escape(text, len), n, nref, j, j < n ? ids[j] : -1,
                          j < nref ? tok_blob_id(&ref, i, j) : -1);
        }
        if (i < dec.n && same) {
            size_t want_len, got_len;
            const unsigned char *want = tok_blob_item(&dec, i, &want_len);
            char *got = NULL;
            if (hk_tokenizer_decode(t, ids, n, 0, &got, &got_len))
                fail_msg("%s sample %zu decode: %s", name, i, hk_last_error());
            if ((got_len != want_len || memcmp(got, want, want_len) != 0) && bad_dec++ < 4) {
                print_message("%s sample %zu decode:\n  got  \"%s\"\n", name, i,
                              tok_escape(got, got_len));
                print_message("  want \"%s\"\n", tok_escape(want, want_len));
            }
            hk_free(got);
        }
        hk_free(ids);
    }
    if (bad || bad_dec)
        print_message("%s: %zu of %zu samples differ in ids, %zu of %zu in decoded text\n", name,
                      bad, corpus.n, bad_dec, dec.n);
    tok_blob_free(&ref);
    tok_blob_free(&dec);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_dec, 0);
}

static void test_kind(void **state) {
    const char *name = *state;
    char path[1024], file[256];
    snprintf(file, sizeof file, "%s.json", name);
    tok_fixture(file, path, sizeof path);
    hk_tokenizer *t = load(path);
    check_against(t, name);
    hk_tokenizer_free(t);
}

/* Real tokenizers live in the model cache ($HK_MODEL_CACHE, default ~/.cache/hookformer). */
static bool cache_file(const char *rel, char *out, size_t cap) {
    const char *c = getenv("HK_MODEL_CACHE");
    const char *home = getenv("HOME");
    if (c && *c)
        snprintf(out, cap, "%s/%s", c, rel);
    else
        snprintf(out, cap, "%s/.cache/hookformer/%s", home ? home : ".", rel);
    FILE *f = fopen(out, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void test_real_minilm(void **state) {
    (void)state;
    char path[1024];
    if (!cache_file("minilm/tokenizer.json", path, sizeof path)) {
        print_message("skipped: %s not found (scripts/fetch_models.sh fetches it)\n", path);
        skip();
    }
    hk_tokenizer *t = load(path);
    assert_int_equal(hk_tokenizer_vocab_size(t), 30522);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_UNK), 100);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_PAD), 0);
    check_against(t, "minilm");
    hk_tokenizer_free(t);
}

/* SmolLM2's tokenizer as transformers builds it from the GGUF metadata (written to the cache
 * by make_tokenizer_fixtures.py --real); the GGUF reader's own tokenizer is checked against
 * the same smollm2.ids.gz where the GGUF loader lands. */
static void test_real_smollm2_hf(void **state) {
    (void)state;
    char path[1024];
    if (!cache_file("smollm2/tokenizer.hf.json", path, sizeof path)) {
        print_message("skipped: %s not found (make_tokenizer_fixtures.py --real writes it)\n",
                      path);
        skip();
    }
    hk_tokenizer *t = load(path);
    check_against(t, "smollm2");
    hk_tokenizer_free(t);
}

/* SmolLM2's tokenizer as the GGUF reader builds it from the metadata (tokenizer.ggml.*, the
 * "smollm" pre-tokenizer: digits one by one, then GPT-2's regex), against Hugging Face with
 * SmolLM2's Digits + ByteLevel pre-tokenizer on the same vocabulary (smollm2_digits). */
static void test_real_smollm2_gguf(void **state) {
    (void)state;
    char path[1024];
    if (!cache_file("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", path, sizeof path)) {
        print_message("skipped: %s not found (scripts/fetch_models.sh fetches it)\n", path);
        skip();
    }
    hk_model *m = NULL;
    if (hk_model_load(path, &m)) fail_msg("%s: %s", path, hk_last_error());
    const hk_tokenizer *t = hk_model_tokenizer(m);
    assert_non_null(t);
    assert_int_equal(hk_tokenizer_vocab_size(t), 49152);
    check_against(t, "smollm2_digits");
    hk_model_free(m);
}

int main(void) {
    static const char *kinds[] = {"bpe_gpt2",       "bpe_llama3",          "bpe_qwen2",
                                  "bpe_smollm2",    "spm_llama2",          "spm_mistral",
                                  "spm_metaspace_split", "wordpiece_bert", "wordpiece_cased_nfkc",
                                  "bpe_nfd_lower"};
    struct CMUnitTest tests[16];
    size_t n = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        tests[n++] = (struct CMUnitTest){kinds[i], test_kind, NULL, NULL, (void *)kinds[i]};
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_real_minilm);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_real_smollm2_hf);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_real_smollm2_gguf);
    return _cmocka_run_group_tests("tokenizer_reference", tests, n, setup, teardown);
}

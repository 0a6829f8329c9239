/* Tokenizers from GGUF metadata (core/gguf_tokenizer.c): SmolLM2's (from the model cache)
 * against Hugging Face on the 2,100-sample corpus (make_smollm2_tokenizer_references.py) and
 * on the 5 reference prompts of tests/fixtures/smollm2; a tiny vocabulary built in memory
 * (special tokens, BOS post-processor, respelled tokens); and every malformed or unsupported
 * tokenizer metadata kind as a clear error. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../core/gguf_image.h"
#include "core/checkpoint.h"
#include "core/gguf.h"
#include "core/gguf_tokenizer.h"
#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"
#include "tok_ref.h"

static bool smollm2_path(char *out, size_t cap) {
    const char *c = getenv("HK_MODEL_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (c && *c)
        snprintf(out, cap, "%s/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", c);
    else if (xdg && *xdg)
        snprintf(out, cap, "%s/hookformer/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", xdg);
    else
        snprintf(out, cap, "%s/.cache/hookformer/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                 home ? home : ".");
    return access(out, R_OK) == 0;
}

static void test_smollm2(void **state) {
    (void)state;
    char path[1024];
    if (!smollm2_path(path, sizeof path)) {
        print_message("SKIP: %s not found (run scripts/fetch_models.sh smollm2)\n", path);
        skip();
    }
    hk_ckpt *ck = NULL;
    EXPECT_OK(hk_ckpt_open(path, &ck));
    hk_tokenizer *t = NULL;
    EXPECT_OK(hk_gguf_tokenizer(hk_ckpt_gguf(ck), &t));
    assert_int_equal(hk_tokenizer_vocab_size(t), 49152);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_BOS), 1);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_EOS), 2);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_UNK), 0);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_PAD), 2);
    assert_false(hk_tokenizer_adds_bos(t));

    /* the corpus: ids and decoded text */
    tok_blob corpus, ref, dec;
    if (!tok_blob_load("corpus.bin.gz", &corpus) || !tok_blob_load("smollm2_gguf.ids.gz", &ref) ||
        !tok_blob_load("smollm2_gguf.dec.gz", &dec))
        fail_msg("tokenizer fixtures missing");
    size_t bad = 0, bad_dec = 0, n_ids = 0;
    for (size_t i = 0; i < corpus.n; i++) {
        size_t len, nref;
        const unsigned char *text = tok_blob_item(&corpus, i, &len);
        tok_blob_item(&ref, i, &nref);
        int32_t *ids = NULL;
        size_t n = 0;
        EXPECT_OK(hk_tokenizer_encode(t, (const char *)text, len, HK_TOK_ADD_SPECIAL, &ids, &n));
        bool same = n == nref;
        for (size_t j = 0; same && j < n; j++) same = ids[j] == tok_blob_id(&ref, i, j);
        if (!same && bad++ < 4)
            print_message("sample %zu \"%s\": %zu ids, reference %zu\n", i, tok_escape(text, len),
                          n, nref);
        if (same && i < dec.n) {
            size_t want_len, got_len;
            const unsigned char *want = tok_blob_item(&dec, i, &want_len);
            char *got = NULL;
            EXPECT_OK(hk_tokenizer_decode(t, ids, n, 0, &got, &got_len));
            if (got_len != want_len || memcmp(got, want, want_len) != 0) bad_dec++;
            hk_free(got);
        }
        n_ids += n;
        hk_free(ids);
    }
    print_message("smollm2 (GGUF metadata): %zu samples, %zu ids; %zu differ, %zu decodes differ\n",
                  corpus.n, n_ids, bad, bad_dec);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_dec, 0);
    tok_blob_free(&corpus);
    tok_blob_free(&ref);
    tok_blob_free(&dec);

    /* the 5 prompts of the logits references (transformers' ids) */
    hk_ckpt *r = fixture_ckpt("smollm2", "reference.safetensors");
    const hk_st_tensor *pb = hk_ckpt_find(r, "prompt_bytes"), *pid = hk_ckpt_find(r, "input_ids");
    const hk_st_tensor *pl = hk_ckpt_find(r, "lengths");
    assert_non_null(pb);
    for (int64_t b = 0; b < pb->shape[0]; b++) {
        const char *text = (const char *)pb->data + b * pb->shape[1];
        int64_t len;
        memcpy(&len, (const char *)pl->data + 8 * b, 8);
        int32_t *ids = NULL;
        size_t n = 0;
        EXPECT_OK(hk_tokenizer_encode(t, text, strnlen(text, (size_t)pb->shape[1]),
                                      HK_TOK_ADD_SPECIAL, &ids, &n));
        assert_int_equal(n, len);
        for (size_t j = 0; j < n; j++) {
            int64_t want;
            memcpy(&want, (const char *)pid->data + 8 * (b * pid->shape[1] + (int64_t)j), 8);
            assert_int_equal(ids[j], want);
        }
        hk_free(ids);
    }
    hk_ckpt_close(r);
    hk_tokenizer_free(t);
    hk_ckpt_close(ck);
}

/* A tiny byte-level vocabulary; `defect` breaks one thing (0: none). */
enum { OK_TOK, MODEL_UNKNOWN, PRE_UNKNOWN, TYPES_SHORT, NO_MERGES, BOS_PAST_END, MERGE_NO_SPACE };

static gimg tiny(int defect) {
    gimg g = {0};
    const int n_kv = defect == NO_MERGES ? 6 : 7;
    gi_header(&g, 3, 0, (uint64_t)n_kv);
    gi_kv_str(&g, "tokenizer.ggml.model", defect == MODEL_UNKNOWN ? "rwkv" : "gpt2");
    gi_kv_str(&g, "tokenizer.ggml.pre", defect == PRE_UNKNOWN ? "klingon" : "gpt-2");
    /* "<s>", "a", "b", "ab", "\xc4\xa0" (Ġ, a space), "\n" stored raw (respelled "Ċ") */
    static const char *const toks[] = {"<s>", "a", "b", "ab", "\xc4\xa0", "\n"};
    gi_str(&g, "tokenizer.ggml.tokens");
    gi_u32(&g, HK_GGUF_ARRAY);
    gi_u32(&g, HK_GGUF_STRING);
    gi_u64(&g, 6);
    for (int i = 0; i < 6; i++) gi_str(&g, toks[i]);
    gi_str(&g, "tokenizer.ggml.token_type");
    gi_u32(&g, HK_GGUF_ARRAY);
    gi_u32(&g, HK_GGUF_I32);
    const int nt = defect == TYPES_SHORT ? 5 : 6;
    gi_u64(&g, (uint64_t)nt);
    for (int i = 0; i < nt; i++) gi_u32(&g, i == 0 ? 3 : 1);
    if (defect != NO_MERGES) {
        gi_str(&g, "tokenizer.ggml.merges");
        gi_u32(&g, HK_GGUF_ARRAY);
        gi_u32(&g, HK_GGUF_STRING);
        gi_u64(&g, 1);
        gi_str(&g, defect == MERGE_NO_SPACE ? "ab" : "a b");
    }
    gi_kv_u32(&g, "tokenizer.ggml.bos_token_id", defect == BOS_PAST_END ? 6 : 0);
    gi_str(&g, "tokenizer.ggml.add_bos_token");
    gi_u32(&g, HK_GGUF_BOOL);
    gi_u8(&g, 1);
    return g;
}

static hk_status tiny_tokenizer(int defect, hk_tokenizer **t) {
    gimg img = tiny(defect);
    hk_gguf *g = NULL;
    EXPECT_OK(hk_gguf_parse("tiny.gguf", img.p, img.n, &g));
    const hk_status st = hk_gguf_tokenizer(g, t);
    hk_gguf_free(g);
    free(img.p);
    return st;
}

static void test_tiny(void **state) {
    (void)state;
    hk_tokenizer *t = NULL;
    EXPECT_OK(tiny_tokenizer(OK_TOK, &t));
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_BOS), 0);
    assert_true(hk_tokenizer_adds_bos(t));
    int32_t *ids = NULL;
    size_t n = 0;
    /* BOS from the post-processor, "<s>" matched whole as a special token, "ab" merged, " "
     * as Ġ */
    EXPECT_OK(hk_tokenizer_encode(t, "<s>ab a", 7, HK_TOK_ADD_SPECIAL, &ids, &n));
    const int32_t want[] = {0, 0, 3, 4, 1};
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
    char *text = NULL;
    EXPECT_OK(hk_tokenizer_decode(t, ids, n, HK_TOK_SKIP_SPECIAL, &text, NULL));
    assert_string_equal(text, "ab a");
    hk_free(text);
    /* "\n", stored raw, is in the vocabulary spelled byte-level ("Ċ"), as transformers' GGUF
     * loader spells tokens outside the byte-level alphabet */
    assert_int_equal(hk_tokenizer_token_to_id(t, "\xc4\x8a", 2), 5);
    int32_t nl = 5;
    EXPECT_OK(hk_tokenizer_decode(t, &nl, 1, 0, &text, NULL));
    assert_string_equal(text, "\n");
    hk_free(text);
    hk_free(ids);
    hk_tokenizer_free(t);
}

static void test_tiny_errors(void **state) {
    (void)state;
    static const struct {
        int defect;
        hk_status st;
        const char *n1, *n2;
    } cases[] = {
        {MODEL_UNKNOWN, HK_ERR_UNSUPPORTED, "tokenizer.ggml.model \"rwkv\"", "\"llama\""},
        {PRE_UNKNOWN, HK_ERR_UNSUPPORTED, "tokenizer.ggml.pre \"klingon\"", NULL},
        {TYPES_SHORT, HK_ERR_FORMAT, "tokenizer.ggml.token_type", "6 entries"},
        {NO_MERGES, HK_ERR_NOT_FOUND, "tokenizer.ggml.merges", "missing"},
        {BOS_PAST_END, HK_ERR_FORMAT, "tokenizer.ggml.bos_token_id", "past the 6 tokens"},
        {MERGE_NO_SPACE, HK_ERR_FORMAT, "tokenizer.ggml.merges[0]", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hk_tokenizer *t = (hk_tokenizer *)&t;
        expect_error(tiny_tokenizer(cases[i].defect, &t), cases[i].st, "tiny.gguf", cases[i].n1,
                     cases[i].n2);
        assert_null(t);
    }
}

/* SentencePiece vocabularies (tokenizer.ggml.model "llama") in the three shapes transformers
 * builds (llama: Metaspace; phi3: Prepend + Replace; gemma2: Replace + Split, merges by
 * position): ids and decoded text equal transformers' GGUF tokenizer's (gguf/spm_reference.json,
 * make_gguf_fixtures.py). */
static void test_sentencepiece(void **state) {
    (void)state;
    char path[1024];
    fixture_path("gguf/spm_reference.json", path, sizeof path);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *ref = cJSON_Parse(buf);
    assert_non_null(ref);
    int checked = 0;
    for (cJSON *file = ref->child; file; file = file->next) {
        char name[256];
        snprintf(name, sizeof name, "gguf/%s", file->string);
        fixture_path(name, path, sizeof path);
        hk_ckpt *ck = NULL;
        EXPECT_OK(hk_ckpt_open(path, &ck));
        hk_tokenizer *t = NULL;
        EXPECT_OK(hk_gguf_tokenizer(hk_ckpt_gguf(ck), &t));
        for (cJSON *c = file->child; c; c = c->next) {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            const cJSON *want = cJSON_GetObjectItem(c, "ids");
            int32_t *ids = NULL;
            size_t m = 0;
            EXPECT_OK(hk_tokenizer_encode(t, text, strlen(text), HK_TOK_ADD_SPECIAL, &ids, &m));
            bool same = m == (size_t)cJSON_GetArraySize(want);
            for (size_t i = 0; same && i < m; i++)
                same = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
            if (!same) {
                char got[512] = "";
                for (size_t i = 0; i < m; i++)
                    snprintf(got + strlen(got), sizeof got - strlen(got), " %d", ids[i]);
                fail_msg("%s: \"%s\" -> [%s ] differs from transformers", file->string, text, got);
            }
            char *dec = NULL;
            EXPECT_OK(hk_tokenizer_decode(t, ids, m, HK_TOK_SKIP_SPECIAL, &dec, NULL));
            /* decoded text equals transformers', except where transformers' decode does not
             * give the input back and ours does (gemma2's duplicate spelling of "  ": it
             * drops the leading spaces of "  leading spaces") */
            const char *hf = cJSON_GetObjectItem(c, "decoded")->valuestring;
            if (strcmp(dec, hf) != 0) {
                print_message("%s: \"%s\" decodes to \"%s\" here, \"%s\" in transformers\n",
                              file->string, text, dec, hf);
                assert_string_equal(dec, text);
            }
            hk_free(dec);
            hk_free(ids);
            checked++;
        }
        hk_tokenizer_free(t);
        hk_ckpt_close(ck);
    }
    print_message("%d SentencePiece encodings equal transformers'\n", checked);
    assert_true(checked >= 24);
    cJSON_Delete(ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny),
        cmocka_unit_test(test_tiny_errors),
        cmocka_unit_test(test_sentencepiece),
        cmocka_unit_test(test_smollm2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

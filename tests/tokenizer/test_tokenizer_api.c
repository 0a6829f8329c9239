/* The tokenizer API beyond reference ids: UTF-8 repair, special tokens, display strings,
 * decode flags, malformed tokenizer.json, both merges spellings, the model's tokenizer and
 * TransformerLens's BOS rule, and random bytes into encode. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/utf8.h"
#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"
#include "tok_ref.h"

static hk_tokenizer *fixture_tok(const char *name) {
    char path[1024], file[256];
    snprintf(file, sizeof file, "%s.json", name);
    tok_fixture(file, path, sizeof path);
    hk_tokenizer *t = NULL;
    if (hk_tokenizer_load(path, &t)) fail_msg("%s: %s", path, hk_last_error());
    return t;
}

static size_t encode(const hk_tokenizer *t, const char *s, size_t n, unsigned flags,
                     int32_t **ids) {
    size_t k;
    if (hk_tokenizer_encode(t, s, n, flags, ids, &k)) fail_msg("encode: %s", hk_last_error());
    return k;
}

/* Python's bytes.decode("utf-8", errors="replace"), re-encoded (computed with CPython). */
static void test_utf8_repair_matches_python(void **state) {
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *want;
        size_t wn;
    } cases[] = {
        {"\x61\x80\x62", 3, "\x61\xef\xbf\xbd\x62", 5},
        {"\xc3", 1, "\xef\xbf\xbd", 3},
        {"\xe2\x82", 2, "\xef\xbf\xbd", 3},
        {"\xe2\x82\x78", 3, "\xef\xbf\xbd\x78", 4},
        {"\xf0\x9f\x98", 3, "\xef\xbf\xbd", 3},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"\xe0\x80\xaf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 12},
        {"\xf5\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"\xff\xfe", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80", 4},
        {"\xe0\xa0", 2, "\xef\xbf\xbd", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[64];
        assert_int_equal(hk_utf8_repaired_len(cases[i].in, cases[i].n), cases[i].wn);
        const size_t n = hk_utf8_repair(cases[i].in, cases[i].n, out);
        assert_int_equal(n, cases[i].wn);
        assert_memory_equal(out, cases[i].want, n);
        assert_int_equal(hk_utf8_is_valid(cases[i].in, cases[i].n), i == 11);
    }
    /* encode(invalid) == encode(repaired) */
    hk_tokenizer *t = fixture_tok("bpe_gpt2");
    const char bad[] = "caf\xc3 \xed\xa0\x80 ok\xff";
    char fixed[64];
    const size_t fn = hk_utf8_repair(bad, sizeof bad - 1, fixed);
    int32_t *a, *b;
    const size_t na = encode(t, bad, sizeof bad - 1, 0, &a), nb = encode(t, fixed, fn, 0, &b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    hk_free(a);
    hk_free(b);
    hk_tokenizer_free(t);
}

static void test_special_ids(void **state) {
    (void)state;
    hk_tokenizer *t = fixture_tok("bpe_gpt2");
    const int32_t eot = hk_tokenizer_token_to_id(t, "<|endoftext|>", 13);
    assert_true(eot >= 0);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_BOS), eot);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_EOS), eot);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_UNK), -1);
    assert_false(hk_tokenizer_adds_bos(t));
    expect_error(hk_tokenizer_set_special_id(t, HK_TOK_PAD, (int32_t)hk_tokenizer_vocab_size(t)),
                 HK_ERR_INVALID_ARG, "outside the vocabulary", NULL, NULL);
    assert_int_equal(hk_tokenizer_set_special_id(t, HK_TOK_PAD, 5), HK_OK);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_PAD), 5);
    hk_tokenizer_free(t);

    t = fixture_tok("spm_llama2");
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_UNK), 0);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_BOS), 1);
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_EOS), 2);
    assert_true(hk_tokenizer_adds_bos(t));
    int32_t *ids;
    size_t n = encode(t, "hi", 2, HK_TOK_ADD_SPECIAL, &ids);
    assert_true(n >= 2);
    assert_int_equal(ids[0], 1);
    hk_free(ids);
    n = encode(t, "hi", 2, 0, &ids);
    assert_true(n >= 1 && ids[0] != 1);
    hk_free(ids);
    hk_tokenizer_free(t);

    t = fixture_tok("wordpiece_bert");
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_BOS), -1); /* [CLS] is not a BOS */
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_UNK),
                     hk_tokenizer_token_to_id(t, "[UNK]", 5));
    assert_int_equal(hk_tokenizer_special_id(t, HK_TOK_PAD),
                     hk_tokenizer_token_to_id(t, "[PAD]", 5));
    n = encode(t, "hello", 5, HK_TOK_ADD_SPECIAL, &ids);
    assert_int_equal(ids[0], hk_tokenizer_token_to_id(t, "[CLS]", 5));
    assert_int_equal(ids[n - 1], hk_tokenizer_token_to_id(t, "[SEP]", 5));
    hk_free(ids);
    n = encode(t, "hello", 5, 0, &ids);
    assert_true(ids[0] != hk_tokenizer_token_to_id(t, "[CLS]", 5));
    hk_free(ids);
    hk_tokenizer_free(t);
}

static void test_display_and_decode(void **state) {
    (void)state;
    hk_tokenizer *t = fixture_tok("bpe_gpt2");
    char buf[64];
    const int32_t nl = hk_tokenizer_token_to_id(t, "\xc4\x8a", 2); /* "Ċ": the byte '\n' */
    assert_true(nl >= 0);
    assert_string_equal(hk_tokenizer_token_str(t, nl), "\xc4\x8a");
    assert_string_equal(hk_tokenizer_token_display(t, nl, buf, sizeof buf), "'\\n'");
    const int32_t sp = hk_tokenizer_token_to_id(t, "\xc4\xa0", 2); /* "Ġ": ' ' */
    assert_string_equal(hk_tokenizer_token_display(t, sp, buf, sizeof buf), "' '");
    const int32_t e2 = hk_tokenizer_token_to_id(t, "\xc3\xa2", 2); /* "â": the byte 0xE2 */
    assert_string_equal(hk_tokenizer_token_display(t, e2, buf, sizeof buf), "'\\xe2'");
    assert_string_equal(hk_tokenizer_token_display(t, -3, buf, sizeof buf), "<id -3?>");
    assert_null(hk_tokenizer_token_str(t, (int32_t)hk_tokenizer_vocab_size(t)));

    /* decode: specials kept or skipped; a bad id is an error */
    const char text[] = "Hello<|endoftext|> world";
    int32_t *ids;
    const size_t n = encode(t, text, sizeof text - 1, HK_TOK_ADD_SPECIAL, &ids);
    char *out;
    size_t len;
    assert_int_equal(hk_tokenizer_decode(t, ids, n, 0, &out, &len), HK_OK);
    assert_string_equal(out, text);
    assert_int_equal(len, sizeof text - 1);
    hk_free(out);
    assert_int_equal(hk_tokenizer_decode(t, ids, n, HK_TOK_SKIP_SPECIAL, &out, NULL), HK_OK);
    assert_string_equal(out, "Hello world");
    hk_free(out);
    ids[0] = 1 << 30;
    expect_error(hk_tokenizer_decode(t, ids, n, 0, &out, NULL), HK_ERR_INVALID_ARG,
                 "not in the vocabulary", NULL, NULL);
    hk_free(ids);
    /* empty input: no ids, no allocation needed */
    size_t k = 7;
    assert_int_equal(hk_tokenizer_encode(t, "", 0, HK_TOK_ADD_SPECIAL, &ids, &k), HK_OK);
    assert_int_equal(k, 0);
    hk_free(ids);
    hk_tokenizer_free(t);

    /* SentencePiece byte fallback shows the bytes of a partial character */
    t = fixture_tok("spm_llama2");
    const int32_t b = hk_tokenizer_token_to_id(t, "<0xE2>", 6);
    assert_true(b >= 0);
    assert_string_equal(hk_tokenizer_token_display(t, b, buf, sizeof buf), "'\\xe2'");
    hk_tokenizer_free(t);
}

#define MINI_VOCAB "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"c\": 3, \"abc\": 4}"

static void test_malformed_json(void **state) {
    (void)state;
    hk_tokenizer *t = NULL;
    static const struct {
        const char *json;
        hk_status want;
        const char *n1, *n2;
    } cases[] = {
        {"{}", HK_ERR_FORMAT, "'model'", NULL},
        {"[1]", HK_ERR_FORMAT, "top level", NULL},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", HK_ERR_UNSUPPORTED, "Unigram",
         "model.type"},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": [\"a z\"]}}", HK_ERR_FORMAT,
         "model.merges[0]", "\"z\""},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": [\"ab\"]}}", HK_ERR_FORMAT,
         "model.merges[0]", "two tokens"},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": [7]}}", HK_ERR_FORMAT,
         "model.merges[0]", NULL},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", HK_ERR_FORMAT,
         "model.vocab", "\"a\""},
        {"{\"model\": {\"type\": \"WordPiece\", " MINI_VOCAB "}}", HK_ERR_FORMAT, "unk_token",
         NULL},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": []}, \"pre_tokenizer\": "
         "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Fancy\"}]}}",
         HK_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[0]", "Fancy"},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": []}, \"pre_tokenizer\": "
         "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}}",
         HK_ERR_UNSUPPORTED, "PCRE2", "pre_tokenizer"},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": []}, \"pre_tokenizer\": "
         "{\"type\": \"Split\", \"pattern\": {\"String\": \"a\"}, \"behavior\": \"Sideways\"}}",
         HK_ERR_FORMAT, "behavior", "Sideways"},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": []}, \"normalizer\": "
         "{\"type\": \"Precompiled\"}}",
         HK_ERR_UNSUPPORTED, "normalizer", "Precompiled"},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": []}, \"added_tokens\": "
         "[{\"content\": \"x\"}]}",
         HK_ERR_FORMAT, "added_tokens[0]", "'id'"},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": []}, \"post_processor\": "
         "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}], "
         "\"special_tokens\": {}}}",
         HK_ERR_FORMAT, "special_tokens", "<s>"},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": [], \"dropout\": 0.1}}",
         HK_ERR_UNSUPPORTED, "dropout", NULL},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\xff\": 0}, \"merges\": []}}",
         HK_ERR_FORMAT, "model.vocab", "not valid UTF-8"},
        {"{\"model\": {\"type\": \"BPE\", " MINI_VOCAB ", \"merges\": []}, \"normalizer\": "
         "{\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\"}}",
         HK_ERR_FORMAT, "normalizer", "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        expect_error(hk_tokenizer_load_json(cases[i].json, strlen(cases[i].json), "mini.json", &t),
                     cases[i].want, "mini.json", cases[i].n1, cases[i].n2);
        assert_null(t);
    }
    expect_error(hk_tokenizer_load("/nonexistent/tokenizer.json", &t), HK_ERR_NOT_FOUND,
                 "/nonexistent/tokenizer.json", NULL, NULL);
}

/* model.merges as "a b" strings and as ["a", "b"] pairs give the same tokenizer. */
static void test_merges_spellings(void **state) {
    (void)state;
    const char *j1 = "{\"model\": {\"type\": \"BPE\", " MINI_VOCAB
                     ", \"merges\": [\"a b\", \"ab c\"]}}";
    const char *j2 = "{\"model\": {\"type\": \"BPE\", " MINI_VOCAB
                     ", \"merges\": [[\"a\", \"b\"], [\"ab\", \"c\"]]}}";
    hk_tokenizer *t1, *t2;
    assert_int_equal(hk_tokenizer_load_json(j1, strlen(j1), "j1", &t1), HK_OK);
    assert_int_equal(hk_tokenizer_load_json(j2, strlen(j2), "j2", &t2), HK_OK);
    int32_t *a, *b;
    const size_t na = encode(t1, "abcab", 5, 0, &a), nb = encode(t2, "abcab", 5, 0, &b);
    assert_int_equal(na, 2);
    assert_int_equal(nb, 2);
    assert_int_equal(a[0], 4);
    assert_int_equal(a[1], 2);
    assert_memory_equal(a, b, na * sizeof *a);
    hk_free(a);
    hk_free(b);
    /* no pre-tokenizer, no decoder: tokens joined with spaces, as Hugging Face does */
    char *out;
    const int32_t ids[] = {4, 2};
    assert_int_equal(hk_tokenizer_decode(t1, ids, 2, 0, &out, NULL), HK_OK);
    assert_string_equal(out, "abc ab");
    hk_free(out);
    hk_tokenizer_free(t1);
    hk_tokenizer_free(t2);
    /* an id that names no token (a hole) is left out of decode, as Hugging Face does */
    const char *j3 =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"c\": 2}, \"merges\": []}}";
    hk_tokenizer *t3;
    assert_int_equal(hk_tokenizer_load_json(j3, strlen(j3), "j3", &t3), HK_OK);
    assert_int_equal(hk_tokenizer_vocab_size(t3), 3);
    const int32_t holes[] = {0, 1, 2};
    assert_int_equal(hk_tokenizer_decode(t3, holes, 3, 0, &out, NULL), HK_OK);
    assert_string_equal(out, "a c");
    hk_free(out);
    assert_null(hk_tokenizer_token_str(t3, 1));
    hk_tokenizer_free(t3);
}

static hk_model *load_model(const char *dir) {
    hk_model *m = NULL;
    if (hk_model_load(dir, &m)) fail_msg("%s: %s", dir, hk_last_error());
    return m;
}

static void test_model_bos_rules(void **state) {
    (void)state;
    char dir[256];
    int32_t *ids;
    size_t n;
    /* gpt2 family, byte-level tokenizer that adds nothing: BOS prepended by default */
    tok_model_dir("gpt2", "tiny_bytelevel", dir, sizeof dir);
    hk_model *m = load_model(dir);
    assert_non_null(hk_model_tokenizer(m));
    assert_true(hk_model_default_prepend_bos(m));
    assert_int_equal(hk_model_encode(m, "Hello world", 11, HK_BOS_DEFAULT, &ids, &n), HK_OK);
    assert_int_equal(ids[0], 299);
    const size_t with = n;
    hk_free(ids);
    assert_int_equal(hk_model_encode(m, "Hello world", 11, HK_BOS_NO, &ids, &n), HK_OK);
    assert_int_equal(n, with - 1);
    assert_true(ids[0] != 299);
    hk_free(ids);
    hk_model_free(m);
    tok_remove_dir(dir);

    /* mistral family, SentencePiece tokenizer whose post-processor adds <s>: once, not twice */
    tok_model_dir("mistral", "tiny_spm", dir, sizeof dir);
    m = load_model(dir);
    assert_true(hk_tokenizer_adds_bos(hk_model_tokenizer(m)));
    assert_int_equal(hk_model_encode(m, "Hello world", 11, HK_BOS_DEFAULT, &ids, &n), HK_OK);
    assert_int_equal(ids[0], 1);
    assert_true(n > 1 && ids[1] != 1);
    hk_free(ids);
    assert_int_equal(hk_model_encode(m, "Hello world", 11, HK_BOS_NO, &ids, &n), HK_OK);
    assert_true(ids[0] != 1);
    hk_free(ids);
    hk_model_free(m);
    tok_remove_dir(dir);

    /* qwen2 family: default_prepend_bos is False; --prepend-bos forces it */
    tok_model_dir("qwen2", "tiny_bytelevel", dir, sizeof dir);
    m = load_model(dir);
    assert_false(hk_model_default_prepend_bos(m));
    assert_int_equal(hk_model_encode(m, "Hello", 5, HK_BOS_DEFAULT, &ids, &n), HK_OK);
    assert_true(ids[0] != 299);
    hk_free(ids);
    assert_int_equal(hk_model_encode(m, "Hello", 5, HK_BOS_YES, &ids, &n), HK_OK);
    assert_int_equal(ids[0], 299);
    hk_free(ids);
    /* a post-processor that appends EOS (OLMo): hk_model_encode drops it, as TL does */
    const char *eos_json =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"</s>\": 2}, "
        "\"merges\": []}, \"added_tokens\": [{\"id\": 2, \"content\": \"</s>\", \"special\": "
        "true}], \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
        "[{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": "
        "\"</s>\", \"type_id\": 0}}], \"special_tokens\": {\"</s>\": {\"id\": \"</s>\", "
        "\"ids\": [2], \"tokens\": [\"</s>\"]}}}}";
    hk_tokenizer *et;
    assert_int_equal(hk_tokenizer_load_json(eos_json, strlen(eos_json), "eos.json", &et), HK_OK);
    assert_int_equal(hk_tokenizer_special_id(et, HK_TOK_EOS), 2);
    n = encode(et, "ab", 2, HK_TOK_ADD_SPECIAL, &ids);
    assert_int_equal(n, 3);
    assert_int_equal(ids[2], 2);
    hk_free(ids);
    hk_model_set_tokenizer(m, et);
    assert_int_equal(hk_model_encode(m, "ab", 2, HK_BOS_DEFAULT, &ids, &n), HK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    hk_free(ids);
    /* set_tokenizer replaces (and frees) the folder's one; NULL detaches */
    hk_model_set_tokenizer(m, NULL);
    assert_null(hk_model_tokenizer(m));
    expect_error(hk_model_encode(m, "Hello", 5, HK_BOS_DEFAULT, &ids, &n), HK_ERR_NOT_FOUND,
                 "no tokenizer", NULL, NULL);
    hk_model_free(m);
    tok_remove_dir(dir);

    /* no tokenizer.json: the model loads; text input names the folder */
    tok_model_dir("gpt2", NULL, dir, sizeof dir);
    m = load_model(dir);
    assert_null(hk_model_tokenizer(m));
    expect_error(hk_model_encode(m, "Hello", 5, HK_BOS_DEFAULT, &ids, &n), HK_ERR_NOT_FOUND,
                 "no tokenizer.json in", dir, NULL);
    hk_model_free(m);
    tok_remove_dir(dir);
}

/* Random bytes (biased towards UTF-8 lead/continuation bytes, spaces and special-token text)
 * into every kind: no crash, ids within the vocabulary, decode succeeds. */
static void test_random_bytes(void **state) {
    (void)state;
    static const char *const kinds[] = {"bpe_gpt2", "bpe_llama3", "bpe_qwen2", "bpe_smollm2",
                                        "spm_llama2", "spm_mistral", "spm_metaspace_split",
                                        "wordpiece_bert", "wordpiece_cased_nfkc", "bpe_nfd_lower"};
    static const char *const pieces[] = {"<|endoftext|>", "[MASK]", " ", "\n", "\xe2\x96\x81",
                                         "<s>", "[CLS]", "hello world", "'s", "\xc3\xa9"};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    const int per_kind = 400;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        hk_tokenizer *t = fixture_tok(kinds[k]);
        const int64_t vocab = hk_tokenizer_vocab_size(t);
        for (int it = 0; it < per_kind; it++) {
            char buf[512];
            size_t n = 0;
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            const size_t len = (size_t)(rng >> 33) % 300;
            while (n < len) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                const unsigned r = (unsigned)(rng >> 32);
                if (r % 7 == 0) {
                    const char *p = pieces[(r >> 8) % (sizeof pieces / sizeof *pieces)];
                    const size_t pl = strlen(p);
                    if (n + pl > sizeof buf) break;
                    memcpy(buf + n, p, pl);
                    n += pl;
                } else {
                    const unsigned c = (r >> 8) & 0xff;
                    buf[n++] = (char)(r % 3 == 0   ? (0x80 | (c & 0x3f))
                                      : r % 3 == 1 ? c
                                                   : (c & 0x7f));
                }
            }
            int32_t *ids;
            size_t m;
            if (hk_tokenizer_encode(t, buf, n, it & 1 ? HK_TOK_ADD_SPECIAL : 0, &ids, &m))
                fail_msg("%s: encode failed: %s", kinds[k], hk_last_error());
            for (size_t j = 0; j < m; j++) assert_true(ids[j] >= 0 && ids[j] < vocab);
            char *out;
            if (hk_tokenizer_decode(t, ids, m, 0, &out, NULL))
                fail_msg("%s: decode failed: %s", kinds[k], hk_last_error());
            assert_true(hk_utf8_is_valid(out, strlen(out)) || memchr(out, 0, 1));
            hk_free(out);
            char disp[64];
            if (m) hk_tokenizer_token_display(t, ids[m - 1], disp, sizeof disp);
            hk_free(ids);
        }
        hk_tokenizer_free(t);
    }
}

/* One tokenizer, four threads encoding the same texts: every thread gets the ids one thread
 * gets (the tokenizer is immutable; PCRE2 match data is per call). */
typedef struct {
    const hk_tokenizer *t;
    const char *const *texts;
    size_t n;
    const size_t *want_n;
    int32_t *const *want;
    int bad;
} thread_job;

static void *encode_all(void *arg) {
    thread_job *j = arg;
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < j->n; i++) {
            int32_t *ids;
            size_t k;
            if (hk_tokenizer_encode(j->t, j->texts[i], strlen(j->texts[i]), HK_TOK_ADD_SPECIAL,
                                    &ids, &k) != HK_OK ||
                k != j->want_n[i] || memcmp(ids, j->want[i], k * sizeof *ids) != 0)
                j->bad++;
            hk_free(ids);
        }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    static const char *const texts[] = {
        "Hello world, it's 2026!", "  spaces\n\n\tand tabs ", "日本語のテキスト 🤖🚀",
        "caf\xc3\xa9 na\xc3\xafve \xff\xfe bad", "<|endoftext|>[MASK] hello world foo_bar"};
    const size_t n = sizeof texts / sizeof *texts;
    static const char *const kinds[] = {"bpe_gpt2", "spm_mistral", "wordpiece_bert"};
    for (size_t k = 0; k < 3; k++) {
        hk_tokenizer *t = fixture_tok(kinds[k]);
        int32_t *want[5];
        size_t want_n[5];
        for (size_t i = 0; i < n; i++)
            want_n[i] = encode(t, texts[i], strlen(texts[i]), HK_TOK_ADD_SPECIAL, &want[i]);
        thread_job jobs[4];
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (thread_job){t, texts, n, want_n, want, 0};
            assert_int_equal(pthread_create(&th[i], NULL, encode_all, &jobs[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(jobs[i].bad, 0);
        }
        for (size_t i = 0; i < n; i++) hk_free(want[i]);
        hk_tokenizer_free(t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_repair_matches_python),
        cmocka_unit_test(test_special_ids),
        cmocka_unit_test(test_display_and_decode),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_merges_spellings),
        cmocka_unit_test(test_model_bos_rules),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

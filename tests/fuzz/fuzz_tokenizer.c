/* Fuzz target for tokenizers: the input is a tokenizer.json, a NUL byte, then text. The
 * tokenizer is built (hk_tokenizer_load_json); when it loads, the text is encoded with and
 * without the post-processor, decoded, and every id displayed.
 *
 * With -DHK_LIBFUZZER (clang, -fsanitize=fuzzer) this is a libFuzzer target. Otherwise main()
 * replays the files and folders named on the command line and a fixed number of deterministic
 * mutations of each (byte flips in the JSON, random bytes in the text), so every build
 * exercises the entry point (under ASan/UBSan in the sanitizer builds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/utf8.h"
#include "hookformer.h"

static void fail(const char *what) {
    fprintf(stderr, "fuzz_tokenizer: invariant violated: %s (last error: %s)\n", what,
            hk_last_error());
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    const size_t json_len = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    const size_t text_len = nul ? size - json_len - 1 : 0;
    hk_tokenizer *t = (hk_tokenizer *)&t; /* must be reset by the loader */
    hk_error_clear();
    if (hk_tokenizer_load_json((const char *)data, json_len, "fuzz.json", &t) != HK_OK) {
        if (t != NULL) fail("output not reset on error");
        if (!strstr(hk_last_error(), "fuzz.json")) fail("message lacks the origin");
        return 0;
    }
    const int64_t vocab = hk_tokenizer_vocab_size(t);
    for (unsigned flags = 0; flags <= HK_TOK_ADD_SPECIAL; flags += HK_TOK_ADD_SPECIAL) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (hk_tokenizer_encode(t, text, text_len, flags, &ids, &n) != HK_OK) {
            /* only a regex engine failure may stop an encode */
            if (!strstr(hk_last_error(), "PCRE2")) fail("encode failed");
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= vocab) fail("id outside the vocabulary");
        char *out = NULL;
        size_t len = 0;
        if (hk_tokenizer_decode(t, ids, n, flags ? HK_TOK_SKIP_SPECIAL : 0, &out, &len) != HK_OK)
            fail("decode of encoded ids failed");
        if (!hk_utf8_is_valid(out, len)) fail("decoded text is not valid UTF-8");
        free(out); /* hk_free is free(); core/model.c, which has it, is not linked here */
        char disp[48];
        for (size_t i = 0; i < n && i < 64; i++)
            hk_tokenizer_token_display(t, ids[i], disp, sizeof disp);
        free(ids);
    }
    hk_tokenizer_free(t);
    return 0;
}

#ifndef HK_LIBFUZZER
#include "fuzz_replay.h"

/* The input, then mutations: flipped bytes anywhere, and random text after the JSON. */
static void run_with_mutations(const uint8_t *data, size_t size) {
    fuzz_run_copy(data, size);
    uint8_t *m = malloc(size + 256);
    if (!m) fail("out of memory");
    uint64_t rng = 0x243f6a8885a308d3ull ^ size;
    for (int k = 0; k < 200; k++) {
        memcpy(m, data, size);
        size_t n = size;
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        if (k % 2 == 0 && size) {
            for (int f = 0; f < 1 + k % 4; f++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                m[(rng >> 33) % size] ^= (uint8_t)(1u << ((rng >> 20) % 8));
            }
        } else {
            const uint8_t *nul = memchr(data, 0, size);
            n = nul ? (size_t)(nul - data) + 1 : size;
            if (!nul) m[n++] = 0;
            for (int b = 0; b < 200; b++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                m[n++] = (uint8_t)(rng >> 40);
            }
        }
        fuzz_run_copy(m, n);
    }
    free(m);
}

int main(int argc, char **argv) {
    size_t files = 0;
    for (int i = 1; i < argc; i++)
        files += fuzz_replay_path("fuzz_tokenizer", argv[i], run_with_mutations);
    /* the last one holds a NUL: its text is "\xff\xfe abc" */
    static const char bpe_text[] = "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, "
                                   "\"merges\": []}}\0\xff\xfe abc";
    static const struct {
        const char *s;
        size_t n;
    } tricky[] = {{"", 0}, {"{", 1}, {"null", 4}, {"{\"model\": null}", 15},
                  {bpe_text, sizeof bpe_text - 1}};
    for (size_t i = 0; i < sizeof tricky / sizeof *tricky; i++)
        fuzz_run_copy((const uint8_t *)tricky[i].s, tricky[i].n);
    printf("fuzz_tokenizer: replayed %zu files with 200 mutations each, and %zu built-in inputs\n",
           files, sizeof tricky / sizeof *tricky);
    return 0;
}
#endif

/* Tokenization throughput: encode every sample of a corpus (tests/fixtures/tokenizers/
 * corpus.bin.gz, one hk_tokenizer_encode call per sample, one thread) and report MB/s of input
 * text. bench/run_tokenize.sh runs Hugging Face tokenizers on the same corpus in the same run
 * (bench/peer_tokenize.py) and prints the ratio.
 *
 *   bench_tokenize TOKENIZER.json CORPUS.bin.gz [ROUNDS]
 * Two measures: "lines" encodes each sample by itself (per-call costs included), "document"
 * encodes the whole corpus as one text (the samples' bytes back to back).
 * prints: "hookformer lines MB/s X document MB/s Y ids N bytes B samples S" (medians) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bench_util.h"
#include "hookformer.h"

static unsigned char *read_gz(const char *path, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    int r;
    while (buf && (r = gzread(f, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)r;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    gzclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER.json CORPUS.bin.gz [ROUNDS]\n", argv[0]);
        return 2;
    }
    const int rounds = argc > 3 ? atoi(argv[3]) : 5;
    size_t len;
    unsigned char *blob = read_gz(argv[2], &len);
    if (!blob || len < 12 || memcmp(blob, "HKCORPUS", 8) != 0) {
        fprintf(stderr, "%s: not a corpus (HKCORPUS) file\n", argv[2]);
        return 1;
    }
    uint32_t n;
    memcpy(&n, blob + 8, 4);
    uint32_t *off = malloc(((size_t)n + 1) * sizeof *off);
    memcpy(off, blob + 12, ((size_t)n + 1) * sizeof *off);
    const char *text = (const char *)blob + 12 + 4 * ((size_t)n + 1);

    hk_tokenizer *t = NULL;
    if (hk_tokenizer_load(argv[1], &t) != HK_OK) {
        fprintf(stderr, "%s\n", hk_last_error());
        return 1;
    }
    double *mbs = malloc((size_t)rounds * sizeof *mbs), *doc = malloc((size_t)rounds * sizeof *doc);
    size_t total_ids = 0;
    for (int r = 0; r < rounds; r++) {
        total_ids = 0;
        const double t0 = bench_now_s();
        for (uint32_t i = 0; i < n; i++) {
            int32_t *ids;
            size_t k;
            if (hk_tokenizer_encode(t, text + off[i], off[i + 1] - off[i], HK_TOK_ADD_SPECIAL,
                                    &ids, &k) != HK_OK) {
                fprintf(stderr, "sample %u: %s\n", i, hk_last_error());
                return 1;
            }
            total_ids += k;
            hk_free(ids);
        }
        mbs[r] = (double)off[n] / 1e6 / (bench_now_s() - t0);
        const double t1 = bench_now_s();
        int32_t *ids;
        size_t k;
        if (hk_tokenizer_encode(t, text, off[n], HK_TOK_ADD_SPECIAL, &ids, &k) != HK_OK) {
            fprintf(stderr, "document: %s\n", hk_last_error());
            return 1;
        }
        hk_free(ids);
        doc[r] = (double)off[n] / 1e6 / (bench_now_s() - t1);
    }
    const double lines_mbs = bench_median(mbs, rounds), doc_mbs = bench_median(doc, rounds);
    printf("hookformer lines MB/s %.2f document MB/s %.2f ids %zu bytes %u samples %u\n",
           lines_mbs, doc_mbs, total_ids, off[n], n);
    free(doc);
    hk_tokenizer_free(t);
    free(mbs);
    free(off);
    free(blob);
    return 0;
}

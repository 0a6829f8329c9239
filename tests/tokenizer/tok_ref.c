#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "fixtures.h"
#include "tok_ref.h"

void tok_fixture(const char *file, char *out, size_t cap) {
    char rel[512];
    snprintf(rel, sizeof rel, "tokenizers/%s", file);
    fixture_path(rel, out, cap);
}

bool tok_blob_load(const char *file, tok_blob *b) {
    char path[1024];
    tok_fixture(file, path, sizeof path);
    memset(b, 0, sizeof *b);
    if (access(path, R_OK) != 0) return false;
    gzFile f = gzopen(path, "rb");
    if (!f) fail_msg("%s: cannot open", path);
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    int r;
    while ((r = gzread(f, buf + len, (unsigned)(cap - len))) > 0) {
        len += (size_t)r;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    gzclose(f);
    if (r < 0 || len < 12) fail_msg("%s: unreadable", path);
    const bool ids = memcmp(buf, "HKTOKREF", 8) == 0;
    if (!ids && memcmp(buf, "HKCORPUS", 8) != 0) fail_msg("%s: bad magic", path);
    uint32_t n;
    memcpy(&n, buf + 8, 4);
    b->n = n;
    b->elem = ids ? 2 : 1;
    b->off = malloc((n + 1) * sizeof *b->off);
    memcpy(b->off, buf + 12, (n + 1) * sizeof *b->off);
    const size_t base = 12 + 4 * ((size_t)n + 1);
    if (base + (size_t)b->off[n] * b->elem != len) fail_msg("%s: truncated", path);
    b->data = malloc(len - base + 1);
    memcpy(b->data, buf + base, len - base);
    free(buf);
    return true;
}

void tok_blob_free(tok_blob *b) {
    free(b->off);
    free(b->data);
    memset(b, 0, sizeof *b);
}

const unsigned char *tok_blob_item(const tok_blob *b, size_t i, size_t *count) {
    *count = b->off[i + 1] - b->off[i];
    return b->data + (size_t)b->off[i] * b->elem;
}

int32_t tok_blob_id(const tok_blob *b, size_t i, size_t j) {
    const unsigned char *p = b->data + ((size_t)b->off[i] + j) * 2;
    return (int32_t)(p[0] | (p[1] << 8));
}

const char *tok_escape(const void *s, size_t n) {
    static char out[2048];
    const unsigned char *u = s;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 8 < sizeof out; i++) {
        if (u[i] >= 0x20 && u[i] < 0x7f && u[i] != '\\')
            out[k++] = (char)u[i];
        else
            k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02x", u[i]);
    }
    out[k] = '\0';
    return out;
}

static void copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    if (!in || !out) fail_msg("copy %s -> %s failed", src, dst);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) fail_msg("write %s failed", dst);
    fclose(in);
    fclose(out);
}

void tok_model_dir(const char *family, const char *tok, char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/hk_tok_model_XXXXXX");
    if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
    char src[1024], dst[1200], rel[256];
    static const char *const files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(rel, sizeof rel, "%s/%s", family, files[i]);
        fixture_path(rel, src, sizeof src);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        copy_file(src, dst);
    }
    if (tok) {
        snprintf(rel, sizeof rel, "%s.json", tok);
        tok_fixture(rel, src, sizeof src);
        snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
        copy_file(src, dst);
    }
}

void tok_remove_dir(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fail_msg("%s failed", cmd);
}

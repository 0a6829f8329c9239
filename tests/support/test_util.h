/* Shared helpers for the cmocka suites: status assertions, scratch folders, small files.
 * Header-only (static inline), so suites that do not link test_support may include it too. */
#ifndef HK_TESTS_SUPPORT_TEST_UTIL_H
#define HK_TESTS_SUPPORT_TEST_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hookformer.h"

/* Asserts st == want and that hk_last_error() mentions every non-NULL needle. */
static inline void expect_error(hk_status st, hk_status want, const char *n1, const char *n2,
                                const char *n3) {
    const char *msg = hk_last_error();
    const char *needles[3] = {n1, n2, n3};
    bool ok = st == want;
    for (int i = 0; i < 3; i++) ok = ok && (!needles[i] || strstr(msg, needles[i]));
    if (!ok)
        print_error("expected %s mentioning '%s' '%s' '%s'\n     got %s: %s\n",
                    hk_status_name(want), n1 ? n1 : "", n2 ? n2 : "", n3 ? n3 : "",
                    hk_status_name(st), msg);
    assert_true(ok);
}

#define EXPECT_OK(expr)                                                                    \
    do {                                                                                   \
        hk_status st_ = (expr);                                                            \
        if (st_ != HK_OK) print_error("%s: %s\n", hk_status_name(st_), hk_last_error());   \
        assert_int_equal(st_, HK_OK);                                                      \
    } while (0)

static inline int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* mkdtemp under $TMPDIR (or /tmp); buf receives the path. */
static inline void make_tmpdir(char *buf, size_t cap) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, cap, "%s/hk-test-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(buf));
}

static inline void remove_tree(const char *dir) {
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static inline void write_text(const char *path, const char *text) {
    write_bytes(path, text, strlen(text));
}

/* A file's bytes, size and mtime, to check that a refused command left it as it was. */
typedef struct {
    unsigned char *bytes;
    size_t n;
    struct timespec mtime;
} file_snap;

static inline file_snap snap(const char *path) {
    file_snap s;
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    s.n = (size_t)sb.st_size;
    s.mtime = sb.st_mtim;
    s.bytes = malloc(s.n ? s.n : 1);
    assert_non_null(s.bytes);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(s.bytes, 1, s.n, f), s.n);
    fclose(f);
    return s;
}

/* The file has the bytes, the size and the mtime of the snapshot. */
static inline void expect_unchanged(const char *path, const file_snap *before, const char *what) {
    file_snap now = snap(path);
    if (now.n != before->n)
        fail_msg("%s: %s changed size: %zu -> %zu bytes", what, path, before->n, now.n);
    if (memcmp(now.bytes, before->bytes, now.n) != 0)
        fail_msg("%s: %s changed its bytes", what, path);
    if (now.mtime.tv_sec != before->mtime.tv_sec || now.mtime.tv_nsec != before->mtime.tv_nsec)
        fail_msg("%s: %s changed its mtime", what, path);
    free(now.bytes);
}

#endif

/* docs/HOOKS.md against the hook points of every fixture model: each point (layer number
 * replaced by {i}) has a row, the row's shape and optional flag are the point's, the row
 * claims the model's family; and each row claiming a family exists in that family's models
 * (at every layer, for block rows). A name may have several rows when their families are
 * disjoint (post-norm ln1/ln2 sit elsewhere in the block); a family entry "F (masked-LM head)"
 * claims F's models that have an output head only.
 *
 * usage: test_hooks_doc PATH/TO/docs/HOOKS.md   (meson passes it; HK_FIXTURES is set) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures.h"
#include "hookformer.h"

static const char *g_doc_path;

/* fixture folder and the family (model_type) it holds */
static const char *const FIXTURES[] = {"gpt2", "llama", "mistral", "qwen2", "qwen3", "olmo2", "gemma2", "gemma3", "mixtral",
                                       "qwen3_moe", "olmoe", "qwen2_moe",
                                       "phi3", "neox", "bert", "bert_body"};
#define N_FIXTURES (sizeof FIXTURES / sizeof FIXTURES[0])

#define MAX_ROWS 128

typedef struct {
    char name[96];     /* "blocks.{i}.attn.hook_q" */
    char shape[128];   /* "batch pos head_index d_head" (dims as hk_hook_point.dims) */
    char families[160];
    bool optional;
    int line;
} doc_row;

typedef struct {
    doc_row rows[MAX_ROWS];
    size_t n;
} doc_table;

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

/* Drop backticks; "[a, b]" -> "a b". */
static void plain(const char *in, char *out, size_t cap, bool shape) {
    size_t n = 0;
    for (const char *p = in; *p && n + 1 < cap; p++) {
        if (*p == '`' || (shape && (*p == '[' || *p == ']'))) continue;
        if (shape && *p == ',') continue;
        out[n++] = *p;
    }
    out[n] = '\0';
    char *t = trim(out);
    memmove(out, t, strlen(t) + 1);
}

/* Split a markdown table line into at most max cells; returns the count. */
static int split_cells(char *line, char **cells, int max) {
    char *p = line;
    if (*p != '|') return 0;
    p++;
    int n = 0;
    while (*p && n < max) {
        char *bar = strchr(p, '|');
        if (!bar) break;
        *bar = '\0';
        cells[n++] = trim(p);
        p = bar + 1;
    }
    return n;
}

#define HEAD_QUALIFIER " (masked-LM head)"

/* Is `family` in the row's comma-separated list (or is the list "all")? An entry
 * "F (masked-LM head)" claims F only for models with a head (headless false). */
static bool claims(const doc_row *r, const char *family, bool headless) {
    if (strcmp(r->families, "all") == 0) return true;
    const char *p = r->families;
    size_t fl = strlen(family), ql = strlen(HEAD_QUALIFIER);
    while (*p) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ",");
        while (len && p[len - 1] == ' ') len--;
        bool head_only = len > ql && strncmp(p + len - ql, HEAD_QUALIFIER, ql) == 0;
        size_t name_len = head_only ? len - ql : len;
        if (name_len == fl && strncmp(p, family, fl) == 0 && !(head_only && headless))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* Do two rows claim a common family? ("all" overlaps everything.) */
static bool overlap(const doc_row *a, const doc_row *b) {
    if (strcmp(a->families, "all") == 0 || strcmp(b->families, "all") == 0) return true;
    char fam[64];
    const char *p = a->families;
    while (*p) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ",(");
        while (len && p[len - 1] == ' ') len--;
        snprintf(fam, sizeof fam, "%.*s", (int)len, p);
        if (len && (claims(b, fam, false) || claims(b, fam, true))) return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* Parse the table whose header starts with "| name | shape | families | optional |". */
static void load_doc(doc_table *t) {
    FILE *f = fopen(g_doc_path, "r");
    if (!f) fail_msg("cannot open %s", g_doc_path);
    memset(t, 0, sizeof *t);
    char line[4096];
    int lineno = 0;
    bool in_table = false;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", line);
        char *s = trim(copy);
        s[strcspn(s, "\n")] = '\0';
        char *cells[8];
        int nc = split_cells(s, cells, 8);
        if (nc == 0) {
            if (in_table) break; /* the table ended */
            continue;
        }
        if (!in_table) {
            if (nc >= 5 && strcmp(cells[0], "name") == 0 && strcmp(cells[1], "shape") == 0 &&
                strcmp(cells[2], "families") == 0 && strcmp(cells[3], "optional") == 0)
                in_table = true;
            continue;
        }
        if (strncmp(cells[0], "---", 3) == 0) continue;
        if (nc < 5) fail_msg("%s:%d: a row of %d cells, expected 5", g_doc_path, lineno, nc);
        if (t->n == MAX_ROWS) fail_msg("%s: more than %d rows", g_doc_path, MAX_ROWS);
        doc_row *r = &t->rows[t->n++];
        plain(cells[0], r->name, sizeof r->name, false);
        plain(cells[1], r->shape, sizeof r->shape, true);
        plain(cells[2], r->families, sizeof r->families, false);
        if (strcmp(cells[3], "yes") != 0 && cells[3][0] != '\0')
            fail_msg("%s:%d: optional is '%s', expected 'yes' or empty", g_doc_path, lineno,
                     cells[3]);
        r->optional = strcmp(cells[3], "yes") == 0;
        r->line = lineno;
        if (!cells[4][0]) fail_msg("%s:%d: %s has no value description", g_doc_path, lineno,
                                   r->name);
        for (size_t i = 0; i + 1 < t->n; i++)
            if (strcmp(t->rows[i].name, r->name) == 0 && overlap(&t->rows[i], r))
                fail_msg("%s:%d: %s has two rows for the same family", g_doc_path, lineno,
                         r->name);
    }
    fclose(f);
    if (t->n == 0) fail_msg("%s: no '| name | shape | families | optional | value |' table",
                            g_doc_path);
}

/* "blocks.12.attn.hook_q" -> "blocks.{i}.attn.hook_q" */
static void templated(const char *name, char *out, size_t cap) {
    const char *prefix = "blocks.";
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) == 0) {
        const char *p = name + pl;
        while (*p >= '0' && *p <= '9') p++;
        snprintf(out, cap, "blocks.{i}%s", p);
    } else {
        snprintf(out, cap, "%s", name);
    }
}

/* The row of `name` that claims the model's family; else the first row of that name (for the
 * error message); NULL when the name has no row. */
static const doc_row *find_row(const doc_table *t, const char *name, const char *family,
                               bool headless) {
    const doc_row *any = NULL;
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->rows[i].name, name) != 0) continue;
        if (claims(&t->rows[i], family, headless)) return &t->rows[i];
        if (!any) any = &t->rows[i];
    }
    return any;
}

static void test_every_point_documented(void **state) {
    (void)state;
    doc_table *t = malloc(sizeof *t);
    assert_non_null(t);
    load_doc(t);
    for (size_t f = 0; f < N_FIXTURES; f++) {
        hk_model *m = fixture_model(FIXTURES[f]);
        const char *family = hk_model_family(m);
        size_t n = hk_model_hook_count(m);
        assert_true(n > 0);
        for (size_t i = 0; i < n; i++) {
            const hk_hook_point *pt = hk_model_hook_at(m, i);
            char name[128];
            templated(pt->name, name, sizeof name);
            const doc_row *r = find_row(t, name, family, hk_model_headless(m));
            if (!r) fail_msg("%s (%s): %s is not in %s", FIXTURES[f], family, name, g_doc_path);
            if (!claims(r, family, hk_model_headless(m)))
                fail_msg("%s:%d: %s exists in %s models but the row's families are '%s'",
                         g_doc_path, r->line, name, family, r->families);
            if (strcmp(r->shape, pt->dims) != 0)
                fail_msg("%s:%d: %s has shape [%s] in the doc, [%s] in the library",
                         g_doc_path, r->line, name, r->shape, pt->dims);
            if (r->optional != pt->optional)
                fail_msg("%s:%d: %s is %soptional in the library", g_doc_path, r->line, name,
                         pt->optional ? "" : "not ");
        }
        hk_model_free(m);
    }
    free(t);
}

static void test_every_row_exists(void **state) {
    (void)state;
    doc_table *t = malloc(sizeof *t);
    assert_non_null(t);
    load_doc(t);
    bool family_seen[MAX_ROWS] = {false};
    for (size_t f = 0; f < N_FIXTURES; f++) {
        hk_model *m = fixture_model(FIXTURES[f]);
        const char *family = hk_model_family(m);
        int64_t L = hk_model_n_layers(m);
        for (size_t r = 0; r < t->n; r++) {
            const doc_row *row = &t->rows[r];
            if (!claims(row, family, hk_model_headless(m))) continue;
            family_seen[r] = true;
            bool block = strncmp(row->name, "blocks.{i}.", 11) == 0;
            for (int64_t l = 0; l < (block ? L : 1); l++) {
                char name[128];
                if (block)
                    snprintf(name, sizeof name, "blocks.%lld.%s", (long long)l, row->name + 11);
                else
                    snprintf(name, sizeof name, "%s", row->name);
                bool found = false;
                for (size_t i = 0; i < hk_model_hook_count(m) && !found; i++)
                    found = strcmp(hk_model_hook_at(m, i)->name, name) == 0;
                if (!found)
                    fail_msg("%s:%d: the row claims %s, but the %s fixture has no %s",
                             g_doc_path, row->line, family, FIXTURES[f], name);
            }
        }
        hk_model_free(m);
    }
    for (size_t r = 0; r < t->n; r++)
        if (!family_seen[r])
            fail_msg("%s:%d: %s claims no family of the fixtures ('%s')", g_doc_path,
                     t->rows[r].line, t->rows[r].name, t->rows[r].families);
    free(t);
}

/* Rows are in execution order: the order of the points of the model that has them all. */
static void test_rows_in_execution_order(void **state) {
    (void)state;
    doc_table *t = malloc(sizeof *t);
    assert_non_null(t);
    load_doc(t);
    for (size_t f = 0; f < N_FIXTURES; f++) {
        hk_model *m = fixture_model(FIXTURES[f]);
        size_t last_row = 0;
        bool first = true;
        for (size_t i = 0; i < hk_model_hook_count(m); i++) {
            const hk_hook_point *pt = hk_model_hook_at(m, i);
            if (pt->layer > 0) continue; /* one block is enough */
            char name[128];
            templated(pt->name, name, sizeof name);
            const doc_row *r = find_row(t, name, hk_model_family(m), hk_model_headless(m));
            assert_non_null(r);
            size_t at = (size_t)(r - t->rows);
            if (!first && at <= last_row)
                fail_msg("%s:%d: %s is listed after %s but fires before it in %s", g_doc_path,
                         r->line, name, t->rows[last_row].name, FIXTURES[f]);
            last_row = at;
            first = false;
        }
        hk_model_free(m);
    }
    free(t);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/docs/HOOKS.md\n", argv[0]);
        return 2;
    }
    g_doc_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_point_documented),
        cmocka_unit_test(test_every_row_exists),
        cmocka_unit_test(test_rows_in_execution_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SVG heatmaps: well-formed standalone SVG 1.1 (viewBox, escaped labels, legend), files never
 * clobbered without force, and a render in headless Chromium (skipped only when no chromium
 * is installed) whose PNG shows the extreme colours of the diverging scale over large areas
 * and the greys/whites of the rest. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hookformer.h"
#include "render.h"
#include "test_util.h"

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) len = 0;
    buf[len] = '\0';
    fclose(f);
    if (n) *n = (size_t)len;
    return buf;
}

static const char *const ROWS[3] = {"L0 <b>", "L1 & \"q\"", "L2 'x'"};
static const char *const COLS[4] = {"a<", "b>", "c&amp;", "d"};

static void write_map(const char *path, bool force, hk_status want) {
    /* [3, 4]: strongly negative left, strongly positive right, a NaN cell */
    float v[12] = {-3, -1, 0.5f, 3, -2.5f, 0, NAN, 2.9f, -3, -0.2f, 1, 3};
    hk_heatmap h = {.values = v, .rows = 3, .cols = 4, .row_labels = ROWS, .col_labels = COLS,
                    .title = "test <map> & more", .row_axis = "layer", .col_axis = "position",
                    .value_label = "logit diff", .diverging = true};
    assert_int_equal(hk_heatmap_svg(&h, path, force), want);
}

static void test_svg_text(void **state) {
    (void)state;
    char path[] = "/tmp/hk_svg_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    write_map(path, false, HK_ERR_IO); /* exists */
    write_map(path, true, HK_OK);
    char *s = slurp(path, NULL);
    assert_non_null(s);
    assert_non_null(strstr(s, "<?xml version=\"1.0\""));
    assert_non_null(strstr(s, "version=\"1.1\""));
    assert_non_null(strstr(s, "viewBox=\"0 0 "));
    assert_non_null(strstr(s, "L0 &lt;b&gt;"));
    assert_non_null(strstr(s, "L1 &amp; &quot;q&quot;"));
    assert_non_null(strstr(s, "L2 &apos;x&apos;"));
    assert_non_null(strstr(s, "c&amp;amp;"));
    assert_non_null(strstr(s, "test &lt;map&gt; &amp; more"));
    assert_null(strstr(s, "<b>"));
    assert_non_null(strstr(s, "rgb(178,24,43)"));  /* the +max end of the scale */
    assert_non_null(strstr(s, "rgb(33,102,172)")); /* the -max end */
    assert_non_null(strstr(s, "rgb(190,190,190)")); /* the NaN cell */
    assert_non_null(strstr(s, ">logit diff</text>"));
    assert_non_null(strstr(s, "</svg>"));
    free(s);
    unlink(path);
}


/* a scratch folder for renders, or a cmocka skip when there is no chromium */
static const char *render_dir(char *dir, size_t cap) {
    const char *chromium = render_find_chromium();
    if (!chromium) {
        print_message("no chromium on PATH: render check skipped\n");
        skip();
    }
    snprintf(dir, cap, "/tmp/hk_render_XXXXXX");
    assert_non_null(mkdtemp(dir));
    return chromium;
}

static void remove_dir(const char *dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_chromium_render(void **state) {
    (void)state;
    char dir[64], svg[600], png[600];
    const char *chromium = render_dir(dir, sizeof dir);
    snprintf(svg, sizeof svg, "%s/map.svg", dir);
    snprintf(png, sizeof png, "%s/map.png", dir);
    write_map(svg, false, HK_OK);
    render_png(chromium, dir, svg, png, 800, 600);
    int w = 0, h = 0;
    unsigned char *rgb = render_png_rgb(png, &w, &h);
    assert_non_null(rgb);
    long red = 0, blue = 0, grey = 0, dark = 0, white = 0;
    for (long i = 0; i < (long)w * h; i++) {
        const unsigned char *p = rgb + i * 3;
        int r = p[0], g = p[1], b = p[2];
        red += abs(r - 178) < 8 && abs(g - 24) < 8 && abs(b - 43) < 8;
        blue += abs(r - 33) < 8 && abs(g - 102) < 8 && abs(b - 172) < 8;
        grey += abs(r - 190) < 4 && abs(g - 190) < 4 && abs(b - 190) < 4;
        dark += r < 80 && g < 80 && b < 80; /* text and frames */
        white += r > 250 && g > 250 && b > 250;
    }
    print_message("rendered %dx%d: red %ld, blue %ld, NaN grey %ld, dark %ld, white %ld px\n", w,
                  h, red, blue, grey, dark, white);
    /* the cells are at least 16 x 36 px; the +-3 cells are three each, the legend has both ends */
    assert_true(red > 1000 && blue > 1000 && grey > 300 && dark > 200 && white > 10000);
    free(rgb);
    remove_dir(dir);
}

/* pixels of an RGB image that are not (near) white */
static long inked(const unsigned char *rgb, int w, int h) {
    long n = 0;
    for (long i = 0; i < (long)w * h; i++)
        n += rgb[i * 3] < 245 || rgb[i * 3 + 1] < 245 || rgb[i * 3 + 2] < 245;
    return n;
}

/* The SVG's width and height (from its <svg> element). */
static void svg_size(const char *s, int *w, int *h) {
    const char *p = strstr(s, "<svg ");
    assert_non_null(p);
    const char *pw = strstr(p, " width=\""), *ph = strstr(p, " height=\"");
    assert_true(pw && ph);
    *w = atoi(pw + 8);
    *h = atoi(ph + 9);
    assert_true(*w > 0 && *h > 0);
}

/* Everything the SVG draws lies on its canvas: rendered as written, and with the canvas grown
 * by `pad` px on every side (the same drawing, moved by pad), the same pixels are inked. A
 * clipped legend, label or title has ink only in the grown render. */
static void expect_nothing_clipped(const char *chromium, const char *dir, const char *svg) {
    char *s = slurp(svg, NULL);
    assert_non_null(s);
    int w, h;
    svg_size(s, &w, &h);
    const int pad = 200, W = w + 2 * pad, H = h + 2 * pad;
    /* the grown copy: a new <svg ...> start tag with the old one's content */
    char grown[600], png_a[600], png_b[600];
    snprintf(grown, sizeof grown, "%s.grown.svg", svg);
    snprintf(png_a, sizeof png_a, "%s.png", svg);
    snprintf(png_b, sizeof png_b, "%s.grown.png", svg);
    const char *body = strchr(strstr(s, "<svg "), '>');
    FILE *f = fopen(grown, "w");
    assert_non_null(f);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/"
               "svg\" version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"%d %d %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\"%s", W, H, -pad, -pad, W, H, body);
    assert_int_equal(fclose(f), 0);
    render_png(chromium, dir, svg, png_a, W, H);
    render_png(chromium, dir, grown, png_b, W, H);
    int wa, ha, wb, hb;
    unsigned char *a = render_png_rgb(png_a, &wa, &ha), *b = render_png_rgb(png_b, &wb, &hb);
    assert_true(a && b);
    long ink_a = inked(a, wa, ha), ink_b = inked(b, wb, hb);
    print_message("%s (%dx%d): %ld px inked on its canvas, %ld on a canvas grown by %d px\n", svg,
                  w, h, ink_a, ink_b, pad);
    if (ink_b > ink_a + 20) fail_msg("%s draws %ld px outside its %dx%d canvas", svg,
                                     ink_b - ink_a, w, h);
    free(a), free(b), free(s);
}

/* One layer (a single row): the legend is taller than the grid, and must still fit. Long
 * labels (rotated under the first column), a two-line title and a long value label too. */
static void test_single_row_fits(void **state) {
    (void)state;
    char dir[64], svg[600];
    const char *chromium = render_dir(dir, sizeof dir);
    float v[4] = {-3, -1, 0.5f, 3};
    const char *rows[1] = {"23"};
    const char *cols[4] = {"0 'When Mary and John went to the store'", "1 ' Mary'", "2 ' and'",
                           "3 ' John'"};
    hk_heatmap hm = {.values = v, .rows = 1, .cols = 4, .row_labels = rows, .col_labels = cols,
                     .title = "zero ablation: resid_pre (blocks.*.hook_resid_pre)\nmodel: "
                              "a/model/folder; metric: logit[' Mary'] - logit[' John']",
                     .row_axis = "layer", .col_axis = "position (token)",
                     .value_label = "change of the normalized logit diff", .diverging = true};
    snprintf(svg, sizeof svg, "%s/one_row.svg", dir);
    EXPECT_OK(hk_heatmap_svg(&hm, svg, false));
    expect_nothing_clipped(chromium, dir, svg);
    /* one row, one column, no labels */
    hm.cols = 1;
    hm.col_labels = NULL;
    hm.title = NULL;
    hm.value_label = NULL;
    snprintf(svg, sizeof svg, "%s/one_cell.svg", dir);
    EXPECT_OK(hk_heatmap_svg(&hm, svg, false));
    expect_nothing_clipped(chromium, dir, svg);
    remove_dir(dir);
}

typedef struct {
    double x, y, w, h;
    int r, g, b;
} cell;

/* the grid's cells as the SVG draws them (rects with a hover title), in order */
static int svg_cells(const char *s, cell *out, int cap) {
    int n = 0;
    for (const char *p = s; n < cap && (p = strstr(p, "<rect x=\"")); p++) {
        cell c;
        if (sscanf(p, "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\" fill=\"rgb(%d,%d,%d)"
                      "\"><title>", &c.x, &c.y, &c.w, &c.h, &c.r, &c.g, &c.b) == 7 &&
            strstr(p, "><title>") == strchr(p, '>'))
            out[n++] = c;
    }
    return n;
}

/* Cell text never runs past its cell: on the render, a 2 px band inside both side edges of every
 * cell is the cell's own colour, even when the text (wide capitals, CJK, a long token) is far
 * wider than the cell. The elided text ends with an ellipsis. */
static void test_cell_text_fits(void **state) {
    (void)state;
    char dir[64], svg[600], png[600];
    const char *chromium = render_dir(dir, sizeof dir);
    enum { R = 2, C = 12 };
    float v[R * C];
    const char *text[R * C];
    const char *samples[6] = {"MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM",
                              "' WWW WWW WWW WWW WWW WWW WWW WWW WWW'",
                              "'\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE6\x97\xA5\xE6\x9C\xAC"
                              "\xE8\xAA\x9E\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E'",
                              "' the'", "'@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@'", "'.'"};
    for (int i = 0; i < R * C; i++) {
        v[i] = 0.05f + 0.3f * (float)(i % 3) / 2; /* light cells: black text */
        text[i] = samples[i % 6];
    }
    hk_heatmap hm = {.values = v, .rows = R, .cols = C, .title = "cell text",
                     .value_label = "top-1 probability", .cell_text = text, .range_min = 0,
                     .range_max = 1};
    snprintf(svg, sizeof svg, "%s/cells.svg", dir);
    snprintf(png, sizeof png, "%s/cells.png", dir);
    EXPECT_OK(hk_heatmap_svg(&hm, svg, false));
    char *s = slurp(svg, NULL);
    assert_non_null(strstr(s, "\xE2\x80\xA6</text>")); /* an elided text */
    assert_non_null(strstr(s, ">&apos; the&apos;</text>")); /* a short one, whole */
    cell cells[R * C];
    assert_int_equal(svg_cells(s, cells, R * C), R * C);
    int sw, sh;
    svg_size(s, &sw, &sh);
    render_png(chromium, dir, svg, png, sw + 50, sh + 50);
    int w, h;
    unsigned char *rgb = render_png_rgb(png, &w, &h);
    assert_non_null(rgb);
    long bad = 0;
    for (int i = 0; i < R * C; i++) {
        const cell *c = &cells[i];
        int xs[4] = {(int)ceil(c->x) + 1, (int)ceil(c->x) + 2, (int)floor(c->x + c->w) - 3,
                     (int)floor(c->x + c->w) - 2};
        for (int k = 0; k < 4; k++)
            for (int y = (int)ceil(c->y) + 1; y < (int)floor(c->y + c->h) - 1; y++) {
                assert_true(xs[k] < w && y < h);
                const unsigned char *p = rgb + ((long)y * w + xs[k]) * 3;
                bad += abs(p[0] - c->r) > 12 || abs(p[1] - c->g) > 12 || abs(p[2] - c->b) > 12;
            }
    }
    print_message("cells %.1f px wide: %ld px of text at their edges\n", cells[0].w, bad);
    assert_int_equal(bad, 0);
    free(rgb), free(s);
    remove_dir(dir);
}

/* the colour scale's ends as given (range_min/range_max), not from the data */
static void test_fixed_range(void **state) {
    (void)state;
    char path[] = "/tmp/hk_svg_XXXXXX";
    close(mkstemp(path));
    float v[2] = {0.25f, 0.5f};
    hk_heatmap hm = {.values = v, .rows = 1, .cols = 2, .value_label = "p", .range_min = 0,
                     .range_max = 1};
    EXPECT_OK(hk_heatmap_svg(&hm, path, true));
    char *s = slurp(path, NULL);
    /* 0.5 of white..red, and the legend's ticks 1, 0.5, 0 */
    assert_non_null(strstr(s, "fill=\"rgb(213,136,145)\"><title>"));
    assert_non_null(strstr(s, ">1</text>"));
    assert_non_null(strstr(s, ">0</text>"));
    free(s);
    hm.range_max = 0; /* from the data: 0.5 is the top */
    EXPECT_OK(hk_heatmap_svg(&hm, path, true));
    s = slurp(path, NULL);
    assert_non_null(strstr(s, "fill=\"rgb(178,24,43)\"><title>"));
    free(s);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svg_text),
        cmocka_unit_test(test_chromium_render),
        cmocka_unit_test(test_single_row_fits),
        cmocka_unit_test(test_cell_text_fits),
        cmocka_unit_test(test_fixed_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

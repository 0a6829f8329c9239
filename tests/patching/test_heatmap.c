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
#include <zlib.h>

#include <cmocka.h>

#include "hookformer.h"

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

/* ---- PNG decoding (8-bit RGB/RGBA, not interlaced): enough for Chromium's screenshots ---- */

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* RGB pixels [h, w, 3] or NULL */
static unsigned char *png_rgb(const char *path, int *w_out, int *h_out) {
    size_t n;
    unsigned char *f = (unsigned char *)slurp(path, &n);
    if (!f || n < 33 || memcmp(f, "\x89PNG\r\n\x1a\n", 8) != 0) return free(f), NULL;
    uint32_t w = be32(f + 16), h = be32(f + 20);
    int depth = f[24], ctype = f[25], interlace = f[28];
    int ch = ctype == 6 ? 4 : ctype == 2 ? 3 : 0;
    if (depth != 8 || !ch || interlace) return free(f), NULL;
    unsigned char *z = malloc(n);
    size_t zn = 0;
    for (size_t p = 8; p + 12 <= n;) {
        uint32_t len = be32(f + p);
        if (memcmp(f + p + 4, "IDAT", 4) == 0) memcpy(z + zn, f + p + 8, len), zn += len;
        p += 12 + len;
    }
    size_t stride = (size_t)w * (size_t)ch;
    uLongf raw_n = (uLongf)((stride + 1) * h);
    unsigned char *raw = malloc(raw_n);
    if (uncompress(raw, &raw_n, z, (uLong)zn) != Z_OK) return free(f), free(z), free(raw), NULL;
    unsigned char *px = calloc(stride * h, 1), *rgb = malloc((size_t)w * h * 3);
    for (uint32_t y = 0; y < h; y++) {
        int ft = raw[y * (stride + 1)];
        const unsigned char *src = raw + y * (stride + 1) + 1;
        unsigned char *row = px + y * stride, *up = y ? px + (y - 1) * stride : NULL;
        for (size_t i = 0; i < stride; i++) {
            int a = i >= (size_t)ch ? row[i - ch] : 0, b = up ? up[i] : 0;
            int c = up && i >= (size_t)ch ? up[i - ch] : 0, x = src[i];
            switch (ft) {
            case 1: x += a; break;
            case 2: x += b; break;
            case 3: x += (a + b) / 2; break;
            case 4: x += paeth(a, b, c); break;
            default: break;
            }
            row[i] = (unsigned char)x;
        }
        for (uint32_t xx = 0; xx < w; xx++) memcpy(rgb + (y * w + xx) * 3, row + xx * ch, 3);
    }
    free(f), free(z), free(raw), free(px);
    *w_out = (int)w;
    *h_out = (int)h;
    return rgb;
}

static const char *find_chromium(void) {
    static char found[512];
    const char *names[] = {"chromium", "chromium-browser", "google-chrome"};
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    for (size_t i = 0; i < 3; i++) {
        const char *p = path;
        while (*p) {
            size_t len = strcspn(p, ":");
            snprintf(found, sizeof found, "%.*s/%s", (int)len, p, names[i]);
            if (access(found, X_OK) == 0) return found;
            p += len + (p[len] == ':');
        }
    }
    return NULL;
}

static void test_chromium_render(void **state) {
    (void)state;
    const char *chromium = find_chromium();
    if (!chromium) {
        print_message("no chromium on PATH: render check skipped\n");
        skip();
    }
    char dir[] = "/tmp/hk_render_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char svg[600], png[600], shot[700], url[700];
    snprintf(svg, sizeof svg, "%s/map.svg", dir);
    snprintf(png, sizeof png, "%s/map.png", dir);
    write_map(svg, false, HK_OK);
    snprintf(shot, sizeof shot, "--screenshot=%s", png);
    snprintf(url, sizeof url, "file://%s", svg);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        freopen("/dev/null", "w", stdout);
        setenv("HOME", dir, 1); /* chromium writes a profile under $HOME */
        execl(chromium, chromium, "--headless", "--no-sandbox", "--disable-gpu",
              "--hide-scrollbars", shot, "--window-size=800,600", url, (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int w = 0, h = 0;
    unsigned char *rgb = png_rgb(png, &w, &h);
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
    unlink(svg), unlink(png);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svg_text),
        cmocka_unit_test(test_chromium_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/support/render.h: headless Chromium screenshots and the PNG decoding to read them
 * (moved here from tests/patching/test_heatmap.c, so the SVG heatmap and SAE feature page
 * tests share them). */
#include "render.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[len] = '\0';
    *n = (size_t)len;
    return b;
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
unsigned char *render_png_rgb(const char *path, int *w_out, int *h_out) {
    size_t n;
    unsigned char *f = (unsigned char *)read_file(path, &n);
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

const char *render_find_chromium(void) {
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

/* Render svg into png with headless Chromium in a window of w x h px (the SVG at its own
 * size in the top left corner, the rest of the window white). */
void render_png(const char *chromium, const char *dir, const char *svg, const char *png, int w,
                int h) {
    char shot[700], url[700], size[64];
    snprintf(shot, sizeof shot, "--screenshot=%s", png);
    snprintf(url, sizeof url, "file://%s", svg);
    snprintf(size, sizeof size, "--window-size=%d,%d", w, h);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        freopen("/dev/null", "w", stdout);
        setenv("HOME", dir, 1); /* chromium writes a profile under $HOME */
        execl(chromium, chromium, "--headless", "--no-sandbox", "--disable-gpu",
              "--hide-scrollbars", shot, size, url, (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}


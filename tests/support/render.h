/* Headless Chromium renders for tests: find the browser, screenshot a file, decode the PNG.
 * Every failure is a cmocka failure of the running test. */
#ifndef HK_TESTS_SUPPORT_RENDER_H
#define HK_TESTS_SUPPORT_RENDER_H

/* chromium, chromium-browser or google-chrome on $PATH, or NULL. */
const char *render_find_chromium(void);
/* Screenshot `file` (SVG, HTML) into png in a window of w x h px; `dir` is the HOME the
 * browser writes its profile under. */
void render_png(const char *chromium, const char *dir, const char *file, const char *png, int w,
                int h);
/* RGB pixels [h, w, 3] of an 8-bit RGB/RGBA, non-interlaced PNG (malloc'd), or NULL. */
unsigned char *render_png_rgb(const char *path, int *w_out, int *h_out);

#endif

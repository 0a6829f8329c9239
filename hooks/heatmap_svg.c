/* Heatmaps as standalone SVG 1.1 files: a grid of cells with row and column tick labels
 * (XML-escaped), axis titles, a title and a colour legend. Signed data use a diverging
 * blue-white-red scale symmetric around 0; other data white to red. Each cell carries a
 * <title> (its labels and value) that browsers show on hover. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "hookformer.h"

static void xml_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            /* control characters are not allowed in XML 1.0 */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') fputs("?", f);
            else fputc(*s, f);
        }
    }
}

typedef struct {
    int r, g, b;
} rgb;

static rgb mix(rgb a, rgb b, double t) {
    return (rgb){(int)lround(a.r + (b.r - a.r) * t), (int)lround(a.g + (b.g - a.g) * t),
                 (int)lround(a.b + (b.b - a.b) * t)};
}

static const rgb BLUE = {33, 102, 172}, WHITE = {247, 247, 247}, RED = {178, 24, 43},
                 GREY = {190, 190, 190};

/* t in [-1, 1] (diverging) or [0, 1] */
static rgb colour(double t, bool diverging) {
    if (!isfinite(t)) return GREY;
    if (t > 1) t = 1;
    if (t < (diverging ? -1 : 0)) t = diverging ? -1 : 0;
    if (!diverging) return mix(WHITE, RED, t);
    return t < 0 ? mix(WHITE, BLUE, -t) : mix(WHITE, RED, t);
}

static size_t label_chars(const char *const *l, int64_t n) {
    size_t w = 0;
    for (int64_t i = 0; l && i < n; i++)
        if (l[i] && strlen(l[i]) > w) w = strlen(l[i]);
    return w;
}

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

hk_status hk_heatmap_svg(const hk_heatmap *h, const char *path, bool force) {
    if (!h || !h->values || !path || h->rows < 1 || h->cols < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_heatmap_svg: NULL values or path, or an empty "
                                             "grid");
    if (!force && access(path, F_OK) == 0)
        return hk_errorf(HK_ERR_IO, "%s: file exists (pass force / --force to overwrite)", path);
    const int64_t R = h->rows, C = h->cols;
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < R * C; i++)
        if (isfinite(h->values[i])) {
            lo = fmin(lo, h->values[i]);
            hi = fmax(hi, h->values[i]);
        }
    if (!isfinite(lo)) lo = hi = 0;
    const bool div = h->diverging;
    double vmax = div ? fmax(fabs(lo), fabs(hi)) : hi, vmin = div ? -vmax : lo;
    if (vmax == vmin) vmax = vmin + 1;
    /* layout, in px: 7 px per label character at font-size 12 */
    const double cw = clampd(720.0 / (double)C, h->cell_text ? 44 : 16, 48), ch = clampd(480.0 / (double)R, 16, 36);
    const double left = 40 + 7.0 * (double)label_chars(h->row_labels, R);
    const double top = 56;
    const double grid_w = cw * (double)C, grid_h = ch * (double)R;
    const double bottom = 50 + 5.2 * (double)label_chars(h->col_labels, C);
    const double legend_x = left + grid_w + 30;
    /* wide enough for the title too (bold 15 px: about 8.5 px a character) */
    const double title_w = 8.5 * (double)strlen(h->title ? h->title : "");
    const double width = fmax(legend_x + 110, left + title_w + 20);
    const double height = top + grid_h + bottom;
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    if (!tmp) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        hk_status st = hk_errorf(HK_ERR_IO, "%s: cannot create (%s)", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
               "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n",
            width, height, width, height);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", width,
            height);
    fprintf(f, "<text x=\"%.1f\" y=\"24\" font-size=\"15\" font-weight=\"bold\">", left);
    xml_text(f, h->title ? h->title : "");
    fputs("</text>\n<g shape-rendering=\"crispEdges\">\n", f);
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            double v = h->values[r * C + c];
            rgb k = colour(div ? v / vmax : (v - vmin) / (vmax - vmin), div);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                       "fill=\"rgb(%d,%d,%d)\"><title>",
                    left + cw * (double)c, top + ch * (double)r, cw, ch, k.r, k.g, k.b);
            xml_text(f, h->row_labels ? h->row_labels[r] : "");
            fputs(" / ", f);
            xml_text(f, h->col_labels ? h->col_labels[c] : "");
            fprintf(f, ": %.4g</title></rect>\n", v);
            if (h->cell_text && h->cell_text[r * C + c]) {
                /* dark text on light cells, white on dark ones */
                bool dark = k.r * 299 + k.g * 587 + k.b * 114 < 128000;
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                           "dominant-baseline=\"middle\" font-size=\"10\" fill=\"%s\">",
                        left + cw * ((double)c + 0.5), top + ch * ((double)r + 0.5),
                        dark ? "white" : "black");
                xml_text(f, h->cell_text[r * C + c]);
                fputs("</text>\n", f);
            }
        }
    fprintf(f, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#444\"/>\n", left, top, grid_w, grid_h);
    for (int64_t r = 0; r < R; r++) { /* row ticks */
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">",
                left - 6, top + ch * ((double)r + 0.5));
        if (h->row_labels) xml_text(f, h->row_labels[r]);
        else fprintf(f, "%lld", (long long)r);
        fputs("</text>\n", f);
    }
    for (int64_t c = 0; c < C; c++) { /* column ticks, rotated */
        double x = left + cw * ((double)c + 0.5), y = top + grid_h + 8;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
                   "transform=\"rotate(-50 %.1f %.1f)\">", x, y, x, y);
        if (h->col_labels) xml_text(f, h->col_labels[c]);
        else fprintf(f, "%lld", (long long)c);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">",
            left + grid_w / 2, height - 12);
    xml_text(f, h->col_axis ? h->col_axis : "");
    fprintf(f, "</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" "
               "transform=\"rotate(-90 14 %.1f)\">", top + grid_h / 2, top + grid_h / 2);
    xml_text(f, h->row_axis ? h->row_axis : "");
    fputs("</text>\n", f);
    /* legend: a vertical bar from vmax (top) to vmin (bottom) in 64 steps */
    const double lh = fmax(grid_h, 120), step = lh / 64;
    fprintf(f, "<g shape-rendering=\"crispEdges\">\n");
    for (int i = 0; i < 64; i++) {
        double v = vmax - (vmax - vmin) * ((double)i + 0.5) / 64;
        rgb k = colour(div ? v / vmax : (v - vmin) / (vmax - vmin), div);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"16\" height=\"%.2f\" "
                   "fill=\"rgb(%d,%d,%d)\"/>\n", legend_x, top + step * i, step + 0.5, k.r, k.g,
                k.b);
    }
    fprintf(f, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#444\"/>\n", legend_x, top, lh);
    const double ticks[3] = {vmax, div ? 0 : (vmin + vmax) / 2, vmin};
    for (int i = 0; i < 3; i++)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" dominant-baseline=\"middle\">%.3g</text>\n",
                legend_x + 22, top + lh * i / 2.0, ticks[i]);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", legend_x, top - 20);
    xml_text(f, h->value_label ? h->value_label : "");
    fputs("</text>\n</svg>\n", f);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0) bad = true;
    hk_status st = HK_OK;
    if (bad) {
        st = hk_errorf(HK_ERR_IO, "%s: write failed (disk full?)", tmp);
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        st = hk_errorf(HK_ERR_IO, "%s: cannot rename %s onto it (%s)", path, tmp, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return st;
}

/* ---- a sweep's heatmap ---- */

hk_status hk_sweep_heatmap_svg(const hk_sweep_result *r, const char *const *pos_labels,
                               bool normalized, const char *title, const char *path,
                               bool force) {
    if (!r || !r->values) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sweep_heatmap_svg: no result");
    const float *v = normalized && r->normalized ? r->normalized : r->values;
    const bool has_pos = r->ndim >= 2 && strcmp(r->dims[1], "pos") == 0;
    const bool has_head = strcmp(r->dims[r->ndim - 1], "head") == 0;
    const int64_t L = r->shape[0], P = has_pos ? r->shape[1] : 1;
    const int64_t H = has_head ? r->shape[r->ndim - 1] : 1;
    /* rows: layers (or layer x head with positions too); columns: positions or heads */
    const int64_t rows = has_pos && has_head ? L * H : L, cols = has_pos ? P : H;
    float *grid = malloc((size_t)(rows * cols) * sizeof *grid);
    char **rl = calloc((size_t)rows, sizeof *rl), **cl = calloc((size_t)cols, sizeof *cl);
    hk_status st = HK_OK;
    if (!grid || !rl || !cl) {
        st = hk_errorf(HK_ERR_NOMEM, "hk_sweep_heatmap_svg: out of memory");
        goto done;
    }
    for (int64_t l = 0; l < L; l++)
        for (int64_t p = 0; p < P; p++)
            for (int64_t h = 0; h < H; h++) {
                float x = v[(l * P + p) * H + h];
                if (has_pos && has_head) grid[(l * H + h) * cols + p] = x;
                else if (has_pos) grid[l * cols + p] = x;
                else grid[l * cols + h] = x;
            }
    char buf[160];
    for (int64_t i = 0; i < rows; i++) {
        if (has_pos && has_head)
            snprintf(buf, sizeof buf, "L%lld H%lld", (long long)(r->layer0 + i / H),
                     (long long)(i % H));
        else
            snprintf(buf, sizeof buf, "%lld", (long long)(r->layer0 + i));
        if (!(rl[i] = strdup(buf))) st = HK_ERR_NOMEM;
    }
    for (int64_t j = 0; j < cols; j++) {
        if (has_pos && pos_labels)
            snprintf(buf, sizeof buf, "%lld %s", (long long)j, pos_labels[j]);
        else
            snprintf(buf, sizeof buf, "%lld", (long long)j);
        if (!(cl[j] = strdup(buf))) st = HK_ERR_NOMEM;
    }
    if (st != HK_OK) {
        st = hk_errorf(HK_ERR_NOMEM, "hk_sweep_heatmap_svg: out of memory");
        goto done;
    }
    char vlabel[96];
    snprintf(vlabel, sizeof vlabel, "%s", normalized && r->normalized ? "normalized logit diff"
                                          : "logit diff");
    hk_heatmap hm = {
        .values = grid, .rows = rows, .cols = cols,
        .row_labels = (const char *const *)rl, .col_labels = (const char *const *)cl,
        .title = title, .row_axis = has_pos && has_head ? "layer, head" : "layer",
        .col_axis = has_pos ? "position (token)" : "head", .value_label = vlabel,
        .diverging = true,
    };
    st = hk_heatmap_svg(&hm, path, force);
done:
    for (int64_t i = 0; rl && i < rows; i++) free(rl[i]);
    for (int64_t j = 0; cl && j < cols; j++) free(cl[j]);
    free(rl);
    free(cl);
    free(grid);
    return st;
}

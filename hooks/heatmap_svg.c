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

/* Estimated width of s in px at font size `size`, generous for a sans-serif (DejaVu Sans is
 * among the widest): em widths per character class; a multi-byte UTF-8 character counts a
 * full em (CJK glyphs are square). The layout and the cell text fitting rely on it never
 * being short of the real width. */
static double char_em(unsigned char c) {
    if (c >= 0x80) return 1.0;
    if (strchr("iljI.,:;'|!`", c)) return 0.32;
    if (strchr(" ftr()[]{}-/\\\"", c)) return 0.45;
    if (strchr("mwMW@%", c)) return 1.0;
    if (c >= 'A' && c <= 'Z') return 0.78;
    if (c >= '0' && c <= '9') return 0.66;
    if (c >= 'a' && c <= 'z') return 0.64;
    return 0.86;
}

static double text_px(const char *s, size_t n, double size) {
    double w = 0;
    for (size_t i = 0; s && i < n && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: counted with its lead */
        w += char_em(c);
    }
    return w * size;
}

static double line_px(const char *s, double size) { return text_px(s, s ? strlen(s) : 0, size); }

/* widest label of l[n] at font size `size` */
static double labels_px(const char *const *l, int64_t n, double size) {
    double w = 0;
    for (int64_t i = 0; l && i < n; i++) w = fmax(w, line_px(l[i], size));
    return w;
}

/* Bytes of the longest prefix of s (whole UTF-8 characters) that, with an ellipsis after it
 * when it is not all of s, is at most max_px wide; -1 when not even the ellipsis fits. */
static long fit_prefix(const char *s, double max_px, double size, bool *elided) {
    const size_t n = strlen(s);
    *elided = false;
    if (text_px(s, n, size) <= max_px) return (long)n;
    *elided = true;
    const double room = max_px - 1.0 * size; /* the ellipsis: one em */
    if (room < 0) return -1;
    size_t keep = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80) j++;
        if (text_px(s, j, size) > room) break;
        keep = i = j;
    }
    return (long)keep;
}

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* The title: lines split at '\n', the first bold. */
#define TITLE_SIZE 15.0
#define SUB_SIZE 12.0
#define LINE_STEP 18.0

static int title_lines(const char *t) {
    int n = 1;
    for (; t && *t; t++) n += *t == '\n';
    return n;
}

static double title_px(const char *t) {
    double w = 0;
    for (int i = 0; t; i++) {
        size_t len = strcspn(t, "\n");
        w = fmax(w, text_px(t, len, i ? SUB_SIZE : TITLE_SIZE));
        t = t[len] ? t + len + 1 : NULL;
    }
    return w;
}

static void xml_text_n(FILE *f, const char *s, size_t n) {
    char buf[512];
    while (n > 0) {
        size_t k = n < sizeof buf - 1 ? n : sizeof buf - 1;
        memcpy(buf, s, k);
        buf[k] = '\0';
        xml_text(f, buf);
        s += k;
        n -= k;
    }
}

static void write_title(FILE *f, const char *t, double x) {
    for (int i = 0; t; i++) {
        size_t len = strcspn(t, "\n");
        if (i == 0)
            fprintf(f, "<text x=\"%.1f\" y=\"24\" font-size=\"%.0f\" font-weight=\"bold\">", x,
                    TITLE_SIZE);
        else
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" fill=\"#333\">", x,
                    24 + LINE_STEP * i, SUB_SIZE);
        xml_text_n(f, t, len);
        fputs("</text>\n", f);
        t = t[len] ? t + len + 1 : NULL;
    }
}

/* The layout, in px. Everything drawn lies inside [0, width] x [0, height]: rotated column
 * labels, the legend (at least 120 px tall, so taller than a one-row grid) and its labels. */
typedef struct {
    double cw, ch, left, top, grid_w, grid_h, legend_x, legend_h, width, height;
} layout;

#define TICK_SIZE 12.0
#define CELL_SIZE 10.0
#define CELL_PAD 3.0 /* px kept clear of cell text on each side */
#define COS50 0.6428
#define SIN50 0.7660

static layout lay_out(const hk_heatmap *h, const char *lo_tick, const char *mid_tick,
                      const char *hi_tick) {
    const int64_t R = h->rows, C = h->cols;
    layout g;
    /* cells: wide enough for the widest cell text (up to 96 px) when there are few columns */
    double cmax = 48, cmin = 16;
    if (h->cell_text) {
        cmin = 44;
        cmax = clampd(labels_px(h->cell_text, R * C, CELL_SIZE) + 2 * CELL_PAD, 48, 96);
    }
    g.cw = clampd(720.0 / (double)C, cmin, cmax);
    g.ch = clampd(480.0 / (double)R, 16, 36);
    g.grid_w = g.cw * (double)C;
    g.grid_h = g.ch * (double)R;
    /* column labels are rotated 50 degrees about their end, under the middle of their cell */
    double col_w = 0, first_reach = 0;
    for (int64_t c = 0; h->col_labels && c < C; c++) {
        double w = line_px(h->col_labels[c], TICK_SIZE);
        col_w = fmax(col_w, w);
        first_reach = fmax(first_reach, w * COS50 - g.cw * ((double)c + 0.5));
    }
    if (!h->col_labels) col_w = line_px("000000", TICK_SIZE);
    const double row_w = h->row_labels ? labels_px(h->row_labels, R, TICK_SIZE)
                                       : line_px("000000", TICK_SIZE);
    g.left = fmax(34 + 6 + row_w, first_reach + 8);
    g.top = 24 + LINE_STEP * (title_lines(h->title) - 1) + 36;
    const double ticks_h = 8 + col_w * SIN50 + TICK_SIZE * COS50;
    const double grid_bottom = g.top + g.grid_h + ticks_h + 32; /* + the axis title */
    g.legend_x = g.left + g.grid_w + 30;
    g.legend_h = fmax(g.grid_h, 120);
    const double legend_bottom = g.top + g.legend_h + TICK_SIZE; /* its lowest tick label */
    double tick_w = fmax(line_px(lo_tick, TICK_SIZE),
                         fmax(line_px(mid_tick, TICK_SIZE), line_px(hi_tick, TICK_SIZE)));
    const double legend_right = g.legend_x + fmax(22 + tick_w, line_px(h->value_label, 11));
    g.width = ceil(fmax(fmax(legend_right, g.left + g.grid_w) + 12,
                        g.left + title_px(h->title) + 12));
    g.height = ceil(fmax(grid_bottom, legend_bottom + 8));
    return g;
}

static void write_cell_text(FILE *f, const char *s, double x, double y, double room, rgb k) {
    bool elided;
    long keep = fit_prefix(s, room, CELL_SIZE, &elided);
    if (keep < 0 || (keep == 0 && !elided)) return;
    /* dark text on light cells, white on dark ones */
    bool dark = k.r * 299 + k.g * 587 + k.b * 114 < 128000;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" dominant-baseline=\"middle\" "
               "font-size=\"%.0f\" fill=\"%s\">", x, y, CELL_SIZE, dark ? "white" : "black");
    xml_text_n(f, s, (size_t)keep);
    if (elided) fputs("\xE2\x80\xA6", f); /* U+2026 HORIZONTAL ELLIPSIS */
    fputs("</text>\n", f);
}

hk_status hk_heatmap_svg(const hk_heatmap *h, const char *path, bool force) {
    if (!h || !h->values || !path || h->rows < 1 || h->cols < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_heatmap_svg: NULL values or path, or an empty "
                                             "grid");
    if (!force && access(path, F_OK) == 0)
        return hk_errorf(HK_ERR_IO, "%s: file exists (pass force / --force to overwrite)", path);
    const int64_t R = h->rows, C = h->cols;
    const bool div = h->diverging;
    double vmin, vmax;
    if (h->range_max > h->range_min) {
        vmin = h->range_min;
        vmax = h->range_max;
    } else {
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < R * C; i++)
            if (isfinite(h->values[i])) {
                lo = fmin(lo, h->values[i]);
                hi = fmax(hi, h->values[i]);
            }
        if (!isfinite(lo)) lo = hi = 0;
        vmax = div ? fmax(fabs(lo), fabs(hi)) : hi;
        vmin = div ? -vmax : lo;
        if (vmax == vmin) vmax = vmin + 1;
    }
    /* a diverging scale is symmetric around 0: t = v / vmax in [-1, 1] */
    const double dmax = fmax(fabs(vmin), fabs(vmax));
#define SCALE(v) (div ? (v) / dmax : ((v) - vmin) / (vmax - vmin))
    const double ticks[3] = {vmax, div && vmin < 0 && vmax > 0 ? 0 : (vmin + vmax) / 2, vmin};
    char tick_s[3][32];
    for (int i = 0; i < 3; i++) snprintf(tick_s[i], sizeof tick_s[i], "%.3g", ticks[i]);
    const layout g = lay_out(h, tick_s[2], tick_s[1], tick_s[0]);
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
            g.width, g.height, g.width, g.height);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", g.width,
            g.height);
    write_title(f, h->title ? h->title : "", g.left);
    fputs("<g shape-rendering=\"crispEdges\">\n", f);
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            double v = h->values[r * C + c];
            rgb k = colour(SCALE(v), div);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                       "fill=\"rgb(%d,%d,%d)\"><title>",
                    g.left + g.cw * (double)c, g.top + g.ch * (double)r, g.cw, g.ch, k.r, k.g,
                    k.b);
            xml_text(f, h->row_labels ? h->row_labels[r] : "");
            fputs(" / ", f);
            xml_text(f, h->col_labels ? h->col_labels[c] : "");
            if (h->cell_text && h->cell_text[r * C + c]) {
                fputs(": ", f);
                xml_text(f, h->cell_text[r * C + c]);
            }
            fprintf(f, ": %.4g</title></rect>\n", v);
            if (h->cell_text && h->cell_text[r * C + c])
                write_cell_text(f, h->cell_text[r * C + c], g.left + g.cw * ((double)c + 0.5),
                                g.top + g.ch * ((double)r + 0.5), g.cw - 2 * CELL_PAD, k);
        }
    fprintf(f, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#444\"/>\n", g.left, g.top, g.grid_w, g.grid_h);
    for (int64_t r = 0; r < R; r++) { /* row ticks */
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">",
                g.left - 6, g.top + g.ch * ((double)r + 0.5));
        if (h->row_labels) xml_text(f, h->row_labels[r]);
        else fprintf(f, "%lld", (long long)r);
        fputs("</text>\n", f);
    }
    for (int64_t c = 0; c < C; c++) { /* column ticks, rotated */
        double x = g.left + g.cw * ((double)c + 0.5), y = g.top + g.grid_h + 8;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
                   "transform=\"rotate(-50 %.1f %.1f)\">", x, y, x, y);
        if (h->col_labels) xml_text(f, h->col_labels[c]);
        else fprintf(f, "%lld", (long long)c);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">",
            g.left + g.grid_w / 2, g.height - 12);
    xml_text(f, h->col_axis ? h->col_axis : "");
    fprintf(f, "</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" "
               "transform=\"rotate(-90 14 %.1f)\">", g.top + g.grid_h / 2, g.top + g.grid_h / 2);
    xml_text(f, h->row_axis ? h->row_axis : "");
    fputs("</text>\n", f);
    /* legend: a vertical bar from vmax (top) to vmin (bottom) in 64 steps */
    const double lh = g.legend_h, step = lh / 64;
    fprintf(f, "<g shape-rendering=\"crispEdges\">\n");
    for (int i = 0; i < 64; i++) {
        double v = vmax - (vmax - vmin) * ((double)i + 0.5) / 64;
        rgb k = colour(SCALE(v), div);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"16\" height=\"%.2f\" "
                   "fill=\"rgb(%d,%d,%d)\"/>\n", g.legend_x, g.top + step * i,
                step + (i < 63 ? 0.5 : 0), k.r, k.g, k.b);
    }
#undef SCALE
    fprintf(f, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#444\"/>\n", g.legend_x, g.top, lh);
    for (int i = 0; i < 3; i++) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" dominant-baseline=\"middle\">", g.legend_x + 22,
                g.top + lh * i / 2.0);
        xml_text(f, tick_s[i]);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", g.legend_x, g.top - 14);
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

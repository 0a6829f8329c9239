#include "mem_limit.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool cli_parse_bytes(const char *s, size_t *out) {
    if (!s || !isdigit((unsigned char)s[0])) return false;
    if (strspn(s, "0123456789") == strlen(s)) { /* a plain count of bytes */
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno || v > SIZE_MAX) return false;
        *out = (size_t)v;
        return true;
    }
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0) return false;
    double unit;
    switch (tolower((unsigned char)*end)) {
    case 'k': unit = 1024.0; break;
    case 'm': unit = 1024.0 * 1024; break;
    case 'g': unit = 1024.0 * 1024 * 1024; break;
    case 't': unit = 1024.0 * 1024 * 1024 * 1024; break;
    default: return false;
    }
    end++;
    if (*end && strcasecmp(end, "ib") != 0 && strcasecmp(end, "b") != 0) return false;
    double bytes = v * unit;
    if (!(bytes < (double)SIZE_MAX)) return false;
    *out = (size_t)bytes;
    return true;
}

int cli_mem_limit(const cli_args *a, const char *name, size_t *out) {
    *out = 0;
    const char *v = cli_str(a, name);
    if (!v) return 0;
    if (!cli_parse_bytes(v, out) || *out == 0)
        return cli_usage_error(a, "--%s: expected a positive size in bytes or with a k/m/g "
                                  "suffix (e.g. 8g, 512m), got '%s'",
                               name, v);
    return 0;
}

void cli_format_mib(size_t bytes, char *buf, size_t cap) {
    snprintf(buf, cap, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
}

void cli_format_estimate(const hk_estimate *e, char *buf, size_t cap) {
    char t[32], rt[32], w[32], mp[32], lo[32], kv[32], act[32], at[32], ch[32], lg[32],
        roll[48] = "";
    cli_format_mib(e->total, t, sizeof t);
    cli_format_mib(e->runtime, rt, sizeof rt);
    cli_format_mib(e->weights, w, sizeof w);
    cli_format_mib(e->mapping, mp, sizeof mp);
    cli_format_mib(e->load_other, lo, sizeof lo);
    cli_format_mib(e->kv_cache, kv, sizeof kv);
    cli_format_mib(e->activations, act, sizeof act);
    cli_format_mib(e->attention, at, sizeof at);
    cli_format_mib(e->cached_hooks, ch, sizeof ch);
    cli_format_mib(e->logits, lg, sizeof lg);
    if (e->kv_rolling) snprintf(roll, sizeof roll, " [rolling W=%lld]", (long long)e->kv_window);
    if (e->device == HK_DEVICE_CUDA) {
        char cx[32], bl[32];
        cli_format_mib(e->context, cx, sizeof cx);
        cli_format_mib(e->blas_workspace, bl, sizeof bl);
        snprintf(buf, cap,
                 "device total %s (context %s, cuBLAS %s, weights %s, KV cache %s%s, "
                 "activations %s, attention %s, logits %s)",
                 t, cx, bl, w, kv, roll, act, at, lg);
        return;
    }
    snprintf(buf, cap,
             "total %s (runtime %s, weights %s, mapping %s, load other %s, KV cache %s%s, "
             "activations %s, attention %s, cached hooks %s, logits %s)",
             t, rt, w, mp, lo, kv, roll, act, at, ch, lg);
}

int cli_check_mem_limit(const cli_args *a, const hk_model *m, const hk_estimate_opts *run,
                        size_t limit, hk_estimate *out) {
    hk_estimate e;
    hk_status st = hk_estimate_memory(m, run, &e);
    if (st != HK_OK)
        return cli_runtime_error(a, "cannot estimate the memory of this run: %s (%s)",
                                 hk_last_error(), hk_status_name(st));
    if (out) *out = e;
    if (limit == 0 || e.total <= limit) return 0;
    char line[512], lim[32];
    cli_format_estimate(&e, line, sizeof line);
    cli_format_mib(limit, lim, sizeof lim);
    return cli_runtime_error(a,
                             "refusing to run: the estimated memory, %s, exceeds --mem-limit "
                             "%s (%zu bytes) for batch %lld x ctx %lld",
                             line, lim, limit, (long long)run->batch, (long long)run->ctx);
}

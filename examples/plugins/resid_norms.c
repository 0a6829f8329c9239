/* resid_norms — a probe: the L2 norm of the residual stream after every block.
 *
 *   hookformer run --model M --tokens 1,2,3 --plugin ./resid_norms.so[:pos=all|last][,out=FILE]
 *
 * It hooks blocks.*.hook_resid_post ([batch, pos, d_model]) and, for every layer and sequence,
 * averages ||resid[b, p, :]||_2 over the sequence's valid positions (pos=all, the default) or
 * takes it at the last valid position (pos=last). At finish it prints a table, one row per
 * layer and one column per sequence of the last run, to stdout (or to FILE with out=FILE).
 * It only reads the activations: the logits are exactly those of a run without it.
 *
 * Build:  cc -shared -fPIC -o resid_norms.so resid_norms.c $(pkg-config --cflags hookformer)
 * A starting point for any probe: copy it, change what on_resid() accumulates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hookformer.h>

typedef struct {
    int last_only;    /* pos=last */
    FILE *out;        /* stdout, or the file of out= */
    int64_t n_layers;
    /* The last run: its batch and the valid length of each sequence. */
    int64_t batch;
    int64_t *lengths; /* [batch], NULL until begin_run told us (then: every position valid) */
    double *sum;      /* [n_layers, batch] sum of the norms */
    int64_t *count;   /* [n_layers, batch] how many norms were summed */
} probe;

static void probe_free(probe *s) {
    if (!s) return;
    if (s->out && s->out != stdout) fclose(s->out);
    free(s->lengths);
    free(s->sum);
    free(s->count);
    free(s);
}

/* (Re)size the accumulators for a run of `batch` sequences and zero them. */
static int probe_reset(probe *s, int64_t batch) {
    if (batch != s->batch) {
        free(s->sum);
        free(s->count);
        s->sum = calloc((size_t)(s->n_layers * batch), sizeof *s->sum);
        s->count = calloc((size_t)(s->n_layers * batch), sizeof *s->count);
        s->batch = batch;
        if (!s->sum || !s->count) {
            s->batch = 0;
            return -1;
        }
    } else {
        memset(s->sum, 0, (size_t)(s->n_layers * batch) * sizeof *s->sum);
        memset(s->count, 0, (size_t)(s->n_layers * batch) * sizeof *s->count);
    }
    return 0;
}

/* The callback: fires once per layer (per chunk, when a long prompt is fed in chunks). */
static hk_hook_result on_resid(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    probe *s = user;
    if (act->dtype != HK_DTYPE_F32 || act->device != HK_DEVICE_CPU || act->ndim != 3) {
        hk_hook_error("resid_norms: expected an f32 CPU tensor [batch, pos, d_model]");
        return HK_HOOK_ERROR;
    }
    /* The first call of a run (layer 0, first chunk) starts a fresh table. */
    if (ctx->layer == 0 && ctx->batch_offset == 0 && ctx->pos_offset == 0) {
        if (s->lengths && s->batch != ctx->run_batch) { /* begin_run was for another run */
            free(s->lengths);
            s->lengths = NULL;
        }
        if (probe_reset(s, ctx->run_batch) != 0) {
            hk_hook_error("resid_norms: out of memory");
            return HK_HOOK_ERROR;
        }
    }
    const float *x = act->data;
    for (int64_t b = 0; b < act->shape[0]; b++) {
        int64_t seq = ctx->batch_offset + b; /* index of this sequence in the run */
        int64_t len = s->lengths ? s->lengths[seq] : ctx->run_seq;
        for (int64_t p = 0; p < act->shape[1]; p++) {
            int64_t pos = ctx->pos_offset + p; /* absolute position */
            if (pos >= len) continue;          /* padding */
            if (s->last_only && pos != len - 1) continue;
            double ss = 0.0;
            for (int64_t i = 0; i < act->shape[2]; i++) {
                double v = x[b * act->stride[0] + p * act->stride[1] + i * act->stride[2]];
                ss += v * v;
            }
            s->sum[ctx->layer * s->batch + seq] += sqrt(ss);
            s->count[ctx->layer * s->batch + seq]++;
        }
    }
    return HK_HOOK_CONTINUE;
}

static hk_status init(const hk_model *m, hk_hooks *hooks, const hk_plugin_arg *args,
                      size_t n_args, void **state) {
    probe *s = calloc(1, sizeof *s);
    if (!s) return HK_ERR_NOMEM;
    s->out = stdout;
    s->n_layers = hk_model_n_layers(m);
    hk_status st = HK_ERR_INVALID_ARG;
    for (size_t i = 0; i < n_args; i++) {
        const char *k = args[i].key, *v = args[i].value;
        if (strcmp(k, "pos") == 0) {
            if (strcmp(v, "all") == 0) s->last_only = 0;
            else if (strcmp(v, "last") == 0) s->last_only = 1;
            else {
                hk_hook_error("pos=%s: expected 'all' or 'last'", v);
                goto fail;
            }
        } else if (strcmp(k, "out") == 0) {
            if (s->out != stdout) fclose(s->out);
            s->out = fopen(v, "w");
            if (!s->out) {
                s->out = stdout;
                hk_hook_error("out=%s: cannot open for writing", v);
                st = HK_ERR_IO;
                goto fail;
            }
        } else {
            hk_hook_error("unknown argument '%s' (expected pos=all|last, out=FILE)", k);
            goto fail;
        }
    }
    /* One registration covers every layer: a glob over the hook names. */
    if ((st = hk_hooks_add(hooks, "blocks.*.hook_resid_post", on_resid, s, NULL)) != HK_OK) {
        hk_hook_error("%s", hk_last_error());
        goto fail;
    }
    *state = s;
    return HK_OK;
fail:
    probe_free(s);
    return st;
}

/* Called by the host before each run: remember the valid length of every sequence. */
static hk_status begin_run(void *state, const int32_t *tokens, const int64_t *lengths,
                           int64_t batch, int64_t seq) {
    (void)tokens, (void)seq;
    probe *s = state;
    free(s->lengths);
    s->lengths = NULL;
    if (lengths) {
        s->lengths = malloc((size_t)batch * sizeof *s->lengths);
        if (!s->lengths) return HK_ERR_NOMEM;
        memcpy(s->lengths, lengths, (size_t)batch * sizeof *s->lengths);
    }
    return probe_reset(s, batch) == 0 ? HK_OK : HK_ERR_NOMEM;
}

static hk_status finish(void *state) {
    probe *s = state;
    FILE *f = s->out;
    fprintf(f, "# resid_norms: L2 norm of blocks.*.hook_resid_post, %s\n",
            s->last_only ? "at the last valid position" : "mean over the valid positions");
    if (s->batch == 0) {
        fprintf(f, "# (no run)\n");
    } else {
        fprintf(f, "%5s", "layer");
        for (int64_t b = 0; b < s->batch; b++) {
            char col[32];
            snprintf(col, sizeof col, "seq %lld", (long long)b);
            fprintf(f, "  %12s", col);
        }
        fputc('\n', f);
        for (int64_t l = 0; l < s->n_layers; l++) {
            fprintf(f, "%5lld", (long long)l);
            for (int64_t b = 0; b < s->batch; b++) {
                int64_t n = s->count[l * s->batch + b];
                if (n) fprintf(f, "  %12.6f", s->sum[l * s->batch + b] / (double)n);
                else fprintf(f, "  %12s", "-"); /* the run stopped before this layer */
            }
            fputc('\n', f);
        }
    }
    int bad = ferror(f) || fflush(f) != 0;
    probe_free(s);
    if (bad) {
        hk_hook_error("cannot write the table");
        return HK_ERR_IO;
    }
    return HK_OK;
}

static const hk_plugin_desc desc = {
    .abi_version = HK_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(hk_plugin_desc),
    .name = "resid_norms",
    .usage = "L2 norm of blocks.*.hook_resid_post per layer and sequence; "
             "args: pos=all|last (default all), out=FILE (default stdout)",
    .init = init,
    .finish = finish,
    .begin_run = begin_run,
};

HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void) { return &desc; }

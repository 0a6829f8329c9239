/* hookformer cache: run a model over many sequences and stream the activations of the chosen
 * hooks into an HDF5 store (hk_store_*, docs/FORMAT.md). Progress goes to stderr: a bar
 * redrawn in place on a terminal, a plain line every few seconds otherwise. */
#include "commands.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache_dist.h"
#include "cli_opts.h"
#include "device.h"
#include "hookformer.h"
#include "out_path.h"
#include "plugins.h"
#include "prompt.h"
#include "sae_opts.h"

static const cli_opt cache_opts[] = {
    {"model", "DIR", "Hugging Face checkpoint folder; required"},
    CLI_OPTS_DEVICE,
    CLI_OPTS_PROMPT,
    {"tokens-file", "FILE", "one sequence of token ids per line (comma or space separated)"},
    {"hooks", "GLOBS", "hook names or globs, comma-separated (blocks.*.hook_resid_post); required"},
    {"out", "FILE", "the HDF5 file to write; required"},
    {"dtype", "T", "stored dtype: f32 (default), f16 or bf16"},
    {"batch", "B", "sequences per forward (default 8)"},
    {"chunk", "C", "feed each batch C positions at a time through a KV cache (a rolling "
                   "buffer on sliding-window layers): long sequences at one chunk's "
                   "activation memory (default: one forward per batch)"},
    {"ctx", "N", "keep the first N tokens of each sequence; padded length of stored attention "
                 "(default: no cut; patterns padded to the longest sequence)"},
    {"positions", "SEL", "all (default), last, or a Python slice A:B of each sequence's tokens"},
    {"append", NULL, "add rows to an existing store (model, hooks, dtype must match)"},
    {"resume", NULL, "continue an interrupted run: skip the sequences the file holds"},
    {"force", NULL, "replace an existing file"},
    {"compress", "C", "none (default), deflate, deflate:N (1..9), lz4 (with the filter plugin)"},
    {"commit-secs", "S", "commit at most every S seconds (default 1; 0 after every batch)"},
    {"fsync", NULL, "fsync each commit (survives power loss; slower)"},
    {"threads", "N", "threads for GEMM and the kernels (default: the library's choice)"},
    {"sae", "DIR", "store this SAE's feature activations sparsely (CSR) instead of --hooks; "
                   "repeatable (one per hook)"},
    CLI_OPT_SAE_HOOK,
    CLI_OPT_PLUGIN,
    {NULL, NULL, NULL},
};

typedef struct {
    int32_t *ids;  /* all tokens, sequence after sequence */
    int64_t *off;  /* [n + 1] start of sequence i in ids */
    int64_t n;
} seq_list;

static void seq_list_free(seq_list *l) {
    free(l->ids);
    free(l->off);
}

/* Read sequences of token ids, one per line, separated by commas and/or spaces; blank lines
 * are skipped (--tokens-file; the other prompt options go through tools/prompt.c). */
static int read_sequences(const cli_args *a, const char *opt, const char *path, int64_t vocab,
                          seq_list *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) return cli_runtime_error(a, "--%s %s: %s", opt, path, strerror(errno));
    size_t cap_ids = 4096, cap_off = 256, n_ids = 0;
    out->ids = malloc(cap_ids * sizeof *out->ids);
    out->off = malloc(cap_off * sizeof *out->off);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    int64_t lineno = 0;
    int rc = 0;
    if (!out->ids || !out->off) rc = cli_runtime_error(a, "out of memory");
    while (rc == 0 && (len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        size_t start = n_ids;
        for (char *p = line; rc == 0;) {
            while (*p == ',' || isspace((unsigned char)*p)) p++;
            if (!*p) break;
            char *end;
            errno = 0;
            long long v = strtoll(p, &end, 10);
            if (end == p || errno || v < 0 || v >= vocab || (*end && *end != ',' &&
                                                              !isspace((unsigned char)*end))) {
                rc = cli_usage_error(a, "--%s %s: line %lld: expected token ids in [0, %lld) "
                                        "separated by commas or spaces, got '%.*s'",
                                     opt, path, (long long)lineno, (long long)vocab,
                                     (int)strcspn(p, ", \t\r\n"), p);
                break;
            }
            if (n_ids == cap_ids) {
                int32_t *ids = realloc(out->ids, 2 * cap_ids * sizeof *ids);
                if (!ids) {
                    rc = cli_runtime_error(a, "out of memory");
                    break;
                }
                out->ids = ids;
                cap_ids *= 2;
            }
            out->ids[n_ids++] = (int32_t)v;
            p = end;
        }
        if (rc || n_ids == start) continue;
        if ((size_t)out->n + 2 > cap_off) {
            int64_t *off = realloc(out->off, 2 * cap_off * sizeof *off);
            if (!off) {
                rc = cli_runtime_error(a, "out of memory");
                break;
            }
            out->off = off;
            cap_off *= 2;
        }
        out->off[out->n++] = (int64_t)start;
    }
    free(line);
    fclose(f);
    if (rc == 0 && out->n == 0) rc = cli_usage_error(a, "--%s %s: no sequences in the file", opt, path);
    if (rc) {
        seq_list_free(out);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->off[out->n] = (int64_t)n_ids;
    return 0;
}

/* Encoded prompts (--prompts, --prompt, --tokens) as a sequence list. */
static int prompts_to_sequences(const cli_args *a, const cli_prompts *p, seq_list *out) {
    size_t total = 0;
    for (size_t i = 0; i < p->n; i++) total += p->v[i].n;
    out->ids = malloc((total ? total : 1) * sizeof *out->ids);
    out->off = malloc((p->n + 1) * sizeof *out->off);
    if (!out->ids || !out->off) return cli_runtime_error(a, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        out->off[i] = (int64_t)k;
        memcpy(out->ids + k, p->v[i].ids, p->v[i].n * sizeof *out->ids);
        k += p->v[i].n;
    }
    out->off[p->n] = (int64_t)k;
    out->n = (int64_t)p->n;
    return 0;
}

/* ---- progress ---- */

typedef struct {
    bool tty;
    double t0, last;
    int64_t total;
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_show(progress *p, int64_t seqs, int64_t tokens, uint64_t bytes, bool final) {
    double t = now_s();
    if (!final && t - p->last < (p->tty ? 0.2 : 5.0)) return;
    p->last = t;
    double el = t - p->t0 > 1e-9 ? t - p->t0 : 1e-9;
    double mib = (double)bytes / 1048576.0;
    if (p->tty) {
        int width = 24, fill = p->total ? (int)(width * seqs / p->total) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : ' ';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %lld/%lld sequences  %.0f tokens/s  %.1f MiB written%s", bar,
                (long long)seqs, (long long)p->total, (double)tokens / el, mib,
                final ? "\n" : "");
    } else {
        fprintf(stderr, "cache: %lld/%lld sequences, %lld tokens, %.0f tokens/s, %.1f MiB "
                        "written, %.1f s\n",
                (long long)seqs, (long long)p->total, (long long)tokens, (double)tokens / el, mib,
                el);
    }
    fflush(stderr);
}

static volatile sig_atomic_t interrupted; /* the signal that stopped the run, or 0 */
static void on_interrupt(int sig) { interrupted = sig; }

/* ---- an existing store: settings for --append / --resume ---- */

typedef struct {
    bool exists;
    int64_t n_sequences, ctx;
    char dtype[16], positions[64];
    char *hooks;  /* the stored hook names, comma-separated (malloc'ed) */
} file_settings;

static int read_file_settings(const cli_args *a, const char *path, hk_store **out,
                              file_settings *fs) {
    memset(fs, 0, sizeof *fs);
    *out = NULL;
    if (access(path, F_OK) != 0) return 0;
    hk_status st = hk_store_open(path, out);
    if (st != HK_OK)
        return cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    hk_store_info info;
    hk_store_get_info(*out, &info);
    fs->exists = true;
    fs->n_sequences = info.n_sequences;
    fs->ctx = info.ctx;
    snprintf(fs->dtype, sizeof fs->dtype, "%s", strcmp(info.dtype, "float16") == 0 ? "f16"
                                               : strcmp(info.dtype, "bfloat16") == 0 ? "bf16"
                                                                                    : "f32");
    snprintf(fs->positions, sizeof fs->positions, "%s", info.positions);
    size_t len = 1;
    for (size_t i = 0; i < info.n_hooks; i++) {
        hk_store_hook_info h;
        hk_store_hook_at(*out, i, &h);
        len += strlen(h.name) + 1;
    }
    fs->hooks = calloc(len, 1);
    if (!fs->hooks) return cli_runtime_error(a, "out of memory");
    for (size_t i = 0; i < info.n_hooks; i++) {
        hk_store_hook_info h;
        hk_store_hook_at(*out, i, &h);
        if (i) strcat(fs->hooks, ",");
        strcat(fs->hooks, h.name);
    }
    return 0;
}

/* --resume: the file's sequences must be the corpus's first ones (cut to ctx), token for
 * token; then they are skipped. */
static int check_resume(const cli_args *a, const char *path, const char *corpus, hk_store *rs,
                        const seq_list *seqs, int64_t ctx, int64_t n_file) {
    if (n_file > seqs->n)
        return cli_runtime_error(a, "--resume: %s holds %lld sequences, %s has %lld: not the "
                                    "same corpus",
                                 path, (long long)n_file, corpus, (long long)seqs->n);
    hk_store_info info;
    hk_store_get_info(rs, &info);
    int32_t *tok = malloc((size_t)(info.n_rows ? info.n_rows : 1) * sizeof *tok);
    if (!tok) return cli_runtime_error(a, "out of memory");
    hk_status st = hk_store_read_token_ids(rs, 0, info.n_rows, tok);
    int rc = st == HK_OK ? 0 : cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    for (int64_t q = 0; rc == 0 && q < n_file; q++) {
        int64_t len, row, pos, nr;
        if ((st = hk_store_sequence(rs, q, &len, &row, &pos, &nr)) != HK_OK) {
            rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
            break;
        }
        int64_t want = seqs->off[q + 1] - seqs->off[q];
        if (ctx > 0 && want > ctx) want = ctx;
        bool same = len == want;
        for (int64_t k = 0; same && k < nr; k++)
            same = tok[row + k] == seqs->ids[seqs->off[q] + pos + k];
        if (!same)
            rc = cli_runtime_error(a, "--resume: sequence %lld of %s (%lld tokens) is not "
                                      "sequence %lld of %s (%lld tokens): not the same corpus "
                                      "(--append adds sequences to a file)",
                                   (long long)q, path, (long long)len, (long long)q, corpus,
                                   (long long)want);
    }
    free(tok);
    return rc;
}

/* ---- the command ---- */

static int split_hooks(const cli_args *a, char *list, const char **out, size_t cap, size_t *n) {
    *n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        while (isspace((unsigned char)*tok)) tok++;
        if (!*tok) continue;
        if (*n == cap) return cli_usage_error(a, "--hooks: more than %zu patterns", cap);
        out[(*n)++] = tok;
    }
    if (*n == 0) return cli_usage_error(a, "--hooks: expected hook names or globs, got none");
    return 0;
}

/* --sae: every sequence's valid tokens through the SAEs (observe mode), their feature
 * activations stored sparsely (hk_sae_store_*, docs/FORMAT.md). */
static int cache_sae(const cli_args *a, hk_model *m, hk_hooks *hooks, const seq_list *seqs,
                     int64_t batch, int64_t ctx, const char *out_path, bool force,
                     cli_plugins *plugins) {
    const char *dirs[16];
    const size_t n = cli_strs(a, "sae", dirs, 16);
    hk_sae *saes[16] = {0};
    hk_sae_store *store = NULL;
    int32_t *tokens = NULL;
    int64_t *lengths = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) rc = cli_sae_load(a, dirs[i], &saes[i]);
    hk_status st = HK_OK;
    if (!rc) {
        st = hk_sae_store_create(out_path, force, m, (const hk_sae *const *)saes, n, &store);
        if (!st) st = hk_sae_store_attach(store, hooks);
        if (st) rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    }
    tokens = rc ? NULL : malloc((size_t)(batch * ctx) * sizeof *tokens); /* [batch, seq] */
    lengths = rc ? NULL : malloc((size_t)batch * sizeof *lengths);
    if (!rc && (!tokens || !lengths)) rc = cli_runtime_error(a, "out of memory");
    progress pg = {isatty(STDERR_FILENO) == 1, now_s(), 0, seqs->n};
    pg.last = pg.t0;
    int64_t done_tokens = 0;
    for (int64_t i = 0; !rc && i < seqs->n && !interrupted; i += batch) {
        int64_t nb = seqs->n - i < batch ? seqs->n - i : batch, seq = 0;
        for (int64_t b = 0; b < nb; b++) {
            int64_t len = seqs->off[i + b + 1] - seqs->off[i + b];
            lengths[b] = len < ctx ? len : ctx;
            if (lengths[b] > seq) seq = lengths[b];
        }
        for (int64_t b = 0; b < nb; b++) {
            memcpy(tokens + b * seq, seqs->ids + seqs->off[i + b], (size_t)lengths[b] * sizeof *tokens);
            for (int64_t p = lengths[b]; p < seq; p++) tokens[b * seq + p] = 0; /* padding */
            done_tokens += lengths[b];
        }
        if ((rc = cli_plugins_begin_run(a, plugins, tokens, lengths, nb, seq))) break;
        if ((st = hk_sae_store_run(store, m, hooks, tokens, lengths, nb, seq)) != HK_OK)
            rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
        else
            progress_show(&pg, i + nb, done_tokens, 0, false);
    }
    if (!rc && interrupted) {
        rc = cli_runtime_error(a, "interrupted: %s was not written (a --sae file is complete or "
                                  "absent)", out_path);
        rc = 128 + interrupted;
    }
    int64_t nnz = store ? hk_sae_store_nnz(store, 0) : 0;
    if (store && rc) hk_sae_store_discard(store);
    else if (store && (st = hk_sae_store_close(store)) != HK_OK)
        rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    if (!rc) {
        progress_show(&pg, seqs->n, done_tokens, 0, true);
        fprintf(stderr, "cache: wrote the features of %zu SAE%s over %lld sequences (%lld tokens; "
                        "%.1f active features per token in the first) to %s\n",
                n, n == 1 ? "" : "s", (long long)seqs->n, (long long)done_tokens,
                done_tokens ? (double)nnz / (double)done_tokens : 0.0, out_path);
    }
    for (size_t i = 0; i < n; i++) hk_sae_free(saes[i]);
    free(tokens);
    free(lengths);
    return rc;
}

static int cache_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    const char *dir, *out_path, *hooks_arg = cli_str(&a, "hooks");
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_load_opts load_opts;
    if ((rc = cli_load_opts(&a, &load_opts))) return rc;
    if ((rc = cli_require_str(&a, "out", &out_path))) return rc;
    const bool resume = cli_has(&a, "resume");
    bool append = cli_has(&a, "append");
    if (resume && append)
        return cli_usage_error(&a, "--resume continues the run that made the file, --append adds "
                                   "other sequences to it: give one of them");
    const bool sae = cli_has(&a, "sae");
    if (sae && (hooks_arg || resume || append || cli_has(&a, "dtype") || cli_has(&a, "positions") ||
                cli_has(&a, "compress") || cli_has(&a, "commit-secs") || cli_has(&a, "fsync")))
        return cli_usage_error(&a, "--sae stores the SAEs' features at every token, in f32, in a "
                                   "new file: it goes without --hooks, --append, --resume, "
                                   "--dtype, --positions, --compress, --commit-secs and --fsync");
    if (!sae && cli_has(&a, "sae-hook")) return cli_usage_error(&a, "--sae-hook goes with --sae");
    if (!sae && !hooks_arg && !resume && (rc = cli_require_str(&a, "hooks", &hooks_arg))) return rc;
    if (sae) hooks_arg = "hook_embed"; /* unused: the SAE branch stores no dense hook */
    const char *tokens_file = cli_str(&a, "tokens-file");
    const bool by_prompt = cli_has(&a, "tokens") || cli_has(&a, "prompt") || cli_has(&a, "prompts");
    if (by_prompt == (tokens_file != NULL))
        return cli_usage_error(&a, "give exactly one of --prompts FILE, --prompt TEXT, --tokens "
                                   "IDS and --tokens-file FILE");
    if (tokens_file && (cli_has(&a, "prepend-bos") || cli_has(&a, "no-prepend-bos")))
        return cli_usage_error(&a, "--tokens-file holds ids as they are: --prepend-bos and "
                                   "--no-prepend-bos go with text prompts");
    int64_t batch, ctx, threads, chunk;
    if ((rc = cli_int(&a, "batch", 1, 1 << 20, 8, &batch))) return rc;
    if ((rc = cli_int(&a, "chunk", 1, INT64_MAX / 2, 0, &chunk))) return rc;
    if ((rc = cli_int(&a, "ctx", 1, INT32_MAX, 0, &ctx))) return rc;
    if ((rc = cli_int(&a, "threads", 1, 1024, 0, &threads))) return rc;
    hk_store_opts o = hk_store_default_opts();
    o.compress = cli_str(&a, "compress");
    o.force = cli_has(&a, "force");
    o.fsync = cli_has(&a, "fsync");
    o.overlap = true; /* rows written by a second thread while the next batch runs */
    if ((append || resume) && o.force)
        return cli_usage_error(&a, "--%s and --force exclude each other",
                               append ? "append" : "resume");
    /* under mpirun the store is this rank's shard of --out (cache_dist.h) */
    cache_plan plan;
    if ((rc = cache_plan_init(&a, out_path, resume, append, o.force, batch, &plan))) {
        cache_plan_free(&plan);
        return rc;
    }
    if (sae && plan.dist) {
        cache_plan_free(&plan);
        return cli_usage_error(&a, "--sae runs in one process: its CSR file is not sharded "
                                   "across MPI ranks (run it without mpirun/srun)");
    }
    out_path = plan.store_path;
    o.corpus_ids = plan.dist;
    /* before any work: the file to add to opens for writing, a new one's folder takes it */
    const bool adds = append || (resume && access(out_path, F_OK) == 0);
    if (!plan.dist &&
        (rc = cli_check_output(&a, "out", adds ? CLI_OUT_EXISTING : CLI_OUT_NEW, o.force)))
        return rc;
    const char *cs = cli_str(&a, "commit-secs");
    if (cs) {
        char *end;
        errno = 0;
        o.commit_seconds = strtod(cs, &end);
        if (end == cs || *end || errno || !(o.commit_seconds >= 0)) {
            cache_plan_free(&plan);
            return cli_usage_error(&a, "--commit-secs: expected seconds >= 0, got '%s'", cs);
        }
    }
    /* the file to add to: --resume takes its settings, --append its ctx */
    hk_store *rs = NULL;
    file_settings fs = {0};
    if ((append || resume) && (rc = read_file_settings(&a, plan.settings_path, &rs, &fs))) {
        cache_plan_free(&plan);
        return rc;
    }
    const bool resuming = resume && fs.exists;
    append = append || resuming;
    const char *dt = cli_str(&a, "dtype");
    if (!dt && resuming) dt = fs.dtype;
    o.positions = cli_str(&a, "positions");
    if (!o.positions && resuming) o.positions = fs.positions;
    if (!hooks_arg) hooks_arg = fs.hooks;
    if (!dt || strcmp(dt, "f32") == 0) o.dtype = HK_DTYPE_F32;
    else if (strcmp(dt, "f16") == 0) o.dtype = HK_DTYPE_F16;
    else if (strcmp(dt, "bf16") == 0) o.dtype = HK_DTYPE_BF16;
    else rc = cli_usage_error(&a, "--dtype: expected f32, f16 or bf16, got '%s'", dt);
    if (!rc && !hooks_arg)
        rc = cli_usage_error(&a, "--hooks: required for a new file (%s does not exist yet)",
                             out_path);
    cli_plugins plugins = {0};
    if (!rc) rc = cli_plugins_read(&a, &plugins);
    cli_prompts prompts = {0};
    if (!rc && by_prompt) rc = cli_prompts_read(&a, &prompts);
    char *hooks_copy = rc ? NULL : strdup(hooks_arg);
    const char *patterns[64];
    size_t n_patterns = 0;
    if (!rc && !hooks_copy) rc = cli_runtime_error(&a, "out of memory");
    if (!rc) rc = split_hooks(&a, hooks_copy, patterns, 64, &n_patterns);
    if (rc) {
        hk_store_close(rs);
        free(fs.hooks);
        free(hooks_copy);
        cli_prompts_free(&prompts);
        cache_plan_free(&plan);
        return rc;
    }
    if (threads > 0) hk_set_num_threads((int)threads);

    hk_model *m = NULL;
    hk_store *store = NULL;
    hk_hooks *hooks = NULL; /* with --plugin: the plugins' hooks, then the store's */
    struct sigaction sa, old_int, old_term;
    bool handlers = false;
    seq_list seqs = {0};
    int32_t *tokens = NULL;
    int64_t *lengths = NULL;
    hk_status st = hk_model_load_opts(dir, &load_opts, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }
    cli_device_note("cache", m); /* mpirun: which device this rank runs on */
    if (tokens_file) {
        if ((rc = read_sequences(&a, "tokens-file", tokens_file, hk_model_vocab_size(m), &seqs)))
            goto done;
    } else if ((rc = cli_prompts_encode(&a, m, dir, &prompts)) ||
               (rc = prompts_to_sequences(&a, &prompts, &seqs))) {
        goto done;
    }
    /* The stored ctx depends on the settings, never on the lines a run sees: --ctx; else the
     * file's (--append, --resume); else, for attention patterns (padded to it), the longest
     * sequence of the corpus; else 0, no cut. A run pads its batches to the stored ctx, or
     * to its longest sequence (capped by learned positions). */
    bool hard = false;
    int64_t max_pos = hk_model_max_positions(m, &hard), longest = 0, truncated = 0;
    for (int64_t i = 0; i < seqs.n; i++)
        if (seqs.off[i + 1] - seqs.off[i] > longest) longest = seqs.off[i + 1] - seqs.off[i];
    const int64_t capped = hard && max_pos > 0 && longest > max_pos ? max_pos : longest;
    int64_t store_ctx = ctx;
    if (!store_ctx && fs.exists) store_ctx = fs.ctx;
    if (!store_ctx && !fs.exists && !sae && hk_store_needs_ctx(m, patterns, n_patterns))
        store_ctx = capped;
    ctx = store_ctx ? store_ctx : capped;
    if (hard && max_pos > 0 && ctx > max_pos) {
        rc = cli_usage_error(&a, "--ctx %lld: this model has %lld learned positions", (long long)ctx,
                             (long long)max_pos);
        goto done;
    }
    const int64_t skip = resuming && !plan.dist ? fs.n_sequences : 0;
    if (resuming && !plan.dist &&
        (rc = check_resume(&a, out_path, tokens_file ? tokens_file : "the prompts", rs, &seqs,
                           ctx, skip)))
        goto done;
    hk_store_close(rs);
    rs = NULL;
    if ((rc = cache_plan_todo(&plan, &a, seqs.ids, seqs.off, seqs.n, ctx, skip))) goto done;
    int64_t expected = 0;
    for (int64_t j = 0; j < plan.n_todo; j++) {
        const int64_t i = plan.todo[j], len = seqs.off[i + 1] - seqs.off[i];
        truncated += len > ctx;
        expected += o.positions && strcmp(o.positions, "last") == 0 ? 1 : (len < ctx ? len : ctx);
    }
    if (resuming && plan.n_todo == 0) {
        fprintf(stderr, "cache: %s holds all %lld sequences already; nothing to do\n",
                plan.dist ? "the shards" : out_path, (long long)seqs.n);
        rc = CLI_EXIT_OK;
        goto done;
    }
    if (sae) {
        if ((st = hk_hooks_new(m, &hooks)) != HK_OK) {
            rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
            goto done;
        }
        if (plugins.n_specs && (rc = cli_plugins_load(&a, &plugins, m, hooks))) goto done;
        handlers = true;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_interrupt;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        rc = cache_sae(&a, m, hooks, &seqs, batch, ctx, out_path, o.force, &plugins);
        if (truncated && !rc)
            fprintf(stderr, "cache: %lld sequences were cut to --ctx %lld tokens\n",
                    (long long)truncated, (long long)ctx);
        goto done;
    }
    o.ctx = store_ctx;
    o.expected_rows = cache_plan_expected_rows(&plan, expected); /* a shard: its share */
    /* plugins load before the store is opened: one that fails leaves no file behind */
    if (plugins.n_specs) {
        if ((st = hk_hooks_new(m, &hooks)) != HK_OK) {
            rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
            goto done;
        }
        if ((rc = cli_plugins_load(&a, &plugins, m, hooks))) goto done;
    }
    st = append && access(out_path, F_OK) == 0 /* dist: a rank may have no shard yet */
             ? hk_store_append(out_path, m, patterns, n_patterns, &o, &store)
                : hk_store_create(out_path, m, patterns, n_patterns, &o, &store);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    /* the store's hooks go after the plugins' (so it records their modified values) */
    if (hooks && (st = hk_store_attach(store, hooks)) != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    tokens = malloc((size_t)(batch * ctx) * sizeof *tokens); /* [batch, seq] */
    lengths = malloc((size_t)batch * sizeof *lengths);
    if (!tokens || !lengths) {
        rc = cli_runtime_error(&a, "out of memory for a batch of %lld x %lld tokens",
                               (long long)batch, (long long)ctx);
        goto done;
    }
    /* the handler stays until the function returns: a signal during the final commit and
     * close only marks the run, it never kills the process half-way through the close */
    handlers = true;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    progress pg = {isatty(STDERR_FILENO) == 1, now_s(), 0, seqs.n};
    pg.last = pg.t0;
    int64_t done_seqs = seqs.n - plan.n_todo, done_tokens = 0, k;
    while (!interrupted && (rc = cache_plan_next(&plan, &a, &k)) == 0 && k >= 0) {
        const int64_t *ids; /* the batch's corpus sequences */
        int64_t nb = cache_plan_batch(&plan, k, &ids), seq = 0;
        for (int64_t b = 0; b < nb; b++) {
            int64_t len = seqs.off[ids[b] + 1] - seqs.off[ids[b]];
            lengths[b] = len < ctx ? len : ctx;
            if (lengths[b] > seq) seq = lengths[b];
        }
        for (int64_t b = 0; b < nb; b++) {
            memcpy(tokens + b * seq, seqs.ids + seqs.off[ids[b]], (size_t)lengths[b] * sizeof *tokens);
            for (int64_t p = lengths[b]; p < seq; p++) tokens[b * seq + p] = 0; /* padding */
            done_tokens += lengths[b];
        }
        if ((rc = cli_plugins_begin_run(&a, &plugins, tokens, lengths, nb, seq))) break;
        if (plan.dist && (st = hk_store_set_corpus_ids(store, ids, nb)) != HK_OK) break;
        st = chunk > 0 ? hk_store_run_chunked(store, m, hooks, tokens, lengths, nb, seq, chunk)
                       : hk_store_run_hooks(store, m, hooks, tokens, lengths, nb, seq);
        if (st != HK_OK) break;
        done_seqs += nb;
        progress_show(&pg, done_seqs, done_tokens, hk_store_get_stats(store).bytes_written, false);
    }
    hk_store_stats stats = hk_store_get_stats(store);
    hk_status cst = hk_store_close(store);
    store = NULL;
    if (rc) goto done; /* a plugin's begin_run or the hand-out failed (said so) */
    if (st != HK_OK || cst != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st != HK_OK ? st : cst));
        goto done;
    }
    progress_show(&pg, done_seqs, done_tokens, stats.bytes_written, true);
    if (truncated)
        fprintf(stderr, "cache: %lld sequences were cut to --ctx %lld tokens\n",
                (long long)truncated, (long long)ctx);
    if (interrupted && done_seqs < seqs.n) {
        /* as shells expect of a program a signal stopped: 128 + the signal */
        cli_runtime_error(&a, "interrupted: %s holds the %lld sequences stored before the signal; "
                              "the same command with --resume continues",
                          out_path, (long long)done_seqs);
        rc = 128 + interrupted;
        goto done;
    }
    fprintf(stderr, "cache: wrote %lld sequences (%lld tokens) to %s%s\n",
            (long long)(done_seqs - skip), (long long)done_tokens, out_path,
            skip ? " after the sequences it held" : "");
    rc = CLI_EXIT_OK;
done:
    hk_store_close(rs);
    if (store) hk_store_close(store);
    rc = cache_plan_finish(&plan, &a, rc); /* mpirun: the root file over the shards */
    cache_plan_free(&plan);
    rc = cli_plugins_finish(&a, &plugins, rc);
    hk_hooks_free(hooks);
    free(tokens);
    free(lengths);
    seq_list_free(&seqs);
    cli_prompts_free(&prompts);
    free(hooks_copy);
    free(fs.hooks);
    if (m) hk_model_free(m);
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    return rc;
}

const cli_command cmd_cache = {
    .name = "cache",
    .summary = "Stream the activations of chosen hooks over many sequences to an HDF5 file.",
    .usage = "--model DIR (--prompts FILE | --prompt TEXT | --tokens IDS | --tokens-file FILE)\n"
             "       --hooks GLOB[,GLOB...] --out "
             "FILE.h5 [--dtype f32|f16|bf16] [--batch B] [--chunk C] [--ctx N] [--positions all|last|A:B] "
             "[--append | --resume] [--force] [--compress C] [--plugin SPEC]...",
    .description =
        "Runs the model over the sequences in batches of B and writes, for every hook that\n"
        "matches, one row per selected token to a dataset named after the hook, with aligned\n"
        "seq_id / position / token_id datasets (docs/FORMAT.md). Attention patterns are stored\n"
        "per sequence, padded to --ctx. Rows are committed every --commit-secs seconds: a run\n"
        "killed at any moment leaves a file that h5py opens, holding every committed row.\n"
        "An existing file is replaced only with --force; --append adds rows when the model\n"
        "(by content), hooks, dtype, positions and ctx match. A refused --append leaves the\n"
        "file byte-identical. Ctrl-C ends the run after a clean commit, exit status 130; the\n"
        "same command with --resume (hooks, dtype, positions and ctx come from the file)\n"
        "skips the sequences the file holds and stores the rest. A full disk ends the run\n"
        "with an error and a readable file. Progress goes to stderr. The forward stops after\n"
        "the last layer a stored hook needs. --plugin (repeatable) runs plugins' hooks first,\n"
        "so the store holds the activations under their intervention (e.g. ablate_heads.so).\n"
        "--chunk C feeds each batch C positions at a time through a KV cache (every block\n"
        "runs; sliding-window layers keep a rolling buffer of W slots): a long sequence\n"
        "costs one chunk's activations; the rows stored are the same (bidirectional models\n"
        "have no KV cache: refused).\n"
        "Under mpirun / srun, rank 0 hands out the batches, each rank writes its shard\n"
        "FILE.h5.rankNNNN and rank 0 joins them into FILE.h5 (HDF5 virtual datasets, corpus\n"
        "order); --resume runs the sequences no shard holds (docs/FORMAT.md).\n"
        "\n"
        "Sequences: --prompts FILE (text, one prompt per line), --prompt TEXT, --tokens IDS\n"
        "(one sequence), or --tokens-file FILE (one sequence of ids per line, comma or space\n"
        "separated, stored as they are). Text is encoded as 'hookformer run' encodes it:\n"
        CLI_PROMPT_HELP "\n"
        "\n"
        "example:\n"
        "  hookformer cache --model tests/fixtures/gpt2 --tokens-file ids.txt \\\n"
        "      --hooks 'blocks.*.hook_resid_post' --out acts.h5 --dtype f16",
    .opts = cache_opts,
    .main = cache_main,
};

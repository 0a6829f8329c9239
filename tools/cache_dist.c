/* The plan of a cache run, single or distributed (cache_dist.h). */
#include "cache_dist.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "out_path.h"

/* The shards of OUT that exist (OUT.rank and 4 digits), sorted; NULL-terminated. */
static char **list_shards(const char *out, size_t *n) {
    size_t len = strlen(out);
    char *pat = malloc(len * 2 + 32);
    *n = 0;
    if (!pat) return NULL;
    /* the root's name may hold glob characters: escape them */
    char *q = pat;
    for (const char *c = out; *c; c++) {
        if (strchr("*?[\\", *c)) *q++ = '\\';
        *q++ = *c;
    }
    strcpy(q, ".rank[0-9][0-9][0-9][0-9]");
    glob_t g;
    int rc = glob(pat, 0, NULL, &g);
    free(pat);
    char **v = calloc((rc == 0 ? g.gl_pathc : 0) + 1, sizeof *v);
    if (!v) {
        if (rc == 0) globfree(&g);
        return NULL;
    }
    if (rc == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) v[(*n)++] = strdup(g.gl_pathv[i]);
        globfree(&g); /* glob sorts */
    }
    return v;
}

static void free_list(char **v) {
    for (size_t i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

static int shard_rank(const char *out, const char *shard) {
    return atoi(shard + strlen(out) + 5);
}

int cache_plan_init(const cli_args *a, const char *out, bool resume, bool append, bool force,
                    int64_t batch, cache_plan *p) {
    memset(p, 0, sizeof *p);
    p->out = p->store_path = p->settings_path = out;
    p->resume = resume;
    p->force = force;
    p->batch = batch;
    const cli_dist_info *d = cli_dist();
    if (!d) return 0;
    p->dist = true;
    p->rank = d->rank;
    p->size = d->size;
    if (append)
        return cli_usage_error(a, "--append under mpirun: the shards of a distributed run take "
                                  "--resume (the same corpus), not other sequences");
    size_t len = strlen(out) + 16;
    if (!(p->shard = malloc(len))) return cli_runtime_error(a, "out of memory");
    snprintf(p->shard, len, "%s.rank%04d", out, p->rank);
    p->store_path = p->settings_path = p->shard;
    /* the folder takes the root (and so the shards beside it) */
    int rc = cli_check_output(a, "out", CLI_OUT_NEW, true);
    if (rc) return rc;
    size_t n = 0;
    char **shards = list_shards(out, &n);
    if (!shards) return cli_runtime_error(a, "out of memory");
    if (resume) {
        /* settings from this rank's shard, else from any */
        if (access(p->shard, F_OK) != 0 && n > 0) p->settings_path = shards[0];
        if (p->settings_path != p->shard && !(p->settings_path = strdup(shards[0])))
            rc = cli_runtime_error(a, "out of memory");
    } else if (!force) {
        if (access(out, F_OK) == 0)
            rc = cli_runtime_error(a, "--out %s: the file exists (use --force to overwrite, "
                                      "--resume to continue its run)",
                                   out);
        else if (n > 0)
            rc = cli_runtime_error(a, "--out %s: %s exists, a shard of an earlier run (--resume "
                                      "continues it, --force replaces it)",
                                   out, shards[0]);
    } else if (p->rank == 0) {
        /* --force: the old root and the shards no rank of this run replaces go now (before
         * the hand-out starts, so before any new shard is in place) */
        if (unlink(out) != 0 && errno != ENOENT)
            rc = cli_runtime_error(a, "--out %s: cannot remove it: %s", out, strerror(errno));
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (shard_rank(out, shards[i]) >= p->size && unlink(shards[i]) != 0)
                rc = cli_runtime_error(a, "--force: cannot remove %s: %s", shards[i],
                                       strerror(errno));
    }
    free_list(shards);
    /* every rank has looked before any creates its shard (a rank that failed ends the job) */
    if (rc == 0 && cli_dist_barrier()) rc = CLI_EXIT_RUNTIME;
    return rc;
}

/* Rank 0: mark the corpus sequences the shards hold, checking them against the corpus. */
static int scan_shards(const cli_args *a, const cache_plan *p, const int32_t *ids,
                       const int64_t *off, int64_t n, int64_t ctx, unsigned char *done) {
    size_t ns = 0;
    char **shards = list_shards(p->out, &ns);
    if (!shards) return cli_runtime_error(a, "out of memory");
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < ns; k++) {
        hk_store *s = NULL;
        hk_store_info info;
        hk_status st = hk_store_open(shards[k], &s);
        if (st == HK_OK) st = hk_store_get_info(s, &info);
        int64_t *cid = NULL;
        int32_t *tok = NULL;
        if (st == HK_OK) {
            cid = malloc((size_t)(info.n_sequences ? info.n_sequences : 1) * sizeof *cid);
            tok = malloc((size_t)(info.n_rows ? info.n_rows : 1) * sizeof *tok);
            if (!cid || !tok) st = HK_ERR_NOMEM;
        }
        if (st == HK_OK) st = hk_store_corpus_ids(s, cid);
        if (st == HK_OK) st = hk_store_read_token_ids(s, 0, info.n_rows, tok);
        if (st != HK_OK)
            rc = cli_runtime_error(a, "--resume: %s: %s (%s)", shards[k],
                                   st == HK_ERR_NOMEM ? "out of memory" : hk_last_error(),
                                   hk_status_name(st));
        for (int64_t q = 0; rc == 0 && q < info.n_sequences; q++) {
            int64_t len, row, pos, nr, c = cid[q];
            if ((st = hk_store_sequence(s, q, &len, &row, &pos, &nr)) != HK_OK) {
                rc = cli_runtime_error(a, "--resume: %s (%s)", hk_last_error(), hk_status_name(st));
                break;
            }
            if (c >= n) {
                rc = cli_runtime_error(a, "--resume: %s holds corpus sequence %lld, the corpus "
                                          "has %lld: not the same corpus",
                                       shards[k], (long long)c, (long long)n);
                break;
            }
            int64_t want = off[c + 1] - off[c];
            if (ctx > 0 && want > ctx) want = ctx;
            bool same = len == want && pos + nr <= want;
            for (int64_t t = 0; same && t < nr; t++) same = tok[row + t] == ids[off[c] + pos + t];
            if (!same)
                rc = cli_runtime_error(a, "--resume: sequence %lld of %s (%lld tokens) is not "
                                          "corpus sequence %lld (%lld tokens): not the same "
                                          "corpus",
                                       (long long)q, shards[k], (long long)len, (long long)c,
                                       (long long)want);
            else if (done[c])
                rc = cli_runtime_error(a, "--resume: corpus sequence %lld is in two shards "
                                          "(%s is one)",
                                       (long long)c, shards[k]);
            else
                done[c] = 1;
        }
        free(cid);
        free(tok);
        hk_store_close(s);
    }
    free_list(shards);
    return rc;
}

int cache_plan_todo(cache_plan *p, const cli_args *a, const int32_t *ids, const int64_t *off,
                    int64_t n, int64_t ctx, int64_t skip) {
    if (!(p->todo = malloc((size_t)(n ? n : 1) * sizeof *p->todo)))
        return cli_runtime_error(a, "out of memory");
    if (!p->dist || !p->resume) {
        for (int64_t i = skip; i < n; i++) p->todo[p->n_todo++] = i;
        return 0;
    }
    /* rank 0 decides, every rank gets the list: [status, n_todo], then the ids */
    int64_t head[2] = {0, 0};
    if (p->rank == 0) {
        unsigned char *done = calloc((size_t)(n ? n : 1), 1);
        head[0] = done ? scan_shards(a, p, ids, off, n, ctx, done)
                       : cli_runtime_error(a, "out of memory");
        for (int64_t i = 0; head[0] == 0 && i < n; i++)
            if (!done[i]) p->todo[p->n_todo++] = i;
        head[1] = p->n_todo;
        free(done);
    }
    if (cli_dist_bcast(head, sizeof head)) return CLI_EXIT_RUNTIME;
    if (head[0]) return (int)head[0]; /* rank 0 said why */
    p->n_todo = head[1];
    if (p->n_todo && cli_dist_bcast(p->todo, (size_t)p->n_todo * sizeof *p->todo))
        return CLI_EXIT_RUNTIME;
    return 0;
}

int64_t cache_plan_expected_rows(const cache_plan *p, int64_t rows) {
    return p->dist ? (rows + p->size - 1) / p->size : rows;
}

int cache_plan_next(cache_plan *p, const cli_args *a, int64_t *k) {
    (void)a;
    const int64_t n_batches = (p->n_todo + p->batch - 1) / p->batch;
    if (!p->dist) {
        *k = p->next_batch < n_batches ? p->next_batch++ : -1;
        return 0;
    }
    if (!p->handing_out) {
        if (cli_dist_handout_start(n_batches)) return CLI_EXIT_RUNTIME;
        p->handing_out = true;
    }
    return cli_dist_handout_next(k) ? CLI_EXIT_RUNTIME : 0;
}

int64_t cache_plan_batch(const cache_plan *p, int64_t k, const int64_t **ids) {
    const int64_t first = k * p->batch, left = p->n_todo - first;
    *ids = p->todo + first;
    return left < p->batch ? left : p->batch;
}

int cache_plan_finish(cache_plan *p, const cli_args *a, int rc) {
    if (!p->dist || rc != 0) return rc;
    /* (no hand-out when every rank found nothing to run: --resume of a complete run) */
    if (p->handing_out && cli_dist_handout_end()) return CLI_EXIT_RUNTIME;
    p->handing_out = false;
    int status = 0;
    if (p->rank == 0) {
        size_t n = 0;
        char **shards = list_shards(p->out, &n);
        hk_status st = shards ? hk_store_join(p->out, (const char *const *)shards, n, true)
                              : HK_ERR_NOMEM;
        if (st != HK_OK) {
            status = cli_runtime_error(a, "joining the shards into %s: %s (%s)", p->out,
                                       st == HK_ERR_NOMEM ? "out of memory" : hk_last_error(),
                                       hk_status_name(st));
        } else {
            hk_store *r = NULL;
            hk_store_info info = {0};
            if (hk_store_open(p->out, &r) == HK_OK) hk_store_get_info(r, &info);
            hk_store_close(r);
            fprintf(stderr, "cache: %s joins %zu shards: %lld sequences, %lld rows\n", p->out, n,
                    (long long)info.n_sequences, (long long)info.n_rows);
        }
        free_list(shards);
    }
    /* every rank ends once the root is in place (or with rank 0's failure) */
    int worst = 0;
    if (cli_dist_max(status, &worst)) return CLI_EXIT_RUNTIME;
    return worst;
}

void cache_plan_free(cache_plan *p) {
    if (p->settings_path != p->store_path && p->settings_path != p->out)
        free((char *)p->settings_path);
    free(p->shard);
    free(p->todo);
    memset(p, 0, sizeof *p);
}

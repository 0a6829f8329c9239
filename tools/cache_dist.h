/* Which sequences `hookformer cache` runs, in which batches, into which file: the plan.
 *
 * A single process (no MPI launcher) runs the corpus from its first sequence not yet stored,
 * batch after batch, into --out: what cache always did. Under mpirun / srun (tools/dist.h)
 * every rank writes its own shard, OUT.rankNNNN (a store with seq_corpus_id, NNNN the rank
 * with 4 digits), takes batches of the sequences to run from rank 0 as it finishes the last
 * one (dynamic hand-out: a slow rank never holds the others back), and at the end rank 0
 * joins the shards into OUT (hk_store_join: virtual datasets in corpus order). --resume
 * reads every shard OUT.rank*, runs the sequences none holds, and rewrites OUT. */
#ifndef HK_TOOLS_CACHE_DIST_H
#define HK_TOOLS_CACHE_DIST_H

#include <stdbool.h>
#include <stdint.h>

#include "args.h"
#include "hookformer.h"

typedef struct {
    bool dist;               /* under MPI: shards, hand-out, root */
    int rank, size;
    const char *out;         /* --out: the store (single), the root file (dist) */
    char *shard;             /* this rank's shard (dist), else NULL */
    const char *store_path;  /* the store this process writes: out or shard */
    const char *settings_path; /* --resume: the store whose settings (hooks, dtype, ...) the
                                  run takes: store_path, or (dist) any existing shard */
    bool resume, force;
    int64_t batch;
    int64_t *todo;           /* [n_todo] corpus ids to run, in corpus order */
    int64_t n_todo;
    int64_t next_batch;      /* single: the next batch of todo */
    bool handing_out;
} cache_plan;

/* Before any work: the paths. Under MPI: --append is refused; the root and the shards are
 * checked (a new run refuses existing ones without --force and removes them with it; every
 * rank checks its shard's folder). Returns 0 or an exit status (message printed). */
int cache_plan_init(const cli_args *a, const char *out, bool resume, bool append, bool force,
                    int64_t batch, cache_plan *p);
/* The sequences to run: single, those from `skip` on; dist, with --resume, those no shard
 * holds (rank 0 reads the shards, checks that each stored sequence is the corpus's, token for
 * token after the cut to ctx, and sends the list to every rank). The corpus is ids/off/n as
 * cmd_cache.c reads it (sequence i: ids[off[i] .. off[i+1])). */
int cache_plan_todo(cache_plan *p, const cli_args *a, const int32_t *ids, const int64_t *off,
                    int64_t n, int64_t ctx, int64_t skip);
/* The rows this process expects to store (hk_store_opts.expected_rows, which sizes a small
 * store's chunks): all of them, or (dist) an even share, so that a shard of a small run does
 * not take one whole-corpus chunk per hook. */
int64_t cache_plan_expected_rows(const cache_plan *p, int64_t rows);
/* The next batch: *k >= 0 is todo[k * batch ...] (cache_plan_batch), -1 when none is left. */
int cache_plan_next(cache_plan *p, const cli_args *a, int64_t *k);
/* Sequences of batch k and their corpus ids. */
int64_t cache_plan_batch(const cache_plan *p, int64_t k, const int64_t **ids);
/* After the store is closed. rc != 0 (this rank failed): returned as it is (main then ends the
 * job). Dist: waits for every rank, then rank 0 writes the root over every shard. */
int cache_plan_finish(cache_plan *p, const cli_args *a, int rc);
void cache_plan_free(cache_plan *p);

#endif

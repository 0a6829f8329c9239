/* The HDF5 activation store: shared state of the format, writer, commit and reader files.
 *
 *   store_format.c  HDF5 types (f16/bf16), property lists, datasets and attributes
 *   store_commit.c  commits (a forked child flushes), space reservation, temp file + rename
 *   store_writer.c  create / append, the hook callback that packs rows, batches, close
 *   store_reader.c  read-only open, info, reading rows back
 *
 * Internal: the public API is in hookformer.h; docs/FORMAT.md is the file layout. */
#ifndef HK_HOOKS_STORE_H
#define HK_HOOKS_STORE_H

#include <hdf5.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "hookformer.h"
#include "positions.h"

#define HK_STORE_FORMAT "hookformer.activations"
#define HK_STORE_FORMAT_VERSION 1
/* Target bytes of one chunk of a token-row dataset (1 - 4 MiB as DESIGN.md asks). */
#define HK_STORE_CHUNK_BYTES (2u << 20)
/* Rows per chunk of the 1-D index datasets. */
#define HK_STORE_INDEX_CHUNK 16384

typedef struct {
    char *name;           /* hook name (also the dataset name) */
    int32_t point;        /* index in the model's points (writer) */
    bool per_seq;         /* attention scores/pattern: one row per sequence */
    bool is_scores;       /* fill -inf rather than 0 */
    int batch_dim, pos_dim, key_dim; /* roles in the fired tensor (-1 absent) */
    int row_ndim;         /* dims of one row */
    int64_t row_shape[HK_MAX_DIMS];
    int64_t row_elems;
    char dims[96];        /* "row d_model" */
    hid_t dset;
    int64_t chunk_rows;
    /* writer: staging of rows not yet written as whole chunks.
     * token rows: [stage_cap, row_elems] in the file dtype; rows [0, staged) are the tail of
     * the dataset starting at row `stage_row0` (a multiple of chunk_rows).
     * per sequence: [batch, row_elems] f32/dtype of this batch. */
    unsigned char *stage;
    int64_t stage_cap, staged, stage_row0;
    /* the other staging buffer while the writer thread writes one (hk_store_opts.overlap) */
    unsigned char *stage_back;
    int64_t back_cap;
    int64_t delivered;    /* rows (token) / elements (per seq) delivered in this batch */
    /* ln1 points of a layer whose split inputs are stored too (docs/HOOKS.md): ln1 runs per
     * head and fires for q, k and v at the same (batch, pos) offsets; the rows are
     * overwritten, so the last firing (v's, [kv_heads, d]) stays, as in TransformerLens's
     * cache. split_fired / split_b0 / split_p0: the last firing's offsets in this batch. */
    bool split_ln1, split_fired;
    int64_t split_b0, split_p0;
    int64_t written;      /* rows in the dataset's extent */
} hk_store_hook;

typedef struct {
    int64_t *v;
    int64_t n, cap;
} hk_i64_vec;

#define HK_STORE_MAX_SPLIT_LAYERS 1024

struct hk_store {
    char *path;       /* the final name */
    /* bit L: layer L's split inputs are stored (store_writer.c, split_layer_set) */
    uint64_t split_layers[HK_STORE_MAX_SPLIT_LAYERS / 64];
    char *tmp_path;   /* the name while being created (NULL once renamed) */
    bool writable;
    hid_t file;
    hid_t ftype;      /* file type of activations (owned) */
    hk_dtype dtype;
    hk_selection sel;
    char positions[64];
    char compression[32];
    int deflate;      /* 0 none, 1..9 */
    bool lz4;
    int64_t ctx;
    int64_t index_chunk; /* rows per chunk of the 1-D index datasets (new files) */
    hk_store_hook *hooks;
    size_t n_hooks;
    hid_t d_seq, d_pos, d_tok;                     /* [n_rows] */
    hid_t d_slen, d_sfirst, d_sfpos, d_snrows;     /* [n_sequences] */
    hid_t d_scid;     /* seq_corpus_id [n_sequences] (shards of a distributed run), or -1 */
    bool corpus_ids;  /* the file has seq_corpus_id: every batch names its sequences */
    int64_t *b_cids;  /* [b_cids_n] corpus ids of the next batch (hk_store_set_corpus_ids) */
    int64_t b_cids_n, b_cids_cap;
    char *model_id, *family, *config_json, *version; /* attributes */
    char *model_path; /* attribute: where the model was loaded from (information only) */
    char *device;     /* attribute: the device the creating run's model ran on ("cuda:1") */

    /* rows and sequences given (in memory) and committed (in the file) */
    int64_t n_rows, n_seqs;
    int64_t committed_rows, committed_seqs;
    /* index of rows / sequences not yet committed: rows from committed_rows on, sequences
     * from committed_seqs on */
    hk_i64_vec p_seq, p_pos, p_tok;
    hk_i64_vec p_slen, p_sfirst, p_sfpos, p_snrows, p_scid;

    /* writer: the model and the batch being run */
    const hk_model *model;
    hk_hooks *own_hooks;
    const int32_t *b_tokens;
    const int64_t *b_lengths;
    int64_t b_batch, b_seq;
    int64_t *b_first, *b_count, *b_row; /* [b_batch] selected positions and their first row */
    int64_t b_rows;
    bool in_batch;
    bool b_feeds;     /* the batch runs as a session's feeds (hk_store_run_chunked): a hook's
                         run_seq is its feed's length, at pos_offset */
    bool failed;      /* a write failed: nothing more is written or committed */
    bool dirty;       /* the file changed since the last commit (rows, extents, layout) */

    /* the writer thread (hk_store_opts.overlap, uncompressed stores): NULL writes inline */
    bool overlap;
    struct hk_store_writer *writer;
    double writer_delay; /* tests: seconds each write job sleeps first (a slow disk) */

    /* commit */
    double commit_seconds, last_commit;
    bool fsync;
    int fd;                       /* HDF5's own descriptor (sec2 driver) */
    uint64_t reserved_to;         /* bytes [0, reserved_to) are allocated blocks; only HDF5
                                     truncating the file at a commit takes some away */
    bool xfsz_saved;
    struct sigaction old_xfsz;
    hk_store_stats stats;

    /* reader: per-sequence tables of the committed sequences */
    int64_t *r_first, *r_fpos, *r_nrows, *r_len;
};

/* ---- store_format.c ---- */
hid_t hk_store_fapl(void);
/* File type of dt (F32LE, or a 16-bit IEEE-style float built from F32LE); owned. */
hid_t hk_store_file_type(hk_dtype dt);
/* Dataset create / access property lists of a hook dataset. */
hid_t hk_store_hook_dcpl(const hk_store *s, const hk_store_hook *h);
hid_t hk_store_dapl(void);
/* Create the index datasets, the hook datasets and every attribute of a new file. */
hk_status hk_store_write_layout(hk_store *s);
/* Open the datasets of an existing file and read its attributes. */
hk_status hk_store_open_layout(hk_store *s);
/* Extend dataset d (1-D) to n and write vals[0..count) at row `at` (type mem). */
hk_status hk_store_write_1d(const hk_store *s, hid_t d, const char *what, int64_t at,
                            int64_t count, hid_t mem, const void *vals, int64_t new_len);
/* Write a string-array attribute (variable-length UTF-8). */
bool hk_store_attr_strs(hid_t obj, const char *name, const char *const *values, size_t n);
/* Read a string attribute of obj (malloc'ed, NULL when absent). */
char *hk_store_attr_str(hid_t obj, const char *name);
int64_t hk_store_dset_len(hid_t d);
hk_status hk_store_h5_error(const hk_store *s, hk_status st, const char *what);

/* ---- store_commit.c ---- */
/* Make the file hold everything given so far (a forked child runs H5Fflush). */
hk_status hk_store_commit_now(hk_store *s);
/* Reserve `bytes` past the end of the HDF5 file (posix_fallocate), so that a full disk
 * stops the run before HDF5 writes anything. */
hk_status hk_store_reserve(hk_store *s, uint64_t bytes);
/* Bytes a commit may add beyond its index rows: a new chunk of each index dataset, metadata. */
uint64_t hk_store_commit_slack(void);
/* Before an existing file is opened for writing: can `bytes` more be written to it (free
 * space, RLIMIT_FSIZE)? Checked without changing the file's bytes, size or times. */
hk_status hk_store_check_space(const char *path, uint64_t bytes);
/* After the last commit: cut the file to HDF5's allocated end (the reservation past it). */
void hk_store_trim(hk_store *s);
/* SIGXFSZ ignored while a writable store is open (restored at close). */
void hk_store_ignore_xfsz(hk_store *s);
void hk_store_restore_xfsz(hk_store *s);
/* Create the file at a temporary name next to path. */
hk_status hk_store_create_tmp(hk_store *s);
/* Move the temporary file to path (never over an existing file unless force). */
hk_status hk_store_publish(hk_store *s, bool force);
double hk_store_now(void);

/* ---- store_model_id.c ---- */
/* The content identity of a model: "hk1:" and 16 hex digits of a hash of its canonical
 * config, every checkpoint tensor's name, dtype and shape, and a sample of each tensor's
 * bytes (docs/FORMAT.md). Equal for identical copies wherever they lie. */
hk_status hk_store_model_id(const hk_model *m, const char *config_json, char **out);

/* ---- store_async.c: the writer thread ----
 * A job writes parts (rows of one hook from a staging buffer the caller does not touch until
 * the job is waited for) after reserving `reserve` bytes; its status and message come back
 * from hk_store_writer_wait on the caller's thread (which then marks the store failed). */
typedef struct {
    hk_store_hook *h;
    const unsigned char *buf;
    int64_t row0, count;
} hk_store_job_part;
typedef struct hk_store_writer hk_store_writer;
hk_status hk_store_writer_start(hk_store *s);
/* Wait for the job in flight (none: HK_OK); adds its bytes and seconds to the stats. */
hk_status hk_store_writer_wait(hk_store *s);
/* Room for n parts of the next job (NULL: out of memory); then submit (no job in flight). */
hk_store_job_part *hk_store_writer_parts(hk_store *s, size_t n);
void hk_store_writer_submit(hk_store *s, size_t n_parts, uint64_t reserve);
/* Wait, then end the thread (s->writer NULL after). */
void hk_store_writer_stop(hk_store *s);
/* Tests: whether a job is in flight; a delay each job sleeps before writing (a slow disk;
 * set before the first end_batch). */
bool hk_store_writer_busy(hk_store *s);
void hk_store_writer_test_delay(hk_store *s, double seconds);

/* ---- store_writer.c, for the writer thread ---- */
/* Write rows [row0, row0 + count) of h from buf (file dtype): extends the dataset, marks the
 * store dirty; the stats are the caller's. */
hk_status hk_store_write_rows(hk_store *s, hk_store_hook *h, int64_t row0, int64_t count,
                              const void *buf);
uint64_t hk_store_rows_bytes(const hk_store *s, const hk_store_hook *h, int64_t count);

/* ---- vectors ---- */
bool hk_i64_push(hk_i64_vec *v, int64_t x);
void hk_i64_drop_front(hk_i64_vec *v, int64_t k);

/* ---- store_writer.c / store_reader.c ---- */
void hk_store_destroy(hk_store *s);

#endif

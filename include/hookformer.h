/* hookformer — a transformer runtime for mechanistic interpretability.
 * The one public header: opaque handles, status codes, plain C11.
 * Every function that can fail returns hk_status; the message is in hk_last_error(). */
#ifndef HOOKFORMER_H
#define HOOKFORMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HK_VERSION_MAJOR 0
#define HK_VERSION_MINOR 1
#define HK_VERSION_PATCH 0
#define HK_VERSION_STRING "0.1.0"

typedef enum {
    HK_OK = 0,
    HK_ERR_INVALID_ARG,  /* a caller passed a bad value (NULL, negative size, ...) */
    HK_ERR_IO,           /* open/read/mmap/write failed */
    HK_ERR_FORMAT,       /* a file is malformed (header, JSON, offsets) */
    HK_ERR_UNSUPPORTED,  /* well-formed but not supported (architecture, dtype) */
    HK_ERR_SHAPE,        /* a tensor has the wrong shape or dtype */
    HK_ERR_NOT_FOUND,    /* a named thing (tensor, field, file) is missing */
    HK_ERR_NOMEM,        /* an allocation failed */
    HK_ERR_INTERNAL,     /* a bug in hookformer */
    HK_ERR_HOOK,         /* a hook callback reported an error (message names the hook) */
    HK_STOPPED = 100     /* not an error: a hook stopped the forward early; logits unset */
} hk_status;

/* Message of the last error on this thread ("" when none). Valid until the next failing call. */
const char *hk_last_error(void);
/* Short constant name of a status ("HK_ERR_FORMAT"). */
const char *hk_status_name(hk_status s);
const char *hk_version(void);

typedef enum {
    HK_DTYPE_F32 = 0,
    HK_DTYPE_F16,
    HK_DTYPE_BF16,
    HK_DTYPE_I32,
    HK_DTYPE_I64,
    HK_DTYPE_U8
} hk_dtype;

const char *hk_dtype_name(hk_dtype dt);
size_t hk_dtype_size(hk_dtype dt);

/* ---- models ------------------------------------------------------------ */

typedef struct hk_model hk_model;

/* Load a Hugging Face checkpoint folder (config.json + model.safetensors, or a sharded
 * model.safetensors.index.json). Weights are computed in f32. */
hk_status hk_model_load(const char *dir, hk_model **out);
void hk_model_free(hk_model *m);

/* Canonical config as a JSON string; free with hk_free(). */
hk_status hk_model_config_json(const hk_model *m, char **out_json);
int64_t hk_model_n_params(const hk_model *m);
int64_t hk_model_vocab_size(const hk_model *m);
int64_t hk_model_n_layers(const hk_model *m);
int64_t hk_model_d_model(const hk_model *m);
/* "gpt2", "llama", "mistral", "qwen2", "phi3", "gpt_neox" */
const char *hk_model_family(const hk_model *m);

/* Forward pass over a right-padded batch.
 *   tokens  [batch, seq]         token ids; positions >= lengths[b] are padding
 *   lengths [batch] or NULL      valid tokens per sequence (NULL: all seq)
 *   logits  [batch, seq, vocab]  written for every position; padded rows are zero */
hk_status hk_model_forward(hk_model *m, const int32_t *tokens, const int64_t *lengths,
                           int64_t batch, int64_t seq, float *logits);

/* ---- tensors handed to hooks --------------------------------------------- */

#define HK_MAX_DIMS 6

typedef enum { HK_DEVICE_CPU = 0, HK_DEVICE_CUDA = 1 } hk_device;

/* A strided view of an activation. Strides count elements, not bytes. */
typedef struct {
    void *data;
    hk_dtype dtype;
    hk_device device;
    int ndim;
    int64_t shape[HK_MAX_DIMS];
    int64_t stride[HK_MAX_DIMS];
} hk_tensor;

/* ---- hook points ----------------------------------------------------------- */

/* Hook points of a model, in execution order, named as TransformerLens names them
 * ("hook_embed", "blocks.3.attn.hook_pattern", "unembed.hook_out"). shape uses -1 for the
 * run-dependent dims (batch, pos, q_pos, k_pos). optional points (attn.hook_result, the split
 * inputs, hook_mlp_in, hook_attn_in) cost extra compute and fire only when hooked. */
typedef struct {
    const char *name;
    int64_t layer; /* -1 outside the blocks */
    int ndim;
    int64_t shape[HK_MAX_DIMS];
    const char *dims; /* "batch pos d_model" */
    bool optional;
} hk_hook_point;

size_t hk_model_hook_count(const hk_model *m);
/* i in [0, hk_model_hook_count); NULL when out of range. Valid while the model lives. */
const hk_hook_point *hk_model_hook_at(const hk_model *m, size_t i);

/* What a callback learns about the activation it is handed. */
typedef struct {
    const char *name;     /* full hook name */
    int64_t layer;        /* -1 outside the blocks */
    int64_t batch_offset; /* sequence index of act's batch index 0 */
    int64_t pos_offset;   /* absolute position of act's (query) pos index 0 */
    int64_t run_batch;    /* sequences in the whole run */
    int64_t run_seq;      /* positions in the whole run (padded length) */
    const hk_model *model;
} hk_hook_ctx;

typedef enum {
    HK_HOOK_CONTINUE = 0, /* go on (the tensor may have been modified in place) */
    HK_HOOK_STOP = 1,     /* stop the forward now: the run returns HK_STOPPED */
    HK_HOOK_ERROR = 2     /* abort: the run returns HK_ERR_HOOK; set a message first with
                             hk_hook_error() */
} hk_hook_result;

/* A callback may modify *act in place; the forward continues from the modified values. */
typedef hk_hook_result (*hk_hook_fn)(hk_tensor *act, const hk_hook_ctx *ctx, void *user);
typedef bool (*hk_hook_filter_fn)(const char *name, void *user);

/* Message for an HK_HOOK_ERROR return (printf-style); the run prefixes the hook name. */
void hk_hook_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

typedef struct hk_hooks hk_hooks; /* a set of registrations for one model */
typedef uint64_t hk_hook_handle;  /* 0 is never a valid handle */

hk_status hk_hooks_new(const hk_model *m, hk_hooks **out);
void hk_hooks_free(hk_hooks *h);

/* Register fn at every point matching `pattern`: an exact name or a glob ('*' matches any run
 * of characters, '?' one; "blocks.*.hook_resid_post"). A pattern that matches no point of the
 * model is HK_ERR_NOT_FOUND. Callbacks at one point run in registration order. */
hk_status hk_hooks_add(hk_hooks *h, const char *pattern, hk_hook_fn fn, void *user,
                       hk_hook_handle *out);
/* Register fn at every point for which filter(name, filter_user) is true (at least one). */
hk_status hk_hooks_add_filter(hk_hooks *h, hk_hook_filter_fn filter, void *filter_user,
                              hk_hook_fn fn, void *user, hk_hook_handle *out);
/* Remove one registration (all the points it covered). Unknown handle: HK_ERR_NOT_FOUND. */
hk_status hk_hooks_remove(hk_hooks *h, hk_hook_handle handle);
/* Scoped registration: hk_hooks_scope_end(h, mark) removes everything added since the
 * matching hk_hooks_scope_begin. */
size_t hk_hooks_scope_begin(const hk_hooks *h);
void hk_hooks_scope_end(hk_hooks *h, size_t mark);
/* Number of live registrations. */
size_t hk_hooks_count(const hk_hooks *h);

/* The forward with hooks (hooks may be NULL: same as hk_model_forward). */
hk_status hk_model_run(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                       const int64_t *lengths, int64_t batch, int64_t seq, float *logits);

/* ---- in-memory activation cache (TransformerLens run_with_cache) ---------- */

typedef struct hk_cache hk_cache;

hk_status hk_cache_new(const hk_model *m, hk_cache **out);
void hk_cache_free(hk_cache *c);

/* Register, on `hooks`, copies of every point matching one of patterns[0..n) (exact names or
 * globs; each must match something). positions: NULL or "all", "last" (the last valid
 * position of each sequence), or "A:B" (positions A..B-1, Python-style; negative counts from
 * the end of the run). The cache holds exactly what was asked: the matched points, at the
 * selected positions, for the sequences of the last run. Attention scores/patterns keep every
 * key position and select query positions. */
hk_status hk_cache_attach(hk_cache *c, hk_hooks *hooks, const char *const *patterns, size_t n,
                          const char *positions);

/* The cached activation (contiguous f32 on the host), or NULL if that point was not cached. */
const hk_tensor *hk_cache_get(const hk_cache *c, const char *name);
/* By point and layer: point "hook_resid_post" or "attn.hook_pattern" with layer >= 0, or a
 * global point ("ln_final.hook_normalized") with layer -1. */
const hk_tensor *hk_cache_get_layer(const hk_cache *c, const char *point, int64_t layer);
size_t hk_cache_count(const hk_cache *c);
/* Name of entry i (registration order of the points), NULL when out of range. */
const char *hk_cache_name_at(const hk_cache *c, size_t i);
/* Bytes of activations held. */
size_t hk_cache_bytes(const hk_cache *c);
/* Drop the held activations (the registrations stay). */
void hk_cache_clear(hk_cache *c);

/* One call: run with a fresh cache of `patterns` (see hk_cache_attach) and hand it back. */
hk_status hk_run_with_cache(hk_model *m, const int32_t *tokens, const int64_t *lengths,
                            int64_t batch, int64_t seq, const char *const *patterns, size_t n,
                            const char *positions, float *logits, hk_cache **out);

/* Threads for GEMM and the other kernels (0 = library default). */
void hk_set_num_threads(int n);

void hk_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* HOOKFORMER_H */

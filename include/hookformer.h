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
 * model.safetensors.index.json), or a .gguf file (architectures llama and qwen2; F32, F16,
 * BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K tensors; the tokenizer from its tokenizer.ggml.*
 * metadata). Weights are dequantized to f32 at load; quantized GGUF linears also keep their
 * blocks for decode (hk_load_opts below: HK_WEIGHTS_BLOCKS, the default). A malformed file is
 * HK_ERR_FORMAT naming the file and the key or tensor. */
hk_status hk_model_load(const char *dir, hk_model **out);

/* How a .gguf file's quantized weights are held (safetensors checkpoints ignore it). */
typedef enum {
    /* Default. Linears of Q8_0, Q4_0, Q4_1, Q4_K, Q5_K or Q6_K blocks keep them (in the mapped
     * file) and decode / batches of up to 8 rows compute on them, with the activations
     * quantized to 8 bits per block as llama.cpp does (results differ from f32 by that
     * rounding); larger batches (prefill) use an f32 copy dequantized at load. */
    HK_WEIGHTS_BLOCKS = 0,
    /* Everything dequantized at load and computed in f32 (the reference path). */
    HK_WEIGHTS_F32 = 1,
} hk_weights_mode;

/* hk_load_opts (below, with the devices) chooses it: .weights. */
void hk_model_free(hk_model *m);

/* Canonical config as a JSON string; free with hk_free(). */
hk_status hk_model_config_json(const hk_model *m, char **out_json);
int64_t hk_model_n_params(const hk_model *m);
int64_t hk_model_vocab_size(const hk_model *m);
int64_t hk_model_n_layers(const hk_model *m);
int64_t hk_model_d_model(const hk_model *m);
/* "gpt2", "llama", "mistral", "qwen2", "phi3", "gpt_neox", "bert" */
const char *hk_model_family(const hk_model *m);
/* max_position_embeddings of config.json (0 when the config has none): informational for
 * rotary models (nothing is sized by it; runs may go past it). *hard (may be NULL) is set true
 * when positions are a learned table (GPT-2), which no run can exceed: then the value returned
 * is the table's rows. */
int64_t hk_model_max_positions(const hk_model *m, bool *hard);

/* Forward pass over a right-padded batch.
 *   tokens  [batch, seq]         token ids; positions >= lengths[b] are padding
 *   lengths [batch] or NULL      valid tokens per sequence (NULL: all seq)
 *   logits  [batch, seq, hk_model_output_dim(m)]  written for every position; padded rows
 *                                are zero. For a model with a head (decoders, BERT's masked-LM
 *                                head) these are the logits over the vocabulary; for an encoder
 *                                without a head (a BertModel checkpoint such as
 *                                all-MiniLM-L6-v2) they are the final hidden states, the
 *                                last block's hook_normalized_resid_post. */
hk_status hk_model_forward(hk_model *m, const int32_t *tokens, const int64_t *lengths,
                           int64_t batch, int64_t seq, float *logits);

/* Columns of the forward's output: the vocabulary size for a model with a head, d_model for
 * an encoder without one. */
int64_t hk_model_output_dim(const hk_model *m);
/* True for a model without an output head (its forward returns hidden states). */
bool hk_model_headless(const hk_model *m);
/* Rows of the token-type (segment) embedding: 2 for BERT, 0 for models without one. */
int64_t hk_model_token_types(const hk_model *m);
/* Attention is bidirectional (an encoder) unless a mask (hk_model_set_mask) says otherwise. */
bool hk_model_is_encoder(const hk_model *m);

/* ---- tensors handed to hooks --------------------------------------------- */

#define HK_MAX_DIMS 6

/* Where a tensor's data lives. HK_DEVICE_TEST is the test-only backend's separate "device"
 * memory on the host (core/backend_test.c): addressable, but reachable only through copies. */
typedef enum { HK_DEVICE_CPU = 0, HK_DEVICE_CUDA = 1, HK_DEVICE_TEST = 2 } hk_device;

/* A strided view of an activation. Strides count elements, not bytes. */
typedef struct {
    void *data;
    hk_dtype dtype;
    hk_device device;
    int ndim;
    int64_t shape[HK_MAX_DIMS];
    int64_t stride[HK_MAX_DIMS];
} hk_tensor;

/* ---- devices ------------------------------------------------------------------ */

/* Options of hk_model_load_opts; start from hk_load_default_opts().
 *   weights        how a .gguf file's quantized linears are held (hk_weights_mode).
 *   device         HK_DEVICE_CPU (the default), HK_DEVICE_CUDA (a clear error when the build
 *                  or the machine has no CUDA backend), or HK_DEVICE_TEST (the test-only
 *                  backend: CPU kernels on separate, checked "device" memory). The
 *                  environment variable HK_DEVICE=test turns every CPU load into a test
 *                  load (the devtest suite setup).
 *   weights_dtype  the dtype the device keeps the weight matrices in: HK_DTYPE_F32 (the
 *                  default), or HK_DTYPE_F16 / HK_DTYPE_BF16 on a device backend that
 *                  supports them (the CPU and test backends compute in f32 and refuse them).
 *   device_index   which device of that kind: 0, 1, ... below hk_device_count (CUDA: the
 *                  runtime's ordinals, so relative to CUDA_VISIBLE_DEVICES), or
 *                  HK_DEVICE_INDEX_AUTO (the default): device 0. The CPU has one device
 *                  (auto or 0). An index past the count is an error naming both, before the
 *                  checkpoint is read. The library never picks by MPI rank itself: the
 *                  `hookformer` tool does (docs/SCALE.md, "Placement"). */
#define HK_DEVICE_INDEX_AUTO (-1)
typedef struct {
    hk_weights_mode weights; /* a .gguf file's quantized linears: HK_WEIGHTS_BLOCKS (default)
                              * or HK_WEIGHTS_F32 (see hk_weights_mode above) */
    hk_device device;
    hk_dtype weights_dtype;
    int device_index;        /* HK_DEVICE_INDEX_AUTO (default) or 0, 1, ... */
} hk_load_opts;

/* {HK_WEIGHTS_BLOCKS, HK_DEVICE_CPU, HK_DTYPE_F32, HK_DEVICE_INDEX_AUTO}. */
hk_load_opts hk_load_default_opts(void);
/* hk_model_load, then the weights uploaded once to the chosen device (o NULL: the defaults).
 * An unknown weights mode, a device that cannot be opened, a device index past the count, or
 * a weights_dtype it refuses, is an error naming it. */
hk_status hk_model_load_opts(const char *dir, const hk_load_opts *o, hk_model **out);
/* Parse a device as the `--device` option writes it: "cpu", "cuda", "cuda:N", "test",
 * "test:N" (N a decimal index >= 0; no index: *index = HK_DEVICE_INDEX_AUTO). A malformed
 * text is HK_ERR_INVALID_ARG with a message that quotes it ("device 'cuda:x': ..."). */
hk_status hk_device_parse(const char *text, hk_device *device, int *index);
/* The devices of a kind this process can open: cpu 1; cuda the CUDA runtime's count (0 on a
 * machine without a usable GPU; an error, HK_ERR_NOT_FOUND / HK_ERR_IO as for a load, when
 * the CUDA module cannot be loaded); test: the environment's HK_TEST_DEVICES (default 1), so
 * that placement over several devices is testable without any (a value that is not a
 * number from 0 to 1024 is HK_ERR_INVALID_ARG). */
hk_status hk_device_count(hk_device device, int *count);
/* Where the model's forward runs (and where hook tensors live). */
hk_device hk_model_device(const hk_model *m);
/* Which device of that kind (0 on the CPU), and the two as text: "cpu", "cuda:1", "test:0"
 * (owned by the model; what the store's `device` attribute records). */
int hk_model_device_index(const hk_model *m);
const char *hk_model_device_string(const hk_model *m);
/* The stream the model's device backend queues its work on (a cudaStream_t on CUDA), so a
 * device-side plugin launches its kernels in order with the forward; NULL on the CPU and the
 * test backend. */
void *hk_backend_stream(const hk_model *m);

/* Copy a hook tensor's elements (any device) to host memory dst, densely in row-major order
 * (hk_dtype_size(dtype) bytes per element), and back: hk_tensor_from_host writes src's dense
 * elements into t. A device tensor must be contiguous (every tensor the forward hands to
 * hooks is). Errors: NULL arguments, a device with no open backend. */
hk_status hk_tensor_to_host(const hk_tensor *t, void *dst);
hk_status hk_tensor_from_host(hk_tensor *t, const void *src);

/* ---- weights (read-only, TransformerLens names and shapes) ----------------- */

/* The weight `name` of the model as TransformerLens's HookedTransformer names and shapes it
 * (state_dict names with fold_ln, centering and folded biases all off), f32 on the host:
 *   embed.W_E [d_vocab, d_model]     pos_embed.W_pos [n_ctx, d_model] (learned positions)
 *   unembed.W_U [d_model, d_vocab]   unembed.b_U [d_vocab]
 *   ln_final.w, ln_final.b [d_model] (b: LayerNorm only)
 *   blocks.L.ln1.w, .ln1.b, .ln2.w, .ln2.b [d_model]
 *   blocks.L.attn.W_Q, W_K, W_V [n_heads, d_model, d_head]   attn.b_Q, b_K, b_V [n_heads, d_head]
 *   blocks.L.attn.W_O [n_heads, d_head, d_model]             attn.b_O [d_model]
 *   blocks.L.attn._W_K, _W_V [n_kv_heads, d_model, d_head], _b_K, _b_V [n_kv_heads, d_head]:
 *       grouped-query attention only: the stored heads; W_K/W_V repeat each of them
 *       n_heads / n_kv_heads times (repeat_interleave), as TransformerLens's W_K property
 *   blocks.L.mlp.W_in [d_model, d_mlp]  mlp.b_in [d_mlp]  mlp.W_gate [d_model, d_mlp] (gated
 *       MLPs: act(x W_gate) * (x W_in + b_in))  mlp.W_out [d_mlp, d_model]  mlp.b_out [d_model]
 * Absent biases are zeros, as in TransformerLens. Quantized GGUF tensors are the dequantized
 * values the forward computes with. *out is contiguous (row-major strides) and read-only:
 * either the loaded weight itself (zero-copy, possibly the mmapped file: never write to it)
 * or a copy gathered on first use (transposed, split per head) that the model owns and
 * frees; it stays valid while the model lives. Not thread-safe with itself on one model.
 * An unknown name, a layer out of range, or a weight this model has not (W_pos of a rotary
 * model, ln1.b under RMSNorm, W_gate of a plain MLP, _W_K without GQA) is HK_ERR_NOT_FOUND
 * saying which. Encoders: the same block names; BERT's embedding norm, token-type
 * embedding and masked-LM head are not offered. */
hk_status hk_model_weight(hk_model *m, const char *name, hk_tensor *out);
/* The weights this model has, for listing: names i in [0, hk_model_weight_count) in order
 * (globals, then each block's), written to buf; HK_ERR_NOT_FOUND past the end. */
size_t hk_model_weight_count(const hk_model *m);
hk_status hk_model_weight_name(const hk_model *m, size_t i, char *buf, size_t cap);

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

/* Whether a hook name matches a pattern as hk_hooks_add, hk_cache_attach and the stores match
 * them: '*' any run of characters (dots included), '?' one character, anything else itself. */
bool hk_glob_match(const char *pattern, const char *name);

size_t hk_model_hook_count(const hk_model *m);
/* i in [0, hk_model_hook_count); NULL when out of range. Valid while the model lives. */
const hk_hook_point *hk_model_hook_at(const hk_model *m, size_t i);

/* What a callback learns about the activation it is handed. */
typedef struct {
    const char *name;     /* full hook name */
    int64_t layer;        /* -1 outside the blocks */
    int64_t batch_offset; /* sequence index of act's batch index 0 */
    int64_t pos_offset;   /* absolute position of act's (query) pos index 0 */
    int64_t key_offset;   /* scores/pattern: absolute position of key index 0 (else 0) */
    int64_t run_batch;    /* sequences in the whole run */
    int64_t run_seq;      /* positions in this call (padded length; a session chunk's n) */
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
/* hk_hooks_add with flags (0: the same as hk_hooks_add). On a device backend (hk_model_device
 * not CPU) a plain callback gets a host copy of the activation, made after the device
 * produced it, and what it leaves there is copied back to the device (only hooked points
 * cost a synchronization); HK_HOOK_READ_ONLY promises the callback never modifies the
 * activation, so no copy goes back; HK_HOOK_ON_DEVICE hands the device view itself
 * (act->device set, act->data a device pointer) to a device-aware callback, which may read or
 * modify it with its own kernels queued on hk_backend_stream(ctx->model), or copy with
 * hk_tensor_to_host. On the CPU every callback gets the activation itself. Other flag bits:
 * HK_ERR_INVALID_ARG. */
#define HK_HOOK_READ_ONLY 1u
#define HK_HOOK_ON_DEVICE 2u
hk_status hk_hooks_add_flags(hk_hooks *h, const char *pattern, hk_hook_fn fn, void *user,
                             unsigned flags, hk_hook_handle *out);
/* Register fn at every point for which filter(name, filter_user) is true (at least one). */
hk_status hk_hooks_add_filter(hk_hooks *h, hk_hook_filter_fn filter, void *filter_user,
                              hk_hook_fn fn, void *user, hk_hook_handle *out);
/* hk_hooks_add_filter with hk_hooks_add_flags's flags. */
hk_status hk_hooks_add_filter_flags(hk_hooks *h, hk_hook_filter_fn filter, void *filter_user,
                                    hk_hook_fn fn, void *user, unsigned flags,
                                    hk_hook_handle *out);
/* Remove one registration (all the points it covered). Unknown handle: HK_ERR_NOT_FOUND. */
hk_status hk_hooks_remove(hk_hooks *h, hk_hook_handle handle);
/* Scoped registration: hk_hooks_scope_end(h, mark) removes everything added since the
 * matching hk_hooks_scope_begin. */
size_t hk_hooks_scope_begin(const hk_hooks *h);
void hk_hooks_scope_end(hk_hooks *h, size_t mark);
/* Number of live registrations. */
size_t hk_hooks_count(const hk_hooks *h);

/* The forward with hooks (hooks may be NULL: same as hk_model_forward). logits may be NULL
 * when only the hooks are wanted: the forward then stops after the last block any registered
 * hook sits in (TransformerLens's stop_at_layer, chosen for you; the embeddings only when
 * nothing is hooked in the blocks), and runs every block and the head only when a hook sits
 * after the blocks (ln_final.*, unembed.*). The hooks fire exactly as in a full forward.
 * The same holds for hk_model_run_typed and hk_model_hidden with out NULL; a session feed
 * (hk_session_feed) always runs every block, since its KV cache must be complete. */
hk_status hk_model_run(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                       const int64_t *lengths, int64_t batch, int64_t seq, float *logits);

/* Run every block and the head (hk_run_opts.stop_at_layer's default). */
#define HK_RUN_ALL_LAYERS INT64_MAX

/* Options of hk_model_run_opts; start from hk_run_default_opts(). */
typedef struct {
    /* TransformerLens's stop_at_layer: run blocks [0, stop_at_layer) only, then write the
     * residual stream entering block stop_at_layer (blocks.N.hook_resid_pre; hook_embed +
     * hook_pos_embed for 0; after the last block for n_layers) to out [batch, seq, d_model]
     * (padded rows zero; out may be NULL). Negative values count from the end (-1: every
     * block but the last). Hooks past the stop (later blocks, ln_final, unembed) never fire
     * and nothing past it is computed. HK_RUN_ALL_LAYERS: every block and the head, as
     * hk_model_run (with its automatic stop when out is NULL). */
    int64_t stop_at_layer;
    const int32_t *token_types; /* [batch, seq] as hk_model_run_typed, or NULL */
} hk_run_opts;

/* {stop_at_layer HK_RUN_ALL_LAYERS, token_types NULL}. */
hk_run_opts hk_run_default_opts(void);
/* hk_model_run with options (o NULL: the defaults). out: the logits [batch, seq,
 * hk_model_output_dim] for HK_RUN_ALL_LAYERS, else the residual [batch, seq, d_model]. A
 * stop_at_layer outside -n_layers..n_layers is HK_ERR_INVALID_ARG. */
hk_status hk_model_run_opts(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                            const int64_t *lengths, int64_t batch, int64_t seq,
                            const hk_run_opts *o, float *out);
/* hk_model_run that computes the head only at the last valid position of each sequence:
 * logits [batch, vocab] (d_model for an encoder without a head), as hk_session_feed's
 * last_only. Every hook fires as in hk_model_run except unembed.hook_out, which sees
 * [batch, 1, vocab]. Memory: [batch, vocab] instead of [batch, seq, vocab]. */
hk_status hk_model_run_last(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                            const int64_t *lengths, int64_t batch, int64_t seq, float *logits);
/* hk_model_run with token-type (segment) ids [batch, seq], each in [0, hk_model_token_types);
 * NULL: every position is type 0 (BERT's default). A model without token-type embeddings
 * refuses non-NULL types (HK_ERR_INVALID_ARG). Padded positions are ignored. */
hk_status hk_model_run_typed(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                             const int32_t *token_types, const int64_t *lengths, int64_t batch,
                             int64_t seq, float *out);
/* The final hidden states [batch, seq, d_model] whatever the model's head: the input of the
 * head (a decoder's final norm output, unembed.hook_in; an encoder's last block output).
 * Padded rows are zero. token_types as hk_model_run_typed. */
hk_status hk_model_hidden(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                          const int32_t *token_types, const int64_t *lengths, int64_t batch,
                          int64_t seq, float *out);

/* ---- sentence embeddings (pooled hidden states) -------------------------- */

typedef enum {
    HK_POOL_MODEL = 0,     /* the model folder's sentence-transformers Pooling config
                              (1_Pooling/config.json, found through modules.json); mean when
                              the folder has none */
    HK_POOL_MEAN,          /* mean over the valid tokens of each sequence */
    HK_POOL_CLS,           /* the first token's hidden state */
    HK_POOL_MAX,           /* elementwise max over the valid tokens */
    HK_POOL_MEAN_SQRT_LEN, /* sum over the valid tokens / sqrt(length) */
    HK_POOL_LAST           /* the last valid token's hidden state (decoders) */
} hk_pooling;

/* The pooling HK_POOL_MODEL resolves to, and whether the model folder asks for L2
 * normalization (a sentence_transformers Normalize module in modules.json). */
hk_pooling hk_model_pooling(const hk_model *m, bool *normalize);
/* "mean", "cls", "max", "mean_sqrt_len", "last" ("model" for HK_POOL_MODEL). */
const char *hk_pooling_name(hk_pooling p);

/* Sentence embeddings: hk_model_hidden, pooled over each sequence's valid tokens, then L2
 * normalized when normalize is 1 (0: not; -1: as the model folder says). out: [batch,
 * d_model]. Hooks fire as in hk_model_hidden. This is sentence-transformers' encode() for
 * Transformer -> Pooling (-> Normalize) models given the same token ids. */
hk_status hk_model_embed(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                         const int32_t *token_types, const int64_t *lengths, int64_t batch,
                         int64_t seq, hk_pooling pooling, int normalize, float *out);

/* ---- in-memory activation cache (TransformerLens run_with_cache) ---------- */

typedef struct hk_cache hk_cache;

hk_status hk_cache_new(const hk_model *m, hk_cache **out);
/* Frees the cache and what it holds. Its registrations stay on the hk_hooks they were added
 * to and must not fire afterwards: remove them first (hk_hooks_scope_begin/_end around
 * hk_cache_attach) or free the hooks. */
void hk_cache_free(hk_cache *c);

/* Register, on `hooks`, copies of every point matching one of patterns[0..n) (exact names or
 * globs; each must match something): the model's points, and the points added to `hooks` by
 * an attached SAE (hookformer_sae.h: "<hook>.hook_sae_acts_post", ..., [batch, pos, width]),
 * after the model's in the cache's order. positions: NULL or "all", "last" (the last valid
 * position of each sequence), or "A:B" (positions A..B-1, Python-style; negative counts from
 * the end of the run). The cache holds exactly what was asked: the matched points, at the
 * selected positions, for the sequences of the last run. Attention scores/patterns keep every
 * key position and select query positions.
 *
 * Shapes: the point's shape with batch = the run's batch and pos (query_pos for scores and
 * patterns) = the selected positions: the run's padded length for "all", 1 for "last"
 * ([batch, 1, d_model]: the dim is kept), the slice length for "A:B" (A, B clamped to the run
 * as Python does; may be 0). key_pos is always the run's padded length.
 * One attach adds one registration on `hooks`; a point may belong to one attach only (a second
 * attach covering it is HK_ERR_INVALID_ARG). A pattern matching nothing is HK_ERR_NOT_FOUND
 * naming it; a malformed positions string is HK_ERR_INVALID_ARG.
 * Runs: an entry is sized at its first fire from the run's batch and padded length. A later
 * run with the same dims overwrites it in place; other dims re-allocate it. Call
 * hk_cache_clear between runs so that nothing of an earlier run is held (for instance after
 * a hook stopped a run early); hk_run_with_cache does that itself. */
hk_status hk_cache_attach(hk_cache *c, hk_hooks *hooks, const char *const *patterns, size_t n,
                          const char *positions);
/* Valid lengths of the sequences of the next runs, for positions "last": required before a
 * run on a right-padded batch, else "last" means the last position of the run (seq - 1).
 * Copied; lengths NULL forgets them. A run whose batch differs from `batch` fails with
 * HK_ERR_HOOK when a "last" entry fires. */
hk_status hk_cache_set_lengths(hk_cache *c, const int64_t *lengths, int64_t batch);

/* The cached activation (contiguous f32 on the host), or NULL if that point was not cached
 * (not attached, or attached but not delivered since the last hk_cache_clear). Valid until
 * the next run, hk_cache_clear or hk_cache_free. */
const hk_tensor *hk_cache_get(const hk_cache *c, const char *name);
/* By point and layer: point "hook_resid_post" or "attn.hook_pattern" with layer >= 0, or a
 * global point ("ln_final.hook_normalized") with layer -1. */
const hk_tensor *hk_cache_get_layer(const hk_cache *c, const char *point, int64_t layer);
/* Entries: the attached points (held or not). */
size_t hk_cache_count(const hk_cache *c);
/* Name of entry i (registration order of the points), NULL when out of range. */
const char *hk_cache_name_at(const hk_cache *c, size_t i);
/* Bytes of activations held: 4 x the elements of every held tensor. */
size_t hk_cache_bytes(const hk_cache *c);
/* Drop (free) the held activations; the registrations and lengths stay. */
void hk_cache_clear(hk_cache *c);

/* One call: run with a fresh cache of `patterns` (see hk_cache_attach), positions "last"
 * using `lengths`, and hand the cache back (*out is NULL on failure). */
hk_status hk_run_with_cache(hk_model *m, const int32_t *tokens, const int64_t *lengths,
                            int64_t batch, int64_t seq, const char *const *patterns, size_t n,
                            const char *positions, float *logits, hk_cache **out);

/* ---- attention masks ------------------------------------------------------ */

/* Masks are specs evaluated per tile while attention runs, never n_ctx x n_ctx buffers. A
 * key is visible to a query when every part of the spec allows it. */
typedef bool (*hk_mask_fn)(void *user, int64_t batch, int64_t head, int64_t q_pos,
                           int64_t k_pos);

typedef struct {
    int causal;             /* 1 causal, 0 bidirectional, -1 the model's own */
    int64_t window;         /* W keys including the query itself; 0 none, -1 the model's own */
    const int32_t *doc_ids; /* packed documents: [batch, positions] document id per position;
                               a key is visible only within its query's document (NULL: off) */
    int64_t doc_stride;     /* positions per row of doc_ids (>= every position used) */
    hk_mask_fn allowed;     /* user predicate, evaluated only on tiles it can change (NULL) */
    void *user;
} hk_mask_spec;

/* The mask every later run and session feed of this model uses (NULL: the model's own).
 * The spec is copied; doc_ids and user must outlive the runs. */
hk_status hk_model_set_mask(hk_model *m, const hk_mask_spec *spec);

/* ---- sessions: KV cache, chunked prefill, generation ----------------------- */

/* A session holds the KV cache of `batch` sequences that advance together (same positions).
 * Caches are sized by the run: max_len positions for full-attention layers, a rolling buffer
 * of W slots (slot = pos mod W) for sliding-window layers. max_len also fixes the rotary
 * scaling choice (LongRoPE's short/long factors), so that feeding a prompt in chunks gives
 * the same numbers as one forward over it. */
typedef struct hk_session hk_session;

hk_status hk_session_new(hk_model *m, int64_t batch, int64_t max_len, hk_session **out);
void hk_session_free(hk_session *s);
/* Positions fed so far. */
int64_t hk_session_pos(const hk_session *s);
/* Bytes held by the KV cache. */
size_t hk_session_cache_bytes(const hk_session *s);

/* Feed the next n positions of every sequence: tokens [batch, n]. logits: [batch, n, vocab]
 * or, with last_only, [batch, vocab] for the last position; may be NULL. Hooks fire with
 * ctx->pos_offset = the position of this chunk's first token. Feeding past max_len is
 * HK_ERR_INVALID_ARG. */
hk_status hk_session_feed(hk_session *s, hk_hooks *hooks, const int32_t *tokens, int64_t n,
                          bool last_only, float *logits);

/* Threads for GEMM and the other kernels (0 = library default). */
void hk_set_num_threads(int n);

void hk_free(void *p);

/* ---- tokenizers ------------------------------------------------------------------ */
/* A tokenizer read from a Hugging Face tokenizer.json: byte-level BPE (GPT-2, Llama-3, Qwen2,
 * SmolLM2), SentencePiece-style BPE (Metaspace or Prepend/Replace normalizers, byte
 * fallback: Llama-2, Mistral, Phi-3) and WordPiece (BERT), with their normalizers,
 * pre-tokenizers, added/special tokens, post-processors and decoders. Ids equal those of the
 * Hugging Face `tokenizers` library (Tokenizer.from_file(...).encode(text)) with truncation
 * and padding off: hookformer never truncates or pads.
 * Text is UTF-8. Invalid UTF-8 is repaired first, each maximal ill-formed subpart becoming
 * U+FFFD, exactly as Python's bytes.decode("utf-8", errors="replace") hands it to Hugging
 * Face. A tokenizer is immutable once loaded: encode/decode may run on many threads. */
typedef struct hk_tokenizer hk_tokenizer;

/* Load a tokenizer.json file. When a tokenizer_config.json sits beside it, its bos_token,
 * eos_token, pad_token and unk_token name the special ids; otherwise they are inferred (the
 * post-processor's leading special token, the model's unk_token, well-known token names). */
hk_status hk_tokenizer_load(const char *path, hk_tokenizer **out);
/* Parse a tokenizer.json held in memory; `origin` names it in error messages. */
hk_status hk_tokenizer_load_json(const char *json, size_t len, const char *origin,
                                 hk_tokenizer **out);
void hk_tokenizer_free(hk_tokenizer *tok);

#define HK_TOK_ADD_SPECIAL 1u  /* encode: apply the post-processor ([CLS] .. [SEP], <s> ..) */
#define HK_TOK_SKIP_SPECIAL 2u /* decode: leave out special tokens */

/* Encode text[0..len) into ids (*out_ids allocated, free with hk_free; may be NULL when
 * *out_count is 0). */
hk_status hk_tokenizer_encode(const hk_tokenizer *tok, const char *text, size_t len,
                              unsigned flags, int32_t **out_ids, size_t *out_count);
/* Decode ids back to text, as Hugging Face's decode (its decoder chain; lossy UTF-8).
 * *out_text is NUL-terminated (free with hk_free); *out_len (may be NULL) its length.
 * An id outside [0, hk_tokenizer_vocab_size) is HK_ERR_INVALID_ARG; an id inside it that
 * names no token (a hole in the vocabulary) is left out, as Hugging Face leaves it out. */
hk_status hk_tokenizer_decode(const hk_tokenizer *tok, const int32_t *ids, size_t n,
                              unsigned flags, char **out_text, size_t *out_len);
/* The vocabulary string of an id ("Ġthe", "##ing", "<s>"), or NULL when out of range. */
const char *hk_tokenizer_token_str(const hk_tokenizer *tok, int32_t id);
/* The text of one token, quoted and escaped for a terminal (Python repr style: ' the',
 * '\n', '\xe2\x80' for bytes that are not whole characters). Truncated to cap - 1 bytes;
 * an id out of range gives "<id N?>". Returns buf. */
char *hk_tokenizer_token_display(const hk_tokenizer *tok, int32_t id, char *buf, size_t cap);
/* "BPE (byte-level)", "BPE (byte fallback)", "BPE" or "WordPiece". */
const char *hk_tokenizer_kind(const hk_tokenizer *tok);
/* The id of a vocabulary or added token string, or -1. */
int32_t hk_tokenizer_token_to_id(const hk_tokenizer *tok, const char *str, size_t len);
/* One past the largest id (model vocabulary and added tokens). */
int64_t hk_tokenizer_vocab_size(const hk_tokenizer *tok);

typedef enum { HK_TOK_BOS = 0, HK_TOK_EOS, HK_TOK_PAD, HK_TOK_UNK } hk_special_token;
/* The id of a special token, or -1 when the tokenizer has none. */
int32_t hk_tokenizer_special_id(const hk_tokenizer *tok, hk_special_token which);
/* Name a special token (loaders that know better than the heuristics: GGUF metadata,
 * config.json ids). id -1 clears it; an id outside the vocabulary is HK_ERR_INVALID_ARG. */
hk_status hk_tokenizer_set_special_id(hk_tokenizer *tok, hk_special_token which, int32_t id);
/* True when encoding with HK_TOK_ADD_SPECIAL puts the BOS id first (the post-processor adds
 * it: Llama-2, Mistral). */
bool hk_tokenizer_adds_bos(const hk_tokenizer *tok);

/* The tokenizer hk_model_load found in the model folder (tokenizer.json), or the one attached
 * with hk_model_set_tokenizer; NULL when there is none. */
const hk_tokenizer *hk_model_tokenizer(const hk_model *m);
/* Why hk_model_tokenizer is NULL ("no tokenizer.json in DIR", or the load error of the one
 * there); "" when there is a tokenizer. */
const char *hk_model_tokenizer_note(const hk_model *m);
/* Attach a tokenizer (the model takes ownership and frees any previous one; NULL detaches). */
void hk_model_set_tokenizer(hk_model *m, hk_tokenizer *tok);

/* Prompts as TransformerLens's to_tokens builds them. prepend_bos: HK_BOS_DEFAULT follows the
 * family's default_prepend_bos (true for gpt2, llama, mistral, phi3; false for qwen2,
 * gpt_neox); HK_BOS_YES / HK_BOS_NO override it. Encoding uses the post-processor; when BOS
 * is wanted and the post-processor does not add it, the BOS token's text is prepended to the
 * text (as TransformerLens does); when it is not wanted and the post-processor adds it, the
 * leading BOS is dropped. Without a BOS token (or without a tokenizer) nothing is prepended.
 * An EOS the post-processor appends is dropped too (TransformerLens's tokenizer_appends_eos).
 * A model without a tokenizer: HK_ERR_NOT_FOUND naming the folder. */
typedef enum { HK_BOS_DEFAULT = -1, HK_BOS_NO = 0, HK_BOS_YES = 1 } hk_bos_mode;
bool hk_model_default_prepend_bos(const hk_model *m);
hk_status hk_model_encode(const hk_model *m, const char *text, size_t len, hk_bos_mode bos,
                          int32_t **out_ids, size_t *out_count);

/* ---- plugins ------------------------------------------------------------------ */
/* A plugin is a shared object that exports one function, hookformer_plugin(), returning a
 * descriptor. The host (`hookformer run --plugin ./x.so:key=val`, or hk_plugin_load) checks
 * the descriptor's ABI version and size, calls init with the parsed arguments (init registers
 * the plugin's hooks on the hk_hooks it is handed), runs the model, then calls finish.
 * A plugin does not link libhookformer: the hk_* functions it calls resolve against the host
 * process. docs/PLUGINS.md explains how to write, build and run one.
 *
 * ABI rule: HK_PLUGIN_ABI_VERSION changes when a field of hk_plugin_desc changes type, meaning
 * or place, or when a function a plugin may call changes in an incompatible way; the host
 * refuses a plugin built for another version. Within one version, new optional fields are
 * only ever appended; the host reads them when the plugin's struct_size covers them. */

#define HK_PLUGIN_ABI_VERSION 1
#define HK_PLUGIN_SYMBOL "hookformer_plugin"

#if defined(__GNUC__)
#define HK_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define HK_PLUGIN_EXPORT
#endif

/* One `key=value` of a plugin spec; value may be "" (never NULL). */
typedef struct {
    const char *key;
    const char *value;
} hk_plugin_arg;

typedef struct {
    /* The first two fields never move: the host checks them before reading anything else. */
    uint32_t abi_version; /* HK_PLUGIN_ABI_VERSION, as the plugin was compiled */
    uint32_t struct_size; /* sizeof(hk_plugin_desc), as the plugin was compiled */
    const char *name;     /* short identifier, e.g. "resid_norms"; required */
    const char *usage;    /* one line: what it does and its arguments; may be NULL */
    /* Parse args[0..n_args) (the strings live until init returns: copy what you keep),
     * register hooks on `hooks`, set *state. On failure: describe it with hk_hook_error(),
     * free what was allocated and return an error status; the host removes any hooks the
     * plugin registered and reports "<path>: plugin '<name>' failed to initialize ...".
     * Required. */
    hk_status (*init)(const hk_model *m, hk_hooks *hooks, const hk_plugin_arg *args,
                      size_t n_args, void **state);
    /* After the runs: print a summary, free state. Called once for every successful init;
     * may be NULL. */
    hk_status (*finish)(void *state);
    /* Before each run (hk_plugin_begin_run): the run's tokens [batch, seq] and valid lengths
     * [batch] (NULL: every sequence has seq valid tokens); both valid until the run returns.
     * May be NULL. */
    hk_status (*begin_run)(void *state, const int32_t *tokens, const int64_t *lengths,
                           int64_t batch, int64_t seq);
} hk_plugin_desc;

/* The one symbol a plugin exports (define it with HK_PLUGIN_EXPORT). */
HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void);

typedef struct hk_plugin hk_plugin; /* a loaded, initialized plugin */

/* Load and initialize a plugin. spec is "PATH" or "PATH:key=value,key=value,..." (the first
 * ':' ends the path; keys non-empty and distinct; values may be empty and may not contain
 * ','). Registrations go on `hooks`, which must outlive the plugin. Errors name the path:
 * HK_ERR_INVALID_ARG (malformed spec), HK_ERR_IO (dlopen failed, with dlerror()),
 * HK_ERR_NOT_FOUND (no hookformer_plugin symbol), HK_ERR_FORMAT (NULL descriptor, missing
 * name or init, struct_size too small), HK_ERR_UNSUPPORTED (another plugin ABI version), or
 * init's own status with the plugin's message. */
hk_status hk_plugin_load(const char *spec, const hk_model *m, hk_hooks *hooks,
                         hk_plugin **out);
/* Tell the plugin about the next run (calls its begin_run, if any). NULL p: HK_OK. */
hk_status hk_plugin_begin_run(hk_plugin *p, const int32_t *tokens, const int64_t *lengths,
                              int64_t batch, int64_t seq);
/* Remove the plugin's hooks from the hk_hooks it was loaded with (still alive), call its
 * finish, unload it and free p. Returns finish's status (message prefixed with the plugin's
 * name). NULL p: HK_OK. */
hk_status hk_plugin_finish(hk_plugin *p);
/* The descriptor's name and usage line ("" when it has none). */
const char *hk_plugin_name(const hk_plugin *p);
const char *hk_plugin_usage(const hk_plugin *p);
/* The path part of the spec it was loaded from. */
const char *hk_plugin_path(const hk_plugin *p);

/* ---- memory estimate ------------------------------------------------------------- */

/* What a run will hold, in bytes, predicted from the config, the checkpoint and what loading
 * the model took, before any run memory is allocated (hookformer estimate; --mem-limit).
 * `total` is the peak resident set size (VmHWM) of the process during the run: what it held
 * before hk_model_load, what the load left resident, and what the run allocates. */
typedef struct {
    size_t runtime;      /* the process before hk_model_load: the executable, shared libraries
                            (OpenBLAS, CUDA's when built with it), libc's heap and whatever the
                            caller held; measured (VmRSS) when the model was loaded */
    size_t weights;      /* f32 weights the model computes with: buffers converted at load
                            (dequantized GGUF blocks, F16/BF16, fused gathers) + the mmapped
                            F32 tensors read in place (resident once the forward reads them) */
    size_t mapping;      /* checkpoint pages read at load: headers and metadata (a GGUF's
                            vocabulary) and the sources of the converted tensors, resident for
                            as long as the file is mapped */
    size_t load_other;   /* the rest of what hk_model_load left resident: tokenizer, hook-point
                            tables, malloc arenas (measured at load: its VmRSS growth minus the
                            converted buffers and the mapping) */
    size_t kv_cache;     /* as hk_session_new(batch, ctx) allocates it; 0 for one forward */
    size_t activations;  /* the forward's activation block for batch x chunk rows, the GEMM
                            packing buffers, and the per-layer buffers of hooked
                            attn.hook_result / split inputs */
    size_t attention;    /* attention working memory: the kernel's workspace per thread, the
                            gathered rolling-buffer keys, and the materialized scores chunk
                            when attn_scores / pattern is among the hooks */
    size_t cached_hooks; /* what an hk_cache of the patterns holds for batch x ctx */
    size_t logits;       /* the caller's logits: [batch, vocab] for the last position, else
                            [batch, ctx, vocab] (hk_model_output_dim for vocab: d_model for an
                            encoder without a head) */
    size_t total;        /* the sum of the above */
    bool kv_rolling;     /* some layer keeps a rolling buffer of kv_window slots */
    int64_t kv_window;   /* W of the rolling layers (0 when none) */
    /* HK_DEVICE_CUDA: `total` is device memory on one GPU (docs/CUDA.md, "Device memory
     * estimate"): context + blas_workspace + weights (linears in weights_dtype; embeddings,
     * norms and biases f32; a tied head is a copy of its own unless f32) + kv_cache (the
     * CPU's: f32, W slots on windowed layers) + activations (the CPU's activation block, the
     * f16/bf16 copy of a linear's input) + attention (split-key partial results, gathered
     * window keys, the scores chunk) + logits (the device copy). runtime, mapping and
     * load_other are 0; cached_hooks is host memory, not in the total. */
    hk_device device;      /* the device the estimate is for */
    hk_dtype weights_dtype; /* the weights' dtype on that device */
    size_t context;        /* CUDA: the CUDA context with the kernels loaded (a stated figure:
                              512 MiB); 0 on the CPU */
    size_t blas_workspace; /* CUDA: cuBLAS's workspace (32 MiB on sm_90); 0 on the CPU */
} hk_estimate;

/* The run an estimate is for. */
typedef struct {
    int64_t batch;             /* sequences run together (>= 1) */
    int64_t ctx;               /* positions per sequence (>= 1) */
    bool session;              /* true: a session of max_len ctx (hk_session_feed, hk_generate):
                                  a KV cache, prefill in feeds of `chunk`; false: one forward
                                  over ctx (hk_model_run / hk_model_run_last), no KV cache.
                                  A bidirectional model is always one forward. */
    int64_t chunk;             /* positions per feed of a session, 0 = ctx (one feed); must be
                                  0 without a session */
    const char *const *hooks;  /* names or globs as hk_cache_attach takes them (each must match
                                  a point: HK_ERR_NOT_FOUND otherwise), cached for every
                                  position; NULL when n_hooks is 0 */
    size_t n_hooks;
    bool all_logits;           /* logits for every position (else the last one's) */
    hk_device device;          /* HK_DEVICE_CPU (0: resident host memory) or HK_DEVICE_CUDA
                                  (device memory of one GPU; see hk_estimate) */
    hk_dtype weights_dtype;    /* HK_DTYPE_F32 (0), or HK_DTYPE_F16 / HK_DTYPE_BF16 with
                                  HK_DEVICE_CUDA: the dtype the weights are uploaded in */
} hk_estimate_opts;

/* Estimate the memory of a run (see hk_estimate). Uses the model's mask (window override),
 * the current thread count (hk_set_num_threads) and what this process's hk_model_load of m
 * measured. Errors: HK_ERR_INVALID_ARG for non-positive sizes, a chunk without a session, or
 * a ctx past a learned-position model's positions. */
hk_status hk_estimate_memory(const hk_model *m, const hk_estimate_opts *opts, hk_estimate *out);
/* hk_estimate_memory of a session ({batch, ctx, session = true, chunk, hook_patterns,
 * n_patterns, all_logits = !last_logits_only}). */
hk_status hk_estimate_run(const hk_model *m, int64_t batch, int64_t ctx, int64_t chunk,
                          const char *const *hook_patterns, size_t n_patterns,
                          bool last_logits_only, hk_estimate *out);

/* ---- sampling and generation ----------------------------------------------------- */

/* How the next token is chosen from logits. Semantics are those of Hugging Face's logits
 * warpers, applied in this order: temperature, top-k, top-p; then one draw.
 *   temperature  0: greedy (argmax; ties go to the lowest id, as torch.argmax); > 0: logits are
 *                divided by it. top_k and top_p are ignored (but checked) when greedy.
 *   top_k        0: off; k > 0: keep the k highest logits (a tie with the k-th is kept too).
 *   top_p        in (0, 1]; 1: off; else nucleus: keep the smallest set of most likely tokens
 *                whose probability sums to >= top_p (always at least one token).
 *   seed         hk_generate starts its PRNG state at seed: the same seed, options, model and
 *                prompt give the same ids.
 * A zero-initialized struct has top_p 0, which is invalid: start from hk_sampler_default(). */
typedef struct {
    float temperature;
    int top_k;
    float top_p;
    uint64_t seed;
} hk_sampler_opts;

/* {temperature 0 (greedy), top_k 0, top_p 1, seed 0}. */
hk_sampler_opts hk_sampler_default(void);

/* Choose one token from logits [vocab] (o NULL: greedy). The draw is one step of a splitmix64
 * generator whose 64-bit state is *rng_state (advanced; greedy does not touch it); with
 * rng_state NULL a state equal to o->seed is used, so every such call draws the same u.
 * Errors: HK_ERR_INVALID_ARG for NULL logits/out, vocab < 1 or > INT32_MAX, a bad option
 * (temperature < 0 or not finite, top_k < 0, top_p outside (0, 1]; the message names the
 * field), a NaN logit, or all logits -inf when sampling. */
hk_status hk_sample(const float *logits, int64_t vocab, const hk_sampler_opts *o,
                    uint64_t *rng_state, int32_t *out);

/* Generate up to max_new tokens after prompt[0..n_prompt) for one sequence (batch 1).
 * The prompt is fed through a session (hk_session_new) of n_prompt + max_new - 1 positions
 * (the last token chosen is never fed) in chunks of `chunk` positions (0: all at once); then
 * each chosen token is fed alone with last_only logits. hooks (may be NULL) fire at every
 * feed: per prefill chunk, then once per decode step with pos = 1 (attention scores/pattern
 * [1, head, 1, keys]) and ctx->pos_offset = the step's position. Tokens are chosen with
 * hk_sample (o NULL: greedy) from a PRNG state that starts at o->seed.
 * Stops after max_new tokens or after a token in stop_ids[0..n_stop) (which is written to
 * out). out [max_new] receives the ids; *n_out their count (set even when a step fails).
 * A hook that stops a forward makes it return HK_STOPPED with the tokens chosen before that
 * feed in out. max_new 0 runs the prefill only (hooks fire; nothing is chosen).
 * Positions are bounded by the model only (learned position tables: hk_session_new's error);
 * a caller enforcing a context limit checks n_prompt + max_new itself. */
hk_status hk_generate(hk_model *m, hk_hooks *hooks, const int32_t *prompt, int64_t n_prompt,
                      int64_t max_new, int64_t chunk, const hk_sampler_opts *o,
                      const int32_t *stop_ids, size_t n_stop, int32_t *out, int64_t *n_out);


/* ---- HDF5 activation store ---------------------------------------------------------- */
/* Activations streamed to an HDF5 file that plain h5py reads (docs/FORMAT.md has the layout).
 * Per hook a dataset of token rows [n_rows, ...] (attention scores/patterns: one row per
 * sequence, [n_sequences, head, Q, ctx]); aligned 1-D datasets seq_id, position, token_id;
 * per-sequence datasets seq_length, seq_first_row, seq_first_pos, seq_n_rows.
 *
 * Crash safety: rows reach the file at commits, which happen at most every commit_seconds
 * (and when the store is closed). The file on disk only ever holds a committed state: a
 * writer killed at any moment (SIGKILL included) leaves a file that opens with plain h5py
 * and holds every row of the last completed commit (docs/FORMAT.md says why). A file is
 * created under a temporary name and renamed into place once it is complete; an existing
 * file is replaced only with `force`. A full disk or a file-size limit ends the run with
 * HK_ERR_IO naming the file, which keeps the rows committed so far. While a store is open
 * for writing, SIGXFSZ is ignored (so that a size limit is an error, not a kill). */
typedef struct hk_store hk_store;

typedef struct {
    hk_dtype dtype;         /* HK_DTYPE_F32, HK_DTYPE_F16 or HK_DTYPE_BF16 (converted by
                               hookformer, stored as 16-bit float types with a dtype attr) */
    const char *positions;  /* NULL/"all", "last", or "A:B" (a Python slice of each
                               sequence's valid positions) */
    const char *compress;   /* NULL/"none", "deflate", "deflate:N" (N 1..9), "lz4" (when the
                               HDF5 LZ4 filter plugin is installed) */
    int64_t ctx;            /* positions of stored attention patterns (key and, with "all",
                               query dims); required when a pattern/scores hook is stored */
    double commit_seconds;  /* commit when this long has passed since the last commit
                               (checked after each batch); 0: after every batch */
    bool force;             /* replace an existing file */
    bool fsync;             /* fsync the rows before each commit and the file after it */
    int64_t expected_rows;  /* token rows the caller expects to store (0: unknown): a new
                               file's chunks hold about that many rows when it is fewer than
                               ~2 MiB of them, so a small store stays small */
    bool corpus_ids;        /* a new file records the corpus id of each sequence (dataset
                               seq_corpus_id): the shards of a distributed run, where a rank
                               stores sequences of a shared corpus out of order. Every batch
                               then needs hk_store_set_corpus_ids. An append keeps the file's
                               setting. */
    bool overlap;           /* write each batch's rows from a second thread while the next
                               batch runs (two staging buffers per hook; uncompressed stores
                               only, ignored with compression): a write error then comes back
                               from the next end_batch, commit or close. Commits still cover
                               only rows in the file. Default off. */
} hk_store_opts;

/* {F32, "all", no compression, ctx 0, commit every 1 s, no force, no fsync}. */
hk_store_opts hk_store_default_opts(void);

/* Create `path` for the hooks matching patterns[0..n) (names or globs, each matching a
 * point). HK_ERR_IO when path exists and !o->force. o NULL: defaults. */
hk_status hk_store_create(const char *path, const hk_model *m, const char *const *patterns,
                          size_t n, const hk_store_opts *o, hk_store **out);
/* Open an existing store to add rows: its model (content id and canonical config), hooks,
 * dtype, positions and ctx (o->ctx 0: the file's) must be those given (HK_ERR_INVALID_ARG
 * naming the difference). New sequences get ids after the stored ones. Every check, and a
 * check of the space the first commit needs, runs before the file is opened for writing: a
 * refused append leaves the file byte-identical, and so does one that stores no rows. The
 * model is identified by its content (hk_store_info.model_id), not by where it lies. */
hk_status hk_store_append(const char *path, const hk_model *m, const char *const *patterns,
                          size_t n, const hk_store_opts *o, hk_store **out);

/* Register the store's hooks on `hooks` (made for the store's model), for callers that run
 * the model themselves between hk_store_begin_batch and hk_store_end_batch. hk_store_run
 * does not need it. */
hk_status hk_store_attach(hk_store *s, hk_hooks *hooks);
/* Declare the next run: tokens [batch, seq], valid lengths [batch] (NULL: all seq). Both
 * must stay valid until hk_store_end_batch. */
hk_status hk_store_begin_batch(hk_store *s, const int32_t *tokens, const int64_t *lengths,
                               int64_t batch, int64_t seq);
/* After the run: check that every stored hook delivered every selected row, write the rows,
 * commit when commit_seconds have passed. */
hk_status hk_store_end_batch(hk_store *s);
/* One batch: begin, hk_model_run with the store's own hooks (no logits, so the forward stops
 * after the last stored layer; logits only when unembed.hook_out is stored), end. */
hk_status hk_store_run(hk_store *s, hk_model *m, const int32_t *tokens, const int64_t *lengths,
                       int64_t batch, int64_t seq);
/* hk_store_run on the caller's hooks instead of the store's own: hooks on which
 * hk_store_attach registered the store (after anything that should fire first, such as
 * plugins: the store then records their modified values). NULL: hk_store_run. */
hk_status hk_store_run_hooks(hk_store *s, hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                             const int64_t *lengths, int64_t batch, int64_t seq);
/* hk_store_run_hooks through a session (hk_session_new(m, batch, seq)): the batch fed chunk
 * positions at a time (the last chunk shorter), so activations are one chunk's and the KV
 * cache keeps a rolling buffer of W slots on sliding-window layers; the stored rows are the
 * same positions as hk_store_run_hooks stores. hooks NULL: the store's own. Errors:
 * HK_ERR_INVALID_ARG for chunk < 1 or a bidirectional model (no KV cache). */
hk_status hk_store_run_chunked(hk_store *s, hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                               const int64_t *lengths, int64_t batch, int64_t seq,
                               int64_t chunk);
/* The corpus ids of the next batch's sequences (ids[0..n), n = the batch, each >= 0; copied),
 * for a store made with hk_store_opts.corpus_ids; hk_store_end_batch refuses a batch without
 * them. */
hk_status hk_store_set_corpus_ids(hk_store *s, const int64_t *ids, int64_t n);
/* Commit now: afterwards every row given so far is in the file as h5py sees it. */
hk_status hk_store_commit(hk_store *s);
/* Commit (writable stores) and close. Frees s even on error; NULL: HK_OK. */
hk_status hk_store_close(hk_store *s);

/* Read-only open (e.g. as a patching source). */
hk_status hk_store_open(const char *path, hk_store **out);

typedef struct {
    const char *path, *model_id, *family, *dtype, *positions, *compression, *version;
    const char *model_path; /* where the writer loaded the model from ("" in older files);
                               model_id is "hk1:" + a hash of its content */
    int64_t n_rows;      /* committed token rows (length of seq_id) */
    int64_t n_sequences; /* committed sequences (length of seq_length) */
    int64_t ctx;         /* pattern positions (0 when none is stored) */
    size_t n_hooks;
    uint64_t file_bytes;
} hk_store_info;

typedef struct {
    const char *name;
    bool per_sequence;  /* attention scores/pattern: one row per sequence */
    int ndim;           /* of the dataset, rows first */
    int64_t shape[HK_MAX_DIMS];
    const char *dims;   /* "row d_model", "sequence head_index query_pos key_pos" */
    int64_t chunk_rows;
    uint64_t data_bytes;   /* the committed rows: shape x the dtype's size */
    uint64_t stored_bytes; /* the file space of the dataset (allocated chunks, compressed) */
} hk_store_hook_info;

/* Strings stay valid while s is open. */
hk_status hk_store_get_info(const hk_store *s, hk_store_info *out);
hk_status hk_store_hook_at(const hk_store *s, size_t i, hk_store_hook_info *out);

/* Read hook `name` at n (sequence id, position) pairs into out [n, row...] as f32.
 * positions[i] is an absolute position of the sequence; -1 is its last stored row. A pair
 * that was not stored is HK_ERR_NOT_FOUND naming it. For a per-sequence (pattern) hook,
 * positions must be NULL and out is [n, head, Q, ctx]. Elements per row:
 * hk_store_row_elems. */
hk_status hk_store_read(hk_store *s, const char *name, const int64_t *seq_ids,
                        const int64_t *positions, size_t n, float *out);
int64_t hk_store_row_elems(const hk_store *s, const char *name);
/* Committed sequence q of a store opened with hk_store_open: its valid tokens (seq_length),
 * first row, first stored position and rows (any output may be NULL). */
hk_status hk_store_sequence(const hk_store *s, int64_t q, int64_t *length, int64_t *first_row,
                            int64_t *first_pos, int64_t *n_rows);
/* Join shards (stores made with hk_store_opts.corpus_ids, of one model, hooks, dtype,
 * positions and ctx) into the root file `root`: per hook a virtual dataset over the shards'
 * committed rows, the sequences in corpus-id order; seq_id holds the corpus ids and the
 * per-sequence tables the root's rows (docs/FORMAT.md, "Sharded stores"). The shards are
 * named relative to root's folder when they lie in it. Written as root.tmp, renamed onto root
 * (an existing root only with force). A corpus id in two shards is HK_ERR_FORMAT naming both. */
hk_status hk_store_join(const char *root, const char *const *shards, size_t n_shards,
                        bool force);
/* The corpus ids of the committed sequences into out [n_sequences] (a store made with
 * hk_store_opts.corpus_ids; HK_ERR_NOT_FOUND otherwise). */
hk_status hk_store_corpus_ids(hk_store *s, int64_t *out);
/* token_id of the committed rows [row0, row0 + n) into out [n]. */
hk_status hk_store_read_token_ids(hk_store *s, int64_t row0, int64_t n, int32_t *out);
/* Whether any of patterns[0..n) matches an attention scores/pattern point of m: those are
 * stored per sequence, padded to hk_store_opts.ctx, which must then be given. */
bool hk_store_needs_ctx(const hk_model *m, const char *const *patterns, size_t n);

typedef struct {
    uint64_t bytes_written; /* activation and index bytes handed to HDF5 */
    double write_seconds;   /* time in writes, commits and fsyncs */
    int64_t commits;
} hk_store_stats;
hk_store_stats hk_store_get_stats(const hk_store *s);
/* ---- patching experiments: activation patching, ablation, steering, lens ---------- */
/* docs/PATCHING.md explains the experiments and docs/FORMAT.md the result files.
 *
 * A prompt set is n_prompts prompts of equal length with, per prompt, a correct and an
 * incorrect answer token. Its metric is the logit difference at the last position, averaged
 * over the prompts: mean_i (logit_i[answer[i]] - logit_i[wrong[i]]) (TransformerLens's usual
 * patching metric). */
typedef struct {
    int64_t n_prompts, seq;
    const int32_t *tokens; /* [n_prompts, seq] */
    const int32_t *answer; /* [n_prompts] */
    const int32_t *wrong;  /* [n_prompts] */
} hk_prompt_set;

/* The metric of a prompt set under `hooks` (may be NULL): one batched forward. */
hk_status hk_prompt_metric(hk_model *m, hk_hooks *hooks, const hk_prompt_set *p, float *out);

/* Where patched-in activations come from. get() points *out at the n floats of point `name`
 * (a full name: "blocks.3.hook_resid_pre") for prompt `prompt` at position `pos`: the point's
 * inner dims ([d_model], or [head, d_head] for attn.hook_z); valid until the next call. A
 * source that cannot deliver (wrong n, missing point, I/O) returns an error with a message. */
typedef struct {
    hk_status (*get)(void *user, const char *name, int64_t prompt, int64_t pos, int64_t n,
                     const float **out);
    void *user;
} hk_act_source;

/* A source over an hk_cache holding the points at positions "all" for a run whose batch rows
 * are the prompts (hk_run_with_cache over them). The cache must outlive the source's use. */
hk_act_source hk_act_source_cache(const hk_cache *c);

/* A source over an HDF5 activation store (hk_store_open; `hookformer cache`) holding the
 * points at every position: prompt i reads the store's sequence seq_ids[i] (seq_ids NULL:
 * sequence i) at the same position. The store must stay open while the source is used;
 * free the source with hk_act_source_store_free. */
hk_status hk_act_source_store(hk_store *s, const int64_t *seq_ids, int64_t n_prompts,
                              hk_act_source *out);
void hk_act_source_store_free(hk_act_source *src);

/* What a sweep patches: `point` is a block point of shape [batch, pos, ...] named without its
 * "blocks.L." prefix ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
 * "hook_mlp_out", "attn.hook_z", "attn.hook_q", "attn.hook_k", "attn.hook_v",
 * "mlp.hook_post", ...). One patch per layer (every layer, or only `layer` when >= 0), per
 * position when per_position (else every position at once), per head when per_head (head
 * points [batch, pos, head, d] only; else the whole activation). */
typedef struct {
    const char *point;
    bool per_position;
    bool per_head;
    int64_t layer; /* -1: every layer */
} hk_sweep_spec;

/* The named sweeps of `hookformer patch --sweep` (tools) and the Python package: "resid_pre",
 * "resid_mid", "resid_post", "attn_out", "mlp_out" (per layer and position), "head_out"
 * (attn.hook_z), "head_q", "head_k", "head_v" (per layer and head, every position at once) and
 * "head_out_by_pos", "head_q_by_pos", "head_k_by_pos", "head_v_by_pos" (per layer, position and
 * head); *out gets layer -1 (every layer) and a static point string. An unknown name is
 * HK_ERR_NOT_FOUND listing the known ones (hk_sweep_names: comma-separated). */
hk_status hk_sweep_by_name(const char *name, hk_sweep_spec *out);
const char *hk_sweep_names(void);

/* A sweep's metric per patch: values [shape] over dims ("layer", then "pos" and/or "head",
 * in that order: TransformerLens's [layer, pos], [layer, pos, head], [layer, head]). */
typedef struct {
    char point[64];       /* the spec's point */
    int ndim;             /* 1..3 */
    int64_t shape[3];
    const char *dims[3];  /* "layer", "pos", "head" (static strings) */
    int64_t layer0;       /* layer of index 0 along "layer" */
    float *values;        /* [shape] metric with the patch (owned) */
    float *change;        /* [shape] values - baseline (owned) */
    float *normalized;    /* [shape] (values - baseline) / (reference - baseline): patching
                             only, else NULL (owned) */
    float baseline;       /* metric of the run without patches (corrupted prompts; for an
                             ablation the prompts themselves) */
    float reference;      /* metric of the clean prompts (patching); NaN for an ablation */
    int64_t patches;      /* patches run */
    int64_t forwards;     /* batched forwards they took */
    int64_t batch;        /* patches per forward */
} hk_sweep_result;

void hk_sweep_result_free(hk_sweep_result *r);

/* A share of a sweep's forwards, to split one sweep over processes (`mpirun hookformer
 * patch`): the sweep runs forward f (patches f*batch .. f*batch + batch - 1, in the sweep's
 * order) only when f % n_parts == part, and leaves the values of the others NaN. Every
 * forward is the one a whole sweep runs, so hk_sweep_merge of the shares gives the whole
 * sweep's numbers bit for bit. {0, 0} (or n_parts 1): every forward. */
typedef struct {
    int64_t part, n_parts;
} hk_sweep_part;

/* Join the shares: r is share 0's result (or any share's: every share has the same shape,
 * batch, baseline and reference); values [n_parts, r->patches] holds every share's values and
 * forwards [n_parts] their forwards. r's values, change, normalized and forwards become the
 * whole sweep's. */
hk_status hk_sweep_merge(hk_sweep_result *r, const float *values, const int64_t *forwards,
                         int64_t n_parts);

typedef struct {
    const int32_t *clean;   /* [n_prompts, clean_seq] the clean prompts */
    int64_t clean_seq;
    const int64_t *pos_map; /* [seq] clean position patched into each corrupted position (-1:
                               that position is never patched); NULL: the identity (then
                               clean_seq must equal seq) */
    const hk_act_source *source; /* the clean activations; NULL: the sweep runs the clean
                                    prompts once with an in-memory cache of the point */
    int64_t batch;          /* patches per forward; 0: chosen from max_bytes (hk_estimate_run) */
    size_t max_bytes;       /* activation budget of one batched forward when batch is 0
                               (0: 512 MiB) */
    bool full_forward;      /* run every layer in every forward. By default a forward whose
                               patches all sit at layer >= L starts at block L from the
                               corrupted run's cached blocks.L.hook_resid_pre (the same numbers,
                               fewer layers) */
    hk_hooks *hooks;        /* NULL, or registrations (plugins: an intervention) that run in
                               every forward of the sweep (clean, corrupted, patched) before the
                               sweep's own hooks at each point; the sweep adds and removes its
                               own on it. A forward that starts at block L does not fire them
                               before L: their effect is in the cached residual */
    hk_sweep_part share;    /* {0, 0}: the whole sweep; else the forwards of one share */
} hk_patch_opts;

/* Activation patching: run the corrupted prompts with, per patch, the clean activation at
 * (layer, position[, head]) written over the corrupted one, and record the metric. Several
 * patches run per forward along the batch dimension (batch x n_prompts rows); the results
 * equal TransformerLens's patching.get_act_patch_* (tests/hooks/test_patch.c). */
hk_status hk_patch_sweep(hk_model *m, const hk_prompt_set *corrupted, const hk_patch_opts *o,
                         const hk_sweep_spec *spec, hk_sweep_result *out);

typedef enum {
    HK_ABLATE_ZERO = 0, /* the activation := 0 */
    HK_ABLATE_MEAN,     /* := its mean over every valid position of the reference prompts,
                           accumulated one batch of reference prompts at a time */
    HK_ABLATE_RESAMPLE  /* := its value in a reference prompt at the same position */
} hk_ablate_mode;

typedef struct {
    hk_ablate_mode mode;
    const int32_t *ref;          /* [n_ref, ref_seq] reference prompts (mean, resample) */
    int64_t n_ref, ref_seq;
    const int64_t *ref_lengths;  /* [n_ref] valid tokens (mean; NULL: all ref_seq) */
    const int64_t *resample_idx; /* [n_prompts] ref prompt of each prompt; NULL: drawn from
                                    seed (resample needs ref_seq >= seq) */
    uint64_t seed;
    int64_t batch;               /* as hk_patch_opts */
    size_t max_bytes;
    bool full_forward;
    hk_hooks *hooks;             /* as hk_patch_opts: in every forward, the reference runs
                                    included, before the sweep's own hooks */
    hk_sweep_part share;         /* as hk_patch_opts */
} hk_ablate_opts;

/* Ablation sweep over the prompts themselves: per patch the activation is replaced as `mode`
 * says; values are the metric with it, change = values - baseline (the unablated metric). */
hk_status hk_ablate_sweep(hk_model *m, const hk_prompt_set *p, const hk_ablate_opts *o,
                          const hk_sweep_spec *spec, hk_sweep_result *out);
const char *hk_ablate_mode_name(hk_ablate_mode mode); /* "zero", "mean", "resample" */

/* Logit lens: blocks.l.hook_resid_pre for l < n_layers, then the last hook_resid_post, each
 * through ln_final (its statistics recomputed per vector) and the unembedding; the top k
 * tokens at every position, with their logits and probabilities. */
typedef struct {
    int64_t n_rows; /* n_layers + 1 */
    int64_t seq, k;
    int32_t *top_ids;   /* [n_rows, seq, k] (owned) */
    float *top_logits;  /* [n_rows, seq, k] (owned) */
    float *top_probs;   /* [n_rows, seq, k] softmax over the vocabulary (owned) */
} hk_lens_result;

hk_status hk_logit_lens(hk_model *m, const int32_t *tokens, int64_t seq, int64_t k,
                        hk_lens_result *out);
/* hk_logit_lens with `hooks` (may be NULL; plugins) firing in its run before its own. */
hk_status hk_logit_lens_hooked(hk_model *m, hk_hooks *hooks, const int32_t *tokens, int64_t seq,
                               int64_t k, hk_lens_result *out);
void hk_lens_result_free(hk_lens_result *r);

/* Direct logit attribution of the logit difference at the last position: the final residual
 * split into every head's output (attn.hook_result), every MLP's output, the embeddings and
 * the summed attention output biases, each centred (LayerNorm models) and divided by
 * ln_final's scale of the whole residual (TransformerLens's apply_ln_to_stack), then projected
 * on w_ln_final * (W_U[:, answer] - W_U[:, wrong]). Components in TransformerLens's
 * get_full_resid_decomposition order: L0H0.. L{L-1}H{H-1}, 0_mlp_out.., embed, [pos_embed,]
 * bias. total is the logit difference itself (components + the bias terms of ln_final and the
 * unembedding). */
typedef struct {
    int64_t n_components, n_prompts;
    int64_t n_layers, n_heads;
    char **labels;   /* [n_components] (owned) */
    float *values;   /* [n_components, n_prompts] (owned) */
    float *total;    /* [n_prompts] (owned) */
} hk_dla_result;

hk_status hk_dla(hk_model *m, const hk_prompt_set *p, hk_dla_result *out);
/* hk_dla with `hooks` (may be NULL; plugins) firing in its run before its own. */
hk_status hk_dla_hooked(hk_model *m, hk_hooks *hooks, const hk_prompt_set *p,
                        hk_dla_result *out);
void hk_dla_result_free(hk_dla_result *r);

/* Steering (ActAdd): a vector added to the residual stream at one layer. */
typedef struct {
    char point[64];   /* "hook_resid_pre" (any [batch, pos, d_model] block point) */
    int64_t layer;
    int64_t n_pos;    /* 1: one vector, added at every position >= from (prefill and every
                         generated token); > 1: row i added at position from + i */
    int64_t d_model;
    float *vec;       /* [n_pos, d_model] (owned) */
} hk_steer_vector;

typedef enum {
    HK_STEER_LAST = 0, /* act(pos prompt)[last] - act(neg prompt)[last]: one vector */
    HK_STEER_MEAN,     /* mean over positions of each prompt, then the difference */
    HK_STEER_ALIGNED   /* per position (equal lengths): n_pos = the prompts' length (ActAdd) */
} hk_steer_mode;

hk_status hk_steer_from_prompts(hk_model *m, const char *point, int64_t layer,
                                const int32_t *pos, int64_t n_pos, const int32_t *neg,
                                int64_t n_neg, hk_steer_mode mode, hk_steer_vector *out);
void hk_steer_vector_free(hk_steer_vector *v);
/* HDF5: dataset "vector" [n_pos, d_model] with attributes point, layer (docs/FORMAT.md).
 * An existing file is an error unless force. */
hk_status hk_steer_save(const hk_steer_vector *v, const hk_model *m, const char *path,
                        bool force);
hk_status hk_steer_load(const char *path, hk_steer_vector *out);

/* What hk_steer_add registers; the caller keeps it (and its vector) alive while registered. */
typedef struct {
    const hk_steer_vector *v;
    float coef;
    int64_t from; /* absolute position the vector starts at */
} hk_steer_apply;

/* Register the addition coef * vec at blocks.<layer>.<point> on hooks (sessions and
 * hk_generate included: positions are absolute, ctx->pos_offset). */
hk_status hk_steer_add(hk_hooks *h, const hk_steer_apply *a, hk_hook_handle *out);

/* ---- result files and heatmaps ---- */

/* An HDF5 result file (docs/FORMAT.md). Written to PATH.tmp and renamed onto PATH by
 * hk_results_close, so that a failed run leaves no half file and never clobbers an existing
 * one; an existing PATH is an error unless force. kind: "patch", "ablate", "lens", ... */
typedef struct hk_results hk_results;

hk_status hk_results_create(const char *path, bool force, const hk_model *m, const char *kind,
                            hk_results **out);
/* Group `name` holding the sweep (values, change, normalized, dims, baselines). */
hk_status hk_results_add_sweep(hk_results *f, const char *name, const hk_sweep_result *r);
/* Dataset `name` of ids [rows, seq] and, when labels is not NULL, `name`_labels [seq]
 * (strings: the token of each position). */
hk_status hk_results_add_tokens(hk_results *f, const char *name, const int32_t *ids,
                                int64_t rows, int64_t seq, const char *const *labels);
hk_status hk_results_add_lens(hk_results *f, const char *name, const hk_lens_result *r);
hk_status hk_results_add_dla(hk_results *f, const char *name, const hk_dla_result *r);
/* Finish: flush, close, rename into place. Frees f (also on failure). */
hk_status hk_results_close(hk_results *f);
/* Give up: close and remove the temporary file. Frees f. */
void hk_results_discard(hk_results *f);

/* A 1-D int32 dataset [n] (e.g. the answer tokens, one per prompt) with attribute dims. */
hk_status hk_results_add_ids(hk_results *f, const char *name, const int32_t *ids, int64_t n,
                             const char *dims);

/* What a results file (or a steering vector, hk_steer_save) holds: `hookformer inspect`. */
typedef struct {
    char name[128];       /* path in the file: "resid_pre/values" */
    char type[16];        /* "f32", "i32", "string", ... */
    int ndim;
    int64_t shape[HK_MAX_DIMS];
    char dims[64];        /* its dims attribute ("layer pos"), "" when none */
    uint64_t stored_bytes;
} hk_results_item;
typedef struct {
    char kind[32];        /* "patch", "ablate", "lens", "steering_vector" */
    char model[1024], family[64], version[32];
    size_t n_items;
    hk_results_item *items; /* every dataset, in name order */
} hk_results_info;
/* HK_ERR_FORMAT naming the file when it is not one; free with hk_results_info_free. */
hk_status hk_results_info_read(const char *path, hk_results_info *out);
void hk_results_info_free(hk_results_info *info);

/* A heatmap as a standalone SVG 1.1 file: labelled axes, tick labels (XML-escaped), a colour
 * scale with its legend (diverging blue-white-red around 0 for signed values, else white to
 * red). NaN cells are grey. The title may hold several lines ('\n'; the first is bold). The
 * canvas holds everything drawn (legend and rotated labels included, whatever the row count);
 * cell text wider than its cell is cut with an ellipsis (or left out). */
typedef struct {
    const float *values;           /* [rows, cols] */
    int64_t rows, cols;
    const char *const *row_labels; /* [rows] */
    const char *const *col_labels; /* [cols] */
    const char *title;
    const char *row_axis, *col_axis, *value_label;
    bool diverging;
    const char *const *cell_text;  /* [rows, cols] text drawn in each cell, or NULL */
    double range_min, range_max;   /* the colour scale's ends when range_max > range_min
                                      (e.g. 0 and 1 for probabilities), else from the data */
} hk_heatmap;

hk_status hk_heatmap_svg(const hk_heatmap *h, const char *path, bool force);

/* The heatmap of a sweep (normalized values when it has them and `normalized`, else values):
 * [layer, pos] and [layer, head] as rows x columns; [layer, pos, head] with one row per
 * (layer, head) ("L3 H2"). pos_labels [seq] label the positions (NULL: their indices). */
hk_status hk_sweep_heatmap_svg(const hk_sweep_result *r, const char *const *pos_labels,
                               bool normalized, const char *title, const char *path,
                               bool force);

#ifdef __cplusplus
}
#endif
#endif /* HOOKFORMER_H */

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
    HK_ERR_INTERNAL      /* a bug in hookformer */
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

/* Threads for GEMM and the other kernels (0 = library default). */
void hk_set_num_threads(int n);

void hk_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* HOOKFORMER_H */

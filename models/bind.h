/* Helpers shared by the adapters: bind checkpoint tensors to canonical weight views, and read
 * the config.json fields several families spell the same way. */
#ifndef HK_MODELS_BIND_H
#define HK_MODELS_BIND_H

#include <cjson/cJSON.h>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/weights.h"

/* "<prefix>.weight" stored [n_out, n_in] (nn.Linear), "<prefix>.bias" [n_out] when bias. */
hk_status hk_bind_linear(hk_ckpt *ck, const char *prefix, int64_t n_out, int64_t n_in, bool bias,
                         hk_linear *out);
/* "<prefix>.weight" stored [n_in, n_out] (GPT-2 Conv1D), "<prefix>.bias" [n_out]. */
hk_status hk_bind_conv1d(hk_ckpt *ck, const char *prefix, int64_t n_in, int64_t n_out, bool bias,
                         hk_linear *out);
/* "<prefix>.weight" [d] (+ "<prefix>.bias" [d] when bias). */
hk_status hk_bind_norm(hk_ckpt *ck, const char *prefix, int64_t d, bool bias,
                       hk_norm_weights *out);
/* "<prefix>.weight" [d] stored as Gemma stores RMSNorm weights (the norm multiplies by 1 + w,
 * computed in f32): bound as 1 + w, in a buffer the checkpoint owns. */
hk_status hk_bind_norm_plus1(hk_ckpt *ck, const char *prefix, int64_t d, hk_norm_weights *out);
/* Keep the GGUF blocks that l->w was dequantized from in l->qw (when the checkpoint keeps
 * blocks, l is [out, in] with ld == n_in and kernels/cpu has a kernel for the type); else
 * l->qw = NULL. hk_bind_linear and hk_bind_unembed call it. */
void hk_bind_blocks(const hk_ckpt *ck, hk_linear *l);
/* The output features [first, first + n) of a fused linear, as a linear of its own (its
 * blocks too). */
hk_linear hk_linear_slice(const hk_linear *fused, int64_t first, int64_t n);
/* Unembedding: "<name>" [d_vocab, d_model] if present, else tied to tok_embed (error if the
 * config says untied). */
hk_status hk_bind_unembed(hk_ckpt *ck, const char *name, const hk_config *cfg,
                          const float *tok_embed, hk_linear *out);

/* Tensor names (after the layer prefix) of the parts every pre-norm Llama-style block binds
 * alike. */
typedef struct {
    const char *ln1, *ln2; /* RMSNorm weights, no bias */
    const char *o;         /* attention output [d_model, n_heads * d_head], bias iff o_bias */
    const char *down;      /* MLP down projection [d_model, d_mlp], bias iff mlp_bias */
} hk_llama_block_names;
/* ln1, ln2, o and mlp_out of block `layer`: "<layer_prefix><name>" with layer_prefix a printf
 * format taking the layer ("model.layers.%lld.", "blk.%lld."). */
hk_status hk_bind_llama_block_common(hk_ckpt *ck, const hk_config *c, const char *layer_prefix,
                                     int64_t layer, const hk_llama_block_names *names,
                                     hk_block_weights *b);

/* RoPE from rope_parameters / rope_scaling / rope_theta / rotary_emb_base /
 * partial_rotary_factor / rotary_pct, old and new transformers spellings. */
hk_status hk_hf_rope(const cJSON *json, const char *path, const hk_config *cfg,
                     hk_rope_config *rope);
/* The same from an explicit parameter dict (NULL: top-level fields only), e.g. one entry of
 * Gemma 3's per-layer-type rope_parameters; missing numbers fall back to the top level. */
hk_status hk_hf_rope_from(const cJSON *json, const cJSON *params, const char *path,
                          const hk_config *cfg, hk_rope_config *rope);
/* Fields every Llama-like config spells the same way (models/llama.c): sizes, RMSNorm eps,
 * activation, tied embeddings, head_dim, RoPE and sliding windows. */
hk_status hk_llama_like_config(const cJSON *j, const char *path, hk_config *c);
/* hidden_act / activation_function name -> kind. */
hk_status hk_hf_act(const char *name, const char *path, const char *field, hk_act_kind *out);
/* sliding_window, use_sliding_window, max_window_layers, layer_types -> cfg->window and
 * cfg->layer_window[]. */
hk_status hk_hf_windows(const cJSON *json, const char *path, hk_config *cfg);

#endif

/* Canonical weights: f32 views the generic forward reads. Pointers either alias the
 * mmapped checkpoint (f32 tensors, zero-copy) or buffers owned by the checkpoint's arena.
 * A linear loaded from GGUF blocks that kernels/cpu has a kernel for also keeps the blocks
 * (qw): decode and small batches read those, larger batches the f32 w. */
#ifndef HK_CORE_WEIGHTS_H
#define HK_CORE_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

/* y[n, out] = x[n, in] · Wᵀ + b.
 * in_out == false: w[o * ld + i]  (nn.Linear, stored [out, in]);
 * in_out == true:  w[i * ld + o]  (GPT-2 Conv1D, stored [in, out]).
 * ld lets a fused matrix (c_attn, qkv_proj, gate_up_proj) be viewed as separate linears. */
typedef struct {
    const float *w;
    const float *b; /* [out] or NULL */
    int64_t n_in, n_out;
    int64_t ld;
    bool in_out;
    /* ggml blocks of W (in_out false only): row o at qw + o * q_ld bytes, of ggml type qtype
     * (core/quant.h); qw NULL when the linear has f32 weights only */
    const void *qw;
    size_t q_ld;
    uint32_t qtype;
} hk_linear;

typedef struct {
    const float *w; /* [d_model] */
    const float *b; /* [d_model] or NULL (RMSNorm) */
} hk_norm_weights;

typedef struct {
    hk_norm_weights ln1, ln2;
    hk_linear q, k, v, o;          /* q: [n_heads*d_head], k/v: [n_kv_heads*d_head] outputs */
    hk_linear mlp_in;              /* up_proj / c_fc / dense_h_to_4h -> mlp.hook_pre(_linear) */
    hk_linear mlp_gate;            /* gate_proj (gated MLPs only) -> mlp.hook_pre */
    hk_linear mlp_out;             /* down_proj / c_proj / dense_4h_to_h */
    hk_norm_weights ln1_post;      /* attn_post_norm: on the attention output [d_model] */
    hk_norm_weights ln2_post;      /* mlp_post_norm: on the MLP output [d_model] */
    hk_norm_weights q_norm, k_norm; /* qk_norm: [d_head] (HEAD) or [n_(kv_)heads * d_head] (FULL) */
    hk_linear router;              /* n_experts > 0: [n_experts] outputs of d_model */
    hk_linear *experts;            /* n_experts > 0: [n_experts][3] = gate, up, down (each a
                                      gated MLP of d_mlp); owned by the checkpoint */
    hk_linear shared[3];           /* d_shared_expert > 0: gate, up, down of the shared expert */
    hk_linear shared_gate;         /* d_shared_expert > 0: [1] output of d_model */
} hk_block_weights;

typedef struct {
    const float *tok_embed;  /* [d_vocab, d_model] */
    const float *pos_embed;  /* [n_pos, d_model] (learned positions) or NULL */
    int64_t n_pos;           /* rows of pos_embed */
    const float *type_embed; /* [n_token_types, d_model] or NULL */
    hk_norm_weights embed_ln; /* embed_norm only */
    hk_block_weights *blocks; /* [n_layers], malloc'd */
    hk_norm_weights ln_final; /* HK_HEAD_LM only */
    hk_linear head_dense;     /* HK_HEAD_MLM: transform dense [d_model -> d_model] */
    hk_norm_weights head_ln;  /* HK_HEAD_MLM: transform LayerNorm */
    hk_linear unembed;       /* [d_vocab] outputs; tied: w = tok_embed (not HK_HEAD_NONE) */
} hk_weights;

#endif

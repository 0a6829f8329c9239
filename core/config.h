/* The canonical config: everything the generic forward needs to know about a model.
 * Family adapters (models/) translate a Hugging Face config.json into this struct;
 * the forward never looks at family names. */
#ifndef HK_CORE_CONFIG_H
#define HK_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "hookformer.h"

typedef enum { HK_NORM_LAYERNORM = 0, HK_NORM_RMSNORM } hk_norm_kind;
typedef enum { HK_POS_LEARNED = 0, HK_POS_ROTARY, HK_POS_NONE } hk_pos_kind;
typedef enum {
    HK_ACT_GELU_NEW = 0, /* tanh approximation (GPT-2 "gelu_new", "gelu_pytorch_tanh") */
    HK_ACT_GELU,         /* exact erf gelu */
    HK_ACT_SILU,
    HK_ACT_RELU
} hk_act_kind;
typedef enum {
    HK_ROPE_DEFAULT = 0, /* inv_freq = theta^(-2i/rot_dim) */
    HK_ROPE_LINEAR,      /* positions divided by factor */
    HK_ROPE_LLAMA3,      /* wavelength-banded inv_freq scaling */
    HK_ROPE_LONGROPE     /* Phi-3: short/long per-frequency factors + attention factor */
} hk_rope_kind;

/* q/k RMSNorm before RoPE: none, over each head's d_head (Qwen3, Gemma 3), or over the whole
 * projection n_heads * d_head (OLMo 2). */
typedef enum { HK_QK_NORM_NONE = 0, HK_QK_NORM_HEAD, HK_QK_NORM_FULL } hk_qk_norm_kind;

typedef enum {
    HK_HEAD_LM = 0, /* final norm + unembedding: next-token logits (decoders) */
    HK_HEAD_NONE,   /* no head (an encoder body): the output is the final hidden states */
    HK_HEAD_MLM     /* BERT masked-LM head: dense + act + LayerNorm, then the unembedding */
} hk_head_kind;

#define HK_MAX_ROPE_FACTORS 512 /* rot_dim/2 entries at most */
#define HK_MAX_LAYERS 1024
#define HK_MAX_EXPERTS 1024
#define HK_STR_(x) #x
#define HK_STR(x) HK_STR_(x)

typedef struct {
    hk_rope_kind kind;
    double theta;             /* rope_theta / rotary_emb_base */
    int64_t rot_dim;          /* rotated dims per head (partial rotary: < d_head) */
    double factor;            /* linear / llama3 factor */
    double low_freq_factor;   /* llama3 */
    double high_freq_factor;  /* llama3 */
    int64_t original_max_pos; /* llama3 / longrope: original_max_position_embeddings */
    int64_t n_factors;        /* longrope: rot_dim/2 */
    double short_factor[HK_MAX_ROPE_FACTORS];
    double long_factor[HK_MAX_ROPE_FACTORS];
    double attention_factor;  /* longrope: cos/sin multiplied by this (1.0 otherwise) */
} hk_rope_config;

typedef struct {
    char family[32];       /* adapter name: "gpt2", "llama", ... */
    char architecture[64]; /* HF architectures[0], informational */

    int64_t n_layers;
    int64_t d_model;
    int64_t n_heads;
    int64_t n_kv_heads; /* == n_heads without GQA */
    int64_t d_head;
    int64_t d_mlp;
    int64_t d_vocab;
    int64_t max_pos; /* max_position_embeddings: informational; nothing is sized by it */

    hk_norm_kind norm;
    double norm_eps;
    hk_pos_kind pos;
    hk_rope_config rope; /* used when pos == HK_POS_ROTARY */

    hk_act_kind act;
    bool gated_mlp;      /* out = W_out(act(W_gate x) * (W_in x)) */
    bool parallel_attn_mlp; /* resid_post = resid_pre + attn(ln1 x) + mlp(ln2 x) (NeoX, GPT-J) */

    bool qkv_bias;
    bool o_bias;
    bool mlp_bias;
    bool norm_bias;      /* LayerNorm with bias */
    bool unembed_bias;
    bool tied_embeddings;

    bool causal;         /* false for encoders */
    bool post_norm;      /* BERT: norms after the residual adds, x = ln1(x + attn(x));
                            x = ln2(x + mlp(x)); no norm before attention */
    bool embed_norm;     /* a LayerNorm over the summed embeddings (BERT) */
    int64_t n_token_types; /* rows of the token-type (segment) embedding; 0 = none */
    hk_head_kind head;
    int64_t window;      /* sliding window W (keys kept including the query itself), 0 = none */
    bool layer_window[HK_MAX_LAYERS]; /* per layer: does `window` apply (Qwen2/Gemma mix) */
    double attn_scale;   /* multiplier on q.k; usually 1/sqrt(d_head) */

    /* Wave-2 family flags (all zero = the behaviour before them). */
    bool no_input_norms; /* OLMo 2: no ln1/ln2 before attention and MLP */
    bool attn_post_norm; /* ln1_post on the attention output before its residual add
                            (Gemma 2/3, OLMo 2) */
    bool mlp_post_norm;  /* ln2_post on the MLP output before its residual add */
    hk_qk_norm_kind qk_norm; /* attn.q_norm / attn.k_norm after hook_q/hook_k, before RoPE */
    double embed_scale;  /* token embeddings multiplied by this (Gemma: sqrt(d_model) rounded
                            to f32); 0 = none */
    double attn_softcap; /* scores -> cap * tanh(scores / cap) before the mask; 0 = off */
    double final_softcap; /* logits -> cap * tanh(logits / cap) after unembed.hook_out */
    int64_t n_experts;      /* mixture of experts: experts per layer (0 = a dense MLP); each
                               expert is a gated MLP of d_mlp (moe_intermediate_size) */
    int64_t n_experts_used; /* experts per token (top-k of the router's softmax) */
    bool moe_norm_topk;     /* the chosen experts' weights renormalized to sum to 1 */
    int64_t d_shared_expert; /* > 0: a shared expert (gated MLP of this width) on every token,
                                scaled by sigmoid(x . w_gate) (Qwen2-MoE); 0 = none */
    bool has_rope_local; /* layers with layer_window set use rope_local (Gemma 3) */
    hk_rope_config rope_local;
} hk_config;

/* Checks internal consistency (positive sizes, heads divide, rot_dim <= d_head, ...).
 * Returns HK_ERR_FORMAT naming the bad field; `origin` (a file path) goes into the message. */
hk_status hk_config_validate(const hk_config *c, const char *origin);

/* Canonical config as pretty JSON (malloc'd; caller frees). NULL on allocation failure. */
char *hk_config_to_json(const hk_config *c);

#endif

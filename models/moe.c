/* Mixture-of-experts decoders: Llama-style attention blocks whose MLP is n_experts gated MLPs
 * behind a router (top-k of its softmax, routed per token; core/forward.c's moe_mlp).
 *   mixtral:   block_sparse_moe.{gate, experts.E.w1/w3/w2}; top-2 of 8, always renormalized
 *   qwen3_moe: mlp.{gate, experts.E.gate_proj/up_proj/down_proj}, moe_intermediate_size,
 *              norm_topk_prob, q/k norm over d_head (every layer sparse: decoder_sparse_step 1,
 *              no mlp_only_layers)
 *   olmoe:     the same names, norm_topk_prob, q/k norm over the whole projection
 *   qwen2_moe: qwen3_moe's names plus a shared expert (mlp.shared_expert.gate_proj/up_proj/
 *              down_proj of shared_expert_intermediate_size, scaled per token by
 *              sigmoid(mlp.shared_expert_gate)), q/k/v biases, no q/k norm */
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "bind.h"
#include "core/error.h"
#include "core/json.h"

static hk_status moe_config(const cJSON *j, const char *path, hk_config *c) {
    char type[32];
    hk_status st = hk_json_str(j, "model_type", path, type, sizeof type);
    if (st != HK_OK || (st = hk_llama_like_config(j, path, c))) return st;
    const bool mixtral = strcmp(type, "mixtral") == 0;
    /* the Hub's Qwen3-MoE/OLMoE configs say num_experts, transformers 5 writes
     * num_local_experts (Mixtral's name) for Qwen3-MoE */
    const char *n_key = cJSON_GetObjectItemCaseSensitive(j, "num_local_experts")
                            ? "num_local_experts"
                            : "num_experts";
    if ((st = hk_json_int(j, mixtral ? "num_local_experts" : n_key, path, &c->n_experts)) ||
        (st = hk_json_int(j, "num_experts_per_tok", path, &c->n_experts_used)))
        return st;
    if (mixtral) {
        c->moe_norm_topk = true;
        return HK_OK;
    }
    bool attn_bias;
    if ((st = hk_json_bool_opt(j, "norm_topk_prob", path, false, &c->moe_norm_topk)) ||
        (st = hk_json_bool_opt(j, "attention_bias", path, false, &attn_bias)))
        return st;
    c->qkv_bias = c->o_bias = attn_bias;
    if (strcmp(type, "olmoe") == 0) {
        const cJSON *clip = cJSON_GetObjectItemCaseSensitive(j, "clip_qkv");
        if (clip && !cJSON_IsNull(clip))
            return hk_errorf(HK_ERR_UNSUPPORTED, "%s: field 'clip_qkv' is set; only null is "
                                                 "supported", path);
        c->qk_norm = HK_QK_NORM_FULL;
        c->window = 0;
        return HK_OK;
    }
    /* qwen3_moe, qwen2_moe */
    const bool qwen2 = strcmp(type, "qwen2_moe") == 0;
    if (qwen2 && ((st = hk_json_bool_opt(j, "qkv_bias", path, true, &c->qkv_bias)) ||
                  (st = hk_json_int_opt(j, "shared_expert_intermediate_size", path, 0,
                                        &c->d_shared_expert))))
        return st;
    if (qwen2) c->o_bias = false;
    int64_t step;
    if ((st = hk_json_int(j, "moe_intermediate_size", path, &c->d_mlp)) ||
        (st = hk_json_int_opt(j, "decoder_sparse_step", path, 1, &step)))
        return st;
    const cJSON *dense = cJSON_GetObjectItemCaseSensitive(j, "mlp_only_layers");
    if (step != 1 || (cJSON_IsArray(dense) && cJSON_GetArraySize(dense) > 0))
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: dense layers among the sparse ones "
                                             "(decoder_sparse_step %lld, mlp_only_layers) are "
                                             "not supported; expected every layer sparse",
                         path, (long long)step);
    c->qk_norm = qwen2 ? HK_QK_NORM_NONE : HK_QK_NORM_HEAD;
    return HK_OK;
}

static hk_status moe_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    const bool mixtral = strcmp(c->family, "mixtral") == 0;
    static const hk_llama_block_names names = {"input_layernorm", "post_attention_layernorm",
                                               "self_attn.o_proj", NULL};
    const char *moe = mixtral ? "block_sparse_moe" : "mlp";
    const char *const ex_names[3] = {mixtral ? "w1" : "gate_proj", mixtral ? "w3" : "up_proj",
                                     mixtral ? "w2" : "down_proj"};
    char name[256], part[128];
    int64_t d = c->d_model, dq = c->n_heads * c->d_head, dkv = c->n_kv_heads * c->d_head;
    int64_t E = c->n_experts;
    hk_status st;
    int64_t emb_shape[2] = {c->d_vocab, d};
    if ((st = hk_ckpt_f32(ck, "model.embed_tokens.weight", 2, emb_shape, &w->tok_embed)))
        return st;
    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &w->blocks[l];
#define NAME(s) (snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, s), name)
        if ((st = hk_bind_norm(ck, NAME(names.ln1), d, false, &b->ln1)) ||
            (st = hk_bind_norm(ck, NAME(names.ln2), d, false, &b->ln2)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.q_proj"), dq, d, c->qkv_bias, &b->q)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.k_proj"), dkv, d, c->qkv_bias, &b->k)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.v_proj"), dkv, d, c->qkv_bias, &b->v)) ||
            (st = hk_bind_linear(ck, NAME(names.o), d, dq, c->o_bias, &b->o)))
            return st;
        if (c->qk_norm != HK_QK_NORM_NONE) {
            const bool full = c->qk_norm == HK_QK_NORM_FULL;
            if ((st = hk_bind_norm(ck, NAME("self_attn.q_norm"), full ? dq : c->d_head, false,
                                   &b->q_norm)) ||
                (st = hk_bind_norm(ck, NAME("self_attn.k_norm"), full ? dkv : c->d_head, false,
                                   &b->k_norm)))
                return st;
        }
        snprintf(part, sizeof part, "%s.gate", moe);
        if ((st = hk_bind_linear(ck, NAME(part), E, d, false, &b->router))) return st;
        /* the expert table lives in the checkpoint's arena, like converted tensors */
        size_t bytes = (size_t)(3 * E) * sizeof(hk_linear);
        b->experts = (hk_linear *)(void *)hk_ckpt_alloc_f32(ck, (bytes + 3) / 4);
        if (!b->experts) return HK_ERR_NOMEM;
        for (int64_t e = 0; e < E; e++)
            for (int p = 0; p < 3; p++) {
                snprintf(part, sizeof part, "%s.experts.%lld.%s", moe, (long long)e, ex_names[p]);
                const int64_t out = p == 2 ? d : c->d_mlp, in = p == 2 ? c->d_mlp : d;
                if ((st = hk_bind_linear(ck, NAME(part), out, in, false, &b->experts[3 * e + p])))
                    return st;
            }
        for (int p = 0; p < 3 && c->d_shared_expert > 0; p++) {
            static const char *const sh[3] = {"gate_proj", "up_proj", "down_proj"};
            snprintf(part, sizeof part, "mlp.shared_expert.%s", sh[p]);
            const int64_t out = p == 2 ? d : c->d_shared_expert;
            const int64_t in = p == 2 ? c->d_shared_expert : d;
            if ((st = hk_bind_linear(ck, NAME(part), out, in, false, &b->shared[p]))) return st;
        }
        if (c->d_shared_expert > 0 &&
            (st = hk_bind_linear(ck, NAME("mlp.shared_expert_gate"), 1, d, false, &b->shared_gate)))
            return st;
#undef NAME
    }
    if ((st = hk_bind_norm(ck, "model.norm", d, false, &w->ln_final))) return st;
    return hk_bind_unembed(ck, "lm_head.weight", c, w->tok_embed, &w->unembed);
}

static const char *const moe_types[] = {"mixtral", "qwen3_moe", "olmoe", "qwen2_moe", NULL};
const hk_adapter hk_adapter_moe = {"moe", moe_types, moe_config, moe_weights};

/* Model lifetime and accessors of the public API. Loading lives in models/ (it needs the
 * family adapters); everything here is family-agnostic. */
#include <stdlib.h>

#include "backend.h"
#include "error.h"
#include "kernels/cpu/kernels.h"
#include "model.h"

void hk_model_destroy(struct hk_model *m) {
    if (!m) return;
    if (m->be) {
        if (m->dw_set) m->be->weights_free(m->be, &m->cfg, &m->dw);
        hk_backend_close(m->be);
    }
    hk_weight_copies_free(m->weight_copies);
    free(m->w.blocks);
    hk_points_free(&m->points);
    hk_tokenizer_free(m->tok);
    free(m->tok_note);
    hk_ckpt_close(m->ckpt);
    free(m->source);
    free(m);
}

void hk_model_free(hk_model *m) { hk_model_destroy(m); }

hk_status hk_model_config_json(const hk_model *m, char **out_json) {
    if (!m || !out_json)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_config_json: NULL argument");
    *out_json = hk_config_to_json(&m->cfg);
    if (!*out_json) return hk_errorf(HK_ERR_NOMEM, "hk_model_config_json: out of memory");
    return HK_OK;
}

int64_t hk_model_n_params(const hk_model *m) { return m ? m->n_params : 0; }
int64_t hk_model_vocab_size(const hk_model *m) { return m ? m->cfg.d_vocab : 0; }
int64_t hk_model_n_layers(const hk_model *m) { return m ? m->cfg.n_layers : 0; }
int64_t hk_model_d_model(const hk_model *m) { return m ? m->cfg.d_model : 0; }
const char *hk_model_family(const hk_model *m) { return m ? m->cfg.family : ""; }

int64_t hk_model_max_positions(const hk_model *m, bool *hard) {
    bool learned = m && m->cfg.pos == HK_POS_LEARNED;
    if (hard) *hard = learned;
    if (!m) return 0;
    return learned ? m->w.n_pos : m->cfg.max_pos;
}

hk_status hk_model_set_mask(hk_model *m, const hk_mask_spec *spec) {
    if (!m) return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_set_mask: NULL model");
    if (!spec) {
        m->has_mask = false;
        return HK_OK;
    }
    if (spec->causal < -1 || spec->causal > 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_set_mask: causal must be -1, 0 or 1, got %d",
                         spec->causal);
    if (spec->window < -1)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_model_set_mask: window must be -1, 0 or positive, got %lld",
                         (long long)spec->window);
    if (spec->doc_ids && spec->doc_stride <= 0)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_model_set_mask: doc_ids needs a positive doc_stride");
    m->mask = *spec;
    m->has_mask = true;
    return HK_OK;
}

int64_t hk_model_output_dim(const hk_model *m) {
    if (!m) return 0;
    return m->cfg.head == HK_HEAD_NONE ? m->cfg.d_model : m->cfg.d_vocab;
}
bool hk_model_headless(const hk_model *m) { return m && m->cfg.head == HK_HEAD_NONE; }
int64_t hk_model_token_types(const hk_model *m) { return m ? m->cfg.n_token_types : 0; }
bool hk_model_is_encoder(const hk_model *m) { return m && !m->cfg.causal; }

size_t hk_model_hook_count(const hk_model *m) { return m ? m->points.n : 0; }

const hk_hook_point *hk_model_hook_at(const hk_model *m, size_t i) {
    return m && i < m->points.n ? &m->points.points[i] : NULL;
}

void hk_set_num_threads(int n) { hk_k_set_threads(n); }
void hk_free(void *p) { free(p); }
const char *hk_version(void) { return HK_VERSION_STRING; }

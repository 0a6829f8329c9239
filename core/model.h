/* struct hk_model: canonical config + weight views + the checkpoint they alias.
 * Internal: shared by the forward (core/), the loader (models/) and hooks (hooks/). */
#ifndef HK_CORE_MODEL_H
#define HK_CORE_MODEL_H

#include "checkpoint.h"
#include "config.h"
#include "hooks/points.h"
#include "hookformer.h"
#include "weights.h"

struct hk_model {
    hk_config cfg;
    hk_weights w;
    hk_ckpt *ckpt;   /* owns the mmaps and converted buffers behind w */
    char *source;    /* the folder or file it was loaded from */
    int64_t n_params;
    hk_points points; /* hook points (TransformerLens names) of this model */
    bool has_mask;    /* a user mask spec overrides the config's causal/window */
    hk_mask_spec mask;
    hk_pooling pooling;  /* sentence-transformers Pooling of the folder (HK_POOL_MEAN if none) */
    bool pool_normalize; /* the folder's modules.json has a Normalize module */
    hk_tokenizer *tok; /* tokenizer.json of the folder, or attached (NULL: none) */
    char *tok_note;    /* why there is none ("no tokenizer.json in X", a parse error) */
    struct hk_weight_copy *weight_copies; /* hk_model_weight's gathered copies (weights_view.c) */
    struct hk_backend *be;  /* where the forward runs (NULL: the CPU, core/backend.c) */
    hk_weights dw;          /* the weights the forward uses: be's copy of w (dw_set) */
    bool dw_set;
    size_t rss_before_load; /* the process's resident bytes when hk_model_load began */
    size_t load_growth;     /* and what loading added to them (0 when unknown) */
};

/* Free the list of gathered weight copies (core/weights_view.c). */
struct hk_weight_copy;
void hk_weight_copies_free(struct hk_weight_copy *c);

/* Load <folder of src>/tokenizer.json when present. Never fails the model: a missing or
 * unreadable tokenizer is remembered in tok_note for commands that need text. */
void hk_model_load_tokenizer(struct hk_model *m, const char *src);

/* Free everything a (possibly half-built) model owns. */
void hk_model_destroy(struct hk_model *m);

#endif

/* The named sweeps of `hookformer patch`/`ablate --sweep` and of the Python package: a name
 * ("resid_pre", "head_out_by_pos") for a point and its per-position / per-head split. */
#include <string.h>

#include "core/error.h"
#include "hookformer.h"

typedef struct {
    const char *name, *point;
    bool per_pos, per_head;
} named_sweep;

static const named_sweep SWEEPS[] = {
    {"resid_pre", "hook_resid_pre", true, false},
    {"resid_mid", "hook_resid_mid", true, false},
    {"resid_post", "hook_resid_post", true, false},
    {"attn_out", "hook_attn_out", true, false},
    {"mlp_out", "hook_mlp_out", true, false},
    {"head_out", "attn.hook_z", false, true},
    {"head_q", "attn.hook_q", false, true},
    {"head_k", "attn.hook_k", false, true},
    {"head_v", "attn.hook_v", false, true},
    {"head_out_by_pos", "attn.hook_z", true, true},
    {"head_q_by_pos", "attn.hook_q", true, true},
    {"head_k_by_pos", "attn.hook_k", true, true},
    {"head_v_by_pos", "attn.hook_v", true, true},
};

#define N_SWEEPS (sizeof SWEEPS / sizeof SWEEPS[0])

const char *hk_sweep_names(void) {
    return "resid_pre, resid_mid, resid_post, attn_out, mlp_out, head_out, head_q, head_k, "
           "head_v, head_out_by_pos, head_q_by_pos, head_k_by_pos, head_v_by_pos";
}

hk_status hk_sweep_by_name(const char *name, hk_sweep_spec *out) {
    if (!name || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sweep_by_name: NULL argument");
    for (size_t i = 0; i < N_SWEEPS; i++)
        if (strcmp(SWEEPS[i].name, name) == 0) {
            *out = (hk_sweep_spec){SWEEPS[i].point, SWEEPS[i].per_pos, SWEEPS[i].per_head, -1};
            return HK_OK;
        }
    return hk_errorf(HK_ERR_NOT_FOUND, "unknown sweep '%s' (known: %s)", name, hk_sweep_names());
}

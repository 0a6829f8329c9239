/* Hook registrations and dispatch. The forward asks hk_hooks_active() at every point — a
 * branch when nothing is registered — and calls hk_hooks_fire() only where something is. */
#ifndef HK_HOOKS_REGISTRY_H
#define HK_HOOKS_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "hookformer.h"

typedef struct {
    hk_hook_handle handle;
    hk_hook_fn fn;
    void *user;
    unsigned flags;  /* HK_HOOK_READ_ONLY, HK_HOOK_ON_DEVICE */
    uint8_t *covers; /* [n_points] 1 where this registration fires */
} hk_reg;

struct hk_hooks {
    const hk_model *model;
    size_t n_points;       /* the model's points, then the added ones (hk_hooks_add_point) */
    size_t n_model_points;
    char **extra;          /* [n_points - n_model_points] names of the added points */
    hk_reg *regs; /* [n_regs] in registration order */
    size_t n_regs, cap_regs;
    hk_hook_handle next_handle;
    uint32_t *active; /* [n_points] registrations covering each point */
};

static inline bool hk_hooks_active(const hk_hooks *h, int32_t point) {
    return h && point >= 0 && h->active[point] != 0;
}

/* Add a point that is not the model's (an SAE's <hook>.hook_sae_acts_post, say) so that
 * hk_hooks_add can match it; *index is what hk_hooks_active / hk_hooks_fire take. A name
 * that is already a point of h gives its index. Registrations made earlier do not cover it. */
hk_status hk_hooks_add_point(hk_hooks *h, const char *name, int32_t *index);
/* The name of point i of h (the model's points first); NULL out of range. */
const char *hk_hooks_point_name(const hk_hooks *h, size_t i);

/* Run every callback registered at `point` in order. t may be device memory (t->device not
 * CPU): callbacks registered with HK_HOOK_ON_DEVICE get t itself; the others get a host copy
 * (made once, when the first of them runs) and, unless HK_HOOK_READ_ONLY, their changes are
 * copied back before the next device-side callback and at the end. Returns HK_OK, HK_STOPPED, or
 * HK_ERR_HOOK with the hook name and the callback's message. */
hk_status hk_hooks_fire(hk_hooks *h, int32_t point, hk_tensor *t, const hk_hook_ctx *ctx);

/* The message of this thread's last hk_hook_error() ("" when none since it was cleared with
 * hk_hook_error("%s", "")). The plugin loader reads it after a failed init. */
const char *hk_hook_error_message(void);

/* hk_glob_match is public (include/hookformer.h). Whether any of patterns[0, n) matches name;
 * a NULL pattern matches nothing. */
bool hk_glob_match_any(const char *const *patterns, size_t n, const char *name);

#endif

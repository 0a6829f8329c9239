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
    size_t n_points;
    hk_reg *regs; /* [n_regs] in registration order */
    size_t n_regs, cap_regs;
    hk_hook_handle next_handle;
    uint32_t *active; /* [n_points] registrations covering each point */
};

static inline bool hk_hooks_active(const hk_hooks *h, int32_t point) {
    return h && point >= 0 && h->active[point] != 0;
}

/* Run every callback registered at `point` in order. t may be device memory (t->device not
 * CPU): callbacks registered with HK_HOOK_ON_DEVICE get t itself; the others get a host copy
 * (made once, when the first of them runs) and, unless HK_HOOK_READ_ONLY, their changes are
 * copied back before the next device-side callback and at the end. Returns HK_OK, HK_STOPPED, or
 * HK_ERR_HOOK with the hook name and the callback's message. */
hk_status hk_hooks_fire(hk_hooks *h, int32_t point, hk_tensor *t, const hk_hook_ctx *ctx);

/* The message of this thread's last hk_hook_error() ("" when none since it was cleared with
 * hk_hook_error("%s", "")). The plugin loader reads it after a failed init. */
const char *hk_hook_error_message(void);

/* '*' any run of characters (dots included), '?' one character. */
bool hk_glob_match(const char *pattern, const char *name);

#endif

/* A plugin that stops the forward at the hook given by at= (default blocks.0.hook_resid_post),
 * for the CLI's HK_STOPPED path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hookformer.h>

static hk_hook_result stop(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)t, (void)c, (void)u;
    return HK_HOOK_STOP;
}

static hk_status init(const hk_model *m, hk_hooks *h, const hk_plugin_arg *a, size_t n,
                      void **state) {
    (void)m;
    const char *at = "blocks.0.hook_resid_post";
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].key, "at") != 0) {
            hk_hook_error("unknown argument '%s'", a[i].key);
            return HK_ERR_INVALID_ARG;
        }
        at = a[i].value;
    }
    *state = NULL;
    return hk_hooks_add(h, at, stop, NULL, NULL);
}

static hk_status finish(void *state) {
    (void)state;
    printf("# stop_at: finished\n");
    return HK_OK;
}

static const hk_plugin_desc desc = {
    .abi_version = HK_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(hk_plugin_desc),
    .name = "stop_at",
    .usage = "stop the forward; args: at=HOOK",
    .init = init,
    .finish = finish,
};

HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void) { return &desc; }

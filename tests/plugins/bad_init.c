/* A plugin whose init registers a hook, then fails with a message: the loader must report the
 * message and remove the hook. */
#include <stdlib.h>

#include <hookformer.h>

static hk_hook_result never(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)t, (void)c, (void)u;
    abort(); /* the loader removed it: it must never fire */
}

static hk_status init(const hk_model *m, hk_hooks *h, const hk_plugin_arg *a, size_t n,
                      void **state) {
    (void)m, (void)state;
    hk_status st = hk_hooks_add(h, "blocks.*.hook_resid_pre", never, NULL, NULL);
    if (st != HK_OK) return st;
    hk_hook_error("cannot work with %zu argument%s (first: %s)", n, n == 1 ? "" : "s",
                  n ? a[0].key : "none");
    return HK_ERR_INVALID_ARG;
}

static const hk_plugin_desc desc = {
    .abi_version = HK_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(hk_plugin_desc),
    .name = "bad_init",
    .usage = "always fails",
    .init = init,
};

HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void) { return &desc; }

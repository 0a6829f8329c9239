/* A plugin built for a plugin ABI this hookformer does not speak. */
#include <hookformer.h>

static hk_status init(const hk_model *m, hk_hooks *h, const hk_plugin_arg *a, size_t n,
                      void **state) {
    (void)m, (void)h, (void)a, (void)n, (void)state;
    return HK_OK;
}

static const hk_plugin_desc desc = {
    .abi_version = 999,
    .struct_size = sizeof(hk_plugin_desc),
    .name = "bad_abi",
    .init = init,
};

HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void) { return &desc; }

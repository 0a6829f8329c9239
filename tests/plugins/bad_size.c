/* A plugin whose descriptor claims to be smaller than ABI 1's: only the two header fields. */
#include <hookformer.h>

static const hk_plugin_desc desc = {
    .abi_version = HK_PLUGIN_ABI_VERSION,
    .struct_size = 8,
    .name = "bad_size",
};

HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void) { return &desc; }

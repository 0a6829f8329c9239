/* A plugin whose entry point returns no descriptor. */
#include <hookformer.h>

HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void) { return NULL; }

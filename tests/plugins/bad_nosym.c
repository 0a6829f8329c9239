/* A shared object that is not a plugin: it exports no hookformer_plugin symbol. */
#include <hookformer.h>

HK_PLUGIN_EXPORT int not_a_hookformer_plugin(void);
int not_a_hookformer_plugin(void) { return 42; }

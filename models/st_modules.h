/* sentence-transformers model folders: modules.json lists the modules after the transformer
 * (Pooling with its 1_Pooling/config.json, Normalize). Read at load so hk_model_embed pools
 * as sentence-transformers' encode() does. */
#ifndef HK_MODELS_ST_MODULES_H
#define HK_MODELS_ST_MODULES_H

#include <stdbool.h>

#include "hookformer.h"

/* src: the model folder or a .safetensors file in it. No modules.json: *pooling =
 * HK_POOL_MEAN, *normalize = false. A malformed modules.json or pooling config, or a pooling
 * config asking for several modes at once (sentence-transformers concatenates them) or a mode
 * hookformer lacks, is an error naming the file and the field. */
hk_status hk_st_modules_read(const char *src, hk_pooling *pooling, bool *normalize);

#endif

/* A family adapter: HF config.json -> canonical config, and checkpoint tensor names ->
 * canonical weight views. Adapters hold no forward code. */
#ifndef HK_MODELS_ADAPTER_H
#define HK_MODELS_ADAPTER_H

#include <cjson/cJSON.h>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/weights.h"

typedef struct {
    const char *family;
    const char *const *model_types; /* HF "model_type" values it accepts, NULL-terminated */
    /* Fill cfg from the parsed config.json at `path` (cfg arrives zeroed). */
    hk_status (*read_config)(const cJSON *json, const char *path, hk_config *cfg);
    /* Bind every weight (w->blocks is allocated by the caller, n_layers entries). */
    hk_status (*bind_weights)(hk_ckpt *ck, const hk_config *cfg, hk_weights *w);
} hk_adapter;

extern const hk_adapter hk_adapter_gpt2;
extern const hk_adapter hk_adapter_llama; /* llama, mistral, qwen2 */
extern const hk_adapter hk_adapter_phi3;
extern const hk_adapter hk_adapter_neox;
extern const hk_adapter hk_adapter_bert;
extern const hk_adapter hk_adapter_olmo2; /* olmo2 */
extern const hk_adapter hk_adapter_gemma; /* gemma2, gemma3_text, gemma3 (its text tower) */
extern const hk_adapter hk_adapter_moe;   /* mixtral, qwen3_moe, olmoe */

/* A GGUF adapter: general.architecture + "<arch>.*" metadata -> canonical config, and GGUF
 * tensor names (token_embd, blk.N.attn_q, ...) -> canonical weight views. */
typedef struct {
    const char *arch; /* general.architecture value */
    /* Fill cfg (arrives zeroed) from the metadata; the checkpoint gives tensor shapes. */
    hk_status (*read_config)(const hk_ckpt *ck, hk_config *cfg);
    hk_status (*bind_weights)(hk_ckpt *ck, const hk_config *cfg, hk_weights *w);
} hk_gguf_adapter;

extern const hk_gguf_adapter hk_gguf_adapter_llama;
extern const hk_gguf_adapter hk_gguf_adapter_qwen2;
extern const hk_gguf_adapter hk_gguf_adapter_qwen3;
extern const hk_gguf_adapter hk_gguf_adapter_phi3;
extern const hk_gguf_adapter hk_gguf_adapter_gemma2;
extern const hk_gguf_adapter hk_gguf_adapter_gemma3;

/* The adapter for an HF model_type (NULL if none). */
const hk_adapter *hk_adapter_find(const char *model_type);
/* "gpt2, llama, mistral, ..." for error messages (static buffer). */
const char *hk_adapter_known_types(void);

#endif

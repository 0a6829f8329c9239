/* --sae DIR [--sae-hook HOOK]: the SAE options that cache, features, steer, ablate and sae
 * share. */
#ifndef HK_TOOLS_SAE_OPTS_H
#define HK_TOOLS_SAE_OPTS_H

#include "args.h"
#include "hookformer_sae.h"

#define CLI_OPT_SAE {"sae", "DIR", "SAELens folder (cfg.json + sae_weights.safetensors) or Gemma Scope params.npz"}
#define CLI_OPT_SAE_HOOK {"sae-hook", "HOOK", "the hook the SAE reads (required for a params.npz)"}

/* Load the SAE of --sae (with --sae-hook); a runtime error naming the file otherwise. */
int cli_sae_load(const cli_args *a, const char *dir, hk_sae **out);

/* Attach s on h in `mode` (a runtime error naming the hook otherwise). */
int cli_sae_attach(const cli_args *a, hk_hooks *h, const hk_sae *s, hk_sae_mode mode,
                   hk_sae_attachment **out);

#endif

#include "sae_opts.h"

int cli_sae_load(const cli_args *a, const char *dir, hk_sae **out) {
    hk_sae_load_opts o = {.hook = cli_str(a, "sae-hook")};
    hk_status st = hk_sae_load(dir, &o, out);
    if (st != HK_OK)
        return cli_runtime_error(a, "--sae %s: %s (%s)", dir, hk_last_error(), hk_status_name(st));
    return 0;
}

int cli_sae_attach(const cli_args *a, hk_hooks *h, const hk_sae *s, hk_sae_mode mode,
                   hk_sae_attachment **out) {
    hk_status st = hk_sae_attach(h, s, mode, out);
    if (st != HK_OK)
        return cli_runtime_error(a, "--sae: %s (%s)", hk_last_error(), hk_status_name(st));
    return 0;
}

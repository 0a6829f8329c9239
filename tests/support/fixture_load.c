/* tests/support/fixtures.h: fixture models and checkpoints (needs libhookformer). */
#include "fixtures.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

hk_model *fixture_model(const char *name) { return fixture_model_weights(name, HK_WEIGHTS_BLOCKS); }

hk_model *fixture_model_weights(const char *name, hk_weights_mode weights) {
    char dir[1024];
    fixture_path(name, dir, sizeof dir);
    hk_model *m = NULL;
    const hk_load_opts o = {.weights = weights};
    if (hk_model_load_opts(dir, &o, &m) != HK_OK) fail_msg("load %s: %s", dir, hk_last_error());
    return m;
}

hk_ckpt *fixture_ckpt(const char *family, const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", fixtures_root(), family, file);
    hk_ckpt *ck = NULL;
    if (hk_ckpt_open(path, &ck) != HK_OK) fail_msg("%s: %s", path, hk_last_error());
    return ck;
}

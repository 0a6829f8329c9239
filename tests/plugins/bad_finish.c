/* A plugin whose begin_run (fail=begin) or finish (fail=finish) fails with a message. */
#include <stdlib.h>
#include <string.h>

#include <hookformer.h>

static hk_status init(const hk_model *m, hk_hooks *h, const hk_plugin_arg *a, size_t n,
                      void **state) {
    (void)m, (void)h;
    int *fail_begin = malloc(sizeof *fail_begin);
    if (!fail_begin) return HK_ERR_NOMEM;
    *fail_begin = n == 1 && strcmp(a[0].key, "fail") == 0 && strcmp(a[0].value, "begin") == 0;
    *state = fail_begin;
    return HK_OK;
}

static hk_status begin_run(void *state, const int32_t *tokens, const int64_t *lengths,
                           int64_t batch, int64_t seq) {
    (void)tokens, (void)lengths;
    if (!*(int *)state) return HK_OK;
    hk_hook_error("will not run %lld x %lld", (long long)batch, (long long)seq);
    return HK_ERR_UNSUPPORTED;
}

static hk_status finish(void *state) {
    int fail_begin = *(int *)state;
    free(state);
    if (fail_begin) return HK_OK;
    hk_hook_error("the summary could not be written");
    return HK_ERR_IO;
}

static const hk_plugin_desc desc = {
    .abi_version = HK_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(hk_plugin_desc),
    .name = "bad_finish",
    .init = init,
    .finish = finish,
    .begin_run = begin_run,
};

HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void) { return &desc; }

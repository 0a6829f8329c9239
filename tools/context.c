#include "context.h"

#include <stdio.h>

int cli_check_context(const cli_args *a, const hk_model *m, const char *dir, int64_t ctx,
                      int64_t need, const char *what) {
    bool hard = false;
    const int64_t max_pos = hk_model_max_positions(m, &hard);
    if (ctx > 0 && hard && ctx > max_pos)
        return cli_runtime_error(a, "--ctx %lld: model '%s' has learned position embeddings "
                                    "for %lld positions, which cannot be extended",
                                 (long long)ctx, dir, (long long)max_pos);
    if (ctx > 0 && need > ctx)
        return cli_runtime_error(a, "--ctx %lld: %s do not fit in a context of %lld",
                                 (long long)ctx, what, (long long)ctx);
    if (max_pos <= 0) return 0;
    if (hard && need > max_pos)
        return cli_runtime_error(a, "%s exceed the %lld learned positions of model '%s'", what,
                                 (long long)max_pos, dir);
    if (ctx > max_pos)
        fprintf(stderr, "%s: warning: --ctx %lld is past the model's max_position_embeddings "
                        "(%lld); positions beyond it were not trained\n",
                a->prog, (long long)ctx, (long long)max_pos);
    else if (ctx == 0 && need > max_pos)
        fprintf(stderr, "%s: warning: %s go past the model's max_position_embeddings (%lld); "
                        "positions beyond it were not trained (--ctx N makes a longer run an "
                        "error)\n",
                a->prog, what, (long long)max_pos);
    return 0;
}

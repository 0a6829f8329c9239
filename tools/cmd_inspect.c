/* hookformer inspect: summarize an HDF5 activation store (hk_store_open). */
#include "commands.h"

#include <stdio.h>

#include "hookformer.h"

static const cli_opt inspect_opts[] = {
    {NULL, NULL, NULL},
};

static void shape_str(const hk_store_hook_info *h, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int d = 0; d < h->ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", d ? ", " : "[",
                                 (long long)h->shape[d]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

static int inspect_main(const cli_command *cmd, int argc, char **argv) {
    /* one positional argument: the file */
    const char *path = NULL;
    char *rest[2] = {argv[0], NULL};
    int n_rest = 1;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            rest[n_rest < 2 ? n_rest : 1] = argv[i];
            n_rest++;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "hookformer inspect: expected one FILE.h5, got '%s' as well\n", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, n_rest > 2 ? 2 : n_rest, rest, &rc)) return rc;
    if (!path) return cli_usage_error(&a, "expected the store to inspect: hookformer inspect FILE.h5");
    hk_store *s = NULL;
    hk_status st = hk_store_open(path, &s);
    if (st != HK_OK)
        return cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
    hk_store_info info;
    hk_store_get_info(s, &info);
    printf("file:        %s (%.1f MiB)\n", info.path, (double)info.file_bytes / 1048576.0);
    printf("model:       %s (%s)\n", info.model_id, info.family);
    printf("written by:  hookformer %s\n", info.version);
    printf("dtype:       %s\n", info.dtype);
    printf("positions:   %s\n", info.positions);
    printf("compression: %s\n", info.compression);
    printf("sequences:   %lld\n", (long long)info.n_sequences);
    printf("rows:        %lld (tokens)\n", (long long)info.n_rows);
    if (info.ctx) printf("ctx:         %lld\n", (long long)info.ctx);
    printf("hooks:       %zu\n", info.n_hooks);
    printf("  %-36s %-26s %-40s %10s\n", "name", "shape", "dims", "MiB");
    for (size_t i = 0; i < info.n_hooks; i++) {
        hk_store_hook_info h;
        hk_store_hook_at(s, i, &h);
        char shape[96];
        shape_str(&h, shape, sizeof shape);
        printf("  %-36s %-26s %-40s %10.2f\n", h.name, shape, h.dims,
               (double)h.stored_bytes / 1048576.0);
    }
    hk_store_close(s);
    return CLI_EXIT_OK;
}

const cli_command cmd_inspect = {
    .name = "inspect",
    .summary = "Summarize an HDF5 activation store written by `hookformer cache`.",
    .usage = "FILE.h5",
    .description = "Prints the model, dtype, positions, compression, committed sequences and\n"
                   "rows, and each hook's dataset shape and stored size.",
    .opts = inspect_opts,
    .main = inspect_main,
};

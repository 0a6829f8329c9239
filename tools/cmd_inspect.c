/* hookformer inspect: summarize an HDF5 activation store (hk_store_open). */
#include "commands.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "hookformer.h"

static const cli_opt inspect_opts[] = {
    {NULL, NULL, NULL},
};

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", d ? ", " : "",
                                 (long long)shape[d]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* "1.25 KiB", "3.00 MiB": bytes for people */
static void size_str(uint64_t bytes, char *buf, size_t cap) {
    if (bytes < 1024) snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else if (bytes < (1u << 20)) snprintf(buf, cap, "%.2f KiB", (double)bytes / 1024.0);
    else snprintf(buf, cap, "%.2f MiB", (double)bytes / 1048576.0);
}

/* A results file of patch / ablate / lens or a steering vector. */
static int inspect_results(const cli_args *a, const char *path) {
    hk_results_info r;
    hk_status st = hk_results_info_read(path, &r);
    if (st != HK_OK) return cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    struct stat sb;
    printf("file:        %s (%.1f MiB)\n", path,
           stat(path, &sb) == 0 ? (double)sb.st_size / 1048576.0 : 0.0);
    printf("kind:        %s (an experiment results file, docs/FORMAT.md)\n", r.kind);
    printf("model:       %s%s%s%s\n", r.model, r.family[0] ? " (" : "", r.family,
           r.family[0] ? ")" : "");
    printf("written by:  hookformer %s\n", r.version);
    printf("datasets:    %zu\n", r.n_items);
    printf("  %-36s %-7s %-20s %-24s %12s\n", "name", "type", "shape", "dims", "stored");
    for (size_t i = 0; i < r.n_items; i++) {
        const hk_results_item *it = &r.items[i];
        char shape[96], size[32];
        shape_str(it->ndim, it->shape, shape, sizeof shape);
        size_str(it->stored_bytes, size, sizeof size);
        printf("  %-36s %-7s %-20s %-24s %12s\n", it->name, it->type, shape, it->dims, size);
    }
    hk_results_info_free(&r);
    return CLI_EXIT_OK;
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
    if (st == HK_ERR_FORMAT) return inspect_results(&a, path); /* not a store */
    if (st != HK_OK)
        return cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
    hk_store_info info;
    hk_store_get_info(s, &info);
    printf("file:        %s (%.1f MiB)\n", info.path, (double)info.file_bytes / 1048576.0);
    printf("model:       %s (%s), loaded from %s\n", info.model_id, info.family,
           info.model_path[0] ? info.model_path : "?");
    printf("written by:  hookformer %s\n", info.version);
    printf("dtype:       %s\n", info.dtype);
    printf("positions:   %s\n", info.positions);
    printf("compression: %s\n", info.compression);
    printf("sequences:   %lld\n", (long long)info.n_sequences);
    printf("rows:        %lld (tokens)\n", (long long)info.n_rows);
    if (info.ctx) printf("ctx:         %lld\n", (long long)info.ctx);
    printf("hooks:       %zu\n", info.n_hooks);
    /* stored: the committed rows' bytes; on disk: the dataset's file space (chunks) */
    printf("  %-36s %-26s %-40s %12s %12s\n", "name", "shape", "dims", "stored", "on disk");
    for (size_t i = 0; i < info.n_hooks; i++) {
        hk_store_hook_info h;
        hk_store_hook_at(s, i, &h);
        char shape[96], data[32], disk[32];
        shape_str(h.ndim, h.shape, shape, sizeof shape);
        size_str(h.data_bytes, data, sizeof data);
        size_str(h.stored_bytes, disk, sizeof disk);
        printf("  %-36s %-26s %-40s %12s %12s\n", h.name, shape, h.dims, data, disk);
    }
    hk_store_close(s);
    return CLI_EXIT_OK;
}

const cli_command cmd_inspect = {
    .name = "inspect",
    .summary = "Summarize an HDF5 file of hookformer: an activation store (cache) or results "
               "(patch, ablate, lens --out; steer --save).",
    .usage = "FILE.h5",
    .description = "For an activation store: the model (content id and path), dtype, positions,\n"
                   "compression, committed sequences and rows, and each hook's dataset shape,\n"
                   "dims, the bytes of its committed rows and its space in the file. For a\n"
                   "results file or a steering vector: its kind, model, and every dataset with\n"
                   "its type, shape, dims and stored bytes.",
    .opts = inspect_opts,
    .main = inspect_main,
};

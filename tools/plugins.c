/* --plugin for the model-running commands (tools/plugins.h). */
#include "plugins.h"

#include <stdio.h>
#include <string.h>

int cli_plugin_error(const cli_args *a, const char *spec, hk_status st) {
    /* the loader's messages start with the plugin's path, which SPEC already shows */
    const char *msg = hk_last_error();
    size_t path_len = strcspn(spec, ":");
    if (strncmp(msg, spec, path_len) == 0 && strncmp(msg + path_len, ": ", 2) == 0)
        msg += path_len + 2;
    return cli_runtime_error(a, "--plugin %s: %s (%s)", spec, msg, hk_status_name(st));
}

int cli_plugins_read(const cli_args *a, cli_plugins *p) {
    memset(p, 0, sizeof *p);
    p->n_specs = cli_strs(a, "plugin", p->specs, CLI_MAX_VALUES);
    if (p->n_specs > CLI_MAX_VALUES) p->n_specs = CLI_MAX_VALUES;
    for (size_t i = 0; i < p->n_specs; i++)
        if (!p->specs[i][0])
            return cli_usage_error(a, "--plugin: expected PATH[:key=value,...], got ''");
    return CLI_EXIT_OK;
}

int cli_plugins_load(const cli_args *a, cli_plugins *p, const hk_model *m, hk_hooks *hooks) {
    for (size_t i = p->n_loaded; i < p->n_specs; i++) {
        hk_status st = hk_plugin_load(p->specs[i], m, hooks, &p->loaded[p->n_loaded]);
        if (st != HK_OK) return cli_plugin_error(a, p->specs[i], st);
        p->n_loaded++;
    }
    return CLI_EXIT_OK;
}

int cli_plugins_start(const cli_args *a, cli_plugins *p, const hk_model *m, hk_hooks **hooks) {
    *hooks = NULL;
    if (p->n_specs == 0) return CLI_EXIT_OK;
    hk_status st = hk_hooks_new(m, hooks);
    if (st != HK_OK) return cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    return cli_plugins_load(a, p, m, *hooks);
}

int cli_plugins_begin_run(const cli_args *a, cli_plugins *p, const int32_t *tokens,
                          const int64_t *lengths, int64_t batch, int64_t seq) {
    for (size_t i = 0; i < p->n_loaded; i++) {
        hk_status st = hk_plugin_begin_run(p->loaded[i], tokens, lengths, batch, seq);
        if (st != HK_OK) return cli_plugin_error(a, p->specs[i], st);
    }
    return CLI_EXIT_OK;
}

int cli_plugins_finish(const cli_args *a, cli_plugins *p, int rc) {
    fflush(stdout);
    for (size_t i = 0; i < p->n_loaded; i++) {
        hk_status st = hk_plugin_finish(p->loaded[i]);
        p->loaded[i] = NULL;
        if (st != HK_OK && rc == CLI_EXIT_OK) rc = cli_plugin_error(a, p->specs[i], st);
    }
    p->n_loaded = 0;
    return rc;
}

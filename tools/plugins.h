/* --plugin for every command that runs the model (run, generate, cache, patch, ablate, lens,
 * embed): read the specs before the model loads, load them in command-line order onto the
 * command's hooks (so that their hooks fire first at every point: the command's own are
 * registered after them), tell them about each run, and finish them in the same order. */
#ifndef HK_TOOLS_PLUGINS_H
#define HK_TOOLS_PLUGINS_H

#include <stddef.h>
#include <stdint.h>

#include "args.h"
#include "hookformer.h"

typedef struct {
    const char *specs[CLI_MAX_VALUES]; /* PATH[:key=value,...], command-line order */
    size_t n_specs;
    hk_plugin *loaded[CLI_MAX_VALUES];
    size_t n_loaded;
} cli_plugins;

/* The --plugin values (none: n_specs 0); an empty one is a usage error. */
int cli_plugins_read(const cli_args *a, cli_plugins *p);
/* Load every spec onto hooks (made for m), in order; the first failure is a runtime error
 * naming the spec (the plugins loaded before it stay loaded: finish them). */
int cli_plugins_load(const cli_args *a, cli_plugins *p, const hk_model *m, hk_hooks *hooks);
/* With --plugin: a new hk_hooks for m in *hooks and every plugin loaded onto it (the
 * command then adds its own hooks, or hands *hooks to the library as the hooks that fire
 * first). Without: *hooks = NULL. Free *hooks after cli_plugins_finish. */
int cli_plugins_start(const cli_args *a, cli_plugins *p, const hk_model *m, hk_hooks **hooks);
/* Each plugin's begin_run with the run's tokens [batch, seq] and lengths [batch] (NULL: all
 * seq). */
int cli_plugins_begin_run(const cli_args *a, cli_plugins *p, const int32_t *tokens,
                          const int64_t *lengths, int64_t batch, int64_t seq);
/* Finish every loaded plugin in load order (each prints its summary) after flushing stdout;
 * returns rc, or the first finish error when rc was CLI_EXIT_OK. */
int cli_plugins_finish(const cli_args *a, cli_plugins *p, int rc);
/* "hookformer CMD: --plugin SPEC: <what> (STATUS)", without the path the message repeats. */
int cli_plugin_error(const cli_args *a, const char *spec, hk_status st);

#endif

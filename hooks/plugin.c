/* Plugin loader: "PATH[:key=value,...]" -> dlopen -> hookformer_plugin() -> checked
 * descriptor -> init (registers hooks) ... finish -> dlclose.
 *
 * Every failure is an hk_status with a message that starts with the plugin's path. A plugin's
 * hooks are remembered as the range of handles issued while its init ran (scope marks are the
 * next handle to be issued, see registry.c), so that a failed init and hk_plugin_finish
 * remove exactly the registrations the plugin made and nothing of anybody else's. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "hookformer.h"
#include "registry.h"

/* The v1 descriptor ends after begin_run; a plugin may not declare less. */
#define DESC_MIN_SIZE \
    (offsetof(hk_plugin_desc, begin_run) + sizeof(((hk_plugin_desc *)0)->begin_run))

struct hk_plugin {
    char *path;                 /* the path part of the spec */
    void *dl;                   /* dlopen handle */
    const hk_plugin_desc *desc; /* lives in the .so */
    void *state;                /* what init handed back */
    hk_hooks *hooks;
    hk_hook_handle first, end;  /* handles [first, end) were issued during init */
    char *spec_args;            /* the argument text, split in place */
    hk_plugin_arg *args;
    size_t n_args;
};

/* Remove the registrations made with handles in [first, end) that are still live. */
static void remove_range(hk_hooks *h, hk_hook_handle first, hk_hook_handle end) {
    size_t i = 0;
    while (i < h->n_regs) {
        hk_hook_handle hd = h->regs[i].handle;
        if (hd >= first && hd < end)
            hk_hooks_remove(h, hd); /* shifts the rest down: stay at i */
        else
            i++;
    }
}

static void plugin_free(hk_plugin *p) {
    if (!p) return;
    if (p->dl) dlclose(p->dl);
    free(p->args);
    free(p->spec_args);
    free(p->path);
    free(p);
}

/* Split "PATH[:k=v,k=v]" into p->path and p->args. */
static hk_status parse_spec(hk_plugin *p, const char *spec) {
    const char *colon = strchr(spec, ':');
    size_t path_len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (path_len == 0)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "plugin '%s': expected PATH[:key=value,...], the path is empty", spec);
    p->path = strndup(spec, path_len);
    if (!p->path) return hk_errorf(HK_ERR_NOMEM, "plugin '%s': out of memory", spec);
    if (!colon) return HK_OK;

    const char *text = colon + 1;
    p->spec_args = strdup(text);
    size_t n = 1;
    for (const char *c = text; *c; c++) n += (*c == ',');
    p->args = calloc(n, sizeof *p->args);
    if (!p->spec_args || !p->args)
        return hk_errorf(HK_ERR_NOMEM, "plugin '%s': out of memory", spec);

    char *item = p->spec_args;
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(item, ',');
        if (comma) *comma = '\0';
        char *eq = strchr(item, '=');
        if (!eq)
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "%s: argument %zu, '%s': expected key=value (a spec is "
                             "PATH:key=value,key=value; values may not contain ',')",
                             p->path, i + 1, item);
        if (eq == item)
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "%s: argument %zu, '%s': expected key=value, the key is empty",
                             p->path, i + 1, item);
        *eq = '\0';
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->args[j].key, item) == 0)
                return hk_errorf(HK_ERR_INVALID_ARG, "%s: argument '%s' is given twice",
                                 p->path, item);
        p->args[i] = (hk_plugin_arg){.key = item, .value = eq + 1};
        p->n_args = i + 1;
        if (comma) item = comma + 1;
    }
    return HK_OK;
}

/* Everything the host can check before running any of the plugin's code but its entry. */
static hk_status check_desc(const hk_plugin *p, const hk_plugin_desc *d) {
    if (!d)
        return hk_errorf(HK_ERR_FORMAT, "%s: %s() returned NULL instead of a plugin descriptor",
                         p->path, HK_PLUGIN_SYMBOL);
    if (d->abi_version != HK_PLUGIN_ABI_VERSION)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: built for plugin ABI %u, this hookformer speaks %d: rebuild it "
                         "against hookformer %s (pkg-config --cflags hookformer)",
                         p->path, (unsigned)d->abi_version, HK_PLUGIN_ABI_VERSION,
                         HK_VERSION_STRING);
    if (d->struct_size < DESC_MIN_SIZE)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: plugin descriptor declares struct_size %u, ABI %d needs at least "
                         "%zu: set .struct_size = sizeof(hk_plugin_desc)",
                         p->path, (unsigned)d->struct_size, HK_PLUGIN_ABI_VERSION,
                         (size_t)DESC_MIN_SIZE);
    if (!d->name || !d->name[0])
        return hk_errorf(HK_ERR_FORMAT, "%s: plugin descriptor has no name", p->path);
    if (!d->init)
        return hk_errorf(HK_ERR_FORMAT, "%s: plugin '%s' has no init function", p->path,
                         d->name);
    return HK_OK;
}

hk_status hk_plugin_load(const char *spec, const hk_model *m, hk_hooks *hooks,
                         hk_plugin **out) {
    if (out) *out = NULL;
    if (!spec || !m || !hooks || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_plugin_load: spec, model, hooks and out are "
                                             "required");
    if (hooks->model != m)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_plugin_load: the hooks were made for another "
                                             "model");
    hk_plugin *p = calloc(1, sizeof *p);
    if (!p) return hk_errorf(HK_ERR_NOMEM, "plugin '%s': out of memory", spec);
    p->hooks = hooks;
    hk_status st = parse_spec(p, spec);
    if (st != HK_OK) goto fail;

    /* PATH is a file: a bare "probe.so" means ./probe.so, not a search of the library path.
     * RTLD_NOW: a symbol the host does not provide is an error here, not a crash later. */
    char *file = strchr(p->path, '/') ? strdup(p->path) : NULL;
    if (!file && asprintf(&file, "./%s", p->path) < 0) file = NULL;
    if (!file) {
        st = hk_errorf(HK_ERR_NOMEM, "%s: out of memory", p->path);
        goto fail;
    }
    dlerror();
    p->dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    free(file);
    if (!p->dl) {
        const char *why = dlerror();
        st = hk_errorf(HK_ERR_IO, "%s: cannot load plugin: %s", p->path,
                       why ? why : "dlopen failed");
        goto fail;
    }
    dlerror();
    void *sym = dlsym(p->dl, HK_PLUGIN_SYMBOL);
    if (!sym) {
        st = hk_errorf(HK_ERR_NOT_FOUND,
                       "%s: not a hookformer plugin: it exports no symbol '%s' (define "
                       "`HK_PLUGIN_EXPORT const hk_plugin_desc *%s(void)`, see "
                       "docs/PLUGINS.md)",
                       p->path, HK_PLUGIN_SYMBOL, HK_PLUGIN_SYMBOL);
        goto fail;
    }
    const hk_plugin_desc *(*entry)(void);
    memcpy(&entry, &sym, sizeof entry); /* POSIX: a data pointer from dlsym names a function */
    p->desc = entry();
    if ((st = check_desc(p, p->desc)) != HK_OK) goto fail;

    const hk_plugin_desc *d = p->desc;
    hk_hook_error("%s", "");
    hk_error_clear();
    p->first = hk_hooks_scope_begin(hooks);
    st = d->init(m, hooks, p->args, p->n_args, &p->state);
    p->end = hk_hooks_scope_begin(hooks);
    if (st != HK_OK) {
        /* The plugin's own words first; else whatever a library call it made left. */
        const char *why = hk_hook_error_message();
        if (!why[0]) why = hk_last_error();
        char msg[768];
        snprintf(msg, sizeof msg, "%s", why[0] ? why : "(the plugin gave no message)");
        remove_range(hooks, p->first, p->end);
        st = hk_errorf(st == HK_STOPPED ? HK_ERR_INTERNAL : st,
                       "%s: plugin init failed (%s): %s: %s%s%s", p->path,
                       hk_status_name(st), d->name, msg,
                       d->usage && d->usage[0] ? "; usage: " : "", d->usage ? d->usage : "");
        goto fail;
    }
    /* The arguments were handed to init only. */
    free(p->args);
    free(p->spec_args);
    p->args = NULL;
    p->spec_args = NULL;
    p->n_args = 0;
    *out = p;
    return HK_OK;

fail:
    plugin_free(p);
    return st;
}

hk_status hk_plugin_begin_run(hk_plugin *p, const int32_t *tokens, const int64_t *lengths,
                              int64_t batch, int64_t seq) {
    if (!p || !p->desc->begin_run) return HK_OK;
    hk_hook_error("%s", "");
    hk_error_clear();
    hk_status st = p->desc->begin_run(p->state, tokens, lengths, batch, seq);
    if (st == HK_OK) return HK_OK;
    const char *why = hk_hook_error_message();
    if (!why[0]) why = hk_last_error();
    char msg[768];
    snprintf(msg, sizeof msg, "%s", why[0] ? why : "(the plugin gave no message)");
    return hk_errorf(st, "%s: plugin '%s' failed before the run: %s", p->path, p->desc->name,
                     msg);
}

hk_status hk_plugin_finish(hk_plugin *p) {
    if (!p) return HK_OK;
    /* Its hooks point into the .so and at its state: gone before either is. */
    remove_range(p->hooks, p->first, p->end);
    hk_status st = HK_OK;
    char msg[768] = "";
    if (p->desc->finish) {
        hk_hook_error("%s", "");
        hk_error_clear();
        st = p->desc->finish(p->state);
        if (st != HK_OK) {
            const char *why = hk_hook_error_message();
            if (!why[0]) why = hk_last_error();
            snprintf(msg, sizeof msg, "%s", why[0] ? why : "(the plugin gave no message)");
        }
    }
    if (st != HK_OK)
        hk_errorf(st, "%s: plugin '%s' failed to finish: %s", p->path, p->desc->name, msg);
    plugin_free(p);
    return st;
}

const char *hk_plugin_name(const hk_plugin *p) { return p ? p->desc->name : ""; }

const char *hk_plugin_usage(const hk_plugin *p) {
    return p && p->desc->usage ? p->desc->usage : "";
}

const char *hk_plugin_path(const hk_plugin *p) { return p ? p->path : ""; }

/* dlopen of the CUDA module (cuda_module.h). */
#include "cuda_module.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_module_path.h"
#include "error.h"

static pthread_mutex_t module_lock = PTHREAD_MUTEX_INITIALIZER;
static const hk_cu_api *module_api; /* set once, under module_lock */
static char module_path[4096];

/* Loads the module at path (which exists) and checks its table. */
static hk_status load_at(const char *path, const hk_cu_api **out) {
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        return hk_errorf(HK_ERR_IO, "CUDA module %s: dlopen failed: %s", path,
                         e ? e : "(no dlerror text)");
    }
    dlerror();
    void *sym = dlsym(h, HK_CU_API_SYMBOL_NAME);
    if (!sym) {
        const char *e = dlerror();
        hk_status s = hk_errorf(HK_ERR_FORMAT, "CUDA module %s: no symbol %s (%s)", path,
                                HK_CU_API_SYMBOL_NAME, e ? e : "not found");
        dlclose(h);
        return s;
    }
    hk_cu_api_fn fn;
    memcpy(&fn, &sym, sizeof fn); /* object pointer to function pointer, as POSIX allows */
    const hk_cu_api *api = fn();
    hk_status s = HK_OK;
    if (!api)
        s = hk_errorf(HK_ERR_FORMAT, "CUDA module %s: %s() returned NULL", path,
                      HK_CU_API_SYMBOL_NAME);
    else if (api->version != HK_CU_API_VERSION || api->struct_size != sizeof(hk_cu_api))
        s = hk_errorf(HK_ERR_UNSUPPORTED,
                      "CUDA module %s: kernel table version %u (%zu bytes), expected %u "
                      "(%zu bytes): rebuild the module with this hookformer",
                      path, api->version, api->struct_size, HK_CU_API_VERSION,
                      sizeof(hk_cu_api));
    else if (!api->hk_version || strcmp(api->hk_version, HK_VERSION_STRING) != 0)
        s = hk_errorf(HK_ERR_UNSUPPORTED,
                      "CUDA module %s: built from hookformer %s, expected %s", path,
                      api->hk_version ? api->hk_version : "(none)", HK_VERSION_STRING);
    if (s != HK_OK) {
        dlclose(h);
        return s;
    }
    *out = api; /* the handle stays open until exit */
    return HK_OK;
}

hk_status hk_cuda_module(const hk_cu_api **out) {
    if (!out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_cuda_module: out is NULL");
    *out = NULL;
    pthread_mutex_lock(&module_lock);
    hk_status s = HK_OK;
    if (module_api) goto done;
    const char *env = getenv(HK_CUDA_MODULE_ENV);
    char tried[HK_CUDA_MODULE_MAX_CANDIDATES][HK_CUDA_MODULE_PATH_MAX];
    int n = 0;
    if (env && *env) {
        snprintf(tried[n++], sizeof tried[0], "%s", env);
    } else {
        char self[HK_CUDA_MODULE_PATH_MAX];
        bool is_exe = false;
        bool known = hk_cuda_module_self(self, &is_exe);
        n = hk_cuda_module_candidates(hk_cuda_module_layout_built(), known ? self : NULL,
                                      is_exe, tried);
    }
    for (int i = 0; i < n; i++) {
        if (access(tried[i], F_OK) != 0) continue;
        const hk_cu_api *api = NULL;
        s = load_at(tried[i], &api);
        if (s == HK_OK) {
            snprintf(module_path, sizeof module_path, "%s", tried[i]);
            module_api = api;
        }
        goto done;
    }
    if (env && *env) {
        s = hk_errorf(HK_ERR_NOT_FOUND, "CUDA module %s (from %s): no such file", env,
                      HK_CUDA_MODULE_ENV);
        goto done;
    }
    char where[3 * HK_CUDA_MODULE_PATH_MAX + 16] = "";
    for (int i = 0; i < n; i++)
        snprintf(where + strlen(where), sizeof where - strlen(where), "%s%s",
                 i ? (i + 1 < n ? ", " : " nor at ") : "", tried[i]);
#ifdef HK_CUDA_MODULE_BUILD_PATH
    s = hk_errorf(HK_ERR_NOT_FOUND, "CUDA module libhookformer_cuda.so: not found at %s (set %s "
                  "to a module's path)", n ? where : "(no place known)", HK_CUDA_MODULE_ENV);
#else
    s = hk_errorf(HK_ERR_NOT_FOUND,
                  "CUDA module libhookformer_cuda.so: this hookformer was built without "
                  "CUDA (nvcc not found at setup, or -Dcuda=disabled) and none was found at %s; "
                  "set %s to a module's path",
                  n ? where : "(no place known)", HK_CUDA_MODULE_ENV);
#endif
done:
    *out = module_api;
    pthread_mutex_unlock(&module_lock);
    return s;
}

const char *hk_cuda_module_path(void) {
    pthread_mutex_lock(&module_lock);
    const char *p = module_path;
    pthread_mutex_unlock(&module_lock);
    return p;
}

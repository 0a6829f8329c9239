/* Where the CUDA module is looked for (cuda_module_path.h). */
#include "cuda_module_path.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const hk_cuda_module_layout *hk_cuda_module_layout_built(void) {
    static const hk_cuda_module_layout built = {
#ifdef HK_BUILD_ROOT
        .build_root = HK_BUILD_ROOT,
#endif
#ifdef HK_CUDA_MODULE_BUILD_PATH
        .build_module = HK_CUDA_MODULE_BUILD_PATH,
#endif
#ifdef HK_CUDA_MODULE_INSTALL_PATH
        .install_module = HK_CUDA_MODULE_INSTALL_PATH,
#endif
#ifdef HK_CUDA_MODULE_FROM_LIBDIR
        .from_libdir = HK_CUDA_MODULE_FROM_LIBDIR,
#endif
#ifdef HK_CUDA_MODULE_FROM_BINDIR
        .from_bindir = HK_CUDA_MODULE_FROM_BINDIR,
#endif
    };
    return &built;
}

/* an address inside the object this file is linked into (static: no interposition) */
static void anchor(void) {}

bool hk_cuda_module_self(char self[HK_CUDA_MODULE_PATH_MAX], bool *is_exe) {
    Dl_info info;
    struct link_map *map = NULL;
    void *addr;
    void (*fn)(void) = anchor;
    memcpy(&addr, &fn, sizeof addr); /* function pointer to object pointer, as POSIX allows */
    if (!dladdr1(addr, &info, (void **)&map, RTLD_DL_LINKMAP) || !map) return false;
    if (!map->l_name || !map->l_name[0]) { /* the main program: dladdr would give argv[0] */
        *is_exe = true;
        ssize_t n = readlink("/proc/self/exe", self, HK_CUDA_MODULE_PATH_MAX - 1);
        if (n <= 0) return false;
        self[n] = '\0';
        return true;
    }
    *is_exe = false;
    char real[PATH_MAX];
    if (!realpath(map->l_name, real)) return false;
    snprintf(self, HK_CUDA_MODULE_PATH_MAX, "%s", real);
    return true;
}

/* dir inside root (both real paths or as given), on a '/' boundary */
static bool inside(const char *path, const char *root) {
    char real_root[PATH_MAX];
    if (realpath(root, real_root)) root = real_root;
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/') n--;
    return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* the same file (both exist) or the same string */
static bool same_file(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    if (realpath(a, ra) && realpath(b, rb)) return strcmp(ra, rb) == 0;
    return strcmp(a, b) == 0;
}

static void add(char out[HK_CUDA_MODULE_MAX_CANDIDATES][HK_CUDA_MODULE_PATH_MAX], int *n,
                const char *dir, const char *path) {
    if (!path || !*path || *n >= HK_CUDA_MODULE_MAX_CANDIDATES) return;
    char p[HK_CUDA_MODULE_PATH_MAX];
    int w = dir && path[0] != '/' ? snprintf(p, sizeof p, "%s/%s", dir, path)
                                  : snprintf(p, sizeof p, "%s", path);
    if (w < 0 || (size_t)w >= sizeof p) return; /* too long to be a path */
    for (int i = 0; i < *n; i++)
        if (same_file(out[i], p)) return;
    memcpy(out[(*n)++], p, (size_t)w + 1);
}

int hk_cuda_module_candidates(const hk_cuda_module_layout *l, const char *self, bool is_exe,
                              char out[HK_CUDA_MODULE_MAX_CANDIDATES][HK_CUDA_MODULE_PATH_MAX]) {
    int n = 0;
    if (!self || !*self) {
        add(out, &n, NULL, l->install_module);
        add(out, &n, NULL, l->build_module);
        return n;
    }
    if (l->build_root && *l->build_root && inside(self, l->build_root)) {
        add(out, &n, NULL, l->build_module);
        add(out, &n, NULL, l->install_module);
        return n;
    }
    char dir[HK_CUDA_MODULE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", self);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *(slash == dir ? slash + 1 : slash) = '\0';
        const char *base = strrchr(self, '/') + 1;
        if (is_exe)
            add(out, &n, dir, l->from_bindir);
        else if (strncmp(base, "libhookformer", 13) == 0 && strstr(base, ".so"))
            add(out, &n, dir, l->from_libdir);
    }
    add(out, &n, NULL, l->install_module);
    return n;
}

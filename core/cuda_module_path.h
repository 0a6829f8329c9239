/* Where the CUDA module (libhookformer_cuda.so) is looked for. A program running from the
 * build tree takes the build tree's module; an installed one takes the module installed beside
 * the code that is running (found with dladdr), never the build tree's, even where that tree
 * still exists. */
#ifndef HK_CORE_CUDA_MODULE_PATH_H
#define HK_CORE_CUDA_MODULE_PATH_H

#include <stdbool.h>
#include <stddef.h>

#define HK_CUDA_MODULE_PATH_MAX 4096
#define HK_CUDA_MODULE_MAX_CANDIDATES 3

/* How a build lays the module out (meson.build passes these in; NULL: not known). */
typedef struct {
    const char *build_root;     /* the build tree (meson's project_build_root) */
    const char *build_module;   /* the module the build tree holds (NULL: no CUDA build) */
    const char *install_module; /* <prefix>/<libdir>/hookformer/libhookformer_cuda.so */
    const char *from_libdir;    /* the module relative to an installed libhookformer.so's
                                 * directory: "hookformer/libhookformer_cuda.so" */
    const char *from_bindir;    /* relative to an installed executable's directory:
                                 * "../lib/x86_64-linux-gnu/hookformer/libhookformer_cuda.so" */
} hk_cuda_module_layout;

/* This build's layout. */
const hk_cuda_module_layout *hk_cuda_module_layout_built(void);

/* The object holding libhookformer's code, as the loader sees it: self is its real path and
 * is_exe tells whether it is the main program (libhookformer linked in statically, as the
 * `hookformer` tool is) or a shared object (libhookformer.so, or another library it is
 * linked into). false if dladdr cannot tell. */
bool hk_cuda_module_self(char self[HK_CUDA_MODULE_PATH_MAX], bool *is_exe);

/* The paths to try, in order, for code in self (a real path; NULL: unknown) into out; returns
 * their number (no duplicates, none empty):
 * - self inside l->build_root: the build tree's module, then the installed one;
 * - self elsewhere (installed): the module relative to self (from_bindir for the main program,
 *   from_libdir for libhookformer*.so), then install_module; never the build tree's;
 * - self unknown: install_module, then the build tree's. */
int hk_cuda_module_candidates(const hk_cuda_module_layout *l, const char *self, bool is_exe,
                              char out[HK_CUDA_MODULE_MAX_CANDIDATES][HK_CUDA_MODULE_PATH_MAX]);

#endif

/* tools/out_path.h: checking output paths before any work. */
#include "out_path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folder files named path... go to ("out/x.h5", "out/p_" and "out/" write into "out"):
 * "." when none. */
static void folder_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
        return;
    }
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; /* "/x" */
    snprintf(out, cap, "%.*s", (int)n, path);
}

/* Can the folder take a new file? A probe file, created and removed, says (as root, access()
 * would say yes to a read-only file system's folder or to a folder that is not there). */
static int probe_folder(const cli_args *a, const char *opt, const char *value, const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return cli_runtime_error(a, "--%s %s: cannot create a file in '%s': %s", opt, value, dir,
                                 strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return cli_runtime_error(a, "--%s %s: cannot create a file in '%s': %s", opt, value, dir,
                                 strerror(ENOTDIR));
    size_t n = strlen(dir) + 32;
    char *probe = malloc(n);
    if (!probe) return cli_runtime_error(a, "out of memory");
    snprintf(probe, n, "%s/.hk-probe-XXXXXX", dir);
    int fd = mkstemp(probe);
    int e = errno;
    if (fd >= 0) {
        close(fd);
        unlink(probe);
    }
    free(probe);
    if (fd < 0)
        return cli_runtime_error(a, "--%s %s: cannot create a file in '%s': %s", opt, value, dir,
                                 strerror(e));
    return 0;
}

int cli_check_output(const cli_args *a, const char *opt, cli_out_kind kind, bool force) {
    const char *value = cli_str(a, opt);
    if (!value) return 0;
    if (!value[0]) return cli_runtime_error(a, "--%s: expected a path, got ''", opt);
    struct stat sb;
    if (kind == CLI_OUT_EXISTING) {
        /* opened for writing and closed: neither bytes nor times change */
        int fd = open(value, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return cli_runtime_error(a, "--%s %s: cannot open it for writing: %s", opt, value,
                                     strerror(errno));
        close(fd);
        return 0;
    }
    if (kind == CLI_OUT_NEW && stat(value, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            return cli_runtime_error(a, "--%s %s: is a folder, expected a file name", opt, value);
        if (!force)
            return cli_runtime_error(a, "--%s %s: the file exists (use --force to overwrite)",
                                     opt, value);
    }
    char dir[4096];
    folder_of(value, dir, sizeof dir);
    return probe_folder(a, opt, value, dir);
}

int cli_check_outputs(const cli_args *a) {
    const bool force = cli_has(a, "force");
    int rc = cli_check_output(a, "out", CLI_OUT_NEW, force);
    if (!rc) rc = cli_check_output(a, "save", CLI_OUT_NEW, force);
    if (!rc) rc = cli_check_output(a, "svg", CLI_OUT_PREFIX, force);
    return rc;
}

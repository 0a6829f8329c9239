/* The replay half of the fuzz targets (built without -DHK_LIBFUZZER): runs inputs through
 * LLVMFuzzerTestOneInput from exact-size heap copies, so ASan catches reads past their end, and
 * walks the files and folders named on a command line. Include it after the target's
 * LLVMFuzzerTestOneInput declaration. */
#ifndef HK_TESTS_FUZZ_REPLAY_H
#define HK_TESTS_FUZZ_REPLAY_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_out_of_memory(void) {
    fprintf(stderr, "fuzz replay: out of memory\n");
    abort();
}

/* One input from an exact-size heap copy. */
static void fuzz_run_copy(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) fuzz_out_of_memory();
    if (size) memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
}

/* Reads a whole file (pipes too); exits 2 naming it when it cannot be opened. */
static uint8_t *fuzz_read_file(const char *prog, const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open %s\n", prog, path);
        exit(2);
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0, r;
    do {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *b = realloc(buf, cap);
            if (!b) fuzz_out_of_memory();
            buf = b;
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    fclose(f);
    *size = n;
    return buf;
}

/* Every file under path (a file or a folder, recursively, dot files skipped) through `each`;
 * returns the number of files. A path that does not exist exits 2 naming it. */
static size_t fuzz_replay_path(const char *prog, const char *path,
                               void (*each)(const uint8_t *, size_t)) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "%s: no such file %s\n", prog, path);
        exit(2);
    }
    if (!S_ISDIR(sb.st_mode)) {
        size_t size;
        uint8_t *buf = fuzz_read_file(prog, path, &size);
        each(buf, size);
        free(buf);
        return 1;
    }
    DIR *d = opendir(path);
    if (!d) exit(2);
    size_t count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        count += fuzz_replay_path(prog, full, each);
    }
    closedir(d);
    return count;
}

#endif

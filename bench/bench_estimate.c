/* The memory estimate against the peak RSS of a real run, one case per pair of processes:
 *
 *   bench_estimate HOOKFORMER --model M --tokens N [--chunk C] [--threads T]
 *
 * runs `HOOKFORMER estimate --model M --tokens IDS [--chunk C] --json` and then
 * `HOOKFORMER run --model M --tokens IDS [--chunk C] --top-k 1` on the same N token ids
 * ((7919*i + 13) % 49152, SmolLM2's vocab; use a model with at least that many), takes the
 * estimate's total and the run's peak resident set size (wait4's ru_maxrss: the whole process,
 * exit included), and prints one line:
 *
 *   estimate tokens=4096 chunk=0 threads=2 est_mib=910.5 peak_mib=905.3 ratio=1.006 run_s=41.2
 *
 * ratio = estimate / measured (1: exact). bench/run_estimate.sh runs the cases. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

extern char **environ;

/* Spawn argv with stdout into the file `out` (NULL: /dev/null) and stderr to /dev/null (the
 * context warning past max_position_embeddings); returns the exit status, *rss_kib the peak. */
static int spawn_wait(char *const *argv, const char *out, long *rss_kib) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out ? out : "/dev/null",
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "bench_estimate: cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    int ws;
    struct rusage ru;
    if (wait4(pid, &ws, 0, &ru) != pid) return -1;
    *rss_kib = ru.ru_maxrss;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

int main(int argc, char **argv) {
    const char *exe = argc > 1 ? argv[1] : NULL, *model = NULL, *chunk = NULL, *threads = "2";
    long n = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--model") == 0) model = argv[i + 1];
        else if (strcmp(argv[i], "--tokens") == 0) n = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--chunk") == 0) chunk = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0) threads = argv[i + 1];
        else {
            fprintf(stderr, "bench_estimate: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!exe || !model || n < 1) {
        fprintf(stderr, "usage: bench_estimate HOOKFORMER --model M --tokens N [--chunk C] "
                        "[--threads T]\n");
        return 2;
    }
    char *ids = malloc((size_t)n * 8 + 1); /* "id,id,...": at most 6 characters per id */
    if (!ids) return 1;
    size_t k = 0;
    for (long i = 0; i < n; i++)
        k += (size_t)sprintf(ids + k, "%s%ld", i ? "," : "", (7919 * i + 13) % 49152);
    char json[] = "/tmp/hk-bench-estimate-XXXXXX";
    int fd = mkstemp(json);
    if (fd < 0) return 1;
    close(fd);
    char *est_argv[16] = {(char *)exe, "estimate", "--model", (char *)model, "--tokens", ids,
                          "--threads", (char *)threads, "--json"};
    char *run_argv[16] = {(char *)exe, "run", "--model", (char *)model, "--tokens", ids,
                          "--threads", (char *)threads, "--top-k", "1"};
    if (chunk) {
        est_argv[9] = "--chunk", est_argv[10] = (char *)chunk;
        run_argv[10] = "--chunk", run_argv[11] = (char *)chunk;
    }
    long est_rss = 0, run_rss = 0;
    int st = spawn_wait(est_argv, json, &est_rss);
    char buf[4096] = "";
    FILE *f = fopen(json, "r");
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[got] = '\0';
    unlink(json);
    const char *t = strstr(buf, "\"total\": ");
    if (st != 0 || !t) {
        fprintf(stderr, "bench_estimate: estimate failed (status %d): %s\n", st, buf);
        return 1;
    }
    double est = strtod(t + strlen("\"total\": "), NULL);
    double t0 = bench_now_s();
    st = spawn_wait(run_argv, NULL, &run_rss);
    double secs = bench_now_s() - t0;
    if (st != 0) {
        fprintf(stderr, "bench_estimate: run failed (status %d)\n", st);
        return 1;
    }
    double peak = (double)run_rss * 1024.0;
    printf("estimate tokens=%ld chunk=%s threads=%s est_mib=%.1f peak_mib=%.1f ratio=%.3f "
           "run_s=%.1f\n",
           n, chunk ? chunk : "0", threads, est / (1 << 20), peak / (1 << 20), est / peak, secs);
    free(ids);
    return 0;
}

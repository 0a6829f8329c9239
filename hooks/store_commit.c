/* Commits, disk-space reservation, the temporary name of a new file, SIGXFSZ.
 *
 * Why a commit survives a SIGKILL of the writer (docs/ARCHITECTURE.md, "HDF5 store"):
 * between commits the writer puts only raw rows into the file, in space that no committed
 * metadata refers to (the metadata cache never evicts, and nothing is freed). A commit first
 * writes the index rows, then fork()s: the child runs H5Fflush on its copy of the library's
 * state and _exits. The writer waits for it; if the writer is killed meanwhile the child
 * still finishes, so a commit is never half-written by a kill of the writer. The writer then
 * runs the same H5Fflush itself, which rewrites the same bytes over the same state (so that
 * its cache is clean again); a kill during that rewrite leaves the same bytes in place. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "store.h"

double hk_store_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool hk_i64_push(hk_i64_vec *v, int64_t x) {
    if (v->n == v->cap) {
        int64_t cap = v->cap ? 2 * v->cap : 1024;
        int64_t *p = realloc(v->v, (size_t)cap * sizeof *p);
        if (!p) return false;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return true;
}

void hk_i64_drop_front(hk_i64_vec *v, int64_t k) {
    if (k <= 0) return;
    if (k > v->n) k = v->n;
    memmove(v->v, v->v + k, (size_t)(v->n - k) * sizeof *v->v);
    v->n -= k;
}

void hk_store_ignore_xfsz(hk_store *s) {
    struct sigaction cur;
    if (sigaction(SIGXFSZ, NULL, &cur) != 0 || cur.sa_handler != SIG_DFL) return;
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGXFSZ, &ign, &s->old_xfsz) == 0) s->xfsz_saved = true;
}

void hk_store_restore_xfsz(hk_store *s) {
    if (s->xfsz_saved) sigaction(SIGXFSZ, &s->old_xfsz, NULL);
    s->xfsz_saved = false;
}

/* ---- space ---- */

static hk_status fd_of(hk_store *s) {
    if (s->fd >= 0) return HK_OK;
    void *handle = NULL;
    if (H5Fget_vfd_handle(s->file, H5P_DEFAULT, &handle) < 0 || !handle)
        return hk_store_h5_error(s, HK_ERR_IO, "cannot get the file descriptor");
    s->fd = *(int *)handle;
    return HK_OK;
}

hk_status hk_store_reserve(hk_store *s, uint64_t bytes) {
    hk_status st = fd_of(s);
    if (st != HK_OK) return st;
    haddr_t eoa = 0;
    if (H5Fget_eoa(s->file, &eoa) < 0)
        return hk_store_h5_error(s, HK_ERR_IO, "cannot get the end of the file");
    struct stat sb;
    if (fstat(s->fd, &sb) != 0)
        return hk_errorf(HK_ERR_IO, "%s: fstat: %s", s->path, strerror(errno));
    uint64_t from = s->reserved_to < (uint64_t)sb.st_size ? s->reserved_to : (uint64_t)sb.st_size;
    uint64_t end = (uint64_t)eoa + bytes;
    if (end <= from) return HK_OK;
    int e = posix_fallocate(s->fd, (off_t)from, (off_t)(end - from));
    if (e == EINVAL || e == EOPNOTSUPP) return HK_OK; /* no reservation on this file system */
    if (e != 0)
        return hk_errorf(HK_ERR_IO,
                         "%s: cannot reserve %.1f MiB for the next rows: %s (the store keeps "
                         "the %lld rows of %lld sequences committed so far)",
                         s->path, (double)bytes / 1048576.0, strerror(e),
                         (long long)s->committed_rows, (long long)s->committed_seqs);
    s->reserved_to = end;
    return HK_OK;
}

uint64_t hk_store_commit_slack(void) { return 7u * HK_STORE_INDEX_CHUNK * 8 + (1u << 20); }

hk_status hk_store_check_space(const char *path, uint64_t bytes) {
    /* a check, not a reservation: fallocate, even with FALLOC_FL_KEEP_SIZE, would change the
     * file's mtime; the first batch reserves (hk_store_reserve) */
    struct stat sb;
    struct statvfs vs;
    struct rlimit rl;
    int e = 0;
    if (stat(path, &sb) != 0 || statvfs(path, &vs) != 0) e = errno;
    else if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
             (uint64_t)sb.st_size + bytes > (uint64_t)rl.rlim_cur)
        e = EFBIG; /* what a write past the limit would get */
    else if ((uint64_t)vs.f_bavail * vs.f_frsize < bytes)
        e = ENOSPC;
    if (e != 0)
        return hk_errorf(HK_ERR_IO, "%s: cannot reserve %.1f MiB to append: %s (the file was not "
                                    "changed)",
                         path, (double)bytes / 1048576.0, strerror(e));
    return HK_OK;
}

void hk_store_trim(hk_store *s) {
    haddr_t eoa = 0;
    struct stat sb;
    if (fd_of(s) != HK_OK || H5Fget_eoa(s->file, &eoa) < 0 || eoa == 0 || fstat(s->fd, &sb) != 0)
        return;
    if ((uint64_t)sb.st_size > (uint64_t)eoa && ftruncate(s->fd, (off_t)eoa) == 0)
        s->reserved_to = (uint64_t)eoa;
}

/* ---- commit ---- */

static void child_flush(hk_store *s) {
    /* A Ctrl-C of the terminal reaches the whole process group: let the commit finish. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    int ok = H5Fflush(s->file, H5F_SCOPE_LOCAL) >= 0;
    if (ok && s->fsync) ok = fsync(s->fd) == 0;
    _exit(ok ? 0 : 1);
}

static hk_status flush_in_child(hk_store *s) {
    pid_t pid = fork();
    if (pid < 0) return HK_ERR_UNSUPPORTED; /* the caller flushes in-process */
    if (pid == 0) child_flush(s);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return hk_errorf(HK_ERR_IO, "%s: waiting for the commit process: %s", s->path,
                             strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return hk_errorf(HK_ERR_IO, "%s: the commit process failed (%s %d); the file holds the "
                                    "previous commit",
                         s->path, WIFEXITED(status) ? "exit status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return HK_OK;
}

/* Rows [committed, R) of the index are complete when every token-row hook holds them in its
 * dataset; sequences are committed when all their rows are. */
static void commit_bounds(const hk_store *s, int64_t *rows, int64_t *seqs) {
    int64_t r = s->n_rows;
    for (size_t i = 0; i < s->n_hooks; i++)
        if (!s->hooks[i].per_seq && s->hooks[i].written < r) r = s->hooks[i].written;
    /* a compressed dataset's partial chunk, staged again at an append, is committed already */
    if (r < s->committed_rows) r = s->committed_rows;
    int64_t q = s->committed_seqs;
    for (int64_t k = 0; k < s->p_slen.n; k++) {
        if (s->p_sfirst.v[k] + s->p_snrows.v[k] > r) break;
        q++;
    }
    for (size_t i = 0; i < s->n_hooks; i++)
        if (s->hooks[i].per_seq && s->hooks[i].written < q) q = s->hooks[i].written;
    *rows = r;
    *seqs = q;
}

hk_status hk_store_commit_now(hk_store *s) {
    if (!s->writable || s->file < 0) return HK_OK; /* an append that has written nothing */
    if (s->failed)
        return hk_errorf(HK_ERR_IO, "%s: an earlier write failed; nothing more is committed",
                         s->path);
    double t0 = hk_store_now();
    int64_t rows, seqs;
    commit_bounds(s, &rows, &seqs);
    const int64_t nr = rows - s->committed_rows, ns = seqs - s->committed_seqs;
    /* nothing changed: the file stays as it is, bytes and times */
    if (!s->dirty && nr == 0 && ns == 0) return HK_OK;
    /* the index rows, a new chunk of each index dataset, metadata */
    hk_status st = hk_store_reserve(s, (uint64_t)nr * 20 + (uint64_t)ns * 32 +
                                           hk_store_commit_slack());
    if (st != HK_OK) return st;
    /* data before metadata: the index rows (extended last), then the flush */
    const int64_t r0 = s->committed_rows, q0 = s->committed_seqs;
    if (st == HK_OK)
        st = hk_store_write_1d(s, s->d_seq, "writing seq_id", r0, nr, H5T_NATIVE_INT64,
                               s->p_seq.v, rows);
    if (st == HK_OK)
        st = hk_store_write_1d(s, s->d_pos, "writing position", r0, nr, H5T_NATIVE_INT64,
                               s->p_pos.v, rows);
    if (st == HK_OK)
        st = hk_store_write_1d(s, s->d_tok, "writing token_id", r0, nr, H5T_NATIVE_INT64,
                               s->p_tok.v, rows);
    if (st == HK_OK)
        st = hk_store_write_1d(s, s->d_slen, "writing seq_length", q0, ns, H5T_NATIVE_INT64,
                               s->p_slen.v, seqs);
    if (st == HK_OK)
        st = hk_store_write_1d(s, s->d_sfirst, "writing seq_first_row", q0, ns,
                               H5T_NATIVE_INT64, s->p_sfirst.v, seqs);
    if (st == HK_OK)
        st = hk_store_write_1d(s, s->d_sfpos, "writing seq_first_pos", q0, ns,
                               H5T_NATIVE_INT64, s->p_sfpos.v, seqs);
    if (st == HK_OK)
        st = hk_store_write_1d(s, s->d_snrows, "writing seq_n_rows", q0, ns, H5T_NATIVE_INT64,
                               s->p_snrows.v, seqs);
    if (st == HK_OK && s->d_scid >= 0)
        st = hk_store_write_1d(s, s->d_scid, "writing seq_corpus_id", q0, ns, H5T_NATIVE_INT64,
                               s->p_scid.v, seqs);
    if (st != HK_OK) {
        s->failed = true;
        return st;
    }
    if (s->fsync && s->fd >= 0 && fdatasync(s->fd) != 0) {
        s->failed = true;
        return hk_errorf(HK_ERR_IO, "%s: fdatasync: %s", s->path, strerror(errno));
    }
    st = s->tmp_path ? HK_ERR_UNSUPPORTED : flush_in_child(s);
    if (st != HK_OK && st != HK_ERR_UNSUPPORTED) {
        s->failed = true;
        return st;
    }
    /* In-process flush: the same state again (or the only flush of a file not yet renamed
     * into place, or when fork failed). */
    if (H5Fflush(s->file, H5F_SCOPE_LOCAL) < 0) {
        s->failed = true;
        return hk_store_h5_error(s, HK_ERR_IO, "commit (H5Fflush)");
    }
    struct stat sb;
    if (fd_of(s) == HK_OK && fstat(s->fd, &sb) == 0 && (uint64_t)sb.st_size < s->reserved_to)
        s->reserved_to = (uint64_t)sb.st_size;
    hk_i64_drop_front(&s->p_seq, nr);
    hk_i64_drop_front(&s->p_pos, nr);
    hk_i64_drop_front(&s->p_tok, nr);
    hk_i64_drop_front(&s->p_slen, ns);
    hk_i64_drop_front(&s->p_sfirst, ns);
    hk_i64_drop_front(&s->p_sfpos, ns);
    hk_i64_drop_front(&s->p_snrows, ns);
    if (s->d_scid >= 0) hk_i64_drop_front(&s->p_scid, ns);
    s->committed_rows = rows;
    s->committed_seqs = seqs;
    s->dirty = false;
    s->stats.commits++;
    s->stats.bytes_written += (uint64_t)nr * 20 + (uint64_t)ns * 32;
    s->last_commit = hk_store_now();
    s->stats.write_seconds += s->last_commit - t0;
    return HK_OK;
}

/* ---- the name of a new file ---- */

hk_status hk_store_create_tmp(hk_store *s) {
    char *copy = strdup(s->path), *copy2 = strdup(s->path);
    if (!copy || !copy2) {
        free(copy);
        free(copy2);
        return hk_errorf(HK_ERR_NOMEM, "out of memory");
    }
    const char *dir = dirname(copy), *base = basename(copy2);
    size_t len = strlen(dir) + strlen(base) + 48;
    s->tmp_path = malloc(len);
    if (s->tmp_path)
        snprintf(s->tmp_path, len, "%s/.%s.tmp-%ld", dir, base, (long)getpid());
    free(copy);
    free(copy2);
    if (!s->tmp_path) return hk_errorf(HK_ERR_NOMEM, "out of memory");
    /* created here first, so that a folder that does not take it is named with the reason */
    int fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        hk_status st = hk_errorf(HK_ERR_IO, "%s: cannot create the file (as %s): %s", s->path,
                                 s->tmp_path, strerror(errno));
        free(s->tmp_path);
        s->tmp_path = NULL;
        return st;
    }
    close(fd);
    hid_t fapl = hk_store_fapl();
    if (fapl < 0) return hk_store_h5_error(s, HK_ERR_INTERNAL, "cannot make the file access list");
    s->file = H5Fcreate(s->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (s->file < 0) {
        unlink(s->tmp_path);
        hk_status st = hk_store_h5_error(s, HK_ERR_IO, "cannot create the file");
        free(s->tmp_path);
        s->tmp_path = NULL;
        return st;
    }
    s->reserved_to = 0;
    return HK_OK;
}

hk_status hk_store_publish(hk_store *s, bool force) {
    int rc;
    if (force) {
        rc = rename(s->tmp_path, s->path);
    } else {
        rc = renameat2(AT_FDCWD, s->tmp_path, AT_FDCWD, s->path, RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* no RENAME_NOREPLACE here: link() fails on an existing name too */
            rc = link(s->tmp_path, s->path);
            if (rc == 0) unlink(s->tmp_path);
        }
    }
    if (rc != 0) {
        int e = errno;
        unlink(s->tmp_path);
        if (e == EEXIST)
            return hk_errorf(HK_ERR_IO, "%s: the file exists (it appeared while the store was "
                                        "being created); nothing was overwritten",
                             s->path);
        return hk_errorf(HK_ERR_IO, "%s: cannot move the new store into place: %s", s->path,
                         strerror(e));
    }
    free(s->tmp_path);
    s->tmp_path = NULL;
    return HK_OK;
}

/* The store's writer thread (hk_store_opts.overlap): a batch's rows are written to the file
 * by a second thread while the caller runs the next batch into the other one of each hook's
 * two staging buffers. One job at a time; the caller's thread makes no HDF5 call while a job
 * runs (it waits for the job before committing, appending, closing or writing again). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "store.h"

struct hk_store_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool has_job, busy, quit;
    hk_store *s;
    hk_store_job_part *parts; /* [n_parts] */
    size_t n_parts, cap_parts;
    uint64_t reserve;         /* bytes to reserve before writing */
    /* the finished job's outcome, read by hk_store_writer_wait */
    hk_status st;
    char msg[1024];
    uint64_t bytes;
    double seconds;
};

static void run_job(hk_store_writer *w) {
    hk_store *s = w->s;
    const double t0 = hk_store_now();
    const double d = s->writer_delay;
    if (d > 0) {
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
    hk_status st = hk_store_reserve(s, w->reserve);
    uint64_t bytes = 0;
    for (size_t i = 0; st == HK_OK && i < w->n_parts; i++) {
        const hk_store_job_part *p = &w->parts[i];
        st = hk_store_write_rows(s, p->h, p->row0, p->count, p->buf);
        if (st == HK_OK) bytes += hk_store_rows_bytes(s, p->h, p->count);
    }
    w->st = st;
    snprintf(w->msg, sizeof w->msg, "%s", st == HK_OK ? "" : hk_last_error());
    w->bytes = bytes;
    w->seconds = hk_store_now() - t0;
}

static void *writer_main(void *arg) {
    hk_store_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->has_job && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (!w->has_job && w->quit) break;
        pthread_mutex_unlock(&w->mu);
        run_job(w);
        pthread_mutex_lock(&w->mu);
        w->has_job = false;
        w->busy = false;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

hk_status hk_store_writer_start(hk_store *s) {
    hk_store_writer *w = calloc(1, sizeof *w);
    if (!w) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory for the writer thread", s->path);
    w->s = s;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    const int e = pthread_create(&w->thread, NULL, writer_main, w);
    if (e != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return hk_errorf(HK_ERR_INTERNAL, "%s: the writer thread did not start (%s)", s->path,
                         strerror(e));
    }
    s->writer = w;
    return HK_OK;
}

hk_status hk_store_writer_wait(hk_store *s) {
    hk_store_writer *w = s->writer;
    if (!w) return HK_OK;
    pthread_mutex_lock(&w->mu);
    while (w->has_job) pthread_cond_wait(&w->cv, &w->mu);
    const hk_status st = w->st;
    w->st = HK_OK;
    s->stats.bytes_written += w->bytes;
    s->stats.write_seconds += w->seconds;
    w->bytes = 0;
    w->seconds = 0;
    pthread_mutex_unlock(&w->mu);
    if (st != HK_OK) {
        s->failed = true;
        return hk_errorf(st, "%s", w->msg); /* the writer thread's message, on this thread */
    }
    return HK_OK;
}

hk_store_job_part *hk_store_writer_parts(hk_store *s, size_t n) {
    hk_store_writer *w = s->writer;
    if (n > w->cap_parts) {
        hk_store_job_part *p = realloc(w->parts, n * sizeof *p);
        if (!p) return NULL;
        w->parts = p;
        w->cap_parts = n;
    }
    return w->parts;
}

void hk_store_writer_submit(hk_store *s, size_t n_parts, uint64_t reserve) {
    hk_store_writer *w = s->writer;
    pthread_mutex_lock(&w->mu);
    w->n_parts = n_parts;
    w->reserve = reserve;
    w->has_job = true;
    w->busy = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void hk_store_writer_stop(hk_store *s) {
    hk_store_writer *w = s->writer;
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    while (w->has_job) pthread_cond_wait(&w->cv, &w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->parts);
    free(w);
    s->writer = NULL;
}

bool hk_store_writer_busy(hk_store *s) {
    hk_store_writer *w = s ? s->writer : NULL;
    if (!w) return false;
    pthread_mutex_lock(&w->mu);
    const bool b = w->busy;
    pthread_mutex_unlock(&w->mu);
    return b;
}

void hk_store_writer_test_delay(hk_store *s, double seconds) {
    if (s && !s->writer) s->writer_delay = seconds;
}

/* The fixture models of tests/fixtures (tests/meson.build sets $HK_FIXTURES) and the
 * environment meson test sets up. Every failure is a cmocka failure of the running test.
 *
 * fixtures.c (paths, environment, ids) needs only libc and cmocka; fixture_load.c (models,
 * checkpoints) needs libhookformer, linked or as objects, in the test executable. */
#ifndef HK_TESTS_SUPPORT_FIXTURES_H
#define HK_TESTS_SUPPORT_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "core/checkpoint.h"
#include "hookformer.h"

/* $name, or a failure "NAME is not set (run through meson test)". */
const char *require_env(const char *name);

/* $HK_FIXTURES, or "tests/fixtures" when it is not set. */
const char *fixtures_root(void);
/* out = "<fixtures_root()>/<name>" (a fixture folder, or "family/file"). */
void fixture_path(const char *name, char *out, size_t cap);

/* A malloc'd int32 copy of the n int64 values at data (a safetensors I64 tensor's, which
 * need not be aligned). */
int32_t *ids_from_i64(const void *data, int64_t n);

/* hk_model_load of fixture `name`; a failure "load DIR: hk_last_error()" otherwise. */
hk_model *fixture_model(const char *name);
/* Same, with the GGUF weights held as `weights` says (fixture_model: HK_WEIGHTS_BLOCKS, the
 * library's default). */
hk_model *fixture_model_weights(const char *name, hk_weights_mode weights);
/* hk_ckpt_open of <fixtures_root()>/<family>/<file>; a failure "PATH: hk_last_error()". */
hk_ckpt *fixture_ckpt(const char *family, const char *file);

#endif

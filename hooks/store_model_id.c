/* The content identity of a model for the store's `model_id` attribute: a 64-bit hash of the
 * canonical config (JSON) and of every checkpoint tensor's name, dtype, shape, byte length and
 * a sample of its bytes — all of them for tensors up to HK_ID_FULL bytes, else HK_ID_BLOCKS
 * blocks of HK_ID_BLOCK bytes spread evenly over the tensor, the first and last included.
 * An identical copy of the model anywhere (another folder, a symlink, a copied GGUF) gets the
 * same id; another model, a fine-tune of the same shape or a re-quantization gets another.
 * Reading the sample costs HK_ID_BLOCKS * HK_ID_BLOCK bytes per tensor, not the whole file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/model.h"
#include "store.h"

#define HK_ID_BLOCK 4096
#define HK_ID_BLOCKS 16
#define HK_ID_FULL (HK_ID_BLOCK * HK_ID_BLOCKS)

/* FNV-1a over bytes, 64-bit. */
static uint64_t mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t mix_u64(uint64_t h, uint64_t v) { return mix(h, &v, sizeof v); }

hk_status hk_store_model_id(const hk_model *m, const char *config_json, char **out) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = mix(h, config_json, strlen(config_json) + 1);
    const size_t nt = m->ckpt ? hk_ckpt_count(m->ckpt) : 0;
    h = mix_u64(h, nt);
    for (size_t i = 0; i < nt; i++) {
        const hk_st_tensor *t = hk_ckpt_at(m->ckpt, i);
        h = mix(h, t->name, strlen(t->name) + 1);
        h = mix_u64(h, (uint64_t)t->dtype);
        h = mix_u64(h, (uint64_t)t->ggml_type);
        h = mix_u64(h, (uint64_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) h = mix_u64(h, (uint64_t)t->shape[d]);
        h = mix_u64(h, (uint64_t)t->nbytes);
        if (!t->data) continue;
        if (t->nbytes <= HK_ID_FULL) {
            h = mix(h, t->data, t->nbytes);
            continue;
        }
        const size_t span = t->nbytes - HK_ID_BLOCK; /* block k starts at k * span / (B - 1) */
        for (size_t k = 0; k < HK_ID_BLOCKS; k++)
            h = mix(h, (const char *)t->data + k * span / (HK_ID_BLOCKS - 1), HK_ID_BLOCK);
    }
    *out = malloc(24);
    if (!*out) return hk_errorf(HK_ERR_NOMEM, "out of memory");
    snprintf(*out, 24, "hk1:%016llx", (unsigned long long)h);
    return HK_OK;
}

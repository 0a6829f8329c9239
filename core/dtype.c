/* dtype names, sizes, and f16/bf16 <-> f32 conversions (bit-exact, round to nearest even). */
#include "dtype.h"

#include <string.h>

/* Conversions of big tensors are spread over OpenMP threads (a 128k x 4096 bf16 embedding
 * is 0.5 G elements); small ones stay on the calling thread. */
#ifdef _OPENMP
#define HK_PAR_MIN ((size_t)1 << 20)
#define HK_OMP_FOR _Pragma("omp parallel for schedule(static) if (n >= HK_PAR_MIN)")
#else
#define HK_OMP_FOR
#endif

const char *hk_dtype_name(hk_dtype dt) {
    switch (dt) {
    case HK_DTYPE_F32: return "F32";
    case HK_DTYPE_F16: return "F16";
    case HK_DTYPE_BF16: return "BF16";
    case HK_DTYPE_I32: return "I32";
    case HK_DTYPE_I64: return "I64";
    case HK_DTYPE_U8: return "U8";
    }
    return "?";
}

size_t hk_dtype_size(hk_dtype dt) {
    switch (dt) {
    case HK_DTYPE_F32: return 4;
    case HK_DTYPE_F16: return 2;
    case HK_DTYPE_BF16: return 2;
    case HK_DTYPE_I32: return 4;
    case HK_DTYPE_I64: return 8;
    case HK_DTYPE_U8: return 1;
    }
    return 0;
}

bool hk_dtype_from_name(const char *name, hk_dtype *out) {
    static const hk_dtype all[] = {HK_DTYPE_F32, HK_DTYPE_F16, HK_DTYPE_BF16,
                                   HK_DTYPE_I32, HK_DTYPE_I64, HK_DTYPE_U8};
    if (!name) return false;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, hk_dtype_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    }
    return false;
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float hk_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in f32 */
        const float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t hk_f32_to_f16(float f) {
    const uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        /* inf stays inf; nan stays nan (quiet bit set, top payload bits kept) */
        if (ax == 0x7f800000u) return sign | 0x7c00u;
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {
        /* below 2^-14: f16 subnormal (or zero) = round(|f| / 2^-24) */
        if (ax <= 0x33000000u) return sign; /* <= 2^-25: ties to even -> 0 */
        const uint32_t e = ax >> 23;        /* 102..112 */
        const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e;    /* 14..24 */
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++; /* may become the min normal: fine */
        return (uint16_t)(sign | q);
    }
    uint32_t h = (((ax >> 23) - 112u) << 10) | ((ax >> 13) & 0x3ffu);
    const uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* carry into exponent is right */
    return (uint16_t)(sign | h);
}

float hk_bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

uint16_t hk_f32_to_bf16(float f) {
    const uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    const uint32_t lsb = (x >> 16) & 1u;
    return (uint16_t)((x + 0x7fffu + lsb) >> 16); /* overflow to inf is the correct rounding */
}

static void f16_to_f32_n(const unsigned char *src, float *dst, size_t n) {
    HK_OMP_FOR
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = hk_f16_to_f32(h);
    }
}

static void bf16_to_f32_n(const unsigned char *src, float *dst, size_t n) {
    HK_OMP_FOR
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = hk_bf16_to_f32(h);
    }
}

void hk_convert_to_f32(hk_dtype dt, const void *src, float *dst, size_t n) {
    const unsigned char *s = src;
    switch (dt) {
    case HK_DTYPE_F32:
        if (n) memcpy(dst, s, n * sizeof(float));
        return;
    case HK_DTYPE_F16: f16_to_f32_n(s, dst, n); return;
    case HK_DTYPE_BF16: bf16_to_f32_n(s, dst, n); return;
    case HK_DTYPE_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            dst[i] = (float)v;
        }
        return;
    case HK_DTYPE_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        return;
    case HK_DTYPE_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        return;
    }
}

static void f32_to_f16_n(const float *src, unsigned char *dst, size_t n) {
    HK_OMP_FOR
    for (size_t i = 0; i < n; i++) {
        const uint16_t h = hk_f32_to_f16(src[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
}

static void f32_to_bf16_n(const float *src, unsigned char *dst, size_t n) {
    HK_OMP_FOR
    for (size_t i = 0; i < n; i++) {
        const uint16_t h = hk_f32_to_bf16(src[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
}

bool hk_convert_from_f32(hk_dtype dt, const float *src, void *dst, size_t n) {
    switch (dt) {
    case HK_DTYPE_F32:
        if (n) memcpy(dst, src, n * sizeof(float));
        return true;
    case HK_DTYPE_F16: f32_to_f16_n(src, dst, n); return true;
    case HK_DTYPE_BF16: f32_to_bf16_n(src, dst, n); return true;
    default: return false;
    }
}

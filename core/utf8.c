/* UTF-8 decoding and repair. The repair follows the Unicode "maximal subpart" practice
 * (Unicode 15, section 3.9, U+FFFD substitution), which is what Python's errors="replace"
 * and Rust's from_utf8_lossy implement: a lead byte followed by valid continuation bytes
 * that stop short is one U+FFFD; a byte that can never start a sequence is one U+FFFD. */
#include "utf8.h"

#include <string.h>

/* How many bytes of s[0, n) form the maximal subpart starting at s[0] (>= 1), and whether
 * that subpart is a complete well-formed sequence. */
static size_t subpart(const unsigned char *s, size_t n, bool *complete) {
    const unsigned char c = s[0];
    *complete = false;
    if (c < 0x80) {
        *complete = true;
        return 1;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* valid range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 1; /* 80..C1, F5..FF never start a sequence */
    }
    size_t k = 1;
    while (k < need && k < n) {
        const unsigned char b = s[k];
        const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) break;
        k++;
    }
    *complete = k == need;
    return k;
}

size_t hk_utf8_valid_len(const unsigned char *s, size_t n) {
    if (!n) return 0;
    bool ok;
    const size_t k = subpart(s, n, &ok);
    return ok ? k : 0;
}

uint32_t hk_utf8_decode(const unsigned char *s, size_t *len) {
    const unsigned char c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c < 0xE0) {
        *len = 2;
        return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (c < 0xF0) {
        *len = 3;
        return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *len = 4;
    return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

size_t hk_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool hk_utf8_is_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        bool ok;
        const size_t k = subpart(u + i, n - i, &ok);
        if (!ok) return false;
        i += k;
    }
    return true;
}

size_t hk_utf8_repaired_len(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, out = 0;
    while (i < n) {
        bool ok;
        const size_t k = subpart(u + i, n - i, &ok);
        out += ok ? k : 3;
        i += k;
    }
    return out;
}

size_t hk_utf8_repair(const char *s, size_t n, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        bool ok;
        const size_t k = subpart(u + i, n - i, &ok);
        if (ok) {
            memcpy(out + o, s + i, k);
            o += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
        i += k;
    }
    return o;
}

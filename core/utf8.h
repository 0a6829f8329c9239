/* UTF-8 helpers for the tokenizer: decoding one code point, encoding, and repairing invalid
 * input the way Python's bytes.decode("utf-8", errors="replace") (and Rust's
 * String::from_utf8_lossy) do: each maximal ill-formed subpart becomes one U+FFFD. */
#ifndef HK_CORE_UTF8_H
#define HK_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed sequence at s[0, n), or 0 when it is ill-formed/truncated. */
size_t hk_utf8_valid_len(const unsigned char *s, size_t n);
/* Decode one code point of valid UTF-8 at s (the caller knows it is valid); *len gets its
 * byte length. */
uint32_t hk_utf8_decode(const unsigned char *s, size_t *len);
/* Encode cp (<= 0x10FFFF, not a surrogate) into out (4 bytes room); returns its length. */
size_t hk_utf8_encode(uint32_t cp, char *out);
/* True when s[0, n) is well-formed UTF-8. */
bool hk_utf8_is_valid(const char *s, size_t n);
/* Bytes needed by hk_utf8_repair for s[0, n). */
size_t hk_utf8_repaired_len(const char *s, size_t n);
/* Write s[0, n) with every maximal ill-formed subpart replaced by U+FFFD into out
 * (hk_utf8_repaired_len bytes); returns the length written. */
size_t hk_utf8_repair(const char *s, size_t n, char *out);

#endif

/* Thread-local last-error message behind hk_last_error(). */
#ifndef HK_CORE_ERROR_H
#define HK_CORE_ERROR_H

#include "hookformer.h"

/* Set the last error to a printf-formatted message and return s, so callers write
 *   return hk_errorf(HK_ERR_FORMAT, "%s: tensor '%s': ...", path, name); */
hk_status hk_errorf(hk_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prefix the current message with "context: " (e.g. the file being loaded) and return s. */
hk_status hk_error_prefix(hk_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

void hk_error_clear(void);

#endif

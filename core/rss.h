/* The process's resident set size, for the memory estimate (core/estimate.c): hk_model_load
 * records it before and after loading. */
#ifndef HK_CORE_RSS_H
#define HK_CORE_RSS_H

#include <stddef.h>

/* Resident bytes of this process now (/proc/self/statm: resident pages x page size); 0 where
 * that cannot be read (not Linux, no /proc). */
size_t hk_rss_now(void);

#endif

/* Closes the region opened by target_avx2_begin.h. */
#undef HK_VL
#undef HK_VFMA
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

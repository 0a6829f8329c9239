/* Fixed-width table cells for terminal output that never cut a UTF-8 character: printf's
 * "%7.7s" counts bytes, so a multi-byte token label (" é", "→") was cut mid-character and
 * its column came out short. */
#ifndef HK_TOOLS_TEXT_CELL_H
#define HK_TOOLS_TEXT_CELL_H

#include <stddef.h>
#include <stdio.h>

/* Bytes of the longest prefix of s holding at most `width` characters (code points), cut on
 * a character boundary; *chars gets the characters it holds. */
size_t text_cell_prefix(const char *s, int width, int *chars);
/* " " then s right-aligned in `width` characters, truncated to `width` characters. */
void text_cell_print(FILE *f, const char *s, int width);

#endif

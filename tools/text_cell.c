#include "text_cell.h"

/* A continuation byte 10xxxxxx belongs to the character before it. */
static int is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t text_cell_prefix(const char *s, int width, int *chars) {
    size_t i = 0;
    int n = 0;
    while (s[i] && n < width) {
        i++;
        while (s[i] && is_continuation((unsigned char)s[i])) i++;
        n++;
    }
    if (chars) *chars = n;
    return i;
}

void text_cell_print(FILE *f, const char *s, int width) {
    int chars = 0;
    const size_t bytes = text_cell_prefix(s, width, &chars);
    fprintf(f, " %*s%.*s", width - chars, "", (int)bytes, s);
}

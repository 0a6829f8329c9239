/* tools/text_cell.c: table cells cut on character boundaries and padded by characters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text_cell.h"

static char *cell(const char *s, int width) {
    static char buf[128];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    text_cell_print(f, s, width);
    fclose(f);
    return buf;
}

static void test_ascii(void **state) {
    (void)state;
    assert_string_equal(cell("ab", 4), "   ab");
    assert_string_equal(cell("abcdefgh", 4), " abcd");
    assert_string_equal(cell("", 3), "    ");
}

static void test_multibyte_not_cut(void **state) {
    (void)state;
    /* " café" is 5 characters in 6 bytes: padded to 7 characters, not 7 bytes */
    assert_string_equal(cell(" caf\xc3\xa9", 7), "    caf\xc3\xa9");
    /* 8 arrows (3 bytes each) cut after 7 whole characters, never mid-character */
    const char *arrows = "\xe2\x86\x92\xe2\x86\x92\xe2\x86\x92\xe2\x86\x92\xe2\x86\x92\xe2\x86\x92"
                         "\xe2\x86\x92\xe2\x86\x92";
    int chars = 0;
    assert_int_equal(text_cell_prefix(arrows, 7, &chars), 21);
    assert_int_equal(chars, 7);
    assert_int_equal(strlen(cell(arrows, 7)), 22);
    /* a 4-byte character at the cut stays whole */
    assert_int_equal(text_cell_prefix("abcdef\xf0\x9f\x98\x80z", 7, &chars), 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_multibyte_not_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

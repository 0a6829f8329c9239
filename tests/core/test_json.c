/* JSON helpers: parse errors carry file + line/offset; field errors carry file + key + types. */
#include "test_util.h"

#include "core/json.h"

static cJSON *parse(const char *text) {
    cJSON *j = NULL;
    EXPECT_OK(hk_json_parse("cfg.json", text, strlen(text), &j));
    return j;
}

static void test_parse_errors(void **state) {
    (void)state;
    cJSON *j = (cJSON *)1;
    const char *bad = "{\n  \"a\": 1,\n  \"b\": }\n";
    expect_error(hk_json_parse("cfg.json", bad, strlen(bad), &j), HK_ERR_FORMAT, "cfg.json",
                 "line 3", "byte offset 19");
    assert_null(j);
    expect_error(hk_json_parse("cfg.json", "", 0, &j), HK_ERR_FORMAT, "cfg.json", "empty", NULL);
    expect_error(hk_json_parse("cfg.json", " \n ", 3, &j), HK_ERR_FORMAT, "empty", NULL, NULL);
    expect_error(hk_json_parse("cfg.json", "{} x", 4, &j), HK_ERR_FORMAT, "cfg.json",
                 "after the value", "byte offset 3");
    expect_error(hk_json_parse("cfg.json", "{\"a\": [1, 2", 11, &j), HK_ERR_FORMAT, "cfg.json",
                 "line 1", NULL);
    /* the message shows the text before the error and from it on (newlines as \n) */
    expect_error(hk_json_parse("cfg.json", bad, strlen(bad), &j), HK_ERR_FORMAT,
                 "after '{\\n  \"a\": 1,\\n  \"b\": ' at '}\\n'", NULL, NULL);
    const char *three = "{\"a\": 1, \"b\": [1 2]}";
    expect_error(hk_json_parse("cfg.json", three, strlen(three), &j), HK_ERR_FORMAT,
                 "line 1, column 18 (byte offset 17), after '{\"a\": 1, \"b\": [1 ' at '2]}'",
                 NULL, NULL);
    /* a file cut short (a newline after the last byte) is said to be, with what came last */
    const char *cut = "{\"a\": 1,\n \"b\": [1, 2,\n";
    expect_error(hk_json_parse("cfg.json", cut, strlen(cut), &j), HK_ERR_FORMAT,
                 "at the end of the input (after '{\"a\": 1,\\n \"b\": [1, 2,'): the text is "
                 "cut short", "line 2", NULL);
    assert_null(strstr(hk_last_error(), "''"));
    /* long text: 24 bytes before, 16 from the error on */
    const char *lng = "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": 1 \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\": 2}";
    expect_error(hk_json_parse("cfg.json", lng, strlen(lng), &j), HK_ERR_FORMAT,
                 "after 'aaaaaaaaaaaaaaaaaaa\": 1 ' at '\"bbbbbbbbbbbbbbb'", NULL, NULL);
    /* the length bounds the text even without a NUL */
    const char buf[4] = {'{', '}', '}', '}'};
    expect_error(hk_json_parse("cfg.json", buf, 3, &j), HK_ERR_FORMAT, "after the value", NULL,
                 NULL);
    EXPECT_OK(hk_json_parse("cfg.json", buf, 2, &j));
    cJSON_Delete(j);
    /* trailing whitespace and a terminating NUL are fine */
    EXPECT_OK(hk_json_parse("cfg.json", "[1] \n", 6, &j));
    assert_true(cJSON_IsArray(j));
    cJSON_Delete(j);
}

static void test_load_file(void **state) {
    (void)state;
    char dir[256], path[300];
    make_tmpdir(dir, sizeof dir);
    cJSON *j = NULL;
    snprintf(path, sizeof path, "%s/missing.json", dir);
    expect_error(hk_json_load_file(path, &j), HK_ERR_NOT_FOUND, "missing.json", NULL, NULL);
    snprintf(path, sizeof path, "%s/bad.json", dir);
    write_text(path, "{\"x\": 1\n\"y\": 2}");
    expect_error(hk_json_load_file(path, &j), HK_ERR_FORMAT, "bad.json", "line 2", NULL);
    snprintf(path, sizeof path, "%s/good.json", dir);
    write_text(path, "{\"x\": 1}");
    EXPECT_OK(hk_json_load_file(path, &j));
    int64_t x = 0;
    EXPECT_OK(hk_json_int(j, "x", path, &x));
    assert_int_equal(x, 1);
    cJSON_Delete(j);
    expect_error(hk_json_load_file(dir, &j), HK_ERR_IO, dir, NULL, NULL); /* a folder */
    remove_tree(dir);
}

static void test_int(void **state) {
    (void)state;
    cJSON *j = parse("{\"n\": 12, \"neg\": -3, \"f\": 3.5, \"s\": \"12\", \"big\": 1e300,"
                     " \"b\": true, \"nul\": null, \"e\": 4.0}");
    int64_t v = 0;
    EXPECT_OK(hk_json_int(j, "n", "cfg.json", &v));
    assert_int_equal(v, 12);
    EXPECT_OK(hk_json_int(j, "neg", "cfg.json", &v));
    assert_int_equal(v, -3);
    EXPECT_OK(hk_json_int(j, "e", "cfg.json", &v)); /* 4.0 is integral */
    assert_int_equal(v, 4);
    expect_error(hk_json_int(j, "missing", "cfg.json", &v), HK_ERR_NOT_FOUND,
                 "cfg.json: field 'missing' is missing (expected an integer)", NULL, NULL);
    expect_error(hk_json_int(j, "f", "cfg.json", &v), HK_ERR_FORMAT, "cfg.json", "'f'", "3.5");
    expect_error(hk_json_int(j, "s", "cfg.json", &v), HK_ERR_FORMAT, "'s'", "an integer",
                 "a string (\"12\")");
    expect_error(hk_json_int(j, "big", "cfg.json", &v), HK_ERR_FORMAT, "'big'", NULL, NULL);
    expect_error(hk_json_int(j, "b", "cfg.json", &v), HK_ERR_FORMAT, "'b'", "boolean", NULL);
    expect_error(hk_json_int(j, "nul", "cfg.json", &v), HK_ERR_FORMAT, "'nul'", "null", NULL);

    EXPECT_OK(hk_json_int_opt(j, "missing", "cfg.json", 7, &v));
    assert_int_equal(v, 7);
    EXPECT_OK(hk_json_int_opt(j, "nul", "cfg.json", 8, &v)); /* null -> default */
    assert_int_equal(v, 8);
    EXPECT_OK(hk_json_int_opt(j, "n", "cfg.json", 8, &v));
    assert_int_equal(v, 12);
    expect_error(hk_json_int_opt(j, "f", "cfg.json", 0, &v), HK_ERR_FORMAT, "'f'", "3.5", NULL);

    cJSON *arr = parse("[1, 2]");
    expect_error(hk_json_int(arr, "n", "cfg.json", &v), HK_ERR_FORMAT, "cfg.json", "object",
                 NULL);
    cJSON_Delete(arr);
    cJSON_Delete(j);
}

static void test_num_str_bool(void **state) {
    (void)state;
    cJSON *j = parse("{\"eps\": 1e-5, \"inf\": 1e999, \"s\": \"silu\", \"long\": \"abcdefgh\","
                     " \"t\": true, \"one\": 1, \"nul\": null}");
    double d = 0;
    EXPECT_OK(hk_json_num(j, "eps", "c.json", &d));
    assert_true(d == 1e-5);
    EXPECT_OK(hk_json_num(j, "one", "c.json", &d));
    assert_true(d == 1.0);
    expect_error(hk_json_num(j, "s", "c.json", &d), HK_ERR_FORMAT, "'s'", "a number", "string");
    expect_error(hk_json_num(j, "inf", "c.json", &d), HK_ERR_FORMAT, "'inf'", "finite", NULL);
    expect_error(hk_json_num(j, "none", "c.json", &d), HK_ERR_NOT_FOUND, "'none'", "a number",
                 NULL);
    EXPECT_OK(hk_json_num_opt(j, "nul", "c.json", 2.5, &d));
    assert_true(d == 2.5);

    char buf[8];
    EXPECT_OK(hk_json_str(j, "s", "c.json", buf, sizeof buf));
    assert_string_equal(buf, "silu");
    expect_error(hk_json_str(j, "long", "c.json", buf, sizeof buf), HK_ERR_FORMAT, "'long'",
                 "too long", NULL);
    expect_error(hk_json_str(j, "one", "c.json", buf, sizeof buf), HK_ERR_FORMAT, "'one'",
                 "a string", "a number (1)");
    expect_error(hk_json_str(j, "none", "c.json", buf, sizeof buf), HK_ERR_NOT_FOUND, "'none'",
                 "expected a string", NULL);
    EXPECT_OK(hk_json_str_opt(j, "none", "c.json", "gelu", buf, sizeof buf));
    assert_string_equal(buf, "gelu");
    EXPECT_OK(hk_json_str_opt(j, "none", "c.json", NULL, buf, sizeof buf));
    assert_string_equal(buf, "");
    EXPECT_OK(hk_json_str_opt(j, "s", "c.json", "gelu", buf, sizeof buf));
    assert_string_equal(buf, "silu");

    bool b = false;
    EXPECT_OK(hk_json_bool_opt(j, "t", "c.json", false, &b));
    assert_true(b);
    EXPECT_OK(hk_json_bool_opt(j, "none", "c.json", true, &b));
    assert_true(b);
    EXPECT_OK(hk_json_bool_opt(j, "nul", "c.json", false, &b));
    assert_false(b);
    expect_error(hk_json_bool_opt(j, "one", "c.json", false, &b), HK_ERR_FORMAT, "'one'",
                 "boolean", NULL);
    cJSON_Delete(j);
}

static void test_arrays(void **state) {
    (void)state;
    cJSON *j = parse("{\"shape\": [2, 3], \"bad\": [1, \"x\"], \"f\": [0.5, 2], \"n\": 3}");
    int64_t v[2];
    double d[4];
    size_t n = 0;
    EXPECT_OK(hk_json_int_array(j, "shape", "m.json", v, 2, &n));
    assert_int_equal(n, 2);
    assert_true(v[0] == 2 && v[1] == 3);
    expect_error(hk_json_int_array(j, "shape", "m.json", v, 1, &n), HK_ERR_FORMAT, "'shape'",
                 "2 entries", NULL);
    expect_error(hk_json_int_array(j, "bad", "m.json", v, 2, &n), HK_ERR_FORMAT, "'bad'",
                 "element 1", "string");
    expect_error(hk_json_int_array(j, "n", "m.json", v, 2, &n), HK_ERR_FORMAT, "'n'",
                 "array of integers", NULL);
    expect_error(hk_json_int_array(j, "f", "m.json", v, 2, &n), HK_ERR_FORMAT, "element 0",
                 "0.5", NULL);
    expect_error(hk_json_int_array(j, "none", "m.json", v, 2, &n), HK_ERR_NOT_FOUND, "'none'",
                 NULL, NULL);
    EXPECT_OK(hk_json_num_array(j, "f", "m.json", d, 4, &n));
    assert_int_equal(n, 2);
    assert_true(d[0] == 0.5 && d[1] == 2.0);
    cJSON_Delete(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_int),          cmocka_unit_test(test_num_str_bool),
        cmocka_unit_test(test_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

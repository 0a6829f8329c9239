/* hk_sweep_by_name: the named sweeps the CLI and the Python package share (one table, in the
 * library): each name gives its point and split, an unknown one is HK_ERR_NOT_FOUND naming it
 * and listing the known ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "hookformer.h"
#include "test_util.h"

static void test_known(void **s) {
    (void)s;
    static const struct {
        const char *name, *point;
        bool per_pos, per_head;
    } want[] = {
        {"resid_pre", "hook_resid_pre", true, false},  {"mlp_out", "hook_mlp_out", true, false},
        {"head_out", "attn.hook_z", false, true},      {"head_v", "attn.hook_v", false, true},
        {"head_q_by_pos", "attn.hook_q", true, true},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        hk_sweep_spec sp = {.point = NULL, .layer = 7};
        EXPECT_OK(hk_sweep_by_name(want[i].name, &sp));
        assert_string_equal(sp.point, want[i].point);
        assert_int_equal(sp.per_position, want[i].per_pos);
        assert_int_equal(sp.per_head, want[i].per_head);
        assert_int_equal(sp.layer, -1);
        assert_non_null(strstr(hk_sweep_names(), want[i].name));
    }
}

static void test_unknown(void **s) {
    (void)s;
    hk_sweep_spec sp;
    expect_error(hk_sweep_by_name("resid_pots", &sp), HK_ERR_NOT_FOUND, "'resid_pots'",
                 "head_v_by_pos", NULL);
    expect_error(hk_sweep_by_name(NULL, &sp), HK_ERR_INVALID_ARG, "NULL", NULL, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_known), cmocka_unit_test(test_unknown)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <criterion/criterion.h>

#include "drain/capacity.h"

#include <string.h>

#define GI (1LL << 30)

Test(capacity, everything_fits_spread_over_the_targets)
{
    const drain_target_t t[] = {{"a", 16 * GI, 10 * GI}, {"b", 16 * GI, 4 * GI}};
    const int64_t need[] = {4 * GI, 4 * GI, 4 * GI, 2 * GI};
    drain_capacity_t c;
    char text[256];

    cr_assert_eq(drain_capacity_check(t, 2, need, 4, &c), 0);
    cr_expect(drain_capacity_fits(&c));
    cr_expect_eq(c.vmis, 4);
    cr_expect_eq(c.needed, 14 * GI);
    cr_expect_eq(c.free, 18 * GI);
    cr_expect_eq(c.targets, 2);
    cr_expect_str_eq(drain_capacity_text(&c, text, sizeof(text)),
                     "4 VMI(s) needing 14.0 GiB fit in 18.0 GiB free on 2 schedulable node(s)");
}

Test(capacity, the_sum_fits_but_a_large_vmi_does_not)
{
    /* 12 GiB free in all, but no node has 8 */
    const drain_target_t t[] = {{"a", 16 * GI, 10 * GI}, {"b", 16 * GI, 10 * GI}};
    const int64_t need[] = {1 * GI, 8 * GI};
    drain_capacity_t c;
    char text[256];

    cr_assert_eq(drain_capacity_check(t, 2, need, 2, &c), 0);
    cr_expect_not(drain_capacity_fits(&c));
    cr_expect_eq(c.unplaced, 1);
    cr_expect_eq(c.shortfall, 8 * GI);
    cr_expect_eq(c.largest_unplaced, 8 * GI);
    cr_expect_str_eq(drain_capacity_text(&c, text, sizeof(text)),
                     "1 of 2 VMI(s) (8.0 GiB) do not fit: 12.0 GiB free on 2 schedulable "
                     "node(s), the largest of them needs 8.0 GiB");
}

Test(capacity, overcommitted_targets_and_no_targets)
{
    /* requests above allocatable leave no room, not negative room */
    const drain_target_t t[] = {{"a", 4 * GI, 6 * GI}};
    const int64_t need[] = {GI, GI};
    drain_capacity_t c;

    cr_assert_eq(drain_capacity_check(t, 1, need, 2, &c), 0);
    cr_expect_eq(c.free, 0);
    cr_expect_eq(c.unplaced, 2);
    cr_assert_eq(drain_capacity_check(NULL, 0, need, 2, &c), 0);
    cr_expect_eq(c.targets, 0);
    cr_expect_eq(c.shortfall, 2 * GI);
    cr_assert_eq(drain_capacity_check(t, 1, NULL, 0, &c), 0);
    cr_expect(drain_capacity_fits(&c), "nothing to move always fits");
}

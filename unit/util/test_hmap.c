#include <criterion/criterion.h>

#include "util/hmap.h"

#include <stdint.h>
#include <stdio.h>

Test(hmap, put_get_replace_delete)
{
    hmap_t m;
    int a = 1, b = 2;
    void *old = &a;
    hmap_init(&m);
    cr_expect_null(hmap_get(&m, "x"));
    cr_expect_null(hmap_del(&m, "x"));
    cr_assert_eq(hmap_put(&m, "ns/vm-1", &a, &old), 0);
    cr_expect_null(old);
    cr_expect_eq(hmap_get(&m, "ns/vm-1"), &a);
    cr_assert_eq(hmap_put(&m, "ns/vm-1", &b, &old), 0);
    cr_expect_eq(old, &a);
    cr_expect_eq(hmap_get(&m, "ns/vm-1"), &b);
    cr_expect_eq(m.len, 1);
    cr_expect_eq(hmap_del(&m, "ns/vm-1"), &b);
    cr_expect_eq(m.len, 0);
    cr_expect_null(hmap_get(&m, "ns/vm-1"));
    hmap_free(&m);
}

Test(hmap, many_keys_survive_growth_and_iteration_sees_each_once)
{
    hmap_t m;
    char key[32];
    hmap_init(&m);
    for (intptr_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%ld", (long)i);
        cr_assert_eq(hmap_put(&m, key, (void *)(i + 1), NULL), 0);
    }
    cr_expect_eq(m.len, 5000);
    for (intptr_t i = 0; i < 5000; i += 7) {
        snprintf(key, sizeof(key), "key-%ld", (long)i);
        cr_expect_eq((intptr_t)hmap_get(&m, key), i + 1, "lost %s", key);
    }
    static unsigned char seen[5000];
    size_t n = 0;
    for (hmap_entry_t *e = hmap_first(&m); e; e = hmap_next(&m, e)) {
        intptr_t v = (intptr_t)e->value - 1;
        cr_assert(v >= 0 && v < 5000);
        cr_expect_eq(seen[v], 0, "value %ld seen twice", (long)v);
        seen[v] = 1;
        n++;
    }
    cr_expect_eq(n, 5000);
    /* deleting the current entry while walking is allowed */
    for (hmap_entry_t *e = hmap_first(&m), *next; e; e = next) {
        next = hmap_next(&m, e);
        if ((intptr_t)e->value % 2 == 0)
            hmap_del(&m, e->key);
    }
    cr_expect_eq(m.len, 2500);
    hmap_free(&m);
}

/*
 * jsontree — yajl's tree parser behind the checks that make it safe on
 * text from outside: no NUL byte, no comment (yajl's tree parser would
 * take one), nesting bounded before the tree is built (yajl frees its
 * tree recursively), and its error cut to one line. Plus the two lookups
 * every reader of such a tree needs.
 *
 * Owns nothing; calls yajl's tree API and util/strutil.
 */
#ifndef VMDRAIN_UTIL_JSONTREE_H
#define VMDRAIN_UTIL_JSONTREE_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

/* Parses len bytes of JSON into a tree (free it with yajl_tree_free()), or
 * returns NULL with err naming what ("body") and the problem:
 * "WHAT: empty", "WHAT: contains a NUL byte", "WHAT: JSON nested deeper
 * than N levels", "WHAT: invalid JSON: comments are not allowed", "WHAT:
 * invalid JSON: <yajl's first line>", "WHAT: out of memory". The caller
 * caps len. */
yajl_val util_json_tree_parse(const char *s, size_t len, int max_depth, const char *what, char *err,
                              size_t errlen);

/* The (first) member key of object obj; NULL when obj is not an object or
 * the member is absent or JSON null. */
yajl_val util_json_member(yajl_val obj, const char *key);

/* "a string", "a number", "an object", "an array", "a boolean", "null". */
const char *util_json_type_name(yajl_val v);

#endif

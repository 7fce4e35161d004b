/*
 * jsontree — see jsontree.h. Calls yajl and util/strutil; called by
 * web/admission and the kubectl plugin's NodeDrain reader.
 */
#include "util/jsontree.h"
#include "util/strutil.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Checks the nesting of a JSON text before yajl builds a tree of it.
 * Strings are skipped; '/' outside a string (a comment) is refused, so the
 * scan and yajl always agree on the structure. Returns 0 or -1 with err
 * set. */
static int scan_depth(const char *s, size_t len, int max_depth, const char *what, char *err,
                      size_t errlen)
{
    int depth = 0;
    bool in_str = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) {
                util_set_err(err, errlen, "%s: JSON nested deeper than %d levels", what, max_depth);
                return -1;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == '/') {
            util_set_err(err, errlen, "%s: invalid JSON: comments are not allowed", what);
            return -1;
        }
    }
    return 0;
}

yajl_val util_json_tree_parse(const char *s, size_t len, int max_depth, const char *what, char *err,
                              size_t errlen)
{
    char yerr[256] = "";

    if (len == 0 || memchr(s, '\0', len)) {
        util_set_err(err, errlen, len ? "%s: contains a NUL byte" : "%s: empty", what);
        return NULL;
    }
    if (scan_depth(s, len, max_depth, what, err, errlen) < 0)
        return NULL;
    char *text = malloc(len + 1);
    if (!text) {
        util_set_err(err, errlen, "%s: out of memory", what);
        return NULL;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    yajl_val top = yajl_tree_parse(text, yerr, sizeof(yerr));
    free(text);
    if (!top) {
        yerr[strcspn(yerr, "\n")] = '\0'; /* yajl's message spans lines */
        util_set_err(err, errlen, "%s: invalid JSON: %s", what, yerr[0] ? yerr : "parse error");
    }
    return top;
}

yajl_val util_json_member(yajl_val obj, const char *key)
{
    if (!YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            yajl_val v = obj->u.object.values[i];
            return YAJL_IS_NULL(v) ? NULL : v;
        }
    }
    return NULL;
}

const char *util_json_type_name(yajl_val v)
{
    if (YAJL_IS_STRING(v))
        return "a string";
    if (YAJL_IS_NUMBER(v))
        return "a number";
    if (YAJL_IS_OBJECT(v))
        return "an object";
    if (YAJL_IS_ARRAY(v))
        return "an array";
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
        return "a boolean";
    return "null";
}

/*
 * httpstatus — the reason phrases of the HTTP status codes vmdrain sends
 * (web/server) or names in messages about the kube-apiserver's answers
 * (kube/http). One table for both.
 *
 * Owns a constant table; calls nothing.
 */
#ifndef VMDRAIN_UTIL_HTTPSTATUS_H
#define VMDRAIN_UTIL_HTTPSTATUS_H

/* The reason phrase of status ("Not Found" for 404), or NULL when the table
 * does not know it. */
const char *util_http_phrase(long status);

#endif

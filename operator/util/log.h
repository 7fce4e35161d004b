/*
 * log — structured log lines: logfmt ("key=value") or JSON, one per line.
 *
 * Every line carries a timestamp, a level and a message, then key/value
 * pairs. Secrets never reach the output: values of keys that name a secret
 * (token, password, authorization, ...) are redacted, "Bearer ..." values
 * are cut, and strings registered with log_add_secret() are masked wherever
 * they appear.
 */
#ifndef VMDRAIN_UTIL_LOG_H
#define VMDRAIN_UTIL_LOG_H

#include <stdbool.h>
#include <stdio.h>

typedef enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
} log_level_t;

typedef enum log_format {
    LOG_FORMAT_TEXT, /* logfmt */
    LOG_FORMAT_JSON, /* one JSON object per line */
} log_format_t;

/* A single line is cut at this many bytes. */
#define LOG_LINE_MAX 16384

/* Parses "debug", "info", "warn" or "error". Returns 0 or -1. */
int log_parse_level(const char *s, log_level_t *out);

/* Parses "text" or "json". Returns 0 or -1. */
int log_parse_format(const char *s, log_format_t *out);

/* Sets the threshold, the format and the stream (stderr when NULL). */
void log_setup(log_level_t level, log_format_t format, FILE *out);

bool log_enabled(log_level_t level);

/* Registers a secret to be masked wherever it appears in a line (a token
 * read from a file, say). Short strings are ignored: masking them would
 * garble ordinary text. The string is copied. */
void log_add_secret(const char *secret);

/* Forgets every registered secret (tests, shutdown). */
void log_clear_secrets(void);

/* Writes one line: msg, then pairs of const char * key and value, ended by
 * NULL. A NULL value is written as an empty string. */
void log_kv(log_level_t level, const char *msg, ...);

#define log_debug(...) log_kv(LOG_LEVEL_DEBUG, __VA_ARGS__, (const char *)NULL)
#define log_info(...)  log_kv(LOG_LEVEL_INFO, __VA_ARGS__, (const char *)NULL)
#define log_warn(...)  log_kv(LOG_LEVEL_WARN, __VA_ARGS__, (const char *)NULL)
#define log_error(...) log_kv(LOG_LEVEL_ERROR, __VA_ARGS__, (const char *)NULL)

#endif

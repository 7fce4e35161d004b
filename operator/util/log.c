/*
 * log — see log.h. Owns the log sink and the secrets to mask; calls
 * util/buf and util/timefmt.
 */
#include "util/log.h"
#include "util/buf.h"
#include "util/timefmt.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOG_MAX_SECRETS    16
#define LOG_VALUE_MAX      2048 /* input bytes of one value written */
#define LOG_SECRET_MIN_LEN 8

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static struct {
    log_level_t level;
    log_format_t format;
    FILE *out;
    char *secrets[LOG_MAX_SECRETS];
    int nsecrets;
} logger = {LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL, {0}, 0};

int log_parse_level(const char *s, log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcasecmp(s, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int log_parse_format(const char *s, log_format_t *out)
{
    if (s && strcmp(s, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (s && strcmp(s, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

void log_setup(log_level_t level, log_format_t format, FILE *out)
{
    logger.level = level;
    logger.format = format;
    logger.out = out;
}

bool log_enabled(log_level_t level)
{
    return level >= logger.level;
}

void log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < LOG_SECRET_MIN_LEN)
        return;
    for (int i = 0; i < logger.nsecrets; i++)
        if (strcmp(logger.secrets[i], secret) == 0)
            return;
    if (logger.nsecrets == LOG_MAX_SECRETS) {
        free(logger.secrets[0]);
        memmove(logger.secrets, logger.secrets + 1, sizeof(char *) * (LOG_MAX_SECRETS - 1));
        logger.nsecrets--;
    }
    char *copy = strdup(secret);
    if (copy)
        logger.secrets[logger.nsecrets++] = copy;
}

void log_clear_secrets(void)
{
    for (int i = 0; i < logger.nsecrets; i++)
        free(logger.secrets[i]);
    logger.nsecrets = 0;
}

/* True for keys whose values are credentials. */
static bool key_is_secret(const char *key)
{
    static const char *const words[] = {"token",    "password", "secret",    "authorization",
                                        "key-data", "private",  "credential"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(key, words[i]))
            return true;
    return false;
}

/* Length of a registered secret that starts at s, or 0. */
static size_t secret_at(const char *s)
{
    for (int i = 0; i < logger.nsecrets; i++) {
        size_t n = strlen(logger.secrets[i]);
        if (strncmp(s, logger.secrets[i], n) == 0)
            return n;
    }
    return 0;
}

static bool needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (; *s; s++)
        if (*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' || (unsigned char)*s >= 0x7f)
            return true;
    return false;
}

/* Appends s escaped for a JSON string or a quoted logfmt value (the same
 * escapes serve both), masking registered secrets. */
static void put_escaped(buf_t *b, const char *s)
{
    const char *start = s;
    while (*s) {
        if (s - start >= LOG_VALUE_MAX) {
            buf_puts(b, "...");
            break;
        }
        size_t n = secret_at(s);
        if (n) {
            buf_puts(b, "[REDACTED]");
            s += n;
            continue;
        }
        unsigned char c = (unsigned char)*s++;
        switch (c) {
        case '"':
            buf_puts(b, "\\\"");
            break;
        case '\\':
            buf_puts(b, "\\\\");
            break;
        case '\n':
            buf_puts(b, "\\n");
            break;
        case '\r':
            buf_puts(b, "\\r");
            break;
        case '\t':
            buf_puts(b, "\\t");
            break;
        default:
            if (c < 0x20)
                buf_printf(b, "\\u%04x", c);
            else
                buf_append(b, &c, 1);
        }
    }
}

static void put_value(buf_t *b, const char *v, bool quote)
{
    if (quote)
        buf_puts(b, "\"");
    put_escaped(b, v);
    if (quote)
        buf_puts(b, "\"");
}

/* Writes one key/value pair in the configured format. */
static void put_pair(buf_t *b, const char *key, const char *value)
{
    if (!value)
        value = "";
    if (key_is_secret(key))
        value = "[REDACTED]";
    else if (strncasecmp(value, "Bearer ", 7) == 0)
        value = "Bearer [REDACTED]";
    if (logger.format == LOG_FORMAT_JSON) {
        buf_puts(b, ",\"");
        put_escaped(b, key);
        buf_puts(b, "\":");
        put_value(b, value, true);
    } else {
        buf_printf(b, " %s=", key);
        put_value(b, value, needs_quotes(value) || secret_at(value));
    }
}

void log_kv(log_level_t level, const char *msg, ...)
{
    char ts[TIME_RFC3339_MAX];
    struct timespec now;
    buf_t b;
    va_list ap;

    if (!log_enabled(level))
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    time_format_rfc3339((vd_time_t){now.tv_sec, (int32_t)now.tv_nsec}, 3, ts, sizeof(ts));
    /* the cap leaves room for the closing brace and the newline */
    buf_init(&b, LOG_LINE_MAX - 2);
    if (logger.format == LOG_FORMAT_JSON)
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
    else
        buf_printf(&b, "ts=%s level=%s", ts, level_names[level]);
    put_pair(&b, "msg", msg);
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        put_pair(&b, key, va_arg(ap, const char *));
    }
    va_end(ap);
    if (b.data) {
        FILE *out = logger.out ? logger.out : stderr;
        fprintf(out, "%s%s\n", b.data, logger.format == LOG_FORMAT_JSON ? "}" : "");
        fflush(out);
    }
    buf_free(&b);
}

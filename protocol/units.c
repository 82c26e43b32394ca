/*
 * units.c - implements the parsers of units.h.
 */
#include "units.h"

#include <ctype.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int tkv_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int tkv_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    static const struct { const char *unit; unsigned shift; } units[] = {
        {"", 0}, {"b", 0}, {"k", 10}, {"kb", 10}, {"m", 20}, {"mb", 20},
        {"g", 30}, {"gb", 30}, {"t", 40}, {"tb", 40},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].unit) != 0)
            continue;
        if (v > (max >> units[i].shift))
            return -1;
        *out = (uint64_t)v << units[i].shift;
        return 0;
    }
    return -1;
}

static const struct {
    const char *unit;
    uint64_t us;
} duration_units[] = {
    {"us", 1},
    {"ms", 1000},
    {"s", 1000000},
    {"m", 60000000},
    {"h", 3600000000ULL},
    {"d", 86400000000ULL},
    {"w", 604800000000ULL},
};

int tkv_parse_duration(const char *s, uint64_t *us)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    uint64_t total = 0;
    while (*s) {
        if (!isdigit((unsigned char)*s))
            return -1;
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno)
            return -1;
        size_t ulen = 0;
        while (end[ulen] && !isdigit((unsigned char)end[ulen]))
            ulen++;
        uint64_t mult = 0;
        if (ulen == 0 && end == s + strlen(s) && total == 0)
            mult = 1; /* a bare number: microseconds */
        for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++)
            if (ulen && strlen(duration_units[i].unit) == ulen &&
                strncmp(end, duration_units[i].unit, ulen) == 0)
                mult = duration_units[i].us;
        if (!mult || v > (UINT64_MAX - total) / mult)
            return -1;
        total += v * mult;
        s = end + ulen;
    }
    *us = total;
    return 0;
}

/* "YYYY-MM-DD" with an optional "THH:MM[:SS[.frac]]" and zone ("Z" or
 * "+HH:MM"/"-HH:MM"; none means UTC). */
static int parse_iso8601(const char *s, uint64_t *out)
{
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
        return -1;
    s += n;
    uint64_t frac_us = 0;
    long offset = 0;
    if (*s == 'T' || *s == 't' || *s == ' ') {
        s++;
        if (sscanf(s, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &n) != 2 || n != 5)
            return -1;
        s += n;
        if (*s == ':') {
            if (sscanf(s + 1, "%2d%n", &tm.tm_sec, &n) != 1 || n != 2)
                return -1;
            s += 3;
            if (*s == '.' || *s == ',') {
                uint64_t scale = 100000;
                for (s++; isdigit((unsigned char)*s); s++, scale /= 10)
                    frac_us += (uint64_t)(*s - '0') * scale;
            }
        }
        if (*s == 'Z' || *s == 'z') {
            s++;
        } else if (*s == '+' || *s == '-') {
            int hh, mm;
            if (sscanf(s + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5)
                return -1;
            offset = (hh * 3600L + mm * 60L) * (*s == '-' ? -1 : 1);
            s += 6;
        }
    }
    if (*s || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || (long long)t - offset < 0)
        return -1;
    *out = (uint64_t)((long long)t - offset) * 1000000u + frac_us;
    return 0;
}

int tkv_parse_time(const char *s, uint64_t now_us, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    if (strcmp(s, "now") == 0) {
        *out = now_us;
        return 0;
    }
    if (s[0] == '-' || s[0] == '+') {
        uint64_t d;
        if (tkv_parse_duration(s + 1, &d) < 0)
            return -1;
        if (s[0] == '-' && d > now_us)
            return -1;
        if (s[0] == '+' && d > UINT64_MAX - now_us)
            return -1;
        *out = s[0] == '-' ? now_us - d : now_us + d;
        return 0;
    }
    if (strlen(s) >= 10 && s[4] == '-')
        return parse_iso8601(s, out);
    return tkv_parse_uint(s, 0, UINT64_MAX, out);
}

/*
 * config.c - implements the value parsers of config.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

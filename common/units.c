/*
 * units.c - implements the parsers of units.h, and the ISO-8601 form
 * tkvctl prints timestamps in. Dates are checked field by field: the C
 * library's calendar functions normalize (Feb 31 becomes Mar 3) where a
 * person who typed a date wants an error.
 */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* 9999-12-31T23:59:59Z, the last second with a four-digit year. */
#define TKV_ISO_MAX_SECONDS 253402300799ULL

/* The decimal number s starts with (no sign, no space: strtoull would take
 * both); *end is where it stops. Returns 0, or -1 if s does not start with
 * a digit or the number does not fit 64 bits. */
static int leading_number(const char *s, unsigned long long *v, char **end)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    *v = strtoull(s, end, 10);
    return errno ? -1 : 0;
}

int tkv_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;
    if (leading_number(s, &v, &end) < 0 || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int tkv_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;
    if (leading_number(s, &v, &end) < 0)
        return -1;
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {
        {"", 0},    {"b", 0},  {"k", 10},  {"kb", 10}, {"m", 20},
        {"mb", 20}, {"g", 30}, {"gb", 30}, {"t", 40},  {"tb", 40},
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

/* The first EPOCH_UNITS also count time since the epoch (parse_epoch). */
#define EPOCH_UNITS 3
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
        unsigned long long v;
        char *end;
        if (leading_number(s, &v, &end) < 0)
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

/* Reads exactly n decimal digits. */
static int digits(const char **s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*s)++) {
        if (!isdigit((unsigned char)**s))
            return -1;
        *v = *v * 10 + (**s - '0');
    }
    return 0;
}

/* "THH:MM[:SS[.frac]]"'s part after the T; fraction digits past the sixth
 * are dropped (timestamps hold microseconds). */
static int parse_clock(const char **s, struct tm *tm, uint64_t *frac_us)
{
    if (digits(s, 2, &tm->tm_hour) || *(*s)++ != ':' || digits(s, 2, &tm->tm_min))
        return -1;
    if (**s != ':')
        return 0;
    (*s)++;
    if (digits(s, 2, &tm->tm_sec))
        return -1;
    if (**s != '.' && **s != ',')
        return 0;
    (*s)++;
    if (!isdigit((unsigned char)**s))
        return -1;
    uint64_t scale = 100000;
    for (; isdigit((unsigned char)**s); (*s)++, scale /= 10)
        *frac_us += (uint64_t)(**s - '0') * scale;
    return 0;
}

/* "Z", "+HH:MM" or "-HH:MM" into seconds east of UTC; nothing means UTC. */
static int parse_zone(const char **s, long *offset)
{
    *offset = 0;
    if (**s == 'Z' || **s == 'z') {
        (*s)++;
        return 0;
    }
    if (**s != '+' && **s != '-')
        return 0;
    long sign = *(*s)++ == '-' ? -1 : 1;
    int hh, mm;
    if (digits(s, 2, &hh) || *(*s)++ != ':' || digits(s, 2, &mm) || hh > 23 || mm > 59)
        return -1;
    *offset = sign * (hh * 3600L + mm * 60L);
    return 0;
}

/* Whether the fields name a real date and time: timegm() quietly carries
 * 2026-02-31 into March, so the result must convert back to the same
 * fields. Leap seconds (:60) cannot be told apart in Unix time: refused. */
static int valid_fields(const struct tm *want, time_t t)
{
    struct tm got;
    if (!gmtime_r(&t, &got))
        return 0;
    return got.tm_year == want->tm_year && got.tm_mon == want->tm_mon &&
           got.tm_mday == want->tm_mday && got.tm_hour == want->tm_hour &&
           got.tm_min == want->tm_min && got.tm_sec == want->tm_sec;
}

/* "YYYY-MM-DD" with an optional "THH:MM[:SS[.frac]]" and zone ("Z" or
 * "+HH:MM"/"-HH:MM"; none means UTC). */
static int parse_iso8601(const char *s, uint64_t *out)
{
    struct tm tm = {0};
    if (digits(&s, 4, &tm.tm_year) || *s++ != '-' || digits(&s, 2, &tm.tm_mon) || *s++ != '-' ||
        digits(&s, 2, &tm.tm_mday))
        return -1;
    uint64_t frac_us = 0;
    long offset = 0;
    if (*s == 'T' || *s == 't' || *s == ' ') {
        s++;
        if (parse_clock(&s, &tm, &frac_us) || parse_zone(&s, &offset))
            return -1;
    }
    if (*s || tm.tm_year < 1970 || tm.tm_mon < 1)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    struct tm norm = tm;
    time_t t = timegm(&norm);
    if (t == (time_t)-1 || !valid_fields(&tm, t) || (long long)t - offset < 0)
        return -1;
    *out = (uint64_t)((long long)t - offset) * 1000000u + frac_us;
    return 0;
}

/* A number with an explicit unit, "1700000000s", "…ms" or "…us": a point
 * that many units after the epoch. */
static int parse_epoch(const char *s, uint64_t *out)
{
    unsigned long long v;
    char *end;
    if (leading_number(s, &v, &end) < 0)
        return -1;
    for (size_t i = 0; i < EPOCH_UNITS; i++) {
        if (strcmp(end, duration_units[i].unit) != 0)
            continue;
        if (v > UINT64_MAX / duration_units[i].us)
            return -1;
        *out = (uint64_t)v * duration_units[i].us;
        return 0;
    }
    return -1;
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
    size_t ndig = strspn(s, "0123456789");
    if (s[ndig])
        return parse_epoch(s, out);
    /* A bare number is microseconds, but one as long as epoch seconds (10
     * digits) or milliseconds (13) of a date in 2001-2286 almost surely is
     * one of those: taking it as microseconds would land in January 1970. */
    if (ndig == 10 || ndig == 13)
        return TKV_TIME_AMBIGUOUS;
    return tkv_parse_uint(s, 0, UINT64_MAX, out);
}

int tkv_format_time(uint64_t us, char *buf, size_t cap)
{
    time_t secs = (time_t)(us / 1000000u);
    struct tm tm;
    /* Past 9999 an ISO year needs a sign and more digits than readers
     * expect; such stamps (TKV_LATEST among them) are shown as numbers. */
    if (us / 1000000u > TKV_ISO_MAX_SECONDS || !gmtime_r(&secs, &tm)) {
        snprintf(buf, cap, "%llu", (unsigned long long)us);
        return 0;
    }
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(us % 1000000u));
    return 1;
}

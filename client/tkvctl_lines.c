/*
 * tkvctl_lines.c - the line format that mget prints and mput reads:
 * KEY<TAB>TS<TAB>VALUE, one version per line.
 *
 * Keys and values are byte strings, so both are escaped, the way
 * redis-cli shows them: a backslash as \\, tab \t, newline \n, carriage
 * return \r, and any other byte below 0x20, 0x7f, and bytes 0x80-0xff of
 * a string that is not valid UTF-8 as \xHH (two lowercase hex digits). All
 * other bytes stand for themselves, so plain text and UTF-8 stay readable
 * and a line never holds a tab or newline of its data. Reading accepts
 * exactly those escapes (hex digits of either case); a backslash before
 * anything else is an error, so a typo cannot change data silently.
 *
 * TS is what tkvctl prints for a timestamp: microseconds, or ISO-8601 with
 * --iso. A miss is written with TS "-" and an empty value; mput refuses
 * such a line (or skips it with --skip-missing): a key that had no version
 * must not turn into a new empty one.
 */
#include <stdio.h>
#include <string.h>

#include "tkvctl.h"

void line_write_bytes(FILE *f, const void *ptr, size_t n)
{
    const uint8_t *p = ptr;
    bool utf8 = utf8_valid(p, n);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '\\')
            fputs("\\\\", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte the escape at s[0] == '\\' stands for; *used: its length. */
static int unescape_one(const char *s, size_t left, size_t *used)
{
    *used = 2;
    if (left < 2)
        return -1;
    switch (s[1]) {
    case '\\': return '\\';
    case 't': return '\t';
    case 'n': return '\n';
    case 'r': return '\r';
    case 'x': {
        int hi = left >= 4 ? hexval(s[2]) : -1, lo = left >= 4 ? hexval(s[3]) : -1;
        *used = 4;
        return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
    }
    default: return -1;
    }
}

int line_unescape(char *s, size_t *len)
{
    size_t r = 0, w = 0;
    while (r < *len) {
        if (s[r] != '\\') {
            s[w++] = s[r++];
            continue;
        }
        size_t used;
        int b = unescape_one(s + r, *len - r, &used);
        if (b < 0)
            return -1;
        s[w++] = (char)b;
        r += used;
    }
    *len = w;
    return 0;
}

/*
 * jsonout.c - implements the JSON writer of jsonout.h.
 */
#include "jsonout.h"

#include <string.h>

static void sep(json_out *j)
{
    if (!j->first)
        fputc(',', j->f);
    j->first = false;
}

static void name(json_out *j, const char *n)
{
    sep(j);
    fprintf(j->f, "\"%s\":", n);
}

void json_begin(json_out *j, FILE *f)
{
    j->f = f;
    j->first = true;
    fputc('{', f);
}

void json_end(json_out *j) { fputs("}\n", j->f); }

void json_u64(json_out *j, const char *n, uint64_t v)
{
    name(j, n);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_opt_u64(json_out *j, const char *n, bool has, uint64_t v)
{
    if (has)
        json_u64(j, n, v);
    else
        json_null(j, n);
}

void json_bool(json_out *j, const char *n, bool v)
{
    name(j, n);
    fputs(v ? "true" : "false", j->f);
}

void json_null(json_out *j, const char *n)
{
    name(j, n);
    fputs("null", j->f);
}

bool utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += len;
    }
    return true;
}

static void quoted(FILE *f, const uint8_t *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void base64(FILE *f, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', f);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        fputc(tab[v >> 18 & 63], f);
        fputc(tab[v >> 12 & 63], f);
        fputc(i + 1 < n ? tab[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? tab[v & 63] : '=', f);
    }
    fputc('"', f);
}

void json_str(json_out *j, const char *n, const char *s)
{
    name(j, n);
    quoted(j->f, (const uint8_t *)s, strlen(s));
}

void json_bytes(json_out *j, const char *n, const void *p, size_t len)
{
    sep(j);
    if (utf8_valid(p, len)) {
        fprintf(j->f, "\"%s\":", n);
        quoted(j->f, p, len);
    } else {
        fprintf(j->f, "\"%s_b64\":", n);
        base64(j->f, p, len);
    }
}

void json_array_begin(json_out *j, const char *n)
{
    name(j, n);
    fputc('[', j->f);
    j->first = true;
}

void json_array_end(json_out *j)
{
    fputc(']', j->f);
    j->first = false;
}

void json_item_begin(json_out *j)
{
    sep(j);
    fputc('{', j->f);
    j->first = true;
}

void json_item_end(json_out *j)
{
    fputc('}', j->f);
    j->first = false;
}

void json_value_null(json_out *j)
{
    sep(j);
    fputs("null", j->f);
}

void json_value_u64(json_out *j, uint64_t v)
{
    sep(j);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_value_bytes(json_out *j, const void *p, size_t n)
{
    sep(j);
    if (utf8_valid(p, n)) {
        quoted(j->f, p, n);
    } else {
        fputs("{\"b64\":", j->f);
        base64(j->f, p, n);
        fputc('}', j->f);
    }
}

/*
 * jsonout.h - the JSON tkvctl prints with --json: one object per reply,
 * written field by field to a stdio stream.
 *
 * Byte strings (keys, values) are JSON strings when they are valid UTF-8;
 * otherwise the field is written under its name with "_b64" appended, as
 * standard base64: "value_b64": "AAEC/w==". Nothing is ever lossy.
 */
#ifndef TKV_JSONOUT_H
#define TKV_JSONOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct json_out {
    FILE *f;
    bool first; /* no field written yet in the current object or array */
} json_out;

void json_begin(json_out *j, FILE *f); /* { */
void json_end(json_out *j);            /* }\n */
void json_u64(json_out *j, const char *name, uint64_t v);
void json_opt_u64(json_out *j, const char *name, bool has, uint64_t v); /* null if !has */
void json_bool(json_out *j, const char *name, bool v);
void json_str(json_out *j, const char *name, const char *s);
void json_null(json_out *j, const char *name);
/* name: "..." or name_b64: "..." */
void json_bytes(json_out *j, const char *n, const void *p, size_t len);
/* Arrays of objects: json_array_begin, then json_item_begin/json_item_end
 * around each element's fields, then json_array_end. */
void json_array_begin(json_out *j, const char *name);
void json_array_end(json_out *j);
void json_item_begin(json_out *j);
void json_item_end(json_out *j);
/* An array of plain values: json_value_u64 / json_value_bytes inside. */
void json_value_u64(json_out *j, uint64_t v);
void json_value_null(json_out *j);
/* A byte string as an array element: a string, or {"b64": "..."}. */
void json_value_bytes(json_out *j, const void *p, size_t n);

bool utf8_valid(const uint8_t *p, size_t n);

#endif

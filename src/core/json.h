/* Streaming JSON writer into a cel_buf, byte-compatible with Python's
 *     json.dumps(v, ensure_ascii=False, allow_nan=False, indent=None,
 *                separators=(",", ":")).encode("utf-8")
 * which is what Starlette's JSONResponse.render produces (docs/json.md).
 *
 * The caller drives it value by value; commas and colons are inserted from a
 * small bit stack (one bit per open container: object or array).  Writing
 * calls return 0 (the _ucs ones a count) or a negative cel_err; on error
 * nothing is appended to the buffer and the writer is unchanged, so the
 * caller may keep going or give up.
 *   CEL_ENOMEM  buffer growth failed
 *   CEL_EINVAL  NaN/Infinity (allow_nan=False), malformed digits for
 *               cel_json_bigint, bad code-unit width
 *   CEL_ESTATE  call not valid here: a value where a key is due, a key
 *               outside an object, an unbalanced end, a second top-level
 *               value, or a container opened beyond max_depth
 *
 * Strings are written as Python writes them with ensure_ascii=False: '"' and
 * '\' and \b \f \n \r \t get their short escapes, the other bytes below 0x20
 * become \u00XX (lower-case hex), everything else (DEL, non-ASCII) is copied
 * through.  UTF-8 input is not validated: the caller guarantees it.
 */
#ifndef CEL_JSON_H
#define CEL_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

#define CEL_JSON_DEFAULT_DEPTH 512u     /* max_depth when 0 is passed */
#define CEL_JSON_INLINE_DEPTH 512u      /* levels tracked without allocating */
#define CEL_JSON_MAX_DEPTH (1u << 24)   /* largest accepted max_depth */
#define CEL_JSON_DOUBLE_MAX 32          /* buffer size for cel_json_format_double */

typedef struct cel_json_writer {
    cel_buf *out;               /* borrowed; appended to, never consumed */
    uint32_t depth;             /* open containers */
    uint32_t max_depth;
    unsigned char need_comma;   /* a value/member precedes at this level */
    unsigned char after_key;    /* inside an object, a key was written: value due */
    unsigned char done;         /* the top-level value is complete */
    unsigned char in_object;    /* the innermost open container is an object (0 at depth 0) */
    unsigned char stack[CEL_JSON_INLINE_DEPTH / 8];   /* bit set: object */
    unsigned char *spill;       /* levels beyond the inline ones; cel_malloc'd, grown by doubling */
    size_t spill_cap;           /* bytes at spill */
} cel_json_writer;

/* Start writing one JSON text at the end of out (borrowed, must outlive w).
 * max_depth bounds nesting (0: CEL_JSON_DEFAULT_DEPTH; capped at
 * CEL_JSON_MAX_DEPTH).  Levels beyond CEL_JSON_INLINE_DEPTH are tracked in
 * memory allocated as they are reached, released by cel_json_writer_free. */
void cel_json_writer_init(cel_json_writer *w, cel_buf *out, uint32_t max_depth);

/* Release the writer's own memory (not the buffer).  Accepts NULL. */
void cel_json_writer_free(cel_json_writer *w);

/* 1 when exactly one complete top-level value has been written. */
int cel_json_complete(const cel_json_writer *w);

int cel_json_begin_object(cel_json_writer *w);
int cel_json_end_object(cel_json_writer *w);
int cel_json_begin_array(cel_json_writer *w);
int cel_json_end_array(cel_json_writer *w);

/* An object key / a string value from n bytes of UTF-8 (borrowed). */
int cel_json_key(cel_json_writer *w, const char *s, size_t n);
int cel_json_string(cel_json_writer *w, const char *s, size_t n);

/* Key / string value from n code units of width 1, 2 or 4 bytes (Latin-1,
 * UCS-2, UCS-4: the layouts of CPython's str), encoded to UTF-8.  A lone
 * surrogate (U+D800..U+DFFF) is written as its 3-byte generalized UTF-8
 * form, the way Python's "surrogatepass" handler writes it, so the caller can
 * rebuild the text and report the error Python would.  Returns the number of
 * surrogates written (>= 0, saturating at INT32_MAX) or a negative cel_err;
 * CEL_EINVAL for another width or a code point above U+10FFFF. */
int cel_json_key_ucs(cel_json_writer *w, const void *units, size_t n, int width);
int cel_json_string_ucs(cel_json_writer *w, const void *units, size_t n, int width);

int cel_json_int64(cel_json_writer *w, int64_t v);
int cel_json_uint64(cel_json_writer *w, uint64_t v);

/* An integer given as its decimal digits (e.g. Python's str(int)): an
 * optional '-' then 1+ digits without leading zeros; else CEL_EINVAL. */
int cel_json_bigint(cel_json_writer *w, const char *digits, size_t n);

/* A double as Python's repr(float); CEL_EINVAL for NaN and infinities. */
int cel_json_double(cel_json_writer *w, double v);

int cel_json_bool(cel_json_writer *w, int v);
int cel_json_null(cel_json_writer *w);

/* Nonzero when the 8 bytes of x hold one a JSON string cannot take as it
 * is: below 0x20, '"', '\\' or from 0x80 up (each test exact about
 * existence). */
static inline uint64_t cel_json_word_needs_care(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = x ^ ('"' * ones), bs = x ^ ('\\' * ones);
    return (x | ((x - 0x20 * ones) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs;
}

/* 1 when the n bytes at s go into a JSON string as they are: all in
 * 0x20..0x7f but '"' and '\\'.  Then '"' + s + '"' is what cel_json_string
 * writes for them, so a caller writing its own text (a small flat object)
 * may quote them itself.  Words of 8 (the last one overlapping), or two
 * overlapping words of 4; inline, as it runs for every short string. */
static inline int cel_json_verbatim(const char *s, size_t n)
{
    if (n >= 8) {
        uint64_t x;
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&x, s + i, 8);
            if (cel_json_word_needs_care(x))
                return 0;
        }
        memcpy(&x, s + n - 8, 8);
        return !cel_json_word_needs_care(x);
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        return !cel_json_word_needs_care(((uint64_t)b << 32) | a);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

/* memcpy(o, s, n) without a library call for the short keys and values
 * that dominate JSON bodies (overlapping 8- or 4-byte moves). */
static inline void cel_json_copy_short(char *o, const char *s, size_t n)
{
    if (n > 16) {
        memcpy(o, s, n);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(o, &a, 8);
        memcpy(o + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(o, &a, 4);
        memcpy(o + n - 4, &b, 4);
    } else {
        for (size_t i = 0; i < n; i++)
            o[i] = s[i];
    }
}

/* The decimal text of v (what cel_json_int64 writes) into out, which has
 * room for CEL_JSON_INT64_MAX bytes; no terminator.  Returns the length. */
#define CEL_JSON_INT64_MAX 20
size_t cel_json_format_int64(int64_t v, char *out);

/* n bytes of ready-made JSON text written as one value, unchecked. */
int cel_json_raw(cel_json_writer *w, const char *s, size_t n);

/* Python's repr(v) for a finite double into out[CEL_JSON_DOUBLE_MAX],
 * NUL-terminated: shortest digits that round-trip (nearest to v among
 * those), fixed notation when 1e-4 <= |v| < 1e16 with ".0" added to integral
 * values, otherwise d[.ddd]e+XX / e-XX.  Returns the length, or CEL_EINVAL
 * for NaN and infinities. */
int cel_json_format_double(double v, char *out);

#endif

/* URL and cookie decoding: percent-decoding, UTF-8 validation, query-string
 * pairs and lookup (Starlette's QueryParams), canonical integers, and the
 * Cookie header (Starlette's cookie_parser).
 *
 * Nothing here allocates.  Every input is a (pointer, length) byte range that
 * need not be NUL-terminated; every output is written to a caller buffer whose
 * required capacity is stated at the function.  Slices returned by the
 * iterators point into the caller's input and live as long as it does.
 *
 * Two decoding flavours:
 *  - cel_url_decode: bytes -> bytes ('%XX' -> byte, '+' -> ' ' on request).
 *    With cel_url_utf8_valid on the result this is what the native tier uses:
 *    a value whose decoded bytes are not UTF-8 is declined, not guessed.
 *  - cel_url_unquote_py: exactly Python's urllib.parse.unquote(s) (or
 *    unquote_plus) of the latin-1 decoding of the input, written as UTF-8:
 *    what Starlette hands an application for any input (invalid UTF-8 becomes
 *    U+FFFD the way CPython's decoder does, raw bytes >= 0x80 are latin-1).
 */
#ifndef CEL_URLCODE_H
#define CEL_URLCODE_H

#include <stddef.h>

/* Value of hex digit ch (either case), or -1. */
int cel_url_hexval(int ch);

/* Percent-decode src[0..n) into dst: "%XX" (two hex digits, either case)
 * becomes that byte, any other '%' is copied as is; with plus_space '+'
 * becomes ' ' (query strings and forms), otherwise '+' is kept (paths).
 * dst needs n bytes and may equal src (in-place decoding).  Returns the
 * decoded length, always <= n. */
size_t cel_url_decode(const char *src, size_t n, char *dst, int plus_space);

/* Length cel_url_decode would produce, without writing anything. */
size_t cel_url_decoded_len(const char *src, size_t n);

/* 1 if decoding raw[0..rn) (plus_space as above) gives exactly
 * key[0..klen), else 0.  Needs no buffer. */
int cel_url_decoded_equals(const char *raw, size_t rn, const char *key, size_t klen,
                           int plus_space);

/* Percent-encode src[0..n) into dst like Python's quote(s, safe='') (or,
 * with plus_space, quote_plus(s, safe='')): unreserved bytes
 * [A-Za-z0-9_.~-] are kept, ' ' becomes '+' with plus_space, every other
 * byte becomes "%XX" (upper-case hex).  dst needs 3 * n bytes.  Returns the
 * encoded length.  cel_url_decode(encoded, same plus_space) gives src back. */
size_t cel_url_encode(const char *src, size_t n, char *dst, int plus_space);

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
 * Returns 1 if s[0..n) is valid, else 0. */
int cel_url_utf8_valid(const void *s, size_t n);

/* Python's unquote(s.decode('latin-1')) (unquote_plus with plus_space),
 * result encoded as UTF-8 into dst.  Runs of ASCII are percent-decoded and
 * the bytes decoded as UTF-8 with errors='replace' (one U+FFFD per maximal
 * invalid subsequence, as CPython); bytes >= 0x80 in the input stand for
 * U+0080..U+00FF.  dst needs 2 * n bytes (must not overlap src).  Returns the
 * output length. */
size_t cel_url_unquote_py(const char *src, size_t n, char *dst, int plus_space);

/* Canonical decimal integer: optional '-', 1..18 digits, no leading zero
 * (except "0" itself), no "-0".  This is exactly the text for which int(s)
 * and pydantic's lax int parsing agree with a plain digit scan.  Returns 1
 * and stores the value in *out, or 0 (and leaves *out alone). */
int cel_url_parse_int(const char *s, size_t n, long long *out);

/* One name=value pair of a query string or urlencoded form, as raw slices of
 * the input (still percent-encoded).  A pair without '=' has has_eq = 0 and
 * an empty value (keep_blank_values=True gives it the value ""). */
typedef struct cel_url_pair {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    int has_eq;
} cel_url_pair;

/* Iterator over q[0..len): pairs split on '&', empty pairs skipped, the key
 * ends at the first '=' -- Python's parse_qsl(keep_blank_values=True). */
typedef struct cel_url_query_iter {
    const char *q;
    size_t len;
    size_t pos;
} cel_url_query_iter;

/* Start iterating q[0..len) (borrowed; must outlive the iterator). */
void cel_url_query_init(cel_url_query_iter *it, const char *q, size_t len);

/* Next pair into *out: returns 1, or 0 when there are no more. */
int cel_url_query_next(cel_url_query_iter *it, cel_url_pair *out);

/* Starlette's query_params[key]: the LAST pair whose decoded key ('+' as
 * space) equals key[0..klen) wins; its value is decoded ('+' as space) into
 * buf[0..cap) and its length stored in *vlen.  Returns 1 found, 0 missing,
 * CEL_ENOSPC when the decoded value exceeds cap (nothing useful in buf),
 * CEL_EUTF8 when the decoded value is not valid UTF-8 (buf and *vlen hold
 * the bytes; Starlette would show U+FFFD there, see cel_url_unquote_py). */
int cel_url_query_lookup(const char *q, size_t qn, const char *key, size_t klen, char *buf,
                         size_t cap, size_t *vlen);

/* One cookie of a Cookie header: key and value as slices of the input with
 * Python str.strip() whitespace removed (latin-1: \t\n\v\f\r, \x1c-\x1f,
 * ' ', \x85, \xa0).  The value may still be quoted: see
 * cel_cookie_unquote. */
typedef struct cel_cookie {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} cel_cookie;

/* Iterator with Starlette's cookie_parser rules: split on ';'; a chunk
 * without '=' is a value with an empty key; the key ends at the first '=';
 * chunks whose key and value are both empty after stripping are skipped.
 * Later cookies of the same key replace earlier ones (the caller applies
 * this when building a map; the dict keeps the first key's position). */
typedef struct cel_cookie_iter {
    const char *s;
    size_t len;
    size_t pos;
} cel_cookie_iter;

/* Start iterating header[0..len) (borrowed; must outlive the iterator). */
void cel_cookie_init(cel_cookie_iter *it, const char *header, size_t len);

/* Next cookie into *out: returns 1, or 0 when there are no more. */
int cel_cookie_next(cel_cookie_iter *it, cel_cookie *out);

/* http.cookies._unquote: a value of 2+ bytes that starts and ends with '"'
 * loses the quotes, and inside them "\ooo" (first digit 0-3, then two 0-7)
 * becomes that byte and '\' + any byte but '\n' becomes that byte; anything
 * else is copied.  dst needs n bytes and may equal v.  Returns the length. */
size_t cel_cookie_unquote(const char *v, size_t n, char *dst);

/* request.cookies[name] for one Cookie header: the last cookie with that
 * exact key, unquoted into buf[0..cap).  Returns 1 found (*vlen set), 0
 * missing, CEL_ENOSPC when the raw (still quoted) value is longer than cap.  With several Cookie
 * headers, look up each in order and keep the last hit. */
int cel_cookie_lookup(const char *header, size_t n, const char *name, size_t nlen, char *buf,
                      size_t cap, size_t *vlen);

#endif

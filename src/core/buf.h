/* Growable byte buffer with a read cursor.  Valid bytes are
 * data[start .. start+len).  Consuming moves `start`; space is reclaimed by
 * compaction inside cel_buf_reserve, so pointers into the buffer stay valid
 * until the next reserve/append/free. */
#ifndef CEL_BUF_H
#define CEL_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct cel_buf {
    char *data;
    size_t start;
    size_t len;
    size_t cap;
} cel_buf;

/* Pointer to the first valid byte and to the first writable byte. */
static inline char *cel_buf_head(const cel_buf *b) { return b->data + b->start; }
static inline char *cel_buf_tail(const cel_buf *b) { return b->data + b->start + b->len; }
static inline size_t cel_buf_room(const cel_buf *b) { return b->cap - b->start - b->len; }

/* The slow path of cel_buf_reserve: compact or grow so that `extra` bytes
 * fit after the valid bytes.  Returns 0 or CEL_ENOMEM (buffer unchanged). */
int cel_buf_grow(cel_buf *b, size_t extra);

/* Ensure at least `extra` writable bytes after the valid bytes.  May move
 * the data (compaction or realloc).  Returns 0 or CEL_ENOMEM (buffer
 * unchanged on failure).  Inline: most calls find the room already there. */
static inline int cel_buf_reserve(cel_buf *b, size_t extra)
{
    return cel_buf_room(b) >= extra ? 0 : cel_buf_grow(b, extra);
}

/* Append n bytes; 0 or CEL_ENOMEM (buffer unchanged). */
static inline int cel_buf_append(cel_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (cel_buf_room(b) < n) {
        int rc = cel_buf_grow(b, n);
        if (rc)
            return rc;
    }
    memcpy(cel_buf_tail(b), p, n);
    b->len += n;
    return 0;
}

/* Drop n (<= len) bytes from the front. */
void cel_buf_consume(cel_buf *b, size_t n);

/* Release memory if the buffer is empty and larger than keep bytes, so idle
 * connections do not pin big buffers. */
void cel_buf_shrink(cel_buf *b, size_t keep);

void cel_buf_free(cel_buf *b);

#endif

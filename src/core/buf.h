/* Growable byte buffer with a read cursor.  Valid bytes are
 * data[start .. start+len).  Consuming moves `start`; space is reclaimed by
 * compaction inside cel_buf_reserve, so pointers into the buffer stay valid
 * until the next reserve/append/free. */
#ifndef CEL_BUF_H
#define CEL_BUF_H

#include <stddef.h>

typedef struct cel_buf {
    char *data;
    size_t start;
    size_t len;
    size_t cap;
} cel_buf;

/* Ensure at least `extra` writable bytes after the valid bytes.  May move
 * the data (compaction or realloc).  Returns 0 or CEL_ENOMEM (buffer
 * unchanged on failure). */
int cel_buf_reserve(cel_buf *b, size_t extra);

/* Append n bytes; 0 or CEL_ENOMEM. */
int cel_buf_append(cel_buf *b, const void *p, size_t n);

/* Pointer to the first valid byte and to the first writable byte. */
static inline char *cel_buf_head(const cel_buf *b) { return b->data + b->start; }
static inline char *cel_buf_tail(const cel_buf *b) { return b->data + b->start + b->len; }
static inline size_t cel_buf_room(const cel_buf *b) { return b->cap - b->start - b->len; }

/* Drop n (<= len) bytes from the front. */
void cel_buf_consume(cel_buf *b, size_t n);

/* Release memory if the buffer is empty and larger than keep bytes, so idle
 * connections do not pin big buffers. */
void cel_buf_shrink(cel_buf *b, size_t keep);

void cel_buf_free(cel_buf *b);

#endif

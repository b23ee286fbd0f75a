#include "buf.h"

#include <string.h>

#include "alloc.h"
#include "errors.h"

int cel_buf_grow(cel_buf *b, size_t extra)
{
    if (cel_buf_room(b) >= extra)
        return 0;
    if (b->start && b->cap - b->len >= extra) {
        memmove(b->data, b->data + b->start, b->len);
        b->start = 0;
        return 0;
    }
    if (extra > (size_t)-1 / 2 - b->len)
        return CEL_ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    char *p;
    if (b->start == 0) {
        p = cel_realloc(b->data, cap);
        if (!p)
            return CEL_ENOMEM;
    } else {
        p = cel_malloc(cap);
        if (!p)
            return CEL_ENOMEM;
        memcpy(p, b->data + b->start, b->len);
        cel_free(b->data);
        b->start = 0;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void cel_buf_consume(cel_buf *b, size_t n)
{
    if (n >= b->len) {
        b->start = 0;
        b->len = 0;
    } else {
        b->start += n;
        b->len -= n;
    }
}

void cel_buf_shrink(cel_buf *b, size_t keep)
{
    if (b->len == 0 && b->cap > keep) {
        cel_free(b->data);
        b->data = NULL;
        b->cap = 0;
        b->start = 0;
    }
}

void cel_buf_free(cel_buf *b)
{
    cel_free(b->data);
    b->data = NULL;
    b->start = b->len = b->cap = 0;
}

#include "alloc.h"

#include <stdlib.h>
#include <string.h>

static cel_allocator current = { malloc, realloc, free };
static unsigned long fail_at;      /* 0: never fail */
static unsigned long count;

void cel_set_allocator(const cel_allocator *a)
{
    if (a)
        current = *a;
    else {
        current.malloc = malloc;
        current.realloc = realloc;
        current.free = free;
    }
}

unsigned long cel_alloc_fail_after(unsigned long n)
{
    unsigned long made = count;
    count = 0;
    fail_at = n;
    return made;
}

static int should_fail(void)
{
    count++;
    return fail_at && count >= fail_at;
}

void *cel_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return current.malloc(n ? n : 1);
}

void *cel_calloc(size_t nmemb, size_t size)
{
    if (size && nmemb > (size_t)-1 / size)
        return NULL;
    void *p = cel_malloc(nmemb * size);
    if (p)
        memset(p, 0, nmemb * size);
    return p;
}

void *cel_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return current.realloc(p, n ? n : 1);
}

void cel_free(void *p)
{
    if (p)
        current.free(p);
}

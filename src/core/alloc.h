/* One allocation table for the whole core, so tests can fail the Nth
 * allocation (see cel_alloc_fail_after) and embedders can plug their own. */
#ifndef CEL_ALLOC_H
#define CEL_ALLOC_H

#include <stddef.h>

typedef struct cel_allocator {
    void *(*malloc)(size_t n);
    void *(*realloc)(void *p, size_t n);
    void (*free)(void *p);
} cel_allocator;

/* Replace the allocator; NULL restores libc's.  Not thread-safe: call before
 * any core object exists. */
void cel_set_allocator(const cel_allocator *a);

void *cel_malloc(size_t n);
void *cel_calloc(size_t count, size_t size);
void *cel_realloc(void *p, size_t n);
void cel_free(void *p);            /* accepts NULL */

/* Test hook: the nth allocation from now (1-based) and every later one fail;
 * n = 0 disables failure injection.  Returns how many allocations have been
 * made since the last call. */
unsigned long cel_alloc_fail_after(unsigned long n);

#endif

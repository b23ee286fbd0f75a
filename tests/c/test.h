/* Minimal single-header test harness for the C unit tests.
 *
 * Each tests/c/test_*.c includes this once and defines cases with
 *     TEST(name) { CHECK(x); CHECK_EQ_INT(a, b); }
 * Cases register themselves (constructor attribute, GCC/Clang) and the main()
 * defined here runs them all in registration order, then prints
 * "N passed, N failed" and exits nonzero if any case failed.  A failed check
 * reports file:line and the case continues.
 *
 * guard_copy() places bytes so they end exactly at a PROT_NONE page: parsers
 * under test that read one byte past their input crash instead of passing.
 */
#ifndef CEL_TEST_H
#define CEL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TEST_MAX_CASES 512
#define TEST_MAX_REPORTS 10     /* failure lines printed per case */

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

static test_case test_cases_[TEST_MAX_CASES];
static int test_ncases_;
static int test_case_failures_;

static inline void test_register_(const char *name, void (*fn)(void))
{
    if (test_ncases_ == TEST_MAX_CASES) {
        fprintf(stderr, "test.h: too many test cases\n");
        abort();
    }
    test_cases_[test_ncases_].name = name;
    test_cases_[test_ncases_].fn = fn;
    test_ncases_++;
}

#define TEST(name)                                                      \
    static void name(void);                                             \
    __attribute__((constructor)) static void name##_register_(void)     \
    {                                                                   \
        test_register_(#name, name);                                    \
    }                                                                   \
    static void name(void)

static inline void test_fail_(const char *file, int line, const char *msg)
{
    if (test_case_failures_++ < TEST_MAX_REPORTS)
        fprintf(stderr, "  %s:%d: %s\n", file, line, msg);
}

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond))                                                    \
            test_fail_(__FILE__, __LINE__, "CHECK(" #cond ")");         \
    } while (0)

#define CHECK_EQ_INT(a, b)                                              \
    do {                                                                \
        long long a_ = (long long)(a), b_ = (long long)(b);             \
        if (a_ != b_) {                                                 \
            char m_[256];                                               \
            snprintf(m_, sizeof(m_), "%s == %s: %lld != %lld",          \
                     #a, #b, a_, b_);                                   \
            test_fail_(__FILE__, __LINE__, m_);                         \
        }                                                               \
    } while (0)

/* A copy of data[0..len) ending exactly at an inaccessible page. */
typedef struct guard_buf {
    char *p;            /* the copy */
    char *map_;
    size_t map_len_;
} guard_buf;

static inline guard_buf guard_copy(const void *data, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (len + page - 1) / page * page;
    guard_buf g;
    g.map_len_ = body + page;
    g.map_ = mmap(NULL, g.map_len_, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g.map_ == MAP_FAILED || mprotect(g.map_ + body, page, PROT_NONE) != 0) {
        perror("guard_copy");
        abort();
    }
    g.p = g.map_ + body - len;
    if (len)
        memcpy(g.p, data, len);
    return g;
}

static inline void guard_free(guard_buf *g)
{
    munmap(g->map_, g->map_len_);
    g->p = g->map_ = NULL;
}

int main(void)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < test_ncases_; i++) {
        test_case_failures_ = 0;
        test_cases_[i].fn();
        if (test_case_failures_) {
            fprintf(stderr, "FAIL %s (%d failed checks)\n",
                    test_cases_[i].name, test_case_failures_);
            failed++;
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

#endif

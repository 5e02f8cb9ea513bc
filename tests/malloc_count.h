/* Counts what a test's own code asks of malloc, while `malloc_counting` is on: the calls,
 * the bytes and the largest request. It replaces malloc and friends for the whole test
 * program (glibc's own allocator does the work), so it is off under the sanitizers, which
 * replace them too: MALLOC_CAN_COUNT says whether it is there. */
#ifndef TG_TEST_MALLOC_COUNT_H
#define TG_TEST_MALLOC_COUNT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TG_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TG_TEST_SANITIZED 1
#endif
#endif

#if !defined(TG_TEST_SANITIZED) && defined(__GLIBC__)
#define MALLOC_CAN_COUNT 1

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_bool malloc_counting;
static atomic_llong malloc_calls, malloc_bytes, malloc_largest;

static void malloc_note(size_t n)
{
    if (!atomic_load_explicit(&malloc_counting, memory_order_relaxed))
        return;
    atomic_fetch_add(&malloc_calls, 1);
    atomic_fetch_add(&malloc_bytes, (long long)n);
    long long big = atomic_load(&malloc_largest);
    while ((long long)n > big && !atomic_compare_exchange_weak(&malloc_largest, &big, (long long)n))
        ;
}

/* Zeroes the counts and starts counting. */
static void malloc_count_start(void)
{
    atomic_store(&malloc_calls, 0);
    atomic_store(&malloc_bytes, 0);
    atomic_store(&malloc_largest, 0);
    atomic_store(&malloc_counting, true);
}

static void malloc_count_stop(void) { atomic_store(&malloc_counting, false); }

void *malloc(size_t n)
{
    malloc_note(n);
    return __libc_malloc(n);
}
void *calloc(size_t k, size_t n)
{
    malloc_note(k * n);
    return __libc_calloc(k, n);
}
void *realloc(void *p, size_t n)
{
    malloc_note(n);
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t a, size_t n)
{
    malloc_note(n);
    return __libc_memalign(a, n);
}
void *memalign(size_t a, size_t n)
{
    malloc_note(n);
    return __libc_memalign(a, n);
}
int posix_memalign(void **p, size_t a, size_t n)
{
    malloc_note(n);
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12; /* ENOMEM */
}
void free(void *p) { __libc_free(p); }
#endif

#endif

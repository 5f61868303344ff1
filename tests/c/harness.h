/*
 * harness.h -- what the standalone storage tests (test_storage.c,
 * test_rewire.c) share: allocation-failure injection and the CHECK
 * counter.  Include it once, from the test's single translation unit.
 *
 * Injection: built with -DCX_TEST_WRAP and linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (tests/c/run.sh does),
 * inj_arm(k) makes the k-th allocation from now and every later one fail
 * until inj_off(); HAVE_INJ says whether it is available.
 */
#ifndef CONNECTOME_TEST_HARNESS_H
#define CONNECTOME_TEST_HARNESS_H

#include <stddef.h>
#include <stdio.h>

#ifdef CX_TEST_WRAP
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
static long inj_count = 0, inj_fail_at = -1; /* fail the k-th and later */
static int inj_fail(void) { return inj_fail_at >= 0 && inj_count++ >= inj_fail_at; }
void *__wrap_malloc(size_t n) { return inj_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return inj_fail() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return inj_fail() ? NULL : __real_realloc(p, n); }
static void inj_arm(long k) {
    inj_count = 0;
    inj_fail_at = k;
}
static void inj_off(void) { inj_fail_at = -1; }
#define HAVE_INJ 1
#else
static void inj_arm(long k) { (void)k; }
static void inj_off(void) {}
#define HAVE_INJ 0
#endif

/* CHECK(cond): count it, and report the first 20 failures. */
static long n_checks = 0, n_fail = 0;
#define CHECK(cond)                                                                             \
    do {                                                                                        \
        n_checks++;                                                                             \
        if (!(cond)) {                                                                          \
            n_fail++;                                                                           \
            if (n_fail < 20)                                                                    \
                fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);        \
        }                                                                                       \
    } while (0)

#endif

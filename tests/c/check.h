/* A tiny unit-test harness for the plain C libraries.
 * Each test program defines test functions, lists them in main with RUN(),
 * and ends with CHECK_SUMMARY(), which prints "N passed, N failed" and
 * returns non-zero when any check failed. */
#ifndef PYSIPTEST_TESTS_CHECK_H
#define PYSIPTEST_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failed_;
static int check_passed_;
static int check_test_failed_;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            check_test_failed_ = 1;                                                  \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                               \
    do {                                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                                              \
        if (a_ != b_) {                                                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, a_, b_); \
            check_test_failed_ = 1;                                                                      \
        }                                                                                                \
    } while (0)

/* compare a struct sip_str-like slice (p, len) with a C string */
#define CHECK_STR(s, c)                                                                                    \
    do {                                                                                                   \
        const char *c_ = (c);                                                                              \
        if ((s).len != strlen(c_) || ((s).len && memcmp((s).p, c_, (s).len) != 0)) {                      \
            fprintf(stderr, "%s:%d: %s == \"%s\" failed: got \"%.*s\"\n", __FILE__, __LINE__, #s, c_,      \
                    (int)(s).len, (s).p ? (s).p : "");                                                     \
            check_test_failed_ = 1;                                                                        \
        }                                                                                                  \
    } while (0)

#define RUN(fn)                                  \
    do {                                         \
        check_test_failed_ = 0;                  \
        fn();                                    \
        if (check_test_failed_) {                \
            fprintf(stderr, "FAIL %s\n", #fn);   \
            check_failed_++;                     \
        } else {                                 \
            check_passed_++;                     \
        }                                        \
    } while (0)

#define CHECK_SUMMARY()                                                  \
    (printf("%d passed, %d failed\n", check_passed_, check_failed_),    \
     check_failed_ ? 1 : 0)

#endif

/* A check on the message of the last error, shared by the tests that
 * provoke errors on purpose. */
#ifndef CTRAIN_TESTS_EXPECT_MSG_H
#define CTRAIN_TESTS_EXPECT_MSG_H

#include <criterion/criterion.h>
#include <string.h>

#include "ctrain/status.h"

/* The message of the last error contains every one of the given strings. */
#define expect_msg_has(...)                                                                    \
    do {                                                                                       \
        const char *want_[] = {__VA_ARGS__};                                                   \
        for (size_t w_ = 0; w_ < sizeof want_ / sizeof want_[0]; w_++)                         \
            cr_expect(strstr(ct_last_error(), want_[w_]) != NULL,                              \
                      "error message '%s' lacks '%s'", ct_last_error(), want_[w_]);           \
    } while (0)

#endif

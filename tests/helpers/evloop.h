/* evloop.h - driving a libevent loop from a test, with a deadline. */
#ifndef EDGEKV_TESTS_EVLOOP_H
#define EDGEKV_TESTS_EVLOOP_H

#include <stdbool.h>

struct event_base;

/** Runs @base until *@done becomes non-zero or @ms pass; returns whether *@done became true. */
bool ekv_test_loop_until(struct event_base *base, const int *done, unsigned ms);

/** Runs @base until @pred(@arg) is true or @ms pass; returns the last value of @pred. */
bool ekv_test_loop_until_pred(struct event_base *base, bool (*pred)(void *arg), void *arg,
                              unsigned ms);

#endif /* EDGEKV_TESTS_EVLOOP_H */

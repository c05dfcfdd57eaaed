/* evloop.c - driving a libevent loop from a test, with a deadline. */
#include "config.h"

#include <event2/event.h>

#include "evloop.h"

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

static bool flag_set(void *arg)
{
    return *(const int *)arg != 0;
}

bool ekv_test_loop_until_pred(struct event_base *base, bool (*pred)(void *arg), void *arg,
                              unsigned ms)
{
    bool expired = false;
    /* a short periodic tick: the predicate may depend on other threads, not only events */
    struct timeval tick = {0, 10000};
    struct event *t = event_new(base, -1, EV_PERSIST, on_tick, &expired);
    unsigned waited = 0;

    evtimer_add(t, &tick);
    while (!pred(arg) && waited < ms) {
        expired = false;
        event_base_loop(base, EVLOOP_ONCE);
        if (expired)
            waited += 10;
    }
    event_free(t);
    return pred(arg);
}

bool ekv_test_loop_until(struct event_base *base, const int *done, unsigned ms)
{
    return ekv_test_loop_until_pred(base, flag_set, (void *)done, ms);
}

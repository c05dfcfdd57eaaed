/* hc.h - a keep-alive HTTP client for the suites' worker threads (soaks): one connection to a
 * POP, kept across requests, made again when it breaks; it never fails the test itself, so any
 * thread may use it. */
#ifndef EDGEKV_TESTS_HC_H
#define EDGEKV_TESTS_HC_H

#include <stdatomic.h>

#include "testutil.h"

struct ekv_hc {
    unsigned short port; /* the POP */
    struct ekv_test_conn *c;
    _Atomic unsigned short *follow; /* NULL, or where the POP's port is published when it is
                                       started again on another port: read on each connect */
};

/**
 * Sends the whole request @req (@len bytes) and reads its final response into @r (@flags as
 * ekv_test_read()), on the kept connection or, once, a new one. 0 on success (free @r), -1 if
 * there was no valid response (@r holds nothing).
 */
int ekv_hc_do(struct ekv_hc *h, const char *req, size_t len, unsigned flags,
              struct ekv_test_resp *r);

/** Closes the kept connection (the next request makes a new one). */
void ekv_hc_close(struct ekv_hc *h);

#endif /* EDGEKV_TESTS_HC_H */

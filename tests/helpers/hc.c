/* hc.c - a keep-alive HTTP client for worker threads (hc.h). */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "hc.h"

int ekv_hc_do(struct ekv_hc *h, const char *req, size_t len, unsigned flags,
              struct ekv_test_resp *r)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (h->c == NULL) {
            if (h->follow != NULL)
                h->port = atomic_load(h->follow);
            if (ekv_test_try_connect(h->port, &h->c) != 0) {
                h->c = NULL;
                return -1;
            }
        }
        if (ekv_test_send(h->c, req, len) == 0 &&
            ekv_test_read_final(h->c, r, flags) == EKV_TEST_OK) {
            const char *conn = ekv_test_resp_header(r, "Connection");
            if (conn != NULL && strcasecmp(conn, "close") == 0) {
                ekv_test_close(h->c);
                h->c = NULL;
            }
            return 0;
        }
        ekv_test_resp_free(r);
        ekv_test_close(h->c);
        h->c = NULL;
    }
    return -1;
}

void ekv_hc_close(struct ekv_hc *h)
{
    ekv_test_close(h->c);
    h->c = NULL;
}

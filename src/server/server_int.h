/* server_int.h - the server module's private helpers. */
#ifndef EDGEKV_SERVER_INT_H
#define EDGEKV_SERVER_INT_H

#include "edgekv/common.h"

struct ekv_conf_addr;

/**
 * Resolves @addr (blocking: start-up only), binds and listens with SO_REUSEADDR (never
 * SO_REUSEPORT: a second edgekv on the same port must fail, not split the traffic).
 * Writes the bound "HOST:PORT" (the real port when @addr asked for 0) to @bound.
 * Returns the non-blocking, close-on-exec socket, or -1 with @err set.
 */
int ekv_listen_bind(const struct ekv_conf_addr *addr, char *bound, size_t boundlen, char *err,
                    size_t errlen);

#endif /* EDGEKV_SERVER_INT_H */

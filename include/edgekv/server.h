/* server.h - the process: listening sockets, worker threads (one event loop each), signals and
 * graceful shutdown. The module that wires the others together. */
#ifndef EDGEKV_SERVER_H
#define EDGEKV_SERVER_H

#include "edgekv/common.h"

struct ekv_conf;
struct ekv_server;

/**
 * Resolves and binds the listen (and admin-listen) addresses, raises the open-file limit to
 * fit max-connections and prepares the workers; logs "listening on HOST:PORT". Blocking calls
 * (DNS) happen here, never later. @conf is borrowed and must outlive the server.
 * Returns NULL with a reason in @err on failure (e.g. address in use).
 */
struct ekv_server *ekv_server_new(const struct ekv_conf *conf, char *err, size_t errlen);

/**
 * Starts the worker threads and runs the signal loop on the calling thread until SIGTERM or
 * SIGINT: then stops accepting, lets in-flight requests finish for up to shutdown-timeout and
 * returns 0 (a second signal stops at once). Returns 1 if the workers could not start.
 */
int ekv_server_run(struct ekv_server *srv);

/** Closes the sockets and frees everything; NULL is a no-op. */
void ekv_server_free(struct ekv_server *srv);

#endif /* EDGEKV_SERVER_H */

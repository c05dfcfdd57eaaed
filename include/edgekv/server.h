/* server.h - the process: listening sockets, worker threads (one event loop each), signals and
 * graceful shutdown. The module that wires the others together. */
#ifndef EDGEKV_SERVER_H
#define EDGEKV_SERVER_H

#include "edgekv/common.h"

struct ekv_conf;
struct ekv_server;

/**
 * Resolves and binds the listen (and admin-listen) addresses, opens the access log, raises the
 * open-file limit to fit max-connections and prepares the workers; logs "listening on
 * HOST:PORT". Blocking calls (DNS) happen here, never later. Takes @conf over (it becomes the
 * first configuration snapshot; freed by the server, also on failure). Returns NULL with a
 * reason in @err on failure (e.g. address in use).
 */
struct ekv_server *ekv_server_new(struct ekv_conf *conf, char *err, size_t errlen);

/** What `edgekv -t` checks beyond the configuration's syntax, without contacting Redis: the
 * files it names load (the origin-tls-* certificates, keys and CA, the key matching its
 * certificate). EKV_OK, or EKV_ERROR with "directive: reason" in @err. @conf is borrowed. */
EKV_NODISCARD int ekv_server_check(const struct ekv_conf *conf, char *err, size_t errlen);

/**
 * Builds the configuration a reload (SIGHUP) switches to: a new, validated configuration the
 * server takes over, or NULL with "FILE:LINE: reason" in @err (the running one is kept).
 * Called on the thread that runs ekv_server_run(); may read files.
 */
typedef struct ekv_conf *ekv_server_reload_cb(void *arg, char *err, size_t errlen);

/**
 * Enables SIGHUP reloads: @cb builds each new configuration. Reloadable directives (tokens,
 * log-level, TTLs, limits read per request, access-log) take effect on every worker; the others
 * keep their running value, with a warning naming them. Without it, SIGHUP is only logged.
 */
void ekv_server_set_reload(struct ekv_server *srv, ekv_server_reload_cb *cb, void *arg);

/**
 * Starts the worker threads and runs the signal loop on the calling thread until SIGTERM or
 * SIGINT: then stops accepting, lets in-flight requests finish for up to shutdown-timeout and
 * returns 0 (a second signal stops at once). SIGHUP reloads the configuration (see
 * ekv_server_set_reload) and reopens the access log. Returns 1 if the workers could not start.
 */
int ekv_server_run(struct ekv_server *srv);

/** Closes the sockets and frees everything; NULL is a no-op. */
void ekv_server_free(struct ekv_server *srv);

#endif /* EDGEKV_SERVER_H */

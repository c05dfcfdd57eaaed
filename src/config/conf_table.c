/* conf_table.c - the directive table: every directive of edgekv, its type, bounds, default
 * and help text. It drives the defaults, both front ends, --help and the sample file
 * (conf/edgekv.conf is the output of --print-sample-config). */
#include "config.h"

#include <string.h>

#include "edgekv/conf.h"

#include "conf_int.h"

#define F(field) offsetof(struct ekv_conf, field)

/* One directive per paragraph reads better than clang-format's one field per line. */
/* clang-format off */
const struct ekv_conf_directive ekv_conf_directives[] = {
    {.name = "listen", .type = T_ADDR, .flags = D_REQUIRED, .offset = F(listen),
     .def = "127.0.0.1:8080", .arg = "HOST:PORT",
     .help = "Address of the HTTP API: host:port, or [v6]:port for IPv6. Port 0 lets the\n"
             "kernel pick a free port; either way the log says \"listening on HOST:PORT\".\n"
             "Use 0.0.0.0:8080 or [::]:8080 to accept other machines (see protected-mode)."},
    {.name = "admin-listen", .type = T_ADDR, .offset = F(admin_listen), .def = "",
     .example = "127.0.0.1:9090", .arg = "HOST:PORT",
     .help = "A separate address for /metrics, /healthz and /readyz, which never ask for a\n"
             "token: keep it on a private address. Empty: they are served on listen."},
    {.name = "origin", .type = T_ORIGIN, .flags = D_REQUIRED | D_SECRET, .offset = F(origin_url),
     .def = "redis://127.0.0.1:6379/0", .arg = "URL",
     .help = "The Redis origin (Redis >= 6.2), one of\n"
             "  redis://[[user]:password@]host[:port][/db]   port 6379 and db 0 by default\n"
             "  unix:///path/redis.sock[?db=N]\n"
             "  redis-sentinel://[[user]:password@]host:port[,host:port...]/MASTER[/db]\n"
             "      the master that these Sentinels name (port 26379 by default); the\n"
             "      user and password are the data nodes' (see sentinel-password)\n"
             "  redis-cluster://[[user]:password@]host:port[,host:port...]\n"
             "      a Redis Cluster (7.0 or later), from these seed nodes\n"
             "  rediss://..., rediss-sentinel://..., rediss-cluster://...   the same over TLS\n"
             "      (see origin-tls-*)\n"
             "Percent-encode special characters of the password, and double-quote the URL\n"
             "if it contains '#'. The password is never logged. edgekv -t does not connect."},
    {.name = "namespace", .type = T_STRING, .flags = D_REQUIRED, .offset = F(ns),
     .check = ekv_conf_check_namespace, .def = "edgekv:", .arg = "PREFIX",
     .help = "Prefix of every Redis key edgekv owns (1-64 bytes; no spaces, '{' or '}').\n"
             "Instances with the same origin and namespace share their stores."},
    {.name = "threads", .type = T_UINT, .offset = F(threads), .min = 0, .max = 256, .def = "0",
     .arg = "N",
     .help = "Worker threads, each with its own event loop and origin connections.\n"
             "0 = one per CPU."},
    {.name = "max-connections", .type = T_UINT, .offset = F(max_connections), .min = 1,
     .max = 1000000, .def = "10000", .arg = "N",
     .help = "Client connections open at once; more wait in the kernel's accept queue.\n"
             "edgekv raises its open-file limit to fit, and says so at start-up if it cannot."},
    {.name = "idle-timeout", .type = T_DURATION, .offset = F(idle_timeout_ms), .min = 1,
     .max = 24 * HOUR, .def = "60s", .arg = "DURATION",
     .help = "How long a keep-alive connection may sit idle between requests before it is\n"
             "closed."},
    {.name = "header-timeout", .type = T_DURATION, .offset = F(header_timeout_ms), .min = 1,
     .max = HOUR, .def = "10s", .arg = "DURATION",
     .help = "Time a client has to send a request's line and headers; slower clients are\n"
             "disconnected."},
    {.name = "shutdown-timeout", .type = T_DURATION, .offset = F(shutdown_timeout_ms),
     .min = 0, .max = HOUR, .def = "10s", .arg = "DURATION",
     .help = "On SIGTERM or SIGINT, edgekv stops accepting connections and lets requests in\n"
             "flight finish for this long, then closes what remains. 0 = close at once."},
    {.name = "max-header-bytes", .type = T_SIZE, .offset = F(max_header_bytes), .min = KB,
     .max = MB, .def = "32kb", .arg = "SIZE",
     .help = "Largest request line plus headers. Past it the request is refused with 414\n"
             "(request line) or 431 (headers)."},
    {.name = "batch-max-bytes", .type = T_SIZE, .flags = D_RELOAD, .offset = F(batch_max_bytes), .min = KB,
     .max = 4 * GB, .def = "100mb", .arg = "SIZE",
     .help = "Largest body of a batch request (PUT .../batch); larger bodies get 413."},
    {.name = "cache-max-bytes", .type = T_SIZE, .offset = F(cache_max_bytes), .min = 0,
     .max = 1024 * GB, .def = "256mb", .arg = "SIZE",
     .help = "Memory budget of the edge cache, per-entry overhead included. The least\n"
             "recently used entries are evicted to stay under it. 0 disables the cache."},
    {.name = "cache-max-item-bytes", .type = T_SIZE, .flags = D_RELOAD, .offset = F(cache_max_item_bytes),
     .min = 0, .max = GB, .def = "1mb", .arg = "SIZE",
     .help = "Values larger than this are served but not cached."},
    {.name = "cache-max-ttl", .type = T_DURATION, .flags = D_RELOAD, .offset = F(cache_max_ttl_ms), .min = 1,
     .max = 168 * HOUR, .def = "300s", .arg = "DURATION",
     .help = "Longest time an entry stays in the edge cache, however long the item lives in\n"
             "Redis: a safety net behind invalidations."},
    {.name = "negative-ttl", .type = T_DURATION, .flags = D_RELOAD, .offset = F(negative_ttl_ms), .min = 0,
     .max = 24 * HOUR, .def = "5s", .arg = "DURATION",
     .help = "How long a missing key (404) is cached. 0 = never cache misses."},
    {.name = "max-staleness", .type = T_DURATION, .flags = D_RELOAD, .offset = F(max_staleness_ms), .min = 100,
     .max = HOUR, .def = "3s", .arg = "DURATION",
     .help = "No hit is served once the invalidation link to Redis has been silent for this\n"
             "long; reads go to the origin until it is back. This bounds how long a POP\n"
             "that lost its link can serve an outdated value. The link's heartbeat runs\n"
             "every quarter of the start-up value: lower it by more than half only with a\n"
             "restart."},
    {.name = "stale-if-error", .type = T_DURATION, .flags = D_RELOAD, .offset = F(stale_if_error_ms), .min = 0,
     .max = 168 * HOUR, .def = "30s", .arg = "DURATION",
     .help = "While the origin is unreachable, cached entries may still be served, marked\n"
             "stale, for this long after the trouble began (never past an item's own TTL).\n"
             "0 = never serve stale data."},
    {.name = "origin-timeout", .type = T_DURATION, .offset = F(origin_timeout_ms), .min = 1,
     .max = 10 * MIN, .def = "1s", .arg = "DURATION",
     .help = "Deadline of each request to the origin. Past it the client gets 503 (or a\n"
             "stale entry, see stale-if-error)."},
    {.name = "value-max-bytes", .type = T_SIZE, .flags = D_RELOAD, .offset = F(value_max_bytes), .min = 1,
     .max = GB, .def = "25mb", .arg = "SIZE",
     .help = "Largest value a write may store (append and prepend included). Larger writes\n"
             "get 413, and their body is not buffered past the limit."},
    {.name = "max-stores", .type = T_UINT, .flags = D_RELOAD, .offset = F(max_stores), .min = 1, .max = 1000000,
     .def = "50", .arg = "N",
     .help = "Most KV stores that may exist; creating one more gets 400."},
    {.name = "store-shards", .type = T_UINT, .flags = D_RELOAD, .offset = F(store_shards), .min = 1,
     .max = 1024, .def = "16", .arg = "N",
     .help = "Buckets (hash-tag slots) a new store spreads over, so that on a Redis Cluster\n"
             "one store is not bounded by one node. Fixed when the store is created (it is\n"
             "recorded with it); changing it affects stores created afterwards. 1 keeps a\n"
             "store in one slot, under the tag {<sid>} of stores made before buckets."},
    {.name = "service-id", .type = T_STRING, .flags = D_RELOAD, .offset = F(service_id), .check = ekv_conf_check_word,
     .def = "", .example = "SU1Z0isxPaozGVKXdv0eY", .arg = "ID",
     .help = "The service whose resource links /kv/{link}/... resolves, before store names.\n"
             "Empty: /kv/{name} resolves store names only."},
    {.name = "api-token", .type = T_LIST, .flags = D_SECRET | D_RELOAD, .offset = F(api_tokens),
     .check = ekv_conf_check_token, .def = "", .example = "secret", .arg = "TOKEN",
     .help = "A token with scope global (everything), sent by clients as \"Fastly-Key: TOKEN\".\n"
             "Repeat the directive to accept several tokens (e.g. while rotating them);\n"
             "double-quote a token that contains '#'. With no api-token at all, edgekv runs\n"
             "open (development mode) and says so at start-up."},
    {.name = "read-token", .type = T_LIST, .flags = D_SECRET | D_RELOAD, .offset = F(read_tokens),
     .check = ekv_conf_check_token, .def = "", .example = "read-only-secret", .arg = "TOKEN",
     .help = "A token with scope global:read (GET, HEAD and listings only). May repeat."},
    {.name = "edge-read-public", .type = T_BOOL, .flags = D_RELOAD, .offset = F(edge_read_public), .def = "no",
     .arg = "yes|no",
     .help = "yes: anonymous GET and HEAD on the edge path /kv/... need no token. Every\n"
             "other request still does (when tokens are configured)."},
    {.name = "protected-mode", .type = T_BOOL, .flags = D_RELOAD, .offset = F(protected_mode), .def = "yes",
     .arg = "yes|no",
     .help = "yes: refuse to start when listen is not a loopback address and no api-token\n"
             "is set, as Redis does. Say no only if a firewall you trust guards the port."},
    {.name = "log-level", .type = T_LOGLEVEL, .flags = D_RELOAD, .offset = F(log_level),
     .def = "info", .arg = "LEVEL",
     .help = "debug, info, warn or error. Logs go to stderr, one line per event; errors\n"
             "caused by a client (malformed requests, bad tokens) are logged at info, at\n"
             "most one line per client every 10 seconds."},
    {.name = "access-log", .type = T_STRING, .flags = D_RELOAD, .offset = F(access_log),
     .check = ekv_conf_check_path, .def = "", .example = "/var/log/edgekv/access.log", .arg = "FILE",
     .help = "Append one line per answered request to FILE (created if needed, mode 0640):\n"
             "  CLIENT - - [TIME] \"METHOD PATH HTTP/1.x\" STATUS BYTES SECONDS \"CACHE-STATUS\"\n"
             "Lines are buffered and written at least once a second, never blocking a\n"
             "request. SIGHUP reopens the file (for logrotate). Empty: no access log."},
    {.name = "tls-listen", .type = T_ADDR, .offset = F(tls_listen), .def = "",
     .example = "0.0.0.0:8443", .arg = "HOST:PORT",
     .help = "Address of the HTTPS API (HTTP/1.1 over TLS 1.2 or 1.3), served beside listen\n"
             "with the same routes and limits. Port 0 lets the kernel pick a free port; the\n"
             "log says \"listening (tls) on HOST:PORT\". Needs tls-cert-file and\n"
             "tls-key-file. Protected mode treats it as it treats listen. Empty: no HTTPS."},
    {.name = "tls-cert-file", .type = T_STRING, .flags = D_RELOAD, .offset = F(tls_cert_file),
     .check = ekv_conf_check_path, .def = "", .example = "/etc/edgekv/tls/fullchain.pem",
     .arg = "FILE",
     .help = "The PEM certificate of tls-listen, followed by its intermediate CAs (a\n"
             "certbot fullchain.pem). SIGHUP reads it again: new connections get the new\n"
             "certificate; one that does not load fails the reload, the old one stays."},
    {.name = "tls-key-file", .type = T_STRING, .flags = D_RELOAD, .offset = F(tls_key_file),
     .check = ekv_conf_check_path, .def = "", .example = "/etc/edgekv/tls/privkey.pem",
     .arg = "FILE",
     .help = "The private key (PEM, not encrypted) of tls-cert-file; read again on SIGHUP."},
    {.name = "tls-client-ca-file", .type = T_STRING, .flags = D_RELOAD,
     .offset = F(tls_client_ca_file), .check = ekv_conf_check_path, .def = "",
     .example = "/etc/edgekv/tls/clients-ca.pem", .arg = "FILE",
     .help = "Mutual TLS: every HTTPS client must present a certificate that chains to a CA\n"
             "of this PEM bundle, or the handshake fails (no HTTP answer). Read again on\n"
             "SIGHUP. Empty: clients need no certificate."},
    {.name = "tls-min-version", .type = T_STRING, .flags = D_REQUIRED | D_RELOAD,
     .offset = F(tls_min_version), .check = ekv_conf_check_tls_version, .def = "1.2",
     .arg = "1.2|1.3",
     .help = "The oldest TLS version tls-listen accepts: 1.2 or 1.3 (TLS 1.0 and 1.1 never)."},
    {.name = "tls-ciphers", .type = T_STRING, .flags = D_RELOAD, .offset = F(tls_ciphers),
     .check = ekv_conf_check_word, .def = "", .example = "ECDHE+AESGCM:ECDHE+CHACHA20",
     .arg = "LIST",
     .help = "The OpenSSL cipher list of TLS 1.2 (openssl ciphers -v LIST shows what it\n"
             "selects). Empty: OpenSSL's defaults."},
    {.name = "tls-ciphersuites", .type = T_STRING, .flags = D_RELOAD,
     .offset = F(tls_ciphersuites), .check = ekv_conf_check_word, .def = "",
     .example = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256", .arg = "LIST",
     .help = "The TLS 1.3 cipher suites, separated by ':'. Empty: OpenSSL's defaults."},
    {.name = "origin-tls-ca-file", .type = T_STRING, .offset = F(origin_tls_ca_file),
     .check = ekv_conf_check_path, .def = "", .example = "/etc/edgekv/redis-ca.pem", .arg = "FILE",
     .help = "A rediss:// origin: the PEM CA bundle its certificates must chain to.\n"
             "Empty: the system's trust store. Read at start-up."},
    {.name = "origin-tls-cert-file", .type = T_STRING, .offset = F(origin_tls_cert_file),
     .check = ekv_conf_check_path, .def = "", .example = "/etc/edgekv/redis-client.pem",
     .arg = "FILE",
     .help = "A rediss:// origin: the client certificate (PEM, chain allowed) edgekv shows\n"
             "Redis, for tls-auth-clients yes. Needs origin-tls-key-file."},
    {.name = "origin-tls-key-file", .type = T_STRING, .offset = F(origin_tls_key_file),
     .check = ekv_conf_check_path, .def = "", .example = "/etc/edgekv/redis-client.key",
     .arg = "FILE",
     .help = "The private key (PEM) of origin-tls-cert-file."},
    {.name = "origin-tls-server-name", .type = T_STRING, .offset = F(origin_tls_server_name),
     .check = ekv_conf_check_word, .def = "", .example = "redis.internal", .arg = "NAME",
     .help = "The name the origin's certificate must carry (and the SNI sent). Empty: the\n"
             "host of the origin URL (an IP address is matched against the IP SANs)."},
    {.name = "origin-tls-verify", .type = T_BOOL, .offset = F(origin_tls_verify), .def = "yes",
     .arg = "yes|no",
     .help = "no: accept any certificate from a rediss:// origin. Only for tests: anyone on\n"
             "the path can then read and change the data. Warned about at start-up."},
    {.name = "sentinel-user", .type = T_STRING, .offset = F(sentinel_user),
     .check = ekv_conf_check_word, .def = "", .example = "edgekv", .arg = "NAME",
     .help = "The ACL user edgekv authenticates as to the Sentinels of a\n"
             "redis-sentinel:// origin, with sentinel-password. Empty: the default user."},
    {.name = "sentinel-password", .type = T_STRING, .flags = D_SECRET,
     .offset = F(sentinel_password), .check = ekv_conf_check_word, .def = "",
     .example = "sentinel-secret", .arg = "PASSWORD",
     .help = "The password of the Sentinels (requirepass in sentinel.conf). Empty: the\n"
             "Sentinels ask for none. Never logged."},
};
/* clang-format on */

#undef F

_Static_assert(EKV_ARRAY_LEN(ekv_conf_directives) == EKV_CONF_NDIRECTIVES,
               "EKV_CONF_NDIRECTIVES (conf_int.h) must count the directives");

const struct ekv_conf_directive *ekv_conf_lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < EKV_CONF_NDIRECTIVES; i++)
        if (strlen(ekv_conf_directives[i].name) == len &&
            memcmp(ekv_conf_directives[i].name, name, len) == 0)
            return &ekv_conf_directives[i];
    return NULL;
}

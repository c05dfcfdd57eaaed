/* conf.h - edgekv's configuration: one table of directives drives parsing, validation,
 * --help and the documented sample file (conf/edgekv.conf). A loaded configuration is a plain,
 * immutable snapshot: build a new one to change anything. */
#ifndef EDGEKV_CONF_H
#define EDGEKV_CONF_H

#include <stdio.h>

#include "edgekv/common.h"

/** A listen address: "host:port" or "[v6]:port". @host is without brackets. */
struct ekv_conf_addr {
    char *host; /* NULL when the directive is empty (e.g. no admin-listen) */
    uint16_t port; /* 0 = let the kernel pick one */
};

/** What kind of origin the URL names. */
enum ekv_conf_origin_kind {
    EKV_ORIGIN_STANDALONE = 0, /* redis://, rediss://, unix://: one Redis */
    EKV_ORIGIN_SENTINEL,       /* redis-sentinel://: the master that Sentinels name */
    EKV_ORIGIN_CLUSTER,        /* redis-cluster://: a Redis Cluster, from seed nodes */
};

/** The most Sentinels or seed nodes an origin URL lists. */
#define EKV_CONF_MAX_NODES 16

/** A host and a port (a Sentinel, a seed node). */
struct ekv_conf_hostport {
    char *host;
    uint16_t port;
};

/** The parsed `origin` URL: redis://[[user]:password@]host:port[/db], unix:///path,
 * redis-sentinel://[[user]:password@]h:p[,h:p...]/MASTER[/db] or
 * redis-cluster://[[user]:password@]h:p[,h:p...]. */
struct ekv_conf_origin {
    enum ekv_conf_origin_kind kind;
    char *host;      /* NULL for a unix socket, a Sentinel or a cluster origin */
    uint16_t port;   /* default 6379 */
    char *unix_path; /* NULL for TCP */
    char *user;      /* NULL unless an ACL user is given */
    char *password;  /* NULL unless given (percent-decoded) */
    unsigned db;     /* default 0 */
    bool tls;        /* rediss://: every connection is TLS (origin-tls-*) */
    struct ekv_conf_hostport nodes[EKV_CONF_MAX_NODES]; /* the Sentinels, or the seed nodes */
    size_t nnodes;   /* 0 for a standalone origin */
    char *master;    /* redis-sentinel://: the master's name */
    const char *tls_name; /* the name a TLS connection verifies (and sends as SNI) when
                           * origin-tls-server-name is not set; NULL: the host. Borrowed. */
};

/** A list of strings (repeatable directives such as api-token). */
struct ekv_conf_strlist {
    char **items;
    size_t count;
};

/** Every directive of API.md "Running edgekv". Durations are milliseconds, sizes bytes. */
struct ekv_conf {
    struct ekv_conf_addr listen;       /* listen: 127.0.0.1:8080 */
    struct ekv_conf_addr admin_listen; /* admin-listen: empty */
    char *origin_url;                  /* origin: as written (password included: never log it) */
    struct ekv_conf_origin origin;     /* origin, parsed */
    char *ns;                          /* namespace: "edgekv:" */
    unsigned threads;                  /* threads: 0 = one per CPU */
    unsigned max_connections;          /* max-connections: 10000 */
    uint64_t idle_timeout_ms;          /* idle-timeout: 60s */
    uint64_t header_timeout_ms;        /* header-timeout: 10s */
    uint64_t shutdown_timeout_ms;      /* shutdown-timeout: 10s */
    uint64_t max_header_bytes;         /* max-header-bytes: 32kb */
    uint64_t batch_max_bytes;          /* batch-max-bytes: 100mb */
    uint64_t cache_max_bytes;          /* cache-max-bytes: 256mb */
    uint64_t cache_max_item_bytes;     /* cache-max-item-bytes: 1mb */
    uint64_t cache_max_ttl_ms;         /* cache-max-ttl: 300s */
    uint64_t negative_ttl_ms;          /* negative-ttl: 5s */
    uint64_t max_staleness_ms;         /* max-staleness: 3s */
    uint64_t stale_if_error_ms;        /* stale-if-error: 30s */
    uint64_t origin_timeout_ms;        /* origin-timeout: 1s */
    uint64_t value_max_bytes;          /* value-max-bytes: 25mb */
    unsigned max_stores;               /* max-stores: 50 */
    unsigned store_shards;             /* store-shards: 16 */
    char *service_id;                  /* service-id: empty = NULL */
    struct ekv_conf_strlist api_tokens;  /* api-token (repeatable) */
    struct ekv_conf_strlist read_tokens; /* read-token (repeatable) */
    bool edge_read_public;             /* edge-read-public: no */
    bool protected_mode;               /* protected-mode: yes */
    int log_level;                     /* log-level: info (enum ekv_log_level) */
    char *access_log;                  /* access-log: empty = NULL (no access log) */
    struct ekv_conf_addr tls_listen;   /* tls-listen: empty (no HTTPS) */
    char *tls_cert_file;               /* tls-cert-file: empty = NULL */
    char *tls_key_file;                /* tls-key-file: empty = NULL */
    char *tls_client_ca_file;          /* tls-client-ca-file: empty = NULL (no mTLS) */
    char *tls_min_version;             /* tls-min-version: "1.2" or "1.3" */
    char *tls_ciphers;                 /* tls-ciphers: empty = NULL (OpenSSL's defaults) */
    char *tls_ciphersuites;            /* tls-ciphersuites: empty = NULL (OpenSSL's defaults) */
    char *origin_tls_ca_file;          /* origin-tls-ca-file: empty = NULL (the system's store) */
    char *origin_tls_cert_file;        /* origin-tls-cert-file: empty = NULL */
    char *origin_tls_key_file;         /* origin-tls-key-file: empty = NULL */
    char *origin_tls_server_name;      /* origin-tls-server-name: empty = NULL (the URL's host) */
    bool origin_tls_verify;            /* origin-tls-verify: yes */
    char *sentinel_user;               /* sentinel-user: empty = NULL */
    char *sentinel_password;           /* sentinel-password: empty = NULL (never log it) */
    char **where;                      /* where each directive was set ("FILE:LINE",
                                        * "--NAME"), indexed like the table; NULL entries for
                                        * defaults. Read it with ekv_conf_where(). */
};

/** What the command line asked for besides directives. */
enum ekv_conf_action {
    EKV_CONF_RUN = 0,     /* run the server */
    EKV_CONF_TEST,        /* -t: check the configuration and exit */
    EKV_CONF_HELP,        /* --help / -h */
    EKV_CONF_VERSION,     /* --version / -v */
    EKV_CONF_SAMPLE,      /* --print-sample-config: the documented conf/edgekv.conf */
    EKV_CONF_MAN,         /* --print-man-page: edgekv(8) */
};

/** A configuration with every directive at its built-in default. Never NULL. */
struct ekv_conf *ekv_conf_new(void);
/** Frees @conf and everything it owns; NULL is a no-op. */
void ekv_conf_free(struct ekv_conf *conf);

/**
 * Applies one directive. @where names the source for error messages ("edgekv.conf:12" or
 * "--listen"). Repeatable directives append. Returns EKV_OK, or EKV_EINVAL with
 * "WHERE: reason" written to @err.
 */
EKV_NODISCARD int ekv_conf_set(struct ekv_conf *conf, const char *name, const char *value,
                               const char *where, char *err, size_t errlen);

/**
 * Reads a configuration file ("directive value" lines, '#' comments, values may be
 * double-quoted). Unknown directives, bad values and repeated non-repeatable directives are
 * errors reported as "FILE:LINE: reason". Returns EKV_OK or EKV_EINVAL.
 */
EKV_NODISCARD int ekv_conf_load_file(struct ekv_conf *conf, const char *path, char *err,
                                     size_t errlen);

/**
 * Checks what needs more than one directive (protected mode: a non-loopback `listen` without
 * an `api-token`; admin-listen equal to listen). Returns EKV_OK or EKV_EINVAL with @err set.
 */
EKV_NODISCARD int ekv_conf_validate(const struct ekv_conf *conf, char *err, size_t errlen);

/**
 * Parses the whole command line (argv[0] ignored): -c FILE, -t, -h/--help, -v/--version,
 * --print-sample-config, --DIRECTIVE VALUE. Loads -c FILE first, then applies the command-line
 * directives (they win; a repeatable directive given on the command line replaces the file's
 * list), then validates. On success *@out is a new configuration (caller frees) unless the
 * action is HELP, VERSION or SAMPLE (then *@out is NULL). Returns the action, or EKV_EINVAL
 * with @err set ("--threads: ..." / "FILE:LINE: ...").
 */
EKV_NODISCARD int ekv_conf_from_args(int argc, char **argv, struct ekv_conf **out, char *err,
                                     size_t errlen);

/**
 * True when @a and @b hold the same value for every directive (a reload that changes nothing,
 * or a test that a parsed file equals the defaults).
 */
bool ekv_conf_equal(const struct ekv_conf *a, const struct ekv_conf *b);

/**
 * Prepares @next, a configuration read for a reload (SIGHUP), to replace @running: each
 * directive that needs a restart and differs is set back to its running value, so @next
 * describes what will really run. Writes the names of the reloadable directives that differ
 * to @changed and those set back to @restart (comma-separated, "" for none; never values,
 * which may be secrets). Returns how many directives were set back. Validate @next afterwards
 * (ekv_conf_validate()): a mix of old and new values may not pass.
 */
unsigned ekv_conf_reload_merge(struct ekv_conf *next, const struct ekv_conf *running,
                               char *changed, size_t changedlen, char *restart,
                               size_t restartlen);

/**
 * Where directive @name got its value: "FILE:LINE" or "--NAME" (the command line), or NULL
 * for a built-in default (or an unknown name). Valid as long as @conf.
 */
const char *ekv_conf_where(const struct ekv_conf *conf, const char *name);

/**
 * "FILE:LINE: NAME", "--NAME" or "NAME" (a default) into @buf: how an error about the value of
 * directive @name names it (edgekv -t, a reload).
 */
void ekv_conf_fmt_where(const struct ekv_conf *conf, const char *name, char *buf, size_t len);

/** Whether a new value of directive @name takes effect on reload (false: restart, or unknown). */
bool ekv_conf_reloadable(const char *name);

/** Prints usage and every directive with its default and help text. */
void ekv_conf_print_help(FILE *fp);
/** Prints the documented sample configuration file (the shipped conf/edgekv.conf). */
void ekv_conf_print_sample(FILE *fp);
/** Writes the body of a manual section (man(7) requests) to @fp. */
typedef void ekv_conf_man_section_cb(FILE *fp, void *arg);
/** One ".TP" entry of the manual: @tag in bold, @note (or NULL) in parentheses, @text. */
void ekv_conf_man_entry(FILE *fp, const char *tag, const char *note, const char *text);
/** Prints the manual, edgekv(8), in man(7) format: the directives from the same table as
 * --help and the sample, the metrics section from @metrics. */
void ekv_conf_print_man(FILE *fp, const char *version, ekv_conf_man_section_cb *metrics,
                        void *arg);

/**
 * Parses "host:port" or "[v6]:port" into @addr (empty string: host NULL). Returns EKV_OK or
 * EKV_EINVAL with a reason in @err.
 */
EKV_NODISCARD int ekv_conf_parse_addr(const char *s, struct ekv_conf_addr *addr, char *err,
                                      size_t errlen);
/** Parses an origin URL into @o (fields owned by @o; free with ekv_conf_origin_clear()). */
EKV_NODISCARD int ekv_conf_parse_origin(const char *s, struct ekv_conf_origin *o, char *err,
                                        size_t errlen);
void ekv_conf_origin_clear(struct ekv_conf_origin *o);
/** True when @host is a loopback address ("127.0.0.0/8", "::1", "localhost"). */
bool ekv_conf_host_is_loopback(const char *host);

#endif /* EDGEKV_CONF_H */

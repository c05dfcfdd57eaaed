/* conf.c - edgekv's configuration. One static table of directives drives the built-in
 * defaults, the file and command-line parsers, their validation, --help and the documented
 * sample file (conf/edgekv.conf is the output of --print-sample-config). A loaded
 * configuration is a plain snapshot owned by the caller; nothing here keeps global state. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"
#include "edgekv/log.h"
#include "edgekv/text.h"

#define KB (UINT64_C(1) << 10)
#define MB (UINT64_C(1) << 20)
#define GB (UINT64_C(1) << 30)
#define SEC UINT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

/* What a directive's value is, and therefore which field type its offset points at. */
enum dtype {
    T_ADDR,     /* struct ekv_conf_addr */
    T_ORIGIN,   /* char *origin_url, and struct ekv_conf_origin origin beside it */
    T_STRING,   /* char *; empty = NULL */
    T_UINT,     /* unsigned, within [min, max] */
    T_SIZE,     /* uint64_t bytes (ekv_parse_size), within [min, max] */
    T_DURATION, /* uint64_t milliseconds (ekv_parse_duration), within [min, max] */
    T_BOOL,     /* bool: yes/no, true/false, on/off, 1/0 */
    T_LOGLEVEL, /* int (enum ekv_log_level) */
    T_LIST,     /* struct ekv_conf_strlist; the directive may repeat and each one appends */
};

#define D_REQUIRED 0x1u /* the value may not be empty */
#define D_SECRET 0x2u   /* never echo the value in an error message */
#define D_RELOAD 0x4u   /* SIGHUP applies a new value; otherwise it needs a restart */

struct directive {
    const char *name;
    enum dtype type;
    unsigned flags;
    size_t offset;                           /* of the field in struct ekv_conf */
    uint64_t min, max;                       /* T_UINT, T_SIZE, T_DURATION */
    const char *(*check)(const char *value); /* strings and lists: why @value is bad, or NULL */
    const char *def;     /* the default, parsed by the same setter as the file */
    const char *example; /* shown commented out in the sample when def is empty */
    const char *arg;     /* placeholder in --help */
    const char *help;    /* lines separated by '\n'; becomes the sample's comments */
};

static const char *check_namespace(const char *v);
static const char *check_token(const char *v);
static const char *check_word(const char *v);
static const char *check_path(const char *v);

#define F(field) offsetof(struct ekv_conf, field)

/* One directive per paragraph reads better than clang-format's one field per line. */
/* clang-format off */
static const struct directive directives[] = {
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
             "Percent-encode special characters of the password, and double-quote the URL\n"
             "if it contains '#'. The password is never logged. edgekv -t does not connect."},
    {.name = "namespace", .type = T_STRING, .flags = D_REQUIRED, .offset = F(ns),
     .check = check_namespace, .def = "edgekv:", .arg = "PREFIX",
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
    {.name = "service-id", .type = T_STRING, .flags = D_RELOAD, .offset = F(service_id), .check = check_word,
     .def = "", .example = "SU1Z0isxPaozGVKXdv0eY", .arg = "ID",
     .help = "The service whose resource links /kv/{link}/... resolves, before store names.\n"
             "Empty: /kv/{name} resolves store names only."},
    {.name = "api-token", .type = T_LIST, .flags = D_SECRET | D_RELOAD, .offset = F(api_tokens),
     .check = check_token, .def = "", .example = "secret", .arg = "TOKEN",
     .help = "A token with scope global (everything), sent by clients as \"Fastly-Key: TOKEN\".\n"
             "Repeat the directive to accept several tokens (e.g. while rotating them);\n"
             "double-quote a token that contains '#'. With no api-token at all, edgekv runs\n"
             "open (development mode) and says so at start-up."},
    {.name = "read-token", .type = T_LIST, .flags = D_SECRET | D_RELOAD, .offset = F(read_tokens),
     .check = check_token, .def = "", .example = "read-only-secret", .arg = "TOKEN",
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
     .check = check_path, .def = "", .example = "/var/log/edgekv/access.log", .arg = "FILE",
     .help = "Append one line per answered request to FILE (created if needed, mode 0640):\n"
             "  CLIENT - - [TIME] \"METHOD PATH HTTP/1.x\" STATUS BYTES SECONDS \"CACHE-STATUS\"\n"
             "Lines are buffered and written at least once a second, never blocking a\n"
             "request. SIGHUP reopens the file (for logrotate). Empty: no access log."},
};
/* clang-format on */

#undef F

#define NDIRECTIVES EKV_ARRAY_LEN(directives)

static void EKV_PRINTF(3, 4) errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void *field(struct ekv_conf *conf, const struct directive *d)
{
    return (char *)conf + d->offset;
}

static const void *cfield(const struct ekv_conf *conf, const struct directive *d)
{
    return (const char *)conf + d->offset;
}

static const struct directive *lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < NDIRECTIVES; i++)
        if (strlen(directives[i].name) == len && memcmp(directives[i].name, name, len) == 0)
            return &directives[i];
    return NULL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* True if @v holds a space or a control character. */
static bool has_space_or_ctl(const char *v)
{
    for (; *v != '\0'; v++)
        if ((unsigned char)*v <= ' ' || *v == 0x7f)
            return true;
    return false;
}

static const char *check_namespace(const char *v)
{
    size_t len = strlen(v);

    if (len < 1 || len > 64 || has_space_or_ctl(v) || strpbrk(v, "{}") != NULL)
        return "must be 1 to 64 bytes without spaces, control characters, '{' or '}'";
    return NULL;
}

static const char *check_token(const char *v)
{
    if (*v == '\0')
        return "a token may not be empty";
    if (strlen(v) > 4096)
        return "a token may not be longer than 4096 bytes";
    if (has_space_or_ctl(v))
        return "a token may not contain spaces or control characters";
    return NULL;
}

static const char *check_path(const char *v)
{
    if (strlen(v) > 4096)
        return "must be at most 4096 bytes";
    for (; *v != '\0'; v++)
        if ((unsigned char)*v < ' ' || *v == 0x7f)
            return "may not contain control characters";
    return NULL;
}

static const char *check_word(const char *v)
{
    if (strlen(v) > 255 || has_space_or_ctl(v))
        return "must be at most 255 bytes without spaces or control characters";
    return NULL;
}

struct unit {
    uint64_t mult;
    const char *name;
};

/* @v with the largest of @units (largest first; the last has mult 1) that divides it exactly:
 * "32kb", "1mb", "100b", "3s", "250ms"; 0 is written bare. */
static void fmt_units(char *buf, size_t len, uint64_t v, const struct unit *units)
{
    const struct unit *u = units;

    while (u->mult != 1 && (v == 0 || v % u->mult != 0))
        u++;
    snprintf(buf, len, "%" PRIu64 "%s", v / u->mult, v == 0 ? "" : u->name);
}

static void fmt_size(char *buf, size_t len, uint64_t v)
{
    static const struct unit units[] = {{GB, "gb"}, {MB, "mb"}, {KB, "kb"}, {1, "b"}};

    fmt_units(buf, len, v, units);
}

static void fmt_duration(char *buf, size_t len, uint64_t ms)
{
    static const struct unit units[] = {{HOUR, "h"}, {MIN, "m"}, {SEC, "s"}, {1, "ms"}};

    fmt_units(buf, len, ms, units);
}

static void fmt_bound(const struct directive *d, char *buf, size_t len, uint64_t v)
{
    if (d->type == T_SIZE)
        fmt_size(buf, len, v);
    else if (d->type == T_DURATION)
        fmt_duration(buf, len, v);
    else
        snprintf(buf, len, "%" PRIu64, v);
}

/*
 * Why a size or duration did not parse: true when it has the right shape (digits, then a unit
 * @parse accepts) and so failed only because it does not fit in 64 bits.
 */
static bool too_large(const char *v, int (*parse)(const char *, uint64_t *))
{
    size_t n = strspn(v, "0123456789");
    char probe[16];
    uint64_t ignored;

    if (n == 0 || strlen(v + n) > sizeof(probe) - 2)
        return false;
    snprintf(probe, sizeof(probe), "1%s", v + n);
    return parse(probe, &ignored) == EKV_OK;
}

/* Parses an unsigned, size or duration and checks its range. @v is echoed in reasons. */
static int parse_number(const struct directive *d, const char *v, uint64_t *out, char *why,
                        size_t whylen)
{
    char lo[32], hi[32];
    uint64_t n;

    switch (d->type) {
    case T_UINT:
        if (ekv_parse_u64(v, strlen(v), &n) != EKV_OK) {
            if (*v != '\0' && v[strspn(v, "0123456789")] == '\0')
                errf(why, whylen, "\"%s\" is too large", v);
            else
                errf(why, whylen, "\"%s\" is not a number", v);
            return EKV_EINVAL;
        }
        break;
    case T_SIZE:
        if (ekv_parse_size(v, &n) != EKV_OK) {
            if (too_large(v, ekv_parse_size))
                errf(why, whylen, "\"%s\" is too large", v);
            else
                errf(why, whylen, "\"%s\" is not a size (a number with b, kb, mb or gb)", v);
            return EKV_EINVAL;
        }
        break;
    case T_DURATION:
        if (ekv_parse_duration(v, &n) != EKV_OK) {
            if (too_large(v, ekv_parse_duration))
                errf(why, whylen, "\"%s\" is too large", v);
            else if (*v != '\0' && v[strspn(v, "0123456789")] == '\0')
                errf(why, whylen, "\"%s\" needs a unit: ms, s, m or h (only 0 may go without)", v);
            else
                errf(why, whylen, "\"%s\" is not a duration (a number with ms, s, m or h)", v);
            return EKV_EINVAL;
        }
        break;
    default:
        return EKV_EINVAL;
    }
    if (n < d->min || n > d->max) {
        fmt_bound(d, lo, sizeof(lo), d->min);
        fmt_bound(d, hi, sizeof(hi), d->max);
        errf(why, whylen, "\"%s\" is out of range (%s..%s)", v, lo, hi);
        return EKV_EINVAL;
    }
    *out = n;
    return EKV_OK;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < EKV_ARRAY_LEN(yes); i++) {
        if (ekv_strn_caseeq(v, strlen(v), yes[i])) {
            *out = true;
            return EKV_OK;
        }
        if (ekv_strn_caseeq(v, strlen(v), no[i])) {
            *out = false;
            return EKV_OK;
        }
    }
    return EKV_EINVAL;
}

static int parse_log_level(const char *v)
{
    static const enum ekv_log_level levels[] = {EKV_LOG_DEBUG, EKV_LOG_INFO, EKV_LOG_WARN,
                                                EKV_LOG_ERROR};

    for (size_t i = 0; i < EKV_ARRAY_LEN(levels); i++)
        if (ekv_strn_caseeq(v, strlen(v), ekv_log_level_name(levels[i])))
            return (int)levels[i];
    if (ekv_strn_caseeq(v, strlen(v), "warning"))
        return EKV_LOG_WARN;
    return -1;
}

/* Frees a string that may hold a secret (a token, a password, the origin URL) after
 * overwriting it, so it does not linger in freed memory. */
static void free_secret(char *s)
{
    if (s == NULL)
        return;
    for (volatile char *p = s; *p != '\0'; p++)
        *p = '\0';
    ekv_free(s);
}

static void strlist_clear(struct ekv_conf_strlist *l)
{
    for (size_t i = 0; i < l->count; i++)
        free_secret(l->items[i]);
    ekv_free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void strlist_add(struct ekv_conf_strlist *l, const char *s)
{
    l->items = ekv_realloc(l->items, (l->count + 1) * sizeof(*l->items));
    l->items[l->count++] = ekv_strdup(s);
}

static void addr_clear(struct ekv_conf_addr *a)
{
    ekv_free(a->host);
    a->host = NULL;
    a->port = 0;
}

/*
 * Applies @value to the field of @d and writes a bare reason ("\"abc\" is not a number") to
 * @why on failure; the field is unchanged then.
 */
static int apply(struct ekv_conf *conf, const struct directive *d, const char *value, char *why,
                 size_t whylen)
{
    void *p = field(conf, d);
    const char *reason;
    uint64_t n;

    if ((d->flags & D_REQUIRED) && *value == '\0') {
        errf(why, whylen, "may not be empty");
        return EKV_EINVAL;
    }
    if (d->check != NULL && !(d->type == T_STRING && *value == '\0') &&
        (reason = d->check(value)) != NULL) {
        if (d->flags & D_SECRET)
            errf(why, whylen, "%s", reason);
        else
            errf(why, whylen, "\"%s\" %s", value, reason);
        return EKV_EINVAL;
    }
    switch (d->type) {
    case T_ADDR: {
        struct ekv_conf_addr a = {0};
        if (ekv_conf_parse_addr(value, &a, why, whylen) != EKV_OK)
            return EKV_EINVAL;
        addr_clear(p);
        *(struct ekv_conf_addr *)p = a;
        break;
    }
    case T_ORIGIN: {
        struct ekv_conf_origin o = {0};
        char **url = p;
        if (ekv_conf_parse_origin(value, &o, why, whylen) != EKV_OK)
            return EKV_EINVAL;
        ekv_conf_origin_clear(&conf->origin);
        conf->origin = o;
        free_secret(*url);
        *url = ekv_strdup(value);
        break;
    }
    case T_STRING: {
        char **s = p;
        ekv_free(*s);
        *s = *value == '\0' ? NULL : ekv_strdup(value);
        break;
    }
    case T_UINT:
        if (parse_number(d, value, &n, why, whylen) != EKV_OK)
            return EKV_EINVAL;
        *(unsigned *)p = (unsigned)n;
        break;
    case T_SIZE:
    case T_DURATION:
        if (parse_number(d, value, &n, why, whylen) != EKV_OK)
            return EKV_EINVAL;
        *(uint64_t *)p = n;
        break;
    case T_BOOL:
        if (parse_bool(value, p) != EKV_OK) {
            errf(why, whylen, "\"%s\" is not yes or no", value);
            return EKV_EINVAL;
        }
        break;
    case T_LOGLEVEL: {
        int level = parse_log_level(value);
        if (level < 0) {
            errf(why, whylen, "\"%s\" is not one of debug, info, warn, error", value);
            return EKV_EINVAL;
        }
        *(int *)p = level;
        break;
    }
    case T_LIST:
        strlist_add(p, value);
        break;
    }
    return EKV_OK;
}

/*
 * "WHERE: NAME: reason". A command-line @where ("--threads") already names the directive, so
 * it is not repeated there.
 */
static int set_where(struct ekv_conf *conf, const struct directive *d, const char *value,
                     const char *where, char *err, size_t errlen)
{
    char why[512];

    if (apply(conf, d, value, why, sizeof(why)) == EKV_OK)
        return EKV_OK;
    if (where == NULL)
        errf(err, errlen, "%s: %s", d->name, why);
    else if (where[0] == '-')
        errf(err, errlen, "%s: %s", where, why);
    else
        errf(err, errlen, "%s: %s: %s", where, d->name, why);
    return EKV_EINVAL;
}

struct ekv_conf *ekv_conf_new(void)
{
    struct ekv_conf *conf = ekv_calloc(1, sizeof(*conf));
    char err[512];

    for (size_t i = 0; i < NDIRECTIVES; i++) {
        const struct directive *d = &directives[i];
        /* An empty default is the zeroed field; lists start empty. */
        if (d->def[0] == '\0')
            continue;
        if (set_where(conf, d, d->def, "default", err, sizeof(err)) != EKV_OK) {
            ekv_log_write(EKV_LOG_ERROR, "bad built-in default: %s", err);
            abort();
        }
    }
    return conf;
}

void ekv_conf_free(struct ekv_conf *conf)
{
    if (conf == NULL)
        return;
    addr_clear(&conf->listen);
    addr_clear(&conf->admin_listen);
    free_secret(conf->origin_url);
    ekv_conf_origin_clear(&conf->origin);
    ekv_free(conf->ns);
    ekv_free(conf->service_id);
    ekv_free(conf->access_log);
    strlist_clear(&conf->api_tokens);
    strlist_clear(&conf->read_tokens);
    ekv_free(conf);
}

int ekv_conf_set(struct ekv_conf *conf, const char *name, const char *value, const char *where,
                 char *err, size_t errlen)
{
    const struct directive *d = lookup(name, strlen(name));

    if (d == NULL) {
        if (where == NULL)
            errf(err, errlen, "unknown directive \"%s\"", name);
        else if (where[0] == '-')
            errf(err, errlen, "%s: unknown directive", where);
        else
            errf(err, errlen, "%s: unknown directive \"%s\"", where, name);
        return EKV_EINVAL;
    }
    return set_where(conf, d, value, where, err, errlen);
}

/* ------------------------------------------------------------------ the file */

/*
 * Splits one line into a directive name and its value, in place. Returns 1 with *@name and
 * *@value set, 0 for a blank or comment line, or -1 with a reason in @why. A value is one bare
 * word or one double-quoted string (escapes \" and \\); '#' starts a comment outside quotes.
 */
static int split_line(char *line, const char **name, size_t *namelen, const char **value, char *why,
                      size_t whylen)
{
    char *p = line, *v, *o;

    while (is_space(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    *name = p;
    while (*p != '\0' && *p != '#' && !is_space(*p))
        p++;
    *namelen = (size_t)(p - *name);
    while (is_space(*p))
        p++;
    if (*p == '\0' || *p == '#') {
        *value = NULL; /* missing value: the caller names the directive */
        return 1;
    }
    if (*p == '"') {
        v = o = ++p;
        for (;;) {
            if (*p == '\0') {
                errf(why, whylen, "unterminated quoted value");
                return -1;
            }
            if (*p == '"')
                break;
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            *o++ = *p++;
        }
        p++;
        if (*p != '\0' && *p != '#' && !is_space(*p)) {
            errf(why, whylen, "unexpected text after the closing quote");
            return -1;
        }
    } else {
        v = p;
        while (*p != '\0' && *p != '#' && !is_space(*p))
            p++;
        o = p;
    }
    while (is_space(*p))
        p++;
    if (*p != '\0' && *p != '#') {
        errf(why, whylen, "expects one value (double-quote a value that contains spaces)");
        return -1;
    }
    *o = '\0';
    *value = v;
    return 1;
}

int ekv_conf_load_file(struct ekv_conf *conf, const char *path, char *err, size_t errlen)
{
    unsigned seen[NDIRECTIVES] = {0}; /* line of each directive's first occurrence */
    char *line = NULL, why[512], where[512];
    const char *name, *value;
    size_t cap = 0, namelen = 0;
    unsigned lineno = 0;
    ssize_t len;
    int rc = EKV_EINVAL;
    FILE *fp;

    fp = fopen(path, "r");
    if (fp == NULL) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        return EKV_EINVAL;
    }
    while ((len = getline(&line, &cap, fp)) >= 0) {
        const struct directive *d;
        int r;

        lineno++;
        snprintf(where, sizeof(where), "%s:%u", path, lineno);
        if (strlen(line) != (size_t)len) {
            errf(err, errlen, "%s: NUL byte in the line", where);
            goto out;
        }
        r = split_line(line, &name, &namelen, &value, why, sizeof(why));
        if (r == 0)
            continue;
        if (r < 0) {
            errf(err, errlen, "%s: %.*s: %s", where, (int)EKV_MIN(namelen, 64), name, why);
            goto out;
        }
        d = lookup(name, namelen);
        if (d == NULL) {
            errf(err, errlen, "%s: unknown directive \"%.*s\"", where, (int)EKV_MIN(namelen, 64),
                 name);
            goto out;
        }
        if (value == NULL) {
            errf(err, errlen, "%s: %s: missing value", where, d->name);
            goto out;
        }
        if (d->type != T_LIST && seen[d - directives] != 0) {
            errf(err, errlen, "%s: %s: duplicate directive (first set on line %u)", where, d->name,
                 seen[d - directives]);
            goto out;
        }
        if (seen[d - directives] == 0)
            seen[d - directives] = lineno;
        if (set_where(conf, d, value, where, err, errlen) != EKV_OK)
            goto out;
    }
    if (ferror(fp)) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    rc = EKV_OK;
out:
    free(line); /* getline's buffer comes from malloc */
    fclose(fp);
    return rc;
}

/* ------------------------------------------------------------------ checks across directives */

/* "host:port", or "[v6]:port" when the host has a colon. */
static void fmt_addr(char *buf, size_t len, const struct ekv_conf_addr *a)
{
    if (a->host == NULL)
        snprintf(buf, len, "(empty)");
    else if (strchr(a->host, ':') != NULL)
        snprintf(buf, len, "[%s]:%u", a->host, (unsigned)a->port);
    else
        snprintf(buf, len, "%s:%u", a->host, (unsigned)a->port);
}

/* Same host, allowing for different spellings of one IP address. */
static bool same_host(const char *a, const char *b)
{
    unsigned char ba[16], bb[16];

    if (inet_pton(AF_INET, a, ba) == 1 && inet_pton(AF_INET, b, bb) == 1)
        return memcmp(ba, bb, 4) == 0;
    if (inet_pton(AF_INET6, a, ba) == 1 && inet_pton(AF_INET6, b, bb) == 1)
        return memcmp(ba, bb, 16) == 0;
    return ekv_strn_caseeq(a, strlen(a), b);
}

/* 0.0.0.0 or ::, which take the port on every address (of both families, for ::). */
static bool is_wildcard(const char *host)
{
    unsigned char b[16];
    static const unsigned char any[16] = {0};

    if (inet_pton(AF_INET, host, b) == 1)
        return memcmp(b, any, 4) == 0;
    return inet_pton(AF_INET6, host, b) == 1 && memcmp(b, any, 16) == 0;
}

int ekv_conf_validate(const struct ekv_conf *conf, char *err, size_t errlen)
{
    const struct ekv_conf_addr *l = &conf->listen, *adm = &conf->admin_listen;
    char a[300], b[300];

    if (l->host == NULL) {
        errf(err, errlen, "listen may not be empty");
        return EKV_EINVAL;
    }
    if (conf->protected_mode && conf->api_tokens.count == 0 &&
        !ekv_conf_host_is_loopback(l->host)) {
        fmt_addr(a, sizeof(a), l);
        errf(err, errlen,
             "listen %s is not a loopback address and no api-token is set: set api-token, "
             "listen on 127.0.0.1, or set protected-mode no",
             a);
        return EKV_EINVAL;
    }
    /* Two listeners on one port: the second bind would fail, or with SO_REUSEPORT quietly
     * share the traffic. Port 0 lets the kernel pick two different ports. */
    if (adm->host != NULL && adm->port != 0 && adm->port == l->port) {
        fmt_addr(a, sizeof(a), adm);
        fmt_addr(b, sizeof(b), l);
        if (same_host(adm->host, l->host)) {
            errf(err, errlen,
                 "admin-listen %s is the same address as listen: give it another port, or "
                 "leave admin-listen empty to serve /metrics, /healthz and /readyz on listen",
                 a);
            return EKV_EINVAL;
        }
        if (is_wildcard(adm->host) || is_wildcard(l->host)) {
            errf(err, errlen,
                 "admin-listen %s overlaps listen %s (same port on all addresses): give it "
                 "another port, or leave admin-listen empty to serve /metrics, /healthz and "
                 "/readyz on listen",
                 a, b);
            return EKV_EINVAL;
        }
    }
    return EKV_OK;
}

/* Whether @a and @b hold the same value for directive @d. */
static bool same_value(const struct directive *d, const struct ekv_conf *a,
                       const struct ekv_conf *b)
{
    const void *pa = cfield(a, d), *pb = cfield(b, d);

    switch (d->type) {
    case T_ADDR: {
        const struct ekv_conf_addr *x = pa, *y = pb;
        return (x->host == NULL) == (y->host == NULL) && x->port == y->port &&
               (x->host == NULL || strcmp(x->host, y->host) == 0);
    }
    case T_ORIGIN: /* the parsed origin follows from origin_url */
    case T_STRING: {
        const char *const *x = pa, *const *y = pb;
        return (*x == NULL) == (*y == NULL) && (*x == NULL || strcmp(*x, *y) == 0);
    }
    case T_UINT:
        return *(const unsigned *)pa == *(const unsigned *)pb;
    case T_SIZE:
    case T_DURATION:
        return *(const uint64_t *)pa == *(const uint64_t *)pb;
    case T_BOOL:
        return *(const bool *)pa == *(const bool *)pb;
    case T_LOGLEVEL:
        return *(const int *)pa == *(const int *)pb;
    case T_LIST: {
        const struct ekv_conf_strlist *x = pa, *y = pb;
        if (x->count != y->count)
            return false;
        for (size_t j = 0; j < x->count; j++)
            if (strcmp(x->items[j], y->items[j]) != 0)
                return false;
        return true;
    }
    }
    return false;
}

bool ekv_conf_equal(const struct ekv_conf *a, const struct ekv_conf *b)
{
    for (size_t i = 0; i < NDIRECTIVES; i++)
        if (!same_value(&directives[i], a, b))
            return false;
    return true;
}

/* Sets directive @d of @dst to its value in @src (deep copies). */
static void copy_value(const struct directive *d, struct ekv_conf *dst, const struct ekv_conf *src)
{
    void *pd = field(dst, d);
    const void *ps = cfield(src, d);

    switch (d->type) {
    case T_ADDR: {
        struct ekv_conf_addr *x = pd;
        const struct ekv_conf_addr *y = ps;
        addr_clear(x);
        x->host = y->host != NULL ? ekv_strdup(y->host) : NULL;
        x->port = y->port;
        break;
    }
    case T_ORIGIN: {
        char **url = pd;
        char err[256];
        free_secret(*url);
        *url = ekv_strdup(src->origin_url);
        ekv_conf_origin_clear(&dst->origin);
        /* it parsed when @src was loaded, so it parses again */
        if (ekv_conf_parse_origin(src->origin_url, &dst->origin, err, sizeof(err)) != EKV_OK)
            abort();
        break;
    }
    case T_STRING: {
        char **x = pd;
        const char *const *y = ps;
        ekv_free(*x);
        *x = *y != NULL ? ekv_strdup(*y) : NULL;
        break;
    }
    case T_UINT:
        *(unsigned *)pd = *(const unsigned *)ps;
        break;
    case T_SIZE:
    case T_DURATION:
        *(uint64_t *)pd = *(const uint64_t *)ps;
        break;
    case T_BOOL:
        *(bool *)pd = *(const bool *)ps;
        break;
    case T_LOGLEVEL:
        *(int *)pd = *(const int *)ps;
        break;
    case T_LIST: {
        const struct ekv_conf_strlist *y = ps;
        strlist_clear(pd);
        for (size_t j = 0; j < y->count; j++)
            strlist_add(pd, y->items[j]);
        break;
    }
    }
}

/* Appends @name to the comma-separated list in @buf. */
static void append_name(char *buf, size_t len, const char *name)
{
    size_t used = strlen(buf);

    if (used < len)
        snprintf(buf + used, len - used, "%s%s", used > 0 ? ", " : "", name);
}

unsigned ekv_conf_reload_merge(struct ekv_conf *next, const struct ekv_conf *running,
                               char *changed, size_t changedlen, char *restart,
                               size_t restartlen)
{
    unsigned kept = 0;

    if (changedlen > 0)
        changed[0] = '\0';
    if (restartlen > 0)
        restart[0] = '\0';
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        const struct directive *d = &directives[i];

        if (same_value(d, next, running))
            continue;
        if (d->flags & D_RELOAD) {
            append_name(changed, changedlen, d->name);
        } else {
            append_name(restart, restartlen, d->name);
            copy_value(d, next, running);
            kept++;
        }
    }
    return kept;
}

bool ekv_conf_reloadable(const char *name)
{
    const struct directive *d = lookup(name, strlen(name));

    return d != NULL && (d->flags & D_RELOAD) != 0;
}

/* ------------------------------------------------------------------ the command line */

struct cli_setting {
    const struct directive *d;
    const char *value;
};

int ekv_conf_from_args(int argc, char **argv, struct ekv_conf **out, char *err, size_t errlen)
{
    struct cli_setting *cli = ekv_calloc(argc > 0 ? (size_t)argc : 1, sizeof(*cli));
    bool replaced[NDIRECTIVES] = {false};
    struct ekv_conf *conf = NULL;
    const char *file = NULL;
    char flag[128];
    size_t ncli = 0;
    int action = EKV_CONF_RUN, rc = EKV_EINVAL;

    *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq, *value;
        const struct directive *d;
        size_t namelen;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            rc = EKV_CONF_HELP;
            goto out;
        }
        if (strcmp(arg, "-v") == 0 || strcmp(arg, "--version") == 0) {
            rc = EKV_CONF_VERSION;
            goto out;
        }
        if (strcmp(arg, "--print-sample-config") == 0) {
            rc = EKV_CONF_SAMPLE;
            goto out;
        }
        if (strcmp(arg, "-t") == 0) {
            action = EKV_CONF_TEST;
            continue;
        }
        if (strcmp(arg, "-c") == 0) {
            if (i + 1 >= argc) {
                errf(err, errlen, "-c: missing file name");
                goto out;
            }
            file = argv[++i];
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (arg[0] == '-')
                errf(err, errlen, "%s: unknown option (see --help)", arg);
            else
                errf(err, errlen, "unexpected argument \"%s\" (see --help)", arg);
            goto out;
        }
        eq = strchr(arg, '=');
        namelen = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        snprintf(flag, sizeof(flag), "--%.*s", (int)EKV_MIN(namelen, 64), arg + 2);
        d = lookup(arg + 2, namelen);
        if (d == NULL) {
            errf(err, errlen, "%s: unknown option (see --help)", flag);
            goto out;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            errf(err, errlen, "%s: missing value", flag);
            goto out;
        }
        cli[ncli].d = d;
        cli[ncli].value = value;
        ncli++;
    }

    conf = ekv_conf_new();
    if (file != NULL && ekv_conf_load_file(conf, file, err, errlen) != EKV_OK)
        goto out;
    for (size_t i = 0; i < ncli; i++) {
        const struct directive *d = cli[i].d;

        snprintf(flag, sizeof(flag), "--%s", d->name);
        if (d->type == T_LIST && !replaced[d - directives]) {
            /* the command line replaces the file's list instead of extending it */
            strlist_clear(field(conf, d));
            replaced[d - directives] = true;
        }
        if (set_where(conf, d, cli[i].value, flag, err, errlen) != EKV_OK)
            goto out;
    }
    if (ekv_conf_validate(conf, err, errlen) != EKV_OK)
        goto out;
    *out = conf;
    conf = NULL;
    rc = action;
out:
    ekv_conf_free(conf);
    ekv_free(cli);
    return rc;
}

/* ------------------------------------------------------------------ help and sample */

/* Writes each line of @text after @indent (an empty line gets @blank instead). */
static void print_lines(FILE *fp, const char *indent, const char *blank, const char *text)
{
    while (*text != '\0') {
        size_t n = strcspn(text, "\n");
        fprintf(fp, "%s%.*s\n", n > 0 ? indent : blank, (int)n, text);
        text += n;
        if (*text == '\n')
            text++;
    }
}

void ekv_conf_print_help(FILE *fp)
{
    fprintf(fp, "Usage: edgekv [-c FILE] [--DIRECTIVE VALUE ...]     run in the foreground\n"
                "       edgekv -t [-c FILE] [--DIRECTIVE VALUE ...]  check the configuration\n"
                "       edgekv --version | --help | --print-sample-config\n"
                "\n"
                "Options:\n"
                "  -c FILE                read directives from FILE (without -c: built-in "
                "defaults)\n"
                "  -t                     check the configuration and exit: 0 if it is good,\n"
                "                         1 if not (does not contact Redis)\n"
                "  -h, --help             show this help and exit\n"
                "  -v, --version          show the version and exit\n"
                "  --print-sample-config  print the documented sample configuration and exit\n"
                "  --DIRECTIVE VALUE      set a directive (also --DIRECTIVE=VALUE); the "
                "command\n"
                "                         line wins over the file\n"
                "\n"
                "Directives (\"directive value\" in the file, '#' starts a comment):\n");
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        const struct directive *d = &directives[i];
        char left[64];

        char range[80] = "";

        snprintf(left, sizeof(left), "--%s %s", d->name, d->arg);
        if (d->type == T_UINT || d->type == T_SIZE || d->type == T_DURATION) {
            char lo[32], hi[32];
            fmt_bound(d, lo, sizeof(lo), d->min);
            fmt_bound(d, hi, sizeof(hi), d->max);
            snprintf(range, sizeof(range), ", range %s..%s", lo, hi);
        }
        fprintf(fp, "\n  %-32s default: %s%s%s\n", left, d->def[0] != '\0' ? d->def : "(empty)",
                range, d->type == T_LIST ? " (may repeat)" : "");
        print_lines(fp, "      ", "", d->help);
        if (!(d->flags & D_RELOAD))
            fprintf(fp, "      Needs a restart: SIGHUP keeps the running value.\n");
    }
    fprintf(fp, "\nSizes: b, kb/k, mb/m, gb/g (powers of 1024, any case). Durations: ms, s, m, h\n"
                "(a unit is required unless the value is 0).\n");
#ifdef EKV_SYSCONFDIR
    fprintf(fp, "A documented sample file is installed as %s/edgekv/edgekv.conf.\n",
            EKV_SYSCONFDIR);
#endif
}

void ekv_conf_print_sample(FILE *fp)
{
    fprintf(fp,
            "# edgekv.conf - configuration of edgekv, an edge cache for a Fastly-compatible KV\n"
            "# store kept in Redis.\n"
            "#\n"
            "# Generated by `edgekv --print-sample-config`: every directive, with its default.\n"
            "# Use it with `edgekv -c edgekv.conf`; check it with `edgekv -t -c edgekv.conf`.\n"
            "#\n"
            "# Syntax: one \"directive value\" per line. '#' starts a comment; double-quote a\n"
            "# value that contains spaces or '#' (\\\" and \\\\ escape inside quotes). Every\n"
            "# directive may also be given on the command line as --directive value, which\n"
            "# wins over this file. Only api-token and read-token may appear more than once.\n"
            "#\n"
            "# SIGHUP reloads this file (with the same command-line directives on top): a bad\n"
            "# file is rejected and the running configuration kept. Directives marked \"Needs\n"
            "# a restart\" keep their running value until edgekv is restarted.\n"
            "#\n"
            "# Sizes: a number with b, kb (or k), mb (or m), gb (or g): powers of 1024, any\n"
            "# case. Durations: a number with ms, s, m or h; a bare 0 is allowed.\n");
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        const struct directive *d = &directives[i];

        fprintf(fp, "\n");
        print_lines(fp, "# ", "#", d->help);
        if (!(d->flags & D_RELOAD))
            fprintf(fp, "# Needs a restart: SIGHUP keeps the running value.\n");
        if (d->def[0] != '\0')
            fprintf(fp, "%s %s\n", d->name, d->def);
        else
            fprintf(fp, "# %s %s\n", d->name, d->example != NULL ? d->example : d->arg);
    }
}

/* ------------------------------------------------------------------ addresses */

/* A host name or IPv4 address: letters, digits, '-', '.', '_'; at most 253 bytes. */
static bool valid_hostname(const char *h, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return false;
    }
    return true;
}

/* All digits and dots: meant as an IPv4 address, so it must be one. */
static bool looks_ipv4(const char *h, size_t len)
{
    return strspn(h, "0123456789.") >= len;
}

/*
 * Splits "host:port" / "[v6]:port" (@s, @len bytes) into a NUL-terminated host copy and a
 * port. @port_required: a missing port is an error, otherwise *@port keeps its value.
 * @min_port is 0 or 1. @echo: reasons may quote the input (not for the origin URL, where a
 * mistyped password could end up in the host or port).
 */
static int split_host_port(const char *s, size_t len, bool port_required, unsigned min_port,
                           bool echo, char **host, uint16_t *port, char *why, size_t whylen)
{
    const char *colon = NULL, *ps;
    size_t hlen, plen;
    uint64_t pn;
    char *copy = NULL, what[320];
    unsigned char buf[16];

    if (echo)
        snprintf(what, sizeof(what), "\"%.*s\"", (int)EKV_MIN(len, 300), s);
    else
        snprintf(what, sizeof(what), "the address");
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            errf(why, whylen, "%s has no closing ']'", what);
            return EKV_EINVAL;
        }
        if (close + 1 < s + len) {
            if (close[1] != ':') {
                errf(why, whylen, "%s: expected ':' and a port after ']'", what);
                return EKV_EINVAL;
            }
            colon = close + 1;
        }
        copy = ekv_strndup(s + 1, (size_t)(close - s - 1));
        if (inet_pton(AF_INET6, copy, buf) != 1) {
            errf(why, whylen, "%s: the part in brackets is not an IPv6 address", what);
            goto fail;
        }
    } else {
        const char *first = memchr(s, ':', len);
        if (first != NULL && memchr(first + 1, ':', (size_t)(s + len - first - 1)) != NULL) {
            errf(why, whylen, "%s: put an IPv6 address in brackets, as in [::1]:8080", what);
            return EKV_EINVAL;
        }
        colon = first;
        hlen = colon != NULL ? (size_t)(colon - s) : len;
        if (hlen == 0) {
            errf(why, whylen, "%s has no host%s", what,
                 echo ? " (use 0.0.0.0 for every interface)" : "");
            return EKV_EINVAL;
        }
        if (!valid_hostname(s, hlen)) {
            errf(why, whylen, "%s: the host is not a host name or an IP address", what);
            return EKV_EINVAL;
        }
        copy = ekv_strndup(s, hlen);
        if (looks_ipv4(s, hlen) && inet_pton(AF_INET, copy, buf) != 1) {
            errf(why, whylen, "%s: the host is not a valid IPv4 address", what);
            goto fail;
        }
    }
    if (colon == NULL) {
        if (port_required) {
            errf(why, whylen, "%s has no port (use host:port or [v6]:port)", what);
            goto fail;
        }
    } else {
        ps = colon + 1;
        plen = (size_t)(s + len - ps);
        if (plen == 0) {
            errf(why, whylen, "%s has no port after ':'", what);
            goto fail;
        }
        if (ekv_parse_u64(ps, plen, &pn) != EKV_OK) {
            errf(why, whylen, "%s: the port is not a number", what);
            goto fail;
        }
        if (pn < min_port || pn > 65535) {
            errf(why, whylen, "%s: the port is out of range (%u..65535)", what, min_port);
            goto fail;
        }
        *port = (uint16_t)pn;
    }
    *host = copy;
    return EKV_OK;
fail:
    ekv_free(copy);
    return EKV_EINVAL;
}

int ekv_conf_parse_addr(const char *s, struct ekv_conf_addr *addr, char *err, size_t errlen)
{
    uint16_t port = 0;
    char *host = NULL;

    if (*s == '\0') {
        addr->host = NULL;
        addr->port = 0;
        return EKV_OK;
    }
    if (split_host_port(s, strlen(s), true, 0, true, &host, &port, err, errlen) != EKV_OK)
        return EKV_EINVAL;
    addr->host = host;
    addr->port = port;
    return EKV_OK;
}

bool ekv_conf_host_is_loopback(const char *host)
{
    unsigned char b[16];
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (host == NULL)
        return false;
    if (ekv_strn_caseeq(host, strlen(host), "localhost"))
        return true;
    if (inet_pton(AF_INET, host, b) == 1)
        return b[0] == 127;
    if (inet_pton(AF_INET6, host, b) == 1) {
        static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        return memcmp(b, one, 16) == 0 || (memcmp(b, v4mapped, 12) == 0 && b[12] == 127);
    }
    return false;
}

/* ------------------------------------------------------------------ the origin URL */

void ekv_conf_origin_clear(struct ekv_conf_origin *o)
{
    ekv_free(o->host);
    ekv_free(o->unix_path);
    ekv_free(o->user);
    free_secret(o->password);
    memset(o, 0, sizeof(*o));
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);

    return strlen(s) >= n && ekv_strn_caseeq(s, n, prefix);
}

/* A database number "N" (0..65535) of @len bytes. */
static int parse_db(const char *s, size_t len, unsigned *db, char *why, size_t whylen)
{
    uint64_t n;

    if (ekv_parse_u64(s, len, &n) != EKV_OK || n > 65535) {
        errf(why, whylen, "database \"%.*s\" is not a number from 0 to 65535",
             (int)EKV_MIN(len, 64), s);
        return EKV_EINVAL;
    }
    *db = (unsigned)n;
    return EKV_OK;
}

/* Percent-decoded copy of @len bytes, or NULL if the encoding is bad. */
static char *pct_dup(const char *s, size_t len)
{
    char *d = ekv_malloc(len + 1);
    long n = ekv_pct_decode(d, s, len);

    if (n < 0) {
        ekv_free(d);
        return NULL;
    }
    d[n] = '\0';
    return d;
}

static const char origin_usage[] =
    "use redis://[[user]:password@]host[:port][/db] or unix:///path/redis.sock";

/* unix:///path[?db=N] */
static int parse_unix(const char *rest, struct ekv_conf_origin *o, char *why, size_t whylen)
{
    const char *q = strchr(rest, '?');
    size_t plen = q != NULL ? (size_t)(q - rest) : strlen(rest);

    if (plen < 2 || rest[0] != '/') {
        errf(why, whylen, "a unix socket path must be absolute, as in unix:///run/redis.sock");
        return EKV_EINVAL;
    }
    if (q != NULL) {
        if (strncmp(q, "?db=", 4) != 0) {
            errf(why, whylen, "the only option of a unix:// origin is ?db=N");
            return EKV_EINVAL;
        }
        if (parse_db(q + 4, strlen(q + 4), &o->db, why, whylen) != EKV_OK)
            return EKV_EINVAL;
    }
    o->unix_path = ekv_strndup(rest, plen);
    return EKV_OK;
}

/* redis://[[user]:password@]host[:port][/db]; @rest follows "redis://". */
static int parse_redis(const char *rest, struct ekv_conf_origin *o, char *why, size_t whylen)
{
    const char *at = strrchr(rest, '@'), *hp, *slash;
    size_t hplen;

    if (at != NULL) {
        /* user info: everything before the last '@', so an unencoded '@' in a password
         * still works. As redis-cli: "user:password", ":password", or "password". */
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *pw = colon != NULL ? colon + 1 : rest;
        if (colon != NULL && colon > rest) {
            o->user = pct_dup(rest, (size_t)(colon - rest));
            if (o->user == NULL) {
                errf(why, whylen, "bad percent-encoding in the user name");
                return EKV_EINVAL;
            }
        }
        if (at == pw) {
            errf(why, whylen, "empty password before '@'");
            return EKV_EINVAL;
        }
        o->password = pct_dup(pw, (size_t)(at - pw));
        if (o->password == NULL) {
            errf(why, whylen, "bad percent-encoding in the password");
            return EKV_EINVAL;
        }
        hp = at + 1;
    } else {
        hp = rest;
    }
    slash = strchr(hp, '/');
    hplen = slash != NULL ? (size_t)(slash - hp) : strlen(hp);
    if (hplen == 0) {
        errf(why, whylen, "no host (%s)", origin_usage);
        return EKV_EINVAL;
    }
    o->port = 6379;
    if (split_host_port(hp, hplen, false, 1, false, &o->host, &o->port, why, whylen) != EKV_OK)
        return EKV_EINVAL;
    if (slash != NULL && slash[1] != '\0') {
        if (parse_db(slash + 1, strlen(slash + 1), &o->db, why, whylen) != EKV_OK)
            return EKV_EINVAL;
    }
    return EKV_OK;
}

int ekv_conf_parse_origin(const char *s, struct ekv_conf_origin *o, char *err, size_t errlen)
{
    size_t slen;
    int rc;

    memset(o, 0, sizeof(*o));
    if (has_prefix_ci(s, "redis://")) {
        rc = parse_redis(s + 8, o, err, errlen);
    } else if (has_prefix_ci(s, "unix://")) {
        rc = parse_unix(s + 7, o, err, errlen);
    } else if (has_prefix_ci(s, "rediss://")) {
        errf(err, errlen,
             "TLS (rediss://) is not supported; run a TLS tunnel such as stunnel "
             "and point origin at its plain end");
        rc = EKV_EINVAL;
    } else {
        /* Echo the scheme only: the rest may hold a password. */
        slen = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
        if (slen > 0 && slen <= 16 && strncmp(s + slen, "://", 3) == 0)
            errf(err, errlen, "unsupported scheme \"%.*s\" (%s)", (int)slen, s, origin_usage);
        else
            errf(err, errlen, "not a Redis URL (%s)", origin_usage);
        rc = EKV_EINVAL;
    }
    if (rc != EKV_OK)
        ekv_conf_origin_clear(o);
    return rc;
}

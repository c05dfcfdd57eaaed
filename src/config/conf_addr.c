/* conf_addr.c - addresses in the configuration: "host:port" / "[v6]:port" for the listeners,
 * the origin URL (redis://[[user]:password@]host[:port][/db], unix:///path[?db=N]), and the
 * comparisons the checks across directives need. Reasons never quote the origin URL: a
 * mistyped password could end up in its host or port. */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"
#include "edgekv/text.h"

#include "conf_int.h"

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
            ekv_conf_errf(why, whylen, "%s has no closing ']'", what);
            return EKV_EINVAL;
        }
        if (close + 1 < s + len) {
            if (close[1] != ':') {
                ekv_conf_errf(why, whylen, "%s: expected ':' and a port after ']'", what);
                return EKV_EINVAL;
            }
            colon = close + 1;
        }
        copy = ekv_strndup(s + 1, (size_t)(close - s - 1));
        if (inet_pton(AF_INET6, copy, buf) != 1) {
            ekv_conf_errf(why, whylen, "%s: the part in brackets is not an IPv6 address", what);
            goto fail;
        }
    } else {
        const char *first = memchr(s, ':', len);
        if (first != NULL && memchr(first + 1, ':', (size_t)(s + len - first - 1)) != NULL) {
            ekv_conf_errf(why, whylen, "%s: put an IPv6 address in brackets, as in [::1]:8080",
                          what);
            return EKV_EINVAL;
        }
        colon = first;
        hlen = colon != NULL ? (size_t)(colon - s) : len;
        if (hlen == 0) {
            ekv_conf_errf(why, whylen, "%s has no host%s", what,
                          echo ? " (use 0.0.0.0 for every interface)" : "");
            return EKV_EINVAL;
        }
        if (!valid_hostname(s, hlen)) {
            ekv_conf_errf(why, whylen, "%s: the host is not a host name or an IP address", what);
            return EKV_EINVAL;
        }
        copy = ekv_strndup(s, hlen);
        if (looks_ipv4(s, hlen) && inet_pton(AF_INET, copy, buf) != 1) {
            ekv_conf_errf(why, whylen, "%s: the host is not a valid IPv4 address", what);
            goto fail;
        }
    }
    if (colon == NULL) {
        if (port_required) {
            ekv_conf_errf(why, whylen, "%s has no port (use host:port or [v6]:port)", what);
            goto fail;
        }
    } else {
        ps = colon + 1;
        plen = (size_t)(s + len - ps);
        if (plen == 0) {
            ekv_conf_errf(why, whylen, "%s has no port after ':'", what);
            goto fail;
        }
        if (ekv_parse_u64(ps, plen, &pn) != EKV_OK) {
            ekv_conf_errf(why, whylen, "%s: the port is not a number", what);
            goto fail;
        }
        if (pn < min_port || pn > 65535) {
            ekv_conf_errf(why, whylen, "%s: the port is out of range (%u..65535)", what, min_port);
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
    for (size_t i = 0; i < o->nnodes; i++)
        ekv_free(o->nodes[i].host);
    ekv_free(o->master);
    ekv_free(o->host);
    ekv_free(o->unix_path);
    ekv_free(o->user);
    ekv_conf_free_secret(o->password);
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
        ekv_conf_errf(why, whylen, "database \"%.*s\" is not a number from 0 to 65535",
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
    "use redis://[[user]:password@]host[:port][/db], unix:///path/redis.sock, "
    "redis-sentinel://[[user]:password@]host:port[,host:port...]/MASTER[/db], "
    "redis-cluster://[[user]:password@]host:port[,host:port...], or rediss... for TLS";

/* unix:///path[?db=N] */
static int parse_unix(const char *rest, struct ekv_conf_origin *o, char *why, size_t whylen)
{
    const char *q = strchr(rest, '?');
    size_t plen = q != NULL ? (size_t)(q - rest) : strlen(rest);

    if (plen < 2 || rest[0] != '/') {
        ekv_conf_errf(why, whylen,
                      "a unix socket path must be absolute, as in unix:///run/redis.sock");
        return EKV_EINVAL;
    }
    if (q != NULL) {
        if (strncmp(q, "?db=", 4) != 0) {
            ekv_conf_errf(why, whylen, "the only option of a unix:// origin is ?db=N");
            return EKV_EINVAL;
        }
        if (parse_db(q + 4, strlen(q + 4), &o->db, why, whylen) != EKV_OK)
            return EKV_EINVAL;
    }
    o->unix_path = ekv_strndup(rest, plen);
    return EKV_OK;
}

/* The user info before the last '@' of @rest, if any (so an unencoded '@' in a password still
 * works). As redis-cli: "user:password", ":password", or "password". Sets *@hp to what follows. */
static int parse_userinfo(const char *rest, struct ekv_conf_origin *o, const char **hp, char *why,
                          size_t whylen)
{
    const char *at = strrchr(rest, '@');

    *hp = rest;
    if (at == NULL)
        return EKV_OK;
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    const char *pw = colon != NULL ? colon + 1 : rest;
    if (colon != NULL && colon > rest) {
        o->user = pct_dup(rest, (size_t)(colon - rest));
        if (o->user == NULL) {
            ekv_conf_errf(why, whylen, "bad percent-encoding in the user name");
            return EKV_EINVAL;
        }
    }
    if (at == pw) {
        ekv_conf_errf(why, whylen, "empty password before '@'");
        return EKV_EINVAL;
    }
    o->password = pct_dup(pw, (size_t)(at - pw));
    if (o->password == NULL) {
        ekv_conf_errf(why, whylen, "bad percent-encoding in the password");
        return EKV_EINVAL;
    }
    *hp = at + 1;
    return EKV_OK;
}

/* redis://[[user]:password@]host[:port][/db]; @rest follows "redis://". */
static int parse_redis(const char *rest, struct ekv_conf_origin *o, char *why, size_t whylen)
{
    const char *hp, *slash;
    size_t hplen;

    if (parse_userinfo(rest, o, &hp, why, whylen) != EKV_OK)
        return EKV_EINVAL;
    slash = strchr(hp, '/');
    hplen = slash != NULL ? (size_t)(slash - hp) : strlen(hp);
    if (hplen == 0) {
        ekv_conf_errf(why, whylen, "no host (%s)", origin_usage);
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

/* "h:p[,h:p...]" (@len bytes at @s) into o->nodes; a node without a port gets @def_port. */
static int parse_nodes(const char *s, size_t len, uint16_t def_port, struct ekv_conf_origin *o,
                       char *why, size_t whylen)
{
    const char *end = s + len;

    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t n = comma != NULL ? (size_t)(comma - s) : (size_t)(end - s);
        struct ekv_conf_hostport *hp = &o->nodes[o->nnodes];

        if (n == 0) {
            ekv_conf_errf(why, whylen, "an empty address in the list of nodes (%s)",
                          origin_usage);
            return EKV_EINVAL;
        }
        if (o->nnodes == EKV_CONF_MAX_NODES) {
            ekv_conf_errf(why, whylen, "more than %d nodes", EKV_CONF_MAX_NODES);
            return EKV_EINVAL;
        }
        hp->port = def_port;
        if (split_host_port(s, n, false, 1, false, &hp->host, &hp->port, why, whylen) != EKV_OK)
            return EKV_EINVAL;
        o->nnodes++;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    return EKV_OK;
}

/* A Sentinel name: what sentinel.conf accepts, without spaces or slashes. */
static bool valid_master_name(const char *s, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == '/' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* redis-sentinel://[[user]:password@]h:p[,h:p...]/MASTER[/db] */
static int parse_sentinel(const char *rest, struct ekv_conf_origin *o, char *why, size_t whylen)
{
    const char *hp, *slash, *name, *dbs;
    size_t nlen;

    o->kind = EKV_ORIGIN_SENTINEL;
    if (parse_userinfo(rest, o, &hp, why, whylen) != EKV_OK)
        return EKV_EINVAL;
    slash = strchr(hp, '/');
    if (slash == NULL || slash[1] == '\0' || slash[1] == '/') {
        ekv_conf_errf(why, whylen, "no master name after the Sentinels (%s)", origin_usage);
        return EKV_EINVAL;
    }
    if (slash == hp) {
        ekv_conf_errf(why, whylen, "no Sentinel address (%s)", origin_usage);
        return EKV_EINVAL;
    }
    if (parse_nodes(hp, (size_t)(slash - hp), 26379, o, why, whylen) != EKV_OK)
        return EKV_EINVAL;
    name = slash + 1;
    dbs = strchr(name, '/');
    nlen = dbs != NULL ? (size_t)(dbs - name) : strlen(name);
    if (!valid_master_name(name, nlen)) {
        ekv_conf_errf(why, whylen, "the master name is not a Sentinel master name");
        return EKV_EINVAL;
    }
    o->master = ekv_strndup(name, nlen);
    if (dbs != NULL && dbs[1] != '\0' &&
        parse_db(dbs + 1, strlen(dbs + 1), &o->db, why, whylen) != EKV_OK)
        return EKV_EINVAL;
    return EKV_OK;
}

/* redis-cluster://[[user]:password@]h:p[,h:p...] (database 0: a cluster has no other) */
static int parse_cluster(const char *rest, struct ekv_conf_origin *o, char *why, size_t whylen)
{
    const char *hp, *slash;
    size_t hplen;

    o->kind = EKV_ORIGIN_CLUSTER;
    if (parse_userinfo(rest, o, &hp, why, whylen) != EKV_OK)
        return EKV_EINVAL;
    slash = strchr(hp, '/');
    hplen = slash != NULL ? (size_t)(slash - hp) : strlen(hp);
    if (hplen == 0) {
        ekv_conf_errf(why, whylen, "no seed node (%s)", origin_usage);
        return EKV_EINVAL;
    }
    if (slash != NULL && slash[1] != '\0' && strcmp(slash, "/0") != 0) {
        ekv_conf_errf(why, whylen, "a Redis Cluster has database 0 only");
        return EKV_EINVAL;
    }
    return parse_nodes(hp, hplen, 6379, o, why, whylen);
}

int ekv_conf_parse_origin(const char *s, struct ekv_conf_origin *o, char *err, size_t errlen)
{
    size_t slen;
    int rc;

    memset(o, 0, sizeof(*o));
    if (has_prefix_ci(s, "redis-sentinel://")) {
        rc = parse_sentinel(s + 17, o, err, errlen);
    } else if (has_prefix_ci(s, "rediss-sentinel://")) {
        rc = parse_sentinel(s + 18, o, err, errlen);
        o->tls = true;
    } else if (has_prefix_ci(s, "redis-cluster://")) {
        rc = parse_cluster(s + 16, o, err, errlen);
    } else if (has_prefix_ci(s, "rediss-cluster://")) {
        rc = parse_cluster(s + 17, o, err, errlen);
        o->tls = true;
    } else if (has_prefix_ci(s, "redis://")) {
        rc = parse_redis(s + 8, o, err, errlen);
    } else if (has_prefix_ci(s, "unix://")) {
        rc = parse_unix(s + 7, o, err, errlen);
    } else if (has_prefix_ci(s, "rediss://")) {
        rc = parse_redis(s + 9, o, err, errlen);
        o->tls = true;
    } else {
        /* Echo the scheme only: the rest may hold a password. */
        slen = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
        if (slen > 0 && slen <= 16 && strncmp(s + slen, "://", 3) == 0)
            ekv_conf_errf(err, errlen, "unsupported scheme \"%.*s\" (%s)", (int)slen, s,
                          origin_usage);
        else
            ekv_conf_errf(err, errlen, "not a Redis URL (%s)", origin_usage);
        rc = EKV_EINVAL;
    }
    if (rc != EKV_OK)
        ekv_conf_origin_clear(o);
    return rc;
}

/* ------------------------------------------------------------------ comparisons */

/* "host:port", or "[v6]:port" when the host has a colon. */
void ekv_conf_fmt_addr(char *buf, size_t len, const struct ekv_conf_addr *a)
{
    if (a->host == NULL)
        snprintf(buf, len, "(empty)");
    else if (strchr(a->host, ':') != NULL)
        snprintf(buf, len, "[%s]:%u", a->host, (unsigned)a->port);
    else
        snprintf(buf, len, "%s:%u", a->host, (unsigned)a->port);
}

/* Same host, allowing for different spellings of one IP address. */
bool ekv_conf_same_host(const char *a, const char *b)
{
    unsigned char ba[16], bb[16];

    if (inet_pton(AF_INET, a, ba) == 1 && inet_pton(AF_INET, b, bb) == 1)
        return memcmp(ba, bb, 4) == 0;
    if (inet_pton(AF_INET6, a, ba) == 1 && inet_pton(AF_INET6, b, bb) == 1)
        return memcmp(ba, bb, 16) == 0;
    return ekv_strn_caseeq(a, strlen(a), b);
}

/* 0.0.0.0 or ::, which take the port on every address (of both families, for ::). */
bool ekv_conf_host_is_wildcard(const char *host)
{
    unsigned char b[16];
    static const unsigned char any[16] = {0};

    if (inet_pton(AF_INET, host, b) == 1)
        return memcmp(b, any, 4) == 0;
    return inet_pton(AF_INET6, host, b) == 1 && memcmp(b, any, 16) == 0;
}

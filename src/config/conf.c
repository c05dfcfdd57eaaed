/* conf.c - edgekv's configuration snapshot: built-in defaults, applying one directive, the
 * checks across directives, comparing two snapshots and merging one into another on reload.
 * The table is conf_table.c; the front ends are conf_file.c and conf_args.c. A loaded
 * configuration is a plain snapshot owned by the caller; nothing here keeps global state. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"
#include "edgekv/log.h"

#include "conf_int.h"

void ekv_conf_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Frees a string that may hold a secret (a token, a password, the origin URL) after
 * overwriting it, so it does not linger in freed memory. */
void ekv_conf_free_secret(char *s)
{
    if (s == NULL)
        return;
    for (volatile char *p = s; *p != '\0'; p++)
        *p = '\0';
    ekv_free(s);
}

void ekv_conf_strlist_clear(struct ekv_conf_strlist *l)
{
    for (size_t i = 0; i < l->count; i++)
        ekv_conf_free_secret(l->items[i]);
    ekv_free(l->items);
    l->items = NULL;
    l->count = 0;
}

void ekv_conf_strlist_add(struct ekv_conf_strlist *l, const char *s)
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
static int apply(struct ekv_conf *conf, const struct ekv_conf_directive *d, const char *value,
                 char *why, size_t whylen)
{
    void *p = ekv_conf_field(conf, d);
    char reason[256];
    uint64_t n;

    if ((d->flags & D_REQUIRED) && *value == '\0') {
        ekv_conf_errf(why, whylen, "may not be empty");
        return EKV_EINVAL;
    }
    if (d->check != NULL && !(d->type == T_STRING && *value == '\0') &&
        d->check(value, reason, sizeof(reason)) != EKV_OK) {
        if (d->flags & D_SECRET)
            ekv_conf_errf(why, whylen, "%s", reason);
        else
            ekv_conf_errf(why, whylen, "\"%s\" %s", value, reason);
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
        ekv_conf_free_secret(*url);
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
        if (ekv_conf_parse_number(d, value, &n, why, whylen) != EKV_OK)
            return EKV_EINVAL;
        *(unsigned *)p = (unsigned)n;
        break;
    case T_SIZE:
    case T_DURATION:
        if (ekv_conf_parse_number(d, value, &n, why, whylen) != EKV_OK)
            return EKV_EINVAL;
        *(uint64_t *)p = n;
        break;
    case T_BOOL:
        if (ekv_conf_parse_bool(value, p) != EKV_OK) {
            ekv_conf_errf(why, whylen, "\"%s\" is not yes or no", value);
            return EKV_EINVAL;
        }
        break;
    case T_LOGLEVEL: {
        enum ekv_log_level level;
        if (ekv_log_level_parse(value, &level) != EKV_OK) {
            ekv_conf_errf(why, whylen, "\"%s\" is not one of debug, info, warn, error", value);
            return EKV_EINVAL;
        }
        *(int *)p = (int)level;
        break;
    }
    case T_LIST:
        ekv_conf_strlist_add(p, value);
        break;
    }
    return EKV_OK;
}

/*
 * "WHERE: NAME: reason". A command-line @where ("--threads") already names the directive, so
 * it is not repeated there.
 */
int ekv_conf_apply_at(struct ekv_conf *conf, const struct ekv_conf_directive *d, const char *value,
                      const char *where, char *err, size_t errlen)
{
    char why[512];

    if (apply(conf, d, value, why, sizeof(why)) == EKV_OK) {
        char **w = &conf->where[ekv_conf_index(d)];
        ekv_free(*w);
        *w = where != NULL && strcmp(where, "default") != 0 ? ekv_strdup(where) : NULL;
        return EKV_OK;
    }
    if (where == NULL)
        ekv_conf_errf(err, errlen, "%s: %s", d->name, why);
    else if (where[0] == '-')
        ekv_conf_errf(err, errlen, "%s: %s", where, why);
    else
        ekv_conf_errf(err, errlen, "%s: %s: %s", where, d->name, why);
    return EKV_EINVAL;
}

struct ekv_conf *ekv_conf_new(void)
{
    struct ekv_conf *conf = ekv_calloc(1, sizeof(*conf));
    char err[512];

    conf->where = ekv_calloc(EKV_CONF_NDIRECTIVES, sizeof(*conf->where));

    for (size_t i = 0; i < EKV_CONF_NDIRECTIVES; i++) {
        const struct ekv_conf_directive *d = &ekv_conf_directives[i];
        /* An empty default is the zeroed field; lists start empty. */
        if (d->def[0] == '\0')
            continue;
        if (ekv_conf_apply_at(conf, d, d->def, "default", err, sizeof(err)) != EKV_OK)
            EKV_FATAL("bad built-in default: %s", err);
    }
    return conf;
}

void ekv_conf_free(struct ekv_conf *conf)
{
    if (conf == NULL)
        return;
    addr_clear(&conf->listen);
    addr_clear(&conf->admin_listen);
    addr_clear(&conf->tls_listen);
    ekv_free(conf->tls_cert_file);
    ekv_free(conf->tls_key_file);
    ekv_free(conf->tls_client_ca_file);
    ekv_free(conf->tls_min_version);
    ekv_free(conf->tls_ciphers);
    ekv_free(conf->tls_ciphersuites);
    for (size_t i = 0; i < EKV_CONF_NDIRECTIVES; i++)
        ekv_free(conf->where[i]);
    ekv_free(conf->where);
    ekv_conf_free_secret(conf->origin_url);
    ekv_conf_origin_clear(&conf->origin);
    ekv_free(conf->ns);
    ekv_free(conf->service_id);
    ekv_free(conf->access_log);
    ekv_free(conf->origin_tls_ca_file);
    ekv_free(conf->origin_tls_cert_file);
    ekv_free(conf->origin_tls_key_file);
    ekv_free(conf->origin_tls_server_name);
    ekv_free(conf->sentinel_user);
    ekv_conf_free_secret(conf->sentinel_password);
    ekv_conf_strlist_clear(&conf->api_tokens);
    ekv_conf_strlist_clear(&conf->read_tokens);
    ekv_free(conf);
}

int ekv_conf_set(struct ekv_conf *conf, const char *name, const char *value, const char *where,
                 char *err, size_t errlen)
{
    const struct ekv_conf_directive *d = ekv_conf_lookup(name, strlen(name));

    if (d == NULL) {
        if (where == NULL)
            ekv_conf_errf(err, errlen, "unknown directive \"%s\"", name);
        else if (where[0] == '-')
            ekv_conf_errf(err, errlen, "%s: unknown directive", where);
        else
            ekv_conf_errf(err, errlen, "%s: unknown directive \"%s\"", where, name);
        return EKV_EINVAL;
    }
    return ekv_conf_apply_at(conf, d, value, where, err, errlen);
}

/* ------------------------------------------------------------------ checks across directives */

/* tls-listen and its files go together (the files themselves are loaded by the server). */
static int check_tls(const struct ekv_conf *conf, char *err, size_t errlen)
{
    const char *set = conf->tls_cert_file != NULL        ? "tls-cert-file"
                      : conf->tls_key_file != NULL       ? "tls-key-file"
                      : conf->tls_client_ca_file != NULL ? "tls-client-ca-file"
                      : conf->tls_ciphers != NULL        ? "tls-ciphers"
                      : conf->tls_ciphersuites != NULL   ? "tls-ciphersuites"
                                                         : NULL;

    if (conf->tls_listen.host == NULL) {
        if (set != NULL) {
            ekv_conf_errf(err, errlen, "%s is set but tls-listen is empty", set);
            return EKV_EINVAL;
        }
        return EKV_OK;
    }
    if (conf->tls_cert_file == NULL || conf->tls_key_file == NULL) {
        ekv_conf_errf(err, errlen, "tls-listen needs tls-cert-file and tls-key-file");
        return EKV_EINVAL;
    }
    return EKV_OK;
}

int ekv_conf_validate(const struct ekv_conf *conf, char *err, size_t errlen)
{
    const struct ekv_conf_addr *l = &conf->listen, *adm = &conf->admin_listen;
    char a[300], b[300];

    if (l->host == NULL) {
        ekv_conf_errf(err, errlen, "listen may not be empty");
        return EKV_EINVAL;
    }
    if ((conf->origin_tls_cert_file == NULL) != (conf->origin_tls_key_file == NULL)) {
        ekv_conf_errf(err, errlen, "origin-tls-cert-file and origin-tls-key-file go together: "
                                   "set both or neither");
        return EKV_EINVAL;
    }
    if (!conf->origin.tls) {
        const char *set = conf->origin_tls_ca_file != NULL       ? "origin-tls-ca-file"
                          : conf->origin_tls_cert_file != NULL   ? "origin-tls-cert-file"
                          : conf->origin_tls_server_name != NULL ? "origin-tls-server-name"
                                                                 : NULL;
        if (set != NULL) {
            ekv_conf_errf(err, errlen, "%s is set but the origin is not rediss://", set);
            return EKV_EINVAL;
        }
    }
    if (conf->sentinel_user != NULL && conf->sentinel_password == NULL) {
        ekv_conf_errf(err, errlen, "sentinel-user needs sentinel-password");
        return EKV_EINVAL;
    }
    if (check_tls(conf, err, errlen) != EKV_OK)
        return EKV_EINVAL;
    for (int i = 0; i < 2; i++) {
        const struct ekv_conf_addr *x = i == 0 ? l : &conf->tls_listen;
        if (x->host == NULL || !conf->protected_mode || conf->api_tokens.count > 0 ||
            ekv_conf_host_is_loopback(x->host))
            continue;
        ekv_conf_fmt_addr(a, sizeof(a), x);
        ekv_conf_errf(err, errlen,
                      "%s %s is not a loopback address and no api-token is set: set api-token, "
                      "%s on 127.0.0.1, or set protected-mode no",
                      i == 0 ? "listen" : "tls-listen", a, i == 0 ? "listen" : "tls-listen");
        return EKV_EINVAL;
    }
    /* Two listeners on one port: the second bind would fail, or with SO_REUSEPORT quietly
     * share the traffic. Port 0 lets the kernel pick two different ports. */
    if (adm->host != NULL && adm->port != 0 && adm->port == l->port) {
        ekv_conf_fmt_addr(a, sizeof(a), adm);
        ekv_conf_fmt_addr(b, sizeof(b), l);
        if (ekv_conf_same_host(adm->host, l->host)) {
            ekv_conf_errf(
                err, errlen,
                "admin-listen %s is the same address as listen: give it another port, or "
                "leave admin-listen empty to serve /metrics, /healthz and /readyz on listen",
                a);
            return EKV_EINVAL;
        }
        if (ekv_conf_host_is_wildcard(adm->host) || ekv_conf_host_is_wildcard(l->host)) {
            ekv_conf_errf(
                err, errlen,
                "admin-listen %s overlaps listen %s (same port on all addresses): give it "
                "another port, or leave admin-listen empty to serve /metrics, /healthz and "
                "/readyz on listen",
                a, b);
            return EKV_EINVAL;
        }
    }
    for (int i = 0; i < 2; i++) {
        const struct ekv_conf_addr *t = &conf->tls_listen, *x = i == 0 ? l : adm;
        if (t->host == NULL || x->host == NULL || t->port == 0 || t->port != x->port)
            continue;
        if (ekv_conf_same_host(t->host, x->host) || ekv_conf_host_is_wildcard(t->host) ||
            ekv_conf_host_is_wildcard(x->host)) {
            ekv_conf_fmt_addr(a, sizeof(a), t);
            ekv_conf_fmt_addr(b, sizeof(b), x);
            ekv_conf_errf(err, errlen, "tls-listen %s overlaps %s %s: give it another port", a,
                          i == 0 ? "listen" : "admin-listen", b);
            return EKV_EINVAL;
        }
    }
    return EKV_OK;
}

/* Whether @a and @b hold the same value for directive @d. */
static bool same_value(const struct ekv_conf_directive *d, const struct ekv_conf *a,
                       const struct ekv_conf *b)
{
    const void *pa = ekv_conf_cfield(a, d), *pb = ekv_conf_cfield(b, d);

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
    for (size_t i = 0; i < EKV_CONF_NDIRECTIVES; i++)
        if (!same_value(&ekv_conf_directives[i], a, b))
            return false;
    return true;
}

/* Sets directive @d of @dst to its value in @src (deep copies). */
static void copy_value(const struct ekv_conf_directive *d, struct ekv_conf *dst,
                       const struct ekv_conf *src)
{
    void *pd = ekv_conf_field(dst, d);
    const void *ps = ekv_conf_cfield(src, d);
    const char *w = src->where[ekv_conf_index(d)];

    ekv_free(dst->where[ekv_conf_index(d)]);
    dst->where[ekv_conf_index(d)] = w != NULL ? ekv_strdup(w) : NULL;

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
        ekv_conf_free_secret(*url);
        *url = ekv_strdup(src->origin_url);
        ekv_conf_origin_clear(&dst->origin);
        /* it parsed when @src was loaded, so it parses again */
        if (ekv_conf_parse_origin(src->origin_url, &dst->origin, err, sizeof(err)) != EKV_OK)
            EKV_FATAL("a parsed origin does not parse again: %s", err);
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
        ekv_conf_strlist_clear(pd);
        for (size_t j = 0; j < y->count; j++)
            ekv_conf_strlist_add(pd, y->items[j]);
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
    for (size_t i = 0; i < EKV_CONF_NDIRECTIVES; i++) {
        const struct ekv_conf_directive *d = &ekv_conf_directives[i];

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
    const struct ekv_conf_directive *d = ekv_conf_lookup(name, strlen(name));

    return d != NULL && (d->flags & D_RELOAD) != 0;
}

const char *ekv_conf_where(const struct ekv_conf *conf, const char *name)
{
    const struct ekv_conf_directive *d = ekv_conf_lookup(name, strlen(name));

    return d != NULL ? conf->where[ekv_conf_index(d)] : NULL;
}

void ekv_conf_fmt_where(const struct ekv_conf *conf, const char *name, char *buf, size_t len)
{
    const char *w = ekv_conf_where(conf, name);

    if (w == NULL)
        snprintf(buf, len, "%s", name);
    else if (w[0] == '-')
        snprintf(buf, len, "%s", w);
    else
        snprintf(buf, len, "%s: %s", w, name);
}

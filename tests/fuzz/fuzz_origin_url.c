/* fuzz_origin_url.c - libFuzzer target: the addresses of the configuration
 * (src/config/conf_addr.c): the origin URL (redis://, rediss://, unix://, redis-sentinel://,
 * redis-cluster:// and their TLS forms, with user info, node lists, master names and database
 * numbers) and the listeners' host:port / [v6]:port. The input is the text.
 *
 * Invariants: a parsed origin is complete for its kind (a host or a socket path; nodes for
 * Sentinel and cluster, each with a host and a port; a master name for Sentinel); a refused
 * one leaves nothing allocated behind; an error never quotes the user info (a password) of
 * the URL. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_origin_url: %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_INPUT 4096

static void check_origin(const struct ekv_conf_origin *o)
{
    switch (o->kind) {
    case EKV_ORIGIN_STANDALONE:
        CHECK((o->host != NULL) != (o->unix_path != NULL));
        CHECK(o->nnodes == 0 && o->master == NULL);
        CHECK(o->unix_path != NULL || o->port != 0);
        CHECK(o->unix_path == NULL || o->unix_path[0] == '/');
        break;
    case EKV_ORIGIN_SENTINEL:
    case EKV_ORIGIN_CLUSTER:
        CHECK(o->host == NULL && o->unix_path == NULL);
        CHECK(o->nnodes >= 1 && o->nnodes <= EKV_CONF_MAX_NODES);
        for (size_t i = 0; i < o->nnodes; i++)
            CHECK(o->nodes[i].host != NULL && o->nodes[i].host[0] != '\0' &&
                  o->nodes[i].port != 0);
        CHECK((o->kind == EKV_ORIGIN_SENTINEL) == (o->master != NULL));
        CHECK(o->kind == EKV_ORIGIN_SENTINEL || o->db == 0);
        break;
    default:
        CHECK(!"a kind of origin that does not exist");
    }
    CHECK(o->db <= 65535);
}

/* The user info of the URL @s ("user:password" before the last '@' after "://"), if it can be
 * told from the words of the reasons (it holds a ':' and a digit, which no reason's own text
 * does, and 8 bytes or more) and appears nowhere else in the URL (a reason may quote the
 * database or the scheme). */
static bool userinfo(const char *s, size_t len, char *out, size_t cap)
{
    const char *start = memmem(s, len, "://", 3), *at;
    size_t n;

    if (start == NULL)
        return false;
    start += 3;
    at = strrchr(start, '@');
    if (at == NULL)
        return false;
    n = (size_t)(at - start);
    if (n < 8 || n >= cap || memchr(start, ':', n) == NULL || strcspn(start, "0123456789") >= n)
        return false;
    memcpy(out, start, n);
    out[n] = '\0';
    if (memmem(at, (size_t)(s + len - at), out, n) != NULL ||
        memmem(s, (size_t)(start - s), out, n) != NULL)
        return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char s[MAX_INPUT + 1], ui[MAX_INPUT + 1];
    struct ekv_conf_origin o;
    struct ekv_conf_addr addr = {0};
    char err[512];
    size_t len;

    if (size > MAX_INPUT)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    len = strlen(s); /* the parsers take C strings, as the config gives them */

    err[0] = '\0';
    if (ekv_conf_parse_origin(s, &o, err, sizeof(err)) == EKV_OK) {
        check_origin(&o);
        ekv_conf_origin_clear(&o);
    } else {
        static const struct ekv_conf_origin zero;
        CHECK(err[0] != '\0');
        CHECK(memcmp(&o, &zero, sizeof(o)) == 0); /* cleared: nothing left to free */
        if (userinfo(s, len, ui, sizeof(ui)))
            CHECK(strstr(err, ui) == NULL);
    }

    err[0] = '\0';
    if (ekv_conf_parse_addr(s, &addr, err, sizeof(err)) == EKV_OK) {
        CHECK((addr.host == NULL) == (len == 0));
        if (addr.host != NULL) {
            CHECK(addr.host[0] != '\0');
            (void)ekv_conf_host_is_loopback(addr.host);
        }
        ekv_free(addr.host);
    } else {
        CHECK(err[0] != '\0');
    }
    (void)ekv_conf_host_is_loopback(s);
    return 0;
}

/* check_conf.c - unit tests of the config module (conf.h): defaults, the file and command-line
 * parsers, every kind of bad value with its exact "FILE:LINE: reason", protected mode, the
 * command-line actions, and the sample file that must parse back to the defaults. */
#include "config.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgekv/conf.h"
#include "edgekv/log.h"

#define KB (UINT64_C(1) << 10)
#define MB (UINT64_C(1) << 20)
#define GB (UINT64_C(1) << 30)

/* ------------------------------------------------------------------ fixture and helpers */

/* Temporary files of the current test, removed by teardown (also under CK_FORK=no). */
static char *tmp_paths[64];
static size_t tmp_count;
/* The configuration under test, freed by teardown. */
static struct ekv_conf *conf;
static char err[1024];

static void setup(void)
{
    tmp_count = 0;
    conf = NULL;
    err[0] = '\0';
}

static void teardown(void)
{
    for (size_t i = 0; i < tmp_count; i++) {
        unlink(tmp_paths[i]);
        free(tmp_paths[i]);
    }
    tmp_count = 0;
    ekv_conf_free(conf);
    conf = NULL;
}

/* Writes @content to a new temporary file; returns its path (freed by teardown). */
static const char *write_tmp(const char *content)
{
    const char *dir = getenv("TMPDIR");
    char *path;
    size_t len;
    int fd;

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    ck_assert_uint_lt(tmp_count, sizeof(tmp_paths) / sizeof(tmp_paths[0]));
    len = strlen(dir) + sizeof("/check_conf.XXXXXX");
    path = malloc(len);
    ck_assert_ptr_nonnull(path);
    snprintf(path, len, "%s/check_conf.XXXXXX", dir);
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    tmp_paths[tmp_count++] = path;
    ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

/* Loads @content into a fresh default configuration (the global @conf). */
static int load(const char *content, const char **path)
{
    const char *p = write_tmp(content);

    if (path != NULL)
        *path = p;
    ekv_conf_free(conf);
    conf = ekv_conf_new();
    return ekv_conf_load_file(conf, p, err, sizeof(err));
}

static void load_ok(const char *content)
{
    int rc = load(content, NULL);

    ck_assert_msg(rc == EKV_OK, "load failed: %s", err);
}

/* Loading @content fails with exactly "PATH:@line: @reason". */
static void load_fails(const char *content, unsigned line, const char *reason)
{
    const char *path;
    char want[1024];

    ck_assert_int_eq(load(content, &path), EKV_EINVAL);
    snprintf(want, sizeof(want), "%s:%u: %s", path, line, reason);
    ck_assert_str_eq(err, want);
}

/* Runs ekv_conf_from_args() on "edgekv" plus the NULL-terminated arguments. */
static int run_args(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    const char *a;

    argv[argc++] = (char *)"edgekv";
    va_start(ap, first);
    for (a = first; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert_int_lt(argc, 63);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    ekv_conf_free(conf);
    conf = NULL;
    err[0] = '\0';
    return ekv_conf_from_args(argc, argv, &conf, err, sizeof(err));
}

/* The command line @args... fails with exactly @want. */
#define args_fail(want, ...)                                                                       \
    do {                                                                                           \
        ck_assert_int_eq(run_args(__VA_ARGS__, (const char *)NULL), EKV_EINVAL);                   \
        ck_assert_ptr_null(conf);                                                                  \
        ck_assert_str_eq(err, want);                                                               \
    } while (0)

#define args_ok(...)                                                                               \
    do {                                                                                           \
        int rc_ = run_args(__VA_ARGS__, (const char *)NULL);                                       \
        ck_assert_msg(rc_ == EKV_CONF_RUN, "from_args failed (%d): %s", rc_, err);                 \
        ck_assert_ptr_nonnull(conf);                                                               \
    } while (0)

/* Everything ekv_conf_print_sample() or _print_help() writes, as a malloc'd string. */
static char *capture(void (*print)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(fp);
    print(fp);
    ck_assert_int_eq(fclose(fp), 0);
    return buf;
}

static void assert_defaults(const struct ekv_conf *c)
{
    ck_assert_str_eq(c->listen.host, "127.0.0.1");
    ck_assert_uint_eq(c->listen.port, 8080);
    ck_assert_ptr_null(c->admin_listen.host);
    ck_assert_uint_eq(c->admin_listen.port, 0);
    ck_assert_str_eq(c->origin_url, "redis://127.0.0.1:6379/0");
    ck_assert_str_eq(c->origin.host, "127.0.0.1");
    ck_assert_uint_eq(c->origin.port, 6379);
    ck_assert_ptr_null(c->origin.unix_path);
    ck_assert_ptr_null(c->origin.user);
    ck_assert_ptr_null(c->origin.password);
    ck_assert_uint_eq(c->origin.db, 0);
    ck_assert_str_eq(c->ns, "edgekv:");
    ck_assert_uint_eq(c->threads, 0);
    ck_assert_uint_eq(c->max_connections, 10000);
    ck_assert_uint_eq(c->idle_timeout_ms, 60000);
    ck_assert_uint_eq(c->header_timeout_ms, 10000);
    ck_assert_uint_eq(c->shutdown_timeout_ms, 10000);
    ck_assert_uint_eq(c->max_header_bytes, 32 * KB);
    ck_assert_uint_eq(c->batch_max_bytes, 100 * MB);
    ck_assert_uint_eq(c->cache_max_bytes, 256 * MB);
    ck_assert_uint_eq(c->cache_max_item_bytes, 1 * MB);
    ck_assert_uint_eq(c->cache_max_ttl_ms, 300000);
    ck_assert_uint_eq(c->negative_ttl_ms, 5000);
    ck_assert_uint_eq(c->max_staleness_ms, 3000);
    ck_assert_uint_eq(c->stale_if_error_ms, 30000);
    ck_assert_uint_eq(c->origin_timeout_ms, 1000);
    ck_assert_uint_eq(c->value_max_bytes, 25 * MB);
    ck_assert_uint_eq(c->max_stores, 50);
    ck_assert_uint_eq(c->store_shards, 16);
    ck_assert_ptr_null(c->service_id);
    ck_assert_uint_eq(c->api_tokens.count, 0);
    ck_assert_uint_eq(c->read_tokens.count, 0);
    ck_assert(!c->edge_read_public);
    ck_assert(c->protected_mode);
    ck_assert_int_eq(c->log_level, EKV_LOG_INFO);
    ck_assert_ptr_null(c->access_log);
}

/* A value other than the default for every directive, as "name value" pairs. */
static const char *const every[][2] = {
    {"listen", "0.0.0.0:9000"},
    {"admin-listen", "[::1]:9091"},
    {"origin", "rediss://ops:s3cr%23t@redis.example:6380/7"},
    {"namespace", "kv1:"},
    {"threads", "8"},
    {"max-connections", "50000"},
    {"idle-timeout", "2m"},
    {"header-timeout", "1500ms"},
    {"shutdown-timeout", "0"},
    {"max-header-bytes", "64kb"},
    {"batch-max-bytes", "1gb"},
    {"cache-max-bytes", "2G"},
    {"cache-max-item-bytes", "512kb"},
    {"cache-max-ttl", "1h"},
    {"negative-ttl", "0"},
    {"max-staleness", "500ms"},
    {"stale-if-error", "0s"},
    {"origin-timeout", "250ms"},
    {"value-max-bytes", "1m"},
    {"max-stores", "1000"},
    {"store-shards", "64"},
    {"service-id", "SU1Z0isxPaozGVKXdv0eY"},
    {"api-token", "tok-a"},
    {"read-token", "tok-r"},
    {"edge-read-public", "yes"},
    {"protected-mode", "no"},
    {"log-level", "debug"},
    {"access-log", "/var/log/edgekv/access.log"},
    {"tls-listen", "[::]:8443"},
    {"tls-cert-file", "/etc/edgekv/tls/fullchain.pem"},
    {"tls-key-file", "/etc/edgekv/tls/privkey.pem"},
    {"tls-client-ca-file", "/etc/edgekv/tls/clients.pem"},
    {"tls-min-version", "1.3"},
    {"tls-ciphers", "ECDHE+AESGCM"},
    {"tls-ciphersuites", "TLS_AES_128_GCM_SHA256"},
    {"origin-tls-ca-file", "/etc/edgekv/ca.pem"},
    {"origin-tls-cert-file", "/etc/edgekv/client.pem"},
    {"origin-tls-key-file", "/etc/edgekv/client.key"},
    {"origin-tls-server-name", "redis.internal"},
    {"origin-tls-verify", "no"},
    {"sentinel-user", "edgekv"},
    {"sentinel-password", "sentinel-secret"},
};

static void assert_every(const struct ekv_conf *c)
{
    ck_assert_str_eq(c->listen.host, "0.0.0.0");
    ck_assert_uint_eq(c->listen.port, 9000);
    ck_assert_str_eq(c->admin_listen.host, "::1");
    ck_assert_uint_eq(c->admin_listen.port, 9091);
    ck_assert_str_eq(c->origin_url, "rediss://ops:s3cr%23t@redis.example:6380/7");
    ck_assert(c->origin.tls);
    ck_assert_str_eq(c->tls_listen.host, "::");
    ck_assert_uint_eq(c->tls_listen.port, 8443);
    ck_assert_str_eq(c->tls_cert_file, "/etc/edgekv/tls/fullchain.pem");
    ck_assert_str_eq(c->tls_key_file, "/etc/edgekv/tls/privkey.pem");
    ck_assert_str_eq(c->tls_client_ca_file, "/etc/edgekv/tls/clients.pem");
    ck_assert_str_eq(c->tls_min_version, "1.3");
    ck_assert_str_eq(c->tls_ciphers, "ECDHE+AESGCM");
    ck_assert_str_eq(c->tls_ciphersuites, "TLS_AES_128_GCM_SHA256");
    ck_assert_str_eq(c->origin_tls_ca_file, "/etc/edgekv/ca.pem");
    ck_assert_str_eq(c->origin_tls_cert_file, "/etc/edgekv/client.pem");
    ck_assert_str_eq(c->origin_tls_key_file, "/etc/edgekv/client.key");
    ck_assert_str_eq(c->origin_tls_server_name, "redis.internal");
    ck_assert(!c->origin_tls_verify);
    ck_assert_str_eq(c->sentinel_user, "edgekv");
    ck_assert_str_eq(c->sentinel_password, "sentinel-secret");
    ck_assert_str_eq(c->origin.host, "redis.example");
    ck_assert_uint_eq(c->origin.port, 6380);
    ck_assert_str_eq(c->origin.user, "ops");
    ck_assert_str_eq(c->origin.password, "s3cr#t");
    ck_assert_uint_eq(c->origin.db, 7);
    ck_assert_str_eq(c->ns, "kv1:");
    ck_assert_uint_eq(c->threads, 8);
    ck_assert_uint_eq(c->max_connections, 50000);
    ck_assert_uint_eq(c->idle_timeout_ms, 120000);
    ck_assert_uint_eq(c->header_timeout_ms, 1500);
    ck_assert_uint_eq(c->shutdown_timeout_ms, 0);
    ck_assert_uint_eq(c->max_header_bytes, 64 * KB);
    ck_assert_uint_eq(c->batch_max_bytes, GB);
    ck_assert_uint_eq(c->cache_max_bytes, 2 * GB);
    ck_assert_uint_eq(c->cache_max_item_bytes, 512 * KB);
    ck_assert_uint_eq(c->cache_max_ttl_ms, 3600000);
    ck_assert_uint_eq(c->negative_ttl_ms, 0);
    ck_assert_uint_eq(c->max_staleness_ms, 500);
    ck_assert_uint_eq(c->stale_if_error_ms, 0);
    ck_assert_uint_eq(c->origin_timeout_ms, 250);
    ck_assert_uint_eq(c->value_max_bytes, MB);
    ck_assert_uint_eq(c->max_stores, 1000);
    ck_assert_uint_eq(c->store_shards, 64);
    ck_assert_str_eq(c->service_id, "SU1Z0isxPaozGVKXdv0eY");
    ck_assert_uint_eq(c->api_tokens.count, 1);
    ck_assert_str_eq(c->api_tokens.items[0], "tok-a");
    ck_assert_uint_eq(c->read_tokens.count, 1);
    ck_assert_str_eq(c->read_tokens.items[0], "tok-r");
    ck_assert(c->edge_read_public);
    ck_assert(!c->protected_mode);
    ck_assert_int_eq(c->log_level, EKV_LOG_DEBUG);
    ck_assert_str_eq(c->access_log, "/var/log/edgekv/access.log");
}

/* ------------------------------------------------------------------ defaults */

START_TEST(test_defaults)
{
    conf = ekv_conf_new();
    assert_defaults(conf);
    ck_assert_int_eq(ekv_conf_validate(conf, err, sizeof(err)), EKV_OK);
}
END_TEST

START_TEST(test_defaults_without_file)
{
    struct ekv_conf *def = ekv_conf_new();

    args_ok(NULL);
    assert_defaults(conf);
    ck_assert(ekv_conf_equal(conf, def));
    ekv_conf_free(def);
}
END_TEST

START_TEST(test_empty_file_is_defaults)
{
    load_ok("");
    assert_defaults(conf);
    load_ok("\n\n# only comments\n   \t\n");
    assert_defaults(conf);
}
END_TEST

START_TEST(test_free_null)
{
    ekv_conf_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------ setting directives */

START_TEST(test_every_directive_from_file)
{
    char text[4096];
    size_t len = 0;

    for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
        len +=
            (size_t)snprintf(text + len, sizeof(text) - len, "%s %s\n", every[i][0], every[i][1]);
        ck_assert_uint_lt(len, sizeof(text));
    }
    text[len] = '\0';
    load_ok(text);
    assert_every(conf);
}
END_TEST

START_TEST(test_every_directive_from_args)
{
    char *argv[2 * sizeof(every) / sizeof(every[0]) + 2],
        flags[sizeof(every) / sizeof(every[0])][128];
    int argc = 0;

    argv[argc++] = (char *)"edgekv";
    for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
        if (i % 2 == 0) { /* half as "--name value", half as "--name=value" */
            snprintf(flags[i], sizeof(flags[i]), "--%s", every[i][0]);
            argv[argc++] = flags[i];
            argv[argc++] = (char *)every[i][1];
        } else {
            snprintf(flags[i], sizeof(flags[i]), "--%s=%s", every[i][0], every[i][1]);
            argv[argc++] = flags[i];
        }
    }
    argv[argc] = NULL;
    ck_assert_int_eq(ekv_conf_from_args(argc, argv, &conf, err, sizeof(err)), EKV_CONF_RUN);
    assert_every(conf);
}
END_TEST

/* Each directive alone, through ekv_conf_set(), leaves every other directive at its default. */
START_TEST(test_each_directive_alone)
{
    struct ekv_conf *def = ekv_conf_new();

    for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
        struct ekv_conf *c = ekv_conf_new();
        ck_assert_msg(ekv_conf_set(c, every[i][0], every[i][1], "t", err, sizeof(err)) == EKV_OK,
                      "%s", err);
        ck_assert_msg(!ekv_conf_equal(c, def), "%s did not change anything", every[i][0]);
        ekv_conf_free(c);
    }
    ekv_conf_free(def);
}
END_TEST

START_TEST(test_command_line_wins)
{
    const char *path = write_tmp("threads 4\n"
                                 "listen 127.0.0.1:7000\n"
                                 "api-token file-a\n"
                                 "api-token file-b\n"
                                 "read-token file-r\n"
                                 "log-level warn\n");

    /* -c after the directives: the file is still loaded first */
    args_ok("--threads", "8", "--api-token", "cli-a", "-c", path);
    ck_assert_uint_eq(conf->threads, 8);
    ck_assert_uint_eq(conf->listen.port, 7000); /* from the file */
    ck_assert_int_eq(conf->log_level, EKV_LOG_WARN);
    ck_assert_uint_eq(conf->api_tokens.count, 1); /* replaced, not extended */
    ck_assert_str_eq(conf->api_tokens.items[0], "cli-a");
    ck_assert_uint_eq(conf->read_tokens.count, 1); /* untouched */
    ck_assert_str_eq(conf->read_tokens.items[0], "file-r");

    /* a repeatable directive twice on the command line: both, in order */
    args_ok("-c", path, "--api-token", "c1", "--api-token=c2");
    ck_assert_uint_eq(conf->api_tokens.count, 2);
    ck_assert_str_eq(conf->api_tokens.items[0], "c1");
    ck_assert_str_eq(conf->api_tokens.items[1], "c2");

    /* a scalar twice on the command line: the last wins */
    args_ok("-c", path, "--threads", "2", "--threads=3");
    ck_assert_uint_eq(conf->threads, 3);

    /* without the command line, the file's values */
    args_ok("-c", path);
    ck_assert_uint_eq(conf->threads, 4);
    ck_assert_uint_eq(conf->api_tokens.count, 2);
    ck_assert_str_eq(conf->api_tokens.items[1], "file-b");
}
END_TEST

START_TEST(test_repeatable)
{
    load_ok("api-token a1\n"
            "read-token r1\n"
            "api-token a2\n"
            "read-token r2\n"
            "api-token a3\n");
    ck_assert_uint_eq(conf->api_tokens.count, 3);
    ck_assert_str_eq(conf->api_tokens.items[0], "a1");
    ck_assert_str_eq(conf->api_tokens.items[1], "a2");
    ck_assert_str_eq(conf->api_tokens.items[2], "a3");
    ck_assert_uint_eq(conf->read_tokens.count, 2);
    ck_assert_str_eq(conf->read_tokens.items[0], "r1");
    ck_assert_str_eq(conf->read_tokens.items[1], "r2");

    /* ekv_conf_set appends as well */
    ck_assert_int_eq(ekv_conf_set(conf, "read-token", "r3", "x", err, sizeof(err)), EKV_OK);
    ck_assert_uint_eq(conf->read_tokens.count, 3);
    ck_assert_str_eq(conf->read_tokens.items[2], "r3");
}
END_TEST

START_TEST(test_bools)
{
    static const char *const yes[] = {"yes", "YES", "true", "True", "on", "ON", "1"};
    static const char *const no[] = {"no", "No", "false", "FALSE", "off", "Off", "0"};

    conf = ekv_conf_new();
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        ck_assert_int_eq(ekv_conf_set(conf, "edge-read-public", yes[i], "x", err, sizeof(err)),
                         EKV_OK);
        ck_assert(conf->edge_read_public);
        ck_assert_int_eq(ekv_conf_set(conf, "edge-read-public", no[i], "x", err, sizeof(err)),
                         EKV_OK);
        ck_assert(!conf->edge_read_public);
    }
    load_fails("protected-mode maybe\n", 1, "protected-mode: \"maybe\" is not yes or no");
    load_fails("edge-read-public 2\n", 1, "edge-read-public: \"2\" is not yes or no");
    load_fails("edge-read-public yess\n", 1, "edge-read-public: \"yess\" is not yes or no");
}
END_TEST

START_TEST(test_log_levels)
{
    load_ok("log-level debug\n");
    ck_assert_int_eq(conf->log_level, EKV_LOG_DEBUG);
    load_ok("log-level info\n");
    ck_assert_int_eq(conf->log_level, EKV_LOG_INFO);
    load_ok("log-level warn\n");
    ck_assert_int_eq(conf->log_level, EKV_LOG_WARN);
    load_ok("log-level ERROR\n");
    ck_assert_int_eq(conf->log_level, EKV_LOG_ERROR);
    load_ok("log-level warning\n");
    ck_assert_int_eq(conf->log_level, EKV_LOG_WARN);
    load_fails("log-level loud\n", 1, "log-level: \"loud\" is not one of debug, info, warn, error");
}
END_TEST

START_TEST(test_sizes_and_durations)
{
    load_ok("max-header-bytes 1kb\nvalue-max-bytes 1gb\ncache-max-bytes 0\n");
    ck_assert_uint_eq(conf->max_header_bytes, KB);
    ck_assert_uint_eq(conf->value_max_bytes, GB);
    ck_assert_uint_eq(conf->cache_max_bytes, 0);
    load_ok("max-header-bytes 1MB\nvalue-max-bytes 1b\ncache-max-item-bytes 100\n");
    ck_assert_uint_eq(conf->max_header_bytes, MB);
    ck_assert_uint_eq(conf->value_max_bytes, 1);
    ck_assert_uint_eq(conf->cache_max_item_bytes, 100);
    load_ok("origin-timeout 1ms\nnegative-ttl 0\nstale-if-error 0\nidle-timeout 1H\n");
    ck_assert_uint_eq(conf->origin_timeout_ms, 1);
    ck_assert_uint_eq(conf->negative_ttl_ms, 0);
    ck_assert_uint_eq(conf->stale_if_error_ms, 0);
    ck_assert_uint_eq(conf->idle_timeout_ms, 3600000);
    load_ok("threads 256\nmax-connections 1\n");
    ck_assert_uint_eq(conf->threads, 256);
    ck_assert_uint_eq(conf->max_connections, 1);
    load_ok("max-connections 1000000\n");
    ck_assert_uint_eq(conf->max_connections, 1000000);
}
END_TEST

/* ------------------------------------------------------------------ bad values */

START_TEST(test_bad_numbers)
{
    load_fails("threads abc\n", 1, "threads: \"abc\" is not a number");
    load_fails("\n\n\n\n\n\nthreads abc\n", 7, "threads: \"abc\" is not a number");
    load_fails("threads -1\n", 1, "threads: \"-1\" is not a number");
    load_fails("threads +1\n", 1, "threads: \"+1\" is not a number");
    load_fails("threads 1.5\n", 1, "threads: \"1.5\" is not a number");
    load_fails("threads 4k\n", 1, "threads: \"4k\" is not a number");
    load_fails("threads 257\n", 1, "threads: \"257\" is out of range (0..256)");
    load_fails("threads 18446744073709551616\n", 1,
               "threads: \"18446744073709551616\" is too large");
    load_fails("threads 4294967297\n", 1, "threads: \"4294967297\" is out of range (0..256)");
    load_fails("max-connections 0\n", 1, "max-connections: \"0\" is out of range (1..1000000)");
    load_fails("max-connections 1000001\n", 1,
               "max-connections: \"1000001\" is out of range (1..1000000)");
    load_fails("max-stores 0\n", 1, "max-stores: \"0\" is out of range (1..1000000)");
    load_fails("store-shards 0\n", 1, "store-shards: \"0\" is out of range (1..1024)");
    load_fails("store-shards 1025\n", 1, "store-shards: \"1025\" is out of range (1..1024)");
}
END_TEST

START_TEST(test_bad_sizes)
{
    load_fails("max-header-bytes 512b\n", 1,
               "max-header-bytes: \"512b\" is out of range (1kb..1mb)");
    load_fails("max-header-bytes 1025kb\n", 1,
               "max-header-bytes: \"1025kb\" is out of range (1kb..1mb)");
    load_fails("value-max-bytes 0\n", 1, "value-max-bytes: \"0\" is out of range (1b..1gb)");
    load_fails("value-max-bytes 2gb\n", 1, "value-max-bytes: \"2gb\" is out of range (1b..1gb)");
    load_fails("cache-max-bytes 10tb\n", 1,
               "cache-max-bytes: \"10tb\" is not a size (a number with b, kb, mb or gb)");
    load_fails("cache-max-bytes \"10 k\"\n", 1,
               "cache-max-bytes: \"10 k\" is not a size (a number with b, kb, mb or gb)");
    load_fails("cache-max-bytes -1mb\n", 1,
               "cache-max-bytes: \"-1mb\" is not a size (a number with b, kb, mb or gb)");
    load_fails("cache-max-bytes mb\n", 1,
               "cache-max-bytes: \"mb\" is not a size (a number with b, kb, mb or gb)");
    load_fails("cache-max-bytes 17179869184gb\n", 1,
               "cache-max-bytes: \"17179869184gb\" is too large");
    load_fails("batch-max-bytes 99999999999999999999\n", 1,
               "batch-max-bytes: \"99999999999999999999\" is too large");
}
END_TEST

START_TEST(test_bad_durations)
{
    load_fails("idle-timeout 5\n", 1,
               "idle-timeout: \"5\" needs a unit: ms, s, m or h (only 0 may go without)");
    load_fails("negative-ttl 30\n", 1,
               "negative-ttl: \"30\" needs a unit: ms, s, m or h (only 0 may go without)");
    load_fails("idle-timeout 0\n", 1, "idle-timeout: \"0\" is out of range (1ms..24h)");
    load_fails("header-timeout 0s\n", 1, "header-timeout: \"0s\" is out of range (1ms..1h)");
    load_fails("origin-timeout 0ms\n", 1, "origin-timeout: \"0ms\" is out of range (1ms..10m)");
    load_fails("origin-timeout 11m\n", 1, "origin-timeout: \"11m\" is out of range (1ms..10m)");
    load_fails("max-staleness 10ms\n", 1, "max-staleness: \"10ms\" is out of range (100ms..1h)");
    load_fails("cache-max-ttl 1d\n", 1,
               "cache-max-ttl: \"1d\" is not a duration (a number with ms, s, m or h)");
    load_fails("cache-max-ttl 5sec\n", 1,
               "cache-max-ttl: \"5sec\" is not a duration (a number with ms, s, m or h)");
    load_fails("cache-max-ttl 1.5s\n", 1,
               "cache-max-ttl: \"1.5s\" is not a duration (a number with ms, s, m or h)");
    load_fails("shutdown-timeout 18446744073709552s\n", 1,
               "shutdown-timeout: \"18446744073709552s\" is too large");
}
END_TEST

START_TEST(test_syntax_errors)
{
    load_fails("# ok\nnope 1\n", 2, "unknown directive \"nope\"");
    load_fails("Threads 4\n", 1, "unknown directive \"Threads\"");
    load_fails("listen_addr 1.2.3.4:5\n", 1, "unknown directive \"listen_addr\"");
    load_fails("threads\n", 1, "threads: missing value");
    load_fails("threads   # four\n", 1, "threads: missing value");
    load_fails("\n  threads 4\n\nthreads 5\n", 4,
               "threads: duplicate directive (first set on line 2)");
    load_fails("origin redis://a\norigin redis://a\n", 2,
               "origin: duplicate directive (first set on line 1)");
    load_fails("listen 127.0.0.1 8080\n", 1,
               "listen: expects one value (double-quote a value that contains spaces)");
    load_fails("api-token \"abc\n", 1, "api-token: unterminated quoted value");
    load_fails("api-token \"abc\"def\n", 1, "api-token: unexpected text after the closing quote");
    load_fails("threads\"4\"\n", 1, "unknown directive \"threads\"4\"\"");
}
END_TEST

START_TEST(test_nul_byte)
{
    const char *path;
    char want[1024];
    static const char text[] = "threads 4\nthreads\0 5\n";
    FILE *fp;

    path = write_tmp("");
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(text, 1, sizeof(text) - 1, fp), sizeof(text) - 1);
    fclose(fp);
    conf = ekv_conf_new();
    ck_assert_int_eq(ekv_conf_load_file(conf, path, err, sizeof(err)), EKV_EINVAL);
    snprintf(want, sizeof(want), "%s:2: NUL byte in the line", path);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_unreadable_file)
{
    char want[1024], dir[512];
    const char *tmp = getenv("TMPDIR");

    conf = ekv_conf_new();
    ck_assert_int_eq(ekv_conf_load_file(conf, "/nonexistent/edgekv.conf", err, sizeof(err)),
                     EKV_EINVAL);
    ck_assert_str_eq(err, "/nonexistent/edgekv.conf: No such file or directory");

    snprintf(dir, sizeof(dir), "%s", tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    ck_assert_int_eq(ekv_conf_load_file(conf, dir, err, sizeof(err)), EKV_EINVAL);
    snprintf(want, sizeof(want), "%s: Is a directory", dir);
    ck_assert_str_eq(err, want);

    args_fail("/nonexistent/edgekv.conf: No such file or directory", "-c",
              "/nonexistent/edgekv.conf");
}
END_TEST

/* A failed directive leaves the field as it was. */
START_TEST(test_failed_set_changes_nothing)
{
    struct ekv_conf *def = ekv_conf_new();
    static const char *const bad[][2] = {
        {"listen", "1.2.3.4"},      {"admin-listen", "[::1"},
        {"origin", "http://x"},     {"namespace", ""},
        {"threads", "x"},           {"idle-timeout", "5"},
        {"max-header-bytes", "1b"}, {"service-id", "a b"},
        {"api-token", ""},          {"edge-read-public", "maybe"},
        {"log-level", "x"},
    };

    conf = ekv_conf_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(ekv_conf_set(conf, bad[i][0], bad[i][1], "x", err, sizeof(err)),
                         EKV_EINVAL);
        ck_assert_msg(ekv_conf_equal(conf, def), "%s changed", bad[i][0]);
    }
    assert_defaults(conf);
    ekv_conf_free(def);
}
END_TEST

/* ------------------------------------------------------------------ addresses */

START_TEST(test_addr_good)
{
    struct ekv_conf_addr a = {0};

    ck_assert_int_eq(ekv_conf_parse_addr("127.0.0.1:8080", &a, err, sizeof(err)), EKV_OK);
    ck_assert_str_eq(a.host, "127.0.0.1");
    ck_assert_uint_eq(a.port, 8080);
    free(a.host);
    ck_assert_int_eq(ekv_conf_parse_addr("[::1]:0", &a, err, sizeof(err)), EKV_OK);
    ck_assert_str_eq(a.host, "::1");
    ck_assert_uint_eq(a.port, 0);
    free(a.host);
    ck_assert_int_eq(ekv_conf_parse_addr("[::]:65535", &a, err, sizeof(err)), EKV_OK);
    ck_assert_str_eq(a.host, "::");
    ck_assert_uint_eq(a.port, 65535);
    free(a.host);
    ck_assert_int_eq(ekv_conf_parse_addr("localhost:1", &a, err, sizeof(err)), EKV_OK);
    ck_assert_str_eq(a.host, "localhost");
    free(a.host);
    ck_assert_int_eq(ekv_conf_parse_addr("edge-1.example.net:80", &a, err, sizeof(err)), EKV_OK);
    ck_assert_str_eq(a.host, "edge-1.example.net");
    ck_assert_uint_eq(a.port, 80);
    free(a.host);
    ck_assert_int_eq(ekv_conf_parse_addr("", &a, err, sizeof(err)), EKV_OK);
    ck_assert_ptr_null(a.host);
    ck_assert_uint_eq(a.port, 0);

    load_ok("admin-listen [::1]:9090\n");
    ck_assert_str_eq(conf->admin_listen.host, "::1");
    load_ok("admin-listen \"\"\n");
    ck_assert_ptr_null(conf->admin_listen.host);
}
END_TEST

START_TEST(test_addr_bad)
{
    load_fails("listen 1.2.3.4\n", 1,
               "listen: \"1.2.3.4\" has no port (use host:port or [v6]:port)");
    load_fails("listen [::1\n", 1, "listen: \"[::1\" has no closing ']'");
    load_fails("listen host:99999\n", 1,
               "listen: \"host:99999\": the port is out of range (0..65535)");
    load_fails("listen host:65536\n", 1,
               "listen: \"host:65536\": the port is out of range (0..65535)");
    load_fails("listen host:\n", 1, "listen: \"host:\" has no port after ':'");
    load_fails("listen host:http\n", 1, "listen: \"host:http\": the port is not a number");
    load_fails("listen host:-1\n", 1, "listen: \"host:-1\": the port is not a number");
    load_fails("listen :8080\n", 1,
               "listen: \":8080\" has no host (use 0.0.0.0 for every interface)");
    load_fails("listen ::1:8080\n", 1,
               "listen: \"::1:8080\": put an IPv6 address in brackets, as in [::1]:8080");
    load_fails("listen [::1]8080\n", 1, "listen: \"[::1]8080\": expected ':' and a port after ']'");
    load_fails("listen [::1]\n", 1, "listen: \"[::1]\" has no port (use host:port or [v6]:port)");
    load_fails("listen [zz]:80\n", 1,
               "listen: \"[zz]:80\": the part in brackets is not an IPv6 address");
    load_fails("listen [1.2.3.4]:80\n", 1,
               "listen: \"[1.2.3.4]:80\": the part in brackets is not an IPv6 address");
    load_fails("listen 1.2.3.999:80\n", 1,
               "listen: \"1.2.3.999:80\": the host is not a valid IPv4 address");
    load_fails("listen \"bad host:80\"\n", 1,
               "listen: \"bad host:80\": the host is not a host name or an IP address");
    load_fails("listen http://a:80\n", 1,
               "listen: \"http://a:80\": put an IPv6 address in brackets, as in [::1]:8080");
    load_fails("listen \"\"\n", 1, "listen: may not be empty");
    args_fail("--listen: \"1.2.3.4\" has no port (use host:port or [v6]:port)", "--listen",
              "1.2.3.4");
    args_fail("--admin-listen: \"[::1\" has no closing ']'", "--admin-listen=[::1");
}
END_TEST

START_TEST(test_loopback)
{
    ck_assert(ekv_conf_host_is_loopback("127.0.0.1"));
    ck_assert(ekv_conf_host_is_loopback("127.1.2.3"));
    ck_assert(ekv_conf_host_is_loopback("::1"));
    ck_assert(ekv_conf_host_is_loopback("localhost"));
    ck_assert(ekv_conf_host_is_loopback("LOCALHOST"));
    ck_assert(ekv_conf_host_is_loopback("::ffff:127.0.0.1"));
    ck_assert(!ekv_conf_host_is_loopback("0.0.0.0"));
    ck_assert(!ekv_conf_host_is_loopback("::"));
    ck_assert(!ekv_conf_host_is_loopback("10.0.0.1"));
    ck_assert(!ekv_conf_host_is_loopback("128.0.0.1"));
    ck_assert(!ekv_conf_host_is_loopback("::2"));
    ck_assert(!ekv_conf_host_is_loopback("localhost.example.com"));
    ck_assert(!ekv_conf_host_is_loopback("example.com"));
    ck_assert(!ekv_conf_host_is_loopback(NULL));
}
END_TEST

/* ------------------------------------------------------------------ origin URLs */

static void origin_ok(const char *url, const char *host, unsigned port, const char *path,
                      const char *user, const char *password, unsigned db)
{
    struct ekv_conf_origin o;

    ck_assert_msg(ekv_conf_parse_origin(url, &o, err, sizeof(err)) == EKV_OK, "%s: %s", url, err);
    if (host == NULL)
        ck_assert_ptr_null(o.host);
    else
        ck_assert_str_eq(o.host, host);
    ck_assert_uint_eq(o.port, port);
    if (path == NULL)
        ck_assert_ptr_null(o.unix_path);
    else
        ck_assert_str_eq(o.unix_path, path);
    if (user == NULL)
        ck_assert_ptr_null(o.user);
    else
        ck_assert_str_eq(o.user, user);
    if (password == NULL)
        ck_assert_ptr_null(o.password);
    else
        ck_assert_str_eq(o.password, password);
    ck_assert_uint_eq(o.db, db);
    ekv_conf_origin_clear(&o);
    ck_assert_ptr_null(o.host);
    ck_assert_ptr_null(o.password);
}

START_TEST(test_origin_good)
{
    origin_ok("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, NULL, NULL, NULL, 0);
    origin_ok("redis://redis", "redis", 6379, NULL, NULL, NULL, 0);
    origin_ok("redis://redis/", "redis", 6379, NULL, NULL, NULL, 0);
    origin_ok("redis://redis:7000", "redis", 7000, NULL, NULL, NULL, 0);
    origin_ok("redis://redis/15", "redis", 6379, NULL, NULL, NULL, 15);
    origin_ok("REDIS://Redis:1/3", "Redis", 1, NULL, NULL, NULL, 3);
    origin_ok("redis://[::1]:6380/2", "::1", 6380, NULL, NULL, NULL, 2);
    origin_ok("redis://[::1]/2", "::1", 6379, NULL, NULL, NULL, 2);
    origin_ok("redis://:pw@h", "h", 6379, NULL, NULL, "pw", 0);
    origin_ok("redis://pw@h", "h", 6379, NULL, NULL, "pw", 0); /* as redis-cli */
    origin_ok("redis://alice:pw@h:6390/4", "h", 6390, NULL, "alice", "pw", 4);
    origin_ok("redis://:p%40ss%3Aw%2Fd%25@h", "h", 6379, NULL, NULL, "p@ss:w/d%", 0);
    origin_ok("redis://:p@ss@h", "h", 6379, NULL, NULL, "p@ss", 0); /* last '@' ends it */
    origin_ok("redis://:a/b@h/1", "h", 6379, NULL, NULL, "a/b", 1);
    origin_ok("redis://:a#b@h", "h", 6379, NULL, NULL, "a#b", 0);
    origin_ok("redis://h/65535", "h", 6379, NULL, NULL, NULL, 65535);
    origin_ok("unix:///run/redis/redis.sock", NULL, 0, "/run/redis/redis.sock", NULL, NULL, 0);
    origin_ok("unix:///tmp/r.sock?db=3", NULL, 0, "/tmp/r.sock", NULL, NULL, 3);

    /* through the file: a quoted URL keeps its '#', and the parsed form follows */
    load_ok("origin \"redis://:a#b@h:1/2\"  # comment\n");
    ck_assert_str_eq(conf->origin_url, "redis://:a#b@h:1/2");
    ck_assert_str_eq(conf->origin.password, "a#b");
    ck_assert_uint_eq(conf->origin.port, 1);
    load_ok("origin unix:///var/run/redis.sock\n");
    ck_assert_ptr_null(conf->origin.host);
    ck_assert_str_eq(conf->origin.unix_path, "/var/run/redis.sock");
}
END_TEST

static const char usage[] =
    "use redis://[[user]:password@]host[:port][/db], unix:///path/redis.sock, "
    "redis-sentinel://[[user]:password@]host:port[,host:port...]/MASTER[/db], "
    "redis-cluster://[[user]:password@]host:port[,host:port...], or rediss... for TLS";

START_TEST(test_origin_bad)
{
    char want[700];

    snprintf(want, sizeof(want), "origin: unsupported scheme \"http\" (%s)", usage);
    load_fails("origin http://127.0.0.1:6379\n", 1, want);
    snprintf(want, sizeof(want), "origin: not a Redis URL (%s)", usage);
    load_fails("origin 127.0.0.1:6379\n", 1, want);
    snprintf(want, sizeof(want), "origin: no host (%s)", usage);
    load_fails("origin redis://\n", 1, want);
    load_fails("origin redis:///0\n", 1, want);
    load_fails("origin redis://h:0\n", 1,
               "origin: the address: the port is out of range (1..65535)");
    load_fails("origin redis://h:99999/0\n", 1,
               "origin: the address: the port is out of range (1..65535)");
    load_fails("origin redis://h:x/0\n", 1, "origin: the address: the port is not a number");
    load_fails("origin redis://h/abc\n", 1,
               "origin: database \"abc\" is not a number from 0 to 65535");
    load_fails("origin redis://h/65536\n", 1,
               "origin: database \"65536\" is not a number from 0 to 65535");
    load_fails("origin redis://h/0?x=1\n", 1,
               "origin: database \"0?x=1\" is not a number from 0 to 65535");
    load_fails("origin redis://[::1/0\n", 1, "origin: the address has no closing ']'");
    load_fails("origin unix://run/redis.sock\n", 1,
               "origin: a unix socket path must be absolute, as in unix:///run/redis.sock");
    load_fails("origin unix://\n", 1,
               "origin: a unix socket path must be absolute, as in unix:///run/redis.sock");
    load_fails("origin unix:///r.sock?database=1\n", 1,
               "origin: the only option of a unix:// origin is ?db=N");
    load_fails("origin unix:///r.sock?db=x\n", 1,
               "origin: database \"x\" is not a number from 0 to 65535");
    load_fails("origin rediss://h:x\n", 1, "origin: the address: the port is not a number");
    load_fails("origin \"\"\n", 1, "origin: may not be empty");
    load_fails("origin redis://user:@h\n", 1, "origin: empty password before '@'");
    load_fails("origin redis://:pw%zz@h\n", 1, "origin: bad percent-encoding in the password");
    load_fails("origin redis://us%zzer:pw@h\n", 1, "origin: bad percent-encoding in the user name");
    args_fail("--origin: the address: the port is not a number", "--origin", "redis://h:x");
}
END_TEST

/* rediss:// is redis:// over TLS; the origin-tls-* directives need it, and a client
 * certificate needs its key. */
START_TEST(test_origin_tls)
{
    args_ok("--origin", "rediss://u:pw@10.0.0.5:6380/2", "--origin-tls-ca-file", "/ca.pem",
            "--origin-tls-cert-file", "/c.pem", "--origin-tls-key-file", "/c.key",
            "--origin-tls-server-name", "redis.internal");
    ck_assert(conf->origin.tls);
    ck_assert_str_eq(conf->origin.host, "10.0.0.5");
    ck_assert_uint_eq(conf->origin.port, 6380);
    ck_assert_uint_eq(conf->origin.db, 2);
    ck_assert_str_eq(conf->origin.user, "u");
    ck_assert_str_eq(conf->origin_tls_ca_file, "/ca.pem");
    ck_assert_str_eq(conf->origin_tls_server_name, "redis.internal");
    ck_assert(conf->origin_tls_verify);
    args_ok("--origin", "REDISS://h", "--origin-tls-verify", "no");
    ck_assert(conf->origin.tls);
    ck_assert_uint_eq(conf->origin.port, 6379);
    ck_assert(!conf->origin_tls_verify);
    args_ok("--origin", "redis://h");
    ck_assert(!conf->origin.tls);
    args_fail("origin-tls-cert-file and origin-tls-key-file go together: set both or neither",
              "--origin", "rediss://h", "--origin-tls-cert-file", "/c.pem");
    args_fail("origin-tls-cert-file and origin-tls-key-file go together: set both or neither",
              "--origin", "rediss://h", "--origin-tls-key-file", "/c.key");
    args_fail("origin-tls-ca-file is set but the origin is not rediss://", "--origin",
              "redis://h", "--origin-tls-ca-file", "/ca.pem");
    args_fail("origin-tls-server-name is set but the origin is not rediss://", "--origin",
              "unix:///r.sock", "--origin-tls-server-name", "x");
}
END_TEST

/* redis-sentinel://: the Sentinels (port 26379 by default), the master's name, the data nodes'
 * credentials and db; sentinel-user and sentinel-password belong to it alone. */
START_TEST(test_origin_sentinel)
{
    char want[700];

    args_ok("--origin", "redis-sentinel://u:p%40w@10.0.0.1,[::1]:26380,s3.local:5000/mymaster/3",
            "--sentinel-password", "spw");
    ck_assert_int_eq(conf->origin.kind, EKV_ORIGIN_SENTINEL);
    ck_assert_ptr_null(conf->origin.host);
    ck_assert_uint_eq(conf->origin.nnodes, 3);
    ck_assert_str_eq(conf->origin.nodes[0].host, "10.0.0.1");
    ck_assert_uint_eq(conf->origin.nodes[0].port, 26379);
    ck_assert_str_eq(conf->origin.nodes[1].host, "::1");
    ck_assert_uint_eq(conf->origin.nodes[1].port, 26380);
    ck_assert_str_eq(conf->origin.nodes[2].host, "s3.local");
    ck_assert_uint_eq(conf->origin.nodes[2].port, 5000);
    ck_assert_str_eq(conf->origin.master, "mymaster");
    ck_assert_uint_eq(conf->origin.db, 3);
    ck_assert_str_eq(conf->origin.user, "u");
    ck_assert_str_eq(conf->origin.password, "p@w");
    ck_assert_str_eq(conf->sentinel_password, "spw");
    ck_assert(!conf->origin.tls);
    args_ok("--origin", "rediss-sentinel://127.0.0.1:26379/m");
    ck_assert(conf->origin.tls);
    ck_assert_int_eq(conf->origin.kind, EKV_ORIGIN_SENTINEL);
    ck_assert_uint_eq(conf->origin.nnodes, 1);
    ck_assert_uint_eq(conf->origin.db, 0);
    ck_assert_ptr_null(conf->origin.password);

    snprintf(want, sizeof(want), "--origin: no master name after the Sentinels (%s)", usage);
    args_fail(want, "--origin", "redis-sentinel://h:1");
    args_fail(want, "--origin", "redis-sentinel://h:1/");
    snprintf(want, sizeof(want), "--origin: an empty address in the list of nodes (%s)", usage);
    args_fail(want, "--origin", "redis-sentinel://a:1,,b:2/m");
    args_fail(want, "--origin", "redis-sentinel://a:1,/m");
    args_fail("--origin: the master name is not a Sentinel master name", "--origin",
              "redis-sentinel://a:1/m\x01");
    args_fail("--origin: database \"x\" is not a number from 0 to 65535", "--origin",
              "redis-sentinel://a:1/m/x");
    args_fail("--origin: more than 16 nodes", "--origin",
              "redis-sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q/m");
    args_fail("sentinel-user needs sentinel-password", "--origin", "redis-sentinel://h/m",
              "--sentinel-user", "u");
    /* a cluster: its seed nodes (port 6379 by default), database 0 */
    args_ok("--origin", "rediss-cluster://:pw@10.0.0.1:7000,10.0.0.2");
    ck_assert_int_eq(conf->origin.kind, EKV_ORIGIN_CLUSTER);
    ck_assert(conf->origin.tls);
    ck_assert_uint_eq(conf->origin.nnodes, 2);
    ck_assert_uint_eq(conf->origin.nodes[0].port, 7000);
    ck_assert_uint_eq(conf->origin.nodes[1].port, 6379);
    ck_assert_str_eq(conf->origin.password, "pw");
    args_fail("--origin: a Redis Cluster has database 0 only", "--origin", "redis-cluster://h/2");
}
END_TEST

/* However the URL is wrong, the password never appears in the error. */
START_TEST(test_origin_password_never_echoed)
{
    static const char *const bad[] = {
        "redis://:SECRETPW@h:abc", "redis://:SECRETPW@h:0", "redis://:SECRETPW@h/x",
        "redis://:SECRETPW@",      "redis://:SECRETPW",     "redis://user:SECRETPW",
        "redis://user:SECRETPW/0", "http://:SECRETPW@h",    "SECRETPW",
        "redis:/:SECRETPW@h",      "rediss://:SECRETPW@h:x",  "redis://:SECRETPW%zz@h",
        "redis://:SECRETPW@[::1",  "redis://:SECRETPW@a b", "redis://SECRETPW:@h",
        "redis//:SECRETPW@h",      "unix://SECRETPW",       "redis://:SECRETPW@h:99999",
        "redis-sentinel://:SECRETPW@h:x/m", "redis-sentinel://:SECRETPW@h",
        "redis-sentinel://:SECRETPW@h,,h2/m", "redis-cluster://:SECRETPW@h:0",
        "redis-sentinel://:SECRETPW@/m",
    };
    struct ekv_conf_origin o;
    const char *path;

    conf = ekv_conf_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(ekv_conf_parse_origin(bad[i], &o, err, sizeof(err)) == EKV_EINVAL, "%s",
                      bad[i]);
        ck_assert_msg(strstr(err, "SECRETPW") == NULL, "%s leaked: %s", bad[i], err);
        ck_assert_ptr_null(o.password);
        ck_assert_int_eq(ekv_conf_set(conf, "origin", bad[i], "f:1", err, sizeof(err)), EKV_EINVAL);
        ck_assert_msg(strstr(err, "SECRETPW") == NULL, "%s leaked: %s", bad[i], err);
        ck_assert_int_eq(run_args("--origin", bad[i], (const char *)NULL), EKV_EINVAL);
        ck_assert_msg(strstr(err, "SECRETPW") == NULL, "%s leaked: %s", bad[i], err);
        conf = ekv_conf_new();
    }
    ck_assert_int_eq(load("origin \"redis://:SECRETPW@h:x\"\n", &path), EKV_EINVAL);
    ck_assert(strstr(err, "SECRETPW") == NULL);
}
END_TEST

/* ------------------------------------------------------------------ strings and tokens */

START_TEST(test_namespace)
{
    char text[256];

    load_ok("namespace app1:kv:\n");
    ck_assert_str_eq(conf->ns, "app1:kv:");
    snprintf(text, sizeof(text), "namespace %s\n",
             "0123456789012345678901234567890123456789012345678901234567890123");
    load_ok(text);
    ck_assert_uint_eq(strlen(conf->ns), 64);
    snprintf(text, sizeof(text), "namespace %s\n",
             "01234567890123456789012345678901234567890123456789012345678901234");
    load_fails(text, 1,
               "namespace: \"01234567890123456789012345678901234567890123456789012345678901234\" "
               "must be 1 to 64 bytes without spaces, control characters, '{' or '}'");
    load_fails("namespace \"\"\n", 1, "namespace: may not be empty");
    load_fails("namespace \"a b\"\n", 1,
               "namespace: \"a b\" must be 1 to 64 bytes without spaces, control characters, "
               "'{' or '}'");
    load_fails("namespace a{b}\n", 1,
               "namespace: \"a{b}\" must be 1 to 64 bytes without spaces, control characters, "
               "'{' or '}'");
    args_fail("--namespace: \"x\ty\" must be 1 to 64 bytes without spaces, control characters, "
              "'{' or '}'",
              "--namespace", "x\ty");
}
END_TEST

START_TEST(test_tokens)
{
    char big[5000], text[5100];

    load_fails("api-token \"\"\n", 1, "api-token: a token may not be empty");
    load_fails("read-token \"\"\n", 1, "read-token: a token may not be empty");
    load_fails("api-token \"SECRET TOKEN\"\n", 1,
               "api-token: a token may not contain spaces or control characters");
    load_fails("read-token \"SECRET\tTOKEN\"\n", 1,
               "read-token: a token may not contain spaces or control characters");
    args_fail("--api-token: a token may not contain spaces or control characters", "--api-token",
              "SECRET TOKEN");
    memset(big, 'a', 4097);
    big[4097] = '\0';
    snprintf(text, sizeof(text), "api-token %s\n", big);
    load_fails(text, 1, "api-token: a token may not be longer than 4096 bytes");
    big[4096] = '\0';
    snprintf(text, sizeof(text), "api-token %s\n", big);
    load_ok(text);
    ck_assert_uint_eq(strlen(conf->api_tokens.items[0]), 4096);
    load_ok("api-token x\n"); /* a single byte is enough */
    ck_assert_str_eq(conf->api_tokens.items[0], "x");
}
END_TEST

START_TEST(test_service_id)
{
    load_ok("service-id svc123\n");
    ck_assert_str_eq(conf->service_id, "svc123");
    load_ok("service-id \"\"\n");
    ck_assert_ptr_null(conf->service_id);
    load_fails("service-id \"a b\"\n", 1,
               "service-id: \"a b\" must be at most 255 bytes without spaces or control "
               "characters");
}
END_TEST

START_TEST(test_quotes_and_comments)
{
    load_ok("# edgekv test\n"
            "   \t# indented comment\n"
            "api-token \"abc#def\"   # a comment after a quoted value\n"
            "api-token ghi#jkl\n"
            "api-token \"q\\\"uo\\\\te\"\n"
            "api-token \"back\\slash\"\n"
            "\tnamespace\t\"ns:\"\t\n"
            "threads 4#comment right after\n"
            "log-level warn\r\n"
            "max-stores \"7\"\n"
            "service-id \"\"   \n");
    ck_assert_uint_eq(conf->api_tokens.count, 4);
    ck_assert_str_eq(conf->api_tokens.items[0], "abc#def");
    ck_assert_str_eq(conf->api_tokens.items[1], "ghi");
    ck_assert_str_eq(conf->api_tokens.items[2], "q\"uo\\te");
    ck_assert_str_eq(conf->api_tokens.items[3], "back\\slash");
    ck_assert_str_eq(conf->ns, "ns:");
    ck_assert_uint_eq(conf->threads, 4);
    ck_assert_int_eq(conf->log_level, EKV_LOG_WARN);
    ck_assert_uint_eq(conf->max_stores, 7);
    ck_assert_ptr_null(conf->service_id);
    /* no newline at the end of the last line */
    load_ok("threads 9");
    ck_assert_uint_eq(conf->threads, 9);
}
END_TEST

/* ------------------------------------------------------------------ ekv_conf_set */

START_TEST(test_set_where)
{
    conf = ekv_conf_new();
    ck_assert_int_eq(ekv_conf_set(conf, "threads", "x", "a.conf:3", err, sizeof(err)), EKV_EINVAL);
    ck_assert_str_eq(err, "a.conf:3: threads: \"x\" is not a number");
    ck_assert_int_eq(ekv_conf_set(conf, "threads", "x", "--threads", err, sizeof(err)), EKV_EINVAL);
    ck_assert_str_eq(err, "--threads: \"x\" is not a number");
    ck_assert_int_eq(ekv_conf_set(conf, "threads", "x", NULL, err, sizeof(err)), EKV_EINVAL);
    ck_assert_str_eq(err, "threads: \"x\" is not a number");
    ck_assert_int_eq(ekv_conf_set(conf, "nope", "x", "a.conf:3", err, sizeof(err)), EKV_EINVAL);
    ck_assert_str_eq(err, "a.conf:3: unknown directive \"nope\"");
    ck_assert_int_eq(ekv_conf_set(conf, "nope", "x", "--nope", err, sizeof(err)), EKV_EINVAL);
    ck_assert_str_eq(err, "--nope: unknown directive");
    /* a short error buffer truncates, never overflows */
    ck_assert_int_eq(ekv_conf_set(conf, "threads", "x", "a.conf:3", err, 8), EKV_EINVAL);
    ck_assert_str_eq(err, "a.conf:");
    ck_assert_int_eq(ekv_conf_set(conf, "threads", "x", "a.conf:3", NULL, 0), EKV_EINVAL);
    ck_assert_int_eq(ekv_conf_set(conf, "threads", "12", "a.conf:3", NULL, 0), EKV_OK);
    ck_assert_uint_eq(conf->threads, 12);
}
END_TEST

/* Where each value came from, for errors found after parsing (TLS files at -t and reload). */
START_TEST(test_where_kept)
{
    struct ekv_conf *next;
    char buf[128], changed[256], restart[256];

    conf = ekv_conf_new();
    ck_assert_ptr_null(ekv_conf_where(conf, "tls-cert-file")); /* a default */
    ck_assert_ptr_null(ekv_conf_where(conf, "no-such-directive"));
    ekv_conf_fmt_where(conf, "tls-cert-file", buf, sizeof(buf));
    ck_assert_str_eq(buf, "tls-cert-file");
    ck_assert_int_eq(ekv_conf_set(conf, "tls-cert-file", "/a.pem", "e.conf:7", err, sizeof(err)),
                     EKV_OK);
    ck_assert_str_eq(ekv_conf_where(conf, "tls-cert-file"), "e.conf:7");
    ekv_conf_fmt_where(conf, "tls-cert-file", buf, sizeof(buf));
    ck_assert_str_eq(buf, "e.conf:7: tls-cert-file");
    ck_assert_int_eq(ekv_conf_set(conf, "tls-cert-file", "/b.pem", "--tls-cert-file", err,
                                  sizeof(err)),
                     EKV_OK);
    ekv_conf_fmt_where(conf, "tls-cert-file", buf, sizeof(buf));
    ck_assert_str_eq(buf, "--tls-cert-file");
    /* a failed set keeps the value and where it came from */
    ck_assert_int_eq(ekv_conf_set(conf, "tls-min-version", "1.0", "e.conf:9", err, sizeof(err)),
                     EKV_EINVAL);
    ck_assert_str_eq(err, "e.conf:9: tls-min-version: \"1.0\" is not 1.2 or 1.3");
    ck_assert_str_eq(conf->tls_min_version, "1.2");
    ck_assert_ptr_null(ekv_conf_where(conf, "tls-min-version"));
    /* a value set back by a reload merge comes with where it was set */
    next = ekv_conf_new();
    ck_assert_int_eq(ekv_conf_set(next, "tls-listen", "127.0.0.1:1", "f.conf:1", err, sizeof(err)),
                     EKV_OK);
    ck_assert_int_eq(ekv_conf_set(conf, "tls-listen", "127.0.0.1:2", "e.conf:2", err, sizeof(err)),
                     EKV_OK);
    ck_assert_uint_eq(ekv_conf_reload_merge(next, conf, changed, sizeof(changed), restart,
                                            sizeof(restart)),
                      1);
    ck_assert_str_eq(restart, "tls-listen");
    ck_assert_str_eq(changed, "tls-cert-file");
    ck_assert_str_eq(ekv_conf_where(next, "tls-listen"), "e.conf:2");
    ekv_conf_free(next);
}
END_TEST

/* tls-listen and its files go together; protected mode covers tls-listen. */
START_TEST(test_validate_tls)
{
    static const struct {
        const char *lines, *err;
    } cases[] = {
        {"tls-listen 127.0.0.1:8443\n", "tls-listen needs tls-cert-file and tls-key-file"},
        {"tls-listen 127.0.0.1:8443\ntls-cert-file /c\n",
         "tls-listen needs tls-cert-file and tls-key-file"},
        {"tls-key-file /k\n", "tls-key-file is set but tls-listen is empty"},
        {"tls-client-ca-file /ca\n", "tls-client-ca-file is set but tls-listen is empty"},
        {"tls-listen 0.0.0.0:8443\ntls-cert-file /c\ntls-key-file /k\n",
         "tls-listen 0.0.0.0:8443 is not a loopback address and no api-token is set: set "
         "api-token, tls-listen on 127.0.0.1, or set protected-mode no"},
        {"tls-listen 127.0.0.1:8080\ntls-cert-file /c\ntls-key-file /k\n",
         "tls-listen 127.0.0.1:8080 overlaps listen 127.0.0.1:8080: give it another port"},
        {"admin-listen 127.0.0.1:9090\ntls-listen 0.0.0.0:9090\ntls-cert-file /c\n"
         "tls-key-file /k\napi-token t\n",
         "tls-listen 0.0.0.0:9090 overlaps admin-listen 127.0.0.1:9090: give it another port"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        load_ok(cases[i].lines);
        ck_assert_int_eq(ekv_conf_validate(conf, err, sizeof(err)), EKV_EINVAL);
        ck_assert_str_eq(err, cases[i].err);
        ekv_conf_free(conf);
        conf = NULL;
    }
    load_ok("tls-listen 0.0.0.0:8443\ntls-cert-file /c\ntls-key-file /k\nprotected-mode no\n");
    ck_assert_int_eq(ekv_conf_validate(conf, err, sizeof(err)), EKV_OK);
}
END_TEST

START_TEST(test_equal)
{
    struct ekv_conf *a = ekv_conf_new(), *b = ekv_conf_new();

    ck_assert(ekv_conf_equal(a, b));
    ck_assert_int_eq(ekv_conf_set(b, "api-token", "t", NULL, err, sizeof(err)), EKV_OK);
    ck_assert(!ekv_conf_equal(a, b));
    ck_assert_int_eq(ekv_conf_set(a, "api-token", "u", NULL, err, sizeof(err)), EKV_OK);
    ck_assert(!ekv_conf_equal(a, b));
    ekv_conf_free(b);
    b = ekv_conf_new();
    ck_assert_int_eq(ekv_conf_set(b, "api-token", "u", NULL, err, sizeof(err)), EKV_OK);
    ck_assert(ekv_conf_equal(a, b));
    ck_assert_int_eq(ekv_conf_set(b, "listen", "127.0.0.1:8081", NULL, err, sizeof(err)), EKV_OK);
    ck_assert(!ekv_conf_equal(a, b));
    ck_assert_int_eq(ekv_conf_set(b, "listen", "127.0.0.1:8080", NULL, err, sizeof(err)), EKV_OK);
    ck_assert(ekv_conf_equal(a, b));
    ck_assert_int_eq(ekv_conf_set(b, "admin-listen", "127.0.0.1:1", NULL, err, sizeof(err)),
                     EKV_OK);
    ck_assert(!ekv_conf_equal(a, b));
    ck_assert(!ekv_conf_equal(b, a));
    ekv_conf_free(a);
    ekv_conf_free(b);
}
END_TEST

/* ------------------------------------------------------------------ reload */

/* A reload keeps the running value of what needs a restart and names what changed. */
START_TEST(test_reload_merge)
{
    struct ekv_conf *running = ekv_conf_new(), *next = ekv_conf_new();
    char changed[256], restart[256];

    ck_assert_uint_eq(ekv_conf_reload_merge(next, running, changed, sizeof(changed), restart,
                                            sizeof(restart)),
                      0);
    ck_assert_str_eq(changed, "");
    ck_assert_str_eq(restart, "");
    ck_assert_int_eq(ekv_conf_set(running, "api-token", "old", NULL, err, sizeof(err)), EKV_OK);
    ck_assert_int_eq(ekv_conf_set(running, "admin-listen", "127.0.0.1:9090", NULL, err,
                                  sizeof(err)),
                     EKV_OK);
    /* next: new tokens, TTLs, log level, access log; and a new listen, origin, threads */
    static const char *const set[][2] = {
        {"api-token", "new"},         {"read-token", "r"},
        {"cache-max-ttl", "10s"},     {"log-level", "debug"},
        {"access-log", "/tmp/a.log"}, {"listen", "127.0.0.1:9"},
        {"origin", "redis://:pw@10.0.0.1:6380/2"}, {"threads", "7"},
        {"admin-listen", ""},        {"namespace", "other:"},
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        ck_assert_msg(ekv_conf_set(next, set[i][0], set[i][1], NULL, err, sizeof(err)) == EKV_OK,
                      "%s", err);
    ck_assert_uint_eq(ekv_conf_reload_merge(next, running, changed, sizeof(changed), restart,
                                            sizeof(restart)),
                      5);
    ck_assert_str_eq(changed, "cache-max-ttl, api-token, read-token, log-level, access-log");
    ck_assert_str_eq(restart, "listen, admin-listen, origin, namespace, threads");
    /* what needs a restart is back to the running values, deep copies included */
    ck_assert_str_eq(next->listen.host, "127.0.0.1");
    ck_assert_uint_eq(next->listen.port, 8080);
    ck_assert_str_eq(next->admin_listen.host, "127.0.0.1");
    ck_assert_uint_eq(next->admin_listen.port, 9090);
    ck_assert_str_eq(next->origin_url, "redis://127.0.0.1:6379/0");
    ck_assert_str_eq(next->origin.host, "127.0.0.1");
    ck_assert_uint_eq(next->origin.port, 6379);
    ck_assert_ptr_null(next->origin.password);
    ck_assert_str_eq(next->ns, "edgekv:");
    ck_assert_uint_eq(next->threads, 0);
    /* the rest is new */
    ck_assert_str_eq(next->api_tokens.items[0], "new");
    ck_assert_uint_eq(next->cache_max_ttl_ms, 10000);
    ck_assert_int_eq(next->log_level, EKV_LOG_DEBUG);
    ck_assert_str_eq(next->access_log, "/tmp/a.log");
    ekv_conf_free(running); /* next owns its own copies */
    ck_assert_str_eq(next->admin_listen.host, "127.0.0.1");
    /* merging again changes nothing more */
    running = next;
    next = ekv_conf_new();
    ck_assert_uint_eq(ekv_conf_reload_merge(next, running, changed, 8, restart, 8), 1);
    ck_assert_str_eq(restart, "admin-l"); /* cut, never overflowing */
    ck_assert_str_eq(changed, "cache-m");
    ekv_conf_free(running);
    ekv_conf_free(next);
}
END_TEST

START_TEST(test_reloadable)
{
    static const char *const yes[] = {"api-token",     "read-token",     "edge-read-public",
                                      "log-level",     "cache-max-ttl",  "negative-ttl",
                                      "max-staleness", "stale-if-error", "value-max-bytes",
                                      "batch-max-bytes", "max-stores",   "cache-max-item-bytes",
                                      "service-id",    "access-log",     "protected-mode",
                                      "tls-cert-file", "tls-key-file",   "tls-client-ca-file",
                                      "tls-min-version", "tls-ciphers",  "tls-ciphersuites"};
    static const char *const no[] = {"listen",          "admin-listen",    "origin",
                                     "namespace",       "threads",         "max-connections",
                                     "cache-max-bytes", "origin-timeout",  "shutdown-timeout",
                                     "max-header-bytes", "idle-timeout",   "header-timeout",
                                     "tls-listen",      "no-such-directive"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ck_assert_msg(ekv_conf_reloadable(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ck_assert_msg(!ekv_conf_reloadable(no[i]), "%s", no[i]);
}
END_TEST

START_TEST(test_access_log)
{
    conf = ekv_conf_new();
    ck_assert_int_eq(ekv_conf_set(conf, "access-log", "/var/log/a.log", "t:1", err, sizeof(err)),
                     EKV_OK);
    ck_assert_str_eq(conf->access_log, "/var/log/a.log");
    ck_assert_int_eq(ekv_conf_set(conf, "access-log", "", "t:2", err, sizeof(err)), EKV_OK);
    ck_assert_ptr_null(conf->access_log);
    ck_assert_int_eq(ekv_conf_set(conf, "access-log", "logs/a b.log", "t:3", err, sizeof(err)),
                     EKV_OK);
    ck_assert_str_eq(conf->access_log, "logs/a b.log");
    ck_assert_int_eq(ekv_conf_set(conf, "access-log", "/a\tb", "t:4", err, sizeof(err)),
                     EKV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "t:4: access-log: "));
    ck_assert_ptr_nonnull(strstr(err, "may not contain control characters"));
    ck_assert_int_eq(ekv_conf_set(conf, "access-log", "/a\x7f", "t:5", err, sizeof(err)),
                     EKV_EINVAL);
    ck_assert_str_eq(conf->access_log, "logs/a b.log"); /* unchanged */
}
END_TEST

/* ------------------------------------------------------------------ validation */

START_TEST(test_protected_mode)
{
    args_fail("listen 0.0.0.0:8080 is not a loopback address and no api-token is set: set "
              "api-token, listen on 127.0.0.1, or set protected-mode no",
              "--listen", "0.0.0.0:8080");
    args_fail("listen [::]:80 is not a loopback address and no api-token is set: set "
              "api-token, listen on 127.0.0.1, or set protected-mode no",
              "--listen", "[::]:80");
    args_fail("listen 10.1.2.3:8080 is not a loopback address and no api-token is set: set "
              "api-token, listen on 127.0.0.1, or set protected-mode no",
              "--listen", "10.1.2.3:8080", "--read-token", "r");
    args_ok("--listen", "0.0.0.0:8080", "--api-token", "t");
    args_ok("--listen", "0.0.0.0:8080", "--protected-mode", "no");
    args_ok("--listen", "127.0.0.2:0");
    args_ok("--listen", "[::1]:8080");
    args_ok("--listen", "localhost:8080");
    /* a public admin-listen is the operator's call (it never needs a token) */
    args_ok("--admin-listen", "0.0.0.0:9090");

    /* the same check for a file, via -t */
    {
        const char *path = write_tmp("listen 0.0.0.0:8080\n");
        args_fail("listen 0.0.0.0:8080 is not a loopback address and no api-token is set: set "
                  "api-token, listen on 127.0.0.1, or set protected-mode no",
                  "-t", "-c", path);
        ck_assert_int_eq(run_args("-t", "-c", path, "--api-token", "x", (const char *)NULL),
                         EKV_CONF_TEST);
    }

    ekv_conf_free(conf);
    conf = ekv_conf_new();
    ck_assert_int_eq(ekv_conf_set(conf, "listen", "0.0.0.0:1", NULL, err, sizeof(err)), EKV_OK);
    ck_assert_int_eq(ekv_conf_validate(conf, err, sizeof(err)), EKV_EINVAL);
    ck_assert_int_eq(ekv_conf_set(conf, "api-token", "t", NULL, err, sizeof(err)), EKV_OK);
    ck_assert_int_eq(ekv_conf_validate(conf, err, sizeof(err)), EKV_OK);
}
END_TEST

START_TEST(test_admin_listen_same)
{
    static const char msg[] = "admin-listen 127.0.0.1:8080 is the same address as listen: give "
                              "it another port, or leave admin-listen empty to serve /metrics, "
                              "/healthz and /readyz on listen";

    args_fail(msg, "--admin-listen", "127.0.0.1:8080");
    args_fail("admin-listen [0:0::1]:9000 is the same address as listen: give it another port, or "
              "leave admin-listen empty to serve /metrics, /healthz and /readyz on listen",
              "--listen", "[::1]:9000", "--admin-listen", "[0:0::1]:9000");
    args_fail("admin-listen 127.0.0.1:9000 overlaps listen 0.0.0.0:9000 (same port on all "
              "addresses): give it another port, or leave admin-listen empty to serve /metrics, "
              "/healthz and /readyz on listen",
              "--listen", "0.0.0.0:9000", "--api-token", "t", "--admin-listen", "127.0.0.1:9000");
    args_fail("admin-listen [::]:8080 overlaps listen 127.0.0.1:8080 (same port on all "
              "addresses): give it another port, or leave admin-listen empty to serve /metrics, "
              "/healthz and /readyz on listen",
              "--admin-listen", "[::]:8080");
    args_ok("--listen", "0.0.0.0:9000", "--api-token", "t", "--admin-listen", "127.0.0.1:9001");
    args_ok("--admin-listen", "127.0.0.1:8081");
    args_ok("--admin-listen", "127.0.0.2:8080");
    args_ok("--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"); /* two kernel ports */
}
END_TEST

/* ------------------------------------------------------------------ command line */

START_TEST(test_actions)
{
    const char *path = write_tmp("threads 3\n");

    ck_assert_int_eq(run_args("-h", (const char *)NULL), EKV_CONF_HELP);
    ck_assert_ptr_null(conf);
    ck_assert_int_eq(run_args("--help", (const char *)NULL), EKV_CONF_HELP);
    ck_assert_ptr_null(conf);
    ck_assert_int_eq(run_args("-v", (const char *)NULL), EKV_CONF_VERSION);
    ck_assert_ptr_null(conf);
    ck_assert_int_eq(run_args("--version", (const char *)NULL), EKV_CONF_VERSION);
    ck_assert_ptr_null(conf);
    ck_assert_int_eq(run_args("--print-sample-config", (const char *)NULL), EKV_CONF_SAMPLE);
    ck_assert_ptr_null(conf);
    /* help wins over what follows, even a bad file */
    ck_assert_int_eq(run_args("--threads", "2", "--help", "-c", "/nonexistent", (const char *)NULL),
                     EKV_CONF_HELP);
    ck_assert_ptr_null(conf);

    ck_assert_int_eq(run_args("-t", (const char *)NULL), EKV_CONF_TEST);
    ck_assert_ptr_nonnull(conf);
    assert_defaults(conf);
    ck_assert_int_eq(run_args("-t", "-c", path, (const char *)NULL), EKV_CONF_TEST);
    ck_assert_uint_eq(conf->threads, 3);
    ck_assert_int_eq(run_args("-c", path, "-t", "--threads", "5", (const char *)NULL),
                     EKV_CONF_TEST);
    ck_assert_uint_eq(conf->threads, 5);
    ck_assert_int_eq(run_args("-c", path, (const char *)NULL), EKV_CONF_RUN);
    ck_assert_uint_eq(conf->threads, 3);
}
END_TEST

START_TEST(test_args_errors)
{
    const char *path;
    char want[1024];

    args_fail("--threads: \"abc\" is not a number", "--threads", "abc");
    args_fail("--threads: \"abc\" is not a number", "--threads=abc");
    args_fail("--threads: \"\" is not a number", "--threads=");
    args_fail("--threads: missing value", "--threads");
    args_fail("--nope: unknown option (see --help)", "--nope", "1");
    args_fail("--nope: unknown option (see --help)", "--nope=1");
    args_fail("-x: unknown option (see --help)", "-x");
    args_fail("--: unknown option (see --help)", "--");
    args_fail("unexpected argument \"run\" (see --help)", "run");
    args_fail("-c: missing file name", "-c");
    args_fail("--idle-timeout: \"5\" needs a unit: ms, s, m or h (only 0 may go without)",
              "--idle-timeout", "5");
    args_fail("--max-header-bytes: \"2mb\" is out of range (1kb..1mb)", "--max-header-bytes",
              "2mb");
    /* a value that looks like a flag is still the value */
    args_fail("--threads: \"--listen\" is not a number", "--threads", "--listen");

    /* a bad file through the command line keeps its FILE:LINE: prefix */
    path = write_tmp("max-stores 2\n\nthreads abc\n");
    ck_assert_int_eq(run_args("-t", "-c", path, (const char *)NULL), EKV_EINVAL);
    ck_assert_ptr_null(conf);
    snprintf(want, sizeof(want), "%s:3: threads: \"abc\" is not a number", path);
    ck_assert_str_eq(err, want);
    /* and a bad command-line value after a good file */
    path = write_tmp("threads 2\n");
    args_fail("--threads: \"257\" is out of range (0..256)", "-c", path, "--threads", "257");
}
END_TEST

/* ------------------------------------------------------------------ help and sample */

START_TEST(test_sample_parses_to_defaults)
{
    char *sample = capture(ekv_conf_print_sample);
    struct ekv_conf *def = ekv_conf_new();
    const char *path = write_tmp(sample);

    conf = ekv_conf_new();
    ck_assert_msg(ekv_conf_load_file(conf, path, err, sizeof(err)) == EKV_OK, "%s", err);
    ck_assert(ekv_conf_equal(conf, def));
    assert_defaults(conf);
    ck_assert_int_eq(ekv_conf_validate(conf, err, sizeof(err)), EKV_OK);

    /* and through the command line, as `edgekv -t -c edgekv.conf` */
    ck_assert_int_eq(run_args("-t", "-c", path, (const char *)NULL), EKV_CONF_TEST);
    ck_assert(ekv_conf_equal(conf, def));
    ekv_conf_free(def);
    free(sample);
}
END_TEST

/* Every directive is documented; the commented-out ones are valid once uncommented. */
START_TEST(test_sample_documents_everything)
{
    char *sample = capture(ekv_conf_print_sample);
    char *help = capture(ekv_conf_print_help);
    char needle[128];
    size_t uncommented = 0;
    const char *p;

    for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
        const char *name = every[i][0];
        snprintf(needle, sizeof(needle), "\n%s ", name);
        p = strstr(sample, needle);
        if (p == NULL) {
            snprintf(needle, sizeof(needle), "\n# %s ", name);
            p = strstr(sample, needle);
        }
        ck_assert_msg(p != NULL, "%s is not in the sample", name);
        {
            /* the line before is the end of its "# help" block */
            const char *prev = p - 1;
            while (prev > sample && prev[-1] != '\n')
                prev--;
            ck_assert_msg(prev[0] == '#' && prev[1] == ' ', "%s has no comment block", name);
        }
        snprintf(needle, sizeof(needle), "--%s ", name);
        ck_assert_msg(strstr(help, needle) != NULL, "%s is not in --help", name);
    }
    ck_assert_ptr_nonnull(strstr(sample, "\n# api-token secret\n"));
    ck_assert_ptr_nonnull(strstr(sample, "\nlisten 127.0.0.1:8080\n"));
    ck_assert_ptr_nonnull(strstr(sample, "\nmax-header-bytes 32kb\n"));
    ck_assert_ptr_nonnull(strstr(help, "Usage: edgekv"));
    ck_assert_ptr_nonnull(strstr(help, "--print-sample-config"));
    ck_assert_ptr_nonnull(strstr(help, "default: 127.0.0.1:8080"));

    /* uncomment every "# directive value" line: still a valid file */
    for (p = sample; *p != '\0'; p = strchr(p, '\n') + 1) {
        if (*p != '#' && *p != '\n')
            uncommented++;
        if (strchr(p, '\n') == NULL)
            break;
    }
    ck_assert_uint_eq(uncommented, sizeof(every) / sizeof(every[0]) - 17); /* 17 empty defaults */
    {
        char *copy = malloc(strlen(sample) + 1), *o = copy;
        for (p = sample; *p != '\0';) {
            const char *eol = strchr(p, '\n');
            size_t n = eol != NULL ? (size_t)(eol - p + 1) : strlen(p);
            const char *line = p;
            if (strncmp(p, "# ", 2) == 0) {
                for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
                    size_t l = strlen(every[i][0]);
                    if (strncmp(p + 2, every[i][0], l) == 0 && p[2 + l] == ' ') {
                        line = p + 2;
                        n -= 2;
                        break;
                    }
                }
            }
            memcpy(o, line, n);
            o += n;
            p += line == p ? n : n + 2;
        }
        *o = '\0';
        load_ok(copy);
        ck_assert_str_eq(conf->admin_listen.host, "127.0.0.1");
        ck_assert_uint_eq(conf->api_tokens.count, 1);
        ck_assert_uint_eq(conf->read_tokens.count, 1);
        ck_assert_ptr_nonnull(conf->service_id);
        free(copy);
    }
    free(sample);
    free(help);
}
END_TEST

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc;

    tc = tcase_create("defaults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_defaults_without_file);
    tcase_add_test(tc, test_empty_file_is_defaults);
    tcase_add_test(tc, test_free_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("set");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_every_directive_from_file);
    tcase_add_test(tc, test_every_directive_from_args);
    tcase_add_test(tc, test_each_directive_alone);
    tcase_add_test(tc, test_command_line_wins);
    tcase_add_test(tc, test_repeatable);
    tcase_add_test(tc, test_bools);
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_sizes_and_durations);
    tcase_add_test(tc, test_quotes_and_comments);
    tcase_add_test(tc, test_set_where);
    tcase_add_test(tc, test_where_kept);
    tcase_add_test(tc, test_validate_tls);
    tcase_add_test(tc, test_equal);
    tcase_add_test(tc, test_reload_merge);
    tcase_add_test(tc, test_reloadable);
    tcase_add_test(tc, test_access_log);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bad_numbers);
    tcase_add_test(tc, test_bad_sizes);
    tcase_add_test(tc, test_bad_durations);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_nul_byte);
    tcase_add_test(tc, test_unreadable_file);
    tcase_add_test(tc, test_failed_set_changes_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("addresses");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_addr_good);
    tcase_add_test(tc, test_addr_bad);
    tcase_add_test(tc, test_loopback);
    tcase_add_test(tc, test_origin_good);
    tcase_add_test(tc, test_origin_bad);
    tcase_add_test(tc, test_origin_password_never_echoed);
    tcase_add_test(tc, test_origin_tls);
    tcase_add_test(tc, test_origin_sentinel);
    suite_add_tcase(s, tc);

    tc = tcase_create("strings");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_namespace);
    tcase_add_test(tc, test_tokens);
    tcase_add_test(tc, test_service_id);
    suite_add_tcase(s, tc);

    tc = tcase_create("validate");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_protected_mode);
    tcase_add_test(tc, test_admin_listen_same);
    suite_add_tcase(s, tc);

    tc = tcase_create("command_line");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_actions);
    tcase_add_test(tc, test_args_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("sample");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sample_parses_to_defaults);
    tcase_add_test(tc, test_sample_documents_everything);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

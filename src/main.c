/* main.c - the edgekv command: parse the command line and configuration, then run the server. */
#include "config.h"

#include <signal.h>
#include <stdio.h>

#include "edgekv/conf.h"
#include "edgekv/log.h"
#include "edgekv/metrics.h"
#include "edgekv/server.h"

/* The command line, kept for reloads: SIGHUP reads the same -c FILE with the same
 * --DIRECTIVE overrides on top. */
struct args {
    int argc;
    char **argv;
};

static void man_metric(const char *name, const char *type, const char *help, void *arg)
{
    ekv_conf_man_entry(arg, name, type, help);
}

/* The manual's METRICS section: every family /metrics can export. */
static void man_metrics(FILE *fp, void *arg)
{
    ekv_metrics_families(man_metric, fp);
}

static struct ekv_conf *reload_conf(void *arg, char *err, size_t errlen)
{
    const struct args *a = arg;
    struct ekv_conf *conf = NULL;
    int action = ekv_conf_from_args(a->argc, a->argv, &conf, err, errlen);

    if (action == EKV_CONF_RUN)
        return conf;
    ekv_conf_free(conf);
    if (action >= 0)
        snprintf(err, errlen, "unexpected command line action %d", action);
    return NULL;
}

int main(int argc, char **argv)
{
    struct args args = {argc, argv};
    struct ekv_conf *conf = NULL;
    struct ekv_server *srv;
    struct sigaction sa = {.sa_handler = SIG_IGN};
    char err[1024];
    int action, rc;

    action = ekv_conf_from_args(argc, argv, &conf, err, sizeof(err));
    switch (action) {
    case EKV_CONF_HELP:
        ekv_conf_print_help(stdout);
        return 0;
    case EKV_CONF_VERSION:
        printf("edgekv %s\n", PACKAGE_VERSION);
        return 0;
    case EKV_CONF_SAMPLE:
        ekv_conf_print_sample(stdout);
        return 0;
    case EKV_CONF_MAN:
        ekv_conf_print_man(stdout, PACKAGE_VERSION, man_metrics, NULL);
        return 0;
    case EKV_CONF_TEST:
        rc = ekv_server_check(conf, err, sizeof(err));
        ekv_conf_free(conf);
        if (rc != EKV_OK) {
            fprintf(stderr, "edgekv: %s\n", err);
            return 1;
        }
        fprintf(stderr, "edgekv: the configuration is valid\n");
        return 0;
    case EKV_CONF_RUN:
        break;
    default:
        fprintf(stderr, "edgekv: %s\n", err);
        fprintf(stderr, "edgekv: try 'edgekv --help'\n");
        return 1;
    }
    ekv_log_set_level(conf->log_level);
    sigaction(SIGPIPE, &sa, NULL); /* a client gone mid-write is an error return, not a signal */
    if (conf->api_tokens.count == 0)
        ekv_log(EKV_LOG_WARN, "no api-token is set: edgekv runs open (development mode); "
                              "anyone who can connect may read and write");
    srv = ekv_server_new(conf, err, sizeof(err)); /* takes conf over */
    if (srv == NULL) {
        ekv_log(EKV_LOG_ERROR, "%s", err);
        return 1;
    }
    ekv_server_set_reload(srv, reload_conf, &args);
    rc = ekv_server_run(srv);
    ekv_server_free(srv);
    return rc;
}

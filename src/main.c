/* main.c - the edgekv command: parse the command line and configuration, then run the server. */
#include "config.h"

#include <signal.h>
#include <stdio.h>

#include "edgekv/conf.h"
#include "edgekv/log.h"
#include "edgekv/server.h"

int main(int argc, char **argv)
{
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
    case EKV_CONF_TEST:
        fprintf(stderr, "edgekv: the configuration is valid\n");
        ekv_conf_free(conf);
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
    srv = ekv_server_new(conf, err, sizeof(err));
    if (srv == NULL) {
        ekv_log(EKV_LOG_ERROR, "%s", err);
        ekv_conf_free(conf);
        return 1;
    }
    rc = ekv_server_run(srv);
    ekv_server_free(srv);
    ekv_conf_free(conf);
    return rc;
}

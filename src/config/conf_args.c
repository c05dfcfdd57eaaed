/* conf_args.c - the command-line front end (-c FILE, -t, --DIRECTIVE VALUE: the command line
 * wins over the file), --help and --print-sample-config, both generated from the table. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"

#include "conf_int.h"

struct cli_setting {
    const struct ekv_conf_directive *d;
    const char *value;
};

int ekv_conf_from_args(int argc, char **argv, struct ekv_conf **out, char *err, size_t errlen)
{
    struct cli_setting *cli = ekv_calloc(argc > 0 ? (size_t)argc : 1, sizeof(*cli));
    bool replaced[EKV_CONF_NDIRECTIVES] = {false};
    struct ekv_conf *conf = NULL;
    const char *file = NULL;
    char flag[128];
    size_t ncli = 0;
    int action = EKV_CONF_RUN, rc = EKV_EINVAL;

    *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq, *value;
        const struct ekv_conf_directive *d;
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
        if (strcmp(arg, "--print-man-page") == 0) {
            rc = EKV_CONF_MAN;
            goto out;
        }
        if (strcmp(arg, "-t") == 0) {
            action = EKV_CONF_TEST;
            continue;
        }
        if (strcmp(arg, "-c") == 0) {
            if (i + 1 >= argc) {
                ekv_conf_errf(err, errlen, "-c: missing file name");
                goto out;
            }
            file = argv[++i];
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (arg[0] == '-')
                ekv_conf_errf(err, errlen, "%s: unknown option (see --help)", arg);
            else
                ekv_conf_errf(err, errlen, "unexpected argument \"%s\" (see --help)", arg);
            goto out;
        }
        eq = strchr(arg, '=');
        namelen = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        snprintf(flag, sizeof(flag), "--%.*s", (int)EKV_MIN(namelen, 64), arg + 2);
        d = ekv_conf_lookup(arg + 2, namelen);
        if (d == NULL) {
            ekv_conf_errf(err, errlen, "%s: unknown option (see --help)", flag);
            goto out;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            ekv_conf_errf(err, errlen, "%s: missing value", flag);
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
        const struct ekv_conf_directive *d = cli[i].d;

        snprintf(flag, sizeof(flag), "--%s", d->name);
        if (d->type == T_LIST && !replaced[ekv_conf_index(d)]) {
            /* the command line replaces the file's list instead of extending it */
            ekv_conf_strlist_clear(ekv_conf_field(conf, d));
            replaced[ekv_conf_index(d)] = true;
        }
        if (ekv_conf_apply_at(conf, d, cli[i].value, flag, err, errlen) != EKV_OK)
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
                "       edgekv --version | --help | --print-sample-config | --print-man-page\n"
                "\n"
                "Options:\n"
                "  -c FILE                read directives from FILE (without -c: built-in "
                "defaults)\n"
                "  -t                     check the configuration and exit: 0 if it is good,\n"
                "                         1 if not (does not contact Redis)\n"
                "  -h, --help             show this help and exit\n"
                "  -v, --version          show the version and exit\n"
                "  --print-sample-config  print the documented sample configuration and exit\n"
                "  --print-man-page       print the manual, edgekv(8), in man(7) format and exit\n"
                "  --DIRECTIVE VALUE      set a directive (also --DIRECTIVE=VALUE); the "
                "command\n"
                "                         line wins over the file\n"
                "\n"
                "Directives (\"directive value\" in the file, '#' starts a comment):\n");
    for (size_t i = 0; i < EKV_CONF_NDIRECTIVES; i++) {
        const struct ekv_conf_directive *d = &ekv_conf_directives[i];
        char left[64];

        char range[80] = "";

        snprintf(left, sizeof(left), "--%s %s", d->name, d->arg);
        if (d->type == T_UINT || d->type == T_SIZE || d->type == T_DURATION) {
            char lo[32], hi[32];
            ekv_conf_fmt_bound(d, lo, sizeof(lo), d->min);
            ekv_conf_fmt_bound(d, hi, sizeof(hi), d->max);
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
    for (size_t i = 0; i < EKV_CONF_NDIRECTIVES; i++) {
        const struct ekv_conf_directive *d = &ekv_conf_directives[i];

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

/* ------------------------------------------------------------------ the manual */

/* @s (@len bytes) as man(7) text: backslashes and hyphens escaped, a leading '.' or '\'' made
 * literal. */
static void man_text(FILE *fp, const char *s, size_t len)
{
    if (len > 0 && (s[0] == '.' || s[0] == '\''))
        fputs("\\&", fp);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\')
            fputs("\\e", fp);
        else if (s[i] == '-')
            fputs("\\-", fp);
        else
            fputc(s[i], fp);
    }
}

static void man_str(FILE *fp, const char *s)
{
    man_text(fp, s, strlen(s));
}

void ekv_conf_man_entry(FILE *fp, const char *tag, const char *note, const char *text)
{
    fputs(".TP\n\\fB", fp);
    man_str(fp, tag);
    fputs("\\fR", fp);
    if (note != NULL) {
        fputs(" (", fp);
        man_str(fp, note);
        fputs(")", fp);
    }
    fputs("\n", fp);
    man_str(fp, text);
    fputs("\n", fp);
}

/* A directive's help: its own line breaks kept (no fill), as in --help. */
static void man_lines(FILE *fp, const char *text)
{
    fputs(".nf\n", fp);
    while (*text != '\0') {
        size_t n = strcspn(text, "\n");
        man_text(fp, text, n);
        fputc('\n', fp);
        text += n;
        if (*text == '\n')
            text++;
    }
    fputs(".fi\n", fp);
}

void ekv_conf_print_man(FILE *fp, const char *version, ekv_conf_man_section_cb *metrics, void *arg)
{
    fprintf(fp, ".\\\" Generated by `edgekv --print-man-page` from the directive table.\n"
                ".TH EDGEKV 8 \"\" \"edgekv %s\" \"System Manager's Manual\"\n", version);
    fputs(".SH NAME\n"
          "edgekv \\- an edge cache for a Fastly\\-compatible KV store kept in Redis\n"
          ".SH SYNOPSIS\n"
          ".B edgekv\n"
          "[\\fB\\-c\\fR \\fIFILE\\fR] [\\fB\\-\\-\\fIdirective value\\fR ...]\n"
          ".br\n"
          ".B edgekv \\-t\n"
          "[\\fB\\-c\\fR \\fIFILE\\fR] [\\fB\\-\\-\\fIdirective value\\fR ...]\n"
          ".br\n"
          ".B edgekv\n"
          "\\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR | \\fB\\-\\-print\\-sample\\-config\\fR | "
          "\\fB\\-\\-print\\-man\\-page\\fR\n"
          ".SH DESCRIPTION\n"
          "\\fBedgekv\\fR serves the Fastly KV Store REST API over HTTP in front of a Redis\n"
          "origin (a single Redis, or the master that Redis Sentinels name). Reads are\n"
          "answered from an in\\-memory LRU cache with TTLs when they can be, and from Redis\n"
          "otherwise; writes go to Redis, which acknowledges them before edgekv does. Several\n"
          "edgekv processes (POPs) over one Redis stay coherent through Redis client\\-side\n"
          "caching invalidations: a write anywhere evicts the key from every POP's cache, and\n"
          "no hit is served while a POP cannot be sure it would have heard of one\n"
          "(\\fBmax\\-staleness\\fR).\n"
          ".PP\n"
          "edgekv runs in the foreground and logs to standard error. Its operations\n"
          "endpoints are \\fB/healthz\\fR, \\fB/readyz\\fR and \\fB/metrics\\fR (Prometheus),\n"
          "on \\fBlisten\\fR or on \\fBadmin\\-listen\\fR when it is set.\n"
          ".SH OPTIONS\n"
          ".TP\n.BI \\-c \" FILE\"\nRead directives from \\fIFILE\\fR (without it: the built\\-in "
          "defaults).\n"
          ".TP\n.B \\-t\nCheck the configuration (and load every TLS file it names) and exit: 0 "
          "if it is good, 1 if not. Redis is not contacted.\n"
          ".TP\n.BI \\-\\- directive \" value\"\nSet a directive (also "
          "\\fB\\-\\-\\fIdirective\\fB=\\fIvalue\\fR); the command line wins over the file.\n"
          ".TP\n.BR \\-h \", \" \\-\\-help\nShow a summary of the options and directives and "
          "exit.\n"
          ".TP\n.BR \\-v \", \" \\-\\-version\nShow the version and exit.\n"
          ".TP\n.B \\-\\-print\\-sample\\-config\nPrint the documented sample configuration (every "
          "directive with its default) and exit.\n"
          ".TP\n.B \\-\\-print\\-man\\-page\nPrint this manual and exit.\n"
          ".SH CONFIGURATION\n"
          "One \\(lqdirective value\\(rq per line; \\(oq#\\(cq starts a comment; double\\-quote a "
          "value that contains spaces or \\(oq#\\(cq. Only \\fBapi\\-token\\fR and "
          "\\fBread\\-token\\fR may appear more than once. Sizes take \\fBb\\fR, \\fBkb\\fR "
          "(\\fBk\\fR), \\fBmb\\fR (\\fBm\\fR), \\fBgb\\fR (\\fBg\\fR): powers of 1024, any case. "
          "Durations take \\fBms\\fR, \\fBs\\fR, \\fBm\\fR, \\fBh\\fR; a bare 0 is allowed. A bad "
          "value or an unknown directive is reported as \\fIFILE\\fB:\\fILINE\\fB: "
          "\\fIreason\\fR.\n"
          ".SH DIRECTIVES\n",
          fp);
    for (size_t i = 0; i < EKV_CONF_NDIRECTIVES; i++) {
        const struct ekv_conf_directive *d = &ekv_conf_directives[i];

        fputs(".TP\n\\fB", fp);
        man_str(fp, d->name);
        fputs("\\fR \\fI", fp);
        man_str(fp, d->arg);
        fputs("\\fR\n", fp);
        man_lines(fp, d->help);
        fputs("Default: ", fp);
        if (d->def[0] != '\0') {
            fputs("\\fB", fp);
            man_str(fp, d->def);
            fputs("\\fR", fp);
        } else {
            fputs("empty", fp);
        }
        fputs(d->type == T_LIST ? " (may repeat)" : "", fp);
        fputs(d->flags & D_RELOAD ? ".\n" : ". Needs a restart: SIGHUP keeps the running value.\n",
              fp);
    }
    fputs(".SH SIGNALS\n"
          ".TP\n.BR SIGTERM \", \" SIGINT\n"
          "Stop accepting connections, finish the requests in flight and close idle "
          "keep\\-alive connections, for at most \\fBshutdown\\-timeout\\fR; then exit 0. A second "
          "signal stops at once.\n"
          ".TP\n.B SIGHUP\n"
          "Reload the configuration file (with the same command\\-line directives on top). A "
          "file that does not load is rejected with its reason and the running configuration "
          "kept; directives that need a restart keep their running value.\n"
          ".SH FILES\n"
          ".TP\n",
          fp);
#ifdef EKV_SYSCONFDIR
    fputs(".I ", fp);
    man_str(fp, EKV_SYSCONFDIR);
    fputs("/edgekv/edgekv.conf\n", fp);
#else
    fputs(".I /etc/edgekv/edgekv.conf\n", fp);
#endif
    fputs("The documented sample configuration (what \\fB\\-\\-print\\-sample\\-config\\fR "
          "prints).\n"
          ".SH EXIT STATUS\n"
          ".TP\n.B 0\nStopped by a signal after a graceful shutdown; or \\fB\\-t\\fR found the "
          "configuration good.\n"
          ".TP\n.B 1\nThe configuration is bad (the reason is on standard error), a listener or "
          "a TLS file could not be set up, or a worker thread could not start.\n"
          ".SH METRICS\n"
          "\\fB/metrics\\fR answers in the Prometheus text format:\n",
          fp);
    metrics(fp, arg);
    fputs(".SH EXAMPLES\n"
          "Run over a local Redis, open to anyone on the loopback interface:\n"
          ".PP\n.nf\n.RS\n"
          "edgekv \\-\\-origin redis://127.0.0.1:6379/0\n"
          ".RE\n.fi\n"
          ".PP\n"
          "Check a configuration file, then run with it:\n"
          ".PP\n.nf\n.RS\n"
          "edgekv \\-t \\-c /etc/edgekv/edgekv.conf && edgekv \\-c /etc/edgekv/edgekv.conf\n"
          ".RE\n.fi\n"
          ".PP\n"
          "Follow the master of three Sentinels, with a token and metrics on a port of their "
          "own:\n"
          ".PP\n.nf\n.RS\n"
          "edgekv \\-\\-origin redis\\-sentinel://10.0.0.11,10.0.0.12,10.0.0.13/mymaster \\e\n"
          "       \\-\\-api\\-token \"$TOKEN\" \\-\\-listen 0.0.0.0:8080 \\e\n"
          "       \\-\\-admin\\-listen 127.0.0.1:9090\n"
          ".RE\n.fi\n"
          ".PP\n"
          "Store and read a value with the Fastly KV API:\n"
          ".PP\n.nf\n.RS\n"
          "curl \\-X PUT \\-\\-data\\-binary v1 "
          "http://127.0.0.1:8080/resources/stores/kv/$STORE/keys/greeting\n"
          "curl http://127.0.0.1:8080/resources/stores/kv/$STORE/keys/greeting\n"
          ".RE\n.fi\n"
          ".SH SEE ALSO\n"
          ".BR redis\\-server (1),\n"
          ".BR redis\\-sentinel (1)\n",
          fp);
}

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

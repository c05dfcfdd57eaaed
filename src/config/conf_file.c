/* conf_file.c - the file front end: "directive value" lines, '#' comments, double-quoted
 * values; every error is "FILE:LINE: reason". */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/conf.h"

#include "conf_int.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

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
                ekv_conf_errf(why, whylen, "unterminated quoted value");
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
            ekv_conf_errf(why, whylen, "unexpected text after the closing quote");
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
        ekv_conf_errf(why, whylen, "expects one value (double-quote a value that contains spaces)");
        return -1;
    }
    *o = '\0';
    *value = v;
    return 1;
}

int ekv_conf_load_file(struct ekv_conf *conf, const char *path, char *err, size_t errlen)
{
    unsigned seen[EKV_CONF_NDIRECTIVES] = {0}; /* line of each directive's first occurrence */
    char *line = NULL, why[512], where[512];
    const char *name, *value;
    size_t cap = 0, namelen = 0;
    unsigned lineno = 0;
    ssize_t len;
    int rc = EKV_EINVAL;
    FILE *fp;

    fp = fopen(path, "r");
    if (fp == NULL) {
        ekv_conf_errf(err, errlen, "%s: %s", path, strerror(errno));
        return EKV_EINVAL;
    }
    while ((len = getline(&line, &cap, fp)) >= 0) {
        const struct ekv_conf_directive *d;
        int r;

        lineno++;
        snprintf(where, sizeof(where), "%s:%u", path, lineno);
        if (strlen(line) != (size_t)len) {
            ekv_conf_errf(err, errlen, "%s: NUL byte in the line", where);
            goto out;
        }
        r = split_line(line, &name, &namelen, &value, why, sizeof(why));
        if (r == 0)
            continue;
        if (r < 0) {
            ekv_conf_errf(err, errlen, "%s: %.*s: %s", where, (int)EKV_MIN(namelen, 64), name, why);
            goto out;
        }
        d = ekv_conf_lookup(name, namelen);
        if (d == NULL) {
            ekv_conf_errf(err, errlen, "%s: unknown directive \"%.*s\"", where,
                          (int)EKV_MIN(namelen, 64), name);
            goto out;
        }
        if (value == NULL) {
            ekv_conf_errf(err, errlen, "%s: %s: missing value", where, d->name);
            goto out;
        }
        if (d->type != T_LIST && seen[ekv_conf_index(d)] != 0) {
            ekv_conf_errf(err, errlen, "%s: %s: duplicate directive (first set on line %u)", where,
                          d->name, seen[ekv_conf_index(d)]);
            goto out;
        }
        if (seen[ekv_conf_index(d)] == 0)
            seen[ekv_conf_index(d)] = lineno;
        if (ekv_conf_apply_at(conf, d, value, where, err, errlen) != EKV_OK)
            goto out;
    }
    if (ferror(fp)) {
        ekv_conf_errf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    rc = EKV_OK;
out:
    free(line); /* getline's buffer comes from malloc */
    fclose(fp);
    return rc;
}

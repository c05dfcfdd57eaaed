/* conf_int.h - what the files of src/config share, and nothing else includes (conf.h is the
 * module's interface). The files, one job each:
 *   conf.c        the snapshot: defaults, applying one value, comparing, reload merge, checks
 *                 across directives
 *   conf_table.c  the directive table (name, type, bounds, default, help)
 *   conf_value.c  value parsers and checkers: numbers, sizes, durations, bools, strings
 *   conf_file.c   the file front end ("FILE:LINE: reason")
 *   conf_args.c   the command-line front end, --help and --print-sample-config
 *   conf_addr.c   host:port, redis:// and unix:// parsing, address comparisons
 * Every function that can fail follows common.h: EKV_OK or EKV_EINVAL, and a reason in
 * @why/@err for the operator. */
#ifndef EDGEKV_CONFIG_CONF_INT_H
#define EDGEKV_CONFIG_CONF_INT_H

#include "edgekv/common.h"
#include "edgekv/conf.h"

#define KB (UINT64_C(1) << 10)
#define MB (UINT64_C(1) << 20)
#define GB (UINT64_C(1) << 30)
#define SEC UINT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

/* What a directive's value is, and therefore which field type its offset points at. */
enum ekv_conf_type {
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

/*
 * Checks a string or list value. Returns EKV_OK, or EKV_EINVAL with a bare reason in @why
 * ("must be at most 255 bytes ..."): the caller adds the value, unless it is a secret.
 */
typedef int ekv_conf_check_cb(const char *value, char *why, size_t whylen);

struct ekv_conf_directive {
    const char *name;
    enum ekv_conf_type type;
    unsigned flags;           /* D_* */
    size_t offset;            /* of the field in struct ekv_conf */
    uint64_t min, max;        /* T_UINT, T_SIZE, T_DURATION */
    ekv_conf_check_cb *check; /* strings and lists; NULL: anything goes */
    const char *def;          /* the default, parsed by the same setter as the file */
    const char *example;      /* shown commented out in the sample when def is empty */
    const char *arg;          /* placeholder in --help */
    const char *help;         /* lines separated by '\n'; becomes the sample's comments */
};

/* ---------------------------------------------------------------- conf_table.c */

/* Checked against the table by a static assertion in conf_table.c. */
#define EKV_CONF_NDIRECTIVES 42

/** Every directive, in the order of --help and the sample file. */
extern const struct ekv_conf_directive ekv_conf_directives[EKV_CONF_NDIRECTIVES];

/** The directive named by the @len bytes at @name, or NULL. */
const struct ekv_conf_directive *ekv_conf_lookup(const char *name, size_t len);

/** The index of @d in ekv_conf_directives (for per-directive arrays). */
static inline size_t ekv_conf_index(const struct ekv_conf_directive *d)
{
    return (size_t)(d - ekv_conf_directives);
}

/* ---------------------------------------------------------------- conf.c */

/** snprintf() into @err (@err NULL or @errlen 0: nothing). */
void ekv_conf_errf(char *err, size_t errlen, const char *fmt, ...) EKV_PRINTF(3, 4);

/** The field of @conf that directive @d sets. */
static inline void *ekv_conf_field(struct ekv_conf *conf, const struct ekv_conf_directive *d)
{
    return (char *)conf + d->offset;
}

static inline const void *ekv_conf_cfield(const struct ekv_conf *conf,
                                          const struct ekv_conf_directive *d)
{
    return (const char *)conf + d->offset;
}

/**
 * Applies @value to directive @d of @conf. On failure the field is unchanged and @err holds
 * "WHERE: NAME: reason" (a command-line @where such as "--threads" already names the
 * directive: "--threads: reason"; @where NULL: "NAME: reason"). Returns EKV_OK or EKV_EINVAL.
 */
EKV_NODISCARD int ekv_conf_apply_at(struct ekv_conf *conf, const struct ekv_conf_directive *d,
                                    const char *value, const char *where, char *err, size_t errlen);

/** Frees a string that may be a secret after overwriting it; NULL is a no-op. */
void ekv_conf_free_secret(char *s);
/** Empties @l (its strings may be secrets). */
void ekv_conf_strlist_clear(struct ekv_conf_strlist *l);
/** Appends a copy of @s to @l. */
void ekv_conf_strlist_add(struct ekv_conf_strlist *l, const char *s);

/* ---------------------------------------------------------------- conf_value.c */

/**
 * Parses the T_UINT, T_SIZE or T_DURATION value @v of @d and checks it against the
 * directive's range. Returns EKV_OK with *@out set, or EKV_EINVAL with a reason that quotes @v.
 */
EKV_NODISCARD int ekv_conf_parse_number(const struct ekv_conf_directive *d, const char *v,
                                        uint64_t *out, char *why, size_t whylen);
/** yes/no, true/false, on/off, 1/0 in any case. Returns EKV_OK or EKV_EINVAL. */
EKV_NODISCARD int ekv_conf_parse_bool(const char *v, bool *out);
/** Writes bound @v of @d the way it is written in the file ("32kb", "3s", "50"). */
void ekv_conf_fmt_bound(const struct ekv_conf_directive *d, char *buf, size_t len, uint64_t v);

ekv_conf_check_cb ekv_conf_check_namespace; /* 1-64 bytes, no spaces, '{' or '}' */
ekv_conf_check_cb ekv_conf_check_token;     /* 1-4096 bytes without spaces */
ekv_conf_check_cb ekv_conf_check_word;      /* at most 255 bytes without spaces */
ekv_conf_check_cb ekv_conf_check_path;      /* at most 4096 bytes without control characters */
ekv_conf_check_cb ekv_conf_check_tls_version; /* "1.2" or "1.3" */

/* ---------------------------------------------------------------- conf_addr.c */

/** "host:port", or "[v6]:port" when the host has a colon; "(empty)" without a host. */
void ekv_conf_fmt_addr(char *buf, size_t len, const struct ekv_conf_addr *a);
/** Same host, allowing for different spellings of one IP address. */
bool ekv_conf_same_host(const char *a, const char *b);
/** 0.0.0.0 or ::, which take the port on every address (of both families, for ::). */
bool ekv_conf_host_is_wildcard(const char *host);

#endif /* EDGEKV_CONFIG_CONF_INT_H */

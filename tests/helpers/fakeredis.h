/* fakeredis.h - a scripted fake Redis for deterministic race tests (check_race.c only).
 *
 * A RESP2 server on a unix socket, run by a thread of the test process, that speaks just the
 * part of Redis that edgekv's read path and invalidation link use: CLIENT ID, CLIENT TRACKING,
 * SUBSCRIBE (the invalidation channel and the heartbeat channel), SCRIPT LOAD, EVAL (the
 * layout check every connection runs first: answered "nothing to move"), the item read
 * (PTTL and HMGET, then EXISTS for a 404: src/api/read.c) over a small table of items, the
 * store record's read (HMGET name shards: every store exists, of one bucket, so the items' keys
 * are "edgekv:i:{sid}:key"), and PING. Anything else is answered with an error and counted.
 *
 * What a real Redis cannot do on demand, the test scripts here:
 * - hold the replies to the next item reads (HMGET's reply, computed when HMGET arrives, as Redis
 *   would have run it then, and only sent on release; later replies on the same connection
 *   wait behind it, as RESP requires);
 * - hold the confirmation of SUBSCRIBE __redis__:invalidate;
 * - push invalidation messages to the invalidation connections, in order (behind a held
 *   confirmation, as Redis would) or "early" (ahead of everything queued);
 * - drop the invalidation connections (CLIENT KILL TYPE pubsub) without sending anything.
 *
 * Functions other than fakeredis_stop() fail the test (ck_assert) on setup errors; all of them
 * are called from the test's own thread. */
#ifndef EDGEKV_TESTS_FAKEREDIS_H
#define EDGEKV_TESTS_FAKEREDIS_H

#include <stdbool.h>
#include <stddef.h>

#define FAKEREDIS_INVALIDATE_CHANNEL "__redis__:invalidate"

struct fakeredis;

/** Counters and state, a snapshot (fakeredis_stats). */
struct fakeredis_stats {
    unsigned conns;       /* connections accepted */
    unsigned inval_conns; /* connections that sent CLIENT ID (the invalidation link's) */
    unsigned subscribed;  /* open connections whose invalidation subscription was confirmed */
    unsigned sub_pending; /* SUBSCRIBE __redis__:invalidate confirmations held */
    unsigned held_gets;   /* item read replies (HMGET) held */
    unsigned gets;        /* item reads received (HMGETs), every key */
    unsigned heartbeats;  /* SUBSCRIBEs of other channels (edgekv's heartbeat) */
    unsigned unknown;     /* commands it does not know (answered with an error) */
    bool redirect_ok;     /* every CLIENT TRACKING ON named its own connection in REDIRECT */
    unsigned tracking_on; /* CLIENT TRACKING ON commands seen */
    char last_unknown[96];
};

/** Starts the server in a fresh directory under the suite's scratch directory. */
struct fakeredis *fakeredis_start(void);

/** Stops the thread, closes every connection, removes the directory, frees. NULL: no-op.
 * Never fails (safe in a teardown). */
void fakeredis_stop(struct fakeredis *f);

/** "unix://DIR/fake.sock": edgekv's --origin. */
const char *fakeredis_origin(const struct fakeredis *f);

/** Sets the item under the Redis key @rkey ("edgekv:i:{sid}:key") to @value with generation
 * @gen; a NULL @value deletes it (a read then finds no item in a store that exists: 404 "key").
 * Sends nothing. */
void fakeredis_set(struct fakeredis *f, const char *rkey, const char *value,
                   unsigned long long gen);

/** From now on PTTL of @rkey answers @ms, whatever the item (by default -1 when it exists, else
 * -2): an item read that crosses a write or an expiry, as Redis may run another client's
 * command between the read's PTTL and its HMGET. */
void fakeredis_pttl(struct fakeredis *f, const char *rkey, long long ms);

/** From now on the command @cmd (e.g. "EXISTS") is refused with a NOPERM error, as Redis does
 * for an ACL user without it; NULL: none is. */
void fakeredis_refuse(struct fakeredis *f, const char *cmd);

/** The next command named @cmd (e.g. "HMGET") is answered with the @len raw RESP bytes of @resp
 * (copied) instead of what it asks for: a malformed, truncated or unusual reply. Once. */
void fakeredis_answer_raw(struct fakeredis *f, const char *cmd, const char *resp, size_t len);

/** Holds the replies to the next @n item reads (0 cancels what is left). */
void fakeredis_hold_gets(struct fakeredis *f, unsigned n);
/** Sends the held item read replies (and what queued behind them). */
void fakeredis_release_gets(struct fakeredis *f);

/** While @on, the confirmations of SUBSCRIBE __redis__:invalidate are held. */
void fakeredis_hold_subscribe(struct fakeredis *f, bool on);
/** Sends the held confirmations (and what queued behind them). */
void fakeredis_release_subscribe(struct fakeredis *f);

/**
 * Pushes an invalidation message for the Redis key @rkey (NULL: the NIL "flush everything"
 * message) to every open connection that asked for the invalidation channel. In order (behind
 * a held confirmation), or @early: ahead of everything queued.
 */
void fakeredis_invalidate(struct fakeredis *f, const char *rkey, bool early);

/** Pushes @len raw RESP bytes to the same connections (malformed or unusual messages). */
void fakeredis_push_raw(struct fakeredis *f, const char *resp, size_t len, bool early);

/** Closes every invalidation connection (like CLIENT KILL TYPE pubsub), sending nothing more.
 * Returns how many were open. */
unsigned fakeredis_kill_inval(struct fakeredis *f);

/** A snapshot of the counters. */
void fakeredis_stats(struct fakeredis *f, struct fakeredis_stats *st);

/** Item reads received for @rkey (HMGETs of it). */
unsigned fakeredis_gets(struct fakeredis *f, const char *rkey);

/** The commands received on the @n-th (0-based) invalidation connection, one per line with
 * their arguments separated by spaces: a malloc'd string (caller frees), or NULL. */
char *fakeredis_inval_log(struct fakeredis *f, unsigned n);

#endif /* EDGEKV_TESTS_FAKEREDIS_H */

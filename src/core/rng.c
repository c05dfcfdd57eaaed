/* rng.c - xoshiro256** seeded by SplitMix64 (both public domain, prng.di.unimi.it), and what is
 * built on it: unbiased bounded draws, ranges and the jittered backoff of reconnects. */
#include "config.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "edgekv/rng.h"

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Fills @buf from getrandom(); without it (old kernel, seccomp, pool not ready: GRND_NONBLOCK
 * never waits), from the clocks, the pid and @salt, mixed by SplitMix64. */
static void entropy(uint64_t *buf, size_t n, const void *salt)
{
    struct timespec rt, mt;
    uint64_t x;

    if (getrandom(buf, n * sizeof(*buf), GRND_NONBLOCK) == (ssize_t)(n * sizeof(*buf)))
        return;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mt);
    x = ((uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec) ^ ((uint64_t)mt.tv_nsec << 20) ^
        ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)salt;
    for (size_t i = 0; i < n; i++)
        buf[i] = splitmix(&x);
}

static void fix_zero(struct ekv_rng *rng)
{
    /* the all-zero state is xoshiro's one fixed point */
    if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0)
        rng->s[0] = 1;
}

void ekv_rng_init(struct ekv_rng *rng)
{
    entropy(rng->s, 4, rng);
    fix_zero(rng);
}

void ekv_rng_init_seed(struct ekv_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix(&seed);
    fix_zero(rng);
}

uint64_t ekv_rng_u64(struct ekv_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t ekv_rng_below(struct ekv_rng *rng, uint64_t n)
{
    uint64_t v, limit;

    if (n == 0)
        return 0;
    /* reject the top (2^64 mod n) values, which a plain modulo would over-represent */
    limit = UINT64_MAX - UINT64_MAX % n;
    do
        v = ekv_rng_u64(rng);
    while (v >= limit);
    return v % n;
}

uint64_t ekv_rng_range(struct ekv_rng *rng, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    if (hi - lo == UINT64_MAX)
        return ekv_rng_u64(rng);
    return lo + ekv_rng_below(rng, hi - lo + 1);
}

uint64_t ekv_rng_backoff_ms(struct ekv_rng *rng, uint64_t base_ms, uint64_t cap_ms,
                            unsigned attempt)
{
    uint64_t c = base_ms;

    for (unsigned i = 0; i < attempt && c < cap_ms; i++)
        c = c > UINT64_MAX / 2 ? UINT64_MAX : c * 2;
    c = EKV_MIN(c, cap_ms);
    return ekv_rng_range(rng, c / 2, c);
}

uint64_t ekv_rng_entropy64(void)
{
    uint64_t v = 0; /* only its address salts the fallback; -O1 cannot tell */

    entropy(&v, 1, &v);
    return v;
}

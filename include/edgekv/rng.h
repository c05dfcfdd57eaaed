/* rng.h - the one pseudo-random generator of edgekv: xoshiro256** (Blackman and Vigna), fast
 * and statistically sound, NOT for secrets. Seeded from getrandom() (falling back to the
 * clock, the pid and an address), or from a fixed seed for reproducible tests. */
#ifndef EDGEKV_RNG_H
#define EDGEKV_RNG_H

#include "edgekv/common.h"

/** Generator state, in caller storage. Not locked: one per thread or per owning object. */
struct ekv_rng {
    uint64_t s[4];
};

/** Seeds @rng from the kernel's entropy (never blocks; falls back to weaker sources). */
void ekv_rng_init(struct ekv_rng *rng);
/** Seeds @rng from @seed (expanded by SplitMix64): the same seed gives the same sequence. */
void ekv_rng_init_seed(struct ekv_rng *rng, uint64_t seed);

/** The next 64 random bits. */
uint64_t ekv_rng_u64(struct ekv_rng *rng);
/** Uniform in [0, @n) without modulo bias; 0 when @n is 0. */
uint64_t ekv_rng_below(struct ekv_rng *rng, uint64_t n);
/** Uniform in [@lo, @hi] (both included); @lo when @hi <= @lo. */
uint64_t ekv_rng_range(struct ekv_rng *rng, uint64_t lo, uint64_t hi);

/**
 * A reconnect delay: capped exponential backoff with jitter. With c = min(@base_ms * 2^@attempt,
 * @cap_ms), the result is uniform in [c / 2, c], so peers that failed together do not retry
 * together, and no delay is ever shorter than half the backoff step or longer than @cap_ms.
 */
uint64_t ekv_rng_backoff_ms(struct ekv_rng *rng, uint64_t base_ms, uint64_t cap_ms,
                            unsigned attempt);

/** 64 bits from the kernel's entropy (a hash seed, say), with the same fallback. */
uint64_t ekv_rng_entropy64(void);

#endif /* EDGEKV_RNG_H */

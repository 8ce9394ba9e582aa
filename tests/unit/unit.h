/* Helpers shared by the Check suites in tests/unit/: a seeded PRNG (so a failure replays), the
 * seed from the environment, a quiet log sink, and the common main(). Everything is static inline
 * so a suite that does not use a helper does not warn. */
#ifndef TANDEM_TESTS_UNIT_H
#define TANDEM_TESTS_UNIT_H

#include <check.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raid/tlog.h"

/* splitmix64: tiny, good enough, and the whole state is one number that can be printed. */
struct urand {
	uint64_t s;
};

static inline uint64_t urand_next(struct urand *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t urand_below(struct urand *r, uint64_t n)
{
	return urand_next(r) % n;
}

/* Uniform in [lo, hi]. */
static inline uint64_t urand_range(struct urand *r, uint64_t lo, uint64_t hi)
{
	return lo + urand_below(r, hi - lo + 1);
}

static inline void urand_fill(struct urand *r, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len >= 8) {
		uint64_t v = urand_next(r);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = urand_next(r);

		memcpy(p, &v, len);
	}
}

/* The run's base seed: UNIT_SEED=<n> replays a run, UNIT_SEED=0 picks one from the clock,
 * unset uses a fixed default so `make check` is deterministic. Printed once per process. */
static inline uint64_t unit_seed(void)
{
	static uint64_t seed;
	static int have;
	const char *e;

	if (have)
		return seed;
	e = getenv("UNIT_SEED");
	seed = e ? strtoull(e, NULL, 0) : 0x7A4DE11ull;
	if (e && seed == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
	}
	have = 1;
	printf("unit: seed %" PRIu64 " (replay with UNIT_SEED=%" PRIu64 ")\n", seed, seed);
	fflush(stdout);
	return seed;
}

/* A per-test seed: the base seed mixed with a test-specific salt (loop index, geometry). */
static inline uint64_t unit_seed_for(uint64_t salt)
{
	struct urand r = { unit_seed() ^ (salt * 0xD6E8FEB86659FD93ull) };

	return urand_next(&r);
}

/* Library log lines are noise in a passing run; TANDEM_TEST_LOG=1 shows them. */
static inline void unit_quiet_sink(enum tlog_level level, const char *line)
{
	(void)level;
	(void)line;
}

static inline void unit_log_setup(void)
{
	if (!getenv("TANDEM_TEST_LOG"))
		tlog_set_sink(unit_quiet_sink);
}

/* Run one suite; exit status 0 only when every test passed. */
static inline int unit_run(Suite *s)
{
	SRunner *sr;
	int failed;

	unit_log_setup();
	(void)unit_seed();
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif

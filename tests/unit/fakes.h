/* Test fakes for raid members, shared by test_raid.c and test_degraded.c. Everything is static
 * inline (the ops tables are marked unused) so a suite that does not use a fake does not warn.
 *
 *  - a fault-injecting member (struct fault, fault_wrap): wraps another member, forwards every
 *    op and counts them, and fails chosen ops, so a test can make a member fail at an exact
 *    read/write/flush/zero (or die: fault_die) and see how the array absorbs it;
 *  - a sparse in-memory member (sparse_open): like raid_member_open_mem, but memory is allocated
 *    per 64 KiB page on first write, so large geometry sweeps (every member has a 4 MiB metadata
 *    area) cost almost nothing;
 *  - small helpers both suites use: mems_open/mems_close (a set of raid_member_open_mem members),
 *    all_zero, fill_stamped (cheap distinct data for big volumes), and gen_write with its W_*
 *    kinds (a random write of a chosen shape: sub-chunk, crossing chunks/stripes, full stripe...).
 *
 * Members come from raid/member.h; the data helpers use the PRNG of tests/unit/unit.h. */
#ifndef TANDEM_TESTS_UNIT_FAKES_H
#define TANDEM_TESTS_UNIT_FAKES_H

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raid/layout.h"
#include "raid/member.h"
#include "tests/unit/unit.h"

/* ---- a fault-injecting member ------------------------------------------------------------ */

/* Wraps another member and forwards every op, counting them; fails chosen ops with -err.
 * Op counters are 1-based and count attempts, so "fail the 3rd pwrite" replays exactly.
 * fault_die() makes it fail every read, write and flush from now on. */
struct fault {
	struct raid_member *inner;
	int own_inner;                  /* close the inner member on close (else the test keeps it) */
	uint64_t reads, writes, flushes; /* attempts (__atomic) */
	uint64_t fail_read_at;          /* fail this pread (1-based); 0 = never */
	uint64_t fail_write_at;         /* fail this pwrite (1-based); 0 = never */
	int sticky;                     /* fail every op from that one on (a dying disk) */
	int fail_flush, fail_zero;
	int err;                        /* errno to fail with (default EIO) */
	uint64_t injected;              /* failures returned (__atomic) */
};

static inline int fault_hit(uint64_t at, uint64_t n, int sticky)
{
	return at && (n == at || (sticky && n > at));
}

static inline int fault_pread(struct raid_member *m, void *buf, size_t len, uint64_t off)
{
	struct fault *f = m->priv;
	uint64_t n = __atomic_add_fetch(&f->reads, 1, __ATOMIC_SEQ_CST);

	if (fault_hit(__atomic_load_n(&f->fail_read_at, __ATOMIC_SEQ_CST), n,
		      __atomic_load_n(&f->sticky, __ATOMIC_SEQ_CST))) {
		__atomic_add_fetch(&f->injected, 1, __ATOMIC_SEQ_CST);
		return -f->err;
	}
	return raid_member_pread(f->inner, buf, len, off);
}

static inline int fault_pwrite(struct raid_member *m, const void *buf, size_t len, uint64_t off)
{
	struct fault *f = m->priv;
	uint64_t n = __atomic_add_fetch(&f->writes, 1, __ATOMIC_SEQ_CST);

	if (fault_hit(__atomic_load_n(&f->fail_write_at, __ATOMIC_SEQ_CST), n,
		      __atomic_load_n(&f->sticky, __ATOMIC_SEQ_CST))) {
		__atomic_add_fetch(&f->injected, 1, __ATOMIC_SEQ_CST);
		return -f->err;
	}
	return raid_member_pwrite(f->inner, buf, len, off);
}

static inline int fault_flush(struct raid_member *m)
{
	struct fault *f = m->priv;

	__atomic_add_fetch(&f->flushes, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&f->fail_flush, __ATOMIC_SEQ_CST)) {
		__atomic_add_fetch(&f->injected, 1, __ATOMIC_SEQ_CST);
		return -f->err;
	}
	return f->inner->ops->flush(f->inner);
}

static inline int fault_zero(struct raid_member *m, uint64_t off, uint64_t len)
{
	struct fault *f = m->priv;

	if (__atomic_load_n(&f->fail_zero, __ATOMIC_SEQ_CST)) {
		__atomic_add_fetch(&f->injected, 1, __ATOMIC_SEQ_CST);
		return -f->err;
	}
	return f->inner->ops->zero(f->inner, off, len);
}

static inline void fault_close(struct raid_member *m)
{
	struct fault *f = m->priv;

	if (f->own_inner)
		raid_member_close(f->inner);
	free(f);
}

static const struct raid_member_ops fault_ops __attribute__((unused)) = {
	.pread = fault_pread, .pwrite = fault_pwrite, .flush = fault_flush, .zero = fault_zero,
	.close = fault_close,
};

static inline struct raid_member *fault_wrap(struct raid_member *inner, int own_inner)
{
	struct raid_member *m = calloc(1, sizeof(*m));
	struct fault *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(f);
	f->inner = inner;
	f->own_inner = own_inner;
	f->err = EIO;
	m->ops = &fault_ops;
	m->priv = f;
	m->size_bytes = inner->size_bytes;
	snprintf(m->name, sizeof(m->name), "fault(%.200s)", inner->name);
	return m;
}

static inline struct fault *fault_of(struct raid_member *m)
{
	ck_assert_ptr_eq(m->ops, &fault_ops);
	return m->priv;
}

/* Failures injected so far by the wrappers m[0..nr). */
static inline uint64_t fault_injected(struct raid_member **m, uint32_t nr)
{
	uint64_t t = 0;

	for (uint32_t i = 0; i < nr; i++)
		t += __atomic_load_n(&fault_of(m[i])->injected, __ATOMIC_SEQ_CST);
	return t;
}

/* Clear every rule and counter of the wrappers w[0..N). */
static inline void fault_reset(struct raid_member **w, uint32_t N)
{
	for (uint32_t i = 0; i < N; i++) {
		struct fault *f = fault_of(w[i]);

		f->fail_read_at = f->fail_write_at = 0;
		f->sticky = f->fail_flush = f->fail_zero = 0;
		f->reads = f->writes = f->flushes = 0;
	}
}

/* The member "disappears": every read, write and flush fails from now on. */
static inline void fault_die(struct raid_member *m)
{
	struct fault *f = fault_of(m);

	__atomic_store_n(&f->sticky, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->fail_flush, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->fail_read_at, __atomic_load_n(&f->reads, __ATOMIC_SEQ_CST) + 1,
			 __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->fail_write_at, __atomic_load_n(&f->writes, __ATOMIC_SEQ_CST) + 1,
			 __ATOMIC_SEQ_CST);
}

/* Every op ever attempted on the wrapper (a failed member must not be touched again). */
static inline uint64_t fault_ops_seen(struct raid_member *m)
{
	struct fault *f = fault_of(m);

	return __atomic_load_n(&f->reads, __ATOMIC_SEQ_CST) +
	       __atomic_load_n(&f->writes, __ATOMIC_SEQ_CST) +
	       __atomic_load_n(&f->flushes, __ATOMIC_SEQ_CST);
}

/* ---- a sparse in-memory member ------------------------------------------------------------ */

/* Like raid_member_open_mem, but memory is allocated per 64 KiB page on first write and zero()
 * frees whole pages: the 4 MiB metadata area of every member of a geometry sweep costs
 * nothing. Unwritten pages read as zeros. */
#define SP_PAGE (64u * 1024u)

struct sparse {
	pthread_mutex_t lock;           /* protects pg[] allocation */
	uint8_t **pg;
	uint64_t npg;
};

static inline int sp_range(struct raid_member *m, uint64_t len, uint64_t off)
{
	return off <= m->size_bytes && len <= m->size_bytes - off;
}

static inline int sp_pread(struct raid_member *m, void *buf, size_t len, uint64_t off)
{
	struct sparse *sp = m->priv;
	uint8_t *d = buf;

	if (!sp_range(m, len, off))
		return -EIO;
	while (len) {
		uint64_t p = off / SP_PAGE, o = off % SP_PAGE, n = SP_PAGE - o;
		uint8_t *page;

		n = n < len ? n : len;
		pthread_mutex_lock(&sp->lock);
		page = sp->pg[p];
		pthread_mutex_unlock(&sp->lock);
		if (page)
			memcpy(d, page + o, n);
		else
			memset(d, 0, n);
		d += n;
		off += n;
		len -= n;
	}
	return 0;
}

static inline int sp_pwrite(struct raid_member *m, const void *buf, size_t len, uint64_t off)
{
	struct sparse *sp = m->priv;
	const uint8_t *s = buf;

	if (!sp_range(m, len, off))
		return -EIO;
	while (len) {
		uint64_t p = off / SP_PAGE, o = off % SP_PAGE, n = SP_PAGE - o;
		uint8_t *page;

		n = n < len ? n : len;
		pthread_mutex_lock(&sp->lock);
		if (!sp->pg[p])
			sp->pg[p] = calloc(1, SP_PAGE);
		page = sp->pg[p];
		pthread_mutex_unlock(&sp->lock);
		if (!page)
			return -ENOMEM;
		memcpy(page + o, s, n);
		s += n;
		off += n;
		len -= n;
	}
	return 0;
}

static inline int sp_flush(struct raid_member *m)
{
	(void)m;
	return 0;
}

static inline int sp_zero(struct raid_member *m, uint64_t off, uint64_t len)
{
	struct sparse *sp = m->priv;

	if (!sp_range(m, len, off))
		return -EIO;
	pthread_mutex_lock(&sp->lock);
	while (len) {
		uint64_t p = off / SP_PAGE, o = off % SP_PAGE, n = SP_PAGE - o;

		n = n < len ? n : len;
		if (n == SP_PAGE) {
			free(sp->pg[p]);
			sp->pg[p] = NULL;
		} else if (sp->pg[p]) {
			memset(sp->pg[p] + o, 0, n);
		}
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&sp->lock);
	return 0;
}

static inline void sp_close(struct raid_member *m)
{
	struct sparse *sp = m->priv;

	for (uint64_t i = 0; i < sp->npg; i++)
		free(sp->pg[i]);
	free(sp->pg);
	pthread_mutex_destroy(&sp->lock);
	free(sp);
}

static const struct raid_member_ops sparse_ops __attribute__((unused)) = {
	.pread = sp_pread, .pwrite = sp_pwrite, .flush = sp_flush, .zero = sp_zero,
	.close = sp_close,
};

static inline struct raid_member *sparse_open(const char *name, uint64_t size)
{
	struct raid_member *m = calloc(1, sizeof(*m));
	struct sparse *sp = calloc(1, sizeof(*sp));

	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(sp);
	sp->npg = (size + SP_PAGE - 1) / SP_PAGE;
	sp->pg = calloc(sp->npg, sizeof(sp->pg[0]));
	ck_assert_ptr_nonnull(sp->pg);
	pthread_mutex_init(&sp->lock, NULL);
	m->ops = &sparse_ops;
	m->priv = sp;
	m->size_bytes = size;
	snprintf(m->name, sizeof(m->name), "%s", name);
	return m;
}

/* ---- shared helpers ---------------------------------------------------------------------- */

/* nr fresh in-memory members of `size` bytes named <prefix>0, <prefix>1, ... */
static inline void mems_open(struct raid_member **m, uint32_t nr, uint64_t size,
			     const char *prefix)
{
	for (uint32_t i = 0; i < nr; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%s%u", prefix, i);
		ck_assert_int_eq(raid_member_open_mem(name, size, &m[i]), 0);
	}
}

static inline void mems_close(struct raid_member **m, uint32_t nr)
{
	for (uint32_t i = 0; i < nr; i++) {
		raid_member_close(m[i]);
		m[i] = NULL;
	}
}

/* All zero? (memcmp against itself shifted by one: fast, no zero buffer) */
static inline int all_zero(const uint8_t *p, uint64_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Cheap distinct data for big volumes: a random 64 KiB tile repeated, with its byte offset
 * stamped at the start of every 512-byte block (so a misplaced block or chunk shows). */
static inline void fill_stamped(struct urand *r, uint8_t *buf, uint64_t len)
{
	const uint64_t tile = 64 * 1024u;

	urand_fill(r, buf, len < tile ? len : tile);
	for (uint64_t o = tile; o < len; o += tile)
		memcpy(buf + o, buf, len - o < tile ? len - o : tile);
	for (uint64_t o = 0; o + 8 <= len; o += 512)
		memcpy(buf + o, &o, 8);
}

/* Write shapes: sub-chunk, crossing chunks, crossing stripes, a full stripe, several stripes, one
 * unit, most of a stripe, anything. */
enum { W_SUBCHUNK, W_CHUNKCROSS, W_STRIPECROSS, W_FULL, W_MULTI, W_ONE, W_MOST, W_ANY, W_KINDS };

/* A write of kind `k` in units of `gran` bytes (the block size, or 1 for byte-granular I/O). */
static inline void gen_write(struct urand *r, const struct raid_geom *g, uint64_t stripes,
			     uint64_t gran, int k, uint64_t *off, uint64_t *len)
{
	const uint64_t C = g->chunk_bytes, S = raid_stripe_bytes(g), V = S * stripes;
	const uint64_t cu = C / gran, su = S / gran; /* chunk, stripe in units */
	uint64_t s = urand_below(r, stripes), a, b;

	switch (k) {
	case W_SUBCHUNK: {
		uint64_t d = urand_below(r, g->nr_data), o = urand_below(r, cu);

		a = s * su + d * cu + o;
		b = a + urand_range(r, 1, cu - o);
		break;
	}
	case W_CHUNKCROSS: {
		uint64_t d = urand_below(r, g->nr_data - 1), d2 = urand_range(r, d + 1, g->nr_data - 1);

		a = s * su + d * cu + urand_below(r, cu);
		b = s * su + d2 * cu + urand_range(r, 1, cu);
		if (a == s * su && b == (s + 1) * su)
			b--;
		break;
	}
	case W_STRIPECROSS:
		s = urand_below(r, stripes - 1);
		a = s * su + urand_range(r, 1, su - 1);
		b = (s + 1) * su + urand_range(r, 1, su - 1);
		break;
	case W_FULL:
		a = s * su;
		b = a + su;
		break;
	case W_MULTI: {
		uint64_t k2 = urand_range(r, 2, stripes < 4 ? stripes : 4);

		s = urand_below(r, stripes - k2 + 1);
		a = s * su;
		b = a + k2 * su;
		if (urand_below(r, 2)) {
			a += urand_below(r, su / 2);
			b -= urand_below(r, su / 2);
		}
		break;
	}
	case W_ONE:
		a = urand_below(r, V / gran);
		b = a + 1;
		break;
	case W_MOST: {
		uint64_t x = urand_below(r, cu), y = urand_below(r, cu);

		if (x + y == 0)
			y = 1;
		a = s * su + x;
		b = (s + 1) * su - y;
		break;
	}
	default: {
		uint64_t max = 3 * su;

		a = urand_below(r, V / gran);
		b = a + urand_range(r, 1, max < V / gran - a ? max : V / gran - a);
		break;
	}
	}
	*off = a * gran;
	*len = (b - a) * gran;
}

#endif

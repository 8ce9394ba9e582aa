/* LU mirror (raid/mirror.h, docs/mirror.md) between in-memory RAID volumes of different
 * geometries (a sweep: primary 2..5 data members, secondary 2..6, other chunk sizes): the initial
 * copy and the resync write only whole granules (the secondary's full stripe: no read-modify-write,
 * no reconstruct-write on the secondary), duplexed writes keep the volumes equal, split records
 * exactly the granules written, resync copies exactly the recorded granules, the bitmap file
 * survives a close/reopen and a damaged one is refused, a failing secondary suspends the mirror
 * without failing the host write, a primary read error is served by the secondary while duplex,
 * a copy resumes from its checkpoint, intent bits of a duplexed write interrupted by a crash make
 * the restart resync that granule, host writes during the copy. And what must hold but did not
 * when this suite was written (failures say "BUG:"): a mirror suspended during its initial copy
 * then resynced, an intent bit kept until the secondary has the write, a duplexed write during a
 * resync not copied again, a split accepted during a resync not undone by the resync's end.
 * UNIT_SEED=<n> replays a run (the seed is printed); TANDEM_TEST_LOG=1 shows the library's log. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "raid/layout.h"
#include "raid/member.h"
#include "raid/mirror.h"
#include "raid/raid.h"
#include "raid/util.h"
#include "raid/vol.h"
#include "tests/unit/unit.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define WHY 512
#define BLK 512u
#define BM_HDR 4096u
#define BM_BLK 4096u
#define BM_BITS_PER_BLK ((BM_BLK - 4u) * 8u)

/* ---- a test volume: a RAID array over memory members, with failures on demand ------------- */

struct tvol {
	struct vol v;
	struct raid_vol *a;
	int fail_reads, fail_writes;   /* -EIO from the volume (__atomic) */
	int drop_writes;               /* "crash": writes are acknowledged but never happen */
	int gate;                      /* writes wait while set (a slow or hung remote volume) */
	int waiting;                   /* writes waiting at the gate */
	uint64_t writes;               /* attempted (__atomic) */
};

static int tv_read(struct vol *v, void *buf, uint64_t off, uint64_t len)
{
	struct tvol *t = v->impl;

	if (__atomic_load_n(&t->fail_reads, __ATOMIC_SEQ_CST))
		return -EIO;
	return raid_read(t->a, buf, off, len);
}

static int tv_write(struct vol *v, const void *buf, uint64_t off, uint64_t len)
{
	struct tvol *t = v->impl;

	__atomic_add_fetch(&t->writes, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&t->fail_writes, __ATOMIC_SEQ_CST))
		return -EIO;
	if (__atomic_load_n(&t->gate, __ATOMIC_SEQ_CST)) {
		__atomic_add_fetch(&t->waiting, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&t->gate, __ATOMIC_SEQ_CST))
			usleep(1000);
		__atomic_sub_fetch(&t->waiting, 1, __ATOMIC_SEQ_CST);
	}
	if (__atomic_load_n(&t->drop_writes, __ATOMIC_SEQ_CST))
		return 0;
	return raid_write(t->a, buf, off, len);
}

static int tv_flush(struct vol *v)
{
	return raid_flush(((struct tvol *)v->impl)->a);
}

static void tv_destroy(struct vol *v)
{
	struct tvol *t = v->impl;

	raid_close(t->a);
	free(t);
}

static const struct vol_ops tv_ops = {
	.read = tv_read, .write = tv_write, .flush = tv_flush, .destroy = tv_destroy,
};

/* An nD+1P array of `data_bytes` (a multiple of n * chunk) as a volume, filled with random data
 * from `fill` (0: left zero). */
static struct tvol *tvol_make(uint64_t volid, uint32_t n, uint32_t chunk, uint64_t data_bytes,
			      uint64_t fill)
{
	struct raid_member *m[RAID_MAX_MEMBERS];
	struct raid_create_params cp = { .nr_data = n, .chunk_bytes = chunk, .block_bytes = BLK,
					 .volid = volid };
	struct raid_assemble_params ap = { 0 };
	struct tvol *t = calloc(1, sizeof(*t));
	char why[WHY] = "";
	int err;

	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(data_bytes % ((uint64_t)n * chunk), 0);
	for (uint32_t i = 0; i <= n; i++) {
		char name[64];

		snprintf(name, sizeof(name), "v%" PRIu64 "m%u", volid, i);
		ck_assert_int_eq(raid_member_open_mem(name, RAID_DATA_OFFSET_BYTES + data_bytes / n,
						      &m[i]), 0);
	}
	err = raid_create(m, n + 1, &cp, why, sizeof(why));
	ck_assert_msg(err == 0, "create %uD+1P chunk %u: %d (%s)", n, chunk, err, why);
	err = raid_assemble(m, n + 1, &ap, &t->a, why, sizeof(why));
	ck_assert_msg(err == 0, "assemble %uD+1P chunk %u: %d (%s)", n, chunk, err, why);
	vol_init(&t->v, "raid", volid, data_bytes, BLK, &tv_ops, t);
	if (fill) {
		struct urand r = { fill };
		uint8_t *buf = malloc(MIB);

		ck_assert_ptr_nonnull(buf);
		for (uint64_t off = 0; off < data_bytes; off += MIB) {
			uint64_t len = data_bytes - off < MIB ? data_bytes - off : MIB;

			urand_fill(&r, buf, len);
			ck_assert_int_eq(raid_write(t->a, buf, off, len), 0);
		}
		free(buf);
	}
	return t;
}

static struct raid_stats tv_stats(struct tvol *t)
{
	struct raid_info i;

	raid_get_info(t->a, &i);
	return i.stats;
}

/* Bytes [0, len) of both volumes are equal (read below the hooks). */
static void assert_equal(struct tvol *a, struct tvol *b, uint64_t len, const char *ctx,
			 uint64_t seed)
{
	uint8_t *x = malloc(MIB), *y = malloc(MIB);

	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(y);
	for (uint64_t off = 0; off < len; off += MIB) {
		uint64_t n = len - off < MIB ? len - off : MIB;

		ck_assert_int_eq(raid_read(a->a, x, off, n), 0);
		ck_assert_int_eq(raid_read(b->a, y, off, n), 0);
		if (memcmp(x, y, n)) {
			uint64_t i = 0;

			while (x[i] == y[i])
				i++;
			ck_abort_msg("%s (seed %" PRIu64 "): the volumes differ at byte %" PRIu64, ctx,
				     seed, off + i);
		}
	}
	free(x);
	free(y);
}

static uint8_t *snapshot(struct tvol *t, uint64_t len)
{
	uint8_t *p = malloc(len);

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(raid_read(t->a, p, 0, len), 0);
	return p;
}

static void assert_same_as(struct tvol *t, const uint8_t *snap, uint64_t len, const char *ctx,
			   uint64_t seed)
{
	uint8_t *now = snapshot(t, len);

	ck_assert_msg(memcmp(now, snap, len) == 0, "%s (seed %" PRIu64 "): the volume changed", ctx,
		      seed);
	free(now);
}

/* ---- the persist callback: the "table" in memory -------------------------------------------- */

struct pstore {
	pthread_mutex_t lock;
	struct mirror_cfg cfg;
	int calls;
};

static int persist_mem(void *ctx, const struct mirror_cfg *c)
{
	struct pstore *p = ctx;

	pthread_mutex_lock(&p->lock);
	p->cfg = *c;
	p->calls++;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static struct mirror_cfg pstore_get(struct pstore *p)
{
	struct mirror_cfg c;

	pthread_mutex_lock(&p->lock);
	c = p->cfg;
	pthread_mutex_unlock(&p->lock);
	return c;
}

/* ---- a mirror fixture ----------------------------------------------------------------------- */

/* Every test's directory is made under this one, removed by main() (a failed test exits before
 * its teardown). */
static char base_dir[64] = "/tmp/test_mirror.XXXXXX";

struct fx {
	char dir[128];
	struct tvol *p, *s;
	struct mirror *m;
	struct mirror_cfg cfg;
	struct pstore ps;
	uint64_t P, G, nbits;
	uint64_t seed;
};

static void fx_open(struct fx *f, int create)
{
	char why[WHY] = "";
	int err;

	err = mirror_open(create ? &f->cfg : &f->ps.cfg, create, persist_mem, &f->ps, &f->m, why,
			  sizeof(why));
	ck_assert_msg(err == 0, "mirror_open(create=%d): %d (%s)", create, err, why);
}

/* primary nD+1P chunk cp with P bytes, secondary mD+1P chunk cs with S >= P bytes; the granule
 * is the secondary's stripe. Both volumes start with different random data. */
static void fx_setup(struct fx *f, uint32_t n, uint32_t cp, uint64_t P, uint32_t m, uint32_t cs,
		     uint64_t S, uint64_t seed)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->ps.lock, NULL);
	snprintf(f->dir, sizeof(f->dir), "%s/fx.XXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	f->seed = seed;
	f->P = P;
	f->G = (uint64_t)m * cs;
	f->nbits = (P + f->G - 1) / f->G;
	f->p = tvol_make(1, n, cp, P, seed | 1);
	f->s = tvol_make(2, m, cs, S, (seed ^ 0x5555) | 1);
	f->cfg.id = 7;
	f->cfg.primary_volid = 1;
	f->cfg.secondary_volid = 2;
	f->cfg.size_bytes = P;
	f->cfg.granule_bytes = f->G;
	f->cfg.state = MIRROR_COPYING;
	f->cfg.copy_pos = 0;
	snprintf(f->cfg.bitmap_path, sizeof(f->cfg.bitmap_path), "%s/mirror7.bitmap", f->dir);
	f->ps.cfg = f->cfg;
	fx_open(f, 1);
}

static void fx_attach(struct fx *f)
{
	ck_assert_int_eq(mirror_attach_primary(f->m, &f->p->v), 0);
	ck_assert_int_eq(mirror_attach_secondary(f->m, &f->s->v), 0);
}

static void fx_teardown(struct fx *f)
{
	if (f->m)
		mirror_close(f->m, 1);
	f->m = NULL;
	vol_put(&f->p->v);
	vol_put(&f->s->v);
	rmdir(f->dir);
	pthread_mutex_destroy(&f->ps.lock);
}

static struct mirror_status fx_status(struct fx *f)
{
	struct mirror_status st;

	mirror_get_status(f->m, &st);
	return st;
}

/* Step the copier to its end: returns the number of steps; fails on an error or after `max`. */
static uint64_t fx_copy_all(struct fx *f, uint64_t max)
{
	uint64_t steps = 0;
	int r;

	do {
		r = mirror_copy_step(f->m);
		ck_assert_msg(r >= 0, "mirror_copy_step: %d (seed %" PRIu64 ")", r, f->seed);
		steps++;
		ck_assert_msg(steps <= max, "the copy did not finish in %" PRIu64 " steps (seed %"
			      PRIu64 ")", max, f->seed);
	} while (r == 1);
	return steps;
}

/* The bits of the bitmap file (checked: header, each block's CRC32C). */
static uint8_t *bitmap_file_bits(struct fx *f)
{
	int fd = open(f->cfg.bitmap_path, O_RDONLY);
	uint8_t h[BM_HDR], b[BM_BLK], *bits = calloc(f->nbits ? f->nbits : 1, 1);
	uint64_t nblk = (f->nbits + BM_BITS_PER_BLK - 1) / BM_BITS_PER_BLK;
	uint32_t crc;

	ck_assert_int_ge(fd, 0);
	ck_assert_ptr_nonnull(bits);
	ck_assert_int_eq(full_pread(fd, h, BM_HDR, 0), 0);
	ck_assert_int_eq(memcmp(h, "TNDMMBMP", 8), 0);
	ck_assert_uint_eq(get_le32(h + 8), 1);
	ck_assert_uint_eq(get_le32(h + 20), f->cfg.id);
	ck_assert_uint_eq(get_le64(h + 24), f->G);
	ck_assert_uint_eq(get_le64(h + 32), f->nbits);
	crc = get_le32(h + 16);
	put_le32(h + 16, 0);
	ck_assert_uint_eq(tcrc32c(h, BM_HDR), crc);
	for (uint64_t k = 0; k < nblk; k++) {
		ck_assert_int_eq(full_pread(fd, b, BM_BLK, (off_t)(BM_HDR + k * BM_BLK)), 0);
		ck_assert_uint_eq(get_le32(b + BM_BLK - 4), tcrc32c(b, BM_BLK - 4));
		for (uint64_t i = 0; i < BM_BITS_PER_BLK && k * BM_BITS_PER_BLK + i < f->nbits; i++)
			bits[k * BM_BITS_PER_BLK + i] = b[i / 8] >> (i % 8) & 1;
	}
	close(fd);
	return bits;
}

static uint64_t count_bits(const uint8_t *s, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t i = 0; i < n; i++)
		c += s[i] != 0;
	return c;
}

/* One host write of a random shape through the primary (its hooks); marks its granules in
 * `touched` (may be NULL). */
static void host_write(struct fx *f, struct urand *r, uint8_t *touched, const char *ctx)
{
	uint64_t blocks = f->P / BLK, lba, nb;
	uint8_t *buf;
	int kind = (int)urand_below(r, 4), err;

	switch (kind) {
	case 0:  nb = urand_range(r, 1, 16); break;                        /* a few blocks */
	case 1:  nb = urand_range(r, 1, f->G / BLK); break;                /* up to a granule */
	case 2:  nb = f->G / BLK; break;                                   /* one granule's size */
	default: nb = urand_range(r, f->G / BLK, 3 * f->G / BLK); break;   /* several */
	}
	if (nb > blocks)
		nb = blocks;
	lba = kind == 2 && urand_below(r, 2) ? urand_below(r, f->nbits) * (f->G / BLK)
					     : urand_below(r, blocks - nb + 1);
	if (lba + nb > blocks)
		lba = blocks - nb;
	buf = malloc(nb * BLK);
	ck_assert_ptr_nonnull(buf);
	urand_fill(r, buf, nb * BLK);
	err = vol_write(&f->p->v, buf, lba * BLK, nb * BLK);
	ck_assert_msg(err == 0, "%s (seed %" PRIu64 "): host write of %" PRIu64 " blocks at lba %"
		      PRIu64 ": %d", ctx, f->seed, nb, lba, err);
	if (touched)
		for (uint64_t g = lba * BLK / f->G; g <= (lba + nb) * BLK / f->G - ((lba + nb) * BLK % f->G == 0);
		     g++)
			touched[g] = 1;
	free(buf);
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* ---- the geometry sweep ---------------------------------------------------------------------- */

static const uint32_t chunks[3] = { 4 * KIB, 16 * KIB, 64 * KIB };
#define NR_SWEEP (4 * 4 * 3)   /* n = 2..5, m = 2..6 with m != n, secondary chunk 4/16/64 KiB */

static void sweep_geom(int i, uint32_t *n, uint32_t *cp, uint32_t *m, uint32_t *cs)
{
	int pair = i / 3, ci = i % 3, k = pair % 4;

	*n = 2 + (uint32_t)(pair / 4);
	*m = 2 + (uint32_t)k;
	if (*m >= *n)
		(*m)++;
	*cs = chunks[ci];
	*cp = chunks[(ci + 1) % 3];   /* the primary's chunk differs too */
}

START_TEST(test_geometry_sweep)
{
	uint32_t n, cp, m, cs;
	uint64_t seed = unit_seed_for(0x4d1000u + (uint64_t)_i), G, L, P, want;
	struct urand r = { seed };
	struct raid_stats s0, s1;
	struct mirror_status st;
	struct mirror_cfg pc;
	uint8_t *intent = NULL, *touched, *before, *after, *again, *snap;
	uint64_t copied0, dirty, steps;
	struct fx f;
	char why[WHY];
	int fd, err;

	sweep_geom(_i, &n, &cp, &m, &cs);
	G = (uint64_t)m * cs;
	L = (uint64_t)n * cp / gcd64((uint64_t)n * cp, G) * G;
	want = 12 * G > 2 * MIB ? 12 * G : 2 * MIB;
	P = (want + L - 1) / L * L;              /* a multiple of both stripes */
	fx_setup(&f, n, cp, P, m, cs, P + G, seed);
	ck_assert_uint_eq(P % G, 0);
	fx_attach(&f);
	st = fx_status(&f);
	ck_assert_int_eq(st.cfg.state, MIRROR_COPYING);
	ck_assert(st.primary_attached && st.secondary_attached);
	ck_assert(mirror_needs_copier(f.m));

	/* the initial copy: whole granules, full-stripe writes only */
	s0 = tv_stats(f.s);
	steps = fx_copy_all(&f, f.nbits + 2);
	s1 = tv_stats(f.s);
	st = fx_status(&f);
	ck_assert_int_eq(st.cfg.state, MIRROR_DUPLEX);
	ck_assert_uint_eq(steps, f.nbits);
	ck_assert_uint_eq(st.copied_bytes, P);
	ck_assert_uint_eq(st.dirty_granules, 0);
	ck_assert_msg(s1.rmw_writes == s0.rmw_writes && s1.rcw_writes == s0.rcw_writes,
		      "%uD+1P/%uK -> %uD+1P/%uK: the copy made the secondary do %" PRIu64 " rmw and %"
		      PRIu64 " rcw writes", n, cp / KIB, m, cs / KIB, s1.rmw_writes - s0.rmw_writes,
		      s1.rcw_writes - s0.rcw_writes);
	ck_assert_uint_eq(s1.full_stripe_writes - s0.full_stripe_writes, f.nbits);
	pc = pstore_get(&f.ps);
	ck_assert_int_eq(pc.state, MIRROR_DUPLEX);
	ck_assert_uint_eq(pc.copy_pos, f.nbits);
	ck_assert(!mirror_needs_copier(f.m));
	assert_equal(f.p, f.s, P, "after the initial copy", seed);

	/* duplex: writes of random shapes reach both */
	intent = calloc(f.nbits, 1);
	for (int k = 0; k < 24; k++)
		host_write(&f, &r, intent, "duplex");
	assert_equal(f.p, f.s, P, "after duplexed writes", seed);
	st = fx_status(&f);
	ck_assert_uint_eq(st.duplexed_writes, 24);
	ck_assert_uint_eq(st.recorded_writes, 0);

	/* split: the secondary stays; the bits the split writes add are exactly their granules */
	ck_assert_int_eq(mirror_split(f.m), 0);
	ck_assert_int_eq(fx_status(&f).cfg.state, MIRROR_SPLIT);
	ck_assert_int_eq(pstore_get(&f.ps).state, MIRROR_SPLIT);
	ck_assert_int_eq(mirror_split(f.m), -EINVAL);
	before = bitmap_file_bits(&f);
	for (uint64_t g = 0; g < f.nbits; g++)   /* leftovers: intent bits of duplexed writes only */
		ck_assert_msg(!before[g] || intent[g], "granule %" PRIu64 " set but never written", g);
	snap = snapshot(f.s, P);
	touched = calloc(f.nbits, 1);
	for (int k = 0; k < 16; k++)
		host_write(&f, &r, touched, "split");
	assert_same_as(f.s, snap, P, "the secondary while split", seed);
	after = bitmap_file_bits(&f);
	dirty = 0;
	for (uint64_t g = 0; g < f.nbits; g++) {
		ck_assert_msg(after[g] == (before[g] | touched[g]),
			      "%uD+1P -> %uD+1P: granule %" PRIu64 ": bit %d, set before %d, written %d "
			      "(seed %" PRIu64 ")", n, m, g, after[g], before[g], touched[g], seed);
		dirty += after[g];
	}
	st = fx_status(&f);
	/* the file holds intent bits and split bits; the secondary lacks exactly the split ones */
	ck_assert_uint_eq(st.dirty_granules + st.intent_granules, dirty);
	ck_assert_uint_eq(st.dirty_granules, count_bits(touched, f.nbits));
	ck_assert_uint_eq(st.recorded_writes, 16);
	ck_assert(!mirror_needs_copier(f.m));

	/* close and reopen from the recorded table entry: the bits come back */
	mirror_close(f.m, 0);
	f.m = NULL;
	ck_assert_int_eq(f.p->v.hooks == NULL, 1);
	fx_open(&f, 0);
	st = fx_status(&f);
	ck_assert_int_eq(st.cfg.state, MIRROR_SPLIT);
	ck_assert_uint_eq(st.dirty_granules, dirty);
	again = bitmap_file_bits(&f);
	ck_assert_int_eq(memcmp(again, after, f.nbits), 0);
	fx_attach(&f);
	ck_assert_int_eq(fx_status(&f).cfg.state, MIRROR_SPLIT);

	/* resync: exactly the recorded granules, as full stripes */
	s0 = tv_stats(f.s);
	copied0 = fx_status(&f).copied_bytes;
	ck_assert_int_eq(mirror_start_resync(f.m), 0);
	ck_assert_int_eq(fx_status(&f).cfg.state, MIRROR_RESYNCING);
	ck_assert(mirror_needs_copier(f.m));
	fx_copy_all(&f, 2 * f.nbits + 4);
	s1 = tv_stats(f.s);
	st = fx_status(&f);
	ck_assert_int_eq(st.cfg.state, MIRROR_DUPLEX);
	ck_assert_uint_eq(st.dirty_granules, 0);
	ck_assert_msg(st.copied_bytes - copied0 == dirty * G, "resync copied %" PRIu64 " bytes for %"
		      PRIu64 " dirty granules of %" PRIu64 " (seed %" PRIu64 ")",
		      st.copied_bytes - copied0, dirty, G, seed);
	ck_assert_msg(s1.rmw_writes == s0.rmw_writes && s1.rcw_writes == s0.rcw_writes,
		      "the resync made the secondary do %" PRIu64 " rmw and %" PRIu64 " rcw writes",
		      s1.rmw_writes - s0.rmw_writes, s1.rcw_writes - s0.rcw_writes);
	ck_assert_uint_eq(s1.full_stripe_writes - s0.full_stripe_writes, dirty);
	assert_equal(f.p, f.s, P, "after the resync", seed);
	ck_assert_int_eq(pstore_get(&f.ps).state, MIRROR_DUPLEX);

	/* a damaged bitmap block is refused, never guessed */
	free(again);
	again = bitmap_file_bits(&f);
	ck_assert_uint_eq(count_bits(again, f.nbits), 0);
	host_write(&f, &r, NULL, "before the damage");
	mirror_close(f.m, 0);
	f.m = NULL;
	fd = open(f.cfg.bitmap_path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	{
		uint8_t b = 0;

		ck_assert_int_eq(full_pread(fd, &b, 1, BM_HDR + 100), 0);
		b ^= 0x10;
		ck_assert_int_eq(full_pwrite(fd, &b, 1, BM_HDR + 100), 0);
	}
	close(fd);
	why[0] = 0;
	err = mirror_open(&f.ps.cfg, 0, persist_mem, &f.ps, &f.m, why, sizeof(why));
	ck_assert_msg(err == -EPROTO, "damaged bitmap block: mirror_open %d (%s)", err, why);
	ck_assert_msg(strstr(why, "damaged") != NULL, "why: %s", why);
	f.m = NULL;
	unlink(f.cfg.bitmap_path);
	free(intent);
	free(touched);
	free(before);
	free(after);
	free(again);
	free(snap);
	fx_teardown(&f);
}
END_TEST

/* A damaged header and a bitmap of another mirror or granule are refused too. */
START_TEST(test_bitmap_header)
{
	uint64_t seed = unit_seed_for(0x4d2001u);
	struct fx f;
	struct mirror *m2 = NULL;
	struct mirror_cfg c;
	char why[WHY];
	int fd;

	fx_setup(&f, 3, 16 * KIB, 3 * 16 * KIB * 32, 4, 16 * KIB, 4 * 16 * KIB * 32, seed);
	mirror_close(f.m, 0);
	f.m = NULL;
	/* create refuses an existing file */
	why[0] = 0;
	ck_assert_int_eq(mirror_open(&f.cfg, 1, persist_mem, &f.ps, &m2, why, sizeof(why)), -EEXIST);
	/* another granule / id */
	c = f.cfg;
	c.granule_bytes *= 2;
	ck_assert_int_eq(mirror_open(&c, 0, persist_mem, &f.ps, &m2, why, sizeof(why)), -EPROTO);
	c = f.cfg;
	c.id = 8;
	ck_assert_int_eq(mirror_open(&c, 0, persist_mem, &f.ps, &m2, why, sizeof(why)), -EPROTO);
	c = f.cfg;
	c.size_bytes *= 2;
	ck_assert_int_eq(mirror_open(&c, 0, persist_mem, &f.ps, &m2, why, sizeof(why)), -EPROTO);
	/* zero granule */
	c = f.cfg;
	c.granule_bytes = 0;
	ck_assert_int_eq(mirror_open(&c, 0, persist_mem, &f.ps, &m2, why, sizeof(why)), -EINVAL);
	/* header byte flipped */
	fd = open(f.cfg.bitmap_path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(full_pwrite(fd, "\x01", 1, 200), 0);
	close(fd);
	why[0] = 0;
	ck_assert_int_eq(mirror_open(&f.cfg, 0, persist_mem, &f.ps, &m2, why, sizeof(why)), -EPROTO);
	ck_assert_msg(strstr(why, "header") != NULL, "why: %s", why);
	/* truncated */
	ck_assert_int_eq(truncate(f.cfg.bitmap_path, 10), 0);
	ck_assert_int_eq(mirror_open(&f.cfg, 0, persist_mem, &f.ps, &m2, why, sizeof(why)), -EPROTO);
	unlink(f.cfg.bitmap_path);
	ck_assert_int_eq(mirror_open(&f.cfg, 0, persist_mem, &f.ps, &m2, why, sizeof(why)), -ENOENT);
	fx_teardown(&f);
}
END_TEST

/* ---- failures ---------------------------------------------------------------------------- */

/* 3D+1P/16K -> 4D+1P/16K, 48 granules */
static void fx_small(struct fx *f, uint64_t seed)
{
	uint64_t G = 4 * 16 * KIB;

	fx_setup(f, 3, 16 * KIB, 48 * G, 4, 16 * KIB, 48 * G, seed);
}

START_TEST(test_secondary_write_fails)
{
	uint64_t seed = unit_seed_for(0x4d3001u);
	struct urand r = { seed };
	struct mirror_status st;
	uint8_t *touched, *bits, *buf;
	struct fx f;
	int rc;

	fx_small(&f, seed);
	fx_attach(&f);
	fx_copy_all(&f, f.nbits + 2);
	bits = bitmap_file_bits(&f);
	ck_assert_uint_eq(count_bits(bits, f.nbits), 0);
	free(bits);
	/* the secondary fails: the host write still succeeds, the mirror suspends, bits record it */
	__atomic_store_n(&f.s->fail_writes, 1, __ATOMIC_SEQ_CST);
	buf = malloc(3 * BLK);
	urand_fill(&r, buf, 3 * BLK);
	rc = vol_write(&f.p->v, buf, 5 * f.G + 1000 * BLK % f.G, 3 * BLK);
	ck_assert_int_eq(rc, 0);
	st = fx_status(&f);
	ck_assert_int_eq(st.cfg.state, MIRROR_SUSPENDED);
	ck_assert_int_eq(pstore_get(&f.ps).state, MIRROR_SUSPENDED);
	ck_assert_uint_eq(st.secondary_errors, 1);
	{
		uint8_t back[3 * BLK];

		ck_assert_int_eq(vol_read(&f.p->v, back, 5 * f.G + 1000 * BLK % f.G, 3 * BLK), 0);
		ck_assert_int_eq(memcmp(back, buf, 3 * BLK), 0);
	}
	free(buf);
	bits = bitmap_file_bits(&f);
	ck_assert(bits[(5 * f.G + 1000 * BLK % f.G) / f.G]);
	free(bits);
	/* suspended: later writes are recorded, the secondary is not touched */
	touched = calloc(f.nbits, 1);
	{
		uint64_t w0 = __atomic_load_n(&f.s->writes, __ATOMIC_SEQ_CST);

		for (int k = 0; k < 10; k++)
			host_write(&f, &r, touched, "suspended");
		ck_assert_uint_eq(__atomic_load_n(&f.s->writes, __ATOMIC_SEQ_CST), w0);
	}
	bits = bitmap_file_bits(&f);
	for (uint64_t g = 0; g < f.nbits; g++)
		ck_assert(!touched[g] || bits[g]);
	free(bits);
	ck_assert(!mirror_needs_copier(f.m));
	/* the resync while the secondary still fails: stops, stays suspended */
	ck_assert_int_eq(mirror_start_resync(f.m), 0);
	rc = mirror_copy_step(f.m);
	ck_assert_int_eq(rc, -EIO);
	ck_assert_int_eq(fx_status(&f).cfg.state, MIRROR_SUSPENDED);
	/* the secondary is back: mirror-resync, equal */
	__atomic_store_n(&f.s->fail_writes, 0, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(mirror_start_resync(f.m), 0);
	fx_copy_all(&f, 4 * f.nbits);
	ck_assert_int_eq(fx_status(&f).cfg.state, MIRROR_DUPLEX);
	assert_equal(f.p, f.s, f.P, "resync after the secondary came back", seed);
	free(touched);
	fx_teardown(&f);
}
END_TEST

/* The secondary fails during the INITIAL copy; mirror-resync must still bring the granules the
 * copy had not reached yet, or the mirror must refuse to call itself duplex. */
START_TEST(test_secondary_fails_during_copy)
{
	uint64_t seed = unit_seed_for(0x4d3002u);
	struct mirror_status st;
	struct fx f;
	int rc;

	fx_small(&f, seed);
	fx_attach(&f);
	for (int k = 0; k < 10; k++)
		ck_assert_int_eq(mirror_copy_step(f.m), 1);
	__atomic_store_n(&f.s->fail_writes, 1, __ATOMIC_SEQ_CST);
	rc = mirror_copy_step(f.m);
	ck_assert_int_eq(rc, -EIO);
	st = fx_status(&f);
	ck_assert_int_eq(st.cfg.state, MIRROR_SUSPENDED);
	ck_assert_uint_eq(st.cfg.copy_pos, 10);
	__atomic_store_n(&f.s->fail_writes, 0, __ATOMIC_SEQ_CST);
	rc = mirror_start_resync(f.m);
	if (rc == 0) {
		fx_copy_all(&f, 4 * f.nbits);
		st = fx_status(&f);
		if (st.cfg.state == MIRROR_DUPLEX)
			assert_equal(f.p, f.s, f.P, "BUG: suspended during the initial copy, then "
				     "resynced: the mirror says duplex but the granules past the copy "
				     "position were never copied", seed);
	}
	fx_teardown(&f);
}
END_TEST

/* A primary read error while duplex is served by the secondary (only where in sync). */
START_TEST(test_read_fallback)
{
	uint64_t seed = unit_seed_for(0x4d3003u);
	struct urand r = { seed };
	uint8_t *a, *b;
	struct fx f;

	fx_small(&f, seed);
	fx_attach(&f);
	fx_copy_all(&f, f.nbits + 2);
	a = malloc(2 * f.G);
	b = malloc(2 * f.G);
	__atomic_store_n(&f.p->fail_reads, 1, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(vol_read(&f.p->v, a, 3 * f.G + 4096, f.G), 0);
	ck_assert_int_eq(raid_read(f.s->a, b, 3 * f.G + 4096, f.G), 0);
	ck_assert_int_eq(memcmp(a, b, f.G), 0);
	ck_assert_uint_eq(fx_status(&f).secondary_reads, 1);
	/* the raid's own read (not through the hooks) fails */
	ck_assert_int_eq(tv_read(&f.p->v, a, 0, BLK), -EIO);
	/* a granule whose bit is set (a duplexed write's intent) is not known to be in sync */
	__atomic_store_n(&f.p->fail_reads, 0, __ATOMIC_SEQ_CST);
	urand_fill(&r, a, BLK);
	ck_assert_int_eq(vol_write(&f.p->v, a, 9 * f.G, BLK), 0);
	__atomic_store_n(&f.p->fail_reads, 1, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(vol_read(&f.p->v, b, 9 * f.G, BLK), -EIO);
	ck_assert_int_eq(vol_read(&f.p->v, b, 20 * f.G, BLK), 0);
	/* split: the secondary is a point-in-time copy, never a source for the primary */
	ck_assert_int_eq(mirror_split(f.m), 0);
	ck_assert_int_eq(vol_read(&f.p->v, b, 20 * f.G, BLK), -EIO);
	__atomic_store_n(&f.p->fail_reads, 0, __ATOMIC_SEQ_CST);
	free(a);
	free(b);
	fx_teardown(&f);
}
END_TEST

/* ---- intent bits, the cleaner, a crash between the primary and the secondary write ---------- */

START_TEST(test_intent_cleaner)
{
	uint64_t seed = unit_seed_for(0x4d4001u);
	struct urand r = { seed };
	struct fx f;
	uint8_t *touched;

	fx_small(&f, seed);
	fx_attach(&f);
	fx_copy_all(&f, f.nbits + 2);
	touched = calloc(f.nbits, 1);
	for (int k = 0; k < 8; k++)
		host_write(&f, &r, touched, "duplex");
	ck_assert_uint_eq(fx_status(&f).intent_granules, count_bits(touched, f.nbits));
	ck_assert_uint_eq(fx_status(&f).dirty_granules, 0);   /* duplexed: the secondary lacks none */
	/* idle for 2 s: the cleaner clears the intent bits (both volumes flushed first) */
	for (int t = 0; t < 60 && fx_status(&f).intent_granules; t++)
		usleep(100000);   /* polling a background thread: the interval is the point */
	ck_assert_uint_eq(fx_status(&f).intent_granules, 0);
	free(touched);
	touched = bitmap_file_bits(&f);
	ck_assert_uint_eq(count_bits(touched, f.nbits), 0);
	free(touched);
	assert_equal(f.p, f.s, f.P, "after the cleaner", seed);
	fx_teardown(&f);
}
END_TEST

START_TEST(test_intent_crash)
{
	uint64_t seed = unit_seed_for(0x4d4002u);
	struct urand r = { seed };
	struct mirror_status st;
	struct fx f;
	uint8_t *touched;

	fx_small(&f, seed);
	fx_attach(&f);
	fx_copy_all(&f, f.nbits + 2);
	/* the process "dies" after the primary write, before the secondary's: the secondary never
	 * gets these writes, the mirror is closed without its cleaner having run */
	__atomic_store_n(&f.s->drop_writes, 1, __ATOMIC_SEQ_CST);
	touched = calloc(f.nbits, 1);
	for (int k = 0; k < 6; k++)
		host_write(&f, &r, touched, "lost duplex");
	mirror_close(f.m, 0);
	f.m = NULL;
	__atomic_store_n(&f.s->drop_writes, 0, __ATOMIC_SEQ_CST);
	/* restart: the table says duplex, the bitmap has the intent bits */
	ck_assert_int_eq(f.ps.cfg.state, MIRROR_DUPLEX);
	fx_open(&f, 0);
	ck_assert_uint_eq(fx_status(&f).dirty_granules, count_bits(touched, f.nbits));
	/* the primary opens first: writes before the secondary is there are recorded */
	ck_assert_int_eq(mirror_attach_primary(f.m, &f.p->v), 0);
	for (int k = 0; k < 4; k++)
		host_write(&f, &r, touched, "secondary absent");
	ck_assert_uint_eq(fx_status(&f).dirty_granules, count_bits(touched, f.nbits));
	ck_assert_int_eq(mirror_attach_secondary(f.m, &f.s->v), 0);
	st = fx_status(&f);
	ck_assert_int_eq(st.cfg.state, MIRROR_RESYNCING);
	ck_assert(mirror_needs_copier(f.m));
	fx_copy_all(&f, 4 * f.nbits);
	ck_assert_int_eq(fx_status(&f).cfg.state, MIRROR_DUPLEX);
	assert_equal(f.p, f.s, f.P, "resync after the crash", seed);
	free(touched);
	fx_teardown(&f);
}
END_TEST

/* The intent bit of a duplexed write must stay set until the secondary has the write: a
 * secondary write that takes longer than the cleaner's 2 s idle time (a slow peer) must not
 * lose its bit, or a crash at that moment leaves the secondary without it and nothing says so. */
struct bwrite {
	struct fx *f;
	uint64_t off;
	int rc;
};

static void *bwrite_main(void *p)
{
	struct bwrite *b = p;
	uint8_t buf[BLK];

	memset(buf, 0xA5, sizeof(buf));
	b->rc = vol_write(&b->f->p->v, buf, b->off, BLK);
	return NULL;
}

START_TEST(test_intent_until_secondary_done)
{
	uint64_t seed = unit_seed_for(0x4d4005u);
	struct bwrite b = { 0 };
	pthread_t th;
	struct fx f;
	int cleared = 0;

	fx_small(&f, seed);
	fx_attach(&f);
	fx_copy_all(&f, f.nbits + 2);
	__atomic_store_n(&f.s->gate, 1, __ATOMIC_SEQ_CST);
	b.f = &f;
	b.off = 6 * f.G;
	ck_assert_int_eq(pthread_create(&th, NULL, bwrite_main, &b), 0);
	for (int t = 0; t < 500 && !__atomic_load_n(&f.s->waiting, __ATOMIC_SEQ_CST); t++)
		usleep(1000);
	ck_assert_int_eq(__atomic_load_n(&f.s->waiting, __ATOMIC_SEQ_CST), 1);
	/* the primary has the write, the secondary not yet: 4 s of that */
	for (int t = 0; t < 40 && !cleared; t++) {
		uint8_t *bits = bitmap_file_bits(&f);

		cleared = !bits[6];
		free(bits);
		usleep(100000);
	}
	__atomic_store_n(&f.s->gate, 0, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	ck_assert_int_eq(b.rc, 0);
	ck_assert_msg(!cleared, "BUG: the intent bit of a duplexed write was cleared (in the bitmap "
		      "file) while its write to the secondary was still in progress: a crash then "
		      "loses it on the secondary unnoticed");
	fx_teardown(&f);
}
END_TEST

/* The copy resumes from its checkpoint after a close mid-copy. */
START_TEST(test_copy_resume)
{
	uint64_t seed = unit_seed_for(0x4d4003u), G = 2 * 4 * KIB;
	struct mirror_cfg pc;
	struct fx f;
	uint64_t steps;

	/* 2D+1P/4K secondary: 8 KiB granules, 200 granules (3 checkpoints) */
	fx_setup(&f, 5, 4 * KIB, 200 * G, 2, 4 * KIB, 200 * G, seed);
	fx_attach(&f);
	for (int k = 0; k < 150; k++)
		ck_assert_int_eq(mirror_copy_step(f.m), 1);
	pc = pstore_get(&f.ps);
	ck_assert_int_eq(pc.state, MIRROR_COPYING);
	ck_assert_uint_eq(pc.copy_pos, 128);
	mirror_close(f.m, 0);
	f.m = NULL;
	fx_open(&f, 0);
	ck_assert_uint_eq(fx_status(&f).cfg.copy_pos, 128);
	fx_attach(&f);
	steps = fx_copy_all(&f, 200);
	ck_assert_uint_eq(steps, 200 - 128);
	ck_assert_int_eq(fx_status(&f).cfg.state, MIRROR_DUPLEX);
	assert_equal(f.p, f.s, f.P, "resumed copy", seed);
	fx_teardown(&f);
}
END_TEST

/* A mirrored range that is not a whole number of granules: the last granule is partial. */
START_TEST(test_tail_granule)
{
	uint64_t seed = unit_seed_for(0x4d4004u);
	uint64_t G = 3 * 64 * KIB, P = 2 * 16 * KIB * 101;   /* 2D+1P/16K: 3.2 MiB, 16.8 granules */
	struct raid_stats s0, s1;
	struct fx f;

	fx_setup(&f, 2, 16 * KIB, P, 3, 64 * KIB, (P + G - 1) / G * G, seed);
	ck_assert_uint_ne(P % G, 0);
	fx_attach(&f);
	s0 = tv_stats(f.s);
	ck_assert_uint_eq(fx_copy_all(&f, f.nbits + 2), f.nbits);
	s1 = tv_stats(f.s);
	ck_assert_uint_eq(fx_status(&f).copied_bytes, P);
	/* every granule but the last is one full-stripe write */
	ck_assert_uint_ge(s1.full_stripe_writes - s0.full_stripe_writes, f.nbits - 1);
	ck_assert_uint_le(s1.rmw_writes + s1.rcw_writes - s0.rmw_writes - s0.rcw_writes, 1);
	assert_equal(f.p, f.s, P, "partial last granule", seed);
	fx_teardown(&f);
}
END_TEST

/* ---- host writes while the copier runs ----------------------------------------------------- */

struct writer {
	struct fx *f;
	int stop;
	int hot;                        /* 1: always the same 8 blocks (a journal), else random */
	uint64_t done;
	uint64_t seed;
};

static void *writer_main(void *p)
{
	struct writer *w = p;
	struct urand r = { w->seed };
	uint8_t buf[8 * BLK];

	while (!__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST)) {
		if (w->hot) {
			urand_fill(&r, buf, sizeof(buf));
			ck_assert_int_eq(vol_write(&w->f->p->v, buf, 4096, sizeof(buf)), 0);
		} else {
			host_write(w->f, &r, NULL, "concurrent");
		}
		__atomic_add_fetch(&w->done, 1, __ATOMIC_SEQ_CST);
		usleep(200);
	}
	return NULL;
}

static uint64_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* _i = 0: random writes, the copier steps back to back; _i = 1: a hot spot (the same blocks of
 * granule 0 rewritten every 0.2 ms, like a journal) and a copier that takes 0.3 ms per granule
 * (a remote secondary). Either way the copy must reach duplex while the writer keeps going. */
START_TEST(test_copy_under_writes)
{
	uint64_t seed = unit_seed_for(0x4d5001u + (uint64_t)_i);
	struct writer w = { 0 };
	pthread_t th;
	struct fx f;
	uint64_t steps = 0, before, t0;
	int r = 1, stopped_writer = 0;

	fx_small(&f, seed);
	fx_attach(&f);
	w.f = &f;
	w.seed = seed ^ 0xabc;
	w.hot = _i == 1;
	ck_assert_int_eq(pthread_create(&th, NULL, writer_main, &w), 0);
	for (int t = 0; t < 500 && __atomic_load_n(&w.done, __ATOMIC_SEQ_CST) < 20; t++)
		usleep(10000);
	ck_assert_uint_ge(__atomic_load_n(&w.done, __ATOMIC_SEQ_CST), 20);
	t0 = mono_s();
	while (r == 1) {
		r = mirror_copy_step(f.m);
		ck_assert_int_ge(r, 0);
		steps++;
		if (r == 1 && mono_s() - t0 > 10) {
			stopped_writer = 1;
			break;
		}
		if (_i == 1)
			usleep(300);
	}
	before = __atomic_load_n(&w.done, __ATOMIC_SEQ_CST);
	for (int t = 0; t < 200 && __atomic_load_n(&w.done, __ATOMIC_SEQ_CST) < before + 5; t++)
		usleep(10000);
	__atomic_store_n(&w.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	if (stopped_writer) {
		struct mirror_status st = fx_status(&f);

		fx_copy_all(&f, 10 * f.nbits);
		ck_abort_msg("BUG: the copy did not reach duplex in 10 s while a host writer ran (%"
			     PRIu64 " steps, state %s, %" PRIu64 " dirty granules, %" PRIu64 " writes); "
			     "it did once the writer stopped: every duplexed write sets an intent bit "
			     "that the resync takes for a granule to copy", steps,
			     mirror_state_name(st.cfg.state), st.dirty_granules, w.done);
	}
	ck_assert_int_eq(fx_status(&f).cfg.state, MIRROR_DUPLEX);
	ck_assert_uint_ge(w.done, before + 5);   /* duplexed writes after the copy */
	assert_equal(f.p, f.s, f.P, "copy under writes", seed);
	fx_teardown(&f);
}
END_TEST

/* A write duplexed while resyncing reached the secondary: the resync has no reason to copy its
 * granule again. (If it does, a steady write load keeps the resync from ever finishing: it ends
 * only at an instant when no bit at all is set.) */
START_TEST(test_resync_duplexed_write)
{
	uint64_t seed = unit_seed_for(0x4d5002u);
	struct urand r = { seed };
	uint64_t copied0, dirty;
	uint8_t buf[4 * BLK];
	struct fx f;

	fx_small(&f, seed);
	fx_attach(&f);
	fx_copy_all(&f, f.nbits + 2);
	for (int t = 0; t < 60 && fx_status(&f).dirty_granules; t++)   /* nothing left over */
		usleep(100000);
	ck_assert_int_eq(mirror_split(f.m), 0);
	urand_fill(&r, buf, sizeof(buf));
	ck_assert_int_eq(vol_write(&f.p->v, buf, 5 * f.G, sizeof(buf)), 0);
	dirty = fx_status(&f).dirty_granules;
	ck_assert_uint_eq(dirty, 1);
	copied0 = fx_status(&f).copied_bytes;
	ck_assert_int_eq(mirror_start_resync(f.m), 0);
	/* resyncing: a host write to granule 30 goes to both volumes */
	urand_fill(&r, buf, sizeof(buf));
	ck_assert_int_eq(vol_write(&f.p->v, buf, 30 * f.G, sizeof(buf)), 0);
	fx_copy_all(&f, 4 * f.nbits);
	ck_assert_int_eq(fx_status(&f).cfg.state, MIRROR_DUPLEX);
	assert_equal(f.p, f.s, f.P, "resync with a duplexed write", seed);
	ck_assert_msg(fx_status(&f).copied_bytes - copied0 == dirty * f.G,
		      "BUG: the resync copied %" PRIu64 " granules for %" PRIu64 " recorded while "
		      "split: the granule of a write duplexed during the resync was copied again "
		      "(its intent bit is taken for a change the secondary lacks)",
		      (fx_status(&f).copied_bytes - copied0) / f.G, dirty);
	fx_teardown(&f);
}
END_TEST

/* mirror_split while the resync finishes: a split that was accepted must stay split (the
 * secondary is the point-in-time copy the user asked for; writes after it must be recorded). */
struct splitter {
	struct mirror *m;
	int go, rc;
	uint32_t spin;
};

static void *splitter_main(void *p)
{
	struct splitter *sp = p;

	while (!__atomic_load_n(&sp->go, __ATOMIC_SEQ_CST))
		;
	for (volatile uint32_t i = 0; i < sp->spin; i++)
		;
	sp->rc = mirror_split(sp->m);
	return NULL;
}

START_TEST(test_split_races_resync_end)
{
	uint64_t seed = unit_seed_for(0x4d5003u);
	struct urand r = { seed };
	uint8_t buf[BLK];
	struct fx f;
	int lost = 0, tries = 0, accepted = 0;

	fx_small(&f, seed);
	fx_attach(&f);
	fx_copy_all(&f, f.nbits + 2);
	for (int t = 0; t < 60 && fx_status(&f).dirty_granules; t++)
		usleep(100000);
	for (tries = 0; tries < 10000 && !lost; tries++) {
		struct splitter sp = { .m = f.m, .spin = (uint32_t)urand_below(&r, 40000) };
		pthread_t th;
		int rc;

		if (fx_status(&f).cfg.state != MIRROR_SPLIT)
			ck_assert_int_eq(mirror_split(f.m), 0);
		urand_fill(&r, buf, BLK);
		ck_assert_int_eq(vol_write(&f.p->v, buf, urand_below(&r, f.nbits) * f.G, BLK), 0);
		ck_assert_int_eq(mirror_start_resync(f.m), 0);
		ck_assert_int_eq(pthread_create(&th, NULL, splitter_main, &sp), 0);
		__atomic_store_n(&sp.go, 1, __ATOMIC_SEQ_CST);
		do
			rc = mirror_copy_step(f.m);
		while (rc == 1);
		pthread_join(th, NULL);
		if (sp.rc == 0) {
			accepted++;
			lost = fx_status(&f).cfg.state != MIRROR_SPLIT;
		}
	}
	ck_assert_msg(!lost, "BUG: mirror_split returned 0 during a resync, but the resync then "
		      "finished and set the state to %s (try %d, %d splits accepted)",
		      mirror_state_name(fx_status(&f).cfg.state), tries, accepted);
	fx_teardown(&f);
}
END_TEST

static Suite *mirror_suite(void)
{
	Suite *s = suite_create("mirror");
	TCase *tc;

	tc = tcase_create("sweep");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_geometry_sweep, 0, NR_SWEEP);
	tcase_add_test(tc, test_bitmap_header);
	tcase_add_test(tc, test_tail_granule);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_secondary_write_fails);
	tcase_add_test(tc, test_secondary_fails_during_copy);
	tcase_add_test(tc, test_read_fallback);
	suite_add_tcase(s, tc);

	tc = tcase_create("persistence");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_intent_cleaner);
	tcase_add_test(tc, test_intent_crash);
	tcase_add_test(tc, test_intent_until_secondary_done);
	tcase_add_test(tc, test_copy_resume);
	tcase_add_loop_test(tc, test_copy_under_writes, 0, 2);
	tcase_add_test(tc, test_resync_duplexed_write);
	tcase_add_test(tc, test_split_races_resync_end);
	suite_add_tcase(s, tc);
	return s;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	int rc;

	if (!mkdtemp(base_dir)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	rc = unit_run(mirror_suite());
	nftw(base_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

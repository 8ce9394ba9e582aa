/* RAID resilience (docs/raid-resilience.md) over in-memory members and a fault-injecting wrapper
 * member (fakes.h): degraded reads for every member position across a geometry sweep, degraded
 * writes of every shape against a reference model, rebuild onto a replacement (also under
 * concurrent writes, and resumed from the checkpoint after a crash), two failed members, stale and
 * missing members at assembly, the write-intent bitmap (marking, crash, dirty-region resync,
 * cleaning), scrub repair.
 * UNIT_SEED=<n> replays a run (the seed is printed); TANDEM_TEST_LOG=1 shows the library's log. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raid/layout.h"
#include "raid/member.h"
#include "raid/raid.h"
#include "raid/superblock.h"
#include "raid/util.h"
#include "tests/unit/fakes.h"
#include "tests/unit/unit.h"

#define KIB 1024u
#define WHY 512
#define BITMAP_OFF (64u * 1024u)   /* docs/raid-resilience.md: the bitmap at member byte 64 KiB */

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t member_size(uint32_t chunk, uint64_t stripes)
{
	return RAID_DATA_OFFSET_BYTES + stripes * chunk;
}

/* A fresh mem member holding a copy of `src`'s bytes. */
static struct raid_member *mem_copy(struct raid_member *src, const char *name)
{
	struct raid_member *m;

	ck_assert_ptr_nonnull(raid_member_mem(src));
	ck_assert_int_eq(raid_member_open_mem(name, src->size_bytes, &m), 0);
	memcpy(raid_member_mem(m), raid_member_mem(src), src->size_bytes);
	return m;
}

/* What a crash leaves on disk: fresh mem members with copies of `src`'s bytes, wrapped (the
 * wrappers own them). */
static void crash_copy(struct raid_member **dst, struct raid_member **src, uint32_t nr,
		       const char *prefix)
{
	for (uint32_t i = 0; i < nr; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%s%u", prefix, i);
		dst[i] = fault_wrap(mem_copy(src[i], name), 1);
	}
}

static void wrap_all(struct raid_member **w, struct raid_member **a, uint32_t nr, int own)
{
	for (uint32_t i = 0; i < nr; i++)
		w[i] = fault_wrap(a[i], own);
}

static void create_ok(struct raid_member **m, uint32_t nr_data, uint32_t chunk, uint32_t block,
		      uint64_t volid, int no_bitmap)
{
	struct raid_create_params p = {
		.nr_data = nr_data, .chunk_bytes = chunk, .block_bytes = block, .volid = volid,
		.no_bitmap = no_bitmap,
	};
	char why[WHY] = "";
	int err = raid_create(m, nr_data + 1, &p, why, sizeof(why));

	ck_assert_msg(err == 0, "create %uD+1P chunk %u: %d (%s)", nr_data, chunk, err, why);
}

static struct raid_vol *assemble_p(struct raid_member **m, uint32_t nr,
				   const struct raid_assemble_params *p)
{
	struct raid_vol *v = NULL;
	char why[WHY] = "";
	int err = raid_assemble(m, nr, p, &v, why, sizeof(why));

	ck_assert_msg(err == 0, "assemble: %d (%s)", err, why);
	ck_assert_ptr_nonnull(v);
	return v;
}

static struct raid_vol *assemble_ok(struct raid_member **m, uint32_t nr)
{
	struct raid_assemble_params p = { 0 };

	return assemble_p(m, nr, &p);
}

static struct raid_info info_of(struct raid_vol *v)
{
	struct raid_info i;

	raid_get_info(v, &i);
	return i;
}

/* Read the whole volume and compare it with the model. */
static void check_volume(struct raid_vol *v, const uint8_t *model, uint64_t V, const char *ctx,
			 uint64_t seed)
{
	uint8_t *buf = malloc(V);
	int err;

	ck_assert_ptr_nonnull(buf);
	err = raid_read(v, buf, 0, V);
	if (err)
		ck_abort_msg("%s (seed %" PRIu64 "): read of the volume: %d", ctx, seed, err);
	if (memcmp(buf, model, V) != 0) {
		uint64_t i = 0;

		while (buf[i] == model[i])
			i++;
		ck_abort_msg("%s (seed %" PRIu64 "): volume byte %" PRIu64 " is %#x, model %#x", ctx,
			     seed, i, buf[i], model[i]);
	}
	free(buf);
}

/* Every stripe's parity check returns `want`. */
static void check_stripes(struct raid_vol *v, int want, const char *ctx, uint64_t seed)
{
	struct raid_info info = info_of(v);

	for (uint64_t s = 0; s < raid_nr_stripes(&info.geom); s++) {
		uint32_t bad = 0;
		int err = raid_check_stripe(v, s, &bad);

		if (err != want)
			ck_abort_msg("%s (seed %" PRIu64 "): stripe %" PRIu64 " check %d (byte %u), "
				     "want %d", ctx, seed, s, err, bad, want);
	}
}

static int slot_sb(struct raid_member *m, int slot, struct raid_sb *sb)
{
	uint8_t blk[RAID_SB_BYTES];
	char why[WHY];

	ck_assert_int_eq(m->ops->pread(m, blk, RAID_SB_BYTES, (uint64_t)slot * RAID_SB_BYTES), 0);
	return raid_sb_decode(blk, sb, why, sizeof(why));
}

/* The newest valid superblock of a member (the one assembly picks). */
static struct raid_sb newest_sb(struct raid_member *m)
{
	struct raid_sb s0, s1;
	int e0 = slot_sb(m, 0, &s0), e1 = slot_sb(m, 1, &s1);

	ck_assert_msg(e0 == 0 || e1 == 0, "%s: no valid superblock", m->name);
	return e0 == 0 && (e1 != 0 || s0.sequence > s1.sequence) ? s0 : s1;
}

/* Members not in `skip` have their newest superblock at the volume's sequence and recording
 * failed_mask `failed`. */
static void sbs_record(struct raid_vol *v, struct raid_member **a, uint32_t N, uint64_t skip,
		       uint64_t failed, const char *ctx)
{
	struct raid_info info = info_of(v);

	for (uint32_t i = 0; i < N; i++) {
		struct raid_sb sb;

		if (skip & (1ull << i))
			continue;
		sb = newest_sb(a[i]);
		if (sb.sequence != info.sequence || sb.failed_mask != failed || sb.member_index != i)
			ck_abort_msg("%s: member %u superblock sequence %" PRIu64 " failed_mask %#" PRIx64
				     " index %u; want %" PRIu64 ", %#" PRIx64, ctx, i, sb.sequence,
				     sb.failed_mask, sb.member_index, info.sequence, failed);
	}
}

/* A write of `len` fresh random bytes at `off`, mirrored in the model; must succeed. */
static void write_model(struct raid_vol *v, uint8_t *model, struct urand *r, uint64_t off,
			uint64_t len, const char *ctx, uint64_t seed)
{
	uint8_t *buf = malloc(len);
	int err;

	ck_assert_ptr_nonnull(buf);
	urand_fill(r, buf, len);
	err = raid_write(v, buf, off, len);
	if (err)
		ck_abort_msg("%s (seed %" PRIu64 "): write %" PRIu64 "+%" PRIu64 ": %d", ctx, seed, off,
			     len, err);
	memcpy(model + off, buf, len);
	free(buf);
}

/* Corrupt one byte of stripe s's chunk on member mi (an in-memory member, or a wrapper of one). */
static void corrupt(struct raid_member *m, const struct raid_geom *g, uint64_t s, uint32_t o)
{
	uint8_t *mem;

	if (m->ops == &fault_ops)
		m = fault_of(m)->inner;
	mem = raid_member_mem(m);
	ck_assert_ptr_nonnull(mem);
	mem[raid_member_offset(g, s, o)] ^= 0x5a;
}

/* Rebuild until done: the number of steps taken (one per stripe). */
static uint64_t rebuild_all(struct raid_vol *v, const char *ctx, uint64_t seed)
{
	uint64_t steps = 0;
	int r;

	while ((r = raid_rebuild_step(v)) == 1)
		steps++;
	if (r != 0)
		ck_abort_msg("%s (seed %" PRIu64 "): rebuild step %" PRIu64 ": %d", ctx, seed, steps, r);
	return steps + 1;
}

static void rebuild_begin_ok(struct raid_vol *v, uint32_t k, struct raid_member *m)
{
	char why[WHY] = "";
	int err = raid_rebuild_begin(v, k, m, why, sizeof(why));

	ck_assert_msg(err == 0, "rebuild_begin(%u, %s): %d (%s)", k, m->name, err, why);
}

/* ---- degraded reads: every member position, a geometry sweep ------------------------------ */

struct dgeom {
	uint32_t n, chunk;
};

static const struct dgeom dr_geoms[] = {
	{ 2, 4 * KIB }, { 2, 64 * KIB }, { 3, 4 * KIB }, { 3, 64 * KIB }, { 4, 4 * KIB },
	{ 4, 64 * KIB }, { 5, 4 * KIB }, { 5, 64 * KIB }, { 6, 4 * KIB }, { 6, 64 * KIB },
	{ 15, 4 * KIB }, { 15, 64 * KIB },
};
#define NR_DR_GEOMS (sizeof(dr_geoms) / sizeof(dr_geoms[0]))

/* Loop index -> (geometry, failed member k): every k of every geometry. */
static int dr_case(int i, const struct dgeom **g, uint32_t *k)
{
	for (size_t j = 0; j < NR_DR_GEOMS; j++) {
		if (i < (int)dr_geoms[j].n + 1) {
			*g = &dr_geoms[j];
			*k = (uint32_t)i;
			return 1;
		}
		i -= (int)dr_geoms[j].n + 1;
	}
	return 0;
}

static int dr_cases(void)
{
	int t = 0;

	for (size_t j = 0; j < NR_DR_GEOMS; j++)
		t += (int)dr_geoms[j].n + 1;
	return t;
}

START_TEST(test_degraded_read)
{
	const struct dgeom *dg;
	uint32_t k;
	uint64_t seed = unit_seed_for(0xd0000 + (uint64_t)_i);
	struct urand r = { seed };

	ck_assert(dr_case(_i, &dg, &k));
	const uint32_t n = dg->n, N = n + 1, C = dg->chunk;
	const uint64_t stripes = N + 1, S = (uint64_t)n * C, V = S * stripes;
	struct raid_member *w[RAID_MAX_MEMBERS];
	struct raid_vol *v;
	struct raid_info info;
	uint8_t *model = malloc(V), *back = malloc(V);
	uint64_t on_k = 0, ops;
	char ctx[96];

	snprintf(ctx, sizeof(ctx), "%uD+1P chunk %u, member %u failed", n, C, k);
	ck_assert(model && back);
	for (uint32_t i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "dr%u", i);
		w[i] = fault_wrap(sparse_open(name, member_size(C, stripes)), 1);
	}
	create_ok(w, n, C, 512, 500 + (uint64_t)_i, 0);
	v = assemble_ok(w, N);
	fill_stamped(&r, model, V);
	ck_assert_int_eq(raid_write(v, model, 0, V), 0);
	fault_die(w[k]);
	ck_assert_int_eq(raid_read(v, back, 0, V), 0);
	if (memcmp(back, model, V) != 0)
		ck_abort_msg("%s (seed %" PRIu64 "): degraded read differs", ctx, seed);
	info = info_of(v);
	ck_assert_msg(info.failed_mask == 1ull << k, "%s: failed_mask %#" PRIx64, ctx, info.failed_mask);
	ck_assert_str_eq(raid_state_name(&info), "degraded");
	/* one degraded piece per data chunk on member k (the first one hit the error) */
	for (uint64_t s = 0; s < stripes; s++)
		on_k += raid_parity_member(&info.geom, s) != k;
	ck_assert_uint_eq(info.stats.degraded_reads, on_k);
	ck_assert_uint_eq(fault_of(w[k])->injected, 1);
	/* unaligned pieces, across chunks and stripes, are reconstructed just the same */
	ops = fault_ops_seen(w[k]);
	for (int it = 0; it < 24; it++) {
		uint64_t off = urand_below(&r, V), len = urand_range(&r, 1, V - off < 2 * S ? V - off : 2 * S);

		if (raid_read(v, back, off, len) != 0 || memcmp(back, model + off, len) != 0)
			ck_abort_msg("%s (seed %" PRIu64 "): read %" PRIu64 "+%" PRIu64 " differs", ctx,
				     seed, off, len);
	}
	ck_assert_uint_eq(fault_ops_seen(w[k]), ops); /* never touched again */
	raid_close(v);
	free(model);
	free(back);
}
END_TEST

/* ---- degraded writes, then a rebuild ------------------------------------------------------ */

struct dwgeom {
	uint32_t n, chunk, block, stripes, ops, gran;
};

static const struct dwgeom dw_geoms[] = {
	{ 2, 4 * KIB, 512, 12, 150, 512 }, { 3, 4 * KIB, 512, 14, 150, 1 },
	{ 4, 16 * KIB, 4096, 10, 120, 4096 }, { 6, 64 * KIB, 512, 9, 60, 512 },
	{ 15, 4 * KIB, 512, 18, 80, 512 },
};
#define NR_DW_GEOMS (sizeof(dw_geoms) / sizeof(dw_geoms[0]))

/* Loop index: geometry x (k = first member, last member, a seeded one). Member k fails; random
 * writes of every shape run degraded against a model; k is replaced and rebuilt; then another
 * member j fails and the volume still reads as the model (the rebuilt data is used). */
START_TEST(test_degraded_write_rebuild)
{
	const struct dwgeom *dg = &dw_geoms[_i / 3];
	const uint32_t n = dg->n, N = n + 1, C = dg->chunk;
	const uint64_t stripes = dg->stripes, S = (uint64_t)n * C, V = S * stripes;
	const uint64_t size = member_size(C, stripes);
	uint64_t seed = unit_seed_for(0xd1000 + (uint64_t)_i);
	struct urand r = { seed };
	const uint32_t k = _i % 3 == 0 ? 0 : _i % 3 == 1 ? N - 1 : 1 + (uint32_t)urand_below(&r, N - 2);
	const uint32_t j = (k + 1 + (uint32_t)urand_below(&r, N - 1)) % N;
	struct raid_member *a[RAID_MAX_MEMBERS], *w[RAID_MAX_MEMBERS], *fresh;
	struct raid_vol *v;
	struct raid_info info;
	struct raid_sb sb;
	uint8_t *model = malloc(V);
	uint64_t kinds[W_KINDS] = { 0 }, ops = 0, steps, before;
	int failed_seen = 0;
	char ctx[128];

	snprintf(ctx, sizeof(ctx), "%uD+1P chunk %u gran %u, member %u failed, then %u", n, C,
		 dg->gran, k, j);
	ck_assert_ptr_nonnull(model);
	ck_assert_uint_ne(j, k);
	mems_open(a, N, size, "dw");
	wrap_all(w, a, N, 1);
	create_ok(w, n, C, dg->block, 600 + (uint64_t)_i, 0);
	v = assemble_ok(w, N);
	info = info_of(v);
	urand_fill(&r, model, V);
	ck_assert_int_eq(raid_write(v, model, 0, V), 0);
	fault_die(w[k]);
	/* degraded writes of every shape, with reads in between */
	for (int op = 0; op < (int)dg->ops; op++) {
		uint64_t off, len, nw = 0;
		int kind;

		for (int i = 0; i < W_KINDS; i++)
			nw += kinds[i];
		kind = nw < W_KINDS ? (int)nw : (int)urand_below(&r, W_KINDS);
		gen_write(&r, &info.geom, stripes, dg->gran, kind, &off, &len);
		kinds[kind]++;
		write_model(v, model, &r, off, len, ctx, seed);
		if (!failed_seen && info_of(v).failed_mask) {
			/* the first write that touched k found it dead; it is not touched again */
			info = info_of(v);
			ck_assert_msg(info.failed_mask == 1ull << k, "%s: failed_mask %#" PRIx64, ctx,
				      info.failed_mask);
			ops = fault_ops_seen(w[k]);
			failed_seen = 1;
		}
		if (urand_below(&r, 4) == 0) {
			uint8_t *back = malloc(V);

			off = urand_below(&r, V);
			len = urand_range(&r, 1, V - off);
			if (!back || raid_read(v, back, off, len) != 0 || memcmp(back, model + off, len))
				ck_abort_msg("%s (seed %" PRIu64 ", op %d): read %" PRIu64 "+%" PRIu64
					     " differs", ctx, seed, op, off, len);
			free(back);
		}
	}
	/* and, in every stripe where k holds data, a write only to k's chunk: it lands in parity */
	for (uint64_t s = 0; s < stripes; s++) {
		for (uint32_t d = 0; d < n; d++) {
			if (raid_data_member(&info.geom, s, d) != k)
				continue;
			uint64_t o = urand_below(&r, C / 2);

			write_model(v, model, &r, s * S + (uint64_t)d * C + o, urand_range(&r, 1, C - o),
				    ctx, seed);
		}
	}
	ck_assert_msg(failed_seen, "%s (seed %" PRIu64 "): no write touched member %u", ctx, seed, k);
	check_volume(v, model, V, ctx, seed);
	ck_assert_uint_eq(fault_ops_seen(w[k]), ops);
	ck_assert_uint_eq(fault_of(w[k])->injected, 1);
	info = info_of(v);
	ck_assert_uint_gt(info.stats.degraded_writes, 0);
	ck_assert_uint_eq(info.failed_mask, 1ull << k);
	check_stripes(v, -EAGAIN, ctx, seed);
	sbs_record(v, a, N, 1ull << k, 1ull << k, ctx);
	/* replace k: a fresh zeroed member, rebuilt stripe by stripe */
	ck_assert_int_eq(raid_member_open_mem("replacement", size, &fresh), 0);
	rebuild_begin_ok(v, k, fresh); /* closes w[k] and with it a[k] */
	a[k] = fresh;
	info = info_of(v);
	ck_assert_int_eq(info.rebuild_member, (int)k);
	ck_assert_uint_eq(info.rebuild_pos, 0);
	ck_assert_uint_eq(info.failed_mask, 1ull << k);
	ck_assert_str_eq(raid_state_name(&info), "rebuilding");
	sb = newest_sb(fresh);
	ck_assert_uint_eq(sb.member_index, k);
	ck_assert_uint_eq(sb.rebuild_member, k + 1);
	ck_assert_uint_eq(sb.sequence, info.sequence);
	/* half way: below rebuild_pos from the replacement, above from the others */
	for (uint64_t s = 0; s < stripes / 2; s++) {
		int ret = raid_rebuild_step(v);

		if (ret != 1)
			ck_abort_msg("%s (seed %" PRIu64 "): rebuild step %" PRIu64 ": %d", ctx, seed, s, ret);
	}
	ck_assert_uint_eq(info_of(v).rebuild_pos, stripes / 2);
	check_volume(v, model, V, ctx, seed);
	steps = stripes / 2 + rebuild_all(v, ctx, seed);
	ck_assert_uint_eq(steps, stripes);
	ck_assert_int_eq(raid_rebuild_step(v), -ENOENT);
	info = info_of(v);
	ck_assert_uint_eq(info.failed_mask, 0);
	ck_assert_int_eq(info.rebuild_member, -1);
	ck_assert_str_eq(raid_state_name(&info), "optimal");
	check_stripes(v, 0, ctx, seed);
	check_volume(v, model, V, ctx, seed);
	sbs_record(v, a, N, 0, 0, ctx);
	for (uint32_t i = 0; i < N; i++) {
		sb = newest_sb(a[i]);
		ck_assert_uint_eq(sb.rebuild_member, 0);
		ck_assert_uint_eq(sb.rebuild_checkpoint, 0);
	}
	/* another member fails: k's rebuilt chunks are what the reconstruction uses */
	before = info.stats.degraded_reads;
	fault_die(w[j]);
	check_volume(v, model, V, ctx, seed);
	info = info_of(v);
	ck_assert_uint_eq(info.failed_mask, 1ull << j);
	ck_assert_uint_gt(info.stats.degraded_reads, before);
	raid_close(v);
	free(model);
}
END_TEST

/* ---- rebuild under concurrent writes ------------------------------------------------------ */

#define RC_WRITERS 2

struct rc_ctx {
	struct raid_vol *v;
	uint8_t *model;
	pthread_mutex_t model_lock;
	uint64_t V, S, block;
	uint64_t seed;
	int stop;                       /* __atomic */
	uint64_t writes[RC_WRITERS], reads;
	int err[RC_WRITERS + 1];
};

struct rc_arg {
	struct rc_ctx *c;
	int t;
};

/* Writer t owns [t*V/4, (t+1)*V/4) of the volume (the ranges never overlap, so the model under its
 * mutex is exact); the reader checks the untouched last quarter. */
static void *rc_writer(void *p)
{
	struct rc_arg *a = p;
	struct rc_ctx *c = a->c;
	struct urand r = { c->seed ^ ((uint64_t)(a->t + 1) << 40) };
	const uint64_t lo = (uint64_t)a->t * (c->V / 4) / c->block, hi = (uint64_t)(a->t + 1) * (c->V / 4) / c->block;
	uint8_t *buf = malloc(2 * c->S);

	while (buf && !__atomic_load_n(&c->stop, __ATOMIC_SEQ_CST)) {
		uint64_t b = urand_range(&r, lo, hi - 1);
		uint64_t nb = urand_range(&r, 1, 2 * c->S / c->block);
		int err;

		if (nb > hi - b)
			nb = hi - b;
		urand_fill(&r, buf, nb * c->block);
		err = raid_write(c->v, buf, b * c->block, nb * c->block);
		if (err) {
			c->err[a->t] = err;
			break;
		}
		pthread_mutex_lock(&c->model_lock);
		memcpy(c->model + b * c->block, buf, nb * c->block);
		pthread_mutex_unlock(&c->model_lock);
		c->writes[a->t]++;
	}
	free(buf);
	return NULL;
}

static void *rc_reader(void *p)
{
	struct rc_ctx *c = p;
	struct urand r = { c->seed ^ 0x5ead };
	const uint64_t lo = 3 * (c->V / 4);
	uint8_t *buf = malloc(2 * c->S);

	while (buf && !__atomic_load_n(&c->stop, __ATOMIC_SEQ_CST)) {
		uint64_t off = urand_range(&r, lo, c->V - 1);
		uint64_t len = urand_range(&r, 1, c->V - off < 2 * c->S ? c->V - off : 2 * c->S);

		if (raid_read(c->v, buf, off, len) != 0 || memcmp(buf, c->model + off, len) != 0) {
			c->err[RC_WRITERS] = -EILSEQ;
			break;
		}
		c->reads++;
	}
	free(buf);
	return NULL;
}

START_TEST(test_rebuild_concurrent)
{
	const uint32_t n = 3, N = 4, C = 4 * KIB;
	const uint64_t stripes = 1200, size = member_size(C, stripes);
	struct rc_ctx c = { .block = 512 };
	struct rc_arg args[RC_WRITERS];
	pthread_t th[RC_WRITERS + 1];
	struct raid_member *a[4], *w[4], *fresh;
	struct raid_vol *v;
	struct raid_info info;
	struct urand r;
	const uint32_t k = 2, j = 0;
	uint64_t steps = 0, writes_before;
	struct timespec pause = { 0, 20000 };
	int ret;

	c.seed = unit_seed_for(0xd2000);
	r.s = c.seed;
	c.S = (uint64_t)n * C;
	c.V = c.S * stripes;
	c.model = malloc(c.V);
	ck_assert_ptr_nonnull(c.model);
	pthread_mutex_init(&c.model_lock, NULL);
	mems_open(a, N, size, "rc");
	wrap_all(w, a, N, 1);
	create_ok(w, n, C, 512, 700, 0);
	c.v = v = assemble_ok(w, N);
	fill_stamped(&r, c.model, c.V);
	ck_assert_int_eq(raid_write(v, c.model, 0, c.V), 0);
	fault_die(w[k]);
	write_model(v, c.model, &r, 1000, 3 * c.S, "degraded", c.seed);
	ck_assert_uint_eq(info_of(v).failed_mask, 1u << k);
	ck_assert_int_eq(raid_member_open_mem("rc-new", size, &fresh), 0);
	rebuild_begin_ok(v, k, fresh);
	for (int t = 0; t < RC_WRITERS; t++) {
		args[t].c = &c;
		args[t].t = t;
		ck_assert_int_eq(pthread_create(&th[t], NULL, rc_writer, &args[t]), 0);
	}
	ck_assert_int_eq(pthread_create(&th[RC_WRITERS], NULL, rc_reader, &c), 0);
	while (c.writes[0] + c.writes[1] < 20)
		nanosleep(&pause, NULL);
	writes_before = c.writes[0] + c.writes[1];
	do {
		ret = raid_rebuild_step(v);
		steps++;
		if (steps % 8 == 0)
			nanosleep(&pause, NULL); /* let the writers in between steps */
	} while (ret == 1);
	__atomic_store_n(&c.stop, 1, __ATOMIC_SEQ_CST);
	for (int t = 0; t < RC_WRITERS + 1; t++)
		pthread_join(th[t], NULL);
	ck_assert_msg(ret == 0, "seed %" PRIu64 ": rebuild step %" PRIu64 ": %d", c.seed, steps, ret);
	ck_assert_uint_eq(steps, stripes);
	for (int t = 0; t < RC_WRITERS; t++)
		ck_assert_msg(c.err[t] == 0, "seed %" PRIu64 ": writer %d: %d", c.seed, t, c.err[t]);
	ck_assert_msg(c.err[RC_WRITERS] == 0, "seed %" PRIu64 ": a read during the rebuild differs",
		      c.seed);
	ck_assert_msg(c.writes[0] + c.writes[1] > writes_before + 50,
		      "only %" PRIu64 " writes during the rebuild", c.writes[0] + c.writes[1] - writes_before);
	ck_assert_uint_gt(c.reads, 0);
	info = info_of(v);
	ck_assert_uint_eq(info.failed_mask, 0);
	check_stripes(v, 0, "after the rebuild", c.seed);
	check_volume(v, c.model, c.V, "after the rebuild", c.seed);
	fault_die(w[j]);
	check_volume(v, c.model, c.V, "after the rebuild, member 0 failed", c.seed);
	ck_assert_uint_eq(info_of(v).failed_mask, 1u << j);
	raid_close(v);
	pthread_mutex_destroy(&c.model_lock);
	free(c.model);
}
END_TEST

/* ---- rebuild resume after a crash --------------------------------------------------------- */

/* 3D+1P, 700 stripes, member 1 rebuilt for 300 steps (the checkpoint is every 256), then a crash.
 * _i = 0: the replacement is listed at position 1 -> the rebuild resumes at 256 and completes.
 * _i = 1: the OLD failed member is listed there instead -> it must stay failed, and its stale
 *         chunks must never be read (docs/raid-resilience.md: "assembling with the old failed path
 *         there keeps K failed"). */
START_TEST(test_rebuild_resume)
{
	const uint32_t n = 3, N = 4, C = 4 * KIB, k = 1, j = 3;
	const uint64_t stripes = 700, size = member_size(C, stripes), V = (uint64_t)n * C * stripes;
	uint64_t seed = unit_seed_for(0xd3000 + (uint64_t)_i);
	struct urand r = { seed };
	struct raid_member *a[4], *w[4], *fresh, *list[4], *c[4];
	struct raid_vol *v, *v2;
	struct raid_info info;
	struct raid_sb sb;
	uint8_t *model = malloc(V);

	ck_assert_ptr_nonnull(model);
	mems_open(a, N, size, "rr");
	wrap_all(w, a, N, 0);
	create_ok(w, n, C, 512, 800 + (uint64_t)_i, 0);
	v = assemble_ok(w, N);
	urand_fill(&r, model, V);
	ck_assert_int_eq(raid_write(v, model, 0, V), 0);
	fault_die(w[k]);
	/* everything rewritten while degraded: the old member k is stale everywhere */
	urand_fill(&r, model, V);
	ck_assert_int_eq(raid_write(v, model, 0, V), 0);
	ck_assert_uint_eq(info_of(v).failed_mask, 1u << k);
	ck_assert_int_eq(raid_member_open_mem("rr-new", size, &fresh), 0);
	rebuild_begin_ok(v, k, fresh); /* closes w[k]; a[k] stays (the old, stale member) */
	for (int s = 0; s < 300; s++) {
		int ret = raid_rebuild_step(v);

		if (ret != 1)
			ck_abort_msg("seed %" PRIu64 ": rebuild step %d: %d", seed, s, ret);
	}
	info = info_of(v);
	ck_assert_uint_eq(info.rebuild_pos, 300);
	for (uint32_t i = 0; i < N; i++) {
		sb = newest_sb(i == k ? fresh : a[i]);
		ck_assert_uint_eq(sb.rebuild_member, k + 1);
		ck_assert_uint_eq(sb.rebuild_checkpoint, 256);
		ck_assert_uint_eq(sb.failed_mask, 1u << k);
	}
	/* the crash: what is on the members now, without raid_close */
	for (uint32_t i = 0; i < N; i++)
		list[i] = i == k ? (_i == 0 ? fresh : a[k]) : a[i];
	crash_copy(c, list, N, "rr-crash");
	v2 = assemble_ok(c, N);
	info = info_of(v2);
	ck_assert_int_eq(info.was_dirty, 1);
	ck_assert_uint_eq(info.failed_mask, 1u << k);
	if (_i == 0) {
		ck_assert_int_eq(info.rebuild_member, (int)k);
		ck_assert_uint_eq(info.rebuild_pos, 256);
		ck_assert_str_eq(raid_state_name(&info), "rebuilding");
		check_volume(v2, model, V, "resumed, before finishing", seed);
		ck_assert_uint_eq(rebuild_all(v2, "resume", seed), stripes - 256);
		info = info_of(v2);
		ck_assert_uint_eq(info.failed_mask, 0);
		ck_assert_int_eq(info.rebuild_member, -1);
		check_stripes(v2, 0, "resumed rebuild", seed);
		check_volume(v2, model, V, "resumed rebuild", seed);
		fault_die(c[j]);
		check_volume(v2, model, V, "resumed rebuild, then member 3 failed", seed);
		ck_assert_uint_eq(info_of(v2).failed_mask, 1u << j);
	} else {
		check_volume(v2, model, V, "the OLD failed member listed at position 1 after the crash "
			     "(the rebuild must not resume onto it)", seed);
		ck_assert_msg(info.rebuild_member == -1,
			      "the stale old member at position %u resumes the rebuild at stripe %" PRIu64
			      " (rebuild_member %d)", k, info.rebuild_pos, info.rebuild_member);
	}
	raid_close(v2);
	raid_close(v); /* closes w[i != k] and fresh */
	mems_close(a, N);
	free(model);
}
END_TEST

/* A replacement that fails during its rebuild: the rebuild stops with an error, the member stays
 * failed, the array stays degraded and correct. */
START_TEST(test_rebuild_target_fails)
{
	const uint32_t n = 3, N = 4, C = 4 * KIB, k = 0;
	const uint64_t stripes = 40, size = member_size(C, stripes), V = (uint64_t)n * C * stripes;
	uint64_t seed = unit_seed_for(0xd4000);
	struct urand r = { seed };
	struct raid_member *w[4], *inner, *fresh;
	struct raid_vol *v;
	struct raid_info info;
	uint8_t *model = malloc(V);
	int ret = 1;
	uint64_t steps = 0;

	ck_assert_ptr_nonnull(model);
	for (uint32_t i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "rf%u", i);
		ck_assert_int_eq(raid_member_open_mem(name, size, &inner), 0);
		w[i] = fault_wrap(inner, 1);
	}
	create_ok(w, n, C, 512, 900, 0);
	v = assemble_ok(w, N);
	urand_fill(&r, model, V);
	ck_assert_int_eq(raid_write(v, model, 0, V), 0);
	fault_die(w[k]);
	ck_assert_int_eq(raid_read(v, model, 0, V), 0);
	ck_assert_int_eq(raid_member_open_mem("rf-new", size, &inner), 0);
	fresh = fault_wrap(inner, 1);
	rebuild_begin_ok(v, k, fresh);
	/* its superblock and bitmap writes went through; the 11th write from now on fails */
	fault_of(fresh)->fail_write_at = fault_of(fresh)->writes + 11;
	fault_of(fresh)->sticky = 1;
	while (ret == 1 && steps < 2 * stripes) {
		ret = raid_rebuild_step(v);
		steps++;
	}
	ck_assert_int_eq(ret, -EIO);
	ck_assert_uint_eq(steps, 11);
	info = info_of(v);
	ck_assert_uint_eq(info.failed_mask, 1u << k);
	ck_assert_int_eq(info.rebuild_member, -1);
	ck_assert_str_eq(raid_state_name(&info), "degraded");
	ck_assert_int_eq(raid_rebuild_step(v), -ENOENT);
	check_volume(v, model, V, "rebuild target failed", seed);
	/* a replacement whose bitmap write fails inside raid_rebuild_begin (the failure is recorded
	 * under sb_lock: this once deadlocked) */
	ck_assert_int_eq(raid_member_open_mem("rf-new2", size, &inner), 0);
	fresh = fault_wrap(inner, 1);
	fault_of(fresh)->fail_write_at = 2; /* 1: its superblock, 2: its bitmap block */
	fault_of(fresh)->sticky = 1;
	rebuild_begin_ok(v, k, fresh);
	ck_assert_uint_eq(fault_of(fresh)->injected, 1);
	info = info_of(v);
	ck_assert_uint_eq(info.failed_mask, 1u << k);
	ck_assert_int_eq(info.rebuild_member, -1);
	ck_assert_int_eq(raid_rebuild_step(v), -ENOENT);
	check_volume(v, model, V, "rebuild target failed at begin", seed);
	raid_close(v);
	free(model);
}
END_TEST

/* raid_rebuild_begin refusals; on a refusal the caller keeps the member. */
START_TEST(test_rebuild_refusals)
{
	const uint32_t C = 4 * KIB;
	const uint64_t stripes = 16, size = member_size(C, stripes);
	struct raid_member *a[4], *w[4], *b[4], *m;
	struct raid_vol *v;
	char why[WHY];

	mems_open(a, 4, size, "rb");
	wrap_all(w, a, 4, 1);
	create_ok(w, 3, C, 512, 1000, 0);
	v = assemble_ok(w, 4);
	ck_assert_int_eq(raid_member_open_mem("rb-new", size, &m), 0);
	ck_assert_int_eq(raid_rebuild_begin(v, 4, m, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(raid_rebuild_begin(v, 1, m, why, sizeof(why)), -EINVAL); /* active */
	ck_assert_ptr_nonnull(strstr(why, "active"));
	ck_assert_int_eq(raid_rebuild_step(v), -ENOENT);
	fault_die(w[1]);
	ck_assert_int_eq(raid_flush(v), 0);
	ck_assert_uint_eq(info_of(v).failed_mask, 1u << 1);
	/* too small */
	{
		struct raid_member *small;

		ck_assert_int_eq(raid_member_open_mem("rb-small", size - C, &small), 0);
		ck_assert_int_eq(raid_rebuild_begin(v, 1, small, why, sizeof(why)), -ENOSPC);
		raid_member_close(small);
	}
	/* a member of another array */
	mems_open(b, 4, size, "other");
	create_ok(b, 3, C, 512, 1001, 0);
	ck_assert_int_eq(raid_rebuild_begin(v, 1, b[2], why, sizeof(why)), -EEXIST);
	ck_assert_ptr_nonnull(strstr(why, "wipe it first"));
	mems_close(b, 4);
	/* already rebuilding */
	rebuild_begin_ok(v, 1, m);
	ck_assert_int_eq(raid_member_open_mem("rb-new2", size, &m), 0);
	ck_assert_int_eq(raid_rebuild_begin(v, 1, m, why, sizeof(why)), -EBUSY);
	/* two failed: nothing to rebuild from */
	raid_close(v);
	mems_open(a, 4, size, "rb2-");
	wrap_all(w, a, 4, 1);
	create_ok(w, 3, C, 512, 1002, 0);
	v = assemble_ok(w, 4);
	fault_die(w[0]);
	fault_die(w[3]);
	ck_assert_int_eq(raid_flush(v), -EIO);
	ck_assert_uint_eq(info_of(v).failed_mask, (1u << 0) | (1u << 3));
	ck_assert_int_eq(raid_rebuild_begin(v, 0, m, why, sizeof(why)), -EIO);
	raid_member_close(m);
	raid_close(v);
}
END_TEST

/* ---- two failed members ------------------------------------------------------------------- */

/* 4D+1P: member k fails, degraded writes happen, then member j fails. Chunks on active members
 * read back correctly (also what was written degraded); chunks on k or j, and every write, fail
 * with -EIO and change nothing. Never wrong data. */
START_TEST(test_double_failure)
{
	const uint32_t n = 4, N = 5, C = 4 * KIB;
	const uint64_t stripes = 15, S = (uint64_t)n * C, V = S * stripes, size = member_size(C, stripes);
	uint64_t seed = unit_seed_for(0xd5000);
	struct urand r = { seed };
	const uint32_t k = (uint32_t)urand_below(&r, N), j = (k + 1 + (uint32_t)urand_below(&r, N - 1)) % N;
	struct raid_member *a[5], *w[5], *m;
	struct raid_vol *v;
	struct raid_info info;
	uint8_t *model = malloc(V), *buf = malloc(2 * S), *snap[5];
	uint64_t lost = 0, ok = 0;
	char why[WHY];

	ck_assert(model && buf);
	mems_open(a, N, size, "df");
	wrap_all(w, a, N, 1);
	create_ok(w, n, C, 512, 1100, 0);
	v = assemble_ok(w, N);
	info = info_of(v);
	urand_fill(&r, model, V);
	ck_assert_int_eq(raid_write(v, model, 0, V), 0);
	fault_die(w[k]);
	for (int i = 0; i < 40; i++) {
		uint64_t off = urand_below(&r, V / 512) * 512;

		write_model(v, model, &r, off, urand_range(&r, 1, (V - off) / 512 < 48 ? (V - off) / 512 : 48) * 512,
			    "degraded", seed);
	}
	ck_assert_uint_eq(info_of(v).failed_mask, 1u << k);
	fault_die(w[j]);
	/* every chunk: on a failed member -EIO, else the model */
	for (uint64_t s = 0; s < stripes; s++) {
		for (uint32_t d = 0; d < n; d++) {
			uint32_t mi = raid_data_member(&info.geom, s, d);
			uint64_t off = s * S + (uint64_t)d * C;
			int err = raid_read(v, buf, off, C);

			if (mi == k || mi == j) {
				if (err != -EIO)
					ck_abort_msg("seed %" PRIu64 ": stripe %" PRIu64 " chunk %u on failed "
						     "member %u: read %d, want -EIO", seed, s, d, mi, err);
				lost++;
			} else {
				if (err != 0 || memcmp(buf, model + off, C) != 0)
					ck_abort_msg("seed %" PRIu64 ": stripe %" PRIu64 " chunk %u on active "
						     "member %u: read %d / differs", seed, s, d, mi, err);
				ok++;
			}
		}
	}
	ck_assert_uint_gt(lost, 0);
	ck_assert_uint_gt(ok, 0);
	info = info_of(v);
	ck_assert_uint_eq(info.failed_mask, (1ull << k) | (1ull << j));
	ck_assert_str_eq(raid_state_name(&info), "failed");
	sbs_record(v, a, N, (1ull << k) | (1ull << j), (1ull << k) | (1ull << j), "double failure");
	/* a read spanning an active and a failed chunk fails as a whole */
	ck_assert_int_eq(raid_read(v, buf, 0, V < 2 * S ? V : 2 * S), -EIO);
	/* writes fail and touch nothing */
	for (uint32_t i = 0; i < N; i++) {
		snap[i] = malloc(size);
		ck_assert_ptr_nonnull(snap[i]);
		memcpy(snap[i], raid_member_mem(a[i]), size);
	}
	for (int kind = 0; kind < W_KINDS; kind++) {
		uint64_t off, len;
		int err;

		gen_write(&r, &info.geom, stripes, 512, kind, &off, &len);
		urand_fill(&r, buf, len < 2 * S ? len : 2 * S);
		err = raid_write(v, buf, off, len < 2 * S ? len : 2 * S);
		ck_assert_msg(err == -EIO, "seed %" PRIu64 ": write kind %d: %d, want -EIO", seed, kind, err);
	}
	for (uint32_t i = 0; i < N; i++) {
		ck_assert_msg(memcmp(snap[i], raid_member_mem(a[i]), size) == 0,
			      "member %u changed by failing writes", i);
		free(snap[i]);
	}
	ck_assert_int_eq(raid_check_stripe(v, 0, NULL), -EAGAIN);
	ck_assert_int_eq(raid_repair_stripe(v, 0), -EAGAIN);
	ck_assert_int_eq(raid_member_open_mem("df-new", size, &m), 0);
	ck_assert_int_eq(raid_rebuild_begin(v, k, m, why, sizeof(why)), -EIO);
	raid_member_close(m);
	raid_close(v);
	free(model);
	free(buf);
}
END_TEST

/* ---- stale and missing members at assembly ------------------------------------------------ */

/* Member k fails, the array is written degraded and closed cleanly; an assembly that lists k's OLD
 * bytes (saved before the failure) at position k keeps k failed and returns the NEW data. */
START_TEST(test_stale_member)
{
	const uint32_t n = 3, N = 4, C = 4 * KIB;
	const uint64_t stripes = 24, V = (uint64_t)n * C * stripes, size = member_size(C, stripes);
	uint64_t seed = unit_seed_for(0xd6000 + (uint64_t)_i);
	struct urand r = { seed };
	const uint32_t k = (uint32_t)_i;
	struct raid_member *a[4], *w[4], *old, *list[4];
	struct raid_vol *v;
	struct raid_info info;
	struct raid_sb sb_old, sb;
	uint8_t *model = malloc(V);

	ck_assert_ptr_nonnull(model);
	mems_open(a, N, size, "st");
	wrap_all(w, a, N, 0);
	create_ok(w, n, C, 512, 1200 + (uint64_t)_i, 0);
	v = assemble_ok(w, N);
	urand_fill(&r, model, V);
	ck_assert_int_eq(raid_write(v, model, 0, V), 0);
	ck_assert_int_eq(raid_flush(v), 0);
	old = mem_copy(a[k], "st-old");
	sb_old = newest_sb(old);
	fault_die(w[k]);
	urand_fill(&r, model, V / 2);
	ck_assert_int_eq(raid_write(v, model, 0, V / 2), 0);
	for (int i = 0; i < 20; i++) {
		uint64_t off = urand_below(&r, V - 9000);

		write_model(v, model, &r, off, urand_range(&r, 1, 9000), "degraded", seed);
	}
	ck_assert_uint_eq(info_of(v).failed_mask, 1u << k);
	raid_close(v);
	for (uint32_t i = 0; i < N; i++)
		list[i] = i == k ? old : a[i];
	v = assemble_ok(list, N);
	info = info_of(v);
	ck_assert_uint_eq(info.failed_mask, 1u << k);
	ck_assert_int_eq(info.was_dirty, 0);
	ck_assert_str_eq(raid_state_name(&info), "degraded");
	check_volume(v, model, V, "stale member listed", seed);
	ck_assert_uint_gt(info_of(v).stats.degraded_reads, 0);
	sb = newest_sb(old); /* a stale member's superblock is not rewritten */
	ck_assert_uint_eq(sb.sequence, sb_old.sequence);
	sbs_record(v, a, N, 1ull << k, 1ull << k, "stale member listed");
	raid_close(v); /* closes old and a[i != k] */
	raid_member_close(a[k]);
	free(model);
}
END_TEST

/* raid_member_missing() at position k: refused (naming degraded=1) while the array does not record
 * k as failed; accepted with degraded=1 (and then recorded); accepted without it afterwards. */
START_TEST(test_missing_member)
{
	const uint32_t n = 3, N = 4, C = 4 * KIB;
	const uint64_t stripes = 12, V = (uint64_t)n * C * stripes, size = member_size(C, stripes);
	uint64_t seed = unit_seed_for(0xd7000 + (uint64_t)_i);
	struct urand r = { seed };
	const uint32_t k = (uint32_t)_i, j = (k + 2) % 4;
	struct raid_member *a[4], *w[4];
	struct raid_assemble_params p = { 0 }, deg = { .degraded = 1 };
	struct raid_vol *v = NULL;
	struct raid_info info;
	uint8_t *model = malloc(V);
	char why[WHY] = "";
	int err;

	ck_assert_ptr_nonnull(model);
	mems_open(a, N, size, "ms");
	create_ok(a, n, C, 512, 1300 + (uint64_t)_i, 0);
	wrap_all(w, a, N, 0);
	v = assemble_ok(w, N);
	urand_fill(&r, model, V);
	ck_assert_int_eq(raid_write(v, model, 0, V), 0);
	raid_close(v); /* sequence 4 on every member */
	/* newly missing: refused, nothing written */
	wrap_all(w, a, N, 0);
	raid_member_close(w[k]);
	w[k] = raid_member_missing("x", "gone");
	ck_assert_ptr_nonnull(w[k]);
	v = NULL;
	err = raid_assemble(w, N, &p, &v, why, sizeof(why));
	ck_assert_msg(err == -ENXIO, "missing member %u: assemble %d (%s), want -ENXIO", k, err, why);
	ck_assert_ptr_null(v);
	ck_assert_msg(strstr(why, "gone") && strstr(why, "degraded=1"), "why: %s", why);
	for (uint32_t i = 0; i < N; i++)
		if (i != k)
			ck_assert_uint_eq(newest_sb(a[i]).sequence, 4);
	/* degraded=1: assembled without it, and the others record it */
	v = assemble_p(w, N, &deg);
	info = info_of(v);
	ck_assert_uint_eq(info.failed_mask, 1u << k);
	ck_assert_str_eq(raid_state_name(&info), "degraded");
	sbs_record(v, a, N, 1ull << k, 1ull << k, "degraded=1");
	check_volume(v, model, V, "missing member, degraded=1", seed);
	ck_assert_uint_gt(info_of(v).stats.degraded_reads, 0);
	write_model(v, model, &r, 5000, 3 * n * C, "missing member", seed);
	raid_close(v); /* frees the placeholder, leaves a[] */
	/* recorded as failed now: accepted without degraded=1 */
	wrap_all(w, a, N, 0);
	raid_member_close(w[k]);
	w[k] = raid_member_missing("x", "gone");
	v = assemble_ok(w, N);
	info = info_of(v);
	ck_assert_uint_eq(info.failed_mask, 1u << k);
	ck_assert_int_eq(info.was_dirty, 0);
	check_volume(v, model, V, "recorded missing member", seed);
	raid_close(v);
	/* a different member newly missing as well: refused without degraded=1 */
	wrap_all(w, a, N, 0);
	raid_member_close(w[k]);
	raid_member_close(w[j]);
	w[k] = raid_member_missing("x", "gone");
	w[j] = raid_member_missing("y", "gone too");
	err = raid_assemble(w, N, &p, &v, why, sizeof(why));
	ck_assert_msg(err == -ENXIO && strstr(why, "gone") && strstr(why, "degraded=1"), "second missing: %d (%s)", err, why);
	mems_close(w, N);
	/* a missing member is replaced like any failed one */
	wrap_all(w, a, N, 0);
	raid_member_close(w[k]);
	w[k] = raid_member_missing("x", "gone");
	v = assemble_ok(w, N);
	{
		struct raid_member *fresh;

		ck_assert_int_eq(raid_member_open_mem("ms-new", size, &fresh), 0);
		rebuild_begin_ok(v, k, fresh); /* frees the placeholder */
		ck_assert_uint_eq(rebuild_all(v, "missing member rebuilt", seed), stripes);
		ck_assert_uint_eq(info_of(v).failed_mask, 0);
		check_stripes(v, 0, "missing member rebuilt", seed);
		check_volume(v, model, V, "missing member rebuilt", seed);
		fault_die(w[j]);
		check_volume(v, model, V, "missing member rebuilt, another failed", seed);
	}
	raid_close(v);
	mems_close(a, N);
	free(model);
}
END_TEST

/* ---- write-intent bitmap ------------------------------------------------------------------ */

/* 2D+1P, C = 4 KiB: stripes of 8 KiB, so a region is 128 stripes (the smallest power of two with
 * R * stripe_bytes >= 1 MiB); 450 stripes are 4 regions, the last one 66 stripes. */
#define BM_N 2
#define BM_C (4 * KIB)
#define BM_STRIPES 450
#define BM_R 128

/* The bitmap block of a member (or of the member a wrapper wraps). */
static void bitmap_of(struct raid_member *m, uint8_t out[4096])
{
	ck_assert_int_eq(m->ops->pread(m, out, 4096, BITMAP_OFF), 0);
}

static void bitmaps_are(struct raid_member **m, uint32_t N, uint8_t byte0, const char *ctx)
{
	uint8_t b[4096];

	for (uint32_t i = 0; i < N; i++) {
		bitmap_of(m[i], b);
		if (b[0] != byte0 || !all_zero(b + 1, sizeof(b) - 1))
			ck_abort_msg("%s: member %u's bitmap starts %#x (want %#x, the rest zero)", ctx, i,
				     b[0], byte0);
	}
}

START_TEST(test_bitmap)
{
	const uint32_t N = BM_N + 1;
	const uint64_t S = (uint64_t)BM_N * BM_C, V = S * BM_STRIPES;
	const uint64_t size = member_size(BM_C, BM_STRIPES);
	uint64_t seed = unit_seed_for(0xd8000), stripes, fixed, unv;
	struct urand r = { seed };
	struct raid_member *a[3], *w[3], *c[3];
	struct raid_vol *v, *v2;
	struct raid_info info;
	struct raid_geom g;
	uint8_t *model = calloc(1, V);

	ck_assert_ptr_nonnull(model);
	mems_open(a, N, size, "bm");
	create_ok(a, BM_N, BM_C, 512, 1400, 0);
	for (uint32_t i = 0; i < N; i++) {
		struct raid_sb sb = newest_sb(a[i]);

		ck_assert_uint_eq(sb.bitmap_offset_bytes, BITMAP_OFF);
		ck_assert_uint_eq(sb.bitmap_bytes, 4096);
		ck_assert_uint_eq(sb.bitmap_region_stripes, BM_R);
	}
	wrap_all(w, a, N, 0);
	v = assemble_ok(w, N);
	info = info_of(v);
	g = info.geom;
	ck_assert_uint_eq(info.bitmap_regions, 4);
	ck_assert_uint_eq(info.region_stripes, BM_R);
	ck_assert_uint_eq(info.dirty_regions, 0);
	bitmaps_are(a, N, 0, "after assembly");
	/* a write marks its region, on every member, before it returns */
	write_model(v, model, &r, 130 * S + 1000, 700, "region 1", seed);
	ck_assert_uint_eq(info_of(v).dirty_regions, 1);
	bitmaps_are(a, N, 0x02, "region 1 written");
	write_model(v, model, &r, 449 * S + 5, 100, "region 3", seed); /* the last stripe */
	ck_assert_uint_eq(info_of(v).dirty_regions, 2);
	bitmaps_are(a, N, 0x0a, "regions 1 and 3 written");
	/* a crash now; parity damaged (the write hole) in region 1, and outside the dirty ones */
	crash_copy(c, a, N, "bm-crash");
	corrupt(c[raid_parity_member(&g, 140)], &g, 140, 17);
	corrupt(c[raid_parity_member(&g, 300)], &g, 300, 33);
	v2 = assemble_ok(c, N);
	info = info_of(v2);
	ck_assert_int_eq(info.was_dirty, 1);
	ck_assert_uint_eq(info.dirty_regions, 2);
	ck_assert_int_eq(raid_resync_dirty(v2, &stripes, &fixed, &unv), 0);
	ck_assert_uint_eq(stripes, BM_R + (BM_STRIPES - 3 * BM_R)); /* region 3 is clipped */
	ck_assert_uint_eq(fixed, 1);
	ck_assert_uint_eq(unv, 0);
	ck_assert_int_eq(raid_check_stripe(v2, 140, NULL), 0);       /* inside: repaired */
	ck_assert_int_eq(raid_check_stripe(v2, 300, NULL), -EILSEQ); /* outside: not touched */
	ck_assert_uint_eq(info_of(v2).dirty_regions, 0);
	bitmaps_are(c, N, 0, "after raid_resync_dirty");
	check_volume(v2, model, V, "after the crash", seed);
	ck_assert_int_eq(raid_repair_stripe(v2, 300), 0);
	check_stripes(v2, 0, "after the crash", seed);
	raid_close(v2);
	/* a clean close clears the bitmap on every member */
	raid_close(v);
	bitmaps_are(a, N, 0, "after a clean close");
	for (uint32_t i = 0; i < N; i++)
		ck_assert_uint_eq(newest_sb(a[i]).flags & RAID_SB_FLAG_DIRTY, 0);
	mems_close(a, N);
	free(model);
}
END_TEST

/* The cleaner: a region idle for 2 s is cleared (members flushed first) within the next second's
 * tick. But bits loaded at assembly after a crash are the regions still to resync: the cleaner
 * must not clear them before raid_resync_dirty has run (raidvol.c calls it right after assembly;
 * a large resync takes longer than the cleaner's first tick). */
START_TEST(test_bitmap_cleaner)
{
	const uint32_t N = BM_N + 1;
	const uint64_t S = (uint64_t)BM_N * BM_C, V = S * BM_STRIPES;
	const uint64_t size = member_size(BM_C, BM_STRIPES);
	uint64_t seed = unit_seed_for(0xd9000), stripes, fixed, unv;
	struct urand r = { seed };
	struct raid_member *a[3], *w[3], *c[3];
	struct raid_vol *v, *v2;
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	uint8_t *model = calloc(1, V);
	int waited = 0;

	ck_assert_ptr_nonnull(model);
	mems_open(a, N, size, "cln");
	create_ok(a, BM_N, BM_C, 512, 1500, 0);
	wrap_all(w, a, N, 0);
	v = assemble_ok(w, N);
	write_model(v, model, &r, 200 * S, S, "region 1", seed);
	ck_assert_uint_eq(info_of(v).dirty_regions, 1);
	crash_copy(c, a, N, "cln-crash");
	v2 = assemble_ok(c, N);
	ck_assert_uint_eq(info_of(v2).dirty_regions, 1);
	while (info_of(v).dirty_regions && waited < 60) {
		nanosleep(&tick, NULL);
		waited++;
	}
	ck_assert_msg(info_of(v).dirty_regions == 0, "an idle region is still dirty after %d ms",
		      waited * 100);
	ck_assert_msg(waited >= 15, "a region was cleared after %d ms, not idle for 2 s", waited * 100);
	bitmaps_are(a, N, 0, "cleaned");
	/* v2 was assembled at about the same time: its cleaner has ticked as often */
	ck_assert_msg(info_of(v2).dirty_regions == 1,
		      "the cleaner cleared a region loaded as dirty at assembly before it was resynced "
		      "(%" PRIu64 " dirty regions left)", info_of(v2).dirty_regions);
	ck_assert_int_eq(raid_resync_dirty(v2, &stripes, &fixed, &unv), 0);
	ck_assert_uint_eq(stripes, BM_R);
	raid_close(v2);
	raid_close(v);
	mems_close(a, N);
	free(model);
}
END_TEST

/* Unclean shutdown while degraded: dirty stripes where the failed member holds data cannot be
 * resynced (unverifiable); where it holds the parity there is nothing to do. */
START_TEST(test_resync_degraded)
{
	const uint32_t N = BM_N + 1, k = 1;
	const uint64_t S = (uint64_t)BM_N * BM_C, V = S * BM_STRIPES;
	const uint64_t size = member_size(BM_C, BM_STRIPES);
	uint64_t seed = unit_seed_for(0xda000), stripes, fixed, unv, want_unv = 0;
	struct urand r = { seed };
	struct raid_member *a[3], *w[3], *c[3];
	struct raid_vol *v, *v2;
	struct raid_info info;
	uint8_t *model = calloc(1, V);

	ck_assert_ptr_nonnull(model);
	mems_open(a, N, size, "rd");
	create_ok(a, BM_N, BM_C, 512, 1600, 0);
	wrap_all(w, a, N, 0);
	v = assemble_ok(w, N);
	info = info_of(v);
	fault_die(w[k]);
	write_model(v, model, &r, 2 * BM_R * S + 77, 3 * S, "region 2", seed);
	ck_assert_uint_eq(info_of(v).failed_mask, 1u << k);
	crash_copy(c, a, N, "rd-crash");
	v2 = assemble_ok(c, N);
	ck_assert_uint_eq(info_of(v2).failed_mask, 1u << k);
	ck_assert_int_eq(raid_resync_dirty(v2, &stripes, &fixed, &unv), 0);
	for (uint64_t s = 2 * BM_R; s < 3 * BM_R; s++)
		want_unv += raid_parity_member(&info.geom, s) != k;
	ck_assert_uint_eq(stripes, BM_R);
	ck_assert_uint_eq(fixed, 0);
	ck_assert_uint_eq(unv, want_unv);
	check_volume(v2, model, V, "degraded crash", seed);
	raid_close(v2);
	raid_close(v);
	mems_close(a, N);
	free(model);
}
END_TEST

/* no_bitmap=1: no bitmap in the superblock nor on the members; after a crash every stripe is
 * resynced. */
START_TEST(test_no_bitmap)
{
	const uint32_t N = BM_N + 1;
	const uint64_t S = (uint64_t)BM_N * BM_C, V = S * BM_STRIPES;
	const uint64_t size = member_size(BM_C, BM_STRIPES);
	uint64_t seed = unit_seed_for(0xdb000), stripes, fixed, unv;
	struct urand r = { seed };
	struct raid_member *a[3], *w[3], *c[3];
	struct raid_vol *v, *v2;
	struct raid_info info;
	struct raid_geom g;
	uint8_t *model = calloc(1, V);

	ck_assert_ptr_nonnull(model);
	mems_open(a, N, size, "nb");
	create_ok(a, BM_N, BM_C, 512, 1700, 1);
	for (uint32_t i = 0; i < N; i++) {
		struct raid_sb sb = newest_sb(a[i]);

		ck_assert_uint_eq(sb.bitmap_offset_bytes, 0);
		ck_assert_uint_eq(sb.bitmap_bytes, 0);
	}
	wrap_all(w, a, N, 0);
	v = assemble_ok(w, N);
	info = info_of(v);
	g = info.geom;
	ck_assert_uint_eq(info.bitmap_regions, 0);
	ck_assert_uint_eq(info.dirty_regions, 0);
	for (int i = 0; i < 10; i++) {
		uint64_t off = urand_below(&r, V - 3 * S);

		write_model(v, model, &r, off, urand_range(&r, 1, 3 * S), "no bitmap", seed);
	}
	ck_assert_uint_eq(info_of(v).dirty_regions, 0);
	bitmaps_are(a, N, 0, "no bitmap");
	crash_copy(c, a, N, "nb-crash");
	corrupt(c[raid_parity_member(&g, 7)], &g, 7, 100);
	corrupt(c[raid_parity_member(&g, 401)], &g, 401, 200);
	v2 = assemble_ok(c, N);
	ck_assert_int_eq(info_of(v2).was_dirty, 1);
	ck_assert_int_eq(raid_resync_dirty(v2, &stripes, &fixed, &unv), 0);
	ck_assert_uint_eq(stripes, BM_STRIPES);
	ck_assert_uint_eq(fixed, 2);
	ck_assert_uint_eq(unv, 0);
	check_stripes(v2, 0, "no bitmap, resynced", seed);
	check_volume(v2, model, V, "no bitmap, resynced", seed);
	raid_close(v2);
	raid_close(v);
	mems_close(a, N);
	free(model);
}
END_TEST

/* ---- scrub -------------------------------------------------------------------------------- */

START_TEST(test_scrub_repair)
{
	const uint32_t n = 3, N = 4, C = 4 * KIB;
	const uint64_t stripes = 16, S = (uint64_t)n * C, V = S * stripes;
	uint64_t seed = unit_seed_for(0xdc000), fixed;
	struct urand r = { seed };
	struct raid_member *w[4], *inner;
	struct raid_vol *v;
	struct raid_geom g;
	uint8_t *model = malloc(V), one;

	ck_assert_ptr_nonnull(model);
	for (uint32_t i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "scrub%u", i);
		ck_assert_int_eq(raid_member_open_mem(name, member_size(C, stripes), &inner), 0);
		w[i] = fault_wrap(inner, 1);
	}
	create_ok(w, n, C, 512, 1800, 0);
	v = assemble_ok(w, N);
	g = info_of(v).geom;
	urand_fill(&r, model, V);
	ck_assert_int_eq(raid_write(v, model, 0, V), 0);
	/* a parity chunk: found (where), repaired, the data untouched */
	for (int it = 0; it < 8; it++) {
		uint64_t s = urand_below(&r, stripes);
		uint32_t o = (uint32_t)urand_below(&r, C), bad = 0xffffffffu;

		corrupt(w[raid_parity_member(&g, s)], &g, s, o);
		ck_assert_int_eq(raid_check_stripe(v, s, &bad), -EILSEQ);
		ck_assert_uint_eq(bad, o);
		ck_assert_int_eq(raid_repair_stripe(v, s), 0);
		ck_assert_int_eq(raid_check_stripe(v, s, NULL), 0);
	}
	check_volume(v, model, V, "parity repaired", seed);
	/* a data chunk: repair makes the parity agree with the data (it cannot know better) */
	corrupt(w[raid_data_member(&g, 5, 1)], &g, 5, 9);
	ck_assert_int_eq(raid_check_stripe(v, 5, NULL), -EILSEQ);
	ck_assert_int_eq(raid_repair_stripe(v, 5), 0);
	ck_assert_int_eq(raid_check_stripe(v, 5, NULL), 0);
	ck_assert_int_eq(raid_read(v, &one, 5 * S + C + 9, 1), 0);
	ck_assert_uint_eq(one, model[5 * S + C + 9] ^ 0x5a);
	model[5 * S + C + 9] ^= 0x5a;
	/* resync_all counts what it fixes */
	corrupt(w[raid_parity_member(&g, 0)], &g, 0, 0);
	corrupt(w[raid_parity_member(&g, 9)], &g, 9, C - 1);
	corrupt(w[raid_parity_member(&g, 15)], &g, 15, 1234);
	ck_assert_int_eq(raid_resync_all(v, &fixed), 0);
	ck_assert_uint_eq(fixed, 3);
	check_stripes(v, 0, "resync_all", seed);
	ck_assert_int_eq(raid_repair_stripe(v, stripes), -ERANGE);
	ck_assert_int_eq(raid_check_stripe(v, stripes, NULL), -ERANGE);
	/* degraded: nothing to compare against */
	fault_die(w[2]);
	check_volume(v, model, V, "degraded scrub", seed);
	ck_assert_int_eq(raid_check_stripe(v, 3, NULL), -EAGAIN);
	ck_assert_int_eq(raid_repair_stripe(v, 3), -EAGAIN);
	raid_close(v);
	free(model);
}
END_TEST

/* ---- the suite --------------------------------------------------------------------------- */

static Suite *degraded_suite(void)
{
	Suite *s = suite_create("degraded");
	TCase *tc;

	tc = tcase_create("reads");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_degraded_read, 0, dr_cases());
	suite_add_tcase(s, tc);

	tc = tcase_create("writes+rebuild");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_degraded_write_rebuild, 0, (int)NR_DW_GEOMS * 3);
	tcase_add_test(tc, test_rebuild_concurrent);
	tcase_add_loop_test(tc, test_rebuild_resume, 0, 2);
	tcase_add_test(tc, test_rebuild_target_fails);
	tcase_add_test(tc, test_rebuild_refusals);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_double_failure);
	tcase_add_loop_test(tc, test_stale_member, 0, 4);
	tcase_add_loop_test(tc, test_missing_member, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("bitmap");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_bitmap);
	tcase_add_test(tc, test_bitmap_cleaner);
	tcase_add_test(tc, test_resync_degraded);
	tcase_add_test(tc, test_no_bitmap);
	tcase_add_test(tc, test_scrub_repair);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(degraded_suite());
}

/* raid/raid.h over in-memory members (raid_member_open_mem), a sparse in-memory member (for the
 * geometry sweep) and a fault-injecting member that wraps either (both in fakes.h): create/assemble
 * across the sweep, random I/O against a reference model with the parity invariant after every
 * write, concurrent writers, every create/assemble refusal, the dirty flag, the superblock
 * sequence, and failing members (one failing member is marked failed and absorbed:
 * docs/raid-resilience.md; test_degraded.c covers degraded I/O, rebuild and the bitmap in depth).
 * UNIT_SEED=<n> replays a run (the seed is printed); TANDEM_TEST_LOG=1 shows the library's log. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raid/layout.h"
#include "raid/member.h"
#include "raid/raid.h"
#include "raid/superblock.h"
#include "raid/util.h"
#include "tests/unit/fakes.h"
#include "tests/unit/unit.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define WHY 512

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t member_size(uint32_t chunk, uint64_t stripes, uint64_t extra)
{
	return RAID_DATA_OFFSET_BYTES + stripes * chunk + extra;
}

/* Fresh mem members holding a copy of `src`'s bytes: what a crash would leave on disk. */
static void mems_snapshot(struct raid_member **dst, struct raid_member **src, uint32_t nr,
			  uint64_t size, const char *prefix)
{
	mems_open(dst, nr, size, prefix);
	for (uint32_t i = 0; i < nr; i++) {
		uint8_t *from = raid_member_mem(src[i]);

		ck_assert_ptr_nonnull(from);
		memcpy(raid_member_mem(dst[i]), from,
		       size < src[i]->size_bytes ? size : src[i]->size_bytes);
	}
}

static struct raid_create_params cparams(uint32_t nr_data, uint32_t chunk, uint32_t block,
					 uint64_t volid)
{
	struct raid_create_params p = {
		.nr_data = nr_data, .chunk_bytes = chunk, .block_bytes = block, .volid = volid,
	};
	return p;
}

static void create_ok(struct raid_member **m, uint32_t nr_data, uint32_t chunk, uint32_t block,
		      uint64_t volid)
{
	struct raid_create_params p = cparams(nr_data, chunk, block, volid);
	char why[WHY] = "";
	int err = raid_create(m, nr_data + 1, &p, why, sizeof(why));

	ck_assert_msg(err == 0, "create %uD+1P chunk %u block %u: %d (%s)", nr_data, chunk, block,
		      err, why);
}

static struct raid_vol *assemble_ok(struct raid_member **m, uint32_t nr)
{
	struct raid_assemble_params p = { 0 };
	struct raid_vol *v = NULL;
	char why[WHY] = "";
	int err = raid_assemble(m, nr, &p, &v, why, sizeof(why));

	ck_assert_msg(err == 0, "assemble: %d (%s)", err, why);
	ck_assert_ptr_nonnull(v);
	return v;
}

/* Assemble must fail with `want` and a `why` containing each of the NULL-terminated strings. */
static void assemble_refused(struct raid_member **m, uint32_t nr,
			     const struct raid_assemble_params *p, int want, ...)
{
	struct raid_vol *v = NULL;
	char why[WHY] = "";
	int err = raid_assemble(m, nr, p, &v, why, sizeof(why));
	va_list ap;
	const char *s;

	ck_assert_msg(err == want, "assemble: %d (%s), want %d", err, why, want);
	ck_assert_ptr_null(v);
	va_start(ap, want);
	while ((s = va_arg(ap, const char *)))
		ck_assert_msg(strstr(why, s) != NULL, "why \"%s\" lacks \"%s\"", why, s);
	va_end(ap);
}

static void create_refused(struct raid_member **m, uint32_t nr,
			   const struct raid_create_params *p, int want, const char *why_has)
{
	char why[WHY] = "";
	int err = raid_create(m, nr, p, why, sizeof(why));

	ck_assert_msg(err == want, "create: %d (%s), want %d", err, why, want);
	ck_assert_msg(strstr(why, why_has) != NULL, "why \"%s\" lacks \"%s\"", why, why_has);
}

/* The parity invariant on every stripe. */
static void check_all_stripes(struct raid_vol *v, const char *ctx, uint64_t seed, int op)
{
	struct raid_info info;

	raid_get_info(v, &info);
	for (uint64_t s = 0; s < raid_nr_stripes(&info.geom); s++) {
		uint32_t bad = 0;
		int err = raid_check_stripe(v, s, &bad);

		if (err)
			ck_abort_msg("%s (seed %" PRIu64 ", op %d): stripe %" PRIu64
				     " parity check %d at chunk byte %u", ctx, seed, op, s, err, bad);
	}
}

/* Read the whole volume and compare it to the model. */
static void check_volume(struct raid_vol *v, const uint8_t *model, uint8_t *buf, uint64_t vol_bytes,
			 const char *ctx, uint64_t seed, int op)
{
	int err = raid_read(v, buf, 0, vol_bytes);

	if (err)
		ck_abort_msg("%s (seed %" PRIu64 ", op %d): read of the volume: %d", ctx, seed, op, err);
	if (memcmp(buf, model, vol_bytes) != 0) {
		uint64_t i = 0;

		while (buf[i] == model[i])
			i++;
		ck_abort_msg("%s (seed %" PRIu64 ", op %d): volume byte %" PRIu64 " is %#x, model %#x",
			     ctx, seed, op, i, buf[i], model[i]);
	}
}

/* Read the superblock in `slot` of an in-memory member. */
static int slot_sb(struct raid_member *m, int slot, struct raid_sb *sb)
{
	char why[WHY];

	return raid_sb_decode(raid_member_mem(m) + (size_t)slot * RAID_SB_BYTES, sb, why, sizeof(why));
}

/* ---- create + assemble + info across the geometry sweep ---------------------------------- */

static const uint32_t sweep_chunks[] = { 4 * KIB, 16 * KIB, 64 * KIB, MIB };

/* Loop index: members (3..16) x chunk (4K, 16K, 64K, 1M) x block (512, 4096). */
START_TEST(test_geometry_sweep)
{
	const uint32_t N = 3 + (uint32_t)_i / 8, n = N - 1;
	const uint32_t C = sweep_chunks[(_i / 2) % 4], bs = (_i % 2) ? 4096 : 512;
	const uint64_t stripes = C >= MIB ? 2 : C >= 64 * KIB ? 3 : 5;
	const uint64_t size = member_size(C, stripes, C / 2 + 512); /* a partial chunk at the end */
	const uint64_t S = (uint64_t)n * C, V = S * stripes, volid = 1000 + (uint64_t)_i;
	struct urand r = { unit_seed_for(0x5eed0000 + (uint64_t)_i) };
	struct raid_member *m[RAID_MAX_MEMBERS];
	struct raid_vol *v;
	struct raid_info info;
	uint8_t *data, *back, zero16[16] = { 0 };

	for (uint32_t i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "sweep%u", i);
		m[i] = sparse_open(name, size);
	}
	create_ok(m, n, C, bs, volid);
	v = assemble_ok(m, N);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.nr_members, N);
	ck_assert_uint_eq(info.geom.nr_data, n);
	ck_assert_uint_eq(info.geom.chunk_bytes, C);
	ck_assert_uint_eq(info.geom.block_bytes, bs);
	ck_assert_uint_eq(info.geom.data_offset_bytes, RAID_DATA_OFFSET_BYTES);
	ck_assert_uint_eq(info.geom.member_data_bytes, stripes * C);
	ck_assert_uint_eq(info.volume_bytes, V);
	ck_assert_uint_eq(info.volid, volid);
	ck_assert_uint_eq(info.sequence, 3);
	ck_assert_int_eq(info.was_dirty, 0);
	ck_assert_msg(memcmp(info.array_uuid, zero16, 16) != 0, "uuid is zero");
	ck_assert_uint_eq(info.array_uuid[6] >> 4, 4);       /* RFC 4122 version 4 */
	ck_assert_uint_eq(info.array_uuid[8] & 0xc0, 0x80);  /* variant */
	ck_assert_uint_eq(info.stats.full_stripe_writes + info.stats.rmw_writes +
			  info.stats.rcw_writes + info.stats.member_reads + info.stats.member_writes, 0);
	for (uint32_t i = 0; i < N; i++)
		ck_assert_str_eq(raid_member_name(v, i), m[i]->name);
	ck_assert_ptr_null(raid_member_name(v, N));
	/* a fresh volume reads as zeros with consistent parity */
	back = malloc(2 * C); /* a stripe's worth would do; reads below go chunk by chunk */
	data = malloc(V);
	ck_assert_ptr_nonnull(back);
	ck_assert_ptr_nonnull(data);
	for (uint64_t o = 0; o < V; o += C) {
		ck_assert_int_eq(raid_read(v, back, o, C), 0);
		ck_assert_msg(all_zero(back, C), "a fresh volume is not zero at %" PRIu64, o);
	}
	/* fill it (full-stripe writes) and find every chunk where the layout puts it */
	fill_stamped(&r, data, V);
	ck_assert_int_eq(raid_write(v, data, 0, V), 0);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.stats.full_stripe_writes, stripes);
	ck_assert_uint_eq(info.stats.rmw_writes + info.stats.rcw_writes, 0);
	ck_assert_uint_eq(info.stats.member_writes, stripes * N);
	for (uint64_t o = 0; o < V; o += 2 * C) { /* 2 chunks at a time: crosses members */
		uint64_t len = V - o < 2 * C ? V - o : 2 * C;

		ck_assert_int_eq(raid_read(v, back, o, len), 0);
		ck_assert_msg(memcmp(back, data + o, len) == 0, "read back differs at %" PRIu64, o);
	}
	/* each chunk on the member the doc's formula names; parity their XOR (raid_check_stripe
	 * by hand) */
	for (uint64_t s = 0; s < stripes; s++) {
		uint64_t moff = RAID_DATA_OFFSET_BYTES + s * C;
		uint8_t *on = back + C;

		ck_assert_int_eq(raid_member_pread(m[raid_parity_member(&info.geom, s)], back, C, moff),
				 0);
		for (uint32_t d = 0; d < n; d++) {
			uint32_t mi = (N - 1 - (uint32_t)(s % N) + 1 + d) % N; /* the doc's formula */

			ck_assert_int_eq(raid_member_pread(m[mi], on, C, moff), 0);
			if (memcmp(on, data + s * S + (uint64_t)d * C, C) != 0)
				ck_abort_msg("stripe %" PRIu64 " chunk %u is not on member %u", s, d, mi);
			txor_into(back, on, C);
		}
		ck_assert_msg(all_zero(back, C), "stripe %" PRIu64 ": parity is not the XOR", s);
	}
	/* the last block, the first block; ranges beyond the end */
	ck_assert_int_eq(raid_write(v, data, V - bs, bs), 0);
	ck_assert_int_eq(raid_write(v, data + V - bs, 0, bs), 0);
	ck_assert_int_eq(raid_read(v, back, V - bs, bs), 0);
	ck_assert_mem_eq(back, data, bs);
	ck_assert_int_eq(raid_read(v, back, 0, bs), 0);
	ck_assert_mem_eq(back, data + V - bs, bs);
	ck_assert_int_eq(raid_read(v, back, V, 0), 0);
	ck_assert_int_eq(raid_write(v, back, V, 0), 0);
	ck_assert_int_eq(raid_read(v, back, V - bs, 2 * bs), -ERANGE);
	ck_assert_int_eq(raid_write(v, back, V - bs, 2 * bs), -ERANGE);
	ck_assert_int_eq(raid_read(v, back, V, bs), -ERANGE);
	ck_assert_int_eq(raid_write(v, back, V + bs, bs), -ERANGE);
	ck_assert_int_eq(raid_read(v, back, UINT64_MAX, 1), -ERANGE);
	ck_assert_int_eq(raid_write(v, back, bs, UINT64_MAX), -ERANGE);
	ck_assert_int_eq(raid_check_stripe(v, stripes, NULL), -ERANGE);
	check_all_stripes(v, "edges", 0, 0);
	ck_assert_int_eq(raid_flush(v), 0);
	raid_close(v);
	free(data);
	free(back);
}
END_TEST

/* ---- random I/O against a reference model ------------------------------------------------ */

struct rio_geom {
	uint32_t n, chunk, block, stripes, ops;
};

static const struct rio_geom rio_geoms[] = {
	{ 2, 4 * KIB, 512, 10, 300 },   { 3, 4 * KIB, 512, 10, 300 }, { 3, 16 * KIB, 4096, 8, 250 },
	{ 4, 4 * KIB, 4096, 10, 250 },  { 5, 64 * KIB, 512, 4, 120 }, { 7, 4 * KIB, 512, 8, 200 },
	{ 15, 4 * KIB, 512, 5, 150 },   { 15, 16 * KIB, 4096, 3, 80 }, { 2, MIB, 4096, 3, 40 },
};
#define NR_RIO (sizeof(rio_geoms) / sizeof(rio_geoms[0]))

/* What the doc's write table predicts for a write of [off, off+len): per stripe piece full-stripe,
 * or whichever of rmw/rcw reads fewer members (either on a tie). */
struct cost {
	uint64_t full, rmw, rcw, either, reads, writes;
};

static void predict(const struct raid_geom *g, uint64_t off, uint64_t len, struct cost *c)
{
	const uint64_t C = g->chunk_bytes, S = raid_stripe_bytes(g);
	const uint32_t n = g->nr_data;

	memset(c, 0, sizeof(*c));
	while (len) {
		uint64_t a = off % S, b = a + len < S ? a + len : S;
		uint32_t d0 = (uint32_t)(a / C), d1 = (uint32_t)((b - 1) / C), touched = d1 - d0 + 1;
		uint64_t lo = C, hi = 0, rmw, rcw;

		if (a == 0 && b == S) {
			c->full++;
			c->writes += n + 1;
		} else {
			for (uint32_t d = d0; d <= d1; d++) {
				uint64_t is = d == d0 ? a % C : 0, ie = d == d1 ? (b - 1) % C + 1 : C;

				lo = is < lo ? is : lo;
				hi = ie > hi ? ie : hi;
			}
			rmw = touched + 1;
			rcw = n - touched;
			for (uint32_t d = d0; d <= d1; d++) {
				uint64_t is = d == d0 ? a % C : 0, ie = d == d1 ? (b - 1) % C + 1 : C;

				rcw += is != lo || ie != hi;
			}
			if (rcw < rmw)
				c->rcw++;
			else if (rmw < rcw)
				c->rmw++;
			else
				c->either++;
			c->reads += rcw < rmw ? rcw : rmw;
			c->writes += touched + 1;
		}
		off += b - a;
		len -= b - a;
	}
}

/* Random reads and writes of every kind against a model; after every write: the volume equals the
 * model, every stripe's parity holds, and the member I/O matches the doc's write table. */
static void run_random_io(const struct rio_geom *rg, uint64_t gran, uint64_t seed)
{
	const uint32_t N = rg->n + 1;
	struct urand r = { seed };
	struct raid_member *m[RAID_MAX_MEMBERS];
	struct raid_vol *v;
	struct raid_info info, before;
	uint8_t *model, *buf, *back;
	uint64_t V;
	uint64_t kinds[W_KINDS] = { 0 };
	char ctx[128];

	snprintf(ctx, sizeof(ctx), "%uD+1P chunk %u block %u gran %" PRIu64, rg->n, rg->chunk,
		 rg->block, gran);
	mems_open(m, N, member_size(rg->chunk, rg->stripes, rg->chunk / 2), "rio");
	create_ok(m, rg->n, rg->chunk, rg->block, 7);
	v = assemble_ok(m, N);
	raid_get_info(v, &info);
	V = info.volume_bytes;
	ck_assert_uint_eq(V, (uint64_t)rg->n * rg->chunk * rg->stripes);
	model = calloc(1, V);
	buf = malloc(V);
	back = malloc(V);
	ck_assert(model && buf && back);
	for (int op = 0; op < (int)rg->ops; op++) {
		uint64_t off, len;
		int err;

		if (urand_below(&r, 4) == 0) {
			off = urand_below(&r, V / gran) * gran;
			len = urand_range(&r, 1, (V - off) / gran) * gran;
			err = raid_read(v, back, off, len);
			if (err || memcmp(back, model + off, len) != 0)
				ck_abort_msg("%s (seed %" PRIu64 ", op %d): read %" PRIu64 "+%" PRIu64
					     ": %d / differs", ctx, seed, op, off, len, err);
			continue;
		}
		{
			uint64_t nw = 0;
			int k;

			for (int i = 0; i < W_KINDS; i++)
				nw += kinds[i];
			/* every kind once first, then at random */
			k = nw < W_KINDS ? (int)nw : (int)urand_below(&r, W_KINDS);
			struct cost want;

			gen_write(&r, &info.geom, rg->stripes, gran, k, &off, &len);
			kinds[k]++;
			if (urand_below(&r, 8) == 0)
				memset(buf, (int)urand_below(&r, 2) * 0xff, len);
			else
				urand_fill(&r, buf, len);
			predict(&info.geom, off, len, &want);
			raid_get_info(v, &before);
			err = raid_write(v, buf, off, len);
			if (err)
				ck_abort_msg("%s (seed %" PRIu64 ", op %d): write %" PRIu64 "+%" PRIu64
					     ": %d", ctx, seed, op, off, len, err);
			memcpy(model + off, buf, len);
			raid_get_info(v, &info);
			{
				uint64_t full = info.stats.full_stripe_writes - before.stats.full_stripe_writes;
				uint64_t rmw = info.stats.rmw_writes - before.stats.rmw_writes;
				uint64_t rcw = info.stats.rcw_writes - before.stats.rcw_writes;
				uint64_t rd = info.stats.member_reads - before.stats.member_reads;
				uint64_t wr = info.stats.member_writes - before.stats.member_writes;

				if (full != want.full || rmw < want.rmw || rcw < want.rcw ||
				    rmw + rcw != want.rmw + want.rcw + want.either || rd != want.reads ||
				    wr != want.writes)
					ck_abort_msg("%s (seed %" PRIu64 ", op %d): write %" PRIu64
						     "+%" PRIu64 ": full/rmw/rcw/reads/writes %" PRIu64
						     "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
						     ", doc's table says %" PRIu64 "/%" PRIu64 "/%" PRIu64
						     "(+%" PRIu64 " either)/%" PRIu64 "/%" PRIu64,
						     ctx, seed, op, off, len, full, rmw, rcw, rd, wr,
						     want.full, want.rmw, want.rcw, want.either, want.reads,
						     want.writes);
			}
		}
		check_volume(v, model, back, V, ctx, seed, op);
		check_all_stripes(v, ctx, seed, op);
	}
	/* with n = 2 a partial write reads the other chunk (rcw, 1 read) rather than old data and
	 * parity (rmw, 2 reads): rmw never runs */
	raid_get_info(v, &info);
	ck_assert_msg(info.stats.full_stripe_writes > 0 && (info.stats.rmw_writes > 0 || rg->n == 2) &&
		      info.stats.rcw_writes > 0,
		      "%s (seed %" PRIu64 "): not every write path ran: full %" PRIu64 " rmw %" PRIu64
		      " rcw %" PRIu64, ctx, seed, info.stats.full_stripe_writes, info.stats.rmw_writes,
		      info.stats.rcw_writes);
	for (int k = 0; k < W_KINDS; k++)
		ck_assert_msg(kinds[k] > 0, "%s (seed %" PRIu64 "): write kind %d never ran", ctx, seed,
			      k);
	raid_close(v);
	free(model);
	free(buf);
	free(back);
}

START_TEST(test_random_io)
{
	const struct rio_geom *rg = &rio_geoms[_i];
	uint64_t seed = unit_seed_for(0x10000 + (uint64_t)_i);

	run_random_io(rg, rg->block, seed);
}
END_TEST

/* The API takes bytes: odd offsets and lengths work too. */
START_TEST(test_random_io_bytes)
{
	static const struct rio_geom g[] = {
		{ 3, 4 * KIB, 512, 6, 250 }, { 5, 16 * KIB, 4096, 4, 150 }, { 2, 4 * KIB, 512, 6, 200 },
	};
	uint64_t seed = unit_seed_for(0x20000 + (uint64_t)_i);

	run_random_io(&g[_i], 1, seed);
}
END_TEST

/* The write paths one by one on 3D+1P (C = 4 KiB): the member I/O of the doc's table. */
START_TEST(test_write_paths)
{
	struct raid_member *m[4];
	struct raid_vol *v;
	struct raid_info a, b;
	uint8_t buf[3 * 4096 * 3];

	mems_open(m, 4, member_size(4096, 8, 0), "paths");
	create_ok(m, 3, 4096, 512, 9);
	v = assemble_ok(m, 4);
	memset(buf, 0x33, sizeof(buf));
#define DELTA(field) (b.stats.field - a.stats.field)
	/* full stripe: 0 reads, N writes */
	raid_get_info(v, &a);
	ck_assert_int_eq(raid_write(v, buf, 3 * 4096, 3 * 4096), 0);
	raid_get_info(v, &b);
	ck_assert_uint_eq(DELTA(full_stripe_writes), 1);
	ck_assert_uint_eq(DELTA(member_reads), 0);
	ck_assert_uint_eq(DELTA(member_writes), 4);
	/* one block: rmw, reads old data + parity, writes both */
	raid_get_info(v, &a);
	ck_assert_int_eq(raid_write(v, buf, 512, 512), 0);
	raid_get_info(v, &b);
	ck_assert_uint_eq(DELTA(rmw_writes), 1);
	ck_assert_uint_eq(DELTA(member_reads), 2);
	ck_assert_uint_eq(DELTA(member_writes), 2);
	/* two whole chunks of three: rcw reads the third chunk only */
	raid_get_info(v, &a);
	ck_assert_int_eq(raid_write(v, buf, 0, 2 * 4096), 0);
	raid_get_info(v, &b);
	ck_assert_uint_eq(DELTA(rcw_writes), 1);
	ck_assert_uint_eq(DELTA(member_reads), 1);
	ck_assert_uint_eq(DELTA(member_writes), 3);
	/* two full stripes plus a block on each side: rmw, 2 full, rmw */
	raid_get_info(v, &a);
	ck_assert_int_eq(raid_write(v, buf, 3 * 4096 - 512, 2 * 3 * 4096 + 1024), 0);
	raid_get_info(v, &b);
	ck_assert_uint_eq(DELTA(full_stripe_writes), 2);
	ck_assert_uint_eq(DELTA(rmw_writes), 2);
	ck_assert_uint_eq(DELTA(rcw_writes), 0);
#undef DELTA
	check_all_stripes(v, "paths", 0, 0);
	raid_close(v);
}
END_TEST

/* ---- concurrency ------------------------------------------------------------------------- */

#define CW_THREADS 8
#define CW_WRITES 250

struct cw_geom {
	uint32_t n, chunk, block, stripes;
};

static const struct cw_geom cw_geoms[] = {
	{ 3, 4 * KIB, 512, 6 }, { 4, 16 * KIB, 4096, 4 }, { 15, 4 * KIB, 512, 3 },
};

struct cw_ctx {
	struct raid_vol *v;
	uint64_t vol_bytes, stripe_bytes, nr_stripes;
	uint32_t block;
	uint64_t seed;
	volatile int stop;
	int writers_left;               /* __atomic */
	uint64_t off[CW_THREADS][CW_WRITES], len[CW_THREADS][CW_WRITES];
	int nr_done[CW_THREADS];
	int err[CW_THREADS + 2];
};

struct cw_arg {
	struct cw_ctx *c;
	int t;
};

/* Every 8-byte word of a block written by thread t's write w holds the same tag. */
static uint64_t cw_tag(int t, int w, uint64_t lba)
{
	return ((uint64_t)(t + 1) << 56) | ((uint64_t)(w + 1) << 32) | (lba & 0xffffffffu);
}

static void *cw_writer(void *p)
{
	struct cw_arg *a = p;
	struct cw_ctx *c = a->c;
	struct urand r = { c->seed ^ ((uint64_t)a->t << 40) };
	uint64_t nblocks = c->vol_bytes / c->block, max = 2 * c->stripe_bytes / c->block;
	uint8_t *buf = malloc(max * c->block);

	if (!buf) {
		c->err[a->t] = -ENOMEM;
		return NULL;
	}
	for (int w = 0; w < CW_WRITES; w++) {
		uint64_t lba = urand_below(&r, nblocks);
		uint64_t n = urand_range(&r, 1, max < nblocks - lba ? max : nblocks - lba);
		int err;

		if (urand_below(&r, 4) == 0) { /* some whole stripes */
			uint64_t per = c->stripe_bytes / c->block;

			lba = urand_below(&r, c->nr_stripes) * per;
			n = per;
		}
		for (uint64_t b = 0; b < n; b++) {
			uint64_t tag = cw_tag(a->t, w, lba + b);

			for (uint32_t i = 0; i < c->block; i += 8)
				memcpy(buf + b * c->block + i, &tag, 8);
		}
		c->off[a->t][w] = lba * c->block;
		c->len[a->t][w] = n * c->block;
		err = raid_write(c->v, buf, lba * c->block, n * c->block);
		if (err) {
			c->err[a->t] = err;
			break;
		}
		c->nr_done[a->t] = w + 1;
	}
	free(buf);
	__atomic_sub_fetch(&c->writers_left, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* While the writers run: stripe checks (under the stripe lock) always see consistent parity. */
static void *cw_checker(void *p)
{
	struct cw_ctx *c = p;
	uint64_t s = 0;

	while (__atomic_load_n(&c->writers_left, __ATOMIC_SEQ_CST) > 0) {
		int err = raid_check_stripe(c->v, s, NULL);

		if (err) {
			c->err[CW_THREADS] = err;
			break;
		}
		s = (s + 1) % c->nr_stripes;
	}
	return NULL;
}

/* And readers: a read racing a write may see either, but it must succeed. */
static void *cw_reader(void *p)
{
	struct cw_ctx *c = p;
	struct urand r = { c->seed ^ 0xabcdef };
	uint8_t *buf = malloc(c->stripe_bytes);

	while (buf && __atomic_load_n(&c->writers_left, __ATOMIC_SEQ_CST) > 0) {
		uint64_t off = urand_below(&r, c->vol_bytes / c->block) * c->block;
		uint64_t len = c->vol_bytes - off < c->stripe_bytes ? c->vol_bytes - off : c->stripe_bytes;
		int err = raid_read(c->v, buf, off, len);

		if (err) {
			c->err[CW_THREADS + 1] = err;
			break;
		}
	}
	free(buf);
	return NULL;
}

START_TEST(test_concurrent_writes)
{
	const struct cw_geom *g = &cw_geoms[_i];
	const uint32_t N = g->n + 1;
	struct raid_member *m[RAID_MAX_MEMBERS];
	struct cw_ctx *c = calloc(1, sizeof(*c));
	struct cw_arg args[CW_THREADS];
	pthread_t th[CW_THREADS + 2];
	struct raid_info info;
	uint8_t *vol;
	uint64_t written_blocks = 0;

	ck_assert_ptr_nonnull(c);
	mems_open(m, N, member_size(g->chunk, g->stripes, 0), "cw");
	create_ok(m, g->n, g->chunk, g->block, 11);
	c->v = assemble_ok(m, N);
	raid_get_info(c->v, &info);
	c->vol_bytes = info.volume_bytes;
	c->stripe_bytes = raid_stripe_bytes(&info.geom);
	c->nr_stripes = g->stripes;
	c->block = g->block;
	c->seed = unit_seed_for(0x30000 + (uint64_t)_i);
	c->writers_left = CW_THREADS;
	for (int t = 0; t < CW_THREADS; t++) {
		args[t].c = c;
		args[t].t = t;
		ck_assert_int_eq(pthread_create(&th[t], NULL, cw_writer, &args[t]), 0);
	}
	ck_assert_int_eq(pthread_create(&th[CW_THREADS], NULL, cw_checker, c), 0);
	ck_assert_int_eq(pthread_create(&th[CW_THREADS + 1], NULL, cw_reader, c), 0);
	for (int t = 0; t < CW_THREADS + 2; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < CW_THREADS; t++)
		ck_assert_msg(c->err[t] == 0, "seed %" PRIu64 ": writer %d: %d", c->seed, t, c->err[t]);
	ck_assert_msg(c->err[CW_THREADS] == 0, "seed %" PRIu64 ": parity check during writes: %d",
		      c->seed, c->err[CW_THREADS]);
	ck_assert_msg(c->err[CW_THREADS + 1] == 0, "seed %" PRIu64 ": read during writes: %d",
		      c->seed, c->err[CW_THREADS + 1]);
	check_all_stripes(c->v, "after concurrent writes", c->seed, 0);
	/* every block is whole: one write's tag in every word, that write covered this block */
	vol = malloc(c->vol_bytes);
	ck_assert_ptr_nonnull(vol);
	ck_assert_int_eq(raid_read(c->v, vol, 0, c->vol_bytes), 0);
	for (uint64_t lba = 0; lba < c->vol_bytes / g->block; lba++) {
		const uint8_t *blk = vol + lba * g->block;
		uint64_t tag, pos = lba * g->block;
		int t, w;

		memcpy(&tag, blk, 8);
		for (uint32_t i = 8; i < g->block; i += 8)
			if (memcmp(blk + i, &tag, 8) != 0)
				ck_abort_msg("seed %" PRIu64 ": block %" PRIu64 " is torn at byte %u",
					     c->seed, lba, i);
		if (tag == 0) {
			for (t = 0; t < CW_THREADS; t++)
				for (w = 0; w < c->nr_done[t]; w++)
					if (pos >= c->off[t][w] && pos < c->off[t][w] + c->len[t][w])
						ck_abort_msg("seed %" PRIu64 ": block %" PRIu64
							     " was written but reads zeros", c->seed, lba);
			continue;
		}
		written_blocks++;
		t = (int)(tag >> 56) - 1;
		w = (int)((tag >> 32) & 0xffffff) - 1;
		if ((tag & 0xffffffffu) != (lba & 0xffffffffu) || t < 0 || t >= CW_THREADS || w < 0 ||
		    w >= c->nr_done[t] || pos < c->off[t][w] || pos >= c->off[t][w] + c->len[t][w])
			ck_abort_msg("seed %" PRIu64 ": block %" PRIu64 " holds tag %#" PRIx64
				     ", which no write put there", c->seed, lba, tag);
	}
	ck_assert_uint_gt(written_blocks, 0);
	raid_get_info(c->v, &info);
	ck_assert_uint_gt(info.stats.full_stripe_writes, 0);
	ck_assert_uint_gt(info.stats.rmw_writes + info.stats.rcw_writes, 0);
	raid_close(c->v);
	free(vol);
	free(c);
}
END_TEST

/* ---- create refusals --------------------------------------------------------------------- */

#define SMALL_C (4 * KIB)
#define SMALL_SIZE (RAID_DATA_OFFSET_BYTES + 16 * SMALL_C)

START_TEST(test_create_wrong_count)
{
	struct raid_member *m[5];
	struct raid_create_params p = cparams(3, SMALL_C, 512, 1);

	mems_open(m, 5, SMALL_SIZE, "cnt");
	create_refused(m, 3, &p, -EINVAL, "needs 4 members, 3 given");
	create_refused(m, 5, &p, -EINVAL, "needs 4 members, 5 given");
	p.nr_data = 4;
	create_refused(m, 4, &p, -EINVAL, "needs 5 members, 4 given");
	/* nothing was written */
	for (uint32_t i = 0; i < 5; i++)
		for (uint32_t b = 0; b < 2 * RAID_SB_BYTES; b++)
			if (raid_member_mem(m[i])[b])
				ck_abort_msg("refused create wrote to member %u", i);
	mems_close(m, 5);
}
END_TEST

START_TEST(test_create_bad_geometry)
{
	struct raid_member *m[4];
	struct raid_create_params p;

	mems_open(m, 4, SMALL_SIZE, "geo");
	p = cparams(3, 3000, 512, 1);
	create_refused(m, 4, &p, -EINVAL, "chunk");
	p = cparams(3, 2 * MIB, 512, 1);
	create_refused(m, 4, &p, -EINVAL, "chunk");
	p = cparams(3, SMALL_C, 1024, 1);
	create_refused(m, 4, &p, -EINVAL, "block");
	p = cparams(1, SMALL_C, 512, 1);
	create_refused(m, 2, &p, -EINVAL, "n must be");
	p = cparams(16, SMALL_C, 512, 1);
	create_refused(m, 4, &p, -EINVAL, "n must be");
	p = cparams(3, SMALL_C, 512, 0);
	create_refused(m, 4, &p, -EINVAL, "volid");
	mems_close(m, 4);
}
END_TEST

START_TEST(test_create_sizes)
{
	struct raid_member *m[4];
	struct raid_create_params p = cparams(3, SMALL_C, 512, 1);

	/* different sizes, whichever member differs */
	for (uint32_t odd = 0; odd < 4; odd++) {
		for (uint32_t i = 0; i < 4; i++) {
			char name[32];

			snprintf(name, sizeof(name), "sz%u", i);
			ck_assert_int_eq(raid_member_open_mem(name, SMALL_SIZE + (i == odd) * SMALL_C,
							      &m[i]), 0);
		}
		create_refused(m, 4, &p, -EINVAL, "differ in size");
		mems_close(m, 4);
	}
	/* too small for one chunk after the 4 MiB metadata */
	mems_open(m, 4, RAID_DATA_OFFSET_BYTES + SMALL_C - 1, "tiny");
	create_refused(m, 4, &p, -ENOSPC, "too small");
	mems_close(m, 4);
	mems_open(m, 4, RAID_DATA_OFFSET_BYTES, "tiny");
	create_refused(m, 4, &p, -ENOSPC, "too small");
	mems_close(m, 4);
	mems_open(m, 4, 4096, "tinier");
	create_refused(m, 4, &p, -ENOSPC, "too small");
	mems_close(m, 4);
	p.chunk_bytes = 64 * KIB;
	mems_open(m, 4, RAID_DATA_OFFSET_BYTES + 64 * KIB - 4096, "tiny64k");
	create_refused(m, 4, &p, -ENOSPC, "too small");
	mems_close(m, 4);
	/* exactly one chunk fits */
	mems_open(m, 4, RAID_DATA_OFFSET_BYTES + SMALL_C, "one");
	create_ok(m, 3, SMALL_C, 512, 1);
	mems_close(m, 4);
}
END_TEST

START_TEST(test_create_listed_twice)
{
	struct raid_member *m[4], *l[4];
	struct raid_create_params p = cparams(3, SMALL_C, 512, 1);

	mems_open(m, 4, SMALL_SIZE, "twice");
	l[0] = m[0];
	l[1] = m[1];
	l[2] = m[2];
	l[3] = m[1];
	create_refused(l, 4, &p, -EINVAL, "listed twice");
	l[3] = m[3];
	l[0] = m[3];
	create_refused(l, 4, &p, -EINVAL, "listed twice");
	mems_close(m, 4);
}
END_TEST

START_TEST(test_create_existing)
{
	struct raid_member *m[4], *other[4];
	struct raid_create_params p = cparams(3, SMALL_C, 512, 21);
	struct raid_vol *v;
	struct raid_info info;
	uint8_t uuid1[16], buf[4096];
	char why[WHY] = "";

	mems_open(m, 4, SMALL_SIZE, "ex");
	create_ok(m, 3, SMALL_C, 512, 21);
	v = assemble_ok(m, 4); /* takes the members */
	raid_get_info(v, &info);
	memcpy(uuid1, info.array_uuid, 16);
	memset(buf, 0x77, sizeof(buf));
	ck_assert_int_eq(raid_write(v, buf, 0, sizeof(buf)), 0);
	/* an assembled (dirty) array is still an array: snapshot its bytes and try again */
	mems_snapshot(other, m, 4, SMALL_SIZE, "ex-copy");
	raid_close(v);
	p.volid = 22;
	create_refused(other, 4, &p, -EEXIST, "already belongs to array");
	create_refused(other, 4, &p, -EEXIST, "create=force");
	/* one old member among blank ones is enough to refuse */
	{
		struct raid_member *mix[4];

		mems_open(mix, 4, SMALL_SIZE, "mix");
		raid_member_close(mix[2]);
		mix[2] = other[2];
		create_refused(mix, 4, &p, -EEXIST, "ex-copy2");
		mix[2] = NULL;
		raid_member_close(mix[0]);
		raid_member_close(mix[1]);
		raid_member_close(mix[3]);
	}
	p.force = 1;
	ck_assert_msg(raid_create(other, 4, &p, why, sizeof(why)) == 0, "force: %s", why);
	v = assemble_ok(other, 4);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.volid, 22);
	ck_assert_msg(memcmp(info.array_uuid, uuid1, 16) != 0, "force kept the old uuid");
	ck_assert_int_eq(info.was_dirty, 0);
	/* the old data is gone: create zeroes the data area */
	ck_assert_int_eq(raid_read(v, buf, 0, sizeof(buf)), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0);
	check_all_stripes(v, "after force", 0, 0);
	raid_close(v);
}
END_TEST

/* Create zeroes whatever was on the members, so parity holds from the start. */
START_TEST(test_create_zeroes_garbage)
{
	struct raid_member *m[5];
	struct urand r = { unit_seed_for(0x40000) };
	struct raid_vol *v;
	uint8_t *buf = malloc(4 * 16 * SMALL_C);

	ck_assert_ptr_nonnull(buf);
	mems_open(m, 5, SMALL_SIZE, "garbage");
	for (int i = 0; i < 5; i++)
		urand_fill(&r, raid_member_mem(m[i]), SMALL_SIZE);
	create_ok(m, 4, SMALL_C, 4096, 5);
	v = assemble_ok(m, 5);
	ck_assert_int_eq(raid_read(v, buf, 0, 4 * 16 * SMALL_C), 0);
	for (size_t i = 0; i < 4 * 16 * SMALL_C; i++)
		if (buf[i])
			ck_abort_msg("byte %zu not zeroed", i);
	check_all_stripes(v, "garbage", 0, 0);
	raid_close(v);
	free(buf);
}
END_TEST

/* ---- assemble refusals ------------------------------------------------------------------- */

/* Two arrays of 4 members: a* (volid 31) and b* (volid 32). */
static void two_arrays(struct raid_member **a, struct raid_member **b)
{
	mems_open(a, 4, SMALL_SIZE, "a");
	mems_open(b, 4, SMALL_SIZE, "b");
	create_ok(a, 3, SMALL_C, 512, 31);
	create_ok(b, 3, SMALL_C, 512, 32);
}

START_TEST(test_assemble_foreign_member)
{
	struct raid_member *a[4], *b[4], *l[4];
	struct raid_assemble_params p = { 0 };
	struct raid_vol *v;

	two_arrays(a, b);
	memcpy(l, a, sizeof(l));
	l[2] = b[2];
	assemble_refused(l, 4, &p, -EINVAL, "member b2", "belongs to array", "volid 32", NULL);
	l[2] = a[2];
	l[0] = b[0];
	assemble_refused(l, 4, &p, -EINVAL, "belongs to array", NULL);
	/* both still assemble afterwards: a refusal leaves the members to the caller, unchanged */
	v = assemble_ok(a, 4);
	raid_close(v);
	v = assemble_ok(b, 4);
	raid_close(v);
}
END_TEST

START_TEST(test_assemble_order)
{
	struct raid_member *a[4], *l[4];
	struct raid_assemble_params p = { 0 };

	mems_open(a, 4, SMALL_SIZE, "ord");
	create_ok(a, 3, SMALL_C, 512, 41);
	l[0] = a[1];
	l[1] = a[0];
	l[2] = a[2];
	l[3] = a[3];
	assemble_refused(l, 4, &p, -EINVAL, "ord1", "member 1", "position 0", "in order", NULL);
	l[0] = a[0];
	l[1] = a[1];
	l[2] = a[3];
	l[3] = a[2];
	assemble_refused(l, 4, &p, -EINVAL, "ord3", "in order", NULL);
	/* listed twice */
	l[2] = a[2];
	l[3] = a[2];
	assemble_refused(l, 4, &p, -EINVAL, "listed twice", NULL);
	mems_close(a, 4);
}
END_TEST

START_TEST(test_assemble_count)
{
	struct raid_member *a[4], *b[4], *l[RAID_MAX_MEMBERS + 1];
	struct raid_assemble_params p = { 0 };

	two_arrays(a, b);
	assemble_refused(a, 3, &p, -EINVAL, "the array has 4 members, 3 given", NULL);
	memcpy(l, a, 4 * sizeof(l[0]));
	l[4] = b[0];
	assemble_refused(l, 5, &p, -EINVAL, NULL);
	assemble_refused(a, 2, &p, -EINVAL, "2 members given", NULL);
	for (int i = 0; i < RAID_MAX_MEMBERS + 1; i++)
		l[i] = i < 4 ? a[i] : b[i % 4];
	assemble_refused(l, RAID_MAX_MEMBERS + 1, &p, -EINVAL, "17 members given", NULL);
	p.nr_data = 3;
	assemble_refused(a, 3, &p, -EINVAL, "needs 4 members, 3 given", NULL);
	p.nr_data = 4;
	assemble_refused(a, 4, &p, -EINVAL, "needs 5 members, 4 given", NULL);
	mems_close(a, 4);
	mems_close(b, 4);
}
END_TEST

START_TEST(test_assemble_blank)
{
	struct raid_member *a[4], *blank;
	struct raid_assemble_params p = { 0 };

	mems_open(a, 4, SMALL_SIZE, "bl");
	create_ok(a, 3, SMALL_C, 512, 51);
	ck_assert_int_eq(raid_member_open_mem("blank", SMALL_SIZE, &blank), 0);
	{
		struct raid_member *l[4] = { a[0], a[1], blank, a[3] };

		assemble_refused(l, 4, &p, -ENODATA, "blank", "not a tandem RAID member", NULL);
	}
	/* all blank: never formats */
	{
		struct raid_member *z[4];

		mems_open(z, 4, SMALL_SIZE, "zero");
		assemble_refused(z, 4, &p, -ENODATA, "zero0", "not a tandem RAID member", NULL);
		for (int i = 0; i < 4; i++)
			for (uint32_t k = 0; k < 2 * RAID_SB_BYTES; k++)
				if (raid_member_mem(z[i])[k])
					ck_abort_msg("assemble wrote to a blank member");
		mems_close(z, 4);
	}
	/* too small to hold a superblock */
	raid_member_close(blank);
	ck_assert_int_eq(raid_member_open_mem("wee", 4096, &blank), 0);
	{
		struct raid_member *l[4] = { a[0], blank, a[2], a[3] };

		assemble_refused(l, 4, &p, -EINVAL, "wee", "too small", NULL);
	}
	raid_member_close(blank);
	mems_close(a, 4);
}
END_TEST

/* Corrupt one byte of the superblock in `slot` (a CRC failure). */
static void corrupt_slot(struct raid_member *m, int slot)
{
	raid_member_mem(m)[(size_t)slot * RAID_SB_BYTES + 1000] ^= 0x10;
}

START_TEST(test_assemble_one_slot_damaged)
{
	/* _i: 0 = newest slot (0) of member 1, 1 = older slot (1) of member 1,
	 *     2 = slot 0 of member 0 and slot 1 of member 3 */
	struct raid_member *a[4], *w[4];
	struct raid_vol *v;
	struct raid_info info;
	struct raid_sb sb;
	uint8_t buf[4096];

	mems_open(a, 4, SMALL_SIZE, "dmg");
	create_ok(a, 3, SMALL_C, 512, 61);
	if (_i == 0) {
		corrupt_slot(a[1], 0);
	} else if (_i == 1) {
		corrupt_slot(a[1], 1);
	} else {
		corrupt_slot(a[0], 0);
		corrupt_slot(a[3], 1);
	}
	for (int i = 0; i < 4; i++)
		w[i] = fault_wrap(a[i], 0);
	v = assemble_ok(w, 4);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.sequence, 3);
	ck_assert_uint_eq(info.volid, 61);
	ck_assert_int_eq(info.was_dirty, 0);
	memset(buf, 0x42, sizeof(buf));
	ck_assert_int_eq(raid_write(v, buf, 8192, sizeof(buf)), 0);
	raid_close(v); /* closes the wrappers; the mem members stay */
	/* close rewrote slot 0 (sequence 4) and assembly slot 1 (sequence 3): all repaired */
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(slot_sb(a[i], 0, &sb), 0);
		ck_assert_uint_eq(sb.sequence, 4);
		ck_assert_int_eq(slot_sb(a[i], 1, &sb), 0);
		ck_assert_uint_eq(sb.sequence, 3);
	}
	v = assemble_ok(a, 4);
	ck_assert_int_eq(raid_read(v, buf, 8192, sizeof(buf)), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0x42);
	raid_close(v);
}
END_TEST

START_TEST(test_assemble_both_slots_damaged)
{
	struct raid_member *a[4];
	struct raid_assemble_params p = { 0 };

	mems_open(a, 4, SMALL_SIZE, "dd");
	create_ok(a, 3, SMALL_C, 512, 71);
	corrupt_slot(a[2], 0);
	corrupt_slot(a[2], 1);
	assemble_refused(a, 4, &p, -EPROTO, "dd2", "damaged", NULL);
	/* magic gone in one slot, CRC bad in the other: still damage, not "not a member" */
	memset(raid_member_mem(a[2]), 0, 8);
	assemble_refused(a, 4, &p, -EPROTO, "dd2", "damaged", NULL);
	/* a newer version in both slots (resealed: the CRC is checked before the version, so an
	 * unsealed version bump reads as damage) */
	for (int s = 0; s < 2; s++) {
		uint8_t *b = raid_member_mem(a[1]) + (size_t)s * RAID_SB_BYTES;

		put_le32(b + RAID_SB_OFF_VERSION, RAID_SB_VERSION + 1);
		put_le32(b + RAID_SB_OFF_CRC, 0);
		put_le32(b + RAID_SB_OFF_CRC, tcrc32c(b, RAID_SB_BYTES));
	}
	assemble_refused(a, 4, &p, -EPROTONOSUPPORT, "dd1", "newer", NULL);
	mems_close(a, 4);
}
END_TEST

/* A superblock that passes its CRC but disagrees with the others' geometry. */
START_TEST(test_assemble_geometry_differs)
{
	struct raid_member *a[4];
	struct raid_assemble_params p = { 0 };

	mems_open(a, 4, SMALL_SIZE, "gd");
	create_ok(a, 3, SMALL_C, 512, 81);
	for (int s = 0; s < 2; s++) {
		struct raid_sb sb;

		ck_assert_int_eq(slot_sb(a[3], s, &sb), 0);
		sb.volid = 82;
		raid_sb_encode(&sb, raid_member_mem(a[3]) + (size_t)s * RAID_SB_BYTES);
	}
	assemble_refused(a, 4, &p, -EPROTO, "gd3", "differs", NULL);
	for (int s = 0; s < 2; s++) {
		struct raid_sb sb;

		ck_assert_int_eq(slot_sb(a[3], s, &sb), 0);
		sb.volid = 81;
		sb.geom.block_bytes = 4096;
		raid_sb_encode(&sb, raid_member_mem(a[3]) + (size_t)s * RAID_SB_BYTES);
	}
	assemble_refused(a, 4, &p, -EPROTO, "gd3", "differs", NULL);
	mems_close(a, 4);
}
END_TEST

START_TEST(test_assemble_param_mismatch)
{
	struct raid_member *a[4];
	struct raid_assemble_params p = { 0 };
	struct raid_vol *v;
	char why[WHY];

	mems_open(a, 4, SMALL_SIZE, "pm");
	create_ok(a, 3, SMALL_C, 512, 91);
	p.volid = 92;
	assemble_refused(a, 4, &p, -EINVAL, "volid=92", "volid 91", NULL);
	p.volid = 0;
	p.chunk_bytes = 64 * KIB;
	assemble_refused(a, 4, &p, -EINVAL, "chunk_kib=64", "4 KiB", NULL);
	p.chunk_bytes = 0;
	p.block_bytes = 4096;
	assemble_refused(a, 4, &p, -EINVAL, "block size 4096", "512", NULL);
	p.block_bytes = 0;
	p.nr_data = 2;
	assemble_refused(a, 4, &p, -EINVAL, "needs 3 members", NULL);
	/* all of them right */
	p.nr_data = 3;
	p.chunk_bytes = SMALL_C;
	p.block_bytes = 512;
	p.volid = 91;
	ck_assert_msg(raid_assemble(a, 4, &p, &v, why, sizeof(why)) == 0, "%s", why);
	raid_close(v);
}
END_TEST

START_TEST(test_assemble_truncated)
{
	struct raid_member *a[4], *t[4];
	struct raid_assemble_params p = { 0 };
	const uint64_t short_size = SMALL_SIZE - 4096; /* loses the end of the last chunk */

	mems_open(a, 4, SMALL_SIZE, "full");
	create_ok(a, 3, SMALL_C, 512, 101);
	mems_snapshot(t, a, 4, SMALL_SIZE, "trunc");
	raid_member_close(t[1]);
	ck_assert_int_eq(raid_member_open_mem("trunc1", short_size, &t[1]), 0);
	memcpy(raid_member_mem(t[1]), raid_member_mem(a[1]), short_size);
	assemble_refused(t, 4, &p, -EINVAL, "trunc1", "truncated", NULL);
	/* truncated to the metadata only */
	raid_member_close(t[1]);
	ck_assert_int_eq(raid_member_open_mem("trunc1", RAID_DATA_OFFSET_BYTES, &t[1]), 0);
	memcpy(raid_member_mem(t[1]), raid_member_mem(a[1]), RAID_DATA_OFFSET_BYTES);
	assemble_refused(t, 4, &p, -EINVAL, "trunc1", "truncated", NULL);
	/* a bigger member is fine */
	raid_member_close(t[1]);
	ck_assert_int_eq(raid_member_open_mem("grown1", SMALL_SIZE + MIB, &t[1]), 0);
	memcpy(raid_member_mem(t[1]), raid_member_mem(a[1]), SMALL_SIZE);
	{
		struct raid_vol *v = assemble_ok(t, 4);

		raid_close(v);
	}
	mems_close(a, 4);
}
END_TEST

/* ---- clean/dirty, sequence numbers ------------------------------------------------------- */

START_TEST(test_close_marks_clean)
{
	struct raid_member *a[4], *w[4];
	struct raid_vol *v;
	struct raid_info info;
	struct raid_sb sb;
	uint8_t buf[8192];

	mems_open(a, 4, SMALL_SIZE, "cl");
	create_ok(a, 3, SMALL_C, 512, 111);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 4; i++)
			w[i] = fault_wrap(a[i], 0);
		v = assemble_ok(w, 4);
		raid_get_info(v, &info);
		ck_assert_int_eq(info.was_dirty, 0);
		/* while assembled the newest superblock says dirty */
		for (int i = 0; i < 4; i++) {
			ck_assert_int_eq(slot_sb(a[i], (int)(info.sequence % 2), &sb), 0);
			ck_assert_uint_eq(sb.sequence, info.sequence);
			ck_assert_uint_eq(sb.flags & RAID_SB_FLAG_DIRTY, RAID_SB_FLAG_DIRTY);
		}
		memset(buf, round + 1, sizeof(buf));
		ck_assert_int_eq(raid_write(v, buf, (uint64_t)round * 512, sizeof(buf)), 0);
		raid_close(v);
		for (int i = 0; i < 4; i++) {
			ck_assert_int_eq(slot_sb(a[i], (int)((info.sequence + 1) % 2), &sb), 0);
			ck_assert_uint_eq(sb.sequence, info.sequence + 1);
			ck_assert_uint_eq(sb.flags & RAID_SB_FLAG_DIRTY, 0);
		}
	}
	mems_close(a, 4);
}
END_TEST

/* A crash: assemble, write, and never close; what is on the members assembles as was_dirty with
 * the data intact. */
START_TEST(test_crash_leaves_dirty)
{
	struct raid_member *a[4], *c[4];
	struct raid_vol *v, *v2;
	struct raid_info info;
	struct urand r = { unit_seed_for(0x50000) };
	const uint64_t V = 3ull * 16 * SMALL_C;
	uint8_t *data = malloc(V), *back = malloc(V);

	ck_assert(data && back);
	mems_open(a, 4, SMALL_SIZE, "live");
	create_ok(a, 3, SMALL_C, 512, 121);
	v = assemble_ok(a, 4);
	urand_fill(&r, data, V);
	ck_assert_int_eq(raid_write(v, data, 0, V), 0);
	ck_assert_int_eq(raid_write(v, data + 5000, 512, 3 * 512), 0); /* and a partial one */
	memcpy(data + 512, data + 5000, 3 * 512);
	mems_snapshot(c, a, 4, SMALL_SIZE, "crashed");
	v2 = assemble_ok(c, 4);
	raid_get_info(v2, &info);
	ck_assert_int_eq(info.was_dirty, 1);
	ck_assert_uint_eq(info.sequence, 4);
	ck_assert_int_eq(raid_read(v2, back, 0, V), 0);
	ck_assert_msg(memcmp(back, data, V) == 0, "data lost in the crash");
	check_all_stripes(v2, "crashed", 0, 0);
	raid_close(v2);
	raid_close(v);
	free(data);
	free(back);
}
END_TEST

/* Create writes sequence 1 (slot 1) then 2 (slot 0); every update adds one and goes to slot
 * sequence % 2, on every member, each with its own member_index. */
START_TEST(test_sequence_alternates)
{
	struct raid_member *a[5], *w[5];
	struct raid_vol *v;
	struct raid_info info;
	struct raid_sb s0, s1;
	uint8_t uuid[16];

	mems_open(a, 5, SMALL_SIZE, "seq");
	create_ok(a, 4, SMALL_C, 4096, 131);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(slot_sb(a[i], 0, &s0), 0);
		ck_assert_int_eq(slot_sb(a[i], 1, &s1), 0);
		ck_assert_uint_eq(s0.sequence, 2);
		ck_assert_uint_eq(s1.sequence, 1);
		ck_assert_uint_eq(s0.member_index, (uint32_t)i);
		ck_assert_uint_eq(s1.member_index, (uint32_t)i);
		ck_assert_uint_eq(s0.flags, 0);
		ck_assert_uint_eq(s0.nr_members, 5);
		ck_assert_uint_eq(s0.member_bytes, SMALL_SIZE);
		ck_assert_uint_eq(s0.volid, 131);
		ck_assert_uint_eq(s0.geom.member_data_bytes, 16 * SMALL_C);
		ck_assert_uint_eq(s0.volume_bytes, 4ull * 16 * SMALL_C);
		if (i == 0)
			memcpy(uuid, s0.array_uuid, 16);
		ck_assert_mem_eq(s0.array_uuid, uuid, 16);
		ck_assert_mem_eq(s1.array_uuid, uuid, 16);
	}
	for (uint64_t seq = 3; seq < 3 + 2 * 4; seq += 2) {
		uint64_t slot = seq % 2, other = 1 - slot;

		for (int i = 0; i < 5; i++)
			w[i] = fault_wrap(a[i], 0);
		v = assemble_ok(w, 5);
		raid_get_info(v, &info);
		ck_assert_uint_eq(info.sequence, seq);
		ck_assert_mem_eq(info.array_uuid, uuid, 16);
		for (int i = 0; i < 5; i++) {
			ck_assert_int_eq(slot_sb(a[i], (int)slot, &s0), 0);
			ck_assert_int_eq(slot_sb(a[i], (int)other, &s1), 0);
			ck_assert_uint_eq(s0.sequence, seq);
			ck_assert_uint_eq(s1.sequence, seq - 1);
			ck_assert_uint_eq(s0.member_index, (uint32_t)i);
		}
		raid_close(v);
		for (int i = 0; i < 5; i++) {
			ck_assert_int_eq(slot_sb(a[i], (int)other, &s1), 0);
			ck_assert_uint_eq(s1.sequence, seq + 1);
			ck_assert_uint_eq(s1.flags, 0);
			ck_assert_uint_eq(s1.member_index, (uint32_t)i);
		}
	}
	mems_close(a, 5);
}
END_TEST

/* The newest valid superblock of an in-memory member (the one assembly would pick). */
static void newest_sb(struct raid_member *m, struct raid_sb *out)
{
	struct raid_sb s0, s1;
	int e0 = slot_sb(m, 0, &s0), e1 = slot_sb(m, 1, &s1);

	ck_assert_msg(e0 == 0 || e1 == 0, "%s: no valid superblock", m->name);
	*out = e0 == 0 && (e1 != 0 || s0.sequence > s1.sequence) ? s0 : s1;
}

/* docs/raid-resilience.md: a failure is recorded in the other members' superblocks, the failed
 * member's own is not touched. Every member not in `failed` has its newest superblock at `seq`,
 * recording `failed` (and `dirty`); every failed one is behind. */
static void assert_sbs_record(struct raid_member **a, uint32_t N, uint64_t failed, uint64_t seq,
			      int dirty, const char *ctx)
{
	for (uint32_t i = 0; i < N; i++) {
		struct raid_sb sb;

		newest_sb(a[i], &sb);
		if (failed & (1ull << i)) {
			if (sb.sequence >= seq)
				ck_abort_msg("%s: failed member %u's superblock was written (sequence %"
					     PRIu64 ", the array's %" PRIu64 ")", ctx, i, sb.sequence, seq);
		} else if (sb.sequence != seq || sb.failed_mask != failed || sb.member_index != i ||
			   !!(sb.flags & RAID_SB_FLAG_DIRTY) != !!dirty) {
			ck_abort_msg("%s: member %u: superblock sequence %" PRIu64 " failed_mask %#" PRIx64
				     " index %u flags %#x, want sequence %" PRIu64 " failed_mask %#" PRIx64
				     " %s", ctx, i, sb.sequence, sb.failed_mask, sb.member_index, sb.flags,
				     seq, failed, dirty ? "dirty" : "clean");
		}
	}
}

/* An interrupted superblock update (some members got sequence k+1, others did not: the power went
 * in the middle) assembles, takes the newest state, does NOT fail the members that are merely
 * behind, and brings every member up to date. */
START_TEST(test_interrupted_sb_update)
{
	struct raid_member *a[4], *w[4];
	struct raid_vol *v;
	struct raid_info info;
	struct raid_sb sb;

	mems_open(a, 4, SMALL_SIZE, "intr");
	create_ok(a, 3, SMALL_C, 512, 141);
	/* an assembly's dirty mark (sequence 3, slot 1) reached members 0 and 1 only */
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(slot_sb(a[i], 0, &sb), 0);
		ck_assert_uint_eq(sb.sequence, 2);
		sb.sequence = 3;
		sb.flags |= RAID_SB_FLAG_DIRTY;
		raid_sb_encode(&sb, raid_member_mem(a[i]) + RAID_SB_BYTES);
	}
	for (int i = 0; i < 4; i++)
		w[i] = fault_wrap(a[i], 0);
	v = assemble_ok(w, 4);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.sequence, 4);
	ck_assert_int_eq(info.was_dirty, 1); /* the newest superblock said dirty */
	ck_assert_uint_eq(info.failed_mask, 0); /* behind by an interrupted update: accepted */
	ck_assert_str_eq(raid_state_name(&info), "optimal");
	assert_sbs_record(a, 4, 0, 4, 1, "interrupted update");
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(slot_sb(a[i], 0, &sb), 0);
		ck_assert_uint_eq(sb.sequence, 4);
	}
	raid_close(v);
	assert_sbs_record(a, 4, 0, 5, 0, "interrupted update, closed");
	v = assemble_ok(a, 4);
	raid_get_info(v, &info);
	ck_assert_int_eq(info.was_dirty, 0);
	ck_assert_uint_eq(info.failed_mask, 0);
	raid_close(v);
}
END_TEST

/* The assembly's dirty mark cannot be written to one member: that member is marked failed (the
 * others record it), the assembly succeeds degraded, and the member is never touched again; a
 * restart keeps it failed (its superblock is stale) and the data written meanwhile reads back. */
START_TEST(test_sb_write_fails_at_assembly)
{
	struct raid_member *a[4], *w[4];
	struct raid_vol *v;
	struct raid_info info;
	struct raid_sb sb;
	struct urand r = { unit_seed_for(0x71000) };
	const uint64_t V = 3ull * 16 * SMALL_C;
	uint8_t *data = malloc(V), *back = malloc(V);

	ck_assert(data && back);
	mems_open(a, 4, SMALL_SIZE, "sbw");
	create_ok(a, 3, SMALL_C, 512, 142);
	for (int i = 0; i < 4; i++)
		w[i] = fault_wrap(a[i], 0);
	fault_of(w[2])->fail_write_at = 1;
	v = assemble_ok(w, 4);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.failed_mask, 1u << 2);
	ck_assert_str_eq(raid_state_name(&info), "degraded");
	/* sequence 3 reached members 0, 1 and 3; sequence 4 recorded the failure there */
	ck_assert_uint_eq(info.sequence, 4);
	assert_sbs_record(a, 4, 1u << 2, 4, 1, "dirty mark failed on member 2");
	ck_assert_int_eq(slot_sb(a[2], 0, &sb), 0);
	ck_assert_uint_eq(sb.sequence, 2);
	ck_assert_int_eq(slot_sb(a[2], 1, &sb), 0);
	ck_assert_uint_eq(sb.sequence, 1);
	ck_assert_uint_eq(fault_of(w[2])->writes, 1);
	fault_reset(w, 4);
	/* degraded I/O works, without member 2 */
	urand_fill(&r, data, V);
	ck_assert_int_eq(raid_write(v, data, 0, V), 0);
	ck_assert_int_eq(raid_write(v, data + 100, 700, 5000), 0);
	memmove(data + 700, data + 100, 5000);
	ck_assert_int_eq(raid_read(v, back, 0, V), 0);
	ck_assert_msg(memcmp(back, data, V) == 0, "degraded read-back differs");
	ck_assert_uint_eq(fault_of(w[2])->writes + fault_of(w[2])->reads + fault_of(w[2])->flushes, 0);
	raid_close(v);
	assert_sbs_record(a, 4, 1u << 2, 5, 0, "closed");
	/* a restart: member 2 answers with a valid (old) superblock and stays failed */
	v = assemble_ok(a, 4);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.failed_mask, 1u << 2);
	ck_assert_int_eq(info.was_dirty, 0);
	ck_assert_int_eq(raid_read(v, back, 0, V), 0);
	ck_assert_msg(memcmp(back, data, V) == 0, "read-back after the restart differs");
	raid_get_info(v, &info);
	ck_assert_uint_gt(info.stats.degraded_reads, 0);
	raid_close(v);
	free(data);
	free(back);
}
END_TEST

/* raid_check_stripe itself: it finds a flipped byte anywhere in a stripe, and where. */
START_TEST(test_check_stripe_detects)
{
	struct raid_member *a[4];
	struct raid_vol *v;
	struct raid_info info;
	struct urand r = { unit_seed_for(0x70000) };
	uint8_t buf[3 * SMALL_C];

	mems_open(a, 4, SMALL_SIZE, "chk");
	create_ok(a, 3, SMALL_C, 512, 171);
	v = assemble_ok(a, 4);
	raid_get_info(v, &info);
	urand_fill(&r, buf, sizeof(buf));
	ck_assert_int_eq(raid_write(v, buf, 2 * sizeof(buf), sizeof(buf)), 0);
	for (int it = 0; it < 20; it++) {
		uint64_t s = urand_below(&r, 16);
		uint32_t mi = (uint32_t)urand_below(&r, 4), o = (uint32_t)urand_below(&r, SMALL_C);
		uint8_t *p = raid_member_mem(a[mi]) + RAID_DATA_OFFSET_BYTES + s * SMALL_C + o;
		uint32_t bad = 0xffffffffu;

		*p ^= 0x80;
		ck_assert_int_eq(raid_check_stripe(v, s, &bad), -EILSEQ);
		ck_assert_uint_eq(bad, o);
		ck_assert_int_eq(raid_check_stripe(v, (s + 1) % 16, NULL), 0);
		*p ^= 0x80;
		ck_assert_int_eq(raid_check_stripe(v, s, &bad), 0);
	}
	raid_close(v);
}
END_TEST

START_TEST(test_uuid_str)
{
	static const uint8_t u[16] = { 0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1, 0x11, 0xd2,
				       0x88, 0x3f, 0x00, 0x16, 0xd3, 0xcc, 0xa4, 0x27 };
	char out[37];

	memset(out, 'x', sizeof(out));
	raid_uuid_str(u, out);
	ck_assert_str_eq(out, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
}
END_TEST

/* ---- failing members --------------------------------------------------------------------- */

/* Members wrapped by fault members that own them; a formatted 3D+1P (C = 4 KiB) array. */
static void fault_array(struct raid_member **w, uint32_t N, const char *prefix)
{
	struct raid_member *a[RAID_MAX_MEMBERS];

	mems_open(a, N, SMALL_SIZE, prefix);
	for (uint32_t i = 0; i < N; i++)
		w[i] = fault_wrap(a[i], 1);
	create_ok(w, N - 1, SMALL_C, 512, 151);
}

START_TEST(test_fault_create)
{
	struct raid_member *w[4];
	struct raid_create_params p = cparams(3, SMALL_C, 512, 1);
	struct raid_member *a[4];

	p.force = 1; /* a failed attempt may leave valid superblocks behind */
	mems_open(a, 4, SMALL_SIZE, "fc");
	for (int i = 0; i < 4; i++)
		w[i] = fault_wrap(a[i], 1);
	fault_of(w[2])->fail_zero = 1;
	create_refused(w, 4, &p, -EIO, "cannot zero");
	fault_reset(w, 4);
	fault_of(w[3])->fail_write_at = 1;
	create_refused(w, 4, &p, -EIO, "superblock write failed");
	fault_reset(w, 4);
	fault_of(w[1])->fail_write_at = 2; /* the second superblock */
	create_refused(w, 4, &p, -EIO, "superblock write failed");
	fault_reset(w, 4);
	fault_of(w[0])->fail_flush = 1;
	create_refused(w, 4, &p, -EIO, "superblock write failed");
	fault_reset(w, 4);
	/* and it works once the disk behaves */
	{
		char why[WHY] = "";

		ck_assert_msg(raid_create(w, 4, &p, why, sizeof(why)) == 0, "%s", why);
	}
	mems_close(w, 4);
}
END_TEST

/* A formatted 3D+1P (C = 4 KiB) array on mem members a[] that the test keeps, and fault wrappers
 * w[] around them (closing a wrapper leaves its member): after raid_close the raw members can be
 * inspected and assembled again, as after a restart. */
static void wrapped_array(struct raid_member **a, struct raid_member **w, uint32_t N,
			  const char *prefix, uint64_t volid)
{
	mems_open(a, N, SMALL_SIZE, prefix);
	create_ok(a, N - 1, SMALL_C, 512, volid);
	for (uint32_t i = 0; i < N; i++)
		w[i] = fault_wrap(a[i], 0);
}

static void wrap_again(struct raid_member **a, struct raid_member **w, uint32_t N)
{
	for (uint32_t i = 0; i < N; i++)
		w[i] = fault_wrap(a[i], 0);
}

/* Assembly and failing members (docs/raid-resilience.md): an unreadable member is "missing" and
 * refused unless degraded=1; a superblock write or flush failure marks that member failed and the
 * assembly succeeds; it fails only when no member takes the superblock. */
START_TEST(test_fault_assemble)
{
	struct raid_member *a[4], *w[4];
	struct raid_assemble_params p = { 0 }, deg = { .degraded = 1 };
	struct raid_vol *v = NULL;
	struct raid_info info;
	struct raid_sb sb;
	char why[WHY] = "";

	/* both superblock reads of member 1 fail: refused (a newly missing member), nothing written */
	wrapped_array(a, w, 4, "fa", 151);
	fault_of(w[1])->fail_read_at = 1;
	fault_of(w[1])->sticky = 1;
	assemble_refused(w, 4, &p, -EIO, "fa1", "read error", "degraded=1", NULL);
	assert_sbs_record(a, 4, 0, 2, 0, "refused");
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(fault_of(w[i])->writes, 0);
	/* with degraded=1 it assembles without it; the others record it as failed */
	ck_assert_msg(raid_assemble(w, 4, &deg, &v, why, sizeof(why)) == 0, "degraded: %s", why);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.failed_mask, 1u << 1);
	ck_assert_uint_eq(info.sequence, 3);
	assert_sbs_record(a, 4, 1u << 1, 3, 1, "degraded=1");
	ck_assert_uint_eq(fault_of(w[1])->writes, 0);
	raid_close(v);
	mems_close(a, 4);

	/* two members unreadable: degraded=1 accepts one only */
	wrapped_array(a, w, 4, "fb", 152);
	for (int i = 1; i <= 2; i++) {
		fault_of(w[i])->fail_read_at = 1;
		fault_of(w[i])->sticky = 1;
	}
	assemble_refused(w, 4, &deg, -EIO, "fb1", "accepts one missing member", NULL);
	assert_sbs_record(a, 4, 0, 2, 0, "two missing");
	mems_close(w, 4);
	mems_close(a, 4);

	/* the dirty mark cannot be written to member 3: it is failed, the others record it */
	wrapped_array(a, w, 4, "fc", 153);
	fault_of(w[3])->fail_write_at = 1;
	v = assemble_ok(w, 4);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.failed_mask, 1u << 3);
	ck_assert_uint_eq(info.sequence, 4);
	assert_sbs_record(a, 4, 1u << 3, 4, 1, "sb write failed");
	ck_assert_int_eq(slot_sb(a[3], 0, &sb), 0);
	ck_assert_uint_eq(sb.sequence, 2); /* as create left it */
	ck_assert_uint_eq(fault_of(w[3])->writes, 1);
	raid_close(v);
	mems_close(a, 4);

	/* the superblock write lands but its flush fails (member 0): failed just the same */
	wrapped_array(a, w, 4, "fd", 154);
	fault_of(w[0])->fail_flush = 1;
	v = assemble_ok(w, 4);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.failed_mask, 1u << 0);
	ck_assert_uint_eq(info.sequence, 4);
	assert_sbs_record(a, 4, 1u << 0, 4, 1, "sb flush failed");
	ck_assert_uint_eq(fault_of(w[0])->flushes, 1);
	ck_assert_uint_eq(raid_flush(v), 0);
	ck_assert_uint_eq(fault_of(w[0])->flushes, 1); /* a failed member is not flushed again */
	raid_close(v);
	mems_close(a, 4);

	/* two members cannot take it: assembled, both failed (the array is "failed") */
	wrapped_array(a, w, 4, "fe", 155);
	fault_of(w[1])->fail_write_at = 1;
	fault_of(w[2])->fail_write_at = 1;
	v = assemble_ok(w, 4);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.failed_mask, (1u << 1) | (1u << 2));
	ck_assert_str_eq(raid_state_name(&info), "failed");
	assert_sbs_record(a, 4, (1u << 1) | (1u << 2), 4, 1, "two sb writes failed");
	raid_close(v);
	mems_close(a, 4);

	/* no member takes it: refused, nothing recorded anywhere, the members still ours */
	wrapped_array(a, w, 4, "ff", 156);
	for (int i = 0; i < 4; i++)
		fault_of(w[i])->fail_write_at = 1;
	assemble_refused(w, 4, &p, -EIO, "superblock", NULL);
	mems_close(w, 4);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(slot_sb(a[i], 0, &sb), 0);
		ck_assert_uint_eq(sb.sequence, 2);
		ck_assert_uint_eq(sb.failed_mask, 0);
		ck_assert_int_eq(slot_sb(a[i], 1, &sb), 0);
		ck_assert_uint_eq(sb.sequence, 1);
	}
	wrap_again(a, w, 4);
	v = assemble_ok(w, 4); /* and once the disks behave it assembles optimal */
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.failed_mask, 0);
	raid_close(v);

	/* one slot unreadable (a read error, not the member's death): the other slot does */
	wrap_again(a, w, 4);
	fault_of(w[2])->fail_read_at = 1;
	v = assemble_ok(w, 4);
	raid_get_info(v, &info);
	ck_assert_uint_eq(info.failed_mask, 0);
	raid_close(v);
	mems_close(a, 4);
}
END_TEST

/* One failing I/O on a healthy 3D+1P array, every place it can happen: the call succeeds, the
 * member (and only it) is marked failed, in memory and in the others' superblocks, the volume reads
 * back exactly what was written, the member is never touched again, and after a restart it stays
 * failed (its stale content is not used). */
struct fio {
	struct raid_member *a[4], *w[4];
	struct raid_vol *v;
	struct raid_geom g;
	uint8_t *model, *back;
	uint64_t V;
	struct urand r;
};

static void fio_setup(struct fio *t, const char *name)
{
	struct raid_info info;

	wrapped_array(t->a, t->w, 4, name, 157);
	t->v = assemble_ok(t->w, 4);
	raid_get_info(t->v, &info);
	t->g = info.geom;
	t->V = info.volume_bytes;
	t->model = malloc(t->V);
	t->back = malloc(t->V);
	ck_assert(t->model && t->back);
	urand_fill(&t->r, t->model, t->V);
	ck_assert_int_eq(raid_write(t->v, t->model, 0, t->V), 0);
	fault_reset(t->w, 4);
}

/* Fresh data at [off, off+len): the write must succeed and the model follows it. */
static void fio_write(struct fio *t, uint64_t off, uint64_t len, const char *ctx)
{
	uint8_t *buf = malloc(len);
	int err;

	ck_assert_ptr_nonnull(buf);
	urand_fill(&t->r, buf, len);
	err = raid_write(t->v, buf, off, len);
	ck_assert_msg(err == 0, "%s: write %" PRIu64 "+%" PRIu64 ": %d", ctx, off, len, err);
	memcpy(t->model + off, buf, len);
	free(buf);
}

static void fio_verify(struct fio *t, uint32_t k, const char *ctx)
{
	struct fault *f = fault_of(t->w[k]);
	struct raid_info info;
	uint64_t ops;

	raid_get_info(t->v, &info);
	ck_assert_msg(info.failed_mask == 1ull << k, "%s: failed_mask %#" PRIx64 ", want member %u",
		      ctx, info.failed_mask, k);
	ck_assert_str_eq(raid_state_name(&info), "degraded");
	ck_assert_msg(f->injected == 1, "%s: %" PRIu64 " faults injected", ctx, f->injected);
	ops = f->reads + f->writes + f->flushes;
	check_volume(t->v, t->model, t->back, t->V, ctx, 0, 0);
	ck_assert_int_eq(raid_flush(t->v), 0);
	for (uint64_t s = 0; s < raid_nr_stripes(&t->g); s++)
		ck_assert_int_eq(raid_check_stripe(t->v, s, NULL), -EAGAIN);
	ck_assert_msg(f->reads + f->writes + f->flushes == ops, "%s: the failed member was used again",
		      ctx);
	raid_get_info(t->v, &info);
	ck_assert_uint_gt(info.stats.degraded_reads, 0);
	assert_sbs_record(t->a, 4, 1ull << k, info.sequence, 1, ctx);
	raid_close(t->v);
	assert_sbs_record(t->a, 4, 1ull << k, info.sequence + 1, 0, ctx);
	t->v = assemble_ok(t->a, 4);
	raid_get_info(t->v, &info);
	ck_assert_msg(info.failed_mask == 1ull << k, "%s, restarted: failed_mask %#" PRIx64, ctx,
		      info.failed_mask);
	ck_assert_int_eq(info.was_dirty, 0);
	check_volume(t->v, t->model, t->back, t->V, ctx, 0, 1);
	raid_close(t->v);
	free(t->model);
	free(t->back);
}

enum {
	FIO_READ, FIO_FULL_DATA_W, FIO_FULL_PARITY_W, FIO_RMW_PARITY_R, FIO_RMW_DATA_R,
	FIO_RMW_DATA_W, FIO_RMW_PARITY_W, FIO_RCW_R, FIO_SECOND_STRIPE, FIO_CHECK, FIO_FLUSH, FIO_CASES
};

START_TEST(test_fault_io)
{
	static const char *const names[FIO_CASES] = {
		"read", "full-stripe data write", "full-stripe parity write", "rmw parity read",
		"rmw data read", "rmw data write", "rmw parity write", "rcw read",
		"second stripe's parity write", "parity check read", "flush",
	};
	struct fio t = { .r = { unit_seed_for(0x72000 + (uint64_t)_i) } };
	const struct raid_geom *g = &t.g;
	struct raid_info before, after;
	uint32_t k = 0;
	uint8_t buf[4096];

	fio_setup(&t, "fio");
	raid_get_info(t.v, &before);
	switch (_i) {
	case FIO_READ: /* chunk 0 of stripe 0, once (not sticky): reconstructed */
		k = raid_data_member(g, 0, 0);
		fault_of(t.w[k])->fail_read_at = 1;
		ck_assert_int_eq(raid_read(t.v, buf, 0, 4096), 0);
		ck_assert_mem_eq(buf, t.model, 4096);
		ck_assert_int_eq(raid_read(t.v, buf, 0, 4096), 0); /* from the others again */
		ck_assert_mem_eq(buf, t.model, 4096);
		ck_assert_uint_eq(fault_of(t.w[k])->reads, 1);
		raid_get_info(t.v, &after);
		ck_assert_uint_eq(after.stats.degraded_reads - before.stats.degraded_reads, 2);
		break;
	case FIO_FULL_DATA_W:
		k = raid_data_member(g, 1, 2);
		fault_of(t.w[k])->fail_write_at = 1;
		fio_write(&t, 3 * 4096, 3 * 4096, names[_i]);
		break;
	case FIO_FULL_PARITY_W:
		k = raid_parity_member(g, 1);
		fault_of(t.w[k])->fail_write_at = 1;
		fio_write(&t, 3 * 4096, 3 * 4096, names[_i]);
		break;
	case FIO_RMW_PARITY_R: /* nothing written yet: retried as a degraded write */
		k = raid_parity_member(g, 2);
		fault_of(t.w[k])->fail_read_at = 1;
		fio_write(&t, 6 * 4096 + 512, 512, names[_i]);
		raid_get_info(t.v, &after);
		ck_assert_uint_eq(after.stats.degraded_writes - before.stats.degraded_writes, 1);
		break;
	case FIO_RMW_DATA_R:
		k = raid_data_member(g, 2, 0);
		fault_of(t.w[k])->fail_read_at = 1;
		fio_write(&t, 6 * 4096 + 512, 512, names[_i]);
		raid_get_info(t.v, &after);
		ck_assert_uint_eq(after.stats.degraded_writes - before.stats.degraded_writes, 1);
		break;
	case FIO_RMW_DATA_W: /* the parity still goes out: the new data is in it */
		k = raid_data_member(g, 2, 0);
		fault_of(t.w[k])->fail_write_at = 1;
		fio_write(&t, 6 * 4096 + 512, 512, names[_i]);
		break;
	case FIO_RMW_PARITY_W:
		k = raid_parity_member(g, 2);
		fault_of(t.w[k])->fail_write_at = 1;
		fio_write(&t, 6 * 4096 + 512, 512, names[_i]);
		break;
	case FIO_RCW_R: /* two whole chunks of stripe 3: the untouched third one is read */
		k = raid_data_member(g, 3, 2);
		fault_of(t.w[k])->fail_read_at = 1;
		fio_write(&t, 9 * 4096, 2 * 4096, names[_i]);
		raid_get_info(t.v, &after);
		ck_assert_uint_eq(after.stats.degraded_writes - before.stats.degraded_writes, 1);
		break;
	case FIO_SECOND_STRIPE: /* stripes 4 and 5: the member is data in 4, parity in 5 */
		k = raid_parity_member(g, 5);
		ck_assert_uint_ne(k, raid_parity_member(g, 4));
		fault_of(t.w[k])->fail_write_at = 2;
		fio_write(&t, 4 * 3 * 4096, 2 * 3 * 4096, names[_i]);
		ck_assert_uint_eq(fault_of(t.w[k])->writes, 2);
		break;
	case FIO_CHECK: /* the check that hits the error says so; then there is nothing to compare */
		k = 3;
		fault_of(t.w[k])->fail_read_at = 1;
		ck_assert_int_eq(raid_check_stripe(t.v, 0, NULL), -EIO);
		ck_assert_int_eq(raid_check_stripe(t.v, 0, NULL), -EAGAIN);
		break;
	case FIO_FLUSH:
		k = 1;
		fault_of(t.w[k])->fail_flush = 1;
		ck_assert_int_eq(raid_flush(t.v), 0);
		ck_assert_uint_eq(fault_of(t.w[k])->flushes, 1);
		break;
	default:
		ck_abort();
	}
	fio_verify(&t, k, names[_i]);
}
END_TEST

/* Failing flushes at close (raid_close: flush, then mark clean). One member failing there is a
 * member failure like any other: it is marked failed in the others' superblocks and the array
 * closes CLEAN on the rest (their data is flushed; the failed member is not trusted again, so what
 * it lost does not matter). Two failing: the array cannot be made consistent and stays dirty. */
START_TEST(test_fault_close_flush)
{
	struct raid_member *a[4], *w[4];
	struct raid_vol *v;
	struct raid_info info;
	struct raid_sb sb;
	struct urand r = { unit_seed_for(0x73000) };
	const uint64_t V = 3ull * 16 * SMALL_C;
	uint8_t *data = malloc(V), *back = malloc(V);

	ck_assert(data && back);
	/* member 2's flush fails at close */
	wrapped_array(a, w, 4, "fcl", 161);
	v = assemble_ok(w, 4);
	urand_fill(&r, data, V);
	ck_assert_int_eq(raid_write(v, data, 0, V), 0);
	ck_assert_int_eq(raid_write(v, data + 3, 4000, 9000), 0);
	memmove(data + 4000, data + 3, 9000);
	fault_of(w[2])->fail_flush = 1;
	raid_close(v);
	assert_sbs_record(a, 4, 1u << 2, 5, 0, "flush failed at close");
	newest_sb(a[2], &sb);
	ck_assert_uint_eq(sb.sequence, 3); /* the assembly's dirty mark */
	ck_assert_uint_eq(sb.flags & RAID_SB_FLAG_DIRTY, RAID_SB_FLAG_DIRTY);
	v = assemble_ok(a, 4);
	raid_get_info(v, &info);
	ck_assert_int_eq(info.was_dirty, 0);
	ck_assert_uint_eq(info.failed_mask, 1u << 2);
	ck_assert_int_eq(raid_read(v, back, 0, V), 0);
	ck_assert_msg(memcmp(back, data, V) == 0, "data differs after the close");
	raid_close(v);

	/* member 1 dies for good during close: its clean mark cannot be written */
	wrapped_array(a, w, 4, "fcl2", 162);
	v = assemble_ok(w, 4);
	fault_reset(w, 4);
	fault_of(w[1])->fail_write_at = 1;
	fault_of(w[1])->sticky = 1;
	raid_close(v);
	assert_sbs_record(a, 4, 1u << 1, 5, 0, "died at close");
	v = assemble_ok(a, 4);
	raid_get_info(v, &info);
	ck_assert_int_eq(info.was_dirty, 0);
	ck_assert_uint_eq(info.failed_mask, 1u << 1);
	raid_close(v);

	/* two flushes fail: not marked clean; both recorded as failed */
	wrapped_array(a, w, 4, "fcl3", 163);
	v = assemble_ok(w, 4);
	fault_of(w[1])->fail_flush = 1;
	fault_of(w[3])->fail_flush = 1;
	raid_close(v);
	for (int i = 0; i < 4; i += 2) {
		newest_sb(a[i], &sb);
		ck_assert_uint_eq(sb.failed_mask, (1u << 1) | (1u << 3));
		ck_assert_uint_eq(sb.flags & RAID_SB_FLAG_DIRTY, RAID_SB_FLAG_DIRTY);
	}
	v = assemble_ok(a, 4);
	raid_get_info(v, &info);
	ck_assert_int_eq(info.was_dirty, 1);
	ck_assert_uint_eq(info.failed_mask, (1u << 1) | (1u << 3));
	ck_assert_str_eq(raid_state_name(&info), "failed");
	raid_close(v);
	free(data);
	free(back);
}
END_TEST

/* Seeded schedules: the loop index and the run seed pick a member, read or write, and which op
 * fails (once, or from then on); a fixed workload runs. One member failing is absorbed
 * (docs/raid-resilience.md): the member is marked failed and reads, writes and flushes keep
 * returning 0; a parity check that hits the fault returns -EIO, and once degraded -EAGAIN.
 * Nothing crashes or leaks. */
START_TEST(test_fault_schedule)
{
	uint64_t seed = unit_seed_for(0x60000 + (uint64_t)_i);
	struct urand r = { seed };
	const uint32_t N = 3 + (uint32_t)urand_below(&r, 4);
	struct raid_member *w[RAID_MAX_MEMBERS];
	struct raid_vol *v;
	struct raid_info info;
	uint8_t *buf;
	uint64_t V, S;
	struct fault *f;

	fault_array(w, N, "sched");
	v = assemble_ok(w, N);
	raid_get_info(v, &info);
	V = info.volume_bytes;
	S = raid_stripe_bytes(&info.geom);
	buf = malloc(2 * S);
	ck_assert_ptr_nonnull(buf);
	fault_reset(w, N);
	f = fault_of(w[urand_below(&r, N)]);
	if (urand_below(&r, 2))
		f->fail_read_at = urand_range(&r, 1, 40);
	else
		f->fail_write_at = urand_range(&r, 1, 40);
	f->sticky = urand_below(&r, 3) == 0;
	for (int op = 0; op < 60; op++) {
		uint64_t before = fault_injected(w, N), off, len;
		int kind = (int)urand_below(&r, 10), err;

		off = urand_below(&r, V / 512) * 512;
		len = urand_range(&r, 1, 2 * S / 512) * 512;
		if (len > V - off)
			len = V - off;
		urand_fill(&r, buf, len);
		if (kind < 5)
			err = raid_write(v, buf, off, len);
		else if (kind < 8)
			err = raid_read(v, buf, off, len);
		else if (kind < 9)
			err = raid_check_stripe(v, urand_below(&r, raid_nr_stripes(&info.geom)), NULL);
		else
			err = raid_flush(v);
		if (kind == 8 && (err == -EAGAIN || (err == -EIO && fault_injected(w, N) != before))) {
			/* degraded: nothing to compare against, or the check itself hit the fault */
		} else if (err != 0) {
			ck_abort_msg("seed %" PRIu64 " op %d (kind %d): no fault, call returned %d",
				     seed, op, kind, err);
		}
	}
	raid_close(v);
	free(buf);
}
END_TEST

/* ---- the suite --------------------------------------------------------------------------- */

static Suite *raid_suite(void)
{
	Suite *s = suite_create("raid");
	TCase *tc;

	tc = tcase_create("geometry");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_geometry_sweep, 0, 14 * 4 * 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("io");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_random_io, 0, NR_RIO);
	tcase_add_loop_test(tc, test_random_io_bytes, 0, 3);
	tcase_add_test(tc, test_write_paths);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_concurrent_writes, 0,
			    sizeof(cw_geoms) / sizeof(cw_geoms[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("create");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_wrong_count);
	tcase_add_test(tc, test_create_bad_geometry);
	tcase_add_test(tc, test_create_sizes);
	tcase_add_test(tc, test_create_listed_twice);
	tcase_add_test(tc, test_create_existing);
	tcase_add_test(tc, test_create_zeroes_garbage);
	suite_add_tcase(s, tc);

	tc = tcase_create("assemble");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_assemble_foreign_member);
	tcase_add_test(tc, test_assemble_order);
	tcase_add_test(tc, test_assemble_count);
	tcase_add_test(tc, test_assemble_blank);
	tcase_add_loop_test(tc, test_assemble_one_slot_damaged, 0, 3);
	tcase_add_test(tc, test_assemble_both_slots_damaged);
	tcase_add_test(tc, test_assemble_geometry_differs);
	tcase_add_test(tc, test_assemble_param_mismatch);
	tcase_add_test(tc, test_assemble_truncated);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_close_marks_clean);
	tcase_add_test(tc, test_crash_leaves_dirty);
	tcase_add_test(tc, test_sequence_alternates);
	tcase_add_test(tc, test_interrupted_sb_update);
	tcase_add_test(tc, test_sb_write_fails_at_assembly);
	tcase_add_test(tc, test_check_stripe_detects);
	tcase_add_test(tc, test_uuid_str);
	suite_add_tcase(s, tc);

	tc = tcase_create("faults");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fault_create);
	tcase_add_test(tc, test_fault_assemble);
	tcase_add_loop_test(tc, test_fault_io, 0, FIO_CASES);
	tcase_add_test(tc, test_fault_close_flush);
	tcase_add_loop_test(tc, test_fault_schedule, 0, 40);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(raid_suite());
}

/* raid/layout.h: geometry checks, the left-symmetric mapping (docs/raid-format.md, "Mapping"),
 * and the data area that fits a member. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "raid/layout.h"
#include "tests/unit/unit.h"

static struct raid_geom good_geom(void)
{
	struct raid_geom g = {
		.nr_data = 3,
		.chunk_bytes = 64 * 1024,
		.block_bytes = 4096,
		.data_offset_bytes = RAID_DATA_OFFSET_BYTES,
		.member_data_bytes = 16 * 64 * 1024,
	};
	return g;
}

START_TEST(test_geom_check_good)
{
	char why[200];
	struct raid_geom g = good_geom();

	for (uint32_t n = RAID_MIN_DATA; n <= RAID_MAX_DATA; n++) {
		for (uint32_t c = RAID_MIN_CHUNK_BYTES; c <= RAID_MAX_CHUNK_BYTES; c *= 2) {
			g.nr_data = n;
			g.chunk_bytes = c;
			g.block_bytes = (n & 1) ? 512 : 4096;
			g.member_data_bytes = (uint64_t)c * (1 + n % 5);
			why[0] = '\0';
			ck_assert_msg(raid_geom_check(&g, why, sizeof(why)) == 0, "n %u C %u: %s", n, c,
				      why);
		}
	}
	g = good_geom();
	g.data_offset_bytes = 0; /* 1 MiB aligned, allowed by the check */
	ck_assert_int_eq(raid_geom_check(&g, why, sizeof(why)), 0);
	g.data_offset_bytes = 8ull << 20;
	ck_assert_int_eq(raid_geom_check(&g, why, sizeof(why)), 0);
	g = good_geom();
	g.block_bytes = 512;
	g.chunk_bytes = 4096;
	g.member_data_bytes = 4096;
	ck_assert_int_eq(raid_geom_check(&g, why, sizeof(why)), 0);
}
END_TEST

START_TEST(test_geom_check_bad)
{
	static const struct {
		const char *what;
		uint32_t nr_data, chunk, block;
		uint64_t data_off, member_data;
		const char *why_has;
	} bad[] = {
		{ "n=0", 0, 65536, 4096, RAID_DATA_OFFSET_BYTES, 65536, "n must be" },
		{ "n=1", 1, 65536, 4096, RAID_DATA_OFFSET_BYTES, 65536, "n must be" },
		{ "n=16", 16, 65536, 4096, RAID_DATA_OFFSET_BYTES, 65536, "n must be" },
		{ "n=huge", 0xffffffffu, 65536, 4096, RAID_DATA_OFFSET_BYTES, 65536, "n must be" },
		{ "chunk 0", 3, 0, 4096, RAID_DATA_OFFSET_BYTES, 65536, "chunk" },
		{ "chunk 2K", 3, 2048, 512, RAID_DATA_OFFSET_BYTES, 65536, "chunk" },
		{ "chunk 12K", 3, 12288, 4096, RAID_DATA_OFFSET_BYTES, 12288 * 4, "chunk" },
		{ "chunk 4K+1", 3, 4097, 4096, RAID_DATA_OFFSET_BYTES, 4097, "chunk" },
		{ "chunk 2M", 3, 2u << 20, 4096, RAID_DATA_OFFSET_BYTES, 2u << 20, "chunk" },
		{ "block 0", 3, 65536, 0, RAID_DATA_OFFSET_BYTES, 65536, "block" },
		{ "block 1024", 3, 65536, 1024, RAID_DATA_OFFSET_BYTES, 65536, "block" },
		{ "block 8192", 3, 65536, 8192, RAID_DATA_OFFSET_BYTES, 65536, "block" },
		{ "block 513", 3, 65536, 513, RAID_DATA_OFFSET_BYTES, 65536, "block" },
		{ "offset 4M+4K", 3, 65536, 4096, RAID_DATA_OFFSET_BYTES + 4096, 65536, "offset" },
		{ "offset 512K", 3, 65536, 4096, 512 * 1024, 65536, "offset" },
		{ "member data 0", 3, 65536, 4096, RAID_DATA_OFFSET_BYTES, 0, "member data" },
		{ "member data C/2", 3, 65536, 4096, RAID_DATA_OFFSET_BYTES, 32768, "member data" },
		{ "member data 3C/2", 3, 65536, 4096, RAID_DATA_OFFSET_BYTES, 98304, "member data" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct raid_geom g = {
			.nr_data = bad[i].nr_data, .chunk_bytes = bad[i].chunk,
			.block_bytes = bad[i].block, .data_offset_bytes = bad[i].data_off,
			.member_data_bytes = bad[i].member_data,
		};
		char why[200] = "";

		ck_assert_msg(raid_geom_check(&g, why, sizeof(why)) == -EINVAL, "%s accepted",
			      bad[i].what);
		ck_assert_msg(strstr(why, bad[i].why_has) != NULL, "%s: why \"%s\" lacks \"%s\"",
			      bad[i].what, why, bad[i].why_has);
	}
}
END_TEST

/* `why` is truncated, never overrun, when it is short. */
START_TEST(test_geom_check_short_why)
{
	struct raid_geom g = good_geom();
	char why[8];

	memset(why, 'x', sizeof(why));
	g.nr_data = 1;
	ck_assert_int_eq(raid_geom_check(&g, why, 4), -EINVAL);
	ck_assert_uint_eq(strlen(why), 3);
	ck_assert_int_eq(why[4], 'x');
}
END_TEST

/* Loop index = N - 3 (N = 3..16): for every stripe 0..2N the parity member follows
 * p(s) = (N-1) - s mod N, data chunk d sits on (p+1+d) mod N, and the N chunks of a stripe
 * (n data + parity) are on N distinct members. */
START_TEST(test_mapping_sweep)
{
	uint32_t N = (uint32_t)_i + 3;
	struct raid_geom g = good_geom();

	g.nr_data = N - 1;
	g.chunk_bytes = 4096;
	g.member_data_bytes = (uint64_t)4096 * (2 * N + 1);
	ck_assert_uint_eq(raid_nr_members(&g), N);
	ck_assert_uint_eq(raid_stripe_bytes(&g), (uint64_t)(N - 1) * 4096);
	ck_assert_uint_eq(raid_nr_stripes(&g), 2 * N + 1);
	ck_assert_uint_eq(raid_volume_bytes(&g), (uint64_t)(N - 1) * 4096 * (2 * N + 1));
	for (uint64_t s = 0; s <= 2 * N; s++) {
		uint32_t p = raid_parity_member(&g, s);
		int holds[RAID_MAX_MEMBERS] = { 0 };

		ck_assert_uint_eq(p, (N - 1) - (uint32_t)(s % N));
		holds[p]++;
		for (uint32_t d = 0; d < N - 1; d++) {
			uint32_t m = raid_data_member(&g, s, d);

			ck_assert_uint_lt(m, N);
			ck_assert_uint_eq(m, (p + 1 + d) % N);
			ck_assert_msg(m != p, "N %u stripe %" PRIu64 ": data %u on the parity member",
				      N, s, d);
			holds[m]++;
		}
		for (uint32_t m = 0; m < N; m++)
			ck_assert_msg(holds[m] == 1, "N %u stripe %" PRIu64 ": member %u holds %d chunks",
				      N, s, m, holds[m]);
		/* every chunk of a stripe is at the same member offset */
		ck_assert_uint_eq(raid_member_offset(&g, s, 0), RAID_DATA_OFFSET_BYTES + s * 4096);
		ck_assert_uint_eq(raid_member_offset(&g, s, 4095),
				  RAID_DATA_OFFSET_BYTES + s * 4096 + 4095);
	}
	/* left-symmetric: sequential chunks walk the members 0, 1, ..., N-1, 0, ... */
	for (uint64_t k = 0; k < (uint64_t)(N - 1) * (2 * N + 1); k++) {
		uint64_t s = k / (N - 1);
		uint32_t d = (uint32_t)(k % (N - 1));

		ck_assert_uint_eq(raid_data_member(&g, s, d), (uint32_t)(k % N));
	}
	/* parity repeats every N stripes */
	for (uint64_t s = 0; s < 3 * N; s++)
		ck_assert_uint_eq(raid_parity_member(&g, s), raid_parity_member(&g, s + N));
}
END_TEST

/* The 3D+1P table in docs/raid-format.md, cell for cell ("P" = parity, k = chunk Dk). */
START_TEST(test_mapping_doc_table)
{
	static const int table[5][4] = {
		{ 0, 1, 2, -1 },
		{ 4, 5, -1, 3 },
		{ 8, -1, 6, 7 },
		{ -1, 9, 10, 11 },
		{ 12, 13, 14, -1 },
	};
	struct raid_geom g = good_geom();

	g.nr_data = 3;
	for (uint64_t s = 0; s < 5; s++) {
		int got[4] = { -2, -2, -2, -2 };

		got[raid_parity_member(&g, s)] = -1;
		for (uint32_t d = 0; d < 3; d++)
			got[raid_data_member(&g, s, d)] = (int)(s * 3 + d);
		for (int m = 0; m < 4; m++)
			ck_assert_msg(got[m] == table[s][m], "stripe %" PRIu64 " member %d: %d, doc says %d",
				      s, m, got[m], table[s][m]);
	}
}
END_TEST

/* Volume byte x -> (stripe, data index, member, member offset), as the doc's formulas. */
START_TEST(test_mapping_bytes)
{
	struct raid_geom g = good_geom();
	struct urand r = { unit_seed_for(7) };

	g.nr_data = 5;
	g.chunk_bytes = 16384;
	g.member_data_bytes = 16384ull * 40;
	for (int it = 0; it < 2000; it++) {
		uint64_t x = urand_below(&r, raid_volume_bytes(&g));
		uint64_t s = x / raid_stripe_bytes(&g);
		uint32_t d = (uint32_t)(x % raid_stripe_bytes(&g) / g.chunk_bytes);
		uint32_t o = (uint32_t)(x % g.chunk_bytes);
		uint64_t chunk = x / g.chunk_bytes;

		if (s != chunk / 5 || d != chunk % 5)
			ck_abort_msg("x %" PRIu64 ": stripe/data index disagree with chunk %" PRIu64, x,
				     chunk);
		if (raid_data_member(&g, s, d) != (uint32_t)(chunk % 6))
			ck_abort_msg("x %" PRIu64 ": chunk %" PRIu64 " on member %u", x, chunk,
				     raid_data_member(&g, s, d));
		if (raid_member_offset(&g, s, o) != RAID_DATA_OFFSET_BYTES + s * 16384 + o)
			ck_abort_msg("x %" PRIu64 ": member offset", x);
	}
}
END_TEST

START_TEST(test_member_data_bytes)
{
	const uint64_t D = RAID_DATA_OFFSET_BYTES;

	ck_assert_uint_eq(raid_member_data_bytes(0, D, 4096), 0);
	ck_assert_uint_eq(raid_member_data_bytes(D - 1, D, 4096), 0);
	ck_assert_uint_eq(raid_member_data_bytes(D, D, 4096), 0);
	ck_assert_uint_eq(raid_member_data_bytes(D + 1, D, 4096), 0);
	ck_assert_uint_eq(raid_member_data_bytes(D + 4095, D, 4096), 0);
	ck_assert_uint_eq(raid_member_data_bytes(D + 4096, D, 4096), 4096);
	ck_assert_uint_eq(raid_member_data_bytes(D + 4097, D, 4096), 4096);
	ck_assert_uint_eq(raid_member_data_bytes(D + 3 * 65536 - 1, D, 65536), 2 * 65536);
	ck_assert_uint_eq(raid_member_data_bytes(D + (1u << 20), D, 1u << 20), 1u << 20);
	ck_assert_uint_eq(raid_member_data_bytes(D + (1u << 20) - 1, D, 1u << 20), 0);
	ck_assert_uint_eq(raid_member_data_bytes(D + 8192, D, 0), 0);
	ck_assert_uint_eq(raid_member_data_bytes(12345, 0, 4096), 12288);
	/* a 16 TiB member: no overflow */
	ck_assert_uint_eq(raid_member_data_bytes(16ull << 40, D, 1u << 20), (16ull << 40) - D);
	ck_assert_uint_eq(raid_member_data_bytes(UINT64_MAX, D, 4096),
			  (UINT64_MAX - D) / 4096 * 4096);
}
END_TEST

static Suite *layout_suite(void)
{
	Suite *s = suite_create("layout");
	TCase *tc;

	tc = tcase_create("geom");
	tcase_add_test(tc, test_geom_check_good);
	tcase_add_test(tc, test_geom_check_bad);
	tcase_add_test(tc, test_geom_check_short_why);
	suite_add_tcase(s, tc);

	tc = tcase_create("mapping");
	tcase_add_loop_test(tc, test_mapping_sweep, 0, RAID_MAX_MEMBERS - 2); /* N = 3..16 */
	tcase_add_test(tc, test_mapping_doc_table);
	tcase_add_test(tc, test_mapping_bytes);
	tcase_add_test(tc, test_member_data_bytes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(layout_suite());
}

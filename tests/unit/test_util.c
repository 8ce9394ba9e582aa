/* raid/util.h: CRC32C vectors and chaining, txor/txor_into against a byte loop, and
 * raid_parse_layout (raid/layout.h) accepting exactly "<n>D+1P" for n = 2..15. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raid/layout.h"
#include "raid/util.h"
#include "tests/unit/unit.h"

/* ---- CRC32C ------------------------------------------------------------------------------ */

START_TEST(test_crc_vectors)
{
	static const uint8_t zeros[32];
	uint8_t ones[32];

	memset(ones, 0xff, sizeof(ones));
	ck_assert_uint_eq(tcrc32c("123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(tcrc32c("", 0), 0);
	ck_assert_uint_eq(tcrc32c(zeros, sizeof(zeros)), 0x8A9136AAu);
	/* RFC 3720 B.4: 32 bytes of 0xff */
	ck_assert_uint_eq(tcrc32c(ones, sizeof(ones)), 0x62A8AB43u);
	ck_assert_uint_eq(tcrc32c_update(0, "123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(tcrc32c_update(0x12345678u, "", 0), 0x12345678u);
}
END_TEST

/* Bitwise reference: reflected Castagnoli polynomial. */
static uint32_t crc32c_ref(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

START_TEST(test_crc_reference_and_chaining)
{
	struct urand r = { unit_seed_for(1) };
	size_t cap = 9000;
	uint8_t *buf = malloc(cap + 8);

	ck_assert_ptr_nonnull(buf);
	urand_fill(&r, buf, cap + 8);
	for (int iter = 0; iter < 300; iter++) {
		size_t len = (size_t)urand_below(&r, cap + 1);
		size_t mis = (size_t)urand_below(&r, 8);
		const uint8_t *p = buf + mis;
		uint32_t one = tcrc32c(p, len);

		if (one != crc32c_ref(p, len))
			ck_abort_msg("len %zu: %08x, reference %08x", len, one, crc32c_ref(p, len));
		/* split into up to 4 pieces at random points */
		for (int pieces = 2; pieces <= 4; pieces++) {
			uint32_t c = 0;
			size_t at = 0;

			for (int k = 0; k < pieces; k++) {
				size_t n = k == pieces - 1 ? len - at : (size_t)urand_below(&r, len - at + 1);

				c = tcrc32c_update(c, p + at, n);
				at += n;
			}
			if (c != one)
				ck_abort_msg("len %zu in %d pieces: %08x != %08x", len, pieces, c,
				      one);
		}
	}
	free(buf);
}
END_TEST

/* ---- XOR --------------------------------------------------------------------------------- */

static void xor_ref(uint8_t *dst, uint8_t *const *src, int nsrc, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t v = 0;

		for (int k = 0; k < nsrc; k++)
			v ^= src[k][i];
		dst[i] = v;
	}
}

#define XMAX_SRC 16
#define GUARD 64

/* Buffers for one test, allocated and filled with random bytes once: XMAX_SRC sources and a
 * destination of `cap` bytes each plus guards, 64-byte aligned. */
struct xbufs {
	uint8_t *base[XMAX_SRC + 1];
	uint8_t *want;
	size_t cap;
};

static void xbufs_init(struct xbufs *x, struct urand *r, size_t cap)
{
	x->cap = cap;
	for (int k = 0; k <= XMAX_SRC; k++) {
		ck_assert_int_eq(posix_memalign((void **)&x->base[k], 64, cap + 2 * GUARD + 64), 0);
		urand_fill(r, x->base[k], cap + 2 * GUARD + 64);
	}
	x->want = malloc(cap);
	ck_assert_ptr_nonnull(x->want);
}

static void xbufs_free(struct xbufs *x)
{
	for (int k = 0; k <= XMAX_SRC; k++)
		free(x->base[k]);
	free(x->want);
}

/* One txor check: `nsrc` sources of `len` bytes at byte misalignment `mis` (0: 64-byte aligned;
 * per-source offsets differ when `skew`), optionally dst == src[0]. Guard bytes around dst must
 * survive. */
static void xor_case(struct xbufs *x, struct urand *r, size_t len, int nsrc, size_t mis, int skew,
		     int alias)
{
	uint8_t *src[XMAX_SRC], *dst = NULL;
	const void *csrc[XMAX_SRC];
	uint8_t before[GUARD], after[GUARD];

	if (len > x->cap)
		ck_abort_msg("len %zu > cap %zu", len, x->cap);
	for (int k = 0; k <= nsrc; k++) {
		size_t off = mis + (skew ? (size_t)k * 3 % 32 : 0);

		if (k < nsrc)
			src[k] = x->base[k] + GUARD + off;
		else
			dst = x->base[XMAX_SRC] + GUARD + off;
	}
	xor_ref(x->want, src, nsrc, len);
	if (alias)
		dst = src[0];
	memcpy(before, dst - GUARD, GUARD);
	memcpy(after, dst + len, GUARD);
	for (int k = 0; k < nsrc; k++)
		csrc[k] = src[k];
	txor(dst, csrc, nsrc, len);
	if (memcmp(dst, x->want, len) != 0)
		ck_abort_msg("txor len %zu nsrc %d mis %zu skew %d alias %d: wrong result", len, nsrc, mis,
		      skew, alias);
	if (memcmp(before, dst - GUARD, GUARD) != 0 || memcmp(after, dst + len, GUARD) != 0)
		ck_abort_msg("txor len %zu nsrc %d mis %zu: wrote outside dst", len, nsrc, mis);
	if (alias) /* src[0] now holds the result: give it fresh bytes */
		urand_fill(r, dst, len);
}

/* Loop index = nsrc - 2: lengths 1..5000 (every one up to 600, then a varying stride), aligned,
 * misaligned, skewed, aliased. */
START_TEST(test_txor_lengths)
{
	int nsrc = _i + 2;
	struct urand r = { unit_seed_for(100 + (uint64_t)nsrc) };
	struct xbufs x;

	xbufs_init(&x, &r, 65537);
	for (size_t len = 1; len <= 5000; len += (len < 600 ? 1 : 1 + len % 37)) {
		int variant = (int)(len % 4);

		xor_case(&x, &r, len, nsrc, 0, 0, 0);
		if (variant == 0)
			xor_case(&x, &r, len, nsrc, 0, 0, 1);
		else if (variant == 1)
			xor_case(&x, &r, len, nsrc, (size_t)urand_range(&r, 1, 31), 0, 0);
		else if (variant == 2)
			xor_case(&x, &r, len, nsrc, (size_t)urand_range(&r, 0, 31), 1, 0);
		else
			xor_case(&x, &r, len, nsrc, (size_t)urand_range(&r, 1, 31), 1, 1);
	}
	/* block-ish sizes the RAID code uses, with their neighbours */
	for (size_t len = 256; len <= 65536; len *= 4) {
		xor_case(&x, &r, len - 1, nsrc, 0, 0, 0);
		xor_case(&x, &r, len, nsrc, 0, 0, 0);
		xor_case(&x, &r, len, nsrc, 0, 0, 1);
		xor_case(&x, &r, len + 1, nsrc, 0, 0, 1);
		xor_case(&x, &r, len, nsrc, 8, 1, 0);
	}
	xbufs_free(&x);
}
END_TEST

START_TEST(test_txor_large)
{
	struct urand r = { unit_seed_for(200) };
	static const int ns[] = { 2, 3, 5, 16 };
	struct xbufs x;

	xbufs_init(&x, &r, (1u << 20) + 64);
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		xor_case(&x, &r, 1u << 20, ns[i], 0, 0, 0);
		xor_case(&x, &r, 1u << 20, ns[i], 0, 0, 1);
		xor_case(&x, &r, (1u << 20) + 40, ns[i], 5, 1, 0);
	}
	xbufs_free(&x);
}
END_TEST

START_TEST(test_txor_one_source)
{
	uint8_t a[100], b[100];
	const void *s[1] = { a };

	memset(a, 0x5a, sizeof(a));
	memset(b, 0, sizeof(b));
	txor(b, s, 1, sizeof(a));
	ck_assert_mem_eq(a, b, sizeof(a));
	txor(a, s, 1, sizeof(a));
	ck_assert_mem_eq(a, b, sizeof(a));
}
END_TEST

START_TEST(test_txor_into)
{
	struct urand r = { unit_seed_for(300) };

	for (int iter = 0; iter < 400; iter++) {
		size_t len = iter < 40 ? (size_t)iter : (size_t)urand_range(&r, 1, 70000);
		size_t md = (size_t)urand_below(&r, 4) ? 0 : (size_t)urand_range(&r, 1, 31);
		size_t ms = (size_t)urand_below(&r, 4) ? 0 : (size_t)urand_range(&r, 1, 31);
		uint8_t *d, *s, *want;

		ck_assert_int_eq(posix_memalign((void **)&d, 64, len + 64), 0);
		ck_assert_int_eq(posix_memalign((void **)&s, 64, len + 64), 0);
		want = malloc(len + 1);
		ck_assert_ptr_nonnull(want);
		urand_fill(&r, d, len + 64);
		urand_fill(&r, s, len + 64);
		for (size_t i = 0; i < len; i++)
			want[i] = d[md + i] ^ s[ms + i];
		txor_into(d + md, s + ms, len);
		if (memcmp(d + md, want, len) != 0)
			ck_abort_msg("txor_into len %zu mis %zu/%zu", len,
			      md, ms);
		/* x ^= x is zero */
		txor_into(d + md, d + md, len);
		for (size_t i = 0; i < len; i++)
			if (d[md + i])
				ck_abort_msg("txor_into(x, x) len %zu: byte %zu not zero", len, i);
		free(d);
		free(s);
		free(want);
	}
}
END_TEST

/* ---- layout strings ---------------------------------------------------------------------- */

START_TEST(test_parse_layout_good)
{
	static const struct {
		const char *s;
		uint32_t n;
	} ok[] = {
		{ "3D+1P", 3 }, { "15d+1p", 15 }, { "2D+1P", 2 }, { "4d+1P", 4 }, { "7D+1p", 7 },
		{ "15D+1P", 15 },
	};
	char buf[16];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint32_t n = 0;

		ck_assert_msg(raid_parse_layout(ok[i].s, &n) == 0, "\"%s\" refused", ok[i].s);
		ck_assert_uint_eq(n, ok[i].n);
	}
	for (uint32_t k = RAID_MIN_DATA; k <= RAID_MAX_DATA; k++) {
		uint32_t n = 0;

		snprintf(buf, sizeof(buf), "%uD+1P", k);
		ck_assert_int_eq(raid_parse_layout(buf, &n), 0);
		ck_assert_uint_eq(n, k);
	}
}
END_TEST

START_TEST(test_parse_layout_bad)
{
	static const char *const bad[] = {
		"1D+1P", "16D+1P", "0D+1P", "3D+2P", "D+1P", "3D+1P ", " 3D+1P", "", "3x", "3",
		"3D", "3D+", "3D+1", "3D1P", "3D+1PP", "3P+1D", "-3D+1P", "+3D+1P", "3 D+1P",
		"3D +1P", "3D+ 1P", "99999999999999999999D+1P", "4294967299D+1P", "3D-1P", "3d+1q",
		"0x3D+1P", "3D+1P\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t n = 12345;

		ck_assert_msg(raid_parse_layout(bad[i], &n) == -EINVAL, "\"%s\" accepted", bad[i]);
		ck_assert_msg(n == 12345, "\"%s\" refused but wrote nr_data", bad[i]);
	}
}
END_TEST

/* ---- little-endian helpers, is_pow2 ------------------------------------------------------- */

START_TEST(test_le_and_pow2)
{
	uint8_t b[8];

	put_le32(b, 0x11223344u);
	ck_assert_uint_eq(get_le32(b), 0x11223344u);
	put_le64(b, 0x0102030405060708ull);
	ck_assert_uint_eq(b[0], 0x08);
	ck_assert_uint_eq(b[7], 0x01);
	ck_assert_uint_eq(get_le64(b), 0x0102030405060708ull);
	ck_assert(!is_pow2(0));
	ck_assert(is_pow2(1));
	ck_assert(is_pow2(4096));
	ck_assert(!is_pow2(4097));
	ck_assert(!is_pow2(3u << 12));
	ck_assert(is_pow2(1ull << 63));
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc;

	tc = tcase_create("crc32c");
	tcase_add_test(tc, test_crc_vectors);
	tcase_add_test(tc, test_crc_reference_and_chaining);
	suite_add_tcase(s, tc);

	tc = tcase_create("xor");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_txor_lengths, 0, XMAX_SRC - 1); /* nsrc 2..16 */
	tcase_add_test(tc, test_txor_large);
	tcase_add_test(tc, test_txor_one_source);
	tcase_add_test(tc, test_txor_into);
	suite_add_tcase(s, tc);

	tc = tcase_create("layout-string");
	tcase_add_test(tc, test_parse_layout_good);
	tcase_add_test(tc, test_parse_layout_bad);
	tcase_add_test(tc, test_le_and_pow2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(util_suite());
}

/* replication/journal.h: the on-volume format of docs/journal-format.md. Header and entry record
 * encode/parse round trips and byte layout, that any damage is refused with the right errno
 * (-ENODATA: not a journal / never written, -EBADMSG: damaged or impossible), the layout of a
 * journal volume, data placement in the ring, header A/B read/write through callbacks onto an
 * in-memory volume, and uuid strings. Pure functions: no files, no threads.
 * UNIT_SEED=<n> replays the randomised parts (the seed is printed). */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "raid/util.h"
#include "replication/journal.h"
#include "tests/unit/unit.h"

_Static_assert(JRNL_HDR_BYTES == 4096 && JRNL_ENTRY_BYTES == 128 && JRNL_ALIGN == 4096,
	       "sizes of docs/journal-format.md");

/* docs/journal-format.md: the metadata ring is 1/32 of the volume (one 128-byte record per 4 KiB
 * of data), a multiple of 4 KiB, 64 KiB to 16 MiB. */
#define META_DIVISOR 32
#define META_MIN (64u * 1024)
#define META_MAX (16u * 1024 * 1024)

/* A valid header with a distinct value in every field. */
static struct jrnl_hdr sample_hdr(void)
{
	struct jrnl_hdr h;

	memset(&h, 0, sizeof(h));
	h.role = JRNL_ROLE_AUX;
	for (int i = 0; i < 16; i++)
		h.uuid[i] = (uint8_t)(0xb0 + i);
	h.pair_id = 0x0102030405060708ull;
	h.generation = 0x1112131415161718ull;
	h.meta_offset = 2 * JRNL_HDR_BYTES;
	h.meta_bytes = 256 * 1024;
	h.data_offset = h.meta_offset + h.meta_bytes;
	h.data_bytes = 64ull << 20;
	h.jin_hint = 0x2122232425262728ull;
	h.jout = 0x3132333435363738ull;
	h.jout_pos = 0x4142434445464000ull;
	h.applied = 0x5152535455565758ull;
	h.confirmed = 0x6162636465666768ull;
	h.restore_completed = 0x7172737475767778ull;
	h.to_be_restored = 0x8182838485868788ull;
	h.read_completed = 0x9192939495969798ull;
	h.to_be_read = 0xa1a2a3a4a5a6a7a8ull;
	h.restore_pos = 0xb1b2b3b4b5b6b000ull;
	h.block_bytes = 4096;
	return h;
}

/* A valid data entry with a distinct value in every field. */
static struct jrnl_entry sample_entry(void)
{
	struct jrnl_entry e;

	memset(&e, 0, sizeof(e));
	e.seq = 0x0123456789abcdefull;
	e.time_ns = 0x1766554433221100ull;
	e.volid = 0x1122334455667788ull;
	e.lba = 0x0000123456789abcull;
	e.nblocks = 77;
	e.block_bytes = 512;
	e.pos = 0x00000abcdef01000ull;
	e.data_crc = 0xdeadbeef;
	e.flags = 0;
	return e;
}

static int hdr_equal(const struct jrnl_hdr *a, const struct jrnl_hdr *b)
{
	return a->role == b->role && !memcmp(a->uuid, b->uuid, 16) && a->pair_id == b->pair_id &&
	       a->generation == b->generation && a->meta_offset == b->meta_offset &&
	       a->meta_bytes == b->meta_bytes && a->data_offset == b->data_offset &&
	       a->data_bytes == b->data_bytes && a->jin_hint == b->jin_hint && a->jout == b->jout &&
	       a->jout_pos == b->jout_pos && a->applied == b->applied &&
	       a->confirmed == b->confirmed && a->restore_completed == b->restore_completed &&
	       a->to_be_restored == b->to_be_restored && a->read_completed == b->read_completed &&
	       a->to_be_read == b->to_be_read && a->restore_pos == b->restore_pos &&
	       a->block_bytes == b->block_bytes;
}

static int entry_equal(const struct jrnl_entry *a, const struct jrnl_entry *b)
{
	return a->seq == b->seq && a->time_ns == b->time_ns && a->volid == b->volid &&
	       a->lba == b->lba && a->nblocks == b->nblocks && a->block_bytes == b->block_bytes &&
	       a->pos == b->pos && a->data_crc == b->data_crc && a->flags == b->flags;
}

/* Recompute a header's CRC after a deliberate edit (to reach the checks behind it). */
static void hdr_reseal(uint8_t *b)
{
	put_le32(b + 16, 0);
	put_le32(b + 16, tcrc32c(b, JRNL_HDR_BYTES));
}

static void entry_reseal(uint8_t *b)
{
	put_le32(b + 124, tcrc32c(b, 124));
}

/* ---- header ---------------------------------------------------------------------------------- */

START_TEST(test_hdr_roundtrip)
{
	struct jrnl_hdr in = sample_hdr(), out;
	uint8_t b[JRNL_HDR_BYTES];

	jrnl_hdr_encode(&in, b);
	memset(&out, 0x5a, sizeof(out));
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), 0);
	ck_assert_uint_eq(out.role, in.role);
	ck_assert_mem_eq(out.uuid, in.uuid, 16);
	ck_assert_uint_eq(out.pair_id, in.pair_id);
	ck_assert_uint_eq(out.generation, in.generation);
	ck_assert_uint_eq(out.meta_offset, in.meta_offset);
	ck_assert_uint_eq(out.meta_bytes, in.meta_bytes);
	ck_assert_uint_eq(out.data_offset, in.data_offset);
	ck_assert_uint_eq(out.data_bytes, in.data_bytes);
	ck_assert_uint_eq(out.jin_hint, in.jin_hint);
	ck_assert_uint_eq(out.jout, in.jout);
	ck_assert_uint_eq(out.jout_pos, in.jout_pos);
	ck_assert_uint_eq(out.applied, in.applied);
	ck_assert_uint_eq(out.confirmed, in.confirmed);
	ck_assert_uint_eq(out.restore_completed, in.restore_completed);
	ck_assert_uint_eq(out.to_be_restored, in.to_be_restored);
	ck_assert_uint_eq(out.read_completed, in.read_completed);
	ck_assert_uint_eq(out.to_be_read, in.to_be_read);
	ck_assert_uint_eq(out.restore_pos, in.restore_pos);
	ck_assert_uint_eq(out.block_bytes, in.block_bytes);
	/* a longer buffer is fine: only the first 4 KiB count */
	{
		uint8_t big[JRNL_HDR_BYTES + 100];

		memcpy(big, b, sizeof(b));
		memset(big + sizeof(b), 0xee, 100);
		ck_assert_int_eq(jrnl_hdr_parse(big, sizeof(big), &out), 0);
		ck_assert(hdr_equal(&in, &out));
	}
	/* primary role, 512-byte blocks */
	in.role = JRNL_ROLE_PRIMARY;
	in.block_bytes = 512;
	jrnl_hdr_encode(&in, b);
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), 0);
	ck_assert(hdr_equal(&in, &out));
}
END_TEST

/* Random valid headers: parse gives the fields back, and re-encoding gives the same bytes. */
START_TEST(test_hdr_roundtrip_random)
{
	struct urand r = { unit_seed_for(21) };
	uint8_t b[JRNL_HDR_BYTES], b2[JRNL_HDR_BYTES];
	int bad = -1;

	for (int it = 0; it < 500 && bad < 0; it++) {
		struct jrnl_hdr in, out;

		memset(&in, 0, sizeof(in));
		in.role = urand_below(&r, 2) ? JRNL_ROLE_PRIMARY : JRNL_ROLE_AUX;
		urand_fill(&r, in.uuid, 16);
		in.pair_id = urand_next(&r);
		in.generation = urand_next(&r);
		in.meta_offset = 2 * JRNL_HDR_BYTES;
		in.meta_bytes = JRNL_ALIGN * urand_range(&r, 1, 1u << 20);
		in.data_offset = in.meta_offset + in.meta_bytes;
		in.data_bytes = JRNL_ALIGN * urand_range(&r, 1, 1ull << 38);
		in.jin_hint = urand_next(&r);
		in.jout = urand_range(&r, 1, UINT64_MAX);
		in.jout_pos = urand_next(&r);
		in.applied = urand_next(&r);
		in.confirmed = urand_next(&r);
		in.restore_completed = urand_next(&r);
		in.to_be_restored = urand_next(&r);
		in.read_completed = urand_next(&r);
		in.to_be_read = urand_next(&r);
		in.restore_pos = urand_next(&r);
		in.block_bytes = urand_below(&r, 2) ? 512 : 4096;
		jrnl_hdr_encode(&in, b);
		if (jrnl_hdr_parse(b, sizeof(b), &out) != 0 || !hdr_equal(&in, &out))
			bad = it;
		jrnl_hdr_encode(&out, b2);
		if (memcmp(b, b2, sizeof(b)) != 0)
			bad = it;
	}
	ck_assert_msg(bad < 0, "iteration %d: header round trip failed", bad);
}
END_TEST

/* The bytes sit where docs/journal-format.md says, little-endian, reserved zero, CRC over the
 * 4 KiB with the CRC field zero. */
START_TEST(test_hdr_layout)
{
	struct jrnl_hdr in = sample_hdr();
	uint8_t b[JRNL_HDR_BYTES], junk[JRNL_HDR_BYTES];

	memset(junk, 0xa5, sizeof(junk));
	jrnl_hdr_encode(&in, junk);
	jrnl_hdr_encode(&in, b);
	ck_assert_msg(memcmp(b, junk, sizeof(b)) == 0, "encode leaves old bytes behind");
	ck_assert_mem_eq(b, "TNDMJRNL", 8);
	ck_assert_uint_eq(get_le32(b + 8), 1);
	ck_assert_uint_eq(get_le32(b + 12), 4096);
	ck_assert_uint_eq(get_le32(b + 20), JRNL_ROLE_AUX);
	ck_assert_mem_eq(b + 24, in.uuid, 16);
	ck_assert_uint_eq(get_le64(b + 40), in.pair_id);
	ck_assert_uint_eq(get_le64(b + 48), in.generation);
	ck_assert_uint_eq(get_le64(b + 56), in.meta_offset);
	ck_assert_uint_eq(get_le64(b + 64), in.meta_bytes);
	ck_assert_uint_eq(get_le64(b + 72), in.data_offset);
	ck_assert_uint_eq(get_le64(b + 80), in.data_bytes);
	ck_assert_uint_eq(get_le64(b + 88), in.jin_hint);
	ck_assert_uint_eq(get_le64(b + 96), in.jout);
	ck_assert_uint_eq(get_le64(b + 104), in.jout_pos);
	ck_assert_uint_eq(get_le64(b + 112), in.applied);
	ck_assert_uint_eq(get_le64(b + 120), in.confirmed);
	ck_assert_uint_eq(get_le64(b + 128), in.restore_completed);
	ck_assert_uint_eq(get_le64(b + 136), in.to_be_restored);
	ck_assert_uint_eq(get_le64(b + 144), in.read_completed);
	ck_assert_uint_eq(get_le64(b + 152), in.to_be_read);
	ck_assert_uint_eq(get_le64(b + 160), in.restore_pos);
	ck_assert_uint_eq(get_le32(b + 168), in.block_bytes);
	for (size_t i = 172; i < JRNL_HDR_BYTES; i++)
		if (b[i])
			ck_abort_msg("reserved byte %zu is %u", i, b[i]);
	{
		uint32_t crc = get_le32(b + 16);

		put_le32(b + 16, 0);
		ck_assert_uint_eq(crc, tcrc32c(b, JRNL_HDR_BYTES));
	}
}
END_TEST

/* One flipped bit anywhere in the 4 KiB is refused: in the magic it is no journal (-ENODATA),
 * anywhere else damage (-EBADMSG). */
START_TEST(test_hdr_bit_flips)
{
	struct jrnl_hdr in = sample_hdr(), out;
	uint8_t good[JRNL_HDR_BYTES], b[JRNL_HDR_BYTES];
	int n_nodata = 0, n_badmsg = 0, first_wrong = -1, wrong_err = 0;

	jrnl_hdr_encode(&in, good);
	memcpy(b, good, sizeof(b));
	for (int bit = 0; bit < (int)JRNL_HDR_BYTES * 8; bit++) {
		int err, want = bit < 64 ? -ENODATA : -EBADMSG;

		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		err = jrnl_hdr_parse(b, sizeof(b), &out);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		n_nodata += err == -ENODATA;
		n_badmsg += err == -EBADMSG;
		if (err != want && first_wrong < 0) {
			first_wrong = bit;
			wrong_err = err;
		}
	}
	ck_assert_msg(first_wrong < 0, "bit %d (byte %d) flipped: parse %d", first_wrong,
		      first_wrong / 8, wrong_err);
	ck_assert_int_eq(n_nodata, 64);
	ck_assert_int_eq(n_badmsg, JRNL_HDR_BYTES * 8 - 64);
	ck_assert_mem_eq(b, good, sizeof(b));
}
END_TEST

/* Any byte replaced by another value (not only single bits), and the CRC field itself. */
START_TEST(test_hdr_byte_damage)
{
	struct jrnl_hdr in = sample_hdr(), out;
	struct urand r = { unit_seed_for(22) };
	uint8_t good[JRNL_HDR_BYTES], b[JRNL_HDR_BYTES];
	int first_wrong = -1, wrong_err = 0;

	jrnl_hdr_encode(&in, good);
	memcpy(b, good, sizeof(b));
	for (int byte = 0; byte < (int)JRNL_HDR_BYTES; byte++) {
		uint8_t delta = (uint8_t)urand_range(&r, 1, 255);
		int err, want = byte < 8 ? -ENODATA : -EBADMSG;

		b[byte] ^= delta;
		err = jrnl_hdr_parse(b, sizeof(b), &out);
		b[byte] = good[byte];
		if (err != want && first_wrong < 0) {
			first_wrong = byte;
			wrong_err = err;
		}
	}
	ck_assert_msg(first_wrong < 0, "byte %d damaged: parse %d", first_wrong, wrong_err);
	/* a wrong CRC value, a zero CRC */
	memcpy(b, good, sizeof(b));
	put_le32(b + 16, get_le32(good + 16) + 1);
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), -EBADMSG);
	put_le32(b + 16, 0);
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), -EBADMSG);
}
END_TEST

START_TEST(test_hdr_not_a_journal)
{
	struct urand r = { unit_seed_for(23) };
	struct jrnl_hdr in = sample_hdr(), out;
	uint8_t b[JRNL_HDR_BYTES];
	int bad = -1;

	memset(b, 0, sizeof(b));
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), -ENODATA);
	memset(b, 0xff, sizeof(b));
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), -ENODATA);
	for (int it = 0; it < 200 && bad < 0; it++) {
		urand_fill(&r, b, sizeof(b));
		if (!memcmp(b, "TNDMJRNL", 8))
			continue;
		if (jrnl_hdr_parse(b, sizeof(b), &out) != -ENODATA)
			bad = it;
	}
	ck_assert_msg(bad < 0, "random block %d is not -ENODATA", bad);
	/* another format's magic (the RAID superblock's), and the entry magic */
	jrnl_hdr_encode(&in, b);
	memcpy(b, "TNDMRAID", 8);
	hdr_reseal(b);
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), -ENODATA);
	memcpy(b, "TJE1\x80\0\0\0", 8);
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), -ENODATA);
}
END_TEST

/* A short buffer never parses, and never is read past its end (ASan builds see that). */
START_TEST(test_hdr_short)
{
	struct jrnl_hdr in = sample_hdr(), out;
	uint8_t b[JRNL_HDR_BYTES];

	jrnl_hdr_encode(&in, b);
	ck_assert_int_eq(jrnl_hdr_parse(b, 0, &out), -EBADMSG);
	ck_assert_int_eq(jrnl_hdr_parse(b, 8, &out), -EBADMSG);
	ck_assert_int_eq(jrnl_hdr_parse(b, JRNL_HDR_BYTES - 1, &out), -EBADMSG);
	ck_assert_int_eq(jrnl_hdr_parse(b, JRNL_HDR_BYTES, &out), 0);
}
END_TEST

START_TEST(test_hdr_bad_version_length)
{
	struct jrnl_hdr in = sample_hdr(), out;
	uint8_t b[JRNL_HDR_BYTES];
	static const uint32_t versions[] = { 0, 2, 3, 0x100, 0xffffffffu };
	static const uint32_t lens[] = { 0, 128, 512, 4095, 4097, 8192, 0xffffffffu };

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		jrnl_hdr_encode(&in, b);
		put_le32(b + 8, versions[i]);
		hdr_reseal(b);
		ck_assert_msg(jrnl_hdr_parse(b, sizeof(b), &out) == -EBADMSG, "version %u",
			      versions[i]);
	}
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		jrnl_hdr_encode(&in, b);
		put_le32(b + 12, lens[i]);
		hdr_reseal(b);
		ck_assert_msg(jrnl_hdr_parse(b, sizeof(b), &out) == -EBADMSG, "length %u", lens[i]);
	}
}
END_TEST

/* Fields that pass the CRC but make no sense are damage. Loop index picks the defect. */
#define NR_HDR_BAD_FIELDS 18
START_TEST(test_hdr_bad_fields)
{
	struct jrnl_hdr in = sample_hdr(), out;
	uint8_t b[JRNL_HDR_BYTES];
	const char *what = "";

	switch (_i) {
	case 0: in.role = 0; what = "role 0"; break;
	case 1: in.role = 3; what = "role 3"; break;
	case 2: in.meta_offset = 0; what = "meta over header A"; break;
	case 3: in.meta_offset = 4096; what = "meta over header B"; break;
	case 4: in.meta_offset = 3 * 4096; in.data_offset += 4096; what = "meta offset 12 KiB"; break;
	case 5: in.meta_bytes = 0; in.data_offset = in.meta_offset; what = "no meta ring"; break;
	case 6: in.meta_bytes += 128; in.data_offset += 128; what = "meta not 4 KiB"; break;
	case 7: in.data_offset += 4096; what = "gap after meta"; break;
	case 8: in.data_offset -= 4096; what = "data over meta"; break;
	case 9: in.data_bytes = 0; what = "no data ring"; break;
	case 10: in.data_bytes += 512; what = "data not 4 KiB"; break;
	case 11: in.data_bytes = (1ull << 50) + 4096; what = "data > 2^50"; break;
	case 12: in.meta_bytes = (1ull << 40) + 4096; in.data_offset = in.meta_offset + in.meta_bytes;
		what = "meta > 2^40"; break;
	case 13: in.jout = 0; what = "journal-out 0"; break;
	case 14: in.block_bytes = 0; what = "block 0"; break;
	case 15: in.block_bytes = 1024; what = "block 1024"; break;
	case 16: in.block_bytes = 8192; what = "block 8192"; break;
	case 17: in.data_offset = UINT64_MAX; what = "data offset huge"; break;
	default: ck_abort();
	}
	jrnl_hdr_encode(&in, b);
	ck_assert_msg(jrnl_hdr_parse(b, sizeof(b), &out) == -EBADMSG, "%s accepted", what);
}
END_TEST

/* The limits themselves are fine. */
START_TEST(test_hdr_limits)
{
	struct jrnl_hdr in = sample_hdr(), out;
	uint8_t b[JRNL_HDR_BYTES];

	in.meta_bytes = 4096;
	in.data_offset = in.meta_offset + in.meta_bytes;
	in.data_bytes = 4096;
	in.jout = 1;
	jrnl_hdr_encode(&in, b);
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), 0);
	ck_assert(hdr_equal(&in, &out));
	in.meta_bytes = 1ull << 40;
	in.data_offset = in.meta_offset + in.meta_bytes;
	in.data_bytes = 1ull << 50;
	in.jout = UINT64_MAX;
	jrnl_hdr_encode(&in, b);
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), 0);
	ck_assert(hdr_equal(&in, &out));
}
END_TEST

/* ---- entry ----------------------------------------------------------------------------------- */

START_TEST(test_entry_roundtrip)
{
	struct jrnl_entry in = sample_entry(), out;
	uint8_t b[JRNL_ENTRY_BYTES], junk[JRNL_ENTRY_BYTES];

	memset(junk, 0xa5, sizeof(junk));
	jrnl_entry_encode(&in, junk);
	jrnl_entry_encode(&in, b);
	ck_assert_msg(memcmp(b, junk, sizeof(b)) == 0, "encode leaves old bytes behind");
	memset(&out, 0x5a, sizeof(out));
	ck_assert_int_eq(jrnl_entry_parse(b, sizeof(b), &out), 0);
	ck_assert_uint_eq(out.seq, in.seq);
	ck_assert_uint_eq(out.time_ns, in.time_ns);
	ck_assert_uint_eq(out.volid, in.volid);
	ck_assert_uint_eq(out.lba, in.lba);
	ck_assert_uint_eq(out.nblocks, in.nblocks);
	ck_assert_uint_eq(out.block_bytes, in.block_bytes);
	ck_assert_uint_eq(out.pos, in.pos);
	ck_assert_uint_eq(out.data_crc, in.data_crc);
	ck_assert_uint_eq(out.flags, in.flags);
	/* the byte layout */
	ck_assert_mem_eq(b, "TJE1", 4);
	ck_assert_uint_eq(get_le32(b + 4), 128);
	ck_assert_uint_eq(get_le64(b + 8), in.seq);
	ck_assert_uint_eq(get_le64(b + 16), in.time_ns);
	ck_assert_uint_eq(get_le64(b + 24), in.volid);
	ck_assert_uint_eq(get_le64(b + 32), in.lba);
	ck_assert_uint_eq(get_le32(b + 40), in.nblocks);
	ck_assert_uint_eq(get_le32(b + 44), in.block_bytes);
	ck_assert_uint_eq(get_le64(b + 48), in.pos);
	ck_assert_uint_eq(get_le32(b + 56), in.data_crc);
	ck_assert_uint_eq(get_le32(b + 60), in.flags);
	for (int i = 64; i < 124; i++)
		if (b[i])
			ck_abort_msg("reserved byte %d is %u", i, b[i]);
	ck_assert_uint_eq(get_le32(b + 124), tcrc32c(b, 124));
	/* a longer buffer: only the first 128 bytes count */
	{
		uint8_t big[3 * JRNL_ENTRY_BYTES];

		memset(big, 0x33, sizeof(big));
		memcpy(big, b, sizeof(b));
		ck_assert_int_eq(jrnl_entry_parse(big, sizeof(big), &out), 0);
		ck_assert(entry_equal(&in, &out));
	}
}
END_TEST

START_TEST(test_entry_roundtrip_random)
{
	struct urand r = { unit_seed_for(31) };
	uint8_t b[JRNL_ENTRY_BYTES], b2[JRNL_ENTRY_BYTES];
	int bad = -1;

	for (int it = 0; it < 2000 && bad < 0; it++) {
		struct jrnl_entry in, out;

		memset(&in, 0, sizeof(in));
		in.seq = urand_range(&r, 1, UINT64_MAX);
		in.time_ns = urand_next(&r);
		in.volid = urand_next(&r);
		in.pos = urand_next(&r) & ~(uint64_t)(JRNL_ALIGN - 1);
		in.data_crc = (uint32_t)urand_next(&r);
		if (urand_below(&r, 8) == 0) {
			in.flags = JRNL_FLAG_MARKER;
			in.lba = urand_next(&r);
			in.block_bytes = (uint32_t)urand_next(&r);
		} else {
			in.lba = urand_below(&r, (UINT64_MAX >> 13) + 1);
			in.nblocks = (uint32_t)urand_range(&r, 1, 1u << 24);
			in.block_bytes = urand_below(&r, 2) ? 512 : 4096;
		}
		jrnl_entry_encode(&in, b);
		if (jrnl_entry_parse(b, sizeof(b), &out) != 0 || !entry_equal(&in, &out))
			bad = it;
		jrnl_entry_encode(&out, b2);
		if (memcmp(b, b2, sizeof(b)) != 0)
			bad = it;
	}
	ck_assert_msg(bad < 0, "iteration %d: entry round trip failed", bad);
}
END_TEST

/* A slot never written reads as zeros: -ENODATA. Almost zeros is damage. */
START_TEST(test_entry_zero)
{
	uint8_t b[JRNL_ENTRY_BYTES];
	struct jrnl_entry out;

	memset(b, 0, sizeof(b));
	ck_assert_int_eq(jrnl_entry_parse(b, sizeof(b), &out), -ENODATA);
	/* zeros in the first 128 bytes, anything after: still never written */
	{
		uint8_t big[2 * JRNL_ENTRY_BYTES];

		memset(big, 0, JRNL_ENTRY_BYTES);
		memset(big + JRNL_ENTRY_BYTES, 0xff, JRNL_ENTRY_BYTES);
		ck_assert_int_eq(jrnl_entry_parse(big, sizeof(big), &out), -ENODATA);
	}
	b[127] = 1;
	ck_assert_int_eq(jrnl_entry_parse(b, sizeof(b), &out), -EBADMSG);
	b[127] = 0;
	b[0] = 0x80;
	ck_assert_int_eq(jrnl_entry_parse(b, sizeof(b), &out), -EBADMSG);
	/* short buffers */
	ck_assert_int_eq(jrnl_entry_parse(b, 0, &out), -EBADMSG);
	ck_assert_int_eq(jrnl_entry_parse(b, JRNL_ENTRY_BYTES - 1, &out), -EBADMSG);
}
END_TEST

/* One flipped bit anywhere in a record (all 1024) is refused as damage, for a data entry and a
 * marker. */
START_TEST(test_entry_bit_flips)
{
	struct jrnl_entry in = sample_entry(), out;
	uint8_t good[JRNL_ENTRY_BYTES], b[JRNL_ENTRY_BYTES];
	int n_badmsg = 0, first_wrong = -1, wrong_err = 0;

	if (_i == 1) {
		in.flags = JRNL_FLAG_MARKER;
		in.nblocks = 0;
	}
	jrnl_entry_encode(&in, good);
	ck_assert_int_eq(jrnl_entry_parse(good, sizeof(good), &out), 0);
	memcpy(b, good, sizeof(b));
	for (int bit = 0; bit < (int)JRNL_ENTRY_BYTES * 8; bit++) {
		int err;

		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		err = jrnl_entry_parse(b, sizeof(b), &out);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		n_badmsg += err == -EBADMSG;
		if (err != -EBADMSG && first_wrong < 0) {
			first_wrong = bit;
			wrong_err = err;
		}
	}
	ck_assert_msg(first_wrong < 0, "bit %d (byte %d) flipped: parse %d", first_wrong,
		      first_wrong / 8, wrong_err);
	ck_assert_int_eq(n_badmsg, JRNL_ENTRY_BYTES * 8);
	ck_assert_mem_eq(b, good, sizeof(b));
}
END_TEST

/* A torn record: the head of a new record over the tail of an older one (another lap). */
START_TEST(test_entry_torn)
{
	struct jrnl_entry a = sample_entry(), c = sample_entry(), out;
	uint8_t ba[JRNL_ENTRY_BYTES], bc[JRNL_ENTRY_BYTES], b[JRNL_ENTRY_BYTES];
	int first_wrong = -1;

	c.seq = a.seq + 1000;
	c.lba = 5;
	c.data_crc = 17;
	jrnl_entry_encode(&a, ba);
	jrnl_entry_encode(&c, bc);
	for (int cut = 1; cut < (int)JRNL_ENTRY_BYTES; cut++) {
		memcpy(b, bc, (size_t)cut);
		memcpy(b + cut, ba + cut, JRNL_ENTRY_BYTES - (size_t)cut);
		if (memcmp(b, ba, sizeof(b)) && memcmp(b, bc, sizeof(b)) &&
		    jrnl_entry_parse(b, sizeof(b), &out) != -EBADMSG && first_wrong < 0)
			first_wrong = cut;
	}
	ck_assert_msg(first_wrong < 0, "torn at byte %d accepted", first_wrong);
}
END_TEST

/* Fields that pass the CRC but make no sense: magic, length, sequence, flags, alignment, the
 * marker rules and the limits of a data entry. Loop index picks the defect. */
#define NR_ENTRY_BAD 16
START_TEST(test_entry_bad_fields)
{
	struct jrnl_entry in = sample_entry(), out;
	uint8_t b[JRNL_ENTRY_BYTES];
	const char *what = "";

	switch (_i) {
	case 0: what = "magic TJE2"; break;
	case 1: what = "length 64"; break;
	case 2: what = "length 256"; break;
	case 3: in.seq = 0; what = "sequence 0"; break;
	case 4: in.flags = 2; what = "unknown flag 2"; break;
	case 5: in.flags = JRNL_FLAG_MARKER | 0x80000000u; in.nblocks = 0; what = "marker + flag 31";
		break;
	case 6: in.pos += 512; what = "position not 4 KiB aligned"; break;
	case 7: in.pos = 1; in.flags = JRNL_FLAG_MARKER; in.nblocks = 0;
		what = "marker at an unaligned position"; break;
	case 8: in.flags = JRNL_FLAG_MARKER; in.nblocks = 1; what = "marker with data"; break;
	case 9: in.nblocks = 0; what = "data entry without blocks"; break;
	case 10: in.block_bytes = 0; what = "block 0"; break;
	case 11: in.block_bytes = 1024; what = "block 1024"; break;
	case 12: in.block_bytes = 520; what = "block 520"; break;
	case 13: in.nblocks = (1u << 24) + 1; what = "more than 2^24 blocks"; break;
	case 14: in.nblocks = UINT32_MAX; what = "2^32-1 blocks"; break;
	case 15: in.lba = (UINT64_MAX >> 13) + 1; what = "lba past 2^51"; break;
	default: ck_abort();
	}
	jrnl_entry_encode(&in, b);
	if (_i == 0) {
		b[3] = '2';
		entry_reseal(b);
	} else if (_i == 1 || _i == 2) {
		put_le32(b + 4, _i == 1 ? 64 : 256);
		entry_reseal(b);
	}
	ck_assert_msg(jrnl_entry_parse(b, sizeof(b), &out) == -EBADMSG, "%s accepted", what);
}
END_TEST

/* Markers: no data, any lba and block size; their data length is 0 and they fit anywhere. */
START_TEST(test_entry_marker)
{
	struct jrnl_entry in = sample_entry(), out;
	struct jrnl_hdr h;
	uint8_t b[JRNL_ENTRY_BYTES];

	ck_assert_int_eq(jrnl_layout(64ull << 20, 512, &h), 0);
	in.flags = JRNL_FLAG_MARKER;
	in.nblocks = 0;
	in.block_bytes = 0;
	in.lba = UINT64_MAX;
	in.data_crc = 0;
	jrnl_entry_encode(&in, b);
	ck_assert_int_eq(jrnl_entry_parse(b, sizeof(b), &out), 0);
	ck_assert(entry_equal(&in, &out));
	ck_assert_uint_eq(jrnl_entry_len(&out), 0);
	ck_assert_int_eq(jrnl_entry_check(&h, &out), 0);
	out.pos = h.data_bytes - JRNL_ALIGN;
	ck_assert_int_eq(jrnl_entry_check(&h, &out), 0);
	out.pos = 7 * h.data_bytes;
	ck_assert_int_eq(jrnl_entry_check(&h, &out), 0);
	/* the data entry limits themselves are fine */
	in = sample_entry();
	in.nblocks = 1u << 24;
	in.block_bytes = 4096;
	in.lba = UINT64_MAX >> 13;
	jrnl_entry_encode(&in, b);
	ck_assert_int_eq(jrnl_entry_parse(b, sizeof(b), &out), 0);
	ck_assert(entry_equal(&in, &out));
	in.nblocks = 1;
	in.seq = 1;
	in.pos = 0;
	in.lba = 0;
	jrnl_entry_encode(&in, b);
	ck_assert_int_eq(jrnl_entry_parse(b, sizeof(b), &out), 0);
	ck_assert(entry_equal(&in, &out));
}
END_TEST

/* ---- layout and placement -------------------------------------------------------------------- */

static void check_layout(uint64_t vol_bytes, uint32_t block_bytes)
{
	struct jrnl_hdr h, out;
	uint8_t b[JRNL_HDR_BYTES];
	uint64_t avail = (vol_bytes - 2 * JRNL_HDR_BYTES) / JRNL_ALIGN * JRNL_ALIGN, want_meta;

	memset(&h, 0x5a, sizeof(h));
	ck_assert_msg(jrnl_layout(vol_bytes, block_bytes, &h) == 0, "layout of %llu bytes",
		      (unsigned long long)vol_bytes);
	want_meta = avail / META_DIVISOR / JRNL_ALIGN * JRNL_ALIGN;
	if (want_meta < META_MIN)
		want_meta = META_MIN;
	if (want_meta > META_MAX)
		want_meta = META_MAX;
	ck_assert_uint_eq(h.meta_offset, 2 * JRNL_HDR_BYTES);
	ck_assert_uint_eq(h.meta_bytes, want_meta);
	ck_assert_uint_eq(h.meta_bytes % JRNL_ALIGN, 0);
	ck_assert(h.meta_bytes >= META_MIN && h.meta_bytes <= META_MAX);
	ck_assert_uint_eq(h.data_offset, h.meta_offset + h.meta_bytes);
	ck_assert_uint_eq(h.data_offset % JRNL_ALIGN, 0);
	ck_assert(h.data_bytes > 0);
	ck_assert_uint_eq(h.data_bytes % JRNL_ALIGN, 0);
	/* data is the rest: it ends within the volume, less than 4 KiB before its end */
	ck_assert(h.data_offset + h.data_bytes <= vol_bytes);
	ck_assert(vol_bytes - (h.data_offset + h.data_bytes) < JRNL_ALIGN);
	ck_assert_uint_eq(jrnl_slots(&h), h.meta_bytes / 128);
	ck_assert_uint_eq(h.block_bytes, block_bytes);
	ck_assert_uint_eq(h.jout, 1);
	ck_assert_uint_eq(h.generation, 0);
	ck_assert_uint_eq(h.applied, 0);
	ck_assert_uint_eq(h.jout_pos, 0);
	/* with a role it is a header the parser accepts */
	h.role = JRNL_ROLE_PRIMARY;
	jrnl_hdr_encode(&h, b);
	ck_assert_int_eq(jrnl_hdr_parse(b, sizeof(b), &out), 0);
	ck_assert(hdr_equal(&h, &out));
}

START_TEST(test_layout)
{
	struct jrnl_hdr h;

	/* below 1 MiB: no journal */
	ck_assert_int_eq(jrnl_layout(0, 512, &h), -ENOSPC);
	ck_assert_int_eq(jrnl_layout(8192, 512, &h), -ENOSPC);
	ck_assert_int_eq(jrnl_layout(JRNL_MIN_BYTES - 1, 512, &h), -ENOSPC);
	/* 1 MiB: the 64 KiB floor */
	check_layout(JRNL_MIN_BYTES, 512);
	ck_assert_int_eq(jrnl_layout(JRNL_MIN_BYTES, 512, &h), 0);
	ck_assert_uint_eq(h.meta_bytes, META_MIN);
	ck_assert_uint_eq(h.data_offset, 8192 + META_MIN);
	ck_assert_uint_eq(h.data_bytes, (1u << 20) - 8192 - META_MIN);
	/* 64 MiB: 1/32 of what follows the headers, rounded down to 4 KiB */
	ck_assert_int_eq(jrnl_layout(64ull << 20, 4096, &h), 0);
	ck_assert_uint_eq(h.meta_bytes, ((64ull << 20) - 8192) / META_DIVISOR / 4096 * 4096);
	ck_assert_uint_eq(h.meta_bytes % 4096, 0);
	ck_assert(h.meta_bytes > META_MIN && h.meta_bytes < META_MAX);
	check_layout(64ull << 20, 4096);
	/* 16 MiB x 32 (512 MiB): exactly 16 MiB - 4 KiB; twice that and more: the 16 MiB ceiling */
	ck_assert_int_eq(jrnl_layout((uint64_t)META_MAX * META_DIVISOR, 512, &h), 0);
	ck_assert_uint_eq(h.meta_bytes, META_MAX - 4096);
	ck_assert_int_eq(jrnl_layout(2ull * META_MAX * META_DIVISOR, 512, &h), 0);
	ck_assert_uint_eq(h.meta_bytes, META_MAX);
	ck_assert_int_eq(jrnl_layout(1ull << 40, 512, &h), 0);
	ck_assert_uint_eq(h.meta_bytes, META_MAX);
	ck_assert_uint_eq(h.data_bytes, (1ull << 40) - 8192 - META_MAX);
	/* odd sizes: not a multiple of 4 KiB or of 512 */
	check_layout(JRNL_MIN_BYTES + 1, 512);
	check_layout(JRNL_MIN_BYTES + 4095, 512);
	check_layout(5ull * 1000 * 1000 + 7, 512);
	check_layout(4ull << 20, 512);
	check_layout((4ull << 20) + 65536 * META_DIVISOR, 512);
	check_layout(1ull << 30, 4096);
	check_layout((1ull << 30) + 4096 * META_DIVISOR - 1, 4096);
	check_layout(2ull << 30, 4096);
	check_layout(1ull << 40, 4096);
	{
		struct urand r = { unit_seed_for(41) };

		for (int it = 0; it < 200; it++)
			check_layout(urand_range(&r, JRNL_MIN_BYTES, 1ull << 44),
				     urand_below(&r, 2) ? 512 : 4096);
	}
}
END_TEST

START_TEST(test_place)
{
	struct jrnl_hdr h;
	uint64_t d;

	ck_assert_int_eq(jrnl_layout(8ull << 20, 512, &h), 0);
	d = h.data_bytes;
	/* fits: stays */
	ck_assert_uint_eq(jrnl_place(&h, 0, 4096), 0);
	ck_assert_uint_eq(jrnl_place(&h, 0, d), 0);
	ck_assert_uint_eq(jrnl_place(&h, 4096, 512), 4096);
	ck_assert_uint_eq(jrnl_place(&h, d - 4096, 4096), d - 4096);
	ck_assert_uint_eq(jrnl_place(&h, d - 4096, 512), d - 4096);
	ck_assert_uint_eq(jrnl_place(&h, d - 8192, 8192), d - 8192);
	ck_assert_uint_eq(jrnl_place(&h, d - 4096, 0), d - 4096);
	/* would straddle the ring's end: the start of the next lap */
	ck_assert_uint_eq(jrnl_place(&h, d - 4096, 4097), d);
	ck_assert_uint_eq(jrnl_place(&h, d - 4096, 8192), d);
	ck_assert_uint_eq(jrnl_place(&h, 4096, d), d);
	ck_assert_uint_eq(jrnl_place(&h, d - 8192, 8193), d);
	/* later laps: positions only grow */
	ck_assert_uint_eq(jrnl_place(&h, d, 4096), d);
	ck_assert_uint_eq(jrnl_place(&h, 3 * d - 4096, 4096), 3 * d - 4096);
	ck_assert_uint_eq(jrnl_place(&h, 3 * d - 4096, 4097), 3 * d);
	ck_assert_uint_eq(jrnl_place(&h, 5 * d + 8192, d - 8192), 5 * d + 8192);
	ck_assert_uint_eq(jrnl_place(&h, 5 * d + 8192, d - 8191), 6 * d);
	/* random: the result is pos or the next lap's start, never straddles, passes the check */
	{
		struct urand r = { unit_seed_for(42) };
		int bad = -1;

		for (int it = 0; it < 100000 && bad < 0; it++) {
			uint64_t pos = urand_below(&r, 1ull << 40) * JRNL_ALIGN;
			uint64_t len = urand_range(&r, 1, d), p = jrnl_place(&h, pos, len);
			struct jrnl_entry e = { .seq = 1, .nblocks = (uint32_t)(jrnl_align(len) / 512),
						.block_bytes = 512, .pos = p };

			if (!(p == pos || p == (pos / d + 1) * d) || p % JRNL_ALIGN ||
			    p % d + len > d || (p != pos && pos % d + len <= d) ||
			    jrnl_entry_check(&h, &e) != 0)
				bad = it;
		}
		ck_assert_msg(bad < 0, "random placement %d wrong", bad);
	}
}
END_TEST

START_TEST(test_entry_check)
{
	struct jrnl_hdr h;
	struct jrnl_entry e = sample_entry();
	uint64_t d;

	ck_assert_int_eq(jrnl_layout(8ull << 20, 512, &h), 0);
	d = h.data_bytes;
	e.block_bytes = 512;
	e.nblocks = 8;
	e.pos = 0;
	ck_assert_int_eq(jrnl_entry_check(&h, &e), 0);
	e.pos = d - 4096;                       /* 4 KiB exactly up to the end */
	ck_assert_int_eq(jrnl_entry_check(&h, &e), 0);
	e.nblocks = 1;                          /* 512 bytes, 4 KiB of ring */
	ck_assert_int_eq(jrnl_entry_check(&h, &e), 0);
	e.nblocks = 9;                          /* 4.5 KiB: would straddle */
	ck_assert_int_eq(jrnl_entry_check(&h, &e), -EBADMSG);
	e.pos = 9 * d - 4096;                   /* same on a later lap */
	ck_assert_int_eq(jrnl_entry_check(&h, &e), -EBADMSG);
	e.pos = 9 * d;
	ck_assert_int_eq(jrnl_entry_check(&h, &e), 0);
	/* the whole ring, and one block more */
	e.pos = 2 * d;
	e.nblocks = (uint32_t)(d / 512);
	ck_assert_int_eq(jrnl_entry_check(&h, &e), 0);
	e.pos = 2 * d + 4096;
	ck_assert_int_eq(jrnl_entry_check(&h, &e), -EBADMSG);
	e.pos = 2 * d;
	e.nblocks++;
	ck_assert_int_eq(jrnl_entry_check(&h, &e), -EBADMSG);
	/* bigger than the ring, the biggest entry the parser accepts */
	e.nblocks = 1u << 24;
	e.block_bytes = 4096;
	ck_assert_int_eq(jrnl_entry_check(&h, &e), -EBADMSG);
	/* the helpers */
	ck_assert_uint_eq(jrnl_data_off(&h, 0), h.data_offset);
	ck_assert_uint_eq(jrnl_data_off(&h, d + 4096), h.data_offset + 4096);
	ck_assert_uint_eq(jrnl_slot_off(&h, 0), h.meta_offset);
	ck_assert_uint_eq(jrnl_slot_off(&h, 1), h.meta_offset + 128);
	ck_assert_uint_eq(jrnl_slot_off(&h, jrnl_slots(&h) + 3), h.meta_offset + 3 * 128);
	ck_assert_uint_eq(jrnl_pos_lba(&h, d + 4096), (h.data_offset + 4096) / 512);
	ck_assert_uint_eq(jrnl_align(0), 0);
	ck_assert_uint_eq(jrnl_align(1), 4096);
	ck_assert_uint_eq(jrnl_align(4096), 4096);
	ck_assert_uint_eq(jrnl_align(4097), 8192);
}
END_TEST

/* ---- header A/B on a volume ------------------------------------------------------------------ */

#define MEMVOL_BYTES (4 * JRNL_HDR_BYTES)

/* An in-memory "journal volume" for the header callbacks: every access is checked, errors and
 * torn writes on demand. */
struct memvol {
	uint8_t b[MEMVOL_BYTES];
	int reads, writes;
	uint64_t last_off, last_len;
	int fail_read;              /* next read fails with -EIO */
	int fail_write;             /* next write fails with -EIO */
	int tear_write;             /* next write lands half (garbage tail), then fails with -EIO */
};

static int mem_read(void *ctx, void *buf, uint64_t off, uint64_t len)
{
	struct memvol *m = ctx;

	ck_assert(off + len <= MEMVOL_BYTES && off % 512 == 0 && len % 512 == 0);
	m->reads++;
	if (m->fail_read) {
		m->fail_read = 0;
		return -EIO;
	}
	memcpy(buf, m->b + off, len);
	return 0;
}

static int mem_write(void *ctx, const void *buf, uint64_t off, uint64_t len)
{
	struct memvol *m = ctx;

	ck_assert(off + len <= MEMVOL_BYTES && off % 512 == 0 && len % 512 == 0);
	m->writes++;
	m->last_off = off;
	m->last_len = len;
	if (m->fail_write) {
		m->fail_write = 0;
		return -EIO;
	}
	if (m->tear_write) {
		m->tear_write = 0;
		memcpy(m->b + off, buf, len / 2);
		memset(m->b + off + len / 2, 0xee, len - len / 2);
		return -EIO;
	}
	memcpy(m->b + off, buf, len);
	return 0;
}

static struct jrnl_hdr new_journal(void)
{
	struct jrnl_hdr h;

	ck_assert_int_eq(jrnl_layout(64ull << 20, 512, &h), 0);
	h.role = JRNL_ROLE_PRIMARY;
	for (int i = 0; i < 16; i++)
		h.uuid[i] = (uint8_t)(i * 17);
	h.pair_id = 7;
	return h;
}

/* Put a header with this generation at copy `which` (0: A, 1: B) directly. */
static void mem_put(struct memvol *m, int which, struct jrnl_hdr h, uint64_t generation)
{
	h.generation = generation;
	h.applied = generation * 10;           /* tells the copies apart */
	jrnl_hdr_encode(&h, m->b + (size_t)which * JRNL_HDR_BYTES);
}

START_TEST(test_hdr_io_blank)
{
	static struct memvol m;
	struct jrnl_hdr h;

	memset(&m, 0, sizeof(m));
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &h), -ENODATA);
	ck_assert_int_eq(m.reads, 1);
	/* not a journal: some other data in both places */
	memset(m.b, 0x42, sizeof(m.b));
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &h), -ENODATA);
	/* a read error is passed on */
	m.fail_read = 1;
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &h), -EIO);
}
END_TEST

/* Writes alternate: generation g goes to copy (g & 1), i.e. B, A, B, ...; the other copy keeps
 * the previous header; a read returns the newest. */
START_TEST(test_hdr_io_alternate)
{
	static struct memvol m;
	struct jrnl_hdr h = new_journal(), got;
	uint8_t prev[JRNL_HDR_BYTES];

	memset(&m, 0, sizeof(m));
	for (int i = 1; i <= 10; i++) {
		uint64_t place = (uint64_t)(i & 1) * JRNL_HDR_BYTES;

		h.applied = (uint64_t)i * 100;
		memcpy(prev, m.b + (JRNL_HDR_BYTES - place), JRNL_HDR_BYTES);
		ck_assert_int_eq(jrnl_hdr_write(mem_write, &m, &h), 0);
		ck_assert_uint_eq(h.generation, (uint64_t)i);
		ck_assert_uint_eq(m.writes, i);
		ck_assert_uint_eq(m.last_off, place);
		ck_assert_uint_eq(m.last_len, JRNL_HDR_BYTES);
		/* the other copy is untouched */
		ck_assert_mem_eq(m.b + (JRNL_HDR_BYTES - place), prev, JRNL_HDR_BYTES);
		memset(&got, 0x5a, sizeof(got));
		ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
		ck_assert(hdr_equal(&got, &h));
		/* and nothing after the two headers is written */
		for (size_t k = 2 * JRNL_HDR_BYTES; k < MEMVOL_BYTES; k++)
			if (m.b[k])
				ck_abort_msg("byte %zu past the headers written", k);
	}
	/* the first write after a read continues the sequence */
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
	ck_assert_int_eq(jrnl_hdr_write(mem_write, &m, &got), 0);
	ck_assert_uint_eq(got.generation, 11);
	ck_assert_uint_eq(m.last_off, JRNL_HDR_BYTES);
}
END_TEST

/* The newest valid copy wins, wherever it sits. */
START_TEST(test_hdr_io_newest)
{
	static struct memvol m;
	struct jrnl_hdr h = new_journal(), got;

	memset(&m, 0, sizeof(m));
	mem_put(&m, 0, h, 6);
	mem_put(&m, 1, h, 5);
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
	ck_assert_uint_eq(got.generation, 6);
	ck_assert_uint_eq(got.applied, 60);
	mem_put(&m, 1, h, 7);
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
	ck_assert_uint_eq(got.generation, 7);
	ck_assert_uint_eq(got.applied, 70);
	/* far apart, and huge generations */
	mem_put(&m, 0, h, UINT64_MAX - 1);
	mem_put(&m, 1, h, 1);
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
	ck_assert_uint_eq(got.generation, UINT64_MAX - 1);
	/* only one copy written yet (the other blank): that one */
	memset(&m, 0, sizeof(m));
	mem_put(&m, 1, h, 1);
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
	ck_assert_uint_eq(got.generation, 1);
	memset(&m, 0, sizeof(m));
	mem_put(&m, 0, h, 2);
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
	ck_assert_uint_eq(got.generation, 2);
}
END_TEST

/* One copy damaged: the other serves, whichever is newer. Both damaged: -EBADMSG, also when one
 * is blank and the other damaged. */
START_TEST(test_hdr_io_damage)
{
	static struct memvol m;
	struct jrnl_hdr h = new_journal(), got;

	for (int which = 0; which < 2; which++) {
		/* the newer copy (at `which`) damaged: the older one */
		memset(&m, 0, sizeof(m));
		mem_put(&m, which, h, 11);
		mem_put(&m, 1 - which, h, 10);
		m.b[(size_t)which * JRNL_HDR_BYTES + 100] ^= 1;
		ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
		ck_assert_uint_eq(got.generation, 10);
		ck_assert_uint_eq(got.applied, 100);
		/* the older copy damaged: the newer one */
		memset(&m, 0, sizeof(m));
		mem_put(&m, which, h, 11);
		mem_put(&m, 1 - which, h, 10);
		m.b[(size_t)(1 - which) * JRNL_HDR_BYTES + 2000] ^= 0x40;
		ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
		ck_assert_uint_eq(got.generation, 11);
		/* a copy whose magic is gone (wiped) is no header: the other serves */
		memset(&m, 0, sizeof(m));
		mem_put(&m, 0, h, 3);
		mem_put(&m, 1, h, 4);
		memset(m.b + (size_t)which * JRNL_HDR_BYTES, 0, JRNL_HDR_BYTES);
		ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
		ck_assert_uint_eq(got.generation, which ? 3 : 4);
		/* one blank, the other damaged */
		m.b[(size_t)(1 - which) * JRNL_HDR_BYTES + 50] ^= 0x10;
		ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), -EBADMSG);
	}
	/* both damaged */
	memset(&m, 0, sizeof(m));
	mem_put(&m, 0, h, 20);
	mem_put(&m, 1, h, 21);
	m.b[17] ^= 1;
	m.b[JRNL_HDR_BYTES + 4000] ^= 0x80;
	ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), -EBADMSG);
}
END_TEST

/* A write that fails (nothing written, or torn) leaves the previous header readable. */
START_TEST(test_hdr_io_write_fail)
{
	static struct memvol m;
	struct jrnl_hdr h = new_journal(), got;

	for (int tear = 0; tear < 2; tear++) {
		memset(&m, 0, sizeof(m));
		h.generation = 0;
		h.applied = 0;
		for (int i = 0; i < 4; i++)
			ck_assert_int_eq(jrnl_hdr_write(mem_write, &m, &h), 0);
		h.applied = 12345;
		if (tear)
			m.tear_write = 1;
		else
			m.fail_write = 1;
		ck_assert_int_eq(jrnl_hdr_write(mem_write, &m, &h), -EIO);
		ck_assert_uint_eq(m.last_off, JRNL_HDR_BYTES);   /* generation 5's place */
		ck_assert_int_eq(jrnl_hdr_read(mem_read, &m, &got), 0);
		ck_assert_uint_eq(got.generation, 4);
		ck_assert_uint_eq(got.applied, 0);
	}
}
END_TEST

/* ---- uuid ------------------------------------------------------------------------------------ */

START_TEST(test_uuid)
{
	struct urand r = { unit_seed_for(51) };
	static const uint8_t u0[16] = { 0x01, 0x12, 0x23, 0x34, 0x45, 0x56, 0x67, 0x78,
					0x89, 0x9a, 0xab, 0xbc, 0xcd, 0xde, 0xef, 0xf0 };
	uint8_t u[16], back[16];
	char s[37];
	int bad = -1;

	memcpy(u, u0, 16);
	jrnl_uuid_str(u, s);
	ck_assert_str_eq(s, "01122334-4556-6778-899a-abbccddeeff0");
	ck_assert_int_eq(jrnl_uuid_parse(s, back), 0);
	ck_assert_mem_eq(back, u, 16);
	/* without dashes */
	ck_assert_int_eq(jrnl_uuid_parse("0112233445566778899aabbccddeeff0", back), 0);
	ck_assert_mem_eq(back, u, 16);
	memset(u, 0, 16);
	jrnl_uuid_str(u, s);
	ck_assert_str_eq(s, "00000000-0000-0000-0000-000000000000");
	memset(u, 0xff, 16);
	jrnl_uuid_str(u, s);
	ck_assert_str_eq(s, "ffffffff-ffff-ffff-ffff-ffffffffffff");
	ck_assert_int_eq(jrnl_uuid_parse(s, back), 0);
	ck_assert_mem_eq(back, u, 16);
	for (int it = 0; it < 1000 && bad < 0; it++) {
		urand_fill(&r, u, 16);
		jrnl_uuid_str(u, s);
		if (strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' ||
		    jrnl_uuid_parse(s, back) != 0 || memcmp(back, u, 16))
			bad = it;
	}
	ck_assert_msg(bad < 0, "uuid round trip %d failed", bad);
	/* new uuids: version 4, variant 10, and two differ */
	jrnl_new_uuid(u);
	jrnl_new_uuid(back);
	ck_assert_uint_eq(u[6] >> 4, 4);
	ck_assert_uint_eq(u[8] >> 6, 2);
	ck_assert(memcmp(u, back, 16) != 0);
}
END_TEST

START_TEST(test_uuid_bad)
{
	static const char *const bad[] = {
		"",
		"-",
		"0112233",
		"01122334-4556-6778-899a-abbccddeeff",       /* 31 digits */
		"01122334-4556-6778-899a-abbccddeeffg",      /* not hex */
		"01122334 4556-6778-899a-abbccddeeff0",      /* a space */
		"x1122334-4556-6778-899a-abbccddeeff0",
		"01122334-4556-6778-899a-abbccddeef.f0",
	};
	uint8_t u[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(jrnl_uuid_parse(bad[i], u) == -EINVAL, "'%s' accepted", bad[i]);
}
END_TEST

static Suite *journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc;

	tc = tcase_create("header");
	tcase_add_test(tc, test_hdr_roundtrip);
	tcase_add_test(tc, test_hdr_roundtrip_random);
	tcase_add_test(tc, test_hdr_layout);
	tcase_add_test(tc, test_hdr_bit_flips);
	tcase_add_test(tc, test_hdr_byte_damage);
	tcase_add_test(tc, test_hdr_not_a_journal);
	tcase_add_test(tc, test_hdr_short);
	tcase_add_test(tc, test_hdr_bad_version_length);
	tcase_add_loop_test(tc, test_hdr_bad_fields, 0, NR_HDR_BAD_FIELDS);
	tcase_add_test(tc, test_hdr_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("entry");
	tcase_add_test(tc, test_entry_roundtrip);
	tcase_add_test(tc, test_entry_roundtrip_random);
	tcase_add_test(tc, test_entry_zero);
	tcase_add_loop_test(tc, test_entry_bit_flips, 0, 2);
	tcase_add_test(tc, test_entry_torn);
	tcase_add_loop_test(tc, test_entry_bad_fields, 0, NR_ENTRY_BAD);
	tcase_add_test(tc, test_entry_marker);
	suite_add_tcase(s, tc);

	tc = tcase_create("geometry");
	tcase_add_test(tc, test_layout);
	tcase_add_test(tc, test_place);
	tcase_add_test(tc, test_entry_check);
	suite_add_tcase(s, tc);

	tc = tcase_create("header-io");
	tcase_add_test(tc, test_hdr_io_blank);
	tcase_add_test(tc, test_hdr_io_alternate);
	tcase_add_test(tc, test_hdr_io_newest);
	tcase_add_test(tc, test_hdr_io_damage);
	tcase_add_test(tc, test_hdr_io_write_fail);
	suite_add_tcase(s, tc);

	tc = tcase_create("uuid");
	tcase_add_test(tc, test_uuid);
	tcase_add_test(tc, test_uuid_bad);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(journal_suite());
}

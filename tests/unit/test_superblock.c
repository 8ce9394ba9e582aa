/* raid/superblock.h: the byte layout of docs/raid-format.md ("Superblock"), encode/decode round
 * trip, and that any damage is refused with the right errno. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "raid/superblock.h"
#include "raid/util.h"
#include "tests/unit/unit.h"

/* The layout is pinned: the doc's table, byte for byte. */
_Static_assert(RAID_SB_BYTES == 4096, "superblock is 4 KiB");
_Static_assert(RAID_SB_OFF_MAGIC == 0 && RAID_SB_OFF_VERSION == 8 && RAID_SB_OFF_LENGTH == 12 &&
	       RAID_SB_OFF_CRC == 16 && RAID_SB_OFF_FLAGS == 20 && RAID_SB_OFF_SEQUENCE == 24 &&
	       RAID_SB_OFF_UUID == 32 && RAID_SB_OFF_INDEX == 48 && RAID_SB_OFF_NR_MEMBERS == 52 &&
	       RAID_SB_OFF_NR_DATA == 56 && RAID_SB_OFF_CHUNK == 60 && RAID_SB_OFF_BLOCK == 64 &&
	       RAID_SB_OFF_MEMBER_BYTES == 72 && RAID_SB_OFF_DATA_OFFSET == 80 &&
	       RAID_SB_OFF_MEMBER_DATA == 88 && RAID_SB_OFF_VOLUME_BYTES == 96 &&
	       RAID_SB_OFF_VOLID == 104 && RAID_SB_OFF_CTIME == 112 && RAID_SB_OFF_FAILED == 120 &&
	       RAID_SB_OFF_BITMAP_OFFSET == 128 && RAID_SB_OFF_BITMAP_BYTES == 136 &&
	       RAID_SB_OFF_REBUILD == 144 && RAID_SB_OFF_REGION == 148 &&
	       RAID_SB_OFF_CHECKPOINT == 152 && RAID_SB_OFF_RESERVED == 160,
	       "superblock offsets match docs/raid-format.md and docs/raid-resilience.md");
_Static_assert(RAID_SB_OFF_RESERVED + 3936 == RAID_SB_BYTES, "reserved tail is 3936 bytes");
_Static_assert(sizeof(RAID_SB_MAGIC) - 1 == 8, "magic is 8 bytes");

/* A valid superblock with a distinct value in every field. */
static struct raid_sb sample_sb(void)
{
	struct raid_sb sb;

	memset(&sb, 0, sizeof(sb));
	sb.version = RAID_SB_VERSION;
	sb.flags = RAID_SB_FLAG_DIRTY;
	sb.sequence = 0x0123456789abcdefull;
	for (int i = 0; i < 16; i++)
		sb.array_uuid[i] = (uint8_t)(0xa0 + i);
	sb.geom.nr_data = 5;
	sb.nr_members = 6;
	sb.member_index = 4;
	sb.geom.chunk_bytes = 65536;
	sb.geom.block_bytes = 512;
	sb.geom.data_offset_bytes = RAID_DATA_OFFSET_BYTES;
	sb.geom.member_data_bytes = 65536ull * 1000;
	sb.member_bytes = RAID_DATA_OFFSET_BYTES + 65536ull * 1000 + 777;
	sb.volume_bytes = 5 * 65536ull * 1000;
	sb.volid = 0x1122334455667788ull;
	sb.ctime = 1700000000;
	sb.failed_mask = 0x8001;
	sb.bitmap_offset_bytes = 2ull << 20;
	sb.bitmap_bytes = 122880;   /* 30 blocks of 4 KiB */
	sb.bitmap_region_stripes = 8;
	sb.rebuild_member = 3;
	sb.rebuild_checkpoint = 17;
	return sb;
}

/* Recompute the CRC after a deliberate edit (to reach the checks behind it). */
static void reseal(uint8_t *b)
{
	put_le32(b + RAID_SB_OFF_CRC, 0);
	put_le32(b + RAID_SB_OFF_CRC, tcrc32c(b, RAID_SB_BYTES));
}

START_TEST(test_roundtrip)
{
	struct raid_sb in = sample_sb(), out;
	uint8_t b[RAID_SB_BYTES];
	char why[200] = "";

	raid_sb_encode(&in, b);
	memset(&out, 0x5a, sizeof(out));
	ck_assert_msg(raid_sb_decode(b, &out, why, sizeof(why)) == 0, "decode: %s", why);
	ck_assert_uint_eq(out.version, RAID_SB_VERSION);
	ck_assert_uint_eq(out.flags, in.flags);
	ck_assert_uint_eq(out.sequence, in.sequence);
	ck_assert_mem_eq(out.array_uuid, in.array_uuid, 16);
	ck_assert_uint_eq(out.member_index, in.member_index);
	ck_assert_uint_eq(out.nr_members, in.nr_members);
	ck_assert_uint_eq(out.geom.nr_data, in.geom.nr_data);
	ck_assert_uint_eq(out.geom.chunk_bytes, in.geom.chunk_bytes);
	ck_assert_uint_eq(out.geom.block_bytes, in.geom.block_bytes);
	ck_assert_uint_eq(out.geom.data_offset_bytes, in.geom.data_offset_bytes);
	ck_assert_uint_eq(out.geom.member_data_bytes, in.geom.member_data_bytes);
	ck_assert_uint_eq(out.member_bytes, in.member_bytes);
	ck_assert_uint_eq(out.volume_bytes, in.volume_bytes);
	ck_assert_uint_eq(out.volid, in.volid);
	ck_assert_uint_eq(out.ctime, in.ctime);
	ck_assert_uint_eq(out.failed_mask, in.failed_mask);
	ck_assert_uint_eq(out.bitmap_offset_bytes, in.bitmap_offset_bytes);
	ck_assert_uint_eq(out.bitmap_bytes, in.bitmap_bytes);
	ck_assert_uint_eq(out.rebuild_member, in.rebuild_member);
	ck_assert_uint_eq(out.bitmap_region_stripes, in.bitmap_region_stripes);
	ck_assert_uint_eq(out.rebuild_checkpoint, in.rebuild_checkpoint);
}
END_TEST

/* Round trip over many random valid superblocks (every geometry the format allows). */
START_TEST(test_roundtrip_random)
{
	struct urand r = { unit_seed_for(11) };
	uint8_t b[RAID_SB_BYTES], b2[RAID_SB_BYTES];

	for (int it = 0; it < 500; it++) {
		struct raid_sb in, out;
		char why[200] = "";

		memset(&in, 0, sizeof(in));
		in.version = RAID_SB_VERSION;
		in.flags = (uint32_t)urand_next(&r);
		in.sequence = urand_next(&r);
		urand_fill(&r, in.array_uuid, 16);
		in.geom.nr_data = (uint32_t)urand_range(&r, RAID_MIN_DATA, RAID_MAX_DATA);
		in.nr_members = in.geom.nr_data + 1;
		in.member_index = (uint32_t)urand_below(&r, in.nr_members);
		in.geom.chunk_bytes = RAID_MIN_CHUNK_BYTES << urand_below(&r, 9);
		in.geom.block_bytes = urand_below(&r, 2) ? 512 : 4096;
		in.geom.data_offset_bytes = RAID_DATA_OFFSET_BYTES;
		in.geom.member_data_bytes = in.geom.chunk_bytes * urand_range(&r, 1, 1u << 20);
		in.member_bytes = urand_next(&r);
		in.volume_bytes = raid_volume_bytes(&in.geom);
		in.volid = urand_next(&r);
		in.ctime = urand_next(&r);
		in.failed_mask = urand_next(&r);
		/* the resilience fields, within what decode accepts: a bitmap (or none) inside the
		 * metadata area with a region size, a rebuild target 0..N (index + 1), a checkpoint
		 * 0..stripes */
		if (urand_below(&r, 4) == 0) {
			in.bitmap_offset_bytes = 0;
			in.bitmap_bytes = urand_below(&r, 2) ? 0 : urand_next(&r);
			in.bitmap_region_stripes = (uint32_t)urand_next(&r);
		} else {
			/* 4 KiB aligned, past the two superblocks, ending by data_offset, and with a
			 * bit for every region */
			uint64_t blocks = RAID_DATA_OFFSET_BYTES / 4096, regions;

			in.bitmap_offset_bytes = 4096 * urand_range(&r, 2, blocks - 1);
			in.bitmap_bytes = 4096 * urand_range(&r, 1, blocks - in.bitmap_offset_bytes / 4096);
			regions = in.bitmap_bytes * 8;
			in.bitmap_region_stripes = (uint32_t)((raid_nr_stripes(&in.geom) + regions - 1) /
							      regions);
			if (in.bitmap_region_stripes == 0)
				in.bitmap_region_stripes = 1;
			in.bitmap_region_stripes += (uint32_t)urand_below(&r, 1000);
		}
		in.rebuild_member = (uint32_t)urand_below(&r, in.nr_members + 1);
		in.rebuild_checkpoint = urand_below(&r, raid_nr_stripes(&in.geom) + 1);
		raid_sb_encode(&in, b);
		if (raid_sb_decode(b, &out, why, sizeof(why)) != 0)
			ck_abort_msg("iteration %d: decode: %s", it, why);
		/* decode then encode gives the same bytes */
		raid_sb_encode(&out, b2);
		if (memcmp(b, b2, sizeof(b)) != 0)
			ck_abort_msg("iteration %d: re-encoded bytes differ", it);
		if (out.flags != in.flags || out.sequence != in.sequence ||
		    memcmp(out.array_uuid, in.array_uuid, 16) != 0 ||
		    out.member_index != in.member_index || out.member_bytes != in.member_bytes ||
		    out.geom.member_data_bytes != in.geom.member_data_bytes || out.volid != in.volid ||
		    out.ctime != in.ctime || out.failed_mask != in.failed_mask ||
		    out.bitmap_offset_bytes != in.bitmap_offset_bytes ||
		    out.bitmap_bytes != in.bitmap_bytes || out.geom.chunk_bytes != in.geom.chunk_bytes ||
		    out.geom.block_bytes != in.geom.block_bytes ||
		    out.rebuild_member != in.rebuild_member ||
		    out.bitmap_region_stripes != in.bitmap_region_stripes ||
		    out.rebuild_checkpoint != in.rebuild_checkpoint)
			ck_abort_msg("iteration %d: a field changed in the round trip", it);
	}
}
END_TEST

/* The encoded bytes sit where the doc says, little-endian, reserved bytes zero, CRC over the
 * block with the CRC field zero. */
START_TEST(test_encoded_layout)
{
	struct raid_sb in = sample_sb();
	uint8_t b[RAID_SB_BYTES], junk[RAID_SB_BYTES], copy[RAID_SB_BYTES];

	memset(junk, 0xa5, sizeof(junk));
	raid_sb_encode(&in, junk);
	raid_sb_encode(&in, b);
	ck_assert_msg(memcmp(b, junk, sizeof(b)) == 0, "encode leaves old bytes behind");
	ck_assert_mem_eq(b, "TNDMRAID", 8);
	ck_assert_uint_eq(get_le32(b + 8), 1);
	ck_assert_uint_eq(get_le32(b + 12), 4096);
	ck_assert_uint_eq(get_le32(b + 20), RAID_SB_FLAG_DIRTY);
	ck_assert_uint_eq(get_le64(b + 24), in.sequence);
	ck_assert_mem_eq(b + 32, in.array_uuid, 16);
	ck_assert_uint_eq(get_le32(b + 48), 4);
	ck_assert_uint_eq(get_le32(b + 52), 6);
	ck_assert_uint_eq(get_le32(b + 56), 5);
	ck_assert_uint_eq(get_le32(b + 60), 65536);
	ck_assert_uint_eq(get_le32(b + 64), 512);
	ck_assert_uint_eq(get_le32(b + 68), 0);
	ck_assert_uint_eq(get_le64(b + 72), in.member_bytes);
	ck_assert_uint_eq(get_le64(b + 80), RAID_DATA_OFFSET_BYTES);
	ck_assert_uint_eq(get_le64(b + 88), in.geom.member_data_bytes);
	ck_assert_uint_eq(get_le64(b + 96), in.volume_bytes);
	ck_assert_uint_eq(get_le64(b + 104), in.volid);
	ck_assert_uint_eq(get_le64(b + 112), in.ctime);
	ck_assert_uint_eq(get_le64(b + 120), in.failed_mask);
	ck_assert_uint_eq(get_le64(b + 128), in.bitmap_offset_bytes);
	ck_assert_uint_eq(get_le64(b + 136), in.bitmap_bytes);
	ck_assert_uint_eq(get_le32(b + 144), in.rebuild_member);
	ck_assert_uint_eq(get_le32(b + 148), in.bitmap_region_stripes);
	ck_assert_uint_eq(get_le64(b + 152), in.rebuild_checkpoint);
	/* explicit byte order of one field: little-endian on every host */
	ck_assert_uint_eq(b[104], 0x88);
	ck_assert_uint_eq(b[111], 0x11);
	ck_assert_uint_eq(b[144], 3);
	ck_assert_uint_eq(b[145] | b[146] | b[147], 0);
	for (int i = 160; i < 4096; i++)
		if (b[i])
			ck_abort_msg("reserved byte %d is %#x", i, b[i]);
	memcpy(copy, b, sizeof(b));
	put_le32(copy + 16, 0);
	ck_assert_uint_eq(get_le32(b + 16), tcrc32c(copy, sizeof(copy)));
	/* the encoder writes its own version, whatever the struct says */
	in.version = 7;
	raid_sb_encode(&in, junk);
	ck_assert_mem_eq(junk, b, sizeof(b));
}
END_TEST

/* Every single-bit flip in the 4096 bytes is refused: -EINVAL in the magic (not a member),
 * otherwise -EPROTO (damage). The version field is checked before the CRC, so a flip there that
 * yields a version above ours reads as -EPROTONOSUPPORT (a newer format), and one that yields 0
 * as -EPROTO. */
START_TEST(test_bit_flips)
{
	struct raid_sb in = sample_sb(), out;
	uint8_t good[RAID_SB_BYTES], b[RAID_SB_BYTES];
	char why[200];
	int n_inval = 0, n_proto = 0, n_nosup = 0;

	raid_sb_encode(&in, good);
	memcpy(b, good, sizeof(b));
	for (int byte = 0; byte < (int)RAID_SB_BYTES; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			int err, want;

			b[byte] ^= (uint8_t)(1u << bit);
			err = raid_sb_decode(b, &out, why, sizeof(why));
			b[byte] ^= (uint8_t)(1u << bit);
			/* the CRC is checked before the version: a flipped version bit is damage */
			want = byte < RAID_SB_OFF_VERSION ? -EINVAL : -EPROTO;
			if (err != want)
				ck_abort_msg("bit %d of byte %d flipped: decode %d (%s), want %d", bit,
					     byte, err, err ? why : "accepted", want);
			n_inval += err == -EINVAL;
			n_proto += err == -EPROTO;
			n_nosup += err == -EPROTONOSUPPORT;
		}
	}
	ck_assert_int_eq(n_inval, 64);
	ck_assert_int_eq(n_nosup, 0);
	ck_assert_int_eq(n_proto, 4096 * 8 - 64);
	ck_assert_mem_eq(b, good, sizeof(b));
}
END_TEST

/* Random multi-byte damage (a scribbled block) and torn writes (the head of a new superblock over
 * the tail of an older one) never decode, unless the bytes equal one of the two whole blocks. */
START_TEST(test_random_damage)
{
	struct raid_sb in = sample_sb(), older = sample_sb(), out;
	uint8_t good[RAID_SB_BYTES], old[RAID_SB_BYTES], b[RAID_SB_BYTES];
	struct urand r = { unit_seed_for(12) };
	char why[200];

	older.sequence--;
	older.flags = 0;
	older.ctime -= 1000;
	older.failed_mask = 0;
	older.bitmap_bytes = 4096;
	raid_sb_encode(&in, good);
	raid_sb_encode(&older, old);
	for (int it = 0; it < 4000; it++) {
		uint32_t at = (uint32_t)urand_below(&r, RAID_SB_BYTES);
		int err, whole;

		memcpy(b, good, sizeof(b));
		if (it % 2) {
			urand_fill(&r, b + at, (size_t)urand_range(&r, 1, RAID_SB_BYTES - at));
		} else {
			if (it % 4 == 0)
				at %= 160; /* where the two differ */
			memcpy(b + at, old + at, RAID_SB_BYTES - at);
		}
		whole = memcmp(b, good, sizeof(b)) == 0 || memcmp(b, old, sizeof(b)) == 0;
		err = raid_sb_decode(b, &out, why, sizeof(why));
		if (whole && err != 0)
			ck_abort_msg("iteration %d: an intact block refused: %s", it, why);
		if (!whole && err == 0)
			ck_abort_msg("iteration %d (%s at %u) accepted", it,
				     it % 2 ? "scribble" : "torn", at);
		if (!whole && it % 2 == 0 && err != -EPROTO)
			ck_abort_msg("torn at %u: %d (%s), want -EPROTO", at, err, why);
	}
}
END_TEST

START_TEST(test_not_a_superblock)
{
	uint8_t b[RAID_SB_BYTES];
	struct raid_sb out;
	char why[200] = "";

	memset(b, 0, sizeof(b));
	ck_assert_int_eq(raid_sb_decode(b, &out, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "magic"));
	memset(b, 0xff, sizeof(b));
	ck_assert_int_eq(raid_sb_decode(b, &out, why, sizeof(why)), -EINVAL);
	memcpy(b, "TNDMRAIX", 8);
	ck_assert_int_eq(raid_sb_decode(b, &out, why, sizeof(why)), -EINVAL);
	memcpy(b, "tndmraid", 8); /* the magic is case-sensitive */
	ck_assert_int_eq(raid_sb_decode(b, &out, why, sizeof(why)), -EINVAL);
}
END_TEST

START_TEST(test_newer_version)
{
	struct raid_sb in = sample_sb(), out;
	uint8_t b[RAID_SB_BYTES];
	char why[200] = "";

	raid_sb_encode(&in, b);
	put_le32(b + RAID_SB_OFF_VERSION, RAID_SB_VERSION + 1);
	reseal(b);
	ck_assert_int_eq(raid_sb_decode(b, &out, why, sizeof(why)), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(why, "newer"));
	/* a newer version may change anything after the version: still "newer", not damage */
	put_le32(b + RAID_SB_OFF_LENGTH, 8192);
	put_le32(b + RAID_SB_OFF_CRC, 0xdeadbeef);
	ck_assert_int_eq(raid_sb_decode(b, &out, why, sizeof(why)), -EPROTONOSUPPORT);
	put_le32(b + RAID_SB_OFF_VERSION, 0xffffffffu);
	ck_assert_int_eq(raid_sb_decode(b, &out, why, sizeof(why)), -EPROTONOSUPPORT);
	/* version 0 never existed */
	raid_sb_encode(&in, b);
	put_le32(b + RAID_SB_OFF_VERSION, 0);
	reseal(b);
	ck_assert_int_eq(raid_sb_decode(b, &out, why, sizeof(why)), -EPROTO);
}
END_TEST

START_TEST(test_bad_length)
{
	struct raid_sb in = sample_sb(), out;
	uint8_t b[RAID_SB_BYTES];
	char why[200] = "";
	static const uint32_t lens[] = { 0, 512, 4095, 4097, 8192, 0xffffffffu };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		raid_sb_encode(&in, b);
		put_le32(b + RAID_SB_OFF_LENGTH, lens[i]);
		reseal(b);
		ck_assert_msg(raid_sb_decode(b, &out, why, sizeof(why)) == -EPROTO, "length %u",
			      lens[i]);
	}
}
END_TEST

/* Fields that pass the CRC but make no sense are damage too. Loop index picks the defect. */
START_TEST(test_bad_fields)
{
	struct raid_sb in = sample_sb(), out;
	uint8_t b[RAID_SB_BYTES];
	char why[200] = "";
	const char *what = "";

	switch (_i) {
	case 0: in.geom.nr_data = 1; in.nr_members = 2; in.volume_bytes = in.geom.member_data_bytes;
		what = "n=1"; break;
	case 1: in.geom.nr_data = 16; in.nr_members = 17; what = "n=16"; break;
	case 2: in.geom.chunk_bytes = 3000; what = "chunk 3000"; break;
	case 3: in.geom.chunk_bytes = 2u << 20; what = "chunk 2 MiB"; break;
	case 4: in.geom.block_bytes = 1024; what = "block 1024"; break;
	case 5: in.geom.data_offset_bytes = 12345; what = "data offset"; break;
	case 6: in.geom.member_data_bytes = 0; in.volume_bytes = 0; what = "no data area"; break;
	case 7: in.geom.member_data_bytes += 4096; in.volume_bytes = 5 * in.geom.member_data_bytes;
		what = "data area not a chunk multiple"; break;
	case 8: in.nr_members = 5; what = "nr_members != n+1"; break;
	case 9: in.member_index = 6; what = "member_index == N"; break;
	case 10: in.member_index = 0xffffffffu; what = "member_index huge"; break;
	case 11: in.volume_bytes += 65536; what = "volume_bytes != n * data"; break;
	/* the resilience fields (docs/raid-resilience.md) */
	case 12: in.rebuild_member = in.nr_members + 1; what = "rebuild_member N+1"; break;
	case 13: in.rebuild_member = 0xffffffffu; what = "rebuild_member huge"; break;
	case 14: in.rebuild_checkpoint = raid_nr_stripes(&in.geom) + 1;
		what = "rebuild_checkpoint past the last stripe"; break;
	case 15: in.rebuild_checkpoint = UINT64_MAX; what = "rebuild_checkpoint huge"; break;
	case 16: in.bitmap_region_stripes = 0; what = "bitmap with region_stripes 0"; break;
	case 17: in.bitmap_offset_bytes = 65536; in.bitmap_bytes = RAID_DATA_OFFSET_BYTES - 65536 + 1;
		what = "bitmap one byte into the data area"; break;
	case 18: in.bitmap_offset_bytes = RAID_DATA_OFFSET_BYTES; in.bitmap_bytes = 4096;
		what = "bitmap at data_offset"; break;
	case 19: in.bitmap_offset_bytes = 65536; in.bitmap_bytes = UINT64_MAX - 65535;
		what = "bitmap_bytes wrapping around"; break;
	case 20: in.bitmap_offset_bytes = 65536; in.bitmap_region_stripes = 1; in.bitmap_bytes = 8;
		what = "bitmap smaller than its regions (1000 stripes, 1 per region, 8 bytes)"; break;
	default: ck_abort();
	}
	raid_sb_encode(&in, b);
	ck_assert_msg(raid_sb_decode(b, &out, why, sizeof(why)) == -EPROTO, "%s accepted", what);
	ck_assert_msg(why[0] != '\0', "%s: no reason given", what);
}
END_TEST
#define NR_BAD_FIELDS 21

/* The limits of the resilience fields themselves are valid: the last member being rebuilt, a
 * checkpoint at the end (rebuilt completely), a bitmap ending exactly at data_offset, and no
 * bitmap at all (then its region size means nothing). */
START_TEST(test_resilience_field_limits)
{
	struct raid_sb in = sample_sb(), out;
	uint8_t b[RAID_SB_BYTES];
	char why[200] = "";
	const char *what = "";

	switch (_i) {
	case 0: in.rebuild_member = in.nr_members; what = "rebuild_member N"; break;
	case 1: in.rebuild_member = 0; in.rebuild_checkpoint = 0; what = "no rebuild"; break;
	case 2: in.rebuild_checkpoint = raid_nr_stripes(&in.geom); what = "checkpoint at the end";
		break;
	case 3: in.bitmap_offset_bytes = 65536; in.bitmap_bytes = RAID_DATA_OFFSET_BYTES - 65536;
		what = "bitmap up to data_offset"; break;
	case 4: in.bitmap_offset_bytes = 0; in.bitmap_bytes = 0; in.bitmap_region_stripes = 0;
		what = "no bitmap"; break;
	case 5: in.bitmap_region_stripes = UINT32_MAX; what = "huge regions"; break;
	default: ck_abort();
	}
	raid_sb_encode(&in, b);
	ck_assert_msg(raid_sb_decode(b, &out, why, sizeof(why)) == 0, "%s refused: %s", what, why);
	ck_assert_uint_eq(out.rebuild_member, in.rebuild_member);
	ck_assert_uint_eq(out.rebuild_checkpoint, in.rebuild_checkpoint);
	ck_assert_uint_eq(out.bitmap_offset_bytes, in.bitmap_offset_bytes);
	ck_assert_uint_eq(out.bitmap_bytes, in.bitmap_bytes);
	ck_assert_uint_eq(out.bitmap_region_stripes, in.bitmap_region_stripes);
}
END_TEST

static Suite *superblock_suite(void)
{
	Suite *s = suite_create("superblock");
	TCase *tc;

	tc = tcase_create("format");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_roundtrip_random);
	tcase_add_test(tc, test_encoded_layout);
	suite_add_tcase(s, tc);

	tc = tcase_create("damage");
	tcase_add_test(tc, test_bit_flips);
	tcase_add_test(tc, test_random_damage);
	tcase_add_test(tc, test_not_a_superblock);
	tcase_add_test(tc, test_newer_version);
	tcase_add_test(tc, test_bad_length);
	tcase_add_loop_test(tc, test_bad_fields, 0, NR_BAD_FIELDS);
	tcase_add_loop_test(tc, test_resilience_field_limits, 0, 6);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(superblock_suite());
}

#include "raid/superblock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "raid/util.h"

_Static_assert(RAID_SB_OFF_RESERVED + 3936 == RAID_SB_BYTES, "superblock layout is 4096 bytes");

void raid_sb_encode(const struct raid_sb *sb, uint8_t b[RAID_SB_BYTES])
{
	memset(b, 0, RAID_SB_BYTES);
	memcpy(b + RAID_SB_OFF_MAGIC, RAID_SB_MAGIC, 8);
	put_le32(b + RAID_SB_OFF_VERSION, RAID_SB_VERSION);
	put_le32(b + RAID_SB_OFF_LENGTH, RAID_SB_BYTES);
	put_le32(b + RAID_SB_OFF_FLAGS, sb->flags);
	put_le64(b + RAID_SB_OFF_SEQUENCE, sb->sequence);
	memcpy(b + RAID_SB_OFF_UUID, sb->array_uuid, 16);
	put_le32(b + RAID_SB_OFF_INDEX, sb->member_index);
	put_le32(b + RAID_SB_OFF_NR_MEMBERS, sb->nr_members);
	put_le32(b + RAID_SB_OFF_NR_DATA, sb->geom.nr_data);
	put_le32(b + RAID_SB_OFF_CHUNK, sb->geom.chunk_bytes);
	put_le32(b + RAID_SB_OFF_BLOCK, sb->geom.block_bytes);
	put_le64(b + RAID_SB_OFF_MEMBER_BYTES, sb->member_bytes);
	put_le64(b + RAID_SB_OFF_DATA_OFFSET, sb->geom.data_offset_bytes);
	put_le64(b + RAID_SB_OFF_MEMBER_DATA, sb->geom.member_data_bytes);
	put_le64(b + RAID_SB_OFF_VOLUME_BYTES, sb->volume_bytes);
	put_le64(b + RAID_SB_OFF_VOLID, sb->volid);
	put_le64(b + RAID_SB_OFF_CTIME, sb->ctime);
	put_le64(b + RAID_SB_OFF_FAILED, sb->failed_mask);
	put_le64(b + RAID_SB_OFF_BITMAP_OFFSET, sb->bitmap_offset_bytes);
	put_le64(b + RAID_SB_OFF_BITMAP_BYTES, sb->bitmap_bytes);
	put_le32(b + RAID_SB_OFF_REBUILD, sb->rebuild_member);
	put_le32(b + RAID_SB_OFF_REGION, sb->bitmap_region_stripes);
	put_le64(b + RAID_SB_OFF_CHECKPOINT, sb->rebuild_checkpoint);
	put_le32(b + RAID_SB_OFF_CRC, tcrc32c(b, RAID_SB_BYTES));
}

int raid_sb_decode(const uint8_t b[RAID_SB_BYTES], struct raid_sb *sb, char *why, size_t why_len)
{
	uint8_t copy[RAID_SB_BYTES];
	uint32_t crc;
	char g_why[160];

	if (memcmp(b + RAID_SB_OFF_MAGIC, RAID_SB_MAGIC, 8) != 0) {
		snprintf(why, why_len, "no tandem RAID superblock (magic)");
		return -EINVAL;
	}
	/* Magic, version, length and CRC sit at the same offsets in every version. The CRC is
	 * checked first when the length is ours, so a damaged version field reads as damage, not
	 * as "newer". */
	sb->version = get_le32(b + RAID_SB_OFF_VERSION);
	if (get_le32(b + RAID_SB_OFF_LENGTH) == RAID_SB_BYTES) {
		memcpy(copy, b, RAID_SB_BYTES);
		put_le32(copy + RAID_SB_OFF_CRC, 0);
		crc = tcrc32c(copy, RAID_SB_BYTES);
		if (crc != get_le32(b + RAID_SB_OFF_CRC)) {
			snprintf(why, why_len, "superblock damaged: CRC32C %08x, expected %08x",
				 get_le32(b + RAID_SB_OFF_CRC), crc);
			return -EPROTO;
		}
	}
	if (sb->version > RAID_SB_VERSION) {
		snprintf(why, why_len, "superblock version %u is newer than this tandem (%u)",
			 sb->version, RAID_SB_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (sb->version == 0 || get_le32(b + RAID_SB_OFF_LENGTH) != RAID_SB_BYTES) {
		snprintf(why, why_len, "superblock damaged: version %u length %u", sb->version,
			 get_le32(b + RAID_SB_OFF_LENGTH));
		return -EPROTO;
	}
	sb->flags = get_le32(b + RAID_SB_OFF_FLAGS);
	sb->sequence = get_le64(b + RAID_SB_OFF_SEQUENCE);
	memcpy(sb->array_uuid, b + RAID_SB_OFF_UUID, 16);
	sb->member_index = get_le32(b + RAID_SB_OFF_INDEX);
	sb->nr_members = get_le32(b + RAID_SB_OFF_NR_MEMBERS);
	sb->geom.nr_data = get_le32(b + RAID_SB_OFF_NR_DATA);
	sb->geom.chunk_bytes = get_le32(b + RAID_SB_OFF_CHUNK);
	sb->geom.block_bytes = get_le32(b + RAID_SB_OFF_BLOCK);
	sb->member_bytes = get_le64(b + RAID_SB_OFF_MEMBER_BYTES);
	sb->geom.data_offset_bytes = get_le64(b + RAID_SB_OFF_DATA_OFFSET);
	sb->geom.member_data_bytes = get_le64(b + RAID_SB_OFF_MEMBER_DATA);
	sb->volume_bytes = get_le64(b + RAID_SB_OFF_VOLUME_BYTES);
	sb->volid = get_le64(b + RAID_SB_OFF_VOLID);
	sb->ctime = get_le64(b + RAID_SB_OFF_CTIME);
	sb->failed_mask = get_le64(b + RAID_SB_OFF_FAILED);
	sb->bitmap_offset_bytes = get_le64(b + RAID_SB_OFF_BITMAP_OFFSET);
	sb->bitmap_bytes = get_le64(b + RAID_SB_OFF_BITMAP_BYTES);
	sb->rebuild_member = get_le32(b + RAID_SB_OFF_REBUILD);
	sb->bitmap_region_stripes = get_le32(b + RAID_SB_OFF_REGION);
	sb->rebuild_checkpoint = get_le64(b + RAID_SB_OFF_CHECKPOINT);
	if (raid_geom_check(&sb->geom, g_why, sizeof(g_why)) != 0) {
		snprintf(why, why_len, "superblock has a bad geometry: %s", g_why);
		return -EPROTO;
	}
	if (sb->nr_members != sb->geom.nr_data + 1 || sb->member_index >= sb->nr_members ||
	    sb->volume_bytes != raid_volume_bytes(&sb->geom) || sb->rebuild_member > sb->nr_members ||
	    sb->rebuild_checkpoint > raid_nr_stripes(&sb->geom) ||
	    (sb->bitmap_offset_bytes && (sb->bitmap_region_stripes == 0 ||
	     sb->bitmap_offset_bytes < RAID_SB_SLOTS * RAID_SB_BYTES ||
	     sb->bitmap_offset_bytes % 4096 || sb->bitmap_bytes % 4096 ||
	     sb->bitmap_bytes > sb->geom.data_offset_bytes ||
	     sb->bitmap_offset_bytes > sb->geom.data_offset_bytes - sb->bitmap_bytes ||
	     sb->bitmap_bytes * 8 < (raid_nr_stripes(&sb->geom) + sb->bitmap_region_stripes - 1) /
				   sb->bitmap_region_stripes))) {
		snprintf(why, why_len, "superblock damaged: member %u of %u, %u data, volume %llu bytes",
			 sb->member_index, sb->nr_members, sb->geom.nr_data,
			 (unsigned long long)sb->volume_bytes);
		return -EPROTO;
	}
	return 0;
}

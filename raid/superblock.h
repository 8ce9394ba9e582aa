/* The on-member superblock (docs/raid-format.md, "Superblock"): two 4 KiB copies at member
 * bytes 0 and 4096, written alternately by sequence number. */
#ifndef TANDEM_RAID_SUPERBLOCK_H
#define TANDEM_RAID_SUPERBLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "raid/layout.h"

#define RAID_SB_MAGIC "TNDMRAID"
#define RAID_SB_VERSION 1
#define RAID_SB_BYTES 4096u
#define RAID_SB_SLOTS 2
#define RAID_SB_FLAG_DIRTY 0x1u

/* In-memory form; raid_sb_encode/decode convert to the little-endian layout. */
struct raid_sb {
	uint32_t version;
	uint32_t flags;
	uint64_t sequence;
	uint8_t array_uuid[16];
	uint32_t member_index;
	uint32_t nr_members;
	struct raid_geom geom;
	uint64_t member_bytes;
	uint64_t volume_bytes;
	uint64_t volid;
	uint64_t ctime;
	uint64_t failed_mask;
	uint64_t bitmap_offset_bytes;
	uint64_t bitmap_bytes;
	uint32_t rebuild_member;       /* index + 1 of the member being rebuilt; 0 = none */
	uint32_t bitmap_region_stripes;
	uint64_t rebuild_checkpoint;   /* stripes below are rebuilt */
};

/* Byte offsets in the encoded block. */
enum {
	RAID_SB_OFF_MAGIC = 0, RAID_SB_OFF_VERSION = 8, RAID_SB_OFF_LENGTH = 12, RAID_SB_OFF_CRC = 16,
	RAID_SB_OFF_FLAGS = 20, RAID_SB_OFF_SEQUENCE = 24, RAID_SB_OFF_UUID = 32,
	RAID_SB_OFF_INDEX = 48, RAID_SB_OFF_NR_MEMBERS = 52, RAID_SB_OFF_NR_DATA = 56,
	RAID_SB_OFF_CHUNK = 60, RAID_SB_OFF_BLOCK = 64, RAID_SB_OFF_MEMBER_BYTES = 72,
	RAID_SB_OFF_DATA_OFFSET = 80, RAID_SB_OFF_MEMBER_DATA = 88, RAID_SB_OFF_VOLUME_BYTES = 96,
	RAID_SB_OFF_VOLID = 104, RAID_SB_OFF_CTIME = 112, RAID_SB_OFF_FAILED = 120,
	RAID_SB_OFF_BITMAP_OFFSET = 128, RAID_SB_OFF_BITMAP_BYTES = 136, RAID_SB_OFF_REBUILD = 144,
	RAID_SB_OFF_REGION = 148, RAID_SB_OFF_CHECKPOINT = 152, RAID_SB_OFF_RESERVED = 160,
};

void raid_sb_encode(const struct raid_sb *sb, uint8_t block[RAID_SB_BYTES]);
/* 0, or -EINVAL (no magic: not a member), -EPROTO (damage: CRC, length, bad fields),
 * -EPROTONOSUPPORT (a newer version); `why` says which. */
int raid_sb_decode(const uint8_t block[RAID_SB_BYTES], struct raid_sb *sb, char *why,
		   size_t why_len);

#endif

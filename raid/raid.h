/* An nD+1P array over raid_member's: create (format), assemble, read, write, flush, close.
 * Layout and superblock: docs/raid-format.md. Every call returns 0 or -errno and is safe from
 * any number of threads at once (per-stripe locks serialise writes of one stripe). */
#ifndef TANDEM_RAID_RAID_H
#define TANDEM_RAID_RAID_H

#include <stddef.h>
#include <stdint.h>

#include "raid/layout.h"
#include "raid/member.h"

struct raid_vol;

struct raid_create_params {
	uint32_t nr_data;
	uint32_t chunk_bytes;
	uint32_t block_bytes;
	uint64_t volid;
	int force;              /* overwrite members that already carry a tandem superblock */
	int no_bitmap;          /* no write-intent bitmap (full resync after a crash) */
};

/* Format `nr` members (nr must be nr_data + 1) as a new array: zero their data areas (so parity
 * is consistent) and write superblocks. Refuses members of different sizes, too small, or (unless
 * force) already part of an array. The members stay open and owned by the caller. */
int raid_create(struct raid_member **members, uint32_t nr, const struct raid_create_params *p,
		char *why, size_t why_len);

/* What the caller expects; 0 fields match anything. */
struct raid_assemble_params {
	uint32_t nr_data;
	uint32_t chunk_bytes;
	uint32_t block_bytes;
	uint64_t volid;
	int readonly;           /* no superblock updates, writes fail with -EROFS (offline checks) */
	int degraded;           /* accept one newly missing member (marked failed) */
	int no_bitmap_updates;  /* keep the bitmap clear and unused (benchmarks: bitmap=0) */
};

/* Check the superblocks and assemble. On success the volume owns the members; on failure the
 * caller still does, and `why` names the member and the reason. Marks the array dirty. Members
 * may be raid_member_missing() placeholders (docs/raid-resilience.md: accepted when recorded as
 * failed, or with `degraded`). */
int raid_assemble(struct raid_member **members, uint32_t nr, const struct raid_assemble_params *p,
		  struct raid_vol **out, char *why, size_t why_len);

int raid_read(struct raid_vol *v, void *buf, uint64_t off_bytes, uint64_t len_bytes);
int raid_write(struct raid_vol *v, const void *buf, uint64_t off_bytes, uint64_t len_bytes);
/* Every member's completed writes are durable. */
int raid_flush(struct raid_vol *v);
/* Flush, mark clean, close the members, free. */
void raid_close(struct raid_vol *v);

struct raid_stats {
	uint64_t full_stripe_writes;
	uint64_t rmw_writes;          /* read-modify-write stripe pieces */
	uint64_t rcw_writes;          /* reconstruct-write stripe pieces */
	uint64_t member_reads;
	uint64_t member_writes;
	uint64_t degraded_reads;      /* chunk pieces reconstructed from the others */
	uint64_t degraded_writes;     /* stripe pieces written around a failed member */
};

struct raid_info {
	struct raid_geom geom;
	uint32_t nr_members;
	uint64_t volume_bytes;
	uint64_t volid;
	uint8_t array_uuid[16];
	uint64_t sequence;
	int was_dirty;                /* assembled after an unclean shutdown */
	uint64_t failed_mask;         /* failed members (a rebuilding one included) */
	int rebuild_member;           /* -1 none */
	uint64_t rebuild_pos;         /* stripes rebuilt so far */
	uint64_t bitmap_regions;      /* 0: no bitmap */
	uint32_t region_stripes;
	uint64_t dirty_regions;       /* bits set now */
	struct raid_stats stats;
};

/* "optimal", "degraded", "rebuilding", "failed" (two or more members lost) */
const char *raid_state_name(const struct raid_info *info);

void raid_get_info(struct raid_vol *v, struct raid_info *info);
const char *raid_member_name(struct raid_vol *v, uint32_t idx);

/* Verify stripe parity: 0 consistent, -EILSEQ mismatch, -EAGAIN degraded (nothing to compare),
 * other -errno on I/O error.
 * `bad_offset` (may be NULL) gets the first mismatching byte in the chunk. */
int raid_check_stripe(struct raid_vol *v, uint64_t stripe, uint32_t *bad_offset);

/* Recompute the parity of every stripe from its data. Runs stripe by stripe under the stripe
 * locks, so host I/O may continue. Returns 0 or -errno; *fixed gets the stripes that were wrong. */
int raid_resync_all(struct raid_vol *v, uint64_t *fixed);
/* After an unclean shutdown: resync the regions the write-intent bitmaps mark (every stripe
 * without a bitmap), then clear the bitmaps. *stripes: stripes resynced; *fixed: repaired;
 * *unverifiable: dirty stripes that could not be resynced because a data member is failed. */
int raid_resync_dirty(struct raid_vol *v, uint64_t *stripes, uint64_t *fixed,
		      uint64_t *unverifiable);

/* Rewrite a stripe's parity from its data (scrub repair). 0, -EIO, -EAGAIN (degraded). */
int raid_repair_stripe(struct raid_vol *v, uint64_t stripe);

/* Rebuild: put `member` (not part of any array, at least as large as the others) at position
 * `idx`, which must be failed, and start rebuilding it from the checkpoint 0. The old member is
 * closed. On failure the caller still owns `member`. member NULL: rebuild in place, onto the
 * failed member's own file. */
int raid_rebuild_begin(struct raid_vol *v, uint32_t idx, struct raid_member *member, char *why,
		       size_t why_len);
/* Rebuild the next stripe. Returns 1 while more remain, 0 when the rebuild is complete (the
 * member is active again), -errno on failure (the member stays failed). */
int raid_rebuild_step(struct raid_vol *v);

/* Test builds: set a fault rule on member idx (see raid_member_set_fault). */
int raid_set_fault(struct raid_vol *v, uint32_t idx, enum raid_fault_op op,
		   enum raid_fault_mode mode, uint64_t n, uint32_t ppm, uint64_t seed);

/* "1b4e28ba-2fa1-11d2-883f-0016d3cca427" */
void raid_uuid_str(const uint8_t uuid[16], char out[37]);

#endif

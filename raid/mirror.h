/* LU mirror across RAID geometries (seed 000; docs/mirror.md): a write hook on the primary
 * volume duplexes, records (update-position bitmap) or both; a copier copies whole granules
 * (the secondary's full stripe) for the initial copy and for resync. The table entry is kept by
 * the caller through the persist callback; the bitmap lives in its own file. */
#ifndef TANDEM_RAID_MIRROR_H
#define TANDEM_RAID_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include "raid/vol.h"

enum mirror_state { MIRROR_COPYING, MIRROR_DUPLEX, MIRROR_SPLIT, MIRROR_RESYNCING,
		    MIRROR_SUSPENDED };

struct mirror_cfg {
	uint32_t id;
	uint64_t primary_volid, secondary_volid;
	uint64_t size_bytes;           /* mirrored range: the primary's size */
	uint64_t granule_bytes;        /* the secondary's full stripe */
	enum mirror_state state;
	uint64_t copy_pos;             /* COPYING: granules below are copied */
	char bitmap_path[512];
};

struct mirror;
/* Record the mirror's table entry (state change, copy checkpoint). Called with no mirror lock
 * held; returns 0 or -errno (a failure is logged, the state in memory stands). */
typedef int mirror_persist_fn(void *ctx, const struct mirror_cfg *cfg);

/* create: make the bitmap file (refuses an existing one). */
int mirror_open(const struct mirror_cfg *cfg, int create, mirror_persist_fn *persist, void *ctx,
		struct mirror **out, char *why, size_t why_len);
/* Detach from both volumes and free (the bitmap file stays unless `remove_bitmap`). */
void mirror_close(struct mirror *m, int remove_bitmap);

/* Hook the primary: from now on every write is duplexed or recorded. */
int mirror_attach_primary(struct mirror *m, struct vol *primary);
/* The secondary is available (or is going away: NULL). */
int mirror_attach_secondary(struct mirror *m, struct vol *secondary);
void mirror_detach(struct mirror *m, struct vol *v);

int mirror_split(struct mirror *m);
/* SPLIT/SUSPENDED -> RESYNCING (needs the secondary); a mirror suspended during its initial
 * copy also copies everything the copy had not reached. */
int mirror_start_resync(struct mirror *m);
/* One granule of the initial copy or the resync. 1 more to do, 0 finished (now DUPLEX),
 * -EINTR the state changed meanwhile (split, suspended), other -errno (a secondary error
 * suspends the mirror). */
int mirror_copy_step(struct mirror *m);
/* Something for a background copier to do now. */
int mirror_needs_copier(struct mirror *m);

struct mirror_status {
	struct mirror_cfg cfg;
	uint64_t dirty_granules;       /* the secondary lacks these */
	uint64_t intent_granules;      /* marked for duplexed writes (kill -9 safety), not lacking */
	uint64_t copied_bytes;         /* by the copier since open */
	int primary_attached, secondary_attached;
	uint64_t duplexed_writes, recorded_writes, secondary_errors, secondary_reads;
};
void mirror_get_status(struct mirror *m, struct mirror_status *st);
const char *mirror_state_name(enum mirror_state s);
uint32_t mirror_id(struct mirror *m);

#endif

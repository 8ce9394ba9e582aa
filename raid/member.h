/* A RAID member: a file, a block device, or (tests) memory. The RAID code sees only these ops.
 * Every op is called from any thread, concurrently, and returns 0 or -errno. */
#ifndef TANDEM_RAID_MEMBER_H
#define TANDEM_RAID_MEMBER_H

#include <stddef.h>
#include <errno.h>
#include <stdint.h>

struct raid_member;

struct raid_member_ops {
	/* required: the whole range or an error (-EIO for a short transfer) */
	int (*pread)(struct raid_member *m, void *buf, size_t len_bytes, uint64_t off_bytes);
	int (*pwrite)(struct raid_member *m, const void *buf, size_t len_bytes, uint64_t off_bytes);
	/* required: make completed writes durable */
	int (*flush)(struct raid_member *m);
	/* required: make a range read as zeros (punch a hole, BLKZEROOUT, or write zeros) */
	int (*zero)(struct raid_member *m, uint64_t off_bytes, uint64_t len_bytes);
	/* optional: push a written range to the device before returning (write-intent bitmap) */
	int (*sync_range)(struct raid_member *m, uint64_t off_bytes, uint64_t len_bytes);
	/* required: release; the member is freed by raid_member_close() */
	void (*close)(struct raid_member *m);
};

struct raid_fault;

struct raid_member {
	const struct raid_member_ops *ops;
	void *priv;
	uint64_t size_bytes;
	char name[256];         /* path or test name, for messages */
	int missing;            /* a placeholder for a member that could not be opened */
	char missing_why[256];
	struct raid_fault *fault;   /* test builds (TANDEM_FAULT_INJECTION) only */
};

/* Open a file or block device read-write, exclusively (flock / O_EXCL): a member that another
 * array (or another tgtd) holds is refused with -EBUSY. `why` says what went wrong. */
int raid_member_open_path(const char *path, struct raid_member **out, char *why, size_t why_len);
/* A zero-filled in-memory member (unit tests). */
int raid_member_open_mem(const char *name, uint64_t size_bytes, struct raid_member **out);
/* The memory behind an in-memory member (tests inspect and corrupt it). */
uint8_t *raid_member_mem(struct raid_member *m);
void raid_member_close(struct raid_member *m);

/* A placeholder for a member that cannot be opened: every I/O fails. Assembly accepts it only
 * where the array already recorded that member as failed (or with degraded=1). */
struct raid_member *raid_member_missing(const char *path, const char *why);

/* Fault injection (docs/raid-resilience.md): compiled in only with TANDEM_FAULT_INJECTION. */
enum raid_fault_op { RAID_FAULT_READ = 1, RAID_FAULT_WRITE = 2, RAID_FAULT_ANY = 3 };
enum raid_fault_mode { RAID_FAULT_OFF, RAID_FAULT_NOW, RAID_FAULT_AFTER, RAID_FAULT_RATE };
/* Set (or with RAID_FAULT_OFF clear) the rule of a member. */
int raid_member_set_fault(struct raid_member *m, enum raid_fault_op op, enum raid_fault_mode mode,
			  uint64_t n, uint32_t ppm, uint64_t seed);
/* Does this I/O fail? (counts the I/O) */
int raid_fault_hit(struct raid_fault *f, enum raid_fault_op op);

/* Same file (st_dev/st_ino) as another member: used to refuse a member listed twice. */
int raid_member_same(struct raid_member *a, struct raid_member *b);

static inline int raid_member_pread(struct raid_member *m, void *buf, size_t len, uint64_t off)
{
#ifdef TANDEM_FAULT_INJECTION
	if (m->fault && raid_fault_hit(m->fault, RAID_FAULT_READ))
		return -EIO;
#endif
	return m->ops->pread(m, buf, len, off);
}
static inline int raid_member_pwrite(struct raid_member *m, const void *buf, size_t len,
				     uint64_t off)
{
#ifdef TANDEM_FAULT_INJECTION
	if (m->fault && raid_fault_hit(m->fault, RAID_FAULT_WRITE))
		return -EIO;
#endif
	return m->ops->pwrite(m, buf, len, off);
}

#endif

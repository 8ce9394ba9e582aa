/* A RAID member: a file, a block device, or (tests) memory. The RAID code sees only these ops.
 * Every op is called from any thread, concurrently, and returns 0 or -errno. */
#ifndef TANDEM_RAID_MEMBER_H
#define TANDEM_RAID_MEMBER_H

#include <stddef.h>
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
	/* required: release; the member is freed by raid_member_close() */
	void (*close)(struct raid_member *m);
};

struct raid_member {
	const struct raid_member_ops *ops;
	void *priv;
	uint64_t size_bytes;
	char name[256];         /* path or test name, for messages */
};

/* Open a file or block device read-write, exclusively (flock / O_EXCL): a member that another
 * array (or another tgtd) holds is refused with -EBUSY. `why` says what went wrong. */
int raid_member_open_path(const char *path, struct raid_member **out, char *why, size_t why_len);
/* A zero-filled in-memory member (unit tests). */
int raid_member_open_mem(const char *name, uint64_t size_bytes, struct raid_member **out);
/* The memory behind an in-memory member (tests inspect and corrupt it). */
uint8_t *raid_member_mem(struct raid_member *m);
void raid_member_close(struct raid_member *m);

/* Same file (st_dev/st_ino) as another member: used to refuse a member listed twice. */
int raid_member_same(struct raid_member *a, struct raid_member *b);

static inline int raid_member_pread(struct raid_member *m, void *buf, size_t len, uint64_t off)
{
	return m->ops->pread(m, buf, len, off);
}
static inline int raid_member_pwrite(struct raid_member *m, const void *buf, size_t len,
				     uint64_t off)
{
	return m->ops->pwrite(m, buf, len, off);
}

#endif

/* A tandem volume: what a LU of any tandem bstype is, seen from above the storage (RAID array,
 * command device, virtual volume). Every write goes through vol_write(), which calls the
 * volume's hooks around it; mirroring, journaling and change bitmaps attach as hooks without
 * touching the code below. A process-wide registry finds volumes by their device-wide volid.
 *
 *   host write ─> vol_write ─> hook1.pre ─> hook2.pre ─> ops->write ─> hook2.post ─> hook1.post
 *
 * Hook rules: pre_write may refuse the write (its -errno is returned, nothing was written, the
 * later hooks' pre_write are not called, and the post_write of the hooks already passed are
 * called with that error). post_write sees the write's result and may turn success into failure
 * (a duplexed write whose second copy failed). Hooks run on the writing thread, concurrently.
 * Adding or removing a hook waits until every write in flight has finished. */
#ifndef TANDEM_RAID_VOL_H
#define TANDEM_RAID_VOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct vol;

struct vol_ops {
	/* required */
	int (*read)(struct vol *v, void *buf, uint64_t off_bytes, uint64_t len_bytes);
	/* required for writable volumes; NULL: writes fail with -EROFS */
	int (*write)(struct vol *v, const void *buf, uint64_t off_bytes, uint64_t len_bytes);
	/* required: completed writes durable */
	int (*flush)(struct vol *v);
	/* required: free the implementation (called by the last vol_put) */
	void (*destroy)(struct vol *v);
};

struct vol_hook {
	const char *name;
	int (*pre_write)(struct vol_hook *h, struct vol *v, const void *buf, uint64_t off_bytes,
			 uint64_t len_bytes);                       /* optional */
	int (*post_write)(struct vol_hook *h, struct vol *v, const void *buf, uint64_t off_bytes,
			  uint64_t len_bytes, int result);          /* optional; returns the result */
	/* optional: a read of the volume failed with `result`; may serve it from elsewhere (a
	 * mirror's secondary) and return 0, or return the error */
	int (*read_error)(struct vol_hook *h, struct vol *v, void *buf, uint64_t off_bytes,
			  uint64_t len_bytes, int result);
	/* optional: the volume is being flushed (SYNCHRONIZE CACHE, FUA): make what the hook keeps
	 * for it durable first (a journal); an error fails the flush */
	int (*flush)(struct vol_hook *h, struct vol *v);
	void *priv;
	struct vol_hook *next;          /* protected by vol.hooks_lock */
};

struct vol {
	uint64_t volid;
	char type[16];                  /* "raid", "cmddev", "vvol" */
	uint64_t size_bytes;
	uint32_t block_bytes;
	const struct vol_ops *ops;
	void *impl;
	pthread_rwlock_t hooks_lock;    /* read-held by every write; write-held to change hooks */
	struct vol_hook *hooks;
	int refs;                       /* atomic; the registry holds one */
	int registered;                 /* protected by the registry lock */
};

/* Initialise a volume (refs = 1, the caller's). */
void vol_init(struct vol *v, const char *type, uint64_t volid, uint64_t size_bytes,
	      uint32_t block_bytes, const struct vol_ops *ops, void *impl);

int vol_read(struct vol *v, void *buf, uint64_t off_bytes, uint64_t len_bytes);
int vol_write(struct vol *v, const void *buf, uint64_t off_bytes, uint64_t len_bytes);
int vol_flush(struct vol *v);

void vol_hook_add(struct vol *v, struct vol_hook *h);   /* appended: runs after existing ones */
void vol_hook_remove(struct vol *v, struct vol_hook *h);

/* Registry. vol_register fails with -EEXIST when the volid is taken (volid 0 is invalid). */
int vol_register(struct vol *v);
void vol_unregister(struct vol *v);
/* A registered volume with a reference taken, or NULL. */
struct vol *vol_lookup(uint64_t volid);
void vol_get(struct vol *v);
void vol_put(struct vol *v);
/* Call fn for each registered volume (registry locked: fn must not register or unregister). */
void vol_for_each(void (*fn)(struct vol *v, void *arg), void *arg);

#endif

#include "raid/bitmap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raid/util.h"

/* The format: raid/bitmap.h. */
#define HDR 4096u
#define BLK 4096u
#define BITS_BYTES (BLK - 4u)
#define BPB PBM_BITS_PER_BLOCK
#define VERSION 1u

struct pbm {
	pthread_mutex_t lock;
	int fd;
	char *path;
	uint64_t nbits, nblk, granule;
	uint64_t count;                 /* bits set */
	uint8_t *blk;                   /* nblk blocks as on disk */
	uint8_t *unsynced;              /* per block: set bits whose durable write failed */
};

/* (lock held, or not yet shared, for all of these) */
static uint8_t *byte_of(struct pbm *b, uint64_t g)
{
	uint64_t i = g % BPB;

	return b->blk + g / BPB * BLK + i / 8;
}

static int bit(struct pbm *b, uint64_t g) { return *byte_of(b, g) >> (g % BPB % 8) & 1; }

/* Write block k with its CRC32C; sync: pushed to the device before returning. */
static int blk_write(struct pbm *b, uint64_t k, int sync)
{
	uint8_t *p = b->blk + k * BLK;
	off_t off = (off_t)(HDR + k * BLK);
	int err;

	put_le32(p + BITS_BYTES, tcrc32c(p, BITS_BYTES));
	err = full_pwrite(b->fd, p, BLK, off);
	if (!err && sync && sync_file_range(b->fd, off, BLK, SYNC_FILE_RANGE_WAIT_BEFORE |
					    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER))
		err = fdatasync(b->fd) ? -errno : 0;
	return err;
}

/* A durable write of block k; after a failure the block waits for the next pbm_set. */
static int blk_sync(struct pbm *b, uint64_t k, int skip)
{
	int err = skip ? -EIO : blk_write(b, k, 1);

	b->unsynced[k] = err != 0;
	return err;
}

static int create_file(struct pbm *b, const char magic[8], uint32_t owner_id)
{
	uint8_t h[HDR] = { 0 };
	int err;

	memcpy(h, magic, 8);
	put_le32(h + 8, VERSION);
	put_le32(h + 12, HDR);
	put_le32(h + 20, owner_id);
	put_le64(h + 24, b->granule);
	put_le64(h + 32, b->nbits);
	put_le32(h + 16, tcrc32c(h, HDR));
	if ((err = full_pwrite(b->fd, h, HDR, 0)))
		return err;
	for (uint64_t k = 0; k < b->nblk; k++)
		if ((err = blk_write(b, k, 0)))
			return err;
	return fdatasync(b->fd) ? -errno : 0;
}

static int load_file(struct pbm *b, const char magic[8], uint32_t owner_id, const char *pfx,
		     const char *owner, char *why, size_t why_len)
{
	uint8_t h[HDR];
	uint32_t crc;

	if (full_pread(b->fd, h, HDR, 0) || memcmp(h, magic, 8)) {
		snprintf(why, why_len, "%s %s: no %s header", pfx, b->path, pfx);
		return -EPROTO;
	}
	crc = get_le32(h + 16);
	put_le32(h + 16, 0);
	if (tcrc32c(h, HDR) != crc || get_le32(h + 8) != VERSION || get_le32(h + 20) != owner_id ||
	    get_le64(h + 24) != b->granule || get_le64(h + 32) != b->nbits) {
		snprintf(why, why_len, "%s %s: header damaged or of another %s", pfx, b->path, owner);
		return -EPROTO;
	}
	for (uint64_t k = 0; k < b->nblk; k++) {
		uint8_t *p = b->blk + k * BLK;

		if (full_pread(b->fd, p, BLK, (off_t)(HDR + k * BLK)) ||
		    get_le32(p + BITS_BYTES) != tcrc32c(p, BITS_BYTES)) {
			snprintf(why, why_len, "%s %s: block %" PRIu64 " damaged (CRC32C): refusing to "
				 "guess which granules changed", pfx, b->path, k);
			return -EPROTO;
		}
		for (size_t i = 0; i < BITS_BYTES; i++)
			b->count += (uint64_t)__builtin_popcount(p[i]);
	}
	return 0;
}

int pbm_open(const char *path, const char magic[8], uint32_t owner_id, uint64_t size_bytes,
	     uint64_t granule_bytes, int create, const char *kind, struct pbm **out, char *why,
	     size_t why_len)
{
	char pfx[64];
	struct pbm *b;
	int err;

	snprintf(pfx, sizeof(pfx), "%s%sbitmap", kind ? kind : "", kind ? " " : "");
	*out = NULL;
	if (!size_bytes || !granule_bytes) {
		snprintf(why, why_len, "%s %s: granule and size must be set", pfx, path);
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	b->fd = -1;
	b->granule = granule_bytes;
	b->nbits = size_bytes / granule_bytes + (size_bytes % granule_bytes != 0);
	b->nblk = (b->nbits + BPB - 1) / BPB;
	b->path = strdup(path);
	b->blk = b->nblk <= SIZE_MAX / BLK ? calloc(b->nblk, BLK) : NULL;
	b->unsynced = calloc(b->nblk, 1);
	if (!b->path || !b->blk || !b->unsynced) {
		snprintf(why, why_len, "%s %s: no memory for %" PRIu64 " bits", pfx, path, b->nbits);
		pbm_close(b, 0);
		return -ENOMEM;
	}
	b->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
	if (b->fd < 0) {
		err = -errno;
		snprintf(why, why_len, "%s %s: %s", pfx, path, strerror(-err));
		pbm_close(b, 0);
		return err;
	}
	if (create && (err = create_file(b, magic, owner_id))) {
		snprintf(why, why_len, "%s %s: cannot write: %s", pfx, path, strerror(-err));
		pbm_close(b, 1);   /* ours (O_EXCL): a retry must not find a half-made file */
		return err;
	}
	if (!create && (err = load_file(b, magic, owner_id, pfx, kind ? kind : "owner", why,
					why_len))) {
		pbm_close(b, 0);
		return err;
	}
	*out = b;
	return 0;
}

void pbm_close(struct pbm *b, int remove_file)
{
	if (!b)
		return;
	if (b->fd >= 0) {
		fdatasync(b->fd);
		close(b->fd);
	}
	if (remove_file && b->path)
		unlink(b->path);
	pthread_mutex_destroy(&b->lock);
	free(b->path);
	free(b->blk);
	free(b->unsynced);
	free(b);
}

int pbm_get(struct pbm *b, uint64_t g)
{
	int r;

	pthread_mutex_lock(&b->lock);
	r = g < b->nbits && bit(b, g);
	pthread_mutex_unlock(&b->lock);
	return r;
}

int pbm_set(struct pbm *b, uint64_t g0, uint64_t g1, uint64_t *newly_set)
{
	uint64_t cur = UINT64_MAX, n = 0;
	int write_cur = 0, err = 0;

	pthread_mutex_lock(&b->lock);
	for (uint64_t g = g0; g <= g1 && g < b->nbits; g++) {
		uint64_t k = g / BPB;

		if (k != cur) {
			/* the previous block is complete: durable before the next one is looked at */
			if (write_cur) {
				int e = blk_sync(b, cur, err != 0);

				err = err ? err : e;
			}
			cur = k;
			write_cur = b->unsynced[k];
		}
		if (bit(b, g))
			continue;
		*byte_of(b, g) |= (uint8_t)(1u << (g % BPB % 8));
		b->count++;
		n++;
		write_cur = 1;
	}
	if (write_cur) {
		int e = blk_sync(b, cur, err != 0);

		err = err ? err : e;
	}
	pthread_mutex_unlock(&b->lock);
	if (newly_set)
		*newly_set = n;
	return err;
}

int pbm_set_bytes(struct pbm *b, uint64_t off, uint64_t len)
{
	if (!len)
		return 0;
	return pbm_set(b, off / b->granule, (off + len - 1) / b->granule, NULL);
}

uint64_t pbm_clear_range(struct pbm *b, uint64_t g0, uint64_t g1, const uint8_t *keep)
{
	uint64_t cur = UINT64_MAX, n = 0;
	int write_cur = 0;

	pthread_mutex_lock(&b->lock);
	for (uint64_t g = g0; g <= g1 && g < b->nbits; g++) {
		if (g / BPB != cur) {
			if (write_cur)
				blk_write(b, cur, 0);   /* a lost clear only costs a second copy */
			cur = g / BPB;
			write_cur = 0;
		}
		if (!bit(b, g) || (keep && keep[g / 8] >> (g % 8) & 1))
			continue;
		*byte_of(b, g) &= (uint8_t)~(1u << (g % BPB % 8));
		b->count--;
		n++;
		write_cur = 1;
	}
	if (write_cur)
		blk_write(b, cur, 0);
	pthread_mutex_unlock(&b->lock);
	return n;
}

void pbm_clear(struct pbm *b, uint64_t g)
{
	pbm_clear_range(b, g, g, NULL);
}

int pbm_clear_all(struct pbm *b)
{
	int err = 0;

	pthread_mutex_lock(&b->lock);
	for (uint64_t k = 0; k < b->nblk && !err; k++) {
		uint8_t *p = b->blk + k * BLK;
		uint64_t n = 0;

		for (size_t i = 0; i < BITS_BYTES; i++)
			n += (uint64_t)__builtin_popcount(p[i]);
		if (!n && !b->unsynced[k])
			continue;
		memset(p, 0, BITS_BYTES);
		b->count -= n;
		b->unsynced[k] = 0;   /* nothing set is left to make durable */
		err = blk_write(b, k, 0);
	}
	if (!err && fdatasync(b->fd))
		err = -errno;
	pthread_mutex_unlock(&b->lock);
	return err;
}

int pbm_next(struct pbm *b, uint64_t from, uint64_t *g)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&b->lock);
	for (uint64_t x = from; x < b->nbits;) {
		unsigned sh = (unsigned)(x % BPB % 8);
		unsigned v = *byte_of(b, x) >> sh;

		if (v) {
			x += (uint64_t)__builtin_ctz(v);
			if (x < b->nbits) {
				*g = x;
				rc = 0;
			}
			break;
		}
		x += 8 - sh;   /* the next byte (blocks hold whole bytes of bits) */
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

uint64_t pbm_count(struct pbm *b)
{
	uint64_t n;

	pthread_mutex_lock(&b->lock);
	n = b->count;
	pthread_mutex_unlock(&b->lock);
	return n;
}

uint64_t pbm_bits(struct pbm *b) { return b->nbits; }
uint64_t pbm_granule(struct pbm *b) { return b->granule; }

/* A persistent change bitmap: one bit per granule of a volume, in a file of its own, a set bit
 * durable before pbm_set returns (docs/mirror.md "Persistence"). Used by the LU mirror (update
 * bitmap, magic "TNDMMBMP") and by replication (change tracking).
 *
 * File format (little-endian): a 4 KiB header (0 magic, 8 bytes of the caller's | 8 version 1 |
 * 12 header length 4096 | 16 CRC32C of the header with this field 0 | 20 owner id | 24 granule
 * bytes | 32 bits | 40.. reserved, zero), then ceil(bits / PBM_BITS_PER_BLOCK) blocks of 4 KiB:
 * 4092 bytes of bits (granule g: block g / PBM_BITS_PER_BLOCK, bit i = g % PBM_BITS_PER_BLOCK at
 * byte i / 8, bit i % 8) and a CRC32C of them at byte 4092. Bits past the last granule are zero.
 *
 * Open refuses (-EPROTO, with a reason) a header that is damaged or of another magic, owner,
 * granule or size, and any block whose CRC32C does not match: a damaged block is never guessed.
 * A set is written and pushed to the device (sync_file_range, else fdatasync) before it returns;
 * a clear is written lazily (a lost clear costs only a second copy of that granule). A set whose
 * write failed stays set in memory, and its block is written again by the next pbm_set that
 * touches the block.
 *
 * Every call is thread-safe (the bitmap has its own mutex; no call of this module calls out to
 * the caller, so a caller may hold its own locks around these calls). */
#ifndef TANDEM_RAID_BITMAP_H
#define TANDEM_RAID_BITMAP_H

#include <stddef.h>
#include <stdint.h>

/* Granules per on-disk block (the unit written at once). */
#define PBM_BITS_PER_BLOCK ((4096u - 4u) * 8u)

struct pbm;

/* Open the bitmap of a volume of size_bytes in granules of granule_bytes (bits =
 * ceil(size / granule)). create: make the file, all bits clear (refuses an existing file:
 * -EEXIST; a file it could not finish is removed). kind names the owner in messages ("mirror":
 * "mirror bitmap <path>: header damaged or of another mirror"; NULL: "bitmap <path>: ... of
 * another owner").
 * 0 or -errno with `why` filled (-EINVAL bad size or granule, -EPROTO a bad file). */
int pbm_open(const char *path, const char magic[8], uint32_t owner_id, uint64_t size_bytes,
	     uint64_t granule_bytes, int create, const char *kind, struct pbm **out, char *why,
	     size_t why_len);
/* Flush (fdatasync) and free; remove_file unlinks the file too. NULL is a no-op. */
void pbm_close(struct pbm *b, int remove_file);

/* Bit of granule g (0 past the end). */
int pbm_get(struct pbm *b, uint64_t g);
/* Set granules [g0, g1] (clipped to the bitmap), each changed block durable before returning.
 * newly_set (may be NULL): bits that were clear. 0 or -errno of the write (the bits stay set in
 * memory; the caller must not rely on them being on disk). */
int pbm_set(struct pbm *b, uint64_t g0, uint64_t g1, uint64_t *newly_set);
/* pbm_set of the granules covering bytes [off, off+len) (len 0: nothing). */
int pbm_set_bytes(struct pbm *b, uint64_t off, uint64_t len);
/* Clear granule g; written lazily. */
void pbm_clear(struct pbm *b, uint64_t g);
/* Clear the set bits of granules [g0, g1] except those set in `keep` (NULL: none kept; indexed
 * by granule like the file's bits without the blocks: byte g / 8, bit g % 8); each changed block
 * written once, lazily. Returns how many were cleared. */
uint64_t pbm_clear_range(struct pbm *b, uint64_t g0, uint64_t g1, const uint8_t *keep);
/* Clear every bit, durably (written and fdatasync'ed before returning). 0 or -errno. */
int pbm_clear_all(struct pbm *b);
/* The first set bit >= from in *g: 0, or -ENOENT when there is none. */
int pbm_next(struct pbm *b, uint64_t from, uint64_t *g);

uint64_t pbm_count(struct pbm *b);      /* bits set */
uint64_t pbm_bits(struct pbm *b);       /* granules */
uint64_t pbm_granule(struct pbm *b);    /* granule bytes */

#endif

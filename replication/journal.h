/* The replication journal's on-volume format (docs/journal-format.md): header A/B, 128-byte entry
 * records in a metadata ring, data in a cyclic data ring addressed by ever-growing positions.
 * Pure codec and layout helpers, plus header read/write on a volume. */
#ifndef TANDEM_REPLICATION_JOURNAL_H
#define TANDEM_REPLICATION_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "raid/vol.h"

#define JRNL_HDR_BYTES 4096u
#define JRNL_ENTRY_BYTES 128u
#define JRNL_ALIGN 4096u              /* data of an entry starts on this boundary */
#define JRNL_VERSION 1u
#define JRNL_ROLE_PRIMARY 1u
#define JRNL_ROLE_AUX 2u
#define JRNL_FLAG_MARKER 1u
#define JRNL_MIN_BYTES (1024u * 1024u)

struct jrnl_hdr {
	uint32_t role;
	uint8_t uuid[16];
	uint64_t pair_id;
	uint64_t generation;
	uint64_t meta_offset, meta_bytes, data_offset, data_bytes;
	uint64_t jin_hint;            /* next sequence at the last header write */
	uint64_t jout, jout_pos;      /* oldest sequence still needed and its data position */
	uint64_t applied;             /* primary: every sequence <= applied is on the volume */
	uint64_t confirmed;           /* primary: acquired by the auxiliary device */
	uint64_t restore_completed, to_be_restored, read_completed, to_be_read;   /* aux */
	uint64_t restore_pos;         /* aux: data position of restore_completed + 1 */
	uint32_t block_bytes;         /* of the journal volume */
};

struct jrnl_entry {
	uint64_t seq;
	uint64_t time_ns;
	uint64_t volid;
	uint64_t lba;
	uint32_t nblocks, block_bytes;   /* of the primary volume */
	uint64_t pos;                    /* data position */
	uint32_t data_crc;
	uint32_t flags;
};

/* Encode / parse one header copy (JRNL_HDR_BYTES). parse: 0, -ENODATA (no magic: not a
 * journal), -EBADMSG (damaged: CRC, length, version, impossible geometry). */
void jrnl_hdr_encode(const struct jrnl_hdr *h, uint8_t out[JRNL_HDR_BYTES]);
int jrnl_hdr_parse(const void *buf, size_t len, struct jrnl_hdr *h);

/* Encode / parse one entry record. parse: 0, -ENODATA (zeros: never written), -EBADMSG (magic,
 * length, CRC or impossible fields). Reads at most JRNL_ENTRY_BYTES and never past len. */
void jrnl_entry_encode(const struct jrnl_entry *e, uint8_t out[JRNL_ENTRY_BYTES]);
int jrnl_entry_parse(const void *buf, size_t len, struct jrnl_entry *e);

/* Geometry for a journal volume of `vol_bytes`: meta 1/32 (>= 64 KiB, a multiple of 4 KiB, at
 * most 16 MiB), data the rest. -ENOSPC when the volume is below JRNL_MIN_BYTES. */
int jrnl_layout(uint64_t vol_bytes, uint32_t block_bytes, struct jrnl_hdr *h);
static inline uint64_t jrnl_slots(const struct jrnl_hdr *h) { return h->meta_bytes / JRNL_ENTRY_BYTES; }
/* Byte offset in the volume of sequence s's record. */
static inline uint64_t jrnl_slot_off(const struct jrnl_hdr *h, uint64_t seq)
{
	return h->meta_offset + (seq % jrnl_slots(h)) * JRNL_ENTRY_BYTES;
}
/* Byte offset in the volume of data position pos. */
static inline uint64_t jrnl_data_off(const struct jrnl_hdr *h, uint64_t pos)
{
	return h->data_offset + pos % h->data_bytes;
}
static inline uint64_t jrnl_align(uint64_t n) { return (n + JRNL_ALIGN - 1) / JRNL_ALIGN * JRNL_ALIGN; }
/* Where data of `len` bytes goes when the next free position is `pos`: pos itself, or the start
 * of the next lap when it would straddle the ring's end. */
uint64_t jrnl_place(const struct jrnl_hdr *h, uint64_t pos, uint64_t len);
/* An entry's data bytes, and whether the entry (parsed) fits the geometry: 0 or -EBADMSG. */
static inline uint64_t jrnl_entry_len(const struct jrnl_entry *e)
{
	return (uint64_t)e->nblocks * e->block_bytes;
}
int jrnl_entry_check(const struct jrnl_hdr *h, const struct jrnl_entry *e);
/* The journal LBA (journal block) of a data position, for status (Fig. 15). */
static inline uint64_t jrnl_pos_lba(const struct jrnl_hdr *h, uint64_t pos)
{
	return jrnl_data_off(h, pos) / (h->block_bytes ? h->block_bytes : 512);
}

/* Header I/O on a journal volume through `rd`/`wr` (vol_read/vol_write or a peer). read: the
 * newer valid copy; -ENODATA when neither copy is a journal header, -EBADMSG when both are
 * damaged. write: increments h->generation and writes the older copy's place (on failure the
 * generation is restored, so a retry writes the same place). Formatting writes both copies. */
typedef int jrnl_read_fn(void *ctx, void *buf, uint64_t off, uint64_t len);
typedef int jrnl_write_fn(void *ctx, const void *buf, uint64_t off, uint64_t len);
int jrnl_hdr_read(jrnl_read_fn *rd, void *ctx, struct jrnl_hdr *h);
int jrnl_hdr_write(jrnl_write_fn *wr, void *ctx, struct jrnl_hdr *h);

/* A new uuid from /dev/urandom (time and pid as a fallback). */
void jrnl_new_uuid(uint8_t uuid[16]);
void jrnl_uuid_str(const uint8_t uuid[16], char out[37]);
int jrnl_uuid_parse(const char *s, uint8_t uuid[16]);

#endif

/* libFuzzer target for the replication journal's on-volume format (replication/journal.h,
 * docs/journal-format.md). Every input is
 *   1. raw bytes for jrnl_hdr_parse (at 0 and, when long enough, at 4096) and for
 *      jrnl_entry_parse at every 128-byte slot: only 0 / -ENODATA / -EBADMSG, never a read past
 *      the input (ASan), and whatever parses keeps the parser's promises and re-encodes to a
 *      record that parses to the same values;
 *   2. the same bytes made to pass the magic/length/CRC gates ("resealed": a header from the
 *      first 4 KiB, an entry from bytes 8192..8319, or the last 128 bytes of a shorter input),
 *      so the field checks behind the CRC are fuzzed too; a header and an entry that both parse
 *      go through jrnl_entry_check, jrnl_place and the offset helpers, whose results must stay
 *      in the rings;
 *   3. an 8 KiB "volume" (copies A and B, raw and resealed) for jrnl_hdr_read: the copy it
 *      returns is a valid one with the highest generation;
 *   4. a NUL-terminated string for jrnl_uuid_parse (a uuid that parses prints and parses back
 *      the same), and a size for jrnl_layout (its header parses).
 * Any broken promise is abort(): libFuzzer reports it as a crash with the input.
 * Built by tests/fuzz/02-journal.sh. With -DJOURNAL_FUZZ_SEEDS it is instead a program that
 * writes valid seed inputs into the directory given as its argument (and runs each through the
 * checks once). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raid/util.h"
#include "replication/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                               \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "journal_fuzz: %s:%d: check failed: %s\n", __FILE__,       \
				__LINE__, #cond);                                                 \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

#define VOL_BYTES   (2 * JRNL_HDR_BYTES)
#define ENTRY_AT    VOL_BYTES            /* where a long input's entry record starts */
#define MAX_SLOTS   70                   /* raw entry parses per input */

static int hdr_same(const struct jrnl_hdr *a, const struct jrnl_hdr *b)
{
	return a->role == b->role && !memcmp(a->uuid, b->uuid, 16) && a->pair_id == b->pair_id &&
	       a->generation == b->generation && a->meta_offset == b->meta_offset &&
	       a->meta_bytes == b->meta_bytes && a->data_offset == b->data_offset &&
	       a->data_bytes == b->data_bytes && a->jin_hint == b->jin_hint && a->jout == b->jout &&
	       a->jout_pos == b->jout_pos && a->applied == b->applied &&
	       a->confirmed == b->confirmed && a->restore_completed == b->restore_completed &&
	       a->to_be_restored == b->to_be_restored && a->read_completed == b->read_completed &&
	       a->to_be_read == b->to_be_read && a->restore_pos == b->restore_pos &&
	       a->block_bytes == b->block_bytes;
}

static int entry_same(const struct jrnl_entry *a, const struct jrnl_entry *b)
{
	return a->seq == b->seq && a->time_ns == b->time_ns && a->volid == b->volid &&
	       a->lba == b->lba && a->nblocks == b->nblocks && a->block_bytes == b->block_bytes &&
	       a->pos == b->pos && a->data_crc == b->data_crc && a->flags == b->flags;
}

/* A header that parsed: what the parser promises, and the round trip. */
static void hdr_parsed(const struct jrnl_hdr *h)
{
	uint8_t b[JRNL_HDR_BYTES];
	struct jrnl_hdr h2;

	CHECK(h->role == JRNL_ROLE_PRIMARY || h->role == JRNL_ROLE_AUX);
	CHECK(h->meta_offset == 2 * JRNL_HDR_BYTES);
	CHECK(h->meta_bytes && h->meta_bytes % JRNL_ALIGN == 0 && h->meta_bytes <= (1ull << 40));
	CHECK(h->data_offset == h->meta_offset + h->meta_bytes);
	CHECK(h->data_bytes && h->data_bytes % JRNL_ALIGN == 0 && h->data_bytes <= (1ull << 50));
	CHECK(h->jout != 0);
	CHECK(h->block_bytes == 512 || h->block_bytes == 4096);
	CHECK(jrnl_slots(h) >= JRNL_ALIGN / JRNL_ENTRY_BYTES);
	jrnl_hdr_encode(h, b);
	CHECK(jrnl_hdr_parse(b, sizeof(b), &h2) == 0);
	CHECK(hdr_same(h, &h2));
}

/* An entry that parsed: what the parser promises, and the round trip. */
static void entry_parsed(const struct jrnl_entry *e)
{
	uint8_t b[JRNL_ENTRY_BYTES];
	struct jrnl_entry e2;

	CHECK(e->seq != 0);
	CHECK((e->flags & ~JRNL_FLAG_MARKER) == 0);
	CHECK(e->pos % JRNL_ALIGN == 0);
	if (e->flags & JRNL_FLAG_MARKER) {
		CHECK(e->nblocks == 0 && jrnl_entry_len(e) == 0);
	} else {
		CHECK(e->block_bytes == 512 || e->block_bytes == 4096);
		CHECK(e->nblocks >= 1 && e->nblocks <= (1u << 24));
		CHECK(e->lba <= (UINT64_MAX >> 13));
		CHECK(e->lba + e->nblocks > e->lba);           /* no wrap */
	}
	jrnl_entry_encode(e, b);
	CHECK(jrnl_entry_parse(b, sizeof(b), &e2) == 0);
	CHECK(entry_same(e, &e2));
}

static int is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* 1. raw parses */
static void check_raw(const uint8_t *data, size_t size)
{
	struct jrnl_hdr h;
	struct jrnl_entry e;
	int err;

	for (size_t off = 0; off < 2 * JRNL_HDR_BYTES && off <= size; off += JRNL_HDR_BYTES) {
		err = jrnl_hdr_parse(data + off, size - off, &h);
		CHECK(err == 0 || err == -ENODATA || err == -EBADMSG);
		if (size - off < JRNL_HDR_BYTES)
			CHECK(err == -EBADMSG);
		if (err == -ENODATA)
			CHECK(memcmp(data + off, "TNDMJRNL", 8) != 0);
		if (err == 0)
			hdr_parsed(&h);
	}
	for (size_t k = 0; k < MAX_SLOTS && k * JRNL_ENTRY_BYTES <= size; k++) {
		const uint8_t *p = data + k * JRNL_ENTRY_BYTES;
		size_t left = size - k * JRNL_ENTRY_BYTES;

		err = jrnl_entry_parse(p, left, &e);
		CHECK(err == 0 || err == -ENODATA || err == -EBADMSG);
		if (left < JRNL_ENTRY_BYTES)
			CHECK(err == -EBADMSG);
		else
			CHECK((err == -ENODATA) == is_zero(p, JRNL_ENTRY_BYTES));
		if (err == 0) {
			CHECK(!memcmp(p, "TJE1", 4) && get_le32(p + 4) == JRNL_ENTRY_BYTES);
			entry_parsed(&e);
		}
	}
}

/* Copy up to `want` bytes of the input from `off` into `out`, zero-padded. */
static void take(const uint8_t *data, size_t size, size_t off, uint8_t *out, size_t want)
{
	size_t n = off < size ? size - off : 0;

	if (n > want)
		n = want;
	memset(out, 0, want);
	if (n)
		memcpy(out, data + off, n);
}

static void hdr_reseal(uint8_t *b)
{
	memcpy(b, "TNDMJRNL", 8);
	put_le32(b + 8, JRNL_VERSION);
	put_le32(b + 12, JRNL_HDR_BYTES);
	put_le32(b + 16, 0);
	put_le32(b + 16, tcrc32c(b, JRNL_HDR_BYTES));
}

static void entry_reseal(uint8_t *b)
{
	memcpy(b, "TJE1", 4);
	put_le32(b + 4, JRNL_ENTRY_BYTES);
	put_le32(b + 124, tcrc32c(b, 124));
}

/* 2. resealed header and entry, and the geometry helpers on a pair that parses */
static void check_geometry(const struct jrnl_hdr *h, const struct jrnl_entry *e)
{
	uint64_t d = h->data_bytes, len = jrnl_entry_len(e), p;
	int err = jrnl_entry_check(h, e);

	CHECK(err == 0 || err == -EBADMSG);
	if (err == 0) {
		CHECK(len <= d);
		CHECK(e->pos % d + jrnl_align(len) <= d);
		CHECK(jrnl_data_off(h, e->pos) + len <= h->data_offset + d);
	} else {
		CHECK(len > d || e->pos % d + jrnl_align(len) > d);
	}
	CHECK(jrnl_data_off(h, e->pos) >= h->data_offset);
	CHECK(jrnl_data_off(h, e->pos) < h->data_offset + d);
	CHECK(jrnl_slot_off(h, e->seq) >= h->meta_offset);
	CHECK(jrnl_slot_off(h, e->seq) + JRNL_ENTRY_BYTES <= h->data_offset);
	(void)jrnl_pos_lba(h, e->pos);
	/* placement of this entry's data at its position (as the writer would) */
	p = jrnl_place(h, e->pos, len);
	if (len <= d) {
		CHECK(p == e->pos || p == e->pos - e->pos % d + d);
		CHECK(p % d + len <= d);
		if (p != e->pos)
			CHECK(e->pos % d + len > d);
	}
}

static void check_resealed(const uint8_t *data, size_t size)
{
	uint8_t hb[JRNL_HDR_BYTES], eb[JRNL_ENTRY_BYTES];
	struct jrnl_hdr h;
	struct jrnl_entry e;
	int herr, eerr;

	take(data, size, 0, hb, sizeof(hb));
	hdr_reseal(hb);
	herr = jrnl_hdr_parse(hb, sizeof(hb), &h);
	CHECK(herr == 0 || herr == -EBADMSG);
	if (herr == 0)
		hdr_parsed(&h);

	if (size > ENTRY_AT)
		take(data, size, ENTRY_AT, eb, sizeof(eb));
	else
		take(data, size, size > JRNL_ENTRY_BYTES ? size - JRNL_ENTRY_BYTES : 0, eb,
		     sizeof(eb));
	entry_reseal(eb);
	eerr = jrnl_entry_parse(eb, sizeof(eb), &e);
	CHECK(eerr == 0 || eerr == -EBADMSG);
	if (eerr == 0)
		entry_parsed(&e);
	if (herr == 0 && eerr == 0)
		check_geometry(&h, &e);
}

/* 3. header A/B read from an in-memory volume */
struct memvol {
	const uint8_t *b;
};

static int mem_read(void *ctx, void *buf, uint64_t off, uint64_t len)
{
	struct memvol *m = ctx;

	CHECK(off <= VOL_BYTES && len <= VOL_BYTES - off);
	memcpy(buf, m->b + off, len);
	return 0;
}

static void check_read_vol(const uint8_t *vol)
{
	struct memvol m = { vol };
	struct jrnl_hdr h, c[2];
	int r[2], err;

	r[0] = jrnl_hdr_parse(vol, JRNL_HDR_BYTES, &c[0]);
	r[1] = jrnl_hdr_parse(vol + JRNL_HDR_BYTES, JRNL_HDR_BYTES, &c[1]);
	err = jrnl_hdr_read(mem_read, &m, &h);
	if (r[0] && r[1]) {
		CHECK(err == (r[0] == -ENODATA && r[1] == -ENODATA ? -ENODATA : -EBADMSG));
		return;
	}
	CHECK(err == 0);
	hdr_parsed(&h);
	if (r[0] == 0 && r[1] == 0) {
		CHECK(hdr_same(&h, &c[0]) || hdr_same(&h, &c[1]));
		CHECK(h.generation == (c[0].generation > c[1].generation ? c[0].generation :
								    c[1].generation));
	} else {
		CHECK(hdr_same(&h, r[0] == 0 ? &c[0] : &c[1]));
	}
}

static void check_read(const uint8_t *data, size_t size)
{
	static uint8_t vol[VOL_BYTES];

	take(data, size, 0, vol, sizeof(vol));
	check_read_vol(vol);
	/* resealed copies, unless the input leaves a copy blank (a never-written copy) */
	if (size > 8)
		hdr_reseal(vol);
	if (size > JRNL_HDR_BYTES + 8)
		hdr_reseal(vol + JRNL_HDR_BYTES);
	check_read_vol(vol);
}

/* 4. uuid strings and layout sizes */
static void check_misc(const uint8_t *data, size_t size)
{
	char s[64], str[37];
	uint8_t u[16], u2[16];
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
	struct jrnl_hdr h, h2;
	uint8_t b[JRNL_HDR_BYTES];
	uint64_t vol_bytes = 0;
	int err;

	memcpy(s, data, n);
	s[n] = '\0';
	if (jrnl_uuid_parse(s, u) == 0) {
		jrnl_uuid_str(u, str);
		CHECK(strlen(str) == 36);
		CHECK(jrnl_uuid_parse(str, u2) == 0);
		CHECK(!memcmp(u, u2, 16));
	}
	if (size >= 8)
		memcpy(&vol_bytes, data + size - 8, 8);
	/* journals below 2^50 bytes: the header parser refuses a bigger data ring, which
	 * jrnl_layout does not (yet) refuse to lay out */
	vol_bytes &= (1ull << 50) - 1;
	err = jrnl_layout(vol_bytes, size & 1 ? 512 : 4096, &h);
	if (vol_bytes < JRNL_MIN_BYTES) {
		CHECK(err == -ENOSPC);
		return;
	}
	CHECK(err == 0);
	CHECK(h.data_offset + h.data_bytes <= vol_bytes);
	CHECK(vol_bytes - (h.data_offset + h.data_bytes) < JRNL_ALIGN);
	CHECK(h.meta_bytes >= 64 * 1024 && h.meta_bytes <= 16u * 1024 * 1024);
	h.role = JRNL_ROLE_AUX;
	jrnl_hdr_encode(&h, b);
	CHECK(jrnl_hdr_parse(b, sizeof(b), &h2) == 0);
	CHECK(hdr_same(&h, &h2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_raw(data, size);
	check_resealed(data, size);
	check_read(data, size);
	check_misc(data, size);
	return 0;
}

#ifdef JOURNAL_FUZZ_SEEDS
/* ---- the seed generator ---------------------------------------------------------------------- */

static int write_seed(const char *dir, const char *name, const uint8_t *b, size_t len)
{
	char path[4096];
	FILE *f;

	LLVMFuzzerTestOneInput(b, len);           /* a seed must pass the checks itself */
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b, 1, len, f) != len || fclose(f)) {
		perror(path);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv);
int main(int argc, char **argv)
{
	static uint8_t b[ENTRY_AT + 3 * JRNL_ENTRY_BYTES];
	struct jrnl_hdr h;
	struct jrnl_entry e = { .seq = 1, .time_ns = 1700000000000000000ull, .volid = 10,
				.lba = 2048, .nblocks = 8, .block_bytes = 512, .pos = 0,
				.data_crc = 0x12345678u, .flags = 0 };
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR   (writes valid journal records as seed inputs)\n",
			argv[0]);
		return 2;
	}
	if (jrnl_layout(64ull << 20, 512, &h))
		return 1;
	h.role = JRNL_ROLE_PRIMARY;
	for (int i = 0; i < 16; i++)
		h.uuid[i] = (uint8_t)(0x40 + i);
	h.pair_id = 1;
	h.generation = 7;
	h.jin_hint = 5;
	h.applied = 4;
	h.confirmed = 3;

	/* one header copy alone */
	memset(b, 0, sizeof(b));
	jrnl_hdr_encode(&h, b);
	rc |= write_seed(argv[1], "hdr-primary", b, JRNL_HDR_BYTES);
	/* A and B (B newer), then an entry after them: the whole input layout */
	h.generation = 8;
	h.applied = 5;
	jrnl_hdr_encode(&h, b + JRNL_HDR_BYTES);
	rc |= write_seed(argv[1], "hdr-a-b", b, VOL_BYTES);
	jrnl_entry_encode(&e, b + ENTRY_AT);
	rc |= write_seed(argv[1], "hdr-a-b-entry", b, ENTRY_AT + JRNL_ENTRY_BYTES);
	/* a marker and a 4 KiB-block entry at the ring's last 4 KiB after it */
	e.seq = 2;
	e.flags = JRNL_FLAG_MARKER;
	e.nblocks = 0;
	e.pos = 4096;
	jrnl_entry_encode(&e, b + ENTRY_AT + JRNL_ENTRY_BYTES);
	e.seq = 3;
	e.flags = 0;
	e.nblocks = 1;
	e.block_bytes = 4096;
	e.lba = 99;
	e.pos = 3 * h.data_bytes - 4096;
	jrnl_entry_encode(&e, b + ENTRY_AT + 2 * JRNL_ENTRY_BYTES);
	rc |= write_seed(argv[1], "hdr-a-b-ring", b, sizeof(b));
	/* entries alone: a data entry, a marker, an empty slot */
	rc |= write_seed(argv[1], "entry-4k", b + ENTRY_AT + 2 * JRNL_ENTRY_BYTES, JRNL_ENTRY_BYTES);
	rc |= write_seed(argv[1], "entry-marker", b + ENTRY_AT + JRNL_ENTRY_BYTES, JRNL_ENTRY_BYTES);
	memset(b, 0, JRNL_ENTRY_BYTES);
	rc |= write_seed(argv[1], "entry-zero", b, JRNL_ENTRY_BYTES);
	/* an auxiliary header with 4 KiB blocks, and a uuid string */
	if (jrnl_layout(1ull << 30, 4096, &h))
		return 1;
	h.role = JRNL_ROLE_AUX;
	h.generation = 1;
	h.restore_completed = 9;
	h.to_be_restored = 12;
	h.read_completed = 11;
	h.to_be_read = 20;
	memset(b, 0, sizeof(b));
	jrnl_hdr_encode(&h, b);
	rc |= write_seed(argv[1], "hdr-aux", b, JRNL_HDR_BYTES);
	{
		static const char u[] = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0";

		rc |= write_seed(argv[1], "uuid", (const uint8_t *)u, sizeof(u) - 1);
	}
	return rc;
}
#endif

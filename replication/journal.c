#include "replication/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raid/util.h"

static const char hdr_magic[8] = { 'T', 'N', 'D', 'M', 'J', 'R', 'N', 'L' };
static const char ent_magic[4] = { 'T', 'J', 'E', '1' };

void jrnl_hdr_encode(const struct jrnl_hdr *h, uint8_t out[JRNL_HDR_BYTES])
{
	memset(out, 0, JRNL_HDR_BYTES);
	memcpy(out, hdr_magic, 8);
	put_le32(out + 8, JRNL_VERSION);
	put_le32(out + 12, JRNL_HDR_BYTES);
	put_le32(out + 20, h->role);
	memcpy(out + 24, h->uuid, 16);
	put_le64(out + 40, h->pair_id);
	put_le64(out + 48, h->generation);
	put_le64(out + 56, h->meta_offset);
	put_le64(out + 64, h->meta_bytes);
	put_le64(out + 72, h->data_offset);
	put_le64(out + 80, h->data_bytes);
	put_le64(out + 88, h->jin_hint);
	put_le64(out + 96, h->jout);
	put_le64(out + 104, h->jout_pos);
	put_le64(out + 112, h->applied);
	put_le64(out + 120, h->confirmed);
	put_le64(out + 128, h->restore_completed);
	put_le64(out + 136, h->to_be_restored);
	put_le64(out + 144, h->read_completed);
	put_le64(out + 152, h->to_be_read);
	put_le64(out + 160, h->restore_pos);
	put_le32(out + 168, h->block_bytes);
	put_le32(out + 16, tcrc32c(out, JRNL_HDR_BYTES));
}

int jrnl_hdr_parse(const void *buf, size_t len, struct jrnl_hdr *h)
{
	const uint8_t *b = buf;
	uint8_t tmp[JRNL_HDR_BYTES];

	if (len < JRNL_HDR_BYTES)
		return -EBADMSG;
	if (memcmp(b, hdr_magic, 8))
		return -ENODATA;
	if (get_le32(b + 12) != JRNL_HDR_BYTES)
		return -EBADMSG;
	memcpy(tmp, b, JRNL_HDR_BYTES);
	put_le32(tmp + 16, 0);
	if (tcrc32c(tmp, JRNL_HDR_BYTES) != get_le32(b + 16))
		return -EBADMSG;
	if (get_le32(b + 8) != JRNL_VERSION)
		return -EBADMSG;
	memset(h, 0, sizeof(*h));
	h->role = get_le32(b + 20);
	memcpy(h->uuid, b + 24, 16);
	h->pair_id = get_le64(b + 40);
	h->generation = get_le64(b + 48);
	h->meta_offset = get_le64(b + 56);
	h->meta_bytes = get_le64(b + 64);
	h->data_offset = get_le64(b + 72);
	h->data_bytes = get_le64(b + 80);
	h->jin_hint = get_le64(b + 88);
	h->jout = get_le64(b + 96);
	h->jout_pos = get_le64(b + 104);
	h->applied = get_le64(b + 112);
	h->confirmed = get_le64(b + 120);
	h->restore_completed = get_le64(b + 128);
	h->to_be_restored = get_le64(b + 136);
	h->read_completed = get_le64(b + 144);
	h->to_be_read = get_le64(b + 152);
	h->restore_pos = get_le64(b + 160);
	h->block_bytes = get_le32(b + 168);
	/* geometry a reader can trust: 4 KiB multiples, meta after the headers, data after meta */
	if ((h->role != JRNL_ROLE_PRIMARY && h->role != JRNL_ROLE_AUX) ||
	    h->meta_offset != 2 * JRNL_HDR_BYTES || !h->meta_bytes || h->meta_bytes % JRNL_ALIGN ||
	    h->data_offset != h->meta_offset + h->meta_bytes || !h->data_bytes ||
	    h->data_bytes % JRNL_ALIGN || h->data_bytes > (1ull << 50) ||
	    h->meta_bytes > (1ull << 40) || h->jout == 0 ||
	    (h->block_bytes != 512 && h->block_bytes != 4096))
		return -EBADMSG;
	return 0;
}

void jrnl_entry_encode(const struct jrnl_entry *e, uint8_t out[JRNL_ENTRY_BYTES])
{
	memset(out, 0, JRNL_ENTRY_BYTES);
	memcpy(out, ent_magic, 4);
	put_le32(out + 4, JRNL_ENTRY_BYTES);
	put_le64(out + 8, e->seq);
	put_le64(out + 16, e->time_ns);
	put_le64(out + 24, e->volid);
	put_le64(out + 32, e->lba);
	put_le32(out + 40, e->nblocks);
	put_le32(out + 44, e->block_bytes);
	put_le64(out + 48, e->pos);
	put_le32(out + 56, e->data_crc);
	put_le32(out + 60, e->flags);
	put_le32(out + 124, tcrc32c(out, 124));
}

int jrnl_entry_parse(const void *buf, size_t len, struct jrnl_entry *e)
{
	const uint8_t *b = buf;
	static const uint8_t zero[JRNL_ENTRY_BYTES];

	if (len < JRNL_ENTRY_BYTES)
		return -EBADMSG;
	if (!memcmp(b, zero, JRNL_ENTRY_BYTES))
		return -ENODATA;
	if (memcmp(b, ent_magic, 4) || get_le32(b + 4) != JRNL_ENTRY_BYTES ||
	    tcrc32c(b, 124) != get_le32(b + 124))
		return -EBADMSG;
	e->seq = get_le64(b + 8);
	e->time_ns = get_le64(b + 16);
	e->volid = get_le64(b + 24);
	e->lba = get_le64(b + 32);
	e->nblocks = get_le32(b + 40);
	e->block_bytes = get_le32(b + 44);
	e->pos = get_le64(b + 48);
	e->data_crc = get_le32(b + 56);
	e->flags = get_le32(b + 60);
	if (!e->seq || e->flags & ~JRNL_FLAG_MARKER || e->pos % JRNL_ALIGN)
		return -EBADMSG;
	if (e->flags & JRNL_FLAG_MARKER) {
		if (e->nblocks)
			return -EBADMSG;
	} else if ((e->block_bytes != 512 && e->block_bytes != 4096) || !e->nblocks ||
		   e->nblocks > (1u << 24) || e->lba > (UINT64_MAX >> 13)) {
		return -EBADMSG;
	}
	return 0;
}

int jrnl_layout(uint64_t vol_bytes, uint32_t block_bytes, struct jrnl_hdr *h)
{
	uint64_t avail, meta;

	if (vol_bytes < JRNL_MIN_BYTES)
		return -ENOSPC;
	memset(h, 0, sizeof(*h));
	avail = (vol_bytes - 2 * JRNL_HDR_BYTES) / JRNL_ALIGN * JRNL_ALIGN;
	meta = avail / 32 / JRNL_ALIGN * JRNL_ALIGN;   /* a 128-byte record per 4 KiB of data */
	if (meta < 64 * 1024)
		meta = 64 * 1024;
	if (meta > 16u * 1024 * 1024)
		meta = 16u * 1024 * 1024;
	h->meta_offset = 2 * JRNL_HDR_BYTES;
	h->meta_bytes = meta;
	h->data_offset = h->meta_offset + meta;
	h->data_bytes = avail - meta;
	if (h->data_bytes > (1ull << 50))
		h->data_bytes = 1ull << 50;    /* what a reader accepts (jrnl_hdr_parse) */
	h->block_bytes = block_bytes;
	h->jout = 1;
	return 0;
}

uint64_t jrnl_place(const struct jrnl_hdr *h, uint64_t pos, uint64_t len)
{
	uint64_t in_lap = pos % h->data_bytes;

	if (in_lap + len > h->data_bytes)
		return pos - in_lap + h->data_bytes;
	return pos;
}

int jrnl_entry_check(const struct jrnl_hdr *h, const struct jrnl_entry *e)
{
	uint64_t len = jrnl_entry_len(e);

	if (len > h->data_bytes || (e->pos % h->data_bytes) + jrnl_align(len) > h->data_bytes)
		return -EBADMSG;
	return 0;
}

int jrnl_hdr_read(jrnl_read_fn *rd, void *ctx, struct jrnl_hdr *h)
{
	uint8_t *buf = aligned_alloc(4096, 2 * JRNL_HDR_BYTES);
	struct jrnl_hdr c[2];
	int r[2], err;

	if (!buf)
		return -ENOMEM;
	err = rd(ctx, buf, 0, 2 * JRNL_HDR_BYTES);
	if (err) {
		free(buf);
		return err;
	}
	r[0] = jrnl_hdr_parse(buf, JRNL_HDR_BYTES, &c[0]);
	r[1] = jrnl_hdr_parse(buf + JRNL_HDR_BYTES, JRNL_HDR_BYTES, &c[1]);
	free(buf);
	if (r[0] && r[1])
		return r[0] == -ENODATA && r[1] == -ENODATA ? -ENODATA : -EBADMSG;
	/* both valid: the newer (formatting writes both copies, so a re-format leaves no copy
	 * of the old journal behind) */
	if (!r[0] && !r[1])
		*h = c[0].generation >= c[1].generation ? c[0] : c[1];
	else
		*h = r[0] ? c[1] : c[0];
	return 0;
}

int jrnl_hdr_write(jrnl_write_fn *wr, void *ctx, struct jrnl_hdr *h)
{
	uint8_t *buf = aligned_alloc(4096, JRNL_HDR_BYTES);
	int err;

	if (!buf)
		return -ENOMEM;
	h->generation++;
	jrnl_hdr_encode(h, buf);
	err = wr(ctx, buf, (h->generation & 1) * JRNL_HDR_BYTES, JRNL_HDR_BYTES);
	if (err)
		h->generation--;    /* a retry must not overwrite the last good copy */
	free(buf);
	return err;
}

void jrnl_new_uuid(uint8_t uuid[16])
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	struct timespec ts;

	if (fd < 0 || read(fd, uuid, 16) != 16) {
		clock_gettime(CLOCK_REALTIME, &ts);
		put_le64(uuid, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
		put_le64(uuid + 8, (uint64_t)getpid() * 2654435761ull ^ (uint64_t)(uintptr_t)uuid);
	}
	if (fd >= 0)
		close(fd);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
}

void jrnl_uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

int jrnl_uuid_parse(const char *s, uint8_t u[16])
{
	size_t len = strlen(s);
	int n = 0, dashed = len == 36;

	if (len != 32 && len != 36)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int v;

		if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (c != '-')
				return -EINVAL;
			continue;
		}
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v = c - 'A' + 10;
		else
			return -EINVAL;
		if (n % 2 == 0)
			u[n / 2] = (uint8_t)(v << 4);
		else
			u[n / 2] |= (uint8_t)v;
		n++;
	}
	return n == 32 ? 0 : -EINVAL;
}

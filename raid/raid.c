#include "raid/raid.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "raid/superblock.h"
#include "raid/tlog.h"
#include "raid/util.h"

#define STRIPE_LOCKS 4096

struct raid_vol {
	struct raid_member *m[RAID_MAX_MEMBERS];
	uint32_t nr;
	struct raid_geom g;
	struct raid_sb sb;              /* last written; protected by sb_lock */
	pthread_mutex_t sb_lock;
	int was_dirty;
	int readonly;
	/* stripe s is written under lock[s % STRIPE_LOCKS] */
	pthread_mutex_t lock[STRIPE_LOCKS];
	struct raid_stats st;           /* updated with __atomic adds */
};

#define STAT_ADD(v, field, n) __atomic_add_fetch(&(v)->st.field, (n), __ATOMIC_RELAXED)

/* Per-thread scratch memory for partial-stripe writes (tgt's worker threads live long). */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
struct scratch {
	uint8_t *buf;
	size_t cap;
};

static void scratch_free(void *p)
{
	struct scratch *s = p;

	free(s->buf);
	free(s);
}

static void scratch_init(void)
{
	pthread_key_create(&scratch_key, scratch_free);
}

static uint8_t *scratch_get(size_t len)
{
	struct scratch *s;

	pthread_once(&scratch_once, scratch_init);
	s = pthread_getspecific(scratch_key);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		pthread_setspecific(scratch_key, s);
	}
	if (s->cap < len) {
		void *p;

		if (posix_memalign(&p, 64, len))
			return NULL;
		free(s->buf);
		s->buf = p;
		s->cap = len;
	}
	return s->buf;
}

void raid_uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

/* Read both superblock slots; the valid one with the higher sequence wins. */
static int sb_read(struct raid_member *m, struct raid_sb *sb, char *why, size_t why_len)
{
	uint8_t *blk;
	struct raid_sb c[RAID_SB_SLOTS];
	int err[RAID_SB_SLOTS], best = -1;
	char w[RAID_SB_SLOTS][200];

	if (m->size_bytes < RAID_SB_BYTES * RAID_SB_SLOTS) {
		snprintf(why, why_len, "member %s: too small (%" PRIu64 " bytes) to hold a superblock",
			 m->name, m->size_bytes);
		return -EINVAL;
	}
	if (posix_memalign((void **)&blk, 4096, RAID_SB_BYTES))
		return -ENOMEM;
	for (int i = 0; i < RAID_SB_SLOTS; i++) {
		err[i] = raid_member_pread(m, blk, RAID_SB_BYTES, (uint64_t)i * RAID_SB_BYTES);
		if (err[i]) {
			snprintf(w[i], sizeof(w[i]), "read error: %s", strerror(-err[i]));
			continue;
		}
		err[i] = raid_sb_decode(blk, &c[i], w[i], sizeof(w[i]));
		if (!err[i] && (best < 0 || c[i].sequence > c[best].sequence))
			best = i;
	}
	free(blk);
	if (best >= 0) {
		*sb = c[best];
		return 0;
	}
	/* Both bad. "No magic" in both means not a member; any damage is reported as damage. */
	for (int i = 0; i < RAID_SB_SLOTS; i++) {
		if (err[i] != -EINVAL) {
			snprintf(why, why_len, "member %s: superblock %d: %s", m->name, i, w[i]);
			return err[i];
		}
	}
	snprintf(why, why_len, "member %s: not a tandem RAID member (no superblock; use create=1 to format)",
		 m->name);
	return -ENODATA;
}

/* Write superblock `sb` (sequence already advanced) to every member, then flush. */
static int sb_write_all(struct raid_member **m, uint32_t nr, const struct raid_sb *sb)
{
	uint8_t *blk;
	int err = 0;

	if (posix_memalign((void **)&blk, 4096, RAID_SB_BYTES))
		return -ENOMEM;
	for (uint32_t i = 0; i < nr && !err; i++) {
		struct raid_sb one = *sb;

		one.member_index = i;
		raid_sb_encode(&one, blk);
		err = raid_member_pwrite(m[i], blk, RAID_SB_BYTES,
					 (sb->sequence % RAID_SB_SLOTS) * RAID_SB_BYTES);
		if (!err)
			err = m[i]->ops->flush(m[i]);
		if (err)
			tlog(TLOG_ERR, "member %s: superblock write failed: %s", m[i]->name,
			     strerror(-err));
	}
	free(blk);
	return err;
}

int raid_create(struct raid_member **m, uint32_t nr, const struct raid_create_params *p,
		char *why, size_t why_len)
{
	struct raid_sb sb, old;
	char w[256];
	int err;

	memset(&sb, 0, sizeof(sb));
	sb.geom.nr_data = p->nr_data;
	sb.geom.chunk_bytes = p->chunk_bytes;
	sb.geom.block_bytes = p->block_bytes;
	sb.geom.data_offset_bytes = RAID_DATA_OFFSET_BYTES;
	sb.geom.member_data_bytes = p->chunk_bytes; /* checked properly below */
	if ((err = raid_geom_check(&sb.geom, why, why_len)))
		return err;
	if (nr != p->nr_data + 1) {
		snprintf(why, why_len, "layout %uD+1P needs %u members, %u given", p->nr_data,
			 p->nr_data + 1, nr);
		return -EINVAL;
	}
	if (p->volid == 0) {
		snprintf(why, why_len, "volid must be given (a positive integer)");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < nr; i++) {
		for (uint32_t j = 0; j < i; j++) {
			if (raid_member_same(m[i], m[j])) {
				snprintf(why, why_len, "member %s is listed twice (positions %u and %u)",
					 m[i]->name, j, i);
				return -EINVAL;
			}
		}
		if (m[i]->size_bytes != m[0]->size_bytes) {
			snprintf(why, why_len,
				 "members differ in size: %s is %" PRIu64 " bytes, %s is %" PRIu64,
				 m[i]->name, m[i]->size_bytes, m[0]->name, m[0]->size_bytes);
			return -EINVAL;
		}
		if (!p->force && m[i]->size_bytes >= 2 * RAID_SB_BYTES &&
		    sb_read(m[i], &old, w, sizeof(w)) == 0) {
			char u[37];

			raid_uuid_str(old.array_uuid, u);
			snprintf(why, why_len,
				 "member %s already belongs to array %s (volid %" PRIu64 ", member %u); "
				 "refusing to format it without force (bsopts create=force, tandemctl --force)", m[i]->name, u, old.volid,
				 old.member_index);
			return -EEXIST;
		}
	}
	sb.geom.member_data_bytes = raid_member_data_bytes(m[0]->size_bytes, RAID_DATA_OFFSET_BYTES,
							   p->chunk_bytes);
	if (sb.geom.member_data_bytes == 0) {
		snprintf(why, why_len, "member %s (%" PRIu64 " bytes) is too small: it needs at least "
			 "%llu bytes (4 MiB metadata + one chunk)", m[0]->name, m[0]->size_bytes,
			 (unsigned long long)(RAID_DATA_OFFSET_BYTES + p->chunk_bytes));
		return -ENOSPC;
	}
	sb.version = RAID_SB_VERSION;
	sb.nr_members = nr;
	sb.member_bytes = m[0]->size_bytes;
	sb.volume_bytes = raid_volume_bytes(&sb.geom);
	sb.volid = p->volid;
	sb.ctime = (uint64_t)time(NULL);
	if (getrandom(sb.array_uuid, sizeof(sb.array_uuid), 0) != sizeof(sb.array_uuid)) {
		snprintf(why, why_len, "getrandom: %s", strerror(errno));
		return -EIO;
	}
	sb.array_uuid[6] = (sb.array_uuid[6] & 0x0f) | 0x40;
	sb.array_uuid[8] = (sb.array_uuid[8] & 0x3f) | 0x80;
	/* Zero everything past the superblocks, so data and parity agree from the start. */
	for (uint32_t i = 0; i < nr; i++) {
		err = m[i]->ops->zero(m[i], 2 * RAID_SB_BYTES, m[i]->size_bytes - 2 * RAID_SB_BYTES);
		if (err) {
			snprintf(why, why_len, "member %s: cannot zero: %s", m[i]->name, strerror(-err));
			return err;
		}
	}
	/* Both slots: sequence 1 in slot 1, then sequence 2 in slot 0 (any old copy is gone). */
	for (int k = 1; k <= 2; k++) {
		sb.sequence = (uint64_t)k;
		if ((err = sb_write_all(m, nr, &sb))) {
			snprintf(why, why_len, "superblock write failed: %s", strerror(-err));
			return err;
		}
	}
	{
		char u[37];

		raid_uuid_str(sb.array_uuid, u);
		tlog(TLOG_INFO, "created array %s: volid %" PRIu64 ", %uD+1P, chunk %u KiB, block %u, "
		     "%" PRIu64 " bytes", u, sb.volid, sb.geom.nr_data, sb.geom.chunk_bytes / 1024,
		     sb.geom.block_bytes, sb.volume_bytes);
	}
	return 0;
}

static int geom_equal(const struct raid_geom *a, const struct raid_geom *b)
{
	return a->nr_data == b->nr_data && a->chunk_bytes == b->chunk_bytes &&
	       a->block_bytes == b->block_bytes && a->data_offset_bytes == b->data_offset_bytes &&
	       a->member_data_bytes == b->member_data_bytes;
}

int raid_assemble(struct raid_member **m, uint32_t nr, const struct raid_assemble_params *p,
		  struct raid_vol **out, char *why, size_t why_len)
{
	struct raid_sb sb[RAID_MAX_MEMBERS];
	struct raid_vol *v;
	uint32_t best = 0;
	int err;

	if (nr < RAID_MIN_DATA + 1 || nr > RAID_MAX_MEMBERS) {
		snprintf(why, why_len, "%u members given: an array has %d to %d", nr, RAID_MIN_DATA + 1,
			 RAID_MAX_MEMBERS);
		return -EINVAL;
	}
	if (p->nr_data && nr != p->nr_data + 1) {
		snprintf(why, why_len, "layout %uD+1P needs %u members, %u given", p->nr_data,
			 p->nr_data + 1, nr);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < nr; i++) {
		for (uint32_t j = 0; j < i; j++) {
			if (raid_member_same(m[i], m[j])) {
				snprintf(why, why_len, "member %s is listed twice (positions %u and %u)",
					 m[i]->name, j, i);
				return -EINVAL;
			}
		}
		if ((err = sb_read(m[i], &sb[i], why, why_len)))
			return err;
		if (sb[i].sequence > sb[best].sequence)
			best = i;
	}
	for (uint32_t i = 0; i < nr; i++) {
		char u0[37], ui[37];

		if (memcmp(sb[i].array_uuid, sb[0].array_uuid, 16) != 0) {
			raid_uuid_str(sb[0].array_uuid, u0);
			raid_uuid_str(sb[i].array_uuid, ui);
			snprintf(why, why_len, "member %s belongs to array %s (volid %" PRIu64 "), "
				 "not to array %s of %s", m[i]->name, ui, sb[i].volid, u0, m[0]->name);
			return -EINVAL;
		}
		if (sb[i].nr_members != nr) {
			snprintf(why, why_len, "member %s: the array has %u members, %u given", m[i]->name,
				 sb[i].nr_members, nr);
			return -EINVAL;
		}
		if (sb[i].member_index != i) {
			snprintf(why, why_len, "member %s is member %u of the array but listed at position "
				 "%u: list the members in order", m[i]->name, sb[i].member_index, i);
			return -EINVAL;
		}
		if (!geom_equal(&sb[i].geom, &sb[0].geom) || sb[i].volid != sb[0].volid) {
			snprintf(why, why_len, "member %s: superblock geometry differs from %s's",
				 m[i]->name, m[0]->name);
			return -EPROTO;
		}
		if (m[i]->size_bytes < sb[i].geom.data_offset_bytes + sb[i].geom.member_data_bytes) {
			snprintf(why, why_len, "member %s is %" PRIu64 " bytes, the array needs %" PRIu64
				 " (truncated?)", m[i]->name, m[i]->size_bytes,
				 sb[i].geom.data_offset_bytes + sb[i].geom.member_data_bytes);
			return -EINVAL;
		}
	}
	if (p->chunk_bytes && p->chunk_bytes != sb[0].geom.chunk_bytes) {
		snprintf(why, why_len, "chunk_kib=%u given, but the array's chunk is %u KiB",
			 p->chunk_bytes / 1024, sb[0].geom.chunk_bytes / 1024);
		return -EINVAL;
	}
	if (p->block_bytes && p->block_bytes != sb[0].geom.block_bytes) {
		snprintf(why, why_len, "block size %u given, but the array was created with %u",
			 p->block_bytes, sb[0].geom.block_bytes);
		return -EINVAL;
	}
	if (p->volid && p->volid != sb[0].volid) {
		snprintf(why, why_len, "volid=%" PRIu64 " given, but these members are volid %" PRIu64,
			 p->volid, sb[0].volid);
		return -EINVAL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	v->nr = nr;
	v->g = sb[0].geom;
	v->sb = sb[best];
	v->was_dirty = !!(sb[best].flags & RAID_SB_FLAG_DIRTY);
	for (uint32_t i = 0; i < nr; i++) {
		v->m[i] = m[i];
		if (sb[i].sequence != sb[best].sequence)
			tlog(TLOG_WARN, "member %s: superblock sequence %" PRIu64 ", others %" PRIu64
			     " (an update was interrupted); rewriting", m[i]->name, sb[i].sequence,
			     sb[best].sequence);
	}
	pthread_mutex_init(&v->sb_lock, NULL);
	for (int i = 0; i < STRIPE_LOCKS; i++)
		pthread_mutex_init(&v->lock[i], NULL);
	v->readonly = p->readonly;
	v->sb.flags |= RAID_SB_FLAG_DIRTY;
	v->sb.sequence++;
	if (!v->readonly && (err = sb_write_all(v->m, nr, &v->sb))) {
		snprintf(why, why_len, "cannot update the superblocks: %s", strerror(-err));
		free(v);
		return err;
	}
	if (v->was_dirty) {
		char u[37];

		raid_uuid_str(v->sb.array_uuid, u);
		tlog(TLOG_WARN, "array %s (volid %" PRIu64 ") was not shut down cleanly", u,
		     v->sb.volid);
	}
	*out = v;
	return 0;
}

int raid_read(struct raid_vol *v, void *buf, uint64_t off, uint64_t len)
{
	const struct raid_geom *g = &v->g;
	uint8_t *dst = buf;
	uint64_t sb_bytes = raid_stripe_bytes(g);

	if (off > raid_volume_bytes(g) || len > raid_volume_bytes(g) - off)
		return -ERANGE;
	while (len) {
		uint64_t s = off / sb_bytes;
		uint32_t d = (uint32_t)(off % sb_bytes / g->chunk_bytes);
		uint32_t o = (uint32_t)(off % g->chunk_bytes);
		uint64_t n = g->chunk_bytes - o;
		uint32_t mi = raid_data_member(g, s, d);
		int err;

		if (n > len)
			n = len;
		err = raid_member_pread(v->m[mi], dst, n, raid_member_offset(g, s, o));
		STAT_ADD(v, member_reads, 1);
		if (err) {
			tlog(TLOG_ERR, "member %s: read of %" PRIu64 " bytes at %" PRIu64 " failed: %s",
			     v->m[mi]->name, n, raid_member_offset(g, s, o), strerror(-err));
			return -EIO;
		}
		dst += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int mread(struct raid_vol *v, uint32_t mi, void *buf, uint64_t n, uint64_t moff)
{
	int err = raid_member_pread(v->m[mi], buf, n, moff);

	STAT_ADD(v, member_reads, 1);
	if (err) {
		tlog(TLOG_ERR, "member %s: read of %" PRIu64 " bytes at %" PRIu64 " failed: %s",
		     v->m[mi]->name, n, moff, strerror(-err));
		return -EIO;
	}
	return 0;
}

static int mwrite(struct raid_vol *v, uint32_t mi, const void *buf, uint64_t n, uint64_t moff)
{
	int err = raid_member_pwrite(v->m[mi], buf, n, moff);

	STAT_ADD(v, member_writes, 1);
	if (err) {
		tlog(TLOG_ERR, "member %s: write of %" PRIu64 " bytes at %" PRIu64 " failed: %s",
		     v->m[mi]->name, n, moff, strerror(-err));
		return -EIO;
	}
	return 0;
}

/* Write stripe-relative bytes [a, b) of stripe s from src; the stripe lock is held. */
static int write_stripe(struct raid_vol *v, uint64_t s, const uint8_t *src, uint64_t a, uint64_t b)
{
	const struct raid_geom *g = &v->g;
	const uint32_t C = g->chunk_bytes, n = g->nr_data;
	const uint32_t pm = raid_parity_member(g, s);
	const void *col[RAID_MAX_DATA + 1];
	uint32_t d0 = (uint32_t)(a / C), d1 = (uint32_t)((b - 1) / C);
	uint32_t is[RAID_MAX_DATA], ie[RAID_MAX_DATA]; /* touched interval of chunk d */
	uint32_t lo = C, hi = 0, span, rmw_reads, rcw_reads;
	uint8_t *scratch, *pbuf;
	int err;

	if (a == 0 && b == raid_stripe_bytes(g)) {
		/* Full stripe: parity from the new data alone. */
		pbuf = scratch_get(C);
		if (!pbuf)
			return -ENOMEM;
		for (uint32_t d = 0; d < n; d++)
			col[d] = src + (uint64_t)d * C;
		txor(pbuf, col, (int)n, C);
		for (uint32_t d = 0; d < n; d++)
			if ((err = mwrite(v, raid_data_member(g, s, d), col[d], C,
					  raid_member_offset(g, s, 0))))
				return err;
		STAT_ADD(v, full_stripe_writes, 1);
		return mwrite(v, pm, pbuf, C, raid_member_offset(g, s, 0));
	}
	for (uint32_t d = d0; d <= d1; d++) {
		is[d] = d == d0 ? (uint32_t)(a % C) : 0;
		ie[d] = d == d1 ? (uint32_t)((b - 1) % C) + 1 : C;
		if (is[d] < lo)
			lo = is[d];
		if (ie[d] > hi)
			hi = ie[d];
	}
	span = hi - lo;
	rmw_reads = (d1 - d0 + 1) + 1;
	rcw_reads = n - (d1 - d0 + 1);
	for (uint32_t d = d0; d <= d1; d++)
		rcw_reads += (is[d] != lo || ie[d] != hi);
	scratch = scratch_get((size_t)(n + 1) * span);
	if (!scratch)
		return -ENOMEM;
	pbuf = scratch + (size_t)n * span;

#define NEW_DATA(d) (src + (uint64_t)(d) * C + is[d] - a)
	if (rcw_reads < rmw_reads) {
		/* Reconstruct-write: parity over [lo, hi) from new data + untouched old data. */
		for (uint32_t d = 0; d < n; d++) {
			int touched = d >= d0 && d <= d1;

			if (touched && is[d] == lo && ie[d] == hi) {
				col[d] = NEW_DATA(d);
				continue;
			}
			uint8_t *c = scratch + (size_t)d * span;

			if ((err = mread(v, raid_data_member(g, s, d), c, span,
					 raid_member_offset(g, s, lo))))
				return err;
			if (touched)
				memcpy(c + (is[d] - lo), NEW_DATA(d), ie[d] - is[d]);
			col[d] = c;
		}
		txor(pbuf, col, (int)n, span);
		STAT_ADD(v, rcw_writes, 1);
	} else {
		/* Read-modify-write: P' = P ^ old ^ new over each touched interval. */
		if ((err = mread(v, pm, pbuf, span, raid_member_offset(g, s, lo))))
			return err;
		for (uint32_t d = d0; d <= d1; d++) {
			uint8_t *old = scratch + (size_t)(d - d0) * span;
			uint8_t *p = pbuf + (is[d] - lo);
			const void *x[3] = { p, old, NEW_DATA(d) };

			if ((err = mread(v, raid_data_member(g, s, d), old, ie[d] - is[d],
					 raid_member_offset(g, s, is[d]))))
				return err;
			txor(p, x, 3, ie[d] - is[d]);
		}
		STAT_ADD(v, rmw_writes, 1);
	}
	for (uint32_t d = d0; d <= d1; d++)
		if ((err = mwrite(v, raid_data_member(g, s, d), NEW_DATA(d), ie[d] - is[d],
				  raid_member_offset(g, s, is[d]))))
			return err;
#undef NEW_DATA
	return mwrite(v, pm, pbuf, span, raid_member_offset(g, s, lo));
}

int raid_write(struct raid_vol *v, const void *buf, uint64_t off, uint64_t len)
{
	const struct raid_geom *g = &v->g;
	const uint8_t *src = buf;
	uint64_t sb_bytes = raid_stripe_bytes(g);

	if (off > raid_volume_bytes(g) || len > raid_volume_bytes(g) - off)
		return -ERANGE;
	if (v->readonly)
		return -EROFS;
	while (len) {
		uint64_t s = off / sb_bytes, a = off % sb_bytes;
		uint64_t n = sb_bytes - a;
		pthread_mutex_t *lk = &v->lock[s % STRIPE_LOCKS];
		int err;

		if (n > len)
			n = len;
		pthread_mutex_lock(lk);
		err = write_stripe(v, s, src, a, a + n);
		pthread_mutex_unlock(lk);
		if (err)
			return err;
		src += n;
		off += n;
		len -= n;
	}
	return 0;
}

int raid_flush(struct raid_vol *v)
{
	int ret = 0;

	for (uint32_t i = 0; i < v->nr; i++) {
		int err = v->m[i]->ops->flush(v->m[i]);

		if (err) {
			tlog(TLOG_ERR, "member %s: flush failed: %s", v->m[i]->name, strerror(-err));
			ret = -EIO;
		}
	}
	return ret;
}

void raid_close(struct raid_vol *v)
{
	if (!v)
		return;
	if (!v->readonly && raid_flush(v) == 0) {
		pthread_mutex_lock(&v->sb_lock);
		v->sb.flags &= ~RAID_SB_FLAG_DIRTY;
		v->sb.sequence++;
		sb_write_all(v->m, v->nr, &v->sb);
		pthread_mutex_unlock(&v->sb_lock);
	}
	for (uint32_t i = 0; i < v->nr; i++)
		raid_member_close(v->m[i]);
	for (int i = 0; i < STRIPE_LOCKS; i++)
		pthread_mutex_destroy(&v->lock[i]);
	pthread_mutex_destroy(&v->sb_lock);
	free(v);
}

void raid_get_info(struct raid_vol *v, struct raid_info *info)
{
	memset(info, 0, sizeof(*info));
	info->geom = v->g;
	info->nr_members = v->nr;
	info->volume_bytes = raid_volume_bytes(&v->g);
	pthread_mutex_lock(&v->sb_lock);
	info->volid = v->sb.volid;
	memcpy(info->array_uuid, v->sb.array_uuid, 16);
	info->sequence = v->sb.sequence;
	pthread_mutex_unlock(&v->sb_lock);
	info->was_dirty = v->was_dirty;
	info->stats.full_stripe_writes = __atomic_load_n(&v->st.full_stripe_writes, __ATOMIC_RELAXED);
	info->stats.rmw_writes = __atomic_load_n(&v->st.rmw_writes, __ATOMIC_RELAXED);
	info->stats.rcw_writes = __atomic_load_n(&v->st.rcw_writes, __ATOMIC_RELAXED);
	info->stats.member_reads = __atomic_load_n(&v->st.member_reads, __ATOMIC_RELAXED);
	info->stats.member_writes = __atomic_load_n(&v->st.member_writes, __ATOMIC_RELAXED);
}

const char *raid_member_name(struct raid_vol *v, uint32_t idx)
{
	return idx < v->nr ? v->m[idx]->name : NULL;
}

int raid_resync_all(struct raid_vol *v, uint64_t *fixed)
{
	const struct raid_geom *g = &v->g;
	const uint32_t C = g->chunk_bytes, n = g->nr_data;
	const void *col[RAID_MAX_DATA];
	uint8_t *buf, *par, *old;
	int err = 0;

	*fixed = 0;
	if (v->readonly)
		return -EROFS;
	if (posix_memalign((void **)&buf, 64, (size_t)(n + 2) * C))
		return -ENOMEM;
	par = buf + (size_t)n * C;
	old = par + C;
	for (uint64_t s = 0; s < raid_nr_stripes(g) && !err; s++) {
		pthread_mutex_t *lk = &v->lock[s % STRIPE_LOCKS];
		uint32_t pm = raid_parity_member(g, s);

		pthread_mutex_lock(lk);
		for (uint32_t d = 0; d < n && !err; d++) {
			col[d] = buf + (size_t)d * C;
			err = mread(v, raid_data_member(g, s, d), buf + (size_t)d * C, C,
				    raid_member_offset(g, s, 0));
		}
		if (!err)
			err = mread(v, pm, old, C, raid_member_offset(g, s, 0));
		if (!err) {
			txor(par, col, (int)n, C);
			if (memcmp(par, old, C)) {
				(*fixed)++;
				err = mwrite(v, pm, par, C, raid_member_offset(g, s, 0));
			}
		}
		pthread_mutex_unlock(lk);
	}
	free(buf);
	return err ? err : raid_flush(v);
}

int raid_check_stripe(struct raid_vol *v, uint64_t s, uint32_t *bad_offset)
{
	const struct raid_geom *g = &v->g;
	const uint32_t C = g->chunk_bytes, N = v->nr;
	const void *col[RAID_MAX_MEMBERS];
	uint8_t *buf, *acc;
	int err = 0;

	if (s >= raid_nr_stripes(g))
		return -ERANGE;
	if (posix_memalign((void **)&buf, 64, (size_t)(N + 1) * C))
		return -ENOMEM;
	acc = buf + (size_t)N * C;
	pthread_mutex_lock(&v->lock[s % STRIPE_LOCKS]);
	for (uint32_t i = 0; i < N && !err; i++) {
		err = mread(v, i, buf + (size_t)i * C, C, raid_member_offset(g, s, 0));
		col[i] = buf + (size_t)i * C;
	}
	pthread_mutex_unlock(&v->lock[s % STRIPE_LOCKS]);
	if (!err) {
		txor(acc, col, (int)N, C);
		for (uint32_t o = 0; o < C; o++) {
			if (acc[o]) {
				if (bad_offset)
					*bad_offset = o;
				err = -EILSEQ;
				break;
			}
		}
	}
	free(buf);
	return err;
}

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
#define BITMAP_OFFSET_BYTES (64u * 1024u)
#define BITMAP_BLOCK_BYTES 4096u
#define CHECKPOINT_STRIPES 256
#define CLEAN_IDLE_NS (2ull * 1000000000ull)

struct raid_vol {
	struct raid_member *m[RAID_MAX_MEMBERS];
	uint32_t nr;
	struct raid_geom g;
	struct raid_sb sb;              /* last written; protected by sb_lock */
	pthread_mutex_t sb_lock;
	int was_dirty;
	int readonly;
	uint64_t failed;                /* atomic: failed members (a rebuilding one included) */
	int rebuild_idx;                /* -1 none; changed under sb_lock with every stripe lock free */
	uint64_t rebuild_pos;           /* atomic; written under the lock of stripe rebuild_pos - 1 */
	/* stripe s is written under lock[s % STRIPE_LOCKS] */
	pthread_mutex_t lock[STRIPE_LOCKS];
	struct raid_stats st;           /* updated with __atomic adds */
	/* write-intent bitmap (docs/raid-resilience.md); all protected by bm_lock */
	int bm_on;
	uint32_t region_stripes;
	uint64_t regions;
	uint8_t *bm;                    /* bitmap_bytes, as on the members */
	uint32_t *inflight;             /* per region */
	uint64_t *last_ns;              /* per region: end of the last write */
	pthread_mutex_t bm_lock;
	pthread_cond_t bm_cond;
	pthread_t cleaner;
	int cleaner_running, stop;
	int resync_pending;             /* bits loaded after a crash: not the cleaner's to clear */
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

/* Write superblock `sb` (sequence already advanced) to every member not in `skip`, then flush.
 * Returns the first error; `bad` (may be NULL) gets the members whose write failed. */
static int sb_write_all(struct raid_member **m, uint32_t nr, const struct raid_sb *sb,
			uint64_t skip, uint64_t *bad)
{
	uint8_t *blk;
	int err = 0;

	if (bad)
		*bad = 0;

	if (posix_memalign((void **)&blk, 4096, RAID_SB_BYTES))
		return -ENOMEM;
	for (uint32_t i = 0; i < nr; i++) {
		struct raid_sb one = *sb;
		int e;

		if (skip & (1ull << i))
			continue;
		one.member_index = i;
		raid_sb_encode(&one, blk);
		e = raid_member_pwrite(m[i], blk, RAID_SB_BYTES,
				       (sb->sequence % RAID_SB_SLOTS) * RAID_SB_BYTES);
		if (!e)
			e = m[i]->ops->flush(m[i]);
		if (e) {
			tlog(TLOG_ERR, "member %s: superblock write failed: %s", m[i]->name, strerror(-e));
			if (!err)
				err = e;
			if (bad)
				*bad |= 1ull << i;
		}
	}
	free(blk);
	return err;
}

/* Region size and bitmap size for a new array (docs/raid-resilience.md). */
static void bitmap_geometry(struct raid_sb *sb)
{
	uint64_t stripes = raid_nr_stripes(&sb->geom), stripe_bytes = raid_stripe_bytes(&sb->geom);
	uint64_t max_bytes = sb->geom.data_offset_bytes - BITMAP_OFFSET_BYTES, regions;
	uint32_t r = 1;

	while ((uint64_t)r * stripe_bytes < (1u << 20))
		r *= 2;
	for (;;) {
		regions = (stripes + r - 1) / r;
		if ((regions + 7) / 8 <= max_bytes)
			break;
		r *= 2;
	}
	sb->bitmap_region_stripes = r;
	sb->bitmap_offset_bytes = BITMAP_OFFSET_BYTES;
	sb->bitmap_bytes = ((regions + 7) / 8 + BITMAP_BLOCK_BYTES - 1) / BITMAP_BLOCK_BYTES *
			   BITMAP_BLOCK_BYTES;
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
	if (!p->no_bitmap)
		bitmap_geometry(&sb);
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
		if ((err = sb_write_all(m, nr, &sb, 0, NULL))) {
			snprintf(why, why_len, "superblock write failed: %s", strerror(-err));
			return err;
		}
	}
	{
		char u[37];

		raid_uuid_str(sb.array_uuid, u);
		tlog(TLOG_INFO, "created array %s: volid %" PRIu64 ", %uD+1P, chunk %u KiB, block %u, "
		     "%" PRIu64 " bytes, write-intent bitmap %s", u, sb.volid, sb.geom.nr_data,
		     sb.geom.chunk_bytes / 1024, sb.geom.block_bytes, sb.volume_bytes,
		     sb.bitmap_offset_bytes ? "on" : "off");
	}
	return 0;
}

static int geom_equal(const struct raid_geom *a, const struct raid_geom *b)
{
	return a->nr_data == b->nr_data && a->chunk_bytes == b->chunk_bytes &&
	       a->block_bytes == b->block_bytes && a->data_offset_bytes == b->data_offset_bytes &&
	       a->member_data_bytes == b->member_data_bytes;
}

static uint64_t failed_mask(struct raid_vol *v)
{
	return __atomic_load_n(&v->failed, __ATOMIC_ACQUIRE);
}

static int popcount64(uint64_t x)
{
	return __builtin_popcountll(x);
}

/* Member mi holds valid data for stripe s. */
static int member_ok(struct raid_vol *v, uint32_t mi, uint64_t s)
{
	if (!(failed_mask(v) & (1ull << mi)))
		return 1;
	return (int)mi == __atomic_load_n(&v->rebuild_idx, __ATOMIC_ACQUIRE) &&
	       s < __atomic_load_n(&v->rebuild_pos, __ATOMIC_ACQUIRE);
}

/* Members that take superblock and bitmap writes: active ones and a rebuild target. */
static uint64_t sb_skip_mask(struct raid_vol *v)
{
	uint64_t skip = failed_mask(v);
	int ri = __atomic_load_n(&v->rebuild_idx, __ATOMIC_ACQUIRE);

	if (ri >= 0)
		skip &= ~(1ull << ri);
	return skip;
}

/* Record a superblock change (caller holds sb_lock). A member whose superblock cannot be
 * written is marked failed and the others record that too. -EIO when none took it. */
static int sb_commit(struct raid_vol *v)
{
	uint64_t bad;

	for (uint32_t round = 0; round <= v->nr; round++) {
		v->sb.sequence++;
		v->sb.failed_mask = failed_mask(v);
		sb_write_all(v->m, v->nr, &v->sb, sb_skip_mask(v), &bad);
		if (!bad)
			return 0;
		for (uint32_t i = 0; i < v->nr; i++) {
			if (!(bad & (1ull << i)))
				continue;
			__atomic_fetch_or(&v->failed, 1ull << i, __ATOMIC_ACQ_REL);
			if ((int)i == v->rebuild_idx) {
				__atomic_store_n(&v->rebuild_idx, -1, __ATOMIC_RELEASE);
				v->sb.rebuild_member = 0;
				v->sb.rebuild_checkpoint = 0;
			}
			tlog(TLOG_ERR, "member %s (index %u of volid %" PRIu64 ") FAILED: its superblock "
			     "cannot be written", v->m[i]->name, i, v->sb.volid);
		}
		if (popcount64(sb_skip_mask(v)) == (int)v->nr)
			return -EIO;
	}
	return -EIO;
}

/* The first I/O error of a member marks it failed, in memory and in the others' superblocks. */
static void fail_member(struct raid_vol *v, uint32_t mi, const char *what, int err)
{
	uint64_t old;
	int nfailed;

	pthread_mutex_lock(&v->sb_lock);
	old = __atomic_fetch_or(&v->failed, 1ull << mi, __ATOMIC_ACQ_REL);
	if (!(old & (1ull << mi)) || (int)mi == v->rebuild_idx) {
		if ((int)mi == v->rebuild_idx) {
			/* the replacement itself failed: the rebuild stops, the member stays failed */
			__atomic_store_n(&v->rebuild_pos, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&v->rebuild_idx, -1, __ATOMIC_RELEASE);
			v->sb.rebuild_member = 0;
			v->sb.rebuild_checkpoint = 0;
		}
		nfailed = popcount64(failed_mask(v));
		tlog(TLOG_ERR, "member %s (index %u of volid %" PRIu64 ") FAILED on %s: %s; %s", v->m[mi]->name,
		     mi, v->sb.volid, what, strerror(-err), nfailed == 1 ? "the array is degraded" :
		     "two or more members failed: data on them is lost, I/O to them fails");
		if (!v->readonly)
			sb_commit(v);
	}
	pthread_mutex_unlock(&v->sb_lock);
}

static int mread(struct raid_vol *v, uint32_t mi, void *buf, uint64_t n, uint64_t moff)
{
	int err = raid_member_pread(v->m[mi], buf, n, moff);

	STAT_ADD(v, member_reads, 1);
	if (err) {
		tlog(TLOG_ERR, "member %s: read of %" PRIu64 " bytes at %" PRIu64 " failed: %s",
		     v->m[mi]->name, n, moff, strerror(-err));
		fail_member(v, mi, "read", err);
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
		fail_member(v, mi, "write", err);
		return -EIO;
	}
	return 0;
}

/* ---- write-intent bitmap ---- */

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int bm_test(const struct raid_vol *v, uint64_t r)
{
	return v->bm[r / 8] >> (r % 8) & 1;
}

/* Write bitmap block `blk` to the members that take metadata; `sync`: to the device. bm_lock held. */
static void bm_write_block(struct raid_vol *v, uint64_t blk, int sync)
{
	uint64_t skip = sb_skip_mask(v);
	uint64_t off = v->sb.bitmap_offset_bytes + blk * BITMAP_BLOCK_BYTES;

	for (uint32_t i = 0; i < v->nr; i++) {
		struct raid_member *m = v->m[i];
		int err;

		if (skip & (1ull << i))
			continue;
		err = raid_member_pwrite(m, v->bm + blk * BITMAP_BLOCK_BYTES, BITMAP_BLOCK_BYTES, off);
		if (!err && sync && m->ops->sync_range)
			err = m->ops->sync_range(m, off, BITMAP_BLOCK_BYTES);
		if (err) {
			pthread_mutex_unlock(&v->bm_lock);
			fail_member(v, i, "bitmap write", err);
			pthread_mutex_lock(&v->bm_lock);
		}
	}
}

/* Before writing stripe s: its region is marked (durably) and counted in flight. */
static void bm_begin(struct raid_vol *v, uint64_t s)
{
	uint64_t r = s / v->region_stripes;

	pthread_mutex_lock(&v->bm_lock);
	v->inflight[r]++;
	if (!bm_test(v, r)) {
		v->bm[r / 8] |= (uint8_t)(1u << (r % 8));
		bm_write_block(v, r / 8 / BITMAP_BLOCK_BYTES, 1);
	}
	pthread_mutex_unlock(&v->bm_lock);
}

static void bm_end(struct raid_vol *v, uint64_t s)
{
	uint64_t r = s / v->region_stripes;

	pthread_mutex_lock(&v->bm_lock);
	v->inflight[r]--;
	v->last_ns[r] = mono_ns();
	pthread_mutex_unlock(&v->bm_lock);
}

/* Clear the bits of regions idle for CLEAN_IDLE_NS: members flushed first, then the bits. */
static void bm_clean(struct raid_vol *v, int all)
{
	uint64_t now = mono_ns(), n = 0;
	uint64_t *snap;
	uint8_t *dirty_blk;
	uint64_t nblk = v->sb.bitmap_bytes / BITMAP_BLOCK_BYTES;

	snap = calloc(v->regions, sizeof(*snap));
	dirty_blk = calloc(nblk ? nblk : 1, 1);
	if (!snap || !dirty_blk)
		goto out;
	pthread_mutex_lock(&v->bm_lock);
	if (v->resync_pending) {
		pthread_mutex_unlock(&v->bm_lock);
		goto out;
	}
	for (uint64_t r = 0; r < v->regions; r++) {
		if (bm_test(v, r) && !v->inflight[r] && (all || now - v->last_ns[r] >= CLEAN_IDLE_NS)) {
			snap[r] = v->last_ns[r] + 1;   /* 0 = not a candidate */
			n++;
		}
	}
	pthread_mutex_unlock(&v->bm_lock);
	if (!n || raid_flush(v))
		goto out;
	pthread_mutex_lock(&v->bm_lock);
	for (uint64_t r = 0; r < v->regions; r++) {
		if (snap[r] && !v->inflight[r] && v->last_ns[r] + 1 == snap[r]) {
			v->bm[r / 8] &= (uint8_t)~(1u << (r % 8));
			dirty_blk[r / 8 / BITMAP_BLOCK_BYTES] = 1;
		}
	}
	for (uint64_t b = 0; b < nblk; b++)
		if (dirty_blk[b])
			bm_write_block(v, b, 0);
	pthread_mutex_unlock(&v->bm_lock);
out:
	free(snap);
	free(dirty_blk);
}

static void *cleaner_thread(void *p)
{
	struct raid_vol *v = p;
	struct timespec ts;

	pthread_mutex_lock(&v->bm_lock);
	while (!v->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&v->bm_cond, &v->bm_lock, &ts);
		if (v->stop)
			break;
		pthread_mutex_unlock(&v->bm_lock);
		bm_clean(v, 0);
		pthread_mutex_lock(&v->bm_lock);
	}
	pthread_mutex_unlock(&v->bm_lock);
	return NULL;
}

/* Read the bitmaps of the members and OR them into v->bm. */
static void bm_load(struct raid_vol *v)
{
	uint8_t *tmp = malloc(v->sb.bitmap_bytes);
	uint64_t skip = sb_skip_mask(v);

	if (!tmp)
		return;
	for (uint32_t i = 0; i < v->nr; i++) {
		if (skip & (1ull << i))
			continue;
		if (raid_member_pread(v->m[i], tmp, v->sb.bitmap_bytes, v->sb.bitmap_offset_bytes))
			continue;
		for (uint64_t b = 0; b < v->sb.bitmap_bytes; b++)
			v->bm[b] |= tmp[b];
	}
	free(tmp);
}

/* ---- assembly ---- */

static int bm_setup(struct raid_vol *v, int use)
{
	if (!v->sb.bitmap_offset_bytes)
		return 0;
	v->region_stripes = v->sb.bitmap_region_stripes;
	v->regions = (raid_nr_stripes(&v->g) + v->region_stripes - 1) / v->region_stripes;
	v->bm = calloc(1, v->sb.bitmap_bytes);
	v->inflight = calloc(v->regions, sizeof(*v->inflight));
	v->last_ns = calloc(v->regions, sizeof(*v->last_ns));
	if (!v->bm || !v->inflight || !v->last_ns)
		return -ENOMEM;
	pthread_mutex_init(&v->bm_lock, NULL);
	pthread_cond_init(&v->bm_cond, NULL);
	bm_load(v);
	v->resync_pending = v->was_dirty;
	v->bm_on = use && !v->readonly;
	return 0;
}

static void vol_free(struct raid_vol *v)
{
	for (int i = 0; i < STRIPE_LOCKS; i++)
		pthread_mutex_destroy(&v->lock[i]);
	pthread_mutex_destroy(&v->sb_lock);
	if (v->bm) {
		pthread_mutex_destroy(&v->bm_lock);
		pthread_cond_destroy(&v->bm_cond);
	}
	free(v->bm);
	free(v->inflight);
	free(v->last_ns);
	free(v);
}

int raid_assemble(struct raid_member **m, uint32_t nr, const struct raid_assemble_params *p,
		  struct raid_vol **out, char *why, size_t why_len)
{
	struct raid_sb sb[RAID_MAX_MEMBERS];
	char mwhy[RAID_MAX_MEMBERS][768];
	int merr[RAID_MAX_MEMBERS];
	struct raid_vol *v;
	int best = -1, err;
	uint64_t failed, missing = 0;

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
			if (!m[i]->missing && !m[j]->missing && raid_member_same(m[i], m[j])) {
				snprintf(why, why_len, "member %s is listed twice (positions %u and %u)",
					 m[i]->name, j, i);
				return -EINVAL;
			}
		}
		if (m[i]->missing) {
			merr[i] = -ENXIO;
			snprintf(mwhy[i], sizeof(mwhy[i]), "%s", m[i]->missing_why);
		} else {
			merr[i] = sb_read(m[i], &sb[i], mwhy[i], sizeof(mwhy[i]));
		}
		if (!merr[i] && (best < 0 || sb[i].sequence > sb[best].sequence))
			best = (int)i;
	}
	if (best < 0) {
		snprintf(why, why_len, "%s", mwhy[0]);
		return merr[0];
	}
	/* Every answering member must belong to the array of the newest superblock. */
	for (uint32_t i = 0; i < nr; i++) {
		char u0[37], ui[37];

		if (merr[i])
			continue;
		if (memcmp(sb[i].array_uuid, sb[best].array_uuid, 16) != 0) {
			raid_uuid_str(sb[best].array_uuid, u0);
			raid_uuid_str(sb[i].array_uuid, ui);
			snprintf(why, why_len, "member %s belongs to array %s (volid %" PRIu64 "), "
				 "not to array %s of %s", m[i]->name, ui, sb[i].volid, u0, m[best]->name);
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
		if (!geom_equal(&sb[i].geom, &sb[best].geom) || sb[i].volid != sb[best].volid) {
			snprintf(why, why_len, "member %s: superblock geometry differs from %s's",
				 m[i]->name, m[best]->name);
			return -EPROTO;
		}
		if (m[i]->size_bytes < sb[i].geom.data_offset_bytes + sb[i].geom.member_data_bytes) {
			snprintf(why, why_len, "member %s is %" PRIu64 " bytes, the array needs %" PRIu64
				 " (truncated?)", m[i]->name, m[i]->size_bytes,
				 sb[i].geom.data_offset_bytes + sb[i].geom.member_data_bytes);
			return -EINVAL;
		}
	}
	/* Members that do not answer: acceptable only where already recorded as failed. */
	failed = sb[best].failed_mask;
	for (uint32_t i = 0; i < nr; i++) {
		if (!merr[i] || (failed & (1ull << i)))
			continue;
		missing |= 1ull << i;
	}
	if (missing && !(p->degraded && popcount64(missing) == 1 &&
			 popcount64(failed | missing) == 1)) {
		int i = __builtin_ctzll(missing);

		snprintf(why, why_len, "%s%s", mwhy[i], p->degraded ? " (degraded=1 accepts one missing "
			 "member, and only when no other member is failed)" : " (the array does not record "
			 "it as failed; degraded=1 assembles without it)");
		return merr[i];
	}
	if (p->chunk_bytes && p->chunk_bytes != sb[best].geom.chunk_bytes) {
		snprintf(why, why_len, "chunk_kib=%u given, but the array's chunk is %u KiB",
			 p->chunk_bytes / 1024, sb[best].geom.chunk_bytes / 1024);
		return -EINVAL;
	}
	if (p->block_bytes && p->block_bytes != sb[best].geom.block_bytes) {
		snprintf(why, why_len, "block size %u given, but the array was created with %u",
			 p->block_bytes, sb[best].geom.block_bytes);
		return -EINVAL;
	}
	if (p->volid && p->volid != sb[best].volid) {
		snprintf(why, why_len, "volid=%" PRIu64 " given, but these members are volid %" PRIu64,
			 p->volid, sb[best].volid);
		return -EINVAL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	v->nr = nr;
	v->g = sb[best].geom;
	v->sb = sb[best];
	v->readonly = p->readonly;
	v->was_dirty = !!(sb[best].flags & RAID_SB_FLAG_DIRTY);
	v->rebuild_idx = -1;
	pthread_mutex_init(&v->sb_lock, NULL);
	for (int i = 0; i < STRIPE_LOCKS; i++)
		pthread_mutex_init(&v->lock[i], NULL);
	failed |= missing;
	for (uint32_t i = 0; i < nr; i++) {
		v->m[i] = m[i];
		if (missing & (1ull << i))
			tlog(TLOG_ERR, "member %s (index %u) is missing: %s; assembling DEGRADED "
			     "(degraded=1)", m[i]->name, i, mwhy[i]);
		else if (merr[i])
			tlog(TLOG_WARN, "member %s (index %u) stays failed: %s", m[i]->name, i, mwhy[i]);
		else if ((failed & (1ull << i)) && sb[best].rebuild_member != i + 1)
			tlog(TLOG_WARN, "member %s (index %u) is recorded as failed (its superblock is at "
			     "sequence %" PRIu64 ", the array at %" PRIu64 "): not trusted; rebuild it to "
			     "use it again", m[i]->name, i, sb[i].sequence, sb[best].sequence);
		else if (sb[i].sequence != sb[best].sequence)
			tlog(TLOG_WARN, "member %s: superblock sequence %" PRIu64 ", others %" PRIu64
			     " (an update was interrupted); rewriting", m[i]->name, sb[i].sequence,
			     sb[best].sequence);
	}
	v->failed = failed;
	if (sb[best].rebuild_member > nr) {
		tlog(TLOG_WARN, "the superblock names member %u as being rebuilt, but the array has %u "
		     "members: ignored", sb[best].rebuild_member - 1, nr);
		v->sb.rebuild_member = 0;
		v->sb.rebuild_checkpoint = 0;
	} else if (sb[best].rebuild_member) {
		uint32_t ri = sb[best].rebuild_member - 1;

		/* only onto the replacement: its superblock was written with every update since the
		 * rebuild began; the old failed member's is far behind */
		if (merr[ri] || !(failed & (1ull << ri)) || sb[ri].rebuild_member != ri + 1 ||
		    sb[ri].sequence + 1 < sb[best].sequence) {
			tlog(TLOG_WARN, "member %s: its rebuild cannot resume (%s); it stays failed",
			     m[ri]->name, merr[ri] ? mwhy[ri] : !(failed & (1ull << ri)) ?
			     "not marked failed" : "this is not the replacement being rebuilt (its "
			     "superblock is stale): list the replacement at this position");
			v->sb.rebuild_member = 0;
			v->sb.rebuild_checkpoint = 0;
		} else {
			v->rebuild_idx = (int)ri;
			v->rebuild_pos = sb[best].rebuild_checkpoint;
			tlog(TLOG_WARN, "member %s (index %u): rebuild resumes at stripe %" PRIu64 " of %"
			     PRIu64, m[ri]->name, ri, v->rebuild_pos, raid_nr_stripes(&v->g));
		}
	}
	if (popcount64(failed & ~(v->rebuild_idx >= 0 ? 1ull << v->rebuild_idx : 0)) +
	    (v->rebuild_idx >= 0) >= 2)
		tlog(TLOG_ERR, "volid %" PRIu64 ": %d members failed: reads and writes of their data "
		     "fail", v->sb.volid, popcount64(failed));
	if ((err = bm_setup(v, !p->no_bitmap_updates))) {
		snprintf(why, why_len, "out of memory for the write-intent bitmap");
		vol_free(v);
		return err;
	}
	if (!v->readonly) {
		v->sb.flags |= RAID_SB_FLAG_DIRTY;
		if ((err = sb_commit(v))) {
			snprintf(why, why_len, "cannot update the superblocks: %s", strerror(-err));
			vol_free(v);
			return err;
		}
	}
	if (v->was_dirty) {
		char u[37];

		raid_uuid_str(v->sb.array_uuid, u);
		tlog(TLOG_WARN, "array %s (volid %" PRIu64 ") was not shut down cleanly", u,
		     v->sb.volid);
	}
	if (v->bm_on && pthread_create(&v->cleaner, NULL, cleaner_thread, v) == 0)
		v->cleaner_running = 1;
	*out = v;
	return 0;
}

/* ---- reads ---- */

/* Reconstruct bytes [o, o+n) of stripe s's chunk on member `lost` from all the others.
 * Stripe lock held. */
static int reconstruct(struct raid_vol *v, uint64_t s, uint32_t lost, uint8_t *dst, uint32_t o,
		       uint32_t n)
{
	const void *col[RAID_MAX_MEMBERS];
	uint8_t *scratch = scratch_get((size_t)v->nr * n);
	int k = 0, err;

	if (!scratch)
		return -ENOMEM;
	for (uint32_t i = 0; i < v->nr; i++) {
		if (i == lost)
			continue;
		if (!member_ok(v, i, s))
			return -EIO;
		if ((err = mread(v, i, scratch + (size_t)k * n, n, raid_member_offset(&v->g, s, o))))
			return err;
		col[k] = scratch + (size_t)k * n;
		k++;
	}
	txor(dst, col, k, n);
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
		int err = -EIO;

		if (n > len)
			n = len;
		if (member_ok(v, mi, s))
			err = mread(v, mi, dst, n, raid_member_offset(g, s, o));
		if (err) {
			/* degraded: from the others, under the stripe lock */
			pthread_mutex_t *lk = &v->lock[s % STRIPE_LOCKS];

			pthread_mutex_lock(lk);
			err = reconstruct(v, s, mi, dst, o, (uint32_t)n);
			pthread_mutex_unlock(lk);
			if (err) {
				tlog(TLOG_ERR, "volid %" PRIu64 ": cannot read %" PRIu64 " bytes at volume "
				     "offset %" PRIu64 ": member %s failed and stripe %" PRIu64
				     " cannot be reconstructed", v->sb.volid, n, off, v->m[mi]->name, s);
				return -EIO;
			}
			STAT_ADD(v, degraded_reads, 1);
		}
		dst += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---- writes ---- */

/* Degraded write of stripe-relative [a, b) of stripe s (docs/raid-resilience.md). Lock held. */
static int write_stripe_degraded(struct raid_vol *v, uint64_t s, const uint8_t *src, uint64_t a,
				 uint64_t b)
{
	const struct raid_geom *g = &v->g;
	const uint32_t C = g->chunk_bytes, n = g->nr_data;
	const uint32_t pm = raid_parity_member(g, s);
	uint32_t d0 = (uint32_t)(a / C), d1 = (uint32_t)((b - 1) / C), lo, hi, span;
	const void *col[RAID_MAX_DATA + 1];
	int dead_data = -1, ndead = 0, parity_ok = member_ok(v, pm, s), err;
	uint8_t *scratch, *pbuf;

	/* whole chunks' row range: simpler, and degraded mode is the slow path anyway */
	lo = d0 == d1 ? (uint32_t)(a % C) : 0;
	hi = d0 == d1 ? (uint32_t)((b - 1) % C) + 1 : C;
	if (d1 > d0) {
		lo = 0;
		hi = C;
	}
	span = hi - lo;
	for (uint32_t d = 0; d < n; d++) {
		if (!member_ok(v, raid_data_member(g, s, d), s)) {
			dead_data = (int)d;
			ndead++;
		}
	}
	if (ndead + !parity_ok >= 2)
		return -EIO;
	scratch = scratch_get((size_t)(n + 1) * span);
	if (!scratch)
		return -ENOMEM;
	pbuf = scratch + (size_t)n * span;
	for (uint32_t d = 0; d < n; d++) {
		col[d] = scratch + (size_t)d * span;
		if ((int)d != dead_data &&
		    (err = mread(v, raid_data_member(g, s, d), scratch + (size_t)d * span, span,
				 raid_member_offset(g, s, lo))))
			return err;
	}
	if (dead_data >= 0) {
		/* its old content = P ^ (the other data) */
		const void *x[RAID_MAX_DATA + 1];
		int k = 0;

		if ((err = mread(v, pm, pbuf, span, raid_member_offset(g, s, lo))))
			return err;
		x[k++] = pbuf;
		for (uint32_t d = 0; d < n; d++)
			if ((int)d != dead_data)
				x[k++] = col[d];
		txor(scratch + (size_t)dead_data * span, x, k, span);
	}
	/* overlay the new data */
	for (uint32_t d = d0; d <= d1; d++) {
		uint32_t is = d == d0 ? (uint32_t)(a % C) : 0;
		uint32_t ie = d == d1 ? (uint32_t)((b - 1) % C) + 1 : C;

		memcpy(scratch + (size_t)d * span + (is - lo), src + (uint64_t)d * C + is - a, ie - is);
	}
	txor(pbuf, col, (int)n, span);
	for (uint32_t d = d0; d <= d1; d++) {
		uint32_t mi = raid_data_member(g, s, d);
		uint32_t is = d == d0 ? (uint32_t)(a % C) : 0;
		uint32_t ie = d == d1 ? (uint32_t)((b - 1) % C) + 1 : C;

		if ((int)d == dead_data)
			continue;
		if ((err = mwrite(v, mi, src + (uint64_t)d * C + is - a, ie - is,
				  raid_member_offset(g, s, is))))
			return err;
	}
	if (parity_ok && (err = mwrite(v, pm, pbuf, span, raid_member_offset(g, s, lo))))
		return err;
	STAT_ADD(v, degraded_writes, 1);
	return 0;
}

/* Write stripe-relative bytes [a, b) of stripe s from src; the stripe lock is held. Returns
 * -EAGAIN when a member failed before anything was written (the caller retries degraded). */
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
	int err, werr = 0;

	if (failed_mask(v)) {
		for (uint32_t i = 0; i < v->nr; i++)
			if (!member_ok(v, i, s))
				return write_stripe_degraded(v, s, src, a, b);
	}
	if (a == 0 && b == raid_stripe_bytes(g)) {
		/* Full stripe: parity from the new data alone. */
		pbuf = scratch_get(C);
		if (!pbuf)
			return -ENOMEM;
		for (uint32_t d = 0; d < n; d++)
			col[d] = src + (uint64_t)d * C;
		txor(pbuf, col, (int)n, C);
		for (uint32_t d = 0; d < n; d++)
			if (mwrite(v, raid_data_member(g, s, d), col[d], C, raid_member_offset(g, s, 0)))
				werr = -EIO;
		STAT_ADD(v, full_stripe_writes, 1);
		if (mwrite(v, pm, pbuf, C, raid_member_offset(g, s, 0)))
			werr = -EIO;
		/* one failed member: the stripe is consistent for a degraded reader */
		return werr && popcount64(failed_mask(v)) >= 2 ? -EIO : 0;
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
	/* A read error marks the member failed and returns -EAGAIN: nothing was written yet. */
	if (rcw_reads < rmw_reads) {
		/* Reconstruct-write: parity over [lo, hi) from new data + untouched old data. */
		for (uint32_t d = 0; d < n; d++) {
			int touched = d >= d0 && d <= d1;

			if (touched && is[d] == lo && ie[d] == hi) {
				col[d] = NEW_DATA(d);
				continue;
			}
			uint8_t *c = scratch + (size_t)d * span;

			if (mread(v, raid_data_member(g, s, d), c, span, raid_member_offset(g, s, lo)))
				return -EAGAIN;
			if (touched)
				memcpy(c + (is[d] - lo), NEW_DATA(d), ie[d] - is[d]);
			col[d] = c;
		}
		txor(pbuf, col, (int)n, span);
		STAT_ADD(v, rcw_writes, 1);
	} else {
		/* Read-modify-write: P' = P ^ old ^ new over each touched interval. */
		if (mread(v, pm, pbuf, span, raid_member_offset(g, s, lo)))
			return -EAGAIN;
		for (uint32_t d = d0; d <= d1; d++) {
			uint8_t *old = scratch + (size_t)(d - d0) * span;
			uint8_t *p = pbuf + (is[d] - lo);
			const void *x[3] = { p, old, NEW_DATA(d) };

			if (mread(v, raid_data_member(g, s, d), old, ie[d] - is[d],
				  raid_member_offset(g, s, is[d])))
				return -EAGAIN;
			txor(p, x, 3, ie[d] - is[d]);
		}
		STAT_ADD(v, rmw_writes, 1);
	}
	/* Data, then parity. A member failing here leaves the stripe consistent for degraded
	 * readers: failed data is in the parity, a failed parity member is simply not needed. */
	for (uint32_t d = d0; d <= d1; d++)
		if (mwrite(v, raid_data_member(g, s, d), NEW_DATA(d), ie[d] - is[d],
			   raid_member_offset(g, s, is[d])))
			werr = -EIO;
#undef NEW_DATA
	if (mwrite(v, pm, pbuf, span, raid_member_offset(g, s, lo)))
		werr = -EIO;
	(void)err;
	return werr && popcount64(failed_mask(v)) >= 2 ? -EIO : 0;
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
		if (v->bm_on)
			bm_begin(v, s);
		pthread_mutex_lock(lk);
		err = write_stripe(v, s, src, a, a + n);
		if (err == -EAGAIN)
			err = write_stripe(v, s, src, a, a + n);   /* now degraded */
		pthread_mutex_unlock(lk);
		if (v->bm_on)
			bm_end(v, s);
		if (err) {
			if (err == -EAGAIN)
				err = -EIO;
			tlog(TLOG_ERR, "volid %" PRIu64 ": write of stripe %" PRIu64 " failed: %s",
			     v->sb.volid, s, strerror(-err));
			return err;
		}
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
		int err;

		if (failed_mask(v) & (1ull << i) && (int)i != v->rebuild_idx)
			continue;
		err = v->m[i]->ops->flush(v->m[i]);
		if (err) {
			tlog(TLOG_ERR, "member %s: flush failed: %s", v->m[i]->name, strerror(-err));
			fail_member(v, i, "flush", err);
			if (popcount64(failed_mask(v)) >= 2)
				ret = -EIO;
		}
	}
	return ret;
}

void raid_close(struct raid_vol *v)
{
	if (!v)
		return;
	if (v->cleaner_running) {
		pthread_mutex_lock(&v->bm_lock);
		v->stop = 1;
		pthread_cond_broadcast(&v->bm_cond);
		pthread_mutex_unlock(&v->bm_lock);
		pthread_join(v->cleaner, NULL);
	}
	if (!v->readonly && raid_flush(v) == 0) {
		if (v->bm_on)
			bm_clean(v, 1);
		pthread_mutex_lock(&v->sb_lock);
		v->sb.flags &= ~RAID_SB_FLAG_DIRTY;
		sb_commit(v);
		pthread_mutex_unlock(&v->sb_lock);
	}
	for (uint32_t i = 0; i < v->nr; i++)
		raid_member_close(v->m[i]);
	vol_free(v);
}

const char *raid_state_name(const struct raid_info *i)
{
	int nfailed = popcount64(i->failed_mask);

	if (nfailed == 0)
		return "optimal";
	if (nfailed >= 2)
		return "failed";
	return i->rebuild_member >= 0 ? "rebuilding" : "degraded";
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
	info->rebuild_member = v->rebuild_idx;
	pthread_mutex_unlock(&v->sb_lock);
	info->failed_mask = failed_mask(v);
	info->rebuild_pos = __atomic_load_n(&v->rebuild_pos, __ATOMIC_ACQUIRE);
	info->was_dirty = v->was_dirty;
	if (v->bm) {
		info->bitmap_regions = v->regions;
		info->region_stripes = v->region_stripes;
		pthread_mutex_lock(&v->bm_lock);
		for (uint64_t r = 0; r < v->regions; r++)
			info->dirty_regions += bm_test(v, r);
		pthread_mutex_unlock(&v->bm_lock);
	}
	info->stats.full_stripe_writes = __atomic_load_n(&v->st.full_stripe_writes, __ATOMIC_RELAXED);
	info->stats.rmw_writes = __atomic_load_n(&v->st.rmw_writes, __ATOMIC_RELAXED);
	info->stats.rcw_writes = __atomic_load_n(&v->st.rcw_writes, __ATOMIC_RELAXED);
	info->stats.member_reads = __atomic_load_n(&v->st.member_reads, __ATOMIC_RELAXED);
	info->stats.member_writes = __atomic_load_n(&v->st.member_writes, __ATOMIC_RELAXED);
	info->stats.degraded_reads = __atomic_load_n(&v->st.degraded_reads, __ATOMIC_RELAXED);
	info->stats.degraded_writes = __atomic_load_n(&v->st.degraded_writes, __ATOMIC_RELAXED);
}

const char *raid_member_name(struct raid_vol *v, uint32_t idx)
{
	return idx < v->nr ? v->m[idx]->name : NULL;
}

/* Recompute stripe s's parity from its data if it differs (stripe lock held). 1 fixed, 0 was
 * right, -EAGAIN a data member is not usable, -EIO. */
static int resync_stripe(struct raid_vol *v, uint64_t s)
{
	const struct raid_geom *g = &v->g;
	const uint32_t C = g->chunk_bytes, n = g->nr_data;
	const uint32_t pm = raid_parity_member(g, s);
	const void *col[RAID_MAX_DATA];
	uint8_t *buf = scratch_get((size_t)(n + 2) * C), *par, *old;
	int err;

	if (!buf)
		return -ENOMEM;
	par = buf + (size_t)n * C;
	old = par + C;
	for (uint32_t d = 0; d < n; d++)
		if (!member_ok(v, raid_data_member(g, s, d), s))
			return -EAGAIN;
	if (!member_ok(v, pm, s))
		return 0;   /* nothing to make consistent */
	for (uint32_t d = 0; d < n; d++) {
		col[d] = buf + (size_t)d * C;
		if ((err = mread(v, raid_data_member(g, s, d), buf + (size_t)d * C, C,
				 raid_member_offset(g, s, 0))))
			return err;
	}
	if ((err = mread(v, pm, old, C, raid_member_offset(g, s, 0))))
		return err;
	txor(par, col, (int)n, C);
	if (!memcmp(par, old, C))
		return 0;
	if ((err = mwrite(v, pm, par, C, raid_member_offset(g, s, 0))))
		return err;
	return 1;
}

int raid_repair_stripe(struct raid_vol *v, uint64_t s)
{
	pthread_mutex_t *lk = &v->lock[s % STRIPE_LOCKS];
	int r;

	if (s >= raid_nr_stripes(&v->g))
		return -ERANGE;
	if (v->readonly)
		return -EROFS;
	pthread_mutex_lock(lk);
	r = resync_stripe(v, s);
	pthread_mutex_unlock(lk);
	return r < 0 ? r : 0;
}

static int resync_range(struct raid_vol *v, uint64_t from, uint64_t to, uint64_t *fixed,
			uint64_t *unverifiable)
{
	for (uint64_t s = from; s < to; s++) {
		pthread_mutex_t *lk = &v->lock[s % STRIPE_LOCKS];
		int r;

		pthread_mutex_lock(lk);
		r = resync_stripe(v, s);
		pthread_mutex_unlock(lk);
		if (r == -EAGAIN)
			(*unverifiable)++;
		else if (r < 0)
			return r;
		else
			*fixed += (uint64_t)r;
	}
	return 0;
}

int raid_resync_all(struct raid_vol *v, uint64_t *fixed)
{
	uint64_t unv = 0;
	int err;

	*fixed = 0;
	if (v->readonly)
		return -EROFS;
	err = resync_range(v, 0, raid_nr_stripes(&v->g), fixed, &unv);
	return err ? err : raid_flush(v);
}

int raid_resync_dirty(struct raid_vol *v, uint64_t *stripes, uint64_t *fixed,
		      uint64_t *unverifiable)
{
	uint64_t total = raid_nr_stripes(&v->g);
	int err = 0;

	*stripes = *fixed = *unverifiable = 0;
	if (v->readonly)
		return -EROFS;
	if (!v->bm) {
		*stripes = total;
		err = resync_range(v, 0, total, fixed, unverifiable);
	} else {
		for (uint64_t r = 0; r < v->regions && !err; r++) {
			uint64_t from = r * v->region_stripes, to = from + v->region_stripes;
			int set;

			pthread_mutex_lock(&v->bm_lock);
			set = bm_test(v, r);
			pthread_mutex_unlock(&v->bm_lock);
			if (!set)
				continue;
			if (to > total)
				to = total;
			*stripes += to - from;
			err = resync_range(v, from, to, fixed, unverifiable);
		}
	}
	if (!err)
		err = raid_flush(v);
	if (!err && v->bm) {
		/* the regions are consistent (and durable): clear the bitmaps */
		pthread_mutex_lock(&v->bm_lock);
		v->resync_pending = 0;
		memset(v->bm, 0, v->sb.bitmap_bytes);
		for (uint64_t b = 0; b < v->sb.bitmap_bytes / BITMAP_BLOCK_BYTES; b++)
			bm_write_block(v, b, 0);
		pthread_mutex_unlock(&v->bm_lock);
	}
	return err;
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
	for (uint32_t i = 0; i < N; i++)
		if (!member_ok(v, i, s))
			return -EAGAIN;
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

/* ---- rebuild ---- */

int raid_rebuild_begin(struct raid_vol *v, uint32_t idx, struct raid_member *member, char *why,
		       size_t why_len)
{
	struct raid_sb old;
	char w[256];
	struct raid_member *prev;
	int err;

	if (v->readonly)
		return -EROFS;
	if (idx >= v->nr) {
		snprintf(why, why_len, "member %u: the array has members 0..%u", idx, v->nr - 1);
		return -EINVAL;
	}
	if (!member) {
		/* in place: the failed member's own file (it is stale: every stripe is rewritten) */
		if (v->m[idx]->missing) {
			snprintf(why, why_len, "member %u (%s) is missing: rebuild onto a new path", idx,
				 v->m[idx]->name);
			return -ENODEV;
		}
		member = v->m[idx];
	}
	pthread_mutex_lock(&v->sb_lock);
	if (v->rebuild_idx >= 0) {
		snprintf(why, why_len, "member %d is already being rebuilt", v->rebuild_idx);
		err = -EBUSY;
		goto out;
	}
	if (!(failed_mask(v) & (1ull << idx))) {
		snprintf(why, why_len, "member %u (%s) is active: only a failed member is rebuilt", idx,
			 v->m[idx]->name);
		err = -EINVAL;
		goto out;
	}
	if (popcount64(failed_mask(v)) > 1) {
		snprintf(why, why_len, "%d members failed: nothing to rebuild from",
			 popcount64(failed_mask(v)));
		err = -EIO;
		goto out;
	}
	if (member->size_bytes < v->g.data_offset_bytes + v->g.member_data_bytes) {
		snprintf(why, why_len, "%s is %" PRIu64 " bytes; a member of this array needs %" PRIu64,
			 member->name, member->size_bytes, v->g.data_offset_bytes + v->g.member_data_bytes);
		err = -ENOSPC;
		goto out;
	}
	if (member != v->m[idx] && sb_read(member, &old, w, sizeof(w)) == 0 &&
	    memcmp(old.array_uuid, v->sb.array_uuid, 16) != 0) {
		char u[37];

		raid_uuid_str(old.array_uuid, u);
		snprintf(why, why_len, "%s belongs to array %s (volid %" PRIu64 "): wipe it first",
			 member->name, u, old.volid);
		err = -EEXIST;
		goto out;
	}
	for (uint32_t i = 0; i < v->nr; i++) {
		if (i != idx && !v->m[i]->missing && raid_member_same(v->m[i], member)) {
			snprintf(why, why_len, "%s is already member %u of this array", member->name, i);
			err = -EINVAL;
			goto out;
		}
	}
	/* the metadata area (superblocks, bitmap) starts clean */
	if ((err = member->ops->zero(member, 0, v->g.data_offset_bytes))) {
		snprintf(why, why_len, "%s: cannot clear its metadata area: %s", member->name,
			 strerror(-err));
		goto out;
	}
	prev = v->m[idx];
	v->m[idx] = member;
	__atomic_store_n(&v->rebuild_pos, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&v->rebuild_idx, (int)idx, __ATOMIC_RELEASE);
	v->sb.rebuild_member = idx + 1;
	v->sb.rebuild_checkpoint = 0;
	err = sb_commit(v);
	if (err) {
		snprintf(why, why_len, "cannot record the rebuild in the superblocks: %s", strerror(-err));
		v->m[idx] = prev;
		__atomic_store_n(&v->rebuild_idx, -1, __ATOMIC_RELEASE);
		v->sb.rebuild_member = 0;
		goto out;
	}
	tlog(TLOG_WARN, "volid %" PRIu64 ": rebuilding member %u onto %s%s%s", v->sb.volid, idx,
	     member->name, prev == member ? " (in place)" : " (replacing ", prev == member ? "" :
	     prev->name);
	if (prev != member)
		raid_member_close(prev);
	pthread_mutex_unlock(&v->sb_lock);
	/* the replacement gets the current bitmap too (outside sb_lock: a bitmap write error
	 * marks a member failed, which takes sb_lock) */
	if (v->bm) {
		pthread_mutex_lock(&v->bm_lock);
		for (uint64_t b = 0; b < v->sb.bitmap_bytes / BITMAP_BLOCK_BYTES; b++)
			bm_write_block(v, b, 0);
		pthread_mutex_unlock(&v->bm_lock);
	}
	return 0;
out:
	pthread_mutex_unlock(&v->sb_lock);
	return err;
}

int raid_rebuild_step(struct raid_vol *v)
{
	const struct raid_geom *g = &v->g;
	int ri = __atomic_load_n(&v->rebuild_idx, __ATOMIC_ACQUIRE);
	uint64_t s = __atomic_load_n(&v->rebuild_pos, __ATOMIC_ACQUIRE);
	uint64_t total = raid_nr_stripes(g);
	pthread_mutex_t *lk;
	uint8_t *buf;
	int err;

	if (ri < 0)
		return -ENOENT;
	if (s < total) {
		if (posix_memalign((void **)&buf, 64, g->chunk_bytes))
			return -ENOMEM;
		lk = &v->lock[s % STRIPE_LOCKS];
		pthread_mutex_lock(lk);
		err = reconstruct(v, s, (uint32_t)ri, buf, 0, g->chunk_bytes);
		if (!err)
			err = mwrite(v, (uint32_t)ri, buf, g->chunk_bytes, raid_member_offset(g, s, 0));
		if (!err)
			__atomic_store_n(&v->rebuild_pos, s + 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(lk);
		free(buf);
		if (err)
			return err;
		s++;
		if (s % CHECKPOINT_STRIPES && s < total)
			return 1;
		/* checkpoint: the replacement's data up to s is durable, then recorded */
		if ((err = v->m[ri]->ops->flush(v->m[ri]))) {
			fail_member(v, (uint32_t)ri, "flush", err);
			return -EIO;
		}
		pthread_mutex_lock(&v->sb_lock);
		v->sb.rebuild_checkpoint = s;
		sb_commit(v);
		pthread_mutex_unlock(&v->sb_lock);
		if (s < total)
			return 1;
	}
	/* complete: the member is active */
	pthread_mutex_lock(&v->sb_lock);
	__atomic_fetch_and(&v->failed, ~(1ull << ri), __ATOMIC_ACQ_REL);
	__atomic_store_n(&v->rebuild_idx, -1, __ATOMIC_RELEASE);
	__atomic_store_n(&v->rebuild_pos, 0, __ATOMIC_RELEASE);
	v->sb.rebuild_member = 0;
	v->sb.rebuild_checkpoint = 0;
	err = sb_commit(v);
	pthread_mutex_unlock(&v->sb_lock);
	tlog(TLOG_WARN, "volid %" PRIu64 ": member %d (%s) rebuilt: the array is %s", v->sb.volid, ri,
	     v->m[ri]->name, failed_mask(v) ? "still degraded" : "optimal");
	return err ? err : 0;
}

int raid_set_fault(struct raid_vol *v, uint32_t idx, enum raid_fault_op op,
		   enum raid_fault_mode mode, uint64_t n, uint32_t ppm, uint64_t seed)
{
	if (idx >= v->nr)
		return -EINVAL;
	return raid_member_set_fault(v->m[idx], op, mode, n, ppm, seed);
}

#include "raid/mirror.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raid/bitmap.h"
#include "raid/tlog.h"

/* The update bitmap: a persistent bitmap (raid/bitmap.h) of this magic, owned by the mirror id. */
#define BM_MAGIC "TNDMMBMP"
#define BM_BITS_PER_BLK PBM_BITS_PER_BLOCK
#define GLOCKS 1024
#define CHECKPOINT_GRANULES 64

struct mirror {
	struct mirror_cfg cfg;          /* protected by state_lock */
	mirror_persist_fn *persist;
	void *ctx;
	pthread_rwlock_t state_lock;    /* read-held by writes (pre to post), write-held to change state */
	struct vol *primary, *secondary;   /* references held; changed under state_lock (write) */
	struct vol_hook hook;
	int hooked;
	pthread_mutex_t glock[GLOCKS];  /* granule g: glock[g % GLOCKS] */
	/* bitmap */
	struct pbm *bm;                 /* bits set: must and intent; changed under bm_lock */
	uint64_t nbits, nblk;           /* granules, bitmap blocks */
	pthread_mutex_t bm_lock;
	uint8_t *must;                  /* granules the secondary lacks (not mere intent); bm_lock */
	uint64_t must_count;            /* bm_lock */
	uint32_t *inflight;             /* per bitmap block: duplexed writes in flight; bm_lock */
	uint64_t *last_ns;              /* per bitmap block: end of its last duplexed write; bm_lock */
	uint64_t resync_cursor;         /* next bit to look at */
	pthread_t cleaner;
	int cleaner_running, stop;
	pthread_cond_t stop_cond;
	/* counters (atomic) */
	uint64_t copied, duplexed, recorded, sec_errors, sec_reads;
};

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

const char *mirror_state_name(enum mirror_state s)
{
	static const char *const n[] = { "copying", "duplex", "split", "resyncing", "suspended" };

	return (unsigned)s <= MIRROR_SUSPENDED ? n[s] : "unknown";
}

uint32_t mirror_id(struct mirror *m) { return m->cfg.id; }

static int must_get(struct mirror *m, uint64_t g) { return m->must[g / 8] >> (g % 8) & 1; }

static void must_set(struct mirror *m, uint64_t g)
{
	if (!must_get(m, g)) {
		m->must[g / 8] |= (uint8_t)(1u << (g % 8));
		m->must_count++;
	}
}

static void must_clear(struct mirror *m, uint64_t g)
{
	if (must_get(m, g)) {
		m->must[g / 8] &= (uint8_t)~(1u << (g % 8));
		m->must_count--;
	}
}

/* Set the bits of granules [g0, g1] durably before returning. `must`: the secondary lacks these
 * (recording states, failed secondary writes); otherwise they are intent bits of duplexed
 * writes, which the cleaner clears once both volumes are flushed. */
static int bits_set(struct mirror *m, uint64_t g0, uint64_t g1, int must)
{
	int err;

	pthread_mutex_lock(&m->bm_lock);
	for (uint64_t g = g0; must && g <= g1 && g < m->nbits; g++)
		must_set(m, g);
	err = pbm_set(m->bm, g0, g1, NULL);
	pthread_mutex_unlock(&m->bm_lock);
	if (err)
		tlog(TLOG_ERR, "mirror %u: cannot record updates in %s: %s", m->cfg.id,
		     m->cfg.bitmap_path, strerror(-err));
	return err;
}

static void bit_clear(struct mirror *m, uint64_t g)
{
	pthread_mutex_lock(&m->bm_lock);
	must_clear(m, g);
	pbm_clear(m->bm, g);   /* lazily written: a lost clear only costs a second copy */
	pthread_mutex_unlock(&m->bm_lock);
}

static int bitmap_open(struct mirror *m, int create, char *why, size_t why_len)
{
	int err;

	err = pbm_open(m->cfg.bitmap_path, BM_MAGIC, m->cfg.id, m->cfg.size_bytes,
		       m->cfg.granule_bytes, create, "mirror", &m->bm, why, why_len);
	if (err)
		return err;
	m->nbits = pbm_bits(m->bm);
	m->nblk = (m->nbits + BM_BITS_PER_BLK - 1) / BM_BITS_PER_BLK;
	m->must = calloc((m->nbits + 7) / 8 + 1, 1);
	if (!m->must)
		return -ENOMEM;
	for (uint64_t g = 0; pbm_next(m->bm, g, &g) == 0; g++)
		must_set(m, g);   /* after a restart nothing is mere intent */
	return 0;
}

/* Lock the granules of [off, off+len) in ascending lock order (deduplicated). */
static int granule_locks(struct mirror *m, uint64_t off, uint64_t len, uint32_t *idx, int max)
{
	uint64_t g0 = off / m->cfg.granule_bytes, g1 = (off + len - 1) / m->cfg.granule_bytes;
	int n = 0;

	if (len == 0)
		return 0;
	if (g1 - g0 + 1 >= GLOCKS || (int)(g1 - g0 + 1) > max) {
		for (uint32_t i = 0; i < GLOCKS && n < max; i++)
			idx[n++] = i;
		return n;
	}
	for (uint64_t g = g0; g <= g1; g++) {
		uint32_t k = (uint32_t)(g % GLOCKS);
		int j = n;

		while (j > 0 && idx[j - 1] > k) {
			idx[j] = idx[j - 1];
			j--;
		}
		if (j > 0 && idx[j - 1] == k) {     /* duplicate: undo the shift */
			memmove(&idx[j], &idx[j + 1], sizeof(*idx) * (size_t)(n - j));
			continue;
		}
		idx[j] = k;
		n++;
	}
	return n;
}

static uint64_t duplex_end(struct mirror *m, uint64_t off, uint64_t len);

/* Duplexed writes in flight per bitmap block (the cleaner leaves those blocks alone). */
static void intent_begin(struct mirror *m, uint64_t off, uint64_t end)
{
	uint64_t b0 = off / m->cfg.granule_bytes / BM_BITS_PER_BLK;
	uint64_t b1 = (end - 1) / m->cfg.granule_bytes / BM_BITS_PER_BLK;

	pthread_mutex_lock(&m->bm_lock);
	for (uint64_t b = b0; b <= b1 && b < m->nblk; b++)
		m->inflight[b]++;
	pthread_mutex_unlock(&m->bm_lock);
}

static void intent_end(struct mirror *m, uint64_t off, uint64_t end)
{
	uint64_t b0 = off / m->cfg.granule_bytes / BM_BITS_PER_BLK;
	uint64_t b1 = (end - 1) / m->cfg.granule_bytes / BM_BITS_PER_BLK;
	uint64_t now = mono_ns();

	pthread_mutex_lock(&m->bm_lock);
	for (uint64_t b = b0; b <= b1 && b < m->nblk; b++) {
		m->inflight[b]--;
		m->last_ns[b] = now;
	}
	pthread_mutex_unlock(&m->bm_lock);
}

static int hook_pre(struct vol_hook *h, struct vol *v, const void *buf, uint64_t off, uint64_t len)
{
	struct mirror *m = h->priv;
	uint32_t idx[GLOCKS];
	int n, err = 0;

	(void)v;
	(void)buf;
	pthread_rwlock_rdlock(&m->state_lock);
	n = granule_locks(m, off, len, idx, GLOCKS);
	for (int i = 0; i < n; i++)
		pthread_mutex_lock(&m->glock[idx[i]]);
	/* The bits are durable before the primary is written: recording states mark the whole
	 * range; a duplexed write marks its part as intent (a crash between the primary and the
	 * secondary write leaves the granule set, and the restart resyncs it; the cleaner clears
	 * intent bits once both volumes are flushed and the block is idle). */
	if (off < m->cfg.size_bytes) {
		uint64_t end = off + len > m->cfg.size_bytes ? m->cfg.size_bytes : off + len;

		if (m->cfg.state == MIRROR_SPLIT || m->cfg.state == MIRROR_SUSPENDED || !m->secondary) {
			err = bits_set(m, off / m->cfg.granule_bytes, (end - 1) / m->cfg.granule_bytes, 1);
			if (!err)
				__atomic_add_fetch(&m->recorded, 1, __ATOMIC_RELAXED);
		} else if ((end = duplex_end(m, off, len)) > off) {
			/* in flight before the bit is set: the cleaner must not clear it meanwhile */
			intent_begin(m, off, end);
			err = bits_set(m, off / m->cfg.granule_bytes, (end - 1) / m->cfg.granule_bytes, 0);
			if (err)
				intent_end(m, off, end);
		}
	}
	if (err) {
		for (int i = n - 1; i >= 0; i--)
			pthread_mutex_unlock(&m->glock[idx[i]]);
		pthread_rwlock_unlock(&m->state_lock);
		return -EIO;   /* never lose track of a change: refuse the write */
	}
	return 0;
}

/* The part of [off, off+len) the secondary must get now. */
static uint64_t duplex_end(struct mirror *m, uint64_t off, uint64_t len)
{
	/* (state_lock held: the answer is the same in pre and post of one write) */
	uint64_t end = off + len > m->cfg.size_bytes ? m->cfg.size_bytes : off + len;

	if (!m->secondary || off >= end)
		return off;
	switch (m->cfg.state) {
	case MIRROR_DUPLEX:
	case MIRROR_RESYNCING:
		return end;
	case MIRROR_COPYING: {
		uint64_t copied = __atomic_load_n(&m->cfg.copy_pos, __ATOMIC_ACQUIRE) *
				  m->cfg.granule_bytes;

		return copied > off ? (copied < end ? copied : end) : off;
	}
	default:
		return off;
	}
}

static void suspend(struct mirror *m, const char *why, int err);

static int hook_post(struct vol_hook *h, struct vol *v, const void *buf, uint64_t off,
		     uint64_t len, int result)
{
	struct mirror *m = h->priv;
	uint32_t idx[GLOCKS];
	uint64_t end;
	int n, failed = 0;

	(void)v;
	end = duplex_end(m, off, len);
	if (!result && end > off) {
		int err = vol_write(m->secondary, buf, off, end - off);

		if (err) {
			__atomic_add_fetch(&m->sec_errors, 1, __ATOMIC_RELAXED);
			/* the host write stands: record it, the mirror suspends */
			bits_set(m, off / m->cfg.granule_bytes, (end - 1) / m->cfg.granule_bytes, 1);
			failed = err;
		} else {
			__atomic_add_fetch(&m->duplexed, 1, __ATOMIC_RELAXED);
		}
	} else if (result && end > off) {
		/* the primary write failed: whatever reached it, the secondary may lack */
		bits_set(m, off / m->cfg.granule_bytes, (end - 1) / m->cfg.granule_bytes, 1);
	}
	/* only now may the cleaner look at these intent bits */
	if (end > off && m->cfg.state != MIRROR_SPLIT && m->cfg.state != MIRROR_SUSPENDED)
		intent_end(m, off, end);
	n = granule_locks(m, off, len, idx, GLOCKS);
	for (int i = n - 1; i >= 0; i--)
		pthread_mutex_unlock(&m->glock[idx[i]]);
	pthread_rwlock_unlock(&m->state_lock);
	if (failed)
		suspend(m, "a write to the secondary failed", failed);
	return result;
}

/* A read the primary cannot serve: from the secondary when the range is in sync (duplex). */
static int hook_read_error(struct vol_hook *h, struct vol *v, void *buf, uint64_t off,
			   uint64_t len, int result)
{
	struct mirror *m = h->priv;
	int rc = result;

	(void)v;
	if (result != -EIO)
		return result;
	pthread_rwlock_rdlock(&m->state_lock);
	if (m->secondary && m->cfg.state == MIRROR_DUPLEX && off + len <= m->cfg.size_bytes) {
		int clean = 1;

		pthread_mutex_lock(&m->bm_lock);
		for (uint64_t g = off / m->cfg.granule_bytes;
		     g <= (off + len - 1) / m->cfg.granule_bytes && clean; g++)
			clean = !pbm_get(m->bm, g);
		pthread_mutex_unlock(&m->bm_lock);
		if (clean && vol_read(m->secondary, buf, off, len) == 0) {
			__atomic_add_fetch(&m->sec_reads, 1, __ATOMIC_RELAXED);
			rc = 0;
		}
	}
	pthread_rwlock_unlock(&m->state_lock);
	if (!rc)
		tlog(TLOG_WARN, "mirror %u: read of %" PRIu64 " bytes at %" PRIu64 " served by the "
		     "secondary (the primary failed it)", m->cfg.id, len, off);
	return rc;
}

/* Clear intent bits of idle blocks while duplex: both volumes flushed first. */
static void clean_intent(struct mirror *m)
{
	uint64_t now = mono_ns(), n = 0;
	uint8_t *cand;

	pthread_rwlock_rdlock(&m->state_lock);
	if (m->cfg.state != MIRROR_DUPLEX || !m->primary || !m->secondary) {
		pthread_rwlock_unlock(&m->state_lock);
		return;
	}
	cand = calloc(m->nblk ? m->nblk : 1, 1);
	if (!cand) {
		pthread_rwlock_unlock(&m->state_lock);
		return;
	}
	pthread_mutex_lock(&m->bm_lock);
	/* blocks with a bit set (the next set bit, then on from the following block) */
	for (uint64_t g = 0; pbm_next(m->bm, g, &g) == 0;) {
		uint64_t b = g / BM_BITS_PER_BLK;

		if (!m->inflight[b] && now > m->last_ns[b] && now - m->last_ns[b] >= 2000000000ull) {
			cand[b] = 1;
			n++;
		}
		g = (b + 1) * BM_BITS_PER_BLK;
	}
	pthread_mutex_unlock(&m->bm_lock);
	if (n && vol_flush(m->primary) == 0 && vol_flush(m->secondary) == 0) {
		pthread_mutex_lock(&m->bm_lock);
		for (uint64_t b = 0; b < m->nblk; b++) {
			if (!cand[b] || m->inflight[b] || m->last_ns[b] >= now ||
			    now - m->last_ns[b] < 2000000000ull)
				continue;
			/* must bits stay for a resync; the block is written lazily */
			pbm_clear_range(m->bm, b * BM_BITS_PER_BLK, (b + 1) * BM_BITS_PER_BLK - 1, m->must);
		}
		pthread_mutex_unlock(&m->bm_lock);
	}
	pthread_rwlock_unlock(&m->state_lock);
	free(cand);
}

static void *cleaner_main(void *p)
{
	struct mirror *m = p;
	struct timespec ts;

	pthread_mutex_lock(&m->bm_lock);
	while (!m->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&m->stop_cond, &m->bm_lock, &ts);
		if (m->stop)
			break;
		pthread_mutex_unlock(&m->bm_lock);
		clean_intent(m);
		pthread_mutex_lock(&m->bm_lock);
	}
	pthread_mutex_unlock(&m->bm_lock);
	return NULL;
}

static void persist(struct mirror *m)
{
	struct mirror_cfg c;

	pthread_rwlock_rdlock(&m->state_lock);
	c = m->cfg;
	c.copy_pos = __atomic_load_n(&m->cfg.copy_pos, __ATOMIC_ACQUIRE);
	pthread_rwlock_unlock(&m->state_lock);
	if (m->persist && m->persist(m->ctx, &c))
		tlog(TLOG_ERR, "mirror %u: cannot record its state (%s)", c.id, mirror_state_name(c.state));
}

static void suspend(struct mirror *m, const char *why, int err)
{
	int was;

	pthread_rwlock_wrlock(&m->state_lock);
	was = m->cfg.state == MIRROR_SUSPENDED || m->cfg.state == MIRROR_SPLIT;
	if (!was)
		m->cfg.state = MIRROR_SUSPENDED;
	pthread_rwlock_unlock(&m->state_lock);
	if (!was) {
		tlog(TLOG_ERR, "mirror %u: SUSPENDED: %s (%s); writes are recorded, mirror-resync "
		     "restarts it", m->cfg.id, why, strerror(-err));
		persist(m);
	}
}

int mirror_open(const struct mirror_cfg *cfg, int create, mirror_persist_fn *pf, void *ctx,
		struct mirror **out, char *why, size_t why_len)
{
	struct mirror *m;
	int err;

	if (!cfg->granule_bytes || !cfg->size_bytes) {
		snprintf(why, why_len, "mirror %u: granule and size must be set", cfg->id);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	m->persist = pf;
	m->ctx = ctx;
	{
		pthread_rwlockattr_t a;

		/* a stream of host writes must not starve a split */
		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&m->state_lock, &a);
		pthread_rwlockattr_destroy(&a);
	}
	pthread_mutex_init(&m->bm_lock, NULL);
	for (int i = 0; i < GLOCKS; i++)
		pthread_mutex_init(&m->glock[i], NULL);
	pthread_cond_init(&m->stop_cond, NULL);
	if ((err = bitmap_open(m, create, why, why_len))) {
		mirror_close(m, 0);
		return err;
	}
	m->inflight = calloc(m->nblk ? m->nblk : 1, sizeof(*m->inflight));
	m->last_ns = calloc(m->nblk ? m->nblk : 1, sizeof(*m->last_ns));
	if (!m->inflight || !m->last_ns) {
		mirror_close(m, 0);
		return -ENOMEM;
	}
	if (pthread_create(&m->cleaner, NULL, cleaner_main, m) == 0)
		m->cleaner_running = 1;
	m->hook.name = "mirror";
	m->hook.pre_write = hook_pre;
	m->hook.post_write = hook_post;
	m->hook.read_error = hook_read_error;
	m->hook.priv = m;
	*out = m;
	return 0;
}

int mirror_attach_primary(struct mirror *m, struct vol *p)
{
	if (m->primary)
		return -EEXIST;
	if (p->size_bytes < m->cfg.size_bytes)
		return -ENOSPC;
	vol_get(p);
	pthread_rwlock_wrlock(&m->state_lock);
	m->primary = p;
	pthread_rwlock_unlock(&m->state_lock);
	vol_hook_add(p, &m->hook);   /* waits for writes in flight: later ones all pass the hook */
	m->hooked = 1;
	return 0;
}

int mirror_attach_secondary(struct mirror *m, struct vol *s)
{
	if (s && s->size_bytes < m->cfg.size_bytes)
		return -ENOSPC;
	if (s)
		vol_get(s);
	pthread_rwlock_wrlock(&m->state_lock);
	if (m->secondary)
		vol_put(m->secondary);
	m->secondary = s;
	/* writes recorded while the secondary was away: a resync brings it back */
	if (s && m->cfg.state == MIRROR_DUPLEX && m->must_count) {
		m->resync_cursor = 0;
		m->cfg.state = MIRROR_RESYNCING;
	}
	pthread_rwlock_unlock(&m->state_lock);
	persist(m);
	return 0;
}

void mirror_detach(struct mirror *m, struct vol *v)
{
	if (v == m->primary) {
		if (m->hooked)
			vol_hook_remove(v, &m->hook);
		m->hooked = 0;
		pthread_rwlock_wrlock(&m->state_lock);
		m->primary = NULL;
		pthread_rwlock_unlock(&m->state_lock);
		vol_put(v);
	} else if (v == m->secondary) {
		pthread_rwlock_wrlock(&m->state_lock);
		m->secondary = NULL;
		pthread_rwlock_unlock(&m->state_lock);
		vol_put(v);
	}
}

void mirror_close(struct mirror *m, int remove_bitmap)
{
	if (!m)
		return;
	if (m->cleaner_running) {
		pthread_mutex_lock(&m->bm_lock);
		m->stop = 1;
		pthread_cond_broadcast(&m->stop_cond);
		pthread_mutex_unlock(&m->bm_lock);
		pthread_join(m->cleaner, NULL);
	}
	if (m->primary)
		mirror_detach(m, m->primary);
	if (m->secondary)
		mirror_detach(m, m->secondary);
	pbm_close(m->bm, remove_bitmap);
	for (int i = 0; i < GLOCKS; i++)
		pthread_mutex_destroy(&m->glock[i]);
	pthread_mutex_destroy(&m->bm_lock);
	pthread_cond_destroy(&m->stop_cond);
	pthread_rwlock_destroy(&m->state_lock);
	free(m->inflight);
	free(m->last_ns);
	free(m->must);
	free(m);
}

int mirror_split(struct mirror *m)
{
	int ok;

	/* write-locking the state waits for every duplexed write in flight: the secondary is the
	 * primary's image at this instant */
	pthread_rwlock_wrlock(&m->state_lock);
	ok = m->cfg.state == MIRROR_DUPLEX || m->cfg.state == MIRROR_RESYNCING;
	if (ok)
		m->cfg.state = MIRROR_SPLIT;
	pthread_rwlock_unlock(&m->state_lock);
	if (!ok)
		return -EINVAL;
	persist(m);
	tlog(TLOG_WARN, "mirror %u (volid %" PRIu64 " -> %" PRIu64 "): split", m->cfg.id,
	     m->cfg.primary_volid, m->cfg.secondary_volid);
	return 0;
}

int mirror_start_resync(struct mirror *m)
{
	uint64_t cp;
	int err = 0;

	pthread_rwlock_wrlock(&m->state_lock);
	if (!m->secondary) {
		pthread_rwlock_unlock(&m->state_lock);
		return -ENODEV;
	}
	if (m->cfg.state != MIRROR_SPLIT && m->cfg.state != MIRROR_SUSPENDED &&
	    m->cfg.state != MIRROR_RESYNCING) {
		pthread_rwlock_unlock(&m->state_lock);
		return -EINVAL;
	}
	/* suspended during the initial copy: what it had not reached must be copied too */
	cp = __atomic_load_n(&m->cfg.copy_pos, __ATOMIC_ACQUIRE);
	if (cp < m->nbits)
		err = bits_set(m, cp, m->nbits - 1, 1);
	if (!err) {
		m->cfg.copy_pos = m->nbits;
		m->resync_cursor = 0;
		m->cfg.state = MIRROR_RESYNCING;
	}
	pthread_rwlock_unlock(&m->state_lock);
	if (err)
		return err;
	persist(m);
	tlog(TLOG_WARN, "mirror %u (volid %" PRIu64 " -> %" PRIu64 "): resyncing", m->cfg.id,
	     m->cfg.primary_volid, m->cfg.secondary_volid);
	return 0;
}

/* from -> to, only if the state is still `from` (a split must never be undone) */
static int set_state_if(struct mirror *m, enum mirror_state from, enum mirror_state to)
{
	int ok;

	pthread_rwlock_wrlock(&m->state_lock);
	ok = m->cfg.state == from;
	if (ok)
		m->cfg.state = to;
	pthread_rwlock_unlock(&m->state_lock);
	if (ok) {
		persist(m);
		tlog(TLOG_WARN, "mirror %u (volid %" PRIu64 " -> %" PRIu64 "): %s", m->cfg.id,
		     m->cfg.primary_volid, m->cfg.secondary_volid, mirror_state_name(to));
	}
	return ok;
}

int mirror_needs_copier(struct mirror *m)
{
	int r;

	pthread_rwlock_rdlock(&m->state_lock);
	r = m->primary && m->secondary &&
	    (m->cfg.state == MIRROR_COPYING || m->cfg.state == MIRROR_RESYNCING);
	pthread_rwlock_unlock(&m->state_lock);
	return r;
}

/* Copy granule g from the primary to the secondary (its lock held). */
static int copy_granule(struct mirror *m, uint64_t g, uint8_t *buf)
{
	uint64_t off = g * m->cfg.granule_bytes, len = m->cfg.granule_bytes;
	int err;

	if (off + len > m->cfg.size_bytes)
		len = m->cfg.size_bytes - off;
	/* the primary's own read, not vol_read: our read_error hook must not run under our lock */
	if ((err = m->primary->ops->read(m->primary, buf, off, len)))
		return err;
	if ((err = vol_write(m->secondary, buf, off, len))) {
		__atomic_add_fetch(&m->sec_errors, 1, __ATOMIC_RELAXED);
		return -ENOTCONN - 1000;   /* marker: the secondary failed */
	}
	__atomic_add_fetch(&m->copied, len, __ATOMIC_RELAXED);
	return 0;
}

int mirror_copy_step(struct mirror *m)
{
	uint8_t *buf;
	uint64_t g;
	enum mirror_state s;
	int err = 0;

	pthread_rwlock_rdlock(&m->state_lock);
	s = m->cfg.state;
	if (!m->primary || !m->secondary || (s != MIRROR_COPYING && s != MIRROR_RESYNCING)) {
		pthread_rwlock_unlock(&m->state_lock);
		return -EINVAL;
	}
	if (posix_memalign((void **)&buf, 4096, m->cfg.granule_bytes)) {
		pthread_rwlock_unlock(&m->state_lock);
		return -ENOMEM;
	}
	if (s == MIRROR_COPYING) {
		g = __atomic_load_n(&m->cfg.copy_pos, __ATOMIC_ACQUIRE);
		if (g < m->nbits) {
			pthread_mutex_lock(&m->glock[g % GLOCKS]);
			err = copy_granule(m, g, buf);
			if (!err)
				__atomic_store_n(&m->cfg.copy_pos, g + 1, __ATOMIC_RELEASE);
			pthread_mutex_unlock(&m->glock[g % GLOCKS]);
			g++;
		}
	} else {
		/* next granule the secondary lacks, from the cursor */
		pthread_mutex_lock(&m->bm_lock);
		for (g = m->resync_cursor; g < m->nbits && !must_get(m, g); g++)
			;
		pthread_mutex_unlock(&m->bm_lock);
		if (g < m->nbits) {
			pthread_mutex_lock(&m->glock[g % GLOCKS]);
			err = copy_granule(m, g, buf);
			if (!err)
				bit_clear(m, g);
			pthread_mutex_unlock(&m->glock[g % GLOCKS]);
			m->resync_cursor = g + 1;
			g++;
		} else {
			g = m->nbits;
		}
	}
	pthread_rwlock_unlock(&m->state_lock);
	free(buf);
	if (err == -ENOTCONN - 1000) {
		suspend(m, "the copy to the secondary failed", -EIO);
		return -EIO;
	}
	if (err) {
		tlog(TLOG_ERR, "mirror %u: reading the primary failed: %s", m->cfg.id, strerror(-err));
		return err;
	}
	if (s == MIRROR_COPYING && g % CHECKPOINT_GRANULES == 0 && g < m->nbits)
		persist(m);
	if (g < m->nbits)
		return 1;
	/* finished a pass: what the secondary still lacks is resynced, then duplex (intent bits of
	 * duplexed writes are the cleaner's) */
	pthread_mutex_lock(&m->bm_lock);
	{
		uint64_t must_left = m->must_count;

		pthread_mutex_unlock(&m->bm_lock);
		if (must_left) {
			m->resync_cursor = 0;
			if (s == MIRROR_COPYING && !set_state_if(m, MIRROR_COPYING, MIRROR_RESYNCING))
				return -EINTR;   /* split or suspended meanwhile */
			return 1;
		}
	}
	if (s == MIRROR_COPYING) {
		pthread_rwlock_wrlock(&m->state_lock);
		if (m->cfg.state == MIRROR_COPYING)
			m->cfg.copy_pos = m->nbits;
		pthread_rwlock_unlock(&m->state_lock);
	}
	if (!set_state_if(m, s, MIRROR_DUPLEX))
		return -EINTR;   /* split or suspended meanwhile: stays so */
	return 0;
}

void mirror_get_status(struct mirror *m, struct mirror_status *st)
{
	memset(st, 0, sizeof(*st));
	pthread_rwlock_rdlock(&m->state_lock);
	st->cfg = m->cfg;
	st->cfg.copy_pos = __atomic_load_n(&m->cfg.copy_pos, __ATOMIC_ACQUIRE);
	st->primary_attached = m->primary != NULL;
	st->secondary_attached = m->secondary != NULL;
	pthread_rwlock_unlock(&m->state_lock);
	pthread_mutex_lock(&m->bm_lock);
	st->dirty_granules = m->must_count;
	st->intent_granules = pbm_count(m->bm) - m->must_count;
	pthread_mutex_unlock(&m->bm_lock);
	st->copied_bytes = __atomic_load_n(&m->copied, __ATOMIC_RELAXED);
	st->duplexed_writes = __atomic_load_n(&m->duplexed, __ATOMIC_RELAXED);
	st->recorded_writes = __atomic_load_n(&m->recorded, __ATOMIC_RELAXED);
	st->secondary_errors = __atomic_load_n(&m->sec_errors, __ATOMIC_RELAXED);
	st->secondary_reads = __atomic_load_n(&m->sec_reads, __ATOMIC_RELAXED);
}

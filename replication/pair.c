#include "replication/pair.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raid/tlog.h"
#include "raid/util.h"

#define RL_N 256                       /* hashed range locks of the P-VOL */
#define RL_SHIFT 20                    /* 1 MiB regions */
#define DONE_W 65536u                  /* sequences in flight at most (applied tracking) */
#define BATCH_MAX_BYTES (16u << 20)    /* journal writer: data per batch */
#define GROUP_MIN 8                    /* journal writer: entries it likes to batch */
#define GROUP_WAIT_S 0.0001            /* ... and how long it waits for them at most */
#define FULL_WAIT_S 10                 /* host writes wait this long for journal space */
#define ACQ_MAX_ENTRIES 2048u
#define ACQ_MAX_BYTES (8u << 20)
#define COPY_CHUNK (8u << 20)          /* per copy step: COPY_PAR reads in flight */
#define COPY_PAR 8
#define COPY_CHECKPOINT (64ull << 20)

/* Writes the module makes itself (journal, redo, restore, copy) pass the guards. */
static __thread int repl_internal;

struct waiter {
	struct waiter *next;
	struct jrnl_entry e;
	const void *buf;
	int done, err;
};

/* per-write context from pre_write to post_write (TLS: hooks run on the writing thread) */
struct wctx {
	struct pair *p;
	uint64_t mask[RL_N / 64];
	uint64_t seq;                  /* 0: not journaled */
};
static __thread struct wctx wstack[4];
static __thread int wdepth;

struct pair {
	struct pair_cfg cfg;
	struct pair_env env;
	pthread_mutex_t mu;            /* cfg, vols, aux state, status */
	pthread_cond_t cv;             /* aux worker wake-up; primary: space, state changes */
	pthread_cond_t wcv;            /* primary: the journal writer's wake-up (an entry queued) */
	pthread_cond_t dcv;            /* primary: a batch is durable (its waiters, drains) */
	int applied_waiters;           /* primary: freeze/resync wait for `applied` (on cv) */
	uint64_t purge_req;            /* primary: purge asked up to here (done as applied allows) */
	struct vol *pvols[PAIR_MAX_VOLS], *pjnl, *svols[PAIR_MAX_VOLS], *sjnl;
	struct vol *src_pvols[PAIR_MAX_VOLS], *src_pjnl;
	struct vol_hook jhook[PAIR_MAX_VOLS];    /* P-VOLs: journaling */
	struct vol_hook guard_j;       /* journal: refuses host writes */
	struct vol_hook guard_s[PAIR_MAX_VOLS];  /* S-VOLs: refuse host writes */
	int ready;                     /* journal loaded (and redone) */
	struct jrnl_hdr h;             /* current header (pointers updated in memory) */
	uint8_t *shadow;               /* the metadata ring's image */
	pthread_mutex_t hdr_mu;        /* header writes */
	int stop;
	pthread_t thread;
	int thread_running;

	/* primary (under mu) */
	pthread_mutex_t rl[RL_N];
	uint64_t next_seq, next_pos, durable, applied, confirmed;
	uint64_t *ent_pos;             /* [slots]: data position of live sequences */
	uint8_t *done;                 /* [DONE_W] */
	struct waiter *qhead, *qtail;
	uint64_t writes, journal_bytes, batches, waits_full, hdr_applied;
	uint8_t *batch;
	size_t batch_cap;

	/* aux (under mu; the worker does I/O without it) */
	struct pbm *bm[PAIR_MAX_VOLS]; /* change bitmaps (primary: changes; aux: delta to copy) */
	int warned;                    /* primary: journal use warning logged */
	int need_persist;              /* primary: the writer thread persists cfg */
	int suspended_since_resync;    /* primary: a delta_done must not clear newer bits */
	int acquire_all;               /* host-driven acquire without upto */
	int busy;                      /* the worker is in a step (holds volume references) */
	uint64_t known_head, known_head_pos, first_unacq_ns;
	uint64_t acquired_entries, acquired_bytes, restored_entries, restored_bytes;
	uint64_t confirmed_sent;
	uint64_t last_restored_ns;     /* primary time of the last restored entry */
	int link_up;
	char last_error[200];
	double tokens;                 /* rate limit */
	struct timespec tok_t;
};

static int persist_now(struct pair *p);

static int nvols(const struct pair *p) { return p->cfg.nvols ? (int)p->cfg.nvols : 1; }

/* Index of volid in ids[0..nvols), or -1. */
static int vol_index(const struct pair *p, const uint64_t *ids, uint64_t volid)
{
	for (int i = 0; i < nvols(p); i++)
		if (ids[i] == volid)
			return i;
	return -1;
}

/* Are all of vs[0..nvols) here? */
static int all_here(const struct pair *p, struct vol *const *vs)
{
	for (int i = 0; i < nvols(p); i++)
		if (!vs[i])
			return 0;
	return 1;
}

/* Bytes before volume i in the copy's address space (the volumes one after another). */
static uint64_t vol_base(struct vol *const *vs, int i)
{
	uint64_t b = 0;

	for (int k = 0; k < i; k++)
		b += vs[k]->size_bytes;
	return b;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void deadline(struct timespec *ts, double s)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += (time_t)s;
	ts->tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

const char *pair_state_name(enum pair_state s)
{
	switch (s) {
	case PAIR_JOURNALING: return "journaling";
	case PAIR_COPYING: return "copying";
	case PAIR_PAIRED: return "paired";
	case PAIR_SUSPENDED: return "suspended";
	case PAIR_FROZEN: return "frozen";
	}
	return "?";
}

int pair_state_parse(const char *s, enum pair_state *out)
{
	for (int i = PAIR_JOURNALING; i <= PAIR_FROZEN; i++)
		if (!strcmp(s, pair_state_name((enum pair_state)i))) {
			*out = (enum pair_state)i;
			return 0;
		}
	return -EINVAL;
}

/* ---- volume I/O helpers ---- */

static int vrd(void *ctx, void *buf, uint64_t off, uint64_t len)
{
	return vol_read(ctx, buf, off, len);
}

static int vwr(void *ctx, const void *buf, uint64_t off, uint64_t len)
{
	int r;

	repl_internal++;
	r = vol_write(ctx, buf, off, len);
	repl_internal--;
	return r;
}

static int zero_range(struct vol *v, uint64_t off, uint64_t len)
{
	const size_t chunk = 1u << 20;
	void *z = aligned_alloc(4096, chunk);
	int err = 0;

	if (!z)
		return -ENOMEM;
	memset(z, 0, chunk);
	while (len && !err) {
		uint64_t n = len < chunk ? len : chunk;

		err = vwr(v, z, off, n);
		off += n;
		len -= n;
	}
	free(z);
	return err;
}

static void primary_header_snapshot(struct pair *p, struct jrnl_hdr *snap);

/* Write the header as it is now. The pointers are taken under mu while hdr_mu is held (lock
 * order hdr_mu -> mu; callers hold neither), so a header on the volume never goes back: the
 * caller's snapshot is only a hint that something changed. */
static int write_hdr(struct pair *p, struct vol *j, const struct jrnl_hdr *snap)
{
	struct jrnl_hdr h;
	int err;

	(void)snap;
	pthread_mutex_lock(&p->hdr_mu);
	pthread_mutex_lock(&p->mu);
	if (p->cfg.role == PAIR_PRIMARY)
		primary_header_snapshot(p, &h);
	else
		h = p->h;
	pthread_mutex_unlock(&p->mu);
	err = jrnl_hdr_write(vwr, j, &h);
	if (!err) {
		pthread_mutex_lock(&p->mu);
		p->h.generation = h.generation;
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_unlock(&p->hdr_mu);
	return err;
}

/* ---- formatting ---- */

/* A formatted journal: empty record ring, both header copies, flushed. */
static int write_fresh(struct vol *j, struct jrnl_hdr *h, uint8_t uuid[16], char *why,
		       size_t why_len)
{
	int err;

	if ((err = zero_range(j, h->meta_offset, h->meta_bytes)) ||
	    (err = jrnl_hdr_write(vwr, j, h)) || (err = jrnl_hdr_write(vwr, j, h)) ||
	    (err = vol_flush(j))) {
		snprintf(why, why_len, "cannot format journal volid %" PRIu64 ": %s", j->volid,
			 strerror(-err));
		return err;
	}
	memcpy(uuid, h->uuid, 16);
	return 0;
}

/* uuid_in: the journal's uuid (NULL: a new one). */
static int format_primary(struct vol *pjnl, uint32_t id, const uint8_t *uuid_in, uint8_t uuid[16],
			  char *why, size_t why_len)
{
	struct jrnl_hdr h;
	int err;

	if ((err = jrnl_layout(pjnl->size_bytes, pjnl->block_bytes, &h))) {
		snprintf(why, why_len, "journal volid %" PRIu64 " is too small (%" PRIu64 " bytes; at "
			 "least %u)", pjnl->volid, pjnl->size_bytes, JRNL_MIN_BYTES);
		return err;
	}
	h.role = JRNL_ROLE_PRIMARY;
	if (uuid_in)
		memcpy(h.uuid, uuid_in, 16);
	else
		jrnl_new_uuid(h.uuid);
	h.pair_id = id;
	h.jout = 1;
	h.jin_hint = 1;
	return write_fresh(pjnl, &h, uuid, why, why_len);
}

int pair_format_primary(struct vol *pjnl, uint32_t id, uint8_t uuid[16], char *why, size_t why_len)
{
	return format_primary(pjnl, id, NULL, uuid, why, why_len);
}

int pair_format_aux(struct vol *sjnl, struct vol *src_pjnl, uint32_t id, uint8_t uuid[16],
		    char *why, size_t why_len)
{
	struct jrnl_hdr ph, h;
	int err;

	/* a peer session lost a moment ago is in its reconnect backoff: try across it */
	for (int tries = 0; tries < 5; tries++) {
		err = jrnl_hdr_read(vrd, src_pjnl, &ph);
		if (err != -ENOTCONN && err != -EAGAIN && err != -ETIMEDOUT)
			break;
		usleep(300000u << tries);
	}
	if (err) {
		snprintf(why, why_len, "cannot read the primary journal through volid %" PRIu64 ": %s",
			 src_pjnl->volid, err == -ENODATA ? "it is not a journal (no header)" :
			 err == -EBADMSG ? "both headers are damaged" : strerror(-err));
		return err;
	}
	if (ph.role != JRNL_ROLE_PRIMARY || ph.pair_id != id) {
		snprintf(why, why_len, "volid %" PRIu64 " is the journal of pair %" PRIu64 " (%s), not "
			 "the primary journal of pair %u", src_pjnl->volid, ph.pair_id,
			 ph.role == JRNL_ROLE_PRIMARY ? "primary" : "auxiliary", id);
		return -EINVAL;
	}
	if (sjnl->size_bytes < ph.data_offset + ph.data_bytes) {
		snprintf(why, why_len, "the auxiliary journal (volid %" PRIu64 ", %" PRIu64 " bytes) "
			 "must be at least as large as the primary journal's rings (%" PRIu64 " bytes)",
			 sjnl->volid, sjnl->size_bytes, ph.data_offset + ph.data_bytes);
		return -ENOSPC;
	}
	h = ph;
	h.role = JRNL_ROLE_AUX;
	h.generation = 0;
	h.block_bytes = sjnl->block_bytes;
	h.applied = h.confirmed = 0;
	h.read_completed = h.to_be_read = ph.jout - 1;
	h.restore_completed = h.to_be_restored = ph.jout - 1;
	h.restore_pos = ph.jout_pos;
	return write_fresh(sjnl, &h, uuid, why, why_len);
}

/* ---- guards ---- */

static int guard_pre(struct vol_hook *hk, struct vol *v, const void *buf, uint64_t off,
		     uint64_t len)
{
	struct pair *p = hk->priv;

	(void)buf;
	if (repl_internal)
		return 0;
	if (hk != &p->guard_j && p->cfg.state == PAIR_SUSPENDED && p->cfg.role == PAIR_AUX)
		return -EACCES;   /* still the pair's copy: suspended is not split */
	tlog(TLOG_WARN, "pair %u: host write to volid %" PRIu64 " (%s) refused: offset %" PRIu64
	     " length %" PRIu64, p->cfg.id, v->volid, hk != &p->guard_j ? "an auxiliary volume" :
	     "a journal in use", off, len);
	return -EACCES;
}

/* ---- the change bitmap ---- */

static const char pbm_magic[8] = { 'T', 'N', 'D', 'M', 'P', 'B', 'M', 'P' };

/* Open (or create) the change bitmap of volume i, of size_bytes. mu held. */
static void ensure_bm(struct pair *p, int i, uint64_t size_bytes)
{
	char why[300], path[600];
	int err;

	if (p->bm[i] || !p->cfg.bitmap_path[0])
		return;
	if (!p->cfg.granule_bytes)
		p->cfg.granule_bytes = 1u << 20;
	if (i)
		snprintf(path, sizeof(path), "%s.%d", p->cfg.bitmap_path, i);
	else
		snprintf(path, sizeof(path), "%s", p->cfg.bitmap_path);
	err = pbm_open(path, pbm_magic, p->cfg.id, size_bytes, p->cfg.granule_bytes, 0, "pair",
		       &p->bm[i], why, sizeof(why));
	if (err == -ENOENT)
		err = pbm_open(path, pbm_magic, p->cfg.id, size_bytes, p->cfg.granule_bytes, 1,
			       "pair", &p->bm[i], why, sizeof(why));
	if (err)
		tlog(TLOG_ERR, "pair %u: change bitmap: %s", p->cfg.id, why);
}

/* Every volume's change bitmap is open. */
static int bms_ready(const struct pair *p)
{
	for (int i = 0; i < nvols(p); i++)
		if (!p->bm[i])
			return 0;
	return 1;
}

static uint64_t bms_count(const struct pair *p)
{
	uint64_t n = 0;

	for (int i = 0; i < nvols(p); i++)
		n += p->bm[i] ? pbm_count(p->bm[i]) : 0;
	return n;
}

/* Record a host write to volume i in its bitmap (suspended primary). 0, or -EIO: it cannot be
 * tracked, so it is refused (a write the bitmap does not know would be missing from a resync). */
static int bm_record(struct pair *p, int i, uint64_t off, uint64_t len)
{
	int err = i >= 0 && p->bm[i] ? pbm_set_bytes(p->bm[i], off, len) : -ENODEV;

	if (err) {
		tlog(TLOG_ERR, "pair %u: a write to offset %" PRIu64 " cannot be recorded in the "
		     "change bitmap (%s): refused", p->cfg.id, off, strerror(-err));
		return -EIO;
	}
	return 0;
}

/* ---- primary: journaling ---- */

static void rl_mask(uint64_t mask[RL_N / 64], uint64_t volid, uint64_t off, uint64_t len)
{
	uint64_t first = off >> RL_SHIFT, last = (off + (len ? len : 1) - 1) >> RL_SHIFT;

	memset(mask, 0, RL_N / 8);
	if (last - first >= RL_N) {
		memset(mask, 0xff, RL_N / 8);
		return;
	}
	for (uint64_t r = first; r <= last; r++) {
		uint64_t k = (r + volid * 37) % RL_N;

		mask[k / 64] |= 1ull << (k % 64);
	}
}

static void rl_lock(struct pair *p, const uint64_t mask[RL_N / 64])
{
	for (int i = 0; i < RL_N; i++)
		if (mask[i / 64] >> (i % 64) & 1)
			pthread_mutex_lock(&p->rl[i]);
}

static void rl_unlock(struct pair *p, const uint64_t mask[RL_N / 64])
{
	for (int i = RL_N - 1; i >= 0; i--)
		if (mask[i / 64] >> (i % 64) & 1)
			pthread_mutex_unlock(&p->rl[i]);
}

static void purge_to(struct pair *p);

static void mark_applied(struct pair *p, uint64_t seq)
{
	p->done[seq % DONE_W] = 1;
	while (p->applied + 1 < p->next_seq && p->done[(p->applied + 1) % DONE_W]) {
		p->done[(p->applied + 1) % DONE_W] = 0;
		p->applied++;
	}
	if (p->purge_req >= p->h.jout)
		purge_to(p);
	if (p->applied_waiters)
		pthread_cond_broadcast(&p->cv);     /* a freeze or a resync waits for this */
}

static int j_pre(struct vol_hook *hk, struct vol *v, const void *buf, uint64_t off, uint64_t len)
{
	struct pair *p = hk->priv;
	int vi = (int)(hk - p->jhook);
	struct wctx *w;
	struct waiter me = { 0 };
	struct timespec until;
	uint64_t alen, pos;
	int err = 0;

	if (repl_internal)
		return 0;
	if (off % v->block_bytes || len % v->block_bytes)
		return -EINVAL;      /* the journal records whole blocks */
	if (wdepth >= 4)
		return -EIO;
	w = &wstack[wdepth++];
	w->p = p;
	w->seq = 0;
	memset(w->mask, 0, sizeof(w->mask));
	if (p->cfg.state == PAIR_SUSPENDED) {
		int e2 = bm_record(p, vi, off, len);

		if (e2)
			wdepth--;
		return e2;
	}
	if (p->cfg.state == PAIR_FROZEN) {
		wdepth--;
		tlog(TLOG_WARN, "pair %u: host write to volid %" PRIu64 " refused: a swap is under way "
		     "(this volume is becoming the auxiliary copy)", p->cfg.id, v->volid);
		return -EACCES;
	}
	me.e.data_crc = tcrc32c(buf, len);
	rl_mask(w->mask, v->volid, off, len);
	rl_lock(p, w->mask);
	alen = jrnl_align(len);
	pthread_mutex_lock(&p->mu);
	if (p->cfg.state == PAIR_SUSPENDED) {
		pthread_mutex_unlock(&p->mu);
		if ((err = bm_record(p, vi, off, len)))
			goto refused;
		return 0;           /* the mask stays: post_write unlocks */
	}
	if (p->cfg.state == PAIR_FROZEN) {
		err = -EACCES;
		goto refuse;
	}
	if (!p->ready) {
		err = -EAGAIN;
		goto refuse;
	}
	if (alen > p->h.data_bytes / 2 && (p->cfg.overflow_throttle || !bms_ready(p))) {
		tlog(TLOG_ERR, "pair %u: a write of %" PRIu64 " bytes does not fit the journal "
		     "(%" PRIu64 " data bytes): refused", p->cfg.id, len, p->h.data_bytes);
		err = -EINVAL;
		goto refuse;
	}
	deadline(&until, FULL_WAIT_S);
	for (;;) {
		pos = jrnl_place(&p->h, p->next_pos, alen);
		if (!p->ready || p->cfg.state != PAIR_JOURNALING)
			break;
		if (alen <= p->h.data_bytes / 2 && pos + alen - p->h.jout_pos <= p->h.data_bytes &&
		    p->next_seq - p->h.jout < jrnl_slots(&p->h) &&
		    p->next_seq - p->applied < DONE_W)
			break;
		if (!p->cfg.overflow_throttle && bms_ready(p)) {
			/* policy suspend: stop journaling, track changes in the bitmap */
			p->cfg.state = PAIR_SUSPENDED;
			snprintf(p->cfg.reason, sizeof(p->cfg.reason), "journal full (journal-out %"
				 PRIu64 ", journal-in %" PRIu64 "): changes are tracked in the bitmap; "
				 "pair-resync copies them", p->h.jout, p->next_seq);
			p->suspended_since_resync = 1;
			p->need_persist = 1;
			pthread_cond_broadcast(&p->cv);
			pthread_cond_signal(&p->wcv);
			tlog(TLOG_ERR, "pair %u: %s", p->cfg.id, p->cfg.reason);
			pthread_mutex_unlock(&p->mu);
			if ((err = bm_record(p, vi, off, len)))
				goto refused;
			return 0;
		}
		if (!p->waits_full++ || p->waits_full % 1000 == 0)
			tlog(TLOG_WARN, "pair %u: the primary journal is full (journal-out %" PRIu64
			     ", journal-in %" PRIu64 "): host writes wait for a purge", p->cfg.id,
			     p->h.jout, p->next_seq);
		if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT) {
			err = -EAGAIN;
			goto refuse;
		}
	}
	/* the state may have changed while this write waited for room */
	if (p->cfg.state == PAIR_SUSPENDED) {
		pthread_mutex_unlock(&p->mu);
		if ((err = bm_record(p, vi, off, len)))
			goto refused;
		return 0;
	}
	if (p->cfg.state == PAIR_FROZEN) {
		err = -EACCES;
		goto refuse;
	}
	if (!p->ready) {
		err = -EAGAIN;
		goto refuse;
	}
	me.e.seq = p->next_seq++;
	me.e.time_ns = now_ns();
	me.e.volid = v->volid;
	me.e.lba = off / v->block_bytes;
	me.e.nblocks = (uint32_t)(len / v->block_bytes);
	me.e.block_bytes = v->block_bytes;
	me.e.pos = pos;
	me.buf = buf;
	p->next_pos = pos + alen;
	p->ent_pos[me.e.seq % jrnl_slots(&p->h)] = pos;
	{
		uint64_t used = p->next_pos - p->h.jout_pos;
		uint32_t warn = p->cfg.warn_pct ? p->cfg.warn_pct : 80;

		if (!p->warned && used * 100 >= (uint64_t)warn * p->h.data_bytes) {
			p->warned = 1;
			tlog(TLOG_WARN, "pair %u: the primary journal is %" PRIu64 "%% full (warning at "
			     "%u%%): the auxiliary device is not keeping up", p->cfg.id,
			     used * 100 / p->h.data_bytes, warn);
		} else if (p->warned && used * 100 + 10 * p->h.data_bytes <
			   (uint64_t)warn * p->h.data_bytes) {
			p->warned = 0;
		}
	}
	if (p->qtail)
		p->qtail->next = &me;
	else
		p->qhead = &me;
	p->qtail = &me;
	pthread_cond_signal(&p->wcv);
	while (!me.done)
		pthread_cond_wait(&p->dcv, &p->mu);
	w->seq = me.e.seq;
	if (me.err) {
		mark_applied(p, me.e.seq);   /* nothing of it reaches the volume */
		w->seq = 0;
		err = me.err;
		goto refuse;
	}
	p->writes++;
	p->journal_bytes += len;
	pthread_mutex_unlock(&p->mu);
	return 0;
refuse:
	pthread_mutex_unlock(&p->mu);
refused:
	rl_unlock(p, w->mask);
	wdepth--;
	return err;
}

static int j_post(struct vol_hook *hk, struct vol *v, const void *buf, uint64_t off,
		  uint64_t len, int result)
{
	struct pair *p = hk->priv;
	struct wctx *w;

	(void)v; (void)buf;
	if (repl_internal)
		return result;
	if (wdepth <= 0 || wstack[wdepth - 1].p != p)
		return result;
	w = &wstack[--wdepth];
	if (w->seq) {
		pthread_mutex_lock(&p->mu);
		if (result)
			tlog(TLOG_ERR, "pair %u: the write of sequence %" PRIu64 " (offset %" PRIu64
			     ", %" PRIu64 " bytes) failed on the primary volume after it was journaled: "
			     "the range is undefined on both volumes, as for any failed write",
			     p->cfg.id, w->seq, off, len);
		mark_applied(p, w->seq);
		pthread_mutex_unlock(&p->mu);
	}
	rl_unlock(p, w->mask);
	return result;
}

static int j_flush(struct vol_hook *hk, struct vol *v)
{
	struct pair *p = hk->priv;
	struct vol *j;
	int err = 0;

	(void)v;
	pthread_mutex_lock(&p->mu);
	j = p->pjnl;
	if (j)
		vol_get(j);
	pthread_mutex_unlock(&p->mu);
	if (j) {
		err = vol_flush(j);
		vol_put(j);
	}
	return err;
}

/* Write the meta blocks covering sequences [s0, s1] from the shadow. */
static int write_meta(struct pair *p, struct vol *j, uint64_t s0, uint64_t s1)
{
	uint64_t slots = jrnl_slots(&p->h), a = s0 % slots, n = s1 - s0 + 1;
	int err = 0;

	while (n && !err) {
		uint64_t run = slots - a < n ? slots - a : n;
		uint64_t b0 = a * JRNL_ENTRY_BYTES / JRNL_ALIGN * JRNL_ALIGN;
		uint64_t b1 = jrnl_align((a + run) * JRNL_ENTRY_BYTES);

		err = vwr(j, p->shadow + b0, p->h.meta_offset + b0, b1 - b0);
		n -= run;
		a = 0;
	}
	return err;
}

static void primary_header_snapshot(struct pair *p, struct jrnl_hdr *snap)
{
	p->h.jin_hint = p->next_seq;
	p->h.applied = p->applied;
	p->h.confirmed = p->confirmed;
	*snap = p->h;
	p->hdr_applied = p->applied;
}

/* One batch: data (one write per lap), then metadata. Called without mu. */
static int write_batch(struct pair *p, struct vol *j, struct waiter *first, struct waiter *last)
{
	uint64_t start = first->e.pos, end, lap_end;
	int err = 0;

	for (struct waiter *w = first; ; w = w->next) {
		jrnl_entry_encode(&w->e, p->shadow + (w->e.seq % jrnl_slots(&p->h)) * JRNL_ENTRY_BYTES);
		if (w == last)
			break;
	}
	/* data: contiguous positions except at a lap change */
	for (struct waiter *w = first; w && !err; ) {
		struct waiter *x = w;

		start = w->e.pos;
		lap_end = start - start % p->h.data_bytes + p->h.data_bytes;
		end = start;
		while (x && x->e.pos < lap_end && x->e.pos >= start) {
			end = x->e.pos + jrnl_align(jrnl_entry_len(&x->e));
			if (x == last) {
				x = NULL;
				break;
			}
			x = x->next;
		}
		if (end - start > p->batch_cap) {
			free(p->batch);
			p->batch_cap = end - start;
			p->batch = aligned_alloc(4096, p->batch_cap);
			if (!p->batch) {
				p->batch_cap = 0;
				return -ENOMEM;
			}
		}
		for (struct waiter *y = w; y != x; y = y->next) {
			uint64_t l = jrnl_entry_len(&y->e), al = jrnl_align(l);
			uint8_t *d = p->batch + (y->e.pos - start);

			memcpy(d, y->buf, l);
			memset(d + l, 0, al - l);
			if (y->next != x && y->next && y->next->e.pos > y->e.pos + al)
				memset(d + al, 0, y->next->e.pos - (y->e.pos + al));
			if (y == last)
				break;
		}
		err = vwr(j, p->batch, jrnl_data_off(&p->h, start), end - start);
		w = x;
	}
	if (!err)
		err = write_meta(p, j, first->e.seq, last->e.seq);
	return err;
}

static void *primary_thread(void *arg)
{
	struct pair *p = arg;
	struct timespec last_hdr;

	clock_gettime(CLOCK_MONOTONIC, &last_hdr);
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct waiter *first, *last, *w;
		struct vol *j;
		uint64_t bytes = 0;
		struct timespec now, until;
		int err;

		if (p->need_persist) {
			struct pair_cfg c = p->cfg;

			p->need_persist = 0;
			pthread_mutex_unlock(&p->mu);
			if (p->env.persist)
				p->env.persist(p->env.ctx, &c);
			pthread_mutex_lock(&p->mu);
			continue;
		}
		if (!p->qhead) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (p->ready && p->pjnl && p->applied != p->hdr_applied &&
			    now.tv_sec - last_hdr.tv_sec >= 1) {
				struct jrnl_hdr snap;

				primary_header_snapshot(p, &snap);
				j = p->pjnl;
				vol_get(j);
				pthread_mutex_unlock(&p->mu);
				if ((err = write_hdr(p, j, &snap)))
					tlog(TLOG_ERR, "pair %u: cannot write the journal header: %s",
					     p->cfg.id, strerror(-err));
				vol_put(j);
				last_hdr = now;
				pthread_mutex_lock(&p->mu);
				continue;
			}
			deadline(&until, 0.5);
			pthread_cond_timedwait(&p->wcv, &p->mu, &until);
			continue;
		}
		/* group commit: with other host writes in flight (their P-VOL writes), wait a moment
		 * for them to queue as well, so one journal write carries several entries */
		{
			uint64_t queued = 0, inflight = p->next_seq - 1 - p->applied;

			for (struct waiter *q = p->qhead; q; q = q->next)
				queued++;
			if (queued < GROUP_MIN && inflight > queued) {
				deadline(&until, GROUP_WAIT_S);
				while (!p->stop && pthread_cond_timedwait(&p->wcv, &p->mu, &until) !=
				       ETIMEDOUT) {
					queued = 0;
					for (struct waiter *q = p->qhead; q; q = q->next)
						queued++;
					if (queued >= GROUP_MIN || p->next_seq - 1 - p->applied <= queued)
						break;
				}
			}
		}
		first = last = p->qhead;
		bytes = jrnl_align(jrnl_entry_len(&first->e));
		while (last->next && bytes + jrnl_align(jrnl_entry_len(&last->next->e)) <= BATCH_MAX_BYTES) {
			last = last->next;
			bytes += jrnl_align(jrnl_entry_len(&last->e));
		}
		p->qhead = last->next;
		if (!p->qhead)
			p->qtail = NULL;
		last->next = NULL;
		j = p->pjnl;
		if (j)
			vol_get(j);
		pthread_mutex_unlock(&p->mu);
		err = j ? write_batch(p, j, first, last) : -EAGAIN;
		if (j)
			vol_put(j);
		pthread_mutex_lock(&p->mu);
		if (err) {
			/* the sequences are gone: journaling cannot go on without a gap */
			tlog(TLOG_ERR, "pair %u: journal write failed (%s): the pair is suspended; host "
			     "writes go on unjournaled and the pair needs a new copy", p->cfg.id,
			     strerror(-err));
			p->cfg.state = PAIR_SUSPENDED;
			snprintf(p->cfg.reason, sizeof(p->cfg.reason), "journal write failed: %s",
				 strerror(-err));
			p->ready = 0;
		} else {
			p->durable = last->e.seq;
			p->batches++;
		}
		for (w = first; w; w = w->next) {
			w->err = err;
			w->done = 1;
		}
		pthread_cond_broadcast(&p->dcv);
		if (err) {
			struct pair_cfg c = p->cfg;

			pthread_mutex_unlock(&p->mu);
			if (p->env.persist)
				p->env.persist(p->env.ctx, &c);
			pthread_mutex_lock(&p->mu);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* The journal and the P-VOL are both here: load, scan for journal-in, redo. Called with mu
 * held and no host write journaling (ready = 0); drops mu for the I/O. */
static int primary_load(struct pair *p)
{
	struct vol *j = p->pjnl, *pvs[PAIR_MAX_VOLS];
	struct jrnl_hdr h;
	uint64_t s, slots, redo = 0, pos;
	/* suspended: writes went to the P-VOL unjournaled after the entries; redoing an entry
	 * could put older data over them (the resync copies those ranges anyway) */
	int may_redo = p->cfg.state != PAIR_SUSPENDED;
	int err;
	char u1[37], u2[37];

	vol_get(j);
	for (int i = 0; i < nvols(p); i++) {
		pvs[i] = p->pvols[i];
		vol_get(pvs[i]);
	}
	pthread_mutex_unlock(&p->mu);
	if ((err = jrnl_hdr_read(vrd, j, &h))) {
		tlog(TLOG_ERR, "pair %u: journal volid %" PRIu64 ": %s", p->cfg.id, j->volid,
		     err == -ENODATA ? "no journal header" : err == -EBADMSG ?
		     "both journal headers are damaged" : strerror(-err));
		goto out;
	}
	if (h.role != JRNL_ROLE_PRIMARY || memcmp(h.uuid, p->cfg.juuid, 16)) {
		jrnl_uuid_str(h.uuid, u1);
		jrnl_uuid_str(p->cfg.juuid, u2);
		tlog(TLOG_ERR, "pair %u: journal volid %" PRIu64 " holds journal %s (%s), not this "
		     "pair's primary journal %s: not journaling", p->cfg.id, j->volid, u1,
		     h.role == JRNL_ROLE_PRIMARY ? "primary" : "auxiliary", u2);
		err = -EINVAL;
		goto out;
	}
	if (h.data_offset + h.data_bytes > j->size_bytes) {
		tlog(TLOG_ERR, "pair %u: journal volid %" PRIu64 " is smaller than its header says",
		     p->cfg.id, j->volid);
		err = -EINVAL;
		goto out;
	}
	free(p->shadow);
	free(p->ent_pos);
	p->shadow = aligned_alloc(4096, h.meta_bytes);
	slots = h.meta_bytes / JRNL_ENTRY_BYTES;
	p->ent_pos = calloc(slots, sizeof(uint64_t));
	if (!p->shadow || !p->ent_pos) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = vol_read(j, p->shadow, h.meta_offset, h.meta_bytes))) {
		tlog(TLOG_ERR, "pair %u: cannot read the journal's metadata: %s", p->cfg.id,
		     strerror(-err));
		goto out;
	}
	p->h = h;
	/* scan: valid contiguous entries from journal-out */
	pos = h.jout_pos;
	for (s = h.jout; s - h.jout < slots; s++) {
		struct jrnl_entry e;

		if (jrnl_entry_parse(p->shadow + (s % slots) * JRNL_ENTRY_BYTES, JRNL_ENTRY_BYTES, &e) ||
		    e.seq != s || jrnl_entry_check(&h, &e) || e.pos < pos)
			break;
		p->ent_pos[s % slots] = e.pos;
		pos = e.pos + jrnl_align(jrnl_entry_len(&e));
	}
	/* redo what may not have reached the P-VOL */
	{
		uint64_t from = h.applied + 1 > h.jout ? h.applied + 1 : h.jout;

		if (!may_redo)
			from = UINT64_MAX;
		uint8_t *buf = NULL;
		size_t cap = 0;

		for (uint64_t r = from; r < s; r++) {
			struct jrnl_entry e;
			uint64_t len;

			jrnl_entry_parse(p->shadow + (r % slots) * JRNL_ENTRY_BYTES, JRNL_ENTRY_BYTES, &e);
			len = jrnl_entry_len(&e);
			if (len > cap) {
				free(buf);
				cap = jrnl_align(len);
				if (!(buf = aligned_alloc(4096, cap))) {
					err = -ENOMEM;
					break;
				}
			}
			if ((err = vol_read(j, buf, jrnl_data_off(&h, e.pos), len)))
				break;
			if (tcrc32c(buf, len) != e.data_crc) {
				tlog(TLOG_WARN, "pair %u: entry %" PRIu64 " has torn data: the journal ends "
				     "before it (its host write was never acknowledged)", p->cfg.id, r);
				s = r;
				pos = e.pos;
				memset(p->shadow + (r % slots) * JRNL_ENTRY_BYTES, 0, JRNL_ENTRY_BYTES);
				err = write_meta(p, j, r, r);
				break;
			}
			{
				int vi = vol_index(p, p->cfg.pvols, e.volid);

				if (vi < 0 || (uint64_t)e.lba * e.block_bytes + len > pvs[vi]->size_bytes) {
					tlog(TLOG_ERR, "pair %u: entry %" PRIu64 " names volid %" PRIu64
					     " lba %" PRIu64 ": not this pair's volume; redo stops",
					     p->cfg.id, r, e.volid, e.lba);
					err = -EINVAL;
					break;
				}
				if ((err = vwr(pvs[vi], buf, e.lba * e.block_bytes, len)))
					break;
			}
			redo++;
		}
		free(buf);
		if (err)
			goto out;
		for (int i = 0; i < nvols(p) && redo && !err; i++)
			err = vol_flush(pvs[i]);
		if (err)
			goto out;
	}
	/* orphans: records of a batch torn by a crash that lie past the first bad one. Their
	 * host writes were never acknowledged and are not redone; clear them, or a reader would
	 * take one for the entry of the same sequence written after this restart. */
	{
		uint64_t cleared = 0;

		for (uint64_t k = 0; k < slots; k++) {
			struct jrnl_entry e;
			uint8_t *rec = p->shadow + k * JRNL_ENTRY_BYTES;

			if (jrnl_entry_parse(rec, JRNL_ENTRY_BYTES, &e) == 0 && e.seq >= s) {
				memset(rec, 0, JRNL_ENTRY_BYTES);
				if ((err = vwr(j, p->shadow + k * JRNL_ENTRY_BYTES / JRNL_ALIGN * JRNL_ALIGN,
					       h.meta_offset + k * JRNL_ENTRY_BYTES / JRNL_ALIGN * JRNL_ALIGN,
					       JRNL_ALIGN)))
					goto out;
				cleared++;
			}
		}
		if (cleared)
			tlog(TLOG_WARN, "pair %u: %" PRIu64 " journal records past journal-in %" PRIu64
			     " (a batch cut short by a crash, never acknowledged) cleared", p->cfg.id,
			     cleared, s);
	}
	pthread_mutex_lock(&p->mu);
	p->next_seq = s;
	p->next_pos = pos;
	p->purge_req = h.jout - 1;
	p->durable = s - 1;
	p->applied = s - 1;
	p->confirmed = h.confirmed > s - 1 ? s - 1 : h.confirmed;
	if (p->confirmed < h.jout - 1)
		p->confirmed = h.jout - 1;
	memset(p->done, 0, DONE_W);
	{
		struct jrnl_hdr snap;

		primary_header_snapshot(p, &snap);
		pthread_mutex_unlock(&p->mu);
		err = write_hdr(p, j, &snap);
	}
	if (!err)
		tlog(TLOG_WARN, "pair %u: journaling volid %" PRIu64 " into volid %" PRIu64
		     ": journal-out %" PRIu64 ", journal-in %" PRIu64 ", %" PRIu64 " entries redone "
		     "onto the primary volume%s", p->cfg.id, pvs[0]->volid, j->volid, h.jout, s, redo,
		     nvols(p) > 1 ? " (and the other volumes of the group)" : "");
out:
	vol_put(j);
	for (int i = 0; i < nvols(p); i++)
		vol_put(pvs[i]);
	pthread_mutex_lock(&p->mu);
	if (!err && p->pjnl == j && all_here(p, p->pvols)) {
		p->ready = 1;
		pthread_cond_broadcast(&p->cv);
	}
	return err;
}

int pair_confirm(struct pair *p, uint64_t read_completed)
{
	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_PRIMARY || !p->ready) {
		pthread_mutex_unlock(&p->mu);
		return p->cfg.role != PAIR_PRIMARY ? -EINVAL : -EAGAIN;
	}
	if (read_completed > p->durable)
		read_completed = p->durable;
	if (read_completed > p->confirmed)
		p->confirmed = read_completed;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* Move journal-out up to min(purge_req, confirmed, applied): never past an entry the auxiliary
 * device lacks, nor past one whose P-VOL write has not happened (a crash would redo from
 * journal-out and miss it). mu held. */
static void purge_to(struct pair *p)
{
	uint64_t upto = p->purge_req;

	if (upto > p->confirmed)
		upto = p->confirmed;
	if (upto > p->applied)
		upto = p->applied;
	if (upto + 1 > p->h.jout) {
		uint64_t s = upto + 1;

		p->h.jout_pos = s < p->next_seq ? p->ent_pos[s % jrnl_slots(&p->h)] : p->next_pos;
		p->h.jout = s;
		pthread_cond_broadcast(&p->cv);     /* host writes waiting for room */
	}
}

int pair_purge(struct pair *p, uint64_t upto, uint64_t *jout)
{
	struct jrnl_hdr snap;
	struct vol *j;
	int err = 0;

	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_PRIMARY || !p->ready || !p->pjnl) {
		err = p->cfg.role != PAIR_PRIMARY ? -EINVAL : -EAGAIN;
		*jout = p->h.jout;
		pthread_mutex_unlock(&p->mu);
		return err;
	}
	if (upto > p->purge_req)
		p->purge_req = upto < p->confirmed ? upto : p->confirmed;
	purge_to(p);
	*jout = p->h.jout;
	primary_header_snapshot(p, &snap);
	j = p->pjnl;
	vol_get(j);
	pthread_mutex_unlock(&p->mu);
	err = write_hdr(p, j, &snap);
	vol_put(j);
	return err;
}

int pair_freeze(struct pair *p, uint64_t *last)
{
	struct timespec until;
	int err = 0;

	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_PRIMARY || (p->cfg.state != PAIR_JOURNALING &&
					    p->cfg.state != PAIR_FROZEN)) {
		err = p->cfg.role != PAIR_PRIMARY ? -EINVAL : -EBUSY;
		pthread_mutex_unlock(&p->mu);
		return err;
	}
	if (!p->ready) {
		pthread_mutex_unlock(&p->mu);
		return -EAGAIN;
	}
	p->cfg.state = PAIR_FROZEN;
	/* writes already past their sequence number finish; new ones are refused */
	deadline(&until, 30);
	p->applied_waiters++;
	while (p->applied + 1 < p->next_seq || p->qhead)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT) {
			err = -ETIMEDOUT;
			break;
		}
	p->applied_waiters--;
	*last = p->next_seq - 1;
	if (err) {
		p->cfg.state = PAIR_JOURNALING;
		pthread_mutex_unlock(&p->mu);
		return err;
	}
	{
		struct jrnl_hdr snap;
		struct vol *j = p->pjnl;

		primary_header_snapshot(p, &snap);
		vol_get(j);
		pthread_mutex_unlock(&p->mu);
		err = write_hdr(p, j, &snap);
		vol_put(j);
		pthread_mutex_lock(&p->mu);
	}
	tlog(TLOG_WARN, "pair %u: frozen for a swap at sequence %" PRIu64 ": host writes to volid %"
	     PRIu64 " are refused until it ends", p->cfg.id, *last, p->cfg.pvol);
	return err ? (pthread_mutex_unlock(&p->mu), err) : persist_now(p);
}

int pair_thaw(struct pair *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_PRIMARY || p->cfg.state != PAIR_FROZEN) {
		pthread_mutex_unlock(&p->mu);
		return p->cfg.role != PAIR_PRIMARY ? -EINVAL : 0;
	}
	p->cfg.state = PAIR_JOURNALING;
	tlog(TLOG_WARN, "pair %u: swap undone: journaling again", p->cfg.id);
	return persist_now(p);
}

/* Granules of entries [s0, s1] (from the metadata image) into each volume's bitmap. mu held. */
static int entries_to_bm(struct pair *p, uint64_t s0, uint64_t s1, uint64_t *entries,
			 uint64_t *bytes)
{
	uint64_t slots = jrnl_slots(&p->h);
	int err = 0;

	for (uint64_t s = s0; s <= s1 && s0 <= s1 && !err; s++) {
		struct jrnl_entry e;
		int vi;

		if (jrnl_entry_parse(p->shadow + (s % slots) * JRNL_ENTRY_BYTES, JRNL_ENTRY_BYTES,
				     &e) || e.seq != s || e.flags & JRNL_FLAG_MARKER)
			continue;
		if ((vi = vol_index(p, p->cfg.pvols, e.volid)) < 0 || !p->bm[vi])
			continue;
		err = pbm_set_bytes(p->bm[vi], e.lba * e.block_bytes, jrnl_entry_len(&e));
		if (entries)
			(*entries)++;
		if (bytes)
			*bytes += jrnl_entry_len(&e);
	}
	return err;
}

int pair_resync_primary(struct pair *p, uint8_t uuid[16], char *why, size_t why_len)
{
	struct vol *j;
	uint64_t n = 0, b = 0;
	int err;

	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_PRIMARY || p->cfg.state == PAIR_FROZEN || !p->pjnl ||
	    !all_here(p, p->pvols) || !bms_ready(p)) {
		snprintf(why, why_len, "%s", p->cfg.role != PAIR_PRIMARY ? "not the primary device" :
			 p->cfg.state == PAIR_FROZEN ? "a swap is under way" : !bms_ready(p) ?
			 "no change bitmap" : "a volume is missing");
		pthread_mutex_unlock(&p->mu);
		return -EBUSY;
	}
	/* no new journal entries from here: writes go to the bitmap while the journal is redone */
	p->cfg.state = PAIR_SUSPENDED;
	p->applied_waiters++;
	while (p->applied + 1 < p->next_seq || p->qhead) {
		struct timespec until;

		deadline(&until, 0.1);
		pthread_cond_timedwait(&p->cv, &p->mu, &until);
	}
	p->applied_waiters--;
	/* what the journal still holds has not reached the auxiliary volume for sure */
	if (p->ready && (err = entries_to_bm(p, p->h.jout, p->next_seq - 1, &n, &b))) {
		snprintf(why, why_len, "cannot record the journal's entries in the bitmap: %s",
			 strerror(-err));
		pthread_mutex_unlock(&p->mu);
		return err;
	}
	/* the new journal's uuid is in the table before the journal is: a kill -9 in between
	 * leaves a suspended pair whose next resync formats again */
	p->ready = 0;
	jrnl_new_uuid(uuid);
	memcpy(p->cfg.juuid, uuid, 16);
	p->cfg.resynced = 1;
	if ((err = persist_now(p))) {
		snprintf(why, why_len, "cannot record the resync in the tables: %s", strerror(-err));
		return err;
	}
	pthread_mutex_lock(&p->mu);
	j = p->pjnl;
	if (!j) {
		pthread_mutex_unlock(&p->mu);
		snprintf(why, why_len, "the journal volume went away");
		return -ENODEV;
	}
	vol_get(j);
	pthread_mutex_unlock(&p->mu);
	err = format_primary(j, p->cfg.id, uuid, uuid, why, why_len);
	pthread_mutex_lock(&p->mu);
	if (!err) {
		p->cfg.state = PAIR_JOURNALING;
		p->cfg.reason[0] = 0;
		p->suspended_since_resync = 0;
		if (all_here(p, p->pvols) && p->pjnl)
			err = primary_load(p);
	}
	vol_put(j);
	if (!err)
		tlog(TLOG_WARN, "pair %u: delta resync: %" PRIu64 " unsent journal entries (%" PRIu64
		     " bytes) added to the change bitmap (%" PRIu64 " granules of %" PRIu64 " bytes to "
		     "copy); journaling again into a new journal", p->cfg.id, n, b, bms_count(p),
		     p->cfg.granule_bytes);
	else if (!why[0])
		snprintf(why, why_len, "cannot load the new journal: %s", strerror(-err));
	{
		int perr = persist_now(p);

		return err ? err : perr;
	}
}

int pair_takeover_done(struct pair *p)
{
	pthread_mutex_lock(&p->mu);
	p->cfg.takeover_seq = 0;
	return persist_now(p);
}

int pair_delta_done(struct pair *p)
{
	int err = 0;

	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_PRIMARY || !bms_ready(p)) {
		err = -EINVAL;
	} else if (p->suspended_since_resync || p->cfg.state != PAIR_JOURNALING) {
		err = -ESTALE;
	} else {
		for (int i = 0; i < nvols(p) && !err; i++)
			err = pbm_clear_all(p->bm[i]);
		if (!err && p->cfg.resynced) {
			p->cfg.resynced = 0;
			tlog(TLOG_WARN, "pair %u: the auxiliary device copied the delta: change bitmap "
			     "cleared", p->cfg.id);
			return persist_now(p);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return err;
}

int pair_dirty_runs(struct pair *p, int vi, uint64_t from, int max, uint64_t *first,
		    uint64_t *count, uint64_t *next)
{
	struct pbm *bm;
	int n = 0;
	uint64_t g = from;

	pthread_mutex_lock(&p->mu);
	if (vi < 0 || vi >= nvols(p) || !(bm = p->bm[vi])) {
		pthread_mutex_unlock(&p->mu);
		return -ENODEV;
	}
	while (n < max && pbm_next(bm, g, &g) == 0) {
		uint64_t e = g;

		while (e + 1 < pbm_bits(bm) && pbm_get(bm, e + 1))
			e++;
		first[n] = g;
		count[n] = e - g + 1;
		n++;
		g = e + 1;
	}
	*next = n < max ? pbm_bits(bm) : g;
	pthread_mutex_unlock(&p->mu);
	return n;
}

int pair_tail_granules(struct pair *p, uint64_t seq, uint64_t *entries, uint64_t *bytes,
		       uint64_t *granules)
{
	int err;

	*entries = *bytes = 0;
	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_PRIMARY || !bms_ready(p)) {
		pthread_mutex_unlock(&p->mu);
		return p->cfg.role != PAIR_PRIMARY ? -EINVAL : -ENODEV;
	}
	/* written unjournaled while suspended: already in the bitmaps */
	if (granules)
		*granules = bms_count(p);
	err = !p->ready ? 0 : entries_to_bm(p, seq + 1 > p->h.jout ? seq + 1 : p->h.jout,
					     p->next_seq - 1, entries, bytes);
	pthread_mutex_unlock(&p->mu);
	return err;
}

/* ---- aux: copy, acquisition, restore ---- */

static void set_error(struct pair *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct pair *p, const char *fmt, ...)
{
	va_list ap;
	char msg[200];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&p->mu);
	if (strcmp(msg, p->last_error))
		tlog(TLOG_WARN, "pair %u: %s", p->cfg.id, msg);
	snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
	pthread_mutex_unlock(&p->mu);
}

static int aux_load(struct pair *p)
{
	struct vol *j = p->sjnl;
	struct jrnl_hdr h;
	int err;
	char u1[37], u2[37];

	vol_get(j);
	pthread_mutex_unlock(&p->mu);
	if ((err = jrnl_hdr_read(vrd, j, &h))) {
		tlog(TLOG_ERR, "pair %u: auxiliary journal volid %" PRIu64 ": %s", p->cfg.id, j->volid,
		     err == -ENODATA ? "no journal header" : "both journal headers are damaged");
		goto out;
	}
	if (h.role != JRNL_ROLE_AUX || memcmp(h.uuid, p->cfg.juuid, 16) ||
	    h.data_offset + h.data_bytes > j->size_bytes) {
		jrnl_uuid_str(h.uuid, u1);
		jrnl_uuid_str(p->cfg.juuid, u2);
		tlog(TLOG_ERR, "pair %u: volid %" PRIu64 " holds journal %s, not this pair's "
		     "auxiliary journal for %s", p->cfg.id, j->volid, u1, u2);
		err = -EINVAL;
		goto out;
	}
	free(p->shadow);
	if (!(p->shadow = aligned_alloc(4096, h.meta_bytes))) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = vol_read(j, p->shadow, h.meta_offset, h.meta_bytes)))
		goto out;
	/* the targets are as durable as the pointers they aim past */
	if (h.to_be_read < h.read_completed)
		h.to_be_read = h.read_completed;
	if (h.to_be_restored < h.restore_completed)
		h.to_be_restored = h.restore_completed;
	pthread_mutex_lock(&p->mu);
	p->h = h;
	if (p->known_head < h.read_completed)
		p->known_head = h.read_completed;
	pthread_mutex_unlock(&p->mu);
	tlog(TLOG_WARN, "pair %u: auxiliary journal volid %" PRIu64 ": restore-completed %" PRIu64
	     ", read-completed %" PRIu64, p->cfg.id, j->volid, h.restore_completed, h.read_completed);
out:
	vol_put(j);
	pthread_mutex_lock(&p->mu);
	if (!err && p->sjnl == j)
		p->ready = 1;
	return err;
}

struct aux_vols {
	int n;
	struct vol *svols[PAIR_MAX_VOLS], *src_pvols[PAIR_MAX_VOLS], *sjnl, *src_pjnl;
	uint64_t total;                /* the volumes' bytes, one after another (the copy) */
};

static int take_vols(struct pair *p, struct aux_vols *a)
{
	if (!p->ready || !all_here(p, p->svols) || !p->sjnl || !all_here(p, p->src_pvols) ||
	    !p->src_pjnl)
		return 0;
	a->n = nvols(p);
	a->total = 0;
	for (int i = 0; i < a->n; i++) {
		a->svols[i] = p->svols[i];
		a->src_pvols[i] = p->src_pvols[i];
		vol_get(a->svols[i]);
		vol_get(a->src_pvols[i]);
		a->total += a->src_pvols[i]->size_bytes;
	}
	a->sjnl = p->sjnl;
	a->src_pjnl = p->src_pjnl;
	vol_get(a->sjnl);
	vol_get(a->src_pjnl);
	return 1;
}

static void put_vols(struct aux_vols *a)
{
	for (int i = 0; i < a->n; i++) {
		vol_put(a->svols[i]);
		vol_put(a->src_pvols[i]);
	}
	vol_put(a->sjnl);
	vol_put(a->src_pjnl);
}

static void throttle(struct pair *p, uint64_t bytes)
{
	struct timespec now;
	double rate, dt;

	if (!p->cfg.auto_mode || !p->cfg.rate_mb)
		return;
	rate = (double)p->cfg.rate_mb * 1e6;
	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (double)(now.tv_sec - p->tok_t.tv_sec) + (double)(now.tv_nsec - p->tok_t.tv_nsec) / 1e9;
	p->tok_t = now;
	p->tokens += dt * rate;
	if (p->tokens > rate)
		p->tokens = rate;        /* one second of burst */
	p->tokens -= (double)bytes;
	if (p->tokens < 0) {
		struct timespec until;

		deadline(&until, -p->tokens / rate);
		pthread_mutex_lock(&p->mu);
		while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&p->mu);
	}
}

/* One granule of a delta copy. 1 more, 0 done, -errno. */
static int delta_step(struct pair *p, struct aux_vols *a, uint8_t *buf)
{
	uint64_t g = 0, gb, off, n;
	char why[300];
	int err, vi;

	if (!bms_ready(p))
		return -ENODEV;
	if (!p->cfg.delta_fetched) {
		if (!p->env.fetch_dirty)
			return -ENOSYS;
		for (vi = 0; vi < a->n; vi++) {
			if ((err = p->env.fetch_dirty(p->env.ctx, &p->cfg, vi, p->bm[vi], why,
						      sizeof(why)))) {
				set_error(p, "delta copy: cannot fetch the primary's changed granules: %s",
					  why);
				return err;
			}
		}
		pthread_mutex_lock(&p->mu);
		p->cfg.delta_fetched = 1;
		tlog(TLOG_WARN, "pair %u: delta copy of %" PRIu64 " granules of %" PRIu64 " bytes "
		     "begins; the auxiliary volume is inconsistent until it ends", p->cfg.id,
		     bms_count(p), p->cfg.granule_bytes);
		return persist_now(p) ? 1 : 1;
	}
	for (vi = 0; vi < a->n; vi++)
		if (pbm_next(p->bm[vi], 0, &g) == 0)
			break;
	if (vi == a->n) {
		if (p->env.delta_done && (err = p->env.delta_done(p->env.ctx, &p->cfg, why,
								   sizeof(why)))) {
			set_error(p, "delta copy done, but the primary cannot clear its bitmap: %s", why);
			return err;
		}
		pthread_mutex_lock(&p->mu);
		p->cfg.state = PAIR_PAIRED;
		p->cfg.delta = 0;
		p->cfg.delta_fetched = 0;
		p->cfg.copy_pos = a->total;
		tlog(TLOG_WARN, "pair %u: delta copy done: paired (restore resumes)", p->cfg.id);
		return persist_now(p) ? 0 : 0;
	}
	gb = pbm_granule(p->bm[vi]);
	off = g * gb;
	n = off + gb > a->src_pvols[vi]->size_bytes ? a->src_pvols[vi]->size_bytes - off : gb;
	while (n) {
		uint64_t c = n < COPY_CHUNK ? n : COPY_CHUNK;

		throttle(p, c);
		if ((err = vol_read(a->src_pvols[vi], buf, off, c))) {
			set_error(p, "delta copy: reading primary volume %d at %" PRIu64 ": %s", vi, off,
				  strerror(-err));
			return err;
		}
		if ((err = vwr(a->svols[vi], buf, off, c))) {
			set_error(p, "delta copy: writing auxiliary volume %d at %" PRIu64 ": %s", vi,
				  off, strerror(-err));
			return err;
		}
		off += c;
		n -= c;
	}
	pbm_clear(p->bm[vi], g);
	pthread_mutex_lock(&p->mu);
	p->link_up = 1;
	pthread_mutex_unlock(&p->mu);
	return 1;
}

/* Part of a copy step on its own thread: the peer's pooled sessions serve reads in parallel. */
struct copy_part {
	struct vol *src, *dst;
	uint8_t *buf;
	uint64_t off, len;
	int err, is_read_err;
};

static void *copy_part_main(void *arg)
{
	struct copy_part *c = arg;

	if ((c->err = vol_read(c->src, c->buf, c->off, c->len)))
		c->is_read_err = 1;
	else
		c->err = vwr(c->dst, c->buf, c->off, c->len);
	return NULL;
}

/* One copy step: COPY_CHUNK bytes as COPY_PAR parts at once. 1 more, 0 done, -errno. */
static int copy_step(struct pair *p, struct aux_vols *a, uint8_t *buf)
{
	uint64_t pos, total = a->total, n, part, base;
	struct copy_part parts[COPY_PAR];
	pthread_t th[COPY_PAR];
	int started[COPY_PAR] = { 0 }, np = 0, err = 0, vi = 0;

	pthread_mutex_lock(&p->mu);
	pos = p->cfg.copy_pos;
	pthread_mutex_unlock(&p->mu);
	if (pos >= total)
		return 0;
	/* the volumes one after another: this step stays within one of them */
	while (vi + 1 < a->n && pos >= vol_base(a->src_pvols, vi + 1))
		vi++;
	base = vol_base(a->src_pvols, vi);
	n = base + a->src_pvols[vi]->size_bytes - pos;
	if (n > COPY_CHUNK)
		n = COPY_CHUNK;
	throttle(p, n);
	part = (n + COPY_PAR - 1) / COPY_PAR;
	part = (part + a->src_pvols[vi]->block_bytes - 1) / a->src_pvols[vi]->block_bytes *
		a->src_pvols[vi]->block_bytes;
	for (uint64_t o = 0; o < n && np < COPY_PAR; o += part, np++) {
		parts[np] = (struct copy_part){ .src = a->src_pvols[vi], .dst = a->svols[vi],
						.buf = buf + o, .off = pos - base + o,
						.len = n - o < part ? n - o : part };
		started[np] = !pthread_create(&th[np], NULL, copy_part_main, &parts[np]);
		if (!started[np])
			copy_part_main(&parts[np]);
	}
	for (int i = 0; i < np; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		if (parts[i].err && !err) {
			err = parts[i].err;
			set_error(p, "copy: %s the %s volume at %" PRIu64 ": %s",
				  parts[i].is_read_err ? "reading" : "writing",
				  parts[i].is_read_err ? "primary" : "auxiliary", parts[i].off,
				  strerror(-err));
		}
	}
	if (err)
		return err;
	pthread_mutex_lock(&p->mu);
	p->cfg.copy_pos = pos + n;
	p->link_up = 1;
	if (pos + n >= total || (pos + n) / COPY_CHECKPOINT != pos / COPY_CHECKPOINT) {
		struct pair_cfg c;

		if (pos + n >= total) {
			p->cfg.state = PAIR_PAIRED;
			tlog(TLOG_WARN, "pair %u: copy done (%" PRIu64 " bytes): paired", p->cfg.id, total);
		}
		c = p->cfg;
		pthread_mutex_unlock(&p->mu);
		if ((err = vol_flush(a->svols[vi])))
			return err;
		if (p->env.persist)
			p->env.persist(p->env.ctx, &c);
		return pos + n >= total ? 0 : 1;
	}
	pthread_mutex_unlock(&p->mu);
	return 1;
}

/* Read [s0 .. s0+n-1]'s records from the primary journal into rec. */
static int read_records(struct pair *p, struct vol *src, uint64_t s0, uint64_t n, uint8_t *rec)
{
	uint64_t slots = jrnl_slots(&p->h), a = s0 % slots, done = 0;
	uint8_t *tmp = NULL;
	int err = 0;

	tmp = aligned_alloc(4096, jrnl_align(n * JRNL_ENTRY_BYTES) + JRNL_ALIGN);
	if (!tmp)
		return -ENOMEM;
	while (done < n && !err) {
		uint64_t run = slots - a < n - done ? slots - a : n - done;
		uint64_t b0 = a * JRNL_ENTRY_BYTES / JRNL_ALIGN * JRNL_ALIGN;
		uint64_t b1 = jrnl_align((a + run) * JRNL_ENTRY_BYTES);

		if (!(err = vol_read(src, tmp, p->h.meta_offset + b0, b1 - b0)))
			memcpy(rec + done * JRNL_ENTRY_BYTES, tmp + (a * JRNL_ENTRY_BYTES - b0),
			       run * JRNL_ENTRY_BYTES);
		done += run;
		a = 0;
	}
	free(tmp);
	return err;
}

/* Read (from `src`) or write (to `dst`) the data of entries e[0..n-1], contiguous per lap. */
static int data_io(struct pair *p, struct vol *v, int is_write, const struct jrnl_entry *e,
		   uint64_t n, uint8_t *buf, uint64_t buf_start)
{
	uint64_t i = 0;
	int err = 0;

	while (i < n && !err) {
		uint64_t start = e[i].pos, lap_end = start - start % p->h.data_bytes + p->h.data_bytes;
		uint64_t end = start;

		while (i < n && e[i].pos < lap_end && e[i].pos >= start) {
			end = e[i].pos + jrnl_align(jrnl_entry_len(&e[i]));
			i++;
		}
		if (is_write)
			err = vwr(v, buf + (start - buf_start), jrnl_data_off(&p->h, start), end - start);
		else
			err = vol_read(v, buf + (start - buf_start), jrnl_data_off(&p->h, start),
				       end - start);
	}
	return err;
}

/* Acquire up to `target`. Returns entries acquired (>= 0) or -errno. */
static int acquire_step(struct pair *p, struct aux_vols *a, uint64_t target)
{
	uint64_t s0, n, slots = jrnl_slots(&p->h), got = 0, bytes = 0, rc, rpos;
	struct jrnl_entry *e = NULL;
	uint8_t *rec = NULL, *data = NULL;
	struct jrnl_hdr snap;
	int err = 0;

	pthread_mutex_lock(&p->mu);
	s0 = p->h.read_completed + 1;
	rc = p->h.restore_completed;
	rpos = p->h.restore_pos;
	pthread_mutex_unlock(&p->mu);
	if (target < s0)
		return 0;
	n = target - s0 + 1;
	if (n > ACQ_MAX_ENTRIES)
		n = ACQ_MAX_ENTRIES;
	/* the aux journal's slots: s may land only where s - slots was restored */
	if (s0 + n - 1 > rc + slots)
		n = rc + slots >= s0 ? rc + slots - s0 + 1 : 0;
	if (!n)
		return 0;
	rec = malloc(n * JRNL_ENTRY_BYTES);
	e = calloc(n, sizeof(*e));
	if (!rec || !e) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = read_records(p, a->src_pjnl, s0, n, rec))) {
		set_error(p, "acquire: reading the primary journal's records: %s", strerror(-err));
		goto out;
	}
	for (got = 0; got < n; got++) {
		struct jrnl_entry *x = &e[got];
		uint64_t al, prev_end = got ? e[got - 1].pos + jrnl_align(jrnl_entry_len(&e[got - 1])) :
			0;

		if (jrnl_entry_parse(rec + got * JRNL_ENTRY_BYTES, JRNL_ENTRY_BYTES, x) ||
		    x->seq != s0 + got || jrnl_entry_check(&p->h, x) || (got && x->pos < prev_end))
			break;     /* not written yet, being written, or of the previous lap */
		al = jrnl_align(jrnl_entry_len(x));
		if (x->pos + al - rpos > p->h.data_bytes)
			break;     /* would overwrite what is not restored yet */
		if (bytes + al + (got ? x->pos - prev_end : 0) > ACQ_MAX_BYTES && got)
			break;
		bytes += al + (got ? x->pos - prev_end : 0);
	}
	pthread_mutex_lock(&p->mu);
	if (got) {
		uint64_t hd = s0 + got - 1;

		if (hd > p->known_head) {
			p->known_head = hd;
			p->known_head_pos = e[got - 1].pos + jrnl_align(jrnl_entry_len(&e[got - 1]));
		}
		/* the recovery point: the oldest write not restored, as soon as it is seen */
		if (!p->first_unacq_ns && p->h.restore_completed == s0 - 1)
			p->first_unacq_ns = e[0].time_ns;
	}
	pthread_mutex_unlock(&p->mu);
	if (!got)
		goto out;
	throttle(p, bytes);
	if (!(data = aligned_alloc(4096, bytes))) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = data_io(p, a->src_pjnl, 0, e, got, data, e[0].pos))) {
		set_error(p, "acquire: reading the primary journal's data: %s", strerror(-err));
		goto out;
	}
	/* the data must match: an entry rewritten meanwhile is read again later */
	for (uint64_t i = 0; i < got; i++) {
		if (tcrc32c(data + (e[i].pos - e[0].pos), jrnl_entry_len(&e[i])) != e[i].data_crc) {
			got = i;
			break;
		}
	}
	if (!got)
		goto out;
	if ((err = data_io(p, a->sjnl, 1, e, got, data, e[0].pos))) {
		set_error(p, "acquire: writing the auxiliary journal: %s", strerror(-err));
		goto out;
	}
	for (uint64_t i = 0; i < got; i++)
		jrnl_entry_encode(&e[i], p->shadow + (e[i].seq % slots) * JRNL_ENTRY_BYTES);
	if ((err = write_meta(p, a->sjnl, s0, s0 + got - 1)) || (err = vol_flush(a->sjnl))) {
		set_error(p, "acquire: writing the auxiliary journal: %s", strerror(-err));
		goto out;
	}
	pthread_mutex_lock(&p->mu);
	p->h.read_completed = s0 + got - 1;
	if (p->h.to_be_read < p->h.read_completed)
		p->h.to_be_read = p->h.read_completed;
	p->acquired_entries += got;
	for (uint64_t i = 0; i < got; i++)
		p->acquired_bytes += jrnl_entry_len(&e[i]);
	if (p->cfg.auto_mode)
		p->h.to_be_restored = p->h.read_completed;
	if (p->h.restore_completed == s0 - 1)
		p->first_unacq_ns = e[0].time_ns;
	p->link_up = 1;
	snap = p->h;
	pthread_mutex_unlock(&p->mu);
	/* durable before the primary is told it may purge these entries */
	if ((err = write_hdr(p, a->sjnl, &snap)) || (err = vol_flush(a->sjnl)))
		set_error(p, "acquire: writing the auxiliary journal's header: %s", strerror(-err));
out:
	free(rec);
	free(e);
	free(data);
	return err ? err : (int)got;
}

/* Restore up to to_be_restored. Returns entries restored or -errno. */
static int restore_step(struct pair *p, struct aux_vols *a)
{
	uint64_t s0, target, n, slots = jrnl_slots(&p->h), bytes = 0, i;
	struct jrnl_entry *e = NULL;
	uint8_t *data = NULL;
	struct jrnl_hdr snap;
	int err = 0, vi, touched[PAIR_MAX_VOLS] = { 0 };

	pthread_mutex_lock(&p->mu);
	s0 = p->h.restore_completed + 1;
	target = p->h.to_be_restored < p->h.read_completed ? p->h.to_be_restored :
		p->h.read_completed;
	pthread_mutex_unlock(&p->mu);
	if (target < s0)
		return 0;
	n = target - s0 + 1;
	if (n > ACQ_MAX_ENTRIES)
		n = ACQ_MAX_ENTRIES;
	if (!(e = calloc(n, sizeof(*e))))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		uint64_t al;

		if (jrnl_entry_parse(p->shadow + ((s0 + i) % slots) * JRNL_ENTRY_BYTES,
				     JRNL_ENTRY_BYTES, &e[i]) || e[i].seq != s0 + i ||
		    jrnl_entry_check(&p->h, &e[i]) || (i && e[i].pos < e[i - 1].pos)) {
			if (i)
				break;
			err = -EBADMSG;
			set_error(p, "restore: the auxiliary journal's record of sequence %" PRIu64
				  " is damaged", s0);
			goto out;
		}
		al = jrnl_align(jrnl_entry_len(&e[i])) + (i ? e[i].pos - (e[i - 1].pos +
			jrnl_align(jrnl_entry_len(&e[i - 1]))) : 0);
		if (i && bytes + al > ACQ_MAX_BYTES)
			break;
		bytes += al;
	}
	n = i;
	if (!(data = aligned_alloc(4096, bytes))) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = data_io(p, a->sjnl, 0, e, n, data, e[0].pos))) {
		set_error(p, "restore: reading the auxiliary journal: %s", strerror(-err));
		goto out;
	}
	for (i = 0; i < n; i++) {
		const uint8_t *d = data + (e[i].pos - e[0].pos);
		uint64_t len = jrnl_entry_len(&e[i]);

		if (tcrc32c(d, len) != e[i].data_crc) {
			err = -EBADMSG;
			set_error(p, "restore: the data of sequence %" PRIu64 " in the auxiliary journal "
				  "is damaged", e[i].seq);
			break;
		}
		if (e[i].flags & JRNL_FLAG_MARKER)
			continue;
		/* a suspend waits for this step: stop between entries, the image stays consistent */
		if (__atomic_load_n(&p->cfg.state, __ATOMIC_ACQUIRE) == PAIR_SUSPENDED ||
		    __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
			break;
		vi = vol_index(p, p->cfg.pvols, e[i].volid);
		if (vi < 0 || e[i].block_bytes != a->svols[vi]->block_bytes ||
		    e[i].lba * e[i].block_bytes + len > a->svols[vi]->size_bytes) {
			err = -EINVAL;
			set_error(p, "restore: sequence %" PRIu64 " (lba %" PRIu64 ", %" PRIu64 " bytes) "
				  "does not fit the auxiliary volume", e[i].seq, e[i].lba, len);
			break;
		}
		touched[vi] = 1;
		if ((err = vwr(a->svols[vi], d, e[i].lba * e[i].block_bytes, len))) {
			set_error(p, "restore: writing the auxiliary volume: %s", strerror(-err));
			break;
		}
	}
	n = i;
	if (!n)
		goto out;
	for (int k = 0; k < a->n; k++) {
		int ferr = touched[k] ? vol_flush(a->svols[k]) : 0;

		if (ferr) {
			err = ferr;
			goto out;
		}
	}
	pthread_mutex_lock(&p->mu);
	p->h.restore_completed = s0 + n - 1;
	p->h.restore_pos = e[n - 1].pos + jrnl_align(jrnl_entry_len(&e[n - 1]));
	p->last_restored_ns = e[n - 1].time_ns;
	p->restored_entries += n;
	for (i = 0; i < n; i++)
		p->restored_bytes += jrnl_entry_len(&e[i]);
	{
		struct jrnl_entry nx;

		p->first_unacq_ns = 0;
		if (p->h.restore_completed < p->h.read_completed &&
		    !jrnl_entry_parse(p->shadow + ((s0 + n) % slots) * JRNL_ENTRY_BYTES,
				      JRNL_ENTRY_BYTES, &nx) && nx.seq == s0 + n)
			p->first_unacq_ns = nx.time_ns;
	}
	snap = p->h;
	pthread_mutex_unlock(&p->mu);
	if ((err = write_hdr(p, a->sjnl, &snap)))
		set_error(p, "restore: writing the auxiliary journal's header: %s", strerror(-err));
out:
	free(e);
	free(data);
	return err ? err : (int)n;
}

/* How far the primary journal goes now: scan records from read-completed + 1. */
static uint64_t probe_head(struct pair *p, struct aux_vols *a)
{
	uint64_t s0, n = 256, slots = jrnl_slots(&p->h), head;
	uint8_t *rec = malloc(n * JRNL_ENTRY_BYTES);

	pthread_mutex_lock(&p->mu);
	s0 = p->h.read_completed + 1;
	head = p->h.read_completed;
	pthread_mutex_unlock(&p->mu);
	if (!rec)
		return head;
	for (;;) {
		uint64_t i;

		if (read_records(p, a->src_pjnl, s0, n, rec))
			break;
		for (i = 0; i < n; i++) {
			struct jrnl_entry x;

			if (jrnl_entry_parse(rec + i * JRNL_ENTRY_BYTES, JRNL_ENTRY_BYTES, &x) ||
			    x.seq != s0 + i)
				break;
		}
		head = s0 + i - 1;
		if (i < n || head - p->h.read_completed >= slots)
			break;
		s0 += n;
	}
	free(rec);
	return head;
}

static void *aux_thread(void *arg)
{
	struct pair *p = arg;
	uint8_t *buf = aligned_alloc(4096, COPY_CHUNK);
	int backoff_ms = 0;
	uint64_t last_confirm_sent = 0;
	int last_confirm_purged = 0;

	clock_gettime(CLOCK_MONOTONIC, &p->tok_t);
	pthread_mutex_lock(&p->mu);
	while (!p->stop && buf) {
		struct aux_vols a;
		int worked = 0, err = 0, r;
		uint64_t target;
		struct timespec until;

		if (!p->ready && p->sjnl) {
			if (aux_load(p)) {
				deadline(&until, 5);
				pthread_cond_timedwait(&p->cv, &p->mu, &until);
				continue;
			}
		}
		if (p->cfg.state == PAIR_SUSPENDED || !take_vols(p, &a)) {
			p->busy = 0;
			pthread_cond_broadcast(&p->cv);
			deadline(&until, 1);
			pthread_cond_timedwait(&p->cv, &p->mu, &until);
			continue;
		}
		p->busy = 1;
		if (p->acquire_all) {
			p->acquire_all = 0;
			pthread_mutex_unlock(&p->mu);
			target = probe_head(p, &a);
			pthread_mutex_lock(&p->mu);
			if (target > p->h.to_be_read)
				p->h.to_be_read = target;
		}
		pthread_mutex_unlock(&p->mu);

		/* copy formation */
		if (p->cfg.state == PAIR_COPYING) {
			r = p->cfg.delta ? delta_step(p, &a, buf) : copy_step(p, &a, buf);
			if (r < 0)
				err = r;
			worked = 1;
		}
		/* acquisition */
		if (!err) {
			pthread_mutex_lock(&p->mu);
			target = p->cfg.auto_mode ? UINT64_MAX : p->h.to_be_read;
			pthread_mutex_unlock(&p->mu);
			r = acquire_step(p, &a, target);
			if (r < 0)
				err = r;
			else if (r > 0)
				worked = 1;
		}
		/* restore: never before the copy is done; a failing link does not stop it */
		if ((!err || err == -ENOTCONN || err == -ETIMEDOUT || err == -EAGAIN) &&
		    p->cfg.state == PAIR_PAIRED) {
			r = restore_step(p, &a);
			if (r < 0)
				err = r;
			else if (r > 0)
				worked = 1;
		}
		/* confirm (and in auto mode purge) on the primary device */
		if (!err && p->env.confirm) {
			uint64_t rc;
			char why[200];

			pthread_mutex_lock(&p->mu);
			rc = p->h.read_completed;
			pthread_mutex_unlock(&p->mu);
			/* again after a switch to auto mode: what host mode confirmed is purged now */
			if (rc != last_confirm_sent || (p->cfg.auto_mode && !last_confirm_purged)) {
				int purge = p->cfg.auto_mode;

				r = p->env.confirm(p->env.ctx, &p->cfg, rc, purge, why, sizeof(why));
				if (r)
					set_error(p, "cannot confirm to the primary device: %s", why);
				else {
					last_confirm_sent = rc;
					last_confirm_purged = purge;
					pthread_mutex_lock(&p->mu);
					p->confirmed_sent = rc;
					pthread_mutex_unlock(&p->mu);
				}
			}
		}
		put_vols(&a);
		pthread_mutex_lock(&p->mu);
		p->busy = 0;
		pthread_cond_broadcast(&p->cv);
		if (err) {
			if (err == -ENOTCONN || err == -ETIMEDOUT || err == -EAGAIN || err == -EIO)
				p->link_up = 0;
			backoff_ms = backoff_ms ? (backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2) : 100;
			deadline(&until, backoff_ms / 1000.0);
			pthread_cond_timedwait(&p->cv, &p->mu, &until);
			continue;
		}
		backoff_ms = 0;
		if (!err && p->last_error[0] && worked)
			p->last_error[0] = 0;
		if (!worked) {
			double s = p->cfg.auto_mode ? p->cfg.interval_ms / 1000.0 : 1.0;

			deadline(&until, s > 0 ? s : 0.001);
			pthread_cond_timedwait(&p->cv, &p->mu, &until);
		}
	}
	pthread_mutex_unlock(&p->mu);
	free(buf);
	return NULL;
}

/* The targets a host set survive a restart: write them to the aux header now. Called with mu
 * held; unlocks it. */
static int save_targets(struct pair *p)
{
	struct jrnl_hdr snap = p->h;
	struct vol *j = p->ready ? p->sjnl : NULL;
	int err = 0;

	if (j)
		vol_get(j);
	pthread_mutex_unlock(&p->mu);
	if (j) {
		err = write_hdr(p, j, &snap);
		vol_put(j);
	}
	return err;
}

int pair_acquire(struct pair *p, uint64_t upto, uint64_t *target)
{
	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_AUX) {
		pthread_mutex_unlock(&p->mu);
		return -EINVAL;
	}
	if (!upto)
		p->acquire_all = 1;
	else if (upto > p->h.to_be_read)
		p->h.to_be_read = upto;
	*target = p->h.to_be_read;
	pthread_cond_broadcast(&p->cv);
	return save_targets(p);
}

int pair_restore(struct pair *p, uint64_t upto, uint64_t *target)
{
	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_AUX) {
		pthread_mutex_unlock(&p->mu);
		return -EINVAL;
	}
	if (!upto || upto > p->h.read_completed)
		upto = p->h.read_completed;
	if (upto > p->h.to_be_restored)
		p->h.to_be_restored = upto;
	*target = p->h.to_be_restored;
	pthread_cond_broadcast(&p->cv);
	return save_targets(p);
}

static int persist_now(struct pair *p)
{
	/* (defined here, declared above for the primary's freeze) */
	struct pair_cfg c;

	c = p->cfg;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return p->env.persist ? p->env.persist(p->env.ctx, &c) : 0;
}

int pair_drain(struct pair *p, uint64_t last, double timeout_s)
{
	struct timespec until;
	int err = 0;

	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_AUX) {
		pthread_mutex_unlock(&p->mu);
		return -EINVAL;
	}
	if (!last)
		last = p->h.read_completed;
	if (p->h.to_be_read < last)
		p->h.to_be_read = last;
	if (p->h.to_be_restored < last)
		p->h.to_be_restored = last;
	pthread_cond_broadcast(&p->cv);
	deadline(&until, timeout_s);
	while (p->h.restore_completed < last && p->cfg.state != PAIR_SUSPENDED)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT) {
			err = -ETIMEDOUT;
			break;
		}
	if (!err && p->h.restore_completed < last)
		err = -EAGAIN;     /* suspended meanwhile */
	pthread_mutex_unlock(&p->mu);
	return err;
}

int pair_set_mode(struct pair *p, int auto_mode, uint32_t interval_ms, uint32_t rate_mb)
{
	pthread_mutex_lock(&p->mu);
	p->cfg.auto_mode = auto_mode;
	p->cfg.interval_ms = interval_ms;
	p->cfg.rate_mb = rate_mb;
	if (auto_mode && p->h.to_be_restored < p->h.read_completed)
		p->h.to_be_restored = p->h.read_completed;
	return persist_now(p);
}

int pair_suspend(struct pair *p, const char *reason)
{
	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_AUX || p->cfg.state == PAIR_SUSPENDED) {
		int err = p->cfg.role != PAIR_AUX ? -EINVAL : 0;

		pthread_mutex_unlock(&p->mu);
		return err;
	}
	snprintf(p->cfg.reason, sizeof(p->cfg.reason), "%s%s",
		 p->cfg.state == PAIR_COPYING ? "copying;" : "", reason);
	__atomic_store_n(&p->cfg.state, PAIR_SUSPENDED, __ATOMIC_RELEASE);
	/* return only when the worker is between steps: the S-VOL no longer changes */
	while (p->busy)
		pthread_cond_wait(&p->cv, &p->mu);
	return persist_now(p);
}

int pair_resume(struct pair *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->cfg.role != PAIR_AUX || p->cfg.state != PAIR_SUSPENDED) {
		pthread_mutex_unlock(&p->mu);
		return p->cfg.role != PAIR_AUX ? -EINVAL : 0;
	}
	p->cfg.state = !strncmp(p->cfg.reason, "copying;", 8) ? PAIR_COPYING : PAIR_PAIRED;
	p->cfg.reason[0] = 0;
	return persist_now(p);
}

/* ---- open / attach / status ---- */

int pair_open(const struct pair_cfg *c, const struct pair_env *env, struct pair **out)
{
	struct pair *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->cfg = *c;
	p->env = *env;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->hdr_mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_cond_init(&p->cv, &ca);
		pthread_cond_init(&p->wcv, &ca);
		pthread_cond_init(&p->dcv, &ca);
		pthread_condattr_destroy(&ca);
	}
	for (int i = 0; i < RL_N; i++)
		pthread_mutex_init(&p->rl[i], NULL);
	if (!(p->done = calloc(DONE_W, 1))) {
		free(p);
		return -ENOMEM;
	}
	for (int i = 0; i < PAIR_MAX_VOLS; i++) {
		p->jhook[i] = (struct vol_hook){ .name = "pair-journal", .pre_write = j_pre,
						 .post_write = j_post, .flush = j_flush, .priv = p };
		p->guard_s[i] = (struct vol_hook){ .name = "pair-svol-guard", .pre_write = guard_pre,
						   .priv = p };
	}
	p->guard_j = (struct vol_hook){ .name = "pair-journal-guard", .pre_write = guard_pre, .priv = p };
	if (pthread_create(&p->thread, NULL, c->role == PAIR_PRIMARY ? primary_thread : aux_thread,
			   p)) {
		free(p->done);
		free(p);
		return -EAGAIN;
	}
	p->thread_running = 1;
	*out = p;
	return 0;
}

uint32_t pair_id(struct pair *p) { return p->cfg.id; }

int pair_uses(struct pair *p, uint64_t volid)
{
	if (p->cfg.role == PAIR_PRIMARY)
		return vol_index(p, p->cfg.pvols, volid) >= 0 || volid == p->cfg.pjnl;
	return vol_index(p, p->cfg.svols, volid) >= 0 || volid == p->cfg.sjnl ||
	       vol_index(p, p->cfg.src_pvols, volid) >= 0 ||
	       volid == p->cfg.src_pjnl;
}

static void attach_one(struct pair *p, struct vol **slot, struct vol *v, struct vol_hook *hk)
{
	if (*slot)
		return;
	vol_get(v);
	*slot = v;
	if (hk) {
		pthread_mutex_unlock(&p->mu);   /* hook_add waits for writes in flight */
		vol_hook_add(v, hk);
		pthread_mutex_lock(&p->mu);
	}
}

void pair_attach(struct pair *p, struct vol *v)
{
	pthread_mutex_lock(&p->mu);
	int i;

	if (p->cfg.role == PAIR_PRIMARY) {
		if ((i = vol_index(p, p->cfg.pvols, v->volid)) >= 0) {
			ensure_bm(p, i, v->size_bytes);
			attach_one(p, &p->pvols[i], v, &p->jhook[i]);
		} else if (v->volid == p->cfg.pjnl) {
			attach_one(p, &p->pjnl, v, &p->guard_j);
		}
		/* changes in the bitmap outside a resync: the pair was suspended (a kill -9 may have
		 * beaten the table update): it stays suspended, nothing is journaled over them */
		if (all_here(p, p->pvols) && bms_ready(p) && !p->cfg.resynced &&
		    p->cfg.state == PAIR_JOURNALING && bms_count(p)) {
			p->cfg.state = PAIR_SUSPENDED;
			snprintf(p->cfg.reason, sizeof(p->cfg.reason), "changes recorded in the bitmap "
				 "while suspended: pair-resync copies them");
			p->need_persist = 1;
			pthread_cond_signal(&p->wcv);
			tlog(TLOG_WARN, "pair %u: %s", p->cfg.id, p->cfg.reason);
		}
		/* SUSPENDED and FROZEN too: a resync or a swap reads the journal (after a takeover
		 * the journal is still an auxiliary one: pair-resync formats it) */
		if (!p->ready && all_here(p, p->pvols) && p->pjnl && !p->cfg.takeover_seq)
			primary_load(p);
	} else {
		if ((i = vol_index(p, p->cfg.svols, v->volid)) >= 0) {
			ensure_bm(p, i, v->size_bytes);
			attach_one(p, &p->svols[i], v, &p->guard_s[i]);
		} else if (v->volid == p->cfg.sjnl) {
			attach_one(p, &p->sjnl, v, &p->guard_j);
		} else if ((i = vol_index(p, p->cfg.src_pvols, v->volid)) >= 0) {
			attach_one(p, &p->src_pvols[i], v, NULL);
		} else if (v->volid == p->cfg.src_pjnl) {
			attach_one(p, &p->src_pjnl, v, NULL);
		}
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
}

static void detach_one(struct pair *p, struct vol **slot, struct vol_hook *hk)
{
	struct vol *v = *slot;

	*slot = NULL;
	pthread_mutex_unlock(&p->mu);
	if (hk)
		vol_hook_remove(v, hk);
	vol_put(v);
	pthread_mutex_lock(&p->mu);
}

static int pvol_slot(struct pair *p, struct vol *v)
{
	for (int i = 0; i < PAIR_MAX_VOLS; i++)
		if (v && p->pvols[i] == v)
			return i;
	return -1;
}

void pair_detach(struct pair *p, struct vol *v)
{
	struct jrnl_hdr snap;
	int write = 0;

	int i;

	pthread_mutex_lock(&p->mu);
	if (p->cfg.role == PAIR_PRIMARY && (pvol_slot(p, v) >= 0 || v == p->pjnl)) {
		/* no new entries; let the queued ones finish, record applied, then let go */
		if (p->ready && p->pjnl) {
			p->ready = 0;
			while (p->qhead)
				pthread_cond_wait(&p->dcv, &p->mu);
			primary_header_snapshot(p, &snap);
			write = 1;
		}
		pthread_cond_broadcast(&p->cv);
		if (write) {
			struct vol *j = p->pjnl;

			vol_get(j);
			pthread_mutex_unlock(&p->mu);
			write_hdr(p, j, &snap);
			vol_put(j);
			pthread_mutex_lock(&p->mu);
		}
		if ((i = pvol_slot(p, v)) >= 0)
			detach_one(p, &p->pvols[i], &p->jhook[i]);
		else
			detach_one(p, &p->pjnl, &p->guard_j);
	} else if (p->cfg.role == PAIR_AUX) {
		if (v == p->sjnl) {
			p->ready = 0;
			detach_one(p, &p->sjnl, &p->guard_j);
		} else if (v == p->src_pjnl) {
			detach_one(p, &p->src_pjnl, NULL);
		} else {
			for (i = 0; i < PAIR_MAX_VOLS; i++) {
				if (v == p->svols[i])
					detach_one(p, &p->svols[i], &p->guard_s[i]);
				else if (v == p->src_pvols[i])
					detach_one(p, &p->src_pvols[i], NULL);
			}
		}
	}
	pthread_mutex_unlock(&p->mu);
}

void pair_close(struct pair *p)
{
	/* primary: detach the P-VOLs while the writer still runs (it drains the queue) */
	for (int i = 0; i < PAIR_MAX_VOLS; i++)
		if (p->cfg.role == PAIR_PRIMARY && p->pvols[i])
			pair_detach(p, p->pvols[i]);
	pthread_mutex_lock(&p->mu);
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->cv);
	pthread_cond_broadcast(&p->wcv);
	pthread_mutex_unlock(&p->mu);
	if (p->thread_running)
		pthread_join(p->thread, NULL);
	pthread_mutex_lock(&p->mu);
	/* a host write waiting for space or for the writer gets NOT READY */
	for (struct waiter *w = p->qhead; w; w = w->next) {
		w->err = -EAGAIN;
		w->done = 1;
	}
	p->qhead = p->qtail = NULL;
	pthread_cond_broadcast(&p->cv);
	pthread_cond_broadcast(&p->dcv);
	pthread_mutex_unlock(&p->mu);
	{
		struct vol **vs[] = { &p->pjnl, &p->sjnl, &p->src_pjnl };

		for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++)
			if (*vs[i])
				pair_detach(p, *vs[i]);
		for (int i = 0; i < PAIR_MAX_VOLS; i++) {
			if (p->pvols[i])
				pair_detach(p, p->pvols[i]);
			if (p->svols[i])
				pair_detach(p, p->svols[i]);
			if (p->src_pvols[i])
				pair_detach(p, p->src_pvols[i]);
			pbm_close(p->bm[i], 0);
		}
	}
	for (int i = 0; i < RL_N; i++)
		pthread_mutex_destroy(&p->rl[i]);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->hdr_mu);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->wcv);
	pthread_cond_destroy(&p->dcv);
	free(p->shadow);
	free(p->ent_pos);
	free(p->done);
	free(p->batch);
	free(p);
}

void pair_get_status(struct pair *p, struct pair_status *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&p->mu);
	st->cfg = p->cfg;
	st->ready = p->ready;
	st->bitmap_granules = bms_count(p);
	st->warning = p->warned;
	st->h = p->h;
	if (p->cfg.role == PAIR_PRIMARY) {
		snprintf(st->missing, sizeof(st->missing), "%s%s", all_here(p, p->pvols) ? "" : "pvol ",
			 p->pjnl ? "" : "pjnl");
		st->jin = p->next_seq;
		st->jout = p->h.jout;
		st->jin_pos = p->next_pos;
		st->jout_pos = p->h.jout_pos;
		st->confirmed = p->confirmed;
		st->applied = p->applied;
		st->durable = p->durable;
		st->writes = p->writes;
		st->journal_bytes = p->journal_bytes;
		st->batches = p->batches;
		st->waits_full = p->waits_full;
	} else {
		snprintf(st->missing, sizeof(st->missing), "%s%s%s%s",
			 all_here(p, p->svols) ? "" : "svol ", p->sjnl ? "" : "sjnl ",
			 all_here(p, p->src_pvols) ? "" : "src_pvol ",
			 p->src_pjnl ? "" : "src_pjnl");
		st->restore_completed = p->h.restore_completed;
		st->to_be_restored = p->h.to_be_restored;
		st->read_completed = p->h.read_completed;
		st->to_be_read = p->h.to_be_read;
		st->restore_pos = p->h.restore_pos;
		st->known_head = p->known_head > p->h.read_completed ? p->known_head :
			p->h.read_completed;
		st->known_head_pos = p->known_head_pos;
		st->oldest_unrestored_ns = p->h.restore_completed < st->known_head ?
			p->first_unacq_ns : 0;
		st->copy_total = all_here(p, p->src_pvols) ? vol_base(p->src_pvols, nvols(p)) : 0;
		st->acquired_entries = p->acquired_entries;
		st->acquired_bytes = p->acquired_bytes;
		st->restored_entries = p->restored_entries;
		st->restored_bytes = p->restored_bytes;
		st->confirmed_sent = p->confirmed_sent;
		st->last_restored_ns = p->last_restored_ns;
		st->link_up = p->link_up;
		snprintf(st->last_error, sizeof(st->last_error), "%s", p->last_error);
	}
	pthread_mutex_unlock(&p->mu);
}

#include "cmdvol/mirrors.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmdvol/cmddev.h"
#include "cmdvol/ops.h"
#include "raid/mirror.h"
#include "raid/raidvol.h"
#include "raid/tlog.h"
#include "replication/vvol.h"

#define MIRRORS_MAX 64

static pthread_mutex_t mlock = PTHREAD_MUTEX_INITIALIZER;   /* protects open_m[], busy[] */
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;
static struct mirror *open_m[MIRRORS_MAX];
static int busy[MIRRORS_MAX];   /* copier steps running on open_m[i] without mlock */

static struct tables *tables_now(void)
{
	struct cmddev *cd = cmddev_current();

	return cd ? cmddev_tables(cd) : NULL;
}

static int rec_to_cfg(const char *line, struct mirror_cfg *c)
{
	char b[64];

	memset(c, 0, sizeof(*c));
	if (!tbl_get(line, "id", b, sizeof(b)))
		return -EINVAL;
	c->id = (uint32_t)strtoul(b, NULL, 10);
	c->primary_volid = tbl_get(line, "primary", b, sizeof(b)) ? strtoull(b, NULL, 10) : 0;
	c->secondary_volid = tbl_get(line, "secondary", b, sizeof(b)) ? strtoull(b, NULL, 10) : 0;
	c->size_bytes = tbl_get(line, "size_bytes", b, sizeof(b)) ? strtoull(b, NULL, 10) : 0;
	c->granule_bytes = tbl_get(line, "granule_bytes", b, sizeof(b)) ? strtoull(b, NULL, 10) : 0;
	c->copy_pos = tbl_get(line, "copy_pos", b, sizeof(b)) ? strtoull(b, NULL, 10) : 0;
	c->state = MIRROR_SUSPENDED;
	if (tbl_get(line, "state", b, sizeof(b)))
		for (int s = MIRROR_COPYING; s <= MIRROR_SUSPENDED; s++)
			if (!strcmp(b, mirror_state_name((enum mirror_state)s)))
				c->state = (enum mirror_state)s;
	return 0;
}

static void bitmap_path(struct tables *t, uint32_t id, char *out, size_t len)
{
	snprintf(out, len, "%s.mirror%u.bitmap", tables_path(t), id);
}

/* persist callback: replace the table entry */
static int put_rec(struct tbl_recs *r, void *p)
{
	const struct mirror_cfg *c = p;
	char id[16];
	int i;

	snprintf(id, sizeof(id), "%u", c->id);
	if ((i = tbl_find(r, "mirror", "id", id)) >= 0)
		tbl_del(r, i);
	return tbl_add(r, "mirror id=%u primary=%" PRIu64 " secondary=%" PRIu64 " state=%s "
		       "granule_bytes=%" PRIu64 " size_bytes=%" PRIu64 " copy_pos=%" PRIu64, c->id,
		       c->primary_volid, c->secondary_volid, mirror_state_name(c->state),
		       c->granule_bytes, c->size_bytes, c->copy_pos);
}

static int persist_cb(void *ctx, const struct mirror_cfg *c)
{
	struct tables *t = tables_now();

	(void)ctx;
	return t ? tables_update(t, put_rec, (void *)c) : -ENODEV;
}

static struct mirror *find_open(uint32_t id)
{
	for (int i = 0; i < MIRRORS_MAX; i++)
		if (open_m[i] && mirror_id(open_m[i]) == id)
			return open_m[i];
	return NULL;
}

/* ---- the copier operation ---- */

static int copier_work(struct op *op, void *arg)
{
	uint32_t id = (uint32_t)(uintptr_t)arg;
	struct mirror_status st;
	uint64_t dirty0 = 0;
	int r = 1, first = 1;

	while (r == 1) {
		struct mirror *m = NULL;
		int slot = -1;

		if (op_cancelled(op)) {
			op_result(op, "stopped; it resumes from its checkpoint");
			return -ECANCELED;
		}
		/* mlock only to find the mirror and mark it busy: the granule copy (possibly over a
		 * slow peer link) runs without it, so commands and LU opens are not held up */
		pthread_mutex_lock(&mlock);
		for (int i = 0; i < MIRRORS_MAX; i++)
			if (open_m[i] && mirror_id(open_m[i]) == id)
				slot = i;
		if (slot >= 0) {
			m = open_m[slot];
			busy[slot]++;
		}
		pthread_mutex_unlock(&mlock);
		if (!m) {
			op_result(op, "the mirror was closed");
			return -ENODEV;
		}
		r = mirror_copy_step(m);
		mirror_get_status(m, &st);
		pthread_mutex_lock(&mlock);
		busy[slot]--;
		pthread_cond_broadcast(&idle_cond);
		pthread_mutex_unlock(&mlock);
		if (first || st.dirty_granules > dirty0)
			dirty0 = st.dirty_granules;
		first = 0;
		if (st.cfg.state == MIRROR_COPYING)
			op_progress(op, st.cfg.copy_pos * st.cfg.granule_bytes, st.cfg.size_bytes);
		else if (dirty0)
			op_progress(op, (dirty0 - st.dirty_granules) * st.cfg.granule_bytes,
				    dirty0 * st.cfg.granule_bytes);
	}
	if (r == -EINTR) {
		op_result(op, "stopped: the mirror is %s now", mirror_state_name(st.cfg.state));
		return 0;
	}
	if (r < 0) {
		op_result(op, "stopped: %s (the mirror is %s)", strerror(-r),
			  mirror_state_name(st.cfg.state));
		return r;
	}
	/* done: 100 %, in the same units as the progress so far (the rate stays meaningful) */
	if (dirty0)
		op_progress(op, dirty0 * st.cfg.granule_bytes, dirty0 * st.cfg.granule_bytes);
	else
		op_progress(op, st.cfg.size_bytes, st.cfg.size_bytes);
	op_result(op, "%" PRIu64 " bytes copied; the mirror is %s", st.copied_bytes,
		  mirror_state_name(st.cfg.state));
	return 0;
}

static void start_copier(struct mirror *m)
{
	char subject[32];
	int64_t id;

	snprintf(subject, sizeof(subject), "mirror=%u", mirror_id(m));
	id = op_start("mirror-copy", subject, copier_work, (void *)(uintptr_t)mirror_id(m), NULL);
	if (id > 0)
		tlog(TLOG_INFO, "mirror %u: copier started as operation %" PRId64, mirror_id(m), id);
}

/* ---- reconcile ---- */

struct rec_list {
	int n;
	struct mirror_cfg c[MIRRORS_MAX];
};

static void collect(const char *line, void *p)
{
	struct rec_list *l = p;

	if (l->n < MIRRORS_MAX && rec_to_cfg(line, &l->c[l->n]) == 0)
		l->n++;
}

void mirrors_reconcile(void)
{
	struct tables *t = tables_now();
	struct rec_list *l;

	if (!t || !(l = calloc(1, sizeof(*l))))
		return;
	tables_each(t, "mirror", collect, l);
	pthread_mutex_lock(&mlock);
	for (int i = 0; i < l->n; i++) {
		struct mirror_cfg *c = &l->c[i];
		struct mirror *m = find_open(c->id);
		struct mirror_status st;
		struct vol *p, *s;
		char why[512];

		if (!m) {
			int slot = -1;

			for (int k = 0; k < MIRRORS_MAX; k++)
				if (!open_m[k] && slot < 0)
					slot = k;
			bitmap_path(t, c->id, c->bitmap_path, sizeof(c->bitmap_path));
			if (slot < 0 || mirror_open(c, 0, persist_cb, NULL, &m, why, sizeof(why))) {
				tlog(TLOG_ERR, "mirror %u cannot be opened: %s", c->id,
				     slot < 0 ? "too many mirrors" : why);
				continue;
			}
			open_m[slot] = m;
		}
		mirror_get_status(m, &st);
		if (!st.primary_attached && (p = vol_lookup(c->primary_volid))) {
			if (mirror_attach_primary(m, p))
				tlog(TLOG_ERR, "mirror %u: volid %" PRIu64 " cannot be its primary", c->id,
				     c->primary_volid);
			vol_put(p);
		}
		if (!st.secondary_attached && (s = vol_lookup(c->secondary_volid))) {
			if (mirror_attach_secondary(m, s))
				tlog(TLOG_ERR, "mirror %u: volid %" PRIu64 " cannot be its secondary", c->id,
				     c->secondary_volid);
			vol_put(s);
		}
		if (mirror_needs_copier(m))
			start_copier(m);   /* -EBUSY when one runs already: fine */
	}
	pthread_mutex_unlock(&mlock);
	free(l);
}

void mirrors_volume_closing(struct vol *v)
{
	pthread_mutex_lock(&mlock);
	for (int i = 0; i < MIRRORS_MAX; i++)
		if (open_m[i])
			mirror_detach(open_m[i], v);
	pthread_mutex_unlock(&mlock);
}

/* ---- commands (registered in commands.c) ---- */

int mirrors_cmd_create(uint64_t primary, uint64_t secondary, uint32_t want_id, uint64_t granule,
		       char *msg, size_t msg_len, uint32_t *out_id);
int mirrors_cmd_create(uint64_t primary, uint64_t secondary, uint32_t want_id, uint64_t granule,
		       char *msg, size_t msg_len, uint32_t *out_id)
{
	struct tables *t = tables_now();
	struct vol *p = NULL, *s = NULL;
	struct mirror_cfg c = { 0 };
	struct mirror *m;
	struct rec_list *l;
	int err = 0;

	if (!t) {
		snprintf(msg, msg_len, "no device tables");
		return -ENODEV;
	}
	if (primary == secondary) {
		snprintf(msg, msg_len, "primary and secondary are the same volume");
		return -EINVAL;
	}
	p = vol_lookup(primary);
	s = vol_lookup(secondary);
	if (!p || !s) {
		snprintf(msg, msg_len, "no volume with volid %" PRIu64, !p ? primary : secondary);
		err = -ENOENT;
		goto out;
	}
	if (!strcmp(p->type, "cmddev") || !strcmp(s->type, "cmddev")) {
		snprintf(msg, msg_len, "a command device cannot be mirrored");
		err = -EINVAL;
		goto out;
	}
	if (s->size_bytes < p->size_bytes || s->block_bytes != p->block_bytes) {
		snprintf(msg, msg_len, "the secondary (%" PRIu64 " bytes, block %u) must be at least as "
			 "large as the primary (%" PRIu64 " bytes) and have its block size (%u)",
			 s->size_bytes, s->block_bytes, p->size_bytes, p->block_bytes);
		err = -ENOSPC;
		goto out;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		err = -ENOMEM;
		goto out;
	}
	tables_each(t, "mirror", collect, l);
	c.id = want_id;
	if (!c.id)
		for (c.id = 1;; c.id++) {
			int used = 0;

			for (int i = 0; i < l->n; i++)
				used |= l->c[i].id == c.id;
			if (!used)
				break;
		}
	for (int i = 0; i < l->n && !err; i++) {
		if (l->c[i].id == c.id) {
			snprintf(msg, msg_len, "mirror %u exists", c.id);
			err = -EEXIST;
		} else if (l->c[i].primary_volid == primary || l->c[i].secondary_volid == primary ||
			   l->c[i].primary_volid == secondary || l->c[i].secondary_volid == secondary) {
			snprintf(msg, msg_len, "volid %" PRIu64 " is already in mirror %u",
				 l->c[i].primary_volid == primary || l->c[i].secondary_volid == primary ?
				 primary : secondary, l->c[i].id);
			err = -EEXIST;
		}
	}
	free(l);
	if (err)
		goto out;
	/* the granule: the secondary's full stripe */
	if (!granule) {
		struct raid_vol *a = raidvol_array(s);
		struct vvol *vv = vvol_of(s);

		if (a) {
			struct raid_info i;

			raid_get_info(a, &i);
			granule = raid_stripe_bytes(&i.geom);
		} else if (vv) {
			peer_opt_xfer(vvol_peer(vv), &granule);
		}
		if (!granule)
			granule = 1u << 20;
	}
	if (granule % s->block_bytes) {
		snprintf(msg, msg_len, "granule %" PRIu64 " is not a multiple of the block size", granule);
		err = -EINVAL;
		goto out;
	}
	c.primary_volid = primary;
	c.secondary_volid = secondary;
	c.size_bytes = p->size_bytes;
	c.granule_bytes = granule;
	c.state = MIRROR_COPYING;
	bitmap_path(t, c.id, c.bitmap_path, sizeof(c.bitmap_path));
	unlink(c.bitmap_path);   /* a leftover of a deleted mirror of the same id */
	if ((err = mirror_open(&c, 1, persist_cb, NULL, &m, msg, msg_len)))
		goto out;
	if ((err = persist_cb(NULL, &c))) {
		snprintf(msg, msg_len, "cannot record the mirror in the tables: %s", strerror(-err));
		mirror_close(m, 1);
		goto out;
	}
	pthread_mutex_lock(&mlock);
	for (int i = 0; i < MIRRORS_MAX; i++) {
		if (!open_m[i]) {
			open_m[i] = m;
			break;
		}
	}
	pthread_mutex_unlock(&mlock);
	*out_id = c.id;
	snprintf(msg, msg_len, "mirror %u: volid %" PRIu64 " (primary) -> volid %" PRIu64
		 " (secondary), granule %" PRIu64 " bytes: copying", c.id, primary, secondary, granule);
	tlog(TLOG_WARN, "%s", msg);
out:
	if (p)
		vol_put(p);
	if (s)
		vol_put(s);
	if (!err)
		mirrors_reconcile();
	return err;
}

/* Run fn on open mirror id under the registry lock. */
int mirrors_with(uint32_t id, int (*fn)(struct mirror *m, void *arg), void *arg);
int mirrors_with(uint32_t id, int (*fn)(struct mirror *m, void *arg), void *arg)
{
	struct mirror *m;
	int err;

	pthread_mutex_lock(&mlock);
	m = find_open(id);
	err = m ? fn(m, arg) : -ENOENT;
	pthread_mutex_unlock(&mlock);
	return err;
}

int mirrors_cmd_delete(uint32_t id, char *msg, size_t msg_len);
static int del_rec(struct tbl_recs *r, void *p)
{
	char id[16];
	int i;

	snprintf(id, sizeof(id), "%u", *(uint32_t *)p);
	if ((i = tbl_find(r, "mirror", "id", id)) < 0)
		return -ENOENT;
	tbl_del(r, i);
	return 0;
}

int mirrors_cmd_delete(uint32_t id, char *msg, size_t msg_len)
{
	struct tables *t = tables_now();
	struct mirror *m;
	int err;

	if (!t)
		return -ENODEV;
	if ((err = tables_update(t, del_rec, &id))) {
		snprintf(msg, msg_len, err == -ENOENT ? "no mirror %u" : "cannot update the tables", id);
		return err;
	}
	pthread_mutex_lock(&mlock);
	for (int i = 0; i < MIRRORS_MAX; i++) {
		if (open_m[i] && mirror_id(open_m[i]) == id) {
			m = open_m[i];
			open_m[i] = NULL;          /* no new copier step finds it */
			while (busy[i])
				pthread_cond_wait(&idle_cond, &mlock);
			mirror_close(m, 1);
		}
	}
	pthread_mutex_unlock(&mlock);
	snprintf(msg, msg_len, "mirror %u deleted; both volumes stay as they are", id);
	return 0;
}

void mirrors_each(void (*fn)(struct mirror *m, void *arg), void *arg);
void mirrors_each(void (*fn)(struct mirror *m, void *arg), void *arg)
{
	pthread_mutex_lock(&mlock);
	for (int i = 0; i < MIRRORS_MAX; i++)
		if (open_m[i])
			fn(open_m[i], arg);
	pthread_mutex_unlock(&mlock);
}

void mirrors_start_copier(struct mirror *m);
void mirrors_start_copier(struct mirror *m)
{
	start_copier(m);
}

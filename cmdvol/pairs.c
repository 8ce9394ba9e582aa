#include "cmdvol/pairs.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmdvol/remote.h"
#include "raid/tlog.h"
#include "replication/pair.h"
#include "replication/vvol.h"

#define PAIRS_MAX 64

static pthread_mutex_t plock = PTHREAD_MUTEX_INITIALIZER;   /* open_p[] */
static struct pair *open_p[PAIRS_MAX];

static struct tables *tables_now(void)
{
	struct cmddev *cd = cmddev_current();

	return cd ? cmddev_tables(cd) : NULL;
}

/* ---- table records ---- */

static uint64_t rec_u64(const char *line, const char *key)
{
	char b[64];

	return tbl_get(line, key, b, sizeof(b)) ? strtoull(b, NULL, 10) : 0;
}

static int rec_to_cfg(const char *line, struct pair_cfg *c)
{
	char b[200];

	memset(c, 0, sizeof(*c));
	if (!tbl_get(line, "id", b, sizeof(b)))
		return -EINVAL;
	c->id = (uint32_t)strtoul(b, NULL, 10);
	c->role = tbl_get(line, "role", b, sizeof(b)) && !strcmp(b, "primary") ? PAIR_PRIMARY :
		PAIR_AUX;
	c->pvol = rec_u64(line, "pvol");
	c->pjnl = rec_u64(line, "pjnl");
	c->svol = rec_u64(line, "svol");
	c->sjnl = rec_u64(line, "sjnl");
	c->src_pvol = rec_u64(line, "src_pvol");
	c->src_pjnl = rec_u64(line, "src_pjnl");
	c->s_peer = rec_u64(line, "s_peer");
	c->p_peer = rec_u64(line, "p_peer");
	c->r_src_pvol = rec_u64(line, "r_src_pvol");
	c->r_src_pjnl = rec_u64(line, "r_src_pjnl");
	c->copy_pos = rec_u64(line, "copy_pos");
	c->interval_ms = (uint32_t)rec_u64(line, "interval_ms");
	c->rate_mb = (uint32_t)rec_u64(line, "rate_mb");
	c->auto_mode = tbl_get(line, "mode", b, sizeof(b)) && !strcmp(b, "auto");
	c->state = PAIR_SUSPENDED;
	if (tbl_get(line, "state", b, sizeof(b)))
		pair_state_parse(b, &c->state);
	if (!tbl_get(line, "juuid", b, sizeof(b)) || jrnl_uuid_parse(b, c->juuid))
		return -EINVAL;
	if (tbl_get(line, "reason", b, sizeof(b)) && strcmp(b, "-"))
		cb_pct_decode(b, c->reason, sizeof(c->reason));
	return 0;
}

static int put_rec(struct tbl_recs *r, void *arg)
{
	const struct pair_cfg *c = arg;
	char id[16], u[37], reason[400];
	int i;

	snprintf(id, sizeof(id), "%u", c->id);
	if ((i = tbl_find(r, "pair", "id", id)) >= 0)
		tbl_del(r, i);
	jrnl_uuid_str(c->juuid, u);
	cb_pct_encode(c->reason[0] ? c->reason : "-", reason, sizeof(reason));
	return tbl_add(r, "pair id=%u role=%s pvol=%" PRIu64 " pjnl=%" PRIu64 " svol=%" PRIu64
		       " sjnl=%" PRIu64 " src_pvol=%" PRIu64 " src_pjnl=%" PRIu64 " s_peer=%" PRIu64
		       " p_peer=%" PRIu64 " r_src_pvol=%" PRIu64 " r_src_pjnl=%" PRIu64
		       " state=%s copy_pos=%" PRIu64 " mode=%s interval_ms=%u"
		       " rate_mb=%u juuid=%s reason=%s", c->id,
		       c->role == PAIR_PRIMARY ? "primary" : "aux", c->pvol, c->pjnl, c->svol, c->sjnl,
		       c->src_pvol, c->src_pjnl, c->s_peer, c->p_peer, c->r_src_pvol, c->r_src_pjnl,
		       pair_state_name(c->state),
		       c->copy_pos, c->auto_mode ? "auto" : "host", c->interval_ms, c->rate_mb, u,
		       reason);
}

static int del_rec(struct tbl_recs *r, void *arg)
{
	char id[16];
	int i;

	snprintf(id, sizeof(id), "%u", *(uint32_t *)arg);
	if ((i = tbl_find(r, "pair", "id", id)) < 0)
		return -ENOENT;
	tbl_del(r, i);
	return 0;
}

static int persist_cb(void *ctx, const struct pair_cfg *c)
{
	struct tables *t = tables_now();
	int err;

	(void)ctx;
	if (!t)
		return -ENODEV;
	if ((err = tables_update(t, put_rec, (void *)c)))
		tlog(TLOG_ERR, "pair %u: cannot record its state in the tables: %s", c->id,
		     strerror(-err));
	return err;
}

/* aux -> primary: "pair-confirm id= read_completed= [purge=1]" through s_peer */
static int confirm_cb(void *ctx, const struct pair_cfg *c, uint64_t rc, int purge, char *why,
		      size_t why_len)
{
	char a[40], b[40], d[16];
	const char *params[3] = { a, b, d };
	struct cb_reply reply;
	int err;

	(void)ctx;
	snprintf(a, sizeof(a), "id=%u", c->id);
	snprintf(b, sizeof(b), "read_completed=%" PRIu64, rc);
	snprintf(d, sizeof(d), "purge=%d", purge ? 1 : 0);
	if ((err = remote_call(c->s_peer, "pair-confirm", params, 3, &reply, why, why_len)))
		return err;
	if (reply.status != CB_OK) {
		snprintf(why, why_len, "%s: %s", cb_status_name(reply.status), reply.msg);
		err = -EPROTO;
	}
	cb_reply_free(&reply);
	return err;
}

static const struct pair_env env = { .persist = persist_cb, .confirm = confirm_cb };

/* ---- registry ---- */

static struct pair *find_open(uint32_t id)
{
	for (int i = 0; i < PAIRS_MAX; i++)
		if (open_p[i] && pair_id(open_p[i]) == id)
			return open_p[i];
	return NULL;
}

struct rec_list {
	int n;
	struct pair_cfg c[PAIRS_MAX];
};

static void collect(const char *line, void *arg)
{
	struct rec_list *l = arg;

	if (l->n < PAIRS_MAX && rec_to_cfg(line, &l->c[l->n]) == 0)
		l->n++;
	else if (l->n < PAIRS_MAX)
		tlog(TLOG_ERR, "pair table: unreadable record skipped: %.200s", line);
}

static void attach_all(struct pair *p, const struct pair_cfg *c)
{
	uint64_t ids[] = { c->pvol, c->pjnl, c->svol, c->sjnl, c->src_pvol, c->src_pjnl };

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		struct vol *v;

		if (!ids[i] || !pair_uses(p, ids[i]) || !(v = vol_lookup(ids[i])))
			continue;
		pair_attach(p, v);
		vol_put(v);
	}
}

void pairs_reconcile(void)
{
	struct tables *t = tables_now();
	struct rec_list *l;

	if (!t || !(l = calloc(1, sizeof(*l))))
		return;
	tables_each(t, "pair", collect, l);
	pthread_mutex_lock(&plock);
	for (int i = 0; i < l->n; i++) {
		struct pair *p = find_open(l->c[i].id);

		if (!p) {
			int slot = -1;

			for (int k = 0; k < PAIRS_MAX && slot < 0; k++)
				if (!open_p[k])
					slot = k;
			if (slot < 0 || pair_open(&l->c[i], &env, &p)) {
				tlog(TLOG_ERR, "pair %u cannot be opened", l->c[i].id);
				continue;
			}
			open_p[slot] = p;
		}
		attach_all(p, &l->c[i]);
	}
	pthread_mutex_unlock(&plock);
	free(l);
}

void pairs_volume_closing(struct vol *v)
{
	pthread_mutex_lock(&plock);
	for (int i = 0; i < PAIRS_MAX; i++)
		if (open_p[i])
			pair_detach(open_p[i], v);
	pthread_mutex_unlock(&plock);
}

void pairs_shutdown(void)
{
	pthread_mutex_lock(&plock);
	for (int i = 0; i < PAIRS_MAX; i++)
		if (open_p[i]) {
			pair_close(open_p[i]);
			open_p[i] = NULL;
		}
	pthread_mutex_unlock(&plock);
}

/* ---- parameters ---- */

static int p_u64(struct exec_ctx *x, const char *key, uint64_t min, uint64_t max, uint64_t *out,
		 int required)
{
	const char *v = cb_get(x->cb, key);
	char *end;

	if (!v && !required)
		return 0;
	if (!v || !isdigit((unsigned char)v[0]) || (*out = strtoull(v, &end, 10), *end) ||
	    *out < min || *out > max) {
		res_status(x->res, CB_INVALID, "%s=%s: expected a number from %" PRIu64 " to %" PRIu64,
			   key, v ? v : "(missing)", min, max);
		return -EINVAL;
	}
	return 0;
}

static int err_status(int err)
{
	switch (-err) {
	case ENOENT: return CB_NOT_FOUND;
	case EEXIST: return CB_EXISTS;
	case EINVAL: case ENOSPC: case EACCES: return CB_INVALID;
	case EAGAIN: case EBUSY: return CB_BUSY;
	default: return CB_FAILED;
	}
}

/* Run fn on open pair `id` under the registry lock. */
static int with_pair(struct exec_ctx *x, uint32_t id, int (*fn)(struct exec_ctx *x, struct pair *p))
{
	struct pair *p;
	int r;

	pairs_reconcile();
	pthread_mutex_lock(&plock);
	p = find_open(id);
	if (!p) {
		pthread_mutex_unlock(&plock);
		res_status(x->res, CB_NOT_FOUND, "no pair %u on this device", id);
		return CB_NOT_FOUND;
	}
	r = fn(x, p);
	pthread_mutex_unlock(&plock);
	return r;
}

/* ---- status ---- */

static void status_line(struct cb_result *res, struct pair *p)
{
	struct pair_status st;
	char reason[400], err[400], u[37];
	const struct jrnl_hdr *h;

	pair_get_status(p, &st);
	h = &st.h;
	jrnl_uuid_str(st.cfg.juuid, u);
	cb_pct_encode(st.cfg.reason[0] ? st.cfg.reason : "-", reason, sizeof(reason));
	if (st.cfg.role == PAIR_PRIMARY) {
		uint64_t used = st.jin_pos - st.jout_pos;

		res_line(res, "pair id=%u role=primary state=%s ready=%d pvol=%" PRIu64 " pjnl=%" PRIu64
			 " svol=%" PRIu64 " sjnl=%" PRIu64 " journal_in=%" PRIu64 " journal_out=%" PRIu64
			 " journal_in_lba=%" PRIu64 " journal_out_lba=%" PRIu64 " confirmed=%" PRIu64
			 " applied=%" PRIu64 " entries=%" PRIu64 " used_bytes=%" PRIu64
			 " data_bytes=%" PRIu64 " used_percent=%.1f writes=%" PRIu64
			 " journal_bytes=%" PRIu64 " batches=%" PRIu64 " waits_full=%" PRIu64
			 " journal_uuid=%s missing=%s reason=%s",
			 st.cfg.id, pair_state_name(st.cfg.state), st.ready, st.cfg.pvol, st.cfg.pjnl,
			 st.cfg.svol, st.cfg.sjnl, st.jin, st.jout,
			 h->data_bytes ? jrnl_pos_lba(h, st.jin_pos) : 0,
			 h->data_bytes ? jrnl_pos_lba(h, st.jout_pos) : 0, st.confirmed, st.applied,
			 st.jin - st.jout, used, h->data_bytes,
			 h->data_bytes ? 100.0 * (double)used / (double)h->data_bytes : 0.0, st.writes,
			 st.journal_bytes, st.batches, st.waits_full, u,
			 st.missing[0] ? st.missing : "-", reason);
		return;
	}
	{
		struct timespec now;
		double lag_s = 0;
		uint64_t total = st.copy_total;

		clock_gettime(CLOCK_REALTIME, &now);
		if (st.oldest_unrestored_ns) {
			lag_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9 -
				(double)st.oldest_unrestored_ns / 1e9;
			if (lag_s < 0)
				lag_s = 0;
		}
		cb_pct_encode(st.last_error[0] ? st.last_error : "-", err, sizeof(err));
		res_line(res, "pair id=%u role=aux state=%s ready=%d mode=%s interval_ms=%u rate_mb=%u"
			 " pvol=%" PRIu64 " pjnl=%" PRIu64 " svol=%" PRIu64 " sjnl=%" PRIu64
			 " restore_completed=%" PRIu64 " to_be_restored=%" PRIu64
			 " read_completed=%" PRIu64 " to_be_read=%" PRIu64
			 " restore_completed_lba=%" PRIu64 " read_completed_lba=%" PRIu64
			 " copy_bytes=%" PRIu64 " copy_total=%" PRIu64 " copy_percent=%.1f"
			 " known_head=%" PRIu64 " lag_entries=%" PRIu64 " lag_bytes=%" PRIu64
			 " lag_seconds=%.3f link=%s confirmed_sent=%" PRIu64
			 " acquired_entries=%" PRIu64 " acquired_bytes=%" PRIu64
			 " restored_entries=%" PRIu64 " restored_bytes=%" PRIu64
			 " journal_uuid=%s missing=%s reason=%s last_error=%s",
			 st.cfg.id, pair_state_name(st.cfg.state), st.ready,
			 st.cfg.auto_mode ? "auto" : "host", st.cfg.interval_ms, st.cfg.rate_mb,
			 st.cfg.pvol, st.cfg.pjnl, st.cfg.svol, st.cfg.sjnl, st.restore_completed,
			 st.to_be_restored, st.read_completed, st.to_be_read,
			 h->data_bytes ? jrnl_pos_lba(h, st.restore_pos) : 0,
			 h->data_bytes ? jrnl_pos_lba(h, st.known_head_pos) : 0,
			 st.cfg.state == PAIR_COPYING ? st.cfg.copy_pos : total, total,
			 st.cfg.state == PAIR_COPYING && total ?
			 100.0 * (double)st.cfg.copy_pos / (double)total : 100.0,
			 st.known_head, st.known_head - st.restore_completed,
			 st.known_head_pos > st.restore_pos ? st.known_head_pos - st.restore_pos : 0,
			 lag_s, st.link_up ? "up" : "down", st.confirmed_sent, st.acquired_entries,
			 st.acquired_bytes, st.restored_entries, st.restored_bytes, u,
			 st.missing[0] ? st.missing : "-", reason, err);
	}
}

int c_pair_status(struct exec_ctx *x)
{
	uint64_t id = 0;
	int n = 0;

	if (p_u64(x, "id", 1, UINT32_MAX, &id, 0))
		return x->res->status;
	pairs_reconcile();
	pthread_mutex_lock(&plock);
	for (int i = 0; i < PAIRS_MAX; i++)
		if (open_p[i] && (!id || pair_id(open_p[i]) == id)) {
			status_line(x->res, open_p[i]);
			n++;
		}
	pthread_mutex_unlock(&plock);
	if (id && !n) {
		res_status(x->res, CB_NOT_FOUND, "no pair %" PRIu64 " on this device", id);
		return CB_NOT_FOUND;
	}
	res_status(x->res, CB_OK, "%d pairs", n);
	return CB_OK;
}

/* ---- create ---- */

static const char *const create_keys[] = { "id", "pvol", "pjnl", "svol", "sjnl", "src_pvol",
					    "src_pjnl", "s_peer", "p_peer", "mode", "interval_ms",
					    "rate_mb", "r_src_pvol", "r_src_pjnl", NULL };

/* Send this command's parameters to the other device with role= and forwarded=1 (or
 * "pair-delete id= local=1"). */
static int forward(struct exec_ctx *x, uint64_t peer, const char *command, const char *role,
		   struct cb_reply *reply, char *why, size_t why_len)
{
	char buf[CB_MAX_PARAMS][CB_KEY_MAX + CB_VAL_MAX + 2];
	const char *params[CB_MAX_PARAMS];
	int n = 0;

	for (int i = 0; create_keys[i]; i++) {
		const char *v = cb_get(x->cb, create_keys[i]);

		if (v && n < CB_MAX_PARAMS - 2) {
			snprintf(buf[n], sizeof(buf[n]), "%s=%s", create_keys[i], v);
			params[n] = buf[n];
			n++;
		}
	}
	if (role) {
		snprintf(buf[n], sizeof(buf[n]), "role=%s", role);
		params[n] = buf[n];
		n++;
		snprintf(buf[n], sizeof(buf[n]), "forwarded=1");
	} else {
		snprintf(buf[n], sizeof(buf[n]), "local=1");
	}
	params[n] = buf[n];
	n++;
	return remote_call(peer, command, params, n, reply, why, why_len);
}

static int check_vol(struct exec_ctx *x, uint64_t volid, const char *what, int want_vvol,
		     int want_cmddev, struct vol **out)
{
	struct vol *v = vol_lookup(volid);
	struct vvol *vv;

	*out = NULL;
	if (!v) {
		res_status(x->res, CB_NOT_FOUND, "%s: no volume with volid %" PRIu64 " on this device",
			   what, volid);
		return -ENOENT;
	}
	vv = vvol_of(v);
	if (want_vvol && (!vv || vvol_is_cmddev(vv) != want_cmddev)) {
		res_status(x->res, CB_INVALID, "%s: volid %" PRIu64 " must be a virtual volume of "
			   "kind=%s onto the other device", what, volid, want_cmddev ? "cmddev" : "data");
		vol_put(v);
		return -EINVAL;
	}
	if (!want_vvol && (vv || !strcmp(v->type, "cmddev"))) {
		res_status(x->res, CB_INVALID, "%s: volid %" PRIu64 " is a %s; it must be a volume of "
			   "this device", what, volid, vv ? "virtual volume" : "command device");
		vol_put(v);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int in_use(struct exec_ctx *x, uint32_t id, const uint64_t *vols, int n)
{
	struct rec_list *l = calloc(1, sizeof(*l));
	int err = 0;

	if (!l)
		return -ENOMEM;
	tables_each(x->tables, "pair", collect, l);
	for (int i = 0; i < l->n && !err; i++) {
		struct pair_cfg *c = &l->c[i];
		uint64_t mine[] = { c->pvol, c->pjnl, c->svol, c->sjnl };
		int local_from = c->role == PAIR_PRIMARY ? 0 : 2;

		if (c->id == id) {
			res_status(x->res, CB_EXISTS, "pair %u exists on this device", id);
			err = -EEXIST;
			break;
		}
		for (int k = 0; k < n && !err; k++)
			for (int m = local_from; m < local_from + 2; m++)
				if (vols[k] == mine[m]) {
					res_status(x->res, CB_EXISTS, "volid %" PRIu64 " is already in "
						   "pair %u", vols[k], c->id);
					err = -EEXIST;
				}
	}
	free(l);
	return err;
}

static int create_local(struct exec_ctx *x, struct pair_cfg *c)
{
	struct vol *v[4] = { 0 };
	struct pair *p = NULL;
	char why[400];
	int err = 0, slot = -1;

	if (c->role == PAIR_PRIMARY) {
		uint64_t ids[2] = { c->pvol, c->pjnl };

		if (c->pvol == c->pjnl) {
			res_status(x->res, CB_INVALID, "the primary volume and its journal are the same");
			return -EINVAL;
		}
		if ((err = in_use(x, c->id, ids, 2)) ||
		    (err = check_vol(x, c->pvol, "pvol", 0, 0, &v[0])) ||
		    (err = check_vol(x, c->pjnl, "pjnl", 0, 0, &v[1])) ||
		    (c->p_peer && (err = check_vol(x, c->p_peer, "p_peer", 1, 1, &v[2]))))
			goto out;
		if (c->r_src_pvol || c->r_src_pjnl) {
			struct vol *rv;

			if ((err = check_vol(x, c->r_src_pvol, "r_src_pvol", 1, 0, &rv)))
				goto out;
			vol_put(rv);
			if ((err = check_vol(x, c->r_src_pjnl, "r_src_pjnl", 1, 0, &rv)))
				goto out;
			vol_put(rv);
		}
		if ((err = pair_format_primary(v[1], c->id, c->juuid, why, sizeof(why)))) {
			res_status(x->res, err_status(err), "%s", why);
			goto out;
		}
		c->state = PAIR_JOURNALING;
	} else {
		uint64_t ids[2] = { c->svol, c->sjnl };

		if (c->svol == c->sjnl) {
			res_status(x->res, CB_INVALID, "the auxiliary volume and its journal are the same");
			return -EINVAL;
		}
		if ((err = in_use(x, c->id, ids, 2)) ||
		    (err = check_vol(x, c->svol, "svol", 0, 0, &v[0])) ||
		    (err = check_vol(x, c->sjnl, "sjnl", 0, 0, &v[1])) ||
		    (err = check_vol(x, c->src_pvol, "src_pvol", 1, 0, &v[2])) ||
		    (err = check_vol(x, c->src_pjnl, "src_pjnl", 1, 0, &v[3])))
			goto out;
		if (c->s_peer) {
			struct vol *sp;

			if ((err = check_vol(x, c->s_peer, "s_peer", 1, 1, &sp)))
				goto out;
			vol_put(sp);
		}
		if (v[0]->size_bytes < v[2]->size_bytes || v[0]->block_bytes != v[2]->block_bytes) {
			res_status(x->res, CB_INVALID, "the auxiliary volume (%" PRIu64 " bytes, block %u) "
				   "must be at least as large as the primary volume (%" PRIu64 " bytes) "
				   "and have its block size (%u)", v[0]->size_bytes, v[0]->block_bytes,
				   v[2]->size_bytes, v[2]->block_bytes);
			err = -EINVAL;
			goto out;
		}
		if ((err = pair_format_aux(v[1], v[3], c->id, c->juuid, why, sizeof(why)))) {
			res_status(x->res, err_status(err), "%s", why);
			goto out;
		}
		c->state = PAIR_COPYING;
		c->copy_pos = 0;
	}
	if ((err = tables_update(x->tables, put_rec, c))) {
		res_status(x->res, CB_FAILED, "cannot record the pair in the tables: %s", strerror(-err));
		goto out;
	}
	pthread_mutex_lock(&plock);
	for (int k = 0; k < PAIRS_MAX && slot < 0; k++)
		if (!open_p[k])
			slot = k;
	if (slot < 0 || (err = pair_open(c, &env, &p))) {
		pthread_mutex_unlock(&plock);
		tables_update(x->tables, del_rec, &c->id);
		res_status(x->res, CB_FAILED, "cannot open the pair: %s",
			   slot < 0 ? "too many pairs" : strerror(-err));
		err = err ? err : -ENOSPC;
		goto out;
	}
	open_p[slot] = p;
	attach_all(p, c);
	pthread_mutex_unlock(&plock);
	tlog(TLOG_WARN, "pair %u created: %s side, %s", c->id,
	     c->role == PAIR_PRIMARY ? "primary" : "auxiliary",
	     c->role == PAIR_PRIMARY ? "journaling" : "copying");
out:
	for (int i = 0; i < 4; i++)
		if (v[i])
			vol_put(v[i]);
	return err;
}

static void delete_local(struct tables *t, uint32_t id)
{
	struct pair *p = NULL;

	pthread_mutex_lock(&plock);
	for (int i = 0; i < PAIRS_MAX; i++)
		if (open_p[i] && pair_id(open_p[i]) == id) {
			p = open_p[i];
			open_p[i] = NULL;
		}
	if (p)
		pair_close(p);
	pthread_mutex_unlock(&plock);
	tables_update(t, del_rec, &id);
}

int c_pair_create(struct exec_ctx *x)
{
	struct pair_cfg c = { 0 };
	const char *role = cb_get(x->cb, "role"), *mode = cb_get(x->cb, "mode");
	int forwarded = cb_get(x->cb, "forwarded") && !strcmp(cb_get(x->cb, "forwarded"), "1");
	uint64_t id, iv = 1000, rate = 0;
	struct cb_reply reply;
	char why[400];
	int err;

	if (!role || (strcmp(role, "primary") && strcmp(role, "aux"))) {
		res_status(x->res, CB_INVALID, "role=primary|aux is required: what this device is in "
			   "the pair");
		return CB_INVALID;
	}
	if (p_u64(x, "id", 1, 65535, &id, 1) || p_u64(x, "pvol", 1, UINT32_MAX, &c.pvol, 1) ||
	    p_u64(x, "pjnl", 1, UINT32_MAX, &c.pjnl, 1) || p_u64(x, "svol", 1, UINT32_MAX, &c.svol, 1) ||
	    p_u64(x, "sjnl", 1, UINT32_MAX, &c.sjnl, 1) ||
	    p_u64(x, "src_pvol", 1, UINT32_MAX, &c.src_pvol, 1) ||
	    p_u64(x, "src_pjnl", 1, UINT32_MAX, &c.src_pjnl, 1) ||
	    p_u64(x, "s_peer", 1, UINT32_MAX, &c.s_peer, 1) ||
	    p_u64(x, "p_peer", 1, UINT32_MAX, &c.p_peer, 1) ||
	    p_u64(x, "interval_ms", 1, 3600000, &iv, 0) || p_u64(x, "rate_mb", 0, 100000, &rate, 0) ||
	    p_u64(x, "r_src_pvol", 1, UINT32_MAX, &c.r_src_pvol, 0) ||
	    p_u64(x, "r_src_pjnl", 1, UINT32_MAX, &c.r_src_pjnl, 0))
		return x->res->status;
	if (!c.r_src_pvol != !c.r_src_pjnl) {
		res_status(x->res, CB_INVALID, "r_src_pvol= and r_src_pjnl= go together (the primary "
			   "device's vvols onto the auxiliary volume and journal, for swaps)");
		return CB_INVALID;
	}
	if (mode && strcmp(mode, "auto") && strcmp(mode, "host")) {
		res_status(x->res, CB_INVALID, "mode=%s: expected auto or host", mode);
		return CB_INVALID;
	}
	c.id = (uint32_t)id;
	c.role = !strcmp(role, "primary") ? PAIR_PRIMARY : PAIR_AUX;
	c.auto_mode = mode && !strcmp(mode, "auto");
	c.interval_ms = (uint32_t)iv;
	c.rate_mb = (uint32_t)rate;

	if (c.role == PAIR_PRIMARY) {
		/* the primary half first: from now on every write is journaled */
		if ((err = create_local(x, &c)))
			return x->res->status;
		if (!forwarded) {
			err = forward(x, c.p_peer, "pair-create", "aux", &reply, why, sizeof(why));
			if (err || reply.status != CB_OK) {
				res_status(x->res, err ? CB_FAILED : reply.status, "the auxiliary device "
					   "refused its half, so the pair is not created: %s",
					   err ? why : reply.msg);
				if (!err)
					cb_reply_free(&reply);
				delete_local(x->tables, c.id);
				return x->res->status;
			}
			cb_reply_free(&reply);
		}
		res_status(x->res, CB_OK, "pair %u: journaling volid %" PRIu64 " into volid %" PRIu64
			   "%s", c.id, c.pvol, c.pjnl, forwarded ? "" :
			   "; the auxiliary device is copying");
	} else {
		if (!forwarded) {
			err = forward(x, c.s_peer, "pair-create", "primary", &reply, why, sizeof(why));
			if (err || reply.status != CB_OK) {
				res_status(x->res, err ? CB_FAILED : reply.status, "the primary device "
					   "refused its half: %s", err ? why : reply.msg);
				if (!err)
					cb_reply_free(&reply);
				return x->res->status;
			}
			cb_reply_free(&reply);
		}
		if ((err = create_local(x, &c))) {
			if (!forwarded) {
				char keep[256];

				snprintf(keep, sizeof(keep), "%s", x->res->msg);
				if (!forward(x, c.s_peer, "pair-delete", NULL, &reply, why, sizeof(why)))
					cb_reply_free(&reply);
				res_status(x->res, x->res->status, "%s (the primary's half was undone)",
					   keep);
			}
			return x->res->status;
		}
		res_status(x->res, CB_OK, "pair %u: copying the primary volume into volid %" PRIu64
			   " (%s mode)", c.id, c.svol, c.auto_mode ? "auto" : "host-driven");
	}
	{
		struct pair *p;

		pthread_mutex_lock(&plock);
		if ((p = find_open(c.id)))
			status_line(x->res, p);
		pthread_mutex_unlock(&plock);
	}
	return CB_OK;
}

/* ---- the rest ---- */

static uint64_t g_upto;
static int g_flag;

static int do_acquire(struct exec_ctx *x, struct pair *p)
{
	uint64_t t;

	if (pair_acquire(p, g_upto, &t)) {
		res_status(x->res, CB_INVALID, "pair %u: acquisition runs on the auxiliary device",
			   pair_id(p));
		return CB_INVALID;
	}
	status_line(x->res, p);
	if (g_upto)
		res_status(x->res, CB_OK, "pair %u: acquiring up to sequence %" PRIu64, pair_id(p), t);
	else
		res_status(x->res, CB_OK, "pair %u: acquiring every entry the primary journal holds",
			   pair_id(p));
	return CB_OK;
}

int c_pair_acquire(struct exec_ctx *x)
{
	uint64_t id;

	g_upto = 0;
	if (p_u64(x, "id", 1, 65535, &id, 1) || p_u64(x, "upto", 1, UINT64_MAX - 1, &g_upto, 0))
		return x->res->status;
	return with_pair(x, (uint32_t)id, do_acquire);
}

static int do_restore(struct exec_ctx *x, struct pair *p)
{
	uint64_t t;

	if (pair_restore(p, g_upto, &t)) {
		res_status(x->res, CB_INVALID, "pair %u: restore runs on the auxiliary device",
			   pair_id(p));
		return CB_INVALID;
	}
	status_line(x->res, p);
	res_status(x->res, CB_OK, "pair %u: restoring up to sequence %" PRIu64, pair_id(p), t);
	return CB_OK;
}

int c_pair_restore(struct exec_ctx *x)
{
	uint64_t id;

	g_upto = 0;
	if (p_u64(x, "id", 1, 65535, &id, 1) || p_u64(x, "upto", 1, UINT64_MAX - 1, &g_upto, 0))
		return x->res->status;
	return with_pair(x, (uint32_t)id, do_restore);
}

static int do_purge(struct exec_ctx *x, struct pair *p)
{
	uint64_t jout;
	int err = pair_purge(p, g_upto, &jout);

	if (err) {
		res_status(x->res, err == -EINVAL ? CB_INVALID : CB_BUSY, "pair %u: %s", pair_id(p),
			   err == -EINVAL ? "purge runs on the primary device" :
			   "the journal is not loaded (a volume is missing)");
		return x->res->status;
	}
	status_line(x->res, p);
	if (jout <= g_upto)
		res_status(x->res, CB_OK, "pair %u: purged up to sequence %" PRIu64 " only: the "
			   "auxiliary device has confirmed no more", pair_id(p), jout - 1);
	else
		res_status(x->res, CB_OK, "pair %u: purged up to sequence %" PRIu64, pair_id(p),
			   jout - 1);
	return CB_OK;
}

int c_pair_purge(struct exec_ctx *x)
{
	uint64_t id;

	if (p_u64(x, "id", 1, 65535, &id, 1) || p_u64(x, "upto", 0, UINT64_MAX - 1, &g_upto, 1))
		return x->res->status;
	return with_pair(x, (uint32_t)id, do_purge);
}

static int do_confirm(struct exec_ctx *x, struct pair *p)
{
	uint64_t jout;
	int err = pair_confirm(p, g_upto);

	if (!err && g_flag)
		err = pair_purge(p, g_upto, &jout);
	if (err) {
		res_status(x->res, err == -EINVAL ? CB_INVALID : CB_BUSY, "pair %u: %s", pair_id(p),
			   err == -EINVAL ? "this device is not the pair's primary" :
			   "the journal is not loaded");
		return x->res->status;
	}
	res_status(x->res, CB_OK, "pair %u: confirmed up to %" PRIu64, pair_id(p), g_upto);
	return CB_OK;
}

int c_pair_confirm(struct exec_ctx *x)
{
	uint64_t id, purge = 0;

	if (p_u64(x, "id", 1, 65535, &id, 1) ||
	    p_u64(x, "read_completed", 0, UINT64_MAX - 1, &g_upto, 1) ||
	    p_u64(x, "purge", 0, 1, &purge, 0))
		return x->res->status;
	g_flag = (int)purge;
	return with_pair(x, (uint32_t)id, do_confirm);
}

int c_pair_delete(struct exec_ctx *x)
{
	uint64_t id, local = 0, peer = 0;
	struct pair_status st;
	struct cb_reply reply;
	struct pair *p;
	char why[400] = "";
	int err = 0;

	if (p_u64(x, "id", 1, 65535, &id, 1) || p_u64(x, "local", 0, 1, &local, 0))
		return x->res->status;
	pairs_reconcile();
	pthread_mutex_lock(&plock);
	p = find_open((uint32_t)id);
	if (p) {
		pair_get_status(p, &st);
		peer = st.cfg.role == PAIR_PRIMARY ? st.cfg.p_peer : st.cfg.s_peer;
	}
	pthread_mutex_unlock(&plock);
	if (!p) {
		res_status(x->res, CB_NOT_FOUND, "no pair %" PRIu64 " on this device", id);
		return CB_NOT_FOUND;
	}
	if (!local && peer) {
		err = forward(x, peer, "pair-delete", NULL, &reply, why, sizeof(why));
		if (!err) {
			if (reply.status != CB_OK && reply.status != CB_NOT_FOUND) {
				snprintf(why, sizeof(why), "%.300s", reply.msg);
				err = -EPROTO;
			}
			cb_reply_free(&reply);
		}
	}
	delete_local(x->tables, (uint32_t)id);
	if (err)
		res_status(x->res, CB_OK, "pair %" PRIu64 " deleted here; the other device could not "
			   "be told (%s): delete it there with local=1", id, why);
	else
		res_status(x->res, CB_OK, "pair %" PRIu64 " deleted%s; the volumes stay as they are",
			   id, local ? " on this device" : " on both devices");
	return CB_OK;
}

static uint64_t g_iv, g_rate;

static int do_mode(struct exec_ctx *x, struct pair *p)
{
	struct pair_status st;

	pair_get_status(p, &st);
	if (st.cfg.role != PAIR_AUX) {
		res_status(x->res, CB_INVALID, "pair %u: the mode is set on the auxiliary device",
			   pair_id(p));
		return CB_INVALID;
	}
	pair_set_mode(p, g_flag, g_iv ? (uint32_t)g_iv : st.cfg.interval_ms ? st.cfg.interval_ms :
		      1000, g_rate != UINT64_MAX ? (uint32_t)g_rate : st.cfg.rate_mb);
	status_line(x->res, p);
	res_status(x->res, CB_OK, "pair %u: %s", pair_id(p), g_flag ? "autonomous" : "host-driven");
	return CB_OK;
}

int c_pair_mode(struct exec_ctx *x)
{
	uint64_t id;
	const char *mode = cb_get(x->cb, "mode");

	g_iv = 0;
	g_rate = UINT64_MAX;
	if (p_u64(x, "id", 1, 65535, &id, 1) || p_u64(x, "interval_ms", 1, 3600000, &g_iv, 0) ||
	    p_u64(x, "rate_mb", 0, 100000, &g_rate, 0))
		return x->res->status;
	if (!mode || (strcmp(mode, "auto") && strcmp(mode, "host"))) {
		res_status(x->res, CB_INVALID, "mode=auto|host is required");
		return CB_INVALID;
	}
	g_flag = !strcmp(mode, "auto");
	return with_pair(x, (uint32_t)id, do_mode);
}

static int do_suspend(struct exec_ctx *x, struct pair *p)
{
	int err = g_flag ? pair_suspend(p, "suspended by command") : pair_resume(p);

	if (err) {
		res_status(x->res, CB_INVALID, "pair %u: suspend and resume are for the auxiliary "
			   "device", pair_id(p));
		return CB_INVALID;
	}
	status_line(x->res, p);
	res_status(x->res, CB_OK, "pair %u %s", pair_id(p), g_flag ? "suspended" : "resumed");
	return CB_OK;
}

int c_pair_suspend(struct exec_ctx *x)
{
	uint64_t id;

	if (p_u64(x, "id", 1, 65535, &id, 1))
		return x->res->status;
	g_flag = 1;
	return with_pair(x, (uint32_t)id, do_suspend);
}

int c_pair_resume(struct exec_ctx *x)
{
	uint64_t id;

	if (p_u64(x, "id", 1, 65535, &id, 1))
		return x->res->status;
	g_flag = 0;
	return with_pair(x, (uint32_t)id, do_suspend);
}

/* ---- swap (seed 004 Figs. 19-21) ---- */

static double mono_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Replace pair `id`'s open instance and record by `c` (a role change). */
static int reopen_as(struct exec_ctx *x, const struct pair_cfg *c)
{
	struct pair *p = NULL;
	int err, slot = -1;

	delete_local(x->tables, c->id);
	if ((err = tables_update(x->tables, put_rec, (void *)c)))
		return err;
	pthread_mutex_lock(&plock);
	for (int k = 0; k < PAIRS_MAX && slot < 0; k++)
		if (!open_p[k])
			slot = k;
	if (slot < 0 || (err = pair_open(c, &env, &p))) {
		pthread_mutex_unlock(&plock);
		return err ? err : -ENOSPC;
	}
	open_p[slot] = p;
	attach_all(p, c);
	pthread_mutex_unlock(&plock);
	return 0;
}

static int get_cfg(uint32_t id, struct pair_status *st)
{
	struct pair *p;

	pthread_mutex_lock(&plock);
	p = find_open(id);
	if (p)
		pair_get_status(p, st);
	pthread_mutex_unlock(&plock);
	return p ? 0 : -ENOENT;
}

/* The primary's steps, sent by the aux device's module. */
static int swap_step_primary(struct exec_ctx *x, uint32_t id, const char *step)
{
	struct pair_status st;
	struct pair *p;
	uint64_t last = 0;
	char why[400];
	int err;

	if (get_cfg(id, &st)) {
		res_status(x->res, CB_NOT_FOUND, "no pair %u on this device", id);
		return CB_NOT_FOUND;
	}
	if (st.cfg.role != PAIR_PRIMARY) {
		res_status(x->res, CB_INVALID, "pair %u: step=%s is for the primary device", id, step);
		return CB_INVALID;
	}
	if (!strcmp(step, "freeze")) {
		if (!st.cfg.r_src_pvol || !st.cfg.r_src_pjnl) {
			res_status(x->res, CB_INVALID, "pair %u cannot swap: the primary device has no "
				   "vvols onto the auxiliary volume and journal (pair-create r_src_pvol= "
				   "r_src_pjnl=)", id);
			return CB_INVALID;
		}
		pthread_mutex_lock(&plock);
		p = find_open(id);
		err = p ? pair_freeze(p, &last) : -ENOENT;
		pthread_mutex_unlock(&plock);
		if (err) {
			res_status(x->res, err_status(err), "pair %u cannot be frozen: %s", id,
				   err == -EBUSY ? "it is not journaling" : err == -EAGAIN ?
				   "its journal is not loaded" : strerror(-err));
			return x->res->status;
		}
		res_line(x->res, "swap id=%u step=freeze last=%" PRIu64, id, last);
		res_status(x->res, CB_OK, "pair %u frozen at sequence %" PRIu64, id, last);
		return CB_OK;
	}
	if (!strcmp(step, "thaw")) {
		pthread_mutex_lock(&plock);
		p = find_open(id);
		err = p ? pair_thaw(p) : -ENOENT;
		pthread_mutex_unlock(&plock);
		res_status(x->res, err ? CB_FAILED : CB_OK, "pair %u %s", id, err ? "cannot thaw" :
			   "journaling again");
		return x->res->status;
	}
	if (!strcmp(step, "commit")) {
		struct pair_cfg c = st.cfg;
		struct vol *sj = vol_lookup(st.cfg.pjnl), *src = vol_lookup(st.cfg.r_src_pjnl);
		uint64_t total = 0;

		if (st.cfg.state != PAIR_FROZEN) {
			res_status(x->res, CB_INVALID, "pair %u is %s, not frozen: no swap to commit", id,
				   pair_state_name(st.cfg.state));
			if (sj) vol_put(sj);
			if (src) vol_put(src);
			return CB_INVALID;
		}
		if (!sj || !src) {
			res_status(x->res, CB_FAILED, "pair %u: volid %" PRIu64 " is not here", id,
				   !sj ? st.cfg.pjnl : st.cfg.r_src_pjnl);
			if (sj) vol_put(sj);
			if (src) vol_put(src);
			return CB_FAILED;
		}
		{
			struct vol *rp = vol_lookup(st.cfg.r_src_pvol);

			if (rp) {
				total = rp->size_bytes;
				vol_put(rp);
			}
		}
		/* this device becomes the auxiliary one: its volume is the copy now */
		memset(&c, 0, sizeof(c));
		c.id = id;
		c.role = PAIR_AUX;
		c.svol = st.cfg.pvol;
		c.sjnl = st.cfg.pjnl;
		c.pvol = st.cfg.svol;
		c.pjnl = st.cfg.sjnl;
		c.src_pvol = st.cfg.r_src_pvol;
		c.src_pjnl = st.cfg.r_src_pjnl;
		c.s_peer = st.cfg.p_peer;
		c.state = PAIR_PAIRED;
		c.copy_pos = total;
		c.auto_mode = cb_get(x->cb, "mode") && !strcmp(cb_get(x->cb, "mode"), "auto");
		c.interval_ms = 1000;
		if (cb_get(x->cb, "interval_ms"))
			c.interval_ms = (uint32_t)strtoul(cb_get(x->cb, "interval_ms"), NULL, 10);
		delete_local(x->tables, id);    /* closes the primary half first (hooks off) */
		err = pair_format_aux(sj, src, id, c.juuid, why, sizeof(why));
		vol_put(sj);
		vol_put(src);
		if (err || (err = reopen_as(x, &c))) {
			res_status(x->res, CB_FAILED, "pair %u: cannot become the auxiliary device: %s", id,
				   err ? why : strerror(-err));
			return CB_FAILED;
		}
		tlog(TLOG_WARN, "pair %u: swapped: this device is auxiliary now (volid %" PRIu64
		     " is the copy of the other device's volid %" PRIu64 ")", id, c.svol, c.pvol);
		res_status(x->res, CB_OK, "pair %u: this device is auxiliary now", id);
		return CB_OK;
	}
	res_status(x->res, CB_INVALID, "step=%s: expected freeze, thaw or commit", step);
	return CB_INVALID;
}

int c_pair_swap(struct exec_ctx *x)
{
	uint64_t id, last = 0;
	const char *step = cb_get(x->cb, "step");
	struct pair_status st;
	struct cb_reply reply;
	struct pair *p;
	struct pair_cfg c;
	char a[32], b[32], d[32], e[32], why[400], buf[64];
	const char *params[4] = { a, b, d, e };
	double t0 = mono_now(), t_frozen;
	int err;

	if (p_u64(x, "id", 1, 65535, &id, 1))
		return x->res->status;
	pairs_reconcile();
	if (step)
		return swap_step_primary(x, (uint32_t)id, step);
	/* issued on the auxiliary device (Fig. 19: by the host at the auxiliary site) */
	if (get_cfg((uint32_t)id, &st)) {
		res_status(x->res, CB_NOT_FOUND, "no pair %" PRIu64 " on this device", id);
		return CB_NOT_FOUND;
	}
	if (st.cfg.role != PAIR_AUX || st.cfg.state != PAIR_PAIRED) {
		res_status(x->res, CB_INVALID, "pair %" PRIu64 ": a swap is issued on the auxiliary "
			   "device of a paired pair (this device is %s, the pair %s)", id,
			   st.cfg.role == PAIR_AUX ? "auxiliary" : "primary",
			   pair_state_name(st.cfg.state));
		return CB_INVALID;
	}
	/* 1. the primary stops taking writes and says where its journal ends */
	snprintf(a, sizeof(a), "id=%" PRIu64, id);
	snprintf(b, sizeof(b), "step=freeze");
	if ((err = remote_call(st.cfg.s_peer, "pair-swap", params, 2, &reply, why, sizeof(why))) ||
	    reply.status != CB_OK || !reply.nlines ||
	    !cb_rec_get(reply.lines[0], "last", buf, sizeof(buf))) {
		res_status(x->res, err ? CB_FAILED : reply.status == CB_OK ? CB_FAILED : reply.status,
			   "pair %" PRIu64 ": the primary device cannot freeze: %s", id,
			   err ? why : reply.msg);
		if (!err)
			cb_reply_free(&reply);
		return x->res->status;
	}
	last = strtoull(buf, NULL, 10);
	cb_reply_free(&reply);
	t_frozen = mono_now();
	/* 2. Fig. 19 S1901-S1905: acquire and restore everything, confirm restore complete */
	pthread_mutex_lock(&plock);
	p = find_open((uint32_t)id);
	pthread_mutex_unlock(&plock);
	err = p ? pair_drain(p, last, 60) : -ENOENT;
	if (err) {
		snprintf(b, sizeof(b), "step=thaw");
		if (!remote_call(st.cfg.s_peer, "pair-swap", params, 2, &reply, why, sizeof(why)))
			cb_reply_free(&reply);
		res_status(x->res, CB_FAILED, "pair %" PRIu64 ": the auxiliary device could not restore "
			   "up to sequence %" PRIu64 " (%s); the swap is undone and the primary device "
			   "journals again", id, last, strerror(-err));
		return CB_FAILED;
	}
	/* 3. this device becomes the primary one: journaling before any host write */
	memset(&c, 0, sizeof(c));
	c.id = (uint32_t)id;
	c.role = PAIR_PRIMARY;
	c.pvol = st.cfg.svol;
	c.pjnl = st.cfg.sjnl;
	c.svol = st.cfg.pvol;
	c.sjnl = st.cfg.pjnl;
	c.p_peer = st.cfg.s_peer;
	c.r_src_pvol = st.cfg.src_pvol;
	c.r_src_pjnl = st.cfg.src_pjnl;
	c.state = PAIR_JOURNALING;
	delete_local(x->tables, (uint32_t)id);
	{
		struct vol *j = vol_lookup(c.pjnl);

		err = j ? pair_format_primary(j, c.id, c.juuid, why, sizeof(why)) : -ENOENT;
		if (j)
			vol_put(j);
	}
	if (err || (err = reopen_as(x, &c))) {
		res_status(x->res, CB_FAILED, "pair %" PRIu64 ": cannot become the primary device (%s); "
			   "the other device stays frozen: delete the pair there with local=1 and create "
			   "it again", id, err ? why : strerror(-err));
		return CB_FAILED;
	}
	/* 4. the old primary becomes the auxiliary device and pulls from here */
	snprintf(b, sizeof(b), "step=commit");
	snprintf(d, sizeof(d), "mode=%s", st.cfg.auto_mode ? "auto" : "host");
	snprintf(e, sizeof(e), "interval_ms=%u", st.cfg.interval_ms ? st.cfg.interval_ms : 1000);
	err = remote_call(st.cfg.s_peer, "pair-swap", params, 4, &reply, why, sizeof(why));
	if (err || reply.status != CB_OK) {
		res_status(x->res, CB_FAILED, "pair %" PRIu64 ": this device is primary now, but the "
			   "other device did not become auxiliary: %s", id, err ? why : reply.msg);
		if (!err)
			cb_reply_free(&reply);
		return CB_FAILED;
	}
	cb_reply_free(&reply);
	pthread_mutex_lock(&plock);
	if ((p = find_open((uint32_t)id)))
		status_line(x->res, p);
	pthread_mutex_unlock(&plock);
	res_status(x->res, CB_OK, "pair %" PRIu64 " swapped: this device is primary (volid %" PRIu64
		   "), the other auxiliary; restored up to sequence %" PRIu64 " first; host writes were "
		   "held for %.0f ms; the swap took %.0f ms", id, c.pvol, last,
		   (mono_now() - t_frozen) * 1000, (mono_now() - t0) * 1000);
	tlog(TLOG_WARN, "%s", x->res->msg);
	return CB_OK;
}

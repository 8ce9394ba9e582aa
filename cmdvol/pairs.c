#include "cmdvol/pairs.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* "10,12,14" -> ids[], *n; 0 or -EINVAL */
static int parse_list(const char *v, uint64_t *ids, uint32_t *n)
{
	char *end;

	*n = 0;
	if (!v || !*v)
		return -EINVAL;
	for (;;) {
		if (*n >= PAIR_MAX_VOLS || !isdigit((unsigned char)*v))
			return -EINVAL;
		ids[(*n)++] = strtoull(v, &end, 10);
		if (!ids[*n - 1] || ids[*n - 1] > UINT32_MAX)
			return -EINVAL;
		if (!*end)
			return 0;
		if (*end != ',')
			return -EINVAL;
		v = end + 1;
	}
}

static const char *fmt_list(const uint64_t *ids, uint32_t n, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = 0;
	for (uint32_t i = 0; i < (n ? n : 1) && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%" PRIu64, i ? "," : "", ids[i]);
	return buf;
}

static uint64_t rec_list(const char *line, const char *key, uint64_t *ids, uint32_t *n)
{
	char b[200];
	uint32_t k = 0;

	memset(ids, 0, sizeof(uint64_t) * PAIR_MAX_VOLS);
	if (tbl_get(line, key, b, sizeof(b)) && parse_list(b, ids, &k) == 0)
		*n = k;
	return ids[0];
}

static void unlink_bitmaps(const struct pair_cfg *c)
{
	char path[600];

	unlink(c->bitmap_path);
	for (int i = 1; i < PAIR_MAX_VOLS; i++) {
		snprintf(path, sizeof(path), "%s.%d", c->bitmap_path, i);
		unlink(path);
	}
}

static void set_paths(struct pair_cfg *c)
{
	struct tables *t = tables_now();

	if (t)
		snprintf(c->bitmap_path, sizeof(c->bitmap_path), "%s.pair%u.bitmap", tables_path(t),
			 c->id);
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
	{
		uint32_t n1 = 1, n2 = 1, n3 = 1, n4 = 1;

		rec_list(line, "pvol", c->pvols, &n1);
		rec_list(line, "svol", c->svols, &n2);
		rec_list(line, "src_pvol", c->src_pvols, &n3);
		rec_list(line, "r_src_pvol", c->r_src_pvols, &n4);
		c->nvols = n1;
	}
	c->pjnl = rec_u64(line, "pjnl");
	c->sjnl = rec_u64(line, "sjnl");
	c->src_pjnl = rec_u64(line, "src_pjnl");
	c->s_peer = rec_u64(line, "s_peer");
	c->p_peer = rec_u64(line, "p_peer");
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
	c->overflow_throttle = tbl_get(line, "overflow", b, sizeof(b)) && !strcmp(b, "throttle");
	c->warn_pct = (uint32_t)rec_u64(line, "warn_pct");
	c->granule_bytes = rec_u64(line, "granule_bytes");
	c->delta = (int)rec_u64(line, "delta");
	c->delta_fetched = (int)rec_u64(line, "delta_fetched");
	c->resynced = (int)rec_u64(line, "resynced");
	c->takeover_seq = rec_u64(line, "takeover_seq");
	c->consistent_ns = rec_u64(line, "consistent_ns");
	set_paths(c);
	return 0;
}

static int put_rec(struct tbl_recs *r, void *arg)
{
	const struct pair_cfg *c = arg;
	char id[16], u[37], reason[400], l1[200], l2[200], l3[200], l4[200];
	int i;

	snprintf(id, sizeof(id), "%u", c->id);
	if ((i = tbl_find(r, "pair", "id", id)) >= 0)
		tbl_del(r, i);
	jrnl_uuid_str(c->juuid, u);
	cb_pct_encode(c->reason[0] ? c->reason : "-", reason, sizeof(reason));
	return tbl_add(r, "pair id=%u role=%s pvol=%s pjnl=%" PRIu64 " svol=%s"
		       " sjnl=%" PRIu64 " src_pvol=%s src_pjnl=%" PRIu64 " s_peer=%" PRIu64
		       " p_peer=%" PRIu64 " r_src_pvol=%s r_src_pjnl=%" PRIu64
		       " state=%s copy_pos=%" PRIu64 " mode=%s interval_ms=%u"
		       " rate_mb=%u juuid=%s reason=%s overflow=%s warn_pct=%u granule_bytes=%" PRIu64
		       " delta=%d delta_fetched=%d resynced=%d takeover_seq=%" PRIu64
		       " consistent_ns=%" PRIu64, c->id,
		       c->role == PAIR_PRIMARY ? "primary" : "aux",
		       fmt_list(c->pvols, c->nvols, l1, sizeof(l1)), c->pjnl,
		       fmt_list(c->svols, c->nvols, l2, sizeof(l2)), c->sjnl,
		       fmt_list(c->src_pvols, c->nvols, l3, sizeof(l3)), c->src_pjnl, c->s_peer,
		       c->p_peer, fmt_list(c->r_src_pvols, c->nvols, l4, sizeof(l4)), c->r_src_pjnl,
		       pair_state_name(c->state),
		       c->copy_pos, c->auto_mode ? "auto" : "host", c->interval_ms, c->rate_mb, u,
		       reason, c->overflow_throttle ? "throttle" : "suspend", c->warn_pct,
		       c->granule_bytes, c->delta, c->delta_fetched, c->resynced, c->takeover_seq,
		       c->consistent_ns);
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

/* aux: the primary's changed granules, through s_peer ("pair-dirty id= from=") */
static int fetch_dirty_cb(void *ctx, const struct pair_cfg *c, int vi, struct pbm *into,
			  char *why, size_t why_len)
{
	uint64_t from = 0, bits = UINT64_MAX;
	int err = 0;

	(void)ctx;
	while (from < bits && !err) {
		char a[32], b[40], d[16], buf[40];
		const char *params[3] = { a, b, d };
		struct cb_reply r;

		snprintf(a, sizeof(a), "id=%u", c->id);
		snprintf(b, sizeof(b), "from=%" PRIu64, from);
		snprintf(d, sizeof(d), "vol=%d", vi);
		if ((err = remote_call(c->s_peer, "pair-dirty", params, 3, &r, why, why_len)))
			break;
		if (r.status != CB_OK) {
			snprintf(why, why_len, "%s: %s", cb_status_name(r.status), r.msg);
			cb_reply_free(&r);
			return -EPROTO;
		}
		for (int i = 0; i < r.nlines && !err; i++) {
			uint64_t f, n;

			if (cb_rec_get(r.lines[i], "next", buf, sizeof(buf))) {
				from = strtoull(buf, NULL, 10);
				if (cb_rec_get(r.lines[i], "bits", buf, sizeof(buf)))
					bits = strtoull(buf, NULL, 10);
				continue;
			}
			if (!cb_rec_get(r.lines[i], "first", buf, sizeof(buf)))
				continue;
			f = strtoull(buf, NULL, 10);
			n = cb_rec_get(r.lines[i], "count", buf, sizeof(buf)) ? strtoull(buf, NULL, 10) : 0;
			if (n && (err = pbm_set(into, f, f + n - 1, NULL)))
				snprintf(why, why_len, "cannot record the delta: %s", strerror(-err));
		}
		cb_reply_free(&r);
	}
	return err;
}

static int delta_done_cb(void *ctx, const struct pair_cfg *c, char *why, size_t why_len)
{
	char a[32];
	const char *params[1] = { a };
	struct cb_reply r;
	int err;

	(void)ctx;
	snprintf(a, sizeof(a), "id=%u", c->id);
	if ((err = remote_call(c->s_peer, "pair-delta-done", params, 1, &r, why, why_len)))
		return err;
	if (r.status != CB_OK) {
		snprintf(why, why_len, "%s: %s", cb_status_name(r.status), r.msg);
		err = -EPROTO;
	}
	cb_reply_free(&r);
	return err;
}

static const struct pair_env env = { .persist = persist_cb, .confirm = confirm_cb,
				     .fetch_dirty = fetch_dirty_cb, .delta_done = delta_done_cb };

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
	uint64_t ids[3 * PAIR_MAX_VOLS + 3];
	size_t n = 0;

	for (uint32_t k = 0; k < (c->nvols ? c->nvols : 1); k++) {
		ids[n++] = c->pvols[k];
		ids[n++] = c->svols[k];
		ids[n++] = c->src_pvols[k];
	}
	ids[n++] = c->pjnl;
	ids[n++] = c->sjnl;
	ids[n++] = c->src_pjnl;
	for (size_t i = 0; i < n; i++) {
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
	pthread_mutex_lock(&plock);       /* lock order: plock, then the tables */
	tables_each(t, "pair", collect, l);
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

/* A volid list "10,12" (a consistency group; every list of a command as long as the first). */
static int p_vols(struct exec_ctx *x, const char *key, uint64_t *ids, uint32_t *n, int required)
{
	const char *v = cb_get(x->cb, key);
	uint32_t k;

	if (!v && !required)
		return 0;
	if (!v || parse_list(v, ids, &k)) {
		res_status(x->res, CB_INVALID, "%s=%s: expected a volid or a comma-separated list of up "
			   "to %d volids", key, v ? v : "(missing)", PAIR_MAX_VOLS);
		return -EINVAL;
	}
	if (*n && k != *n) {
		res_status(x->res, CB_INVALID, "%s=%s: %u volids, but the group has %u", key, v, k, *n);
		return -EINVAL;
	}
	*n = k;
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
	char reason[400], err[400], u[37], l1[200], l2[200];
	const struct jrnl_hdr *h;

	pair_get_status(p, &st);
	h = &st.h;
	jrnl_uuid_str(st.cfg.juuid, u);
	cb_pct_encode(st.cfg.reason[0] ? st.cfg.reason : "-", reason, sizeof(reason));
	if (st.cfg.role == PAIR_PRIMARY) {
		uint64_t used = st.jin_pos - st.jout_pos;

		res_line(res, "pair id=%u role=primary state=%s ready=%d pvol=%s pjnl=%" PRIu64
			 " svol=%s sjnl=%" PRIu64 " journal_in=%" PRIu64 " journal_out=%" PRIu64
			 " journal_in_lba=%" PRIu64 " journal_out_lba=%" PRIu64 " confirmed=%" PRIu64
			 " applied=%" PRIu64 " entries=%" PRIu64 " used_bytes=%" PRIu64
			 " data_bytes=%" PRIu64 " used_percent=%.1f writes=%" PRIu64
			 " journal_bytes=%" PRIu64 " batches=%" PRIu64 " waits_full=%" PRIu64
			 " journal_uuid=%s missing=%s reason=%s overflow=%s warn_pct=%u warning=%d"
			 " bitmap_granules=%" PRIu64 " granule_bytes=%" PRIu64 " takeover_seq=%" PRIu64
			 " resync_pending=%d",
			 st.cfg.id, pair_state_name(st.cfg.state), st.ready,
			 fmt_list(st.cfg.pvols, st.cfg.nvols, l1, sizeof(l1)), st.cfg.pjnl,
			 fmt_list(st.cfg.svols, st.cfg.nvols, l2, sizeof(l2)), st.cfg.sjnl, st.jin, st.jout,
			 h->data_bytes ? jrnl_pos_lba(h, st.jin_pos) : 0,
			 h->data_bytes ? jrnl_pos_lba(h, st.jout_pos) : 0, st.confirmed, st.applied,
			 st.jin - st.jout, used, h->data_bytes,
			 h->data_bytes ? 100.0 * (double)used / (double)h->data_bytes : 0.0, st.writes,
			 st.journal_bytes, st.batches, st.waits_full, u,
			 st.missing[0] ? st.missing : "-", reason,
			 st.cfg.overflow_throttle ? "throttle" : "suspend",
			 st.cfg.warn_pct ? st.cfg.warn_pct : 80, st.warning, st.bitmap_granules,
			 st.cfg.granule_bytes, st.cfg.takeover_seq, st.cfg.resynced);
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
			 " pvol=%s pjnl=%" PRIu64 " svol=%s sjnl=%" PRIu64
			 " restore_completed=%" PRIu64 " to_be_restored=%" PRIu64
			 " read_completed=%" PRIu64 " to_be_read=%" PRIu64
			 " restore_completed_lba=%" PRIu64 " read_completed_lba=%" PRIu64
			 " copy_bytes=%" PRIu64 " copy_total=%" PRIu64 " copy_percent=%.1f"
			 " known_head=%" PRIu64 " lag_entries=%" PRIu64 " lag_bytes=%" PRIu64
			 " lag_seconds=%.3f link=%s confirmed_sent=%" PRIu64
			 " acquired_entries=%" PRIu64 " acquired_bytes=%" PRIu64
			 " restored_entries=%" PRIu64 " restored_bytes=%" PRIu64
			 " journal_uuid=%s missing=%s reason=%s last_error=%s consistent=%d"
			 " consistent_seconds=%.3f delta=%d delta_granules=%" PRIu64,
			 st.cfg.id, pair_state_name(st.cfg.state), st.ready,
			 st.cfg.auto_mode ? "auto" : "host", st.cfg.interval_ms, st.cfg.rate_mb,
			 fmt_list(st.cfg.pvols, st.cfg.nvols, l1, sizeof(l1)), st.cfg.pjnl,
			 fmt_list(st.cfg.svols, st.cfg.nvols, l2, sizeof(l2)), st.cfg.sjnl,
			 st.restore_completed,
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
			 st.missing[0] ? st.missing : "-", reason, err,
			 st.cfg.state != PAIR_COPYING,
			 st.cfg.state == PAIR_COPYING && st.cfg.consistent_ns ?
			 (double)now.tv_sec + (double)now.tv_nsec / 1e9 - (double)st.cfg.consistent_ns / 1e9 :
			 lag_s, st.cfg.delta, st.cfg.delta ? st.bitmap_granules : 0);
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
					    "rate_mb", "r_src_pvol", "r_src_pjnl", "overflow", "warn_pct",
					    "granule_kib", NULL };

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
		uint64_t mine[PAIR_MAX_VOLS + 1];
		int nm = 0;

		if (c->id == id) {
			res_status(x->res, CB_EXISTS, "pair %u exists on this device", id);
			err = -EEXIST;
			break;
		}
		for (uint32_t k = 0; k < (c->nvols ? c->nvols : 1); k++)
			mine[nm++] = c->role == PAIR_PRIMARY ? c->pvols[k] : c->svols[k];
		mine[nm++] = c->role == PAIR_PRIMARY ? c->pjnl : c->sjnl;
		for (int k = 0; k < n && !err; k++)
			for (int m = 0; m < nm; m++)
				if (vols[k] == mine[m]) {
					res_status(x->res, CB_EXISTS, "volid %" PRIu64 " is already in "
						   "pair %u", vols[k], c->id);
					err = -EEXIST;
				}
	}
	free(l);
	return err;
}

/* No volid twice among the local volumes of a new pair. */
static int distinct(struct exec_ctx *x, const uint64_t *ids, int n)
{
	for (int i = 0; i < n; i++)
		for (int k = i + 1; k < n; k++)
			if (ids[i] == ids[k]) {
				res_status(x->res, CB_INVALID, "volid %" PRIu64 " is named twice (a volume "
					   "and its journal, or two volumes of the group, are the same)",
					   ids[i]);
				return -EINVAL;
			}
	return 0;
}

static int create_local(struct exec_ctx *x, struct pair_cfg *c)
{
	struct vol *v[4] = { 0 };
	struct pair *p = NULL;
	uint64_t ids[PAIR_MAX_VOLS + 1];
	int n = (int)(c->nvols ? c->nvols : 1);
	char why[400];
	int err = 0, slot = -1;

	if (c->role == PAIR_PRIMARY) {
		for (int i = 0; i < n; i++)
			ids[i] = c->pvols[i];
		ids[n] = c->pjnl;
		if ((err = distinct(x, ids, n + 1)) || (err = in_use(x, c->id, ids, n + 1)) ||
		    (err = check_vol(x, c->pjnl, "pjnl", 0, 0, &v[1])) ||
		    (c->p_peer && (err = check_vol(x, c->p_peer, "p_peer", 1, 1, &v[2]))))
			goto out;
		for (int i = 0; i < n && !err; i++) {
			struct vol *pv;

			if (!(err = check_vol(x, c->pvols[i], "pvol", 0, 0, &pv)))
				vol_put(pv);
		}
		if (err)
			goto out;
		if (c->r_src_pvol || c->r_src_pjnl) {
			struct vol *rv;

			for (int i = 0; i < n && !err; i++)
				if (!(err = check_vol(x, c->r_src_pvols[i], "r_src_pvol", 1, 0, &rv)))
					vol_put(rv);
			if (err || (err = check_vol(x, c->r_src_pjnl, "r_src_pjnl", 1, 0, &rv)))
				goto out;
			vol_put(rv);
		}
		if ((err = pair_format_primary(v[1], c->id, c->juuid, why, sizeof(why)))) {
			res_status(x->res, err_status(err), "%s", why);
			goto out;
		}
		c->state = PAIR_JOURNALING;
	} else {
		for (int i = 0; i < n; i++)
			ids[i] = c->svols[i];
		ids[n] = c->sjnl;
		if ((err = distinct(x, ids, n + 1)) || (err = in_use(x, c->id, ids, n + 1)) ||
		    (err = check_vol(x, c->sjnl, "sjnl", 0, 0, &v[1])) ||
		    (err = check_vol(x, c->src_pjnl, "src_pjnl", 1, 0, &v[3])))
			goto out;
		if (c->s_peer) {
			struct vol *sp;

			if ((err = check_vol(x, c->s_peer, "s_peer", 1, 1, &sp)))
				goto out;
			vol_put(sp);
		}
		for (int i = 0; i < n && !err; i++) {
			struct vol *sv, *pv;

			if ((err = check_vol(x, c->svols[i], "svol", 0, 0, &sv)))
				break;
			if ((err = check_vol(x, c->src_pvols[i], "src_pvol", 1, 0, &pv))) {
				vol_put(sv);
				break;
			}
			if (sv->size_bytes < pv->size_bytes || sv->block_bytes != pv->block_bytes) {
				res_status(x->res, CB_INVALID, "the auxiliary volume %" PRIu64 " (%" PRIu64
					   " bytes, block %u) must be at least as large as its primary "
					   "volume (%" PRIu64 " bytes) and have its block size (%u)",
					   sv->volid, sv->size_bytes, sv->block_bytes, pv->size_bytes,
					   pv->block_bytes);
				err = -EINVAL;
			}
			vol_put(sv);
			vol_put(pv);
		}
		if (err)
			goto out;
		if ((err = pair_format_aux(v[1], v[3], c->id, c->juuid, why, sizeof(why)))) {
			res_status(x->res, err_status(err), "%s", why);
			goto out;
		}
		c->state = PAIR_COPYING;
		c->copy_pos = 0;
	}
	set_paths(c);
	unlink_bitmaps(c);          /* leftovers of a deleted pair of the same id */
	/* the record and the open instance appear together: a reconcile sees both or neither */
	pthread_mutex_lock(&plock);
	if ((err = tables_update(x->tables, put_rec, c))) {
		pthread_mutex_unlock(&plock);
		res_status(x->res, CB_FAILED, "cannot record the pair in the tables: %s", strerror(-err));
		goto out;
	}
	for (int k = 0; k < PAIRS_MAX && slot < 0; k++)
		if (!open_p[k])
			slot = k;
	if (slot < 0 || (err = pair_open(c, &env, &p))) {
		tables_update(x->tables, del_rec, &c->id);
		pthread_mutex_unlock(&plock);
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
	/* the record goes before plock is released: a reconcile in between must not open the
	 * pair again */
	tables_update(t, del_rec, &id);
	pthread_mutex_unlock(&plock);
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
	if (p_u64(x, "id", 1, 65535, &id, 1) || p_vols(x, "pvol", c.pvols, &c.nvols, 1) ||
	    p_u64(x, "pjnl", 1, UINT32_MAX, &c.pjnl, 1) || p_vols(x, "svol", c.svols, &c.nvols, 1) ||
	    p_u64(x, "sjnl", 1, UINT32_MAX, &c.sjnl, 1) ||
	    p_vols(x, "src_pvol", c.src_pvols, &c.nvols, 1) ||
	    p_u64(x, "src_pjnl", 1, UINT32_MAX, &c.src_pjnl, 1) ||
	    p_u64(x, "s_peer", 1, UINT32_MAX, &c.s_peer, 1) ||
	    p_u64(x, "p_peer", 1, UINT32_MAX, &c.p_peer, 1) ||
	    p_u64(x, "interval_ms", 1, 3600000, &iv, 0) || p_u64(x, "rate_mb", 0, 100000, &rate, 0) ||
	    p_vols(x, "r_src_pvol", c.r_src_pvols, &c.nvols, 0) ||
	    p_u64(x, "r_src_pjnl", 1, UINT32_MAX, &c.r_src_pjnl, 0))
		return x->res->status;
	{
		const char *ov = cb_get(x->cb, "overflow");
		uint64_t wp = 80, gk = 1024;

		if (ov && strcmp(ov, "suspend") && strcmp(ov, "throttle")) {
			res_status(x->res, CB_INVALID, "overflow=%s: expected suspend or throttle", ov);
			return CB_INVALID;
		}
		if (p_u64(x, "warn_pct", 1, 100, &wp, 0) || p_u64(x, "granule_kib", 64, 65536, &gk, 0))
			return x->res->status;
		if (gk & (gk - 1)) {
			res_status(x->res, CB_INVALID, "granule_kib=%" PRIu64 ": a power of two", gk);
			return CB_INVALID;
		}
		c.overflow_throttle = ov && !strcmp(ov, "throttle");
		c.warn_pct = (uint32_t)wp;
		c.granule_bytes = gk * 1024;
	}
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

/* "id [upto]" commands */
static int id_upto(struct exec_ctx *x, int (*fn)(struct exec_ctx *x, struct pair *p))
{
	uint64_t id;

	g_upto = 0;
	if (p_u64(x, "id", 1, 65535, &id, 1) || p_u64(x, "upto", 1, UINT64_MAX - 1, &g_upto, 0))
		return x->res->status;
	return with_pair(x, (uint32_t)id, fn);
}

int c_pair_acquire(struct exec_ctx *x)
{
	return id_upto(x, do_acquire);
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
	return id_upto(x, do_restore);
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
	{
		struct pair_cfg c = { .id = (uint32_t)id };

		set_paths(&c);
		unlink_bitmaps(&c);
	}
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

/* The same pair seen from the other side of a role change (swap, takeover, demote): the
 * volumes and the vvols onto the other device trade places; the policy stays; the state, the
 * copy position and the journal uuid are the caller's to set. Aux mode settings come from the
 * command (mode=, interval_ms=) where it gives them. */
static void flip_roles(struct exec_ctx *x, const struct pair_cfg *o, struct pair_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->id = o->id;
	c->nvols = o->nvols;
	c->overflow_throttle = o->overflow_throttle;
	c->warn_pct = o->warn_pct;
	c->granule_bytes = o->granule_bytes;
	c->rate_mb = o->rate_mb;
	c->auto_mode = o->auto_mode;
	c->interval_ms = o->interval_ms ? o->interval_ms : 1000;
	if (o->role == PAIR_AUX) {
		c->role = PAIR_PRIMARY;
		memcpy(c->pvols, o->svols, sizeof(c->pvols));
		c->pjnl = o->sjnl;
		memcpy(c->svols, o->pvols, sizeof(c->svols));
		c->sjnl = o->pjnl;
		c->p_peer = o->s_peer;
		memcpy(c->r_src_pvols, o->src_pvols, sizeof(c->r_src_pvols));
		c->r_src_pjnl = o->src_pjnl;
	} else {
		c->role = PAIR_AUX;
		memcpy(c->svols, o->pvols, sizeof(c->svols));
		c->sjnl = o->pjnl;
		memcpy(c->pvols, o->svols, sizeof(c->pvols));
		c->pjnl = o->sjnl;
		memcpy(c->src_pvols, o->r_src_pvols, sizeof(c->src_pvols));
		c->src_pjnl = o->r_src_pjnl;
		c->s_peer = o->p_peer;
	}
	if (cb_get(x->cb, "mode"))
		c->auto_mode = !strcmp(cb_get(x->cb, "mode"), "auto");
	if (cb_get(x->cb, "interval_ms"))
		c->interval_ms = (uint32_t)strtoul(cb_get(x->cb, "interval_ms"), NULL, 10);
}

/* ---- swap (seed 004 Figs. 19-21) ---- */

static double mono_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Replace pair `id`'s open instance and record by `c` (a role change). */
static int reopen_as(struct exec_ctx *x, const struct pair_cfg *c0)
{
	struct pair_cfg cc = *c0, *c = &cc;
	struct pair *p = NULL;
	int err, slot = -1;

	set_paths(c);
	delete_local(x->tables, c->id);
	pthread_mutex_lock(&plock);
	if ((err = tables_update(x->tables, put_rec, (void *)c))) {
		pthread_mutex_unlock(&plock);
		return err;
	}
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
		for (uint32_t k = 0; k < (st.cfg.nvols ? st.cfg.nvols : 1); k++) {
			struct vol *rp = vol_lookup(st.cfg.r_src_pvols[k]);

			if (rp) {
				total += rp->size_bytes;
				vol_put(rp);
			}
		}
		/* this device becomes the auxiliary one: its volume is the copy now */
		flip_roles(x, &st.cfg, &c);
		c.state = PAIR_PAIRED;
		c.copy_pos = total;
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
	flip_roles(x, &st.cfg, &c);
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

/* ---- replication II: delta resync, takeover ---- */

int c_pair_dirty(struct exec_ctx *x)
{
	uint64_t id, from = 0, first[512], count[512], next, vi = 0;
	struct pair *p;
	int n;

	if (p_u64(x, "id", 1, 65535, &id, 1) || p_u64(x, "from", 0, UINT64_MAX - 1, &from, 0) ||
	    p_u64(x, "vol", 0, PAIR_MAX_VOLS - 1, &vi, 0))
		return x->res->status;
	pthread_mutex_lock(&plock);
	p = find_open((uint32_t)id);
	n = p ? pair_dirty_runs(p, (int)vi, from, 512, first, count, &next) : -ENOENT;
	if (n >= 0) {
		struct pair_status st;

		pair_get_status(p, &st);
		for (int i = 0; i < n; i++)
			res_line(x->res, "run first=%" PRIu64 " count=%" PRIu64, first[i], count[i]);
		res_line(x->res, "dirty next=%" PRIu64 " bits=%" PRIu64 " granule_bytes=%" PRIu64, next,
			 n < 512 ? next : UINT64_MAX, st.cfg.granule_bytes);
	}
	pthread_mutex_unlock(&plock);
	if (n < 0) {
		res_status(x->res, n == -ENOENT ? CB_NOT_FOUND : CB_FAILED, "pair %" PRIu64 ": %s", id,
			   n == -ENOENT ? "not on this device" : "no change bitmap");
		return x->res->status;
	}
	res_status(x->res, CB_OK, "%d runs", n);
	return CB_OK;
}

int c_pair_delta_done(struct exec_ctx *x)
{
	uint64_t id;
	struct pair *p;
	int err;

	if (p_u64(x, "id", 1, 65535, &id, 1))
		return x->res->status;
	pthread_mutex_lock(&plock);
	p = find_open((uint32_t)id);
	err = p ? pair_delta_done(p) : -ENOENT;
	pthread_mutex_unlock(&plock);
	if (err) {
		res_status(x->res, err == -ENOENT ? CB_NOT_FOUND : CB_FAILED, "pair %" PRIu64 ": %s", id,
			   err == -ESTALE ? "suspended again since the resync: resync again" :
			   strerror(-err));
		return x->res->status;
	}
	res_status(x->res, CB_OK, "pair %" PRIu64 ": change bitmap cleared", id);
	return CB_OK;
}

/* The aux half of a delta resync: drain, have the primary start a new journal, follow it. */
/* call_primary: ask the primary to start its new journal (issued here); 0: it already did (the
 * resync was issued on the primary, which sent step=follow: no call back into a device whose
 * command is still running). */
static int resync_aux(struct exec_ctx *x, struct pair_status *st, int call_primary)
{
	char a[32], b[32], why[400], buf[64];
	const char *params[2] = { a, b };
	struct cb_reply reply;
	struct pair *p;
	struct pair_cfg c = st->cfg;
	uint64_t restored_ns = st->last_restored_ns;
	int err;

	pthread_mutex_lock(&plock);
	p = find_open(c.id);
	pthread_mutex_unlock(&plock);
	/* what was acquired is restored first: the volume is consistent up to there */
	if (p && st->cfg.state != PAIR_COPYING) {
		pair_drain(p, 0, 30);
		pair_get_status(p, st);
		if (st->last_restored_ns)
			restored_ns = st->last_restored_ns;
	}
	snprintf(a, sizeof(a), "id=%u", c.id);
	snprintf(b, sizeof(b), "step=primary");
	if (call_primary &&
	    ((err = remote_call(c.s_peer, "pair-resync", params, 2, &reply, why, sizeof(why))) ||
	     reply.status != CB_OK)) {
		res_status(x->res, CB_FAILED, "pair %u: the primary device cannot start the resync: %s",
			   c.id, err ? why : reply.msg);
		if (!err)
			cb_reply_free(&reply);
		return CB_FAILED;
	}
	if (call_primary)
		cb_reply_free(&reply);
	/* the old instance goes first: its worker must not write the journal being formatted */
	delete_local(x->tables, c.id);
	{
		struct vol *sj = vol_lookup(c.sjnl), *src = vol_lookup(c.src_pjnl);

		err = sj && src ? pair_format_aux(sj, src, c.id, c.juuid, why, sizeof(why)) : -ENOENT;
		if (sj)
			vol_put(sj);
		if (src)
			vol_put(src);
	}
	if (err) {
		reopen_as(x, &st->cfg);     /* as it was: pair-resync can be tried again */
		res_status(x->res, CB_FAILED, "pair %u: cannot follow the primary's new journal: %s",
			   c.id, err == -ENOENT ? "a volume is missing" : why);
		return CB_FAILED;
	}
	c.state = PAIR_COPYING;
	c.delta = 1;
	c.delta_fetched = 0;
	c.reason[0] = 0;
	if (!c.consistent_ns)
		c.consistent_ns = restored_ns ? restored_ns : (uint64_t)time(NULL) * 1000000000ull;
	if ((err = reopen_as(x, &c))) {
		res_status(x->res, CB_FAILED, "pair %u: %s", c.id, strerror(-err));
		return CB_FAILED;
	}
	(void)buf;
	pthread_mutex_lock(&plock);
	if ((p = find_open(c.id)))
		status_line(x->res, p);
	pthread_mutex_unlock(&plock);
	res_status(x->res, CB_RUNNING, "pair %u: delta resync: copying the changed granules; the "
		   "auxiliary volume is inconsistent until it ends (its last consistent image is of "
		   "the primary %.1f s ago)", c.id,
		   (double)time(NULL) - (double)c.consistent_ns / 1e9);
	return CB_RUNNING;
}

/* The old primary, after a takeover by the other device: discard (and report) its unsent tail,
 * become auxiliary, copy the delta. */
static int demote(struct exec_ctx *x, struct pair_status *st, uint64_t takeover_seq)
{
	struct pair_cfg c;
	struct pair *p;
	uint64_t entries = 0, bytes = 0, last = 0, granules = 0;
	char why[400];
	int err;

	pthread_mutex_lock(&plock);
	p = find_open(st->cfg.id);
	if (p && st->cfg.state == PAIR_JOURNALING)
		pair_freeze(p, &last);          /* no host write slips in meanwhile */
	err = p ? pair_tail_granules(p, takeover_seq, &entries, &bytes, &granules) : -ENOENT;
	pthread_mutex_unlock(&plock);
	if (err) {
		res_status(x->res, CB_FAILED, "pair %u: cannot work out the writes the other device "
			   "lacks: %s", st->cfg.id, strerror(-err));
		return CB_FAILED;
	}
	flip_roles(x, &st->cfg, &c);
	c.state = PAIR_COPYING;
	c.delta = 1;
	if (!c.src_pvol || !c.src_pjnl) {
		res_status(x->res, CB_INVALID, "pair %u: this device has no vvols onto the other "
			   "device's volume and journal (r_src_pvol= r_src_pjnl=)", c.id);
		return CB_INVALID;
	}
	delete_local(x->tables, c.id);
	{
		struct vol *sj = vol_lookup(c.sjnl), *src = vol_lookup(c.src_pjnl);

		err = sj && src ? pair_format_aux(sj, src, c.id, c.juuid, why, sizeof(why)) : -ENOENT;
		if (sj)
			vol_put(sj);
		if (src)
			vol_put(src);
	}
	if (err || (err = reopen_as(x, &c))) {
		res_status(x->res, CB_FAILED, "pair %u: cannot become auxiliary: %s", c.id,
			   err == -ENOENT ? "a volume is missing" : why);
		return CB_FAILED;
	}
	tlog(TLOG_ERR, "pair %u: the other device took over at sequence %" PRIu64 ": %" PRIu64
	     " journaled writes (%" PRIu64 " bytes) made here after it, and %" PRIu64 " granules "
	     "written here unjournaled (suspended), never reached it and are DISCARDED: their blocks "
	     "are copied back from the other device", c.id, takeover_seq, entries, bytes, granules);
	res_line(x->res, "discarded entries=%" PRIu64 " bytes=%" PRIu64 " granules=%" PRIu64
		 " after_seq=%" PRIu64, entries, bytes, granules, takeover_seq);
	res_status(x->res, CB_OK, "pair %u: auxiliary now; %" PRIu64 " writes (%" PRIu64 " bytes) "
		   "after sequence %" PRIu64 " and %" PRIu64 " granules written while suspended "
		   "discarded", c.id, entries, bytes, takeover_seq, granules);
	return CB_OK;
}

int c_pair_resync(struct exec_ctx *x)
{
	uint64_t id, tseq = 0;
	const char *step = cb_get(x->cb, "step");
	struct pair_status st;
	struct cb_reply reply;
	char why[400];
	int err;

	if (p_u64(x, "id", 1, 65535, &id, 1) || p_u64(x, "takeover_seq", 0, UINT64_MAX - 1, &tseq, 0))
		return x->res->status;
	pairs_reconcile();
	if (get_cfg((uint32_t)id, &st)) {
		res_status(x->res, CB_NOT_FOUND, "no pair %" PRIu64 " on this device", id);
		return CB_NOT_FOUND;
	}
	if (step && !strcmp(step, "primary")) {
		struct pair *p;
		uint8_t u[16];
		char us[37];

		why[0] = 0;
		pthread_mutex_lock(&plock);
		p = find_open((uint32_t)id);
		err = p ? pair_resync_primary(p, u, why, sizeof(why)) : -ENOENT;
		pthread_mutex_unlock(&plock);
		if (err) {
			res_status(x->res, CB_FAILED, "pair %" PRIu64 ": cannot start a delta resync: %s",
				   id, why[0] ? why : strerror(-err));
			return CB_FAILED;
		}
		jrnl_uuid_str(u, us);
		res_line(x->res, "resync id=%" PRIu64 " juuid=%s", id, us);
		res_status(x->res, CB_OK, "pair %" PRIu64 ": journaling into a new journal; the change "
			   "bitmap is the delta", id);
		return CB_OK;
	}
	if (step && !strcmp(step, "follow")) {
		if (st.cfg.role != PAIR_AUX) {
			res_status(x->res, CB_INVALID, "pair %" PRIu64 ": step=follow is for the auxiliary "
				   "device", id);
			return CB_INVALID;
		}
		return resync_aux(x, &st, 0);
	}
	if (step && !strcmp(step, "demote")) {
		if (st.cfg.role != PAIR_PRIMARY) {
			res_status(x->res, CB_INVALID, "pair %" PRIu64 ": this device is not primary", id);
			return CB_INVALID;
		}
		return demote(x, &st, tseq);
	}
	if (step) {
		res_status(x->res, CB_INVALID, "step=%s: expected primary or demote", step);
		return CB_INVALID;
	}
	if (st.cfg.role == PAIR_AUX)
		return resync_aux(x, &st, 1);
	/* on the primary device */
	if (st.cfg.takeover_seq) {
		/* after a takeover: a new journal here, then the old primary follows */
		struct pair *p;
		uint8_t u[16];
		char a[32], b[32], d[48], e[32], f[32];
		const char *params[5] = { a, b, d, e, f };

		why[0] = 0;
		pthread_mutex_lock(&plock);
		p = find_open((uint32_t)id);
		err = p ? pair_resync_primary(p, u, why, sizeof(why)) : -ENOENT;
		pthread_mutex_unlock(&plock);
		if (err) {
			res_status(x->res, CB_FAILED, "pair %" PRIu64 ": %s", id, why[0] ? why : strerror(-err));
			return CB_FAILED;
		}
		snprintf(a, sizeof(a), "id=%" PRIu64, id);
		snprintf(b, sizeof(b), "step=demote");
		snprintf(d, sizeof(d), "takeover_seq=%" PRIu64, st.cfg.takeover_seq);
		snprintf(e, sizeof(e), "mode=%s", cb_get(x->cb, "mode") ? cb_get(x->cb, "mode") : "auto");
		snprintf(f, sizeof(f), "interval_ms=%s", cb_get(x->cb, "interval_ms") ?
			 cb_get(x->cb, "interval_ms") : "100");
		err = remote_call(st.cfg.p_peer, "pair-resync", params, 5, &reply, why, sizeof(why));
		if (err || reply.status != CB_OK) {
			res_status(x->res, CB_FAILED, "pair %" PRIu64 ": journaling here, but the other "
				   "device did not become auxiliary: %s", id, err ? why : reply.msg);
			if (!err)
				cb_reply_free(&reply);
			return CB_FAILED;
		}
		for (int i = 0; i < reply.nlines; i++)
			res_line(x->res, "%s", reply.lines[i]);
		pthread_mutex_lock(&plock);
		if ((p = find_open((uint32_t)id)))
			pair_takeover_done(p);
		pthread_mutex_unlock(&plock);
		res_status(x->res, CB_RUNNING, "pair %" PRIu64 ": the other device follows again (delta "
			   "copy running); %s", id, reply.msg);
		cb_reply_free(&reply);
		return CB_RUNNING;
	}
	/* on the primary: the new journal here first, then the auxiliary device follows it */
	{
		struct pair *p;
		uint8_t u[16];
		char a[32], b[32];
		const char *params[2] = { a, b };

		why[0] = 0;
		pthread_mutex_lock(&plock);
		p = find_open((uint32_t)id);
		err = p ? pair_resync_primary(p, u, why, sizeof(why)) : -ENOENT;
		pthread_mutex_unlock(&plock);
		if (err) {
			res_status(x->res, CB_FAILED, "pair %" PRIu64 ": cannot start a delta resync: %s",
				   id, why[0] ? why : strerror(-err));
			return CB_FAILED;
		}
		snprintf(a, sizeof(a), "id=%" PRIu64, id);
		snprintf(b, sizeof(b), "step=follow");
		err = remote_call(st.cfg.p_peer, "pair-resync", params, 2, &reply, why, sizeof(why));
		if (err) {
			res_status(x->res, CB_FAILED, "pair %" PRIu64 ": journaling into a new journal, but "
				   "the auxiliary device cannot be told (%s): issue pair-resync there", id,
				   why);
			return CB_FAILED;
		}
		res_status(x->res, reply.status, "%s", reply.msg);
		for (int i = 0; i < reply.nlines; i++)
			res_line(x->res, "%s", reply.lines[i]);
		cb_reply_free(&reply);
		return x->res->status;
	}
}

int c_pair_takeover(struct exec_ctx *x)
{
	uint64_t id;
	struct pair_status st;
	struct pair_cfg c;
	struct pair *p;
	double t0 = mono_now();
	int err;

	if (p_u64(x, "id", 1, 65535, &id, 1))
		return x->res->status;
	pairs_reconcile();
	if (get_cfg((uint32_t)id, &st) || st.cfg.role != PAIR_AUX) {
		res_status(x->res, CB_INVALID, "pair %" PRIu64 ": a takeover is issued on the auxiliary "
			   "device", id);
		return CB_INVALID;
	}
	if (st.cfg.state == PAIR_COPYING) {
		res_status(x->res, CB_INVALID, "pair %" PRIu64 ": the auxiliary volume is still being "
			   "copied (inconsistent): it cannot take over", id);
		return CB_INVALID;
	}
	/* restore everything acquired: the newest consistent image there is */
	pthread_mutex_lock(&plock);
	p = find_open((uint32_t)id);
	pthread_mutex_unlock(&plock);
	if (p) {
		err = pair_drain(p, 0, 30);
		if (err) {
			res_status(x->res, CB_FAILED, "pair %" PRIu64 ": cannot restore what was acquired "
				   "(%s): no takeover", id, strerror(-err));
			return CB_FAILED;
		}
		pair_get_status(p, &st);
	}
	flip_roles(x, &st.cfg, &c);
	c.state = PAIR_SUSPENDED;
	c.takeover_seq = st.restore_completed;
	memcpy(c.juuid, st.cfg.juuid, 16);
	snprintf(c.reason, sizeof(c.reason), "takeover at sequence %" PRIu64 ": changes are "
		 "tracked in the bitmap until pair-resync", st.restore_completed);
	{
		/* the aux's own bitmap (a delta that was never needed) starts empty as the primary's */
		struct pair_cfg b = { .id = c.id };

		delete_local(x->tables, c.id);
		set_paths(&b);
		unlink_bitmaps(&b);
	}
	if ((err = reopen_as(x, &c))) {
		res_status(x->res, CB_FAILED, "pair %" PRIu64 ": cannot become primary: %s", id,
			   strerror(-err));
		return CB_FAILED;
	}
	pthread_mutex_lock(&plock);
	if ((p = find_open((uint32_t)id)))
		status_line(x->res, p);
	pthread_mutex_unlock(&plock);
	res_status(x->res, CB_OK, "pair %" PRIu64 ": took over at sequence %" PRIu64 " (every entry "
		   "acquired is restored); hosts may write here now, changes are tracked; pair-resync "
		   "when the other device is back; %.0f ms", id, st.restore_completed,
		   (mono_now() - t0) * 1000);
	tlog(TLOG_WARN, "%s", x->res->msg);
	return CB_OK;
}

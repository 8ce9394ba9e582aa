/* The command table: every command a command device executes. Adding one is one entry here and
 * one handler (docs/command-device.md lists them). Handlers run one at a time (the device's
 * exec lock) and must be quick: anything long starts an operation (ops.h). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdvol/cmddev.h"
#include "cmdvol/ops.h"
#include "cmdvol/mirrors.h"
#include "cmdvol/pairs.h"
#include "cmdvol/raidops.h"
#include "raid/mirror.h"
#include "raid/raidvol.h"
#include "replication/vvol.h"

#define TANDEM_VERSION "0.1"

static int ok(struct exec_ctx *x, const char *fmt, const char *arg)
{
	res_status(x->res, CB_OK, fmt, arg);
	return CB_OK;
}

/* Parse a decimal parameter; on error set INVALID. */
static int param_u64(struct exec_ctx *x, const char *key, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	const char *v = cb_get(x->cb, key);
	char *end;

	if (!v || !isdigit((unsigned char)v[0]) || (*out = strtoull(v, &end, 10), *end) ||
	    *out < min || *out > max) {
		res_status(x->res, CB_INVALID, "%s=%s: expected a number from %" PRIu64 " to %" PRIu64,
			   key, v ? v : "", min, max);
		return -EINVAL;
	}
	return 0;
}

/* The volume named by volid=, with a reference; NULL with the status set. */
static struct vol *param_vol(struct exec_ctx *x)
{
	uint64_t id;
	struct vol *v;

	if (param_u64(x, "volid", 1, UINT32_MAX, &id))
		return NULL;
	v = vol_lookup(id);
	if (!v)
		res_status(x->res, CB_NOT_FOUND, "no volume with volid %" PRIu64 " on this device", id);
	return v;
}

static void vol_line(struct cb_result *res, struct vol *v)
{
	struct raid_vol *a = raidvol_array(v);

	if (a) {
		struct raid_info i;

		raid_get_info(a, &i);
		res_line(res, "vol volid=%" PRIu64 " type=%s size_bytes=%" PRIu64 " block_bytes=%u "
			 "state=%s layout=%uD+1P chunk_bytes=%u", v->volid, v->type, v->size_bytes,
			 v->block_bytes, raid_state_name(&i), i.geom.nr_data, i.geom.chunk_bytes);
	} else {
		res_line(res, "vol volid=%" PRIu64 " type=%s size_bytes=%" PRIu64 " block_bytes=%u "
			 "state=online", v->volid, v->type, v->size_bytes, v->block_bytes);
	}
}

static void count(struct vol *v, void *arg)
{
	(void)v;
	(*(int *)arg)++;
}

static int c_info(struct exec_ctx *x)
{
	int nvol = 0;

	vol_for_each(count, &nvol);
	res_line(x->res, "device name=%s uuid=%s version=%s uptime_s=%.0f volumes=%d "
		 "cmddev_volid=%" PRIu64 " slots=%u slot_bytes=%u auth=%s tables_generation=%" PRIu64,
		 cmddev_device_name(x->cd), tables_device_uuid(x->tables), TANDEM_VERSION,
		 cmddev_uptime_s(x->cd), nvol, cmddev_vol(x->cd)->volid, cmddev_slots(x->cd),
		 CMDDEV_SLOT_BYTES, cmddev_has_key(x->cd) ? "hmac-sha256" : "none",
		 tables_generation(x->tables));
	return ok(x, "device %s", cmddev_device_name(x->cd));
}

static void list_one(struct vol *v, void *arg)
{
	vol_line(arg, v);
}

static int c_vol_list(struct exec_ctx *x)
{
	vol_for_each(list_one, x->res);
	res_status(x->res, CB_OK, "%d volumes", x->res->body_lines);
	return CB_OK;
}

static int c_vol_status(struct exec_ctx *x)
{
	struct vol *v = param_vol(x);
	struct raid_vol *a;

	if (!v)
		return x->res->status;
	vol_line(x->res, v);
	if ((a = raidvol_array(v))) {
		struct raid_info i;

		raid_get_info(a, &i);
		res_line(x->res, "stats full_stripe_writes=%" PRIu64 " rmw_writes=%" PRIu64
			 " rcw_writes=%" PRIu64 " member_reads=%" PRIu64 " member_writes=%" PRIu64,
			 i.stats.full_stripe_writes, i.stats.rmw_writes, i.stats.rcw_writes,
			 i.stats.member_reads, i.stats.member_writes);
	}
	res_status(x->res, CB_OK, "volid %" PRIu64 " (%s)", v->volid, v->type);
	vol_put(v);
	return CB_OK;
}

static void cmddev_line(const char *line, void *arg)
{
	char dev[80], lun[32], volid[32];
	struct cb_result *res = arg;

	res_line(res, "cmddev device=%s lun=%s volid=%s",
		 tbl_get(line, "device", dev, sizeof(dev)) ? dev : "-",
		 tbl_get(line, "lun", lun, sizeof(lun)) ? lun : "-",
		 tbl_get(line, "volid", volid, sizeof(volid)) ? volid : "-");
}

static int c_cmddev_show(struct exec_ctx *x)
{
	tables_each(x->tables, "cmddev", cmddev_line, x->res);
	res_status(x->res, CB_OK, "%d command devices", x->res->body_lines);
	return CB_OK;
}

struct cmddev_arg {
	const char *device;
	uint64_t lun, volid;
	int remove;
};

static int cmddev_change(struct tbl_recs *r, void *p)
{
	struct cmddev_arg *a = p;
	int i = tbl_find(r, "cmddev", "device", a->device);

	if (a->remove) {
		if (i < 0)
			return -ENOENT;
		tbl_del(r, i);
		return 0;
	}
	if (i >= 0)
		return -EEXIST;
	if (!a->volid)
		return tbl_add(r, "cmddev device=%s lun=%" PRIu64, a->device, a->lun);
	return tbl_add(r, "cmddev device=%s lun=%" PRIu64 " volid=%" PRIu64, a->device, a->lun,
		       a->volid);
}

static int device_name_ok(struct exec_ctx *x, const char *d)
{
	size_t n = strlen(d);

	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)d[i]) && !strchr("_.-", d[i]))
			n = 0;
	if (n == 0 || n > TABLES_NAME_MAX) {
		res_status(x->res, CB_INVALID, "device=%s: 1..%d letters, digits, '_', '.', '-'", d,
			   TABLES_NAME_MAX);
		return 0;
	}
	return 1;
}

static int c_cmddev_add(struct exec_ctx *x)
{
	struct cmddev_arg a = { .device = cb_get(x->cb, "device") };
	int err;

	if (!device_name_ok(x, a.device) || param_u64(x, "lun", 1, 16383, &a.lun))
		return x->res->status;
	if (cb_get(x->cb, "volid") && param_u64(x, "volid", 1, UINT32_MAX, &a.volid))
		return x->res->status;
	err = tables_update(x->tables, cmddev_change, &a);
	if (err == -EEXIST) {
		res_status(x->res, CB_EXISTS, "device %s already has a command device entry (remove it "
			   "first)", a.device);
		return CB_EXISTS;
	}
	if (err) {
		res_status(x->res, CB_FAILED, "cannot update the tables: %s", strerror(-err));
		return CB_FAILED;
	}
	if (a.volid)
		res_line(x->res, "cmddev device=%s lun=%" PRIu64 " volid=%" PRIu64, a.device, a.lun,
			 a.volid);
	else
		res_line(x->res, "cmddev device=%s lun=%" PRIu64 " volid=-", a.device, a.lun);
	return ok(x, "command device of %s added", a.device);
}

static int c_cmddev_remove(struct exec_ctx *x)
{
	struct cmddev_arg a = { .device = cb_get(x->cb, "device"), .remove = 1 };
	int err;

	if (!device_name_ok(x, a.device))
		return x->res->status;
	err = tables_update(x->tables, cmddev_change, &a);
	if (err == -ENOENT) {
		res_status(x->res, CB_NOT_FOUND, "no command device entry for device %s", a.device);
		return CB_NOT_FOUND;
	}
	if (err) {
		res_status(x->res, CB_FAILED, "cannot update the tables: %s", strerror(-err));
		return CB_FAILED;
	}
	return ok(x, "command device of %s removed", a.device);
}

static int c_raid_status(struct exec_ctx *x)
{
	struct vol *v = param_vol(x);
	struct raid_vol *a;
	struct raid_info i;
	char u[37], path[600];

	if (!v)
		return x->res->status;
	if (!(a = raidvol_array(v))) {
		res_status(x->res, CB_INVALID, "volid %" PRIu64 " is a %s volume, not raid", v->volid,
			   v->type);
		vol_put(v);
		return CB_INVALID;
	}
	raid_get_info(a, &i);
	raid_uuid_str(i.array_uuid, u);
	res_line(x->res, "raid volid=%" PRIu64 " layout=%uD+1P chunk_bytes=%u block_bytes=%u "
		 "members=%u stripes=%" PRIu64 " size_bytes=%" PRIu64 " state=%s array_uuid=%s "
		 "sequence=%" PRIu64 " was_dirty=%d bitmap_regions=%" PRIu64 " region_stripes=%u "
		 "dirty_regions=%" PRIu64, v->volid, i.geom.nr_data, i.geom.chunk_bytes,
		 i.geom.block_bytes, i.nr_members, raid_nr_stripes(&i.geom), i.volume_bytes,
		 raid_state_name(&i), u, i.sequence, i.was_dirty, i.bitmap_regions, i.region_stripes,
		 i.dirty_regions);
	for (uint32_t m = 0; m < i.nr_members; m++) {
		const char *st = "active";
		char extra[64] = "";

		if ((int)m == i.rebuild_member) {
			st = "rebuilding";
			snprintf(extra, sizeof(extra), " rebuilt_percent=%.1f",
				 100.0 * (double)i.rebuild_pos / (double)raid_nr_stripes(&i.geom));
		} else if (i.failed_mask & (1ull << m)) {
			st = "failed";
		}
		cb_pct_encode(raid_member_name(a, m), path, sizeof(path));
		res_line(x->res, "member index=%u state=%s path=%s%s", m, st, path, extra);
	}
	res_line(x->res, "stats full_stripe_writes=%" PRIu64 " rmw_writes=%" PRIu64 " rcw_writes=%"
		 PRIu64 " degraded_reads=%" PRIu64 " degraded_writes=%" PRIu64 " member_reads=%" PRIu64
		 " member_writes=%" PRIu64, i.stats.full_stripe_writes, i.stats.rmw_writes,
		 i.stats.rcw_writes, i.stats.degraded_reads, i.stats.degraded_writes,
		 i.stats.member_reads, i.stats.member_writes);
	res_status(x->res, CB_OK, "raid volid %" PRIu64 ": %uD+1P, %s", v->volid, i.geom.nr_data,
		   raid_state_name(&i));
	vol_put(v);
	return CB_OK;
}

/* raid-check: verify every stripe's parity in the background. */
struct check_arg {
	struct vol *v;
	int repair;
};

static void free_check_arg(void *p)
{
	struct check_arg *c = p;

	vol_put(c->v);
	free(c);
}

static int raid_check_work(struct op *op, void *arg)
{
	struct check_arg *c = arg;
	struct vol *v = c->v;
	struct raid_vol *a = raidvol_array(v);
	struct raid_info i;
	uint64_t bad = 0, first_bad = 0, stripes, repaired = 0;

	raid_get_info(a, &i);
	stripes = raid_nr_stripes(&i.geom);
	for (uint64_t s = 0; s < stripes; s++) {
		int err;

		if (op_cancelled(op)) {
			op_result(op, "cancelled after %" PRIu64 " of %" PRIu64 " stripes", s, stripes);
			return -ECANCELED;
		}
		err = raid_check_stripe(a, s, NULL);
		if (err == -EILSEQ) {
			if (!bad++)
				first_bad = s;
			if (c->repair) {
				if ((err = raid_repair_stripe(a, s))) {
					op_result(op, "stripe %" PRIu64 ": repair failed: %s", s, strerror(-err));
					return err;
				}
				repaired++;
			}
		} else if (err == -EAGAIN) {
			op_result(op, "stopped at stripe %" PRIu64 ": the array is degraded (nothing to "
				  "check parity against)", s);
			return -EAGAIN;
		} else if (err) {
			op_result(op, "stripe %" PRIu64 ": %s", s, strerror(-err));
			return err;
		}
		if ((s & 63) == 0 || s + 1 == stripes)
			op_progress(op, (s + 1) * raid_stripe_bytes(&i.geom),
				    stripes * raid_stripe_bytes(&i.geom));
	}
	if (bad)
		op_result(op, "%" PRIu64 " of %" PRIu64 " stripes had parity mismatches (first: stripe %"
			  PRIu64 "); %" PRIu64 " repaired", bad, stripes, first_bad, repaired);
	else
		op_result(op, "%" PRIu64 " stripes checked, parity consistent, 0 mismatches", stripes);
	return bad && !c->repair ? -EILSEQ : 0;
}

static void put_vol(void *arg)
{
	vol_put(arg);
}

static int c_raid_check(struct exec_ctx *x)
{
	struct vol *v = param_vol(x);
	char subject[32];
	int64_t id;

	if (!v)
		return x->res->status;
	if (!raidvol_array(v)) {
		res_status(x->res, CB_INVALID, "volid %" PRIu64 " is not a raid volume", v->volid);
		vol_put(v);
		return CB_INVALID;
	}
	{
		struct raid_info i;

		raid_get_info(raidvol_array(v), &i);
		if (i.failed_mask) {
			res_status(x->res, CB_INVALID, "volid %" PRIu64 " is %s: there is no redundancy "
				   "to check", v->volid, raid_state_name(&i));
			vol_put(v);
			return CB_INVALID;
		}
	}
	struct check_arg *ca = calloc(1, sizeof(*ca));

	if (!ca) {
		vol_put(v);
		res_status(x->res, CB_FAILED, "out of memory");
		return CB_FAILED;
	}
	ca->v = v;
	ca->repair = cb_get(x->cb, "repair") && !strcmp(cb_get(x->cb, "repair"), "1");
	snprintf(subject, sizeof(subject), "volid=%" PRIu64, v->volid);
	id = op_start("raid-check", subject, raid_check_work, ca, free_check_arg);
	if (id == -EBUSY) {
		res_status(x->res, CB_EXISTS, "a raid-check of volid %" PRIu64 " is already running",
			   v->volid);
		free_check_arg(ca);
		return CB_EXISTS;
	}
	if (id < 0) {
		res_status(x->res, CB_FAILED, "cannot start: %s", strerror((int)-id));
		free_check_arg(ca);
		return CB_FAILED;
	}
	res_line(x->res, "op id=%" PRId64 " kind=raid-check subject=%s state=running", id, subject);
	res_status(x->res, CB_RUNNING, "raid-check of volid %s started as operation %" PRId64,
		   subject + 6, id);
	return CB_RUNNING;
}

/* lunmap-show: the LUN map (seed 004 Fig. 3) with each virtual volume's peer state. */
static void lunmap_line(const char *line, void *arg)
{
	struct cb_result *res = arg;
	char volid[32], url[700], kind[16], size[32];
	struct peer_stats st = { 0 };
	struct vol *v = NULL;
	char err[600];

	if (!tbl_get(line, "volid", volid, sizeof(volid)))
		return;
	v = vol_lookup(strtoull(volid, NULL, 10));
	if (v && vvol_of(v))
		peer_get_stats(vvol_peer(vvol_of(v)), &st);
	cb_pct_encode(st.last_error[0] ? st.last_error : "-", err, sizeof(err));
	res_line(res, "lunmap volid=%s url=%s kind=%s size_bytes=%s open=%s sessions_connected=%d "
		 "reads=%" PRIu64 " writes=%" PRIu64 " errors=%" PRIu64 " connects=%" PRIu64
		 " last_error=%s", volid, tbl_get(line, "url", url, sizeof(url)) ? url : "-",
		 tbl_get(line, "kind", kind, sizeof(kind)) ? kind : "-",
		 tbl_get(line, "size_bytes", size, sizeof(size)) ? size : "-",
		 v && vvol_of(v) ? "yes" : "no", st.connected, st.reads, st.writes, st.errors,
		 st.connects, err);
	if (v)
		vol_put(v);
}

static int c_lunmap_show(struct exec_ctx *x)
{
	tables_each(x->tables, "lunmap", lunmap_line, x->res);
	res_status(x->res, CB_OK, "%d virtual volumes in the LUN map", x->res->body_lines);
	return CB_OK;
}

/* ---- mirrors (docs/mirror.md; cmdvol/mirrors.c) ---- */
int mirrors_cmd_create(uint64_t primary, uint64_t secondary, uint32_t want_id, uint64_t granule,
		       char *msg, size_t msg_len, uint32_t *out_id);
int mirrors_cmd_delete(uint32_t id, char *msg, size_t msg_len);
int mirrors_with(uint32_t id, int (*fn)(struct mirror *m, void *arg), void *arg);
void mirrors_each(void (*fn)(struct mirror *m, void *arg), void *arg);
void mirrors_start_copier(struct mirror *m);

static void mirror_line(struct mirror *m, void *arg)
{
	struct cb_result *res = arg;
	struct mirror_status st;
	uint64_t granules;

	mirror_get_status(m, &st);
	granules = (st.cfg.size_bytes + st.cfg.granule_bytes - 1) / st.cfg.granule_bytes;
	res_line(res, "mirror id=%u primary=%" PRIu64 " secondary=%" PRIu64 " state=%s "
		 "granule_bytes=%" PRIu64 " size_bytes=%" PRIu64 " dirty_bytes=%" PRIu64
		 " intent_bytes=%" PRIu64
		 " copied_percent=%.1f copied_bytes=%" PRIu64 " primary_attached=%d "
		 "secondary_attached=%d duplexed_writes=%" PRIu64 " recorded_writes=%" PRIu64
		 " secondary_errors=%" PRIu64 " secondary_reads=%" PRIu64, st.cfg.id,
		 st.cfg.primary_volid, st.cfg.secondary_volid, mirror_state_name(st.cfg.state),
		 st.cfg.granule_bytes, st.cfg.size_bytes, st.dirty_granules * st.cfg.granule_bytes,
		 st.intent_granules * st.cfg.granule_bytes,
		 st.cfg.state == MIRROR_COPYING ? 100.0 * (double)st.cfg.copy_pos / (double)granules :
		 100.0, st.copied_bytes, st.primary_attached, st.secondary_attached,
		 st.duplexed_writes, st.recorded_writes, st.secondary_errors, st.secondary_reads);
}

struct one_arg {
	uint32_t id;
	struct cb_result *res;
};

static void mirror_one(struct mirror *m, void *p)
{
	struct one_arg *a = p;

	if (!a->id || mirror_id(m) == a->id)
		mirror_line(m, a->res);
}

static int c_mirror_status(struct exec_ctx *x)
{
	uint64_t id = 0;
	struct one_arg a;

	if (cb_get(x->cb, "id") && param_u64(x, "id", 1, UINT32_MAX, &id))
		return x->res->status;
	mirrors_reconcile();
	a.id = (uint32_t)id;
	a.res = x->res;
	mirrors_each(mirror_one, &a);
	if (id && !x->res->body_lines) {
		res_status(x->res, CB_NOT_FOUND, "no mirror %" PRIu64, id);
		return CB_NOT_FOUND;
	}
	res_status(x->res, CB_OK, "%d mirrors", x->res->body_lines);
	return CB_OK;
}

static int c_mirror_create(struct exec_ctx *x)
{
	uint64_t p, s, id = 0, gk = 0;
	uint32_t got;
	char msg[512];
	int err;

	if (param_u64(x, "primary", 1, UINT32_MAX, &p) || param_u64(x, "secondary", 1, UINT32_MAX, &s) ||
	    (cb_get(x->cb, "id") && param_u64(x, "id", 1, 65535, &id)) ||
	    (cb_get(x->cb, "granule_kib") && param_u64(x, "granule_kib", 4, 65536, &gk)))
		return x->res->status;
	err = mirrors_cmd_create(p, s, (uint32_t)id, gk * 1024, msg, sizeof(msg), &got);
	if (err) {
		res_status(x->res, err == -ENOENT ? CB_NOT_FOUND : err == -EEXIST ? CB_EXISTS :
			   err == -ENODEV || err == -ENOMEM ? CB_FAILED : CB_INVALID, "%s", msg);
		return x->res->status;
	}
	{
		struct one_arg a = { .id = got, .res = x->res };

		mirrors_each(mirror_one, &a);
	}
	res_status(x->res, CB_RUNNING, "%s", msg);
	return CB_RUNNING;
}

static int do_split(struct mirror *m, void *arg)
{
	(void)arg;
	return mirror_split(m);
}

static int do_resync(struct mirror *m, void *arg)
{
	int err = mirror_start_resync(m);

	(void)arg;
	if (!err)
		mirrors_start_copier(m);
	return err;
}

static int c_mirror_change(struct exec_ctx *x, int (*fn)(struct mirror *m, void *arg),
			   const char *what)
{
	uint64_t id;
	int err;

	if (param_u64(x, "id", 1, UINT32_MAX, &id))
		return x->res->status;
	mirrors_reconcile();
	err = mirrors_with((uint32_t)id, fn, NULL);
	if (err == -ENOENT) {
		res_status(x->res, CB_NOT_FOUND, "no mirror %" PRIu64, id);
	} else if (err == -ENODEV) {
		res_status(x->res, CB_INVALID, "mirror %" PRIu64 ": its secondary is not available", id);
	} else if (err) {
		struct one_arg a = { .id = (uint32_t)id, .res = x->res };

		mirrors_each(mirror_one, &a);
		res_status(x->res, CB_INVALID, "mirror %" PRIu64 ": cannot %s in this state", id, what);
	} else {
		struct one_arg a = { .id = (uint32_t)id, .res = x->res };

		mirrors_each(mirror_one, &a);
		res_status(x->res, fn == do_resync ? CB_RUNNING : CB_OK, "mirror %" PRIu64 ": %s", id,
			   fn == do_resync ? "resync started" : "split: the secondary is a point-in-time "
			   "copy; writes to the primary are recorded");
	}
	return x->res->status;
}

static int c_mirror_split(struct exec_ctx *x) { return c_mirror_change(x, do_split, "split"); }
static int c_mirror_resync(struct exec_ctx *x) { return c_mirror_change(x, do_resync, "resync"); }

static int c_mirror_delete(struct exec_ctx *x)
{
	uint64_t id;
	char msg[256];
	int err;

	if (param_u64(x, "id", 1, UINT32_MAX, &id))
		return x->res->status;
	mirrors_reconcile();
	err = mirrors_cmd_delete((uint32_t)id, msg, sizeof(msg));
	res_status(x->res, err == -ENOENT ? CB_NOT_FOUND : err ? CB_FAILED : CB_OK, "%s", msg);
	return x->res->status;
}

/* raid-rebuild: reconstruct a replacement member in the background. */
static int raid_rebuild_work(struct op *op, void *arg)
{
	struct vol *v = arg;
	struct raid_vol *a = raidvol_array(v);
	struct raid_info i;
	uint64_t stripes;
	int r;

	raid_get_info(a, &i);
	stripes = raid_nr_stripes(&i.geom);
	while ((r = raid_rebuild_step(a)) == 1) {
		if (op_cancelled(op)) {
			raid_get_info(a, &i);
			op_result(op, "stopped at stripe %" PRIu64 "; resumes from its checkpoint",
				  i.rebuild_pos);
			return -ECANCELED;
		}
		raid_get_info(a, &i);
		if ((i.rebuild_pos & 63) == 0)
			op_progress(op, i.rebuild_pos * raid_stripe_bytes(&i.geom),
				    stripes * raid_stripe_bytes(&i.geom));
	}
	if (r < 0) {
		op_result(op, "rebuild failed: %s", strerror(-r));
		return r;
	}
	op_progress(op, stripes * raid_stripe_bytes(&i.geom), stripes * raid_stripe_bytes(&i.geom));
	raid_get_info(a, &i);
	op_result(op, "%" PRIu64 " stripes rebuilt; the array is %s", stripes, raid_state_name(&i));
	return 0;
}

int64_t raidops_start_rebuild(struct vol *v)
{
	char subject[32];
	int64_t id;

	snprintf(subject, sizeof(subject), "volid=%" PRIu64, v->volid);
	vol_get(v);
	id = op_start("raid-rebuild", subject, raid_rebuild_work, v, put_vol);
	if (id < 0)
		vol_put(v);
	return id;
}

static int c_raid_rebuild(struct exec_ctx *x)
{
	struct vol *v = param_vol(x);
	struct raid_member *m = NULL;
	const char *path = cb_get(x->cb, "path");
	char why[512], decoded[300];
	uint64_t idx;
	int64_t id;
	int err;

	if (!v)
		return x->res->status;
	if (!raidvol_array(v)) {
		res_status(x->res, CB_INVALID, "volid %" PRIu64 " is not a raid volume", v->volid);
		goto out;
	}
	if (param_u64(x, "member", 0, RAID_MAX_MEMBERS - 1, &idx))
		goto out;
	cb_pct_decode(path, decoded, sizeof(decoded));
	if (idx < RAID_MAX_MEMBERS && raid_member_name(raidvol_array(v), (uint32_t)idx) &&
	    !strcmp(raid_member_name(raidvol_array(v), (uint32_t)idx), decoded)) {
		m = NULL;   /* the failed member's own file: in place */
	} else if ((err = raid_member_open_path(decoded, &m, why, sizeof(why)))) {
		res_status(x->res, err == -ENOENT ? CB_NOT_FOUND : CB_FAILED, "%s", why);
		goto out;
	}
	if ((err = raid_rebuild_begin(raidvol_array(v), (uint32_t)idx, m, why, sizeof(why)))) {
		raid_member_close(m);   /* NULL-safe */
		res_status(x->res, err == -EEXIST ? CB_EXISTS : err == -EIO ? CB_FAILED : CB_INVALID,
			   "%s", why);
		goto out;
	}
	id = raidops_start_rebuild(v);
	if (id < 0) {
		res_status(x->res, CB_FAILED, "rebuild recorded but its operation cannot start: %s "
			   "(it resumes at the next assembly)", strerror((int)-id));
		goto out;
	}
	res_line(x->res, "op id=%" PRId64 " kind=raid-rebuild subject=volid=%" PRIu64 " state=running",
		 id, v->volid);
	res_status(x->res, CB_RUNNING, "rebuilding member %" PRIu64 " of volid %" PRIu64 " onto %s "
		   "as operation %" PRId64 "; update the LU's member list to name it", idx, v->volid,
		   decoded, id);
out:
	vol_put(v);
	return x->res->status;
}

#ifdef TANDEM_FAULT_INJECTION
static int c_raid_fault(struct exec_ctx *x)
{
	struct vol *v = param_vol(x);
	const char *op = cb_get(x->cb, "op"), *mode = cb_get(x->cb, "mode");
	enum raid_fault_op fop;
	enum raid_fault_mode fmode;
	uint64_t idx, n = 1, ppm = 0, seed = 1;
	int err;

	if (!v)
		return x->res->status;
	fop = !strcmp(op, "read") ? RAID_FAULT_READ : !strcmp(op, "write") ? RAID_FAULT_WRITE :
	      !strcmp(op, "any") ? RAID_FAULT_ANY : 0;
	fmode = !strcmp(mode, "now") ? RAID_FAULT_NOW : !strcmp(mode, "after") ? RAID_FAULT_AFTER :
		!strcmp(mode, "rate") ? RAID_FAULT_RATE : !strcmp(mode, "off") ? RAID_FAULT_OFF : 99;
	if (!raidvol_array(v) || !fop || fmode == 99 ||
	    param_u64(x, "member", 0, RAID_MAX_MEMBERS - 1, &idx) ||
	    (cb_get(x->cb, "n") && param_u64(x, "n", 1, UINT64_MAX, &n)) ||
	    (cb_get(x->cb, "ppm") && param_u64(x, "ppm", 0, 1000000, &ppm)) ||
	    (cb_get(x->cb, "seed") && param_u64(x, "seed", 0, UINT64_MAX, &seed))) {
		if (x->res->status == CB_OK)
			res_status(x->res, CB_INVALID, "raid-fault: volid of a raid volume, member=, "
				   "op=read|write|any, mode=now|after|rate|off");
		vol_put(v);
		return x->res->status;
	}
	err = raid_set_fault(raidvol_array(v), (uint32_t)idx, fop, fmode, n, (uint32_t)ppm, seed);
	vol_put(v);
	if (err) {
		res_status(x->res, CB_INVALID, "raid-fault: %s", strerror(-err));
		return CB_INVALID;
	}
	res_status(x->res, CB_OK, "fault rule set on member %" PRIu64 ": op=%s mode=%s", idx, op, mode);
	return CB_OK;
}
#endif

static void op_line(const struct op_info *i, void *arg)
{
	char result[600];

	cb_pct_encode(i->result[0] ? i->result : "-", result, sizeof(result));
	res_line(arg, "op id=%" PRIu64 " kind=%s subject=%s state=%s percent=%.1f done=%" PRIu64
		 " total=%" PRIu64 " rate_per_s=%.0f eta_s=%.0f started=%lld result=%s", i->id,
		 i->kind, i->subject, op_state_name(i->state),
		 i->total ? 100.0 * (double)i->done / (double)i->total :
			    (i->state == OP_RUNNING ? 0.0 : 100.0),
		 i->done, i->total, i->rate_per_s, i->eta_s, (long long)i->started, result);
}

static int c_op_status(struct exec_ctx *x)
{
	struct op_info i;
	uint64_t id;

	if (param_u64(x, "op", 1, UINT64_MAX, &id))
		return x->res->status;
	if (op_get(id, &i)) {
		res_status(x->res, CB_NOT_FOUND, "no operation %" PRIu64 " (operations do not survive a "
			   "restart)", id);
		return CB_NOT_FOUND;
	}
	op_line(&i, x->res);
	res_status(x->res, i.state == OP_RUNNING ? CB_RUNNING : CB_OK, "operation %" PRIu64 " %s",
		   id, op_state_name(i.state));
	return x->res->status;
}

static int c_op_list(struct exec_ctx *x)
{
	op_each(op_line, x->res);
	res_status(x->res, CB_OK, "%d operations", x->res->body_lines);
	return CB_OK;
}

static int c_help(struct exec_ctx *x)
{
	char params[200];

	for (const struct command *c = commands; c->name; c++) {
		cb_pct_encode(c->params, params, sizeof(params));
		res_line(x->res, "command no=%d name=%s params=%s", c->no, c->name,
			 params[0] ? params : "-");
	}
	res_status(x->res, CB_OK, "%d commands", x->res->body_lines);
	return CB_OK;
}

const struct command commands[] = {
	{ 1, "info", "", c_info, "device identity and state" },
	{ 2, "vol-list", "", c_vol_list, "every volume of the device" },
	{ 3, "vol-status", "volid", c_vol_status, "one volume" },
	{ 4, "cmddev-show", "", c_cmddev_show, "the command-device table" },
	{ 5, "cmddev-add", "device lun [volid]", c_cmddev_add, "add a command-device table entry" },
	{ 6, "cmddev-remove", "device", c_cmddev_remove, "remove a command-device table entry" },
	{ 7, "raid-status", "volid", c_raid_status, "RAID geometry, members, counters" },
	{ 8, "raid-check", "volid [repair]", c_raid_check,
	  "verify every stripe's parity, repair=1 rewrites wrong parity (long operation)" },
	{ 9, "op-status", "op", c_op_status, "progress of a long operation" },
	{ 10, "op-list", "", c_op_list, "every operation since the device started" },
	{ 11, "help", "", c_help, "the commands" },
	{ 12, "raid-rebuild", "volid member path", c_raid_rebuild,
	  "rebuild a failed member onto a replacement (long operation)" },
	{ 13, "lunmap-show", "", c_lunmap_show, "virtual volumes and their peers (the LUN map)" },
	{ 20, "mirror-create", "primary secondary [id] [granule_kib]", c_mirror_create,
	  "mirror a volume to another (any geometry, local or a vvol): starts the copy" },
	{ 21, "mirror-split", "id", c_mirror_split, "stop duplex; record writes to the primary" },
	{ 22, "mirror-resync", "id", c_mirror_resync, "copy the recorded granules, then duplex" },
	{ 23, "mirror-status", "[id]", c_mirror_status, "state, dirty bytes, progress" },
	{ 24, "mirror-delete", "id", c_mirror_delete, "detach the mirror (volumes stay)" },
	{ 30, "pair-create", "id role pvol pjnl svol sjnl src_pvol src_pjnl s_peer p_peer [mode] "
	  "[interval_ms] [rate_mb] [r_src_pvol] [r_src_pjnl] [overflow] [warn_pct] [granule_kib] "
	  "[forwarded]", c_pair_create,
	  "form a replication pair (both devices; role= is this device's part)" },
	{ 31, "pair-status", "[id]", c_pair_status, "journal pointers, copy progress, lag" },
	{ 32, "pair-acquire", "id [upto]", c_pair_acquire,
	  "aux: read the primary journal up to a sequence (default: all it holds)" },
	{ 33, "pair-restore", "id [upto]", c_pair_restore,
	  "aux: apply acquired entries to the auxiliary volume in order" },
	{ 34, "pair-purge", "id upto", c_pair_purge,
	  "primary: free journal entries the auxiliary device has confirmed" },
	{ 35, "pair-delete", "id [local]", c_pair_delete, "end the pair on both devices (volumes stay)" },
	{ 36, "pair-mode", "id mode [interval_ms] [rate_mb]", c_pair_mode,
	  "aux: host-driven or autonomous pull and restore" },
	{ 37, "pair-confirm", "id read_completed [purge]", c_pair_confirm,
	  "primary: what the auxiliary device has acquired (sent by its module)" },
	{ 38, "pair-suspend", "id", c_pair_suspend, "aux: stop acquisition and restore" },
	{ 39, "pair-resume", "id", c_pair_resume, "aux: restart acquisition and restore" },
	{ 40, "pair-swap", "id [step] [mode] [interval_ms]", c_pair_swap,
	  "aux: swap roles (restore everything, then this device is primary); step= is internal" },
	{ 41, "pair-resync", "id [step] [takeover_seq] [mode] [interval_ms]", c_pair_resync,
	  "copy only what changed (after an overflow or a takeover), then replicate again" },
	{ 42, "pair-dirty", "id [from] [vol]", c_pair_dirty, "primary: the changed granules (for a resync)" },
	{ 43, "pair-delta-done", "id", c_pair_delta_done,
	  "primary: the auxiliary device copied the delta (sent by its module)" },
	{ 44, "pair-takeover", "id", c_pair_takeover,
	  "aux: the primary device is gone: restore what was acquired, become primary alone" },
#ifdef TANDEM_FAULT_INJECTION
	{ 90, "raid-fault", "volid member op mode [n] [ppm] [seed]", c_raid_fault,
	  "test builds: inject member faults" },
#endif
	{ 0, NULL, NULL, NULL, NULL },
};

const struct command *command_find(const char *name_or_no)
{
	int no = -1;

	/* a process number is all digits ("1x" is no command) */
	if (name_or_no[0] && strspn(name_or_no, "0123456789") == strlen(name_or_no) &&
	    strlen(name_or_no) < 6)
		no = atoi(name_or_no);

	for (const struct command *c = commands; c->name; c++)
		if (c->no == no || !strcmp(c->name, name_or_no))
			return c;
	return NULL;
}

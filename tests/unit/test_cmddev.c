/* cmdvol/cmddev.h: a command device over a temp file. Every command through cmddev_execute
 * (info, vol-list/vol-status/raid-status on a registered RAID volume built from sparse files,
 * the command-device table, raid-check as a background operation polled with op-status, every
 * error status); the slot data path (results per I_T nexus and per slot, cleared after their
 * last block is read, non-command writes ignored, edit=0, results longer than a block, the
 * 1024-result limit); authentication (HMAC, replay, sequence numbers that survive a reopen);
 * one command device per process. Each test closes its command device, unregisters and puts
 * its volumes, and removes its mkdtemp directory.
 * UNIT_SEED=<n> replays the random key and data; TANDEM_TEST_LOG=1 shows the library's log. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmdvol/cmdblock.h"
#include "cmdvol/cmddev.h"
#include "cmdvol/ops.h"
#include "raid/opts.h"
#include "raid/raidvol.h"
#include "raid/vol.h"
#include "tests/unit/unit.h"

#define WHY_LEN 512
#define SLOT CMDDEV_SLOT_BYTES
#define BLK CMDDEV_BLOCK_BYTES
#define CD_VOLID 100
#define RAID_VOLID 10
#define MEMBER_BYTES (5u * 1024u * 1024u)   /* 4 MiB metadata + 1 MiB data */

/* ---- environment: a scratch dir, the command device, an optional RAID volume ------------- */

struct env {
	char dir[256];
	char tables[320];
	char key[320];
	char member[3][320];
	struct cmddev *cd;
	struct vol *raid;
	int cd_registered;
};

static void env_init(struct env *e)
{
	const char *tmp = getenv("TMPDIR");

	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "%s/tandem-cmddev-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	snprintf(e->tables, sizeof(e->tables), "%s/cmddev", e->dir);
	snprintf(e->key, sizeof(e->key), "%s/key", e->dir);
	for (int i = 0; i < 3; i++)
		snprintf(e->member[i], sizeof(e->member[i]), "%s/m%d", e->dir, i);
}

static int dev_open(struct env *e, int create, const char *key_path, struct cmddev **out,
		    char *why)
{
	struct cmddev_opts o;

	memset(&o, 0, sizeof(o));
	o.volid = CD_VOLID;
	o.create = create;
	snprintf(o.device, sizeof(o.device), "%s", "dev1");
	o.slots = CMDDEV_DEFAULT_SLOTS;
	if (key_path)
		snprintf(o.auth_key_path, sizeof(o.auth_key_path), "%s", key_path);
	why[0] = '\0';
	return cmddev_open(e->tables, &o, out, why, WHY_LEN);
}

static void env_open(struct env *e, int create, const char *key_path)
{
	char why[WHY_LEN];
	int err = dev_open(e, create, key_path, &e->cd, why);

	ck_assert_msg(err == 0, "cmddev_open(create=%d): %d: %s", create, err, why);
	ck_assert_ptr_eq(cmddev_current(), e->cd);
}

/* Register the command device's own volume, as the module does. */
static void env_register_cd(struct env *e)
{
	ck_assert_int_eq(vol_register(cmddev_vol(e->cd)), 0);
	e->cd_registered = 1;
}

static void env_close(struct env *e)
{
	if (!e->cd)
		return;
	if (e->cd_registered)
		vol_unregister(cmddev_vol(e->cd));
	e->cd_registered = 0;
	cmddev_close(e->cd);
	e->cd = NULL;
	ck_assert_ptr_null(cmddev_current());
}

/* A 2D+1P array of three sparse 5 MiB files, registered as volid 10. */
static void env_raid(struct env *e)
{
	struct raid_opts o = { .volid = RAID_VOLID, .nr_data = 2, .chunk_bytes = 65536, .create = 1 };
	char members[1000], why[WHY_LEN] = "";
	int err;

	for (int i = 0; i < 3; i++) {
		int fd = open(e->member[i], O_CREAT | O_RDWR | O_TRUNC, 0600);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, MEMBER_BYTES), 0);
		close(fd);
	}
	snprintf(members, sizeof(members), "%s;%s;%s", e->member[0], e->member[1], e->member[2]);
	err = raidvol_open(members, &o, 512, &e->raid, why, sizeof(why));
	ck_assert_msg(err == 0, "raidvol_open: %d: %s", err, why);
	ck_assert_int_eq(vol_register(e->raid), 0);
}

static void env_done(struct env *e)
{
	ops_shutdown();                   /* operations hold volume references */
	env_close(e);
	if (e->raid) {
		vol_unregister(e->raid);
		vol_put(e->raid);
		e->raid = NULL;
	}
	unlink(e->tables);
	unlink(e->key);
	for (int i = 0; i < 3; i++)
		unlink(e->member[i]);
	rmdir(e->dir);
}

/* ---- fake volumes, for long lists -------------------------------------------------------- */

static int fv_read(struct vol *v, void *buf, uint64_t off, uint64_t len)
{
	(void)v;
	(void)off;
	memset(buf, 0, len);
	return 0;
}

static int fv_flush(struct vol *v)
{
	(void)v;
	return 0;
}

static void fv_destroy(struct vol *v)
{
	free(v);
}

static const struct vol_ops fake_ops = { .read = fv_read, .flush = fv_flush, .destroy = fv_destroy };

static struct vol *fake_vol(uint64_t volid)
{
	struct vol *v = malloc(sizeof(*v));

	ck_assert_ptr_nonnull(v);
	vol_init(v, "vvol", volid, 1ull << 30, 512, &fake_ops, NULL);
	ck_assert_int_eq(vol_register(v), 0);
	return v;
}

static void fake_drop(struct vol *v)
{
	vol_unregister(v);
	vol_put(v);
}

/* ---- running commands -------------------------------------------------------------------- */

/* Execute `block` as nexus; parse the result into rp. Returns its status, or -1 when nothing was
 * kept (edit=0 success). */
static int run_len(struct cmddev *cd, uint64_t nexus, const char *block, size_t len,
		   struct cb_reply *rp)
{
	char *text = NULL, why[WHY_LEN];
	size_t tlen = 0;
	int err = cmddev_execute(cd, nexus, block, len, &text, &tlen);

	memset(rp, 0, sizeof(*rp));
	ck_assert_msg(err == 0, "'%s': cmddev_execute %d", block, err);
	if (!text) {
		ck_assert_uint_eq(tlen, 0);
		return -1;
	}
	ck_assert_uint_eq(strlen(text), tlen);
	ck_assert_msg(cb_reply_parse(text, tlen, rp, why, sizeof(why)) == 0, "'%s': %s", block, why);
	ck_assert_uint_eq(rp->bytes, tlen);
	free(text);
	return rp->status;
}

static int run(struct cmddev *cd, uint64_t nexus, const char *block, struct cb_reply *rp)
{
	return run_len(cd, nexus, block, strlen(block), rp);
}

/* Run and expect a status; the reply is freed. */
static void expect(struct cmddev *cd, const char *block, int status, const char *msg_has)
{
	struct cb_reply rp;
	int st = run(cd, 1, block, &rp);

	ck_assert_msg(st == status, "'%s': status %d (%s: %s), want %d (%s)", block, st, rp.name,
		      rp.msg, status, cb_status_name(status));
	if (msg_has)
		ck_assert_msg(strstr(rp.msg, msg_has) != NULL, "'%s': msg '%s' does not say '%s'",
			      block, rp.msg, msg_has);
	cb_reply_free(&rp);
}

/* The first record line of the reply starting with `prefix`, or NULL. */
static const char *line_of(const struct cb_reply *rp, const char *prefix)
{
	for (int i = 0; i < rp->nlines; i++)
		if (!strncmp(rp->lines[i], prefix, strlen(prefix)))
			return rp->lines[i];
	return NULL;
}

static const char *field(const char *line, const char *key, char *buf, size_t len)
{
	ck_assert_ptr_nonnull(line);
	return cb_rec_get(line, key, buf, len);
}

/* ---- the slot data path ------------------------------------------------------------------ */

/* Write `text` NUL-padded into one block at the start of `slot` (as dd conv=sync does). */
static int put_cmd(struct cmddev *cd, uint64_t nexus, uint32_t slot, const char *text)
{
	uint8_t blk[BLK] = { 0 };

	memcpy(blk, text, strlen(text));
	return cmddev_write(cd, nexus, (uint64_t)slot * SLOT, blk, BLK);
}

static int all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* Read `nblocks` from the start of the slot. */
static void get_blocks(struct cmddev *cd, uint64_t nexus, uint32_t slot, uint32_t first,
		       uint32_t nblocks, uint8_t *buf)
{
	memset(buf, 0xEE, (size_t)nblocks * BLK);
	ck_assert_int_eq(cmddev_read(cd, nexus, (uint64_t)slot * SLOT + (uint64_t)first * BLK, buf,
				     (uint64_t)nblocks * BLK), 0);
}

/* Read a result as tandemctl does: one block, then the rest by bytes=. */
static int read_result(struct cmddev *cd, uint64_t nexus, uint32_t slot, struct cb_reply *rp)
{
	uint8_t *buf = calloc(1, SLOT);
	char why[WHY_LEN];
	uint32_t nb;
	int err;

	ck_assert_ptr_nonnull(buf);
	get_blocks(cd, nexus, slot, 0, 1, buf);
	err = cb_reply_header((char *)buf, BLK, rp);
	if (err) {
		free(buf);
		return err;
	}
	nb = (uint32_t)((rp->bytes + BLK - 1) / BLK);
	ck_assert_uint_le(nb, SLOT / BLK);
	if (nb > 1)
		get_blocks(cd, nexus, slot, 1, nb - 1, buf + BLK);
	err = cb_reply_parse((char *)buf, (size_t)nb * BLK, rp, why, sizeof(why));
	ck_assert_msg(err == 0, "slot %u nexus %llu: %s", slot, (unsigned long long)nexus, why);
	ck_assert(all_zero(buf + rp->bytes, (size_t)nb * BLK - rp->bytes));
	free(buf);
	return 0;
}

static int slot_empty(struct cmddev *cd, uint64_t nexus, uint32_t slot)
{
	uint8_t buf[4 * BLK];

	get_blocks(cd, nexus, slot, 0, 4, buf);
	return all_zero(buf, sizeof(buf));
}

/* ---- open, close, one per process -------------------------------------------------------- */

START_TEST(test_open_close)
{
	struct env e;
	struct cmddev *cd2 = NULL;
	char why[WHY_LEN], other[400];
	struct cmddev_opts o;
	struct vol *v;

	env_init(&e);
	ck_assert_ptr_null(cmddev_current());
	/* no tables yet and no create: refused, and nothing left behind */
	ck_assert_int_eq(dev_open(&e, 0, NULL, &cd2, why), -ENOENT);
	ck_assert_ptr_null(cmddev_current());

	env_open(&e, 1, NULL);
	ck_assert_str_eq(cmddev_device_name(e.cd), "dev1");
	ck_assert_uint_eq(cmddev_slots(e.cd), CMDDEV_DEFAULT_SLOTS);
	ck_assert_int_eq(cmddev_has_key(e.cd), 0);
	ck_assert_ptr_nonnull(cmddev_tables(e.cd));
	v = cmddev_vol(e.cd);
	ck_assert_str_eq(v->type, "cmddev");
	ck_assert_uint_eq(v->volid, CD_VOLID);
	ck_assert_uint_eq(v->size_bytes, (uint64_t)CMDDEV_DEFAULT_SLOTS * SLOT);
	ck_assert_uint_eq(v->block_bytes, 512);
	ck_assert(cmddev_uptime_s(e.cd) >= 0);

	/* a second command device in this process: -EEXIST, naming the first */
	memset(&o, 0, sizeof(o));
	o.volid = CD_VOLID + 1;
	o.create = 1;
	snprintf(o.device, sizeof(o.device), "dev2");
	o.slots = 4;
	snprintf(other, sizeof(other), "%s/other", e.dir);
	ck_assert_int_eq(cmddev_open(other, &o, &cd2, why, sizeof(why)), -EEXIST);
	ck_assert_msg(strstr(why, "already has a command device") != NULL, "why: %s", why);
	ck_assert_int_eq(access(other, F_OK), -1);      /* nothing created */
	ck_assert_ptr_eq(cmddev_current(), e.cd);
	env_close(&e);

	/* reopen; a create=1 over it is refused by the tables; a wrong device name too */
	ck_assert_int_eq(dev_open(&e, 1, NULL, &cd2, why), -EEXIST);
	ck_assert_ptr_null(cmddev_current());
	memset(&o, 0, sizeof(o));
	o.volid = CD_VOLID;
	snprintf(o.device, sizeof(o.device), "not-dev1");
	o.slots = 2;
	ck_assert_int_eq(cmddev_open(e.tables, &o, &cd2, why, sizeof(why)), -EINVAL);
	ck_assert_msg(strstr(why, "dev1") != NULL, "why: %s", why);
	ck_assert_ptr_null(cmddev_current());
	env_open(&e, 0, NULL);
	ck_assert_str_eq(cmddev_device_name(e.cd), "dev1");
	env_close(&e);

	/* without a name at reopen, with fewer slots */
	memset(&o, 0, sizeof(o));
	o.volid = 7;
	o.slots = 2;
	ck_assert_int_eq(cmddev_open(e.tables, &o, &e.cd, why, sizeof(why)), 0);
	ck_assert_uint_eq(cmddev_vol(e.cd)->size_bytes, 2ull * SLOT);
	env_close(&e);

	/* the registered volume keeps its reference until unregistered */
	env_open(&e, 0, NULL);
	env_register_cd(&e);
	v = vol_lookup(CD_VOLID);
	ck_assert_ptr_eq(v, cmddev_vol(e.cd));
	vol_put(v);
	env_close(&e);
	ck_assert_ptr_null(vol_lookup(CD_VOLID));
	env_done(&e);
}
END_TEST

START_TEST(test_open_bad_key)
{
	struct env e;
	struct cmddev *cd = NULL;
	char why[WHY_LEN];
	int fd;

	env_init(&e);
	ck_assert_int_eq(dev_open(&e, 1, e.key, &cd, why), -ENOENT);
	ck_assert_msg(strstr(why, "auth_key") != NULL, "why: %s", why);
	ck_assert_ptr_null(cmddev_current());
	fd = open(e.key, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "short-key", 9), 9);
	close(fd);
	ck_assert_int_eq(dev_open(&e, 1, e.key, &cd, why), -EINVAL);
	ck_assert_msg(strstr(why, "16 bytes") != NULL, "why: %s", why);
	ck_assert_ptr_null(cmddev_current());
	/* the failed opens left the tables file free */
	env_open(&e, 1, NULL);
	env_done(&e);
}
END_TEST

START_TEST(test_opts_parse)
{
	struct cmddev_opts o;
	char why[WHY_LEN];

	ck_assert_int_eq(cmddev_opts_parse("volid=5;create=1;device=d_1.x;slots=4;auth_key=/k/f", &o,
					   why, sizeof(why)), 0);
	ck_assert_uint_eq(o.volid, 5);
	ck_assert_int_eq(o.create, 1);
	ck_assert_str_eq(o.device, "d_1.x");
	ck_assert_uint_eq(o.slots, 4);
	ck_assert_str_eq(o.auth_key_path, "/k/f");
	ck_assert_int_eq(cmddev_opts_parse("volid=9", &o, why, sizeof(why)), 0);
	ck_assert_uint_eq(o.slots, CMDDEV_DEFAULT_SLOTS);
	ck_assert_int_eq(o.create, 0);
	ck_assert_str_eq(o.auth_key_path, "");

	ck_assert_int_eq(cmddev_opts_parse("", &o, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "volid"));
	ck_assert_int_eq(cmddev_opts_parse("volid=0", &o, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(cmddev_opts_parse("volid=1;create=1", &o, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "device="));
	ck_assert_int_eq(cmddev_opts_parse("volid=1;create=2;device=d", &o, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(cmddev_opts_parse("volid=1;device=a/b", &o, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(cmddev_opts_parse("volid=1;slots=0", &o, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(cmddev_opts_parse("volid=1;slots=257", &o, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(cmddev_opts_parse("volid=1;colour=red", &o, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "colour"));
}
END_TEST

/* ---- commands ---------------------------------------------------------------------------- */

START_TEST(test_cmd_info)
{
	struct env e;
	struct cb_reply rp;
	char buf[128];
	const char *l;

	env_init(&e);
	env_open(&e, 1, NULL);
	env_register_cd(&e);
	ck_assert_int_eq(run(e.cd, 1, "TDM1 info tag=i1", &rp), CB_OK);
	ck_assert_str_eq(rp.tag, "i1");
	ck_assert_str_eq(rp.name, "OK");
	ck_assert_int_eq(rp.nlines, 1);
	l = line_of(&rp, "device ");
	ck_assert_str_eq(field(l, "name", buf, sizeof(buf)), "dev1");
	ck_assert_str_eq(field(l, "uuid", buf, sizeof(buf)),
			 tables_device_uuid(cmddev_tables(e.cd)));
	ck_assert_str_eq(field(l, "slots", buf, sizeof(buf)), "16");
	ck_assert_str_eq(field(l, "auth", buf, sizeof(buf)), "none");
	ck_assert_str_eq(field(l, "cmddev_volid", buf, sizeof(buf)), "100");
	ck_assert_str_eq(field(l, "volumes", buf, sizeof(buf)), "1");
	ck_assert_ptr_nonnull(field(l, "version", buf, sizeof(buf)));
	ck_assert_ptr_nonnull(field(l, "uptime_s", buf, sizeof(buf)));
	cb_reply_free(&rp);
	/* by number, with a CR LF */
	ck_assert_int_eq(run(e.cd, 1, "TDM1 1\r\n", &rp), CB_OK);
	ck_assert_ptr_nonnull(line_of(&rp, "device name=dev1 "));
	ck_assert_str_eq(rp.tag, "");
	cb_reply_free(&rp);
	/* help lists every command of the table by number and name */
	{
		int ncmd = 0;

		for (const struct command *c = commands; c->name; c++)
			ncmd++;
		ck_assert_int_ge(ncmd, 11);
		ck_assert_int_eq(run(e.cd, 1, "TDM1 help", &rp), CB_OK);
		ck_assert_int_eq(rp.nlines, ncmd);
	}
	ck_assert_ptr_nonnull(line_of(&rp, "command no=1 name=info "));
	ck_assert_ptr_nonnull(line_of(&rp, "command no=5 name=cmddev-add params=device%20lun%20[volid]"));
	ck_assert_ptr_nonnull(line_of(&rp, "command no=11 name=help "));
	cb_reply_free(&rp);
	ck_assert_int_eq(run(e.cd, 1, "TDM1 11", &rp), CB_OK);
	ck_assert_ptr_nonnull(line_of(&rp, "command no=11 name=help "));
	cb_reply_free(&rp);
	env_done(&e);
}
END_TEST

START_TEST(test_cmd_volumes)
{
	struct env e;
	struct cb_reply rp;
	char buf[600];
	const char *l;

	env_init(&e);
	env_open(&e, 1, NULL);
	env_register_cd(&e);
	env_raid(&e);

	ck_assert_int_eq(run(e.cd, 1, "TDM1 vol-list", &rp), CB_OK);
	ck_assert_int_eq(rp.nlines, 2);
	ck_assert_str_eq(rp.msg, "2 volumes");
	l = line_of(&rp, "vol volid=10 ");
	ck_assert_str_eq(field(l, "type", buf, sizeof(buf)), "raid");
	ck_assert_str_eq(field(l, "layout", buf, sizeof(buf)), "2D+1P");
	ck_assert_str_eq(field(l, "size_bytes", buf, sizeof(buf)), "2097152");
	ck_assert_str_eq(field(l, "block_bytes", buf, sizeof(buf)), "512");
	ck_assert_str_eq(field(l, "state", buf, sizeof(buf)), "optimal");
	l = line_of(&rp, "vol volid=100 ");
	ck_assert_str_eq(field(l, "type", buf, sizeof(buf)), "cmddev");
	ck_assert_str_eq(field(l, "size_bytes", buf, sizeof(buf)), "4194304");
	cb_reply_free(&rp);
	ck_assert_int_eq(run(e.cd, 1, "TDM1 2", &rp), CB_OK);
	ck_assert_int_eq(rp.nlines, 2);
	cb_reply_free(&rp);

	ck_assert_int_eq(run(e.cd, 1, "TDM1 vol-status volid=10", &rp), CB_OK);
	ck_assert_ptr_nonnull(line_of(&rp, "vol volid=10 type=raid "));
	ck_assert_ptr_nonnull(line_of(&rp, "stats full_stripe_writes="));
	cb_reply_free(&rp);
	ck_assert_int_eq(run(e.cd, 1, "TDM1 vol-status volid=100", &rp), CB_OK);
	ck_assert_int_eq(rp.nlines, 1);
	cb_reply_free(&rp);
	expect(e.cd, "TDM1 vol-status volid=999", CB_NOT_FOUND, "999");
	expect(e.cd, "TDM1 vol-status volid=abc", CB_INVALID, "volid=abc");
	expect(e.cd, "TDM1 vol-status volid=0", CB_INVALID, "volid=0");
	expect(e.cd, "TDM1 vol-status volid=4294967296", CB_INVALID, NULL);
	expect(e.cd, "TDM1 vol-status volid=", CB_INVALID, NULL);

	ck_assert_int_eq(run(e.cd, 1, "TDM1 raid-status volid=10 tag=rs", &rp), CB_OK);
	ck_assert_str_eq(rp.tag, "rs");
	l = line_of(&rp, "raid volid=10 ");
	ck_assert_str_eq(field(l, "layout", buf, sizeof(buf)), "2D+1P");
	ck_assert_str_eq(field(l, "chunk_bytes", buf, sizeof(buf)), "65536");
	ck_assert_str_eq(field(l, "members", buf, sizeof(buf)), "3");
	for (int i = 0; i < 3; i++) {
		char pre[32];

		snprintf(pre, sizeof(pre), "member index=%d ", i);
		ck_assert_str_eq(field(line_of(&rp, pre), "path", buf, sizeof(buf)), e.member[i]);
	}
	ck_assert_ptr_nonnull(line_of(&rp, "stats "));
	cb_reply_free(&rp);
	expect(e.cd, "TDM1 raid-status volid=100", CB_INVALID, "not raid");
	expect(e.cd, "TDM1 raid-status volid=11", CB_NOT_FOUND, NULL);

	/* info counts them */
	ck_assert_int_eq(run(e.cd, 1, "TDM1 info", &rp), CB_OK);
	ck_assert_str_eq(field(line_of(&rp, "device "), "volumes", buf, sizeof(buf)), "2");
	cb_reply_free(&rp);
	env_done(&e);
}
END_TEST

START_TEST(test_cmd_cmddev_table)
{
	struct env e;
	struct cb_reply rp;
	char buf[64];
	uint64_t gen;

	env_init(&e);
	env_open(&e, 1, NULL);
	ck_assert_int_eq(run(e.cd, 1, "TDM1 cmddev-show", &rp), CB_OK);
	ck_assert_int_eq(rp.nlines, 0);
	cb_reply_free(&rp);

	gen = tables_generation(cmddev_tables(e.cd));
	ck_assert_int_eq(run(e.cd, 1, "TDM1 cmddev-add device=d2 lun=3 volid=7", &rp), CB_OK);
	ck_assert_ptr_nonnull(line_of(&rp, "cmddev device=d2 lun=3 volid=7"));
	cb_reply_free(&rp);
	ck_assert_uint_eq(tables_generation(cmddev_tables(e.cd)), gen + 1);
	expect(e.cd, "TDM1 cmddev-add device=d2 lun=4", CB_EXISTS, "d2");
	ck_assert_uint_eq(tables_generation(cmddev_tables(e.cd)), gen + 1);
	expect(e.cd, "TDM1 5 device=d3 lun=4", CB_OK, NULL);
	expect(e.cd, "TDM1 cmddev-add device=d4 lun=0", CB_INVALID, "lun=0");
	expect(e.cd, "TDM1 cmddev-add device=d4 lun=16384", CB_INVALID, "lun=16384");
	expect(e.cd, "TDM1 cmddev-add device=d4 lun=x", CB_INVALID, NULL);
	expect(e.cd, "TDM1 cmddev-add device=d4 lun=1 volid=0", CB_INVALID, "volid=0");
	expect(e.cd, "TDM1 cmddev-add device=a/b lun=1", CB_INVALID, "device=a/b");
	expect(e.cd, "TDM1 cmddev-add device= lun=1", CB_INVALID, NULL);
	expect(e.cd, "TDM1 cmddev-add lun=1", CB_INVALID, "needs device=");
	expect(e.cd, "TDM1 cmddev-add device=d4", CB_INVALID, "needs lun=");

	ck_assert_int_eq(run(e.cd, 1, "TDM1 cmddev-show", &rp), CB_OK);
	ck_assert_int_eq(rp.nlines, 2);
	ck_assert_ptr_nonnull(line_of(&rp, "cmddev device=d2 lun=3 volid=7"));
	ck_assert_str_eq(field(line_of(&rp, "cmddev device=d3 "), "volid", buf, sizeof(buf)), "-");
	cb_reply_free(&rp);

	expect(e.cd, "TDM1 cmddev-remove device=d2", CB_OK, "d2");
	expect(e.cd, "TDM1 cmddev-remove device=d2", CB_NOT_FOUND, "d2");
	expect(e.cd, "TDM1 cmddev-remove device=a:b", CB_INVALID, NULL);
	expect(e.cd, "TDM1 cmddev-remove", CB_INVALID, "needs device=");

	/* the table survives a reopen */
	env_close(&e);
	env_open(&e, 0, NULL);
	ck_assert_int_eq(run(e.cd, 1, "TDM1 4", &rp), CB_OK);
	ck_assert_int_eq(rp.nlines, 1);
	ck_assert_ptr_nonnull(line_of(&rp, "cmddev device=d3 lun=4 volid=-"));
	cb_reply_free(&rp);
	env_done(&e);
}
END_TEST

START_TEST(test_cmd_errors)
{
	struct env e;
	struct cb_reply rp;
	char *text = (char *)1;
	size_t len = 1;
	uint8_t zeros[BLK] = { 0 };

	env_init(&e);
	env_open(&e, 1, NULL);
	expect(e.cd, "TDM1 frobnicate", CB_UNKNOWN_COMMAND, "frobnicate");
	expect(e.cd, "TDM1 99", CB_UNKNOWN_COMMAND, "99");
	expect(e.cd, "TDM1 0", CB_UNKNOWN_COMMAND, NULL);
	expect(e.cd, "TDM1 info foo=1", CB_INVALID, "does not take foo=");
	expect(e.cd, "TDM1 vol-status volid=1 vol=2", CB_INVALID, "does not take vol=");
	expect(e.cd, "TDM1 cmddev-add device=x lun=1 volid=1 lu=1", CB_INVALID, "lu=");
	expect(e.cd, "TDM1 vol-status", CB_INVALID, "needs volid=");
	expect(e.cd, "TDM1 raid-check", CB_INVALID, "needs volid=");
	expect(e.cd, "TDM1 op-status", CB_INVALID, "needs op=");
	expect(e.cd, "TDM2 info", CB_BAD_VERSION, "version 2");
	expect(e.cd, "TDM1 Info", CB_INVALID, "'I'");
	expect(e.cd, "TDM1 info  tag=x", CB_INVALID, "empty item");
	expect(e.cd, "TDM1", CB_INVALID, "no command");
	/* the tag comes back with errors too */
	ck_assert_int_eq(run(e.cd, 1, "TDM1 frob tag=e1", &rp), CB_UNKNOWN_COMMAND);
	ck_assert_str_eq(rp.tag, "e1");
	cb_reply_free(&rp);
	ck_assert_int_eq(run(e.cd, 1, "TDM1 info bad=\"x tag=e2", &rp), CB_INVALID);
	cb_reply_free(&rp);
	/* not a command block: nothing */
	ck_assert_int_eq(cmddev_execute(e.cd, 1, zeros, sizeof(zeros), &text, &len), -ENODATA);
	ck_assert_ptr_null(text);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(cmddev_execute(e.cd, 1, "TDX1 info", 9, &text, &len), -ENODATA);
	ck_assert_ptr_null(text);
	env_done(&e);
}
END_TEST

/* A numeric command is the process number, all of it: "1x" is not "1". command_find uses
 * atoi() and so runs info for "1x", "1-remove", "11abc" (help)... */
START_TEST(test_cmd_number_with_suffix)
{
	struct env e;

	env_init(&e);
	env_open(&e, 1, NULL);
	expect(e.cd, "TDM1 1x", CB_UNKNOWN_COMMAND, NULL);
	expect(e.cd, "TDM1 11-anything", CB_UNKNOWN_COMMAND, NULL);
	env_done(&e);
}
END_TEST

/* op-status until the op leaves RUNNING (bounded: 10 s); returns the final op line's state. */
static void wait_op(struct cmddev *cd, const char *id, char *state, size_t state_len,
		    char *result, size_t result_len)
{
	char blk[64];

	snprintf(blk, sizeof(blk), "TDM1 op-status op=%s", id);
	for (int i = 0; i < 2000; i++) {
		struct cb_reply rp;
		int st = run(cd, 1, blk, &rp);
		const char *l;

		ck_assert_msg(st == CB_OK || st == CB_RUNNING, "op-status: %d %s", st, rp.msg);
		l = line_of(&rp, "op id=");
		field(l, "state", state, state_len);
		field(l, "result", result, result_len);
		if (st == CB_OK) {
			char pct[32];

			ck_assert_str_ne(state, "running");
			ck_assert_str_eq(field(l, "percent", pct, sizeof(pct)), "100.0");
			cb_reply_free(&rp);
			return;
		}
		ck_assert_str_eq(state, "running");
		cb_reply_free(&rp);
		usleep(5000);
	}
	ck_abort_msg("operation %s still running after 10 s", id);
}

static void start_check(struct cmddev *cd, char *id, size_t id_len)
{
	struct cb_reply rp;
	const char *l;
	char buf[64];

	ck_assert_int_eq(run(cd, 1, "TDM1 raid-check volid=10 tag=rc", &rp), CB_RUNNING);
	ck_assert_str_eq(rp.name, "RUNNING");
	ck_assert_str_eq(rp.tag, "rc");
	l = line_of(&rp, "op id=");
	field(l, "id", id, id_len);
	ck_assert_str_eq(field(l, "kind", buf, sizeof(buf)), "raid-check");
	ck_assert_str_eq(field(l, "subject", buf, sizeof(buf)), "volid=10");
	ck_assert_int_gt(atoi(id), 0);
	cb_reply_free(&rp);
}

START_TEST(test_cmd_raid_check)
{
	struct env e;
	struct cb_reply rp;
	char id[32], id2[32], state[32], result[300], want[64];
	int fd;

	env_init(&e);
	env_open(&e, 1, NULL);
	env_register_cd(&e);
	env_raid(&e);

	start_check(e.cd, id, sizeof(id));
	wait_op(e.cd, id, state, sizeof(state), result, sizeof(result));
	ck_assert_str_eq(state, "done");
	ck_assert_msg(strstr(result, "parity consistent") != NULL, "result: %s", result);
	ck_assert_ptr_nonnull(strstr(result, "16 stripes"));

	ck_assert_int_eq(run(e.cd, 1, "TDM1 op-list", &rp), CB_OK);
	snprintf(want, sizeof(want), "op id=%s kind=raid-check ", id);
	ck_assert_ptr_nonnull(line_of(&rp, want));
	cb_reply_free(&rp);

	expect(e.cd, "TDM1 op-status op=999999", CB_NOT_FOUND, "999999");
	expect(e.cd, "TDM1 op-status op=0", CB_INVALID, NULL);
	expect(e.cd, "TDM1 op-status op=x", CB_INVALID, NULL);
	expect(e.cd, "TDM1 raid-check volid=100", CB_INVALID, "not a raid");
	expect(e.cd, "TDM1 raid-check volid=55", CB_NOT_FOUND, NULL);

	/* damage one data chunk behind the array's back: the next check finds it */
	fd = open(e.member[1], O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "garbage", 7, (off_t)(4u << 20) + 3 * 65536 + 100), 7);
	close(fd);
	start_check(e.cd, id2, sizeof(id2));
	ck_assert_str_ne(id2, id);
	wait_op(e.cd, id2, state, sizeof(state), result, sizeof(result));
	ck_assert_str_eq(state, "failed");
	ck_assert_msg(strstr(result, "1 of 16 stripes had parity mismatches") != NULL, "result: %s",
		      result);
	ck_assert_ptr_nonnull(strstr(result, "stripe 3"));
	env_done(&e);
}
END_TEST

/* ---- slots: results per host ------------------------------------------------------------- */

START_TEST(test_slot_per_host)
{
	struct env e;
	struct cb_reply rp;
	uint8_t buf[2 * BLK];

	env_init(&e);
	env_open(&e, 1, NULL);
	/* reads of a fresh device (a Linux initiator's login probes) are zeros */
	ck_assert(slot_empty(e.cd, 1, 0));
	ck_assert(slot_empty(e.cd, 1, CMDDEV_DEFAULT_SLOTS - 1));

	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 info tag=n1"), 0);
	/* another host reads zeros in that slot, and does not consume the result */
	ck_assert(slot_empty(e.cd, 2, 0));
	/* the owner reads zeros in other slots */
	ck_assert(slot_empty(e.cd, 1, 1));
	ck_assert_int_eq(read_result(e.cd, 1, 0, &rp), 0);
	ck_assert_int_eq(rp.status, CB_OK);
	ck_assert_str_eq(rp.tag, "n1");
	ck_assert_ptr_nonnull(line_of(&rp, "device name=dev1 "));
	ck_assert_uint_le(rp.bytes, BLK);
	cb_reply_free(&rp);
	/* consumed by reading its last block */
	ck_assert(slot_empty(e.cd, 1, 0));

	/* two hosts, one slot, at once: each reads its own */
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 info tag=host1"), 0);
	ck_assert_int_eq(put_cmd(e.cd, 2, 0, "TDM1 cmddev-show tag=host2"), 0);
	ck_assert_int_eq(read_result(e.cd, 2, 0, &rp), 0);
	ck_assert_str_eq(rp.tag, "host2");
	cb_reply_free(&rp);
	ck_assert(slot_empty(e.cd, 2, 0));
	ck_assert_int_eq(read_result(e.cd, 1, 0, &rp), 0);
	ck_assert_str_eq(rp.tag, "host1");
	cb_reply_free(&rp);

	/* one host, several slots */
	ck_assert_int_eq(put_cmd(e.cd, 1, 3, "TDM1 info tag=s3"), 0);
	ck_assert_int_eq(put_cmd(e.cd, 1, 15, "TDM1 info tag=s15"), 0);
	ck_assert_int_eq(read_result(e.cd, 1, 15, &rp), 0);
	ck_assert_str_eq(rp.tag, "s15");
	cb_reply_free(&rp);
	ck_assert_int_eq(read_result(e.cd, 1, 3, &rp), 0);
	ck_assert_str_eq(rp.tag, "s3");
	cb_reply_free(&rp);

	/* a new command replaces the host's unread result in the slot */
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 info tag=old"), 0);
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 info tag=new"), 0);
	ck_assert_int_eq(read_result(e.cd, 1, 0, &rp), 0);
	ck_assert_str_eq(rp.tag, "new");
	cb_reply_free(&rp);
	ck_assert(slot_empty(e.cd, 1, 0));

	/* a read past the result's end (block 1 of a one-block result) is zeros and keeps it */
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 info tag=k"), 0);
	get_blocks(e.cd, 1, 0, 1, 1, buf);
	ck_assert(all_zero(buf, BLK));
	ck_assert_int_eq(read_result(e.cd, 1, 0, &rp), 0);
	ck_assert_str_eq(rp.tag, "k");
	cb_reply_free(&rp);

	/* a read spanning two slots serves both */
	ck_assert_int_eq(put_cmd(e.cd, 1, 4, "TDM1 info tag=a4"), 0);
	ck_assert_int_eq(put_cmd(e.cd, 1, 5, "TDM1 info tag=a5"), 0);
	{
		uint8_t *two = malloc(2 * SLOT);

		ck_assert_ptr_nonnull(two);
		ck_assert_int_eq(cmddev_read(e.cd, 1, 4ull * SLOT, two, 2 * SLOT), 0);
		ck_assert_int_eq(cb_reply_header((char *)two, SLOT, &rp), 0);
		ck_assert_str_eq(rp.tag, "a4");
		ck_assert_int_eq(cb_reply_header((char *)two + SLOT, SLOT, &rp), 0);
		ck_assert_str_eq(rp.tag, "a5");
		free(two);
	}
	ck_assert(slot_empty(e.cd, 1, 4));
	ck_assert(slot_empty(e.cd, 1, 5));
	env_done(&e);
}
END_TEST

START_TEST(test_slot_writes_ignored)
{
	struct env e;
	struct urand r = { unit_seed_for(41) };
	struct cb_reply rp;
	uint8_t blk[BLK], *big;
	uint64_t gen;

	env_init(&e);
	env_open(&e, 1, NULL);
	gen = tables_generation(cmddev_tables(e.cd));
	/* zeros, random data, another magic: nothing executes, nothing is stored */
	memset(blk, 0, sizeof(blk));
	ck_assert_int_eq(cmddev_write(e.cd, 1, 0, blk, BLK), 0);
	ck_assert(slot_empty(e.cd, 1, 0));
	for (int i = 0; i < 20; i++) {
		urand_fill(&r, blk, sizeof(blk));
		if (!memcmp(blk, "TDM", 3))
			blk[0] = 0;
		ck_assert_int_eq(cmddev_write(e.cd, 1, 0, blk, BLK), 0);
		ck_assert(slot_empty(e.cd, 1, 0));
	}
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDX1 cmddev-add device=zz lun=1"), 0);
	ck_assert(slot_empty(e.cd, 1, 0));

	/* a command anywhere but a slot's first block is data, ignored */
	memset(blk, 0, sizeof(blk));
	memcpy(blk, "TDM1 cmddev-add device=zz lun=1", 31);
	ck_assert_int_eq(cmddev_write(e.cd, 1, BLK, blk, BLK), 0);
	ck_assert_int_eq(cmddev_write(e.cd, 1, SLOT - BLK, blk, BLK), 0);
	ck_assert_int_eq(cmddev_write(e.cd, 1, 2 * SLOT + 7 * BLK, blk, BLK), 0);
	ck_assert(slot_empty(e.cd, 1, 0));
	ck_assert(slot_empty(e.cd, 1, 2));
	ck_assert_uint_eq(tables_generation(cmddev_tables(e.cd)), gen);

	/* a write from the middle of slot 0 into slot 1: slot 1's first block executes */
	big = calloc(1, 2 * BLK);
	ck_assert_ptr_nonnull(big);
	memcpy(big, "TDM1 cmddev-add device=no lun=1", 31);
	memcpy(big + BLK, "TDM1 info tag=span", 18);
	ck_assert_int_eq(cmddev_write(e.cd, 1, SLOT - BLK, big, 2 * BLK), 0);
	ck_assert(slot_empty(e.cd, 1, 0));
	ck_assert_int_eq(read_result(e.cd, 1, 1, &rp), 0);
	ck_assert_str_eq(rp.tag, "span");
	cb_reply_free(&rp);
	free(big);
	/* one write over two whole slots executes both first blocks */
	big = calloc(1, 2 * SLOT);
	ck_assert_ptr_nonnull(big);
	memcpy(big, "TDM1 info tag=w6", 16);
	memcpy(big + SLOT, "TDM1 info tag=w7", 16);
	memcpy(big + BLK, "TDM1 cmddev-add device=no lun=1", 31);
	ck_assert_int_eq(cmddev_write(e.cd, 1, 6ull * SLOT, big, 2 * SLOT), 0);
	ck_assert_int_eq(read_result(e.cd, 1, 6, &rp), 0);
	ck_assert_str_eq(rp.tag, "w6");
	cb_reply_free(&rp);
	ck_assert_int_eq(read_result(e.cd, 1, 7, &rp), 0);
	ck_assert_str_eq(rp.tag, "w7");
	cb_reply_free(&rp);
	free(big);
	ck_assert_uint_eq(tables_generation(cmddev_tables(e.cd)), gen);

	/* through the volume interface (vol_write / vol_read: nexus 0), with its range check */
	memset(blk, 0, sizeof(blk));
	memcpy(blk, "TDM1 info tag=v0", 16);
	ck_assert_int_eq(vol_write(cmddev_vol(e.cd), blk, 8 * SLOT, BLK), 0);
	ck_assert_int_eq(read_result(e.cd, 0, 8, &rp), 0);
	ck_assert_str_eq(rp.tag, "v0");
	cb_reply_free(&rp);
	ck_assert_int_eq(vol_read(cmddev_vol(e.cd), blk, 16ull * SLOT, BLK), -ERANGE);
	ck_assert_int_eq(vol_flush(cmddev_vol(e.cd)), 0);
	env_done(&e);
}
END_TEST

/* A write that is not a command block is ignored (docs/command-device.md): it must not clear
 * the host's unread result in that slot, which is cleared only by reading its last block, by a
 * new command or by age. cmddev_write drops the old result before it knows the block is none. */
START_TEST(test_slot_zeros_keep_result)
{
	struct env e;
	struct cb_reply rp;
	uint8_t zeros[BLK] = { 0 };

	env_init(&e);
	env_open(&e, 1, NULL);
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 info tag=keep"), 0);
	ck_assert_int_eq(cmddev_write(e.cd, 1, 0, zeros, BLK), 0);
	ck_assert_msg(read_result(e.cd, 1, 0, &rp) == 0, "the unread result of slot 0 was cleared by "
		      "a write of zeros");
	ck_assert_str_eq(rp.tag, "keep");
	cb_reply_free(&rp);
	env_done(&e);
}
END_TEST

START_TEST(test_slot_edit0)
{
	struct env e;
	struct cb_reply rp;
	char *text = NULL;
	size_t len = 0;

	env_init(&e);
	env_open(&e, 1, NULL);
	env_raid(&e);
	/* success: executed, nothing kept */
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 cmddev-add device=e1 lun=1 edit=0"), 0);
	ck_assert(slot_empty(e.cd, 1, 0));
	ck_assert_int_eq(cmddev_execute(e.cd, 1, "TDM1 info edit=0", 16, &text, &len), 0);
	ck_assert_ptr_null(text);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(run(e.cd, 1, "TDM1 cmddev-show", &rp), CB_OK);
	ck_assert_ptr_nonnull(line_of(&rp, "cmddev device=e1 "));
	cb_reply_free(&rp);
	/* a long operation started with edit=0: RUNNING is success too */
	ck_assert_int_eq(put_cmd(e.cd, 1, 1, "TDM1 raid-check volid=10 edit=0"), 0);
	ck_assert(slot_empty(e.cd, 1, 1));
	/* failures are always kept */
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 cmddev-add device=e1 lun=1 edit=0 tag=x"), 0);
	ck_assert_int_eq(read_result(e.cd, 1, 0, &rp), 0);
	ck_assert_int_eq(rp.status, CB_EXISTS);
	ck_assert_str_eq(rp.tag, "x");
	cb_reply_free(&rp);
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 nosuch edit=0"), 0);
	ck_assert_int_eq(read_result(e.cd, 1, 0, &rp), 0);
	ck_assert_int_eq(rp.status, CB_UNKNOWN_COMMAND);
	cb_reply_free(&rp);
	ck_assert_int_eq(put_cmd(e.cd, 1, 0, "TDM1 info edit=0 x"), 0);     /* malformed */
	ck_assert_int_eq(read_result(e.cd, 1, 0, &rp), 0);
	ck_assert_int_eq(rp.status, CB_INVALID);
	cb_reply_free(&rp);
	env_done(&e);
}
END_TEST

/* A result longer than a block, read in pieces: the first block again and again, then the rest;
 * it is cleared only when the block holding its end has been read. */
static void long_result(struct cmddev *cd, uint32_t slot, const char *cmd, int min_lines)
{
	uint8_t *buf = calloc(1, SLOT), again[BLK];
	struct cb_reply rp;
	char why[WHY_LEN];
	uint32_t nb;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(put_cmd(cd, 1, slot, cmd), 0);
	get_blocks(cd, 1, slot, 0, 1, buf);
	ck_assert_int_eq(cb_reply_header((char *)buf, BLK, &rp), 0);
	ck_assert_uint_gt(rp.bytes, BLK);
	nb = (uint32_t)((rp.bytes + BLK - 1) / BLK);
	/* only the first block: incomplete, and still there */
	ck_assert_int_eq(cb_reply_parse((char *)buf, BLK, &rp, why, sizeof(why)), -EPROTO);
	get_blocks(cd, 1, slot, 0, 1, again);
	ck_assert_int_eq(memcmp(again, buf, BLK), 0);
	/* every block but the last, one by one: still there */
	for (uint32_t b = 1; b + 1 < nb; b++)
		get_blocks(cd, 1, slot, b, 1, buf + (size_t)b * BLK);
	get_blocks(cd, 1, slot, 0, 1, again);
	ck_assert_int_eq(memcmp(again, buf, BLK), 0);
	/* the last block */
	get_blocks(cd, 1, slot, nb - 1, 1, buf + (size_t)(nb - 1) * BLK);
	ck_assert_msg(cb_reply_parse((char *)buf, (size_t)nb * BLK, &rp, why, sizeof(why)) == 0,
		      "%s", why);
	ck_assert_int_eq(rp.status, CB_OK);
	ck_assert_int_ge(rp.nlines, min_lines);
	cb_reply_free(&rp);
	ck_assert(slot_empty(cd, 1, slot));
	free(buf);
}

START_TEST(test_slot_long_results)
{
	struct env e;
	struct vol *fv[60];
	struct cb_reply rp;

	env_init(&e);
	env_open(&e, 1, NULL);
	env_register_cd(&e);
	long_result(e.cd, 0, "TDM1 help", 11);
	for (int i = 0; i < 60; i++)
		fv[i] = fake_vol(1000 + (uint64_t)i);
	long_result(e.cd, 2, "TDM1 vol-list tag=many", 61);
	/* tandemctl's way: a block, then the rest by bytes= */
	ck_assert_int_eq(put_cmd(e.cd, 1, 9, "TDM1 vol-list"), 0);
	ck_assert_int_eq(read_result(e.cd, 1, 9, &rp), 0);
	ck_assert_int_eq(rp.nlines, 61);
	ck_assert_ptr_nonnull(line_of(&rp, "vol volid=1059 type=vvol "));
	cb_reply_free(&rp);
	ck_assert(slot_empty(e.cd, 1, 9));
	for (int i = 0; i < 60; i++)
		fake_drop(fv[i]);
	env_done(&e);
}
END_TEST

START_TEST(test_slot_result_table_full)
{
	struct env e;
	struct cb_reply rp;
	uint64_t gen;

	env_init(&e);
	env_open(&e, 1, NULL);
	for (uint64_t n = 1; n <= CMDDEV_MAX_RESULTS; n++)
		ck_assert_int_eq(put_cmd(e.cd, n, (uint32_t)(n % CMDDEV_DEFAULT_SLOTS), "TDM1 info"), 0);
	gen = tables_generation(cmddev_tables(e.cd));
	/* full: BUSY, and the command did not run */
	ck_assert_int_eq(put_cmd(e.cd, 5000, 0, "TDM1 cmddev-add device=busy lun=1"), -EBUSY);
	ck_assert_uint_eq(tables_generation(cmddev_tables(e.cd)), gen);
	ck_assert(slot_empty(e.cd, 5000, 0));
	/* a host's new command in a slot where it has a result replaces it: allowed */
	ck_assert_int_eq(put_cmd(e.cd, 7, 7, "TDM1 info tag=again"), 0);
	ck_assert_int_eq(read_result(e.cd, 7, 7, &rp), 0);
	ck_assert_str_eq(rp.tag, "again");
	cb_reply_free(&rp);
	/* that read freed an entry */
	ck_assert_int_eq(put_cmd(e.cd, 5000, 0, "TDM1 cmddev-add device=busy lun=1"), 0);
	ck_assert_uint_eq(tables_generation(cmddev_tables(e.cd)), gen + 1);
	ck_assert_int_eq(put_cmd(e.cd, 5001, 0, "TDM1 info"), -EBUSY);
	env_done(&e);
}
END_TEST

/* ---- authentication ---------------------------------------------------------------------- */

static void write_key(const char *path, uint8_t *key, size_t len, uint64_t salt)
{
	struct urand r = { unit_seed_for(salt) };
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	urand_fill(&r, key, len);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, key, len), (ssize_t)len);
	close(fd);
}

static void sign(char *out, size_t out_len, const char *cmd, const char *tag, const uint8_t *key,
		 const char *host, uint64_t seq)
{
	int n = cb_encode(cmd, NULL, 0, tag, 1, key, 32, host, seq, out, out_len);

	ck_assert_int_gt(n, 0);
}

START_TEST(test_auth)
{
	struct env e;
	struct cb_reply rp;
	uint8_t key[32], wrong[32];
	char b100[CB_MAX_BYTES], b[CB_MAX_BYTES], buf[64];

	env_init(&e);
	write_key(e.key, key, sizeof(key), 51);
	memcpy(wrong, key, sizeof(wrong));
	wrong[0] ^= 0x80;
	env_open(&e, 1, e.key);
	ck_assert_int_eq(cmddev_has_key(e.cd), 1);

	/* unsigned */
	expect(e.cd, "TDM1 info", CB_AUTH_REQUIRED, "signed");
	expect(e.cd, "TDM1 info host=h1 seq=1", CB_AUTH_REQUIRED, NULL);
	/* signed */
	sign(b100, sizeof(b100), "info", "a", key, "h1", 100);
	ck_assert_int_eq(run(e.cd, 1, b100, &rp), CB_OK);
	ck_assert_str_eq(field(line_of(&rp, "device "), "auth", buf, sizeof(buf)), "hmac-sha256");
	ck_assert_str_eq(rp.tag, "a");
	cb_reply_free(&rp);
	/* the same block again, an older or equal seq */
	expect(e.cd, b100, CB_REPLAY, "seq 100");
	sign(b, sizeof(b), "info", NULL, key, "h1", 50);
	expect(e.cd, b, CB_REPLAY, "last accepted 100");
	sign(b, sizeof(b), "cmddev-show", NULL, key, "h1", 100);
	expect(e.cd, b, CB_REPLAY, NULL);
	sign(b, sizeof(b), "info", NULL, key, "h1", 101);
	expect(e.cd, b, CB_OK, NULL);
	/* another host has its own sequence */
	sign(b, sizeof(b), "info", NULL, key, "h2", 5);
	expect(e.cd, b, CB_OK, NULL);
	/* a host whose name is a prefix of another's */
	sign(b, sizeof(b), "info", NULL, key, "h", 1);
	expect(e.cd, b, CB_OK, NULL);
	/* wrong key */
	sign(b, sizeof(b), "info", NULL, wrong, "h3", 1000);
	expect(e.cd, b, CB_AUTH_REQUIRED, "does not match");
	/* altered after signing (the tag), still well-formed */
	sign(b, sizeof(b), "info", "tagA", key, "h1", 200);
	strstr(b, "tagA")[3] = 'B';
	expect(e.cd, b, CB_AUTH_REQUIRED, "does not match");
	/* the refused blocks did not move h1's sequence: 102 still works */
	sign(b, sizeof(b), "info", NULL, key, "h1", 102);
	expect(e.cd, b, CB_OK, NULL);
	/* through the slots */
	{
		const char *p[] = { "device=s1", "lun=1" };

		ck_assert_int_gt(cb_encode("cmddev-add", p, 2, "slot", 1, key, 32, "h1", 103, b,
					   sizeof(b)), 0);
	}
	ck_assert_int_eq(put_cmd(e.cd, 4, 2, b), 0);
	ck_assert_int_eq(read_result(e.cd, 4, 2, &rp), 0);
	ck_assert_int_eq(rp.status, CB_OK);
	ck_assert_str_eq(rp.tag, "slot");
	cb_reply_free(&rp);
	ck_assert_int_eq(put_cmd(e.cd, 4, 2, b), 0);
	ck_assert_int_eq(read_result(e.cd, 4, 2, &rp), 0);
	ck_assert_int_eq(rp.status, CB_REPLAY);
	cb_reply_free(&rp);

	/* after a restart the sequences are still there */
	env_close(&e);
	env_open(&e, 0, e.key);
	expect(e.cd, b100, CB_REPLAY, NULL);
	sign(b, sizeof(b), "info", NULL, key, "h1", 103);
	expect(e.cd, b, CB_REPLAY, NULL);
	sign(b, sizeof(b), "info", NULL, key, "h2", 5);
	expect(e.cd, b, CB_REPLAY, NULL);
	sign(b, sizeof(b), "info", NULL, key, "h1", 104);
	expect(e.cd, b, CB_OK, NULL);
	/* the sequence records are not command-device entries */
	ck_assert_int_eq(run(e.cd, 1, b, &rp), CB_REPLAY);
	cb_reply_free(&rp);
	sign(b, sizeof(b), "cmddev-show", NULL, key, "h1", 105);
	ck_assert_int_eq(run(e.cd, 1, b, &rp), CB_OK);
	ck_assert_int_eq(rp.nlines, 1);
	cb_reply_free(&rp);
	env_close(&e);

	/* without a key, host/seq/mac are ignored */
	env_open(&e, 0, NULL);
	expect(e.cd, b100, CB_OK, NULL);
	expect(e.cd, "TDM1 info", CB_OK, NULL);
	env_close(&e);

	/* the device's key changed: old signatures are refused */
	write_key(e.key, key, sizeof(key), 52);
	env_open(&e, 0, e.key);
	sign(b, sizeof(b), "info", NULL, wrong, "h9", 1);
	expect(e.cd, b, CB_AUTH_REQUIRED, NULL);
	sign(b, sizeof(b), "info", NULL, key, "h9", 1);
	expect(e.cd, b, CB_OK, NULL);
	env_done(&e);
}
END_TEST

static Suite *cmddev_suite(void)
{
	Suite *s = suite_create("cmddev");
	TCase *tc;

	tc = tcase_create("device");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_open_close);
	tcase_add_test(tc, test_open_bad_key);
	tcase_add_test(tc, test_opts_parse);
	suite_add_tcase(s, tc);

	tc = tcase_create("commands");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_cmd_info);
	tcase_add_test(tc, test_cmd_volumes);
	tcase_add_test(tc, test_cmd_cmddev_table);
	tcase_add_test(tc, test_cmd_errors);
	tcase_add_test(tc, test_cmd_number_with_suffix);
	tcase_add_test(tc, test_cmd_raid_check);
	suite_add_tcase(s, tc);

	tc = tcase_create("slots");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_slot_per_host);
	tcase_add_test(tc, test_slot_writes_ignored);
	tcase_add_test(tc, test_slot_zeros_keep_result);
	tcase_add_test(tc, test_slot_edit0);
	tcase_add_test(tc, test_slot_long_results);
	tcase_add_test(tc, test_slot_result_table_full);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_auth);
	suite_add_tcase(s, tc);
	return s;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Every test's scratch directory lives under one root, removed at the end even when a test
 * failed before its own cleanup (a forked test that fails does not get to run it). */
int main(void)
{
	const char *tmp = getenv("TMPDIR");
	char root[300];
	int rc;

	snprintf(root, sizeof(root), "%s/tandem-unit-cmddev-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		perror(root);
		return EXIT_FAILURE;
	}
	setenv("TMPDIR", root, 1);
	rc = unit_run(cmddev_suite());
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

#include "cmdvol/cmddev.h"
#include "cmdvol/client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "raid/opts.h"
#include "raid/tlog.h"
#include "raid/util.h"

struct result_entry {
	int used;
	uint32_t slot;
	uint64_t nexus;
	char *text;
	size_t len;
	time_t created;
	uint64_t ticket;                /* execution order of the command that made it */
};

struct cmddev {
	struct vol vol;
	struct tables *tables;
	uint32_t slots;
	uint8_t key[256];
	size_t key_len;
	struct timespec t0;
	pthread_mutex_t exec_lock;          /* one command at a time */
	uint64_t exec_ticket;               /* protected by exec_lock */
	pthread_mutex_t res_lock;
	struct result_entry res[CMDDEV_MAX_RESULTS];  /* protected by res_lock */
	int reserved;                       /* commands admitted, result not stored yet; res_lock */
};

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cmddev *current;          /* protected by current_lock */

int cmddev_opts_parse(const char *s, struct cmddev_opts *o, char *why, size_t why_len)
{
	static const char *const known[] = { "volid", "create", "device", "slots", "auth_key", NULL };
	struct opts kv;
	const char *v;
	uint64_t x;
	int err;

	memset(o, 0, sizeof(*o));
	o->slots = CMDDEV_DEFAULT_SLOTS;
	if ((err = opts_split(s, known, &kv, why, why_len)))
		return err;
	if (!(v = opts_get(&kv, "volid"))) {
		snprintf(why, why_len, "bsopts: volid= is required (the command device's volume id)");
		return -EINVAL;
	}
	if ((err = opts_u64("volid", v, 1, UINT32_MAX, &o->volid, why, why_len)))
		return err;
	if ((v = opts_get(&kv, "create"))) {
		if (strcmp(v, "0") && strcmp(v, "1")) {
			snprintf(why, why_len, "bsopts: create='%s': expected 0 or 1", v);
			return -EINVAL;
		}
		o->create = v[0] == '1';
	}
	if ((v = opts_get(&kv, "device"))) {
		size_t n = strlen(v);

		if (n == 0 || n > TABLES_NAME_MAX) {
			snprintf(why, why_len, "bsopts: device name must be 1..%d characters", TABLES_NAME_MAX);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)v[i]) && !strchr("_.-", v[i])) {
				snprintf(why, why_len, "bsopts: device='%s': use letters, digits, '_', '.', '-'", v);
				return -EINVAL;
			}
		snprintf(o->device, sizeof(o->device), "%s", v);
	}
	if (o->create && !o->device[0]) {
		snprintf(why, why_len, "bsopts: create=1 needs device=NAME (this device's name)");
		return -EINVAL;
	}
	if ((v = opts_get(&kv, "slots"))) {
		if ((err = opts_u64("slots", v, 1, CMDDEV_MAX_SLOTS, &x, why, why_len)))
			return err;
		o->slots = (uint32_t)x;
	}
	if ((v = opts_get(&kv, "auth_key")))
		snprintf(o->auth_key_path, sizeof(o->auth_key_path), "%s", v);
	return 0;
}

static int cv_read(struct vol *v, void *buf, uint64_t off, uint64_t len)
{
	return cmddev_read(v->impl, 0, off, buf, len);
}

static int cv_write(struct vol *v, const void *buf, uint64_t off, uint64_t len)
{
	return cmddev_write(v->impl, 0, off, buf, len);
}

static int cv_flush(struct vol *v)
{
	(void)v;
	return 0;
}

static void cv_destroy(struct vol *v)
{
	struct cmddev *cd = v->impl;

	for (int i = 0; i < CMDDEV_MAX_RESULTS; i++)
		free(cd->res[i].text);
	tables_close(cd->tables);
	pthread_mutex_destroy(&cd->exec_lock);
	pthread_mutex_destroy(&cd->res_lock);
	free(cd);
}

static const struct vol_ops cmddev_vol_ops = {
	.read = cv_read, .write = cv_write, .flush = cv_flush, .destroy = cv_destroy,
};

int cmddev_open(const char *path, const struct cmddev_opts *o, struct cmddev **out, char *why,
		size_t why_len)
{
	struct cmddev *cd;
	int err;

	pthread_mutex_lock(&current_lock);
	if (current) {
		snprintf(why, why_len, "this device already has a command device (volid %" PRIu64
			 ", tables of '%s'): one per device", current->vol.volid,
			 tables_device_name(current->tables));
		pthread_mutex_unlock(&current_lock);
		return -EEXIST;
	}
	cd = calloc(1, sizeof(*cd));
	if (!cd) {
		pthread_mutex_unlock(&current_lock);
		return -ENOMEM;
	}
	if (o->auth_key_path[0] &&
	    (err = cd_load_key("auth_key", o->auth_key_path, cd->key, sizeof(cd->key), &cd->key_len, why, why_len)))
		goto fail;
	if ((err = tables_open(path, o->create, o->device, &cd->tables, why, why_len)))
		goto fail;
	if (!o->create && o->device[0] && strcmp(o->device, tables_device_name(cd->tables))) {
		snprintf(why, why_len, "device=%s given, but %s holds the tables of device '%s'",
			 o->device, path, tables_device_name(cd->tables));
		tables_close(cd->tables);
		err = -EINVAL;
		goto fail;
	}
	cd->slots = o->slots;
	clock_gettime(CLOCK_MONOTONIC, &cd->t0);
	pthread_mutex_init(&cd->exec_lock, NULL);
	pthread_mutex_init(&cd->res_lock, NULL);
	vol_init(&cd->vol, "cmddev", o->volid, (uint64_t)cd->slots * CMDDEV_SLOT_BYTES,
		 CMDDEV_BLOCK_BYTES, &cmddev_vol_ops, cd);
	current = cd;
	pthread_mutex_unlock(&current_lock);
	*out = cd;
	return 0;
fail:
	free(cd);
	pthread_mutex_unlock(&current_lock);
	return err;
}

void cmddev_close(struct cmddev *cd)
{
	pthread_mutex_lock(&current_lock);
	if (current == cd)
		current = NULL;
	pthread_mutex_unlock(&current_lock);
	vol_put(&cd->vol);
}

struct vol *cmddev_vol(struct cmddev *cd) { return &cd->vol; }
struct tables *cmddev_tables(struct cmddev *cd) { return cd->tables; }
const char *cmddev_device_name(struct cmddev *cd) { return tables_device_name(cd->tables); }
uint32_t cmddev_slots(struct cmddev *cd) { return cd->slots; }
int cmddev_has_key(struct cmddev *cd) { return cd->key_len > 0; }

void cmddev_key(struct cmddev *cd, const uint8_t **key, size_t *len)
{
	*key = cd->key_len ? cd->key : NULL;
	*len = cd->key_len;
}

double cmddev_uptime_s(struct cmddev *cd)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - cd->t0.tv_sec) + (double)(t.tv_nsec - cd->t0.tv_nsec) / 1e9;
}

struct cmddev *cmddev_current(void)
{
	struct cmddev *cd;

	pthread_mutex_lock(&current_lock);
	cd = current;
	pthread_mutex_unlock(&current_lock);
	return cd;
}

/* ---- authentication ---- */

struct seq_arg {
	const char *host;
	uint64_t seq;
	uint64_t last;
};

static int seq_update(struct tbl_recs *r, void *p)
{
	struct seq_arg *a = p;
	int i = tbl_find(r, "auth", "host", a->host);
	char buf[32];

	a->last = 0;
	if (i >= 0 && tbl_get(r->line[i], "seq", buf, sizeof(buf)))
		a->last = strtoull(buf, NULL, 10);
	if (a->seq <= a->last)
		return -EALREADY;
	if (i >= 0)
		tbl_del(r, i);
	return tbl_add(r, "auth host=%s seq=%" PRIu64, a->host, a->seq);
}

/* 0 to go on, or a CB_* status with the result set. */
static int authenticate(struct cmddev *cd, const struct cmdblock *cb, const void *line,
			struct cb_result *res)
{
	struct seq_arg a = { .host = cb->host, .seq = cb->seq };
	int err;

	if (!cd->key_len)
		return 0;
	err = cb_verify(cb, line, cd->key, cd->key_len);
	if (err == -ENOKEY) {
		res_status(res, CB_AUTH_REQUIRED, "this device requires signed command blocks "
			   "(host= seq= mac=)");
		return CB_AUTH_REQUIRED;
	}
	if (err) {
		res_status(res, CB_AUTH_REQUIRED, "the block's MAC does not match (wrong key, or the "
			   "block was altered)");
		return CB_AUTH_REQUIRED;
	}
	if (!cb->host[0] || !cb->seq) {
		res_status(res, CB_AUTH_REQUIRED, "signed blocks need host= and seq=");
		return CB_AUTH_REQUIRED;
	}
	err = tables_update(cd->tables, seq_update, &a);
	if (err == -EALREADY) {
		res_status(res, CB_REPLAY, "replayed or stale block: seq %" PRIu64 " from host %s is not "
			   "above the last accepted %" PRIu64, cb->seq, cb->host, a.last);
		return CB_REPLAY;
	}
	if (err) {
		res_status(res, CB_FAILED, "cannot record the sequence number: %s", strerror(-err));
		return CB_FAILED;
	}
	return 0;
}

/* ---- execution ---- */

static int params_ok(const struct command *c, const struct cmdblock *cb, struct cb_result *res)
{
	const char *spec = c->params;
	char name[CB_KEY_MAX + 3];

	/* required ones */
	for (const char *p = spec; *p;) {
		size_t n = strcspn(p, " ");

		if (p[0] != '[') {
			snprintf(name, sizeof(name), "%.*s", (int)n, p);
			if (!cb_get(cb, name)) {
				res_status(res, CB_INVALID, "%s needs %s=", c->name, name);
				return 0;
			}
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	/* nothing unknown */
	for (int i = 0; i < cb->nparams; i++) {
		char want[CB_KEY_MAX + 4];
		const char *hit;
		size_t kl = strlen(cb->p[i].key);

		snprintf(want, sizeof(want), "%s", cb->p[i].key);
		hit = spec;
		while ((hit = strstr(hit, want))) {
			int start_ok = hit == spec || hit[-1] == ' ' || hit[-1] == '[';
			int end_ok = hit[kl] == '\0' || hit[kl] == ' ' || hit[kl] == ']';

			if (start_ok && end_ok)
				break;
			hit += kl;
		}
		if (!hit) {
			res_status(res, CB_INVALID, "%s does not take %s= (it takes: %s)", c->name,
				   cb->p[i].key, spec[0] ? spec : "nothing");
			return 0;
		}
	}
	return 1;
}

/* Find " tag=T" in a block that did not parse, T valid as a tag. */
static void tag_scan(const void *blk, size_t len, char tag[CB_TAG_MAX + 1])
{
	const char *s = blk;
	size_t n = len < CB_MAX_BYTES ? len : CB_MAX_BYTES;

	for (size_t i = 0; i + 5 < n && s[i] && s[i] != '\n'; i++) {
		size_t k = 0;

		if (memcmp(s + i, " tag=", 5))
			continue;
		while (i + 5 + k < n && k < CB_TAG_MAX &&
		       (isalnum((unsigned char)s[i + 5 + k]) || s[i + 5 + k] == '_' ||
			s[i + 5 + k] == '.' || s[i + 5 + k] == '-'))
			k++;
		if (k && (i + 5 + k == n || s[i + 5 + k] == ' ' || s[i + 5 + k] == '\n' ||
			  s[i + 5 + k] == '\r' || s[i + 5 + k] == '\0')) {
			memcpy(tag, s + i + 5, k);
			tag[k] = '\0';
		}
		return;
	}
}

static void run_block(struct cmddev *cd, uint64_t nexus, const void *blk, size_t len,
		      struct cmdblock *cb, struct cb_result *res, int *parsed)
{
	char why[256];
	const struct command *c;
	int st;

	*parsed = cb_parse(blk, len, cb, why, sizeof(why));
	if (*parsed == -ENODATA)
		return;
	if (*parsed > 0 && !cb->tag[0])
		tag_scan(blk, len, cb->tag);   /* best effort: let the host match the error */
	res_init(res, cb->tag);
	if (*parsed > 0) {
		res_status(res, *parsed, "%s", why);
		return;
	}
	if (authenticate(cd, cb, blk, res))
		return;
	c = command_find(cb->command);
	if (!c) {
		res_status(res, CB_UNKNOWN_COMMAND, "unknown command '%s' (TDM1 help lists them)",
			   cb->command);
		return;
	}
	if (!params_ok(c, cb, res))
		return;
	{
		struct exec_ctx x = { .cd = cd, .tables = cd->tables, .cb = cb, .res = res,
				      .nexus = nexus };

		st = c->run(&x);
		if (res->status != st)
			res->status = st;
	}
}

static int execute(struct cmddev *cd, uint64_t nexus, const void *block, size_t len,
		   char **result, size_t *result_len, uint64_t *ticket)
{
	struct cmdblock cb;
	struct cb_result res;
	int parsed;
	long n;

	*result = NULL;
	*result_len = 0;
	pthread_mutex_lock(&cd->exec_lock);
	*ticket = ++cd->exec_ticket;
	run_block(cd, nexus, block, len, &cb, &res, &parsed);
	pthread_mutex_unlock(&cd->exec_lock);
	if (parsed == -ENODATA)
		return -ENODATA;
	if (res.status != CB_OK && res.status != CB_RUNNING)
		tlog(TLOG_WARN, "command device: host nexus %" PRIu64 " tag %s: %.40s -> %s: %s", nexus,
		     cb.tag[0] ? cb.tag : "-", cb.command[0] ? cb.command : "(unparsed)",
		     cb_status_name(res.status), res.msg);
	if (res.oom)
		res_status(&res, CB_FAILED, "out of memory building the result");
	/* edit=0: a successful result is not kept (the seed's "no edited data") */
	if (!(cb.edit == 0 && parsed == 0 && (res.status == CB_OK || res.status == CB_RUNNING))) {
		n = res_render(&res, result);
		if (n < 0) {
			res_free(&res);
			return (int)n;
		}
		if ((uint64_t)n > CMDDEV_SLOT_BYTES) {
			/* Too long for a slot: say so instead. */
			free(*result);
			res_free(&res);
			res_init(&res, cb.tag);
			res_status(&res, CB_FAILED, "result of %ld bytes does not fit a %u-byte slot", n,
				   CMDDEV_SLOT_BYTES);
			n = res_render(&res, result);
			if (n < 0)
				return (int)n;
		}
		*result_len = (size_t)n;
	}
	res_free(&res);
	return 0;
}

int cmddev_execute(struct cmddev *cd, uint64_t nexus, const void *block, size_t len,
		   char **result, size_t *result_len)
{
	uint64_t ticket;

	return execute(cd, nexus, block, len, result, result_len, &ticket);
}

/* Find the result of (slot, nexus); res_lock held. */
static struct result_entry *res_find(struct cmddev *cd, uint32_t slot, uint64_t nexus)
{
	for (int i = 0; i < CMDDEV_MAX_RESULTS; i++)
		if (cd->res[i].used && cd->res[i].slot == slot && cd->res[i].nexus == nexus)
			return &cd->res[i];
	return NULL;
}

static void res_drop(struct result_entry *e)
{
	free(e->text);
	memset(e, 0, sizeof(*e));
}

/* Entries in use. res_lock held. */
static int res_count(struct cmddev *cd)
{
	int n = 0;

	for (int i = 0; i < CMDDEV_MAX_RESULTS; i++)
		n += cd->res[i].used;
	return n;
}

/* Drop results unread for longer than the TTL; res_lock held. */
static void res_expire(struct cmddev *cd)
{
	time_t now = time(NULL);

	for (int i = 0; i < CMDDEV_MAX_RESULTS; i++) {
		if (cd->res[i].used && now - cd->res[i].created > CMDDEV_RESULT_TTL_S) {
			tlog(TLOG_INFO, "command device: dropping the unread result of nexus %" PRIu64
			     " in slot %u (older than %d s)", cd->res[i].nexus, cd->res[i].slot,
			     CMDDEV_RESULT_TTL_S);
			res_drop(&cd->res[i]);
		}
	}
}

/* Keep `text` as the result of (slot, nexus) unless a command executed later already left one
 * there: the result of the command that ran last wins. A reservation is held. res_lock held. */
static void res_store(struct cmddev *cd, uint32_t slot, uint64_t nexus, char *text, size_t len,
		      uint64_t ticket)
{
	struct result_entry *e = res_find(cd, slot, nexus);

	if (e && e->ticket > ticket) {
		free(text);
		return;
	}
	if (e) {
		free(e->text);
	} else {
		for (int i = 0; i < CMDDEV_MAX_RESULTS && !e; i++)
			if (!cd->res[i].used)
				e = &cd->res[i];
		if (!e) {          /* cannot happen: the reservation guaranteed room */
			free(text);
			return;
		}
	}
	e->used = 1;
	e->slot = slot;
	e->nexus = nexus;
	e->text = text;
	e->len = len;
	e->created = time(NULL);
	e->ticket = ticket;
}

int cmddev_write(struct cmddev *cd, uint64_t nexus, uint64_t off, const void *buf, uint64_t len)
{
	const uint8_t *p = buf;

	while (len) {
		uint32_t slot = (uint32_t)(off / CMDDEV_SLOT_BYTES);
		uint64_t in_slot = off % CMDDEV_SLOT_BYTES;
		uint64_t n = CMDDEV_SLOT_BYTES - in_slot;

		if (n > len)
			n = len;
		if (in_slot == 0) {
			struct result_entry *e;
			char *text;
			size_t tlen;
			uint64_t ticket;
			int err;

			/* Data that is not a command block (zeros, a partition table) touches nothing. */
			if (n < 3 || memcmp(p, "TDM", 3)) {
				tlog(TLOG_DEBUG, "command device: slot %u: not a command block, ignored", slot);
				goto next;
			}
			/* Admit the command only with room for its result; a new command replaces this
			 * host's unread result in the slot. */
			pthread_mutex_lock(&cd->res_lock);
			if ((e = res_find(cd, slot, nexus)))
				res_drop(e);
			if (res_count(cd) + cd->reserved >= CMDDEV_MAX_RESULTS)
				res_expire(cd);
			if (res_count(cd) + cd->reserved >= CMDDEV_MAX_RESULTS) {
				pthread_mutex_unlock(&cd->res_lock);
				tlog(TLOG_WARN, "command device: %d unread results: answering BUSY to nexus %"
				     PRIu64, CMDDEV_MAX_RESULTS, nexus);
				return -EBUSY;
			}
			cd->reserved++;
			pthread_mutex_unlock(&cd->res_lock);
			err = execute(cd, nexus, p, (size_t)(n < CB_MAX_BYTES + 1 ? n : CB_MAX_BYTES + 1),
				      &text, &tlen, &ticket);
			pthread_mutex_lock(&cd->res_lock);
			cd->reserved--;
			if (err == 0 && text) {
				res_store(cd, slot, nexus, text, tlen, ticket);
			} else if (err == 0) {
				/* edit=0 done: the command area is cleared, unless a later command's
				 * result is already there */
				e = res_find(cd, slot, nexus);
				if (e && e->ticket < ticket)
					res_drop(e);
			}
			pthread_mutex_unlock(&cd->res_lock);
			if (err && err != -ENODATA)
				return err;
		}
next:
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int cmddev_read(struct cmddev *cd, uint64_t nexus, uint64_t off, void *buf, uint64_t len)
{
	uint8_t *p = buf;

	memset(buf, 0, len);
	pthread_mutex_lock(&cd->res_lock);
	while (len) {
		uint32_t slot = (uint32_t)(off / CMDDEV_SLOT_BYTES);
		uint64_t in_slot = off % CMDDEV_SLOT_BYTES;
		uint64_t n = CMDDEV_SLOT_BYTES - in_slot;
		struct result_entry *e;

		if (n > len)
			n = len;
		e = res_find(cd, slot, nexus);
		if (e && in_slot < e->len) {
			uint64_t c = e->len - in_slot < n ? e->len - in_slot : n;
			uint64_t last_block = (e->len - 1) / CMDDEV_BLOCK_BYTES * CMDDEV_BLOCK_BYTES;

			memcpy(p, e->text + in_slot, c);
			/* The host has read the block holding the end: the result is consumed. */
			if (in_slot + n > last_block)
				res_drop(e);
		}
		p += n;
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&cd->res_lock);
	return 0;
}

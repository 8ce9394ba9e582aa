/* tandemctl: the administrator's CLI. Online commands go to a command device (a Linux block
 * device path, as dd uses it, or an iscsi:// URL); offline ones work on RAID member files.
 * docs/tandemctl.md is the manual. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmdvol/client.h"
#include "cmdvol/cmdblock.h"
#include "cmdvol/cmddev.h"

enum { EX_OK = 0, EX_FAILED = 1, EX_USAGE = 2, EX_UNREACHABLE = 3, EX_PROTOCOL = 4 };

int tandemctl_offline(int argc, char **argv);

struct g {
	const char *device;
	const char *via;
	const char *key_file;
	const char *host;
	const char *initiator;
	int slot;
	int json;
	int timeout_s;
	int wait;
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: tandemctl [options] COMMAND [ARGS]\n"
"\n"
"Online commands (sent to a command device):\n"
"  info                        device identity and state\n"
"  vol list                    every volume\n"
"  vol status VOLID            one volume\n"
"  cmddev show                 the command-device table\n"
"  cmddev add DEVICE LUN [VOLID]   add an entry (DEVICE's command device is LUN here)\n"
"  cmddev remove DEVICE        remove an entry\n"
"  raid status VOLID           RAID geometry, members, counters\n"
"  raid verify VOLID [--wait]  check every stripe's parity in the background\n"
"  raid scrub VOLID [--repair] [--wait]   the same; --repair rewrites wrong parity\n"
"  raid rebuild VOLID MEMBER PATH [--wait]   rebuild failed member MEMBER onto PATH\n"
"  op status ID [--wait]       progress of a long operation\n"
"  op list                     every operation since the device started\n"
"  lunmap show                 virtual volumes, their peers and the peers' state\n"
"  pair status [ID]            replication pairs: journal pointers, copy progress, lag\n"
"  pair sync ID --aux DEVICE [--loop SECONDS] [--count N] [--wait-s S]\n"
"                              the host-driven loop (seed 004 Fig. 16): status (primary, -d) ->\n"
"                              acquire (aux) -> status -> restore -> status -> purge (primary)\n"
"  commands                    the commands the device knows (protocol 'help')\n"
"  call COMMAND [KEY=VALUE]... send any protocol command, print its result\n"
"  encode COMMAND [KEY=VALUE]...  write the 512-byte block to stdout, for dd\n"
"\n"
"Offline commands (on RAID member files or block devices, not in use):\n"
"  raid create | raid examine | raid check   ('tandemctl raid create --help')\n"
"\n"
"Options:\n"
"  -d, --device PATH|URL   the command device: /dev/sdX, or iscsi://HOST:PORT/IQN/LUN\n"
"                          (default: $TANDEM_DEVICE)\n"
"  -V, --via NAME          talk to device NAME through DEVICE: look NAME up in DEVICE's\n"
"                          command-device table and use that LUN (a vvol to NAME's command\n"
"                          device); DEVICE must be an iscsi:// URL or /dev/disk/by-path/...-lun-N\n"
"  -s, --slot N            command slot (default: 1 + process id modulo 15)\n"
"  -k, --key-file FILE     sign blocks with this key (default: $TANDEM_KEY_FILE)\n"
"      --host NAME         host name in signed blocks (default: hostname)\n"
"  -j, --json              machine-readable output\n"
"  -i, --initiator IQN     iSCSI initiator name for iscsi:// (default iqn.2026-11.org.tandem:ctl)\n"
"  -t, --timeout SEC       iSCSI command timeout (default 30)\n"
"  -w, --wait              with 'raid verify' and 'op status': follow the operation to its end\n"
"  -h, --help              this text; 'tandemctl COMMAND --help' for one command\n"
"\n"
"Exit codes: 0 done (or a long operation started), 1 the device refused or the command\n"
"failed (its status and message are printed), 2 bad usage, 3 the device cannot be reached,\n"
"4 no valid result came back.\n");
}

/* Per-command help: the words, what they send, and what comes back. */
static const struct {
	const char *words, *usage, *text;
} helps[] = {
	{ "info", "tandemctl [-d DEV] info", "Device name, uuid, version, uptime, number of volumes, "
	  "slots, authentication, tables generation (protocol command 1)." },
	{ "vol list", "tandemctl [-d DEV] vol list", "Every volume: volid, type, size, block size, "
	  "state (raid: optimal/degraded/rebuilding/failed), layout (command 2)." },
	{ "vol status", "tandemctl [-d DEV] vol status VOLID", "One volume with its I/O counters "
	  "(command 3)." },
	{ "cmddev show", "tandemctl [-d DEV] cmddev show", "The command-device table: which LUN of "
	  "this device reaches which device's command device (command 4)." },
	{ "cmddev add", "tandemctl [-d DEV] cmddev add DEVICE LUN [VOLID]", "Record that DEVICE's "
	  "command device is LUN here (usually a vvol kind=cmddev) (command 5)." },
	{ "cmddev remove", "tandemctl [-d DEV] cmddev remove DEVICE", "Drop that entry (command 6)." },
	{ "raid status", "tandemctl [-d DEV] raid status VOLID", "Geometry, state, every member's state "
	  "and path, bitmap, counters (command 7)." },
	{ "raid verify", "tandemctl [-d DEV] raid verify VOLID [--wait]", "Check every stripe's parity "
	  "in the background; --wait follows it with a progress bar (command 8)." },
	{ "raid scrub", "tandemctl [-d DEV] raid scrub VOLID [--repair] [--wait]", "As verify; --repair "
	  "rewrites wrong parity from the data (command 8, repair=1)." },
	{ "raid rebuild", "tandemctl [-d DEV] raid rebuild VOLID MEMBER PATH [--wait]", "Rebuild failed "
	  "member MEMBER onto PATH (a file or block device of at least the members' size) while hosts "
	  "keep working; then name PATH in the LU's member list (command 12)." },
	{ "op status", "tandemctl [-d DEV] op status ID [--wait]", "Progress of a long operation: "
	  "percent, rate, ETA, result (command 9)." },
	{ "op list", "tandemctl [-d DEV] op list", "Every operation since the device started "
	  "(command 10)." },
	{ "lunmap show", "tandemctl [-d DEV] lunmap show", "Virtual volumes, their peers and the "
	  "peers' state (command 13)." },
	{ "commands", "tandemctl [-d DEV] commands", "What the device understands (command 11)." },
	{ "call", "tandemctl [-d DEV] call COMMAND [KEY=VALUE]...", "Send any protocol command, e.g. "
	  "call mirror-create primary=1 secondary=2 (docs/command-device.md lists them)." },
	{ "encode", "tandemctl [-k KEY] encode COMMAND [KEY=VALUE]...", "Write the 512-byte command "
	  "block to stdout for dd: tandemctl encode vol-list | dd of=/dev/sdX bs=512 seek=512 "
	  "oflag=direct (slot 1), then dd if=/dev/sdX bs=512 skip=512 count=8 iflag=direct." },
	{ NULL, NULL, NULL },
};

static int command_help(int argc, char **argv)
{
	for (int i = 0; helps[i].words; i++) {
		char w[64];

		snprintf(w, sizeof(w), "%s%s%s", argv[0], argc > 1 && strchr(helps[i].words, ' ') ?
			 " " : "", argc > 1 && strchr(helps[i].words, ' ') ? argv[1] : "");
		if (!strcmp(w, helps[i].words)) {
			printf("usage: %s\n  %s\nOptions and exit codes: tandemctl --help.\n",
			       helps[i].usage, helps[i].text);
			return 1;
		}
	}
	return 0;
}

/* ---- output ---- */

static int looks_number(const char *v)
{
	const char *p = v;
	int digits = 0, dot = 0;

	if (*p == '-')
		p++;
	if (p[0] == '0' && isdigit((unsigned char)p[1]))
		return 0;
	for (; *p; p++) {
		if (isdigit((unsigned char)*p))
			digits++;
		else if (*p == '.' && !dot)
			dot = 1;
		else
			return 0;
	}
	return digits > 0 && digits < 19;
}

/* Keys whose values are names or text even when they look like numbers. */
static int is_text_key(const char *k)
{
	static const char *const text[] = { "name", "device", "tag", "path", "url", "uuid",
		"array_uuid", "host", "subject", "result", "msg", "layout", "last_error", NULL };

	for (int i = 0; text[i]; i++)
		if (!strcmp(k, text[i]))
			return 1;
	return 0;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* Split "type k=v k=v" into type and pairs (decoded values). */
struct rec {
	char type[32];
	int n;
	char key[40][32];
	char val[40][600];
};

static void rec_parse(const char *line, struct rec *r)
{
	const char *p = line;
	size_t n = strcspn(p, " ");

	memset(r, 0, sizeof(*r));
	snprintf(r->type, sizeof(r->type), "%.*s", (int)(n < 31 ? n : 31), p);
	p += n;
	while (*p == ' ' && r->n < 40) {
		const char *kv = ++p, *eq;
		size_t len = strcspn(kv, " ");
		char raw[600];

		eq = memchr(kv, '=', len);
		p += len;
		if (!eq)
			continue;
		snprintf(r->key[r->n], sizeof(r->key[0]), "%.*s", (int)(eq - kv < 31 ? eq - kv : 31), kv);
		snprintf(raw, sizeof(raw), "%.*s", (int)(kv + len - eq - 1), eq + 1);
		cb_pct_decode(raw, r->val[r->n], sizeof(r->val[0]));
		r->n++;
	}
}

static const char *rec_val(const struct rec *r, const char *key)
{
	for (int k = 0; k < r->n; k++)
		if (!strcmp(r->key[k], key))
			return r->val[k];
	return "-";
}

static void print_json(const struct cb_reply *rp)
{
	struct rec r;

	printf("{\"status\":%d,\"name\":", rp->status);
	json_str(rp->name);
	printf(",\"tag\":");
	json_str(rp->tag);
	printf(",\"msg\":");
	json_str(rp->msg);
	printf(",\"records\":[");
	for (int i = 0; i < rp->nlines; i++) {
		rec_parse(rp->lines[i], &r);
		printf("%s{\"record\":", i ? "," : "");
		json_str(r.type);
		for (int k = 0; k < r.n; k++) {
			putchar(',');
			json_str(r.key[k]);
			putchar(':');
			if (looks_number(r.val[k]) && !is_text_key(r.key[k]))
				fputs(r.val[k], stdout);
			else
				json_str(r.val[k]);
		}
		putchar('}');
	}
	printf("]}\n");
}

/* For people: the message, then per record type a table (or key: value for a single record). */
static void print_human(const struct cb_reply *rp)
{
	struct rec *all = calloc((size_t)rp->nlines + 1, sizeof(struct rec));
	int *done = calloc((size_t)rp->nlines + 1, sizeof(int));

	if (rp->status != CB_OK && rp->status != CB_RUNNING)
		fprintf(stderr, "tandemctl: %s: %s\n", rp->name, rp->msg);
	else
		printf("%s\n", rp->msg);
	if (!all || !done) {
		free(all);
		free(done);
		return;
	}
	for (int i = 0; i < rp->nlines; i++)
		rec_parse(rp->lines[i], &all[i]);
	for (int i = 0; i < rp->nlines; i++) {
		int same = 0, w[40] = { 0 };

		if (done[i])
			continue;
		for (int j = i; j < rp->nlines; j++)
			same += !strcmp(all[j].type, all[i].type);
		if (same == 1) {
			printf("%s:\n", all[i].type);
			for (int k = 0; k < all[i].n; k++)
				printf("  %-20s %s\n", all[i].key[k], all[i].val[k]);
			done[i] = 1;
			continue;
		}
		/* columns: the union of the keys of this record type, in order of appearance */
		char cols[40][32];
		int nc = 0;

		for (int j = i; j < rp->nlines; j++) {
			if (strcmp(all[j].type, all[i].type))
				continue;
			for (int k = 0; k < all[j].n; k++) {
				int c;

				for (c = 0; c < nc && strcmp(cols[c], all[j].key[k]); c++)
					;
				if (c == nc && nc < 40)
					snprintf(cols[nc++], sizeof(cols[0]), "%s", all[j].key[k]);
			}
		}
		for (int c = 0; c < nc; c++)
			w[c] = (int)strlen(cols[c]);
		for (int j = i; j < rp->nlines; j++) {
			if (strcmp(all[j].type, all[i].type))
				continue;
			for (int c = 0; c < nc; c++) {
				const char *v = rec_val(&all[j], cols[c]);

				if ((int)strlen(v) > w[c])
					w[c] = (int)strlen(v);
			}
		}
		for (int c = 0; c < nc; c++)
			printf("%-*s%s", w[c], cols[c], c + 1 < nc ? "  " : "\n");
		for (int j = i; j < rp->nlines; j++) {
			if (strcmp(all[j].type, all[i].type))
				continue;
			for (int c = 0; c < nc; c++)
				printf("%-*s%s", w[c], rec_val(&all[j], cols[c]), c + 1 < nc ? "  " : "\n");
			done[j] = 1;
		}
	}
	free(all);
	free(done);
}

/* ---- sending ---- */

struct session {
	struct cd_client c;
	uint8_t key[256];
	int open;
};

static int session_open(struct g *g, struct session *s);
static void session_close(struct session *s);

/* --via: the command-device table of g->device names the LUN of NAME's command device. */
static int resolve_via(struct g *g, char *out, size_t out_len)
{
	struct g g0 = *g;
	struct session s;
	struct cb_reply r;
	char why[512], dev[80], lun[32];
	const char *slash;
	int rc, found = 0;

	g0.via = NULL;
	if ((rc = session_open(&g0, &s)))
		return rc;
	rc = cd_call(&s.c, "cmddev-show", NULL, 0, &r, why, sizeof(why));
	session_close(&s);
	if (rc) {
		fprintf(stderr, "tandemctl: --via: %s\n", why);
		return rc == -EPROTO ? EX_PROTOCOL : EX_UNREACHABLE;
	}
	for (int i = 0; i < r.nlines && !found; i++)
		if (cb_rec_get(r.lines[i], "device", dev, sizeof(dev)) && !strcmp(dev, g->via) &&
		    cb_rec_get(r.lines[i], "lun", lun, sizeof(lun)))
			found = 1;
	cb_reply_free(&r);
	if (!found) {
		fprintf(stderr, "tandemctl: --via %s: %s's command-device table has no entry for %s "
			"(tandemctl -d %s cmddev show)\n", g->via, g->device, g->via, g->device);
		return EX_FAILED;
	}
	if (!strncmp(g->device, "iscsi://", 8) && (slash = strrchr(g->device, '/'))) {
		snprintf(out, out_len, "%.*s/%s", (int)(slash - g->device), g->device, lun);
	} else if ((slash = strstr(g->device, "-lun-"))) {
		snprintf(out, out_len, "%.*s-lun-%s", (int)(slash - g->device), g->device, lun);
	} else {
		fprintf(stderr, "tandemctl: --via needs -d as an iscsi:// URL or a "
			"/dev/disk/by-path/...-lun-N path, to address LUN %s of the same target\n", lun);
		return EX_USAGE;
	}
	return EX_OK;
}

static int session_open(struct g *g, struct session *s)
{
	char why[512], via_dev[600];
	int err;

	if (g->via) {
		struct g g1 = *g;

		if ((err = resolve_via(g, via_dev, sizeof(via_dev))))
			return err;
		g1.device = via_dev;
		g1.via = NULL;
		return session_open(&g1, s);
	}

	memset(s, 0, sizeof(*s));
	if (!g->device) {
		fprintf(stderr, "tandemctl: no command device: give -d /dev/sdX or -d iscsi://... "
			"(or set TANDEM_DEVICE)\n");
		return EX_USAGE;
	}
	if (g->key_file) {
		if (cd_load_key("key file", g->key_file, s->key, sizeof(s->key), &s->c.key_len, why, sizeof(why))) {
			fprintf(stderr, "tandemctl: %s\n", why);
			return EX_USAGE;
		}
		s->c.key = s->key;
	}
	if (g->host)
		snprintf(s->c.host, sizeof(s->c.host), "%s", g->host);
	else if (gethostname(s->c.host, sizeof(s->c.host)) || !s->c.host[0])
		snprintf(s->c.host, sizeof(s->c.host), "host");
	for (char *p = s->c.host; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_.:/@+,;%=-", *p))
			*p = '_';
	err = cdt_open(g->device, g->initiator, g->timeout_s, &s->c.t, why, sizeof(why));
	if (err) {
		fprintf(stderr, "tandemctl: %s\n", why);
		return EX_UNREACHABLE;
	}
	/* default: a slot other than 0 by process id (slot 0 = LBA 0 is where partition scanners
	 * and udev's blkid read, and such a read by this host would consume our result) */
	if (g->slot >= 0) {
		s->c.slot = (uint32_t)g->slot;
	} else {
		uint64_t nslots = cdt_size_bytes(s->c.t) / CMDDEV_SLOT_BYTES;

		s->c.slot = nslots > 1 ? 1 + (uint32_t)((uint64_t)getpid() % (nslots - 1)) : 0;
	}
	if ((uint64_t)(s->c.slot + 1) * CMDDEV_SLOT_BYTES > cdt_size_bytes(s->c.t)) {
		fprintf(stderr, "tandemctl: slot %u is beyond the command device (%" PRIu64 " bytes)\n",
			s->c.slot, cdt_size_bytes(s->c.t));
		cdt_close(s->c.t);
		return EX_USAGE;
	}
	s->open = 1;
	return EX_OK;
}

static void session_close(struct session *s)
{
	if (s->open)
		cdt_close(s->c.t);
	s->open = 0;
}

/* Send and print; returns an exit code. `reply` (may be NULL) keeps the parsed result. */
static int send_cmd(struct g *g, struct session *s, const char *cmd, const char *const *params,
		    int n, struct cb_reply *keep, int quiet)
{
	struct cb_reply r;
	char why[512];
	int err, tries = 0;

	/* a BUSY command device (too many unread results) asks the host to retry */
	while ((err = cd_call(&s->c, cmd, params, n, &r, why, sizeof(why))) == -EBUSY && tries < 30)
		usleep(100000u * (unsigned)(tries < 10 ? ++tries : tries++ / 2 + 5));
	if (err == -EBUSY) {
		fprintf(stderr, "tandemctl: %s (retried for %d s)\n", why, 10);
		return EX_FAILED;
	}
	if (err) {
		fprintf(stderr, "tandemctl: %s\n", why);
		return err == -EPROTO ? EX_PROTOCOL : err == -EINVAL ? EX_USAGE : EX_UNREACHABLE;
	}
	if (!quiet) {
		if (g->json)
			print_json(&r);
		else
			print_human(&r);
	}
	err = r.status == CB_OK || r.status == CB_RUNNING ? EX_OK : EX_FAILED;
	if (keep)
		*keep = r;
	else
		cb_reply_free(&r);
	return err;
}

/* Follow an operation until it ends, with a progress bar on a terminal. */
static int follow_op(struct g *g, struct session *s, const char *id)
{
	char p[64], buf[600];
	const char *params[1] = { p };
	struct cb_reply r;
	int rc, tty = isatty(2) && !g->json;

	snprintf(p, sizeof(p), "op=%s", id);
	for (;;) {
		rc = send_cmd(g, s, "op-status", params, 1, &r, 1);
		if (rc != EX_OK)
			return rc;
		if (r.status != CB_RUNNING || r.nlines == 0)
			break;
		if (tty && cb_rec_get(r.lines[0], "percent", buf, sizeof(buf))) {
			double pct = atof(buf), rate = 0, eta = -1;
			int bars = (int)(pct / 2.5);

			if (cb_rec_get(r.lines[0], "rate_per_s", buf, sizeof(buf)))
				rate = atof(buf);
			if (cb_rec_get(r.lines[0], "eta_s", buf, sizeof(buf)))
				eta = atof(buf);
			fprintf(stderr, "\r[%-40.*s] %5.1f%%  %7.1f MB/s  ETA %4.0fs", bars,
				"########################################", pct, rate / 1e6,
				eta < 0 ? 0 : eta);
		}
		cb_reply_free(&r);
		usleep(300 * 1000); /* polling an external operation: the interval is the point */
	}
	if (tty)
		fprintf(stderr, "\r%70s\r", "");
	if (g->json)
		print_json(&r);
	else
		print_human(&r);
	rc = EX_OK;
	if (r.nlines && cb_rec_get(r.lines[0], "state", buf, sizeof(buf)) && strcmp(buf, "done"))
		rc = EX_FAILED;
	cb_reply_free(&r);
	return rc;
}

/* ---- pair sync: the host-driven loop of Fig. 16, with nothing but command blocks ---- */

static int pair_field(struct g *g, struct session *s, const char *id, const char *key,
		      uint64_t *out)
{
	char p0[64], buf[64];
	const char *params[1] = { p0 };
	struct cb_reply r;
	int rc;

	snprintf(p0, sizeof(p0), "id=%s", id);
	if ((rc = send_cmd(g, s, "pair-status", params, 1, &r, 1)) != EX_OK)
		return rc;
	rc = EX_PROTOCOL;
	if (r.nlines && cb_rec_get(r.lines[0], key, buf, sizeof(buf))) {
		*out = strtoull(buf, NULL, 10);
		rc = EX_OK;
	} else {
		fprintf(stderr, "tandemctl: pair %s: the status has no %s (%s)\n", id, key, r.msg);
	}
	cb_reply_free(&r);
	return rc;
}

static double mono_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Wait until the aux's `done` equals its `target` and reaches `want`. */
static int pair_wait(struct g *g, struct session *s, const char *id, const char *done,
		     const char *target, uint64_t want, double limit_s, uint64_t *got)
{
	double t0 = mono_s();
	uint64_t d, t;
	int rc;

	for (;;) {
		if ((rc = pair_field(g, s, id, done, &d)) || (rc = pair_field(g, s, id, target, &t)))
			return rc;
		if (d == t && d >= want) {
			*got = d;
			return EX_OK;
		}
		if (mono_s() - t0 > limit_s) {
			fprintf(stderr, "tandemctl: pair %s: %s is %" PRIu64 ", %s %" PRIu64 " after %.0f s "
				"(tandemctl pair status on the auxiliary device says why)\n", id, done, d,
				target, t, limit_s);
			return EX_FAILED;
		}
		usleep(20 * 1000);   /* polling the device: the interval is the point */
	}
}

static int cmd_pair_sync(struct g *g, int argc, char **argv)
{
	const char *id = NULL, *aux = NULL;
	double loop_s = -1, wait_s = 60;
	long count = -1, done = 0;
	struct session s1, s2;
	struct g g2 = *g;
	int rc;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--aux") && i + 1 < argc)
			aux = argv[++i];
		else if (!strcmp(argv[i], "--loop") && i + 1 < argc)
			loop_s = atof(argv[++i]);
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = atol(argv[++i]);
		else if (!strcmp(argv[i], "--wait-s") && i + 1 < argc)
			wait_s = atof(argv[++i]);
		else if (!id && looks_number(argv[i]))
			id = argv[i];
		else {
			fprintf(stderr, "tandemctl: pair sync: unexpected '%s'\n"
				"usage: tandemctl -d PRIMARY pair sync ID --aux AUX [--loop SECONDS] "
				"[--count N] [--wait-s S]\n", argv[i]);
			return EX_USAGE;
		}
	}
	if (!id || !aux) {
		fprintf(stderr, "usage: tandemctl -d PRIMARY pair sync ID --aux AUX [--loop SECONDS] "
			"[--count N] [--wait-s S]\n  PRIMARY, AUX: the two devices' command devices "
			"(/dev/sdX or iscsi://...)\n");
		return EX_USAGE;
	}
	if (count < 0)
		count = loop_s >= 0 ? 0 : 1;     /* 0: until interrupted */
	g2.device = aux;
	g2.via = NULL;
	if ((rc = session_open(g, &s1)))
		return rc;
	if ((rc = session_open(&g2, &s2))) {
		session_close(&s1);
		return rc;
	}
	while (count == 0 || done < count) {
		char pa[64], pb[64];
		const char *params[2] = { pa, pb };
		uint64_t jin, jout, rc_seq, rs_seq, jout2 = 0;
		double t0 = mono_s();

		/* S1601-S1603: the primary journal's state */
		if ((rc = pair_field(g, &s1, id, "journal_in", &jin)) ||
		    (rc = pair_field(g, &s1, id, "journal_out", &jout)))
			break;
		snprintf(pa, sizeof(pa), "id=%s", id);
		if (jin > jout) {
			/* S1604: acquire journal-out .. journal-in - 1; S1605-S1608: until done */
			snprintf(pb, sizeof(pb), "upto=%" PRIu64, jin - 1);
			if ((rc = send_cmd(g, &s2, "pair-acquire", params, 2, NULL, 1)) ||
			    (rc = pair_wait(g, &s2, id, "read_completed", "to_be_read", jin - 1, wait_s,
					    &rc_seq)))
				break;
			/* S1609: restore up to read-completed */
			snprintf(pb, sizeof(pb), "upto=%" PRIu64, rc_seq);
			if ((rc = send_cmd(g, &s2, "pair-restore", params, 2, NULL, 1)) ||
			    (rc = pair_wait(g, &s2, id, "restore_completed", "to_be_restored", rc_seq,
					    wait_s, &rs_seq)))
				break;
			/* S1610: purge up to read-completed, once the primary has the auxiliary
			 * device's confirmation of it (sent by that device after its journal write) */
			{
				double tc = mono_s();
				uint64_t conf = 0;

				while (!(rc = pair_field(g, &s1, id, "confirmed", &conf)) && conf < rc_seq &&
				       mono_s() - tc < wait_s)
					usleep(20 * 1000);   /* polling the device */
				if (rc)
					break;
			}
			snprintf(pb, sizeof(pb), "upto=%" PRIu64, rc_seq);
			if ((rc = send_cmd(g, &s1, "pair-purge", params, 2, NULL, 1)) ||
			    (rc = pair_field(g, &s1, id, "journal_out", &jout2)))
				break;
			printf("pair %s: acquired and restored %" PRIu64 " entries (%" PRIu64 "..%" PRIu64
			       "), purged to %" PRIu64 ", %.0f ms\n", id, rc_seq - jout + 1, jout, rc_seq,
			       jout2 - 1, (mono_s() - t0) * 1000);
		} else {
			printf("pair %s: nothing to do (journal-in %" PRIu64 ", journal-out %" PRIu64 ")\n",
			       id, jin, jout);
		}
		fflush(stdout);
		done++;
		if (loop_s < 0 || (count && done >= count))
			break;
		usleep((useconds_t)(loop_s * 1e6));   /* the loop's interval, as asked */
	}
	session_close(&s1);
	session_close(&s2);
	return rc;
}

static int need(int argc, int want, const char *what)
{
	if (argc < want) {
		fprintf(stderr, "tandemctl: %s\n", what);
		return 0;
	}
	return 1;
}

static int cmd_encode(struct g *g, int argc, char **argv)
{
	char line[CB_MAX_BYTES + 1], block[CB_MAX_BYTES + 512], why[256];
	uint8_t key[256];
	size_t key_len = 0, len;
	char host[CB_HOST_MAX + 1] = "host";
	struct timespec ts;
	int n;

	if (argc < 1) {
		fprintf(stderr, "usage: tandemctl encode COMMAND [KEY=VALUE]... | dd of=/dev/sdX "
			"bs=512 count=1 conv=sync oflag=direct\n");
		return EX_USAGE;
	}
	if (g->key_file && cd_load_key("key file", g->key_file, key, sizeof(key), &key_len, why, sizeof(why))) {
		fprintf(stderr, "tandemctl: %s\n", why);
		return EX_USAGE;
	}
	if (g->host)
		snprintf(host, sizeof(host), "%s", g->host);
	else
		gethostname(host, sizeof(host));
	clock_gettime(CLOCK_REALTIME, &ts);
	n = cb_encode(argv[0], (const char *const *)argv + 1, argc - 1, NULL, 1,
		      key_len ? key : NULL, key_len, host,
		      (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u, line, sizeof(line));
	if (n < 0) {
		fprintf(stderr, "tandemctl: cannot encode that command (names: a-z 0-9 _ -; "
			"values: no spaces; at most %d bytes)\n", CB_MAX_BYTES);
		return EX_USAGE;
	}
	len = ((size_t)n + 511) / 512 * 512;
	memset(block, 0, len);
	memcpy(block, line, (size_t)n);
	return fwrite(block, 1, len, stdout) == len ? EX_OK : EX_FAILED;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "device", required_argument, 0, 'd' }, { "slot", required_argument, 0, 's' },
		{ "via", required_argument, 0, 'V' },
		{ "key-file", required_argument, 0, 'k' }, { "host", required_argument, 0, 'H' },
		{ "json", no_argument, 0, 'j' }, { "initiator", required_argument, 0, 'i' },
		{ "timeout", required_argument, 0, 't' }, { "wait", no_argument, 0, 'w' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct g g = { .device = getenv("TANDEM_DEVICE"), .key_file = getenv("TANDEM_KEY_FILE"),
		       .initiator = "iqn.2026-11.org.tandem:ctl", .slot = -1, .timeout_s = 30 };
	struct session s;
	char p[4][300];
	const char *params[4] = { p[0], p[1], p[2], p[3] };
	const char *cmd;
	int c, rc, off;

	/* offline subcommands parse their own options */
	if (argc >= 3 && !strcmp(argv[1], "raid") &&
	    (!strcmp(argv[2], "create") || !strcmp(argv[2], "examine") || !strcmp(argv[2], "check")))
		return tandemctl_offline(argc, argv);
	while ((c = getopt_long(argc, argv, "+d:s:k:jwi:t:hV:", lo, NULL)) != -1) {
		switch (c) {
		case 'd': g.device = optarg; break;
		case 'V': g.via = optarg; break;
		case 's':
			g.slot = atoi(optarg);
			if (g.slot < 0 || g.slot >= (int)CMDDEV_MAX_SLOTS || !isdigit((unsigned char)*optarg)) {
				fprintf(stderr, "tandemctl: --slot %s: 0..%u\n", optarg, CMDDEV_MAX_SLOTS - 1);
				return EX_USAGE;
			}
			break;
		case 'k': g.key_file = optarg; break;
		case 'H': g.host = optarg; break;
		case 'j': g.json = 1; break;
		case 'w': g.wait = 1; break;
		case 'i': g.initiator = optarg; break;
		case 't': g.timeout_s = atoi(optarg); break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	argv += optind;
	argc -= optind;
	/* a trailing --wait / --json / --help after the command words */
	for (int i = 1; i < argc; i++) {
		int drop = 1;

		if (!strcmp(argv[i], "--wait") || !strcmp(argv[i], "-w"))
			g.wait = 1;
		else if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j"))
			g.json = 1;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			argv[i] = NULL;
			if (!command_help(i, argv))
				usage(stdout);
			return EX_OK;
		} else
			drop = 0;
		if (drop) {
			memmove(&argv[i], &argv[i + 1], sizeof(char *) * (size_t)(argc - i));
			argc--;
			i--;
		}
	}
	if (!strcmp(argv[0], "encode"))
		return cmd_encode(&g, argc - 1, argv + 1);
	if (!strcmp(argv[0], "help")) {
		usage(stdout);
		return EX_OK;
	}

	/* map the command words to a protocol command and its parameters */
	int n = 0, is_op = 0;

	cmd = NULL;
	off = 1;
#define W(i, s) (argc > (i) && !strcmp(argv[i], s))
	if (W(0, "info")) {
		cmd = "info";
	} else if (W(0, "vol") && W(1, "list")) {
		cmd = "vol-list";
	} else if (W(0, "vol") && W(1, "status")) {
		if (!need(argc, 3, "usage: tandemctl vol status VOLID"))
			return EX_USAGE;
		cmd = "vol-status";
		snprintf(p[n++], sizeof(p[0]), "volid=%s", argv[2]);
	} else if (W(0, "cmddev") && W(1, "show")) {
		cmd = "cmddev-show";
	} else if (W(0, "cmddev") && W(1, "add")) {
		if (!need(argc, 4, "usage: tandemctl cmddev add DEVICE LUN [VOLID]"))
			return EX_USAGE;
		cmd = "cmddev-add";
		snprintf(p[n++], sizeof(p[0]), "device=%s", argv[2]);
		snprintf(p[n++], sizeof(p[0]), "lun=%s", argv[3]);
		if (argc > 4)
			snprintf(p[n++], sizeof(p[0]), "volid=%s", argv[4]);
	} else if (W(0, "cmddev") && W(1, "remove")) {
		if (!need(argc, 3, "usage: tandemctl cmddev remove DEVICE"))
			return EX_USAGE;
		cmd = "cmddev-remove";
		snprintf(p[n++], sizeof(p[0]), "device=%s", argv[2]);
	} else if (W(0, "raid") && W(1, "status")) {
		if (!need(argc, 3, "usage: tandemctl raid status VOLID"))
			return EX_USAGE;
		cmd = "raid-status";
		snprintf(p[n++], sizeof(p[0]), "volid=%s", argv[2]);
	} else if (W(0, "raid") && (W(1, "verify") || W(1, "scrub"))) {
		if (!need(argc, 3, "usage: tandemctl raid verify|scrub VOLID [--repair] [--wait]"))
			return EX_USAGE;
		cmd = "raid-check";
		is_op = 1;
		snprintf(p[n++], sizeof(p[0]), "volid=%s", argv[2]);
		if (argc > 3 && !strcmp(argv[3], "--repair"))
			snprintf(p[n++], sizeof(p[0]), "repair=1");
	} else if (W(0, "raid") && W(1, "rebuild")) {
		if (!need(argc, 5, "usage: tandemctl raid rebuild VOLID MEMBER PATH [--wait]"))
			return EX_USAGE;
		cmd = "raid-rebuild";
		is_op = 1;
		snprintf(p[n++], sizeof(p[0]), "volid=%s", argv[2]);
		snprintf(p[n++], sizeof(p[0]), "member=%s", argv[3]);
		snprintf(p[n++], sizeof(p[0]), "path=%.290s", argv[4]);
	} else if (W(0, "op") && W(1, "status")) {
		if (!need(argc, 3, "usage: tandemctl op status ID [--wait]"))
			return EX_USAGE;
		if ((rc = session_open(&g, &s)))
			return rc;
		rc = g.wait ? follow_op(&g, &s, argv[2]) : ({
			snprintf(p[0], sizeof(p[0]), "op=%s", argv[2]);
			send_cmd(&g, &s, "op-status", params, 1, NULL, 0);
		});
		session_close(&s);
		return rc;
	} else if (W(0, "pair") && W(1, "status")) {
		cmd = "pair-status";
		if (argc > 2)
			snprintf(p[n++], sizeof(p[0]), "id=%s", argv[2]);
	} else if (W(0, "pair") && W(1, "sync")) {
		return cmd_pair_sync(&g, argc - 2, argv + 2);
	} else if (W(0, "lunmap") && W(1, "show")) {
		cmd = "lunmap-show";
	} else if (W(0, "op") && W(1, "list")) {
		cmd = "op-list";
	} else if (W(0, "commands")) {
		cmd = "help";
	} else if (W(0, "call")) {
		if (!need(argc, 2, "usage: tandemctl call COMMAND [KEY=VALUE]..."))
			return EX_USAGE;
		if ((rc = session_open(&g, &s)))
			return rc;
		rc = send_cmd(&g, &s, argv[1], (const char *const *)argv + 2, argc - 2, NULL, 0);
		session_close(&s);
		return rc;
	}
#undef W
	(void)off;
	if (!cmd) {
		fprintf(stderr, "tandemctl: unknown command '%s%s%s' (tandemctl --help)\n", argv[0],
			argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
		return EX_USAGE;
	}
	if ((rc = session_open(&g, &s)))
		return rc;
	if (is_op && g.wait) {
		struct cb_reply r;
		char id[32];

		rc = send_cmd(&g, &s, cmd, params, n, &r, 1);
		if (rc == EX_OK && r.nlines && cb_rec_get(r.lines[0], "id", id, sizeof(id))) {
			cb_reply_free(&r);
			rc = follow_op(&g, &s, id);
		} else if (rc != EX_PROTOCOL && rc != EX_UNREACHABLE) {
			print_human(&r);
			cb_reply_free(&r);
		}
	} else {
		rc = send_cmd(&g, &s, cmd, params, n, NULL, 0);
	}
	session_close(&s);
	return rc;
}

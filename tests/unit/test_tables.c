/* cmdvol/tables.h: the device tables in a command device's backing file. Create, reopen, updates
 * with their generation, every refusal (-EEXIST, -ENODATA, -EBUSY, -EPROTO, -ENOSPC), crash
 * safety (a damaged current copy falls back to the other; torn writes of the target copy at many
 * points in both directions give the old or the new state, never garbage), and the record
 * helpers. Files live in a mkdtemp directory under $TMPDIR (default /tmp), removed at the end.
 * TANDEM_TEST_LOG=1 shows the library's log. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmdvol/tables.h"
#include "tests/unit/unit.h"

#define WHY_LEN 512
#define COPY_OFF(i) ((off_t)TABLES_HEADER_BYTES + (off_t)(i) * TABLES_COPY_BYTES)

/* ---- a scratch directory ----------------------------------------------------------------- */

struct scratch {
	char dir[256];
	char path[300];
};

static void scratch_init(struct scratch *s)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(s->dir, sizeof(s->dir), "%s/tandem-tables-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/tables", s->dir);
}

static void scratch_done(struct scratch *s)
{
	char p[400];

	unlink(s->path);
	snprintf(p, sizeof(p), "%s/other", s->dir);
	unlink(p);
	rmdir(s->dir);
}

/* ---- record edits ------------------------------------------------------------------------ */

struct edit {
	const char *add[8];
	int nadd;
	const char *del_type, *del_key, *del_val;   /* delete the first match, if any */
	int fail;                                   /* return this (negative) instead */
};

static int apply_edit(struct tbl_recs *r, void *arg)
{
	struct edit *e = arg;
	int err;

	if (e->fail)
		return e->fail;
	if (e->del_type) {
		int i = tbl_find(r, e->del_type, e->del_key, e->del_val);

		if (i < 0)
			return -ENOENT;
		tbl_del(r, i);
	}
	for (int i = 0; i < e->nadd; i++)
		if ((err = tbl_add(r, "%s", e->add[i])))
			return err;
	return 0;
}

static int add_one(struct tables *t, const char *line)
{
	struct edit e = { .add = { line }, .nadd = 1 };

	return tables_update(t, apply_edit, &e);
}

/* Every record joined with '\n' (malloc'd): the whole state in one comparable string. */
struct snap {
	char *s;
	size_t len, cap;
};

static void snap_line(const char *line, void *arg)
{
	struct snap *sn = arg;
	size_t n = strlen(line);

	if (sn->len + n + 2 > sn->cap) {
		sn->cap = (sn->len + n + 2) * 2;
		sn->s = realloc(sn->s, sn->cap);
		ck_assert_ptr_nonnull(sn->s);
	}
	memcpy(sn->s + sn->len, line, n);
	sn->len += n;
	sn->s[sn->len++] = '\n';
	sn->s[sn->len] = '\0';
}

static char *snapshot(struct tables *t)
{
	struct snap sn = { .s = strdup(""), .cap = 1 };

	ck_assert_ptr_nonnull(sn.s);
	tables_each(t, NULL, snap_line, &sn);
	return sn.s;
}

static struct tables *open_ok(const char *path, int create, const char *name)
{
	struct tables *t = NULL;
	char why[WHY_LEN] = "";
	int err = tables_open(path, create, name, &t, why, sizeof(why));

	ck_assert_msg(err == 0, "tables_open(%s, create=%d): %d: %s", path, create, err, why);
	ck_assert_ptr_nonnull(t);
	return t;
}

static int open_err(const char *path, int create, char *why)
{
	struct tables *t = NULL;
	int err;

	why[0] = '\0';
	err = tables_open(path, create, "dev", &t, why, WHY_LEN);
	if (!err)
		tables_close(t);
	return err;
}

/* The records of a reopen, the tables closed again. */
static char *reopen_snapshot(const char *path, uint64_t *gen)
{
	struct tables *t = open_ok(path, 0, NULL);
	char *s = snapshot(t);

	if (gen)
		*gen = tables_generation(t);
	tables_close(t);
	return s;
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint8_t *b;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void write_range(const char *path, const uint8_t *src, off_t off, size_t len)
{
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, src, len, off), (ssize_t)len);
	close(fd);
}

/* ---- create, reopen, update -------------------------------------------------------------- */

START_TEST(test_create_and_reopen)
{
	struct scratch s;
	struct tables *t;
	char uuid[40], *snap;
	uint64_t gen;
	struct stat st;

	scratch_init(&s);
	t = open_ok(s.path, 1, "array-7");
	ck_assert_str_eq(tables_device_name(t), "array-7");
	ck_assert_uint_eq(tables_generation(t), 1);
	snprintf(uuid, sizeof(uuid), "%s", tables_device_uuid(t));
	ck_assert_uint_eq(strlen(uuid), 36);
	ck_assert(uuid[8] == '-' && uuid[13] == '-' && uuid[18] == '-' && uuid[23] == '-');
	ck_assert_int_eq(uuid[14], '4');                             /* random (v4) */
	snap = snapshot(t);
	ck_assert_str_eq(snap, "");
	free(snap);
	tables_close(t);
	ck_assert_int_eq(stat(s.path, &st), 0);
	ck_assert_int_eq(st.st_size, (off_t)TABLES_FILE_BYTES);
	ck_assert_int_eq(st.st_mode & 0777, 0600);

	t = open_ok(s.path, 0, NULL);
	ck_assert_str_eq(tables_device_name(t), "array-7");
	ck_assert_str_eq(tables_device_uuid(t), uuid);
	ck_assert_uint_eq(tables_generation(t), 1);
	tables_close(t);

	/* a name longer than the header's field is cut, not overflowed */
	unlink(s.path);
	t = open_ok(s.path, 1, "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn");
	ck_assert_uint_eq(strlen(tables_device_name(t)), TABLES_NAME_MAX);
	tables_close(t);
	snap = reopen_snapshot(s.path, &gen);
	ck_assert_uint_eq(gen, 1);
	free(snap);
	scratch_done(&s);
}
END_TEST

START_TEST(test_update_generations)
{
	struct scratch s;
	struct tables *t;
	char *a, *b;
	uint64_t gen;

	scratch_init(&s);
	t = open_ok(s.path, 1, "dev1");
	ck_assert_int_eq(add_one(t, "cmddev device=d1 lun=1 volid=10"), 0);
	ck_assert_uint_eq(tables_generation(t), 2);
	ck_assert_int_eq(add_one(t, "auth host=h1 seq=5"), 0);
	ck_assert_uint_eq(tables_generation(t), 3);
	a = snapshot(t);
	ck_assert_str_eq(a, "cmddev device=d1 lun=1 volid=10\nauth host=h1 seq=5\n");
	tables_close(t);
	b = reopen_snapshot(s.path, &gen);
	ck_assert_str_eq(b, a);
	ck_assert_uint_eq(gen, 3);
	free(a);
	free(b);

	for (int round = 0; round < 6; round++) {
		struct edit e = { .add = { "cmddev device=d2 lun=2 volid=11", "x y=1" }, .nadd = 2 };
		struct edit d = { .del_type = "cmddev", .del_key = "device", .del_val = "d2" };

		t = open_ok(s.path, 0, NULL);
		ck_assert_uint_eq(tables_generation(t), 3 + 2 * (uint64_t)round);
		ck_assert_int_eq(tables_update(t, apply_edit, &e), 0);
		a = snapshot(t);
		tables_close(t);
		b = reopen_snapshot(s.path, &gen);
		ck_assert_str_eq(b, a);
		ck_assert_uint_eq(gen, 4 + 2 * (uint64_t)round);
		ck_assert_ptr_nonnull(strstr(b, "device=d2"));
		free(a);
		free(b);

		t = open_ok(s.path, 0, NULL);
		ck_assert_int_eq(tables_update(t, apply_edit, &d), 0);
		/* a failing edit changes nothing */
		ck_assert_int_eq(tables_update(t, apply_edit, &d), -ENOENT);
		a = snapshot(t);
		ck_assert_ptr_null(strstr(a, "device=d2"));
		tables_close(t);
		b = reopen_snapshot(s.path, &gen);
		ck_assert_str_eq(b, a);
		ck_assert_uint_eq(gen, 5 + 2 * (uint64_t)round);
		free(a);
		free(b);
	}
	scratch_done(&s);
}
END_TEST

START_TEST(test_update_failures_keep_state)
{
	struct scratch s;
	struct tables *t;
	struct edit fail = { .fail = -EIO };
	char *before, *after, *big;
	uint64_t gen;

	scratch_init(&s);
	t = open_ok(s.path, 1, "dev1");
	ck_assert_int_eq(add_one(t, "auth host=a seq=1"), 0);
	before = snapshot(t);
	ck_assert_int_eq(tables_update(t, apply_edit, &fail), -EIO);
	ck_assert_uint_eq(tables_generation(t), 2);
	/* a record with a newline is refused by tbl_add */
	ck_assert_int_eq(add_one(t, "bad\nline"), -EINVAL);
	ck_assert_uint_eq(tables_generation(t), 2);
	/* more than a copy holds: -ENOSPC, the old tables stay current */
	big = malloc(TABLES_COPY_BYTES);
	ck_assert_ptr_nonnull(big);
	memset(big, 'z', TABLES_COPY_BYTES - 1);
	big[TABLES_COPY_BYTES - 1] = '\0';
	ck_assert_int_eq(add_one(t, big), -ENOSPC);
	ck_assert_uint_eq(tables_generation(t), 2);
	after = snapshot(t);
	ck_assert_str_eq(after, before);
	free(after);
	/* still usable */
	ck_assert_int_eq(add_one(t, "auth host=b seq=2"), 0);
	ck_assert_uint_eq(tables_generation(t), 3);
	tables_close(t);
	after = reopen_snapshot(s.path, &gen);
	ck_assert_str_eq(after, "auth host=a seq=1\nauth host=b seq=2\n");
	ck_assert_uint_eq(gen, 3);
	free(after);
	free(before);
	free(big);
	scratch_done(&s);
}
END_TEST

/* A copy nearly full (records up to the last byte) round-trips. */
START_TEST(test_update_full_copy)
{
	struct scratch s;
	struct tables *t;
	char *line, *snap;
	size_t n = TABLES_COPY_BYTES - 64 - 1;          /* the head, the '\n' */

	scratch_init(&s);
	t = open_ok(s.path, 1, "dev1");
	line = malloc(n + 1);
	ck_assert_ptr_nonnull(line);
	memset(line, 'q', n);
	line[n] = '\0';
	ck_assert_int_eq(add_one(t, line), 0);
	tables_close(t);
	snap = reopen_snapshot(s.path, NULL);
	ck_assert_uint_eq(strlen(snap), n + 1);
	free(snap);
	free(line);
	scratch_done(&s);
}
END_TEST

/* ---- refusals ---------------------------------------------------------------------------- */

START_TEST(test_refusals)
{
	struct scratch s;
	struct tables *t, *t2 = NULL;
	char why[WHY_LEN], other[400], *snap;
	int fd;

	scratch_init(&s);
	/* no file, no create */
	ck_assert_int_eq(open_err(s.path, 0, why), -ENOENT);
	ck_assert_ptr_nonnull(strstr(why, s.path));

	/* an empty file, a short one, a file of zeros of the full size */
	fd = open(s.path, O_CREAT | O_RDWR, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(open_err(s.path, 0, why), -ENODATA);
	ck_assert_msg(strstr(why, "no tandem device tables") != NULL, "why: %s", why);
	write_range(s.path, (const uint8_t *)"hello", 0, 5);
	ck_assert_int_eq(open_err(s.path, 0, why), -ENODATA);
	ck_assert_int_eq(truncate(s.path, TABLES_FILE_BYTES), 0);
	ck_assert_int_eq(open_err(s.path, 0, why), -ENODATA);
	ck_assert_msg(strstr(why, "create=1") != NULL, "why: %s", why);

	/* create=1 on such a file initialises it */
	t = open_ok(s.path, 1, "dev1");
	ck_assert_int_eq(add_one(t, "auth host=a seq=1"), 0);

	/* a second open while open: -EBUSY, whether create or not */
	ck_assert_int_eq(open_err(s.path, 0, why), -EBUSY);
	ck_assert_msg(strstr(why, "in use") != NULL, "why: %s", why);
	ck_assert_int_eq(tables_open(s.path, 1, "x", &t2, why, sizeof(why)), -EBUSY);
	tables_close(t);

	/* create=1 on a file that holds tables: -EEXIST, file untouched */
	ck_assert_int_eq(open_err(s.path, 1, why), -EEXIST);
	ck_assert_msg(strstr(why, "dev1") != NULL && strstr(why, "refusing") != NULL, "why: %s", why);
	snap = reopen_snapshot(s.path, NULL);
	ck_assert_str_eq(snap, "auth host=a seq=1\n");
	free(snap);

	/* a directory */
	ck_assert_int_lt(open_err(s.dir, 0, why), 0);
	/* a file that disappears under create (missing directory) */
	snprintf(other, sizeof(other), "%s/nodir/tables", s.dir);
	ck_assert_int_eq(open_err(other, 1, why), -ENOENT);
	scratch_done(&s);
}
END_TEST

START_TEST(test_header_damage)
{
	static const off_t offs[] = { 8, 12, 16, 24, 32, 48, 100, 4095 };
	struct scratch s;
	struct tables *t;
	char why[WHY_LEN];

	scratch_init(&s);
	t = open_ok(s.path, 1, "dev1");
	ck_assert_int_eq(add_one(t, "auth host=a seq=1"), 0);
	tables_close(t);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		flip_byte(s.path, offs[i]);
		ck_assert_msg(open_err(s.path, 0, why) == -EPROTO, "header byte %lld", (long long)offs[i]);
		ck_assert_msg(strstr(why, "header damaged") != NULL, "why: %s", why);
		/* create=1 refuses a damaged header too (it might be a real device's tables) */
		ck_assert_int_eq(open_err(s.path, 1, why), -EPROTO);
		flip_byte(s.path, offs[i]);
		free(reopen_snapshot(s.path, NULL));
	}
	scratch_done(&s);
}
END_TEST

/* ---- crash safety ------------------------------------------------------------------------ */

/* After create (A gen 1), updates go B gen 2, A gen 3: current = gen 3 in A. Damage one byte
 * of copy `cur` at a head field or in the records: the reopen serves the other copy. */
static const off_t copy_fields[] = { 0, 7, 8, 12, 13, 16, 24, 31, 64, 80 };
#define NR_FIELDS ((int)(sizeof(copy_fields) / sizeof(copy_fields[0])))

START_TEST(test_current_copy_damaged)
{
	struct scratch s;
	struct tables *t;
	char *gen2, *gen3, *snap;
	uint64_t gen;
	off_t off = copy_fields[_i];

	scratch_init(&s);
	t = open_ok(s.path, 1, "dev1");
	ck_assert_int_eq(add_one(t, "auth host=a seq=1 pad=0123456789012345678901234567890"), 0);
	gen2 = snapshot(t);
	ck_assert_int_eq(add_one(t, "auth host=b seq=2"), 0);
	gen3 = snapshot(t);
	ck_assert_uint_eq(tables_generation(t), 3);
	tables_close(t);

	/* generation parity: odd in A, even in B; prove it by damaging B first (not current) */
	flip_byte(s.path, COPY_OFF(1) + off);
	snap = reopen_snapshot(s.path, &gen);
	ck_assert_str_eq(snap, gen3);
	ck_assert_uint_eq(gen, 3);
	free(snap);
	flip_byte(s.path, COPY_OFF(1) + off);

	/* the current copy damaged: the previous generation serves */
	flip_byte(s.path, COPY_OFF(0) + off);
	snap = reopen_snapshot(s.path, &gen);
	ck_assert_msg(strcmp(snap, gen2) == 0, "copy A byte %lld: got '%s'", (long long)off, snap);
	ck_assert_uint_eq(gen, 2);
	free(snap);

	/* and the next update goes over the damaged copy, as generation 3 */
	t = open_ok(s.path, 0, NULL);
	ck_assert_int_eq(add_one(t, "auth host=c seq=3"), 0);
	ck_assert_uint_eq(tables_generation(t), 3);
	tables_close(t);
	snap = reopen_snapshot(s.path, &gen);
	ck_assert_uint_eq(gen, 3);
	ck_assert_ptr_nonnull(strstr(snap, "host=c"));
	ck_assert_ptr_null(strstr(snap, "host=b"));
	free(snap);
	free(gen2);
	free(gen3);
	scratch_done(&s);
}
END_TEST

START_TEST(test_both_copies_damaged)
{
	struct scratch s;
	struct tables *t;
	char why[WHY_LEN];
	off_t off = copy_fields[_i];

	scratch_init(&s);
	t = open_ok(s.path, 1, "dev1");
	/* records in both copies, long enough to cover every offset tried */
	ck_assert_int_eq(add_one(t, "auth host=a seq=1 pad=0123456789012345678901234567890"), 0);
	ck_assert_int_eq(add_one(t, "auth host=b seq=2 pad=0123456789012345678901234567890"), 0);
	tables_close(t);
	flip_byte(s.path, COPY_OFF(0) + off);
	flip_byte(s.path, COPY_OFF(1) + off);
	ck_assert_msg(open_err(s.path, 0, why) == -EPROTO, "byte %lld of both copies", (long long)off);
	ck_assert_str_ne(why, "");
	/* the damage was the only problem */
	flip_byte(s.path, COPY_OFF(0) + off);
	flip_byte(s.path, COPY_OFF(1) + off);
	free(reopen_snapshot(s.path, NULL));
	scratch_done(&s);
}
END_TEST

struct bulk {
	int u;
	struct urand *r;
};

/* 100 records of ~120 bytes. */
static int add_bulk(struct tbl_recs *recs, void *arg)
{
	struct bulk *b = arg;

	for (int k = 0; k < 100; k++) {
		int err = tbl_add(recs, "rec u=%d k=%d v=%016llx%080d", b->u, k,
				  (unsigned long long)urand_next(b->r), k);

		if (err)
			return err;
	}
	return 0;
}

/* Tear the write of the target copy at `cut`, keeping the new bytes before it and the old after
 * (new_prefix) or the old before it and the new after (!new_prefix). */
static const size_t cuts[] = { 0, 8, 16, 24, 32, 64, 512, 1000, 4096, 8192, 12288, 16384, 20000,
			       65536, 512 * 1024, TABLES_COPY_BYTES };
#define NR_CUTS ((int)(sizeof(cuts) / sizeof(cuts[0])))

static void torn_update(int new_prefix, int seed_salt)
{
	struct urand r = { unit_seed_for((uint64_t)seed_salt) };
	struct scratch s;
	struct tables *t;
	char line[200];

	scratch_init(&s);
	t = open_ok(s.path, 1, "dev1");
	/* ~24 KiB of records, in both copies */
	for (int u = 0; u < 2; u++) {
		struct bulk b = { .u = u, .r = &r };

		ck_assert_int_eq(tables_update(t, add_bulk, &b), 0);
	}
	tables_close(t);

	for (int c = 0; c < NR_CUTS; c++) {
		size_t cut = cuts[c], flen;
		uint8_t *before, *after;
		char *old_state, *new_state, *got;
		uint64_t old_gen, new_gen, got_gen;
		int target = -1;
		struct edit e = { .del_type = "rec", .del_key = "k", .del_val = line, .nadd = 1 };

		/* the update: delete one record, add one */
		snprintf(line, sizeof(line), "%d", c);
		e.add[0] = "rec u=9 k=new";
		old_state = reopen_snapshot(s.path, &old_gen);
		before = read_file(s.path, &flen);
		t = open_ok(s.path, 0, NULL);
		ck_assert_int_eq(tables_update(t, apply_edit, &e), 0);
		new_state = snapshot(t);
		new_gen = tables_generation(t);
		tables_close(t);
		after = read_file(s.path, &flen);
		ck_assert_str_ne(old_state, new_state);
		for (int i = 0; i < 2; i++)
			if (memcmp(before + COPY_OFF(i), after + COPY_OFF(i), TABLES_COPY_BYTES))
				target = i;
		ck_assert_int_ge(target, 0);
		ck_assert_int_eq(memcmp(before, after, TABLES_HEADER_BYTES), 0);
		ck_assert_int_eq(memcmp(before + COPY_OFF(!target), after + COPY_OFF(!target),
					TABLES_COPY_BYTES), 0);

		if (new_prefix)
			write_range(s.path, before + COPY_OFF(target) + cut, COPY_OFF(target) + (off_t)cut,
				    TABLES_COPY_BYTES - cut);
		else
			write_range(s.path, before + COPY_OFF(target), COPY_OFF(target), cut);
		got = reopen_snapshot(s.path, &got_gen);
		ck_assert_msg(!strcmp(got, old_state) || !strcmp(got, new_state),
			      "cut %zu (%s): neither old nor new state", cut,
			      new_prefix ? "new bytes before" : "old bytes before");
		ck_assert_uint_eq(got_gen, !strcmp(got, new_state) ? new_gen : old_gen);
		/* the ends are exact: all old is the old state, all new the new */
		if ((new_prefix && cut == 0) || (!new_prefix && cut == TABLES_COPY_BYTES))
			ck_assert_str_eq(got, old_state);
		if ((new_prefix && cut == TABLES_COPY_BYTES) || (!new_prefix && cut == 0))
			ck_assert_str_eq(got, new_state);
		/* the brief's case: the old first half back */
		if (!new_prefix && cut == 512 * 1024)
			ck_assert_str_eq(got, old_state);
		free(old_state);
		free(new_state);
		free(got);
		free(before);
		free(after);
	}
	scratch_done(&s);
}

START_TEST(test_torn_new_prefix)
{
	torn_update(1, 31);
}
END_TEST

START_TEST(test_torn_old_prefix)
{
	torn_update(0, 32);
}
END_TEST

/* create=1 over a file whose header was wiped (wipefs erases the magic at offset 0) must not
 * bring back the previous device's records: create writes copy A as generation 1 but leaves an
 * old copy B with a higher generation, which the next open prefers. */
START_TEST(test_create_over_wiped_header)
{
	struct scratch s;
	struct tables *t;
	uint8_t zero[8] = { 0 };
	char *snap;
	uint64_t gen;

	scratch_init(&s);
	t = open_ok(s.path, 1, "old-device");
	ck_assert_int_eq(add_one(t, "auth host=a seq=99"), 0);                 /* B, gen 2 */
	ck_assert_int_eq(add_one(t, "cmddev device=old lun=1 volid=1"), 0);    /* A, gen 3 */
	ck_assert_int_eq(add_one(t, "auth host=b seq=7"), 0);                  /* B, gen 4 */
	tables_close(t);
	write_range(s.path, zero, 0, sizeof(zero));
	t = open_ok(s.path, 1, "new-device");
	ck_assert_uint_eq(tables_generation(t), 1);
	snap = snapshot(t);
	ck_assert_str_eq(snap, "");
	free(snap);
	tables_close(t);
	snap = reopen_snapshot(s.path, &gen);
	ck_assert_msg(strcmp(snap, "") == 0 && gen == 1, "reopen after create=1: generation %llu, "
		      "records '%s' (the old device's)", (unsigned long long)gen, snap);
	free(snap);
	scratch_done(&s);
}
END_TEST

/* ---- concurrency ------------------------------------------------------------------------- */

struct writer {
	struct tables *t;
	int id;
};

static void *writer_main(void *p)
{
	struct writer *w = p;
	char line[64];

	for (int i = 0; i < 8; i++) {
		snprintf(line, sizeof(line), "w id=%d i=%d", w->id, i);
		if (add_one(w->t, line))
			return (void *)1;
		free(snapshot(w->t));
	}
	return NULL;
}

START_TEST(test_concurrent_updates)
{
	struct scratch s;
	struct tables *t;
	struct writer w[4];
	pthread_t th[4];
	char *snap, want[64];
	uint64_t gen;

	scratch_init(&s);
	t = open_ok(s.path, 1, "dev1");
	for (int i = 0; i < 4; i++) {
		w[i] = (struct writer){ .t = t, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *rc;

		pthread_join(th[i], &rc);
		ck_assert_ptr_null(rc);
	}
	ck_assert_uint_eq(tables_generation(t), 33);
	tables_close(t);
	snap = reopen_snapshot(s.path, &gen);
	ck_assert_uint_eq(gen, 33);
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 8; k++) {
			snprintf(want, sizeof(want), "w id=%d i=%d\n", i, k);
			ck_assert_msg(strstr(snap, want) != NULL, "lost '%s'", want);
		}
	free(snap);
	scratch_done(&s);
}
END_TEST

/* ---- record helpers ---------------------------------------------------------------------- */

static void count_line(const char *line, void *arg)
{
	(void)line;
	(*(int *)arg)++;
}

START_TEST(test_record_helpers)
{
	struct tbl_recs r = { 0 };
	char buf[64];

	ck_assert_int_eq(tbl_add(&r, "auth host=%s seq=%d", "ab", 5), 0);
	ck_assert_int_eq(tbl_add(&r, "auth host=abc hostx=1 seq=6"), 0);
	ck_assert_int_eq(tbl_add(&r, "cmddev device=d1 lun=1 volid=2"), 0);
	ck_assert_int_eq(tbl_add(&r, "cmddevx device=d1"), 0);
	ck_assert_int_eq(tbl_add(&r, "authz"), 0);
	ck_assert_int_eq(tbl_add(&r, "bad %s", "x\ny"), -EINVAL);
	ck_assert_int_eq(r.n, 5);

	ck_assert_str_eq(tbl_get(r.line[0], "host", buf, sizeof(buf)), "ab");
	ck_assert_str_eq(tbl_get(r.line[0], "seq", buf, sizeof(buf)), "5");
	ck_assert_str_eq(tbl_get(r.line[1], "host", buf, sizeof(buf)), "abc");
	ck_assert_str_eq(tbl_get(r.line[1], "hostx", buf, sizeof(buf)), "1");
	ck_assert_ptr_null(tbl_get(r.line[1], "hos", buf, sizeof(buf)));
	ck_assert_ptr_null(tbl_get(r.line[1], "auth", buf, sizeof(buf)));      /* the type */
	ck_assert_ptr_null(tbl_get(r.line[4], "x", buf, sizeof(buf)));
	ck_assert_str_eq(tbl_get(r.line[1], "host", buf, 3), "ab");            /* bounded */

	ck_assert_int_eq(tbl_find(&r, "auth", "host", "ab"), 0);
	ck_assert_int_eq(tbl_find(&r, "auth", "host", "abc"), 1);
	ck_assert_int_eq(tbl_find(&r, "auth", "host", "a"), -1);
	ck_assert_int_eq(tbl_find(&r, "aut", "host", "ab"), -1);
	ck_assert_int_eq(tbl_find(&r, "cmddev", "device", "d1"), 2);
	ck_assert_int_eq(tbl_find(&r, "cmddevx", "device", "d1"), 3);
	ck_assert_int_eq(tbl_find(&r, "auth", "seq", "6"), 1);
	ck_assert_int_eq(tbl_find(&r, "authz", "x", ""), -1);

	tbl_del(&r, -1);
	tbl_del(&r, 5);
	ck_assert_int_eq(r.n, 5);
	tbl_del(&r, 0);
	ck_assert_int_eq(r.n, 4);
	ck_assert_int_eq(tbl_find(&r, "auth", "host", "abc"), 0);
	ck_assert_int_eq(tbl_find(&r, "auth", "host", "ab"), -1);
	tbl_del(&r, 3);
	ck_assert_str_eq(r.line[2], "cmddevx device=d1");
	while (r.n)
		tbl_del(&r, 0);
	free(r.line);
}
END_TEST

START_TEST(test_each_by_type)
{
	struct scratch s;
	struct tables *t;
	struct edit e = { .add = { "auth host=a seq=1", "cmddev device=x lun=1 volid=1",
				   "authority z=1", "auth host=b seq=2" }, .nadd = 4 };
	int n = 0;

	scratch_init(&s);
	t = open_ok(s.path, 1, "dev1");
	ck_assert_int_eq(tables_update(t, apply_edit, &e), 0);
	tables_each(t, "auth", count_line, &n);
	ck_assert_int_eq(n, 2);
	n = 0;
	tables_each(t, "cmddev", count_line, &n);
	ck_assert_int_eq(n, 1);
	n = 0;
	tables_each(t, NULL, count_line, &n);
	ck_assert_int_eq(n, 4);
	n = 0;
	tables_each(t, "nothing", count_line, &n);
	ck_assert_int_eq(n, 0);
	tables_close(t);
	tables_close(NULL);
	scratch_done(&s);
}
END_TEST

static Suite *tables_suite(void)
{
	Suite *s = suite_create("tables");
	TCase *tc;

	tc = tcase_create("basic");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_create_and_reopen);
	tcase_add_test(tc, test_update_generations);
	tcase_add_test(tc, test_update_failures_keep_state);
	tcase_add_test(tc, test_update_full_copy);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_concurrent_updates);
	tcase_add_test(tc, test_record_helpers);
	tcase_add_test(tc, test_each_by_type);
	suite_add_tcase(s, tc);

	tc = tcase_create("damage");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_header_damage);
	tcase_add_loop_test(tc, test_current_copy_damaged, 0, NR_FIELDS);
	tcase_add_loop_test(tc, test_both_copies_damaged, 0, NR_FIELDS);
	tcase_add_test(tc, test_torn_new_prefix);
	tcase_add_test(tc, test_torn_old_prefix);
	tcase_add_test(tc, test_create_over_wiped_header);
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

	snprintf(root, sizeof(root), "%s/tandem-unit-tables-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		perror(root);
		return EXIT_FAILURE;
	}
	setenv("TMPDIR", root, 1);
	rc = unit_run(tables_suite());
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

#include "cmdvol/tables.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "raid/tlog.h"
#include "raid/util.h"

/* Header (4 KiB at 0):  0 magic "TNDMTBLS" | 8 version | 12 length (4096) | 16 crc32c |
 *   20 reserved | 24 ctime | 32 uuid[16] | 48 device name[64] | 112.. reserved zero
 * Copy (1 MiB at 4 KiB and 1 MiB + 4 KiB): 0 magic "TNDMTABL" | 8 version | 12 records length |
 *   16 crc32c (head with this field zero + records) | 20 reserved | 24 generation |
 *   32 reserved[32] | 64 records */
#define HDR_MAGIC "TNDMTBLS"
#define COPY_MAGIC "TNDMTABL"
#define COPY_HEAD 64u
#define VERSION 1u

struct tables {
	int fd;
	char path[256];
	char name[TABLES_NAME_MAX + 1];
	char uuid[37];
	uint64_t gen;
	int cur;                        /* copy holding `gen` */
	struct tbl_recs recs;           /* protected by lock */
	pthread_rwlock_t lock;
	pthread_mutex_t update_lock;
};

static void recs_free(struct tbl_recs *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->line[i]);
	free(r->line);
	memset(r, 0, sizeof(*r));
}

static int recs_push(struct tbl_recs *r, char *line)
{
	if (r->n == r->cap) {
		int cap = r->cap ? r->cap * 2 : 16;
		char **l = realloc(r->line, sizeof(char *) * (size_t)cap);

		if (!l)
			return -ENOMEM;
		r->line = l;
		r->cap = cap;
	}
	r->line[r->n++] = line;
	return 0;
}

static int recs_copy(const struct tbl_recs *from, struct tbl_recs *to)
{
	memset(to, 0, sizeof(*to));
	for (int i = 0; i < from->n; i++) {
		char *l = strdup(from->line[i]);

		if (!l || recs_push(to, l)) {
			free(l);
			recs_free(to);
			return -ENOMEM;
		}
	}
	return 0;
}

int tbl_add(struct tbl_recs *r, const char *fmt, ...)
{
	va_list ap;
	char *l;
	int n, err;

	va_start(ap, fmt);
	n = vasprintf(&l, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	if (strchr(l, '\n')) {
		free(l);
		return -EINVAL;
	}
	if ((err = recs_push(r, l)))
		free(l);
	return err;
}

void tbl_del(struct tbl_recs *r, int idx)
{
	if (idx < 0 || idx >= r->n)
		return;
	free(r->line[idx]);
	memmove(&r->line[idx], &r->line[idx + 1], sizeof(char *) * (size_t)(r->n - idx - 1));
	r->n--;
}

const char *tbl_get(const char *line, const char *key, char *buf, size_t buf_len)
{
	size_t klen = strlen(key);
	const char *p = line;

	while ((p = strchr(p, ' '))) {
		p++;
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			size_t vlen = strcspn(p + klen + 1, " ");

			if (vlen >= buf_len)
				vlen = buf_len - 1;
			memcpy(buf, p + klen + 1, vlen);
			buf[vlen] = '\0';
			return buf;
		}
	}
	return NULL;
}

static int is_type(const char *line, const char *type)
{
	size_t n = strlen(type);

	return !strncmp(line, type, n) && (line[n] == ' ' || line[n] == '\0');
}

int tbl_find(const struct tbl_recs *r, const char *type, const char *key, const char *val)
{
	char buf[256];

	for (int i = 0; i < r->n; i++)
		if (is_type(r->line[i], type) && tbl_get(r->line[i], key, buf, sizeof(buf)) &&
		    !strcmp(buf, val))
			return i;
	return -1;
}

static off_t copy_off(int idx)
{
	return (off_t)TABLES_HEADER_BYTES + (off_t)idx * TABLES_COPY_BYTES;
}

/* Read and check copy idx: 0 and the records, -ENODATA (never written), -EPROTO (damaged). */
static int copy_read(struct tables *t, int idx, uint64_t *gen, struct tbl_recs *out, char *why,
		     size_t why_len)
{
	uint8_t *b = malloc(TABLES_COPY_BYTES);
	uint32_t len, crc;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!b)
		return -ENOMEM;
	if ((err = full_pread(t->fd, b, TABLES_COPY_BYTES, copy_off(idx)))) {
		snprintf(why, why_len, "%s: reading table copy %c: %s", t->path, 'A' + idx,
			 strerror(-err));
		goto out;
	}
	if (memcmp(b, COPY_MAGIC, 8)) {
		err = -ENODATA;
		goto out;
	}
	len = get_le32(b + 12);
	if (get_le32(b + 8) != VERSION || len > TABLES_COPY_BYTES - COPY_HEAD) {
		snprintf(why, why_len, "%s: table copy %c damaged (version %u, length %u)", t->path,
			 'A' + idx, get_le32(b + 8), len);
		err = -EPROTO;
		goto out;
	}
	crc = get_le32(b + 16);
	put_le32(b + 16, 0);
	if (tcrc32c(b, COPY_HEAD + len) != crc) {
		snprintf(why, why_len, "%s: table copy %c damaged (CRC32C)", t->path, 'A' + idx);
		err = -EPROTO;
		goto out;
	}
	*gen = get_le64(b + 24);
	for (char *p = (char *)b + COPY_HEAD, *end = p + len; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *l;

		if (!nl) {
			snprintf(why, why_len, "%s: table copy %c: unterminated record", t->path, 'A' + idx);
			err = -EPROTO;
			break;
		}
		l = strndup(p, (size_t)(nl - p));
		if (!l || recs_push(out, l)) {
			free(l);
			err = -ENOMEM;
			break;
		}
		p = nl + 1;
	}
out:
	if (err)
		recs_free(out);
	free(b);
	return err;
}

static int copy_write(struct tables *t, int idx, uint64_t gen, const struct tbl_recs *r)
{
	uint8_t *b = calloc(1, TABLES_COPY_BYTES);
	size_t len = 0;
	int err;

	if (!b)
		return -ENOMEM;
	for (int i = 0; i < r->n; i++) {
		size_t n = strlen(r->line[i]);

		if (COPY_HEAD + len + n + 1 > TABLES_COPY_BYTES) {
			free(b);
			tlog(TLOG_ERR, "%s: tables exceed %u bytes", t->path, TABLES_COPY_BYTES);
			return -ENOSPC;
		}
		memcpy(b + COPY_HEAD + len, r->line[i], n);
		b[COPY_HEAD + len + n] = '\n';
		len += n + 1;
	}
	memcpy(b, COPY_MAGIC, 8);
	put_le32(b + 8, VERSION);
	put_le32(b + 12, (uint32_t)len);
	put_le64(b + 24, gen);
	put_le32(b + 16, tcrc32c(b, COPY_HEAD + len));
	/* The whole copy (stale bytes past the records are zeroed: nothing old lingers). */
	err = full_pwrite(t->fd, b, TABLES_COPY_BYTES, copy_off(idx));
	if (!err && fdatasync(t->fd))
		err = -errno;
	free(b);
	return err;
}

static int copy_wipe(struct tables *t, int idx)
{
	uint8_t z[COPY_HEAD] = { 0 };

	return full_pwrite(t->fd, z, sizeof(z), copy_off(idx));
}

static void uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

static int header_write(struct tables *t, const char *name)
{
	uint8_t h[TABLES_HEADER_BYTES] = { 0 }, u[16];

	if (getrandom(u, 16, 0) != 16)
		return -EIO;
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
	memcpy(h, HDR_MAGIC, 8);
	put_le32(h + 8, VERSION);
	put_le32(h + 12, TABLES_HEADER_BYTES);
	put_le64(h + 24, (uint64_t)time(NULL));
	memcpy(h + 32, u, 16);
	snprintf((char *)h + 48, 64, "%s", name);
	put_le32(h + 16, tcrc32c(h, TABLES_HEADER_BYTES));
	return full_pwrite(t->fd, h, TABLES_HEADER_BYTES, 0);
}

static int header_read(struct tables *t, char *why, size_t why_len)
{
	uint8_t h[TABLES_HEADER_BYTES];
	uint32_t crc;
	struct stat st;
	int err;

	if (fstat(t->fd, &st) == 0 && (uint64_t)st.st_size < TABLES_FILE_BYTES) {
		snprintf(why, why_len, "%s: no tandem device tables here (%lld bytes; create=1 "
			 "initialises)", t->path, (long long)st.st_size);
		return -ENODATA;
	}
	err = full_pread(t->fd, h, TABLES_HEADER_BYTES, 0);
	if (err) {
		snprintf(why, why_len, "%s: cannot read the tables header: %s", t->path, strerror(-err));
		return err;
	}
	if (memcmp(h, HDR_MAGIC, 8)) {
		snprintf(why, why_len, "%s: no tandem device tables here (create=1 initialises)", t->path);
		return -ENODATA;
	}
	crc = get_le32(h + 16);
	put_le32(h + 16, 0);
	if (get_le32(h + 8) != VERSION || get_le32(h + 12) != TABLES_HEADER_BYTES ||
	    tcrc32c(h, TABLES_HEADER_BYTES) != crc) {
		snprintf(why, why_len, "%s: tables header damaged (version, length or CRC32C)", t->path);
		return -EPROTO;
	}
	uuid_str(h + 32, t->uuid);
	memcpy(t->name, h + 48, TABLES_NAME_MAX);
	t->name[TABLES_NAME_MAX] = '\0';
	return 0;
}

int tables_open(const char *path, int create, const char *device_name, struct tables **out,
		char *why, size_t why_len)
{
	struct tables *t = calloc(1, sizeof(*t));
	struct tbl_recs r[2];
	uint64_t g[2] = { 0, 0 };
	int e[2], err;
	char w[2][300];
	struct stat st;

	if (!t)
		return -ENOMEM;
	snprintf(t->path, sizeof(t->path), "%s", path);
	t->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (t->fd < 0) {
		err = -errno;
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
		free(t);
		return err;
	}
	if (flock(t->fd, LOCK_EX | LOCK_NB)) {
		snprintf(why, why_len, "%s: in use by another command device or process", path);
		close(t->fd);
		free(t);
		return -EBUSY;
	}
	pthread_rwlock_init(&t->lock, NULL);
	pthread_mutex_init(&t->update_lock, NULL);
	err = header_read(t, why, why_len);
	if (create) {
		if (err != -ENODATA) {
			/* (on a damaged header, why already says so) */
			if (!err)
				snprintf(why, why_len, "%s already holds the tables of device '%s'; refusing "
					 "to initialise it again (create=1 is for a new file)", path, t->name);
			tables_close(t);
			return err ? err : -EEXIST;
		}
		if (fstat(t->fd, &st) == 0 && (uint64_t)st.st_size < TABLES_FILE_BYTES &&
		    ftruncate(t->fd, TABLES_FILE_BYTES)) {
			err = -errno;
			snprintf(why, why_len, "%s: cannot size the file: %s", path, strerror(errno));
			tables_close(t);
			return err;
		}
		/* Copy B is wiped: a file that held tables before (header erased by a wipefs) must
		 * not bring an old generation back. */
		if ((err = header_write(t, device_name)) || (err = copy_wipe(t, 1)) ||
		    (err = copy_write(t, 0, 1, &t->recs)) || (err = header_read(t, why, why_len))) {
			snprintf(why, why_len, "%s: cannot initialise the tables: %s", path, strerror(-err));
			tables_close(t);
			return err;
		}
		t->gen = 1;
		t->cur = 0;
		tlog(TLOG_INFO, "device tables created in %s for device '%s' (%s)", path, t->name,
		     t->uuid);
		*out = t;
		return 0;
	}
	if (err) {
		tables_close(t);
		return err;
	}
	for (int i = 0; i < 2; i++)
		e[i] = copy_read(t, i, &g[i], &r[i], w[i], sizeof(w[i]));
	for (int i = 0; i < 2; i++)
		if (e[i] == -EPROTO)
			tlog(TLOG_WARN, "%s (the other copy serves)", w[i]);
	if (e[0] && e[1]) {
		snprintf(why, why_len, "%s", e[0] != -ENODATA ? w[0] : e[1] != -ENODATA ? w[1] :
			 "no valid table copy");
		tables_close(t);
		return -EPROTO;
	}
	t->cur = e[0] ? 1 : e[1] ? 0 : (g[1] > g[0] ? 1 : 0);
	t->gen = g[t->cur];
	t->recs = r[t->cur];
	recs_free(&r[!t->cur]);
	*out = t;
	return 0;
}

void tables_close(struct tables *t)
{
	if (!t)
		return;
	recs_free(&t->recs);
	close(t->fd);
	pthread_rwlock_destroy(&t->lock);
	pthread_mutex_destroy(&t->update_lock);
	free(t);
}

const char *tables_device_name(struct tables *t) { return t->name; }
const char *tables_path(struct tables *t) { return t->path; }
const char *tables_device_uuid(struct tables *t) { return t->uuid; }
uint64_t tables_generation(struct tables *t)
{
	uint64_t g;

	pthread_rwlock_rdlock(&t->lock);
	g = t->gen;
	pthread_rwlock_unlock(&t->lock);
	return g;
}

int tables_update(struct tables *t, int (*fn)(struct tbl_recs *r, void *arg), void *arg)
{
	struct tbl_recs r, old;
	int err;

	pthread_mutex_lock(&t->update_lock);
	pthread_rwlock_rdlock(&t->lock);
	err = recs_copy(&t->recs, &r);
	pthread_rwlock_unlock(&t->lock);
	if (err)
		goto out;
	if ((err = fn(&r, arg))) {
		recs_free(&r);
		goto out;
	}
	/* Write the other copy; only then is the new generation current. */
	if ((err = copy_write(t, !t->cur, t->gen + 1, &r))) {
		tlog(TLOG_ERR, "%s: table update failed: %s (generation %" PRIu64 " stays current)",
		     t->path, strerror(-err), t->gen);
		recs_free(&r);
		goto out;
	}
	pthread_rwlock_wrlock(&t->lock);
	old = t->recs;
	t->recs = r;
	t->cur = !t->cur;
	t->gen++;
	pthread_rwlock_unlock(&t->lock);
	recs_free(&old);
out:
	pthread_mutex_unlock(&t->update_lock);
	return err;
}

void tables_each(struct tables *t, const char *type, void (*fn)(const char *line, void *arg),
		 void *arg)
{
	pthread_rwlock_rdlock(&t->lock);
	for (int i = 0; i < t->recs.n; i++)
		if (!type || is_type(t->recs.line[i], type))
			fn(t->recs.line[i], arg);
	pthread_rwlock_unlock(&t->lock);
}

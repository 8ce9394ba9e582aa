#include "replication/peer.h"

#include <errno.h>
#include <inttypes.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raid/tlog.h"

#define MAX_SESSIONS 16
#define MAX_XFER_BYTES (1u << 20)
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000

struct psess {
	pthread_mutex_t lock;       /* one caller at a time */
	struct iscsi_context *ctx;  /* NULL: not connected */
	uint64_t key;               /* per_key sessions: the owner */
	uint64_t last_use_ns;
	uint64_t next_try_ns;       /* backoff */
	int backoff_ms;
};

struct peer {
	char url[512];
	char safe_url[512];         /* for messages: the CHAP password replaced by *** */
	char initiator[224];
	int timeout_ms;
	int per_key;
	int nsess;
	struct psess s[MAX_SESSIONS];
	uint32_t next;              /* round robin */
	pthread_mutex_t key_lock;   /* per_key: assignment of sessions to keys */
	pthread_mutex_t st_lock;
	struct peer_stats st;       /* protected by st_lock */
	uint64_t size_bytes;        /* learned at the first connect; 0 unknown */
	uint32_t block_bytes;
	int lun;
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void note_error(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_error(struct peer *p, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&p->st_lock);
	p->st.errors++;
	va_start(ap, fmt);
	vsnprintf(p->st.last_error, sizeof(p->st.last_error), fmt, ap);
	va_end(ap);
	for (char *c = p->st.last_error; *c; c++)   /* libiscsi's texts end in newlines */
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	pthread_mutex_unlock(&p->st_lock);
}

/* Drive the context until *done or the deadline. 0, -ETIMEDOUT or -ENOTCONN. */
static int run_until(struct psess *s, volatile int *done, uint64_t deadline)
{
	while (!*done) {
		struct pollfd pfd;
		uint64_t now = now_ns();
		int ms, r;

		if (now >= deadline)
			return -ETIMEDOUT;
		ms = (int)((deadline - now) / 1000000) + 1;
		if (ms > 100)
			ms = 100;
		pfd.fd = iscsi_get_fd(s->ctx);
		pfd.events = (short)iscsi_which_events(s->ctx);
		pfd.revents = 0;
		if (pfd.fd < 0)
			return -ENOTCONN;
		r = poll(&pfd, 1, ms);
		if (r < 0 && errno != EINTR)
			return -ENOTCONN;
		if (iscsi_service(s->ctx, r > 0 ? pfd.revents : 0) < 0)
			return -ENOTCONN;
	}
	return 0;
}

static void drop(struct peer *p, struct psess *s, const char *why)
{
	if (s->ctx) {
		iscsi_destroy_context(s->ctx);
		s->ctx = NULL;
		tlog(TLOG_WARN, "peer %s: session lost: %s", p->safe_url, why);
	}
}

struct cb_state {
	volatile int done;
	int status;
	struct scsi_task *task;
};

static void connect_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct cb_state *c = priv;

	(void)ctx;
	(void)data;
	c->status = status;
	c->done = 1;
}

static void task_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct cb_state *c = priv;

	(void)ctx;
	c->status = status;
	c->task = data;
	c->done = 1;
}

/* Connect a session (lock held), honouring the backoff. */
static int sess_connect(struct peer *p, struct psess *s)
{
	struct iscsi_url *u;
	struct cb_state c = { 0 };
	uint64_t now = now_ns();
	int err;

	if (s->ctx)
		return 0;
	if (now < s->next_try_ns)
		return -ENOTCONN;
	s->ctx = iscsi_create_context(p->initiator);
	if (!s->ctx)
		return -ENOMEM;
	u = iscsi_parse_full_url(s->ctx, p->url);
	if (!u) {
		note_error(p, "bad URL %s: %s", p->safe_url, iscsi_get_error(s->ctx));
		iscsi_destroy_context(s->ctx);
		s->ctx = NULL;
		return -EINVAL;
	}
	iscsi_set_session_type(s->ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(s->ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	iscsi_set_noautoreconnect(s->ctx, 1);
	iscsi_set_timeout(s->ctx, p->timeout_ms / 1000 + 1);
	if (u->user[0])
		iscsi_set_initiator_username_pwd(s->ctx, u->user, u->passwd);
	iscsi_set_targetname(s->ctx, u->target);
	p->lun = u->lun;
	err = iscsi_full_connect_async(s->ctx, u->portal, u->lun, connect_cb, &c) ? -ENOTCONN : 0;
	iscsi_destroy_url(u);
	if (!err)
		err = run_until(s, &c.done, now + (uint64_t)p->timeout_ms * 1000000ull);
	if (!err && c.status != SCSI_STATUS_GOOD)
		err = -ENOTCONN;
	pthread_mutex_lock(&p->st_lock);
	if (err)
		p->st.connect_failures++;
	else
		p->st.connects++;
	pthread_mutex_unlock(&p->st_lock);
	if (err) {
		note_error(p, "cannot log in to %s: %s", p->safe_url,
			   err == -ETIMEDOUT ? "timed out" : iscsi_get_error(s->ctx));
		iscsi_destroy_context(s->ctx);
		s->ctx = NULL;
		s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (s->backoff_ms > BACKOFF_MAX_MS)
			s->backoff_ms = BACKOFF_MAX_MS;
		s->next_try_ns = now_ns() + (uint64_t)s->backoff_ms * 1000000ull;
		return err == -ETIMEDOUT ? -ETIMEDOUT : -ENOTCONN;
	}
	s->backoff_ms = 0;
	s->next_try_ns = 0;
	return 0;
}

/* Send one task and wait; returns 0 with c->task set (caller frees), or -errno. Lock held. */
static int sess_task(struct peer *p, struct psess *s, struct cb_state *c)
{
	int err = run_until(s, &c->done, now_ns() + (uint64_t)p->timeout_ms * 1000000ull);

	if (err) {
		note_error(p, "%s: command %s", p->safe_url, err == -ETIMEDOUT ? "timed out" : "lost");
		drop(p, s, err == -ETIMEDOUT ? "command timed out" : "connection lost");
		return err;
	}
	if (c->status == SCSI_STATUS_GOOD)
		return 0;
	if (c->status == SCSI_STATUS_CHECK_CONDITION && c->task) {
		struct scsi_sense *sn = &c->task->sense;

		note_error(p, "%s: sense %s ascq 0x%04x", p->safe_url, scsi_sense_key_str(sn->key), sn->ascq);
		switch (sn->key) {
		case SCSI_SENSE_ILLEGAL_REQUEST:
			return sn->ascq == 0x2100 ? -ERANGE : -EINVAL;
		case SCSI_SENSE_DATA_PROTECTION:
			return -EROFS;
		case SCSI_SENSE_UNIT_ATTENTION:
			/* our own session's news (power on / reset after login, capacity
			 * changed): the command was not executed; io() sends it again */
			return -ERESTART;
		case SCSI_SENSE_NOT_READY:
			return -EAGAIN;
		default:
			return -EIO;
		}
	}
	if (c->status == SCSI_STATUS_BUSY)
		return -EBUSY;
	note_error(p, "%s: status 0x%x: %s", p->safe_url, c->status, iscsi_get_error(s->ctx));
	drop(p, s, "transport error");
	return -ENOTCONN;
}

/* Pick and lock a session for `key`. */
static struct psess *sess_get(struct peer *p, uint64_t key)
{
	struct psess *s = NULL;

	if (p->per_key && key) {
		for (;;) {
			int lru = 0;

			s = NULL;
			pthread_mutex_lock(&p->key_lock);
			for (int i = 0; i < p->nsess; i++) {
				if (p->s[i].key == key) {
					s = &p->s[i];
					break;
				}
				if (p->s[i].last_use_ns < p->s[lru].last_use_ns)
					lru = i;
			}
			if (!s) {
				/* take the least recently used session over: a new login, so the new key
				 * does not inherit the old key's identity on the peer */
				s = &p->s[lru];
				pthread_mutex_lock(&s->lock);
				drop(p, s, "reassigned to another host");
				s->key = key;
				s->backoff_ms = 0;
				s->next_try_ns = 0;
				pthread_mutex_unlock(&s->lock);
			}
			s->last_use_ns = now_ns();
			pthread_mutex_unlock(&p->key_lock);
			pthread_mutex_lock(&s->lock);
			/* another host may have taken it over between the two locks: pick again */
			if (s->key == key)
				return s;
			pthread_mutex_unlock(&s->lock);
		}
	}
	/* a free connected session first (after an outage some may still be backing off) */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < p->nsess; i++) {
			s = &p->s[__atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED) % (uint32_t)p->nsess];
			if (pass == 0 && !__atomic_load_n(&s->ctx, __ATOMIC_RELAXED))
				continue;
			if (pthread_mutex_trylock(&s->lock) == 0)
				return s;
		}
	}
	s = &p->s[__atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED) % (uint32_t)p->nsess];
	pthread_mutex_lock(&s->lock);
	return s;
}

static int read_capacity(struct peer *p, struct psess *s)
{
	struct cb_state c = { 0 };
	struct scsi_readcapacity16 *rc;
	int err;

	if (!iscsi_readcapacity16_task(s->ctx, p->lun, task_cb, &c))
		return -ENOMEM;
	if ((err = sess_task(p, s, &c))) {
		if (err == -ERESTART)
			err = -EAGAIN;
		goto out;
	}
	rc = scsi_datain_unmarshall(c.task);
	if (!rc || !rc->block_length) {
		err = -EIO;
		goto out;
	}
	p->block_bytes = rc->block_length;
	p->size_bytes = (rc->returned_lba + 1) * rc->block_length;
out:
	if (c.task)
		scsi_free_scsi_task(c.task);
	return err;
}

/* A connected session (lock held) that knows the block size. */
static int sess_ready(struct peer *p, struct psess *s)
{
	int err = sess_connect(p, s);

	if (!err && !p->block_bytes)
		err = read_capacity(p, s);
	return err;
}

int peer_open(const struct peer_opts *o, struct peer **out, char *why, size_t why_len)
{
	struct peer *p;
	struct iscsi_context *ctx;
	struct iscsi_url *u;

	if (!o->url || strncmp(o->url, "iscsi://", 8)) {
		snprintf(why, why_len, "peer URL '%s': expected iscsi://host[:port]/iqn/lun",
			 o->url ? o->url : "");
		return -EINVAL;
	}
	ctx = iscsi_create_context(o->initiator ? o->initiator : "iqn.2026-11.org.tandem:peer");
	if (!ctx)
		return -ENOMEM;
	u = iscsi_parse_full_url(ctx, o->url);
	if (!u) {
		snprintf(why, why_len, "peer URL: %s", iscsi_get_error(ctx));
		iscsi_destroy_context(ctx);
		return -EINVAL;
	}
	iscsi_destroy_url(u);
	iscsi_destroy_context(ctx);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	snprintf(p->url, sizeof(p->url), "%s", o->url);
	peer_redact_url(o->url, p->safe_url, sizeof(p->safe_url));
	snprintf(p->initiator, sizeof(p->initiator), "%s",
		 o->initiator ? o->initiator : "iqn.2026-11.org.tandem:peer");
	p->timeout_ms = (o->timeout_s > 0 ? o->timeout_s : 5) * 1000;
	p->nsess = o->sessions > 0 ? (o->sessions > MAX_SESSIONS ? MAX_SESSIONS : o->sessions) : 4;
	p->per_key = o->per_key;
	pthread_mutex_init(&p->key_lock, NULL);
	pthread_mutex_init(&p->st_lock, NULL);
	for (int i = 0; i < p->nsess; i++)
		pthread_mutex_init(&p->s[i].lock, NULL);
	*out = p;
	return 0;
}

void peer_close(struct peer *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nsess; i++) {
		pthread_mutex_lock(&p->s[i].lock);
		if (p->s[i].ctx) {
			iscsi_destroy_context(p->s[i].ctx);
			p->s[i].ctx = NULL;
		}
		pthread_mutex_unlock(&p->s[i].lock);
		pthread_mutex_destroy(&p->s[i].lock);
	}
	pthread_mutex_destroy(&p->key_lock);
	pthread_mutex_destroy(&p->st_lock);
	free(p);
}

int peer_capacity(struct peer *p, uint64_t *size_bytes, uint32_t *block_bytes)
{
	struct psess *s = sess_get(p, 0);
	int err = sess_connect(p, s);

	if (!err)
		err = read_capacity(p, s);
	pthread_mutex_unlock(&s->lock);
	if (!err) {
		*size_bytes = p->size_bytes;
		*block_bytes = p->block_bytes;
	}
	return err;
}

int peer_opt_xfer(struct peer *p, uint64_t *bytes)
{
	struct psess *s = sess_get(p, 0);
	struct cb_state c = { 0 };
	int err = sess_ready(p, s);

	*bytes = 0;
	if (!err && !iscsi_inquiry_task(s->ctx, p->lun, 1, 0xb0, 64, task_cb, &c)) {
		drop(p, s, "cannot queue a command");
		err = -ENOTCONN;
	} else if (!err && (err = sess_task(p, s, &c)) == -ERESTART) {
		err = -EAGAIN;
	} else if (!err) {
		struct scsi_inquiry_block_limits *bl = scsi_datain_unmarshall(c.task);

		if (bl)
			*bytes = (uint64_t)bl->opt_xfer_len * p->block_bytes;
	}
	if (c.task)
		scsi_free_scsi_task(c.task);
	pthread_mutex_unlock(&s->lock);
	return err;
}

static int io(struct peer *p, uint64_t key, int is_write, void *buf, uint64_t off, uint64_t len,
	      int fua)
{
	struct psess *s = sess_get(p, key);
	uint8_t *b = buf;
	int err = sess_ready(p, s), ua_retries = 0;

	while (!err && len) {
		uint32_t n = len > MAX_XFER_BYTES ? MAX_XFER_BYTES : (uint32_t)len;
		struct cb_state c = { 0 };
		struct scsi_task *t;

		if (off % p->block_bytes || n % p->block_bytes) {
			err = -EINVAL;
			break;
		}
		if (is_write)
			t = iscsi_write16_task(s->ctx, p->lun, off / p->block_bytes, b, n,
					       (int)p->block_bytes, 0, 0, fua, 0, 0, task_cb, &c);
		else
			t = iscsi_read16_task(s->ctx, p->lun, off / p->block_bytes, n,
					      (int)p->block_bytes, 0, 0, 0, 0, 0, task_cb, &c);
		if (!t) {
			drop(p, s, "cannot queue a command");
			err = -ENOTCONN;
			break;
		}
		err = sess_task(p, s, &c);
		if (err == -ERESTART && ++ua_retries <= 32) {
			if (c.task)
				scsi_free_scsi_task(c.task);
			err = 0;
			continue;
		}
		if (err == -ERESTART)
			err = -EAGAIN;
		if (!err && !is_write) {
			if (!c.task || c.task->datain.size < (int)n) {
				err = -EIO;
			} else {
				memcpy(b, c.task->datain.data, n);
			}
		}
		if (c.task)
			scsi_free_scsi_task(c.task);
		b += n;
		off += n;
		len -= n;
	}
	s->last_use_ns = now_ns();
	pthread_mutex_unlock(&s->lock);
	return err;
}

int peer_read(struct peer *p, uint64_t key, void *buf, uint64_t off, uint64_t len)
{
	int err = io(p, key, 0, buf, off, len, 0);

	pthread_mutex_lock(&p->st_lock);
	if (!err) {
		p->st.reads++;
		p->st.read_bytes += len;
	}
	pthread_mutex_unlock(&p->st_lock);
	return err;
}

int peer_write(struct peer *p, uint64_t key, const void *buf, uint64_t off, uint64_t len, int fua)
{
	int err = io(p, key, 1, (void *)buf, off, len, fua);

	pthread_mutex_lock(&p->st_lock);
	if (!err) {
		p->st.writes++;
		p->st.write_bytes += len;
	}
	pthread_mutex_unlock(&p->st_lock);
	return err;
}

int peer_flush(struct peer *p, uint64_t key)
{
	struct psess *s = sess_get(p, key);
	struct cb_state c = { 0 };
	int err = sess_ready(p, s);

	for (int tries = 0; !err && tries < 32; tries++) {
		if (c.task)
			scsi_free_scsi_task(c.task);
		memset(&c, 0, sizeof(c));
		if (!iscsi_synchronizecache16_task(s->ctx, p->lun, 0, 0, 0, 0, task_cb, &c)) {
			drop(p, s, "cannot queue a command");
			err = -ENOTCONN;
		} else if ((err = sess_task(p, s, &c)) != -ERESTART) {
			break;
		} else {
			err = 0;    /* a unit attention: send it again */
		}
	}
	if (err == -ERESTART)
		err = -EAGAIN;
	if (c.task)
		scsi_free_scsi_task(c.task);
	pthread_mutex_unlock(&s->lock);
	if (!err) {
		pthread_mutex_lock(&p->st_lock);
		p->st.flushes++;
		pthread_mutex_unlock(&p->st_lock);
	}
	return err;
}

void peer_get_stats(struct peer *p, struct peer_stats *st)
{
	int n = 0;

	for (int i = 0; i < p->nsess; i++)
		n += p->s[i].ctx != NULL;   /* a racy snapshot is fine for status */
	pthread_mutex_lock(&p->st_lock);
	*st = p->st;
	pthread_mutex_unlock(&p->st_lock);
	st->connected = n;
}

const char *peer_url(struct peer *p)
{
	return p->safe_url;
}

void peer_redact_url(const char *url, char *out, size_t out_len)
{
	const char *at = strchr(url, '@'), *pct = strchr(url, '%');

	if (at && pct && pct < at)
		snprintf(out, out_len, "%.*s%%***%s", (int)(pct - url), url, at);
	else
		snprintf(out, out_len, "%s", url);
}

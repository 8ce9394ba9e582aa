#include "replication/vvol.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raid/opts.h"
#include "raid/tlog.h"

struct vvol {
	struct vol vol;
	struct peer *peer;
	int cmddev;
};

int vvol_opts_parse(const char *s, struct vvol_opts *o, char *why, size_t why_len)
{
	static const char *const known[] = { "volid", "kind", "timeout_s", "sessions", "chap_file",
					     NULL };
	struct opts kv;
	const char *v;
	uint64_t x;
	int err;

	memset(o, 0, sizeof(*o));
	o->timeout_s = 5;
	o->sessions = 16;
	if ((err = opts_split(s, known, &kv, why, why_len)))
		return err;
	if (!(v = opts_get(&kv, "volid"))) {
		snprintf(why, why_len, "bsopts: volid= is required");
		return -EINVAL;
	}
	if ((err = opts_u64("volid", v, 1, UINT32_MAX, &o->volid, why, why_len)))
		return err;
	if ((v = opts_get(&kv, "kind"))) {
		if (!strcmp(v, "cmddev"))
			o->cmddev = 1;
		else if (strcmp(v, "data")) {
			snprintf(why, why_len, "bsopts: kind='%s': expected data or cmddev", v);
			return -EINVAL;
		}
	}
	if ((v = opts_get(&kv, "timeout_s"))) {
		if ((err = opts_u64("timeout_s", v, 1, 120, &x, why, why_len)))
			return err;
		o->timeout_s = (int)x;
	}
	if ((v = opts_get(&kv, "chap_file")))
		snprintf(o->chap_file, sizeof(o->chap_file), "%s", v);
	if ((v = opts_get(&kv, "sessions"))) {
		if ((err = opts_u64("sessions", v, 1, 16, &x, why, why_len)))
			return err;
		o->sessions = (int)x;
	}
	return 0;
}

static int vv_read(struct vol *v, void *buf, uint64_t off, uint64_t len)
{
	return vvol_read(v->impl, 0, buf, off, len);
}

static int vv_write(struct vol *v, const void *buf, uint64_t off, uint64_t len)
{
	return vvol_write(v->impl, 0, buf, off, len);
}

static int vv_flush(struct vol *v)
{
	return peer_flush(((struct vvol *)v->impl)->peer, 0);
}

static void vv_destroy(struct vol *v)
{
	struct vvol *vv = v->impl;

	peer_close(vv->peer);
	free(vv);
}

static const struct vol_ops vvol_ops = {
	.read = vv_read, .write = vv_write, .flush = vv_flush, .destroy = vv_destroy,
};

struct vvol *vvol_of(struct vol *v) { return v->ops == &vvol_ops ? v->impl : NULL; }
int vvol_is_cmddev(struct vvol *vv) { return vv->cmddev; }
struct peer *vvol_peer(struct vvol *vv) { return vv->peer; }

/* The covering whole blocks of [off, off+len): tgt passes the iSCSI expected length, which an
 * initiator may make any byte count (the residual cases); the peer takes whole blocks. */
static int bounce(struct vvol *vv, uint64_t off, uint64_t len, uint64_t *b_off, uint64_t *b_len,
		  uint8_t **buf)
{
	uint64_t bs = vv->vol.block_bytes;

	*b_off = off / bs * bs;
	*b_len = (off + len + bs - 1) / bs * bs - *b_off;
	*buf = malloc(*b_len ? *b_len : 1);
	return *buf ? 0 : -ENOMEM;
}

int vvol_read(struct vvol *vv, uint64_t key, void *buf, uint64_t off, uint64_t len)
{
	uint64_t bo, bl;
	uint8_t *b;
	int err;

	key = vv->cmddev ? key : 0;
	if (off % vv->vol.block_bytes == 0 && len % vv->vol.block_bytes == 0)
		return peer_read(vv->peer, key, buf, off, len);
	if ((err = bounce(vv, off, len, &bo, &bl, &b)))
		return err;
	if (!(err = peer_read(vv->peer, key, b, bo, bl)))
		memcpy(buf, b + (off - bo), len);
	free(b);
	return err;
}

int vvol_write(struct vvol *vv, uint64_t key, const void *buf, uint64_t off, uint64_t len)
{
	uint64_t bo, bl;
	uint8_t *b;
	int err;

	key = vv->cmddev ? key : 0;
	if (off % vv->vol.block_bytes == 0 && len % vv->vol.block_bytes == 0)
		return peer_write(vv->peer, key, buf, off, len, 0);
	/* partial blocks: read, merge, write back */
	if ((err = bounce(vv, off, len, &bo, &bl, &b)))
		return err;
	if (!(err = peer_read(vv->peer, key, b, bo, bl))) {
		memcpy(b + (off - bo), buf, len);
		err = peer_write(vv->peer, key, b, bo, bl, 0);
	}
	free(b);
	return err;
}

int vvol_open(const char *url, const struct vvol_opts *o, const char *initiator,
	      uint64_t known_size_bytes, uint32_t known_block_bytes, struct vol **out, char *why,
	      size_t why_len)
{
	struct peer_opts po = { .url = url, .initiator = initiator, .timeout_s = o->timeout_s,
				.sessions = o->sessions, .per_key = o->cmddev };
	char full[1024];
	struct vvol *vv;
	struct peer *p;
	struct peer_stats st;
	uint64_t size = 0;
	uint32_t block = 0;
	int err;

	if (o->chap_file[0]) {
		char user[256] = "", pass[256] = "";
		FILE *f = fopen(o->chap_file, "r");

		if (!f || fscanf(f, "%255s %255s", user, pass) != 2) {
			snprintf(why, why_len, "chap_file %s: %s", o->chap_file,
				 f ? "expected one line 'user password'" : strerror(errno));
			if (f)
				fclose(f);
			return -EINVAL;
		}
		fclose(f);
		if (strncmp(url, "iscsi://", 8) || strchr(url, '@')) {
			snprintf(why, why_len, "chap_file given: the URL must be iscsi://host... without "
				 "credentials");
			return -EINVAL;
		}
		snprintf(full, sizeof(full), "iscsi://%s%%%s@%s", user, pass, url + 8);
		po.url = full;
	}
	err = peer_open(&po, &p, why, why_len);
	memset(full, 0, sizeof(full));
	if (err)
		return err;
	err = peer_capacity(p, &size, &block);
	if (err) {
		peer_get_stats(p, &st);
		if (!known_size_bytes || !known_block_bytes) {
			snprintf(why, why_len, "peer %s cannot be reached (%s) and the LUN map has no "
				 "record of volid %" PRIu64 "'s size", peer_url(p), st.last_error, o->volid);
			peer_close(p);
			return err;
		}
		size = known_size_bytes;
		block = known_block_bytes;
		tlog(TLOG_WARN, "vvol volid %" PRIu64 ": peer %s is down (%s); serving NOT READY until "
		     "it returns (size from the LUN map)", o->volid, peer_url(p), st.last_error);
	}
	vv = calloc(1, sizeof(*vv));
	if (!vv) {
		peer_close(p);
		return -ENOMEM;
	}
	vv->peer = p;
	vv->cmddev = o->cmddev;
	vol_init(&vv->vol, "vvol", o->volid, size, block, &vvol_ops, vv);
	*out = &vv->vol;
	return 0;
}

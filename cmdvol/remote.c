#include "cmdvol/remote.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmdvol/cmddev.h"
#include "replication/vvol.h"

#define REMOTE_KEY 0x746e646d6f64756cull    /* the module's own session on a peer ("tndmodul") */

static pthread_mutex_t remote_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_seq;                    /* protected by remote_lock */

int remote_call(uint64_t peer_volid, const char *command, const char *const *params, int nparams,
		struct cb_reply *reply, char *why, size_t why_len)
{
	struct vol *v = vol_lookup(peer_volid);
	struct cmddev *cd = cmddev_current();
	const uint8_t *key = NULL;
	size_t key_len = 0, len;
	struct vvol *vv;
	struct timespec ts;
	char host[CB_HOST_MAX + 1];
	uint8_t *buf = NULL;
	uint64_t seq;
	int n, err;

	memset(reply, 0, sizeof(*reply));
	if (!v) {
		snprintf(why, why_len, "no volume with volid %" PRIu64 " (the peer command device)",
			 peer_volid);
		return -ENOENT;
	}
	vv = vvol_of(v);
	if (!vv || !vvol_is_cmddev(vv)) {
		snprintf(why, why_len, "volid %" PRIu64 " is not a virtual volume of kind=cmddev",
			 peer_volid);
		vol_put(v);
		return -EINVAL;
	}
	if (cd)
		cmddev_key(cd, &key, &key_len);
	snprintf(host, sizeof(host), "tandem-%s", cd ? cmddev_device_name(cd) : "device");
	buf = aligned_alloc(4096, CMDDEV_SLOT_BYTES);
	if (!buf) {
		vol_put(v);
		return -ENOMEM;
	}
	pthread_mutex_lock(&remote_lock);
	clock_gettime(CLOCK_REALTIME, &ts);
	seq = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (seq <= last_seq)
		seq = last_seq + 1;
	last_seq = seq;
	memset(buf, 0, CB_MAX_BYTES);
	n = cb_encode(command, params, nparams, "module", 1, key, key_len, host, seq, (char *)buf,
		      CB_MAX_BYTES);
	if (n < 0) {
		snprintf(why, why_len, "cannot encode %s: %s", command, strerror(-n));
		err = n;
		goto out;
	}
	len = ((size_t)n + CMDDEV_BLOCK_BYTES - 1) / CMDDEV_BLOCK_BYTES * CMDDEV_BLOCK_BYTES;
	/* a peer session lost a moment ago is in its reconnect backoff (0.2 s doubling): a few
	 * tries span it, so a device that just came back is reached */
	for (int tries = 0; tries < 4; tries++) {
		err = vvol_write(vv, REMOTE_KEY, buf, 0, len);
		if (err != -ENOTCONN && err != -EAGAIN)
			break;
		usleep(400000u << tries);
	}
	if (err) {
		snprintf(why, why_len, "cannot send %s to the peer device: %s", command,
			 strerror(-err));
		goto out;
	}
	if ((err = vvol_read(vv, REMOTE_KEY, buf, 0, 4096))) {
		snprintf(why, why_len, "cannot read the result of %s from the peer device: %s",
			 command, strerror(-err));
		goto out;
	}
	if ((err = cb_reply_header((char *)buf, 4096, reply))) {
		snprintf(why, why_len, "the peer device gave no result for %s", command);
		err = -EPROTO;
		goto out;
	}
	if (reply->bytes > 4096) {
		size_t want = (reply->bytes + 511) / 512 * 512;

		if (want > CMDDEV_SLOT_BYTES ||
		    (err = vvol_read(vv, REMOTE_KEY, buf + 4096, 4096, want - 4096))) {
			snprintf(why, why_len, "cannot read the whole result of %s", command);
			err = err ? err : -EPROTO;
			goto out;
		}
	}
	if ((err = cb_reply_parse((char *)buf, reply->bytes, reply, why, why_len)))
		goto out;
	if (strcmp(reply->tag, "module")) {
		snprintf(why, why_len, "the result read back is not ours (tag %s)", reply->tag);
		cb_reply_free(reply);
		err = -EPROTO;
	}
out:
	pthread_mutex_unlock(&remote_lock);
	free(buf);
	vol_put(v);
	return err;
}

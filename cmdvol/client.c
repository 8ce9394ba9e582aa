#include "cmdvol/client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cmdvol/cmddev.h"

int cd_load_key(const char *what, const char *path, uint8_t *key, size_t cap, size_t *len,
		char *why, size_t why_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;
	ssize_t n;

	if (fd < 0) {
		err = -errno;
		snprintf(why, why_len, "%s %s: %s", what, path, strerror(errno));
		return err;
	}
	n = read(fd, key, cap);
	close(fd);
	if (n < 16) {
		snprintf(why, why_len, "%s %s: a key needs at least 16 bytes, the file has %zd", what,
			 path, n);
		return -EINVAL;
	}
	*len = (size_t)n;
	return 0;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int cd_call(struct cd_client *c, const char *command, const char *const *params, int nparams,
	    struct cb_reply *reply, char *why, size_t why_len)
{
	char line[CB_MAX_BYTES + 1], tag[20];
	uint8_t rnd[4];
	uint64_t off = (uint64_t)c->slot * CMDDEV_SLOT_BYTES;
	size_t blk_len, total;
	char *buf;
	int n, err;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	snprintf(tag, sizeof(tag), "c%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	n = cb_encode(command, params, nparams, tag, 1, c->key, c->key_len, c->host, now_us(), line,
		      sizeof(line));
	if (n < 0) {
		snprintf(why, why_len, n == -E2BIG ? "the command is longer than %d bytes" :
			 "the command or a parameter has characters a command block cannot carry "
			 "(names: a-z 0-9 _ -; values: no spaces)", CB_MAX_BYTES);
		return -EINVAL;
	}
	blk_len = ((size_t)n + 511) / 512 * 512;
	buf = calloc(1, CMDDEV_SLOT_BYTES);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, line, (size_t)n);
	if ((err = cdt_write(c->t, off, buf, blk_len, why, why_len)))
		goto out;
	memset(buf, 0, blk_len);
	if ((err = cdt_read(c->t, off, buf, 512, why, why_len)))
		goto out;
	err = cb_reply_header(buf, 512, reply);
	if (err) {
		snprintf(why, why_len, err == -ENODATA ?
			 "no result in slot %u (is this a tandem command device? was the block ignored?)" :
			 "slot %u does not hold a TDM1 result", c->slot);
		err = -EPROTO;
		goto out;
	}
	if (reply->bytes > CMDDEV_SLOT_BYTES) {
		snprintf(why, why_len, "result claims %zu bytes, more than a slot", reply->bytes);
		err = -EPROTO;
		goto out;
	}
	total = (reply->bytes + 511) / 512 * 512;
	if (total > 512 && (err = cdt_read(c->t, off + 512, buf + 512, total - 512, why, why_len)))
		goto out;
	if ((err = cb_reply_parse(buf, total, reply, why, why_len))) {
		err = -EPROTO;
		goto out;
	}
	if (strcmp(reply->tag, tag)) {
		snprintf(why, why_len, "slot %u holds the result of another command (tag %s, ours %s)",
			 c->slot, reply->tag[0] ? reply->tag : "-", tag);
		cb_reply_free(reply);
		err = -EPROTO;
	}
out:
	free(buf);
	return err;
}

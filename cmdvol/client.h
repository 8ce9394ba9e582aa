/* The host side of the protocol: send one command to a command device slot and read its result.
 * Used by tandemctl (and by the functional tests through it). */
#ifndef TANDEM_CMDVOL_CLIENT_H
#define TANDEM_CMDVOL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cmdvol/cmdblock.h"
#include "cmdvol/transport.h"

struct cd_client {
	struct cd_transport *t;
	uint32_t slot;
	const uint8_t *key;                  /* NULL: unsigned blocks */
	size_t key_len;
	char host[CB_HOST_MAX + 1];
};

/* Encode, (sign,) write to the slot, read the result, parse it. 0 with `reply` filled (its
 * status may be any CB_*), or -errno: -EIO/-EBUSY transport, -EPROTO no or foreign result. */
int cd_call(struct cd_client *c, const char *command, const char *const *params, int nparams,
	    struct cb_reply *reply, char *why, size_t why_len);

/* Read a key file (>= 16 bytes): tandemctl's signing key and the command device's auth_key.
 * `what` names it in messages ("key file", "auth_key"). */
int cd_load_key(const char *what, const char *path, uint8_t *key, size_t cap, size_t *len,
		char *why, size_t why_len);

#endif

/* The module's own commands to a peer device (docs/replication.md): a command block written to
 * the peer's command device through a local virtual volume of kind=cmddev, its result read back
 * in the same session. Signed with this device's auth key when it has one. */
#ifndef TANDEM_CMDVOL_REMOTE_H
#define TANDEM_CMDVOL_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "cmdvol/cmdblock.h"

/* 0 with `reply` filled (any status; cb_reply_free it), or -errno with `why`: -ENOENT no such
 * volume, -EINVAL not a command-device vvol, -ENOTCONN/-ETIMEDOUT peer, -EPROTO no result. */
int remote_call(uint64_t peer_volid, const char *command, const char *const *params, int nparams,
		struct cb_reply *reply, char *why, size_t why_len);

#endif

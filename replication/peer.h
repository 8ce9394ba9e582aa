/* Peer sessions: a device's own iSCSI connection to a LU of another device (libiscsi), for
 * virtual volumes now and mirrors and replication later (docs/peer-and-vvol.md).
 * Thread-safe; every call is bounded by the timeout; errors are -errno:
 *   -ENOTCONN / -ETIMEDOUT the peer cannot be reached (reconnects with backoff by itself),
 *   -EIO medium error, -ERANGE LBA out of range, -EROFS write protected, -EBUSY busy,
 *   -EINVAL bad arguments. */
#ifndef TANDEM_REPLICATION_PEER_H
#define TANDEM_REPLICATION_PEER_H

#include <stddef.h>
#include <stdint.h>

struct peer;

struct peer_opts {
	const char *url;            /* iscsi://[user%password@]host[:port]/iqn/lun */
	const char *initiator;      /* our initiator name */
	int timeout_s;              /* per call (default 5) */
	int sessions;               /* pooled sessions (default 4, max 16; vvols use 16) */
	int per_key;                /* sessions per caller key (remote command devices) */
};

int peer_open(const struct peer_opts *o, struct peer **out, char *why, size_t why_len);
void peer_close(struct peer *p);

/* Capacity of the remote LU (connects if needed). */
int peer_capacity(struct peer *p, uint64_t *size_bytes, uint32_t *block_bytes);
/* The remote LU's optimal transfer length (Block Limits VPD; a tandem raid LU's full stripe),
 * 0 when it does not say. */
int peer_opt_xfer(struct peer *p, uint64_t *bytes);
/* `key`: 0, or (per_key peers) the caller's identity, e.g. the host's I_T nexus. */
int peer_read(struct peer *p, uint64_t key, void *buf, uint64_t off_bytes, uint64_t len_bytes);
int peer_write(struct peer *p, uint64_t key, const void *buf, uint64_t off_bytes,
	       uint64_t len_bytes, int fua);
int peer_flush(struct peer *p, uint64_t key);

struct peer_stats {
	uint64_t reads, writes, read_bytes, write_bytes, flushes;
	uint64_t errors, connects, connect_failures;
	int connected;              /* sessions connected now */
	char last_error[200];
};
void peer_get_stats(struct peer *p, struct peer_stats *st);
/* The peer's URL with any CHAP password replaced by *** (for messages and tables). */
const char *peer_url(struct peer *p);
void peer_redact_url(const char *url, char *out, size_t out_len);

#endif

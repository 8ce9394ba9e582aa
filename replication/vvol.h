/* Virtual volumes (docs/peer-and-vvol.md): a volume whose I/O is forwarded to a LU of a peer
 * device over a peer session. */
#ifndef TANDEM_REPLICATION_VVOL_H
#define TANDEM_REPLICATION_VVOL_H

#include <stddef.h>
#include <stdint.h>

#include "raid/vol.h"
#include "replication/peer.h"

struct vvol_opts {
	uint64_t volid;
	int cmddev;                 /* kind=cmddev: the remote LU is a command device */
	int timeout_s;
	int sessions;
	char chap_file[256];        /* "user password" for one-way CHAP; keeps it out of tgtd's log */
};

/* bsopts "volid=N;kind=data|cmddev;timeout_s=S;sessions=N;chap_file=PATH" */
int vvol_opts_parse(const char *bsopts, struct vvol_opts *o, char *why, size_t why_len);

struct vvol;

/* Open: learn size and block size from the peer (bounded by the timeout); when the peer is
 * down, use `known_size_bytes`/`known_block_bytes` (the LUN map's record; 0 = none) and serve
 * errors until it returns. */
int vvol_open(const char *url, const struct vvol_opts *o, const char *initiator,
	      uint64_t known_size_bytes, uint32_t known_block_bytes, struct vol **out, char *why,
	      size_t why_len);
/* The vvol behind a vol (NULL for other types). */
struct vvol *vvol_of(struct vol *v);
int vvol_is_cmddev(struct vvol *vv);
struct peer *vvol_peer(struct vvol *vv);
/* I/O on behalf of a host (`key` = its I_T nexus; matters for kind=cmddev). */
int vvol_read(struct vvol *vv, uint64_t key, void *buf, uint64_t off_bytes, uint64_t len_bytes);
int vvol_write(struct vvol *vv, uint64_t key, const void *buf, uint64_t off_bytes,
	       uint64_t len_bytes);

#endif

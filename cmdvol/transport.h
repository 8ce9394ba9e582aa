/* How tandemctl reaches a command device: a Linux block device (O_DIRECT, as dd does) or an
 * iscsi:// URL (libiscsi). Blocks are 512 bytes. All calls return 0 or -errno and say why. */
#ifndef TANDEM_CMDVOL_TRANSPORT_H
#define TANDEM_CMDVOL_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

struct cd_transport;

int cdt_open(const char *where, const char *initiator, int timeout_s, struct cd_transport **out,
	     char *why, size_t why_len);
void cdt_close(struct cd_transport *t);
/* len and off are multiples of 512. */
int cdt_write(struct cd_transport *t, uint64_t off_bytes, const void *buf, size_t len,
	      char *why, size_t why_len);
int cdt_read(struct cd_transport *t, uint64_t off_bytes, void *buf, size_t len, char *why,
	     size_t why_len);
uint64_t cdt_size_bytes(struct cd_transport *t);

#endif

/* A RAID array as a tandem volume: open the member paths, create or assemble, wrap in a vol. */
#ifndef TANDEM_RAID_RAIDVOL_H
#define TANDEM_RAID_RAIDVOL_H

#include <stddef.h>

#include "raid/opts.h"
#include "raid/raid.h"
#include "raid/vol.h"

/* `members` is "m0;m1;...". `block_bytes` is the LU's logical block at create (0: 512); at
 * assembly, if non-zero, it must match the array's. On failure `why` names the member or option. */
int raidvol_open(const char *members, const struct raid_opts *o, uint32_t block_bytes,
		 struct vol **out, char *why, size_t why_len);
/* The array behind a raid volume (NULL for other types). */
struct raid_vol *raidvol_array(struct vol *v);

#endif

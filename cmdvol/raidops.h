/* Long RAID operations the module starts by itself (a rebuild that resumes after a restart). */
#ifndef TANDEM_CMDVOL_RAIDOPS_H
#define TANDEM_CMDVOL_RAIDOPS_H

#include <stdint.h>

#include "raid/vol.h"

/* Run the rebuild of a raid volume (raid_rebuild_begin done, or resumed at assembly) as an
 * operation; returns its id or -errno. */
int64_t raidops_start_rebuild(struct vol *v);

#endif

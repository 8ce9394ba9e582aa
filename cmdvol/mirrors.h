/* The device's LU mirrors (docs/mirror.md): table entries in the device tables, open mirrors,
 * their copier operations, and attaching volumes as their LUs come and go. */
#ifndef TANDEM_CMDVOL_MIRRORS_H
#define TANDEM_CMDVOL_MIRRORS_H

#include "raid/vol.h"

/* Open and attach what the tables name and the registry has; start copiers that are due.
 * Called after a volume is attached (LU open) and by the mirror commands. */
void mirrors_reconcile(void);
/* A volume's LU is closing: detach it from every mirror first. */
void mirrors_volume_closing(struct vol *v);

#endif

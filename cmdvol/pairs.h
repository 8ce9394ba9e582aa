/* The device's replication pairs (docs/replication.md): the pair table in the device tables, the
 * open pairs, attaching volumes as their LUs come and go, and the pair-* commands. */
#ifndef TANDEM_CMDVOL_PAIRS_H
#define TANDEM_CMDVOL_PAIRS_H

#include "cmdvol/cmddev.h"
#include "raid/vol.h"

/* Open what the tables name, attach the volumes the registry has. After every LU open. */
void pairs_reconcile(void);
/* A volume's LU is closing: detach it from every pair first. */
void pairs_volume_closing(struct vol *v);
/* Close every pair (module unload, command device closing). */
void pairs_shutdown(void);

/* command handlers (commands.c's table) */
int c_pair_create(struct exec_ctx *x);
int c_pair_status(struct exec_ctx *x);
int c_pair_acquire(struct exec_ctx *x);
int c_pair_restore(struct exec_ctx *x);
int c_pair_purge(struct exec_ctx *x);
int c_pair_delete(struct exec_ctx *x);
int c_pair_mode(struct exec_ctx *x);
int c_pair_confirm(struct exec_ctx *x);
int c_pair_suspend(struct exec_ctx *x);
int c_pair_resume(struct exec_ctx *x);
int c_pair_swap(struct exec_ctx *x);
int c_pair_resync(struct exec_ctx *x);
int c_pair_dirty(struct exec_ctx *x);
int c_pair_delta_done(struct exec_ctx *x);
int c_pair_takeover(struct exec_ctx *x);

#endif

/* A command device (docs/command-device.md): slots that carry command blocks in and results out,
 * per-host results, authentication, and the device tables in the same backing file. One per
 * device (process): it owns the device's tables. */
#ifndef TANDEM_CMDVOL_CMDDEV_H
#define TANDEM_CMDVOL_CMDDEV_H

#include <stddef.h>
#include <stdint.h>

#include "cmdvol/cmdblock.h"
#include "cmdvol/tables.h"
#include "raid/vol.h"

#define CMDDEV_BLOCK_BYTES 512u
#define CMDDEV_SLOT_BYTES (256u * 1024u)
#define CMDDEV_DEFAULT_SLOTS 16u
#define CMDDEV_MAX_SLOTS 256u
#define CMDDEV_MAX_RESULTS 1024
#define CMDDEV_RESULT_TTL_S 120

struct cmddev_opts {
	uint64_t volid;
	int create;
	char device[TABLES_NAME_MAX + 1];   /* device name, at create */
	uint32_t slots;
	char auth_key_path[256];            /* "" = no authentication */
};

/* bsopts "volid=N;create=1;device=NAME;slots=N;auth_key=PATH" */
int cmddev_opts_parse(const char *bsopts, struct cmddev_opts *o, char *why, size_t why_len);

struct cmddev;

int cmddev_open(const char *path, const struct cmddev_opts *o, struct cmddev **out, char *why,
		size_t why_len);
/* Stop being the device's command device and drop the cmddev's own reference to its volume
 * (vol_unregister it first if it was registered); the memory and the tables file lock go with
 * the last vol_put. */
void cmddev_close(struct cmddev *cd);
struct vol *cmddev_vol(struct cmddev *cd);

/* Data path. `nexus` identifies the host's session (tgt's I_T nexus id).
 * write: a command block in a slot's first block is executed; 0, or -EBUSY (result table full:
 * not executed). read: this host's result for the slot, zeros elsewhere. */
int cmddev_write(struct cmddev *cd, uint64_t nexus, uint64_t off_bytes, const void *buf,
		 uint64_t len_bytes);
int cmddev_read(struct cmddev *cd, uint64_t nexus, uint64_t off_bytes, void *buf,
		uint64_t len_bytes);

/* Execute one block and return the rendered result (malloc'd, NULL when the command produced
 * nothing to keep). -ENODATA: not a command block. For tests and the fuzzer. */
int cmddev_execute(struct cmddev *cd, uint64_t nexus, const void *block, size_t len,
		   char **result, size_t *result_len);

/* The device's command device and tables (NULL when none is open). */
struct cmddev *cmddev_current(void);
struct tables *cmddev_tables(struct cmddev *cd);

/* What a command handler sees (commands.c). */
struct exec_ctx {
	struct cmddev *cd;
	struct tables *tables;
	const struct cmdblock *cb;
	struct cb_result *res;
	uint64_t nexus;
};

struct command {
	int no;                             /* process number */
	const char *name;
	const char *params;                 /* "volid [force]": required, [optional] */
	int (*run)(struct exec_ctx *x);     /* sets res status; returns it */
	const char *help;
};
extern const struct command commands[];
const struct command *command_find(const char *name_or_no);

/* Device facts for `info`. */
const char *cmddev_device_name(struct cmddev *cd);
uint32_t cmddev_slots(struct cmddev *cd);
int cmddev_has_key(struct cmddev *cd);
/* The device's auth key (NULL, 0 when none): the module signs the commands it sends to a peer
 * device's command device with it (docs/replication.md). */
void cmddev_key(struct cmddev *cd, const uint8_t **key, size_t *len);
double cmddev_uptime_s(struct cmddev *cd);

#endif

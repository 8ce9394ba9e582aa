/* What every tandem LU keeps behind tgt's scsi_lu (after tgt's bs_thread_info). */
#ifndef TANDEM_TARGET_LU_H
#define TANDEM_TARGET_LU_H

#include <pthread.h>

#include "target/tgt.h"
#include "raid/vol.h"

struct cmddev;
struct vvol;

struct tandem_lu {
	struct vol *vol;           /* set by bs_open, dropped by bs_close */
	struct cmddev *cmddev;     /* bstype cmddev: the command device behind vol */
	struct vvol *vvol;         /* bstype vvol */
	char *bsopts;              /* copy of --bsopts, parsed again by bs_open */
	pthread_mutex_t caw_lock;  /* serialises COMPARE AND WRITE of this LU */
};

static inline struct tandem_lu *TANDEM_LU(struct scsi_lu *lu)
{
	return (struct tandem_lu *)((char *)BS_THREAD_I(lu) + sizeof(struct bs_thread_info));
}

/* sense.c: the one table from -errno to SCSI sense; logs the failure. */
void tandem_fail(struct scsi_cmd *cmd, int err, int is_write, const char *what);
/* datapath.c: the data-path request function shared by every tandem bstype. */
void tandem_request(struct scsi_cmd *cmd);
/* cmddev_lu.c: the data path of command devices (called by tandem_request). */
void tandem_cmddev_request(struct scsi_cmd *cmd, struct cmddev *cd);
/* bs_tandem.c: register the volume, give tgt its size and a placeholder fd. */
int tandem_attach_volume(struct scsi_lu *lu, struct vol *v, int *fd, uint64_t *size);
/* cmddev_lu.c: bs_open of bstype cmddev. */
int tandem_cmddev_open(struct scsi_lu *lu, char *path, int *fd, uint64_t *size);
/* vvol_lu.c: bs_open of bstype vvol; the nexus-aware path of kind=cmddev (1 = handled). */
int tandem_vvol_open(struct scsi_lu *lu, char *path, int *fd, uint64_t *size);
int tandem_vvol_cmddev_request(struct scsi_cmd *cmd, struct vvol *vv);
/* Log lines of the libraries and of target/ go to tgtd's log. */
void tandem_log_init(void);
#define tlog_lu(lu, lvl, fmt, ...) \
	tlog(lvl, "tid %d lun %llu: " fmt, (lu)->tgt ? (lu)->tgt->tid : -1, \
	     (unsigned long long)(lu)->lun, ##__VA_ARGS__)

#endif

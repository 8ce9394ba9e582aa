/* bstype cmddev: a command device LU (docs/command-device.md). READ/WRITE carry command blocks
 * and results per host (tgt's I_T nexus id); everything else a disk would do is a no-op. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "target/tandem_lu.h"
#include "cmdvol/cmddev.h"
#include "raid/tlog.h"

void tandem_cmddev_request(struct scsi_cmd *cmd, struct cmddev *cd)
{
	int err = 0, is_write = 0;

	switch (cmd->scb[0]) {
	case READ_6:
	case READ_10:
	case READ_12:
	case READ_16:
		err = cmddev_read(cd, cmd->cmd_itn_id, cmd->offset, scsi_get_in_buffer(cmd),
				  scsi_get_in_length(cmd));
		break;
	case WRITE_6:
	case WRITE_10:
	case WRITE_12:
	case WRITE_16:
		is_write = 1;
		err = cmddev_write(cd, cmd->cmd_itn_id, cmd->offset, scsi_get_out_buffer(cmd),
				   scsi_get_out_length(cmd));
		break;
	default: /* SYNCHRONIZE CACHE, PRE-FETCH: nothing to do */
		break;
	}
	if (err == -EBUSY) {
		/* Result table full (logged by cmdvol): the host retries. */
		scsi_set_result(cmd, SAM_STAT_BUSY);
	} else if (err) {
		tandem_fail(cmd, err, is_write, "command device");
	}
}

int tandem_cmddev_open(struct scsi_lu *lu, char *path, int *fd, uint64_t *size);
int tandem_cmddev_open(struct scsi_lu *lu, char *path, int *fd, uint64_t *size)
{
	struct tandem_lu *t = TANDEM_LU(lu);
	struct cmddev_opts o;
	struct cmddev *cd;
	char why[512];
	int err;

	if ((err = cmddev_opts_parse(t->bsopts, &o, why, sizeof(why))))
		goto fail;
	if (lu->blk_shift != 9) {
		snprintf(why, sizeof(why), "a command device has 512-byte blocks (no --blocksize)");
		err = -EINVAL;
		goto fail;
	}
	if ((err = cmddev_open(path, &o, &cd, why, sizeof(why))))
		goto fail;
	t->cmddev = cd;
	if ((err = tandem_attach_volume(lu, cmddev_vol(cd), fd, size))) {
		t->cmddev = NULL;
		cmddev_close(cd);
		return err;
	}
	tlog_lu(lu, TLOG_INFO, "command device volid %" PRIu64 " of device '%s' (%s): %u slots%s",
		o.volid, cmddev_device_name(cd), tables_device_uuid(cmddev_tables(cd)),
		cmddev_slots(cd), cmddev_has_key(cd) ? ", signed blocks required" : "");
	return 0;
fail:
	tlog_lu(lu, TLOG_ERR, "cannot open command device: %s", why);
	return err;
}

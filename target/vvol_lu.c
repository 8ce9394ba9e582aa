/* bstype vvol: a virtual volume forwarded to a peer device's LU (docs/peer-and-vvol.md).
 * The LUN map (seed 004 Fig. 3) is recorded in the device tables when a command device is
 * open, so a vvol can open (and answer NOT READY) while its peer is down. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "target/tandem_lu.h"
#include "cmdvol/cmddev.h"
#include "raid/tlog.h"
#include "replication/vvol.h"

struct map_arg {
	uint64_t volid;
	const char *url;
	int kind_cmddev;
	uint64_t size_bytes;
	uint32_t block_bytes;
	int found;
};

static void map_find(const char *line, void *p)
{
	struct map_arg *a = p;
	char buf[64];

	if (!tbl_get(line, "volid", buf, sizeof(buf)) || strtoull(buf, NULL, 10) != a->volid)
		return;
	if (tbl_get(line, "size_bytes", buf, sizeof(buf)))
		a->size_bytes = strtoull(buf, NULL, 10);
	if (tbl_get(line, "block_bytes", buf, sizeof(buf)))
		a->block_bytes = (uint32_t)strtoul(buf, NULL, 10);
	a->found = 1;
}

static int map_record(struct tbl_recs *r, void *p)
{
	struct map_arg *a = p;
	char id[32], url[700];
	int i;

	snprintf(id, sizeof(id), "%" PRIu64, a->volid);
	if ((i = tbl_find(r, "lunmap", "volid", id)) >= 0)
		tbl_del(r, i);
	cb_pct_encode(a->url, url, sizeof(url));
	return tbl_add(r, "lunmap volid=%" PRIu64 " url=%s kind=%s size_bytes=%" PRIu64
		       " block_bytes=%u", a->volid, url, a->kind_cmddev ? "cmddev" : "data",
		       a->size_bytes, a->block_bytes);
}

int tandem_vvol_open(struct scsi_lu *lu, char *path, int *fd, uint64_t *size)
{
	struct tandem_lu *t = TANDEM_LU(lu);
	struct cmddev *cd = cmddev_current();
	struct vvol_opts o;
	char safe[700];
	struct map_arg m = { .url = safe };
	struct vol *v;
	char why[768], initiator[160];
	int err;

	peer_redact_url(path, safe, sizeof(safe));   /* no CHAP password in tables or logs */
	if ((err = vvol_opts_parse(t->bsopts, &o, why, sizeof(why))))
		goto fail;
	m.volid = o.volid;
	m.kind_cmddev = o.cmddev;
	if (cd)
		tables_each(cmddev_tables(cd), "lunmap", map_find, &m);
	snprintf(initiator, sizeof(initiator), "iqn.2026-11.org.tandem:%s",
		 cd ? cmddev_device_name(cd) : "device");
	if ((err = vvol_open(path, &o, initiator, m.size_bytes, m.block_bytes, &v, why, sizeof(why))))
		goto fail;
	if ((v->block_bytes != 512 && v->block_bytes != 4096) ||
	    (o.cmddev && v->block_bytes != 512)) {
		snprintf(why, sizeof(why), "peer LU has %u-byte blocks: not supported", v->block_bytes);
		vol_put(v);
		err = -EINVAL;
		goto fail;
	}
	m.size_bytes = v->size_bytes;
	m.block_bytes = v->block_bytes;
	if (cd && tables_update(cmddev_tables(cd), map_record, &m))
		tlog_lu(lu, TLOG_WARN, "cannot record the LUN map entry of volid %" PRIu64, o.volid);
	if ((err = tandem_attach_volume(lu, v, fd, size))) {
		vol_put(v);
		return err;
	}
	t->vvol = vvol_of(v);
	tlog_lu(lu, TLOG_INFO, "vvol volid %" PRIu64 " -> %s (%s, %" PRIu64 " bytes, block %u)",
		o.volid, safe, o.cmddev ? "remote command device" : "data", v->size_bytes,
		v->block_bytes);
	return 0;
fail:
	tlog_lu(lu, TLOG_ERR, "cannot open virtual volume: %s", why);
	return err;
}

/* kind=cmddev: READ/WRITE on the host's own peer session (results stay per host). */
int tandem_vvol_cmddev_request(struct scsi_cmd *cmd, struct vvol *vv)
{
	int err;

	switch (cmd->scb[0]) {
	case READ_6:
	case READ_10:
	case READ_12:
	case READ_16:
		err = vvol_read(vv, cmd->cmd_itn_id, scsi_get_in_buffer(cmd), cmd->offset,
				scsi_get_in_length(cmd));
		if (err)
			tandem_fail(cmd, err, 0, "forwarded read");
		return 1;
	case WRITE_6:
	case WRITE_10:
	case WRITE_12:
	case WRITE_16:
		err = vvol_write(vv, cmd->cmd_itn_id, scsi_get_out_buffer(cmd), cmd->offset,
				 scsi_get_out_length(cmd));
		if (err)
			tandem_fail(cmd, err, 1, "forwarded write");
		return 1;
	case SYNCHRONIZE_CACHE:
	case SYNCHRONIZE_CACHE_16:
	case PRE_FETCH_10:
	case PRE_FETCH_16:
		return 1;   /* nothing to do, as on the command device itself */
	default:
		/* WRITE SAME, VERIFY, ORWRITE...: the command device refuses them, so does its vvol
		 * (on a shared session they could even land in another host's slot) */
		scsi_set_result(cmd, SAM_STAT_CHECK_CONDITION);
		sense_data_build(cmd, ILLEGAL_REQUEST, ASC_INVALID_OP_CODE);
		return 1;
	}
}

/* The data path of every tandem LU: SCSI block commands → vol_read / vol_write / vol_flush.
 * Runs on tgt's worker threads (16 per LU), concurrently; semantics follow stock bs_rdwr. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "target/tandem_lu.h"
#include "raid/tlog.h"
#include "replication/vvol.h"

#define BATCH_BYTES (1u << 20)

/* Write-cache disabled (WCE=0 in the caching mode page) or FUA: the write must be durable. */
static int write_needs_flush(struct scsi_cmd *cmd)
{
	struct mode_pg *pg = find_mode_page(cmd->dev, 0x08, 0);

	if (cmd->scb[0] != WRITE_6 && (cmd->scb[1] & 0x8))
		return 1;
	return pg && !(pg->mode_data[0] & 0x04);
}

static int do_write(struct scsi_cmd *cmd, struct vol *v, const void *buf, uint64_t off,
		    uint64_t len)
{
	int err = vol_write(v, buf, off, len);

	if (!err && write_needs_flush(cmd))
		err = vol_flush(v);
	return err;
}

/* Write zeros over [off, off+len) in batches. */
static int write_zeros(struct vol *v, uint64_t off, uint64_t len)
{
	void *z = calloc(1, len < BATCH_BYTES ? len : BATCH_BYTES);
	int err = 0;

	if (!z)
		return -ENOMEM;
	while (len && !err) {
		uint64_t n = len < BATCH_BYTES ? len : BATCH_BYTES;

		err = vol_write(v, z, off, n);
		off += n;
		len -= n;
	}
	free(z);
	return err;
}

/* WRITE SAME: repeat one block (with LBDATA/PBDATA stamping) over the range, batched. */
static int write_same(struct scsi_cmd *cmd, struct vol *v)
{
	uint32_t bs = 1u << cmd->dev->blk_shift;
	uint64_t off = cmd->offset, len = cmd->tl;
	uint8_t *pattern = scsi_get_out_buffer(cmd), *batch;
	int err = 0;

	if (cmd->scb[1] & 0x08) /* UNMAP bit: thin LUs only (sbc checked); deallocated reads 0 */
		return write_zeros(v, off, len);
	batch = malloc(len < BATCH_BYTES ? len : BATCH_BYTES);
	if (!batch)
		return -ENOMEM;
	while (len && !err) {
		uint64_t n = len < BATCH_BYTES ? len : BATCH_BYTES;

		for (uint64_t o = 0; o < n; o += bs) {
			uint64_t lba = (off + o) >> cmd->dev->blk_shift;

			memcpy(batch + o, pattern, bs);
			switch (cmd->scb[1] & 0x06) {
			case 0x02: /* LBDATA */
				put_unaligned_be32((uint32_t)lba, batch + o);
				break;
			case 0x04: /* PBDATA */
				put_unaligned_be64(lba, batch + o);
				break;
			}
		}
		err = vol_write(v, batch, off, n);
		off += n;
		len -= n;
	}
	free(batch);
	if (!err && write_needs_flush(cmd))
		err = vol_flush(v);
	return err;
}

static int do_unmap(struct scsi_cmd *cmd, struct vol *v)
{
	uint32_t len = scsi_get_out_length(cmd);
	uint8_t *p = scsi_get_out_buffer(cmd);
	int err = 0;

	if (!cmd->dev->attrs.thinprovisioning)
		return -EINVAL;
	if (len < 8)
		return 0;
	for (p += 8, len -= 8; len >= 16 && !err; p += 16, len -= 16) {
		uint64_t off = get_unaligned_be64(p) << cmd->dev->blk_shift;
		uint64_t n = (uint64_t)get_unaligned_be32(p + 8) << cmd->dev->blk_shift;

		if (off + n > cmd->dev->size || off + n < off)
			return -ERANGE;
		if (n)
			err = write_zeros(v, off, n);
	}
	return err;
}

/* Compare `len` bytes at `off` with buf: 0, -EILSEQ with the first differing byte, or -errno. */
static int compare(struct vol *v, const uint8_t *buf, uint64_t off, uint64_t len, uint64_t *pos)
{
	uint8_t *tmp = malloc(len ? len : 1);
	int err;

	if (!tmp)
		return -ENOMEM;
	err = vol_read(v, tmp, off, len);
	if (!err && memcmp(tmp, buf, len)) {
		for (*pos = 0; *pos < len && tmp[*pos] == buf[*pos]; (*pos)++)
			;
		err = -EILSEQ;
	}
	free(tmp);
	return err;
}

void tandem_request(struct scsi_cmd *cmd)
{
	struct scsi_lu *lu = cmd->dev;
	struct tandem_lu *t = TANDEM_LU(lu);
	struct vol *v = t->vol;
	uint64_t pos = 0;
	uint32_t len;
	uint8_t *buf, *tmp;
	int err = 0, is_write = 0;

	scsi_set_result(cmd, SAM_STAT_GOOD);
	if (!v) {
		tandem_fail(cmd, -ENODEV, 0, "no volume");
		return;
	}
	if (t->cmddev) {
		tandem_cmddev_request(cmd, t->cmddev);
		return;
	}
	if (t->vvol && vvol_is_cmddev(t->vvol) && tandem_vvol_cmddev_request(cmd, t->vvol))
		return;
	switch (cmd->scb[0]) {
	case READ_6:
	case READ_10:
	case READ_12:
	case READ_16:
		err = vol_read(v, scsi_get_in_buffer(cmd), cmd->offset, scsi_get_in_length(cmd));
		break;
	case WRITE_6:
	case WRITE_10:
	case WRITE_12:
	case WRITE_16:
		is_write = 1;
		err = do_write(cmd, v, scsi_get_out_buffer(cmd), cmd->offset,
			       scsi_get_out_length(cmd));
		break;
	case WRITE_VERIFY:
	case WRITE_VERIFY_12:
	case WRITE_VERIFY_16:
		is_write = 1;
		err = do_write(cmd, v, scsi_get_out_buffer(cmd), cmd->offset,
			       scsi_get_out_length(cmd));
		if (!err)
			err = compare(v, scsi_get_out_buffer(cmd), cmd->offset,
				      scsi_get_out_length(cmd), &pos);
		break;
	case SYNCHRONIZE_CACHE:
	case SYNCHRONIZE_CACHE_16:
		if (cmd->scb[1] & 0x2) /* IMMED: not supported, as stock rdwr */
			err = -EINVAL;
		else
			err = vol_flush(v);
		break;
	case WRITE_SAME:
	case WRITE_SAME_16:
		is_write = 1;
		err = write_same(cmd, v);
		break;
	case UNMAP:
		is_write = 1;
		err = do_unmap(cmd, v);
		break;
	case ORWRITE_16:
		is_write = 1;
		len = scsi_get_out_length(cmd);
		buf = scsi_get_out_buffer(cmd);
		tmp = malloc(len ? len : 1);
		if (!tmp) {
			err = -ENOMEM;
			break;
		}
		pthread_mutex_lock(&t->caw_lock);
		err = vol_read(v, tmp, cmd->offset, len);
		if (!err) {
			for (uint32_t i = 0; i < len; i++)
				buf[i] |= tmp[i];
			err = do_write(cmd, v, buf, cmd->offset, len);
		}
		pthread_mutex_unlock(&t->caw_lock);
		free(tmp);
		break;
	case COMPARE_AND_WRITE:
		is_write = 1;
		len = scsi_get_out_length(cmd) / 2;
		if (len != cmd->tl) {
			err = -EINVAL;
			break;
		}
		buf = scsi_get_out_buffer(cmd);
		pthread_mutex_lock(&t->caw_lock);
		err = compare(v, buf, cmd->offset, len, &pos);
		if (!err)
			err = do_write(cmd, v, buf + len, cmd->offset, len);
		pthread_mutex_unlock(&t->caw_lock);
		break;
	case VERIFY_10:
	case VERIFY_12:
	case VERIFY_16:
		/* BYTCHK=0: the medium is checked by reading it; BYTCHK=1: compare with the data. */
		len = scsi_get_out_length(cmd);
		if (len)
			err = compare(v, scsi_get_out_buffer(cmd), cmd->offset, len, &pos);
		else
			err = vol_read(v, NULL, cmd->offset, 0);
		break;
	case PRE_FETCH_10:
	case PRE_FETCH_16:
	default:
		break;
	}
	if (err == -EILSEQ) {
		scsi_set_result(cmd, SAM_STAT_CHECK_CONDITION);
		sense_data_build_with_info(cmd, MISCOMPARE, ASC_MISCOMPARE_DURING_VERIFY_OPERATION,
					   pos);
	} else if (err) {
		tandem_fail(cmd, err, is_write, is_write ? "write failed" : "read failed");
	}
}

/* -errno from the libraries → SCSI sense, in one table. */
#include <errno.h>
#include <string.h>

#include "target/tandem_lu.h"
#include "raid/tlog.h"

struct sense_map {
	int err;
	uint8_t key;
	uint16_t asc_read;
	uint16_t asc_write;
};

static const struct sense_map sense_table[] = {
	{ ERANGE,     ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE,      ASC_LBA_OUT_OF_RANGE },
	{ EINVAL,     ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB,  ASC_INVALID_FIELD_IN_CDB },
	{ EROFS,      DATA_PROTECT,    ASC_WRITE_PROTECT,         ASC_WRITE_PROTECT },
	{ EACCES,     DATA_PROTECT,    ASC_WRITE_PROTECT,         ASC_WRITE_PROTECT },
	{ EILSEQ,     MISCOMPARE,      ASC_MISCOMPARE_DURING_VERIFY_OPERATION,
				       ASC_MISCOMPARE_DURING_VERIFY_OPERATION },
	{ EIO,        MEDIUM_ERROR,    ASC_READ_ERROR,            ASC_WRITE_ERROR },
	{ ENODEV,     NOT_READY,       ASC_LOGICAL_UNIT_NOT_CONFIG, ASC_LOGICAL_UNIT_NOT_CONFIG },
	{ EAGAIN,     NOT_READY,       ASC_BECOMING_READY,        ASC_BECOMING_READY },
	/* a virtual volume's peer is down: LOGICAL UNIT COMMUNICATION FAILURE */
	{ ENOTCONN,   NOT_READY,       0x0800,                    0x0800 },
	{ ETIMEDOUT,  NOT_READY,       0x0801,                    0x0801 },
	{ EBUSY,      NOT_READY,       ASC_BECOMING_READY,        ASC_BECOMING_READY },
	{ ENOMEM,     HARDWARE_ERROR,  ASC_INTERNAL_TGT_FAILURE,  ASC_INTERNAL_TGT_FAILURE },
};

void tandem_fail(struct scsi_cmd *cmd, int err, int is_write, const char *what)
{
	const struct sense_map *m = NULL;
	uint8_t key = HARDWARE_ERROR;
	uint16_t asc = ASC_INTERNAL_TGT_FAILURE;

	for (size_t i = 0; i < sizeof(sense_table) / sizeof(sense_table[0]); i++)
		if (sense_table[i].err == -err)
			m = &sense_table[i];
	if (m) {
		key = m->key;
		asc = is_write ? m->asc_write : m->asc_read;
	}
	if (-err != EILSEQ)
		tlog_lu(cmd->dev, TLOG_ERR, "%s (opcode 0x%02x, offset %llu, length %u): %s -> sense "
			"key 0x%x asc 0x%04x", what, cmd->scb[0], (unsigned long long)cmd->offset,
			cmd->tl, strerror(-err), key, asc);
	scsi_set_result(cmd, SAM_STAT_CHECK_CONDITION);
	sense_data_build(cmd, key, asc);
}

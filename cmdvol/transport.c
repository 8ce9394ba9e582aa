#include "cmdvol/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raid/util.h"

struct cd_transport {
	int fd;                             /* block device or file; -1 for iSCSI */
	struct iscsi_context *iscsi;
	int lun;
	uint64_t size_bytes;
	char where[512];
};

static int open_iscsi(struct cd_transport *t, const char *url, const char *initiator,
		      int timeout_s, char *why, size_t why_len)
{
	struct iscsi_url *u;
	struct scsi_task *task;
	struct scsi_readcapacity16 *rc;

	t->iscsi = iscsi_create_context(initiator);
	if (!t->iscsi) {
		snprintf(why, why_len, "cannot create an iSCSI context");
		return -ENOMEM;
	}
	u = iscsi_parse_full_url(t->iscsi, url);
	if (!u) {
		snprintf(why, why_len, "bad URL %s: %s", url, iscsi_get_error(t->iscsi));
		return -EINVAL;
	}
	iscsi_set_session_type(t->iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(t->iscsi, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	iscsi_set_timeout(t->iscsi, timeout_s);
	iscsi_set_noautoreconnect(t->iscsi, 1);
	if (iscsi_full_connect_sync(t->iscsi, u->portal, u->lun) != 0) {
		snprintf(why, why_len, "cannot log in to %s: %s", url, iscsi_get_error(t->iscsi));
		iscsi_destroy_url(u);
		return -ECONNREFUSED;
	}
	t->lun = u->lun;
	iscsi_destroy_url(u);
	task = iscsi_readcapacity16_sync(t->iscsi, t->lun);
	if (!task || task->status != SCSI_STATUS_GOOD ||
	    !(rc = scsi_datain_unmarshall(task))) {
		snprintf(why, why_len, "READ CAPACITY on %s failed: %s", url, iscsi_get_error(t->iscsi));
		if (task)
			scsi_free_scsi_task(task);
		return -EIO;
	}
	if (rc->block_length != 512) {
		snprintf(why, why_len, "%s has %u-byte blocks: not a command device", url,
			 rc->block_length);
		scsi_free_scsi_task(task);
		return -EINVAL;
	}
	t->size_bytes = (rc->returned_lba + 1) * 512;
	scsi_free_scsi_task(task);
	return 0;
}

int cdt_open(const char *where, const char *initiator, int timeout_s, struct cd_transport **out,
	     char *why, size_t why_len)
{
	struct cd_transport *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return -ENOMEM;
	t->fd = -1;
	snprintf(t->where, sizeof(t->where), "%s", where);
	if (!strncmp(where, "iscsi://", 8)) {
		err = open_iscsi(t, where, initiator, timeout_s, why, why_len);
	} else {
		struct stat st;

		t->fd = open(where, O_RDWR | O_DIRECT | O_CLOEXEC);
		if (t->fd < 0) {
			err = -errno;
			snprintf(why, why_len, "%s: %s", where, strerror(errno));
		} else if (fstat(t->fd, &st)) {
			err = -errno;
			snprintf(why, why_len, "%s: %s", where, strerror(errno));
		} else if (S_ISBLK(st.st_mode)) {
			err = ioctl(t->fd, BLKGETSIZE64, &t->size_bytes) ? -errno : 0;
			if (err)
				snprintf(why, why_len, "%s: BLKGETSIZE64: %s", where, strerror(-err));
		} else {
			t->size_bytes = (uint64_t)st.st_size;
			err = 0;
		}
	}
	if (err) {
		cdt_close(t);
		return err;
	}
	*out = t;
	return 0;
}

void cdt_close(struct cd_transport *t)
{
	if (!t)
		return;
	if (t->iscsi) {
		iscsi_logout_sync(t->iscsi);
		iscsi_destroy_context(t->iscsi);
	}
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

uint64_t cdt_size_bytes(struct cd_transport *t) { return t->size_bytes; }

static int scsi_io(struct cd_transport *t, int is_write, uint64_t off, void *buf, size_t len,
		   char *why, size_t why_len)
{
	struct scsi_task *task;
	int err = 0;

	if (is_write)
		task = iscsi_write16_sync(t->iscsi, t->lun, off / 512, buf, (uint32_t)len, 512, 0, 0,
					  0, 0, 0);
	else
		task = iscsi_read16_sync(t->iscsi, t->lun, off / 512, (uint32_t)len, 512, 0, 0, 0, 0, 0);
	if (!task) {
		snprintf(why, why_len, "%s: %s failed: %s", t->where, is_write ? "WRITE" : "READ",
			 iscsi_get_error(t->iscsi));
		return -EIO;
	}
	if (task->status == SCSI_STATUS_BUSY) {
		snprintf(why, why_len, "%s: the command device is busy (too many unread results)",
			 t->where);
		err = -EBUSY;
	} else if (task->status != SCSI_STATUS_GOOD) {
		snprintf(why, why_len, "%s: %s failed: %s", t->where, is_write ? "WRITE" : "READ",
			 iscsi_get_error(t->iscsi));
		err = -EIO;
	} else if (!is_write) {
		if ((size_t)task->datain.size < len) {
			snprintf(why, why_len, "%s: short read", t->where);
			err = -EIO;
		} else {
			memcpy(buf, task->datain.data, len);
		}
	}
	scsi_free_scsi_task(task);
	return err;
}

static int fd_io(struct cd_transport *t, int is_write, uint64_t off, void *buf, size_t len,
		 char *why, size_t why_len)
{
	void *a;
	int err;

	/* O_DIRECT wants aligned memory */
	if (posix_memalign(&a, 4096, len))
		return -ENOMEM;
	if (is_write)
		memcpy(a, buf, len);
	err = is_write ? full_pwrite(t->fd, a, len, (off_t)off) : full_pread(t->fd, a, len, (off_t)off);
	if (err)
		snprintf(why, why_len, "%s: %s at %llu: %s", t->where, is_write ? "write" : "read",
			 (unsigned long long)off, strerror(-err));
	else if (!is_write)
		memcpy(buf, a, len);
	free(a);
	return err;
}

int cdt_write(struct cd_transport *t, uint64_t off, const void *buf, size_t len, char *why,
	      size_t why_len)
{
	return t->iscsi ? scsi_io(t, 1, off, (void *)buf, len, why, why_len)
			: fd_io(t, 1, off, (void *)buf, len, why, why_len);
}

int cdt_read(struct cd_transport *t, uint64_t off, void *buf, size_t len, char *why,
	     size_t why_len)
{
	return t->iscsi ? scsi_io(t, 0, off, buf, len, why, why_len)
			: fd_io(t, 0, off, buf, len, why, why_len);
}

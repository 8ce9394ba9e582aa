#include "raid/member.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raid/util.h"

struct file_member {
	int fd;
	dev_t dev;
	ino_t ino;
	int is_blk;
};

static int file_pread(struct raid_member *m, void *buf, size_t len, uint64_t off)
{
	struct file_member *f = m->priv;

	return full_pread(f->fd, buf, len, (off_t)off);
}

static int file_pwrite(struct raid_member *m, const void *buf, size_t len, uint64_t off)
{
	struct file_member *f = m->priv;

	return full_pwrite(f->fd, buf, len, (off_t)off);
}

static int file_flush(struct raid_member *m)
{
	struct file_member *f = m->priv;

	return fdatasync(f->fd) ? -errno : 0;
}

static int write_zeros(struct raid_member *m, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];

	while (len) {
		size_t n = len > sizeof(zeros) ? sizeof(zeros) : (size_t)len;
		int err = m->ops->pwrite(m, zeros, n, off);

		if (err)
			return err;
		off += n;
		len -= n;
	}
	return 0;
}

static int file_zero(struct raid_member *m, uint64_t off, uint64_t len)
{
	struct file_member *f = m->priv;
	uint64_t range[2] = { off, len };

	if (!f->is_blk) {
		if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len) == 0)
			return 0;
	} else if (ioctl(f->fd, BLKZEROOUT, range) == 0) {
		return 0;
	}
	return write_zeros(m, off, len);
}

static void file_close(struct raid_member *m)
{
	struct file_member *f = m->priv;

	close(f->fd);
	free(f);
}

static const struct raid_member_ops file_ops = {
	.pread = file_pread, .pwrite = file_pwrite, .flush = file_flush, .zero = file_zero, .close = file_close,
};

int raid_member_open_path(const char *path, struct raid_member **out, char *why, size_t why_len)
{
	struct raid_member *m;
	struct file_member *f;
	struct stat st;
	uint64_t size;
	int fd, err;

	if (path[0] == '\0') {
		snprintf(why, why_len, "empty member path");
		return -EINVAL;
	}
	if (stat(path, &st) != 0) {
		err = -errno;
		snprintf(why, why_len, "member %s: %s", path, strerror(errno));
		return err;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(why, why_len, "member %s: not a regular file or block device", path);
		return -EINVAL;
	}
	fd = open(path, O_RDWR | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
	if (fd < 0) {
		err = -errno;
		snprintf(why, why_len, "member %s: cannot open read-write: %s", path, strerror(errno));
		return err;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(why, why_len, "member %s: in use by another volume or process", path);
		close(fd);
		return err;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
			err = -errno;
			snprintf(why, why_len, "member %s: BLKGETSIZE64: %s", path, strerror(errno));
			close(fd);
			return err;
		}
	} else {
		size = (uint64_t)st.st_size;
	}
	m = calloc(1, sizeof(*m));
	f = calloc(1, sizeof(*f));
	if (!m || !f) {
		free(m);
		free(f);
		close(fd);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	f->fd = fd;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->is_blk = S_ISBLK(st.st_mode);
	m->ops = &file_ops;
	m->priv = f;
	m->size_bytes = size;
	snprintf(m->name, sizeof(m->name), "%s", path);
	*out = m;
	return 0;
}

int raid_member_same(struct raid_member *a, struct raid_member *b)
{
	struct file_member *fa = a->priv, *fb = b->priv;

	if (a->ops != &file_ops || b->ops != &file_ops)
		return a == b;
	return fa->dev == fb->dev && fa->ino == fb->ino;
}

/* In-memory member for unit tests. */
struct mem_member {
	uint8_t *data;
};

static int mem_pread(struct raid_member *m, void *buf, size_t len, uint64_t off)
{
	struct mem_member *mm = m->priv;

	if (off > m->size_bytes || len > m->size_bytes - off)
		return -EIO;
	memcpy(buf, mm->data + off, len);
	return 0;
}

static int mem_pwrite(struct raid_member *m, const void *buf, size_t len, uint64_t off)
{
	struct mem_member *mm = m->priv;

	if (off > m->size_bytes || len > m->size_bytes - off)
		return -EIO;
	memcpy(mm->data + off, buf, len);
	return 0;
}

static int mem_flush(struct raid_member *m)
{
	(void)m;
	return 0;
}

static int mem_zero(struct raid_member *m, uint64_t off, uint64_t len)
{
	struct mem_member *mm = m->priv;

	if (off > m->size_bytes || len > m->size_bytes - off)
		return -EIO;
	memset(mm->data + off, 0, len);
	return 0;
}

static void mem_close(struct raid_member *m)
{
	struct mem_member *mm = m->priv;

	free(mm->data);
	free(mm);
}

static const struct raid_member_ops mem_ops = {
	.pread = mem_pread, .pwrite = mem_pwrite, .flush = mem_flush, .zero = mem_zero, .close = mem_close,
};

int raid_member_open_mem(const char *name, uint64_t size_bytes, struct raid_member **out)
{
	struct raid_member *m = calloc(1, sizeof(*m));
	struct mem_member *mm = calloc(1, sizeof(*mm));

	if (!m || !mm || !(mm->data = calloc(1, size_bytes))) {
		free(mm ? mm->data : NULL);
		free(mm);
		free(m);
		return -ENOMEM;
	}
	m->ops = &mem_ops;
	m->priv = mm;
	m->size_bytes = size_bytes;
	snprintf(m->name, sizeof(m->name), "%s", name);
	*out = m;
	return 0;
}

uint8_t *raid_member_mem(struct raid_member *m)
{
	return m->ops == &mem_ops ? ((struct mem_member *)m->priv)->data : NULL;
}

void raid_member_close(struct raid_member *m)
{
	if (!m)
		return;
	m->ops->close(m);
	free(m);
}

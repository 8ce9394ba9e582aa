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
#include <pthread.h>
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

static int file_sync_range(struct raid_member *m, uint64_t off, uint64_t len)
{
	struct file_member *f = m->priv;

	if (sync_file_range(f->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WAIT_BEFORE |
			    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) == 0)
		return 0;
	return fdatasync(f->fd) ? -errno : 0;   /* block devices and odd filesystems */
}

static void file_close(struct raid_member *m)
{
	struct file_member *f = m->priv;

	close(f->fd);
	free(f);
}

static const struct raid_member_ops file_ops = {
	.pread = file_pread, .pwrite = file_pwrite, .flush = file_flush, .zero = file_zero,
	.sync_range = file_sync_range, .close = file_close,
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

static int miss_io(struct raid_member *m, void *buf, size_t len, uint64_t off)
{
	(void)m; (void)buf; (void)len; (void)off;
	return -ENXIO;
}

static int miss_wr(struct raid_member *m, const void *buf, size_t len, uint64_t off)
{
	(void)m; (void)buf; (void)len; (void)off;
	return -ENXIO;
}

static int miss_flush(struct raid_member *m) { (void)m; return -ENXIO; }
static int miss_zero(struct raid_member *m, uint64_t off, uint64_t len)
{
	(void)m; (void)off; (void)len;
	return -ENXIO;
}
static void miss_close(struct raid_member *m) { (void)m; }

static const struct raid_member_ops missing_ops = {
	.pread = miss_io, .pwrite = miss_wr, .flush = miss_flush, .zero = miss_zero,
	.close = miss_close,
};

struct raid_member *raid_member_missing(const char *path, const char *why)
{
	struct raid_member *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->ops = &missing_ops;
	m->missing = 1;
	snprintf(m->name, sizeof(m->name), "%s", path);
	snprintf(m->missing_why, sizeof(m->missing_why), "%s", why);
	return m;
}

/* Fault rules. The member keeps the rule; the check runs only in TANDEM_FAULT_INJECTION builds. */
struct raid_fault {
	enum raid_fault_op op;
	enum raid_fault_mode mode;
	uint64_t n;                 /* AFTER: fail from the n-th matching I/O on (1-based) */
	uint32_t ppm;               /* RATE */
	uint64_t state;             /* PRNG */
	uint64_t count;             /* matching I/Os so far */
	pthread_mutex_t lock;
};

int raid_member_set_fault(struct raid_member *m, enum raid_fault_op op, enum raid_fault_mode mode,
			  uint64_t n, uint32_t ppm, uint64_t seed)
{
	struct raid_fault *f = m->fault;

	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return -ENOMEM;
		pthread_mutex_init(&f->lock, NULL);
	}
	pthread_mutex_lock(&f->lock);
	f->op = op;
	f->mode = mode;
	f->n = n;
	f->ppm = ppm;
	f->state = seed ? seed : 0x9e3779b97f4a7c15ull;
	f->count = 0;
	pthread_mutex_unlock(&f->lock);
	m->fault = f;
	return 0;
}

int raid_fault_hit(struct raid_fault *f, enum raid_fault_op op)
{
	int hit = 0;

	pthread_mutex_lock(&f->lock);
	if (f->mode != RAID_FAULT_OFF && (f->op & op)) {
		f->count++;
		switch (f->mode) {
		case RAID_FAULT_NOW:
			hit = 1;
			break;
		case RAID_FAULT_AFTER:
			hit = f->count >= f->n;
			break;
		case RAID_FAULT_RATE: {
			uint64_t z = (f->state += 0x9e3779b97f4a7c15ull);

			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
			z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
			z ^= z >> 31;
			hit = z % 1000000u < f->ppm;
			break;
		}
		default:
			break;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return hit;
}

void raid_member_close(struct raid_member *m)
{
	if (!m)
		return;
	m->ops->close(m);
	if (m->fault) {
		pthread_mutex_destroy(&m->fault->lock);
		free(m->fault);
	}
	free(m);
}

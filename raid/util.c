#include "raid/util.h"

#include <errno.h>
#include <isa-l/crc.h>
#include <isa-l/raid.h>
#include <unistd.h>

uint32_t tcrc32c_update(uint32_t crc, const void *buf, size_t len_bytes)
{
	const unsigned char *p = buf;

	crc = ~crc;
	while (len_bytes) {
		int n = len_bytes > (1u << 30) ? (1 << 30) : (int)len_bytes;

		crc = crc32_iscsi((unsigned char *)p, n, crc);
		p += n;
		len_bytes -= (size_t)n;
	}
	return ~crc;
}

uint32_t tcrc32c(const void *buf, size_t len_bytes)
{
	return tcrc32c_update(0, buf, len_bytes);
}

static void xor_words(void *dst, const void *const *src, int nsrc, size_t len)
{
	unsigned char *d = dst;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t v, w;

		memcpy(&v, (const unsigned char *)src[0] + i, 8);
		for (int k = 1; k < nsrc; k++) {
			memcpy(&w, (const unsigned char *)src[k] + i, 8);
			v ^= w;
		}
		memcpy(d + i, &v, 8);
	}
	for (; i < len; i++) {
		unsigned char v = ((const unsigned char *)src[0])[i];

		for (int k = 1; k < nsrc; k++)
			v ^= ((const unsigned char *)src[k])[i];
		d[i] = v;
	}
}

#define XOR_MAX_SRC 32

void txor(void *dst, const void *const *src, int nsrc, size_t len_bytes)
{
	void *vec[XOR_MAX_SRC + 1];
	int aligned = ((uintptr_t)dst & 31) == 0;
	size_t body = len_bytes & ~(size_t)255;

	if (nsrc == 1) {
		if (dst != src[0])
			memmove(dst, src[0], len_bytes);
		return;
	}
	for (int k = 0; k < nsrc && aligned; k++)
		aligned = ((uintptr_t)src[k] & 31) == 0;
	if (!aligned || nsrc > XOR_MAX_SRC || body == 0 || body > (size_t)1 << 30) {
		xor_words(dst, src, nsrc, len_bytes);
		return;
	}
	for (int k = 0; k < nsrc; k++)
		vec[k] = (void *)src[k];
	vec[nsrc] = dst;
	if (xor_gen(nsrc + 1, (int)body, vec) != 0) {
		xor_words(dst, src, nsrc, len_bytes);
		return;
	}
	if (body < len_bytes) {
		const void *tail[XOR_MAX_SRC];

		for (int k = 0; k < nsrc; k++)
			tail[k] = (const unsigned char *)src[k] + body;
		xor_words((unsigned char *)dst + body, tail, nsrc, len_bytes - body);
	}
}

void txor_into(void *dst, const void *src, size_t len_bytes)
{
	const void *s[2] = { dst, src };

	txor(dst, s, 2, len_bytes);
}

int full_pread(int fd, void *buf, size_t len_bytes, off_t off_bytes)
{
	char *p = buf;

	while (len_bytes) {
		ssize_t n = pread(fd, p, len_bytes, off_bytes);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len_bytes -= (size_t)n;
		off_bytes += n;
	}
	return 0;
}

int full_pwrite(int fd, const void *buf, size_t len_bytes, off_t off_bytes)
{
	const char *p = buf;

	while (len_bytes) {
		ssize_t n = pwrite(fd, p, len_bytes, off_bytes);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len_bytes -= (size_t)n;
		off_bytes += n;
	}
	return 0;
}

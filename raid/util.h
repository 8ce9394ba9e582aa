/* Small helpers shared by every library: CRC32C, parity XOR, little-endian access, full I/O. */
#ifndef TANDEM_UTIL_H
#define TANDEM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* CRC32C (Castagnoli, as iSCSI): crc32c("123456789") == 0xE3069283. ISA-L underneath. */
uint32_t tcrc32c(const void *buf, size_t len_bytes);
/* Continue a CRC32C: tcrc32c_update(tcrc32c(a), b) == tcrc32c(a||b). */
uint32_t tcrc32c_update(uint32_t crc, const void *buf, size_t len_bytes);

/* dst = src[0] ^ src[1] ^ ... ^ src[nsrc-1]; dst may equal a source. ISA-L xor_gen where the
 * buffers allow it (32-byte aligned), a word loop elsewhere. */
void txor(void *dst, const void *const *src, int nsrc, size_t len_bytes);
/* dst ^= src */
void txor_into(void *dst, const void *src, size_t len_bytes);

/* pread/pwrite the whole range or fail: 0 or -errno (-EIO for a short transfer at EOF). */
int full_pread(int fd, void *buf, size_t len_bytes, off_t off_bytes);
int full_pwrite(int fd, const void *buf, size_t len_bytes, off_t off_bytes);

static inline void put_le32(void *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put_le64(void *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t get_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t get_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static inline int is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

#endif

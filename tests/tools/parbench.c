/* parbench: parity throughput of tandem's RAID code against raw ISA-L xor_gen, same process.
 *   parbench [seconds-per-figure]
 * Prints "name GB/s" lines: raw xor_gen nD+1P, txor (the wrapper the RAID code calls), and
 * raid_write full stripes onto members that discard data (parity + dispatch, no storage). */
#include <isa-l/raid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raid/member.h"
#include "raid/raid.h"
#include "raid/tlog.h"
#include "raid/util.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A member that stores only its first 8 MiB (superblocks) and discards data writes. */
struct nullm {
	uint8_t *head;
};
#define HEAD_BYTES (8u << 20)

static int n_pread(struct raid_member *m, void *buf, size_t len, uint64_t off)
{
	struct nullm *n = m->priv;

	if (off + len <= HEAD_BYTES)
		memcpy(buf, n->head + off, len);
	else
		memset(buf, 0, len);
	return 0;
}

static int n_pwrite(struct raid_member *m, const void *buf, size_t len, uint64_t off)
{
	struct nullm *n = m->priv;

	if (off + len <= HEAD_BYTES)
		memcpy(n->head + off, buf, len);
	return 0;
}

static int n_flush(struct raid_member *m) { (void)m; return 0; }
static int n_zero(struct raid_member *m, uint64_t off, uint64_t len)
{
	struct nullm *n = m->priv;

	if (off < HEAD_BYTES)
		memset(n->head + off, 0, (off + len <= HEAD_BYTES ? len : HEAD_BYTES - off));
	return 0;
}
static void n_close(struct raid_member *m)
{
	struct nullm *n = m->priv;

	free(n->head);
	free(n);
}

static const struct raid_member_ops null_ops = {
	.pread = n_pread, .pwrite = n_pwrite, .flush = n_flush, .zero = n_zero, .close = n_close,
};

static struct raid_member *null_member(uint64_t size)
{
	struct raid_member *m = calloc(1, sizeof(*m));
	struct nullm *n = calloc(1, sizeof(*n));

	n->head = calloc(1, HEAD_BYTES);
	m->ops = &null_ops;
	m->priv = n;
	m->size_bytes = size;
	snprintf(m->name, sizeof(m->name), "null");
	return m;
}

static void bench_xor(int n, size_t chunk, size_t total, double secs, int raw)
{
	size_t sets = total / (chunk * (size_t)(n + 1));
	uint8_t *mem;
	double t0, t;
	uint64_t bytes = 0;

	if (sets == 0)
		sets = 1;
	if (posix_memalign((void **)&mem, 64, sets * chunk * (size_t)(n + 1)))
		exit(1);
	memset(mem, 0x5a, sets * chunk * (size_t)(n + 1));
	t0 = now();
	do {
		for (size_t s = 0; s < sets; s++) {
			void *v[17];

			for (int k = 0; k <= n; k++)
				v[k] = mem + (s * (size_t)(n + 1) + (size_t)k) * chunk;
			if (raw)
				xor_gen(n + 1, (int)chunk, v);
			else
				txor(v[n], (const void *const *)v, n, chunk);
			bytes += chunk * (size_t)n;
		}
		t = now() - t0;
	} while (t < secs);
	printf("%-28s %dD+1P chunk %zuK %-9s %6.2f GB/s\n", raw ? "isal xor_gen" : "tandem txor", n,
	       chunk / 1024, total > (64u << 20) ? "memory" : "cache", (double)bytes / t / 1e9);
	free(mem);
}

static void bench_raid(int n, uint32_t chunk, double secs)
{
	struct raid_member *m[17];
	struct raid_vol *v;
	struct raid_create_params cp = { .nr_data = (uint32_t)n, .chunk_bytes = chunk,
					 .block_bytes = 512, .volid = 1 };
	struct raid_assemble_params ap = { 0 };
	uint64_t member = 64ull << 30, stripe = (uint64_t)n * chunk, bytes = 0, off = 0;
	size_t io = (size_t)stripe * 4;
	uint8_t *buf;
	char why[256];
	double t0, t;

	for (int i = 0; i <= n; i++)
		m[i] = null_member(member);
	if (raid_create(m, (uint32_t)n + 1, &cp, why, sizeof(why)) ||
	    raid_assemble(m, (uint32_t)n + 1, &ap, &v, why, sizeof(why))) {
		fprintf(stderr, "parbench: %s\n", why);
		exit(1);
	}
	if (posix_memalign((void **)&buf, 64, io))
		exit(1);
	memset(buf, 0xa5, io);
	t0 = now();
	do {
		if (raid_write(v, buf, off, io))
			exit(1);
		off = (off + io) % (64ull << 30);
		bytes += io;
		t = now() - t0;
	} while (t < secs);
	printf("%-28s %dD+1P chunk %uK %-9s %6.2f GB/s\n", "tandem raid_write full-stripe", n,
	       chunk / 1024, "cache", (double)bytes / t / 1e9);
	raid_close(v);
	free(buf);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;

	tlog_set_level(TLOG_WARN);

	for (int n = 3; n <= 4; n++) {
		/* cache: the working set of raid_write below (4 stripes of data + parity) */
		bench_xor(n, 65536, 4u * 65536 * (size_t)(n + 1), secs, 1);
		bench_xor(n, 65536, 4u * 65536 * (size_t)(n + 1), secs, 0);
		bench_xor(n, 65536, 512u << 20, secs, 1);
		bench_xor(n, 65536, 512u << 20, secs, 0);
		bench_raid(n, 65536, secs);
	}
	return 0;
}

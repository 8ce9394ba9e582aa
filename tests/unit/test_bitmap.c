/* The persistent change bitmap (raid/bitmap.h): the file is byte for byte the documented format
 * (docs/mirror.md "Persistence": an independent encoder here builds the expected image, and a
 * file built by it opens, as an existing mirror bitmap must), set/clear/next/count against a
 * model, a set on disk before pbm_set returns (seen by another process that never closed it),
 * a damaged header or block refused with -EPROTO and a reason, another magic/owner/granule/size
 * refused, create refusing an existing file, the bits at the end of the last block, a set whose
 * write failed written again by the next set of its block, concurrent setters, and a 1 TiB volume
 * in 64 KiB granules. UNIT_SEED=<n> replays a run. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raid/bitmap.h"
#include "raid/util.h"
#include "tests/unit/unit.h"

#define PAGE 4096u
#define BPB ((uint64_t)PBM_BITS_PER_BLOCK)
#define MAGIC "TSTCHBMP"
#define OWNER 42u

static char dir[] = "/tmp/tandem-bitmap-XXXXXX";

/* A file of this test (removed by the test). */
static void path_of(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static struct pbm *open_ok(const char *path, uint64_t size, uint64_t granule, int create)
{
	struct pbm *b = NULL;
	char why[256] = "";
	int err = pbm_open(path, MAGIC, OWNER, size, granule, create, "test", &b, why, sizeof(why));

	ck_assert_msg(err == 0 && b, "pbm_open(%s, create=%d): %d (%s)", path, create, err, why);
	return b;
}

/* pbm_open that must fail with `want`; returns the reason. */
static const char *open_fails(const char *path, const char *magic, uint32_t owner, uint64_t size,
			      uint64_t granule, int create, int want)
{
	static char why[256];
	struct pbm *b = NULL;
	int err;

	why[0] = 0;
	err = pbm_open(path, magic, owner, size, granule, create, "test", &b, why, sizeof(why));
	ck_assert_msg(err == want, "pbm_open(%s): %d, expected %d (%s)", path, err, want, why);
	ck_assert_ptr_null(b);
	ck_assert_msg(why[0], "pbm_open(%s) failed without a reason", path);
	return why;
}

/* The expected file: header + blocks, from a model (one byte a granule, 0 or 1). */
static uint8_t *encode(uint64_t granule, uint64_t nbits, const uint8_t *model, size_t *len)
{
	uint64_t nblk = (nbits + BPB - 1) / BPB;
	uint8_t *img = calloc(1, PAGE + nblk * PAGE);

	ck_assert_ptr_nonnull(img);
	memcpy(img, MAGIC, 8);
	put_le32(img + 8, 1);
	put_le32(img + 12, PAGE);
	put_le32(img + 20, OWNER);
	put_le64(img + 24, granule);
	put_le64(img + 32, nbits);
	put_le32(img + 16, tcrc32c(img, PAGE));
	for (uint64_t g = 0; g < nbits; g++)
		if (model && model[g])
			img[PAGE + g / BPB * PAGE + g % BPB / 8] |= (uint8_t)(1u << (g % BPB % 8));
	for (uint64_t k = 0; k < nblk; k++) {
		uint8_t *p = img + PAGE + k * PAGE;

		put_le32(p + PAGE - 4, tcrc32c(p, PAGE - 4));
	}
	*len = PAGE + nblk * PAGE;
	return img;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(full_pread(fd, buf, (size_t)st.st_size, 0), 0);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* The file holds exactly the model. */
static void file_is(const char *path, uint64_t granule, uint64_t nbits, const uint8_t *model)
{
	size_t elen, flen;
	uint8_t *want = encode(granule, nbits, model, &elen), *have = slurp(path, &flen);

	ck_assert_uint_eq(flen, elen);
	for (size_t i = 0; i < elen; i++)
		ck_assert_msg(have[i] == want[i], "%s: byte %zu is 0x%02x, expected 0x%02x (block %zd)",
			      path, i, have[i], want[i], (ssize_t)(i / PAGE) - 1);
	free(want);
	free(have);
}

/* The bitmap in memory holds exactly the model: get, count, next. */
static void bitmap_is(struct pbm *b, uint64_t nbits, const uint8_t *model)
{
	uint64_t n = 0, g, from = 0;

	for (uint64_t i = 0; i < nbits; i++) {
		ck_assert_msg(pbm_get(b, i) == model[i], "granule %" PRIu64 ": %d", i, pbm_get(b, i));
		n += model[i];
	}
	ck_assert_uint_eq(pbm_count(b), n);
	for (uint64_t i = 0; i < nbits; i++) {
		if (!model[i])
			continue;
		ck_assert_int_eq(pbm_next(b, from, &g), 0);
		ck_assert_uint_eq(g, i);
		from = g + 1;
	}
	ck_assert_int_eq(pbm_next(b, from, &g), -ENOENT);
}

/* Reopened, the bitmap holds exactly the model; the file is removed. */
static void reopened_is(const char *path, uint64_t size, uint64_t granule, uint64_t nbits,
			const uint8_t *model)
{
	struct pbm *b = open_ok(path, size, granule, 0);

	bitmap_is(b, nbits, model);
	pbm_close(b, 1);
	ck_assert_int_eq(access(path, F_OK), -1);
}

/* Create, set/clear ranges against a model, close, reopen: the same bits, the same file. */
START_TEST(test_round_trip)
{
	struct urand r = { unit_seed_for(0xb1u) };
	const uint64_t G = 64 * 1024, size = (2 * BPB + 1000) * G + 17;   /* last granule partial */
	const uint64_t nbits = 2 * BPB + 1001;
	uint8_t *model = calloc(nbits, 1);
	char path[256];
	struct pbm *b;

	ck_assert_ptr_nonnull(model);
	path_of(path, sizeof(path), "round");
	b = open_ok(path, size, G, 1);
	ck_assert_uint_eq(pbm_bits(b), nbits);
	ck_assert_uint_eq(pbm_granule(b), G);
	ck_assert_uint_eq(pbm_count(b), 0);
	file_is(path, G, nbits, model);
	for (int i = 0; i < 300; i++) {
		uint64_t g0 = urand_below(&r, nbits), g1 = g0 + urand_below(&r, i % 10 ? 40 : 5000);
		uint64_t newly = 0, want = 0;

		if (urand_below(&r, 3)) {
			for (uint64_t g = g0; g <= g1 && g < nbits; g++) {
				want += !model[g];
				model[g] = 1;
			}
			ck_assert_int_eq(pbm_set(b, g0, g1, &newly), 0);
			ck_assert_uint_eq(newly, want);
		} else if (urand_below(&r, 2)) {
			for (uint64_t g = g0; g <= g1 && g < nbits; g++)
				want += model[g];
			for (uint64_t g = g0; g <= g1 && g < nbits; g++)
				model[g] = 0;
			ck_assert_uint_eq(pbm_clear_range(b, g0, g1, NULL), want);
		} else {
			model[g0] = 0;
			pbm_clear(b, g0);
		}
	}
	bitmap_is(b, nbits, model);
	/* a set of a range already set changes nothing */
	ck_assert_int_eq(pbm_set(b, 0, 0, NULL), 0);
	model[0] = 1;
	{
		uint64_t newly = 7;

		ck_assert_int_eq(pbm_set(b, 0, 0, &newly), 0);
		ck_assert_uint_eq(newly, 0);
	}
	/* bytes: granules covering [off, off+len) */
	ck_assert_int_eq(pbm_set_bytes(b, 5 * G - 1, 2), 0);
	model[4] = model[5] = 1;
	ck_assert_int_eq(pbm_set_bytes(b, 100 * G, 0), 0);
	ck_assert_int_eq(pbm_get(b, nbits), 0);
	ck_assert_int_eq(pbm_get(b, UINT64_MAX), 0);
	bitmap_is(b, nbits, model);
	pbm_close(b, 0);
	file_is(path, G, nbits, model);
	b = open_ok(path, size, G, 0);
	bitmap_is(b, nbits, model);
	/* clear_all is durable */
	ck_assert_int_eq(pbm_clear_all(b), 0);
	memset(model, 0, nbits);
	bitmap_is(b, nbits, model);
	file_is(path, G, nbits, model);
	pbm_close(b, 1);
	ck_assert_int_eq(access(path, F_OK), -1);
	free(model);
}
END_TEST

/* A file built by the encoder (as the mirror wrote before raid/bitmap.c) opens. */
START_TEST(test_existing_file)
{
	const uint64_t G = 4096, nbits = BPB + 5;
	uint8_t model[BPB + 5] = { 0 };
	uint8_t *img;
	char path[256];
	size_t len;
	int fd;

	model[0] = model[3] = model[BPB - 1] = model[BPB] = model[BPB + 4] = 1;
	img = encode(G, nbits, model, &len);
	path_of(path, sizeof(path), "old");
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(full_pwrite(fd, img, len, 0), 0);
	close(fd);
	reopened_is(path, nbits * G, G, nbits, model);
	free(img);
}
END_TEST

/* A set is in the file when pbm_set returns: a child sets and exits without closing. */
START_TEST(test_set_durable)
{
	const uint64_t G = 8192, nbits = 3 * BPB;
	uint8_t *model = calloc(nbits, 1);
	char path[256];
	pid_t pid;
	int st;

	ck_assert_ptr_nonnull(model);
	path_of(path, sizeof(path), "durable");
	pbm_close(open_ok(path, nbits * G, G, 1), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct pbm *c = NULL;
		char why[256];

		if (pbm_open(path, MAGIC, OWNER, nbits * G, G, 0, NULL, &c, why, sizeof(why)) ||
		    pbm_set(c, 10, 20, NULL) || pbm_set(c, BPB - 2, BPB + 2, NULL) ||
		    pbm_set_bytes(c, (nbits - 1) * G, G))
			_exit(1);
		_exit(0);   /* no pbm_close: no fdatasync, no free */
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	for (uint64_t g = 10; g <= 20; g++)
		model[g] = 1;
	for (uint64_t g = BPB - 2; g <= BPB + 2; g++)
		model[g] = 1;
	model[nbits - 1] = 1;
	file_is(path, G, nbits, model);
	reopened_is(path, nbits * G, G, nbits, model);
	free(model);
}
END_TEST

static void flip(const char *path, off_t off)
{
	uint8_t c;
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(full_pread(fd, &c, 1, off), 0);
	c ^= 0x10;
	ck_assert_int_eq(full_pwrite(fd, &c, 1, off), 0);
	close(fd);
}

/* A damaged header or block is refused (-EPROTO, with a reason), never guessed. */
START_TEST(test_damage_refused)
{
	const uint64_t G = 65536, nbits = 2 * BPB + 3, size = nbits * G;
	char path[256];
	const char *why;
	struct pbm *b;

	path_of(path, sizeof(path), "damaged");
	b = open_ok(path, size, G, 1);
	ck_assert_int_eq(pbm_set(b, 5, 5, NULL), 0);
	pbm_close(b, 0);
	/* a header byte (reserved area: covered by the CRC) */
	flip(path, 200);
	why = open_fails(path, MAGIC, OWNER, size, G, 0, -EPROTO);
	ck_assert_msg(strstr(why, "header damaged") && strstr(why, path) && strstr(why, "test bitmap"),
		      "why: %s", why);
	flip(path, 200);
	pbm_close(open_ok(path, size, G, 0), 0);
	/* a bit of block 1, then the CRC of block 2 */
	flip(path, PAGE + PAGE + 100);
	why = open_fails(path, MAGIC, OWNER, size, G, 0, -EPROTO);
	ck_assert_msg(strstr(why, "block 1 damaged"), "why: %s", why);
	flip(path, PAGE + PAGE + 100);
	flip(path, PAGE + 3 * PAGE - 2);
	why = open_fails(path, MAGIC, OWNER, size, G, 0, -EPROTO);
	ck_assert_msg(strstr(why, "block 2 damaged"), "why: %s", why);
	/* a block missing (truncated), then the header too */
	ck_assert_int_eq(truncate(path, PAGE + 2 * PAGE), 0);
	why = open_fails(path, MAGIC, OWNER, size, G, 0, -EPROTO);
	ck_assert_msg(strstr(why, "block 2 damaged"), "why: %s", why);
	ck_assert_int_eq(truncate(path, 10), 0);
	why = open_fails(path, MAGIC, OWNER, size, G, 0, -EPROTO);
	ck_assert_msg(strstr(why, "no test bitmap header"), "why: %s", why);
	ck_assert_int_eq(unlink(path), 0);
}
END_TEST

/* Another magic, owner, granule or size; create on an existing file; no file; bad parameters. */
START_TEST(test_identity_refused)
{
	const uint64_t G = 16384, size = 1000 * G;
	char path[256], why[256];
	const char *w;
	struct pbm *b = NULL;

	path_of(path, sizeof(path), "ident");
	pbm_close(open_ok(path, size, G, 1), 0);
	w = open_fails(path, MAGIC, OWNER, size, G, 1, -EEXIST);
	ck_assert_msg(strstr(w, path), "why: %s", w);
	w = open_fails(path, "TNDMMBMP", OWNER, size, G, 0, -EPROTO);
	ck_assert_msg(strstr(w, "no test bitmap header"), "why: %s", w);
	w = open_fails(path, MAGIC, OWNER + 1, size, G, 0, -EPROTO);
	ck_assert_msg(strstr(w, "of another test"), "why: %s", w);
	open_fails(path, MAGIC, OWNER, size, 2 * G, 0, -EPROTO);
	open_fails(path, MAGIC, OWNER, size + G, G, 0, -EPROTO);
	open_fails(path, MAGIC, OWNER, size, 0, 0, -EINVAL);
	open_fails(path, MAGIC, OWNER, 0, G, 1, -EINVAL);
	/* the unnamed owner's messages */
	ck_assert_int_eq(pbm_open(path, MAGIC, OWNER + 1, size, G, 0, NULL, &b, why, sizeof(why)),
			 -EPROTO);
	ck_assert_msg(!strncmp(why, "bitmap ", 7) && strstr(why, "of another owner"), "why: %s", why);
	/* the file is untouched by all that */
	b = open_ok(path, size, G, 0);
	ck_assert_uint_eq(pbm_count(b), 0);
	pbm_close(b, 1);
	open_fails(path, MAGIC, OWNER, size, G, 0, -ENOENT);
}
END_TEST

/* The bits at the very end of the last block (full and partial last blocks), clipping. */
START_TEST(test_tail_bits)
{
	static const uint64_t nbits_of[] = { 2 * BPB, BPB + 1, 1, 7, 9 };
	const uint64_t G = 512;

	for (size_t t = 0; t < sizeof(nbits_of) / sizeof(nbits_of[0]); t++) {
		uint64_t nbits = nbits_of[t], g, newly;
		uint8_t *model = calloc(nbits, 1);
		char path[256];
		struct pbm *b;

		ck_assert_ptr_nonnull(model);
		path_of(path, sizeof(path), "tail");
		b = open_ok(path, nbits * G - 1, G, 1);   /* the last granule one byte short */
		ck_assert_uint_eq(pbm_bits(b), nbits);
		/* past the end: clipped */
		ck_assert_int_eq(pbm_set(b, nbits - 1, UINT64_MAX, &newly), 0);
		ck_assert_uint_eq(newly, 1);
		ck_assert_int_eq(pbm_set(b, nbits, nbits + 100, &newly), 0);
		ck_assert_uint_eq(newly, 0);
		ck_assert_int_eq(pbm_set_bytes(b, nbits * G - 2, 1), 0);
		model[nbits - 1] = 1;
		ck_assert_int_eq(pbm_next(b, 0, &g), 0);
		ck_assert_uint_eq(g, nbits - 1);
		ck_assert_int_eq(pbm_next(b, nbits, &g), -ENOENT);
		ck_assert_int_eq(pbm_next(b, UINT64_MAX, &g), -ENOENT);
		ck_assert_uint_eq(pbm_clear_range(b, nbits, UINT64_MAX, NULL), 0);
		bitmap_is(b, nbits, model);
		pbm_close(b, 0);
		file_is(path, G, nbits, model);
		reopened_is(path, nbits * G - 1, G, nbits, model);
		free(model);
	}
}
END_TEST

/* clear_range keeps what `keep` says, and writes each changed block (lazily: seen after close). */
START_TEST(test_clear_keep)
{
	const uint64_t G = 4096, nbits = 2 * BPB;
	uint8_t *model = calloc(nbits, 1), *keep = calloc(nbits / 8 + 1, 1);
	char path[256];
	struct pbm *b;

	ck_assert_ptr_nonnull(model);
	ck_assert_ptr_nonnull(keep);
	path_of(path, sizeof(path), "keep");
	b = open_ok(path, nbits * G, G, 1);
	ck_assert_int_eq(pbm_set(b, 0, nbits - 1, NULL), 0);
	for (uint64_t g = 0; g < nbits; g += 3) {
		keep[g / 8] |= (uint8_t)(1u << (g % 8));
		model[g] = 1;
	}
	ck_assert_uint_eq(pbm_clear_range(b, 0, nbits - 1, keep), nbits - (nbits + 2) / 3);
	bitmap_is(b, nbits, model);
	pbm_close(b, 0);
	file_is(path, G, nbits, model);
	reopened_is(path, nbits * G, G, nbits, model);
	free(model);
	free(keep);
}
END_TEST

/* A set whose write fails stays set in memory, and the next set of its block writes it. */
START_TEST(test_failed_set_rewritten)
{
	const uint64_t G = 4096, nbits = 3 * BPB;
	uint8_t *model = calloc(nbits, 1);
	struct rlimit old, lim;
	char path[256];
	struct pbm *b;
	uint64_t newly = 9;

	ck_assert_ptr_nonnull(model);
	path_of(path, sizeof(path), "efbig");
	b = open_ok(path, nbits * G, G, 1);
	/* writes past the header and block 0 fail (EFBIG) */
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 2 * PAGE;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(pbm_set(b, 3, 3, NULL), 0);
	ck_assert_int_eq(pbm_set(b, BPB + 1, 2 * BPB + 1, NULL), -EFBIG);
	ck_assert_int_eq(pbm_get(b, BPB + 1), 1);
	ck_assert_int_eq(pbm_get(b, 2 * BPB + 1), 1);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	/* nothing new to set, yet block 1 is written now; block 2 waits for its own next set */
	ck_assert_int_eq(pbm_set(b, BPB + 1, BPB + 1, &newly), 0);
	ck_assert_uint_eq(newly, 0);
	model[3] = 1;
	for (uint64_t g = BPB + 1; g < 2 * BPB; g++)
		model[g] = 1;
	file_is(path, G, nbits, model);
	ck_assert_int_eq(pbm_set(b, 2 * BPB + 1, 2 * BPB + 1, &newly), 0);
	ck_assert_uint_eq(newly, 0);
	model[2 * BPB] = model[2 * BPB + 1] = 1;
	pbm_close(b, 0);
	file_is(path, G, nbits, model);
	reopened_is(path, nbits * G, G, nbits, model);
	free(model);
}
END_TEST

struct setter {
	struct pbm *b;
	uint64_t first, n;
	int err;
};

static void *setter_main(void *p)
{
	struct setter *s = p;

	for (uint64_t i = 0; i < s->n && !s->err; i++) {
		uint64_t g = s->first + i * 8;

		s->err = i % 2 ? pbm_set(s->b, g, g + 3, NULL) : pbm_set_bytes(s->b, g * 4096, 4 * 4096);
	}
	return NULL;
}

/* Threads setting interleaved granules of the same blocks: nothing lost, in memory or on disk. */
START_TEST(test_concurrent_sets)
{
	enum { T = 4, PER = 400 };
	const uint64_t G = 4096, nbits = T * PER * 8 / 2 + 8;
	struct setter s[T];
	pthread_t th[T];
	char path[256];
	struct pbm *b;

	path_of(path, sizeof(path), "threads");
	b = open_ok(path, nbits * G, G, 1);
	for (int i = 0; i < T; i++) {
		s[i] = (struct setter){ .b = b, .first = (uint64_t)(i % 2) * 4 + (uint64_t)(i / 2) * PER * 8 / 2,
					.n = PER / 2 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, setter_main, &s[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(s[i].err, 0);
	}
	ck_assert_uint_eq(pbm_count(b), T * PER / 2 * 4);
	pbm_close(b, 0);
	b = open_ok(path, nbits * G, G, 0);
	ck_assert_uint_eq(pbm_count(b), T * PER / 2 * 4);
	pbm_close(b, 1);
}
END_TEST

/* A 1 TiB volume in 64 KiB granules: 16 Mi bits, 513 blocks. */
START_TEST(test_big)
{
	struct urand r = { unit_seed_for(0xb16u) };
	const uint64_t G = 64 * 1024, size = 1ull << 40, nbits = size / G;
	uint64_t want[64], g, from = 0, nblk = (nbits + BPB - 1) / BPB;
	char path[256];
	struct stat st;
	struct pbm *b;
	int n = 0;

	path_of(path, sizeof(path), "big");
	b = open_ok(path, size, G, 1);
	ck_assert_uint_eq(pbm_bits(b), nbits);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, PAGE + nblk * PAGE);
	ck_assert_uint_eq(nblk, 513);
	/* ascending scattered granules, the very last one included */
	for (uint64_t x = urand_below(&r, 1000); n < 63; x += 1 + urand_below(&r, nbits / 70))
		want[n++] = x;
	want[n++] = nbits - 1;
	for (int i = n - 1; i >= 0; i--)
		ck_assert_int_eq(pbm_set(b, want[i], want[i], NULL), 0);
	ck_assert_int_eq(pbm_set_bytes(b, size - 1, 1), 0);
	pbm_close(b, 0);
	b = open_ok(path, size, G, 0);
	ck_assert_uint_eq(pbm_count(b), (uint64_t)n);
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(pbm_next(b, from, &g), 0);
		ck_assert_uint_eq(g, want[i]);
		from = g + 1;
	}
	ck_assert_int_eq(pbm_next(b, from, &g), -ENOENT);
	ck_assert_int_eq(pbm_clear_all(b), 0);
	ck_assert_uint_eq(pbm_count(b), 0);
	ck_assert_int_eq(pbm_next(b, 0, &g), -ENOENT);
	pbm_close(b, 0);
	b = open_ok(path, size, G, 0);
	ck_assert_uint_eq(pbm_count(b), 0);
	pbm_close(b, 1);
}
END_TEST

static Suite *bitmap_suite(void)
{
	Suite *s = suite_create("bitmap");
	TCase *tc = tcase_create("bitmap");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_existing_file);
	tcase_add_test(tc, test_set_durable);
	tcase_add_test(tc, test_damage_refused);
	tcase_add_test(tc, test_identity_refused);
	tcase_add_test(tc, test_tail_bits);
	tcase_add_test(tc, test_clear_keep);
	tcase_add_test(tc, test_failed_set_rewritten);
	tcase_add_test(tc, test_concurrent_sets);
	tcase_add_test(tc, test_big);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int rc;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	rc = unit_run(bitmap_suite());
	if (rmdir(dir))
		fprintf(stderr, "test_bitmap: %s left behind: %s\n", dir, strerror(errno));
	return rc;
}

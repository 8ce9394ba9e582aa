/*
 * tio — tandem's iSCSI I/O tool: deterministic data for functional tests, a crash-test writer and
 * checker, and the load generator for benchmarks (Debian's fio has no libiscsi engine).
 *
 *   tio info       URL                      capacity and block limits
 *   tio write      URL --lba --blocks --seed  a pattern that is a function of (seed, lba) only
 *   tio verify     URL --lba --blocks (--seed S | --zero)
 *   tio load       URL --rw --bs --qd (--seconds | --ios)
 *   tio log-writer URL --out FILE            acknowledged writes logged as "lba nblocks generation"
 *                      [--also URL2]         (two LUs, one generation counter: "... generation lu")
 *   tio log-check  URL --log FILE            every acknowledged write is on the volume
 *   tio order-check URL --log FILE           the volume is the writer's state at one instant
 *                                            (a --qd 1 log; write order of a replicated copy)
 *                      [--also URL2]         both volumes together (a consistency group)
 *   tio compare    URL1 URL2                 the two LUs read back equal
 *   tio put        URL --lba [--file]        raw bytes, zero-padded to blocks, one WRITE(16)
 *   tio get        URL --lba --blocks        raw blocks to stdout, one READ(16)
 *   tio session    URL                       put/get lines from stdin, all in one session
 *
 * put, get and session are dd for iSCSI: they drive command devices (docs/command-device.md),
 * whose results belong to the session that wrote the command, so a command and the read of its
 * result must share one session: 'tio session' (or one host's dd on a kernel session).
 *
 * Exit codes: 0 success; 1 SCSI error or data mismatch; 2 usage error; 3 cannot connect, or the
 * connection to the target was lost (a crash test expects 3 from log-writer when tgtd dies).
 *
 * Every data command runs on libiscsi's async API: one session, --qd commands in flight, one
 * poll() loop (struct engine). Block layouts (all integers big-endian):
 *
 *   tio data block (write / verify)        tio log block (log-writer / log-check)
 *   off len field                          off len field
 *     0   8 "TIOBLK01"                       0   8 "TIOLOG01"
 *     8   8 lba                              8   8 lba
 *    16   8 seed                            16   8 generation
 *    24   - splitmix64(seed, lba) stream    24   8 seed
 *                                           32   - splitmix64(seed, lba, generation) stream
 *
 *   tio log block of a two-LU writer (log-writer --also / order-check --also)
 *   off len field
 *     0   8 "TIOLOG02"
 *     8   8 lba
 *    16   8 generation
 *    24   8 seed
 *    32   8 lu (0: URL, 1: URL2)
 *    40   - splitmix64(seed, lba, generation, lu) stream
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONN = 3 };

#define DEFAULT_INITIATOR  "iqn.2026-11.org.tandem:tio"
#define DEFAULT_XFER_BYTES (1u << 20)
#define MAX_XFER_BYTES     (64u << 20)
#define DATA_MAGIC         "TIOBLK01"
#define LOG_MAGIC          "TIOLOG01"
#define LOG2_MAGIC         "TIOLOG02"   /* a two-LU writer's block: names its LU too */
#define MAGIC_BYTES        8
#define DATA_HDR_BYTES     24
#define LOG_HDR_BYTES      32
#define LOG2_HDR_BYTES     40
#define MAX_LUS            2            /* URL and --also URL2 */
#define MIN_BLOCK_BYTES    64

static volatile sig_atomic_t g_stop;   /* SIGINT/SIGTERM: stop issuing, drain, report */

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	va_list ap;

	fputs("tio: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- deterministic data --------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform-enough value in [0, n), n > 0. */
static uint64_t rng_below(uint64_t *state, uint64_t n)
{
	return splitmix64(state) % n;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

static void fill_stream(unsigned char *p, size_t len_bytes, uint64_t key)
{
	uint64_t state = key;

	while (len_bytes >= 8) {
		uint64_t v = htole64(splitmix64(&state));

		memcpy(p, &v, 8);
		p += 8;
		len_bytes -= 8;
	}
	if (len_bytes) {
		uint64_t v = htole64(splitmix64(&state));

		memcpy(p, &v, len_bytes);
	}
}

static void data_block_fill(unsigned char *b, uint32_t block_bytes, uint64_t seed, uint64_t lba)
{
	memcpy(b, DATA_MAGIC, MAGIC_BYTES);
	put_be64(b + 8, lba);
	put_be64(b + 16, seed);
	fill_stream(b + DATA_HDR_BYTES, block_bytes - DATA_HDR_BYTES,
		    seed ^ (lba * 0xd6e8feb86659fd93ull));
}

static void log_block_fill(unsigned char *b, uint32_t block_bytes, uint64_t seed, uint64_t lba,
			   uint64_t generation)
{
	memcpy(b, LOG_MAGIC, MAGIC_BYTES);
	put_be64(b + 8, lba);
	put_be64(b + 16, generation);
	put_be64(b + 24, seed);
	fill_stream(b + LOG_HDR_BYTES, block_bytes - LOG_HDR_BYTES,
		    seed ^ (lba * 0xd6e8feb86659fd93ull) ^ (generation * 0xa0761d6478bd642full));
}

/* The block of a two-LU writer: the LU index in the header and in the body's key. */
static void log2_block_fill(unsigned char *b, uint32_t block_bytes, uint64_t seed, uint64_t lba,
			    uint64_t generation, uint64_t lu)
{
	memcpy(b, LOG2_MAGIC, MAGIC_BYTES);
	put_be64(b + 8, lba);
	put_be64(b + 16, generation);
	put_be64(b + 24, seed);
	put_be64(b + 32, lu);
	fill_stream(b + LOG2_HDR_BYTES, block_bytes - LOG2_HDR_BYTES,
		    seed ^ (lba * 0xd6e8feb86659fd93ull) ^ (generation * 0xa0761d6478bd642full) ^
		    ((lu + 1) * 0xe7037ed1a0b428dbull));
}

static bool all_zero(const unsigned char *p, size_t len_bytes)
{
	return len_bytes == 0 || (p[0] == 0 && memcmp(p, p + 1, len_bytes - 1) == 0);
}

/* Says in words what a block read from the volume holds. */
static void describe_block(const unsigned char *b, uint32_t block_bytes, char *out, size_t len)
{
	if (all_zero(b, block_bytes))
		snprintf(out, len, "all zeros");
	else if (memcmp(b, DATA_MAGIC, MAGIC_BYTES) == 0)
		snprintf(out, len, "a tio data block (seed=%" PRIu64 " lba=%" PRIu64 ")",
			 get_be64(b + 16), get_be64(b + 8));
	else if (memcmp(b, LOG_MAGIC, MAGIC_BYTES) == 0)
		snprintf(out, len, "a tio log block (lba=%" PRIu64 " generation=%" PRIu64
			 " seed=%" PRIu64 ")", get_be64(b + 8), get_be64(b + 16), get_be64(b + 24));
	else if (memcmp(b, LOG2_MAGIC, MAGIC_BYTES) == 0)
		snprintf(out, len, "a two-LU tio log block (lu=%" PRIu64 " lba=%" PRIu64
			 " generation=%" PRIu64 " seed=%" PRIu64 ")", get_be64(b + 32),
			 get_be64(b + 8), get_be64(b + 16), get_be64(b + 24));
	else
		snprintf(out, len, "unrecognised data (first bytes %02x %02x %02x %02x %02x %02x "
			 "%02x %02x)", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
}

static size_t first_diff(const unsigned char *a, const unsigned char *b, size_t len_bytes)
{
	size_t i = 0;

	while (i < len_bytes && a[i] == b[i])
		i++;
	return i;
}

/* ---- one logged-in LU ------------------------------------------------------------------------ */

/* libiscsi's last error, without the trailing newlines some messages carry. */
static const char *iscsi_err(struct iscsi_context *iscsi)
{
	static char buf[512];
	size_t len;

	snprintf(buf, sizeof(buf), "%s", iscsi_get_error(iscsi) ? iscsi_get_error(iscsi) : "?");
	len = strlen(buf);
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	return buf;
}

/*
 * Why a TCP connection to portal ("host[:port]", "[v6]:port") fails, or NULL if it does not:
 * libiscsi reports a refused connection only as "Can not reconnect right now".
 */
static const char *portal_probe(const char *portal)
{
	static char why[160];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char host[256], *port;
	int err, fd;

	snprintf(host, sizeof(host), "%s", portal);
	port = strrchr(host, ':');
	if (host[0] == '[') {
		char *close_bracket = strchr(host, ']');

		if (!close_bracket)
			return NULL;
		*close_bracket = '\0';
		port = close_bracket[1] == ':' ? close_bracket + 2 : NULL;
		memmove(host, host + 1, strlen(host));
	} else if (port) {
		*port++ = '\0';
	}
	err = getaddrinfo(host, port ? port : "3260", &hints, &res);
	if (err) {
		snprintf(why, sizeof(why), "portal %s: %s", portal, gai_strerror(err));
		return why;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	err = fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) ? errno : 0;
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	if (!err)
		return NULL;
	snprintf(why, sizeof(why), "portal %s: %s", portal, strerror(err));
	return why;
}

struct lu {
	struct iscsi_context *iscsi;
	const char *url;
	int lun;
	uint32_t block_bytes;
	uint64_t nr_blocks;
	uint32_t max_xfer_blocks;   /* VPD B0; 0 when not reported */
	uint32_t opt_xfer_blocks;
	uint32_t opt_gran_blocks;
	bool dead;                  /* transport failed: no logout */
};

static bool status_is_transport(int status)
{
	return status == SCSI_STATUS_ERROR || status == SCSI_STATUS_CANCELLED ||
	       status == SCSI_STATUS_TIMEOUT;
}

/* The reason a command failed, sense included. */
static const char *status_text(struct iscsi_context *iscsi, int status, struct scsi_task *task,
			       char *buf, size_t len)
{
	switch (status) {
	case SCSI_STATUS_CHECK_CONDITION:
		if (!task)
			return "CHECK CONDITION";
		{
			/* libiscsi 1.19 has no names for some keys (MEDIUM ERROR) and ascqs */
			static const char *const keys[16] = { "NO SENSE", "RECOVERED ERROR", "NOT READY",
				"MEDIUM ERROR", "HARDWARE ERROR", "ILLEGAL REQUEST", "UNIT ATTENTION",
				"DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC", "COPY ABORTED",
				"ABORTED COMMAND", "(0xc)", "VOLUME OVERFLOW", "MISCOMPARE", "(0xf)" };
			const char *k = scsi_sense_key_str(task->sense.key);
			const char *a = scsi_sense_ascq_str(task->sense.ascq);

			snprintf(buf, len, "CHECK CONDITION, sense key %s (0x%x), asc/ascq 0x%02x/0x%02x %s",
				 k ? k : keys[task->sense.key & 15], (unsigned)task->sense.key,
				 (unsigned)(task->sense.ascq >> 8) & 0xff, (unsigned)task->sense.ascq & 0xff,
				 a ? a : "");
		}
		return buf;
	case SCSI_STATUS_BUSY:                 return "BUSY";
	case SCSI_STATUS_RESERVATION_CONFLICT: return "RESERVATION CONFLICT";
	case SCSI_STATUS_TASK_SET_FULL:        return "TASK SET FULL";
	case SCSI_STATUS_ACA_ACTIVE:           return "ACA ACTIVE";
	case SCSI_STATUS_TASK_ABORTED:         return "TASK ABORTED";
	case SCSI_STATUS_CANCELLED:            return "cancelled: the connection to the target was lost";
	case SCSI_STATUS_TIMEOUT:              return "timed out";
	case SCSI_STATUS_ERROR:
		snprintf(buf, len, "transport error: %s", iscsi_err(iscsi));
		return buf;
	default:
		snprintf(buf, len, "SCSI status 0x%x", (unsigned)status);
		return buf;
	}
}

/* Reports a failed synchronous command; returns the exit code it deserves. */
static int sync_failed(struct lu *lu, const char *what, struct scsi_task *task)
{
	char buf[256];

	if (!task) {
		msg("%s on %s failed: %s", what, lu->url, iscsi_err(lu->iscsi));
		lu->dead = true;
		return EXIT_CONN;
	}
	msg("%s on %s failed: %s", what, lu->url,
	    status_text(lu->iscsi, task->status, task, buf, sizeof(buf)));
	if (status_is_transport(task->status))
		lu->dead = true;
	return status_is_transport(task->status) ? EXIT_CONN : EXIT_FAIL;
}

static void lu_close(struct lu *lu)
{
	if (!lu->iscsi)
		return;
	if (!lu->dead)
		iscsi_logout_sync(lu->iscsi);
	iscsi_destroy_context(lu->iscsi);
	lu->iscsi = NULL;
}

static void lu_block_limits(struct lu *lu)
{
	struct scsi_task *task = iscsi_inquiry_sync(lu->iscsi, lu->lun, 1,
						    SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 64);

	if (task && task->status == SCSI_STATUS_GOOD) {
		struct scsi_inquiry_block_limits *bl = scsi_datain_unmarshall(task);

		if (bl) {
			lu->max_xfer_blocks = bl->max_xfer_len;
			lu->opt_xfer_blocks = bl->opt_xfer_len;
			lu->opt_gran_blocks = bl->opt_gran;
		}
	}
	if (task)
		scsi_free_scsi_task(task);
}

/* Logs in to url and reads its capacity; returns EXIT_OK or the exit code to fail with. */
static int lu_open(struct lu *lu, const char *url, const char *initiator, int timeout_s)
{
	struct iscsi_url *u;
	struct scsi_task *task;
	struct scsi_readcapacity16 *rc;
	int rc_exit;

	memset(lu, 0, sizeof(*lu));
	lu->url = url;
	lu->iscsi = iscsi_create_context(initiator);
	if (!lu->iscsi) {
		msg("cannot create an iSCSI context for initiator %s", initiator);
		return EXIT_FAIL;
	}
	u = iscsi_parse_full_url(lu->iscsi, url);
	if (!u) {
		msg("bad iSCSI URL '%s': %s", url, iscsi_err(lu->iscsi));
		lu->dead = true;
		lu_close(lu);
		return EXIT_USAGE;
	}
	iscsi_set_targetname(lu->iscsi, u->target);
	iscsi_set_session_type(lu->iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(lu->iscsi, ISCSI_HEADER_DIGEST_NONE);
	if (u->user[0])
		iscsi_set_initiator_username_pwd(lu->iscsi, u->user, u->passwd);
	iscsi_set_timeout(lu->iscsi, timeout_s);
	lu->lun = u->lun;
	if (iscsi_full_connect_sync(lu->iscsi, u->portal, u->lun) != 0) {
		const char *why = portal_probe(u->portal);

		msg("cannot log in to %s: %s%s%s", url, iscsi_err(lu->iscsi), why ? "; " : "",
		    why ? why : "");
		iscsi_destroy_url(u);
		lu->dead = true;
		lu_close(lu);
		return EXIT_CONN;
	}
	iscsi_destroy_url(u);
	iscsi_set_noautoreconnect(lu->iscsi, 1);

	task = iscsi_readcapacity16_sync(lu->iscsi, lu->lun);
	if (!task || task->status != SCSI_STATUS_GOOD) {
		rc_exit = sync_failed(lu, "READ CAPACITY(16)", task);
		goto fail;
	}
	rc = scsi_datain_unmarshall(task);
	if (!rc) {
		msg("READ CAPACITY(16) on %s: cannot decode the reply", url);
		rc_exit = EXIT_FAIL;
		goto fail;
	}
	lu->block_bytes = rc->block_length;
	lu->nr_blocks = rc->returned_lba + 1;
	scsi_free_scsi_task(task);
	task = NULL;
	if (lu->block_bytes < MIN_BLOCK_BYTES || lu->block_bytes % 8) {
		msg("%s: block size %" PRIu32 " bytes is not supported (need a multiple of 8, >= %d)",
		    url, lu->block_bytes, MIN_BLOCK_BYTES);
		rc_exit = EXIT_FAIL;
		goto fail;
	}
	lu_block_limits(lu);
	return EXIT_OK;
fail:
	if (task)
		scsi_free_scsi_task(task);
	lu_close(lu);
	return rc_exit;
}

/* Blocks per command: xfer_blocks if given, else 1 MiB's worth, within the LU's limit. */
static uint32_t lu_xfer_blocks(const struct lu *lu, uint64_t xfer_blocks)
{
	uint64_t n = xfer_blocks ? xfer_blocks : DEFAULT_XFER_BYTES / lu->block_bytes;

	if (!xfer_blocks && lu->max_xfer_blocks && n > lu->max_xfer_blocks)
		n = lu->max_xfer_blocks;
	if (n * lu->block_bytes > MAX_XFER_BYTES)
		n = MAX_XFER_BYTES / lu->block_bytes;
	return n ? (uint32_t)n : 1;
}

/* ---- the async engine: qd commands in flight, one poll() loop ------------------------------- */

struct engine;

struct io {
	struct engine *eng;
	struct scsi_task *task;     /* non-NULL while the command is in flight */
	unsigned char *buf;         /* eng->io_bytes: data written, or read into via iov */
	struct scsi_iovec iov;
	uint64_t start_lba;
	uint32_t nr_blocks;
	bool is_write;
	uint64_t submit_ns;
	uint64_t generation;        /* log-writer only */
	unsigned lu_index;          /* the LU it goes to: eng->lus[lu_index] (0 unless several) */
};

struct engine {
	struct lu *lu;              /* lus[0] */
	struct lu *lus[MAX_LUS];    /* a command goes to lus[io->lu_index]; see engine_add_lu() */
	unsigned nr_lus;
	struct io *ios;
	unsigned qd;
	unsigned in_flight;
	size_t io_bytes;
	/* Fills io with the next command; false when there is none (yet). */
	bool (*next)(struct engine *eng, struct io *io);
	/* A command completed GOOD; returns EXIT_OK or the exit code to stop with. Optional. */
	int (*done)(struct engine *eng, struct io *io);
	void *ctx;
	bool stopping;
	int result;                 /* EXIT_OK until the first failure */
};

static void engine_fail(struct engine *eng, int exit_code)
{
	if (eng->result == EXIT_OK)
		eng->result = exit_code;
	eng->stopping = true;
}

static void engine_submit(struct engine *eng, struct io *io);

static void io_done_cb(struct iscsi_context *iscsi, int status, void *command_data,
		       void *private_data)
{
	struct io *io = private_data;
	struct engine *eng = io->eng;
	struct lu *lu = eng->lus[io->lu_index];
	char buf[256];

	(void)command_data;
	eng->in_flight--;
	if (status != SCSI_STATUS_GOOD) {
		if (!eng->stopping)
			msg("%s(16) lba=%" PRIu64 " blocks=%" PRIu32 " on %s failed: %s",
			    io->is_write ? "WRITE" : "READ", io->start_lba, io->nr_blocks,
			    lu->url, status_text(iscsi, status, io->task, buf, sizeof(buf)));
		if (status_is_transport(status))
			lu->dead = true;
		engine_fail(eng, status_is_transport(status) ? EXIT_CONN : EXIT_FAIL);
	} else if (!io->is_write && io->task->residual_status == SCSI_RESIDUAL_UNDERFLOW &&
		   io->task->residual) {
		msg("READ(16) lba=%" PRIu64 " blocks=%" PRIu32 " on %s: short read, %zu bytes missing",
		    io->start_lba, io->nr_blocks, lu->url, io->task->residual);
		engine_fail(eng, EXIT_FAIL);
	} else if (eng->done) {
		int rc = eng->done(eng, io);

		if (rc != EXIT_OK)
			engine_fail(eng, rc);
	}
	scsi_free_scsi_task(io->task);
	io->task = NULL;
	if (!eng->stopping && eng->next(eng, io))
		engine_submit(eng, io);
}

static int write_fua;            /* --fua: every WRITE(16) has FUA set */

static void engine_submit(struct engine *eng, struct io *io)
{
	struct lu *lu = eng->lus[io->lu_index];
	uint32_t len_bytes = io->nr_blocks * lu->block_bytes;

	io->submit_ns = now_ns();
	if (io->is_write) {
		io->task = iscsi_write16_task(lu->iscsi, lu->lun, io->start_lba, io->buf, len_bytes,
					      (int)lu->block_bytes, 0, 0, write_fua, 0, 0, io_done_cb,
					      io);
	} else {
		io->iov.iov_base = io->buf;
		io->iov.iov_len = len_bytes;
		io->task = iscsi_read16_iov_task(lu->iscsi, lu->lun, io->start_lba, len_bytes,
						 (int)lu->block_bytes, 0, 0, 0, 0, 0, io_done_cb, io,
						 &io->iov, 1);
	}
	if (!io->task) {
		msg("cannot queue %s(16) on %s: %s", io->is_write ? "WRITE" : "READ", lu->url,
		    iscsi_err(lu->iscsi));
		engine_fail(eng, EXIT_CONN);
		return;
	}
	eng->in_flight++;
}

static int engine_init(struct engine *eng, struct lu *lu, unsigned qd, size_t io_bytes,
		       bool (*next)(struct engine *, struct io *),
		       int (*done)(struct engine *, struct io *), void *ctx)
{
	memset(eng, 0, sizeof(*eng));
	eng->lu = lu;
	eng->lus[0] = lu;
	eng->nr_lus = 1;
	eng->qd = qd;
	eng->io_bytes = io_bytes;
	eng->next = next;
	eng->done = done;
	eng->ctx = ctx;
	eng->ios = calloc(qd, sizeof(*eng->ios));
	if (!eng->ios)
		goto oom;
	for (unsigned i = 0; i < qd; i++) {
		eng->ios[i].eng = eng;
		if (posix_memalign((void **)&eng->ios[i].buf, 4096, io_bytes))
			goto oom;
	}
	return 0;
oom:
	msg("out of memory for %u buffers of %zu bytes", qd, io_bytes);
	return -ENOMEM;
}

/* One more LU (another session) the engine's commands may go to: next() picks it per command with
 * io->lu_index; engine_run() services every session. */
static void engine_add_lu(struct engine *eng, struct lu *lu)
{
	if (eng->nr_lus < MAX_LUS)
		eng->lus[eng->nr_lus++] = lu;
}

/* Call after lu_close(): destroying the context may complete (cancel) commands still in flight. */
static void engine_free(struct engine *eng)
{
	if (!eng->ios)
		return;
	for (unsigned i = 0; i < eng->qd; i++) {
		if (eng->ios[i].task)
			scsi_free_scsi_task(eng->ios[i].task);
		free(eng->ios[i].buf);
	}
	free(eng->ios);
	eng->ios = NULL;
}

static int engine_run(struct engine *eng)
{
	for (unsigned i = 0; i < eng->qd && !eng->stopping; i++) {
		if (!eng->next(eng, &eng->ios[i]))
			break;
		engine_submit(eng, &eng->ios[i]);
	}
	while (eng->in_flight > 0) {
		struct pollfd pfd[MAX_LUS];
		bool lost = false;
		int n;

		/* every session, also an idle one: it may have a NOP-In to answer */
		for (unsigned l = 0; l < eng->nr_lus; l++) {
			pfd[l].fd = iscsi_get_fd(eng->lus[l]->iscsi);
			pfd[l].events = (short)iscsi_which_events(eng->lus[l]->iscsi);
			pfd[l].revents = 0;
		}
		n = poll(pfd, eng->nr_lus, 100);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			msg("poll: %s", strerror(errno));
			for (unsigned l = 0; l < eng->nr_lus; l++)
				eng->lus[l]->dead = true;
			engine_fail(eng, EXIT_FAIL);
			break;
		}
		for (unsigned l = 0; l < eng->nr_lus && !lost; l++) {
			struct lu *lu = eng->lus[l];

			/* revents 0 lets libiscsi scan for timed-out commands */
			if (iscsi_service(lu->iscsi, n > 0 ? pfd[l].revents : 0) < 0) {
				if (eng->result == EXIT_OK)
					msg("lost the connection to %s: %s", lu->url,
					    iscsi_err(lu->iscsi));
				lu->dead = true;
				engine_fail(eng, EXIT_CONN);
				lost = true;
			}
		}
		if (lost)
			break;
	}
	return eng->result;
}

/* ---- options ---------------------------------------------------------------------------------- */

enum opt_id {
	O_LBA = 256, O_BLOCKS, O_SEED, O_ZERO, O_XFER, O_QD, O_RW, O_BS, O_SECONDS, O_IOS,
	O_RANGE, O_JSON, O_OUT, O_LOG, O_MAX_BLOCKS, O_FUA, O_FILE, O_WAIT, O_ALSO,
};
#define OPT_BIT(id) (1u << ((id) - O_LBA))

struct opts {
	const char *initiator;
	int timeout_s;
	uint64_t start_lba, nr_blocks, seed, xfer_blocks, qd, bs_bytes, nr_ios, range_blocks;
	uint64_t max_write_blocks, wait_s;
	double seconds;
	bool zero, json;
	const char *rw, *out_path, *log_path, *file_path;
	const char *also_url;       /* --also URL2: log-writer / order-check on two LUs */
	uint32_t seen;              /* OPT_BIT of every option given */
	const char *args[2];
	int nr_args;
};

static const struct option long_opts[] = {
	{ "initiator",   required_argument, NULL, 'i' },
	{ "timeout",     required_argument, NULL, 't' },
	{ "help",        no_argument,       NULL, 'h' },
	{ "lba",         required_argument, NULL, O_LBA },
	{ "blocks",      required_argument, NULL, O_BLOCKS },
	{ "seed",        required_argument, NULL, O_SEED },
	{ "zero",        no_argument,       NULL, O_ZERO },
	{ "xfer-blocks", required_argument, NULL, O_XFER },
	{ "qd",          required_argument, NULL, O_QD },
	{ "rw",          required_argument, NULL, O_RW },
	{ "bs",          required_argument, NULL, O_BS },
	{ "seconds",     required_argument, NULL, O_SECONDS },
	{ "ios",         required_argument, NULL, O_IOS },
	{ "range-blocks", required_argument, NULL, O_RANGE },
	{ "json",        no_argument,       NULL, O_JSON },
	{ "fua",         no_argument,       NULL, O_FUA },
	{ "out",         required_argument, NULL, O_OUT },
	{ "log",         required_argument, NULL, O_LOG },
	{ "max-blocks",  required_argument, NULL, O_MAX_BLOCKS },
	{ "file",        required_argument, NULL, O_FILE },
	{ "wait-s",      required_argument, NULL, O_WAIT },
	{ "also",        required_argument, NULL, O_ALSO },
	{ NULL, 0, NULL, 0 },
};

/* Decimal (or 0x hex) unsigned integer, with an optional k/m/g/t (x1024) suffix if sized. */
static int parse_u64(const char *s, bool sized, uint64_t *out)
{
	char *end;
	uint64_t v, mult = 1;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10);
	if (errno || end == s)
		return -EINVAL;
	if (sized && *end) {
		switch (*end++) {
		case 'k': case 'K': mult = 1ull << 10; break;
		case 'm': case 'M': mult = 1ull << 20; break;
		case 'g': case 'G': mult = 1ull << 30; break;
		case 't': case 'T': mult = 1ull << 40; break;
		default: return -EINVAL;
		}
		if (*end == 'i' || *end == 'B')
			end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	}
	if (*end || (v && mult > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mult;
	return 0;
}

static const char *opt_name(int id)
{
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

/* ---- usage ------------------------------------------------------------------------------------ */

struct command {
	const char *name;
	int nr_args;
	uint32_t allowed;           /* OPT_BIT of the options it takes besides -i, -t, -h */
	int (*run)(struct opts *o);
	const char *usage;
};

static const char common_usage[] =
	"Common options:\n"
	"  -i, --initiator IQN   initiator name (default " DEFAULT_INITIATOR ")\n"
	"  -t, --timeout SEC     fail a command not answered in SEC seconds (default 30, 0: never)\n"
	"  -h, --help            this text\n"
	"URL: iscsi://[USER%PASSWORD@]HOST[:PORT]/TARGET-IQN/LUN\n"
	"Exit: 0 ok, 1 SCSI error or data mismatch, 2 usage, 3 cannot connect or connection lost\n";

static const char top_usage[] =
	"usage: tio COMMAND URL [options]   (tio COMMAND --help for details)\n"
	"  info       URL                          capacity and block limits\n"
	"  sync       URL                          SYNCHRONIZE CACHE\n"
	"  write      URL --seed S [--lba L --blocks N --xfer-blocks X --qd N --fua]\n"
	"  verify     URL (--seed S | --zero) [--lba L --blocks N --xfer-blocks X --qd N]\n"
	"  load       URL --rw MODE --bs BYTES --qd N (--seconds S | --ios N) [...]\n"
	"  log-writer URL --out FILE [--blocks N --seed S --qd N --seconds S --max-blocks M\n"
	"                             --also URL2]\n"
	"  log-check  URL --log FILE [--qd N]\n"
	"  order-check URL --log FILE [--wait-s N --qd N --also URL2]\n"
	"  compare    URL1 URL2 [--blocks N --xfer-blocks X]\n"
	"  put        URL [--lba L --file F]          raw bytes (default stdin), one WRITE(16)\n"
	"  get        URL [--lba L --blocks N]        raw blocks to stdout, one READ(16)\n"
	"  session    URL                          'put LBA FILE' / 'get LBA N FILE' lines, one session\n";

static int usage_error(const struct command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tio%s%s: ", cmd ? " " : "", cmd ? cmd->name : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ntry 'tio %s%s--help'\n", cmd ? cmd->name : "", cmd ? " " : "");
	return EXIT_USAGE;
}

/* ---- info ------------------------------------------------------------------------------------- */

static int cmd_info(struct opts *o)
{
	struct lu lu;
	int rc = lu_open(&lu, o->args[0], o->initiator, o->timeout_s);

	if (rc)
		return rc;
	printf("blocks=%" PRIu64 " block_bytes=%" PRIu32 " size_bytes=%" PRIu64
	       " opt_xfer_blocks=%" PRIu32 " opt_gran_blocks=%" PRIu32 " max_xfer_blocks=%" PRIu32 "\n",
	       lu.nr_blocks, lu.block_bytes, lu.nr_blocks * lu.block_bytes, lu.opt_xfer_blocks,
	       lu.opt_gran_blocks, lu.max_xfer_blocks);
	lu_close(&lu);
	return EXIT_OK;
}

static int cmd_sync(struct opts *o)
{
	struct lu lu;
	struct scsi_task *t;
	char buf[256];
	int rc = lu_open(&lu, o->args[0], o->initiator, o->timeout_s);

	if (rc)
		return rc;
	t = iscsi_synchronizecache10_sync(lu.iscsi, lu.lun, 0, 0, 0, 0);
	if (!t || t->status != SCSI_STATUS_GOOD) {
		msg("SYNCHRONIZE CACHE(10) on %s failed: %s", lu.url,
		    status_text(lu.iscsi, t ? t->status : SCSI_STATUS_ERROR, t, buf, sizeof(buf)));
		rc = t && !status_is_transport(t->status) ? EXIT_FAIL : EXIT_CONN;
	}
	if (t)
		scsi_free_scsi_task(t);
	lu_close(&lu);
	return rc;
}

/* ---- write / verify: a range in chunks ------------------------------------------------------- */

struct range_ctx {
	uint64_t start_lba, end_lba, next_lba;
	uint32_t xfer_blocks;
	uint64_t seed;
	bool zero;                  /* verify: expect zeros */
	unsigned char *expect;      /* verify: one block */
	uint64_t nr_bad_blocks;
	uint64_t first_bad_lba;     /* UINT64_MAX: none */
	size_t first_bad_byte;
	char first_bad_found[160];
};

static bool range_next(struct engine *eng, struct io *io, bool is_write)
{
	struct range_ctx *c = eng->ctx;
	uint32_t block_bytes = eng->lu->block_bytes;

	if (c->next_lba >= c->end_lba)
		return false;
	io->start_lba = c->next_lba;
	io->nr_blocks = (uint32_t)(c->end_lba - c->next_lba < c->xfer_blocks ?
				   c->end_lba - c->next_lba : c->xfer_blocks);
	io->is_write = is_write;
	c->next_lba += io->nr_blocks;
	if (is_write)
		for (uint32_t i = 0; i < io->nr_blocks; i++)
			data_block_fill(io->buf + (size_t)i * block_bytes, block_bytes, c->seed,
					io->start_lba + i);
	return true;
}

static bool write_next(struct engine *eng, struct io *io) { return range_next(eng, io, true); }
static bool verify_next(struct engine *eng, struct io *io) { return range_next(eng, io, false); }

static int verify_done(struct engine *eng, struct io *io)
{
	struct range_ctx *c = eng->ctx;
	uint32_t block_bytes = eng->lu->block_bytes;

	for (uint32_t i = 0; i < io->nr_blocks; i++) {
		const unsigned char *got = io->buf + (size_t)i * block_bytes;
		uint64_t lba = io->start_lba + i;
		size_t off;

		if (c->zero) {
			if (all_zero(got, block_bytes))
				continue;
			memset(c->expect, 0, block_bytes);
		} else {
			data_block_fill(c->expect, block_bytes, c->seed, lba);
			if (memcmp(got, c->expect, block_bytes) == 0)
				continue;
		}
		off = first_diff(got, c->expect, block_bytes);
		c->nr_bad_blocks++;
		if (lba < c->first_bad_lba) {   /* completions arrive out of order */
			c->first_bad_lba = lba;
			c->first_bad_byte = off;
			describe_block(got, block_bytes, c->first_bad_found,
				       sizeof(c->first_bad_found));
		}
	}
	return EXIT_OK;
}

static int check_qd(const struct command *cmd, struct opts *o, uint64_t dflt)
{
	if (!(o->seen & OPT_BIT(O_QD)))
		o->qd = dflt;
	if (o->qd < 1 || o->qd > 1024)
		return usage_error(cmd, "--qd must be 1..1024");
	return EXIT_OK;
}

/* Resolves --lba/--blocks against the LU: default from --lba to the end. */
static int resolve_range(struct opts *o, const struct lu *lu, const char *cmd)
{
	if (!(o->seen & OPT_BIT(O_BLOCKS))) {
		if (o->start_lba >= lu->nr_blocks) {
			msg("%s: --lba %" PRIu64 " is beyond the end of %s (%" PRIu64 " blocks)", cmd,
			    o->start_lba, lu->url, lu->nr_blocks);
			return EXIT_USAGE;
		}
		o->nr_blocks = lu->nr_blocks - o->start_lba;
	}
	/* An explicit range past the end is sent as asked: the target must refuse it. */
	return EXIT_OK;
}

static int cmd_range(struct opts *o, bool is_write)
{
	const char *name = is_write ? "write" : "verify";
	struct range_ctx c = { .first_bad_lba = UINT64_MAX };
	struct engine eng = { 0 };
	struct lu lu;
	uint64_t t0;
	double secs;
	int rc = lu_open(&lu, o->args[0], o->initiator, o->timeout_s);

	if (rc)
		return rc;
	rc = resolve_range(o, &lu, name);
	if (rc)
		goto out;
	c.start_lba = c.next_lba = o->start_lba;
	c.end_lba = o->start_lba + o->nr_blocks;
	c.seed = o->seed;
	c.zero = o->zero;
	c.xfer_blocks = lu_xfer_blocks(&lu, o->xfer_blocks);
	c.expect = malloc(lu.block_bytes);
	if (!c.expect ||
	    engine_init(&eng, &lu, (unsigned)o->qd, (size_t)c.xfer_blocks * lu.block_bytes,
			is_write ? write_next : verify_next, is_write ? NULL : verify_done, &c)) {
		rc = EXIT_FAIL;
		goto out;
	}
	t0 = now_ns();
	rc = engine_run(&eng);
	secs = (double)(now_ns() - t0) / 1e9;
	if (rc == EXIT_OK && c.nr_bad_blocks) {
		msg("verify: %" PRIu64 " of %" PRIu64 " blocks differ; first bad lba %" PRIu64
		    " (byte %zu of the block)", c.nr_bad_blocks, o->nr_blocks, c.first_bad_lba,
		    c.first_bad_byte);
		if (c.zero)
			msg("verify: lba %" PRIu64 ": expected all zeros, found %s", c.first_bad_lba,
			    c.first_bad_found);
		else
			msg("verify: lba %" PRIu64 ": expected a tio data block (seed=%" PRIu64
			    " lba=%" PRIu64 "), found %s", c.first_bad_lba, c.seed, c.first_bad_lba,
			    c.first_bad_found);
		rc = EXIT_FAIL;
	} else if (rc == EXIT_OK) {
		printf("%s: %" PRIu64 " blocks from lba %" PRIu64 " %s in %.3f s (%.1f MB/s)\n", name,
		       o->nr_blocks, o->start_lba, is_write ? "written" : "ok", secs,
		       secs > 0 ? (double)o->nr_blocks * lu.block_bytes / 1e6 / secs : 0.0);
	}
out:
	lu_close(&lu);
	engine_free(&eng);
	free(c.expect);
	return rc;
}

static int cmd_write(struct opts *o) { return cmd_range(o, true); }
static int cmd_verify(struct opts *o) { return cmd_range(o, false); }

/* ---- load ------------------------------------------------------------------------------------- */

/* Latency histogram: 64 linear sub-buckets per power of two of nanoseconds (< 1.6% error). */
#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

static unsigned hist_index(uint64_t v)
{
	unsigned shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
	return ((shift + 1) << HIST_SUB_BITS) + (unsigned)((v >> shift) & (HIST_SUB - 1));
}

static double hist_value(unsigned idx)
{
	unsigned shift;

	if (idx < HIST_SUB)
		return idx;
	shift = (idx >> HIST_SUB_BITS) - 1;
	return (double)((uint64_t)(HIST_SUB + (idx & (HIST_SUB - 1))) << shift) +
	       (double)(1ull << shift) / 2;
}

enum rw_mode { RW_READ, RW_WRITE, RW_RANDREAD, RW_RANDWRITE };
static const char *const rw_names[] = { "read", "write", "randread", "randwrite" };

struct load_ctx {
	enum rw_mode mode;
	uint32_t bs_blocks;
	uint64_t nr_slots;          /* bs-aligned offsets in the range */
	uint64_t seq_slot;
	uint64_t rng;
	uint64_t deadline_ns;       /* 0: none */
	uint64_t max_ios;           /* 0: none */
	uint64_t nr_issued, nr_done;
	uint64_t lat_sum_ns;
	uint64_t *hist;
};

static bool load_next(struct engine *eng, struct io *io)
{
	struct load_ctx *c = eng->ctx;
	uint64_t slot;

	if (g_stop || (c->max_ios && c->nr_issued >= c->max_ios) ||
	    (c->deadline_ns && now_ns() >= c->deadline_ns))
		return false;
	if (c->mode == RW_RANDREAD || c->mode == RW_RANDWRITE) {
		slot = rng_below(&c->rng, c->nr_slots);
	} else {
		slot = c->seq_slot;
		c->seq_slot = (c->seq_slot + 1) % c->nr_slots;   /* wrap at the end of the range */
	}
	io->start_lba = slot * c->bs_blocks;
	io->nr_blocks = c->bs_blocks;
	io->is_write = c->mode == RW_WRITE || c->mode == RW_RANDWRITE;
	c->nr_issued++;
	return true;
}

static int load_done(struct engine *eng, struct io *io)
{
	struct load_ctx *c = eng->ctx;
	uint64_t lat_ns = now_ns() - io->submit_ns;

	c->nr_done++;
	c->lat_sum_ns += lat_ns;
	c->hist[hist_index(lat_ns)]++;
	return EXIT_OK;
}

static void on_stop_signal(int sig)
{
	(void)sig;
	if (g_stop)
		_exit(EXIT_FAIL);   /* second signal: do not wait for the drain */
	g_stop = 1;
}

static void catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static int cmd_load(struct opts *o)
{
	struct load_ctx c = { 0 };
	struct engine eng = { 0 };
	struct lu lu;
	uint64_t range_blocks, t0, p99_rank, seen = 0;
	double secs, lat_p99_ns = 0;
	int rc;

	for (c.mode = RW_READ; c.mode <= RW_RANDWRITE; c.mode++)
		if (strcmp(o->rw, rw_names[c.mode]) == 0)
			break;
	if (c.mode > RW_RANDWRITE) {
		msg("load: --rw must be read, write, randread or randwrite, not '%s'", o->rw);
		return EXIT_USAGE;
	}
	rc = lu_open(&lu, o->args[0], o->initiator, o->timeout_s);
	if (rc)
		return rc;
	rc = EXIT_USAGE;
	if (o->bs_bytes == 0 || o->bs_bytes % lu.block_bytes || o->bs_bytes > MAX_XFER_BYTES) {
		msg("load: --bs %" PRIu64 " must be a multiple of the block size (%" PRIu32
		    " bytes), at most %u bytes", o->bs_bytes, lu.block_bytes, MAX_XFER_BYTES);
		goto out;
	}
	range_blocks = (o->seen & OPT_BIT(O_RANGE)) ? o->range_blocks : lu.nr_blocks;
	c.bs_blocks = (uint32_t)(o->bs_bytes / lu.block_bytes);
	if (range_blocks > lu.nr_blocks || range_blocks < c.bs_blocks) {
		msg("load: --range-blocks %" PRIu64 " must be between --bs (%" PRIu32 " blocks) and "
		    "the LU's %" PRIu64 " blocks", range_blocks, c.bs_blocks, lu.nr_blocks);
		goto out;
	}
	c.nr_slots = range_blocks / c.bs_blocks;
	c.rng = o->seed;
	c.max_ios = o->nr_ios;
	c.hist = calloc(HIST_BUCKETS, sizeof(*c.hist));
	rc = EXIT_FAIL;
	if (!c.hist || engine_init(&eng, &lu, (unsigned)o->qd, o->bs_bytes, load_next, load_done, &c))
		goto out;
	for (unsigned i = 0; i < eng.qd; i++)   /* incompressible, not zeros */
		fill_stream(eng.ios[i].buf, o->bs_bytes, o->seed + i);
	catch_stop_signals();
	t0 = now_ns();
	if (o->seen & OPT_BIT(O_SECONDS))
		c.deadline_ns = t0 + (uint64_t)(o->seconds * 1e9);
	rc = engine_run(&eng);
	secs = (double)(now_ns() - t0) / 1e9;
	if (rc != EXIT_OK)
		goto out;
	p99_rank = c.nr_done - c.nr_done / 100;   /* ceil(0.99 n) for the usual n */
	for (unsigned i = 0; i < HIST_BUCKETS && c.nr_done; i++) {
		seen += c.hist[i];
		if (seen >= p99_rank) {
			lat_p99_ns = hist_value(i);
			break;
		}
	}
	{
		double mbps = secs > 0 ? (double)c.nr_done * (double)o->bs_bytes / 1e6 / secs : 0;
		double iops = secs > 0 ? (double)c.nr_done / secs : 0;
		double avg_us = c.nr_done ? (double)c.lat_sum_ns / (double)c.nr_done / 1e3 : 0;

		if (o->json)
			printf("{\"rw\":\"%s\",\"bs\":%" PRIu64 ",\"qd\":%" PRIu64 ",\"ios\":%" PRIu64
			       ",\"seconds\":%.3f,\"MBps\":%.1f,\"IOPS\":%.0f,\"lat_avg_us\":%.1f,"
			       "\"lat_p99_us\":%.1f}\n", rw_names[c.mode], o->bs_bytes, o->qd, c.nr_done,
			       secs, mbps, iops, avg_us, lat_p99_ns / 1e3);
		else
			printf("rw=%s bs=%" PRIu64 " qd=%" PRIu64 " ios=%" PRIu64 " seconds=%.3f "
			       "MBps=%.1f IOPS=%.0f lat_avg_us=%.1f lat_p99_us=%.1f\n", rw_names[c.mode],
			       o->bs_bytes, o->qd, c.nr_done, secs, mbps, iops, avg_us, lat_p99_ns / 1e3);
	}
out:
	lu_close(&lu);
	engine_free(&eng);
	free(c.hist);
	return rc;
}

/* ---- log-writer / log-check ------------------------------------------------------------------- */

struct log_rec {
	uint64_t lba, nr_blocks, generation;
	uint64_t lu;                /* 0 in a one-LU log; a two-LU log's 4th field (0: URL, 1: URL2) */
};

struct log {
	struct log_rec *recs;
	size_t nr, cap;
	uint64_t max_generation;
	uint64_t end_lba;           /* one past the highest lba written */
	/* from the "# tio log-writer ..." header lines (one per run that appended) */
	unsigned nr_headers;
	uint64_t range_blocks;      /* the largest blocks= */
	uint64_t other_qd;          /* the first qd= other than 1; 0: none */
	bool qd_missing;            /* a header without qd= */
	uint64_t nr_lus;            /* lus= of the first header (a header without it: 1) */
	bool lus_mixed;             /* headers that disagree on lus= */
	uint64_t cur_lus;           /* while reading: lus= of the header above the line */
};

/* A "# tio log-writer ..." line: the range and the queue depth of that run. */
static void log_header(const char *line, struct log *log)
{
	const char *p;
	uint64_t v;

	if (strncmp(line, "# tio log-writer ", 17) != 0)
		return;
	log->nr_headers++;
	p = strstr(line, " lus=");
	if (!p || sscanf(p + 5, "%" SCNu64, &v) != 1)
		v = 1;
	log->cur_lus = v;
	if (log->nr_headers == 1)
		log->nr_lus = v;
	else if (v != log->nr_lus)
		log->lus_mixed = true;
	p = strstr(line, " blocks=");
	if (p && sscanf(p + 8, "%" SCNu64, &v) == 1 && v > log->range_blocks)
		log->range_blocks = v;
	p = strstr(line, " qd=");
	if (!p || sscanf(p + 4, "%" SCNu64, &v) != 1)
		log->qd_missing = true;
	else if (v != 1 && !log->other_qd)
		log->other_qd = v;
}

static bool only_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	return *p == '\0';
}

/* The numbers of a log line: 3 ("lba nblocks generation") or 4 (and lu); -1 if neither. */
static int log_fields(const char *line, struct log_rec *r)
{
	int end = 0;

	if (strchr(line, '-') || sscanf(line, "%" SCNu64 " %" SCNu64 " %" SCNu64 "%n", &r->lba,
				     &r->nr_blocks, &r->generation, &end) != 3 || !end)
		return -1;
	line += end;
	if (only_space(line))
		return 3;
	end = 0;
	if (sscanf(line, " %" SCNu64 "%n", &r->lu, &end) != 1 || !end || !only_space(line + end))
		return -1;
	return 4;
}

/* Reads "lba nblocks generation" lines, or "lba nblocks generation lu" below a header that says
 * lus=2 ('#' comments; the writer's header lines are noted). A missing file is an empty log if
 * ok. */
static int log_load(const char *path, bool missing_ok, struct log *log)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t line_cap = 0;
	ssize_t len;
	unsigned lineno = 0;
	int rc = EXIT_OK;

	memset(log, 0, sizeof(*log));
	log->nr_lus = log->cur_lus = 1;
	if (!f) {
		if (missing_ok && errno == ENOENT)
			return EXIT_OK;
		msg("cannot open log %s: %s", path, strerror(errno));
		return EXIT_USAGE;
	}
	while ((len = getline(&line, &line_cap, f)) > 0) {
		struct log_rec r = { 0 };
		int nr_fields;

		lineno++;
		if (line[0] == '#')
			log_header(line, log);
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (line[len - 1] != '\n') {   /* the writer died mid-line: never acknowledged */
			msg("log %s: ignoring a partial last line %u", path, lineno);
			break;
		}
		nr_fields = log_fields(line, &r);
		if (nr_fields != (log->cur_lus > 1 ? 4 : 3) || r.nr_blocks == 0 ||
		    r.lu >= log->cur_lus) {
			if (log->cur_lus > 1)
				msg("log %s line %u: want 'lba nblocks generation lu' (lu < %" PRIu64
				    ", the header says lus=%" PRIu64 "), got '%.*s'", path, lineno,
				    log->cur_lus, log->cur_lus, (int)(len - 1), line);
			else
				msg("log %s line %u: want 'lba nblocks generation', got '%.*s'", path,
				    lineno, (int)(len - 1), line);
			rc = EXIT_USAGE;
			break;
		}
		if (log->nr == log->cap) {
			size_t cap = log->cap ? log->cap * 2 : 1024;
			struct log_rec *n = realloc(log->recs, cap * sizeof(*n));

			if (!n) {
				msg("out of memory reading log %s", path);
				rc = EXIT_FAIL;
				break;
			}
			log->recs = n;
			log->cap = cap;
		}
		log->recs[log->nr++] = r;
		if (r.generation > log->max_generation)
			log->max_generation = r.generation;
		if (r.lba + r.nr_blocks > log->end_lba)
			log->end_lba = r.lba + r.nr_blocks;
	}
	free(line);
	fclose(f);
	if (rc != EXIT_OK) {
		free(log->recs);
		log->recs = NULL;
	}
	return rc;
}

struct writer_ctx {
	uint64_t seed, rng;
	uint64_t range_blocks;
	uint32_t max_write_blocks;
	uint64_t next_generation;
	uint64_t deadline_ns;       /* 0: until killed */
	uint64_t nr_acked;
	unsigned nr_lus;            /* 2 with --also: each write goes to the LU the PRNG picks */
	int log_fd;
	const char *log_path;
};

static bool overlaps_in_flight(const struct engine *eng, unsigned lu_index, uint64_t lba,
			       uint32_t nr_blocks)
{
	for (unsigned i = 0; i < eng->qd; i++) {
		const struct io *io = &eng->ios[i];

		if (io->task && io->lu_index == lu_index && lba < io->start_lba + io->nr_blocks &&
		    io->start_lba < lba + nr_blocks)
			return true;
	}
	return false;
}

static bool writer_next(struct engine *eng, struct io *io)
{
	struct writer_ctx *c = eng->ctx;
	uint32_t block_bytes = eng->lu->block_bytes;

	if (g_stop || (c->deadline_ns && now_ns() >= c->deadline_ns))
		return false;
	/* Overlapping writes in flight together may land in either order: never issue one. */
	do {
		/* two LUs: the LU first, from the same PRNG (one LU: the sequence of old) */
		io->lu_index = c->nr_lus > 1 ? (unsigned)rng_below(&c->rng, c->nr_lus) : 0;
		io->nr_blocks = 1 + (uint32_t)rng_below(&c->rng, c->max_write_blocks);
		io->start_lba = rng_below(&c->rng, c->range_blocks - io->nr_blocks + 1);
	} while (overlaps_in_flight(eng, io->lu_index, io->start_lba, io->nr_blocks));
	io->is_write = true;
	io->generation = c->next_generation++;   /* one counter across the LUs */
	for (uint32_t i = 0; i < io->nr_blocks; i++) {
		unsigned char *b = io->buf + (size_t)i * block_bytes;

		if (c->nr_lus > 1)
			log2_block_fill(b, block_bytes, c->seed, io->start_lba + i, io->generation,
					io->lu_index);
		else
			log_block_fill(b, block_bytes, c->seed, io->start_lba + i, io->generation);
	}
	return true;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int writer_done(struct engine *eng, struct io *io)
{
	struct writer_ctx *c = eng->ctx;
	char line[96];
	int len = c->nr_lus > 1 ?
		snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu32 " %" PRIu64 " %u\n",
			 io->start_lba, io->nr_blocks, io->generation, io->lu_index) :
		snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu32 " %" PRIu64 "\n",
			 io->start_lba, io->nr_blocks, io->generation);
	int err = write_all(c->log_fd, line, (size_t)len);

	if (err) {
		msg("log-writer: cannot append to %s: %s", c->log_path, strerror(-err));
		return EXIT_FAIL;
	}
	c->nr_acked++;
	return EXIT_OK;
}

static int cmd_log_writer(struct opts *o)
{
	struct writer_ctx c = { .log_fd = -1, .log_path = o->out_path, .nr_lus = o->also_url ? 2 : 1 };
	struct engine eng = { 0 };
	struct log old;
	struct lu lu, lu2 = { 0 };
	uint64_t lu_blocks;
	char hdr[1024], also[600] = "";
	int rc, len, err;

	if (o->max_write_blocks < 1 || o->max_write_blocks > 1024) {
		msg("log-writer: --max-blocks must be 1..1024");
		return EXIT_USAGE;
	}
	rc = log_load(o->out_path, true, &old);   /* continue the generations of an earlier run */
	if (rc)
		return rc;
	c.next_generation = old.max_generation + 1;
	free(old.recs);
	if ((old.nr || old.nr_headers) && (old.lus_mixed || old.nr_lus != c.nr_lus)) {
		msg("log-writer: %s holds writes to %" PRIu64 " LU(s); this run writes to %u (%s): "
		    "start a new log", o->out_path, old.nr_lus, c.nr_lus,
		    c.nr_lus > 1 ? "--also" : "no --also");
		return EXIT_USAGE;
	}
	rc = lu_open(&lu, o->args[0], o->initiator, o->timeout_s);
	if (rc)
		return rc;
	lu_blocks = lu.nr_blocks;
	if (o->also_url) {
		rc = lu_open(&lu2, o->also_url, o->initiator, o->timeout_s);
		if (rc)
			goto out;
		if (lu2.block_bytes != lu.block_bytes) {
			msg("log-writer: %s has %" PRIu32 "-byte blocks, %s %" PRIu32 "-byte ones: "
			    "--also wants equal block sizes", lu.url, lu.block_bytes, lu2.url,
			    lu2.block_bytes);
			rc = EXIT_USAGE;
			goto out;
		}
		if (lu2.nr_blocks < lu_blocks)
			lu_blocks = lu2.nr_blocks;
		snprintf(also, sizeof(also), " also=%s lus=2", lu2.url);
	}
	c.range_blocks = (o->seen & OPT_BIT(O_BLOCKS)) ? o->nr_blocks : lu_blocks;
	if (c.range_blocks > lu_blocks ||
	    c.range_blocks < 2 * o->qd * o->max_write_blocks) {
		msg("log-writer: --blocks %" PRIu64 " must be at most the LU%s %" PRIu64 " blocks "
		    "and at least 2 x qd x max-blocks (%" PRIu64 ")", c.range_blocks,
		    o->also_url ? "s'" : "'s", lu_blocks, 2 * o->qd * o->max_write_blocks);
		rc = EXIT_USAGE;
		goto out;
	}
	c.seed = c.rng = o->seed;
	c.rng ^= c.next_generation * 0x9e3779b97f4a7c15ull;   /* a rerun picks new LBAs */
	c.max_write_blocks = (uint32_t)o->max_write_blocks;
	c.log_fd = open(o->out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (c.log_fd < 0) {
		msg("log-writer: cannot open %s: %s", o->out_path, strerror(errno));
		rc = EXIT_USAGE;
		goto out;
	}
	len = snprintf(hdr, sizeof(hdr), "# tio log-writer url=%s%s seed=%" PRIu64 " blocks=%"
		       PRIu64 " block_bytes=%" PRIu32 " qd=%" PRIu64 " first_generation=%" PRIu64 "\n",
		       lu.url, also, c.seed, c.range_blocks, lu.block_bytes, o->qd,
		       c.next_generation);
	err = write_all(c.log_fd, hdr, (size_t)(len < (int)sizeof(hdr) ? len : (int)sizeof(hdr) - 1));
	if (err) {
		msg("log-writer: cannot write %s: %s", o->out_path, strerror(-err));
		rc = EXIT_FAIL;
		goto out;
	}
	rc = EXIT_FAIL;
	if (engine_init(&eng, &lu, (unsigned)o->qd, (size_t)c.max_write_blocks * lu.block_bytes,
			writer_next, writer_done, &c))
		goto out;
	if (o->also_url)
		engine_add_lu(&eng, &lu2);
	catch_stop_signals();
	if (o->seen & OPT_BIT(O_SECONDS))
		c.deadline_ns = now_ns() + (uint64_t)(o->seconds * 1e9);
	rc = engine_run(&eng);
	if (rc == EXIT_OK)
		printf("log-writer: %" PRIu64 " writes acknowledged and logged to %s\n", c.nr_acked,
		       o->out_path);
	else
		msg("log-writer: stopped after %" PRIu64 " acknowledged writes (logged to %s)",
		    c.nr_acked, o->out_path);
out:
	lu_close(&lu);
	lu_close(&lu2);
	engine_free(&eng);
	if (c.log_fd >= 0)
		close(c.log_fd);
	return rc;
}

struct check_ctx {
	const uint64_t *want;       /* per lba: highest acknowledged generation, 0: none */
	uint64_t end_lba, next_lba;
	uint32_t xfer_blocks;
	unsigned char *expect;      /* one block */
	uint64_t nr_checked, nr_newer, nr_bad;
	unsigned nr_reported;
};

static bool check_next(struct engine *eng, struct io *io)
{
	struct check_ctx *c = eng->ctx;

	while (c->next_lba < c->end_lba && !c->want[c->next_lba])
		c->next_lba++;          /* skip what was never acknowledged */
	if (c->next_lba >= c->end_lba)
		return false;
	io->start_lba = c->next_lba;
	io->nr_blocks = (uint32_t)(c->end_lba - c->next_lba < c->xfer_blocks ?
				   c->end_lba - c->next_lba : c->xfer_blocks);
	io->is_write = false;
	c->next_lba += io->nr_blocks;
	return true;
}

static void check_bad(struct check_ctx *c, uint64_t lba, const char *why,
		      const unsigned char *got, uint32_t block_bytes)
{
	char found[160];

	c->nr_bad++;
	if (c->nr_reported++ >= 10)
		return;
	describe_block(got, block_bytes, found, sizeof(found));
	msg("log-check: lba %" PRIu64 ": %s; acknowledged generation %" PRIu64 ", found %s", lba,
	    why, c->want[lba], found);
}

static int check_done(struct engine *eng, struct io *io)
{
	struct check_ctx *c = eng->ctx;
	uint32_t block_bytes = eng->lu->block_bytes;

	for (uint32_t i = 0; i < io->nr_blocks; i++) {
		const unsigned char *got = io->buf + (size_t)i * block_bytes;
		uint64_t lba = io->start_lba + i, generation;

		if (!c->want[lba])
			continue;
		c->nr_checked++;
		if (memcmp(got, LOG_MAGIC, MAGIC_BYTES) != 0 || get_be64(got + 8) != lba) {
			check_bad(c, lba, "no tio log header for this lba", got, block_bytes);
			continue;
		}
		generation = get_be64(got + 16);
		log_block_fill(c->expect, block_bytes, get_be64(got + 24), lba, generation);
		if (memcmp(got, c->expect, block_bytes) != 0) {
			check_bad(c, lba, "torn or corrupt block (header valid, body wrong)", got,
				  block_bytes);
		} else if (generation < c->want[lba]) {
			check_bad(c, lba, "lost an acknowledged write (older generation)", got,
				  block_bytes);
		} else if (generation > c->want[lba]) {
			c->nr_newer++;  /* a write in flight at the crash landed: allowed */
		}
	}
	return EXIT_OK;
}

static int cmd_log_check(struct opts *o)
{
	struct check_ctx c = { 0 };
	struct engine eng = { 0 };
	uint64_t *want = NULL;
	struct log log;
	struct lu lu = { 0 };
	int rc = log_load(o->log_path, false, &log);

	if (rc)
		return rc;
	if (log.nr_lus > 1 || log.lus_mixed) {
		msg("log-check: %s is the log of a two-LU writer ('tio log-writer --also'); log-check "
		    "reads one LU: use 'tio order-check URL --log FILE --also URL2'", o->log_path);
		rc = EXIT_USAGE;
		goto out;
	}
	rc = lu_open(&lu, o->args[0], o->initiator, o->timeout_s);
	if (rc)
		goto out;
	if (log.end_lba > lu.nr_blocks) {
		msg("log-check: log %s names lba %" PRIu64 ", beyond the end of %s (%" PRIu64
		    " blocks)", o->log_path, log.end_lba - 1, lu.url, lu.nr_blocks);
		rc = EXIT_USAGE;
		goto out;
	}
	want = calloc(log.end_lba ? log.end_lba : 1, sizeof(*want));
	c.expect = malloc(lu.block_bytes);
	rc = EXIT_FAIL;
	if (!want || !c.expect) {
		msg("out of memory for %" PRIu64 " lbas", log.end_lba);
		goto out;
	}
	for (size_t i = 0; i < log.nr; i++)
		for (uint64_t b = 0; b < log.recs[i].nr_blocks; b++)
			if (log.recs[i].generation > want[log.recs[i].lba + b])
				want[log.recs[i].lba + b] = log.recs[i].generation;
	c.want = want;
	c.end_lba = log.end_lba;
	c.xfer_blocks = lu_xfer_blocks(&lu, 0);
	if (engine_init(&eng, &lu, (unsigned)o->qd, (size_t)c.xfer_blocks * lu.block_bytes,
			check_next, check_done, &c))
		goto out;
	rc = engine_run(&eng);
	if (rc != EXIT_OK)
		goto out;
	if (c.nr_bad) {
		msg("log-check: FAILED: %" PRIu64 " of %" PRIu64 " acknowledged lbas are wrong (%zu "
		    "writes in %s)", c.nr_bad, c.nr_checked, log.nr, o->log_path);
		rc = EXIT_FAIL;
	} else {
		printf("log-check: ok: %zu acknowledged writes, %" PRIu64 " lbas checked, %" PRIu64
		       " hold a newer unacknowledged generation\n", log.nr, c.nr_checked, c.nr_newer);
	}
out:
	lu_close(&lu);
	engine_free(&eng);
	free(c.expect);
	free(want);
	free(log.recs);
	return rc;
}

/* ---- order-check ------------------------------------------------------------------------------ */

/* What order-check found in a block. */
enum blk_kind {
	BLK_ZERO,                   /* all zeros: never written */
	BLK_LOG,                    /* an intact tio log block of this lba: found = its generation */
	BLK_TORN,                   /* a tio log header for this lba, body wrong: found = generation */
	BLK_OTHER_LBA,              /* a tio log block of another lba: found = that lba */
	BLK_OTHER_LU,               /* an intact two-LU block of this lba for another LU: found = its
				       generation, other_lu[lba] = that LU */
	BLK_OTHER_WRITER,           /* a one-LU writer's block in a two-LU check or the other way
				       round: found = its generation */
	BLK_DATA,                   /* a tio data block (tio write) */
	BLK_OTHER,                  /* anything else */
};

/* One LU's image as order-check read it. */
struct order_ctx {
	const char *url;
	unsigned lu_index;          /* 0: URL, 1: --also URL2 */
	bool two_lu;                /* blocks of a two-LU writer (TIOLOG02) are expected */
	uint64_t end_lba, next_lba;
	uint32_t xfer_blocks;
	unsigned char *expect;      /* one block */
	uint64_t *found;            /* per lba, see enum blk_kind */
	uint8_t *kind;
	uint8_t *other_lu;          /* per lba: the LU a BLK_OTHER_LU block names (< 256) */
	uint64_t *want;             /* per lba: the writer's generation at K, 0: zeros */
};

static bool order_next(struct engine *eng, struct io *io)
{
	struct order_ctx *c = eng->ctx;

	if (c->next_lba >= c->end_lba)
		return false;
	io->start_lba = c->next_lba;
	io->nr_blocks = (uint32_t)(c->end_lba - c->next_lba < c->xfer_blocks ?
				   c->end_lba - c->next_lba : c->xfer_blocks);
	io->is_write = false;
	c->next_lba += io->nr_blocks;
	return true;
}

static int order_done(struct engine *eng, struct io *io)
{
	struct order_ctx *c = eng->ctx;
	uint32_t block_bytes = eng->lu->block_bytes;
	const char *magic = c->two_lu ? LOG2_MAGIC : LOG_MAGIC;
	const char *other_magic = c->two_lu ? LOG_MAGIC : LOG2_MAGIC;

	for (uint32_t i = 0; i < io->nr_blocks; i++) {
		const unsigned char *got = io->buf + (size_t)i * block_bytes;
		uint64_t lba = io->start_lba + i, generation, blk_lu;

		c->found[lba] = 0;
		if (all_zero(got, block_bytes)) {
			c->kind[lba] = BLK_ZERO;
		} else if (memcmp(got, other_magic, MAGIC_BYTES) == 0) {
			c->kind[lba] = BLK_OTHER_WRITER;
			c->found[lba] = get_be64(got + 16);
		} else if (memcmp(got, magic, MAGIC_BYTES) == 0 && get_be64(got + 8) != lba) {
			c->kind[lba] = BLK_OTHER_LBA;
			c->found[lba] = get_be64(got + 8);
		} else if (memcmp(got, magic, MAGIC_BYTES) == 0) {
			generation = get_be64(got + 16);
			c->found[lba] = generation;
			if (!c->two_lu) {
				log_block_fill(c->expect, block_bytes, get_be64(got + 24), lba,
					       generation);
				c->kind[lba] = memcmp(got, c->expect, block_bytes) ? BLK_TORN : BLK_LOG;
				continue;
			}
			blk_lu = get_be64(got + 32);
			log2_block_fill(c->expect, block_bytes, get_be64(got + 24), lba, generation,
					blk_lu);
			if (memcmp(got, c->expect, block_bytes) != 0 || blk_lu > 255) {
				c->kind[lba] = BLK_TORN;
			} else if (blk_lu != c->lu_index) {
				c->kind[lba] = BLK_OTHER_LU;
				c->other_lu[lba] = (uint8_t)blk_lu;
			} else {
				c->kind[lba] = BLK_LOG;
			}
		} else {
			c->kind[lba] = memcmp(got, DATA_MAGIC, MAGIC_BYTES) ? BLK_OTHER : BLK_DATA;
		}
	}
	return EXIT_OK;
}

/* The header lines of the log allow an order check: written with --qd 1 only, for as many LUs as
 * the check reads (nr_lus: 2 with --also). */
static int order_log_ok(const struct log *log, const char *path, unsigned nr_lus)
{
	if (!log->nr_headers) {
		msg("order-check: %s has no '# tio log-writer' header line (it names blocks= and qd=)",
		    path);
		return EXIT_USAGE;
	}
	if (log->qd_missing) {
		msg("order-check: a header line of %s does not say qd=; the order check is valid only "
		    "for sequential writes ('tio log-writer --qd 1')", path);
		return EXIT_USAGE;
	}
	if (log->other_qd) {
		msg("order-check: %s was written with qd=%" PRIu64 "; the order check is valid only "
		    "for sequential writes ('tio log-writer --qd 1')", path, log->other_qd);
		return EXIT_USAGE;
	}
	if (log->lus_mixed) {
		msg("order-check: the runs logged in %s wrote to different numbers of LUs (lus= of "
		    "the header lines differ)", path);
		return EXIT_USAGE;
	}
	if (log->nr_lus != nr_lus && nr_lus > 1) {
		msg("order-check: %s is a one-LU log (its header has no 'lus=2'): --also does not "
		    "apply", path);
		return EXIT_USAGE;
	}
	if (log->nr_lus != nr_lus) {
		msg("order-check: %s is the log of a %" PRIu64 "-LU writer ('tio log-writer --also'): "
		    "check all its LUs together with --also URL2", path, log->nr_lus);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* Re-reads the log until it names generation k or wait_s seconds pass (the writer may not have
 * logged the write it was acknowledged yet). */
static int order_wait_log(const char *path, uint64_t k, uint64_t wait_s, unsigned nr_lus,
			  struct log *log)
{
	uint64_t deadline = now_ns() + wait_s * 1000000000ull;
	int rc;

	if (log->max_generation >= k)
		return EXIT_OK;
	msg("order-check: the image holds generation %" PRIu64 ", %s ends at %" PRIu64
	    "; waiting up to %" PRIu64 " s for the writer to log it", k, path, log->max_generation,
	    wait_s);
	while (log->max_generation < k && now_ns() < deadline) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		struct log n;

		nanosleep(&ts, NULL);
		rc = log_load(path, false, &n);
		if (rc)
			return rc;
		free(log->recs);
		*log = n;
		rc = order_log_ok(log, path, nr_lus);
		if (rc)
			return rc;
	}
	return EXIT_OK;
}

/* Says in words what the block at lba holds. */
static void order_found(const struct order_ctx *c, uint64_t lba, char *out, size_t len)
{
	switch (c->kind[lba]) {
	case BLK_ZERO: snprintf(out, len, "zeros (never written)"); break;
	case BLK_LOG: snprintf(out, len, "generation %" PRIu64, c->found[lba]); break;
	case BLK_TORN:
		snprintf(out, len, "a torn or corrupt block (header: generation %" PRIu64 ", body "
			 "wrong)", c->found[lba]);
		break;
	case BLK_OTHER_LBA:
		snprintf(out, len, "the tio log block of lba %" PRIu64, c->found[lba]);
		break;
	case BLK_OTHER_LU:
		snprintf(out, len, "LU %u's block of this lba (generation %" PRIu64 ")",
			 c->other_lu[lba], c->found[lba]);
		break;
	case BLK_OTHER_WRITER:
		snprintf(out, len, "a %s writer's tio log block (generation %" PRIu64 ")",
			 c->two_lu ? "one-LU" : "two-LU ('log-writer --also')", c->found[lba]);
		break;
	case BLK_DATA: snprintf(out, len, "a tio data block ('tio write')"); break;
	default: snprintf(out, len, "unrecognised data"); break;
	}
}

/* Reads lbas [0, c->end_lba) of c->url into c (kind/found per lba). */
static int order_read(const struct opts *o, struct order_ctx *c, const char *log_path)
{
	struct engine eng = { 0 };
	struct lu lu = { 0 };
	size_t n = c->end_lba ? c->end_lba : 1;
	int rc = lu_open(&lu, c->url, o->initiator, o->timeout_s);

	if (rc)
		return rc;
	if (c->end_lba > lu.nr_blocks) {
		msg("order-check: log %s covers %" PRIu64 " blocks, more than %s has (%" PRIu64 ")",
		    log_path, c->end_lba, lu.url, lu.nr_blocks);
		rc = EXIT_USAGE;
		goto out;
	}
	rc = EXIT_FAIL;
	c->found = malloc(n * sizeof(*c->found));
	c->kind = malloc(n);
	c->other_lu = calloc(n, 1);
	c->want = calloc(n, sizeof(*c->want));
	c->expect = malloc(lu.block_bytes);
	if (!c->found || !c->kind || !c->other_lu || !c->want || !c->expect) {
		msg("out of memory for %" PRIu64 " lbas", c->end_lba);
		goto out;
	}
	c->xfer_blocks = lu_xfer_blocks(&lu, 0);
	if (engine_init(&eng, &lu, (unsigned)o->qd, (size_t)c->xfer_blocks * lu.block_bytes,
			order_next, order_done, c))
		goto out;
	rc = engine_run(&eng);
out:
	lu_close(&lu);
	engine_free(&eng);
	return rc;
}

static int cmd_order_check(struct opts *o)
{
	struct order_ctx cs[MAX_LUS] = { 0 };
	unsigned nr_lus = o->also_url ? 2 : 1, k_lu = 0;
	uint64_t k = 0, end_lba, nr_written = 0, nr_bad = 0, nr_newer = 0, nr_older = 0;
	uint64_t bad_per_lu[MAX_LUS] = { 0 }, written_per_lu[MAX_LUS] = { 0 };
	char k_where[64];
	struct log log;
	int rc = log_load(o->log_path, false, &log);

	if (rc)
		return rc;
	rc = order_log_ok(&log, o->log_path, nr_lus);
	if (rc)
		goto out;
	end_lba = log.range_blocks > log.end_lba ? log.range_blocks : log.end_lba;
	/* the images first (one LU after the other: none may change meanwhile), then the log:
	 * every generation <= K was logged before K was issued */
	for (unsigned l = 0; l < nr_lus; l++) {
		struct order_ctx *c = &cs[l];

		c->url = l ? o->also_url : o->args[0];
		c->lu_index = l;
		c->two_lu = nr_lus > 1;
		c->end_lba = end_lba;
		rc = order_read(o, c, o->log_path);
		if (rc)
			goto out;
		for (uint64_t lba = 0; lba < end_lba; lba++)
			if (c->kind[lba] == BLK_LOG && c->found[lba] > k) {
				k = c->found[lba];
				k_lu = l;
			}
	}
	rc = order_wait_log(o->log_path, k, o->wait_s, nr_lus, &log);
	if (rc)
		goto out;
	/* the writer's state at generation K: per LU and lba the last logged write <= K covering
	 * it (a one-LU log's records all have lu 0) */
	for (size_t i = 0; i < log.nr; i++) {
		const struct log_rec *r = &log.recs[i];
		uint64_t *want;

		if (r->generation > k || r->lba >= end_lba || r->lu >= nr_lus)
			continue;
		want = cs[r->lu].want;
		for (uint64_t b = r->lba; b < r->lba + r->nr_blocks && b < end_lba; b++)
			if (r->generation > want[b])
				want[b] = r->generation;
	}
	for (unsigned l = 0; l < nr_lus; l++) {
		const struct order_ctx *c = &cs[l];

		for (uint64_t lba = 0; lba < end_lba; lba++) {
			uint64_t want = c->want[lba];
			bool ok = want ? c->kind[lba] == BLK_LOG && c->found[lba] == want :
					 c->kind[lba] == BLK_ZERO;
			char found[160], where[64] = "";

			written_per_lu[l] += want != 0;
			if (ok)
				continue;
			if (c->kind[lba] == BLK_LOG && c->found[lba] > want)
				nr_newer++;     /* a later write landed before an earlier one */
			else if (c->kind[lba] == BLK_ZERO || c->kind[lba] == BLK_LOG)
				nr_older++;     /* a write is missing */
			nr_bad++;
			if (bad_per_lu[l]++ >= 5)
				continue;
			order_found(c, lba, found, sizeof(found));
			if (nr_lus > 1)
				snprintf(where, sizeof(where), "LU %u ", l);
			if (want)
				msg("order-check: %slba %" PRIu64 ": found %s, expected generation %"
				    PRIu64, where, lba, found, want);
			else
				msg("order-check: %slba %" PRIu64 ": found %s, expected zeros (no logged "
				    "write <= %" PRIu64 " covers it)", where, lba, found, k);
		}
		nr_written += written_per_lu[l];
	}
	if (nr_bad && nr_lus == 1) {
		msg("order-check: FAILED: %" PRIu64 " of %" PRIu64 " blocks differ from the writer's "
		    "state at generation %" PRIu64 " (the highest in the image): %" PRIu64 " newer, %"
		    PRIu64 " older or missing, %" PRIu64 " not an intact tio log block of their lba%s",
		    nr_bad, end_lba, k, nr_newer, nr_older, nr_bad - nr_newer - nr_older,
		    log.max_generation < k ? "; the log never reached that generation" : "");
		rc = EXIT_FAIL;
	} else if (nr_bad) {
		if (k)
			snprintf(k_where, sizeof(k_where), "the highest in the images, on LU %u", k_lu);
		else
			snprintf(k_where, sizeof(k_where), "no intact block of its LU in the images");
		msg("order-check: FAILED: %" PRIu64 " of 2 x %" PRIu64 " blocks (LU 0 %s: %" PRIu64
		    ", LU 1 %s: %" PRIu64 ") differ from the writer's state at generation %" PRIu64
		    " (%s): %" PRIu64 " newer, %" PRIu64 " older or missing, %" PRIu64 " not an intact "
		    "tio log block of their LU and lba%s",
		    nr_bad, end_lba, cs[0].url, bad_per_lu[0], cs[1].url, bad_per_lu[1], k, k_where,
		    nr_newer, nr_older, nr_bad - nr_newer - nr_older,
		    log.max_generation < k ? "; the log never reached that generation" : "");
		rc = EXIT_FAIL;
	} else if (nr_lus == 1) {
		printf("order-check: ok: image = writer state at generation %" PRIu64 " (%" PRIu64
		       " blocks checked, %" PRIu64 " written)\n", k, end_lba, nr_written);
		rc = EXIT_OK;
	} else {
		printf("order-check: ok: image = writer state at generation %" PRIu64 " (2 LUs x %"
		       PRIu64 " blocks checked, %" PRIu64 " written: %" PRIu64 " on LU 0, %" PRIu64
		       " on LU 1)\n", k, end_lba, nr_written, written_per_lu[0], written_per_lu[1]);
		rc = EXIT_OK;
	}
out:
	for (unsigned l = 0; l < MAX_LUS; l++) {
		free(cs[l].expect);
		free(cs[l].found);
		free(cs[l].kind);
		free(cs[l].other_lu);
		free(cs[l].want);
	}
	free(log.recs);
	return rc;
}

/* ---- compare ---------------------------------------------------------------------------------- */

/* READ(16) of len_bytes at lba; NULL with *rc set (and the reason told) on failure. */
static struct scsi_task *compare_read(struct lu *lu, uint64_t lba, uint32_t len_bytes, int *rc)
{
	struct scsi_task *task = iscsi_read16_sync(lu->iscsi, lu->lun, lba, len_bytes,
						   (int)lu->block_bytes, 0, 0, 0, 0, 0);

	if (!task || task->status != SCSI_STATUS_GOOD) {
		*rc = sync_failed(lu, "READ(16)", task);
	} else if (task->datain.size != (int)len_bytes) {
		msg("READ(16) lba=%" PRIu64 " on %s: short read, %d of %" PRIu32 " bytes", lba,
		    lu->url, task->datain.size, len_bytes);
		*rc = EXIT_FAIL;
	} else {
		return task;
	}
	if (task)
		scsi_free_scsi_task(task);
	return NULL;
}

static int cmd_compare(struct opts *o)
{
	struct lu a, b = { 0 };
	uint64_t nr_blocks, lba;
	uint32_t xfer_blocks;
	int rc = lu_open(&a, o->args[0], o->initiator, o->timeout_s);

	if (rc)
		return rc;
	rc = lu_open(&b, o->args[1], o->initiator, o->timeout_s);
	if (rc)
		goto out;
	rc = EXIT_FAIL;
	if (a.block_bytes != b.block_bytes) {
		msg("compare: block sizes differ: %" PRIu32 " bytes vs %" PRIu32 " bytes",
		    a.block_bytes, b.block_bytes);
		goto out;
	}
	if (o->seen & OPT_BIT(O_BLOCKS)) {
		nr_blocks = o->nr_blocks;
	} else if (a.nr_blocks != b.nr_blocks) {
		msg("compare: capacities differ: %" PRIu64 " blocks vs %" PRIu64 " blocks (use "
		    "--blocks N to compare the first N)", a.nr_blocks, b.nr_blocks);
		goto out;
	} else {
		nr_blocks = a.nr_blocks;
	}
	xfer_blocks = lu_xfer_blocks(&a, o->xfer_blocks);
	if (b.max_xfer_blocks && !o->xfer_blocks && xfer_blocks > b.max_xfer_blocks)
		xfer_blocks = b.max_xfer_blocks;
	for (lba = 0; lba < nr_blocks; lba += xfer_blocks) {
		uint32_t n = (uint32_t)(nr_blocks - lba < xfer_blocks ? nr_blocks - lba : xfer_blocks);
		uint32_t len_bytes = n * a.block_bytes;
		struct scsi_task *ta, *tb;
		size_t off;

		ta = compare_read(&a, lba, len_bytes, &rc);
		if (!ta)
			goto out;
		tb = compare_read(&b, lba, len_bytes, &rc);
		if (!tb) {
			scsi_free_scsi_task(ta);
			goto out;
		}
		off = first_diff(ta->datain.data, tb->datain.data, len_bytes);
		if (off < len_bytes) {
			uint64_t bad_lba = lba + off / a.block_bytes;
			const unsigned char *pa = ta->datain.data + (off / a.block_bytes) * a.block_bytes;
			const unsigned char *pb = tb->datain.data + (off / a.block_bytes) * a.block_bytes;
			char da[160], db[160];

			describe_block(pa, a.block_bytes, da, sizeof(da));
			describe_block(pb, b.block_bytes, db, sizeof(db));
			msg("compare: first difference at lba %" PRIu64 " (byte %zu of the block)",
			    bad_lba, off % a.block_bytes);
			msg("compare:   %s holds %s", a.url, da);
			msg("compare:   %s holds %s", b.url, db);
			scsi_free_scsi_task(ta);
			scsi_free_scsi_task(tb);
			rc = EXIT_FAIL;
			goto out;
		}
		scsi_free_scsi_task(ta);
		scsi_free_scsi_task(tb);
	}
	printf("compare: %" PRIu64 " blocks equal\n", nr_blocks);
	rc = EXIT_OK;
out:
	lu_close(&b);
	lu_close(&a);
	return rc;
}

/* ---- put / get / session: raw blocks, as dd writes and reads them --------------------------- */

#define RAW_MAX_BYTES (1u << 20)   /* one command of put or get */

/*
 * Reads all of fd into buf (RAW_MAX_BYTES): the byte count, or -E2BIG (more than that), or
 * -errno.
 */
static ssize_t read_all(int fd, unsigned char *buf)
{
	size_t len = 0;
	char extra;

	while (len < RAW_MAX_BYTES) {
		ssize_t n = read(fd, buf + len, RAW_MAX_BYTES - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return (ssize_t)len;
		len += (size_t)n;
	}
	for (;;) {
		ssize_t n = read(fd, &extra, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		return n ? -E2BIG : (ssize_t)len;
	}
}

/* The bytes of path ("-": stdin) into buf; an exit code, the reason in why. */
static int load_data(const char *path, unsigned char *buf, size_t *len, char *why,
		     size_t why_len)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	const char *name = strcmp(path, "-") ? path : "stdin";
	ssize_t n;

	if (fd < 0) {
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
		return EXIT_USAGE;
	}
	n = read_all(fd, buf);
	if (fd != STDIN_FILENO)
		close(fd);
	if (n == -E2BIG) {
		snprintf(why, why_len, "%s holds more than %u bytes (1 MiB, one command)", name,
			 RAW_MAX_BYTES);
		return EXIT_USAGE;
	}
	if (n < 0) {
		snprintf(why, why_len, "reading %s: %s", name, strerror((int)-n));
		return EXIT_USAGE;
	}
	if (n == 0) {
		snprintf(why, why_len, "%s is empty: nothing to write", name);
		return EXIT_USAGE;
	}
	*len = (size_t)n;
	return EXIT_OK;
}

/*
 * One WRITE(16) of len bytes of buf (RAW_MAX_BYTES, zeroed past len) from lba, padded to whole
 * blocks; or one READ(16) of nr_blocks into buf. An exit code; the reason in why.
 */
static int raw_io(struct lu *lu, bool is_write, uint64_t lba, unsigned char *buf, size_t len,
		  uint64_t nr_blocks, char *why, size_t why_len)
{
	struct scsi_task *task;
	char buf_status[256];
	uint32_t len_bytes;
	int rc = EXIT_OK;

	if (is_write)
		nr_blocks = (len + lu->block_bytes - 1) / lu->block_bytes;
	if (nr_blocks > RAW_MAX_BYTES / lu->block_bytes) {
		snprintf(why, why_len, "%" PRIu64 " blocks of %" PRIu32 " bytes are more than one "
			 "command of at most %u bytes", nr_blocks, lu->block_bytes, RAW_MAX_BYTES);
		return EXIT_USAGE;
	}
	len_bytes = (uint32_t)(nr_blocks * lu->block_bytes);
	if (is_write)
		task = iscsi_write16_sync(lu->iscsi, lu->lun, lba, buf, len_bytes,
					  (int)lu->block_bytes, 0, 0, write_fua, 0, 0);
	else
		task = iscsi_read16_sync(lu->iscsi, lu->lun, lba, len_bytes, (int)lu->block_bytes,
					 0, 0, 0, 0, 0);
	if (!task) {
		snprintf(why, why_len, "%s(16) lba=%" PRIu64 " blocks=%" PRIu64 " on %s failed: %s",
			 is_write ? "WRITE" : "READ", lba, nr_blocks, lu->url, iscsi_err(lu->iscsi));
		lu->dead = true;
		return EXIT_CONN;
	}
	if (task->status != SCSI_STATUS_GOOD) {
		snprintf(why, why_len, "%s(16) lba=%" PRIu64 " blocks=%" PRIu64 " on %s failed: %s%s",
			 is_write ? "WRITE" : "READ", lba, nr_blocks, lu->url,
			 status_text(lu->iscsi, task->status, task, buf_status, sizeof(buf_status)),
			 task->status == SCSI_STATUS_BUSY ? " (the target is busy: try again later)" :
			 "");
		if (status_is_transport(task->status))
			lu->dead = true;
		rc = status_is_transport(task->status) ? EXIT_CONN : EXIT_FAIL;
	} else if (!is_write && task->datain.size != (int)len_bytes) {
		snprintf(why, why_len, "READ(16) lba=%" PRIu64 " blocks=%" PRIu64 " on %s: short "
			 "read, %d of %" PRIu32 " bytes", lba, nr_blocks, lu->url, task->datain.size,
			 len_bytes);
		rc = EXIT_FAIL;
	} else if (!is_write) {
		memcpy(buf, task->datain.data, len_bytes);
	}
	scsi_free_scsi_task(task);
	return rc;
}

static int write_out(FILE *f, const char *name, const unsigned char *buf, size_t len, char *why,
		     size_t why_len)
{
	if (fwrite(buf, 1, len, f) != len || fflush(f)) {
		snprintf(why, why_len, "writing %s: %s", name, strerror(errno));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static int cmd_put(struct opts *o)
{
	unsigned char *buf = calloc(1, RAW_MAX_BYTES);
	char why[512];
	struct lu lu;
	size_t len = 0;
	int rc;

	if (!buf) {
		msg("out of memory");
		return EXIT_FAIL;
	}
	/* the data first: a bad file costs no login */
	rc = load_data(o->file_path ? o->file_path : "-", buf, &len, why, sizeof(why));
	if (rc) {
		msg("put: %s", why);
		free(buf);
		return rc;
	}
	rc = lu_open(&lu, o->args[0], o->initiator, o->timeout_s);
	if (rc) {
		free(buf);
		return rc;
	}
	rc = raw_io(&lu, true, o->start_lba, buf, len, 0, why, sizeof(why));
	if (rc)
		msg("put: %s", why);
	else
		printf("put: %zu bytes as %zu blocks at lba %" PRIu64 "\n", len,
		       (len + lu.block_bytes - 1) / lu.block_bytes, o->start_lba);
	lu_close(&lu);
	free(buf);
	return rc;
}

static int cmd_get(struct opts *o)
{
	unsigned char *buf = malloc(RAW_MAX_BYTES);
	char why[512];
	struct lu lu;
	int rc;

	if (!buf) {
		msg("out of memory");
		return EXIT_FAIL;
	}
	rc = lu_open(&lu, o->args[0], o->initiator, o->timeout_s);
	if (rc) {
		free(buf);
		return rc;
	}
	rc = raw_io(&lu, false, o->start_lba, buf, 0, o->nr_blocks, why, sizeof(why));
	if (rc == EXIT_OK)
		rc = write_out(stdout, "stdout", buf, (size_t)o->nr_blocks * lu.block_bytes, why,
			       sizeof(why));
	if (rc)
		msg("get: %s", why);
	lu_close(&lu);
	free(buf);
	return rc;
}

#define PUTS_MAX 4             /* files of one 'puts' line */

struct puts_batch {
	int pending;
	struct puts_io {
		struct puts_batch *batch;
		int status;
		struct scsi_task *task;
		unsigned char *buf;
		uint32_t nr_blocks;
	} io[PUTS_MAX];
};

static void puts_done(struct iscsi_context *iscsi, int status, void *command_data, void *private)
{
	struct puts_io *io = private;

	(void)iscsi;
	(void)command_data;
	io->status = status;
	io->batch->pending--;
}

/*
 * 'puts LBA FILE...': one WRITE(16) per file at lba, all queued before any completes (the target
 * may run them in any order). An exit code; the reason in why.
 */
static int raw_puts(struct lu *lu, uint64_t lba, char **files, int nr_files, char *why,
		    size_t why_len)
{
	struct puts_batch *b = calloc(1, sizeof(*b));
	char buf_status[256];
	int rc = EXIT_OK;

	if (!b) {
		snprintf(why, why_len, "out of memory");
		return EXIT_FAIL;
	}
	for (int i = 0; i < nr_files && rc == EXIT_OK; i++) {
		size_t len = 0;

		b->io[i].batch = b;
		b->io[i].buf = calloc(1, RAW_MAX_BYTES);
		if (!b->io[i].buf) {
			snprintf(why, why_len, "out of memory");
			rc = EXIT_FAIL;
			break;
		}
		rc = load_data(files[i], b->io[i].buf, &len, why, why_len);
		b->io[i].nr_blocks = (uint32_t)((len + lu->block_bytes - 1) / lu->block_bytes);
	}
	for (int i = 0; i < nr_files && rc == EXIT_OK; i++) {
		struct puts_io *io = &b->io[i];

		io->task = iscsi_write16_task(lu->iscsi, lu->lun, lba, io->buf,
					      io->nr_blocks * lu->block_bytes, (int)lu->block_bytes, 0,
					      0, write_fua, 0, 0, puts_done, io);
		if (!io->task) {
			snprintf(why, why_len, "cannot queue WRITE(16) on %s: %s", lu->url,
				 iscsi_err(lu->iscsi));
			lu->dead = true;
			rc = EXIT_CONN;
			break;
		}
		b->pending++;
	}
	while (b->pending > 0 && !lu->dead) {
		struct pollfd pfd = { .fd = iscsi_get_fd(lu->iscsi),
				      .events = (short)iscsi_which_events(lu->iscsi) };
		int n = poll(&pfd, 1, 100);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || iscsi_service(lu->iscsi, n > 0 ? pfd.revents : 0) < 0) {
			snprintf(why, why_len, "lost the connection to %s: %s", lu->url,
				 n < 0 ? strerror(errno) : iscsi_err(lu->iscsi));
			lu->dead = true;
			rc = EXIT_CONN;
		}
	}
	/* Commands still queued on a dead connection complete when the context is destroyed:
	 * their batch must outlive this call, so it is left to the exit. */
	if (b->pending > 0)
		return rc;
	for (int i = 0; i < nr_files; i++) {
		struct puts_io *io = &b->io[i];

		if (rc == EXIT_OK && io->task && io->status != SCSI_STATUS_GOOD) {
			snprintf(why, why_len, "WRITE(16) of %s at lba=%" PRIu64 " on %s failed: %s",
				 files[i], lba, lu->url, status_text(lu->iscsi, io->status, io->task,
				 buf_status, sizeof(buf_status)));
			rc = status_is_transport(io->status) ? EXIT_CONN : EXIT_FAIL;
		}
		if (io->task)
			scsi_free_scsi_task(io->task);
		free(io->buf);
	}
	free(b);
	return rc;
}

/* One line of 'tio session'; an exit code, and the answer line in out. */
static int session_line(struct lu *lu, char *line, unsigned char *buf, char *out, size_t out_len)
{
	char *word[PUTS_MAX + 2], *save = NULL, why[512];
	uint64_t lba, nr_blocks;
	int n = 0, rc;
	size_t len = 0;
	FILE *f;

	for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == PUTS_MAX + 2) {
			snprintf(out, out_len, "error usage: more than %d words", PUTS_MAX + 2);
			return EXIT_USAGE;
		}
		word[n++] = w;
	}
	if (n == 3 && strcmp(word[0], "put") == 0) {
		if (parse_u64(word[1], false, &lba)) {
			snprintf(out, out_len, "error usage: put LBA FILE: bad LBA '%s'", word[1]);
			return EXIT_USAGE;
		}
		if (strcmp(word[2], "-") == 0) {
			snprintf(out, out_len, "error usage: put LBA FILE: stdin carries the commands");
			return EXIT_USAGE;
		}
		memset(buf, 0, RAW_MAX_BYTES);
		rc = load_data(word[2], buf, &len, why, sizeof(why));
		if (rc == EXIT_OK)
			rc = raw_io(lu, true, lba, buf, len, 0, why, sizeof(why));
		if (rc) {
			snprintf(out, out_len, "error %s%s", rc == EXIT_USAGE ? "usage: " : "", why);
			return rc;
		}
		snprintf(out, out_len, "ok put lba=%" PRIu64 " blocks=%zu bytes=%zu", lba,
			 (len + lu->block_bytes - 1) / lu->block_bytes, len);
		return EXIT_OK;
	}
	if (n == 4 && strcmp(word[0], "get") == 0) {
		if (parse_u64(word[1], false, &lba) || parse_u64(word[2], false, &nr_blocks) ||
		    nr_blocks == 0) {
			snprintf(out, out_len, "error usage: get LBA BLOCKS FILE: bad number in '%s %s'",
				 word[1], word[2]);
			return EXIT_USAGE;
		}
		rc = raw_io(lu, false, lba, buf, 0, nr_blocks, why, sizeof(why));
		if (rc == EXIT_OK) {
			f = fopen(word[3], "we");
			if (!f) {
				snprintf(why, sizeof(why), "%s: %s", word[3], strerror(errno));
				rc = EXIT_USAGE;
			} else {
				rc = write_out(f, word[3], buf, (size_t)nr_blocks * lu->block_bytes,
					       why, sizeof(why));
				if (fclose(f) && rc == EXIT_OK) {
					snprintf(why, sizeof(why), "closing %s: %s", word[3],
						 strerror(errno));
					rc = EXIT_FAIL;
				}
			}
		}
		if (rc) {
			snprintf(out, out_len, "error %s%s", rc == EXIT_USAGE ? "usage: " : "", why);
			return rc;
		}
		snprintf(out, out_len, "ok get lba=%" PRIu64 " blocks=%" PRIu64, lba, nr_blocks);
		return EXIT_OK;
	}
	if (n >= 3 && strcmp(word[0], "puts") == 0) {
		if (parse_u64(word[1], false, &lba)) {
			snprintf(out, out_len, "error usage: puts LBA FILE...: bad LBA '%s'", word[1]);
			return EXIT_USAGE;
		}
		rc = raw_puts(lu, lba, word + 2, n - 2, why, sizeof(why));
		if (rc) {
			snprintf(out, out_len, "error %s%s", rc == EXIT_USAGE ? "usage: " : "", why);
			return rc;
		}
		snprintf(out, out_len, "ok puts lba=%" PRIu64 " writes=%d", lba, n - 2);
		return EXIT_OK;
	}
	snprintf(out, out_len, "error usage: expected 'put LBA FILE' or 'get LBA BLOCKS FILE', not "
		 "'%.60s%s'", n ? word[0] : "", n > 1 ? " ..." : "");
	return EXIT_USAGE;
}

static int cmd_session(struct opts *o)
{
	unsigned char *buf = malloc(RAW_MAX_BYTES);
	char *line = NULL, out[1024];
	size_t cap = 0;
	struct lu lu;
	int rc, worst = EXIT_OK;

	if (!buf) {
		msg("out of memory");
		return EXIT_FAIL;
	}
	rc = lu_open(&lu, o->args[0], o->initiator, o->timeout_s);
	if (rc) {
		free(buf);
		return rc;
	}
	while (getline(&line, &cap, stdin) > 0) {
		char *p = line + strspn(line, " \t\r\n");

		if (*p == '\0' || *p == '#')
			continue;
		rc = session_line(&lu, p, buf, out, sizeof(out));
		printf("%s\n", out);
		fflush(stdout);
		/* worst: connection lost (3) over a bad line (2) over a SCSI error (1) */
		if (rc == EXIT_CONN || (rc == EXIT_USAGE && worst != EXIT_CONN) ||
		    (rc == EXIT_FAIL && worst == EXIT_OK))
			worst = rc;
		if (rc == EXIT_CONN)
			break;
	}
	free(line);
	lu_close(&lu);
	free(buf);
	return worst;
}

/* ---- main ------------------------------------------------------------------------------------- */

static const struct command commands[] = {
	{ "info", 1, 0, cmd_info,
	  "usage: tio info URL\n"
	  "  Prints blocks= block_bytes= size_bytes= (READ CAPACITY 16) and opt_xfer_blocks=\n"
	  "  opt_gran_blocks= max_xfer_blocks= (INQUIRY VPD B0 Block Limits; 0 when absent).\n" },
	{ "sync", 1, 0, cmd_sync,
	  "usage: tio sync URL\n"
	  "  Sends SYNCHRONIZE CACHE(10) for the whole LU.\n" },
	{ "write", 1, OPT_BIT(O_LBA) | OPT_BIT(O_BLOCKS) | OPT_BIT(O_SEED) | OPT_BIT(O_XFER) |
		      OPT_BIT(O_QD) | OPT_BIT(O_FUA), cmd_write,
	  "usage: tio write URL --seed S [--lba L] [--blocks N] [--xfer-blocks X] [--qd N] [--fua]\n"
	  "  Writes blocks whose content is a function of (seed, lba) only: \"TIOBLK01\", be64 lba,\n"
	  "  be64 seed, then a splitmix64 stream. --lba defaults to 0, --blocks to the rest of the\n"
	  "  LU, --xfer-blocks to 1 MiB per command (within VPD B0's maximum), --qd to 8.\n" },
	{ "verify", 1, OPT_BIT(O_LBA) | OPT_BIT(O_BLOCKS) | OPT_BIT(O_SEED) | OPT_BIT(O_ZERO) |
		       OPT_BIT(O_XFER) | OPT_BIT(O_QD), cmd_verify,
	  "usage: tio verify URL (--seed S | --zero) [--lba L] [--blocks N] [--xfer-blocks X] [--qd N]\n"
	  "  Reads the range back and checks it holds what 'tio write --seed S' wrote (or zeros).\n"
	  "  On a mismatch prints the first bad lba, what was expected and what was found; exit 1.\n" },
	{ "load", 1, OPT_BIT(O_RW) | OPT_BIT(O_BS) | OPT_BIT(O_QD) | OPT_BIT(O_SECONDS) |
		     OPT_BIT(O_IOS) | OPT_BIT(O_RANGE) | OPT_BIT(O_SEED) | OPT_BIT(O_JSON) |
		     OPT_BIT(O_FUA), cmd_load,
	  "usage: tio load URL --rw read|write|randread|randwrite --bs BYTES --qd N\n"
	  "                (--seconds S | --ios N) [--range-blocks N] [--seed S] [--json]\n"
	  "  Keeps N commands in flight on one session. BYTES takes k/m/g suffixes (x1024) and must\n"
	  "  be a multiple of the block size. Random offsets are bs-aligned and a function of --seed\n"
	  "  (default 1); sequential ones wrap at the end of the range (default: the whole LU).\n"
	  "  Prints rw= bs= qd= ios= seconds= MBps= IOPS= lat_avg_us= lat_p99_us= (MB = 10^6 bytes),\n"
	  "  or one JSON object with --json. SIGINT stops early and still reports.\n" },
	{ "log-writer", 1, OPT_BIT(O_BLOCKS) | OPT_BIT(O_SEED) | OPT_BIT(O_OUT) | OPT_BIT(O_QD) |
			   OPT_BIT(O_SECONDS) | OPT_BIT(O_MAX_BLOCKS) | OPT_BIT(O_ALSO), cmd_log_writer,
	  "usage: tio log-writer URL --out FILE [--blocks N] [--seed S] [--qd N] [--seconds S]\n"
	  "                      [--max-blocks M] [--also URL2]\n"
	  "  For crash tests: writes 1..M blocks (default 8) at random lbas in [0, N) (default: the\n"
	  "  whole LU), --qd (default 4) at a time, never two overlapping writes in flight. Every\n"
	  "  block carries \"TIOLOG01\", lba, generation, seed and a body derived from them. Each\n"
	  "  acknowledged write is appended to FILE as 'lba nblocks generation' (write(2), O_APPEND)\n"
	  "  before the next command is issued in its slot. Runs until --seconds, SIGINT/SIGTERM,\n"
	  "  or the connection is lost (exit 3). Appending to an existing FILE continues its\n"
	  "  generations. Each run appends a '# tio log-writer ... blocks= qd= ...' header line;\n"
	  "  with --qd 1 the writes are sequential and FILE also serves 'tio order-check'.\n"
	  "  --also URL2: a consistency group of two LUs (one session each; --qd 1, the default\n"
	  "  then, and no other). Each write goes to URL (LU 0) or URL2 (LU 1) as the seeded PRNG\n"
	  "  picks (drawn before its size and lba), one generation counter across both; N defaults\n"
	  "  to the smaller LU and the block sizes must be equal. Lines are 'lba nblocks generation\n"
	  "  lu', the header says 'also=URL2 lus=2', blocks carry \"TIOLOG02\", lba, generation,\n"
	  "  seed and lu. Such a log is checked by 'tio order-check --also' only; an existing FILE\n"
	  "  for another number of LUs is refused (exit 2).\n" },
	{ "log-check", 1, OPT_BIT(O_LOG) | OPT_BIT(O_QD), cmd_log_check,
	  "usage: tio log-check URL --log FILE [--qd N]\n"
	  "  Checks that every lba named in FILE holds a valid tio log block (header and body\n"
	  "  intact) whose generation is >= the highest acknowledged one for that lba. Newer\n"
	  "  generations (writes in flight at a crash) are fine. Exit 1 on any failure.\n" },
	{ "order-check", 1, OPT_BIT(O_LOG) | OPT_BIT(O_QD) | OPT_BIT(O_WAIT) | OPT_BIT(O_ALSO),
	  cmd_order_check,
	  "usage: tio order-check URL --log FILE [--wait-s N] [--qd N] [--also URL2]\n"
	  "  Write-order consistency of a copy (e.g. an asynchronously replicated volume) of the LU\n"
	  "  that 'tio log-writer --qd 1' wrote FILE for: reads lbas [0, blocks=) of FILE's header,\n"
	  "  takes K = the highest generation found in an intact tio log block (0 if none), and\n"
	  "  checks that the image is the writer's state at K: every lba holds exactly the\n"
	  "  generation of the last logged write <= K covering it, or zeros if none does. When the\n"
	  "  log does not name K yet (the writer is still running) it is re-read until it does or\n"
	  "  --wait-s seconds (default 10) pass. Refuses (exit 2) a log written with qd other than 1:\n"
	  "  concurrent writes have no single order. The copy must not change while it is read\n"
	  "  (check it after its updates stopped or were suspended); the writer may still run.\n"
	  "  Prints 'order-check: ok: ...'; on a mismatch the first bad lbas with the generation\n"
	  "  found and expected, then 'FAILED' with counts; exit 1.\n"
	  "  --also URL2: the log of 'tio log-writer URL --also URL2' (a consistency group) and\n"
	  "  the copies of both LUs, URL for LU 0 and URL2 for LU 1, each at least blocks= long,\n"
	  "  read one after the other. K is the highest generation in either image; every block of\n"
	  "  each LU must hold the generation of the last logged write <= K to that LU and lba, or\n"
	  "  zeros: a write on one LU without an earlier one on the other fails, the bad blocks\n"
	  "  named as 'LU n lba L' (up to 5 per LU). A two-LU log without --also, or a one-LU log\n"
	  "  with it, is refused (exit 2).\n" },
	{ "compare", 2, OPT_BIT(O_BLOCKS) | OPT_BIT(O_XFER), cmd_compare,
	  "usage: tio compare URL1 URL2 [--blocks N] [--xfer-blocks X]\n"
	  "  Exit 0 iff the two LUs read back equal (the first N blocks with --blocks; otherwise\n"
	  "  the capacities must match too). Else prints the first differing lba; exit 1.\n" },
	{ "put", 1, OPT_BIT(O_LBA) | OPT_BIT(O_FILE) | OPT_BIT(O_FUA), cmd_put,
	  "usage: tio put URL [--lba L] [--file F] [--fua]\n"
	  "  Writes the bytes of F (default: stdin) from lba L (default 0) in one WRITE(16), the last\n"
	  "  block padded with zeros: 'printf ... | dd bs=512 conv=sync oflag=direct'. 1 byte to\n"
	  "  1 MiB. Prints 'put: B bytes as N blocks at lba L'. A SCSI error (sense decoded, BUSY\n"
	  "  named) exits 1. The session ends with the command: a command device keeps the result\n"
	  "  for this session only, so read it back with 'tio session'.\n" },
	{ "get", 1, OPT_BIT(O_LBA) | OPT_BIT(O_BLOCKS), cmd_get,
	  "usage: tio get URL [--lba L] [--blocks N]\n"
	  "  Reads N blocks (default 1, at most 1 MiB) from lba L (default 0) with one READ(16) and\n"
	  "  writes them to stdout as they are: 'dd iflag=direct'. A SCSI error exits 1.\n" },
	{ "session", 1, 0, cmd_session,
	  "usage: tio session URL\n"
	  "  Logs in once and runs one command per line of stdin, answering each with one line on\n"
	  "  stdout (flushed), so a script can interleave the commands of several sessions:\n"
	  "    put LBA FILE          like 'tio put --lba LBA --file FILE'  -> ok put lba= blocks= bytes=\n"
	  "    get LBA BLOCKS FILE   like 'tio get', the data into FILE    -> ok get lba= blocks=\n"
	  "    puts LBA FILE...      1 to 4 WRITE(16)s of the files at LBA, all in flight at once\n"
	  "                          (the target may run them in any order) -> ok puts lba= writes=\n"
	  "  Blank lines and '#' comments are skipped. A failed command answers 'error WHY' and the\n"
	  "  next line runs (a bad line: 'error usage: ...'). Exit: 0 all ok, 1 a SCSI error,\n"
	  "  2 a bad line, 3 the connection was lost (stops at once).\n" },
};

static int parse_opts(const struct command *cmd, int argc, char **argv, struct opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->initiator = DEFAULT_INITIATOR;
	o->timeout_s = 30;
	o->seed = 1;
	o->max_write_blocks = 8;
	o->wait_s = 10;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:t:h", long_opts, NULL)) != -1) {
		uint64_t *num = NULL;
		bool sized = false;

		if (c == 'h') {
			printf("%s%s", cmd->usage, common_usage);
			return -1;
		}
		if (c == '?')
			return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		if (c == ':')
			return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
		if (c >= O_LBA) {
			if (!(cmd->allowed & OPT_BIT(c)))
				return usage_error(cmd, "--%s does not apply to %s", opt_name(c),
						   cmd->name);
			o->seen |= OPT_BIT(c);
		}
		switch (c) {
		case 'i': o->initiator = optarg; break;
		case 't': {
			uint64_t t;

			if (parse_u64(optarg, false, &t) || t > 3600)
				return usage_error(cmd, "--timeout wants seconds 0..3600, not '%s'",
						   optarg);
			o->timeout_s = (int)t;
			break;
		}
		case O_LBA:        num = &o->start_lba; break;
		case O_BLOCKS:     num = &o->nr_blocks; break;
		case O_SEED:       num = &o->seed; break;
		case O_XFER:       num = &o->xfer_blocks; break;
		case O_QD:         num = &o->qd; break;
		case O_BS:         num = &o->bs_bytes; sized = true; break;
		case O_IOS:        num = &o->nr_ios; break;
		case O_RANGE:      num = &o->range_blocks; break;
		case O_MAX_BLOCKS: num = &o->max_write_blocks; break;
		case O_WAIT:       num = &o->wait_s; break;
		case O_ZERO:       o->zero = true; break;
		case O_JSON:       o->json = true; break;
		case O_FUA:        write_fua = 1; break;
		case O_RW:         o->rw = optarg; break;
		case O_OUT:        o->out_path = optarg; break;
		case O_LOG:        o->log_path = optarg; break;
		case O_FILE:       o->file_path = optarg; break;
		case O_ALSO:       o->also_url = optarg; break;
		case O_SECONDS: {
			char *end;

			errno = 0;
			o->seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->seconds > 0) || o->seconds > 1e6)
				return usage_error(cmd, "--seconds wants a positive number, not '%s'",
						   optarg);
			break;
		}
		}
		if (num && parse_u64(optarg, sized, num))
			return usage_error(cmd, "--%s wants a non-negative integer%s, not '%s'",
					   opt_name(c), sized ? " (k/m/g suffixes allowed)" : "",
					   optarg);
	}
	for (; optind < argc; optind++) {
		if (o->nr_args == cmd->nr_args)
			return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
		o->args[o->nr_args++] = argv[optind];
	}
	if (o->nr_args < cmd->nr_args)
		return usage_error(cmd, "missing %s", cmd->nr_args == 2 && o->nr_args == 1 ?
				   "the second URL" : "the URL");
	return EXIT_OK;
}

/* Per-command requirements that getopt cannot express. */
static int check_opts(const struct command *cmd, struct opts *o)
{
	uint32_t s = o->seen;

	if (cmd->run == cmd_write && !(s & OPT_BIT(O_SEED)))
		return usage_error(cmd, "--seed is required");
	if (cmd->run == cmd_verify && !!(s & OPT_BIT(O_SEED)) == !!(s & OPT_BIT(O_ZERO)))
		return usage_error(cmd, "give exactly one of --seed S and --zero");
	if ((s & OPT_BIT(O_XFER)) && (o->xfer_blocks == 0 || o->xfer_blocks > MAX_XFER_BYTES / 512))
		return usage_error(cmd, "--xfer-blocks must be 1..%u", MAX_XFER_BYTES / 512);
	if ((s & OPT_BIT(O_BLOCKS)) && o->nr_blocks == 0)
		return usage_error(cmd, "--blocks must be at least 1");
	if (cmd->run == cmd_load) {
		if (!o->rw || !(s & OPT_BIT(O_BS)) || !(s & OPT_BIT(O_QD)))
			return usage_error(cmd, "--rw, --bs and --qd are required");
		if (!!(s & OPT_BIT(O_SECONDS)) == !!(s & OPT_BIT(O_IOS)))
			return usage_error(cmd, "give exactly one of --seconds S and --ios N");
		if ((s & OPT_BIT(O_IOS)) && o->nr_ios == 0)
			return usage_error(cmd, "--ios must be at least 1");
	}
	if (cmd->run == cmd_log_writer && !o->out_path)
		return usage_error(cmd, "--out FILE is required");
	if ((cmd->run == cmd_log_check || cmd->run == cmd_order_check) && !o->log_path)
		return usage_error(cmd, "--log FILE is required");
	if (cmd->run == cmd_log_writer && o->also_url) {
		/* two LUs have no common order for concurrent writes: one at a time */
		if ((s & OPT_BIT(O_QD)) && o->qd != 1)
			return usage_error(cmd, "--also wants --qd 1 (the writes to the two LUs must "
					   "have one order)");
		o->qd = 1;
		o->seen |= OPT_BIT(O_QD);
	}
	if ((s & OPT_BIT(O_WAIT)) && o->wait_s > 3600)
		return usage_error(cmd, "--wait-s wants seconds 0..3600");
	if (cmd->run == cmd_get && !(s & OPT_BIT(O_BLOCKS)))
		o->nr_blocks = 1;
	return check_qd(cmd, o, cmd->run == cmd_log_writer ? 4 : 8);
}

int main(int argc, char **argv)
{
	const struct command *cmd = NULL;
	struct opts o;
	int rc;

	if (argc < 2)
		return usage_error(NULL, "missing COMMAND");
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		printf("%s%s", top_usage, common_usage);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd)
		return usage_error(NULL, "unknown command '%s'", argv[1]);
	rc = parse_opts(cmd, argc - 1, argv + 1, &o);
	if (rc < 0)
		return EXIT_OK;   /* --help */
	if (rc == EXIT_OK)
		rc = check_opts(cmd, &o);
	if (rc != EXIT_OK)
		return rc;
	signal(SIGPIPE, SIG_IGN);   /* a dead target must be an error, not a silent death */
	return cmd->run(&o);
}

/*
 * tproxy — a small TCP proxy for link-fault tests (tests/func/31-vvol-faults.sh).
 *
 *   tproxy -l LISTEN_IP:PORT -t TARGET_IP:PORT [-c FIFO] [-s STATEFILE] [-d DELAY_MS]
 *
 * Listens on LISTEN_IP:PORT (PORT 0: any free port) and forwards every accepted connection to
 * TARGET_IP:PORT (a new upstream connection per client connection). The link is in one of
 * three modes, changed at run time:
 *
 *   pass       data flows both ways, each chunk held DELAY_MS first (latency, each way)
 *   blackhole  nothing flows: existing connections stay open but no byte is forwarded either
 *              way (not even a close); new connections are accepted and get the same treatment.
 *              Back to pass, the held bytes flow on in order, as TCP does after a link heals.
 *   rst        every connection is reset (RST to both ends); new ones are accepted and reset.
 *
 * Control, one command per line, written to the FIFO (-c; tproxy creates it, mode 0600):
 *   cut | cut blackhole | blackhole     mode blackhole
 *   cut rst | rst                       mode rst
 *   restore                             mode pass
 *   delay MS                            latency of newly read data, 0..60000 ms
 *   quit                                exit 0
 * and by signals: SIGUSR1 = blackhole, SIGUSR2 = pass, SIGTERM/SIGINT = exit 0.
 * After each command (and at start) the state file (-s) is rewritten atomically with one line
 *   seq=N mode=pass|blackhole|rst delay_ms=D port=P conns=C accepted=A resets=R up=B down=B
 * (seq counts applied commands), so a test writes a command and waits for seq to grow.
 * Bad commands are reported on stderr and change nothing (seq still grows).
 *
 * Bounded: at most MAX_CONNS connection pairs (more wait in the listen backlog), at most
 * MAX_QUEUED bytes held per direction (then that side is not read: TCP backpressure).
 * Exit: 0 on quit or SIGTERM, 2 on bad usage, 1 if it cannot listen.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS    128
#define MAX_QUEUED   (4u << 20)
#define CHUNK_BYTES  65536
#define MAX_DELAY_MS 60000

enum mode { MODE_PASS, MODE_BLACKHOLE, MODE_RST };
static const char *const mode_names[] = { "pass", "blackhole", "rst" };

struct chunk {
	struct chunk *next;
	uint64_t due_ns;
	size_t len, off;
	unsigned char data[];
};

/* One direction of a connection pair: bytes read from `from`, held, written to `to`. */
struct dir {
	int *from, *to;
	struct chunk *head, *tail;
	size_t queued;
	bool eof;          /* `from` said EOF */
	bool shut;         /* EOF passed on: shutdown(to, SHUT_WR) done */
};

struct conn {
	int cfd, ufd;      /* client side, upstream side */
	bool connecting;   /* upstream connect in progress */
	struct dir d[2];   /* 0: client -> upstream, 1: upstream -> client */
};

static struct conn *conns[MAX_CONNS];
static int nconns;
static enum mode mode = MODE_PASS;
static unsigned delay_ms;
static struct sockaddr_in target_addr;
static int listen_fd = -1, ctl_fd = -1;
static const char *state_path, *fifo_path;
static unsigned long long seq, accepted, resets, bytes_up, bytes_down;
static unsigned listen_port;
static volatile sig_atomic_t sig_cut, sig_restore, sig_quit;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("tproxy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || colon[1] == 0 || port > 65535)
		return -1;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void write_state(void)
{
	char tmp[PATH_MAX], line[512];
	int fd, n;

	if (!state_path)
		return;
	n = snprintf(line, sizeof(line), "seq=%llu mode=%s delay_ms=%u port=%u conns=%d accepted=%llu "
		     "resets=%llu up=%llu down=%llu\n", seq, mode_names[mode], delay_ms, listen_port,
		     nconns, accepted, resets, bytes_up, bytes_down);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", state_path) >= (int)sizeof(tmp))
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		say("state file %s: %s", tmp, strerror(errno));
		return;
	}
	if (write(fd, line, (size_t)n) != n)
		say("state file %s: short write", tmp);
	close(fd);
	if (rename(tmp, state_path))
		say("state file %s: %s", state_path, strerror(errno));
}

/* Close with RST (SO_LINGER 0) or plainly. */
static void close_fd(int *fd, bool rst)
{
	if (*fd < 0)
		return;
	if (rst) {
		struct linger l = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(*fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	close(*fd);
	*fd = -1;
}

static void conn_free(int i, bool rst)
{
	struct conn *c = conns[i];

	for (int k = 0; k < 2; k++) {
		while (c->d[k].head) {
			struct chunk *n = c->d[k].head->next;

			free(c->d[k].head);
			c->d[k].head = n;
		}
	}
	close_fd(&c->cfd, rst);
	close_fd(&c->ufd, rst);
	if (rst)
		resets++;
	free(c);
	conns[i] = conns[--nconns];
	conns[nconns] = NULL;
}

static void reset_all(void)
{
	while (nconns)
		conn_free(nconns - 1, true);
}

static void reject(int fd)
{
	close_fd(&fd, true);
	resets++;
}

static void accept_one(void)
{
	int cfd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), ufd, one = 1;
	struct conn *c;

	if (cfd < 0)
		return;
	accepted++;
	if (mode == MODE_RST) {
		reject(cfd);
		return;
	}
	ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c = calloc(1, sizeof(*c));
	if (ufd < 0 || !c) {
		if (ufd >= 0)
			close(ufd);
		free(c);
		reject(cfd);
		return;
	}
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->cfd = cfd;
	c->ufd = ufd;
	c->d[0].from = &c->cfd;
	c->d[0].to = &c->ufd;
	c->d[1].from = &c->ufd;
	c->d[1].to = &c->cfd;
	if (connect(ufd, (struct sockaddr *)&target_addr, sizeof(target_addr)) == 0) {
		c->connecting = false;
	} else if (errno == EINPROGRESS) {
		c->connecting = true;
	} else {
		close(ufd);
		free(c);
		reject(cfd);
		return;
	}
	conns[nconns++] = c;
}

/* Read what `from` has into a new chunk. 0 ok (or nothing to read), -1 the pair is broken. */
static int dir_read(struct dir *d, unsigned long long *counter)
{
	struct chunk *ch = malloc(sizeof(*ch) + CHUNK_BYTES);
	ssize_t n;

	if (!ch)
		return 0;   /* try again later */
	n = read(*d->from, ch->data, CHUNK_BYTES);
	if (n <= 0) {
		free(ch);
		if (n == 0) {
			d->eof = true;
			return 0;
		}
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	}
	if ((size_t)n < CHUNK_BYTES / 2) {   /* keep small reads small: the bound is in bytes */
		struct chunk *smaller = realloc(ch, sizeof(*ch) + (size_t)n);

		if (smaller)
			ch = smaller;
	}
	ch->len = (size_t)n;
	ch->off = 0;
	ch->next = NULL;
	ch->due_ns = delay_ms ? now_ns() + (uint64_t)delay_ms * 1000000ull : 0;
	if (d->tail)
		d->tail->next = ch;
	else
		d->head = ch;
	d->tail = ch;
	d->queued += (size_t)n;
	*counter += (unsigned long long)n;
	return 0;
}

/* Write the due chunks to `to`. 0 ok, -1 the pair is broken. */
static int dir_write(struct dir *d, uint64_t now)
{
	while (d->head && d->head->due_ns <= now) {
		struct chunk *ch = d->head;
		ssize_t n = send(*d->to, ch->data + ch->off, ch->len - ch->off, MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		ch->off += (size_t)n;
		d->queued -= (size_t)n;
		if (ch->off < ch->len)
			return 0;
		d->head = ch->next;
		if (!d->head)
			d->tail = NULL;
		free(ch);
	}
	if (!d->head && d->eof && !d->shut) {
		shutdown(*d->to, SHUT_WR);
		d->shut = true;
	}
	return 0;
}

static void apply(const char *cmd)
{
	char word[32], arg[32];
	int n = sscanf(cmd, "%31s %31s", word, arg);
	char *end;
	unsigned long v;

	seq++;
	if (n < 1)
		return;
	if (!strcmp(word, "cut") || !strcmp(word, "blackhole") || !strcmp(word, "rst")) {
		bool rst = !strcmp(word, "rst") || (n == 2 && !strcmp(arg, "rst"));

		if (n == 2 && strcmp(word, "cut")) {
			say("'%s': unexpected argument", cmd);
			return;
		}
		if (n == 2 && !rst && strcmp(arg, "blackhole")) {
			say("'%s': cut rst | cut blackhole", cmd);
			return;
		}
		mode = rst ? MODE_RST : MODE_BLACKHOLE;
		if (rst)
			reset_all();
	} else if (!strcmp(word, "restore") && n == 1) {
		mode = MODE_PASS;
	} else if (!strcmp(word, "delay") && n == 2) {
		errno = 0;
		v = strtoul(arg, &end, 10);
		if (errno || *end || v > MAX_DELAY_MS) {
			say("'%s': delay 0..%d (ms)", cmd, MAX_DELAY_MS);
			return;
		}
		delay_ms = (unsigned)v;
	} else if (!strcmp(word, "quit") && n == 1) {
		sig_quit = 1;
	} else {
		say("unknown command '%s'", cmd);
	}
}

/* Read the FIFO; apply complete lines. */
static void ctl_read(void)
{
	static char buf[512];
	static size_t len;
	ssize_t n = read(ctl_fd, buf + len, sizeof(buf) - 1 - len);
	char *nl;

	if (n <= 0)
		return;
	len += (size_t)n;
	buf[len] = 0;
	while ((nl = memchr(buf, '\n', len))) {
		*nl = 0;
		apply(buf);
		len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, len);
		buf[len] = 0;
	}
	if (len == sizeof(buf) - 1) {   /* a line that long is garbage */
		say("control line too long, dropped");
		len = 0;
	}
	write_state();
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		sig_cut = 1;
	else if (sig == SIGUSR2)
		sig_restore = 1;
	else
		sig_quit = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: tproxy -l LISTEN_IP:PORT -t TARGET_IP:PORT [-c FIFO] [-s STATEFILE] "
		"[-d DELAY_MS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct pollfd pfd[2 + 2 * MAX_CONNS];
	static int owner[2 + 2 * MAX_CONNS];   /* conn index of each pollfd, -1 for ours */
	struct sockaddr_in laddr;
	socklen_t alen = sizeof(laddr);
	struct sigaction sa;
	sigset_t block, empty;
	bool have_l = false, have_t = false;
	int opt, one = 1;

	while ((opt = getopt(argc, argv, "l:t:c:s:d:h")) != -1) {
		switch (opt) {
		case 'l':
			if (parse_addr(optarg, &laddr))
				usage();
			have_l = true;
			break;
		case 't':
			if (parse_addr(optarg, &target_addr))
				usage();
			have_t = true;
			break;
		case 'c':
			fifo_path = optarg;
			break;
		case 's':
			state_path = optarg;
			break;
		case 'd': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || v > MAX_DELAY_MS)
				usage();
			delay_ms = (unsigned)v;
			break;
		}
		default:
			usage();
		}
	}
	if (!have_l || !have_t || optind != argc)
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* signals are delivered only inside ppoll: no race between the flag checks and the wait */
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&empty);

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(listen_fd, (struct sockaddr *)&laddr, sizeof(laddr)) || listen(listen_fd, 128) ||
	    getsockname(listen_fd, (struct sockaddr *)&laddr, &alen)) {
		say("cannot listen: %s", strerror(errno));
		return 1;
	}
	listen_port = ntohs(laddr.sin_port);
	if (fifo_path) {
		if (mkfifo(fifo_path, 0600) && errno != EEXIST) {
			say("mkfifo %s: %s", fifo_path, strerror(errno));
			return 1;
		}
		/* O_RDWR: never EOF when a writer goes away, and writers' open() never blocks */
		ctl_fd = open(fifo_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (ctl_fd < 0) {
			say("open %s: %s", fifo_path, strerror(errno));
			return 1;
		}
	}
	write_state();

	while (!sig_quit) {
		uint64_t now = now_ns(), next_due = UINT64_MAX;
		struct timespec ts, *tsp = NULL;
		int n = 0, r;

		if (sig_cut || sig_restore) {
			mode = sig_cut ? MODE_BLACKHOLE : MODE_PASS;
			if (sig_cut && sig_restore)
				mode = MODE_PASS;   /* both pending: the later one is unknown; heal */
			sig_cut = sig_restore = 0;
			seq++;
			write_state();
		}
		if (ctl_fd >= 0) {
			pfd[n] = (struct pollfd){ .fd = ctl_fd, .events = POLLIN };
			owner[n++] = -1;
		}
		if (nconns < MAX_CONNS) {
			pfd[n] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
			owner[n++] = -1;
		}
		for (int i = 0; mode == MODE_PASS && i < nconns; i++) {
			struct conn *c = conns[i];
			short ev[2] = { 0, 0 };   /* cfd, ufd */

			if (c->connecting) {
				ev[1] = POLLOUT;
			} else {
				for (int k = 0; k < 2; k++) {
					struct dir *d = &c->d[k];
					int from = k, to = 1 - k;   /* index into ev[] */

					if (!d->eof && d->queued < MAX_QUEUED)
						ev[from] |= POLLIN;
					if (d->head && d->head->due_ns <= now)
						ev[to] |= POLLOUT;
					else if (d->head && d->head->due_ns < next_due)
						next_due = d->head->due_ns;
				}
			}
			/* an fd with nothing to wait for stays out: a hung-up socket would spin */
			if (ev[0]) {
				pfd[n] = (struct pollfd){ .fd = c->cfd, .events = ev[0] };
				owner[n++] = i;
			}
			if (ev[1]) {
				pfd[n] = (struct pollfd){ .fd = c->ufd, .events = ev[1] };
				owner[n++] = i;
			}
		}
		if (next_due != UINT64_MAX) {
			uint64_t wait = next_due > now ? next_due - now : 0;

			ts.tv_sec = (time_t)(wait / 1000000000ull);
			ts.tv_nsec = (long)(wait % 1000000000ull);
			tsp = &ts;
		}
		r = ppoll(pfd, (nfds_t)n, tsp, &empty);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			say("poll: %s", strerror(errno));
			return 1;
		}
		now = now_ns();
		/* pass 1: our fds */
		for (int j = 0; j < n; j++) {
			if (owner[j] >= 0 || !pfd[j].revents)
				continue;
			if (pfd[j].fd == ctl_fd)
				ctl_read();
			else if (pfd[j].fd == listen_fd)
				accept_one();
		}
		if (mode != MODE_PASS)
			continue;
		/* pass 2: connections that polled (indices are stable: nothing was freed yet) */
		for (int i = nconns - 1; i >= 0; i--) {
			struct conn *c = conns[i];
			bool broken = false, ready = false;

			for (int j = 0; j < n; j++)
				if (owner[j] == i && pfd[j].revents)
					ready = true;
			if (c->connecting) {
				if (ready) {
					int err = 0;
					socklen_t el = sizeof(err);

					if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &el) || err)
						broken = true;
					else
						c->connecting = false;
				}
			} else {
				for (int k = 0; k < 2 && !broken; k++) {
					struct dir *d = &c->d[k];

					if (!d->eof && d->queued < MAX_QUEUED)
						broken = dir_read(d, k == 0 ? &bytes_up : &bytes_down) < 0;
				}
				for (int k = 0; k < 2 && !broken; k++)
					broken = dir_write(&c->d[k], now) < 0;
			}
			if (broken)
				conn_free(i, true);
			else if (c->d[0].shut && c->d[1].shut)
				conn_free(i, false);
		}
	}
	reset_all();
	if (fifo_path)
		unlink(fifo_path);
	write_state();
	return 0;
}

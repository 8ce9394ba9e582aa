/* Long operations started by commands (a parity check now; rebuilds, scrubs and copies later):
 * each runs on its own thread inside tgtd; `op-status` reads its progress. Not persistent. */
#ifndef TANDEM_CMDVOL_OPS_H
#define TANDEM_CMDVOL_OPS_H

#include <stdint.h>
#include <time.h>

enum op_state { OP_RUNNING = 0, OP_DONE = 1, OP_FAILED = 2, OP_CANCELLED = 3 };

struct op;
/* The work: call op_progress as it goes, check op_cancelled, return 0 or -errno; the result
 * line (op_result) says what came of it. */
typedef int op_work_fn(struct op *op, void *arg);

struct op_info {
	uint64_t id;
	char kind[32];
	char subject[64];
	enum op_state state;
	uint64_t done, total;       /* units of work, bytes where it makes sense */
	double rate_per_s;
	double eta_s;               /* -1 unknown */
	time_t started, ended;
	char result[256];
};

/* Start; returns the id (> 0) or -errno (-EBUSY: another op of that kind on that subject). */
int64_t op_start(const char *kind, const char *subject, op_work_fn *fn, void *arg,
		 void (*free_arg)(void *arg));
void op_progress(struct op *op, uint64_t done, uint64_t total);
void op_result(struct op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int op_cancelled(struct op *op);
/* 0 or -ENOENT. */
int op_get(uint64_t id, struct op_info *info);
void op_each(void (*fn)(const struct op_info *info, void *arg), void *arg);
/* Cancel the running ops on `subject` ("volid=1") and wait for them: a LU closing. */
void ops_stop_subject(const char *subject);
/* Cancel every running op and wait for them (module unload, tests). */
void ops_shutdown(void);
const char *op_state_name(enum op_state s);

#endif

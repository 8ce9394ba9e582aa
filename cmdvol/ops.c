#include "cmdvol/ops.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raid/tlog.h"

#define OPS_MAX 256

struct op {
	struct op_info info;        /* protected by ops_lock */
	op_work_fn *fn;
	void *arg;
	void (*free_arg)(void *);
	pthread_t thread;
	int cancel;                 /* atomic */
	int joinable;               /* protected by ops_lock: cleared by whoever joins */
	struct timespec t0;
};

static pthread_mutex_t ops_lock = PTHREAD_MUTEX_INITIALIZER;
static struct op *ops[OPS_MAX];     /* protected by ops_lock; oldest finished ones recycled */
static uint64_t next_id = 1;

const char *op_state_name(enum op_state s)
{
	static const char *const n[] = { "running", "done", "failed", "cancelled" };

	return s <= OP_CANCELLED ? n[s] : "unknown";
}

static double elapsed(const struct op *op)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - op->t0.tv_sec) + (double)(t.tv_nsec - op->t0.tv_nsec) / 1e9;
}

static void *op_thread(void *p)
{
	struct op *op = p;
	int err = op->fn(op, op->arg);

	pthread_mutex_lock(&ops_lock);
	op->info.ended = time(NULL);
	op->info.state = __atomic_load_n(&op->cancel, __ATOMIC_RELAXED) ? OP_CANCELLED :
			 err ? OP_FAILED : OP_DONE;
	if (err && !op->info.result[0])
		snprintf(op->info.result, sizeof(op->info.result), "%s", strerror(-err));
	op->info.eta_s = 0;
	pthread_mutex_unlock(&ops_lock);
	tlog(err ? TLOG_ERR : TLOG_INFO, "operation %llu (%s %s) %s: %s",
	     (unsigned long long)op->info.id, op->info.kind, op->info.subject,
	     op_state_name(op->info.state), op->info.result);
	if (op->free_arg)
		op->free_arg(op->arg);
	op->arg = NULL;
	return NULL;
}

int64_t op_start(const char *kind, const char *subject, op_work_fn *fn, void *arg,
		 void (*free_arg)(void *arg))
{
	struct op *op;
	int slot = -1;
	int64_t id;

	pthread_mutex_lock(&ops_lock);
	for (int i = 0; i < OPS_MAX; i++) {
		if (ops[i] && ops[i]->info.state == OP_RUNNING && !strcmp(ops[i]->info.kind, kind) &&
		    !strcmp(ops[i]->info.subject, subject)) {
			pthread_mutex_unlock(&ops_lock);
			return -EBUSY;
		}
		if (!ops[i] && slot < 0)
			slot = i;
	}
	if (slot < 0) { /* recycle the oldest finished op */
		for (int i = 0; i < OPS_MAX; i++)
			if (ops[i]->info.state != OP_RUNNING &&
			    (slot < 0 || ops[i]->info.id < ops[slot]->info.id))
				slot = i;
		if (slot < 0) {
			pthread_mutex_unlock(&ops_lock);
			return -EAGAIN;
		}
		if (ops[slot]->joinable)
			pthread_join(ops[slot]->thread, NULL);
		free(ops[slot]);
		ops[slot] = NULL;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		pthread_mutex_unlock(&ops_lock);
		return -ENOMEM;
	}
	op->info.id = next_id++;
	snprintf(op->info.kind, sizeof(op->info.kind), "%s", kind);
	snprintf(op->info.subject, sizeof(op->info.subject), "%s", subject);
	op->info.state = OP_RUNNING;
	op->info.started = time(NULL);
	op->info.eta_s = -1;
	op->fn = fn;
	op->arg = arg;
	op->free_arg = free_arg;
	clock_gettime(CLOCK_MONOTONIC, &op->t0);
	if (pthread_create(&op->thread, NULL, op_thread, op)) {
		next_id--;
		free(op);
		pthread_mutex_unlock(&ops_lock);
		return -EAGAIN;
	}
	op->joinable = 1;
	ops[slot] = op;
	id = (int64_t)op->info.id;
	pthread_mutex_unlock(&ops_lock);
	return id;
}

void op_progress(struct op *op, uint64_t done, uint64_t total)
{
	double t = elapsed(op);

	pthread_mutex_lock(&ops_lock);
	op->info.done = done;
	op->info.total = total;
	op->info.rate_per_s = t > 0 ? (double)done / t : 0;
	op->info.eta_s = op->info.rate_per_s > 0 && total >= done ?
			 (double)(total - done) / op->info.rate_per_s : -1;
	pthread_mutex_unlock(&ops_lock);
}

void op_result(struct op *op, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&ops_lock);
	va_start(ap, fmt);
	vsnprintf(op->info.result, sizeof(op->info.result), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&ops_lock);
}

int op_cancelled(struct op *op)
{
	return __atomic_load_n(&op->cancel, __ATOMIC_RELAXED);
}

int op_get(uint64_t id, struct op_info *info)
{
	int err = -ENOENT;

	pthread_mutex_lock(&ops_lock);
	for (int i = 0; i < OPS_MAX; i++) {
		if (ops[i] && ops[i]->info.id == id) {
			*info = ops[i]->info;
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&ops_lock);
	return err;
}

void op_each(void (*fn)(const struct op_info *info, void *arg), void *arg)
{
	struct op_info copy[OPS_MAX];
	int n = 0;

	pthread_mutex_lock(&ops_lock);
	for (int i = 0; i < OPS_MAX; i++)
		if (ops[i])
			copy[n++] = ops[i]->info;
	pthread_mutex_unlock(&ops_lock);
	/* by id */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && copy[j - 1].id > copy[j].id; j--) {
			struct op_info t = copy[j];

			copy[j] = copy[j - 1];
			copy[j - 1] = t;
		}
	for (int i = 0; i < n; i++)
		fn(&copy[i], arg);
}

void ops_stop_subject(const char *subject)
{
	pthread_t t[OPS_MAX];
	int n = 0;

	pthread_mutex_lock(&ops_lock);
	for (int i = 0; i < OPS_MAX; i++) {
		if (ops[i] && ops[i]->joinable && !strcmp(ops[i]->info.subject, subject)) {
			__atomic_store_n(&ops[i]->cancel, 1, __ATOMIC_RELAXED);
			t[n++] = ops[i]->thread;
			ops[i]->joinable = 0;
		}
	}
	pthread_mutex_unlock(&ops_lock);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

void ops_shutdown(void)
{
	pthread_mutex_lock(&ops_lock);
	for (int i = 0; i < OPS_MAX; i++)
		if (ops[i])
			__atomic_store_n(&ops[i]->cancel, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&ops_lock);
	for (int i = 0; i < OPS_MAX; i++) {
		if (ops[i]) {
			if (ops[i]->joinable)
				pthread_join(ops[i]->thread, NULL);
			free(ops[i]);
			ops[i] = NULL;
		}
	}
}

#include "raid/vol.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define VOL_MAX 1024

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vol *reg[VOL_MAX];  /* protected by reg_lock */

void vol_init(struct vol *v, const char *type, uint64_t volid, uint64_t size_bytes,
	      uint32_t block_bytes, const struct vol_ops *ops, void *impl)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->type, sizeof(v->type), "%s", type);
	v->volid = volid;
	v->size_bytes = size_bytes;
	v->block_bytes = block_bytes;
	v->ops = ops;
	v->impl = impl;
	v->refs = 1;
	pthread_rwlock_init(&v->hooks_lock, NULL);
}

static int in_range(struct vol *v, uint64_t off, uint64_t len)
{
	return off <= v->size_bytes && len <= v->size_bytes - off;
}

int vol_read(struct vol *v, void *buf, uint64_t off, uint64_t len)
{
	int rc;

	if (!in_range(v, off, len))
		return -ERANGE;
	rc = v->ops->read(v, buf, off, len);
	if (rc && v->hooks) {
		pthread_rwlock_rdlock(&v->hooks_lock);
		for (struct vol_hook *h = v->hooks; h && rc; h = h->next)
			if (h->read_error)
				rc = h->read_error(h, v, buf, off, len, rc);
		pthread_rwlock_unlock(&v->hooks_lock);
	}
	return rc;
}

int vol_write(struct vol *v, const void *buf, uint64_t off, uint64_t len)
{
	struct vol_hook *h, *stop = NULL;
	int rc = 0;

	if (!in_range(v, off, len))
		return -ERANGE;
	if (!v->ops->write)
		return -EROFS;
	pthread_rwlock_rdlock(&v->hooks_lock);
	for (h = v->hooks; h; h = h->next) {
		if (h->pre_write && (rc = h->pre_write(h, v, buf, off, len))) {
			stop = h;
			break;
		}
	}
	if (!rc)
		rc = v->ops->write(v, buf, off, len);
	for (h = v->hooks; h && h != stop; h = h->next)
		if (h->post_write)
			rc = h->post_write(h, v, buf, off, len, rc);
	pthread_rwlock_unlock(&v->hooks_lock);
	return rc;
}

int vol_flush(struct vol *v)
{
	int rc = 0;

	if (v->hooks) {
		pthread_rwlock_rdlock(&v->hooks_lock);
		for (struct vol_hook *h = v->hooks; h && !rc; h = h->next)
			if (h->flush)
				rc = h->flush(h, v);
		pthread_rwlock_unlock(&v->hooks_lock);
	}
	return rc ? rc : v->ops->flush(v);
}

void vol_hook_add(struct vol *v, struct vol_hook *h)
{
	struct vol_hook **pp;

	pthread_rwlock_wrlock(&v->hooks_lock);
	for (pp = &v->hooks; *pp; pp = &(*pp)->next)
		;
	h->next = NULL;
	*pp = h;
	pthread_rwlock_unlock(&v->hooks_lock);
}

void vol_hook_remove(struct vol *v, struct vol_hook *h)
{
	struct vol_hook **pp;

	pthread_rwlock_wrlock(&v->hooks_lock);
	for (pp = &v->hooks; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	pthread_rwlock_unlock(&v->hooks_lock);
}

int vol_register(struct vol *v)
{
	int free_slot = -1;

	if (v->volid == 0)
		return -EINVAL;
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < VOL_MAX; i++) {
		if (reg[i] && reg[i]->volid == v->volid) {
			pthread_mutex_unlock(&reg_lock);
			return -EEXIST;
		}
		if (!reg[i] && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0) {
		pthread_mutex_unlock(&reg_lock);
		return -ENOSPC;
	}
	vol_get(v);
	reg[free_slot] = v;
	v->registered = 1;
	pthread_mutex_unlock(&reg_lock);
	return 0;
}

void vol_unregister(struct vol *v)
{
	int found = 0;

	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < VOL_MAX; i++) {
		if (reg[i] == v) {
			reg[i] = NULL;
			v->registered = 0;
			found = 1;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	if (found)
		vol_put(v);
}

struct vol *vol_lookup(uint64_t volid)
{
	struct vol *v = NULL;

	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < VOL_MAX; i++) {
		if (reg[i] && reg[i]->volid == volid) {
			v = reg[i];
			vol_get(v);
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return v;
}

void vol_get(struct vol *v)
{
	__atomic_add_fetch(&v->refs, 1, __ATOMIC_ACQ_REL);
}

void vol_put(struct vol *v)
{
	if (__atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		pthread_rwlock_destroy(&v->hooks_lock);
		v->ops->destroy(v);
	}
}

void vol_for_each(void (*fn)(struct vol *v, void *arg), void *arg)
{
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < VOL_MAX; i++)
		if (reg[i])
			fn(reg[i], arg);
	pthread_mutex_unlock(&reg_lock);
}

#include "raid/opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raid/layout.h"
#include "raid/util.h"

int opts_split(const char *s, const char *const *known, struct opts *o, char *why, size_t why_len)
{
	const char *p = s ? s : "";

	memset(o, 0, sizeof(*o));
	while (*p) {
		const char *end = strchr(p, ';'), *eq;
		size_t len = end ? (size_t)(end - p) : strlen(p), klen, vlen;
		int i;

		if (len == 0) {
			p++;
			continue;
		}
		eq = memchr(p, '=', len);
		klen = eq ? (size_t)(eq - p) : len;
		vlen = eq ? len - klen - 1 : 0;
		if (klen == 0 || klen >= sizeof(o->key[0]) || vlen >= sizeof(o->val[0])) {
			snprintf(why, why_len, "bsopts: malformed item '%.*s'", (int)(len > 60 ? 60 : len), p);
			return -EINVAL;
		}
		if (o->n == OPTS_MAX) {
			snprintf(why, why_len, "bsopts: more than %d options", OPTS_MAX);
			return -EINVAL;
		}
		memcpy(o->key[o->n], p, klen);
		o->key[o->n][klen] = '\0';
		if (eq)
			memcpy(o->val[o->n], eq + 1, vlen);
		o->val[o->n][vlen] = '\0';
		for (i = 0; known[i]; i++)
			if (!strcmp(known[i], o->key[o->n]))
				break;
		if (!known[i]) {
			char list[200] = "";

			for (i = 0; known[i]; i++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
					 i ? ", " : "", known[i]);
			snprintf(why, why_len, "bsopts: unknown option '%s' (known: %s)", o->key[o->n],
				 list);
			return -EINVAL;
		}
		for (i = 0; i < o->n; i++) {
			if (!strcmp(o->key[i], o->key[o->n])) {
				snprintf(why, why_len, "bsopts: option '%s' given twice", o->key[i]);
				return -EINVAL;
			}
		}
		o->n++;
		p += len;
	}
	return 0;
}

const char *opts_get(const struct opts *o, const char *key)
{
	for (int i = 0; i < o->n; i++)
		if (!strcmp(o->key[i], key))
			return o->val[i];
	return NULL;
}

int opts_u64(const char *key, const char *val, uint64_t min, uint64_t max, uint64_t *out,
	     char *why, size_t why_len)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (!isdigit((unsigned char)val[0]) || (v = strtoull(val, &end, 10), errno) || *end ||
	    v < min || v > max) {
		snprintf(why, why_len, "bsopts: %s='%s': expected an integer from %llu to %llu", key,
			 val, (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int raid_opts_parse(const char *s, struct raid_opts *o, char *why, size_t why_len)
{
	static const char *const known[] = { "volid", "layout", "chunk_kib", "create", "degraded",
					     "bitmap", NULL };
	struct opts kv;
	const char *v;
	uint64_t x;
	int err;

	memset(o, 0, sizeof(*o));
	if ((err = opts_split(s, known, &kv, why, why_len)))
		return err;
	if ((v = opts_get(&kv, "volid"))) {
		if ((err = opts_u64("volid", v, 1, UINT32_MAX, &x, why, why_len)))
			return err;
		o->volid = x;
	}
	if ((v = opts_get(&kv, "layout")) && raid_parse_layout(v, &o->nr_data)) {
		snprintf(why, why_len, "bsopts: layout='%s': expected nD+1P with n from %d to %d", v,
			 RAID_MIN_DATA, RAID_MAX_DATA);
		return -EINVAL;
	}
	if ((v = opts_get(&kv, "chunk_kib"))) {
		if ((err = opts_u64("chunk_kib", v, 4, 1024, &x, why, why_len)))
			return err;
		if (!is_pow2(x)) {
			snprintf(why, why_len, "bsopts: chunk_kib=%s: must be a power of two (4..1024)", v);
			return -EINVAL;
		}
		o->chunk_bytes = (uint32_t)x * 1024;
	}
	if ((v = opts_get(&kv, "create"))) {
		if (!strcmp(v, "0") || !strcmp(v, "no"))
			o->create = 0;
		else if (!strcmp(v, "1") || !strcmp(v, "yes"))
			o->create = 1;
		else if (!strcmp(v, "force"))
			o->create = 2;
		else {
			snprintf(why, why_len, "bsopts: create='%s': expected 0, 1 or force", v);
			return -EINVAL;
		}
	}
	if ((v = opts_get(&kv, "degraded"))) {
		if (strcmp(v, "0") && strcmp(v, "1")) {
			snprintf(why, why_len, "bsopts: degraded='%s': expected 0 or 1", v);
			return -EINVAL;
		}
		o->degraded = v[0] == '1';
	}
	if ((v = opts_get(&kv, "bitmap"))) {
		if (strcmp(v, "0") && strcmp(v, "1")) {
			snprintf(why, why_len, "bsopts: bitmap='%s': expected 0 or 1", v);
			return -EINVAL;
		}
		o->no_bitmap = v[0] == '0';
	}
	if (o->create && (!o->volid || !o->nr_data)) {
		snprintf(why, why_len, "bsopts: create needs volid= and layout=");
		return -EINVAL;
	}
	return 0;
}

int split_members(char *buf, char **paths, int max, char *why, size_t why_len)
{
	int n = 0;
	char *save = NULL, *p;

	if (!buf || !*buf) {
		snprintf(why, why_len, "no members given (--backing-store 'm0;m1;m2...')");
		return -EINVAL;
	}
	for (p = buf; ; p = NULL) {
		char *tok = strtok_r(p, ";", &save);

		if (!tok)
			break;
		if (n == max) {
			snprintf(why, why_len, "more than %d members given", max);
			return -EINVAL;
		}
		paths[n++] = tok;
	}
	if (n == 0) {
		snprintf(why, why_len, "no members given");
		return -EINVAL;
	}
	return n;
}

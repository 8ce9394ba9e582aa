/* Parsing of a LU's --bsopts: "key=value;key=value" (';' because tgt splits LU parameters on
 * ','). Every key must be known to the bstype; each error names the key and the reason. */
#ifndef TANDEM_RAID_OPTS_H
#define TANDEM_RAID_OPTS_H

#include <stddef.h>
#include <stdint.h>

#define OPTS_MAX 16

struct opts {
	int n;
	char key[OPTS_MAX][32];
	char val[OPTS_MAX][224];
};

/* Split into key/value pairs. Empty items are skipped; "key" without '=' has an empty value.
 * A key not in `known` (NULL-terminated), a repeated key or overlong text is -EINVAL. */
int opts_split(const char *s, const char *const *known, struct opts *o, char *why, size_t why_len);
const char *opts_get(const struct opts *o, const char *key);
/* Parse an unsigned decimal value within [min, max]; -EINVAL naming the key otherwise. */
int opts_u64(const char *key, const char *val, uint64_t min, uint64_t max, uint64_t *out,
	     char *why, size_t why_len);

/* bstype raid: volid=N;layout=nD+1P;chunk_kib=K;create=0|1|force;degraded=0|1;bitmap=0|1 */
struct raid_opts {
	uint64_t volid;          /* 0: not given */
	uint32_t nr_data;        /* 0: not given */
	uint32_t chunk_bytes;    /* 0: not given */
	int create;              /* 0 assemble, 1 create, 2 create over an existing array */
	int degraded;            /* accept one newly missing member */
	int no_bitmap;           /* bitmap=0: no write-intent bitmap (at create), or leave it unused */
};
int raid_opts_parse(const char *s, struct raid_opts *o, char *why, size_t why_len);

/* Split a member list "a;b;c" into at most `max` paths (pointers into `buf`, which is modified).
 * Returns the count or -EINVAL (empty item, too many). */
int split_members(char *buf, char **paths, int max, char *why, size_t why_len);

#endif

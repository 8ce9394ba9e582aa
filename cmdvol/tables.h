/* The device's persistent tables ("shared memory" of seed 004), kept in the command device's
 * backing file: a header and two copies of the whole table set, updated alternately with a
 * generation number and a CRC32C (docs/command-device.md, "The device tables"). An update is
 * atomic against kill -9 and torn writes. Records are text lines "<table> key=value ...". */
#ifndef TANDEM_CMDVOL_TABLES_H
#define TANDEM_CMDVOL_TABLES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define TABLES_HEADER_BYTES 4096u
#define TABLES_COPY_BYTES (1024u * 1024u)
#define TABLES_FILE_BYTES (TABLES_HEADER_BYTES + 2 * TABLES_COPY_BYTES)
#define TABLES_NAME_MAX 63

struct tbl_recs {
	int n, cap;
	char **line;            /* without '\n' */
};

struct tables;

/* Open (create=0) or initialise (create=1: refuses a file that already holds tables) the tables
 * file at `path`; `device_name` is recorded at create. `why` says what is wrong. */
int tables_open(const char *path, int create, const char *device_name, struct tables **out,
		char *why, size_t why_len);
void tables_close(struct tables *t);

const char *tables_device_name(struct tables *t);
const char *tables_path(struct tables *t);
/* "xxxxxxxx-xxxx-..." */
const char *tables_device_uuid(struct tables *t);
uint64_t tables_generation(struct tables *t);

/* Run fn on a copy of the current records; if it returns 0, write them as the next generation
 * (also when fn changed nothing). Returns fn's error, or -errno of the write (the old tables stay
 * current). Serialised: one update at a time. */
int tables_update(struct tables *t, int (*fn)(struct tbl_recs *r, void *arg), void *arg);
/* Call fn for each record of a table type ("cmddev"), under the read lock. */
void tables_each(struct tables *t, const char *type,
		 void (*fn)(const char *line, void *arg), void *arg);

/* Record helpers (for fn above). */
int tbl_add(struct tbl_recs *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tbl_del(struct tbl_recs *r, int idx);
/* Index of the first record of `type` whose `key` equals `val`, or -1. */
int tbl_find(const struct tbl_recs *r, const char *type, const char *key, const char *val);
/* Value of key in a record line, copied into buf; NULL when absent. */
const char *tbl_get(const char *line, const char *key, char *buf, size_t buf_len);

#endif

/* Command blocks and results: the in-band control protocol of command devices
 * (docs/command-device.md). Shared by the module (parse, authenticate, render results) and
 * tandemctl (encode, sign, parse results). Pure functions, no I/O. */
#ifndef TANDEM_CMDVOL_CMDBLOCK_H
#define TANDEM_CMDVOL_CMDBLOCK_H

#include <stddef.h>
#include <stdint.h>

#define CB_VERSION 1
#define CB_MAX_BYTES 4096
#define CB_MAX_PARAMS 24
#define CB_KEY_MAX 31
#define CB_VAL_MAX 255
#define CB_TAG_MAX 32
#define CB_HOST_MAX 63
#define CB_MAC_BYTES 32

enum cb_status {
	CB_OK = 0, CB_RUNNING = 1, CB_BUSY = 2, CB_INVALID = 3, CB_UNKNOWN_COMMAND = 4,
	CB_BAD_VERSION = 5, CB_AUTH_REQUIRED = 6, CB_REPLAY = 7, CB_NOT_FOUND = 8, CB_EXISTS = 9,
	CB_FAILED = 10,
};
#define CB_STATUS_MAX CB_FAILED

struct cb_param {
	char key[CB_KEY_MAX + 1];
	char val[CB_VAL_MAX + 1];
};

struct cmdblock {
	int version;
	char command[CB_KEY_MAX + 1];        /* name or decimal process number, as written */
	int nparams;                         /* input parameters (without tag/edit/host/seq/mac) */
	struct cb_param p[CB_MAX_PARAMS];
	char tag[CB_TAG_MAX + 1];
	int edit;                            /* presence of edited data (default 1) */
	char host[CB_HOST_MAX + 1];          /* "" when absent */
	uint64_t seq;                        /* 0 when absent */
	int has_mac;
	uint8_t mac[CB_MAC_BYTES];
	size_t signed_len;                   /* bytes the MAC covers (the line before " mac=") */
	size_t line_len;                     /* bytes of the command line */
};

const char *cb_status_name(int status);

/* Parse a written block. Returns 0 (parsed), -ENODATA (not a command block: no "TDM" magic;
 * execute nothing), or a positive CB_* status (CB_INVALID, CB_BAD_VERSION) with the reason in
 * `why`. Never reads past `len`. */
int cb_parse(const void *buf, size_t len, struct cmdblock *cb, char *why, size_t why_len);
/* The value of an input parameter, or NULL. */
const char *cb_get(const struct cmdblock *cb, const char *key);

/* HMAC-SHA256 (OpenSSL). 0 or -EIO. */
int cb_mac(const uint8_t *key, size_t key_len, const void *data, size_t len,
	   uint8_t mac[CB_MAC_BYTES]);
/* Verify the block's MAC against `line` (the bytes that were parsed). 0 ok, -EBADMSG wrong,
 * -ENOKEY unsigned. Constant-time compare. */
int cb_verify(const struct cmdblock *cb, const void *line, const uint8_t *key, size_t key_len);

/* Encode a command line (with '\n'). `params` are "key=value" strings. With a key, appends
 * "host=H seq=N mac=HEX". Returns the length, or -E2BIG / -EINVAL (bad name or value). */
int cb_encode(const char *command, const char *const *params, int nparams, const char *tag,
	      int edit, const uint8_t *key, size_t key_len, const char *host, uint64_t seq,
	      char *out, size_t out_len);

/* Percent-encode a value for a result record (space, '%', '=', controls, non-ASCII). */
void cb_pct_encode(const char *in, char *out, size_t out_len);
void cb_pct_decode(const char *in, char *out, size_t out_len);

/* A result being built by the device. */
struct cb_result {
	int status;
	char tag[CB_TAG_MAX + 1];
	char msg[256];
	char *body;                          /* record lines, each ending '\n' */
	size_t body_len, body_cap;
	int body_lines;
	int oom;                             /* a line could not be added */
};

void res_init(struct cb_result *r, const char *tag);
void res_free(struct cb_result *r);
/* Set the status and the human message. */
void res_status(struct cb_result *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Append one record line (no '\n' in fmt). */
void res_line(struct cb_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The full result text (malloc'd): header, msg, records, "end\n". Returns length or -ENOMEM. */
long res_render(const struct cb_result *r, char **out);

/* A result as the host parses it. */
struct cb_reply {
	int status;
	char name[24];
	char tag[CB_TAG_MAX + 1];
	char msg[512];
	size_t bytes;                        /* whole result text length from the header */
	int nlines;                          /* record lines (without msg/end) */
	char **lines;                        /* malloc'd */
};
/* The header line alone: fills status/name/tag/bytes. 0, -ENODATA (zeros: no result), -EPROTO. */
int cb_reply_header(const char *text, size_t len, struct cb_reply *r);
/* The whole text. 0, -ENODATA, -EPROTO (why says what), -ENOMEM. */
int cb_reply_parse(const char *text, size_t len, struct cb_reply *r, char *why, size_t why_len);
void cb_reply_free(struct cb_reply *r);
/* Value of key in a record line ("vol volid=1 type=raid"), percent-decoded; NULL if absent. */
const char *cb_rec_get(const char *line, const char *key, char *buf, size_t buf_len);

#endif

/* libFuzzer target for the command-block protocol (cmdvol/cmdblock.h): every input is
 *   1. a written block for cb_parse; a block that parses must satisfy what the parser promises
 *      (each field is literally one item of the line, cb_get finds each parameter, the limits
 *      hold) and must re-encode with cb_encode (plain and signed) to a block that parses back to
 *      the same command, parameters, tag and edit flag, and verifies;
 *   2. a result text for cb_reply_parse, which must stay inside the input and leave nothing
 *      allocated after cb_reply_free;
 *   3. material for res_* -> res_render -> cb_reply_parse and cb_pct_encode/decode round trips.
 * Any broken promise is abort(): libFuzzer reports it as a crash with the input.
 * Built by tests/fuzz/01-cmdblock.sh. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdvol/cmdblock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_key[32] = "tandem-fuzz-key-0123456789abcdef";

#define CHECK(cond)                                                                               \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "fuzz_cmdblock: %s:%d: check failed: %s\n", __FILE__,      \
				__LINE__, #cond);                                                 \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static int is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int is_tag_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* " key=val" occurs in line[0, len) as a whole item (followed by a space or the end). */
static int has_item(const char *line, size_t len, const char *key, const char *val)
{
	char item[CB_KEY_MAX + CB_VAL_MAX + 4];
	size_t n = (size_t)snprintf(item, sizeof(item), " %s=%s", key, val);
	const char *p = line, *end = line + len;

	while (p + n <= end) {
		const char *hit = memmem(p, (size_t)(end - p), item, n);

		if (!hit)
			return 0;
		if (hit + n == end || hit[n] == ' ')
			return 1;
		p = hit + 1;
	}
	return 0;
}

/* The length cb_encode must produce for this block's content (no key), '\n' included. */
static size_t encoded_len(const struct cmdblock *cb)
{
	size_t n = 5 + strlen(cb->command) + 1;

	for (int i = 0; i < cb->nparams; i++)
		n += 2 + strlen(cb->p[i].key) + strlen(cb->p[i].val);
	if (cb->tag[0])
		n += 5 + strlen(cb->tag);
	if (!cb->edit)
		n += 7;
	return n;
}

static void same_content(const struct cmdblock *a, const struct cmdblock *b)
{
	CHECK(!strcmp(a->command, b->command));
	CHECK(a->nparams == b->nparams);
	for (int i = 0; i < a->nparams; i++) {
		CHECK(!strcmp(a->p[i].key, b->p[i].key));
		CHECK(!strcmp(a->p[i].val, b->p[i].val));
	}
	CHECK(!strcmp(a->tag, b->tag));
	CHECK(a->edit == b->edit);
}

static void check_block(const uint8_t *data, size_t size)
{
	struct cmdblock cb, cb2;
	char why[256], out[CB_MAX_BYTES + 2];
	const char *params[CB_MAX_PARAMS];
	char pbuf[CB_MAX_PARAMS][CB_KEY_MAX + CB_VAL_MAX + 2];
	const char *line = (const char *)data;
	size_t llen, want;
	int st, n;

	why[0] = '\0';
	st = cb_parse(data, size, &cb, why, sizeof(why));
	if (st != 0) {
		CHECK(st == -ENODATA || st == CB_INVALID || st == CB_BAD_VERSION);
		CHECK(memchr(why, '\0', sizeof(why)) != NULL);
		if (st > 0)
			CHECK(why[0] != '\0');
		if (st == -ENODATA)
			CHECK(size < 3 || memcmp(data, "TDM", 3) != 0);
		return;
	}
	/* what the parser promises */
	CHECK(size >= 3 && !memcmp(data, "TDM", 3));
	CHECK(cb.version == CB_VERSION);
	CHECK(cb.line_len <= size && cb.line_len <= CB_MAX_BYTES);
	CHECK(cb.command[0] != '\0');
	for (const char *c = cb.command; *c; c++)
		CHECK(is_key_char(*c));
	CHECK(cb.nparams >= 0 && cb.nparams <= CB_MAX_PARAMS);
	CHECK(cb.edit == 0 || cb.edit == 1);
	llen = cb.line_len;
	if (llen && line[llen - 1] == '\r')
		llen--;
	for (size_t i = 0; i < llen; i++)
		CHECK(data[i] >= 0x20 && data[i] <= 0x7e);
	for (int i = 0; i < cb.nparams; i++) {
		size_t kl = strlen(cb.p[i].key);

		CHECK(kl >= 1 && kl <= CB_KEY_MAX);
		CHECK(strlen(cb.p[i].val) <= CB_VAL_MAX);
		CHECK(cb_get(&cb, cb.p[i].key) == cb.p[i].val);      /* no duplicates */
		CHECK(has_item(line, llen, cb.p[i].key, cb.p[i].val));
	}
	CHECK(cb_get(&cb, "tag") == NULL && cb_get(&cb, "mac") == NULL);
	if (cb.tag[0])
		CHECK(has_item(line, llen, "tag", cb.tag));
	if (cb.host[0])
		CHECK(has_item(line, llen, "host", cb.host));
	if (cb.has_mac) {
		CHECK(cb.signed_len < llen);
		CHECK(!memcmp(line + cb.signed_len, " mac=", 5));
		CHECK(cb.signed_len + 5 + 2 * CB_MAC_BYTES == llen);
		st = cb_verify(&cb, data, fuzz_key, sizeof(fuzz_key));
		CHECK(st == 0 || st == -EBADMSG);
	} else {
		CHECK(cb_verify(&cb, data, fuzz_key, sizeof(fuzz_key)) == -ENOKEY);
	}

	/* re-encode the content; it must come back the same */
	for (int i = 0; i < cb.nparams; i++) {
		snprintf(pbuf[i], sizeof(pbuf[i]), "%s=%s", cb.p[i].key, cb.p[i].val);
		params[i] = pbuf[i];
	}
	want = encoded_len(&cb);
	n = cb_encode(cb.command, params, cb.nparams, cb.tag, cb.edit, NULL, 0, NULL, 0, out,
		      sizeof(out));
	if (want > CB_MAX_BYTES) {
		CHECK(n == -E2BIG);
	} else {
		CHECK(n == (int)want);
		CHECK(cb_parse(out, (size_t)n, &cb2, why, sizeof(why)) == 0);
		same_content(&cb, &cb2);
		CHECK(!cb2.has_mac && cb2.line_len == (size_t)n - 1);
	}
	/* signed: " host=fz seq=1 mac=<64>" more */
	want += 14 + 5 + 2 * CB_MAC_BYTES;
	n = cb_encode(cb.command, params, cb.nparams, cb.tag, cb.edit, fuzz_key, sizeof(fuzz_key),
		      "fz", 1, out, sizeof(out));
	if (want > CB_MAX_BYTES) {
		CHECK(n == -E2BIG);
	} else {
		CHECK(n == (int)want);
		CHECK(cb_parse(out, (size_t)n, &cb2, why, sizeof(why)) == 0);
		same_content(&cb, &cb2);
		CHECK(cb2.has_mac && cb2.seq == 1 && !strcmp(cb2.host, "fz"));
		CHECK(cb_verify(&cb2, out, fuzz_key, sizeof(fuzz_key)) == 0);
		out[0] = 'X';                    /* any change breaks it (checked on one byte) */
		CHECK(cb_verify(&cb2, out, fuzz_key, sizeof(fuzz_key)) == -EBADMSG);
	}
}

static void check_reply(const uint8_t *data, size_t size)
{
	struct cb_reply r;
	char why[256], buf[300];
	int err;

	err = cb_reply_header((const char *)data, size, &r);
	CHECK(err == 0 || err == -ENODATA || err == -EPROTO);
	err = cb_reply_parse((const char *)data, size, &r, why, sizeof(why));
	CHECK(err == 0 || err == -ENODATA || err == -EPROTO || err == -ENOMEM);
	if (err) {
		CHECK(r.lines == NULL && r.nlines == 0);
		return;
	}
	CHECK(r.bytes <= size);
	CHECK(r.nlines >= 0);
	CHECK(memchr(r.msg, '\0', sizeof(r.msg)) != NULL);
	CHECK(memchr(r.name, '\0', sizeof(r.name)) != NULL);
	CHECK(strlen(r.tag) <= CB_TAG_MAX);
	for (int i = 0; i < r.nlines; i++) {
		CHECK(r.lines[i] != NULL);
		CHECK(strchr(r.lines[i], '\n') == NULL);
		(void)cb_rec_get(r.lines[i], "volid", buf, sizeof(buf));
		(void)cb_rec_get(r.lines[i], "path", buf, 8);
	}
	cb_reply_free(&r);
	CHECK(r.lines == NULL && r.nlines == 0);
}

/* The input as text pieces: a result built from them renders and parses back the same. */
static void check_render(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *rendered, *save = NULL, *piece, why[256];
	char enc[3 * 300 + 8], dec[300];
	struct cb_result res;
	struct cb_reply r;
	int status, nlines = 0;
	long len;

	if (!text || size == 0) {
		free(text);
		return;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	status = data[0] % (CB_STATUS_MAX + 1);
	/* a tag as the device echoes it: the leading tag characters of the input after byte 0 */
	{
		char tag[CB_TAG_MAX + 1];
		size_t tn = 0;

		while (tn < CB_TAG_MAX && tn + 1 < size && is_tag_char(text[tn + 1])) {
			tag[tn] = text[tn + 1];
			tn++;
		}
		tag[tn] = '\0';
		res_init(&res, tn ? tag : NULL);
		res_status(&res, status, "%s", "");
	}
	for (piece = strtok_r(text, "\n", &save); piece; piece = strtok_r(NULL, "\n", &save)) {
		char one[300];

		snprintf(one, sizeof(one), "%s", piece);
		/* percent-encoding round trip */
		cb_pct_encode(one, enc, sizeof(enc));
		for (const char *c = enc; *c; c++)
			CHECK(*c > ' ' && *c < 0x7f && *c != '=');
		cb_pct_decode(enc, dec, sizeof(dec));
		CHECK(!strcmp(dec, one));
		if (nlines == 0)
			res_status(&res, status, "%s", one);
		else
			res_line(&res, "rec n=%d v=%s", nlines, enc);
		nlines++;
	}
	len = res_render(&res, &rendered);
	CHECK(len > 0 || res.oom);
	if (len > 0) {
		CHECK((size_t)len == strlen(rendered));
		CHECK(cb_reply_parse(rendered, (size_t)len, &r, why, sizeof(why)) == 0);
		CHECK(r.bytes == (size_t)len);
		CHECK(r.status == status);
		CHECK(!strcmp(r.name, cb_status_name(status)));
		CHECK(!strcmp(r.tag, strcmp(res.tag, "-") ? res.tag : ""));
		CHECK(!strcmp(r.msg, res.msg));
		CHECK(r.nlines == res.body_lines);
		for (int i = 0; i < r.nlines; i++) {
			char want[32];

			snprintf(want, sizeof(want), "rec n=%d v=", i + 1);
			CHECK(!strncmp(r.lines[i], want, strlen(want)));
		}
		cb_reply_free(&r);
		free(rendered);
	}
	res_free(&res);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_block(data, size);
	check_reply(data, size);
	check_render(data, size);
	return 0;
}

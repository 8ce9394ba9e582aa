#include "cmdvol/cmdblock.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
	"OK", "RUNNING", "BUSY", "INVALID", "UNKNOWN_COMMAND", "BAD_VERSION", "AUTH_REQUIRED",
	"REPLAY", "NOT_FOUND", "EXISTS", "FAILED",
};

const char *cb_status_name(int status)
{
	return status >= 0 && status <= CB_STATUS_MAX ? status_names[status] : "UNKNOWN";
}

static int key_char(int c) { return islower(c) || isdigit(c) || c == '_' || c == '-'; }
static int val_char(int c)
{
	return isalnum(c) || (c && strchr("_.:/@+,;%=-", c));
}
static int tag_char(int c) { return isalnum(c) || c == '_' || c == '.' || c == '-'; }

#define WHY(...) (snprintf(why, why_len, __VA_ARGS__), CB_INVALID)

int cb_parse(const void *buf, size_t len, struct cmdblock *cb, char *why, size_t why_len)
{
	const char *s = buf, *p, *end;
	size_t n = 0;
	int version = 0, first = 1, seen_edit = 0;

	memset(cb, 0, sizeof(*cb));
	cb->edit = 1;
	if (len < 3 || memcmp(s, "TDM", 3) != 0)
		return -ENODATA;
	while (n < len && n <= CB_MAX_BYTES && s[n] != '\n' && s[n] != '\0')
		n++;
	if (n > CB_MAX_BYTES)
		return WHY("command block longer than %d bytes without an end of line", CB_MAX_BYTES);
	cb->line_len = n;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	end = s + n;
	for (p = s; p < end; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return WHY("byte 0x%02x at offset %td: command blocks are printable ASCII",
				   (unsigned char)*p, p - s);
	p = s + 3;
	if (p >= end || !isdigit((unsigned char)*p))
		return WHY("no protocol version after TDM");
	while (p < end && isdigit((unsigned char)*p)) {
		version = version * 10 + (*p - '0');
		if (version > 1000)
			break;
		p++;
	}
	cb->version = version;
	if (version != CB_VERSION) {
		snprintf(why, why_len, "protocol version %d is not supported (this device speaks TDM%d)",
			 version, CB_VERSION);
		return CB_BAD_VERSION;
	}
	if (p == end)
		return WHY("no command after TDM1");
	if (*p != ' ')
		return WHY("expected a space after TDM1");
	p++;
	while (p < end) {
		const char *tok = p, *eq;
		size_t tlen, klen, vlen;

		while (p < end && *p != ' ')
			p++;
		tlen = (size_t)(p - tok);
		if (tlen == 0)
			return WHY("empty item at offset %td (items are separated by one space)", tok - s);
		if (p < end)
			p++; /* the space */
		if (p == end && tok + tlen < end)
			return WHY("trailing space");
		if (first) {
			first = 0;
			if (tlen > CB_KEY_MAX)
				return WHY("command name too long");
			for (size_t i = 0; i < tlen; i++)
				if (!key_char((unsigned char)tok[i]))
					return WHY("bad character '%c' in command name", tok[i]);
			memcpy(cb->command, tok, tlen);
			continue;
		}
		eq = memchr(tok, '=', tlen);
		if (!eq)
			return WHY("item '%.*s' is not key=value", (int)(tlen > 40 ? 40 : tlen), tok);
		klen = (size_t)(eq - tok);
		vlen = tlen - klen - 1;
		if (klen == 0 || klen > CB_KEY_MAX)
			return WHY("bad parameter name at offset %td", tok - s);
		for (size_t i = 0; i < klen; i++)
			if (!key_char((unsigned char)tok[i]))
				return WHY("bad character '%c' in parameter name '%.*s'", tok[i], (int)klen, tok);
		if (vlen > CB_VAL_MAX)
			return WHY("value of '%.*s' longer than %d bytes", (int)klen, tok, CB_VAL_MAX);
		for (size_t i = 0; i < vlen; i++)
			if (!val_char((unsigned char)eq[1 + i]))
				return WHY("bad character '%c' in the value of '%.*s'", eq[1 + i], (int)klen, tok);
		if (cb->has_mac)
			return WHY("mac= must be the last item");
#define KEY_IS(k) (klen == strlen(k) && !memcmp(tok, k, klen))
		if ((KEY_IS("tag") && cb->tag[0]) || (KEY_IS("host") && cb->host[0]) ||
		    (KEY_IS("seq") && cb->seq) || (KEY_IS("edit") && seen_edit++))
			return WHY("parameter '%.*s' given twice", (int)klen, tok);
		if (KEY_IS("tag")) {
			if (vlen == 0 || vlen > CB_TAG_MAX)
				return WHY("tag must be 1..%d characters", CB_TAG_MAX);
			for (size_t i = 0; i < vlen; i++)
				if (!tag_char((unsigned char)eq[1 + i]))
					return WHY("bad character '%c' in tag", eq[1 + i]);
			memcpy(cb->tag, eq + 1, vlen);
		} else if (KEY_IS("edit")) {
			if (vlen != 1 || (eq[1] != '0' && eq[1] != '1'))
				return WHY("edit must be 0 or 1");
			cb->edit = eq[1] - '0';
		} else if (KEY_IS("host")) {
			if (vlen == 0 || vlen > CB_HOST_MAX)
				return WHY("host must be 1..%d characters", CB_HOST_MAX);
			memcpy(cb->host, eq + 1, vlen);
		} else if (KEY_IS("seq")) {
			char tmp[32], *e;

			if (vlen == 0 || vlen > 20)
				return WHY("seq must be a decimal number");
			memcpy(tmp, eq + 1, vlen);
			tmp[vlen] = '\0';
			errno = 0;
			cb->seq = strtoull(tmp, &e, 10);
			if (*e || errno || !isdigit((unsigned char)tmp[0]) || cb->seq == 0)
				return WHY("seq must be a positive decimal number");
		} else if (KEY_IS("mac")) {
			if (vlen != 2 * CB_MAC_BYTES)
				return WHY("mac must be %d hex digits", 2 * CB_MAC_BYTES);
			for (size_t i = 0; i < CB_MAC_BYTES; i++) {
				unsigned int b;
				char h[3] = { eq[1 + 2 * i], eq[2 + 2 * i], 0 };

				if (!isxdigit((unsigned char)h[0]) || !isxdigit((unsigned char)h[1]) ||
				    sscanf(h, "%2x", &b) != 1)
					return WHY("mac must be %d hex digits", 2 * CB_MAC_BYTES);
				cb->mac[i] = (uint8_t)b;
			}
			cb->has_mac = 1;
			cb->signed_len = (size_t)(tok - s) - 1;
		} else {
			for (int i = 0; i < cb->nparams; i++)
				if (strlen(cb->p[i].key) == klen && !memcmp(cb->p[i].key, tok, klen))
					return WHY("parameter '%.*s' given twice", (int)klen, tok);
			if (cb->nparams == CB_MAX_PARAMS)
				return WHY("more than %d parameters", CB_MAX_PARAMS);
			memcpy(cb->p[cb->nparams].key, tok, klen);
			memcpy(cb->p[cb->nparams].val, eq + 1, vlen);
			cb->nparams++;
		}
#undef KEY_IS
	}
	if (first)
		return WHY("no command after TDM1");
	return 0;
}

const char *cb_get(const struct cmdblock *cb, const char *key)
{
	for (int i = 0; i < cb->nparams; i++)
		if (!strcmp(cb->p[i].key, key))
			return cb->p[i].val;
	return NULL;
}

int cb_mac(const uint8_t *key, size_t key_len, const void *data, size_t len,
	   uint8_t mac[CB_MAC_BYTES])
{
	unsigned int out_len = 0;

	if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, mac, &out_len) ||
	    out_len != CB_MAC_BYTES)
		return -EIO;
	return 0;
}

int cb_verify(const struct cmdblock *cb, const void *line, const uint8_t *key, size_t key_len)
{
	uint8_t want[CB_MAC_BYTES];

	if (!cb->has_mac)
		return -ENOKEY;
	if (cb_mac(key, key_len, line, cb->signed_len, want))
		return -EIO;
	return CRYPTO_memcmp(want, cb->mac, CB_MAC_BYTES) ? -EBADMSG : 0;
}

static int append(char *out, size_t out_len, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int append(char *out, size_t out_len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= out_len)
		return -E2BIG;
	va_start(ap, fmt);
	n = vsnprintf(out + *pos, out_len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= out_len - *pos)
		return -E2BIG;
	*pos += (size_t)n;
	return 0;
}

int cb_encode(const char *command, const char *const *params, int nparams, const char *tag,
	      int edit, const uint8_t *key, size_t key_len, const char *host, uint64_t seq,
	      char *out, size_t out_len)
{
	size_t pos = 0;
	uint8_t mac[CB_MAC_BYTES];
	char why[128];
	struct cmdblock cb;
	int err;

	if (!command || !*command)
		return -EINVAL;
	err = append(out, out_len, &pos, "TDM%d %s", CB_VERSION, command);
	for (int i = 0; !err && i < nparams; i++)
		err = append(out, out_len, &pos, " %s", params[i]);
	if (!err && tag && *tag)
		err = append(out, out_len, &pos, " tag=%s", tag);
	if (!err && !edit)
		err = append(out, out_len, &pos, " edit=0");
	if (!err && key) {
		err = append(out, out_len, &pos, " host=%s seq=%" PRIu64, host, seq);
		if (!err && cb_mac(key, key_len, out, pos, mac))
			err = -EIO;
		if (!err)
			err = append(out, out_len, &pos, " mac=");
		for (int i = 0; !err && i < CB_MAC_BYTES; i++)
			err = append(out, out_len, &pos, "%02x", mac[i]);
	}
	if (!err)
		err = append(out, out_len, &pos, "\n");
	if (err)
		return err;
	if (pos > CB_MAX_BYTES)
		return -E2BIG;
	/* What we send must parse, as one line: catches bad names and values (a newline inside a
	 * value would hide the rest, and the MAC, from the device) at the source. */
	if (cb_parse(out, pos, &cb, why, sizeof(why)) != 0 || cb.line_len != pos - 1)
		return -EINVAL;
	return (int)pos;
}

void cb_pct_encode(const char *in, char *out, size_t out_len)
{
	size_t o = 0;

	if (out_len == 0)
		return;
	for (; *in && o + 4 < out_len; in++) {
		unsigned char c = (unsigned char)*in;

		if (c <= 0x20 || c >= 0x7f || c == '%' || c == '=') {
			snprintf(out + o, out_len - o, "%%%02X", c);
			o += 3;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

void cb_pct_decode(const char *in, char *out, size_t out_len)
{
	size_t o = 0;

	if (out_len == 0)
		return;
	while (*in && o + 1 < out_len) {
		unsigned int c;

		if (in[0] == '%' && isxdigit((unsigned char)in[1]) && isxdigit((unsigned char)in[2]) &&
		    sscanf(in + 1, "%2x", &c) == 1) {
			out[o++] = (char)c;
			in += 3;
		} else {
			out[o++] = *in++;
		}
	}
	out[o] = '\0';
}

void res_init(struct cb_result *r, const char *tag)
{
	memset(r, 0, sizeof(*r));
	if (tag)
		snprintf(r->tag, sizeof(r->tag), "%s", tag);
}

void res_free(struct cb_result *r)
{
	free(r->body);
	r->body = NULL;
}

void res_status(struct cb_result *r, int status, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	for (char *c = r->msg; *c; c++)
		if (*c == '\n' || *c == '\r' || *c == '\0')
			*c = ' ';
}

void res_line(struct cb_result *r, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	for (int i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	if (r->body_len + (size_t)n + 2 > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap * 2 : 4096;
		char *b;

		while (cap < r->body_len + (size_t)n + 2)
			cap *= 2;
		b = realloc(r->body, cap);
		if (!b) {
			r->oom = 1;
			return;
		}
		r->body = b;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, line, (size_t)n);
	r->body_len += (size_t)n;
	r->body[r->body_len++] = '\n';
	r->body_lines++;
}

long res_render(const struct cb_result *r, char **out)
{
	char head[160], msg[300];
	int hn, mn;
	size_t total, hlen;
	char *t;

	mn = snprintf(msg, sizeof(msg), "msg %s\n", r->msg);
	/* The header names the total length, which includes the header: iterate to a fixpoint. */
	hlen = 0;
	for (int i = 0; i < 3; i++) {
		total = hlen + (size_t)mn + r->body_len + 4;
		hn = snprintf(head, sizeof(head), "TDM%d result status=%d name=%s tag=%s lines=%d bytes=%zu\n",
			      CB_VERSION, r->status, cb_status_name(r->status), r->tag[0] ? r->tag : "-",
			      r->body_lines + 1, total);
		if ((size_t)hn == hlen)
			break;
		hlen = (size_t)hn;
	}
	total = (size_t)hn + (size_t)mn + r->body_len + 4;
	t = malloc(total + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t, head, (size_t)hn);
	memcpy(t + hn, msg, (size_t)mn);
	if (r->body_len)
		memcpy(t + hn + mn, r->body, r->body_len);
	memcpy(t + hn + mn + r->body_len, "end\n", 4);
	t[total] = '\0';
	*out = t;
	return (long)total;
}

const char *cb_rec_get(const char *line, const char *key, char *buf, size_t buf_len)
{
	size_t klen = strlen(key);
	const char *p = line;

	while ((p = strchr(p, ' '))) {
		p++;
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			const char *v = p + klen + 1;
			size_t vlen = strcspn(v, " \n");
			char raw[1024];

			if (vlen >= sizeof(raw))
				vlen = sizeof(raw) - 1;
			memcpy(raw, v, vlen);
			raw[vlen] = '\0';
			cb_pct_decode(raw, buf, buf_len);
			return buf;
		}
	}
	return NULL;
}

int cb_reply_header(const char *text, size_t len, struct cb_reply *r)
{
	char line[256], buf[64];
	size_t n = 0;

	memset(r, 0, sizeof(*r));
	if (len == 0 || text[0] == '\0')
		return -ENODATA;
	while (n < len && n < sizeof(line) - 1 && text[n] != '\n')
		n++;
	memcpy(line, text, n);
	line[n] = '\0';
	if (strncmp(line, "TDM1 result ", 12) != 0)
		return -EPROTO;
	if (!cb_rec_get(line, "status", buf, sizeof(buf)))
		return -EPROTO;
	r->status = atoi(buf);
	if (cb_rec_get(line, "name", buf, sizeof(buf)))
		snprintf(r->name, sizeof(r->name), "%.*s", (int)sizeof(r->name) - 1, buf);
	if (cb_rec_get(line, "tag", buf, sizeof(buf)) && strcmp(buf, "-"))
		snprintf(r->tag, sizeof(r->tag), "%.*s", CB_TAG_MAX, buf);
	if (!cb_rec_get(line, "bytes", buf, sizeof(buf)))
		return -EPROTO;
	r->bytes = strtoull(buf, NULL, 10);
	if (r->bytes < n)
		return -EPROTO;
	return 0;
}

int cb_reply_parse(const char *text, size_t len, struct cb_reply *r, char *why, size_t why_len)
{
	const char *p, *end;
	int err = cb_reply_header(text, len, r);

	if (err) {
		snprintf(why, why_len, err == -ENODATA ? "no result in this slot for this host"
						       : "not a TDM1 result header");
		return err;
	}
	if (r->bytes > len) {
		snprintf(why, why_len, "result is %zu bytes, only %zu read", r->bytes, len);
		return -EPROTO;
	}
	end = text + r->bytes;
	p = memchr(text, '\n', r->bytes);
	if (!p) {
		snprintf(why, why_len, "result header has no end of line within %zu bytes", r->bytes);
		return -EPROTO;
	}
	p++;
	if (p + 4 > end || strncmp(p, "msg ", 4)) {
		snprintf(why, why_len, "result has no msg line");
		return -EPROTO;
	}
	{
		const char *e = memchr(p, '\n', (size_t)(end - p));
		size_t n;

		if (!e) {
			snprintf(why, why_len, "unterminated msg line");
			return -EPROTO;
		}
		n = (size_t)(e - p - 4);
		if (n >= sizeof(r->msg))
			n = sizeof(r->msg) - 1;
		memcpy(r->msg, p + 4, n);
		r->msg[n] = '\0';
		p = e + 1;
	}
	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		char **lines;

		if (!e) {
			snprintf(why, why_len, "unterminated record line");
			cb_reply_free(r);
			return -EPROTO;
		}
		if ((size_t)(e - p) == 3 && !strncmp(p, "end", 3))
			return 0;
		lines = realloc(r->lines, sizeof(char *) * (size_t)(r->nlines + 1));
		if (!lines) {
			cb_reply_free(r);
			return -ENOMEM;
		}
		r->lines = lines;
		r->lines[r->nlines] = strndup(p, (size_t)(e - p));
		if (!r->lines[r->nlines]) {
			cb_reply_free(r);
			return -ENOMEM;
		}
		r->nlines++;
		p = e + 1;
	}
	snprintf(why, why_len, "result has no end line");
	cb_reply_free(r);
	return -EPROTO;
}

void cb_reply_free(struct cb_reply *r)
{
	for (int i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	free(r->lines);
	r->lines = NULL;
	r->nlines = 0;
}

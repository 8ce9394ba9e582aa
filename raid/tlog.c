#include "raid/tlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static tlog_sink_fn *sink;
static enum tlog_level max_level = TLOG_INFO;

void tlog_set_sink(tlog_sink_fn *fn) { sink = fn; }
void tlog_set_level(enum tlog_level level) { max_level = level; }

void tlog(enum tlog_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[1024];
	va_list ap;

	if (level > max_level && !(level == TLOG_DEBUG && getenv("TANDEM_DEBUG")))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (sink)
		sink(level, line);
	else
		fprintf(stderr, "tandem %s: %s\n", names[level], line);
}

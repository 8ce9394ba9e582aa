/* The libraries' log lines → tgtd's log (syslog, or stderr with tgtd -f). */
#include <dlfcn.h>
#include <stdio.h>

#include "target/tandem_lu.h"
#include "raid/tlog.h"

typedef void log_fn(const char *fmt, ...);
static log_fn *tgt_error, *tgt_warning;

static void sink(enum tlog_level level, const char *line)
{
	log_fn *fn = level <= TLOG_ERR ? tgt_error : tgt_warning;

	if (fn)
		fn("tandem: %s\n", line);
	else
		fprintf(stderr, "tandem: %s\n", line);
}

void tandem_log_init(void)
{
	/* tgtd's log_info is not exported; info lines use log_warning so an admin sees them. */
	tgt_error = (log_fn *)dlsym(RTLD_DEFAULT, "log_error");
	tgt_warning = (log_fn *)dlsym(RTLD_DEFAULT, "log_warning");
	tlog_set_sink(sink);
}

/* tlog: the libraries' log. Lines go to a sink the host program sets (tgtd's log inside the
 * module, stderr in tools and tests). Thread-safe: the sink is called with a formatted line. */
#ifndef TANDEM_TLOG_H
#define TANDEM_TLOG_H

enum tlog_level { TLOG_ERR = 0, TLOG_WARN = 1, TLOG_INFO = 2, TLOG_DEBUG = 3 };

typedef void tlog_sink_fn(enum tlog_level level, const char *line);

/* Replace the sink (NULL: stderr). Not synchronised with concurrent tlog(): set it once at start. */
void tlog_set_sink(tlog_sink_fn *fn);
/* Lines above this level are dropped (default TLOG_INFO; env TANDEM_DEBUG=1 raises it). */
void tlog_set_level(enum tlog_level level);

void tlog(enum tlog_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

/* A replication pair (docs/replication.md, docs/journal-format.md): on the primary device the
 * write-ahead journaling of the P-VOL; on the auxiliary device the worker that copies the P-VOL,
 * acquires the primary journal with READs, restores it in order onto the S-VOL, and confirms
 * what it acquired. Volumes come and go with their LUs (pair_attach / pair_detach); the table
 * entry is kept by the caller through env->persist, the pointers live in the journal headers. */
#ifndef TANDEM_REPLICATION_PAIR_H
#define TANDEM_REPLICATION_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include "raid/bitmap.h"
#include "raid/vol.h"
#include "replication/journal.h"

enum pair_role { PAIR_PRIMARY = 1, PAIR_AUX = 2 };
/* FROZEN: a primary during a swap: host writes refused (DATA PROTECT), nothing journaled; kept
 * across a restart until the swap commits or is undone */
enum pair_state { PAIR_JOURNALING = 0, PAIR_COPYING = 1, PAIR_PAIRED = 2, PAIR_SUSPENDED = 3,
		  PAIR_FROZEN = 4 };

/* A consistency group: up to PAIR_MAX_VOLS volume pairs share one journal (one write order
 * across all of them). pvol/svol/src_pvol/r_src_pvol name the first; pvols[i]... all nvols. */
#define PAIR_MAX_VOLS 8

struct pair_cfg {
	uint32_t id;
	enum pair_role role;
	uint32_t nvols;                       /* volume pairs (0 means 1) */
	union { uint64_t pvol; uint64_t pvols[PAIR_MAX_VOLS]; };
	union { uint64_t svol; uint64_t svols[PAIR_MAX_VOLS]; };
	uint64_t pjnl, sjnl;                  /* the local ones are used, the others recorded */
	union { uint64_t src_pvol; uint64_t src_pvols[PAIR_MAX_VOLS]; };  /* aux: vvols onto the
								   * primary's volumes */
	uint64_t src_pjnl, s_peer;            /* aux: local vvols onto the primary device */
	uint64_t p_peer;                      /* primary: local vvol onto the aux's command device */
	union { uint64_t r_src_pvol; uint64_t r_src_pvols[PAIR_MAX_VOLS]; };
	uint64_t r_src_pjnl;                  /* primary: local vvols onto the aux's S-VOLs and
					       * journal: what this device pulls after a swap */
	enum pair_state state;
	uint64_t copy_pos;                    /* aux, copying: bytes copied */
	int auto_mode;                        /* aux: pull and restore by itself */
	uint32_t interval_ms;                 /* aux, auto: poll interval when idle */
	uint32_t rate_mb;                     /* aux, auto: MB/s pulled at most, 0 = no limit */
	uint8_t juuid[16];                    /* the primary journal's uuid */
	char reason[160];                     /* why suspended */
	/* replication II (docs/replication.md "Overflow, delta resync, takeover") */
	int overflow_throttle;                /* primary, journal full: 0 suspend + bitmap, 1 wait */
	uint32_t warn_pct;                    /* primary: warn at this journal use (default 80) */
	uint64_t granule_bytes;               /* change-bitmap granule (default 1 MiB) */
	char bitmap_path[512];                /* the change bitmaps' file (volume i > 0: path.i; not
					       * in the table) */
	int delta;                            /* aux, COPYING: only the bitmap's granules */
	int delta_fetched;                    /* aux: the primary's dirty granules are in ours */
	int resynced;                         /* primary: bitmap bits are a delta being copied */
	uint64_t takeover_seq;                /* primary after a takeover: last sequence of the old
					       * primary it holds */
	uint64_t consistent_ns;               /* aux: primary time of the last consistent image
					       * (while a delta copy makes the volume inconsistent) */
};

struct pair_env {
	/* record the table entry (state change, copy checkpoint, mode); 0 or -errno */
	int (*persist)(void *ctx, const struct pair_cfg *c);
	/* aux: tell the primary device what is durable in the aux journal (and purge it there);
	 * 0 or -errno with `why` */
	int (*confirm)(void *ctx, const struct pair_cfg *c, uint64_t read_completed, int purge,
		       char *why, size_t why_len);
	/* aux, delta copy: set the primary device's changed granules of volume `vi` in `into`; 0 or
	 * -errno */
	int (*fetch_dirty)(void *ctx, const struct pair_cfg *c, int vi, struct pbm *into, char *why,
			   size_t why_len);
	/* aux: the delta copy is done (the primary may clear its bitmap); 0 or -errno */
	int (*delta_done)(void *ctx, const struct pair_cfg *c, char *why, size_t why_len);
	void *ctx;
};

struct pair;

/* Format a journal volume for a new pair. primary: fresh uuid, empty rings. aux: the geometry and
 * uuid of the primary journal read through `src_pjnl`. `why` says what is wrong. */
int pair_format_primary(struct vol *pjnl, uint32_t id, uint8_t uuid[16], char *why, size_t why_len);
int pair_format_aux(struct vol *sjnl, struct vol *src_pjnl, uint32_t id, uint8_t uuid[16],
		    char *why, size_t why_len);

int pair_open(const struct pair_cfg *c, const struct pair_env *env, struct pair **out);
/* Stop the threads, detach every volume, write the headers, free. */
void pair_close(struct pair *p);
uint32_t pair_id(struct pair *p);
/* A volume of this pair came (its LU opened) or goes (LU closing). Attach ignores other volids. */
void pair_attach(struct pair *p, struct vol *v);
void pair_detach(struct pair *p, struct vol *v);
/* Does this pair use volid (locally)? */
int pair_uses(struct pair *p, uint64_t volid);

/* aux: targets for the worker (upto 0: everything there is / everything acquired). */
int pair_acquire(struct pair *p, uint64_t upto, uint64_t *target);
int pair_restore(struct pair *p, uint64_t upto, uint64_t *target);
int pair_set_mode(struct pair *p, int auto_mode, uint32_t interval_ms, uint32_t rate_mb);
int pair_suspend(struct pair *p, const char *reason);
int pair_resume(struct pair *p);
/* primary: the aux device's confirmation; purge up to min(upto, confirmed). *jout = journal-out
 * after it. */
int pair_confirm(struct pair *p, uint64_t read_completed);
int pair_purge(struct pair *p, uint64_t upto, uint64_t *jout);
/* primary, swap: refuse new host writes, wait for those in flight, record FROZEN; *last = the
 * last journaled sequence. thaw: journaling again (a swap that did not happen). */
int pair_freeze(struct pair *p, uint64_t *last);
int pair_thaw(struct pair *p);
/* aux, swap and takeover: acquire and restore up to `last` (0: everything acquired), waiting at
 * most timeout_s. 0, -ETIMEDOUT (status says how far it got), -EINVAL not an aux. */
int pair_drain(struct pair *p, uint64_t last, double timeout_s);
/* primary: start a delta resync: every unpurged journal entry's granules go into the change
 * bitmap, the journal is formatted anew (uuid out), journaling resumes; the bitmap is the delta
 * the aux copies. -EBUSY while a swap is under way. */
int pair_resync_primary(struct pair *p, uint8_t uuid[16], char *why, size_t why_len);
/* primary: the aux copied the delta: clear the bitmap (refused with -ESTALE when the pair was
 * suspended again since the resync: then a new resync is needed). */
int pair_delta_done(struct pair *p);
/* primary after a takeover: the old primary follows again (takeover_seq is cleared). */
int pair_takeover_done(struct pair *p);
/* primary: up to `max` runs of set granules from granule `from`: (first, count) pairs; returns
 * the number of runs, *next = where to continue (bits when done). */
int pair_dirty_runs(struct pair *p, int vi, uint64_t from, int max, uint64_t *first,
		    uint64_t *count, uint64_t *next);
/* old primary, after a takeover elsewhere: the granules of its journal entries after `seq`
 * (writes the other device never got) into its own change bitmaps (which already hold its
 * unjournaled writes); *entries, *bytes say how much; *granules (may be NULL): the granules
 * written unjournaled while it was suspended. */
int pair_tail_granules(struct pair *p, uint64_t seq, uint64_t *entries, uint64_t *bytes,
		       uint64_t *granules);

struct pair_status {
	struct pair_cfg cfg;
	int ready;                          /* journal loaded, volumes attached */
	char missing[96];                   /* volumes not attached */
	struct jrnl_hdr h;                  /* geometry and the persisted pointers */
	/* primary */
	uint64_t jin, jout, confirmed, applied, durable;
	uint64_t jin_pos, jout_pos;
	uint64_t writes, journal_bytes, batches, waits_full;
	uint64_t bitmap_granules;           /* set in the change bitmap (primary: changed; aux:
					     * still to copy) */
	int warning;                        /* primary: journal use at or above warn_pct */
	/* aux */
	uint64_t restore_completed, to_be_restored, read_completed, to_be_read;
	uint64_t restore_pos, read_pos;     /* data positions after the last restored / acquired */
	uint64_t known_head;                /* newest sequence seen in the primary journal */
	uint64_t known_head_pos;            /* data position after it */
	uint64_t oldest_unrestored_ns;      /* primary time of restore_completed + 1, 0 = none */
	uint64_t copy_total;
	uint64_t acquired_entries, acquired_bytes, restored_entries, restored_bytes;
	uint64_t confirmed_sent;
	uint64_t last_restored_ns;          /* primary time of the last restored entry (0: none
					     * since open) */
	int link_up;
	char last_error[200];
};
void pair_get_status(struct pair *p, struct pair_status *st);
const char *pair_state_name(enum pair_state s);
int pair_state_parse(const char *s, enum pair_state *out);

#endif

#include "raid/raidvol.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "raid/tlog.h"

struct raidvol {
	struct vol vol;
	struct raid_vol *array;
};

static int rv_read(struct vol *v, void *buf, uint64_t off, uint64_t len)
{
	return raid_read(((struct raidvol *)v->impl)->array, buf, off, len);
}

static int rv_write(struct vol *v, const void *buf, uint64_t off, uint64_t len)
{
	return raid_write(((struct raidvol *)v->impl)->array, buf, off, len);
}

static int rv_flush(struct vol *v)
{
	return raid_flush(((struct raidvol *)v->impl)->array);
}

static void rv_destroy(struct vol *v)
{
	struct raidvol *rv = v->impl;

	raid_close(rv->array);
	free(rv);
}

static const struct vol_ops raidvol_ops = {
	.read = rv_read, .write = rv_write, .flush = rv_flush, .destroy = rv_destroy,
};

struct raid_vol *raidvol_array(struct vol *v)
{
	return v->ops == &raidvol_ops ? ((struct raidvol *)v->impl)->array : NULL;
}

int raidvol_open(const char *members, const struct raid_opts *o, uint32_t block_bytes,
		 struct vol **out, char *why, size_t why_len)
{
	struct raid_member *m[RAID_MAX_MEMBERS] = { 0 };
	char *paths[RAID_MAX_MEMBERS], *buf = strdup(members ? members : "");
	struct raid_vol *array = NULL;
	struct raidvol *rv;
	struct raid_info info;
	int nr, err;

	if (!buf)
		return -ENOMEM;
	nr = split_members(buf, paths, RAID_MAX_MEMBERS, why, why_len);
	if (nr < 0) {
		free(buf);
		return nr;
	}
	/* A path listed twice would otherwise look like "in use" (our own lock). */
	for (int i = 0; i < nr; i++) {
		struct stat si, sj;

		for (int j = 0; j < i; j++) {
			if (stat(paths[i], &si) == 0 && stat(paths[j], &sj) == 0 &&
			    si.st_dev == sj.st_dev && si.st_ino == sj.st_ino) {
				snprintf(why, why_len, "member %s is listed twice (positions %d and %d)",
					 paths[j], j, i);
				err = -EINVAL;
				goto fail;
			}
		}
	}
	for (int i = 0; i < nr; i++) {
		if ((err = raid_member_open_path(paths[i], &m[i], why, why_len))) {
			/* at assembly, a member that cannot be opened may be a recorded failure */
			if (o->create || err == -EBUSY || !(m[i] = raid_member_missing(paths[i], why)))
				goto fail;
		}
	}
	if (o->create) {
		struct raid_create_params cp = {
			.nr_data = o->nr_data, .chunk_bytes = o->chunk_bytes ? o->chunk_bytes : 65536,
			.block_bytes = block_bytes ? block_bytes : 512, .volid = o->volid,
			.force = o->create == 2, .no_bitmap = o->no_bitmap,
		};

		if ((err = raid_create(m, (uint32_t)nr, &cp, why, why_len)))
			goto fail;
	}
	{
		struct raid_assemble_params ap = {
			.nr_data = o->nr_data, .chunk_bytes = o->chunk_bytes, .block_bytes = block_bytes,
			.volid = o->volid, .degraded = o->degraded,
		};

		if ((err = raid_assemble(m, (uint32_t)nr, &ap, &array, why, why_len)))
			goto fail;
	}
	free(buf);
	raid_get_info(array, &info);
	if (o->no_bitmap && !o->create && info.bitmap_regions) {
		snprintf(why, why_len, "bitmap=0 applies at create: this array has a write-intent "
			 "bitmap, which every assembly keeps up to date");
		raid_close(array);
		return -EINVAL;
	}
	if (info.was_dirty) {
		uint64_t stripes, fixed, unverifiable;
		char u[37];

		raid_uuid_str(info.array_uuid, u);
		tlog(TLOG_WARN, "array %s (volid %" PRIu64 "): unclean shutdown: resynchronising the "
		     "parity of %" PRIu64 " dirty regions (%s)", u, info.volid,
		     info.bitmap_regions ? info.dirty_regions : raid_nr_stripes(&info.geom),
		     info.bitmap_regions ? "write-intent bitmap" : "no bitmap: every stripe");
		if ((err = raid_resync_dirty(array, &stripes, &fixed, &unverifiable))) {
			snprintf(why, why_len, "parity resync after unclean shutdown failed: %s",
				 strerror(-err));
			raid_close(array);
			return err;
		}
		tlog(TLOG_WARN, "array %s: parity resync done: %" PRIu64 " stripes checked, %" PRIu64
		     " repaired", u, stripes, fixed);
		if (unverifiable)
			tlog(TLOG_ERR, "array %s: %" PRIu64 " dirty stripes could not be resynchronised "
			     "because a data member is failed (the write hole of a degraded array): data "
			     "of the failed member there may be stale", u, unverifiable);
	}
	rv = calloc(1, sizeof(*rv));
	if (!rv) {
		raid_close(array);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	rv->array = array;
	vol_init(&rv->vol, "raid", info.volid, info.volume_bytes, info.geom.block_bytes,
		 &raidvol_ops, rv);
	*out = &rv->vol;
	return 0;
fail:
	for (int i = 0; i < nr; i++)
		raid_member_close(m[i]);   /* NULL-safe */
	free(buf);
	return err;
}

/* bs_tandem.so: registers every tandem bstype with tgtd. Loaded from tgt's module directory
 * (tgtd calls register_bs_module) or by LD_PRELOAD (the constructor registers, if it finds
 * itself inside tgtd). All LUs of the process share the libraries' volume registry. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "target/tandem_lu.h"
#include "cmdvol/cmddev.h"
#include "cmdvol/mirrors.h"
#include "cmdvol/pairs.h"
#include "cmdvol/ops.h"
#include "cmdvol/raidops.h"
#include "raid/raidvol.h"
#include "raid/tlog.h"

#define TANDEM_MSG 512

static int iothreads(void)
{
	int *n = dlsym(RTLD_DEFAULT, "nr_iothreads");

	return n && *n > 0 ? *n : 16;
}

static tgtadm_err tandem_init(struct scsi_lu *lu, char *bsopts)
{
	struct tandem_lu *t = TANDEM_LU(lu);

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->caw_lock, NULL);
	if (bsopts && !(t->bsopts = strdup(bsopts)))
		return TGTADM_NOMEM;
	return bs_thread_open(BS_THREAD_I(lu), tandem_request, iothreads());
}

static void tandem_exit(struct scsi_lu *lu)
{
	struct tandem_lu *t = TANDEM_LU(lu);

	bs_thread_close(BS_THREAD_I(lu));
	free(t->bsopts);
	t->bsopts = NULL;
	pthread_mutex_destroy(&t->caw_lock);
}

/* Advertise the full stripe as the optimal transfer length (Block Limits VPD, in blocks). */
static void set_block_limits(struct scsi_lu *lu, uint64_t opt_bytes)
{
	struct vpd *pg = lu->attrs.lu_vpd[PCODE_OFFSET(0xb0)];
	uint64_t blocks = opt_bytes >> lu->blk_shift;

	if (!pg || !blocks)
		return;
	/* VPD header omitted from data: +2 granularity (16 bit), +8 optimal length (32 bit) */
	put_unaligned_be16(blocks > 0xffff ? 0 : (uint16_t)blocks, pg->data + 2);
	put_unaligned_be32(blocks > 0xffffffffu ? 0 : (uint32_t)blocks, pg->data + 8);
}

/* The volume is ready: register it, give tgt the size and a placeholder fd. */
int tandem_attach_volume(struct scsi_lu *lu, struct vol *v, int *fd, uint64_t *size)
{
	struct vol *other;
	int err = vol_register(v);

	if (err) {
		other = vol_lookup(v->volid);
		tlog_lu(lu, TLOG_ERR, "cannot open: volid %" PRIu64 " is already in use by another "
			"%s volume of this device", v->volid, other ? other->type : "");
		if (other)
			vol_put(other);
		return err;
	}
	/* tgt wants an fd: GET LBA STATUS lseeks it (SEEK_DATA/SEEK_HOLE) on every disk LU. A pipe
	 * makes lseek fail with ESPIPE, so tgt reports one mapped range to the end: right for a
	 * fully provisioned volume. (/dev/null returns 0 for every seek and tgt loops forever.) */
	{
		int pfd[2];

		if (pipe2(pfd, O_CLOEXEC)) {
			err = -errno;
			vol_unregister(v);
			return err;
		}
		close(pfd[1]);
		*fd = pfd[0];
	}
	lu->blk_shift = (unsigned)__builtin_ctz(v->block_bytes);
	TANDEM_LU(lu)->vol = v;
	mirrors_reconcile();     /* a mirror may wait for this volume */
	pairs_reconcile();       /* so may a replication pair */
	/* INQUIRY product id per type: udev rules and admins can tell tandem LUs apart */
	snprintf(lu->attrs.product_id, sizeof(lu->attrs.product_id), "TANDEM-%s",
		 !strcmp(v->type, "cmddev") ? "CMDDEV" : !strcmp(v->type, "vvol") ? "VVOL" : "RAID");
	*size = v->size_bytes;
	return 0;
}

static int raid_open(struct scsi_lu *lu, char *path, int *fd, uint64_t *size)
{
	struct tandem_lu *t = TANDEM_LU(lu);
	struct raid_opts o;
	struct raid_info info;
	struct vol *v;
	char why[TANDEM_MSG];
	uint32_t lu_block = 1u << lu->blk_shift;
	int err;

	if ((err = raid_opts_parse(t->bsopts, &o, why, sizeof(why))))
		goto fail;
	/* tgt's default block is 512: at assembly that means "whatever the array has". */
	if ((err = raidvol_open(path, &o, o.create || lu_block != 512 ? lu_block : 0, &v, why,
				sizeof(why))))
		goto fail;
	if ((err = tandem_attach_volume(lu, v, fd, size))) {
		vol_put(v);
		return err;
	}
	raid_get_info(raidvol_array(v), &info);
	set_block_limits(lu, raid_stripe_bytes(&info.geom));
	if (info.rebuild_member >= 0) {
		int64_t id = raidops_start_rebuild(v);

		if (id < 0)
			tlog_lu(lu, TLOG_ERR, "the rebuild of member %d cannot resume: %s",
				info.rebuild_member, strerror((int)-id));
		else
			tlog_lu(lu, TLOG_WARN, "rebuild of member %d resumed at stripe %" PRIu64
				" as operation %" PRId64, info.rebuild_member, info.rebuild_pos, id);
	}
	{
		char u[37];

		raid_uuid_str(info.array_uuid, u);
		tlog_lu(lu, TLOG_INFO, "raid volid %" PRIu64 ": %uD+1P chunk %u KiB block %u, %" PRIu64
			" bytes, array %s, %s%s", v->volid, info.geom.nr_data, info.geom.chunk_bytes / 1024,
			v->block_bytes, v->size_bytes, u, raid_state_name(&info),
			info.was_dirty ? " (was not shut down cleanly)" : "");
	}
	return 0;
fail:
	tlog_lu(lu, TLOG_ERR, "cannot open raid volume: %s", why);
	return err;
}

static void tandem_close(struct scsi_lu *lu)
{
	struct tandem_lu *t = TANDEM_LU(lu);

	if (t->vol) {
		tlog_lu(lu, TLOG_INFO, "%s volid %" PRIu64 " closed", t->vol->type, t->vol->volid);
		mirrors_volume_closing(t->vol);
		pairs_volume_closing(t->vol);
		{
			/* operations on this volume (rebuild, scrub) stop and drop their references,
			 * so the close below really closes it (clean superblocks); a rebuild resumes
			 * from its checkpoint at the next open */
			char subject[32];

			snprintf(subject, sizeof(subject), "volid=%" PRIu64, t->vol->volid);
			ops_stop_subject(subject);
		}
		vol_unregister(t->vol);
		if (t->cmddev)
			cmddev_close(t->cmddev);   /* drops the cmddev's own reference */
		else
			vol_put(t->vol);
		t->vol = NULL;
		t->cmddev = NULL;
		t->vvol = NULL;
	}
	if (lu->fd >= 0)
		close(lu->fd);
}

static struct backingstore_template cmddev_bst = {
	.bs_name = "cmddev",
	.bs_datasize = sizeof(struct bs_thread_info) + sizeof(struct tandem_lu),
	.bs_open = tandem_cmddev_open,
	.bs_close = tandem_close,
	.bs_init = tandem_init,
	.bs_exit = tandem_exit,
	.bs_cmd_submit = bs_thread_cmd_submit,
};

static struct backingstore_template vvol_bst = {
	.bs_name = "vvol",
	.bs_datasize = sizeof(struct bs_thread_info) + sizeof(struct tandem_lu),
	.bs_open = tandem_vvol_open,
	.bs_close = tandem_close,
	.bs_init = tandem_init,
	.bs_exit = tandem_exit,
	.bs_cmd_submit = bs_thread_cmd_submit,
};

static struct backingstore_template raid_bst = {
	.bs_name = "raid",
	.bs_datasize = sizeof(struct bs_thread_info) + sizeof(struct tandem_lu),
	.bs_open = raid_open,
	.bs_close = tandem_close,
	.bs_init = tandem_init,
	.bs_exit = tandem_exit,
	.bs_cmd_submit = bs_thread_cmd_submit,
};

static void register_all(void)
{
	static int done;
	static unsigned char sbc_ops[] = {
		ALLOW_MEDIUM_REMOVAL, COMPARE_AND_WRITE, FORMAT_UNIT, INQUIRY, MAINT_PROTOCOL_IN,
		MODE_SELECT, MODE_SELECT_10, MODE_SENSE, MODE_SENSE_10, ORWRITE_16,
		PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT, PRE_FETCH_10, PRE_FETCH_16, READ_10,
		READ_12, READ_16, READ_6, READ_CAPACITY, RELEASE, REPORT_LUNS, REQUEST_SENSE, RESERVE,
		SEND_DIAGNOSTIC, SERVICE_ACTION_IN, START_STOP, SYNCHRONIZE_CACHE,
		SYNCHRONIZE_CACHE_16, TEST_UNIT_READY, UNMAP, VERIFY_10, VERIFY_12, VERIFY_16,
		WRITE_10, WRITE_12, WRITE_16, WRITE_6, WRITE_SAME, WRITE_SAME_16, WRITE_VERIFY,
		WRITE_VERIFY_12, WRITE_VERIFY_16,
	};

	if (done)
		return;
	done = 1;
	/* Loaded twice (installed module + LD_PRELOAD)? The first copy serves. */
	if (get_backingstore_template("raid")) {
		tlog(TLOG_WARN, "bs_tandem: bstype raid already registered; this copy stays idle");
		return;
	}
	static unsigned char cmddev_ops[] = {
		ALLOW_MEDIUM_REMOVAL, INQUIRY, MAINT_PROTOCOL_IN, MODE_SELECT, MODE_SELECT_10,
		MODE_SENSE, MODE_SENSE_10, PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT, PRE_FETCH_10, PRE_FETCH_16, READ_10,
		READ_12, READ_16, READ_6, READ_CAPACITY, RELEASE, REPORT_LUNS, REQUEST_SENSE, RESERVE,
		SEND_DIAGNOSTIC, SERVICE_ACTION_IN, START_STOP, SYNCHRONIZE_CACHE, SYNCHRONIZE_CACHE_16,
		TEST_UNIT_READY, WRITE_10, WRITE_12, WRITE_16, WRITE_6,
	};

	tandem_log_init();
	bs_create_opcode_map(&raid_bst, sbc_ops, sizeof(sbc_ops));
	register_backingstore_template(&raid_bst);
	bs_create_opcode_map(&cmddev_bst, cmddev_ops, sizeof(cmddev_ops));
	register_backingstore_template(&cmddev_bst);
	bs_create_opcode_map(&vvol_bst, sbc_ops, sizeof(sbc_ops));
	register_backingstore_template(&vvol_bst);
}

/* tgtd's module loader. */
void register_bs_module(void);
void register_bs_module(void)
{
	register_all();
}

__attribute__((constructor)) static void bs_tandem_preload(void)
{
	/* Only inside tgtd: the symbols we need exist there and nowhere else. */
	if (dlsym(RTLD_DEFAULT, "register_backingstore_template") &&
	    dlsym(RTLD_DEFAULT, "bs_thread_open"))
		register_all();
}

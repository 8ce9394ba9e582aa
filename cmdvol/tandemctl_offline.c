/* tandemctl: the offline commands that work on RAID member files directly (as mdadm
 * --create / --examine): raid create, raid examine, raid check. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raid/opts.h"
#include "raid/raid.h"
#include "raid/superblock.h"
#include "raid/tlog.h"
#include "raid/util.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

static void usage_create(FILE *f)
{
	fprintf(f,
		"usage: tandemctl raid create --layout nD+1P --volid N [--chunk-kib K] [--block B]\n"
		"                             [--force] MEMBER...\n"
		"Formats n+1 members (files or block devices of equal size) as a new array: zeroes\n"
		"their data areas and writes superblocks. Refuses members that already belong to an\n"
		"array unless --force. Then assemble it in tgtd with\n"
		"  --bstype raid --backing-store 'm0;m1;...' --bsopts 'volid=N'\n"
		"  --layout nD+1P   data chunks per stripe, n = 2..15 (required)\n"
		"  --volid N        device-wide volume id, 1..4294967295 (required)\n"
		"  --chunk-kib K    chunk size in KiB, power of two 4..1024 (default 64)\n"
		"  --block B        logical block size, 512 or 4096 (default 512)\n"
		"  --force          overwrite members that carry a tandem superblock\n");
}

static void usage_examine(FILE *f)
{
	fprintf(f,
		"usage: tandemctl raid examine [--json] MEMBER...\n"
		"Prints each member's superblock (array uuid, member index, geometry, sequence, state).\n"
		"Exit 1 if any member has no valid superblock.\n");
}

static int cmd_create(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "layout", required_argument, 0, 'l' }, { "volid", required_argument, 0, 'v' },
		{ "chunk-kib", required_argument, 0, 'c' }, { "block", required_argument, 0, 'b' },
		{ "force", no_argument, 0, 'f' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct raid_create_params p = { .chunk_bytes = 65536, .block_bytes = 512 };
	struct raid_member *m[RAID_MAX_MEMBERS] = { 0 };
	char why[512];
	uint64_t x;
	int c, nr, err = 0;

	while ((c = getopt_long(argc, argv, "l:v:c:b:fh", lo, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (raid_parse_layout(optarg, &p.nr_data)) {
				fprintf(stderr, "tandemctl: --layout %s: expected nD+1P, n = 2..15\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'v':
			if (opts_u64("volid", optarg, 1, UINT32_MAX, &x, why, sizeof(why))) {
				fprintf(stderr, "tandemctl: %s\n", why);
				return EXIT_USAGE;
			}
			p.volid = x;
			break;
		case 'c':
			if (opts_u64("chunk_kib", optarg, 4, 1024, &x, why, sizeof(why)) || !is_pow2(x)) {
				fprintf(stderr, "tandemctl: --chunk-kib %s: a power of two from 4 to 1024\n",
					optarg);
				return EXIT_USAGE;
			}
			p.chunk_bytes = (uint32_t)x * 1024;
			break;
		case 'b':
			if (strcmp(optarg, "512") && strcmp(optarg, "4096")) {
				fprintf(stderr, "tandemctl: --block %s: 512 or 4096\n", optarg);
				return EXIT_USAGE;
			}
			p.block_bytes = (uint32_t)atoi(optarg);
			break;
		case 'f':
			p.force = 1;
			break;
		case 'h':
			usage_create(stdout);
			return 0;
		default:
			usage_create(stderr);
			return EXIT_USAGE;
		}
	}
	nr = argc - optind;
	if (!p.nr_data || !p.volid || nr < 1) {
		usage_create(stderr);
		return EXIT_USAGE;
	}
	if (nr > RAID_MAX_MEMBERS) {
		fprintf(stderr, "tandemctl: %d members: at most %d\n", nr, RAID_MAX_MEMBERS);
		return EXIT_USAGE;
	}
	for (int i = 0; i < nr && !err; i++)
		err = raid_member_open_path(argv[optind + i], &m[i], why, sizeof(why));
	if (!err)
		err = raid_create(m, (uint32_t)nr, &p, why, sizeof(why));
	for (int i = 0; i < nr; i++)
		raid_member_close(m[i]);
	if (err) {
		fprintf(stderr, "tandemctl: raid create: %s\n", why);
		return EXIT_FAIL;
	}
	printf("created %uD+1P volid %" PRIu64 " on %d members\n", p.nr_data, p.volid, nr);
	return 0;
}

static int cmd_examine(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, 0, 'j' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
	};
	int c, json = 0, bad = 0;

	while ((c = getopt_long(argc, argv, "jh", lo, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'h') {
			usage_examine(stdout);
			return 0;
		} else {
			usage_examine(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage_examine(stderr);
		return EXIT_USAGE;
	}
	if (json)
		printf("[");
	for (int i = optind; i < argc; i++) {
		struct raid_member *m;
		struct raid_sb sb, best;
		uint8_t blk[RAID_SB_BYTES];
		char why[512], u[37];
		int found = 0, err;

		err = raid_member_open_path(argv[i], &m, why, sizeof(why));
		for (int slot = 0; !err && slot < RAID_SB_SLOTS; slot++) {
			if (m->size_bytes < (uint64_t)(slot + 1) * RAID_SB_BYTES ||
			    raid_member_pread(m, blk, RAID_SB_BYTES, (uint64_t)slot * RAID_SB_BYTES))
				continue;
			if (raid_sb_decode(blk, &sb, why, sizeof(why)) == 0 &&
			    (!found || sb.sequence > best.sequence)) {
				best = sb;
				found = 1;
			}
		}
		if (!err)
			raid_member_close(m);
		if (!found) {
			bad = 1;
			if (json)
				printf("%s{\"member\":\"%s\",\"error\":\"%s\"}", i > optind ? "," : "",
				       argv[i], err ? why : "no valid tandem superblock");
			else
				fprintf(stderr, "%s: %s\n", argv[i], err ? why : "no valid tandem superblock");
			continue;
		}
		raid_uuid_str(best.array_uuid, u);
		if (json) {
			printf("%s{\"member\":\"%s\",\"array_uuid\":\"%s\",\"volid\":%" PRIu64
			       ",\"member_index\":%u,\"nr_members\":%u,\"layout\":\"%uD+1P\","
			       "\"chunk_bytes\":%u,\"block_bytes\":%u,\"volume_bytes\":%" PRIu64
			       ",\"sequence\":%" PRIu64 ",\"state\":\"%s\",\"failed_mask\":%" PRIu64 "}",
			       i > optind ? "," : "", argv[i], u, best.volid, best.member_index,
			       best.nr_members, best.geom.nr_data, best.geom.chunk_bytes,
			       best.geom.block_bytes, best.volume_bytes, best.sequence,
			       best.flags & RAID_SB_FLAG_DIRTY ? "dirty" : "clean", best.failed_mask);
		} else {
			time_t t = (time_t)best.ctime;
			char tbuf[64];

			strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
			printf("%s:\n  array uuid   %s\n  volid        %" PRIu64 "\n  member       %u of %u\n"
			       "  layout       %uD+1P, chunk %u KiB, block %u\n  volume size  %" PRIu64
			       " bytes\n  data offset  %" PRIu64 " bytes\n  sequence     %" PRIu64
			       "\n  state        %s\n  created      %s\n",
			       argv[i], u, best.volid, best.member_index, best.nr_members,
			       best.geom.nr_data, best.geom.chunk_bytes / 1024, best.geom.block_bytes,
			       best.volume_bytes, best.geom.data_offset_bytes, best.sequence,
			       best.flags & RAID_SB_FLAG_DIRTY ? "dirty (in use, or not shut down cleanly)"
							       : "clean", tbuf);
		}
	}
	if (json)
		printf("]\n");
	return bad ? EXIT_FAIL : 0;
}

static void usage_check(FILE *f)
{
	fprintf(f,
		"usage: tandemctl raid check MEMBER...\n"
		"Assembles the array read-only (it must not be in use: stop its LU first) and checks\n"
		"that every stripe's parity equals the XOR of its data. Prints the mismatching stripes.\n"
		"Exit 0 all consistent, 1 mismatches or errors.\n");
}

static int cmd_check(int argc, char **argv)
{
	struct raid_member *m[RAID_MAX_MEMBERS] = { 0 };
	struct raid_assemble_params ap = { .readonly = 1 };
	struct raid_vol *v = NULL;
	struct raid_info info;
	uint64_t bad = 0;
	char why[512];
	int nr = argc - 1, err = 0;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage_check(stdout);
		return 0;
	}
	if (nr < 1 || nr > RAID_MAX_MEMBERS || argv[1][0] == '-') {
		usage_check(stderr);
		return EXIT_USAGE;
	}
	for (int i = 0; i < nr && !err; i++)
		err = raid_member_open_path(argv[1 + i], &m[i], why, sizeof(why));
	if (!err)
		err = raid_assemble(m, (uint32_t)nr, &ap, &v, why, sizeof(why));
	if (err) {
		for (int i = 0; i < nr; i++)
			raid_member_close(m[i]);
		fprintf(stderr, "tandemctl: raid check: %s\n", why);
		return EXIT_FAIL;
	}
	raid_get_info(v, &info);
	for (uint64_t s = 0; s < raid_nr_stripes(&info.geom); s++) {
		uint32_t off = 0;

		err = raid_check_stripe(v, s, &off);
		if (err == -EILSEQ) {
			if (bad++ < 20)
				printf("stripe %" PRIu64 ": parity mismatch at chunk byte %u\n", s, off);
		} else if (err) {
			fprintf(stderr, "tandemctl: raid check: stripe %" PRIu64 ": %s\n", s, strerror(-err));
			raid_close(v);
			return EXIT_FAIL;
		}
	}
	printf("%" PRIu64 " stripes checked, %" PRIu64 " mismatches\n", raid_nr_stripes(&info.geom), bad);
	raid_close(v);
	return bad ? EXIT_FAIL : 0;
}

/* Offline commands on member files; -1 when argv is not one of them. */
int tandemctl_offline(int argc, char **argv);
int tandemctl_offline(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "raid")) {
		if (!strcmp(argv[2], "create"))
			return cmd_create(argc - 2, argv + 2);
		if (!strcmp(argv[2], "examine"))
			return cmd_examine(argc - 2, argv + 2);
		if (!strcmp(argv[2], "check"))
			return cmd_check(argc - 2, argv + 2);
	}
	return -1;
}

#include "raid/layout.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "raid/util.h"

int raid_geom_check(const struct raid_geom *g, char *why, size_t why_len)
{
	if (g->nr_data < RAID_MIN_DATA || g->nr_data > RAID_MAX_DATA) {
		snprintf(why, why_len, "layout %uD+1P: n must be %d..%d", g->nr_data, RAID_MIN_DATA,
			 RAID_MAX_DATA);
		return -EINVAL;
	}
	if (!is_pow2(g->chunk_bytes) || g->chunk_bytes < RAID_MIN_CHUNK_BYTES ||
	    g->chunk_bytes > RAID_MAX_CHUNK_BYTES) {
		snprintf(why, why_len, "chunk %u bytes: must be a power of two from 4 KiB to 1 MiB",
			 g->chunk_bytes);
		return -EINVAL;
	}
	if (g->block_bytes != 512 && g->block_bytes != 4096) {
		snprintf(why, why_len, "block size %u: must be 512 or 4096", g->block_bytes);
		return -EINVAL;
	}
	if (g->data_offset_bytes % RAID_MAX_CHUNK_BYTES) {
		snprintf(why, why_len, "data offset %llu is not 1 MiB aligned",
			 (unsigned long long)g->data_offset_bytes);
		return -EINVAL;
	}
	if (g->member_data_bytes == 0 || g->member_data_bytes % g->chunk_bytes) {
		snprintf(why, why_len, "member data size %llu is not a positive multiple of the chunk",
			 (unsigned long long)g->member_data_bytes);
		return -EINVAL;
	}
	return 0;
}

uint64_t raid_member_data_bytes(uint64_t member_bytes, uint64_t data_offset_bytes,
				uint32_t chunk_bytes)
{
	if (member_bytes <= data_offset_bytes || chunk_bytes == 0)
		return 0;
	return (member_bytes - data_offset_bytes) / chunk_bytes * chunk_bytes;
}

int raid_parse_layout(const char *s, uint32_t *nr_data)
{
	char *end;
	unsigned long n;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	n = strtoul(s, &end, 10);
	if ((end[0] != 'D' && end[0] != 'd') || end[1] != '+' || end[2] != '1' ||
	    (end[3] != 'P' && end[3] != 'p') || end[4] != '\0')
		return -EINVAL;
	if (n < RAID_MIN_DATA || n > RAID_MAX_DATA)
		return -EINVAL;
	*nr_data = (uint32_t)n;
	return 0;
}

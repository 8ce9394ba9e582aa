/* nD+1P geometry and address mapping (left-symmetric parity rotation; docs/raid-format.md).
 *
 *  stripe | m0  | m1  | m2  | m3        3D+1P: parity member p(s) = (N-1) - s mod N,
 *  -------+-----+-----+-----+----        data chunk d on member (p(s)+1+d) mod N
 *     0   | D0  | D1  | D2  | P
 *     1   | D4  | D5  | P   | D3
 *     2   | D8  | P   | D6  | D7
 *     3   | P   | D9  | D10 | D11
 */
#ifndef TANDEM_RAID_LAYOUT_H
#define TANDEM_RAID_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define RAID_MIN_DATA 2
#define RAID_MAX_DATA 15
#define RAID_MAX_MEMBERS (RAID_MAX_DATA + 1)
#define RAID_MIN_CHUNK_BYTES 4096u
#define RAID_MAX_CHUNK_BYTES (1024u * 1024u)
#define RAID_DATA_OFFSET_BYTES (4ull << 20)

struct raid_geom {
	uint32_t nr_data;            /* n */
	uint32_t chunk_bytes;        /* C */
	uint32_t block_bytes;        /* logical block: 512 or 4096 */
	uint64_t data_offset_bytes;  /* stripe 0 on every member */
	uint64_t member_data_bytes;  /* data area of one member, a multiple of C */
};

static inline uint32_t raid_nr_members(const struct raid_geom *g) { return g->nr_data + 1; }
static inline uint64_t raid_stripe_bytes(const struct raid_geom *g)
{
	return (uint64_t)g->nr_data * g->chunk_bytes;
}
static inline uint64_t raid_nr_stripes(const struct raid_geom *g)
{
	return g->member_data_bytes / g->chunk_bytes;
}
static inline uint64_t raid_volume_bytes(const struct raid_geom *g)
{
	return (uint64_t)g->nr_data * g->member_data_bytes;
}
static inline uint32_t raid_parity_member(const struct raid_geom *g, uint64_t stripe)
{
	uint32_t n = raid_nr_members(g);

	return n - 1 - (uint32_t)(stripe % n);
}
static inline uint32_t raid_data_member(const struct raid_geom *g, uint64_t stripe, uint32_t d)
{
	return (raid_parity_member(g, stripe) + 1 + d) % raid_nr_members(g);
}
/* Member byte offset of byte `off_in_chunk` of stripe `stripe`'s chunk (data or parity). */
static inline uint64_t raid_member_offset(const struct raid_geom *g, uint64_t stripe,
					  uint32_t off_in_chunk)
{
	return g->data_offset_bytes + stripe * g->chunk_bytes + off_in_chunk;
}

/* Check a geometry; on error return -EINVAL and say why in `why`. */
int raid_geom_check(const struct raid_geom *g, char *why, size_t why_len);
/* The data area that fits a member of `member_bytes` (0 when not even one chunk fits). */
uint64_t raid_member_data_bytes(uint64_t member_bytes, uint64_t data_offset_bytes,
				uint32_t chunk_bytes);
/* Parse "3D+1P" (case-insensitive) into nr_data; -EINVAL on anything else. */
int raid_parse_layout(const char *s, uint32_t *nr_data);

#endif

/* Philox4x32-10, the counter-based random generator used everywhere.
 *
 * A counter-based generator gives the n-th random number directly from
 * (key, counter), so CPU and GPU, and every rank, draw identical streams
 * without sharing state. Random bits for element i of a stream come from
 * counter {i / 4 (low, high word), stream, offset}, word i % 4.
 */
#ifndef CTRAIN_RNG_H
#define CTRAIN_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One Philox4x32-10 block: 4 random words from a 128-bit counter and a 64-bit
 * key (the Random123 reference algorithm, checked against its known answers). */
void ct_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The 32 random bits for element i of stream (seed, stream, offset). */
uint32_t ct_philox_u32(uint64_t seed, uint32_t stream, uint32_t offset, uint64_t i);

/* Uniform float in [0, 1) with 24 random bits: (bits >> 8) * 2^-24. */
float ct_philox_uniform(uint64_t seed, uint32_t stream, uint32_t offset, uint64_t i);

#ifdef __cplusplus
}
#endif
#endif

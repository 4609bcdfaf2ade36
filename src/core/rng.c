/* Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3",
 * SC11), and the element -> counter mapping every ctrain stream uses.
 *
 * The CUDA kernels compute the same function on the device, so nothing here
 * may depend on host state: a value is a pure function of (seed, stream,
 * offset, i). Changing the counter layout below changes every initial weight
 * and dropout mask, and breaks CPU/GPU parity; keep it in step with rng.h.
 */
#include "ctrain/rng.h"

/* Round multipliers and Weyl key increments of the reference algorithm. The
 * increments are the golden ratio and sqrt(3) - 1 in 0.32 fixed point. */
#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9)
#define PHILOX_W1 UINT32_C(0xBB67AE85)

/* The 64-bit product split into halves; uint64_t makes it exact and portable
 * (no compiler-specific mulhi intrinsic needed). */
static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void ct_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        /* The key schedule advances between rounds, so the first round uses
         * the key as given and the last the key bumped nine times. */
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

uint32_t ct_philox_u32(uint64_t seed, uint32_t stream, uint32_t offset, uint64_t i) {
    /* One block serves four consecutive elements, so a kernel thread that
     * handles elements 4j..4j+3 pays for one block, and any single element is
     * still reachable without generating its predecessors. */
    uint64_t block = i >> 2;
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream, offset};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    ct_philox4x32_10(ctr, key, out);
    return out[i & 3];
}

float ct_philox_uniform(uint64_t seed, uint32_t stream, uint32_t offset, uint64_t i) {
    /* 24 bits is all a float mantissa holds: the product is exact, and the
     * largest value is 1 - 2^-24 < 1, so the interval stays half-open (using
     * all 32 bits would round the top values up to 1.0f). */
    uint32_t bits = ct_philox_u32(seed, stream, offset, i);
    return (float)(bits >> 8) * 0x1p-24f;
}

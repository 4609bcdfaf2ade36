// Internal to src/cuda: Philox4x32-10 on the device.
//
// The same function as src/core/rng.c, bit for bit: a value depends only on
// (seed, stream, offset, i), element i takes word i % 4 of the block at
// counter {i / 4 (low, high), stream, offset} under key {seed low, seed
// high}. Dropout masks drawn here are therefore identical to the CPU's;
// keep the two in step (tests/test_cuda_parity_nn.c checks it).
#ifndef CT_CUDA_PHILOX_CUH
#define CT_CUDA_PHILOX_CUH

#include <cstdint>

__device__ __forceinline__ void ct_philox_block(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                                uint32_t k1, uint32_t out[4]) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
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

// The four words of block b (elements 4b .. 4b + 3) of a stream.
__device__ __forceinline__ void ct_philox_words(uint64_t seed, uint32_t stream, uint32_t offset, uint64_t block,
                                                uint32_t out[4]) {
    ct_philox_block((uint32_t)block, (uint32_t)(block >> 32), stream, offset, (uint32_t)seed, (uint32_t)(seed >> 32),
                    out);
}

// Uniform in [0, 1) from one word: 24 bits, exact in a float.
__device__ __forceinline__ float ct_philox_to_uniform(uint32_t bits) { return (float)(bits >> 8) * 0x1p-24f; }

#endif

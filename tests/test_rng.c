/* Philox4x32-10: known answers, the counter layout rng.h promises, and the
 * basic statistics of the uniform. */
#include <criterion/criterion.h>
#include <math.h>

#include "ctrain/rng.h"

/* Known-answer vectors of Random123's tests/kat_vectors
 * (github.com/DEShawResearch/random123), the three "philox4x32 10" lines;
 * columns are CTR (4 words), KEY (2 words), EXPECTED (4 words). The upstream
 * file itself is not in our search index; these lines were read from public
 * copies that quote it (the kat table embedded in a Python Philox
 * implementation, and Rust and Go test suites), all three agreeing. */
typedef struct kat {
    uint32_t ctr[4], key[2], want[4];
} kat;

static const kat katv[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

Test(rng, philox_known_answers) {
    for (size_t t = 0; t < sizeof katv / sizeof katv[0]; t++) {
        uint32_t out[4];
        ct_philox4x32_10(katv[t].ctr, katv[t].key, out);
        for (int w = 0; w < 4; w++)
            cr_expect_eq(out[w], katv[t].want[w], "kat %zu word %d: got %08x want %08x", t, w,
                         out[w], katv[t].want[w]);
    }
}

Test(rng, philox_does_not_modify_inputs) {
    uint32_t ctr[4] = {1, 2, 3, 4}, key[2] = {5, 6}, out[4];
    ct_philox4x32_10(ctr, key, out);
    cr_expect(ctr[0] == 1 && ctr[1] == 2 && ctr[2] == 3 && ctr[3] == 4);
    cr_expect(key[0] == 5 && key[1] == 6);
}

/* The CUDA kernels rebuild this layout by hand, so it is pinned here:
 * counter {lo(i/4), hi(i/4), stream, offset}, key {lo(seed), hi(seed)},
 * word i % 4. Indices past 2^34 exercise the high counter word. */
Test(rng, u32_counter_layout) {
    const uint64_t seed = UINT64_C(0x0123456789abcdef);
    const uint32_t stream = 77, offset = 5;
    const uint64_t idx[] = {0, 1, 2, 3, 4, 7, 1000003, UINT64_C(0x400000003),
                            UINT64_C(0x123456789abc), UINT64_MAX};
    for (size_t t = 0; t < sizeof idx / sizeof idx[0]; t++) {
        uint64_t i = idx[t], blk = i / 4;
        uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), stream, offset};
        uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        uint32_t out[4];
        ct_philox4x32_10(ctr, key, out);
        cr_expect_eq(ct_philox_u32(seed, stream, offset, i), out[i % 4], "i = %llu",
                     (unsigned long long)i);
    }
}

/* Seed 0, stream 0, offset 0 is exactly the all-zero known answer. */
Test(rng, u32_zero_seed_is_kat) {
    cr_expect_eq(ct_philox_u32(0, 0, 0, 0), 0x6627e8d5u);
    cr_expect_eq(ct_philox_u32(0, 0, 0, 1), 0xe169c58du);
    cr_expect_eq(ct_philox_u32(0, 0, 0, 2), 0xbc57ac4cu);
    cr_expect_eq(ct_philox_u32(0, 0, 0, 3), 0x9b00dbd8u);
}

Test(rng, uniform_is_top_24_bits) {
    for (uint64_t i = 0; i < 1000; i++) {
        uint32_t b = ct_philox_u32(42, 3, 1, i);
        float want = (float)(b >> 8) * (1.0f / 16777216.0f);
        cr_expect_eq(ct_philox_uniform(42, 3, 1, i), want);
    }
}

Test(rng, uniform_range_and_moments) {
    const int n = 1000000;
    double sum = 0, sum2 = 0;
    float lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        float u = ct_philox_uniform(12345, 7, 0, (uint64_t)i);
        cr_assert(u >= 0.0f && u < 1.0f, "draw %d = %.9g outside [0, 1)", i, u);
        if (u < lo) lo = u;
        if (u > hi) hi = u;
        sum += u;
        sum2 += (double)u * u;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    /* Standard error of the mean is sqrt(1/12 / n) ~ 2.9e-4; 5 sigma. */
    cr_expect(fabs(mean - 0.5) < 1.5e-3, "mean %.6f", mean);
    cr_expect(fabs(var - 1.0 / 12.0) < 1e-3, "variance %.6f", var);
    cr_expect(lo < 1e-4 && hi > 1.0 - 1e-4, "min %g max %g", lo, hi);
}

/* Equal counts in 16 bins: chi-square with 15 degrees of freedom; 40 is far
 * beyond its 99.9th percentile (~37.7), so only a broken generator fails. */
Test(rng, uniform_histogram) {
    enum { BINS = 16 };
    const int n = 1 << 20;
    long count[BINS] = {0};
    for (int i = 0; i < n; i++) count[(int)(ct_philox_uniform(9, 0, 0, (uint64_t)i) * BINS)]++;
    double expect = (double)n / BINS, chi2 = 0;
    for (int b = 0; b < BINS; b++) chi2 += (count[b] - expect) * (count[b] - expect) / expect;
    cr_expect(chi2 < 40.0, "chi-square %.2f", chi2);
}

static int count_equal(uint64_t s1, uint32_t st1, uint32_t o1, uint64_t s2, uint32_t st2,
                       uint32_t o2) {
    int same = 0;
    for (uint64_t i = 0; i < 4096; i++)
        same += ct_philox_u32(s1, st1, o1, i) == ct_philox_u32(s2, st2, o2, i);
    return same;
}

/* Two independent 32-bit streams agree at a given index with chance 2^-32,
 * so any coincidence in 4096 draws means the parameter was ignored. */
Test(rng, streams_offsets_seeds_differ) {
    cr_expect_eq(count_equal(1, 0, 0, 1, 1, 0), 0, "streams 0 and 1");
    cr_expect_eq(count_equal(1, 0, 0, 1, 0, 1), 0, "offsets 0 and 1");
    cr_expect_eq(count_equal(1, 0, 0, 2, 0, 0), 0, "seeds 1 and 2");
    /* The high seed word is part of the key too. */
    cr_expect_eq(count_equal(1, 0, 0, 1 | (UINT64_C(1) << 32), 0, 0), 0, "seed high word");
    cr_expect_eq(count_equal(1, 5, 3, 1, 5, 3), 4096, "same parameters");
}

Test(rng, deterministic) {
    for (uint64_t i = 0; i < 100; i++)
        cr_expect_eq(ct_philox_u32(99, 2, 1, i * 977), ct_philox_u32(99, 2, 1, i * 977));
}

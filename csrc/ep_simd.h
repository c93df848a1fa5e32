/*
 * Internal: which SIMD code paths this build has. x86-64 always has SSE2;
 * AVX2 code is compiled with a function-level target attribute and chosen at
 * run time by ep_cpu_has_avx2(), so a build stays portable across x86-64
 * CPUs. aarch64 always has NEON.
 */
#ifndef EP_SIMD_H
#define EP_SIMD_H

#if defined(__SSE2__) || defined(_M_X64)
#define EP_SSE2 1
#endif

#if defined(EP_SSE2) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define EP_AVX2 1
#define EP_TARGET_AVX2 __attribute__((target("avx2")))
#define ep_cpu_has_avx2() __builtin_cpu_supports("avx2")
#else
#define ep_cpu_has_avx2() 0
#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
#define EP_NEON 1
#endif

#endif /* EP_SIMD_H */

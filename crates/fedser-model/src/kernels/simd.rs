//! Run-time choice of instruction set for the kernels' elementwise loops: a function body
//! written once is compiled twice, for the baseline target and for AVX2 + FMA, and the
//! processor picks. The code is plain Rust over slices; the compiler vectorises it.

/// Whether this processor runs the AVX2 + FMA builds (checked once, cached by `std`).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `dispatch!(fn name(arg: Type, ...) { body })` defines `fn name` that runs `body` compiled
/// for AVX2 + FMA where the processor has them, else for the baseline target. The body's
/// helpers should be `#[inline(always)]` so they are compiled into each build.
macro_rules! dispatch {
    (fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if $crate::kernels::simd::has_avx2_fma() {
                    // SAFETY: this processor has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use dispatch;

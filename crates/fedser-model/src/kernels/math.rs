//! Vectorisable `exp`, logistic sigmoid and `tanh` for `f32`, written in plain arithmetic and
//! bit operations so that a loop over a slice compiles to SIMD instructions.
//!
//! `exp` reduces `x = n ln 2 + r` with `|r| ≤ ln 2 / 2` (Cody–Waite, two-part `ln 2`), evaluates
//! Cephes' degree-6 polynomial for `e^r` and scales by `2^n` through the exponent bits. Inputs
//! are clamped to `[-87.3, 88]`, so results stay finite and normal: `sigmoid` saturates to
//! exactly 0 or 1 only through rounding, never through infinities or NaN. Maximum errors
//! against the correctly rounded function, checked over dense grids in the tests:
//! `exp` relative 3e-7, `sigmoid` absolute 1.2e-7, `tanh` absolute 2.4e-7.
//!
//! The hot loops of the fused kernels call these from functions compiled for AVX2 + FMA when
//! the processor has them (chosen at run time, see [`super::simd`]); elsewhere they are
//! compiled for the baseline target (SSE2 on x86-64, NEON on aarch64), still vectorised.

const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
const MAX_IN: f32 = 88.0;
const MIN_IN: f32 = -87.3;

/// `e^x`, relative error below 3e-7 on `[-87.3, 88]`; inputs outside are clamped.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(MIN_IN, MAX_IN);
    // Plain products and sums (no `mul_add`): without FMA in the target, `mul_add` is a
    // library call per element.
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI;
    let r = r - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let e = p * r * r + r + 1.0;
    // 2^n through the exponent field: `t`'s low bits hold n (two's complement).
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    e * scale
}

/// The logistic function `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x = 1 - 2 / (e^{2x} + 1)`; exact limits ±1 far out, odd to within the error bound.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    #[test]
    fn exp_is_within_3e_7_relative_of_libm() {
        let mut worst = 0f64;
        for x in grid(-87.0, 88.0, 400_000) {
            let want = (x as f64).exp();
            let err = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(err);
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        // Clamped far out: finite, tiny or huge, never NaN.
        assert!(exp(-1e4) > 0.0 && exp(-1e4) < 1e-37);
        assert!(exp(1e4).is_finite() && exp(1e4) > 1e38);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn sigmoid_and_tanh_are_within_stated_absolute_error() {
        let (mut ws, mut wt) = (0f64, 0f64);
        for x in grid(-40.0, 40.0, 400_000) {
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            ws = ws.max((sigmoid(x) as f64 - s).abs());
            wt = wt.max((tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        assert!(ws < 1.2e-7, "sigmoid worst absolute error {ws:e}");
        assert!(wt < 2.4e-7, "tanh worst absolute error {wt:e}");
        for x in [-1e30f32, -200.0, 200.0, 1e30] {
            assert!((0.0..=1.0).contains(&sigmoid(x)), "sigmoid({x})");
            assert!((-1.0..=1.0).contains(&tanh(x)), "tanh({x})");
        }
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
    }
}

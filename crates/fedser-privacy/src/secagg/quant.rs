//! Fixed-point encoding of updates for summation modulo `2^bits`.
//!
//! A value `x` with `|x| <= range` becomes `q = floor(x·s + u)` with `u ~ U[0, 1)`
//! (stochastic rounding: `E[q] = x·s`, `|q − x·s| < 1`), stored in two's complement modulo
//! `2^bits`. The scale `s` is the largest for which the sum of `clients` such values cannot
//! overflow: `clients · (range·s + 1) <= 2^(bits−1) − 1`. Decoding the sum reads it as a
//! signed number and divides by `s`, so each coordinate of the decoded sum is within
//! `clients / s` of the true sum (and unbiased).

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::SecAggError;

/// The fixed-point code of one round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantizer {
    /// Largest absolute value of a coordinate.
    pub range: f64,
    /// Values per unit.
    pub scale: f64,
    pub bits: u32,
    /// Summands the scale was chosen for.
    pub clients: usize,
}

impl Quantizer {
    /// The finest code for summing `clients` vectors with coordinates in `[-range, range]`
    /// modulo `2^bits`; refuses settings that leave no resolution (the sum could overflow).
    pub fn new(range: f64, clients: usize, bits: u32) -> Result<Self, SecAggError> {
        if !(range.is_finite() && range > 0.0) {
            return Err(SecAggError::Quant(format!(
                "the value range must be finite and > 0, got {range}"
            )));
        }
        if !(2..=32).contains(&bits) || clients == 0 {
            return Err(SecAggError::Quant(format!(
                "{clients} clients, 2^{bits}: need at least one client and 2..=32 bits"
            )));
        }
        let half = ((1u64 << (bits - 1)) - 1) as f64;
        let scale = (half / clients as f64 - 1.0) / range;
        if scale < 1.0 / range {
            return Err(SecAggError::Quant(format!(
                "{clients} clients with values up to {range} overflow a sum modulo 2^{bits}: \
                 use more bits or fewer clients per round"
            )));
        }
        Ok(Self {
            range,
            scale,
            bits,
            clients,
        })
    }

    fn mask(&self) -> u64 {
        if self.bits == 32 {
            u32::MAX as u64
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// Largest error of one coordinate of a decoded sum of `clients` vectors.
    pub fn error_bound(&self) -> f64 {
        self.clients as f64 / self.scale
    }

    /// Encodes `values` (stochastic rounding seeded by `seed`); refuses NaN, infinities and
    /// values outside the range.
    pub fn encode(&self, values: &[f32], seed: [u8; 32]) -> Result<Vec<u32>, SecAggError> {
        let mut rng = ChaCha20Rng::from_seed(seed);
        values
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let x = f64::from(x);
                if !x.is_finite() || x.abs() > self.range * (1.0 + 1e-6) {
                    return Err(SecAggError::Quant(format!(
                        "value {i} is {x}, outside [-{r}, {r}]",
                        r = self.range
                    )));
                }
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let q = (x.clamp(-self.range, self.range) * self.scale + u).floor() as i64;
                Ok((q as u64 & self.mask()) as u32)
            })
            .collect()
    }

    /// Decodes a sum (modulo `2^bits`) back to real values.
    pub fn decode_sum(&self, sum: &[u32]) -> Vec<f64> {
        let m = self.mask();
        let half = 1u64 << (self.bits - 1);
        sum.iter()
            .map(|&v| {
                let v = u64::from(v) & m;
                let signed = if v >= half {
                    v as i64 - (m as i64 + 1)
                } else {
                    v as i64
                };
                signed as f64 / self.scale
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_decode_within_the_stated_bound_and_rounding_is_unbiased() {
        for bits in [16u32, 32] {
            let q = Quantizer::new(0.5, 50, bits).unwrap();
            let mut sum = vec![0u32; 3];
            let mut truth = [0f64; 3];
            for c in 0..50u8 {
                let x = [0.5f32 - c as f32 * 0.02, -0.5, 0.0123];
                for (t, v) in truth.iter_mut().zip(x) {
                    *t += f64::from(v);
                }
                for (s, e) in sum.iter_mut().zip(q.encode(&x, [c; 32]).unwrap()) {
                    *s = s.wrapping_add(e) & q.mask() as u32;
                }
            }
            for (d, t) in q.decode_sum(&sum).iter().zip(truth) {
                assert!((d - t).abs() <= q.error_bound(), "{bits} bits: {d} vs {t}");
            }
        }
        // Unbiased: the mean of many roundings of 0.3/s is 0.3/s.
        let q = Quantizer::new(1.0, 1, 8).unwrap();
        let x = (0.3 / q.scale) as f32;
        let n = 20_000;
        let mean: f64 = (0..n)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&(i as u32).to_le_bytes());
                q.decode_sum(&q.encode(&[x], seed).unwrap())[0]
            })
            .sum::<f64>()
            / n as f64;
        assert!((mean * q.scale - 0.3).abs() < 0.02, "{}", mean * q.scale);
    }

    #[test]
    fn overflowing_settings_and_out_of_range_values_are_refused() {
        let e = Quantizer::new(1.0, 1000, 8).unwrap_err().to_string();
        assert!(e.contains("overflow"), "{e}");
        let q = Quantizer::new(1.0, 10, 32).unwrap();
        assert!(q.encode(&[1.5], [0; 32]).is_err());
        assert!(q.encode(&[f32::NAN], [0; 32]).is_err());
        assert!(Quantizer::new(f64::NAN, 10, 32).is_err());
    }
}

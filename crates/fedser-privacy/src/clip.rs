//! L2 clipping of a model update (a `ParamSet` delta) to a norm bound `C`, the sensitivity
//! bound that Gaussian noise is then calibrated to.
//!
//! The norm is the flat L2 norm over every value of every tensor (as if all tensors were one
//! vector), accumulated in f64. Clipping scales the whole update by one factor, so its
//! direction is kept.

use fedser_core::params::ParamSet;

use crate::error::PrivacyError;

/// What [`clip_l2`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipReport {
    /// L2 norm of the update before clipping.
    pub norm: f64,
    /// Whether the update was scaled down (its norm exceeded the bound).
    pub clipped: bool,
    /// The factor the update was multiplied by (1 when not clipped, else ≈ `C / norm`).
    pub scale: f64,
}

/// Flat L2 norm of all values, summed in f64. NaN if a value is NaN, `+inf` if one is infinite
/// (never overflows otherwise: squares of f32 values are far from the f64 range).
pub fn l2_norm(update: &ParamSet) -> f64 {
    update
        .iter()
        .flat_map(|(_, t)| t.data.iter())
        .map(|&v| {
            let v = v as f64;
            v * v
        })
        .sum::<f64>()
        .sqrt()
}

/// Scales `update` in place so that its L2 norm is at most `clip` (the flat norm over all
/// tensors); leaves it untouched when it already is.
///
/// The scaled values are rounded toward zero when stored as f32, so the norm after clipping
/// (as [`l2_norm`] measures it) is ≤ `clip`, not merely ≈. Errors, with `update` untouched:
/// `clip` not finite and > 0; a NaN or infinite value in `update` (named by tensor and index).
pub fn clip_l2(update: &mut ParamSet, clip: f64) -> Result<ClipReport, PrivacyError> {
    if !(clip.is_finite() && clip > 0.0) {
        return Err(PrivacyError::ClipNorm(clip));
    }
    check_finite(update)?;
    let mut values: Vec<&mut f32> = update
        .tensors_mut()
        .flat_map(|t| t.data.iter_mut())
        .collect();
    clip_checked(&mut values, clip)
}

/// [`clip_l2`] on flat values (e.g. an update the server flattened). Errors as there; a
/// non-finite value is named by its index in `values`.
pub fn clip_values(values: &mut [f32], clip: f64) -> Result<ClipReport, PrivacyError> {
    if !(clip.is_finite() && clip > 0.0) {
        return Err(PrivacyError::ClipNorm(clip));
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(PrivacyError::NonFiniteUpdate {
            tensor: "(flat)".to_string(),
            index,
            value,
        });
    }
    let mut values: Vec<&mut f32> = values.iter_mut().collect();
    clip_checked(&mut values, clip)
}

/// The clipping itself, over finite values.
fn clip_checked(values: &mut [&mut f32], clip: f64) -> Result<ClipReport, PrivacyError> {
    let norm_of = |vs: &[&mut f32]| {
        vs.iter()
            .map(|v| {
                let v = f64::from(**v);
                v * v
            })
            .sum::<f64>()
            .sqrt()
    };
    let norm = norm_of(values);
    if norm <= clip {
        return Ok(ClipReport {
            norm,
            clipped: false,
            scale: 1.0,
        });
    }
    let mut scale = clip / norm;
    scale_toward_zero(values, scale);
    // Rounding in the f64 norm can still leave it a hair above `clip`; shrink by a few ulps of
    // f32 until it is not (at most a couple of passes).
    let mut after = norm_of(values);
    while after > clip {
        let extra = clip / after * (1.0 - f64::from(f32::EPSILON));
        scale_toward_zero(values, extra);
        scale *= extra;
        after = norm_of(values);
    }
    Ok(ClipReport {
        norm,
        clipped: true,
        scale,
    })
}

/// Multiplies every value by `s` (0 < s < 1), rounding the f32 result toward zero.
fn scale_toward_zero(values: &mut [&mut f32], s: f64) {
    for v in values.iter_mut() {
        let exact = f64::from(**v) * s;
        let mut r = exact as f32;
        if f64::from(r).abs() > exact.abs() {
            r = f32::from_bits(r.to_bits() - 1);
        }
        **v = r;
    }
}

/// The first non-finite value as an error naming its tensor and index.
pub(crate) fn check_finite(update: &ParamSet) -> Result<(), PrivacyError> {
    for (name, t) in update.iter() {
        if let Some((index, &value)) = t.data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(PrivacyError::NonFiniteUpdate {
                tensor: name.to_string(),
                index,
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use fedser_core::params::ParamTensor;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn set(parts: &[Vec<f32>]) -> ParamSet {
        let mut s = ParamSet::new();
        for (k, p) in parts.iter().enumerate() {
            s.push(
                format!("t{k}"),
                ParamTensor::new(vec![p.len()], p.clone()).unwrap(),
            )
            .unwrap();
        }
        s
    }

    #[test]
    fn norm_is_flat_over_tensors() {
        let s = set(&[vec![3.0], vec![4.0, 0.0]]);
        assert_eq!(l2_norm(&s), 5.0);
        assert_eq!(l2_norm(&ParamSet::new()), 0.0);
    }

    #[test]
    fn clipped_norm_never_exceeds_bound() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut n_clipped = 0;
        for case in 0..500 {
            let len_a = rng.random_range(1..50);
            let len_b = rng.random_range(0..200);
            // Magnitudes from 1e-3 to 1e3 so norms fall on both sides of the bound.
            let mag = 10f32.powf(rng.random_range(-3.0..3.0));
            let mut gen_vec = |n: usize| -> Vec<f32> {
                (0..n).map(|_| mag * rng.random_range(-1.0..1.0)).collect()
            };
            let a = gen_vec(len_a);
            let b = gen_vec(len_b);
            let original = set(&[a, b]);
            let c = 10f64.powf(rng.random_range(-1.0..1.0));
            let mut s = original.clone();
            let r = clip_l2(&mut s, c).unwrap();
            let after = l2_norm(&s);
            assert!(after <= c, "case {case}: norm {after} > bound {c}");
            assert!((r.norm - l2_norm(&original)).abs() <= 1e-12 * r.norm);
            if r.clipped {
                n_clipped += 1;
                assert!(r.norm > c);
                // Scaled to (just under) the bound, direction kept.
                assert!(after >= c * (1.0 - 1e-6), "case {case}: {after} vs {c}");
                for ((_, t0), (_, t1)) in original.iter().zip(s.iter()) {
                    for (&x0, &x1) in t0.data.iter().zip(&t1.data) {
                        assert!(
                            (f64::from(x1) - f64::from(x0) * r.scale).abs()
                                <= 1e-6 * f64::from(x0.abs()) + 1e-30
                        );
                    }
                }
            } else {
                assert_eq!(s, original, "case {case}: untouched below the bound");
                assert_eq!(r.scale, 1.0);
            }
        }
        assert!(n_clipped > 100 && n_clipped < 400, "{n_clipped}");
    }

    #[test]
    fn bad_bound_and_non_finite_update_are_errors() {
        let mut s = set(&[vec![1.0, 2.0]]);
        for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(clip_l2(&mut s, c), Err(PrivacyError::ClipNorm(_))));
        }
        let mut bad = set(&[vec![1.0], vec![2.0, f32::NAN]]);
        let err = clip_l2(&mut bad, 1.0).unwrap_err();
        assert!(
            matches!(&err, PrivacyError::NonFiniteUpdate { tensor, index: 1, .. } if tensor == "t1"),
            "{err}"
        );
        assert!(l2_norm(&bad).is_nan());
        let mut inf = set(&[vec![f32::INFINITY]]);
        assert!(clip_l2(&mut inf, 1.0).is_err());
    }

    #[test]
    fn zero_update_is_untouched() {
        let mut s = set(&[vec![0.0; 4]]);
        let r = clip_l2(&mut s, 1.0).unwrap();
        assert!(!r.clipped);
        assert_eq!(r.norm, 0.0);
    }
}

//! Gaussian noise on a `ParamSet`, reproducible from a seed: the noise of the Gaussian mechanism.
//!
//! For central DP with clip norm `C` and noise multiplier `z`, the noise std on the *sum* of the
//! clipped updates is `z · C` (divide by the number of clients afterwards for a mean). The seed
//! is taken already derived (e.g. `fedser_fl::seed::derive(run_seed, round, 0, "dp-noise")`), so
//! each round's noise is reproducible on its own.

use fedser_core::params::ParamSet;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use crate::error::PrivacyError;

/// Adds independent `N(0, std²)` noise to every value of `update`, in tensor order then value
/// order, from `StdRng::seed_from_u64(seed)` (ChaCha12 in rand 0.10: the same seed gives the same
/// noise on every platform for this rand version; a rand upgrade may change the stream).
///
/// Noise is drawn in f64 and the sum rounded to f32. `std = 0` leaves `update` as it is.
/// Error: `std` not finite and ≥ 0.
pub fn add_gaussian(update: &mut ParamSet, std: f64, seed: u64) -> Result<(), PrivacyError> {
    if !(std.is_finite() && std >= 0.0) {
        return Err(PrivacyError::NoiseStd(std));
    }
    if std == 0.0 {
        return Ok(());
    }
    add_noise(
        update.tensors_mut().flat_map(|t| t.data.iter_mut()),
        std,
        seed,
    )
}

/// [`add_gaussian`] on flat values (e.g. an aggregate on the server), same stream per seed.
pub fn add_gaussian_values(values: &mut [f32], std: f64, seed: u64) -> Result<(), PrivacyError> {
    if !(std.is_finite() && std >= 0.0) {
        return Err(PrivacyError::NoiseStd(std));
    }
    if std == 0.0 {
        return Ok(());
    }
    add_noise(values.iter_mut(), std, seed)
}

fn add_noise<'a>(
    values: impl Iterator<Item = &'a mut f32>,
    std: f64,
    seed: u64,
) -> Result<(), PrivacyError> {
    let normal = Normal::new(0.0, std).map_err(|_| PrivacyError::NoiseStd(std))?;
    let mut rng = StdRng::seed_from_u64(seed);
    for v in values {
        *v = (f64::from(*v) + normal.sample(&mut rng)) as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use fedser_core::params::ParamTensor;

    use super::*;

    fn zeros(n_a: usize, n_b: usize) -> ParamSet {
        let mut s = ParamSet::new();
        s.push("a", ParamTensor::new(vec![n_a], vec![0.0; n_a]).unwrap())
            .unwrap();
        s.push("b", ParamTensor::new(vec![n_b], vec![0.0; n_b]).unwrap())
            .unwrap();
        s
    }

    fn values(s: &ParamSet) -> Vec<f64> {
        s.iter()
            .flat_map(|(_, t)| t.data.iter().map(|&v| f64::from(v)))
            .collect()
    }

    #[test]
    fn sample_mean_and_std_match() {
        let std = 0.7;
        for seed in [1, 2, 3] {
            let mut s = zeros(60_000, 40_000);
            add_gaussian(&mut s, std, seed).unwrap();
            let v = values(&s);
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let sd = var.sqrt();
            // Standard errors: mean σ/√n, sample std ≈ σ/√(2n).
            let se_mean = std / n.sqrt();
            let se_sd = std / (2.0 * n).sqrt();
            assert!(mean.abs() < 4.0 * se_mean, "seed {seed}: mean {mean}");
            assert!((sd - std).abs() < 4.0 * se_sd, "seed {seed}: std {sd}");
        }
    }

    #[test]
    fn same_seed_same_noise_other_seed_other_noise() {
        let mut a = zeros(100, 50);
        let mut b = zeros(100, 50);
        let mut c = zeros(100, 50);
        add_gaussian(&mut a, 1.0, 42).unwrap();
        add_gaussian(&mut b, 1.0, 42).unwrap();
        add_gaussian(&mut c, 1.0, 43).unwrap();
        assert_eq!(a, b);
        let (va, vc) = (values(&a), values(&c));
        assert!(va.iter().zip(&vc).all(|(x, y)| x != y));
    }

    #[test]
    fn noise_adds_to_existing_values_and_zero_std_is_identity() {
        let mut s = zeros(10, 0);
        for t in s.tensors_mut() {
            t.data.iter_mut().for_each(|v| *v = 5.0);
        }
        let before = s.clone();
        add_gaussian(&mut s, 0.0, 9).unwrap();
        assert_eq!(s, before);
        add_gaussian(&mut s, 1e-3, 9).unwrap();
        assert!(values(&s).iter().all(|v| (v - 5.0).abs() < 0.01));
        assert_ne!(s, before);
    }

    #[test]
    fn bad_std_is_an_error() {
        let mut s = zeros(3, 3);
        for std in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                add_gaussian(&mut s, std, 0),
                Err(PrivacyError::NoiseStd(_))
            ));
        }
    }
}

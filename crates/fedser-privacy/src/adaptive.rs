//! Adaptive clipping (Andrew, Thakkar, McMahan & Ramaswamy, NeurIPS 2021, "Differentially
//! Private Learning with Adaptive Clipping", arXiv:1905.03871): the clip norm `C` follows a
//! target quantile `γ` of the update norms by a private, geometric update.
//!
//! Each round `t`, with the clip `C_t` used to clip that round's updates:
//! 1. every participating client reports `b_i = 1[‖Δ_i‖ ≤ C_t]` (unclipped or not);
//! 2. the server forms `b̃ = (Σ_i b_i + N(0, σ_b²)) / m`, with `m` the *expected* number of
//!    clients per round (`m = q·N` under Poisson sampling), not the realised count;
//! 3. `C_{t+1} = C_t · exp(−η (b̃ − γ))`: if more than a fraction `γ` of updates were
//!    unclipped the clip shrinks, otherwise it grows.
//!
//! The update noise of round `t` is `z_Δ · C_t` (the clip used that round, not `C_{t+1}`).
//!
//! **What `σ_b` is:** the std of the Gaussian noise added to the *count* `Σ_i b_i` (a number of
//! clients), before dividing by `m`; the noise on the fraction `b̃` is `σ_b / m`. This is the
//! paper's and TensorFlow Privacy's `clipped_count_stddev` / `below_estimate_stddev`. The
//! paper's default is `σ_b = m / 20` (noise std 0.05 on the fraction), with `η = 0.2`.
//!
//! **Privacy:** the count query has L2 sensitivity ½ (the paper, and TF Privacy, sum the
//! centred bits `b_i − ½`, which changes nothing but the sensitivity), so it is a Gaussian
//! mechanism with noise multiplier `2σ_b`. Composed with the update's mechanism (noise
//! multiplier `z_Δ`) on the same sample, the round is equivalent to one Gaussian mechanism with
//! `z = (z_Δ⁻² + (2σ_b)⁻²)^(−1/2)`. So to spend the budget of noise multiplier `z` per round,
//! noise the updates with [`update_noise_multiplier`]`(z, σ_b)` = `(z⁻² − (2σ_b)⁻²)^(−1/2)` and
//! account each round as `(q, z)` in the RDP accountant. The expected client count `m` does not
//! enter this formula (both mechanisms are sums; the division by `m` is post-processing).
//!
//! Differences from other implementations, on purpose: TF Privacy additionally clamps `b̃` to
//! [0, 1] (the paper does not; this follows the paper). Flower 1.42's adaptive clipping moves
//! `C` with the opposite sign and scales the round's noise by the *new* clip; not done here.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::PrivacyError;

/// The paper's learning rate for the geometric update, `η = 0.2`.
pub const DEFAULT_LEARNING_RATE: f64 = 0.2;

/// The paper's default count noise: `σ_b = expected_clients / 20` (std 0.05 on the fraction).
pub fn default_count_noise_std(expected_clients: f64) -> f64 {
    expected_clients / 20.0
}

/// Noise multiplier for the clipped updates, `z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2)`, so that the update
/// mechanism and the count mechanism together spend what one Gaussian mechanism with noise
/// multiplier `z` spends (see the module docs). `count_noise_std` is `σ_b`, the std of the noise
/// on the unclipped *count*.
///
/// Errors: `z` not finite and > 0; `count_noise_std` not finite and ≥ 0;
/// [`PrivacyError::NoBudgetLeft`] when `2σ_b ≤ z` (the count alone would use the whole budget).
pub fn update_noise_multiplier(z: f64, count_noise_std: f64) -> Result<f64, PrivacyError> {
    if !(z.is_finite() && z > 0.0) {
        return Err(PrivacyError::NoiseMultiplier(z));
    }
    if !(count_noise_std.is_finite() && count_noise_std >= 0.0) {
        return Err(PrivacyError::NoiseStd(count_noise_std));
    }
    let two_sb = 2.0 * count_noise_std;
    if two_sb <= z {
        return Err(PrivacyError::NoBudgetLeft { z, count_noise_std });
    }
    Ok((z.powi(-2) - two_sb.powi(-2)).powf(-0.5))
}

/// What one [`AdaptiveClip::update`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveStep {
    /// The clip used this round (to clip, and to scale this round's update noise).
    pub clip_used: f64,
    /// The true number of unclipped updates (not private; do not log it in a DP run).
    pub unclipped: usize,
    /// The noisy unclipped fraction `b̃` (private; may fall outside [0, 1]).
    pub noisy_fraction: f64,
    /// The clip for the next round.
    pub new_clip: f64,
}

/// State of adaptive clipping: the current clip `C` and the fixed hyper-parameters.
/// Serializable so it can be saved in a checkpoint; deserializing validates the values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AdaptiveClipState")]
pub struct AdaptiveClip {
    clip: f64,
    target_quantile: f64,
    learning_rate: f64,
    count_noise_std: f64,
    expected_clients: f64,
}

/// The serialized form, checked on the way in.
#[derive(Deserialize)]
struct AdaptiveClipState {
    clip: f64,
    target_quantile: f64,
    learning_rate: f64,
    count_noise_std: f64,
    expected_clients: f64,
}

impl TryFrom<AdaptiveClipState> for AdaptiveClip {
    type Error = PrivacyError;

    fn try_from(s: AdaptiveClipState) -> Result<Self, Self::Error> {
        AdaptiveClip::new(s.clip, s.target_quantile, s.expected_clients)?
            .with_learning_rate(s.learning_rate)?
            .with_count_noise_std(s.count_noise_std)
    }
}

impl AdaptiveClip {
    /// Starts at `initial_clip`, aiming at the `target_quantile` γ of update norms, with
    /// `expected_clients` m clients per round (`q·N` under Poisson sampling), the paper's
    /// `η = 0.2` and `σ_b = m / 20`.
    ///
    /// Errors: `initial_clip` not finite and > 0, `γ ∉ (0, 1)`, `m` not finite and > 0.
    pub fn new(
        initial_clip: f64,
        target_quantile: f64,
        expected_clients: f64,
    ) -> Result<Self, PrivacyError> {
        if !(initial_clip.is_finite() && initial_clip > 0.0) {
            return Err(PrivacyError::ClipNorm(initial_clip));
        }
        if !(target_quantile > 0.0 && target_quantile < 1.0) {
            return Err(PrivacyError::TargetQuantile(target_quantile));
        }
        if !(expected_clients.is_finite() && expected_clients > 0.0) {
            return Err(PrivacyError::ExpectedClients(expected_clients));
        }
        Ok(Self {
            clip: initial_clip,
            target_quantile,
            learning_rate: DEFAULT_LEARNING_RATE,
            count_noise_std: default_count_noise_std(expected_clients),
            expected_clients,
        })
    }

    /// Sets the learning rate η (finite, ≥ 0; 0 freezes the clip).
    pub fn with_learning_rate(mut self, learning_rate: f64) -> Result<Self, PrivacyError> {
        if !(learning_rate.is_finite() && learning_rate >= 0.0) {
            return Err(PrivacyError::LearningRate(learning_rate));
        }
        self.learning_rate = learning_rate;
        Ok(self)
    }

    /// Sets `σ_b`, the std of the noise on the unclipped count (finite, ≥ 0; 0 makes the count
    /// non-private, for experiments only).
    pub fn with_count_noise_std(mut self, count_noise_std: f64) -> Result<Self, PrivacyError> {
        if !(count_noise_std.is_finite() && count_noise_std >= 0.0) {
            return Err(PrivacyError::NoiseStd(count_noise_std));
        }
        self.count_noise_std = count_noise_std;
        Ok(self)
    }

    /// The clip to use this round.
    pub fn clip(&self) -> f64 {
        self.clip
    }

    /// Target quantile γ.
    pub fn target_quantile(&self) -> f64 {
        self.target_quantile
    }

    /// Learning rate η.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    /// `σ_b`, the std of the noise on the unclipped count.
    pub fn count_noise_std(&self) -> f64 {
        self.count_noise_std
    }

    /// Expected clients per round `m`.
    pub fn expected_clients(&self) -> f64 {
        self.expected_clients
    }

    /// Ends a round in which `unclipped` of the participating clients had `‖Δ_i‖ ≤ clip()`:
    /// adds `N(0, σ_b²)` noise (from `StdRng::seed_from_u64(seed)`, one draw) to the count,
    /// divides by `m` and moves the clip geometrically. Error (state unchanged): the new clip is
    /// not a positive finite number (only under absurd noise settings).
    pub fn update(&mut self, unclipped: usize, seed: u64) -> Result<AdaptiveStep, PrivacyError> {
        let noise = if self.count_noise_std > 0.0 {
            let normal = Normal::new(0.0, self.count_noise_std)
                .map_err(|_| PrivacyError::NoiseStd(self.count_noise_std))?;
            normal.sample(&mut StdRng::seed_from_u64(seed))
        } else {
            0.0
        };
        let noisy_fraction = (unclipped as f64 + noise) / self.expected_clients;
        let new_clip =
            self.clip * (-self.learning_rate * (noisy_fraction - self.target_quantile)).exp();
        if !(new_clip.is_finite() && new_clip > 0.0) {
            return Err(PrivacyError::ClipNorm(new_clip));
        }
        let step = AdaptiveStep {
            clip_used: self.clip,
            unclipped,
            noisy_fraction,
            new_clip,
        };
        self.clip = new_clip;
        Ok(step)
    }

    /// [`update`](Self::update) from the participating clients' pre-clipping update norms
    /// (e.g. the `norm` of each [`ClipReport`](crate::clip::ClipReport)), counting those
    /// `≤ clip()`. Error (state unchanged): a norm that is NaN, infinite or negative.
    pub fn update_from_norms(
        &mut self,
        norms: &[f64],
        seed: u64,
    ) -> Result<AdaptiveStep, PrivacyError> {
        if let Some((index, &value)) = norms
            .iter()
            .enumerate()
            .find(|(_, n)| !n.is_finite() || **n < 0.0)
        {
            return Err(PrivacyError::UpdateNorm { index, value });
        }
        let unclipped = norms.iter().filter(|&&n| n <= self.clip).count();
        self.update(unclipped, seed)
    }
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;
    use fedser_fl::Sampling;

    /// Runs `rounds` rounds with Poisson sampling (N clients, rate q) and norms drawn by
    /// `norm_of`; returns the mean clip over the last `tail` rounds.
    fn run(
        start: f64,
        gamma: f64,
        count_noise: Option<f64>,
        norm_of: &dyn Fn(f64) -> f64,
        seed: u64,
    ) -> f64 {
        let (n, q) = (1000usize, 0.1);
        let m = n as f64 * q;
        let mut ac = AdaptiveClip::new(start, gamma, m).unwrap();
        if let Some(sb) = count_noise {
            ac = ac.with_count_noise_std(sb).unwrap();
        }
        let clients: Vec<usize> = (0..n).collect();
        let mut rng = StdRng::seed_from_u64(seed);
        let (rounds, tail) = (600, 300);
        let mut sum = 0.0;
        for r in 0..rounds {
            let cohort = Sampling::poisson(&clients, q, seed, r as u32);
            let norms: Vec<f64> = cohort
                .iter()
                .map(|_| norm_of(rng.random::<f64>()))
                .collect();
            let step = ac
                .update_from_norms(&norms, seed.wrapping_add(r as u64))
                .unwrap();
            if r >= rounds - tail {
                sum += step.clip_used;
            }
        }
        sum / tail as f64
    }

    #[test]
    fn converges_to_the_quantile_from_far_away() {
        // Uniform on [0, 10]: quantile 10γ. Exponential with mean 2: quantile −2 ln(1 − γ).
        let uniform = |u: f64| 10.0 * u;
        let expo = |u: f64| -2.0 * (1.0 - u).ln();
        for gamma in [0.3f64, 0.5, 0.8] {
            for (dist, quantile) in [
                (&uniform as &dyn Fn(f64) -> f64, 10.0 * gamma),
                (&expo as &dyn Fn(f64) -> f64, -2.0 * (1.0 - gamma).ln()),
            ] {
                for start in [0.1, 100.0] {
                    // The paper's noise (σ_b = m/20 = 5) and no noise.
                    for noise in [None, Some(0.0)] {
                        let c = run(start, gamma, noise, dist, 11);
                        let rel = (c - quantile).abs() / quantile;
                        assert!(
                            rel < 0.04,
                            "γ {gamma}, start {start}, noise {noise:?}: C {c} vs quantile {quantile}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn geometric_step_direction_and_size() {
        // All 10 of m = 10 unclipped, γ = 0.5, no noise: C shrinks by exp(−0.2·0.5).
        let mut ac = AdaptiveClip::new(2.0, 0.5, 10.0)
            .unwrap()
            .with_count_noise_std(0.0)
            .unwrap();
        let s = ac.update(10, 0).unwrap();
        assert_eq!(s.clip_used, 2.0);
        assert_eq!(s.noisy_fraction, 1.0);
        assert!((s.new_clip - 2.0 * (-0.1f64).exp()).abs() < 1e-15);
        // None unclipped: grows by exp(0.2·0.5).
        let s = ac.update(0, 0).unwrap();
        assert!((s.new_clip - 2.0).abs() < 1e-14);
        assert_eq!(ac.clip(), s.new_clip);
    }

    #[test]
    fn count_noise_has_the_stated_scale() {
        // b̃ − count/m has std σ_b/m.
        let m = 50.0;
        let mut fracs = Vec::new();
        for seed in 0..4000 {
            let mut ac = AdaptiveClip::new(1.0, 0.5, m).unwrap();
            fracs.push(ac.update(25, seed).unwrap().noisy_fraction - 0.5);
        }
        let n = fracs.len() as f64;
        let sd = (fracs.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
        let want = default_count_noise_std(m) / m; // 0.05
        assert!((sd - want).abs() < 4.0 * want / (2.0 * n).sqrt(), "{sd}");
    }

    #[test]
    fn update_noise_multiplier_formula_and_errors() {
        // z = 1, σ_b = 5: z_Δ = (1 − 1/100)^(−1/2).
        let zd = update_noise_multiplier(1.0, 5.0).unwrap();
        assert!((zd - (0.99f64).powf(-0.5)).abs() < 1e-15);
        // Composition back: (z_Δ⁻² + (2σ_b)⁻²)^(−1/2) = z.
        let back = (zd.powi(-2) + 10f64.powi(-2)).powf(-0.5);
        assert!((back - 1.0).abs() < 1e-14);
        assert!(matches!(
            update_noise_multiplier(2.0, 1.0),
            Err(PrivacyError::NoBudgetLeft { .. })
        ));
        assert!(update_noise_multiplier(1.0, 0.0).is_err());
        assert!(update_noise_multiplier(0.0, 5.0).is_err());
        assert!(update_noise_multiplier(f64::NAN, 5.0).is_err());
        let msg = update_noise_multiplier(3.0, 1.0).unwrap_err().to_string();
        assert!(msg.contains("z = 3") && msg.contains("= 2"), "{msg}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(AdaptiveClip::new(0.0, 0.5, 10.0).is_err());
        assert!(AdaptiveClip::new(1.0, 1.0, 10.0).is_err());
        assert!(AdaptiveClip::new(1.0, 0.5, 0.0).is_err());
        let ac = AdaptiveClip::new(1.0, 0.5, 10.0).unwrap();
        assert!(ac.clone().with_learning_rate(-0.1).is_err());
        assert!(ac.clone().with_count_noise_std(f64::NAN).is_err());
        let mut ac = ac;
        assert!(matches!(
            ac.update_from_norms(&[1.0, f64::NAN], 0),
            Err(PrivacyError::UpdateNorm { index: 1, .. })
        ));
        assert_eq!(ac.clip(), 1.0);
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut ac = AdaptiveClip::new(3.0, 0.5, 10.0).unwrap();
        ac.update(4, 1).unwrap();
        let json = serde_json::to_string(&ac).unwrap();
        let back: AdaptiveClip = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ac);
    }
}

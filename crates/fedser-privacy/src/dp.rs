//! DP-FedAvg (McMahan et al., ICLR 2018) as stages of fedser-fl's round, so strategies never
//! know about it. The privacy unit is the client: neighbouring federations differ by one
//! client's whole data.
//!
//! - [`DpClientStage`] (on the device): clips the update to the L2 norm `dp.clip` the server
//!   sends in the task's config map, and in local DP adds its own Gaussian noise
//!   (`dp.noise_std`) before the update leaves.
//! - [`DpServerStage`] (on the server): clips again (for clients that cannot be changed, and so
//!   the bound never rests on a client's word), weights every update alike, turns the rule's
//!   mean into the sum over the fixed denominator `q·N`, adds `N(0, (z·C/(q·N))²)` noise to it
//!   before the server optimiser, moves `C` by adaptive clipping (Andrew et al., NeurIPS 2021)
//!   if asked, and accounts for the round with the RDP accountant of the Poisson-subsampled
//!   Gaussian. It refuses a round that would pass a target ε, and refuses rules that read
//!   individual updates (median, trimmed mean, Krum: their sensitivity is not `C/(qN)`) and the
//!   pooled batch-norm variance (statistics are clipped and noised like every weight).

use std::collections::BTreeMap;

use fedser_core::ParamSet;
use fedser_fl::{
    ClientId, ConfigMap, ConfigValue, FitInstructions, ServerStage, Update, UpdateStage,
};
use serde::{Deserialize, Serialize};

use crate::accountant::RdpAccountant;
use crate::adaptive::{AdaptiveClip, update_noise_multiplier};
use crate::clip::{clip_l2, clip_values};
use crate::error::PrivacyError;
use crate::noise::{add_gaussian, add_gaussian_values};

/// Config-map keys the server sends to clients.
pub const CLIP_KEY: &str = "dp.clip";
pub const NOISE_KEY: &str = "dp.noise_std";
/// Set only when the run asked for reproducible noise (which voids the guarantee).
pub const REPRODUCIBLE_KEY: &str = "dp.reproducible_noise";

/// Where the noise is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpMode {
    /// The server adds noise to the aggregate (it still sees each clipped update).
    Central,
    /// Each client adds its own noise: the server never sees an update without it.
    Local,
    /// Each client adds a share of the central noise, and secure aggregation hides every
    /// update, so the sum carries the full noise without trusting the server with it. Each
    /// share is sized for the fewest contributors a round may have, so dropouts cannot leave
    /// the sum under-noised.
    Distributed,
}

impl std::str::FromStr for DpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "central" => Ok(Self::Central),
            "local" => Ok(Self::Local),
            "distributed" => Ok(Self::Distributed),
            other => Err(format!(
                "unknown DP mode {other:?} (central, local or distributed)"
            )),
        }
    }
}

/// Adaptive clipping settings (Andrew et al. 2021).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveSettings {
    /// Target quantile γ of the update norms.
    pub quantile: f64,
    /// Geometric learning rate η (the paper's 0.2).
    pub learning_rate: f64,
}

/// Everything a DP run is configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpSettings {
    pub mode: DpMode,
    /// Clip norm C (the initial one under adaptive clipping).
    pub clip: f64,
    /// Noise multiplier z (total, including the share adaptive clipping spends).
    pub noise_multiplier: f64,
    pub delta: f64,
    /// Probability q with which each client joins a round.
    pub sampling_rate: f64,
    /// Clients N in the federation.
    pub clients: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveSettings>,
    /// Stop before a round that would take ε past this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_epsilon: Option<f64>,
    /// False when the user forced fixed-size sampling: ε is then reported but does not hold.
    pub poisson: bool,
    /// The secret the server's noise is drawn from. It must never reach a client or a shared
    /// file: whoever knows it can regenerate the noise and subtract it. A run draws it from
    /// the operating system (see [`noise_secret`]); only experiments that must be reproduced
    /// bit for bit pass the run seed, and are told that this voids the guarantee.
    pub seed: u64,
    /// The noise is drawn from the run seed (set by the operator for exact reproduction; the
    /// guarantee then does not hold against anyone who knows the seed, clients included).
    #[serde(default)]
    pub reproducible_noise: bool,
    /// Distributed DP: the fewest contributors a round may aggregate (each client's noise
    /// share is `z·C / sqrt(min_contributors)`).
    #[serde(default)]
    pub min_contributors: usize,
}

/// A secret for the server's noise from the operating system's random source.
pub fn noise_secret() -> Result<u64, PrivacyError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| PrivacyError::Attack(format!("no OS randomness: {e}")))?;
    Ok(u64::from_le_bytes(b))
}

impl DpSettings {
    /// Checks every number before any training.
    pub fn validate(&self) -> Result<(), PrivacyError> {
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(PrivacyError::ClipNorm(self.clip));
        }
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier > 0.0) {
            return Err(PrivacyError::NoiseMultiplier(self.noise_multiplier));
        }
        if !(self.sampling_rate > 0.0 && self.sampling_rate <= 1.0) {
            return Err(PrivacyError::SamplingRate(self.sampling_rate));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(PrivacyError::Delta(self.delta));
        }
        if let Some(t) = self.target_epsilon
            && !(t.is_finite() && t > 0.0)
        {
            return Err(PrivacyError::TargetEpsilon(t));
        }
        if let Some(a) = &self.adaptive {
            if self.mode != DpMode::Central {
                return Err(PrivacyError::Attack(
                    "adaptive clipping needs each client's clipped bit, which local and \
                     distributed DP do not let leave the device: use a fixed --clip"
                        .into(),
                ));
            }
            self.adaptive_clip(a)?;
            update_noise_multiplier(self.noise_multiplier, self.count_noise_std())?;
        }
        Ok(())
    }

    /// Expected clients per round, `q·N` (the DP-FedAvg denominator).
    pub fn expected_clients(&self) -> f64 {
        (self.sampling_rate * self.clients as f64).max(f64::MIN_POSITIVE)
    }

    fn count_noise_std(&self) -> f64 {
        crate::adaptive::default_count_noise_std(self.expected_clients())
    }

    fn adaptive_clip(&self, a: &AdaptiveSettings) -> Result<AdaptiveClip, PrivacyError> {
        AdaptiveClip::new(self.clip, a.quantile, self.expected_clients())?
            .with_learning_rate(a.learning_rate)?
            .with_count_noise_std(self.count_noise_std())
    }

    /// The noise multiplier of the update itself: `z`, or under adaptive clipping
    /// `(z⁻² − (2σ_b)⁻²)^(−1/2)` so that the update and the clipped count together cost `z`.
    pub fn update_noise_multiplier(&self) -> Result<f64, PrivacyError> {
        match &self.adaptive {
            Some(_) => update_noise_multiplier(self.noise_multiplier, self.count_noise_std()),
            None => Ok(self.noise_multiplier),
        }
    }
}

/// The device's side: clip to the round's `dp.clip`, and in local DP add `dp.noise_std`.
pub struct DpClientStage;

impl UpdateStage for DpClientStage {
    fn name(&self) -> &str {
        "dp"
    }

    fn apply(
        &self,
        delta: &mut ParamSet,
        client: ClientId,
        ins: &FitInstructions,
    ) -> Result<BTreeMap<String, f64>, String> {
        let Some(clip) = ins.config.get(CLIP_KEY).and_then(ConfigValue::as_f64) else {
            return Ok(BTreeMap::new());
        };
        let report = clip_l2(delta, clip).map_err(|e| e.to_string())?;
        if let Some(std) = ins.config.get(NOISE_KEY).and_then(ConfigValue::as_f64) {
            // Local DP: the device's own noise, from its own randomness (the server derives
            // every seed it sends, so a seed from it would let it subtract the noise), unless
            // the run asked for reproducible noise.
            let reproducible = ins.config.get(REPRODUCIBLE_KEY) == Some(&ConfigValue::Bool(true));
            let seed = if reproducible {
                fedser_fl::seed::derive(ins.seed, ins.round, client as u64, "dp-local")
            } else {
                noise_secret().map_err(|e| e.to_string())?
            };
            add_gaussian(delta, std, seed).map_err(|e| e.to_string())?;
            // Nothing about the update before its noise leaves the device.
            return Ok(BTreeMap::new());
        }
        Ok(BTreeMap::from([
            ("norm".to_string(), report.norm),
            ("clipped".to_string(), f64::from(u8::from(report.clipped))),
        ]))
    }
}

/// What a DP round records (`"privacy"` in `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacyRecord {
    /// ε spent so far, at `delta`, and the Rényi order that gave it.
    pub epsilon: f64,
    pub delta: f64,
    pub alpha: f64,
    /// The clip norm this round used.
    pub clip: f64,
    /// Standard deviation of the noise added to the aggregate (central) or by each client
    /// (local), in parameter units.
    pub noise_std: f64,
    /// Fraction of this round's updates whose norm exceeded the clip (central DP: the trusted
    /// server's own log; `null` under local DP, where that bit never leaves a device).
    pub clipped_fraction: Option<f64>,
    /// Clients whose updates entered this round.
    pub sampled: usize,
    /// False when the sampling is not the Poisson sampling the accountant assumes.
    pub accounting_holds: bool,
    pub mode: DpMode,
}

/// The server's state that a restart must keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedState {
    accountant: RdpAccountant,
    clip: f64,
    adaptive: Option<AdaptiveClip>,
}

/// The server's side of DP-FedAvg (see the module documentation).
pub struct DpServerStage {
    settings: DpSettings,
    accountant: RdpAccountant,
    clip: f64,
    adaptive: Option<AdaptiveClip>,
    /// This round: updates seen, and how many were within the clip.
    seen: usize,
    unclipped: usize,
    /// This round's updates were hidden (secure aggregation): only their number is known.
    blind: bool,
    last: Option<PrivacyRecord>,
}

impl DpServerStage {
    pub fn new(settings: DpSettings) -> Result<Self, PrivacyError> {
        settings.validate()?;
        let adaptive = match &settings.adaptive {
            Some(a) => Some(settings.adaptive_clip(a)?),
            None => None,
        };
        Ok(Self {
            clip: settings.clip,
            settings,
            accountant: RdpAccountant::new(),
            adaptive,
            seen: 0,
            unclipped: 0,
            blind: false,
            last: None,
        })
    }

    /// ε so far at the run's δ.
    pub fn epsilon(&self) -> Result<f64, PrivacyError> {
        Ok(self.accountant.epsilon(self.settings.delta)?.0)
    }

    /// The accountant's view of one round: Poisson-subsampled in central DP; in local DP each
    /// client's own Gaussian release, counted as if the client took part in every round (the
    /// server knows who took part, so sampling amplifies nothing).
    fn account(&mut self) -> Result<(), String> {
        let q = match self.settings.mode {
            DpMode::Central | DpMode::Distributed => self.settings.sampling_rate,
            DpMode::Local => 1.0,
        };
        self.accountant
            .step(q, self.settings.noise_multiplier)
            .map_err(|e| e.to_string())
    }

    fn noise_std(&self) -> Result<f64, String> {
        let z = self
            .settings
            .update_noise_multiplier()
            .map_err(|e| e.to_string())?;
        Ok(match self.settings.mode {
            DpMode::Central | DpMode::Distributed => {
                z * self.clip / self.settings.expected_clients()
            }
            DpMode::Local => z * self.clip,
        })
    }

    /// Distributed DP: the standard deviation of each client's share of the noise.
    fn share_std(&self) -> Result<f64, String> {
        let z = self
            .settings
            .update_noise_multiplier()
            .map_err(|e| e.to_string())?;
        Ok(z * self.clip / (self.settings.min_contributors.max(1) as f64).sqrt())
    }

    fn finish_round(&mut self, round: u32, noise_std: f64) -> Result<(), String> {
        self.account()?;
        let (epsilon, alpha) = self
            .accountant
            .epsilon(self.settings.delta)
            .map_err(|e| e.to_string())?;
        let clip_used = self.clip;
        if let Some(a) = &mut self.adaptive {
            let seed = fedser_fl::seed::derive(self.settings.seed, round, 0, "dp-count-noise");
            let step = a.update(self.unclipped, seed).map_err(|e| e.to_string())?;
            self.clip = step.new_clip;
        }
        self.last = Some(PrivacyRecord {
            epsilon,
            delta: self.settings.delta,
            alpha,
            clip: clip_used,
            noise_std,
            clipped_fraction: match self.settings.mode {
                // Under local or distributed DP, or secure aggregation, the server never
                // learns which updates were clipped.
                _ if self.blind => None,
                DpMode::Local | DpMode::Distributed => None,
                DpMode::Central if self.seen == 0 => Some(0.0),
                DpMode::Central => Some((self.seen - self.unclipped) as f64 / self.seen as f64),
            },
            sampled: self.seen,
            accounting_holds: self.settings.poisson,
            mode: self.settings.mode,
        });
        self.seen = 0;
        self.unclipped = 0;
        self.blind = false;
        Ok(())
    }
}

impl ServerStage for DpServerStage {
    fn name(&self) -> &str {
        "privacy"
    }

    fn configure(&mut self, _round: u32, config: &mut ConfigMap) {
        config.insert(CLIP_KEY.into(), ConfigValue::Float(self.clip));
        let share = match self.settings.mode {
            DpMode::Central => None,
            DpMode::Local => self.noise_std().ok(),
            DpMode::Distributed => self.share_std().ok(),
        };
        if let Some(std) = share {
            config.insert(NOISE_KEY.into(), ConfigValue::Float(std));
            if self.settings.reproducible_noise {
                config.insert(REPRODUCIBLE_KEY.into(), ConfigValue::Bool(true));
            }
        }
    }

    fn admit(&self, round: u32) -> Result<(), String> {
        let Some(target) = self.settings.target_epsilon else {
            return Ok(());
        };
        let mut next = self.accountant.clone();
        let q = match self.settings.mode {
            DpMode::Central | DpMode::Distributed => self.settings.sampling_rate,
            DpMode::Local => 1.0,
        };
        next.step(q, self.settings.noise_multiplier)
            .map_err(|e| e.to_string())?;
        let (eps, _) = next
            .epsilon(self.settings.delta)
            .map_err(|e| e.to_string())?;
        if eps > target {
            return Err(format!(
                "round {round} would take epsilon to {eps:.4}, past the target {target} \
                 (delta {})",
                self.settings.delta
            ));
        }
        Ok(())
    }

    fn allows_individual_views(&self) -> bool {
        false
    }

    /// Central DP releases a noised aggregate every round, empty ones included: a round left
    /// out would tell that nobody (or too few) took part, which the accountant does not cover.
    fn aggregates_every_round(&self) -> bool {
        self.settings.mode == DpMode::Central
    }

    fn before(
        &mut self,
        _round: u32,
        updates: &[Update],
        flats: &mut [Vec<f32>],
        weights: &mut [f64],
    ) -> Result<(), String> {
        for (u, flat) in updates.iter().zip(flats.iter_mut()) {
            self.seen += 1;
            if self.settings.mode != DpMode::Central {
                // The update carries its own noise (norm far above C); clipping it again would
                // only shrink the signal. Its clipped bit stayed on the device.
                continue;
            }
            // A client that clipped says whether it had to; the server's own clip is then a
            // no-op. A client that did not clip is clipped here.
            let report = clip_values(flat, self.clip).map_err(|e| e.to_string())?;
            let clipped_on_client = u.stages.get("dp.clipped").copied().unwrap_or(0.0) > 0.5;
            if !(report.clipped || clipped_on_client) {
                self.unclipped += 1;
            }
        }
        // DP-FedAvg bounds each client's influence: uniform weights, not example counts.
        weights.iter_mut().for_each(|w| *w = 1.0);
        Ok(())
    }

    fn after(&mut self, round: u32, delta: &mut [f32], contributors: usize) -> Result<(), String> {
        if self.seen == 0 && contributors > 0 {
            // The updates never reached a `before` (secure aggregation): count them unseen.
            self.seen = contributors;
            self.blind = true;
        }
        let noise_std = match self.settings.mode {
            DpMode::Central => {
                // The rule's mean over `contributors` becomes the sum over the fixed q·N.
                let scale = contributors as f64 / self.settings.expected_clients();
                delta
                    .iter_mut()
                    .for_each(|v| *v = (f64::from(*v) * scale) as f32);
                let std = self.noise_std()?;
                let seed = fedser_fl::seed::derive(self.settings.seed, round, 0, "dp-noise");
                add_gaussian_values(delta, std, seed).map_err(|e| e.to_string())?;
                std
            }
            // Each client added its own noise; the mean of noisy updates is released as is.
            DpMode::Local => self.noise_std()?,
            DpMode::Distributed => {
                // The sum carries every contributor's share; released as the sum over q·N.
                let scale = contributors as f64 / self.settings.expected_clients();
                delta
                    .iter_mut()
                    .for_each(|v| *v = (f64::from(*v) * scale) as f32);
                let n = contributors.max(1) as f64;
                self.share_std()? * n.sqrt() / self.settings.expected_clients()
            }
        };
        self.finish_round(round, noise_std)
    }

    fn skipped(&mut self, round: u32) -> Result<(), String> {
        // A round with no (or too few) clients releases nothing new, but the accountant still
        // counts it: the sampling that produced it is part of the mechanism.
        let std = self.noise_std()?;
        self.finish_round(round, std)
    }

    fn record(&self) -> Option<serde_json::Value> {
        self.last
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
    }

    fn state(&self) -> Option<String> {
        serde_json::to_string(&SavedState {
            accountant: self.accountant.clone(),
            clip: self.clip,
            adaptive: self.adaptive.clone(),
        })
        .ok()
    }

    fn restore(&mut self, state: &str) -> Result<(), String> {
        let s: SavedState = serde_json::from_str(state).map_err(|e| e.to_string())?;
        if !(s.clip.is_finite() && s.clip > 0.0) {
            return Err(format!("saved clip norm {} is not positive", s.clip));
        }
        self.accountant = s.accountant;
        self.clip = s.clip;
        self.adaptive = s.adaptive;
        Ok(())
    }
}

//! The seam for multi-step protocols that hide individual updates from the server (secure
//! aggregation): the round hands its fit to a [`SecureSum`], which exchanges opaque messages
//! with the participants' [`SecureSession`]s over any executor, phase by phase, and finally
//! yields only the mean update. This crate knows no cryptography; `fedser-privacy`
//! implements the protocol, and the simulation and the network carry its messages.
//!
//! Also here: the sum-compatible form of batch-norm statistics. A pooled variance needs each
//! client's mean, which a sum hides; clients therefore send the change of the second moment
//! (`var + mean²`) in place of the change of the variance, and the server recovers the pooled
//! variance from sums alone ([`to_second_moments`], [`from_second_moments`]).

use std::collections::BTreeMap;

use fedser_core::ParamSet;

use crate::client::{ClientFailure, ClientId, Update};

/// Messages for participants, one each.
pub type Outbox = Vec<(ClientId, Vec<u8>)>;

/// What the protocol asks of the round next.
#[derive(Debug, Clone, PartialEq)]
pub enum SecureStep {
    /// Deliver these messages; each client answers.
    Exchange(Outbox),
    /// Deliver these messages with the fit task: each client trains, runs its update
    /// pipeline, and answers with the update encoded for the protocol.
    Fit(Outbox),
    /// Over: the mean update (flattened in the global model's layout) over `contributors`.
    Done {
        mean: Vec<f32>,
        contributors: Vec<ClientId>,
    },
}

/// A client's answer to one message.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureAnswer {
    pub bytes: Vec<u8>,
    /// In the fit step: the training's loss, seconds and stage figures (the update itself
    /// and its example count travel only inside `bytes`).
    pub fit: Option<FitReport>,
}

/// The public part of a client's fit under a secure protocol.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FitReport {
    pub loss: f64,
    pub seconds: f64,
    pub stages: BTreeMap<String, f64>,
}

impl FitReport {
    pub fn of(update: &Update) -> Self {
        Self {
            loss: update.loss,
            seconds: update.seconds,
            stages: update.stages.clone(),
        }
    }
}

/// The server's side of a secure protocol, one round at a time.
pub trait SecureSum: Send {
    /// Short name: the key of its record in the round metrics.
    fn name(&self) -> &str;
    /// Starts `round` with the sampled `participants`; returns the first step.
    fn start(
        &mut self,
        round: u32,
        participants: &[ClientId],
        global: &ParamSet,
    ) -> Result<SecureStep, String>;
    /// The answers to the last step's messages (a failure: the client is gone for the
    /// round); returns the next step. `Err`: the round cannot produce a sum (too few clients
    /// left), with the reason.
    fn advance(
        &mut self,
        answers: Vec<(ClientId, Result<SecureAnswer, ClientFailure>)>,
    ) -> Result<SecureStep, String>;
    /// What the protocol did in the round that just ended.
    fn record(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A participant's side: one session per client and round.
pub trait SecureClient: Send + Sync {
    fn session(&self, client: ClientId, round: u32) -> Box<dyn SecureSession>;
}

/// One client's protocol state in one round.
pub trait SecureSession: Send {
    /// Answers `msg`; in the fit step `fit` holds the client's update (after its pipeline)
    /// and the global model it started from.
    fn answer(&mut self, msg: &[u8], fit: Option<(&Update, &ParamSet)>) -> Result<Vec<u8>, String>;
}

/// Offsets `(variance, mean, len)` of each batch-norm pair (`<p>running_var` beside
/// `<p>running_mean` of the same length) in the flattened layout of `global`.
fn moment_pairs(global: &ParamSet) -> Vec<(usize, usize, usize)> {
    let mut offsets = BTreeMap::new();
    let mut at = 0;
    for (name, t) in global.iter() {
        offsets.insert(name.to_string(), (at, t.data.len()));
        at += t.data.len();
    }
    offsets
        .iter()
        .filter_map(|(name, &(var_at, n))| {
            let prefix = name.strip_suffix("running_var")?;
            let &(mean_at, m) = offsets.get(&format!("{prefix}running_mean"))?;
            (m == n).then_some((var_at, mean_at, n))
        })
        .collect()
}

/// Client side: replaces each variance change in `delta` by the change of the second
/// moment, `(var + mean²)_client − (var + mean²)_global`.
pub fn to_second_moments(global: &[f32], pairs_of: &ParamSet, delta: &mut [f32]) {
    for (var_at, mean_at, n) in moment_pairs(pairs_of) {
        for j in 0..n {
            let m_g = f64::from(global[mean_at + j]);
            let m_c = m_g + f64::from(delta[mean_at + j]);
            delta[var_at + j] = (f64::from(delta[var_at + j]) + m_c * m_c - m_g * m_g) as f32;
        }
    }
}

/// Server side: from the mean of second-moment changes back to the change of the pooled
/// variance, `mean(Δs) + m_g² − (m_g + mean(Δm))²` (the mean of the variances plus the
/// spread of the means, as with individual updates).
pub fn from_second_moments(global: &[f32], pairs_of: &ParamSet, mean: &mut [f32]) {
    for (var_at, mean_at, n) in moment_pairs(pairs_of) {
        for j in 0..n {
            let m_g = f64::from(global[mean_at + j]);
            let m_new = m_g + f64::from(mean[mean_at + j]);
            mean[var_at + j] = (f64::from(mean[var_at + j]) + m_g * m_g - m_new * m_new) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flat;
    use fedser_core::ParamTensor;

    #[test]
    fn pooled_variances_come_back_from_sums_of_second_moments() {
        let mut g = ParamSet::new();
        g.push(
            "bn.running_mean",
            ParamTensor::new(vec![1], vec![0.5]).unwrap(),
        )
        .unwrap();
        g.push(
            "bn.running_var",
            ParamTensor::new(vec![1], vec![2.0]).unwrap(),
        )
        .unwrap();
        g.push("w", ParamTensor::new(vec![1], vec![1.0]).unwrap())
            .unwrap();
        let global = flat::flatten(&g);
        // Two clients: means 1 and 3, variances 1 and 2, equal weights: pooled mean 2,
        // pooled variance 1.5 + 1 = 2.5.
        let clients = [[1.0f32, 1.0, 1.2], [3.0, 2.0, 0.8]];
        let mut sum = [0f32; 3];
        for c in clients {
            let mut d: Vec<f32> = c.iter().zip(&global).map(|(a, b)| a - b).collect();
            to_second_moments(&global, &g, &mut d);
            for (s, v) in sum.iter_mut().zip(d) {
                *s += v / 2.0;
            }
        }
        from_second_moments(&global, &g, &mut sum);
        let after: Vec<f32> = global.iter().zip(sum).map(|(a, b)| a + b).collect();
        assert!((after[0] - 2.0).abs() < 1e-6);
        assert!((after[1] - 2.5).abs() < 1e-6, "{after:?}");
        assert!(
            (after[2] - 1.0).abs() < 1e-6,
            "weights are averaged as usual"
        );
    }
}

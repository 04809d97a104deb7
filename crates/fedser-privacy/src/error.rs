//! `PrivacyError`: every way an input to this crate can be rejected, each naming the bad value.

/// Rejected inputs and numerical failures of the privacy tools.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrivacyError {
    /// A noise multiplier (noise std ÷ L2 sensitivity) that is not finite and > 0.
    #[error("noise multiplier must be finite and > 0, got {0}")]
    NoiseMultiplier(f64),
    /// A sampling rate outside (0, 1].
    #[error("sampling rate q must be in (0, 1], got {0}")]
    SamplingRate(f64),
    /// A δ outside (0, 1).
    #[error("delta must be in (0, 1), got {0}")]
    Delta(f64),
    /// A target ε that is not finite and > 0.
    #[error("target epsilon must be finite and > 0, got {0}")]
    TargetEpsilon(f64),
    /// An RDP order that is not finite and > 1.
    #[error("RDP order alpha must be finite and > 1, got {0}")]
    Order(f64),
    /// An empty list of RDP orders.
    #[error("no RDP orders given")]
    NoOrders,
    /// RDP values and orders of different lengths.
    #[error("{orders} RDP orders but {values} RDP values")]
    LengthMismatch { orders: usize, values: usize },
    /// Zero steps where a number of steps ≥ 1 is needed (searching a noise multiplier).
    #[error("steps must be at least 1 to search a noise multiplier (0 steps spend no privacy)")]
    ZeroSteps,
    /// Even the largest allowed noise multiplier spends more than the target ε.
    #[error(
        "target epsilon {target} is out of reach: even noise multiplier {max_z} gives epsilon {eps}"
    )]
    TargetUnreachable { target: f64, max_z: f64, eps: f64 },
    /// A log-space subtraction in the fractional-order series went negative (cannot happen for
    /// valid inputs in exact arithmetic; reported rather than hidden).
    #[error(
        "numerical failure computing RDP at order {alpha} (q = {q}, z = {z}): partial sum went negative"
    )]
    Numerical { q: f64, z: f64, alpha: f64 },
    /// A clipping norm that is not finite and > 0.
    #[error("clip norm must be finite and > 0, got {0}")]
    ClipNorm(f64),
    /// An update containing NaN or an infinity.
    #[error("update tensor {tensor:?}: value {index} is not finite ({value})")]
    NonFiniteUpdate {
        tensor: String,
        index: usize,
        value: f32,
    },
    /// An update norm (for adaptive clipping) that is NaN, infinite or negative.
    #[error("update norm {index} must be finite and >= 0, got {value}")]
    UpdateNorm { index: usize, value: f64 },
    /// A noise standard deviation that is not finite and >= 0.
    #[error("noise standard deviation must be finite and >= 0, got {0}")]
    NoiseStd(f64),
    /// A target quantile outside (0, 1).
    #[error("target quantile must be in (0, 1), got {0}")]
    TargetQuantile(f64),
    /// A learning rate that is not finite and >= 0.
    #[error("learning rate must be finite and >= 0, got {0}")]
    LearningRate(f64),
    /// An expected number of clients per round that is not finite and > 0.
    #[error("expected clients per round must be finite and > 0, got {0}")]
    ExpectedClients(f64),
    /// The count noise of adaptive clipping uses the whole budget (2·σ_b ≤ z).
    #[error(
        "no privacy budget left for the update: total noise multiplier z = {z} needs \
         2 * count_noise_std > z, but 2 * {count_noise_std} = {}; raise the count noise std \
         (default expected_clients / 20) or lower z",
        2.0 * count_noise_std
    )]
    NoBudgetLeft { z: f64, count_noise_std: f64 },
    #[error("attack: {0}")]
    Attack(String),
}

//! Differential privacy for fedser: RDP accounting of the Poisson-subsampled Gaussian
//! mechanism, L2 clipping, Gaussian noise, adaptive clipping, and the DP-FedAvg stages that
//! put them into fedser-fl's round.
//!
//! A client-level DP round (DP-FedAvg) uses the modules in this order:
//! fedser-fl's Poisson sampling picks the cohort with rate `q`; each update is clipped with
//! [`clip::clip_l2`] to `C`; the server adds [`noise::add_gaussian`] with std `z·C` to the sum;
//! [`adaptive::AdaptiveClip`] optionally moves `C`; [`accountant::RdpAccountant`] records
//! `(q, z)` and reports ε for a δ. Randomness always comes from a caller-supplied, already
//! derived `u64` seed (see `fedser_fl::seed::derive`), so every round is reproducible.
//!
//! [`secagg`] is secure aggregation (SecAgg+): the server learns only the sum of a round's
//! updates, and the round survives clients that drop out at any phase.

pub mod accountant;
pub mod adaptive;
pub mod attack;
pub mod clip;
pub mod dp;
pub mod error;
pub mod noise;
pub mod secagg;

pub use accountant::{
    DEFAULT_ORDERS, PrivacyEvent, RdpAccountant, epsilon, noise_multiplier_for, rdp,
};
pub use adaptive::{AdaptiveClip, AdaptiveStep, update_noise_multiplier};
pub use clip::{ClipReport, clip_l2, l2_norm};
pub use dp::{DpClientStage, DpMode, DpServerStage, DpSettings, PrivacyRecord};
pub use error::PrivacyError;
pub use noise::{add_gaussian, add_gaussian_values};
pub use secagg::{SecAggParticipant, SecAggRecord, SecAggSettings, SecAggStage};

//! Federated learning, framework-free: the round logic that simulation and network deployment
//! share. Strategies see only [`fedser_core::ParamSet`]s and example counts (Flower's design);
//! clients are reached through the [`Client`] trait, so this crate never knows the
//! deep-learning framework.
//!
//! - [`client`]: the client trait, fit instructions, and the client-side update pipeline
//!   (the update is the difference to the global model; stages run on it before it leaves).
//! - [`aggregate`]: aggregation rules over updates — weighted mean, coordinate-wise median,
//!   trimmed mean, Krum / Multi-Krum.
//! - [`pipeline`]: the server-side stages around the rule (clip before, noise after, ...).
//! - [`server_opt`]: server optimisers over the aggregated update — SGD (FedAvg), Adam, Yogi,
//!   Adagrad (Reddi et al., "Adaptive Federated Optimization", 2021).
//! - [`strategy`]: the `Strategy` trait (configure a round, aggregate fits, aggregate
//!   evaluations) and the standard strategies (FedAvg, FedProx, FedAdam, ...).
//! - [`server`]: one round: sample, send, validate (NaN/shape rejection), aggregate, evaluate,
//!   record.
//! - [`secure`]: the seam for protocols that hide individual updates (secure aggregation).
//! - [`driver`]: the round loop over a run directory (resume, record, checkpoint).
//! - [`run_dir`]: the run directory's lock, fingerprint, metrics and checkpoints.
//! - [`simulation`]: an executor running many clients in-process, concurrently, loading each
//!   client's data only while it trains, with simulated dropouts and stragglers.

pub mod aggregate;
pub mod client;
pub mod driver;
pub mod flat;
pub mod pipeline;
pub mod run_dir;
pub mod secure;
pub mod seed;
pub mod server;
pub mod server_opt;
pub mod simulation;
pub mod strategy;

pub use aggregate::Rule;
pub use client::{
    Client, ClientFailure, ClientId, ClientPipeline, ConfigMap, ConfigValue, EvalOutcome,
    FitInstructions, FitOutcome, Update, UpdateStage,
};
pub use pipeline::{ServerPipeline, ServerStage};
pub use server::{EvalSummary, Executor, RoundRecord, Server};
pub use server_opt::ServerOptimizer;
pub use simulation::{ClientFactory, Simulation, SimulationConfig};
pub use strategy::{FedStrategy, Sampling, Strategy, StrategySpec};

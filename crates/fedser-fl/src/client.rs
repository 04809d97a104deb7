//! The client side: what a client is asked to do, what it returns, and the update pipeline
//! that runs on its update before the update leaves the device.

use std::collections::BTreeMap;
use std::time::Instant;

use fedser_core::{ConfusionMatrix, ParamSet};
use serde::{Deserialize, Serialize};

use crate::flat;

/// A client's index in the federation (0-based, stable for the whole run).
pub type ClientId = usize;

/// A value in a round's open configuration (Flower's ConfigRecord): what stages such as
/// clipping, noise or compression need to know travels here, so a new stage needs no new
/// field in the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConfigValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl ConfigValue {
    /// The value as a number (integers widen), if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ConfigValue::Int(i) => Some(*i as f64),
            ConfigValue::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// Named settings sent with a task.
pub type ConfigMap = BTreeMap<String, ConfigValue>;

/// What the server asks a client to do in one round of training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitInstructions {
    pub round: u32,
    /// Passes over the client's own training data.
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// FedProx: weight of the proximal term `mu/2 * ||w - w_global||^2` (0: plain local SGD).
    pub proximal_mu: f64,
    /// Seed for the client's shuffling and dropout this round.
    pub seed: u64,
    /// Settings for the client's update stages (e.g. `dp.clip`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: ConfigMap,
}

/// What a client's local training produced.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    /// The locally trained parameters (same layout as the global model).
    pub params: ParamSet,
    /// Training examples used (the weight of this client in FedAvg).
    pub examples: usize,
    /// Mean training loss of the last local epoch.
    pub loss: f64,
}

/// A client's evaluation of the global model on its own validation data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOutcome {
    pub examples: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    pub confusion: ConfusionMatrix,
}

/// A participant: trains and evaluates on its own data, seeing only the parameters it is sent.
pub trait Client: Send {
    /// Local training starting from `global`.
    fn fit(&mut self, global: &ParamSet, ins: &FitInstructions) -> Result<FitOutcome, String>;
    /// Evaluation of `global` on the client's validation data (`Ok(None)`: it has none).
    fn evaluate(&mut self, global: &ParamSet) -> Result<Option<EvalOutcome>, String>;
}

/// Why no usable result came back from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "reason", rename_all = "lowercase")]
pub enum ClientFailure {
    /// The client went away (simulated: dropout probability).
    Dropped,
    /// The result came after the round closed (simulated: straggler probability).
    Straggler,
    /// The client reported an error.
    Error(String),
    /// The server refused the update (NaN/Inf values, wrong shapes, no examples).
    Rejected(String),
}

impl std::fmt::Display for ClientFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientFailure::Dropped => write!(f, "dropped out"),
            ClientFailure::Straggler => write!(f, "straggler (result past the round deadline)"),
            ClientFailure::Error(e) => write!(f, "client error: {e}"),
            ClientFailure::Rejected(e) => write!(f, "update rejected: {e}"),
        }
    }
}

/// What leaves a client after training: the difference to the global model it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub client: ClientId,
    pub delta: ParamSet,
    pub examples: usize,
    pub loss: f64,
    /// Seconds the client spent training.
    pub seconds: f64,
    /// What each pipeline stage reported (e.g. clip fraction, compressed bytes).
    pub stages: BTreeMap<String, f64>,
}

/// A transformation of the update on the client (clipping, compression, masking, ...).
pub trait UpdateStage: Send + Sync {
    /// Short name used as a prefix in round metrics.
    fn name(&self) -> &str;
    /// Transforms `delta` in place, with the round's instructions (their config map carries
    /// the stage's settings); returns figures worth recording.
    fn apply(
        &self,
        delta: &mut ParamSet,
        client: ClientId,
        ins: &FitInstructions,
    ) -> Result<BTreeMap<String, f64>, String>;
}

/// The client-side pipeline: fit, take the difference to the global model, run the stages.
#[derive(Default)]
pub struct ClientPipeline {
    stages: Vec<Box<dyn UpdateStage>>,
}

impl ClientPipeline {
    /// A pipeline with no stages (the update is the plain difference).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a stage.
    pub fn with_stage(mut self, stage: Box<dyn UpdateStage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Runs `client`'s training and turns the result into an update.
    pub fn fit(
        &self,
        client: &mut dyn Client,
        id: ClientId,
        global: &ParamSet,
        ins: &FitInstructions,
    ) -> Result<Update, ClientFailure> {
        let started = Instant::now();
        let out = client.fit(global, ins).map_err(ClientFailure::Error)?;
        let seconds = started.elapsed().as_secs_f64();
        let mut delta = flat::difference(&out.params, global)
            .map_err(|e| ClientFailure::Rejected(format!("wrong layout: {e}")))?;
        let mut stages = BTreeMap::new();
        for stage in &self.stages {
            let figures = stage
                .apply(&mut delta, id, ins)
                .map_err(|e| ClientFailure::Error(format!("{}: {e}", stage.name())))?;
            for (k, v) in figures {
                stages.insert(format!("{}.{k}", stage.name()), v);
            }
        }
        Ok(Update {
            client: id,
            delta,
            examples: out.examples,
            loss: out.loss,
            seconds,
            stages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedser_core::ParamTensor;

    #[test]
    fn instructions_and_updates_survive_serialisation_and_bad_tensors_are_refused() {
        let mut config = ConfigMap::new();
        config.insert("dp.clip".into(), ConfigValue::Float(0.5));
        config.insert("dp.mode".into(), ConfigValue::Text("central".into()));
        config.insert("secagg.neighbours".into(), ConfigValue::Int(4));
        let ins = FitInstructions {
            round: 3,
            epochs: 2,
            batch_size: 8,
            learning_rate: 1e-3,
            proximal_mu: 0.0,
            seed: 42,
            config,
        };
        let back: FitInstructions =
            serde_json::from_str(&serde_json::to_string(&ins).unwrap()).unwrap();
        assert_eq!(back, ins);
        assert_eq!(back.config["dp.clip"].as_f64(), Some(0.5));
        assert_eq!(back.config["secagg.neighbours"].as_f64(), Some(4.0));

        let mut delta = ParamSet::new();
        delta
            .push("w", ParamTensor::new(vec![2], vec![1.0, -2.0]).unwrap())
            .unwrap();
        let update = Update {
            client: 7,
            delta,
            examples: 12,
            loss: 0.25,
            seconds: 1.5,
            stages: BTreeMap::from([("clip.norm".to_string(), 2.2)]),
        };
        let text = serde_json::to_string(&update).unwrap();
        assert_eq!(serde_json::from_str::<Update>(&text).unwrap(), update);
        // Data that does not fill its shape, and a repeated name, are refused on reading.
        let short = text.replace("[1.0,-2.0]", "[1.0]");
        let err = serde_json::from_str::<Update>(&short)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tensor w"), "{err}");
        let twice = text.replace(
            "[{\"name\":\"w\",\"shape\":[2],\"data\":[1.0,-2.0]}]",
            "[{\"name\":\"w\",\"shape\":[1],\"data\":[1.0]},{\"name\":\"w\",\"shape\":[1],\"data\":[2.0]}]",
        );
        assert_ne!(twice, text);
        assert!(serde_json::from_str::<Update>(&twice).is_err());
    }
}

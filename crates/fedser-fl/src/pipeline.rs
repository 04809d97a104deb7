//! The server-side aggregation pipeline: stages that run around a strategy's aggregation rule
//! (decode / unmask -> rule -> noise -> server optimiser), so differential privacy, secure
//! aggregation and compression slot into the round without the strategies knowing them. A
//! stage can add settings to every client's task, refuse a round before it starts (a spent
//! privacy budget), transform the individual updates before the rule and the aggregate after
//! it, report what it did for the round's metrics, and keep state across a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fedser_core::{ParamSet, ParamTensor};

use crate::client::{ConfigMap, Update};

/// One stage of the server-side pipeline.
pub trait ServerStage: Send {
    /// Short name: the key of its record in the round metrics and of its checkpoint state.
    fn name(&self) -> &str;
    /// Settings sent to every client with its task this round.
    fn configure(&mut self, _round: u32, _config: &mut ConfigMap) {}
    /// Whether `round` may run at all; `Err(reason)` ends the run before it (said and recorded).
    fn admit(&self, _round: u32) -> Result<(), String> {
        Ok(())
    }
    /// Whether rules may read individual updates (robust rules, pooled batch-norm variances).
    /// A stage that bounds each client's influence, or hides updates, says no.
    fn allows_individual_views(&self) -> bool {
        true
    }
    /// Whether every round must release an aggregate, even one with no or few updates (DP
    /// with Poisson sampling: skipping a round would reveal that nobody took part).
    fn aggregates_every_round(&self) -> bool {
        false
    }
    /// Runs on the flattened individual updates before the rule; may change them (clipping)
    /// and their weights (uniform for DP-FedAvg).
    fn before(
        &mut self,
        _round: u32,
        _updates: &[Update],
        _flats: &mut [Vec<f32>],
        _weights: &mut [f64],
    ) -> Result<(), String> {
        Ok(())
    }
    /// Runs on the rule's aggregate (a mean over `contributors` updates) before the server
    /// optimiser applies it.
    fn after(&mut self, round: u32, delta: &mut [f32], contributors: usize) -> Result<(), String>;
    /// Called instead of `before`/`after` for a round that aggregated nothing.
    fn skipped(&mut self, _round: u32) -> Result<(), String> {
        Ok(())
    }
    /// What the stage did in the round that just ended (recorded under its name).
    fn record(&self) -> Option<serde_json::Value> {
        None
    }
    /// State that must survive a restart, as text.
    fn state(&self) -> Option<String> {
        None
    }
    fn restore(&mut self, _state: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The stages of a server, in order.
#[derive(Default)]
pub struct ServerPipeline {
    stages: Vec<Box<dyn ServerStage>>,
}

impl ServerPipeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a stage.
    pub fn with_stage(mut self, stage: Box<dyn ServerStage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// This pipeline followed by the stages of `next`.
    pub fn then(mut self, next: ServerPipeline) -> Self {
        self.stages.extend(next.stages);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The settings every stage adds to this round's tasks.
    pub fn configure(&mut self, round: u32) -> ConfigMap {
        let mut config = ConfigMap::new();
        for s in &mut self.stages {
            s.configure(round, &mut config);
        }
        config
    }

    pub fn admit(&self, round: u32) -> Result<(), String> {
        self.stages.iter().try_for_each(|s| s.admit(round))
    }

    pub fn allows_individual_views(&self) -> bool {
        self.stages.iter().all(|s| s.allows_individual_views())
    }

    pub fn aggregates_every_round(&self) -> bool {
        self.stages.iter().any(|s| s.aggregates_every_round())
    }

    pub fn before(
        &mut self,
        round: u32,
        updates: &[Update],
        flats: &mut [Vec<f32>],
        weights: &mut [f64],
    ) -> Result<(), String> {
        for s in &mut self.stages {
            s.before(round, updates, flats, weights)
                .map_err(|e| format!("{}: {e}", s.name()))?;
        }
        Ok(())
    }

    pub fn after(
        &mut self,
        round: u32,
        delta: &mut [f32],
        contributors: usize,
    ) -> Result<(), String> {
        for s in &mut self.stages {
            s.after(round, delta, contributors)
                .map_err(|e| format!("{}: {e}", s.name()))?;
        }
        Ok(())
    }

    pub fn skipped(&mut self, round: u32) -> Result<(), String> {
        for s in &mut self.stages {
            s.skipped(round).map_err(|e| format!("{}: {e}", s.name()))?;
        }
        Ok(())
    }

    /// Each stage's record of the last round, by stage name.
    pub fn records(&self) -> BTreeMap<String, serde_json::Value> {
        self.stages
            .iter()
            .filter_map(|s| Some((s.name().to_string(), s.record()?)))
            .collect()
    }

    /// Each stage's state, keyed `stage.NAME`.
    pub fn state(&self) -> BTreeMap<String, String> {
        self.stages
            .iter()
            .filter_map(|s| Some((format!("stage.{}", s.name()), s.state()?)))
            .collect()
    }

    /// Restores the stages whose state `saved` holds (keys as [`Self::state`] writes them).
    pub fn restore(&mut self, saved: &BTreeMap<String, String>) -> Result<(), String> {
        for s in &mut self.stages {
            if let Some(text) = saved.get(&format!("stage.{}", s.name())) {
                s.restore(text)
                    .map_err(|e| format!("{} state: {e}", s.name()))?;
            }
        }
        Ok(())
    }
}

/// Keeps what the server saw: every accepted update of every round, as it arrived, in
/// `DIR/round-NNNN.safetensors` (one flat tensor `client-NNNNN` per update; the example counts
/// as metadata). This is the attacker's view that `fedser attack` measures; it must come
/// first in the pipeline, before any stage changes the updates. Off unless asked for.
pub struct RecordUpdates {
    pub dir: PathBuf,
}

/// Metadata key of the example counts in a recorded round.
pub const RECORDED_EXAMPLES: &str = "fedser.examples";

impl RecordUpdates {
    /// The file of `round`'s updates.
    pub fn round_file(dir: &std::path::Path, round: u32) -> PathBuf {
        dir.join(format!("round-{round:04}.safetensors"))
    }
}

impl ServerStage for RecordUpdates {
    fn name(&self) -> &str {
        "attacker_view"
    }

    fn before(
        &mut self,
        round: u32,
        updates: &[Update],
        flats: &mut [Vec<f32>],
        _weights: &mut [f64],
    ) -> Result<(), String> {
        let mut set = ParamSet::new();
        let mut examples = BTreeMap::new();
        for (u, flat) in updates.iter().zip(flats.iter()) {
            let t = ParamTensor::new(vec![flat.len()], flat.clone()).map_err(|e| e.to_string())?;
            set.push(format!("client-{:05}", u.client), t)
                .map_err(|e| e.to_string())?;
            examples.insert(u.client, u.examples);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let meta = BTreeMap::from([(
            RECORDED_EXAMPLES.to_string(),
            serde_json::to_string(&examples).unwrap_or_default(),
        )]);
        set.save(&Self::round_file(&self.dir, round), &meta)
            .map_err(|e| e.to_string())
    }

    fn after(
        &mut self,
        _round: u32,
        _delta: &mut [f32],
        _contributors: usize,
    ) -> Result<(), String> {
        Ok(())
    }
}

//! The round: sample clients, send them the global model, check what comes back (updates with
//! NaN/Inf values, wrong shapes or no examples are rejected with a logged reason, never
//! averaged in), aggregate when enough results arrived, evaluate, and record it all.
//!
//! How instructions reach clients is the [`Executor`]'s business: the in-process simulation
//! and the network deployment implement it, and share this round logic.

use std::collections::BTreeMap;
use std::time::Instant;

use fedser_core::ParamSet;
use serde::{Deserialize, Serialize};

use crate::client::{ClientFailure, ClientId, EvalOutcome, FitInstructions, Update};
use crate::pipeline::ServerPipeline;
use crate::strategy::Strategy;

pub use crate::strategy::EvalSummary;

/// Delivers instructions to clients and collects their answers.
pub trait Executor {
    /// Runs local training on each listed client; one answer per task, in task order.
    fn fit(
        &mut self,
        global: &ParamSet,
        tasks: &[(ClientId, FitInstructions)],
    ) -> Vec<(ClientId, Result<Update, ClientFailure>)>;

    /// The clients that can take part in `round`, if the executor knows better than the
    /// server's list (a network server: the clients connected now). `None`: all of them.
    fn available(&mut self, _round: u32) -> Option<Vec<ClientId>> {
        None
    }

    /// Evaluates `global` on each listed client's validation data (`Ok(None)`: it has none).
    fn evaluate(
        &mut self,
        round: u32,
        global: &ParamSet,
        clients: &[ClientId],
    ) -> Vec<(ClientId, Result<Option<EvalOutcome>, ClientFailure>)>;
}

/// One client's part in a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client: ClientId,
    /// Training examples (0 when no result came).
    pub examples: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<ClientFailure>,
    /// The client's evaluation of the new global model on its validation data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_examples: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_ua: Option<f64>,
}

impl ClientRecord {
    /// A client that has not answered yet.
    fn new(client: ClientId) -> Self {
        Self {
            client,
            examples: 0,
            train_loss: None,
            seconds: None,
            failure: None,
            val_examples: None,
            val_accuracy: None,
            val_ua: None,
        }
    }
}

/// Everything that happened in one round (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: u32,
    /// Clients asked to train.
    pub selected: usize,
    /// Updates accepted into the aggregate.
    pub accepted: usize,
    pub dropped: usize,
    pub stragglers: usize,
    pub errors: usize,
    pub rejected: usize,
    /// False when too few results arrived (or the rule refused them): the global model was
    /// left unchanged.
    pub aggregated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Training loss of the accepted clients, weighted by examples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    /// The new global model on held-out speakers (server side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub central: Option<EvalSummary>,
    /// The new global model on the clients' own validation data, pooled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federated: Option<EvalSummary>,
    pub clients: Vec<ClientRecord>,
    /// Parameter bytes sent to clients (fit and evaluate) and received from them.
    pub bytes_down: u64,
    pub bytes_up: u64,
    /// Means over accepted updates of what the client pipeline stages reported.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub stages: BTreeMap<String, f64>,
    /// What the server pipeline's stages did, by stage name (e.g. `privacy`).
    #[serde(flatten)]
    pub stage_records: BTreeMap<String, serde_json::Value>,
    /// Updates Krum chose (client ids).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_by_rule: Option<Vec<ClientId>>,
    pub fit_seconds: f64,
    pub eval_seconds: f64,
    pub seconds: f64,
}

/// A central evaluation of a global model (e.g. on held-out speakers).
pub type CentralEval<'a> = dyn FnMut(&ParamSet) -> Result<EvalOutcome, String> + 'a;

/// The server: the global model, the strategy and the clients it can reach.
pub struct Server<S: Strategy> {
    pub strategy: S,
    pub global: ParamSet,
    pub clients: Vec<ClientId>,
    /// A round closes with an aggregate only if at least this many updates were accepted.
    pub min_fit_results: usize,
    /// Stages around the aggregation rule (clipping, noise, unmasking ...).
    pub pipeline: ServerPipeline,
}

/// Why an update is refused.
pub fn check_update(update: &Update, global: &ParamSet) -> Result<(), String> {
    if update.examples == 0 {
        return Err("claims no training examples".into());
    }
    global
        .check_same_layout(&update.delta)
        .map_err(|e| format!("wrong shape: {e}"))?;
    // The fields are public: a stage or a decoder could leave data that does not fill its shape.
    if let Some((name, t)) = update
        .delta
        .iter()
        .find(|(_, t)| t.data.len() != t.shape.iter().product::<usize>())
    {
        return Err(format!(
            "wrong shape: tensor {name} holds {} values for shape {:?}",
            t.data.len(),
            t.shape
        ));
    }
    update
        .delta
        .check_finite()
        .map_err(|e| format!("not finite: {e}"))?;
    if !update.loss.is_finite() {
        return Err(format!("training loss is {}", update.loss));
    }
    Ok(())
}

impl<S: Strategy> Server<S> {
    pub fn new(
        strategy: S,
        global: ParamSet,
        clients: Vec<ClientId>,
        min_fit_results: usize,
    ) -> Self {
        Self {
            strategy,
            global,
            clients,
            min_fit_results: min_fit_results.max(1),
            pipeline: ServerPipeline::new(),
        }
    }

    /// The server with these stages around its aggregation rule.
    pub fn with_pipeline(mut self, pipeline: ServerPipeline) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Runs round `round` (1-based) through `executor`; `central` evaluates the new global
    /// model on the server's own held-out data, if it has any.
    pub fn run_round(
        &mut self,
        round: u32,
        executor: &mut dyn Executor,
        central: Option<&mut CentralEval<'_>>,
    ) -> Result<RoundRecord, String> {
        let started = Instant::now();
        let available = executor.available(round);
        let clients = available.as_deref().unwrap_or(&self.clients);
        let mut tasks = self.strategy.configure_fit(round, clients);
        let config = self.pipeline.configure(round);
        for (_, ins) in &mut tasks {
            ins.config.extend(config.clone());
        }
        let model_bytes = self.global.num_bytes() as u64;
        let mut bytes_down = model_bytes * tasks.len() as u64;
        let mut bytes_up = 0u64;
        let answers = executor.fit(&self.global, &tasks);
        let fit_seconds = started.elapsed().as_secs_f64();

        let mut records: BTreeMap<ClientId, ClientRecord> = BTreeMap::new();
        let mut accepted: Vec<Update> = Vec::new();
        let (mut dropped, mut stragglers, mut errors, mut rejected) = (0, 0, 0, 0);
        for (client, answer) in answers {
            let mut rec = ClientRecord::new(client);
            let answer = answer.and_then(|u| {
                bytes_up += u.delta.num_bytes() as u64;
                check_update(&u, &self.global).map_err(ClientFailure::Rejected)?;
                Ok(u)
            });
            match answer {
                Ok(u) => {
                    rec.examples = u.examples;
                    rec.train_loss = Some(u.loss);
                    rec.seconds = Some(u.seconds);
                    accepted.push(u);
                }
                Err(f) => {
                    match &f {
                        ClientFailure::Dropped => dropped += 1,
                        ClientFailure::Straggler => stragglers += 1,
                        ClientFailure::Error(_) => errors += 1,
                        ClientFailure::Rejected(_) => rejected += 1,
                    }
                    if matches!(f, ClientFailure::Error(_) | ClientFailure::Rejected(_)) {
                        tracing::warn!("round {round}, client {client}: {f}");
                    }
                    rec.failure = Some(f);
                }
            }
            records.insert(client, rec);
        }

        let mut note = None;
        let mut selected_by_rule = None;
        // The round's model and server state are committed only once the round has finished
        // without error, so a failed round can be retried without applying its update twice.
        let saved_state = self.strategy.state();
        let mut candidate: Option<ParamSet> = None;
        let every_round = self.pipeline.aggregates_every_round();
        let aggregated = if accepted.len() < self.min_fit_results && !every_round {
            let msg = format!(
                "only {} of {} results (minimum {}): global model unchanged",
                accepted.len(),
                tasks.len(),
                self.min_fit_results
            );
            tracing::warn!("round {round}: {msg}");
            note = Some(msg);
            false
        } else {
            match self
                .strategy
                .aggregate_fit(round, &self.global, &accepted, &mut self.pipeline)
            {
                Ok((next, report)) => {
                    candidate = Some(next);
                    selected_by_rule = report
                        .selected
                        .map(|s| s.into_iter().map(|i| accepted[i].client).collect());
                    true
                }
                Err(e) => {
                    tracing::warn!("round {round}: aggregation refused: {e}");
                    note = Some(format!("aggregation refused: {e}; global model unchanged"));
                    false
                }
            }
        };
        if !aggregated {
            self.pipeline.skipped(round)?;
        }
        // In f64: example counts are claims and must not overflow.
        let total_examples: f64 = accepted.iter().map(|u| u.examples as f64).sum();
        let train_loss = (total_examples > 0.0).then(|| {
            accepted
                .iter()
                .map(|u| u.loss * u.examples as f64)
                .sum::<f64>()
                / total_examples
        });
        let mut stages: BTreeMap<String, f64> = BTreeMap::new();
        for u in &accepted {
            for (k, v) in &u.stages {
                *stages.entry(k.clone()).or_default() += v / accepted.len() as f64;
            }
        }

        let eval_started = Instant::now();
        let eval_clients = self.strategy.configure_evaluate(round, clients);
        bytes_down += model_bytes * eval_clients.len() as u64;
        let mut evals = Vec::new();
        let new_global = candidate.as_ref().unwrap_or(&self.global);
        for (client, answer) in executor.evaluate(round, new_global, &eval_clients) {
            let rec = records
                .entry(client)
                .or_insert_with(|| ClientRecord::new(client));
            match answer {
                Ok(Some(e)) => {
                    rec.val_examples = Some(e.examples);
                    rec.val_accuracy = Some(e.confusion.accuracy());
                    rec.val_ua = Some(e.confusion.unweighted_accuracy());
                    evals.push((client, e));
                }
                Ok(None) => {}
                Err(f) => tracing::debug!("round {round}, client {client} evaluation: {f}"),
            }
        }
        let federated = self.strategy.aggregate_evaluate(round, &evals);
        let central = match central {
            Some(f) => match f(new_global) {
                Ok(outcome) => EvalSummary::pool([&outcome]),
                Err(e) => {
                    self.strategy.restore(saved_state);
                    return Err(e);
                }
            },
            None => None,
        };
        let eval_seconds = eval_started.elapsed().as_secs_f64();
        if let Some(next) = candidate {
            self.global = next;
        }

        Ok(RoundRecord {
            round,
            selected: tasks.len(),
            accepted: accepted.len(),
            dropped,
            stragglers,
            errors,
            rejected,
            aggregated,
            note,
            train_loss,
            central,
            federated,
            clients: records.into_values().collect(),
            bytes_down,
            bytes_up,
            stages,
            stage_records: self.pipeline.records(),
            selected_by_rule,
            fit_seconds,
            eval_seconds,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedser_core::ParamTensor;

    fn set(shape: Vec<usize>, data: Vec<f32>) -> ParamSet {
        let mut p = ParamSet::new();
        p.push("w", ParamTensor::new(shape, data).unwrap()).unwrap();
        p
    }

    fn update(delta: ParamSet, examples: usize) -> Update {
        Update {
            client: 0,
            delta,
            examples,
            loss: 0.1,
            seconds: 0.0,
            stages: Default::default(),
        }
    }

    #[test]
    fn updates_are_checked_for_examples_shapes_lengths_and_finiteness() {
        let global = set(vec![2], vec![0.0, 0.0]);
        assert!(check_update(&update(set(vec![2], vec![1.0, 2.0]), 3), &global).is_ok());
        let none = check_update(&update(set(vec![2], vec![1.0, 2.0]), 0), &global);
        assert!(none.unwrap_err().contains("no training examples"));
        let shape = check_update(&update(set(vec![1, 2], vec![1.0, 2.0]), 3), &global);
        assert!(shape.unwrap_err().contains("wrong shape"));
        let nan = check_update(&update(set(vec![2], vec![1.0, f32::NAN]), 3), &global);
        assert!(nan.unwrap_err().contains("not finite"));
        // Data that does not fill the declared shape (fields are public).
        let mut short = set(vec![2], vec![1.0, 2.0]);
        short.tensors_mut().next().unwrap().data.pop();
        let err = check_update(&update(short, 3), &global).unwrap_err();
        assert!(err.contains("holds 1 values"), "{err}");
    }
}

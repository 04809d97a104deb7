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
use crate::secure::{SecureAnswer, SecureStep, SecureSum};
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

    /// Delivers one step of a secure protocol (see [`crate::secure`]): each listed client's
    /// session answers its message; with `fit`, the client first trains on its task and
    /// hands the update to its session. One answer per message, in order.
    fn exchange(
        &mut self,
        round: u32,
        messages: &[(ClientId, Vec<u8>)],
        fit: Option<(&ParamSet, &[(ClientId, FitInstructions)])>,
    ) -> Vec<(ClientId, Result<SecureAnswer, ClientFailure>)> {
        let _ = (round, fit);
        messages
            .iter()
            .map(|(c, _)| {
                let why = "this executor does not carry secure aggregation".to_string();
                (*c, Err(ClientFailure::Error(why)))
            })
            .collect()
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
    /// Stages around the aggregation rule (clipping, noise ...).
    pub pipeline: ServerPipeline,
    /// A protocol that hides individual updates (secure aggregation), if any.
    pub secure: Option<Box<dyn SecureSum>>,
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
            secure: None,
        }
    }

    /// The server with its fits run through `protocol` (secure aggregation).
    pub fn with_secure(mut self, protocol: Box<dyn SecureSum>) -> Self {
        self.secure = Some(protocol);
        self
    }

    /// The server with these stages around its aggregation rule.
    pub fn with_pipeline(mut self, pipeline: ServerPipeline) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Runs round `round` (1-based) through `executor`; `central` evaluates the new global
    /// model on the server's own held-out data, if it has any. The phases: configure (sample
    /// and instruct), fit (plain, or through the secure protocol), aggregate, evaluate.
    pub fn run_round(
        &mut self,
        round: u32,
        executor: &mut dyn Executor,
        central: Option<&mut CentralEval<'_>>,
    ) -> Result<RoundRecord, String> {
        let started = Instant::now();
        let available = executor.available(round);
        let clients = available.as_deref().unwrap_or(&self.clients).to_vec();
        let mut tasks = self.strategy.configure_fit(round, &clients);
        let config = self.pipeline.configure(round);
        for (_, ins) in &mut tasks {
            ins.config.extend(config.clone());
        }
        let model_bytes = self.global.num_bytes() as u64;

        // The round's model and server state are committed only once the round has finished
        // without error, so a failed round can be retried without applying its update twice.
        let saved_state = self.strategy.state();
        let mut fit = if self.secure.is_some() {
            self.secure_fit(round, executor, &tasks)
        } else {
            let fit = self.plain_fit(round, executor, &tasks);
            self.aggregate(round, fit)
        };
        fit.bytes_down += model_bytes * tasks.len() as u64;
        let fit_seconds = started.elapsed().as_secs_f64();
        if fit.candidate.is_none() {
            self.pipeline.skipped(round)?;
        }

        let eval_started = Instant::now();
        let eval_clients = self.strategy.configure_evaluate(round, &clients);
        fit.bytes_down += model_bytes * eval_clients.len() as u64;
        let new_global = fit.candidate.as_ref().unwrap_or(&self.global).clone();
        let federated =
            self.evaluate_clients(round, executor, &new_global, &eval_clients, &mut fit);
        let central = match central {
            Some(f) => match f(&new_global) {
                Ok(outcome) => EvalSummary::pool([&outcome]),
                Err(e) => {
                    self.strategy.restore(saved_state);
                    return Err(e);
                }
            },
            None => None,
        };
        let eval_seconds = eval_started.elapsed().as_secs_f64();
        if let Some(next) = fit.candidate.take() {
            self.global = next;
        }
        let mut stage_records = self.pipeline.records();
        if let Some((name, record)) = self
            .secure
            .as_ref()
            .and_then(|s| Some((s.name().to_string(), s.record()?)))
        {
            stage_records.insert(name, record);
        }
        Ok(RoundRecord {
            round,
            selected: tasks.len(),
            accepted: fit.accepted,
            dropped: fit.counts[0],
            stragglers: fit.counts[1],
            errors: fit.counts[2],
            rejected: fit.counts[3],
            aggregated: fit.aggregated,
            note: fit.note,
            train_loss: fit.train_loss,
            central,
            federated,
            clients: fit.records.into_values().collect(),
            bytes_down: fit.bytes_down,
            bytes_up: fit.bytes_up,
            stages: fit.stages,
            stage_records,
            selected_by_rule: fit.selected_by_rule,
            fit_seconds,
            eval_seconds,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Fit phase without a secure protocol: every update is checked on its own.
    fn plain_fit(
        &mut self,
        round: u32,
        executor: &mut dyn Executor,
        tasks: &[(ClientId, FitInstructions)],
    ) -> (FitPhase, Vec<Update>) {
        let mut phase = FitPhase::default();
        let mut accepted: Vec<Update> = Vec::new();
        for (client, answer) in executor.fit(&self.global, tasks) {
            let answer = answer.and_then(|u| {
                phase.bytes_up += u.delta.num_bytes() as u64;
                check_update(&u, &self.global).map_err(ClientFailure::Rejected)?;
                Ok(u)
            });
            match answer {
                Ok(u) => {
                    let rec = phase.record(client);
                    rec.examples = u.examples;
                    rec.train_loss = Some(u.loss);
                    rec.seconds = Some(u.seconds);
                    accepted.push(u);
                }
                Err(f) => phase.fail(round, client, f),
            }
        }
        // In f64: example counts are claims and must not overflow.
        let total_examples: f64 = accepted.iter().map(|u| u.examples as f64).sum();
        phase.train_loss = (total_examples > 0.0).then(|| {
            accepted
                .iter()
                .map(|u| u.loss * u.examples as f64)
                .sum::<f64>()
                / total_examples
        });
        for u in &accepted {
            for (k, v) in &u.stages {
                *phase.stages.entry(k.clone()).or_default() += v / accepted.len() as f64;
            }
        }
        phase.accepted = accepted.len();
        (phase, accepted)
    }

    /// Aggregate phase of a plain round: the strategy's rule over the accepted updates.
    fn aggregate(
        &mut self,
        round: u32,
        (mut phase, accepted): (FitPhase, Vec<Update>),
    ) -> FitPhase {
        let every_round = self.pipeline.aggregates_every_round();
        if accepted.len() < self.min_fit_results && !every_round {
            let msg = format!(
                "only {} of {} results (minimum {}): global model unchanged",
                accepted.len(),
                phase.records.len(),
                self.min_fit_results
            );
            tracing::warn!("round {round}: {msg}");
            phase.note = Some(msg);
            return phase;
        }
        match self
            .strategy
            .aggregate_fit(round, &self.global, &accepted, &mut self.pipeline)
        {
            Ok((next, report)) => {
                phase.candidate = Some(next);
                phase.aggregated = true;
                phase.selected_by_rule = report
                    .selected
                    .map(|s| s.into_iter().map(|i| accepted[i].client).collect());
            }
            Err(e) => {
                tracing::warn!("round {round}: aggregation refused: {e}");
                phase.note = Some(format!("aggregation refused: {e}; global model unchanged"));
            }
        }
        phase
    }

    /// Fit and aggregate phases through the secure protocol: the server receives only what
    /// the protocol lets through, and in the end the mean update.
    fn secure_fit(
        &mut self,
        round: u32,
        executor: &mut dyn Executor,
        tasks: &[(ClientId, FitInstructions)],
    ) -> FitPhase {
        let mut phase = FitPhase::default();
        for (c, _) in tasks {
            phase.record(*c);
        }
        let participants: Vec<ClientId> = tasks.iter().map(|(c, _)| *c).collect();
        let secure = self.secure.as_mut().expect("a secure round has a protocol");
        let mut step = secure.start(round, &participants, &self.global);
        // Each protocol has a handful of phases; the bound only stops a faulty one.
        for _ in 0..16 {
            let (out, with_fit) = match step {
                Ok(SecureStep::Exchange(out)) => (out, false),
                Ok(SecureStep::Fit(out)) => (out, true),
                Ok(SecureStep::Done { mean, contributors }) => {
                    phase.accepted = contributors.len();
                    self.finish_secure(round, mean, &contributors, &mut phase);
                    return phase;
                }
                Err(e) => {
                    tracing::warn!("round {round}: secure aggregation: {e}");
                    phase.note = Some(format!("secure aggregation: {e}; global model unchanged"));
                    return phase;
                }
            };
            phase.bytes_down += out.iter().map(|(_, m)| m.len() as u64).sum::<u64>();
            let fit = with_fit.then_some((&self.global, tasks));
            let answers = executor.exchange(round, &out, fit);
            for (client, answer) in &answers {
                match answer {
                    Ok(a) => {
                        phase.bytes_up += a.bytes.len() as u64;
                        if let Some(f) = &a.fit {
                            let rec = phase.record(*client);
                            rec.train_loss = Some(f.loss);
                            rec.seconds = Some(f.seconds);
                        }
                    }
                    Err(f) => phase.fail(round, *client, f.clone()),
                }
            }
            let secure = self.secure.as_mut().expect("a secure round has a protocol");
            step = secure.advance(answers);
        }
        phase.note = Some("secure aggregation did not finish in 16 steps".into());
        phase
    }

    /// Applies the mean a secure protocol produced.
    fn finish_secure(
        &mut self,
        round: u32,
        mean: Vec<f32>,
        contributors: &[ClientId],
        phase: &mut FitPhase,
    ) {
        let losses: Vec<f64> = contributors
            .iter()
            .filter_map(|c| phase.records.get(c).and_then(|r| r.train_loss))
            .collect();
        phase.train_loss =
            (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64);
        if contributors.len() < self.min_fit_results {
            let msg = format!(
                "only {} of {} results (minimum {}): global model unchanged",
                contributors.len(),
                phase.records.len(),
                self.min_fit_results
            );
            phase.note = Some(msg);
            return;
        }
        match self.strategy.apply_mean(
            round,
            &self.global,
            mean,
            contributors.len(),
            &mut self.pipeline,
        ) {
            Ok(next) => {
                phase.candidate = Some(next);
                phase.aggregated = true;
            }
            Err(e) => {
                tracing::warn!("round {round}: aggregation refused: {e}");
                phase.note = Some(format!("aggregation refused: {e}; global model unchanged"));
            }
        }
    }

    /// Evaluate phase on the clients: their pooled validation figures.
    fn evaluate_clients(
        &mut self,
        round: u32,
        executor: &mut dyn Executor,
        global: &ParamSet,
        clients: &[ClientId],
        phase: &mut FitPhase,
    ) -> Option<EvalSummary> {
        let mut evals = Vec::new();
        for (client, answer) in executor.evaluate(round, global, clients) {
            let rec = phase.record(client);
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
        self.strategy.aggregate_evaluate(round, &evals)
    }
}

/// What the fit and aggregate phases of a round produced.
#[derive(Default)]
struct FitPhase {
    records: BTreeMap<ClientId, ClientRecord>,
    accepted: usize,
    /// Dropped, stragglers, errors, rejected.
    counts: [usize; 4],
    note: Option<String>,
    train_loss: Option<f64>,
    stages: BTreeMap<String, f64>,
    candidate: Option<ParamSet>,
    aggregated: bool,
    selected_by_rule: Option<Vec<ClientId>>,
    bytes_down: u64,
    bytes_up: u64,
}

impl FitPhase {
    fn record(&mut self, client: ClientId) -> &mut ClientRecord {
        self.records
            .entry(client)
            .or_insert_with(|| ClientRecord::new(client))
    }

    fn fail(&mut self, round: u32, client: ClientId, f: ClientFailure) {
        let i = match &f {
            ClientFailure::Dropped => 0,
            ClientFailure::Straggler => 1,
            ClientFailure::Error(_) => 2,
            ClientFailure::Rejected(_) => 3,
        };
        self.counts[i] += 1;
        if i >= 2 {
            tracing::warn!("round {round}, client {client}: {f}");
        }
        self.record(client).failure.get_or_insert(f);
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

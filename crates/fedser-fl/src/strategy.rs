//! Strategies, in the spirit of Flower's: a strategy decides who trains and with what settings
//! (configure), and how the results become the next global model (aggregate). It sees arrays
//! and counts only, never a model.

use std::collections::HashSet;

use fedser_core::{ConfusionMatrix, Metrics, ParamSet};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::aggregate::{AggregateError, Rule, RuleReport};
use crate::client::{ClientId, EvalOutcome, FitInstructions, Update};
use crate::flat;
use crate::pipeline::ServerPipeline;
use crate::seed;
use crate::server_opt::{ServerOptState, ServerOptimizer};

/// Which clients take part in a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// Fraction of the clients asked to train each round.
    pub fraction_fit: f64,
    /// At least this many (if there are that many).
    pub min_fit_clients: usize,
    /// Fraction of the clients asked to evaluate on their validation data (0: none).
    pub fraction_evaluate: f64,
    pub min_evaluate_clients: usize,
    /// Poisson sampling instead: each client joins a round independently with this
    /// probability, so a round has a random number of clients, possibly none (what the
    /// privacy accountant assumes). `fraction_fit` and `min_fit_clients` are then unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poisson: Option<f64>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            fraction_fit: 1.0,
            min_fit_clients: 2,
            fraction_evaluate: 1.0,
            min_evaluate_clients: 2,
            poisson: None,
        }
    }
}

impl Sampling {
    fn count(fraction: f64, min: usize, available: usize) -> usize {
        // Flower's rule: floor(fraction * available), raised to the minimum.
        (((fraction * available as f64).floor() as usize).max(min)).min(available)
    }

    /// Each of `available` independently with probability `q`; client `c`'s draw in a round
    /// depends only on (`seed`, round, `c`), so it does not change when others join or leave.
    pub fn poisson(available: &[ClientId], q: f64, seed: u64, round: u32) -> Vec<ClientId> {
        available
            .iter()
            .copied()
            .filter(|&c| seed::unit(seed::derive(seed, round, c as u64, "poisson")) < q)
            .collect()
    }

    /// `k` of `available` clients chosen uniformly (sorted by id), reproducible from `seed`.
    fn choose(available: &[ClientId], k: usize, seed: u64) -> Vec<ClientId> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut chosen: Vec<ClientId> = rand::seq::index::sample(&mut rng, available.len(), k)
            .into_iter()
            .map(|i| available[i])
            .collect();
        chosen.sort_unstable();
        chosen
    }
}

/// Local training settings sent to every client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTraining {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
}

impl Default for LocalTraining {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 32,
            learning_rate: 1e-3,
        }
    }
}

/// The aggregated evaluation of one round (centrally or across clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    /// Clients whose results were aggregated (1 for a central evaluation).
    pub clients: usize,
    pub examples: usize,
    /// Mean loss over examples.
    pub loss: f64,
    pub accuracy: f64,
    pub ua: f64,
    pub macro_f1: f64,
    pub weighted_f1: f64,
    pub confusion: ConfusionMatrix,
}

impl EvalSummary {
    /// Pools several evaluations: confusion matrices add up, losses are weighted by examples.
    pub fn pool<'a>(results: impl IntoIterator<Item = &'a EvalOutcome>) -> Option<Self> {
        let mut confusion = ConfusionMatrix::new();
        let (mut clients, mut examples, mut loss) = (0usize, 0usize, 0f64);
        for r in results {
            clients += 1;
            examples += r.examples;
            loss += r.loss * r.examples as f64;
            confusion.merge(&r.confusion);
        }
        if examples == 0 {
            return None;
        }
        let m: Metrics = confusion.metrics();
        Some(Self {
            clients,
            examples,
            loss: loss / examples as f64,
            accuracy: m.accuracy,
            ua: m.ua,
            macro_f1: m.macro_f1,
            weighted_f1: m.weighted_f1,
            confusion,
        })
    }
}

/// A federated learning strategy.
pub trait Strategy: Send {
    /// One line describing the strategy and its settings.
    fn describe(&self) -> String;
    /// Clients asked to train in `round`, each with its instructions.
    fn configure_fit(&self, round: u32, available: &[ClientId])
    -> Vec<(ClientId, FitInstructions)>;
    /// Clients asked to evaluate the new global model in `round`.
    fn configure_evaluate(&self, round: u32, available: &[ClientId]) -> Vec<ClientId>;
    /// The next global model from the current one and the accepted updates; the server's
    /// `pipeline` runs on the updates before the rule and on the aggregate before the server
    /// optimiser (a strategy calls it, never needs to know what it does).
    fn aggregate_fit(
        &mut self,
        round: u32,
        global: &ParamSet,
        updates: &[Update],
        pipeline: &mut ServerPipeline,
    ) -> Result<(ParamSet, RuleReport), AggregateError>;
    /// The next global model from a mean update computed elsewhere (by a secure protocol,
    /// from sums only) over `contributors` clients; the pipeline's `after` stages and the
    /// server optimiser run as in [`Self::aggregate_fit`]. Refused by rules that need the
    /// individual updates.
    fn apply_mean(
        &mut self,
        _round: u32,
        _global: &ParamSet,
        _mean: Vec<f32>,
        _contributors: usize,
        _pipeline: &mut ServerPipeline,
    ) -> Result<ParamSet, AggregateError> {
        Err(AggregateError::Parameter(
            "this strategy cannot take a securely aggregated mean".into(),
        ))
    }
    /// Pools the clients' evaluations.
    fn aggregate_evaluate(
        &self,
        _round: u32,
        results: &[(ClientId, EvalOutcome)],
    ) -> Option<EvalSummary> {
        EvalSummary::pool(results.iter().map(|(_, r)| r))
    }
    /// Server-side state that must survive a restart (optimiser moments).
    fn state(&self) -> ServerOptState;
    fn restore(&mut self, state: ServerOptState);
}

/// What a standard strategy is made of: an aggregation rule, a server optimiser and the
/// FedProx term. Written to and read from run configurations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    /// The name it was given (`fedavg`, `fedprox`, `fedadam`, ...).
    pub name: String,
    pub rule: Rule,
    pub server_optimizer: ServerOptimizer,
    pub proximal_mu: f64,
}

impl StrategySpec {
    /// FedAvg: weighted mean, new model = average of the clients' models.
    pub fn fedavg() -> Self {
        Self {
            name: "fedavg".into(),
            rule: Rule::Mean,
            server_optimizer: ServerOptimizer::Sgd { lr: 1.0 },
            proximal_mu: 0.0,
        }
    }

    /// Parses `fedavg`, `fedprox[:MU]`, `fedadam[:LR]`, `fedyogi[:LR]`, `fedadagrad[:LR]`,
    /// `median`, `trimmed-mean[:BETA]`, `krum[:F]`, `multi-krum[:F[:M]]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let num = |i: usize, default: f64| -> Result<f64, String> {
            parts.get(i).map_or(Ok(default), |p| {
                p.parse::<f64>()
                    .map_err(|_| format!("strategy {s:?}: {p:?} is not a number"))
            })
        };
        let count = |i: usize, default: usize| -> Result<usize, String> {
            parts.get(i).map_or(Ok(default), |p| {
                p.parse::<usize>()
                    .map_err(|_| format!("strategy {s:?}: {p:?} is not a count"))
            })
        };
        let name = parts[0].to_ascii_lowercase();
        let max_parts = match name.as_str() {
            "fedavg" | "median" => 1,
            "multi-krum" => 3,
            _ => 2,
        };
        if parts.len() > max_parts {
            return Err(format!("strategy {s:?}: too many parameters"));
        }
        let mut spec = Self::fedavg();
        spec.name = name.clone();
        match name.as_str() {
            "fedavg" => {}
            "fedprox" => spec.proximal_mu = num(1, 0.01)?,
            "fedadam" | "fedyogi" | "fedadagrad" => {
                let mut opt = match name.as_str() {
                    "fedadam" => ServerOptimizer::adam(),
                    "fedyogi" => ServerOptimizer::yogi(),
                    _ => ServerOptimizer::adagrad(),
                };
                let lr_value = num(1, 0.01)?;
                match &mut opt {
                    ServerOptimizer::Adam { lr, .. }
                    | ServerOptimizer::Yogi { lr, .. }
                    | ServerOptimizer::Adagrad { lr, .. }
                    | ServerOptimizer::Sgd { lr } => *lr = lr_value,
                }
                spec.server_optimizer = opt;
            }
            "median" => spec.rule = Rule::Median,
            "trimmed-mean" => spec.rule = Rule::TrimmedMean { beta: num(1, 0.1)? },
            "krum" => {
                spec.rule = Rule::Krum {
                    byzantine: count(1, 1)?,
                    keep: 1,
                }
            }
            "multi-krum" => {
                // Left out, M is n - f (the paper's choice); given, it must select something.
                let keep = count(2, 0)?;
                if parts.len() == 3 && keep == 0 {
                    return Err(format!(
                        "strategy {s:?}: multi-krum keeps M >= 1 updates (leave M out for n - f)"
                    ));
                }
                spec.rule = Rule::Krum {
                    byzantine: count(1, 1)?,
                    keep,
                }
            }
            _ => {
                return Err(format!(
                    "unknown strategy {s:?} (expected fedavg, fedprox, fedadam, fedyogi, fedadagrad, median, trimmed-mean, krum or multi-krum)"
                ));
            }
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), String> {
        self.server_optimizer.validate()?;
        if !(self.proximal_mu >= 0.0 && self.proximal_mu.is_finite()) {
            return Err(format!("proximal mu {} must be >= 0", self.proximal_mu));
        }
        if let Rule::TrimmedMean { beta } = self.rule
            && !(0.0..0.5).contains(&beta)
        {
            return Err(format!("trimmed-mean beta {beta} must be in [0, 0.5)"));
        }
        Ok(())
    }
}

/// The standard strategy: sample, send the local-training settings (with FedProx's mu),
/// aggregate the updates with the rule, apply the result with the server optimiser.
pub struct FedStrategy {
    pub spec: StrategySpec,
    pub sampling: Sampling,
    pub local: LocalTraining,
    seed: u64,
    /// Tensors that are statistics, not trained weights (batch-norm running mean/variance):
    /// they take the aggregated value and bypass the adaptive server optimiser.
    statistics: HashSet<String>,
    state: ServerOptState,
}

impl FedStrategy {
    pub fn new(spec: StrategySpec, sampling: Sampling, local: LocalTraining, seed: u64) -> Self {
        Self {
            spec,
            sampling,
            local,
            seed,
            statistics: HashSet::new(),
            state: ServerOptState::default(),
        }
    }

    /// Names of tensors that are statistics rather than trained weights.
    pub fn with_statistics(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.statistics = names.into_iter().collect();
        self
    }
}

/// Batch-norm statistics of the union of the clients' data. The weighted mean of the clients'
/// running variances leaves out how far apart their running means lie; the variance of the
/// pooled data is the mean of the variances plus the variance of the means. For every
/// statistic `<p>running_var` with a `<p>running_mean` beside it, adds the weighted spread of
/// the clients' means to the aggregated variance (`delta`, the weighted mean of `updates`;
/// the global model cancels out of the spread).
/// What a running variance that fell to zero or below is replaced with.
pub const MIN_RUNNING_VAR: f32 = 1e-4;

/// Keeps batch-norm running variances positive: an aggregate with noise added (differential
/// privacy) can push one to zero or below, and the model would then compute NaN. Changing the
/// released values afterwards is post-processing, which costs no privacy. Positive variances
/// (every aggregate without noise) are left exactly as they are.
fn floor_variances(global: &ParamSet, statistics: &HashSet<String>, values: &mut [f32]) {
    let mut at = 0;
    for (name, t) in global.iter() {
        let n = t.data.len();
        if name.ends_with("running_var") && statistics.contains(name) {
            for v in &mut values[at..at + n] {
                if v.is_nan() || *v <= 0.0 {
                    *v = MIN_RUNNING_VAR;
                }
            }
        }
        at += n;
    }
}

fn pool_variances(
    global: &ParamSet,
    statistics: &HashSet<String>,
    updates: &[&[f32]],
    weights: &[f64],
    delta: &mut [f32],
) {
    let total: f64 = weights.iter().sum();
    if updates.len() < 2 || total <= 0.0 {
        return;
    }
    let mut offsets = std::collections::HashMap::new();
    let mut at = 0;
    for (name, t) in global.iter() {
        offsets.insert(name, (at, t.data.len()));
        at += t.data.len();
    }
    for (name, &(var_at, n)) in &offsets {
        let Some(prefix) = name.strip_suffix("running_var") else {
            continue;
        };
        let mean_name = format!("{prefix}running_mean");
        let Some(&(mean_at, m)) = offsets.get(mean_name.as_str()) else {
            continue;
        };
        if m != n || !statistics.contains(*name) || !statistics.contains(&mean_name) {
            continue;
        }
        for j in 0..n {
            let mean_of_means = delta[mean_at + j] as f64;
            let spread: f64 = updates
                .iter()
                .zip(weights)
                .map(|(u, w)| w * (u[mean_at + j] as f64 - mean_of_means).powi(2))
                .sum::<f64>()
                / total;
            delta[var_at + j] += spread as f32;
        }
    }
}

impl FedStrategy {
    /// After the rule: the pipeline's `after` stages, the server optimiser, the variance
    /// floor.
    fn apply(
        &mut self,
        round: u32,
        global: &ParamSet,
        mut values: Vec<f32>,
        mut delta: Vec<f32>,
        contributors: usize,
        pipeline: &mut ServerPipeline,
    ) -> Result<ParamSet, AggregateError> {
        pipeline
            .after(round, &mut delta, contributors)
            .map_err(AggregateError::Stage)?;
        let adaptive = flat::coordinate_mask(global, |n| !self.statistics.contains(n));
        self.spec
            .server_optimizer
            .apply(&mut self.state, &mut values, &delta, &adaptive);
        floor_variances(global, &self.statistics, &mut values);
        flat::unflatten(global, &values).map_err(|e| AggregateError::Parameter(e.to_string()))
    }
}

impl Strategy for FedStrategy {
    fn describe(&self) -> String {
        let s = &self.spec;
        let mut d = format!(
            "{} (rule {}, server {}",
            s.name,
            s.rule.name(),
            s.server_optimizer.name()
        );
        if s.proximal_mu > 0.0 {
            d += &format!(", mu {}", s.proximal_mu);
        }
        d + ")"
    }

    fn configure_fit(
        &self,
        round: u32,
        available: &[ClientId],
    ) -> Vec<(ClientId, FitInstructions)> {
        match self.sampling.poisson {
            Some(q) => Sampling::poisson(available, q, self.seed, round),
            None => {
                let k = Sampling::count(
                    self.sampling.fraction_fit,
                    self.sampling.min_fit_clients,
                    available.len(),
                );
                Sampling::choose(
                    available,
                    k,
                    seed::derive(self.seed, round, 0, "sample-fit"),
                )
            }
        }
        .into_iter()
        .map(|c| {
            (
                c,
                FitInstructions {
                    round,
                    epochs: self.local.epochs,
                    batch_size: self.local.batch_size,
                    learning_rate: self.local.learning_rate,
                    proximal_mu: self.spec.proximal_mu,
                    seed: seed::derive(self.seed, round, c as u64, "fit"),
                    config: Default::default(),
                },
            )
        })
        .collect()
    }

    fn configure_evaluate(&self, round: u32, available: &[ClientId]) -> Vec<ClientId> {
        if self.sampling.fraction_evaluate <= 0.0 {
            return Vec::new();
        }
        let k = Sampling::count(
            self.sampling.fraction_evaluate,
            self.sampling.min_evaluate_clients,
            available.len(),
        );
        Sampling::choose(
            available,
            k,
            seed::derive(self.seed, round, 0, "sample-eval"),
        )
    }

    fn aggregate_fit(
        &mut self,
        round: u32,
        global: &ParamSet,
        updates: &[Update],
        pipeline: &mut ServerPipeline,
    ) -> Result<(ParamSet, RuleReport), AggregateError> {
        let individual = pipeline.allows_individual_views();
        if !individual && self.spec.rule != Rule::Mean {
            return Err(AggregateError::Parameter(format!(
                "{} reads individual updates, which this server's pipeline does not allow",
                self.spec.rule.name()
            )));
        }
        let mut flats: Vec<Vec<f32>> = updates.iter().map(|u| flat::flatten(&u.delta)).collect();
        let mut weights: Vec<f64> = updates.iter().map(|u| u.examples as f64).collect();
        pipeline
            .before(round, updates, &mut flats, &mut weights)
            .map_err(AggregateError::Stage)?;
        let refs: Vec<&[f32]> = flats.iter().map(Vec::as_slice).collect();
        let (mut delta, report) = if refs.is_empty() && pipeline.aggregates_every_round() {
            // Nobody took part: a zero aggregate, which the pipeline still noises and releases.
            (
                vec![0.0; flat::flatten(global).len()],
                RuleReport::default(),
            )
        } else {
            self.spec.rule.aggregate(&refs, &weights)?
        };
        let values = flat::flatten(global);
        if values.len() != delta.len() {
            return Err(AggregateError::Length(values.len(), delta.len()));
        }
        // After the length check: the pooling indexes updates by the global layout.
        // Pooling reads each client's statistics: only where individual views are allowed
        // (under DP the statistics are averaged, clipped and noised like every weight).
        if individual
            && self.spec.rule == Rule::Mean
            && refs.iter().all(|u| u.len() == values.len())
        {
            pool_variances(global, &self.statistics, &refs, &weights, &mut delta);
        }
        let next = self.apply(round, global, values, delta, updates.len(), pipeline)?;
        Ok((next, report))
    }

    fn apply_mean(
        &mut self,
        round: u32,
        global: &ParamSet,
        mean: Vec<f32>,
        contributors: usize,
        pipeline: &mut ServerPipeline,
    ) -> Result<ParamSet, AggregateError> {
        if self.spec.rule != Rule::Mean {
            return Err(AggregateError::Parameter(format!(
                "{} reads individual updates, which secure aggregation hides",
                self.spec.rule.name()
            )));
        }
        let values = flat::flatten(global);
        if values.len() != mean.len() {
            return Err(AggregateError::Length(values.len(), mean.len()));
        }
        self.apply(round, global, values, mean, contributors, pipeline)
    }

    fn state(&self) -> ServerOptState {
        self.state.clone()
    }

    fn restore(&mut self, state: ServerOptState) {
        self.state = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedser_core::ParamTensor;

    fn params(v: &[f32]) -> ParamSet {
        let mut p = ParamSet::new();
        p.push("w", ParamTensor::new(vec![v.len()], v.to_vec()).unwrap())
            .unwrap();
        p
    }

    fn update(client: ClientId, delta: &[f32], examples: usize) -> Update {
        Update {
            client,
            delta: params(delta),
            examples,
            loss: 0.0,
            seconds: 0.0,
            stages: Default::default(),
        }
    }

    #[test]
    fn parses_every_strategy_and_rejects_nonsense() {
        assert_eq!(
            StrategySpec::parse("fedavg").unwrap(),
            StrategySpec::fedavg()
        );
        assert_eq!(StrategySpec::parse("fedprox:0.1").unwrap().proximal_mu, 0.1);
        assert_eq!(StrategySpec::parse("fedprox").unwrap().proximal_mu, 0.01);
        assert!(matches!(
            StrategySpec::parse("FedAdam:0.05").unwrap().server_optimizer,
            ServerOptimizer::Adam { lr, .. } if lr == 0.05
        ));
        assert_eq!(
            StrategySpec::parse("fedyogi")
                .unwrap()
                .server_optimizer
                .name(),
            "yogi"
        );
        assert_eq!(
            StrategySpec::parse("fedadagrad")
                .unwrap()
                .server_optimizer
                .name(),
            "adagrad"
        );
        assert_eq!(StrategySpec::parse("median").unwrap().rule, Rule::Median);
        assert_eq!(
            StrategySpec::parse("trimmed-mean:0.2").unwrap().rule,
            Rule::TrimmedMean { beta: 0.2 }
        );
        assert_eq!(
            StrategySpec::parse("multi-krum:2:5").unwrap().rule,
            Rule::Krum {
                byzantine: 2,
                keep: 5
            }
        );
        for bad in [
            "fedsgd",
            "fedprox:x",
            "trimmed-mean:0.7",
            "fedadam:-1",
            "fedavg:3",
            "krum:-1",
        ] {
            assert!(StrategySpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sampling_follows_fraction_and_minimum_and_is_reproducible() {
        let available: Vec<ClientId> = (0..100).collect();
        let s = FedStrategy::new(
            StrategySpec::fedavg(),
            Sampling {
                fraction_fit: 0.1,
                min_fit_clients: 2,
                fraction_evaluate: 0.0,
                min_evaluate_clients: 0,
                poisson: None,
            },
            LocalTraining::default(),
            9,
        );
        let a = s.configure_fit(1, &available);
        assert_eq!(a.len(), 10);
        assert_eq!(a, s.configure_fit(1, &available));
        assert_ne!(
            a.iter().map(|x| x.0).collect::<Vec<_>>(),
            s.configure_fit(2, &available)
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>()
        );
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0));
        // The minimum wins over a small fraction; never more than available.
        assert_eq!(s.configure_fit(1, &available[..5]).len(), 2);
        assert_eq!(s.configure_fit(1, &available[..1]).len(), 1);
        assert!(s.configure_evaluate(1, &available).is_empty());
    }

    #[test]
    fn fedavg_equals_the_weighted_average_of_client_models() {
        let global = params(&[1.0, 1.0]);
        let mut s = FedStrategy::new(
            StrategySpec::fedavg(),
            Sampling::default(),
            LocalTraining::default(),
            1,
        );
        // Client models (1+1, 1+0) with 30 examples and (1-2, 1+3) with 10.
        let ups = [update(0, &[1.0, 0.0], 30), update(1, &[-2.0, 3.0], 10)];
        let (next, _) = s
            .aggregate_fit(1, &global, &ups, &mut ServerPipeline::new())
            .unwrap();
        let w = &next.get("w").unwrap().data;
        assert!((w[0] - (2.0 * 0.75 - 0.25)).abs() < 1e-6);
        assert!((w[1] - (1.0 * 0.75 + 4.0 * 0.25)).abs() < 1e-6);
    }

    #[test]
    fn statistics_bypass_the_adaptive_optimiser() {
        let mut global = ParamSet::new();
        global
            .push("w", ParamTensor::new(vec![1], vec![0.0]).unwrap())
            .unwrap();
        global
            .push(
                "bn.running_var",
                ParamTensor::new(vec![1], vec![1.0]).unwrap(),
            )
            .unwrap();
        let mut delta = ParamSet::new();
        delta
            .push("w", ParamTensor::new(vec![1], vec![0.5]).unwrap())
            .unwrap();
        delta
            .push(
                "bn.running_var",
                ParamTensor::new(vec![1], vec![-0.9]).unwrap(),
            )
            .unwrap();
        let mut s = FedStrategy::new(
            StrategySpec::parse("fedadam:0.1").unwrap(),
            Sampling::default(),
            LocalTraining::default(),
            1,
        )
        .with_statistics(["bn.running_var".to_string()]);
        let up = Update {
            delta,
            ..update(0, &[0.0], 1)
        };
        let (next, _) = s
            .aggregate_fit(1, &global, &[up], &mut ServerPipeline::new())
            .unwrap();
        let flat = flat::flatten(&next);
        assert!((flat[0] - 0.1).abs() < 1e-3, "{flat:?}");
        assert!((flat[1] - 0.1).abs() < 1e-6, "{flat:?}");
        assert_eq!(s.state().step, 1);
    }

    #[test]
    fn batch_norm_variances_pool_the_spread_of_the_client_means() {
        let layout = |mean: f32, var: f32| {
            let mut p = ParamSet::new();
            p.push("w", ParamTensor::new(vec![1], vec![0.0]).unwrap())
                .unwrap();
            p.push(
                "bn.running_mean",
                ParamTensor::new(vec![1], vec![mean]).unwrap(),
            )
            .unwrap();
            p.push(
                "bn.running_var",
                ParamTensor::new(vec![1], vec![var]).unwrap(),
            )
            .unwrap();
            p
        };
        let global = layout(0.0, 1.0);
        // Client data: means -1 and +2 with variance 1 each, 1 and 2 examples. The pooled data
        // has mean 1 and variance 1 + (1·(-1-1)² + 2·(2-1)²) / 3 = 3.
        let ups = [
            Update {
                delta: layout(-1.0, 0.0),
                ..update(0, &[0.0], 1)
            },
            Update {
                delta: layout(2.0, 0.0),
                ..update(1, &[0.0], 2)
            },
        ];
        let names = ["bn.running_mean".to_string(), "bn.running_var".to_string()];
        for (rule, want_var) in [("fedavg", 3.0), ("median", 1.0)] {
            let mut s = FedStrategy::new(
                StrategySpec::parse(rule).unwrap(),
                Sampling::default(),
                LocalTraining::default(),
                1,
            )
            .with_statistics(names.clone());
            let (next, _) = s
                .aggregate_fit(1, &global, &ups, &mut ServerPipeline::new())
                .unwrap();
            let var = next.get("bn.running_var").unwrap().data[0];
            assert!((var - want_var).abs() < 1e-5, "{rule}: {var}");
        }
        let (next, _) = FedStrategy::new(
            StrategySpec::fedavg(),
            Sampling::default(),
            LocalTraining::default(),
            1,
        )
        .with_statistics(names.clone())
        .aggregate_fit(1, &global, &ups, &mut ServerPipeline::new())
        .unwrap();
        assert!((next.get("bn.running_mean").unwrap().data[0] - 1.0).abs() < 1e-6);
        // An aggregate pushed below zero (noise, a bad client) keeps a positive variance.
        let down = [Update {
            delta: layout(0.0, -5.0),
            ..update(0, &[0.0], 1)
        }];
        let (next, _) = FedStrategy::new(
            StrategySpec::fedavg(),
            Sampling::default(),
            LocalTraining::default(),
            1,
        )
        .with_statistics(names)
        .aggregate_fit(1, &global, &down, &mut ServerPipeline::new())
        .unwrap();
        assert_eq!(next.get("bn.running_var").unwrap().data[0], MIN_RUNNING_VAR);
    }

    #[test]
    fn poisson_sampling_matches_its_rate_and_allows_empty_rounds() {
        let available: Vec<ClientId> = (0..50).collect();
        let q = 0.1;
        let rounds = 400u32;
        let mut total = 0usize;
        for round in 1..=rounds {
            let chosen = Sampling::poisson(&available, q, 3, round);
            assert_eq!(chosen, Sampling::poisson(&available, q, 3, round));
            total += chosen.len();
        }
        // Binomial(20,000, 0.1): mean 2,000, sd about 42.
        let n = (rounds as usize * available.len()) as f64;
        let rate = total as f64 / n;
        let se = (q * (1.0 - q) / n).sqrt();
        assert!((rate - q).abs() < 4.0 * se, "rate {rate}");
        // With 3 clients and q = 0.1 a round is empty with probability 0.729.
        let few: Vec<ClientId> = (0..3).collect();
        let empties = (1..=2000)
            .filter(|&r| Sampling::poisson(&few, q, 5, r).is_empty())
            .count() as f64
            / 2000.0;
        assert!(
            (empties - 0.729).abs() < 4.0 * (0.729f64 * 0.271 / 2000.0).sqrt(),
            "{empties}"
        );
    }
}

//! The round logic end to end with toy clients whose optimum is known: each client pulls the
//! model towards its own target vector, so FedAvg must reach the example-weighted mean of the
//! targets, robust rules must resist a poisoned client, and failures must never reach the
//! aggregate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fedser_core::{ConfusionMatrix, Emotion, ParamSet, ParamTensor};
use fedser_fl::strategy::LocalTraining;
use fedser_fl::{
    Client, ClientFactory, ClientId, ClientPipeline, EvalOutcome, FedStrategy, FitInstructions,
    FitOutcome, Sampling, Server, Simulation, SimulationConfig, StrategySpec,
};

const DIM: usize = 4;

fn params(v: &[f32]) -> ParamSet {
    let mut p = ParamSet::new();
    p.push("w", ParamTensor::new(vec![v.len()], v.to_vec()).unwrap())
        .unwrap();
    p
}

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Honest,
    /// Sends a huge update (a poisoning attempt).
    Poison,
    /// Sends NaN.
    Nan,
    /// Sends a tensor of the wrong shape.
    WrongShape,
    /// Reports an error.
    Broken,
}

struct ToyClient {
    target: Vec<f32>,
    examples: usize,
    behaviour: Behaviour,
    _alive: Alive,
}

/// Counts live clients, to check memory stays bounded by the number of workers.
struct Alive(Arc<AtomicUsize>);
impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Client for ToyClient {
    fn fit(&mut self, global: &ParamSet, ins: &FitInstructions) -> Result<FitOutcome, String> {
        let g = &global.get("w").ok_or("no w")?.data;
        let mut w = g.clone();
        // Gradient steps on 1/2 ||w - target||^2 + mu/2 ||w - g||^2.
        for _ in 0..ins.epochs {
            for i in 0..w.len() {
                let grad = (w[i] - self.target[i]) + ins.proximal_mu as f32 * (w[i] - g[i]);
                w[i] -= ins.learning_rate as f32 * grad;
            }
        }
        let loss = w
            .iter()
            .zip(&self.target)
            .map(|(a, b)| 0.5 * ((a - b) * (a - b)) as f64)
            .sum();
        match self.behaviour {
            Behaviour::Honest => {}
            Behaviour::Poison => w.iter_mut().for_each(|x| *x = 1e4),
            Behaviour::Nan => w[0] = f32::NAN,
            Behaviour::WrongShape => w.push(0.0),
            Behaviour::Broken => return Err("disk full".into()),
        }
        Ok(FitOutcome {
            params: params(&w),
            examples: self.examples,
            loss,
        })
    }

    fn evaluate(&mut self, global: &ParamSet) -> Result<Option<EvalOutcome>, String> {
        let g = &global.get("w").ok_or("no w")?.data;
        let close = g.iter().zip(&self.target).all(|(a, b)| (a - b).abs() < 1.0);
        let mut confusion = ConfusionMatrix::new();
        confusion.add(
            Emotion::Happy,
            if close { Emotion::Happy } else { Emotion::Sad },
        );
        Ok(Some(EvalOutcome {
            examples: 1,
            loss: 0.5,
            confusion,
        }))
    }
}

struct Toys {
    targets: Vec<Vec<f32>>,
    examples: Vec<usize>,
    behaviour: fn(ClientId) -> Behaviour,
    opened: AtomicUsize,
    live: Arc<AtomicUsize>,
    peak: AtomicUsize,
}

impl Toys {
    fn new(n: usize, behaviour: fn(ClientId) -> Behaviour) -> Self {
        Self {
            targets: (0..n)
                .map(|i| {
                    (0..DIM)
                        .map(|d| ((i * 7 + d * 3) % 11) as f32 - 5.0)
                        .collect()
                })
                .collect(),
            examples: (0..n).map(|i| 1 + i % 5).collect(),
            behaviour,
            opened: AtomicUsize::new(0),
            live: Arc::new(AtomicUsize::new(0)),
            peak: AtomicUsize::new(0),
        }
    }

    /// The example-weighted mean of the honest clients' targets.
    fn optimum(&self) -> Vec<f32> {
        let honest: Vec<usize> = (0..self.targets.len())
            .filter(|&i| (self.behaviour)(i) == Behaviour::Honest)
            .collect();
        let total: usize = honest.iter().map(|&i| self.examples[i]).sum();
        (0..DIM)
            .map(|d| {
                honest
                    .iter()
                    .map(|&i| self.targets[i][d] * self.examples[i] as f32)
                    .sum::<f32>()
                    / total as f32
            })
            .collect()
    }
}

impl ClientFactory for Toys {
    fn open(&self, id: ClientId) -> Result<Box<dyn Client>, String> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Ok(Box::new(ToyClient {
            target: self.targets[id].clone(),
            examples: self.examples[id],
            behaviour: (self.behaviour)(id),
            _alive: Alive(self.live.clone()),
        }))
    }
}

fn honest(_: ClientId) -> Behaviour {
    Behaviour::Honest
}

struct Run {
    spec: StrategySpec,
    fraction: f64,
    epochs: usize,
    lr: f64,
    sim: SimulationConfig,
    min_results: usize,
}

impl Default for Run {
    fn default() -> Self {
        Self {
            spec: StrategySpec::fedavg(),
            fraction: 1.0,
            epochs: 1,
            lr: 0.5,
            sim: SimulationConfig {
                workers: 3,
                ..SimulationConfig::default()
            },
            min_results: 1,
        }
    }
}

impl Run {
    fn server(&self, clients: usize) -> Server<FedStrategy> {
        let strategy = FedStrategy::new(
            self.spec.clone(),
            Sampling {
                fraction_fit: self.fraction,
                min_fit_clients: 2,
                fraction_evaluate: 0.5,
                min_evaluate_clients: 1,
                poisson: None,
            },
            LocalTraining {
                epochs: self.epochs,
                batch_size: 1,
                learning_rate: self.lr,
            },
            self.sim.seed,
        );
        Server::new(
            strategy,
            params(&[0.0; DIM]),
            (0..clients).collect(),
            self.min_results,
        )
    }

    fn go(
        &self,
        toys: &Toys,
        server: &mut Server<FedStrategy>,
        rounds: std::ops::RangeInclusive<u32>,
    ) -> Vec<fedser_fl::RoundRecord> {
        let mut sim = Simulation::new(toys, self.sim.clone(), ClientPipeline::new());
        rounds
            .map(|r| server.run_round(r, &mut sim, None).unwrap())
            .collect()
    }
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

#[test]
fn fedavg_reaches_the_weighted_optimum_and_records_each_round() {
    let toys = Toys::new(10, honest);
    let run = Run::default();
    let mut server = run.server(toys.targets.len());
    let records = run.go(&toys, &mut server, 1..=30);
    let w = &server.global.get("w").unwrap().data;
    assert!(
        distance(w, &toys.optimum()) < 1e-3,
        "{w:?} vs {:?}",
        toys.optimum()
    );
    let last = records.last().unwrap();
    assert_eq!((last.selected, last.accepted), (10, 10));
    assert!(last.aggregated);
    assert_eq!(last.bytes_up, 10 * DIM as u64 * 4);
    // Fit to 10 clients plus evaluation on half of them.
    assert_eq!(last.bytes_down, 15 * DIM as u64 * 4);
    let fed = last.federated.as_ref().unwrap();
    assert_eq!(fed.clients, 5);
    assert!(records[0].train_loss.unwrap() > last.train_loss.unwrap());
}

#[test]
fn results_do_not_depend_on_thread_count_or_timing() {
    let toys = Toys::new(12, honest);
    let mut one = Run {
        fraction: 0.5,
        ..Run::default()
    };
    one.spec = StrategySpec::parse("fedyogi:0.3").unwrap();
    one.sim.workers = 1;
    one.sim.dropout = 0.2;
    let mut many = Run {
        fraction: 0.5,
        ..Run::default()
    };
    many.spec = one.spec.clone();
    many.sim.workers = 6;
    many.sim.dropout = 0.2;
    let (mut a, mut b) = (one.server(12), many.server(12));
    let ra = one.go(&toys, &mut a, 1..=8);
    let rb = many.go(&toys, &mut b, 1..=8);
    assert_eq!(a.global, b.global);
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(
            x.clients.iter().map(|c| c.client).collect::<Vec<_>>(),
            y.clients.iter().map(|c| c.client).collect::<Vec<_>>()
        );
        assert_eq!(x.dropped, y.dropped);
    }
}

#[test]
fn resuming_from_saved_state_gives_the_same_model() {
    let toys = Toys::new(10, honest);
    let mut run = Run {
        fraction: 0.6,
        ..Run::default()
    };
    run.spec = StrategySpec::parse("fedadam:0.2").unwrap();
    run.sim.straggler = 0.1;
    let mut straight = run.server(toys.targets.len());
    run.go(&toys, &mut straight, 1..=10);

    let mut first = run.server(toys.targets.len());
    run.go(&toys, &mut first, 1..=4);
    // A new server from what a checkpoint holds: the global model and the strategy state.
    use fedser_fl::Strategy;
    let (global, state) = (first.global.clone(), first.strategy.state());
    let mut resumed = run.server(toys.targets.len());
    resumed.global = global;
    resumed.strategy.restore(state);
    run.go(&toys, &mut resumed, 5..=10);
    assert_eq!(straight.global, resumed.global);
}

#[test]
fn bad_updates_are_rejected_and_never_averaged() {
    fn mixed(id: ClientId) -> Behaviour {
        match id {
            0 => Behaviour::Nan,
            1 => Behaviour::WrongShape,
            2 => Behaviour::Broken,
            _ => Behaviour::Honest,
        }
    }
    let toys = Toys::new(10, mixed);
    let run = Run::default();
    let mut server = run.server(toys.targets.len());
    let records = run.go(&toys, &mut server, 1..=30);
    let last = records.last().unwrap();
    assert_eq!((last.accepted, last.rejected, last.errors), (7, 2, 1));
    let reasons: Vec<String> = last
        .clients
        .iter()
        .filter_map(|c| c.failure.as_ref().map(|f| f.to_string()))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not finite")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("wrong")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("disk full")),
        "{reasons:?}"
    );
    let w = &server.global.get("w").unwrap().data;
    assert!(w.iter().all(|v| v.is_finite()));
    assert!(distance(w, &toys.optimum()) < 1e-3);
}

#[test]
fn robust_rules_resist_a_poisoned_client_that_fedavg_follows() {
    fn poison(id: ClientId) -> Behaviour {
        if id == 3 {
            Behaviour::Poison
        } else {
            Behaviour::Honest
        }
    }
    let toys = Toys::new(9, poison);
    let optimum = toys.optimum();
    let mut errors = Vec::new();
    for name in [
        "fedavg",
        "median",
        "trimmed-mean:0.2",
        "krum:1",
        "multi-krum:1",
    ] {
        let run = Run {
            spec: StrategySpec::parse(name).unwrap(),
            ..Run::default()
        };
        let mut server = run.server(toys.targets.len());
        run.go(&toys, &mut server, 1..=20);
        let w = server.global.get("w").unwrap().data.clone();
        errors.push((name, distance(&w, &optimum), w));
    }
    assert!(errors[0].1 > 100.0, "{errors:?}");
    for (name, e, w) in &errors[1..] {
        // Every robust rule stays among the honest clients (targets lie in [-5, 5]);
        // Krum follows one client at a time, the others stay near the honest optimum.
        assert!(w.iter().all(|v| v.abs() <= 5.0), "{name}: {w:?}");
        if *name != "krum:1" {
            assert!(*e < 3.0, "{name}: {e} ({errors:?})");
        }
    }
}

#[test]
fn a_round_without_enough_results_leaves_the_model_unchanged() {
    let toys = Toys::new(6, honest);
    let mut run = Run {
        min_results: 4,
        ..Run::default()
    };
    run.sim.dropout = 1.0;
    let mut server = run.server(toys.targets.len());
    let before = server.global.clone();
    let records = run.go(&toys, &mut server, 1..=2);
    assert_eq!(server.global, before);
    assert!(!records[0].aggregated);
    assert_eq!(records[0].dropped, 6);
    assert!(records[0].note.as_ref().unwrap().contains("only 0 of 6"));
}

#[test]
fn fedprox_keeps_local_models_closer_to_the_global_one() {
    let toys = Toys::new(4, honest);
    let plain = Run {
        epochs: 20,
        lr: 0.2,
        ..Run::default()
    };
    let prox = Run {
        spec: StrategySpec::parse("fedprox:2.0").unwrap(),
        ..Run {
            epochs: 20,
            lr: 0.2,
            ..Run::default()
        }
    };
    let size = |run: &Run| {
        let mut server = run.server(toys.targets.len());
        run.go(&toys, &mut server, 1..=1);
        distance(&server.global.get("w").unwrap().data, &[0.0; DIM])
    };
    let (a, b) = (size(&plain), size(&prox));
    // With mu = 2 each local model stops at 1/3 of the way to its target.
    assert!((b / a - 1.0 / 3.0).abs() < 0.02, "{a} {b}");
}

#[test]
fn a_thousand_clients_with_memory_bounded_by_the_workers() {
    let toys = Toys::new(1000, honest);
    let mut run = Run {
        fraction: 0.1,
        ..Run::default()
    };
    run.sim.workers = 4;
    let mut server = run.server(toys.targets.len());
    let records = run.go(&toys, &mut server, 1..=3);
    assert!(
        records
            .iter()
            .all(|r| r.selected == 100 && r.accepted == 100)
    );
    // 100 fits and 500 evaluations per round, each opening the client afresh.
    assert_eq!(toys.opened.load(Ordering::SeqCst), 3 * 600);
    // Never more clients (and their data) alive than worker threads; none left over.
    let peak = toys.peak.load(Ordering::SeqCst);
    assert!((1..=4).contains(&peak), "peak {peak}");
    assert_eq!(toys.live.load(Ordering::SeqCst), 0);
}

#[test]
fn a_round_that_fails_to_evaluate_changes_nothing() {
    use fedser_fl::Strategy;
    let toys = Toys::new(4, honest);
    let run = Run {
        spec: StrategySpec::parse("fedadam:0.1").unwrap(),
        ..Run::default()
    };
    let mut server = run.server(4);
    run.go(&toys, &mut server, 1..=2);
    let (global, state) = (server.global.clone(), server.strategy.state());
    let mut sim = Simulation::new(&toys, run.sim.clone(), ClientPipeline::new());
    let mut failing =
        |_: &ParamSet| -> Result<EvalOutcome, String> { Err("evaluation data unreadable".into()) };
    let err = server
        .run_round(3, &mut sim, Some(&mut failing))
        .unwrap_err();
    assert!(err.contains("unreadable"));
    assert_eq!(server.global, global);
    assert_eq!(server.strategy.state(), state);
    // Retrying the round gives what an untroubled round 3 gives.
    server.run_round(3, &mut sim, None).unwrap();
    let mut straight = run.server(4);
    run.go(&toys, &mut straight, 1..=3);
    assert_eq!(server.global, straight.global);
}

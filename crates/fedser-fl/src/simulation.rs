//! In-process simulation: many clients on one machine. Clients run concurrently, one thread
//! each, at most `workers` at a time; a client (its model and data) exists only while it
//! works, so client memory is bounded by the number of workers, not of clients (the server
//! still holds the round's updates until it aggregates them). Dropouts and stragglers are
//! drawn per round and client from the seed, so a run is reproducible whatever the timing.
//! Under a secure protocol a client that drops out this round does so at one of the
//! protocol's first four steps, drawn from the seed too.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use fedser_core::ParamSet;
use serde::{Deserialize, Serialize};

use crate::client::{
    Client, ClientFailure, ClientId, ClientPipeline, EvalOutcome, FitInstructions, Update,
};
use crate::secure::{FitReport, SecureAnswer, SecureClient, SecureSession};
use crate::seed;
use crate::server::Executor;
use std::collections::BTreeMap;

/// Builds clients on demand.
pub trait ClientFactory: Sync {
    /// Client `id` with its data, ready to fit or evaluate. Called each time the client is
    /// needed; the client is dropped when its task is done.
    fn open(&self, id: ClientId) -> Result<Box<dyn Client>, String>;
}

/// How the simulation behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationConfig {
    /// Clients working at once (threads).
    pub workers: usize,
    /// Probability that a selected client drops out of a round.
    pub dropout: f64,
    /// Probability that a selected client that did not drop out delivers after the round
    /// closed.
    pub straggler: f64,
    pub seed: u64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            dropout: 0.0,
            straggler: 0.0,
            seed: 7,
        }
    }
}

impl SimulationConfig {
    /// Checks the probabilities and worker count.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [("dropout", self.dropout), ("straggler", self.straggler)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} probability {p} must be in [0, 1]"));
            }
        }
        if self.workers == 0 {
            return Err("at least one worker thread is needed".into());
        }
        Ok(())
    }
}

/// What finished, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Fit(ClientId),
    Evaluate(ClientId),
}

/// The in-process executor.
pub struct Simulation<'a, F: ClientFactory> {
    factory: &'a F,
    config: SimulationConfig,
    pipeline: ClientPipeline,
    on_progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    secure: Option<&'a dyn SecureClient>,
    /// The secure sessions of the current round, and its step.
    sessions: Mutex<BTreeMap<ClientId, Box<dyn SecureSession>>>,
    session_round: (u32, u32),
}

/// A client's secure session while a step runs (taken out when it drops out).
type SessionSlot = Mutex<Option<Box<dyn SecureSession>>>;

/// Threads get a large stack: recurrent models unroll deep graphs.
const STACK_BYTES: usize = 64 << 20;

impl<'a, F: ClientFactory> Simulation<'a, F> {
    pub fn new(factory: &'a F, config: SimulationConfig, pipeline: ClientPipeline) -> Self {
        Self {
            factory,
            config,
            pipeline,
            on_progress: None,
            secure: None,
            sessions: Mutex::new(BTreeMap::new()),
            session_round: (0, 0),
        }
    }

    /// The clients' side of a secure protocol (secure aggregation).
    pub fn with_secure(mut self, secure: &'a dyn SecureClient) -> Self {
        self.secure = Some(secure);
        self
    }

    /// Whether client `id` leaves the round at secure step `step` (1-based).
    fn secure_absence(&self, round: u32, id: ClientId, step: u32) -> Option<ClientFailure> {
        let failure = self.absence(round, id, "fit")?;
        let at = seed::derive(self.config.seed, round, id as u64, "secure-drop-step") % 4 + 1;
        (u64::from(step) == at).then_some(failure)
    }

    /// Calls `f` each time a client finishes a task.
    pub fn on_progress(mut self, f: &'a (dyn Fn(Progress) + Sync)) -> Self {
        self.on_progress = Some(f);
        self
    }

    /// Whether client `id` is simulated as absent in `round` (`phase` keeps the fit and
    /// evaluation draws apart).
    fn absence(&self, round: u32, id: ClientId, phase: &str) -> Option<ClientFailure> {
        let draw = |what: &str| {
            seed::unit(seed::derive(
                self.config.seed,
                round,
                id as u64,
                &format!("{phase}-{what}"),
            ))
        };
        if self.config.dropout > 0.0 && draw("dropout") < self.config.dropout {
            Some(ClientFailure::Dropped)
        } else if self.config.straggler > 0.0 && draw("straggler") < self.config.straggler {
            Some(ClientFailure::Straggler)
        } else {
            None
        }
    }

    fn open(&self, id: ClientId) -> Result<Box<dyn Client>, ClientFailure> {
        self.factory
            .open(id)
            .map_err(|e| ClientFailure::Error(format!("cannot start: {e}")))
    }
}

/// Runs `work` over `items` on up to `workers` threads; results in item order. A panicking
/// task becomes an error result rather than taking the server down.
fn run_parallel<T: Sync, R: Send>(
    workers: usize,
    items: &[T],
    work: impl Fn(&T) -> Result<R, ClientFailure> + Sync,
) -> Vec<Result<R, ClientFailure>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R, ClientFailure>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let threads = workers.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (next, results, work) = (&next, &results, &work);
            std::thread::Builder::new()
                .name(format!("fedser-client-{t}"))
                .stack_size(STACK_BYTES)
                .spawn_scoped(scope, move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= items.len() {
                            break;
                        }
                        let r = catch_unwind(AssertUnwindSafe(|| work(&items[i]))).unwrap_or_else(
                            |panic| {
                                let msg = panic
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_else(|| "unknown panic".into());
                                Err(ClientFailure::Error(format!("panicked: {msg}")))
                            },
                        );
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    }
                })
                .expect("spawning a client thread");
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ClientFailure::Error("no result".into()))))
        .collect()
}

impl<F: ClientFactory> Executor for Simulation<'_, F> {
    fn fit(
        &mut self,
        global: &ParamSet,
        tasks: &[(ClientId, FitInstructions)],
    ) -> Vec<(ClientId, Result<Update, ClientFailure>)> {
        let results = run_parallel(self.config.workers, tasks, |(id, ins)| {
            // An absent client is not trained at all: its result could not reach the server.
            let r = match self.absence(ins.round, *id, "fit") {
                Some(f) => Err(f),
                None => self
                    .open(*id)
                    .and_then(|mut c| self.pipeline.fit(c.as_mut(), *id, global, ins)),
            };
            if let Some(p) = self.on_progress {
                p(Progress::Fit(*id));
            }
            r
        });
        tasks.iter().map(|(id, _)| *id).zip(results).collect()
    }

    fn exchange(
        &mut self,
        round: u32,
        messages: &[(ClientId, Vec<u8>)],
        fit: Option<(&ParamSet, &[(ClientId, FitInstructions)])>,
    ) -> Vec<(ClientId, Result<SecureAnswer, ClientFailure>)> {
        let Some(secure) = self.secure else {
            let why = "the simulation was not given the clients' secure protocol";
            return messages
                .iter()
                .map(|(c, _)| (*c, Err(ClientFailure::Error(why.into()))))
                .collect();
        };
        let sessions = self.sessions.get_mut().unwrap_or_else(|e| e.into_inner());
        if self.session_round.0 != round {
            sessions.clear();
            self.session_round = (round, 0);
        }
        self.session_round.1 += 1;
        let step = self.session_round.1;
        let slots: Vec<(ClientId, &Vec<u8>, SessionSlot)> = messages
            .iter()
            .map(|(id, msg)| {
                let session = sessions
                    .remove(id)
                    .unwrap_or_else(|| secure.session(*id, round));
                (*id, msg, Mutex::new(Some(session)))
            })
            .collect();
        let results = run_parallel(self.config.workers, &slots, |(id, msg, slot)| {
            if let Some(f) = self.secure_absence(round, *id, step) {
                slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                return Err(f);
            }
            let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
            let session = guard
                .as_mut()
                .ok_or_else(|| ClientFailure::Error("no session".into()))?;
            let update = match fit {
                Some((global, tasks)) => {
                    let ins = tasks
                        .iter()
                        .find(|(c, _)| c == id)
                        .map(|(_, ins)| ins)
                        .ok_or_else(|| ClientFailure::Error("no fit task".into()))?;
                    let mut client = self.open(*id)?;
                    let u = self.pipeline.fit(client.as_mut(), *id, global, ins);
                    if let Some(p) = self.on_progress {
                        p(Progress::Fit(*id));
                    }
                    Some((u?, global))
                }
                None => None,
            };
            let bytes = session
                .answer(msg, update.as_ref().map(|(u, g)| (u, *g)))
                .map_err(ClientFailure::Error)?;
            Ok(SecureAnswer {
                bytes,
                fit: update.map(|(u, _)| FitReport::of(&u)),
            })
        });
        let sessions = self.sessions.get_mut().unwrap_or_else(|e| e.into_inner());
        for (id, _, slot) in slots {
            if let Some(s) = slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
                sessions.insert(id, s);
            }
        }
        messages.iter().map(|(c, _)| *c).zip(results).collect()
    }

    fn evaluate(
        &mut self,
        round: u32,
        global: &ParamSet,
        clients: &[ClientId],
    ) -> Vec<(ClientId, Result<Option<EvalOutcome>, ClientFailure>)> {
        let results = run_parallel(self.config.workers, clients, |id| {
            let r = match self.absence(round, *id, "eval") {
                Some(f) => Err(f),
                None => self
                    .open(*id)
                    .and_then(|mut c| c.evaluate(global).map_err(ClientFailure::Error)),
            };
            if let Some(p) = self.on_progress {
                p(Progress::Evaluate(*id));
            }
            r
        });
        clients.iter().copied().zip(results).collect()
    }
}

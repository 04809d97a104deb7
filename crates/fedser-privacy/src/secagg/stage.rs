//! Secure aggregation in fedser-fl's round: [`SecAggStage`] is the server's
//! [`SecureSum`], [`SecAggParticipant`] the clients' side, and the messages between them are
//! CBOR. A client's update is encoded before masking: batch-norm variances become second
//! moments (so the pooled variance comes from sums), it is weighted (`w = min(examples,
//! cap) / cap`, or `w = 1` under DP, where weights must be uniform), each coordinate is
//! clamped to `±range`, and `w·range` is appended so the server can divide the sum of `w·Δ`
//! by the sum of `w`. Quantisation is [`Quantizer`]'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fedser_core::{ParamSet, ParamTensor};
use fedser_fl::pipeline::{RECORDED_EXAMPLES, RecordUpdates};
use fedser_fl::secure::{
    SecureAnswer, SecureClient, SecureSession, SecureStep, SecureSum, from_second_moments,
    to_second_moments,
};
use fedser_fl::{ClientFailure, ClientId, Update, flat, seed};
use serde::{Deserialize, Serialize};

use super::{
    AdvertiseKeys, EncryptedShare, MaskedInput, Quantizer, Roster, SecAggClient, SecAggConfig,
    SecAggError, SecAggServer, ShareKeys, UnmaskRequest, UnmaskResponse,
};

/// How a run uses secure aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecAggSettings {
    /// Shares needed to reconstruct a secret; `None`: two thirds of a group.
    pub threshold: Option<usize>,
    /// Neighbours per client; `None`: `2·⌈log2 n⌉` (SecAgg+), the full graph for small rounds.
    pub neighbours: Option<usize>,
    /// Sums are modulo `2^bits`.
    pub bits: u32,
    /// Largest absolute value of an update coordinate (larger ones are clamped).
    pub range: f64,
    /// Uniform weights (DP-FedAvg); otherwise `min(examples, weight_cap) / weight_cap`.
    pub uniform_weights: bool,
    pub weight_cap: f64,
    /// Derives each round's public graph seed.
    pub seed: u64,
}

impl SecAggSettings {
    /// The neighbours used for a round of `n` participants.
    pub fn neighbours_for(&self, n: usize) -> usize {
        self.neighbours.unwrap_or_else(|| {
            let log = (n.max(2) as f64).log2().ceil() as usize;
            (2 * log).max(2)
        })
    }

    /// The round's protocol settings.
    pub fn config(
        &self,
        round: u32,
        participants: &[ClientId],
        len: usize,
    ) -> Result<SecAggConfig, SecAggError> {
        let ids: Vec<u64> = participants.iter().map(|&c| c as u64).collect();
        let mut cfg = SecAggConfig::new(
            round,
            ids,
            self.neighbours_for(participants.len()),
            seed::derive(self.seed, round, 0, "secagg-graph"),
            self.bits,
            len + 1,
        );
        if let Some(t) = self.threshold {
            cfg.threshold = t;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum ToClient {
    Setup {
        cfg: SecAggConfig,
        settings: SecAggSettings,
    },
    Roster(Roster),
    Fit(Vec<EncryptedShare>),
    Unmask(UnmaskRequest),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum FromClient {
    Keys(AdvertiseKeys),
    Shares(ShareKeys),
    Input(MaskedInput),
    Unmask(UnmaskResponse),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    msg: FromClient,
    /// Seconds of cryptography this step took on the client.
    crypto_seconds: f64,
    /// Coordinates clamped to the range (fit step).
    clamped: u64,
}

fn to_cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("serialising to memory cannot fail");
    out
}

fn from_cbor<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    ciborium::from_reader(bytes).map_err(|e| format!("undecodable message: {e}"))
}

/// What a round of secure aggregation did (`"secagg"` in `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SecAggRecord {
    pub participants: usize,
    pub threshold: usize,
    pub neighbours: usize,
    pub bits: u32,
    /// Clients that completed each phase: advertise, share, masked input, unmask.
    pub clients_per_phase: [usize; 4],
    /// Clients lost in each phase.
    pub dropped_per_phase: [usize; 4],
    /// Mean bytes a client sent and received in each phase.
    pub bytes_per_client: [f64; 4],
    /// Mean seconds of cryptography per client (all phases) and on the server.
    pub client_crypto_seconds: f64,
    pub server_crypto_seconds: f64,
    /// Largest error of a coordinate of the decoded sum (quantisation).
    pub error_bound: f64,
    /// Coordinates clamped to the range, over all clients.
    pub clamped: u64,
    /// Why messages or clients were refused (first ten).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub refusals: Vec<String>,
}

/// The server's side of secure aggregation in a round.
pub struct SecAggStage {
    settings: SecAggSettings,
    round: Option<Round>,
    record: Option<SecAggRecord>,
    record_dir: Option<PathBuf>,
}

struct Round {
    server: SecAggServer,
    quant: Quantizer,
    global: Vec<f32>,
    layout: ParamSet,
    phase: usize,
    alive: Vec<ClientId>,
    record: SecAggRecord,
    client_seconds: f64,
    down: [u64; 4],
    up: [u64; 4],
}

impl SecAggStage {
    pub fn new(settings: SecAggSettings) -> Self {
        Self {
            settings,
            round: None,
            record: None,
            record_dir: None,
        }
    }

    /// Keeps what the server receives in the masked-input phase under `dir`, in the format
    /// of fedser-fl's `RecordUpdates` (each client's masked vector read as its update, the
    /// weight left out): the attacker's view that `fedser attack` measures.
    pub fn recording(mut self, dir: PathBuf) -> Self {
        self.record_dir = Some(dir);
        self
    }
}

/// Writes the masked vectors the server holds, decoded as if each were an update.
fn record_view(
    dir: &Path,
    round: u32,
    quant: &Quantizer,
    inputs: &BTreeMap<u64, MaskedInput>,
) -> Result<(), String> {
    let mut set = ParamSet::new();
    let mut examples = BTreeMap::new();
    for (client, input) in inputs {
        let mut values: Vec<f32> = quant
            .decode_sum(&input.vector)
            .iter()
            .map(|&v| v as f32)
            .collect();
        values.pop();
        let t = ParamTensor::new(vec![values.len()], values).map_err(|e| e.to_string())?;
        set.push(format!("client-{client:05}"), t)
            .map_err(|e| e.to_string())?;
        examples.insert(*client, 1usize);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let meta = BTreeMap::from([(
        RECORDED_EXAMPLES.to_string(),
        serde_json::to_string(&examples).unwrap_or_default(),
    )]);
    set.save(&RecordUpdates::round_file(dir, round), &meta)
        .map_err(|e| e.to_string())
}

impl SecureSum for SecAggStage {
    fn name(&self) -> &str {
        "secagg"
    }

    fn start(
        &mut self,
        round: u32,
        participants: &[ClientId],
        global: &ParamSet,
    ) -> Result<SecureStep, String> {
        self.record = None;
        let values = flat::flatten(global);
        let cfg = self
            .settings
            .config(round, participants, values.len())
            .map_err(|e| e.to_string())?;
        let quant = Quantizer::new(self.settings.range, participants.len(), self.settings.bits)
            .map_err(|e| e.to_string())?;
        let record = SecAggRecord {
            participants: participants.len(),
            threshold: cfg.threshold,
            neighbours: cfg.group_size() - 1,
            bits: cfg.bits,
            error_bound: quant.error_bound(),
            ..SecAggRecord::default()
        };
        let setup = to_cbor(&ToClient::Setup {
            cfg: cfg.clone(),
            settings: self.settings.clone(),
        });
        let out: Vec<_> = participants.iter().map(|&c| (c, setup.clone())).collect();
        let mut down = [0u64; 4];
        down[0] = (setup.len() * out.len()) as u64;
        self.round = Some(Round {
            server: SecAggServer::new(cfg).map_err(|e| e.to_string())?,
            quant,
            global: values,
            layout: global.clone(),
            phase: 0,
            alive: participants.to_vec(),
            record,
            client_seconds: 0.0,
            down,
            up: [0; 4],
        });
        Ok(SecureStep::Exchange(out))
    }

    fn advance(
        &mut self,
        answers: Vec<(ClientId, Result<SecureAnswer, ClientFailure>)>,
    ) -> Result<SecureStep, String> {
        let r = self
            .round
            .as_mut()
            .ok_or("secure aggregation: no round started")?;
        let result = r.advance(answers, self.record_dir.as_deref());
        if result.is_err() || matches!(result, Ok(SecureStep::Done { .. })) {
            let mut record = r.finish_record();
            if let Err(e) = &result {
                record.refusals.push(e.clone());
            }
            record.refusals.truncate(10);
            self.record = Some(record);
            self.round = None;
        }
        result
    }

    fn record(&self) -> Option<serde_json::Value> {
        self.record
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
    }
}

impl Round {
    fn advance(
        &mut self,
        answers: Vec<(ClientId, Result<SecureAnswer, ClientFailure>)>,
        record_dir: Option<&Path>,
    ) -> Result<SecureStep, String> {
        let phase = self.phase;
        let mut alive = Vec::new();
        let mut server_seconds = 0.0;
        for (client, answer) in answers {
            let env = match answer.map_err(|f| f.to_string()).and_then(|a| {
                self.up[phase] += a.bytes.len() as u64;
                from_cbor::<Envelope>(&a.bytes)
            }) {
                Ok(env) => env,
                Err(e) => {
                    if !e.contains("dropped") {
                        self.record.refusals.push(format!("client {client}: {e}"));
                    }
                    continue;
                }
            };
            self.client_seconds += env.crypto_seconds;
            self.record.clamped += env.clamped;
            let id = client as u64;
            let t = Instant::now();
            let taken = match (phase, env.msg) {
                (0, FromClient::Keys(m)) => self.server.receive_keys(id, m),
                (1, FromClient::Shares(m)) => self.server.receive_shares(id, m),
                (2, FromClient::Input(m)) => self.server.receive_input(id, m),
                (3, FromClient::Unmask(m)) => self.server.receive_unmask(id, m),
                _ => Err(SecAggError::Malformed {
                    client: id,
                    reason: "a message for another phase".into(),
                }),
            };
            server_seconds += t.elapsed().as_secs_f64();
            match taken {
                Ok(()) => alive.push(client),
                Err(e) => self.record.refusals.push(e.to_string()),
            }
        }
        if phase == 2
            && let Some(dir) = record_dir
        {
            let round = self.server.config().round;
            record_view(dir, round, &self.quant, self.server.view().0)?;
        }
        self.record.clients_per_phase[phase] = alive.len();
        self.record.dropped_per_phase[phase] = self.alive.len() - alive.len();
        self.alive = alive;
        self.phase += 1;
        let t = Instant::now();
        let next = self.next_step(phase);
        server_seconds += t.elapsed().as_secs_f64();
        self.record.server_crypto_seconds += server_seconds;
        next
    }

    fn next_step(&mut self, phase: usize) -> Result<SecureStep, String> {
        let err = |e: SecAggError| e.to_string();
        match phase {
            0 => {
                let rosters = self.server.close_advertise().map_err(err)?;
                Ok(SecureStep::Exchange(self.send(
                    1,
                    rosters,
                    ToClient::Roster,
                )))
            }
            1 => {
                let inboxes = self.server.close_sharing().map_err(err)?;
                Ok(SecureStep::Fit(self.send(2, inboxes, ToClient::Fit)))
            }
            2 => {
                let req = self.server.close_input().map_err(err)?;
                let out: BTreeMap<u64, UnmaskRequest> =
                    req.survivors.iter().map(|&s| (s, req.clone())).collect();
                Ok(SecureStep::Exchange(self.send(3, out, ToClient::Unmask)))
            }
            _ => {
                let unmasked = self.server.finish().map_err(err)?;
                let sums = self.quant.decode_sum(&unmasked.sum);
                let (values, weight) = sums.split_at(sums.len() - 1);
                let total = weight[0] / self.settings_range();
                if !(total.is_finite() && total > 0.0) {
                    return Err(format!("the summed weight is {total}: nothing to average"));
                }
                let mut mean: Vec<f32> = values.iter().map(|v| (v / total) as f32).collect();
                from_second_moments(&self.global, &self.layout, &mut mean);
                Ok(SecureStep::Done {
                    mean,
                    contributors: unmasked.survivors.iter().map(|&s| s as ClientId).collect(),
                })
            }
        }
    }

    fn settings_range(&self) -> f64 {
        self.quant.range
    }

    fn send<T>(
        &mut self,
        phase: usize,
        msgs: BTreeMap<u64, T>,
        wrap: impl Fn(T) -> ToClient,
    ) -> Vec<(ClientId, Vec<u8>)> {
        let out: Vec<(ClientId, Vec<u8>)> = msgs
            .into_iter()
            .map(|(c, m)| (c as ClientId, to_cbor(&wrap(m))))
            .collect();
        self.down[phase] += out.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        out
    }

    fn finish_record(&mut self) -> SecAggRecord {
        let mut record = self.record.clone();
        let n = record.participants.max(1) as f64;
        for p in 0..4 {
            record.bytes_per_client[p] = (self.down[p] + self.up[p]) as f64 / n;
        }
        record.client_crypto_seconds = self.client_seconds / n;
        record.refusals.extend(self.server.refusals.iter().cloned());
        record.refusals.dedup();
        record
    }
}

/// The clients' side: a session per client and round.
pub struct SecAggParticipant;

impl SecureClient for SecAggParticipant {
    fn session(&self, client: ClientId, _round: u32) -> Box<dyn SecureSession> {
        Box::new(Session {
            id: client as u64,
            state: None,
        })
    }
}

struct Session {
    id: u64,
    state: Option<(SecAggClient, SecAggConfig, SecAggSettings)>,
}

impl SecureSession for Session {
    fn answer(&mut self, msg: &[u8], fit: Option<(&Update, &ParamSet)>) -> Result<Vec<u8>, String> {
        let msg: ToClient = from_cbor(msg)?;
        let started = Instant::now();
        let mut clamped = 0;
        let reply = match msg {
            ToClient::Setup { cfg, settings } => {
                let mut client = SecAggClient::with_os_entropy(self.id, cfg.clone())
                    .map_err(|e| e.to_string())?;
                let keys = client.advertise().map_err(|e| e.to_string())?;
                self.state = Some((client, cfg, settings));
                FromClient::Keys(keys)
            }
            ToClient::Roster(roster) => {
                let (client, ..) = self.state.as_mut().ok_or("a roster before the setup")?;
                FromClient::Shares(client.share_keys(&roster).map_err(|e| e.to_string())?)
            }
            ToClient::Fit(inbox) => {
                let (client, cfg, settings) =
                    self.state.as_mut().ok_or("a fit before the setup")?;
                let (update, global) = fit.ok_or("a fit message without a fit")?;
                let (values, c) = encode(update, global, settings, cfg)?;
                clamped = c;
                FromClient::Input(
                    client
                        .masked_input(&inbox, &values)
                        .map_err(|e| e.to_string())?,
                )
            }
            ToClient::Unmask(req) => {
                let (client, ..) = self.state.as_mut().ok_or("unmasking before the setup")?;
                FromClient::Unmask(client.unmask(&req).map_err(|e| e.to_string())?)
            }
        };
        Ok(to_cbor(&Envelope {
            msg: reply,
            crypto_seconds: started.elapsed().as_secs_f64(),
            clamped,
        }))
    }
}

/// The update as the vector to mask: weighted, clamped, second moments, quantised.
fn encode(
    update: &Update,
    global: &ParamSet,
    settings: &SecAggSettings,
    cfg: &SecAggConfig,
) -> Result<(Vec<u32>, u64), String> {
    global
        .check_same_layout(&update.delta)
        .map_err(|e| format!("wrong shape: {e}"))?;
    update
        .delta
        .check_finite()
        .map_err(|e| format!("not finite: {e}"))?;
    let g = flat::flatten(global);
    let mut values = flat::flatten(&update.delta);
    to_second_moments(&g, global, &mut values);
    let w = if settings.uniform_weights {
        1.0
    } else {
        (update.examples as f64).min(settings.weight_cap) / settings.weight_cap
    };
    let range = settings.range;
    let mut clamped = 0u64;
    for v in &mut values {
        let x = f64::from(*v) * w;
        if x.abs() > range {
            clamped += 1;
        }
        *v = x.clamp(-range, range) as f32;
    }
    values.push((w * range) as f32);
    let quant =
        Quantizer::new(range, cfg.participants.len(), cfg.bits).map_err(|e| e.to_string())?;
    let mut rounding = [0u8; 32];
    rounding[..8].copy_from_slice(
        &seed::derive(
            cfg.graph_seed,
            cfg.round,
            update.client as u64,
            "secagg-rounding",
        )
        .to_le_bytes(),
    );
    let q = quant.encode(&values, rounding).map_err(|e| e.to_string())?;
    Ok((q, clamped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedser_fl::strategy::LocalTraining;
    use fedser_fl::{
        Client, ClientFactory, ClientPipeline, EvalOutcome, FedStrategy, FitInstructions,
        FitOutcome, Sampling, Server, Simulation, SimulationConfig, StrategySpec,
    };

    /// Pulls `w` towards its target; its batch-norm statistics are its own mean and
    /// variance.
    #[derive(Clone)]
    struct Toy {
        target: [f32; 3],
        stats: (f32, f32),
        examples: usize,
    }

    fn model(w: &[f32], mean: f32, var: f32) -> ParamSet {
        let mut p = ParamSet::new();
        p.push("w", ParamTensor::new(vec![3], w.to_vec()).unwrap())
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
    }

    impl Client for Toy {
        fn fit(&mut self, global: &ParamSet, ins: &FitInstructions) -> Result<FitOutcome, String> {
            let mut w = global.get("w").unwrap().data.clone();
            for _ in 0..ins.epochs {
                for (x, t) in w.iter_mut().zip(self.target) {
                    *x -= ins.learning_rate as f32 * (*x - t);
                }
            }
            Ok(FitOutcome {
                params: model(&w, self.stats.0, self.stats.1),
                examples: self.examples,
                loss: 0.5,
            })
        }
        fn evaluate(&mut self, _g: &ParamSet) -> Result<Option<EvalOutcome>, String> {
            Ok(None)
        }
    }

    struct Factory(Vec<Toy>);
    impl ClientFactory for Factory {
        fn open(&self, id: ClientId) -> Result<Box<dyn Client>, String> {
            Ok(Box::new(self.0[id].clone()))
        }
    }

    fn toys(n: usize) -> Vec<Toy> {
        (0..n)
            .map(|i| Toy {
                target: [i as f32 * 0.1, 1.0 - i as f32 * 0.05, 0.3],
                stats: (i as f32 * 0.2, 1.0 + i as f32 * 0.1),
                examples: 5 + i * 3,
            })
            .collect()
    }

    /// Every client trains every round; no client evaluates.
    fn every_client() -> Sampling {
        Sampling {
            fraction_fit: 1.0,
            min_fit_clients: 1,
            fraction_evaluate: 0.0,
            min_evaluate_clients: 0,
            poisson: None,
        }
    }

    fn server(rule: &str, n: usize) -> Server<FedStrategy> {
        let strategy = FedStrategy::new(
            StrategySpec::parse(rule).unwrap(),
            every_client(),
            LocalTraining {
                epochs: 2,
                batch_size: 1,
                learning_rate: 0.3,
            },
            3,
        )
        .with_statistics(["bn.running_mean".to_string(), "bn.running_var".to_string()]);
        Server::new(strategy, model(&[0.0; 3], 0.0, 1.0), (0..n).collect(), 1)
    }

    fn settings() -> SecAggSettings {
        SecAggSettings {
            threshold: None,
            neighbours: Some(4),
            bits: 32,
            range: 4.0,
            uniform_weights: false,
            weight_cap: 100.0,
            seed: 11,
        }
    }

    fn sim(f: &Factory, dropout: f64) -> Simulation<'_, Factory> {
        let config = SimulationConfig {
            workers: 2,
            dropout,
            straggler: 0.0,
            seed: 5,
        };
        Simulation::new(f, config, ClientPipeline::new()).with_secure(&SecAggParticipant)
    }

    #[test]
    fn secure_rounds_reach_the_plain_rounds_model_within_the_quantisation_error() {
        let factory = Factory(toys(12));
        let mut plain = server("fedavg", 12);
        let mut plain_sim = Simulation::new(
            &factory,
            SimulationConfig {
                workers: 2,
                dropout: 0.0,
                straggler: 0.0,
                seed: 5,
            },
            ClientPipeline::new(),
        );
        let mut secure = server("fedavg", 12).with_secure(Box::new(SecAggStage::new(settings())));
        let mut secure_sim = sim(&factory, 0.0);
        for round in 1..=4 {
            plain.run_round(round, &mut plain_sim, None).unwrap();
            let r = secure.run_round(round, &mut secure_sim, None).unwrap();
            assert!(r.aggregated, "round {round}: {:?}", r.note);
            assert_eq!(r.accepted, 12);
            let rec: SecAggRecord =
                serde_json::from_value(r.stage_records["secagg"].clone()).unwrap();
            assert_eq!(rec.clients_per_phase, [12; 4]);
            assert!(rec.bytes_per_client.iter().all(|b| *b > 0.0));
            assert!(
                r.clients.iter().all(|c| c.examples == 0),
                "counts stay hidden"
            );
        }
        // Weights (example-weighted means) and the pooled batch-norm variance agree.
        for (name, a) in plain.global.iter() {
            let b = &secure.global.get(name).unwrap().data;
            for (x, y) in a.data.iter().zip(b) {
                assert!((x - y).abs() < 1e-5, "{name}: {x} vs {y}");
            }
        }
        // The pooled variance is more than the mean of the variances (the means differ).
        assert!(secure.global.get("bn.running_var").unwrap().data[0] > 1.6);
    }

    /// Sends back the model it was given: its update is zero, so whatever moves the model
    /// is the noise.
    #[derive(Clone)]
    struct Still;
    impl Client for Still {
        fn fit(&mut self, global: &ParamSet, _ins: &FitInstructions) -> Result<FitOutcome, String> {
            Ok(FitOutcome {
                params: global.clone(),
                examples: 3,
                loss: 0.1,
            })
        }
        fn evaluate(&mut self, _g: &ParamSet) -> Result<Option<EvalOutcome>, String> {
            Ok(None)
        }
    }
    struct Stills;
    impl ClientFactory for Stills {
        fn open(&self, _id: ClientId) -> Result<Box<dyn Client>, String> {
            Ok(Box::new(Still))
        }
    }

    #[test]
    fn distributed_noise_sums_to_the_central_noise_under_secure_aggregation() {
        use crate::{DpClientStage, DpMode, DpServerStage, DpSettings, PrivacyRecord};
        let dim = 4000;
        let zero = {
            let mut p = ParamSet::new();
            p.push("w", ParamTensor::new(vec![dim], vec![0.0; dim]).unwrap())
                .unwrap();
            p
        };
        let dp = DpSettings {
            mode: DpMode::Distributed,
            clip: 0.5,
            noise_multiplier: 1.0,
            delta: 1e-5,
            sampling_rate: 1.0,
            clients: 10,
            adaptive: None,
            target_epsilon: None,
            poisson: true,
            seed: 3,
            reproducible_noise: true,
            min_contributors: 10,
        };
        let strategy = FedStrategy::new(
            StrategySpec::fedavg(),
            every_client(),
            LocalTraining {
                epochs: 1,
                batch_size: 1,
                learning_rate: 0.1,
            },
            3,
        );
        let pipeline =
            fedser_fl::ServerPipeline::new().with_stage(Box::new(DpServerStage::new(dp).unwrap()));
        let mut sa = settings();
        sa.range = 0.5 * 7.0;
        sa.uniform_weights = true;
        let mut server = Server::new(strategy, zero.clone(), (0..10).collect(), 1)
            .with_pipeline(pipeline)
            .with_secure(Box::new(SecAggStage::new(sa)));
        let config = SimulationConfig {
            workers: 2,
            dropout: 0.0,
            straggler: 0.0,
            seed: 5,
        };
        let clients = ClientPipeline::new().with_stage(Box::new(DpClientStage));
        let mut sim = Simulation::new(&Stills, config, clients).with_secure(&SecAggParticipant);
        let r = server.run_round(1, &mut sim, None).unwrap();
        assert!(r.aggregated, "{:?}", r.note);
        let privacy: PrivacyRecord =
            serde_json::from_value(r.stage_records["privacy"].clone()).unwrap();
        // Each of 10 clients adds N(0, (z C / sqrt 10)^2); the mean over q N = 10 has std
        // z C / 10 = 0.05: the central noise, without the server adding any.
        assert!((privacy.noise_std - 0.05).abs() < 1e-9, "{privacy:?}");
        assert_eq!(
            privacy.clipped_fraction, None,
            "hidden by secure aggregation"
        );
        let moved = &server.global.get("w").unwrap().data;
        let var = moved.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / dim as f64;
        assert!((var.sqrt() - 0.05).abs() < 0.004, "std {}", var.sqrt());
    }

    #[test]
    fn rounds_survive_dropouts_and_robust_rules_are_refused_with_the_reason() {
        let factory = Factory(toys(20));
        let mut secure = server("fedavg", 20).with_secure(Box::new(SecAggStage::new(settings())));
        let mut s = sim(&factory, 0.2);
        let mut lost = 0;
        for round in 1..=3 {
            let r = secure.run_round(round, &mut s, None).unwrap();
            let rec: SecAggRecord =
                serde_json::from_value(r.stage_records["secagg"].clone()).unwrap();
            lost += rec.dropped_per_phase.iter().sum::<usize>();
            if r.aggregated {
                assert_eq!(r.accepted, rec.clients_per_phase[2]);
            } else {
                assert!(
                    r.note
                        .as_deref()
                        .unwrap_or("")
                        .contains("secure aggregation")
                );
            }
        }
        assert!(lost > 0, "the dropouts were drawn");
        let mut median = server("median", 20).with_secure(Box::new(SecAggStage::new(settings())));
        let r = median.run_round(1, &mut sim(&factory, 0.0), None).unwrap();
        assert!(!r.aggregated);
        let note = r.note.unwrap();
        assert!(note.contains("reads individual updates"), "{note}");
    }
}

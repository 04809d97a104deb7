//! The server side of a network round: a gRPC service (tonic, TLS by rustls) that enrolled
//! clients poll for tasks and submit results to, and [`NetExecutor`], which implements
//! fedser-fl's `Executor` over the connected clients so the round logic is the simulation's.
//! Tasks wait for their client; a round closes at its deadline, and a client that has not
//! answered by then is a straggler (still connected) or dropped (gone). Results for another
//! round, from another client, twice, oversized or undecodable are refused with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use fedser_core::ParamSet;
use fedser_fl::{ClientFailure, ClientId, EvalOutcome, Executor, FitInstructions, Update};
use sha2::{Digest, Sha256};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::identity::{AuthError, Verifier};
use crate::proto::federation_server::{Federation, FederationServer};
use crate::proto::*;
use crate::{CHUNK_BYTES, NetError, PROTOCOL, ResultMeta, SecureFitMeta};
use fedser_fl::secure::{FitReport, SecureAnswer};

/// How the server runs its rounds.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// A round's results must arrive within this.
    pub round_deadline: Duration,
    /// A client not heard from for this long is no longer counted as connected.
    pub client_timeout: Duration,
    /// Longest a task poll is held open.
    pub poll: Duration,
    /// Largest result a client may send, in bytes.
    pub max_result_bytes: u64,
    /// The run's settings every client receives on hello (JSON; the binary decides).
    pub settings_json: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            round_deadline: Duration::from_secs(600),
            client_timeout: Duration::from_secs(60),
            poll: Duration::from_secs(10),
            max_result_bytes: 256 << 20,
            settings_json: "{}".into(),
        }
    }
}

/// A task waiting for its client.
#[derive(Clone)]
enum Task {
    Fit {
        round: u32,
        ins: FitInstructions,
    },
    Evaluate {
        round: u32,
    },
    /// A step of a secure protocol: its message, and with `ins` a fit before the answer.
    Secure {
        round: u32,
        step: u32,
        message: Arc<Vec<u8>>,
        ins: Option<FitInstructions>,
    },
}

impl Task {
    /// The kind a result must name, and its round.
    fn expects(&self) -> (String, u32) {
        match self {
            Task::Fit { round, .. } => ("fit".into(), *round),
            Task::Evaluate { round } => ("evaluate".into(), *round),
            Task::Secure { round, step, .. } => (format!("secure:{step}"), *round),
        }
    }
}

enum Answer {
    Fit(Result<Update, ClientFailure>),
    Evaluate(Result<Option<EvalOutcome>, ClientFailure>),
    Secure(Result<SecureAnswer, ClientFailure>),
}

#[derive(Default)]
struct State {
    /// Clients that said hello, with when they were last heard from.
    connected: BTreeMap<ClientId, Instant>,
    /// The round's tasks not yet handed out / handed out and not yet answered.
    pending: BTreeMap<ClientId, Task>,
    taken: BTreeSet<ClientId>,
    answers: BTreeMap<ClientId, Answer>,
    /// The model the current tasks work on, as safetensors bytes.
    global: Arc<Vec<u8>>,
    round: u32,
    finished: bool,
    /// The latest refusals, for the operator (client, reason), and how many there were.
    refusals: std::collections::VecDeque<(Option<ClientId>, String)>,
    refused: u64,
    /// Secure steps posted in the current round.
    secure_step: (u32, u32),
}

/// Refusals kept for the operator (older ones are only counted).
const KEEP_REFUSALS: usize = 1000;

impl State {
    fn note_refusal(&mut self, client: Option<ClientId>, reason: String) {
        self.refused += 1;
        if self.refusals.len() == KEEP_REFUSALS {
            self.refusals.pop_front();
        }
        self.refusals.push_back((client, reason));
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the executor when an answer arrives.
    answered: Condvar,
    /// Wakes polling clients when tasks are posted.
    posted: tokio::sync::Notify,
    verifier: Mutex<Verifier>,
    options: ServerOptions,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn verify(
        &self,
        auth: Option<&Auth>,
        method: &str,
        fields: &str,
        payload: &[u8],
        claimed: Option<u64>,
    ) -> Result<ClientId, Status> {
        let result = self
            .verifier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .verify(auth, method, fields, payload, claimed);
        result.map_err(|e| {
            tracing::warn!("refused a {method} request: {e}");
            self.lock()
                .note_refusal(claimed.map(|c| c as usize), e.to_string());
            match e {
                AuthError::Malformed(_) => Status::invalid_argument(e.to_string()),
                _ => Status::unauthenticated(e.to_string()),
            }
        })
    }
}

/// The running server: its executor for the round logic, and the service's address.
pub struct NetServer {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
    pub local_addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// TLS material of the server (PEM), or none for loopback experiments.
pub enum ServerTls {
    Pem { cert: Vec<u8>, key: Vec<u8> },
    Insecure,
}

impl NetServer {
    /// Binds `addr` and serves in background threads until dropped.
    pub fn start(
        addr: SocketAddr,
        tls: ServerTls,
        verifier: Verifier,
        options: ServerOptions,
    ) -> Result<Self, NetError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| NetError::Io(e.to_string()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            answered: Condvar::new(),
            posted: tokio::sync::Notify::new(),
            verifier: Mutex::new(verifier),
            options,
        });
        // SO_REUSEADDR: a restarted server takes its port back at once, even while the
        // connections of the one before linger in TIME_WAIT.
        let listener = runtime
            .block_on(async {
                let socket = if addr.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()?
                } else {
                    tokio::net::TcpSocket::new_v6()?
                };
                socket.set_reuseaddr(true)?;
                socket.bind(addr)?;
                socket.listen(1024)
            })
            .map_err(|e| NetError::Io(format!("cannot listen on {addr}: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| NetError::Io(e.to_string()))?;
        let mut builder = tonic::transport::Server::builder();
        if let ServerTls::Pem { cert, key } = tls {
            let identity = tonic::transport::Identity::from_pem(cert, key);
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .map_err(|e| NetError::Tls(e.to_string()))?;
        }
        let service = FederationServer::new(Service {
            shared: shared.clone(),
        })
        .max_decoding_message_size(2 * CHUNK_BYTES);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let router = builder.add_service(service);
        runtime.spawn(async move {
            let served = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!("the federation service stopped: {e}");
            }
        });
        Ok(Self {
            shared,
            runtime,
            local_addr,
            shutdown: Some(tx),
        })
    }

    /// The executor driving rounds over this server's clients.
    pub fn executor(&self) -> NetExecutor {
        NetExecutor {
            shared: self.shared.clone(),
        }
    }

    /// Clients connected now.
    pub fn connected(&self) -> Vec<ClientId> {
        connected(&self.shared)
    }

    /// Waits until at least `n` clients are connected or `timeout` passes; returns how many.
    pub fn wait_for_clients(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.connected().len();
            if now >= n || Instant::now() >= deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What was refused so far (client where known, reason).
    pub fn refusals(&self) -> Vec<(Option<ClientId>, String)> {
        self.shared.lock().refusals.iter().cloned().collect()
    }

    /// Tells polling clients the federation is over, then stops serving once every client
    /// has said goodbye, or after `grace`.
    pub fn finish(mut self, grace: Duration) {
        self.shared.lock().finished = true;
        self.shared.posted.notify_waiters();
        let until = Instant::now() + grace;
        while Instant::now() < until && !self.shared.lock().connected.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

fn connected(shared: &Shared) -> Vec<ClientId> {
    let timeout = shared.options.client_timeout;
    shared
        .lock()
        .connected
        .iter()
        .filter(|(_, seen)| seen.elapsed() <= timeout)
        .map(|(&c, _)| c)
        .collect()
}

/// fedser-fl's executor over the network: posts each task for its client and waits for the
/// answers until the round's deadline.
pub struct NetExecutor {
    shared: Arc<Shared>,
}

impl NetExecutor {
    /// Posts the tasks and waits for their answers until the deadline; returns the answers
    /// and the clients that took their task (whether or not they answered).
    fn run_tasks(
        &mut self,
        round: u32,
        global: Option<&ParamSet>,
        tasks: Vec<(ClientId, Task)>,
    ) -> (BTreeMap<ClientId, Answer>, BTreeSet<ClientId>) {
        let bytes = global.map(|g| g.to_safetensors(&BTreeMap::new()).unwrap_or_default());
        let ids: Vec<ClientId> = tasks.iter().map(|(c, _)| *c).collect();
        {
            let mut st = self.shared.lock();
            st.round = round;
            if let Some(bytes) = bytes {
                st.global = Arc::new(bytes);
            }
            st.pending = tasks.into_iter().collect();
            st.taken.clear();
            st.answers.clear();
        }
        self.shared.posted.notify_waiters();
        let deadline = Instant::now() + self.shared.options.round_deadline;
        let mut st = self.shared.lock();
        loop {
            if ids.iter().all(|c| st.answers.contains_key(c)) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Woken by each answer; re-checks at least every 100 ms.
            let wait = (deadline - now).min(Duration::from_millis(100));
            st = self
                .shared
                .answered
                .wait_timeout(st, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.pending.clear();
        let taken = std::mem::take(&mut st.taken);
        (std::mem::take(&mut st.answers), taken)
    }
}

/// Why a client gave no answer: it took its task and did not finish in time (a straggler), or
/// never came for it (dropped: gone, or not polling).
fn missing(taken: &BTreeSet<ClientId>, client: ClientId) -> ClientFailure {
    if taken.contains(&client) {
        ClientFailure::Straggler
    } else {
        ClientFailure::Dropped
    }
}

impl NetExecutor {}

impl Executor for NetExecutor {
    fn available(&mut self, _round: u32) -> Option<Vec<ClientId>> {
        Some(connected(&self.shared))
    }

    fn fit(
        &mut self,
        global: &ParamSet,
        tasks: &[(ClientId, FitInstructions)],
    ) -> Vec<(ClientId, Result<Update, ClientFailure>)> {
        let round = tasks.first().map_or(0, |(_, i)| i.round);
        let posted = tasks
            .iter()
            .map(|(c, ins)| {
                (
                    *c,
                    Task::Fit {
                        round,
                        ins: ins.clone(),
                    },
                )
            })
            .collect();
        let (mut answers, taken) = self.run_tasks(round, Some(global), posted);
        tasks
            .iter()
            .map(|(c, _)| {
                let answer = match answers.remove(c) {
                    Some(Answer::Fit(r)) => r,
                    _ => Err(missing(&taken, *c)),
                };
                (*c, answer)
            })
            .collect()
    }

    fn exchange(
        &mut self,
        round: u32,
        messages: &[(ClientId, Vec<u8>)],
        fit: Option<(&ParamSet, &[(ClientId, FitInstructions)])>,
    ) -> Vec<(ClientId, Result<SecureAnswer, ClientFailure>)> {
        let step = {
            let mut st = self.shared.lock();
            st.secure_step = match st.secure_step {
                (r, s) if r == round => (r, s + 1),
                _ => (round, 1),
            };
            st.secure_step.1
        };
        let posted = messages
            .iter()
            .map(|(c, m)| {
                let ins = fit.and_then(|(_, tasks)| {
                    tasks.iter().find(|(t, _)| t == c).map(|(_, i)| i.clone())
                });
                let task = Task::Secure {
                    round,
                    step,
                    message: Arc::new(m.clone()),
                    ins,
                };
                (*c, task)
            })
            .collect();
        let (mut answers, taken) = self.run_tasks(round, fit.map(|(g, _)| g), posted);
        messages
            .iter()
            .map(|(c, _)| {
                let answer = match answers.remove(c) {
                    Some(Answer::Secure(r)) => r,
                    _ => Err(missing(&taken, *c)),
                };
                (*c, answer)
            })
            .collect()
    }

    fn evaluate(
        &mut self,
        round: u32,
        global: &ParamSet,
        clients: &[ClientId],
    ) -> Vec<(ClientId, Result<Option<EvalOutcome>, ClientFailure>)> {
        let posted = clients
            .iter()
            .map(|&c| (c, Task::Evaluate { round }))
            .collect();
        let (mut answers, taken) = self.run_tasks(round, Some(global), posted);
        clients
            .iter()
            .map(|c| {
                let answer = match answers.remove(c) {
                    Some(Answer::Evaluate(r)) => r,
                    _ => Err(missing(&taken, *c)),
                };
                (*c, answer)
            })
            .collect()
    }
}

struct Service {
    shared: Arc<Shared>,
}

impl Service {
    /// Whether `first` answers the task open for client `id` (right kind, right round, not
    /// answered yet); marks the client as heard from.
    fn open_task(&self, id: ClientId, first: &ResultChunk) -> Result<(), String> {
        let mut st = self.shared.lock();
        st.connected.insert(id, Instant::now());
        let expected = match st.pending.get(&id) {
            Some(task) => task.expects(),
            None => {
                return Err(format!(
                    "no open task for round {} (late or unasked)",
                    first.round
                ));
            }
        };
        if (first.kind.as_str(), first.round) != (expected.0.as_str(), expected.1) {
            return Err(format!(
                "a {} result for round {}, but the open task is {} for round {}",
                first.kind, first.round, expected.0, expected.1
            ));
        }
        if st.answers.contains_key(&id) {
            return Err(format!("round {} already answered", first.round));
        }
        Ok(())
    }

    fn refuse(&self, id: ClientId, reason: String) -> SubmitReply {
        tracing::warn!("client {id}: result refused: {reason}");
        self.shared.lock().note_refusal(Some(id), reason.clone());
        SubmitReply {
            accepted: false,
            reason,
        }
    }
}

type TaskStream = Pin<Box<dyn Stream<Item = Result<TaskChunk, Status>> + Send>>;

fn one_chunk(kind: &str, round: u32) -> TaskStream {
    let chunk = TaskChunk {
        kind: kind.into(),
        round,
        ..TaskChunk::default()
    };
    Box::pin(tokio_stream::iter([Ok(chunk)]))
}

#[tonic::async_trait]
impl Federation for Service {
    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let r = request.into_inner();
        if r.protocol != PROTOCOL {
            return Err(Status::failed_precondition(format!(
                "protocol {} is not this server's {PROTOCOL}",
                r.protocol
            )));
        }
        let fields = format!("examples={}", r.examples);
        let id = self
            .shared
            .verify(r.auth.as_ref(), "hello", &fields, b"", None)?;
        self.shared.lock().connected.insert(id, Instant::now());
        tracing::info!("client {id} connected ({} examples)", r.examples);
        Ok(Response::new(HelloReply {
            protocol: PROTOCOL,
            client_id: id as u64,
            settings_json: self.shared.options.settings_json.clone(),
        }))
    }

    type GetTaskStream = TaskStream;

    async fn get_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<TaskStream>, Status> {
        let r = request.into_inner();
        let fields = format!("client={}", r.client_id);
        let id =
            self.shared
                .verify(r.auth.as_ref(), "get_task", &fields, b"", Some(r.client_id))?;
        let until = Instant::now() + self.shared.options.poll;
        loop {
            let notified = self.shared.posted.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                st.connected.insert(id, Instant::now());
                if st.finished {
                    return Ok(Response::new(one_chunk("done", st.round)));
                }
                // A client polls only between tasks: one that polls again while its task is
                // open and unanswered lost it in transit (or its result), so it gets it again.
                if let Some(task) = st.pending.get(&id).cloned()
                    && !st.answers.contains_key(&id)
                {
                    if st.taken.contains(&id) {
                        tracing::info!("client {id}: handing its task again (lost in transit)");
                    }
                    st.taken.insert(id);
                    let global = st.global.clone();
                    let none = Arc::new(Vec::new());
                    let stream = match task {
                        Task::Fit { round, ins } => {
                            let ins = serde_json::to_string(&ins).unwrap_or_default();
                            task_stream("fit".into(), round, ins, global, none)
                        }
                        Task::Evaluate { round } => {
                            task_stream("evaluate".into(), round, String::new(), global, none)
                        }
                        Task::Secure {
                            round,
                            step,
                            message,
                            ins: Some(ins),
                        } => {
                            let ins = serde_json::to_string(&ins).unwrap_or_default();
                            task_stream(format!("secure-fit:{step}"), round, ins, global, message)
                        }
                        Task::Secure {
                            round,
                            step,
                            message,
                            ins: None,
                        } => {
                            let empty = Arc::new(Vec::new());
                            task_stream(
                                format!("secure:{step}"),
                                round,
                                String::new(),
                                empty,
                                message,
                            )
                        }
                    };
                    return Ok(Response::new(stream));
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                let round = self.shared.lock().round;
                return Ok(Response::new(one_chunk("wait", round)));
            }
        }
    }

    async fn submit(
        &self,
        request: Request<Streaming<ResultChunk>>,
    ) -> Result<Response<SubmitReply>, Status> {
        let mut stream = request.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty result stream"))??;
        let max = self.shared.options.max_result_bytes;
        if first.total_bytes > max {
            return Err(Status::resource_exhausted(format!(
                "result of {} bytes is over the limit of {max}",
                first.total_bytes
            )));
        }
        // The first chunk is signed over the fields, the metadata and the data's SHA-256:
        // who sends it is checked before a byte of the body is read.
        let id = self.shared.verify(
            first.auth.as_ref(),
            "submit",
            &submit_fields(&first),
            first.meta_json.as_bytes(),
            Some(first.client_id),
        )?;
        if let Err(reason) = self.open_task(id, &first) {
            return Ok(Response::new(self.refuse(id, reason)));
        }
        let mut data = first.data.clone();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if data.len() as u64 + chunk.data.len() as u64 > first.total_bytes {
                return Err(Status::invalid_argument(
                    "the result is longer than it said",
                ));
            }
            data.extend_from_slice(&chunk.data);
        }
        if data.len() as u64 != first.total_bytes {
            return Err(Status::invalid_argument(format!(
                "the result has {} of the {} bytes it announced",
                data.len(),
                first.total_bytes
            )));
        }
        if hex::encode(Sha256::digest(&data)) != first.data_sha256 {
            return Ok(Response::new(
                self.refuse(id, "the data does not match its signed digest".into()),
            ));
        }
        let answer = decode_answer(&first, &data, id);
        // Checked again: the round may have closed while the body arrived.
        if let Err(reason) = self.open_task(id, &first) {
            return Ok(Response::new(self.refuse(id, reason)));
        }
        self.shared.lock().answers.insert(id, answer);
        self.shared.answered.notify_all();
        Ok(Response::new(SubmitReply {
            accepted: true,
            reason: String::new(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        let r = request.into_inner();
        let fields = format!("client={}", r.client_id);
        let id = self.shared.verify(
            r.auth.as_ref(),
            "heartbeat",
            &fields,
            b"",
            Some(r.client_id),
        )?;
        let mut st = self.shared.lock();
        st.connected.insert(id, Instant::now());
        Ok(Response::new(HeartbeatReply { round: st.round }))
    }

    async fn goodbye(
        &self,
        request: Request<GoodbyeRequest>,
    ) -> Result<Response<GoodbyeReply>, Status> {
        let r = request.into_inner();
        let fields = format!("client={}", r.client_id);
        let id = self
            .shared
            .verify(r.auth.as_ref(), "goodbye", &fields, b"", Some(r.client_id))?;
        self.shared.lock().connected.remove(&id);
        self.shared.answered.notify_all();
        tracing::info!("client {id} left");
        Ok(Response::new(GoodbyeReply {}))
    }
}

/// What a result's signature covers besides its bytes.
pub(crate) fn submit_fields(c: &ResultChunk) -> String {
    format!(
        "client={}|round={}|kind={}|bytes={}|sha256={}|error={}",
        c.client_id, c.round, c.kind, c.total_bytes, c.data_sha256, c.error
    )
}

/// The task stream: a header chunk (with a secure step's message), then the model in chunks.
fn task_stream(
    kind: String,
    round: u32,
    ins: String,
    global: Arc<Vec<u8>>,
    message: Arc<Vec<u8>>,
) -> TaskStream {
    let total = global.len() as u64;
    let mut chunks = vec![Ok(TaskChunk {
        kind,
        round,
        instructions_json: ins,
        total_bytes: total,
        data: Vec::new(),
        message: message.to_vec(),
    })];
    for part in global.chunks(CHUNK_BYTES) {
        chunks.push(Ok(TaskChunk {
            data: part.to_vec(),
            ..TaskChunk::default()
        }));
    }
    Box::pin(tokio_stream::iter(chunks))
}

/// A submitted result as the round logic takes it; anything undecodable is a rejection.
fn decode_answer(first: &ResultChunk, data: &[u8], id: ClientId) -> Answer {
    let failure = |reason: String| ClientFailure::Rejected(reason);
    match first.kind.as_str() {
        "fit" => Answer::Fit(if !first.error.is_empty() {
            Err(ClientFailure::Error(first.error.clone()))
        } else {
            serde_json::from_str::<ResultMeta>(&first.meta_json)
                .map_err(|e| failure(format!("bad result metadata: {e}")))
                .and_then(|meta| {
                    let (delta, _) = ParamSet::from_safetensors(data)
                        .map_err(|e| failure(format!("bad update: {e}")))?;
                    Ok(Update {
                        client: id,
                        delta,
                        examples: meta.examples,
                        loss: meta.loss,
                        seconds: meta.seconds,
                        stages: meta.stages,
                    })
                })
        }),
        kind if kind.starts_with("secure:") => Answer::Secure(if !first.error.is_empty() {
            Err(ClientFailure::Error(first.error.clone()))
        } else {
            let fit = (!first.meta_json.is_empty())
                .then(|| serde_json::from_str::<SecureFitMeta>(&first.meta_json))
                .transpose()
                .map_err(|e| failure(format!("bad result metadata: {e}")));
            fit.map(|fit| SecureAnswer {
                bytes: data.to_vec(),
                fit: fit.map(|m| FitReport {
                    loss: m.loss,
                    seconds: m.seconds,
                    stages: m.stages,
                }),
            })
        }),
        _ => Answer::Evaluate(if !first.error.is_empty() {
            Err(ClientFailure::Error(first.error.clone()))
        } else {
            serde_json::from_str::<Option<EvalOutcome>>(&first.meta_json)
                .map_err(|e| failure(format!("bad evaluation: {e}")))
        }),
    }
}

//! The client side: connect to a server over TLS, prove the enrolled identity on every
//! request, then poll for tasks and run each through fedser-fl's client pipeline (fit) or the
//! client's evaluation, until the server says the federation is over. Connection failures are
//! retried with exponential backoff and jitter, within a bounded total wait.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fedser_core::ParamSet;
use fedser_fl::{Client, ClientPipeline, FitInstructions};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::identity::Identity;
use crate::proto::federation_client::FederationClient;
use crate::proto::*;
use crate::server::submit_fields;
use crate::{CHUNK_BYTES, NetError, PROTOCOL, ResultMeta, SecureFitMeta};
use fedser_fl::secure::{SecureClient, SecureSession};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `https://HOST:PORT` (or `http://` with `insecure`).
    pub server: String,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// Plain TCP, for loopback experiments only.
    pub insecure: bool,
    /// Give up after failing to reach the server for this long.
    pub max_wait: Duration,
    /// Training examples this client holds (told to the server on hello).
    pub examples: u64,
    /// Largest task (global model) accepted, in bytes.
    pub max_task_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            server: "https://127.0.0.1:7878".into(),
            ca_pem: None,
            insecure: false,
            max_wait: Duration::from_secs(120),
            examples: 0,
            max_task_bytes: 256 << 20,
        }
    }
}

/// What a session did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Served {
    pub fits: usize,
    pub evaluations: usize,
    /// Results the server refused, with its reasons.
    pub refused: Vec<String>,
}

/// A connection to a federation, after hello.
pub struct Connection {
    runtime: tokio::runtime::Runtime,
    rpc: FederationClient<Channel>,
    identity: Identity,
    options: ClientOptions,
    pub client_id: u64,
    /// The run's settings the server sent (JSON).
    pub settings_json: String,
    /// The client's side of a secure protocol, and its session of the current round.
    secure: Option<Box<dyn SecureClient>>,
    session: Option<(u32, Box<dyn SecureSession>)>,
}

async fn channel(options: &ClientOptions) -> Result<Channel, NetError> {
    let mut endpoint = Endpoint::from_shared(options.server.clone())
        .map_err(|e| NetError::Config(format!("server address {}: {e}", options.server)))?
        .connect_timeout(Duration::from_secs(5));
    if !options.insecure {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &options.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| NetError::Tls(e.to_string()))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| NetError::Unreachable(format!("{}: {e}", options.server)))
}

/// Waits before retry `attempt` (0-based): 100 ms doubling to at most 5 s, with ±50 % jitter
/// so that many clients do not return at the same moment.
fn backoff(attempt: u32) -> Duration {
    let base = (100u64 << attempt.min(6)).min(5_000) as f64;
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let jitter = 0.5 + f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX);
    Duration::from_millis((base * jitter) as u64)
}

impl Connection {
    /// Connects and says hello, retrying within `options.max_wait`.
    pub fn open(options: ClientOptions, identity: Identity) -> Result<Self, NetError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NetError::Io(e.to_string()))?;
        let (rpc, client_id, settings_json) = runtime.block_on(hello(&options, &identity))?;
        Ok(Self {
            runtime,
            rpc,
            identity,
            options,
            client_id,
            settings_json,
            secure: None,
            session: None,
        })
    }

    /// Takes part in secure aggregation with `secure` when the server asks for it.
    pub fn with_secure(mut self, secure: Box<dyn SecureClient>) -> Self {
        self.secure = Some(secure);
        self
    }

    /// Runs the server's tasks on `client` until the federation is over. A lost server
    /// (restarting, say) is reconnected to with backoff, within `max_wait`; a result that
    /// could not be delivered is dropped (the server runs that round again or counts it lost).
    ///
    /// `on_task` hears of each task done: its kind (`fit` or `evaluate`) and round.
    pub fn serve(
        &mut self,
        client: &mut dyn Client,
        pipeline: &ClientPipeline,
        on_task: &mut dyn FnMut(&str, u32),
    ) -> Result<Served, NetError> {
        let mut served = Served::default();
        loop {
            match self.step(client, pipeline, &mut served, on_task) {
                Ok(true) => return Ok(served),
                Ok(false) => {}
                Err(NetError::Unreachable(e)) => {
                    tracing::warn!("lost the server ({e}); reconnecting");
                    self.reconnect()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One task: `Ok(true)` when the federation is over.
    fn step(
        &mut self,
        client: &mut dyn Client,
        pipeline: &ClientPipeline,
        served: &mut Served,
        on_task: &mut dyn FnMut(&str, u32),
    ) -> Result<bool, NetError> {
        match self.poll()? {
            Task::Done => {
                let _ = self.goodbye();
                Ok(true)
            }
            Task::Wait => Ok(false),
            Task::Fit { ins, global } => {
                let chunk = match pipeline.fit(client, self.client_id as usize, &global, &ins) {
                    Ok(u) => {
                        let meta = ResultMeta {
                            examples: u.examples,
                            loss: u.loss,
                            seconds: u.seconds,
                            stages: u.stages,
                        };
                        let data = u
                            .delta
                            .to_safetensors(&BTreeMap::new())
                            .map_err(|e| NetError::Protocol(e.to_string()))?;
                        self.result(ins.round, "fit", serde_json::to_string(&meta)?, data, "")
                    }
                    Err(f) => {
                        self.result(ins.round, "fit", String::new(), Vec::new(), &f.to_string())
                    }
                };
                self.submit(chunk, served)?;
                served.fits += 1;
                on_task("fit", ins.round);
                Ok(false)
            }
            Task::Secure {
                round,
                step,
                message,
                fit,
            } => {
                let chunk = match self.secure_answer(client, pipeline, round, &message, fit) {
                    Ok((bytes, meta)) => {
                        self.result(round, &format!("secure:{step}"), meta, bytes, "")
                    }
                    Err(e) => {
                        tracing::warn!("secure aggregation, round {round}: {e}");
                        self.result(
                            round,
                            &format!("secure:{step}"),
                            String::new(),
                            Vec::new(),
                            &e,
                        )
                    }
                };
                self.submit(chunk, served)?;
                on_task("secure", round);
                Ok(false)
            }
            Task::Evaluate { round, global } => {
                let chunk = match client.evaluate(&global) {
                    Ok(outcome) => self.result(
                        round,
                        "evaluate",
                        serde_json::to_string(&outcome)?,
                        Vec::new(),
                        "",
                    ),
                    Err(e) => self.result(round, "evaluate", String::new(), Vec::new(), &e),
                };
                self.submit(chunk, served)?;
                served.evaluations += 1;
                on_task("evaluate", round);
                Ok(false)
            }
        }
    }

    /// Answers one step of the secure protocol with this round's session; a fit step trains
    /// first and hands the update to the session (only the masked form leaves).
    fn secure_answer(
        &mut self,
        client: &mut dyn Client,
        pipeline: &ClientPipeline,
        round: u32,
        message: &[u8],
        fit: Option<(FitInstructions, ParamSet)>,
    ) -> Result<(Vec<u8>, String), String> {
        let secure = self.secure.as_ref().ok_or(
            "the server asked for secure aggregation, which this client was not set up for",
        )?;
        if self.session.as_ref().is_none_or(|(r, _)| *r != round) {
            self.session = Some((round, secure.session(self.client_id as usize, round)));
        }
        let (_, session) = self.session.as_mut().expect("just set");
        match fit {
            None => Ok((session.answer(message, None)?, String::new())),
            Some((ins, global)) => {
                let update = pipeline
                    .fit(client, self.client_id as usize, &global, &ins)
                    .map_err(|f| f.to_string())?;
                let bytes = session.answer(message, Some((&update, &global)))?;
                let meta = SecureFitMeta {
                    loss: update.loss,
                    seconds: update.seconds,
                    stages: update.stages,
                };
                Ok((
                    bytes,
                    serde_json::to_string(&meta).map_err(|e| e.to_string())?,
                ))
            }
        }
    }

    /// Says hello again after losing the server; it must be the same run and identity.
    fn reconnect(&mut self) -> Result<(), NetError> {
        let (rpc, id, settings) = self
            .runtime
            .block_on(hello(&self.options, &self.identity))?;
        if id != self.client_id || settings != self.settings_json {
            return Err(NetError::Protocol(
                "the server came back with another identity or run".into(),
            ));
        }
        self.rpc = rpc;
        Ok(())
    }

    fn poll(&mut self) -> Result<Task, NetError> {
        let fields = format!("client={}", self.client_id);
        let request = TaskRequest {
            auth: Some(self.identity.sign("get_task", &fields, b"")),
            client_id: self.client_id,
        };
        let max = self.options.max_task_bytes;
        let rpc = &mut self.rpc;
        self.runtime.block_on(async move {
            let mut stream = rpc.get_task(request).await.map_err(status)?.into_inner();
            let head = stream
                .next()
                .await
                .ok_or_else(|| NetError::Protocol("empty task stream".into()))?
                .map_err(status)?;
            if head.kind == "done" {
                return Ok(Task::Done);
            }
            if head.kind == "wait" {
                return Ok(Task::Wait);
            }
            if head.total_bytes > max {
                return Err(NetError::Protocol(format!(
                    "a task of {} bytes is over this client's limit of {max}",
                    head.total_bytes
                )));
            }
            let mut data = Vec::with_capacity(head.total_bytes as usize);
            while let Some(chunk) = stream.next().await {
                data.extend_from_slice(&chunk.map_err(status)?.data);
                if data.len() as u64 > head.total_bytes {
                    return Err(NetError::Protocol("the task is longer than it said".into()));
                }
            }
            let secure = |prefix: &str| -> Option<u32> {
                head.kind.strip_prefix(prefix).and_then(|s| s.parse().ok())
            };
            if let Some(step) = secure("secure:") {
                return Ok(Task::Secure {
                    round: head.round,
                    step,
                    message: head.message,
                    fit: None,
                });
            }
            let (global, _) = ParamSet::from_safetensors(&data)
                .map_err(|e| NetError::Protocol(format!("bad global model: {e}")))?;
            if let Some(step) = secure("secure-fit:") {
                return Ok(Task::Secure {
                    round: head.round,
                    step,
                    message: head.message,
                    fit: Some((serde_json::from_str(&head.instructions_json)?, global)),
                });
            }
            match head.kind.as_str() {
                "fit" => Ok(Task::Fit {
                    ins: serde_json::from_str(&head.instructions_json)?,
                    global,
                }),
                "evaluate" => Ok(Task::Evaluate {
                    round: head.round,
                    global,
                }),
                other => Err(NetError::Protocol(format!("unknown task kind {other:?}"))),
            }
        })
    }

    fn result(
        &self,
        round: u32,
        kind: &str,
        meta_json: String,
        data: Vec<u8>,
        error: &str,
    ) -> (ResultChunk, Vec<u8>) {
        let mut first = ResultChunk {
            auth: None,
            client_id: self.client_id,
            round,
            kind: kind.into(),
            meta_json,
            total_bytes: data.len() as u64,
            data: Vec::new(),
            error: error.into(),
            data_sha256: hex::encode(Sha256::digest(&data)),
        };
        // Signed over the fields (the data's digest among them) and the metadata, so the
        // server can check who sends before it reads the body.
        first.auth = Some(self.identity.sign(
            "submit",
            &submit_fields(&first),
            first.meta_json.as_bytes(),
        ));
        (first, data)
    }

    fn submit(
        &mut self,
        (first, data): (ResultChunk, Vec<u8>),
        served: &mut Served,
    ) -> Result<(), NetError> {
        let mut chunks = vec![first];
        for part in data.chunks(CHUNK_BYTES) {
            chunks.push(ResultChunk {
                data: part.to_vec(),
                ..ResultChunk::default()
            });
        }
        let rpc = &mut self.rpc;
        let reply = self
            .runtime
            .block_on(async move { rpc.submit(tokio_stream::iter(chunks)).await })
            .map_err(status)?
            .into_inner();
        if !reply.accepted {
            tracing::warn!("the server refused a result: {}", reply.reason);
            served.refused.push(reply.reason);
        }
        Ok(())
    }

    fn goodbye(&mut self) -> Result<(), NetError> {
        let fields = format!("client={}", self.client_id);
        let request = GoodbyeRequest {
            auth: Some(self.identity.sign("goodbye", &fields, b"")),
            client_id: self.client_id,
        };
        let rpc = &mut self.rpc;
        self.runtime
            .block_on(async move { rpc.goodbye(request).await })
            .map_err(status)?;
        Ok(())
    }
}

enum Task {
    Fit {
        ins: FitInstructions,
        global: ParamSet,
    },
    Evaluate {
        round: u32,
        global: ParamSet,
    },
    Secure {
        round: u32,
        step: u32,
        message: Vec<u8>,
        fit: Option<(FitInstructions, ParamSet)>,
    },
    Wait,
    Done,
}

fn status(s: tonic::Status) -> NetError {
    match s.code() {
        tonic::Code::Unauthenticated => NetError::Refused(s.message().to_string()),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            NetError::Unreachable(s.message().to_string())
        }
        _ => NetError::Protocol(format!("{}: {}", s.code(), s.message())),
    }
}

/// Connects and says hello, retrying unreachable servers with backoff within `max_wait`.
async fn hello(
    options: &ClientOptions,
    identity: &Identity,
) -> Result<(FederationClient<Channel>, u64, String), NetError> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let tried = async {
            let mut rpc = FederationClient::new(channel(options).await?)
                .max_decoding_message_size(2 * CHUNK_BYTES);
            let fields = format!("examples={}", options.examples);
            let reply = rpc
                .hello(HelloRequest {
                    protocol: PROTOCOL,
                    auth: Some(identity.sign("hello", &fields, b"")),
                    examples: options.examples,
                    capabilities: vec!["fit".into(), "evaluate".into()],
                })
                .await
                .map_err(status)?
                .into_inner();
            Ok::<_, NetError>((rpc, reply.client_id, reply.settings_json))
        }
        .await;
        match tried {
            Ok(ok) => return Ok(ok),
            Err(NetError::Unreachable(e)) if started.elapsed() < options.max_wait => {
                let wait = backoff(attempt);
                tracing::info!("server unreachable ({e}); retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        for attempt in 0..20 {
            let d = backoff(attempt).as_millis() as u64;
            let base = (100u64 << attempt.min(6)).min(5_000);
            assert!(
                d >= base / 2 && d <= base + base / 2,
                "attempt {attempt}: {d} ms"
            );
        }
    }
}

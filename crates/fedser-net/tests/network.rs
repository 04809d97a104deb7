//! A federation over real gRPC + TLS on 127.0.0.1, with toy clients whose optimum is known
//! (each pulls the model towards its own target), driven by the same round logic as the
//! simulation: the networked run must end exactly where the in-process one does, and every
//! unauthenticated, replayed, misdirected or plain-text request must be refused.

use std::sync::Mutex;
use std::time::Duration;

use fedser_core::{ConfusionMatrix, Emotion, ParamSet, ParamTensor};
use fedser_fl::strategy::LocalTraining;
use fedser_fl::{
    Client, ClientFactory, ClientFailure, ClientId, ClientPipeline, EvalOutcome, FedStrategy,
    FitInstructions, FitOutcome, Sampling, Server, Simulation, SimulationConfig, StrategySpec,
};
use fedser_net::client::{ClientOptions, Connection};
use fedser_net::identity::{Identity, Verifier};
use fedser_net::proto::federation_client::FederationClient;
use fedser_net::proto::{HelloRequest, ResultChunk};
use fedser_net::server::{NetServer, ServerOptions, ServerTls};

fn params(v: &[f32]) -> ParamSet {
    let mut p = ParamSet::new();
    p.push("w", ParamTensor::new(vec![v.len()], v.to_vec()).unwrap())
        .unwrap();
    p
}

#[derive(Clone)]
struct Toy {
    target: Vec<f32>,
    examples: usize,
}

impl Client for Toy {
    fn fit(&mut self, global: &ParamSet, ins: &FitInstructions) -> Result<FitOutcome, String> {
        let mut w = global.get("w").ok_or("no w")?.data.clone();
        for _ in 0..ins.epochs {
            for (x, t) in w.iter_mut().zip(&self.target) {
                *x -= ins.learning_rate as f32 * (*x - t);
            }
        }
        Ok(FitOutcome {
            params: params(&w),
            examples: self.examples,
            loss: 0.1,
        })
    }

    fn evaluate(&mut self, _global: &ParamSet) -> Result<Option<EvalOutcome>, String> {
        let mut confusion = ConfusionMatrix::new();
        confusion.add(Emotion::Happy, Emotion::Happy);
        Ok(Some(EvalOutcome {
            examples: 1,
            loss: 0.5,
            confusion,
        }))
    }
}

fn toys() -> Vec<Toy> {
    vec![
        Toy {
            target: vec![1.0, 0.0],
            examples: 1,
        },
        Toy {
            target: vec![0.0, 2.0],
            examples: 2,
        },
        Toy {
            target: vec![3.0, 3.0],
            examples: 3,
        },
    ]
}

fn strategy() -> FedStrategy {
    FedStrategy::new(
        StrategySpec::fedavg(),
        Sampling {
            fraction_fit: 0.7,
            min_fit_clients: 2,
            fraction_evaluate: 1.0,
            min_evaluate_clients: 1,
            poisson: None,
        },
        LocalTraining {
            epochs: 3,
            batch_size: 1,
            learning_rate: 0.3,
        },
        5,
    )
}

struct Factory(Vec<Toy>);
impl ClientFactory for Factory {
    fn open(&self, id: ClientId) -> Result<Box<dyn Client>, String> {
        Ok(Box::new(self.0[id].clone()))
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
fn certificate() -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

fn start(keys: &[&Identity], cert: &(String, String)) -> NetServer {
    let verifier = Verifier::new(
        keys.iter().map(|k| verifying_key(k)).collect(),
        Duration::from_secs(60),
    );
    NetServer::start(
        "127.0.0.1:0".parse().unwrap(),
        ServerTls::Pem {
            cert: cert.0.clone().into_bytes(),
            key: cert.1.clone().into_bytes(),
        },
        verifier,
        ServerOptions {
            round_deadline: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            settings_json: "{\"run\":\"toy\"}".into(),
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

fn verifying_key(id: &Identity) -> ed25519_dalek::VerifyingKey {
    let bytes: [u8; 32] = hex::decode(id.public_hex()).unwrap().try_into().unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).unwrap()
}

fn options(server: &NetServer, cert: &(String, String)) -> ClientOptions {
    ClientOptions {
        server: format!("https://127.0.0.1:{}", server.local_addr.port()),
        ca_pem: Some(cert.0.clone().into_bytes()),
        max_wait: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

#[test]
fn a_federation_over_tls_ends_exactly_where_the_simulation_does() {
    let cert = certificate();
    let ids: Vec<Identity> = (0..3).map(|_| Identity::generate().unwrap()).collect();
    let server = start(&ids.iter().collect::<Vec<_>>(), &cert);
    let opts = options(&server, &cert);
    let handles: Vec<_> = ids
        .into_iter()
        .zip(toys())
        .map(|(id, mut toy)| {
            let opts = opts.clone();
            std::thread::spawn(move || {
                let mut conn = Connection::open(opts, id).unwrap();
                assert_eq!(conn.settings_json, "{\"run\":\"toy\"}");
                conn.serve(&mut toy, &ClientPipeline::new(), &mut |_, _| {})
                    .unwrap()
            })
        })
        .collect();
    assert_eq!(server.wait_for_clients(3, Duration::from_secs(20)), 3);

    let mut net = Server::new(strategy(), params(&[0.0, 0.0]), (0..3).collect(), 1);
    let mut executor = server.executor();
    let mut records = Vec::new();
    for round in 1..=6 {
        records.push(net.run_round(round, &mut executor, None).unwrap());
    }
    server.finish(Duration::from_millis(800));
    let served: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(served.iter().all(|s| s.refused.is_empty()), "{served:?}");
    assert_eq!(
        served.iter().map(|s| s.fits).sum::<usize>(),
        12,
        "2 of 3 clients a round"
    );

    let factory = Factory(toys());
    let mut sim = Simulation::new(
        &factory,
        SimulationConfig {
            workers: 2,
            dropout: 0.0,
            straggler: 0.0,
            seed: 5,
        },
        ClientPipeline::new(),
    );
    let mut local = Server::new(strategy(), params(&[0.0, 0.0]), (0..3).collect(), 1);
    for round in 1..=6 {
        let r = local.run_round(round, &mut sim, None).unwrap();
        assert_eq!(r.accepted, records[round as usize - 1].accepted);
        let ids = |rec: &fedser_fl::RoundRecord| -> Vec<usize> {
            rec.clients
                .iter()
                .filter(|c| c.examples > 0)
                .map(|c| c.client)
                .collect()
        };
        assert_eq!(ids(&r), ids(&records[round as usize - 1]), "round {round}");
    }
    assert_eq!(net.global, local.global, "bit-identical to the simulation");
    let last = records.last().unwrap();
    assert_eq!(last.federated.as_ref().unwrap().clients, 3);
    assert!(last.bytes_up > 0 && last.bytes_down > 0);
}

#[test]
fn secure_aggregation_over_tls_ends_exactly_where_the_secure_simulation_does() {
    use fedser_privacy::{SecAggParticipant, SecAggSettings, SecAggStage};
    let settings = SecAggSettings {
        threshold: None,
        neighbours: None,
        bits: 32,
        range: 4.0,
        uniform_weights: false,
        weight_cap: 10.0,
        seed: 9,
    };
    let everyone = || {
        let mut s = strategy();
        s.sampling.fraction_fit = 1.0;
        s
    };
    let cert = certificate();
    let ids: Vec<Identity> = (0..3).map(|_| Identity::generate().unwrap()).collect();
    let server = start(&ids.iter().collect::<Vec<_>>(), &cert);
    let opts = options(&server, &cert);
    let handles: Vec<_> = ids
        .into_iter()
        .zip(toys())
        .map(|(id, mut toy)| {
            let opts = opts.clone();
            std::thread::spawn(move || {
                let mut conn = Connection::open(opts, id)
                    .unwrap()
                    .with_secure(Box::new(SecAggParticipant));
                conn.serve(&mut toy, &ClientPipeline::new(), &mut |_, _| {})
                    .unwrap()
            })
        })
        .collect();
    assert_eq!(server.wait_for_clients(3, Duration::from_secs(20)), 3);
    let mut net = Server::new(everyone(), params(&[0.0, 0.0]), (0..3).collect(), 1)
        .with_secure(Box::new(SecAggStage::new(settings.clone())));
    let mut executor = server.executor();
    let mut records = Vec::new();
    for round in 1..=3 {
        records.push(net.run_round(round, &mut executor, None).unwrap());
    }
    server.finish(Duration::from_millis(800));
    let served: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(served.iter().all(|s| s.refused.is_empty()), "{served:?}");
    for r in &records {
        assert!(r.aggregated, "round {}: {:?}", r.round, r.note);
        assert_eq!(r.accepted, 3);
        assert_eq!(
            r.stage_records["secagg"]["clients_per_phase"],
            serde_json::json!([3, 3, 3, 3])
        );
    }

    let factory = Factory(toys());
    let config = SimulationConfig {
        workers: 2,
        dropout: 0.0,
        straggler: 0.0,
        seed: 5,
    };
    let mut sim =
        Simulation::new(&factory, config, ClientPipeline::new()).with_secure(&SecAggParticipant);
    let mut local = Server::new(everyone(), params(&[0.0, 0.0]), (0..3).collect(), 1)
        .with_secure(Box::new(SecAggStage::new(settings)));
    for round in 1..=3 {
        local.run_round(round, &mut sim, None).unwrap();
    }
    assert_eq!(net.global, local.global, "the same sums, bit for bit");
}

/// A bare protocol client over TLS, for requests the real client would never send.
async fn raw_client(server: &str, ca: &str) -> FederationClient<tonic::transport::Channel> {
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca));
    let channel = tonic::transport::Endpoint::from_shared(server.to_string())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    FederationClient::new(channel)
}

#[test]
fn unknown_keys_replays_wrong_rounds_and_plain_text_are_refused() {
    let cert = certificate();
    let enrolled = Identity::generate().unwrap();
    let server = start(&[&enrolled], &cert);
    let opts = options(&server, &cert);

    // A key that was never enrolled cannot even say hello.
    let stranger = Identity::generate().unwrap();
    let err = Connection::open(opts.clone(), stranger)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not enrolled"), "{err}");

    // Plain TCP against the TLS server fails (bounded), and never reaches a task.
    let plain = ClientOptions {
        server: format!("http://127.0.0.1:{}", server.local_addr.port()),
        insecure: true,
        max_wait: Duration::from_secs(1),
        ..opts.clone()
    };
    assert!(Connection::open(plain, Identity::generate().unwrap()).is_err());

    // The same signed hello twice: the second is a replay.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let replay = Mutex::new(None);
    rt.block_on(async {
        let mut rpc = raw_client(&opts.server, &cert.0).await;
        let hello = HelloRequest {
            protocol: fedser_net::PROTOCOL,
            auth: Some(enrolled.sign("hello", "examples=4", b"")),
            examples: 4,
            capabilities: vec![],
        };
        assert!(rpc.hello(hello.clone()).await.is_ok());
        let again = rpc.hello(hello).await.unwrap_err();
        assert_eq!(again.code(), tonic::Code::Unauthenticated);
        assert!(again.message().contains("replayed"), "{}", again.message());
        // A correctly signed result for a round with no open task is refused, with the reason.
        let mut first = ResultChunk {
            client_id: 0,
            round: 99,
            kind: "fit".into(),
            meta_json: "{\"examples\":1,\"loss\":0.1,\"seconds\":0.0}".into(),
            ..ResultChunk::default()
        };
        let fields = format!(
            "client={}|round={}|kind={}|bytes={}|sha256={}|error={}",
            first.client_id,
            first.round,
            first.kind,
            first.total_bytes,
            first.data_sha256,
            first.error
        );
        first.auth = Some(enrolled.sign("submit", &fields, first.meta_json.as_bytes()));
        let reply = rpc
            .submit(tokio_stream::iter(vec![first]))
            .await
            .unwrap()
            .into_inner();
        *replay.lock().unwrap() = Some(reply);
    });
    let reply = replay.into_inner().unwrap().unwrap();
    assert!(
        !reply.accepted && reply.reason.contains("no open task"),
        "{reply:?}"
    );

    // Garbage bytes on the port: the connection dies, the server does not.
    {
        use std::io::Write;
        let mut raw = std::net::TcpStream::connect(server.local_addr).unwrap();
        raw.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = raw.write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(4096));
    }
    // An oversized result is refused before it is read, and the server still answers.
    rt.block_on(async {
        let mut rpc = raw_client(&opts.server, &cert.0).await;
        let huge = ResultChunk {
            client_id: 0,
            round: 1,
            kind: "fit".into(),
            total_bytes: 1 << 40,
            ..ResultChunk::default()
        };
        let err = rpc
            .submit(tokio_stream::iter(vec![huge]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
        let hello = HelloRequest {
            protocol: fedser_net::PROTOCOL,
            auth: Some(enrolled.sign("hello", "examples=1", b"")),
            examples: 1,
            capabilities: vec![],
        };
        assert!(rpc.hello(hello).await.is_ok(), "the server still serves");
    });
    let refusals = server.refusals();
    assert!(
        refusals.iter().any(|(_, r)| r.contains("not enrolled")),
        "{refusals:?}"
    );
    server.finish(Duration::from_millis(10));
}

#[test]
fn a_task_lost_in_transit_is_handed_again_within_its_round() {
    use fedser_net::proto::TaskRequest;
    let cert = certificate();
    let enrolled = Identity::generate().unwrap();
    let server = start(&[&enrolled], &cert);
    let opts = options(&server, &cert);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rpc = rt.block_on(async {
        let mut rpc = raw_client(&opts.server, &cert.0).await;
        let hello = HelloRequest {
            protocol: fedser_net::PROTOCOL,
            auth: Some(enrolled.sign("hello", "examples=2", b"")),
            examples: 2,
            capabilities: vec![],
        };
        rpc.hello(hello).await.unwrap();
        rpc
    });
    let mut executor = server.executor();
    let round = std::thread::spawn(move || {
        let ins = FitInstructions {
            round: 1,
            epochs: 1,
            batch_size: 1,
            learning_rate: 0.1,
            proximal_mu: 0.0,
            seed: 1,
            config: Default::default(),
        };
        fedser_fl::Executor::fit(&mut executor, &params(&[0.0]), &[(0, ins)])
    });
    let kinds: Vec<String> = rt.block_on(async {
        let mut kinds = Vec::new();
        // Twice: the first task's stream is dropped unread, as a broken connection would.
        for _ in 0..2 {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let req = TaskRequest {
                    auth: Some(enrolled.sign("get_task", "client=0", b"")),
                    client_id: 0,
                };
                let mut stream = rpc.get_task(req).await.unwrap().into_inner();
                let head = tokio_stream::StreamExt::next(&mut stream)
                    .await
                    .unwrap()
                    .unwrap();
                if head.kind != "wait" || std::time::Instant::now() > deadline {
                    kinds.push(head.kind);
                    break;
                }
            }
        }
        // Then an answer (the client could not train), which closes the round at once.
        let mut first = ResultChunk {
            client_id: 0,
            round: 1,
            kind: "fit".into(),
            error: "no data".into(),
            data_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"")),
            ..ResultChunk::default()
        };
        let fields = format!(
            "client=0|round=1|kind=fit|bytes=0|sha256={}|error=no data",
            first.data_sha256
        );
        first.auth = Some(enrolled.sign("submit", &fields, b""));
        let reply = rpc.submit(tokio_stream::iter(vec![first])).await.unwrap();
        assert!(reply.into_inner().accepted);
        kinds
    });
    assert_eq!(kinds, vec!["fit", "fit"], "handed again after the loss");
    let answers = round.join().unwrap();
    assert!(
        matches!(answers[0].1, Err(ClientFailure::Error(_))),
        "{answers:?}"
    );
    server.finish(Duration::from_millis(10));
}

#[test]
fn a_load_process_serves_many_enrolled_clients_over_the_real_protocol() {
    let cert = certificate();
    let dir = tempfile::tempdir().unwrap();
    let enrolled = dir.path().join("enrolled.txt");
    std::fs::write(&enrolled, fedser_net::load::enrolled_keys(7, 16)).unwrap();
    let verifier = Verifier::from_file(&enrolled, Duration::from_secs(60)).unwrap();
    assert_eq!(verifier.len(), 16);
    let server = NetServer::start(
        "127.0.0.1:0".parse().unwrap(),
        ServerTls::Pem {
            cert: cert.0.clone().into_bytes(),
            key: cert.1.clone().into_bytes(),
        },
        verifier,
        ServerOptions {
            round_deadline: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            settings_json: "{}".into(),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let opts = options(&server, &cert);
    let load = std::thread::spawn(move || fedser_net::load::run(&opts, 16, 7, 5));
    assert_eq!(server.wait_for_clients(16, Duration::from_secs(20)), 16);
    let mut all = strategy();
    all.sampling.fraction_fit = 1.0;
    let start = params(&[0.5, -0.5]);
    let mut net = Server::new(all, start.clone(), (0..16).collect(), 1);
    let mut executor = server.executor();
    for round in 1..=2 {
        let r = net.run_round(round, &mut executor, None).unwrap();
        assert_eq!(r.accepted, 16, "round {round}");
    }
    server.finish(Duration::from_millis(800));
    let report = load.join().unwrap();
    assert_eq!((report.connected, report.failed), (16, 0), "{report:?}");
    assert_eq!(report.fits, 32);
    assert_eq!(report.refused, 0);
    let (a, b) = (
        &net.global.get("w").unwrap().data,
        &start.get("w").unwrap().data,
    );
    assert_ne!(a, b, "the clients' steps moved the model");
    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3));
}

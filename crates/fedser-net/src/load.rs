//! Load generation: many enrolled clients in one process, each on its own TLS connection
//! speaking the real protocol (hello, long-polled tasks, chunked models, signed results), whose
//! "training" is a cheap deterministic change to the global model. A load run measures the
//! server and the transport at a scale that separate client processes cannot reach on one
//! machine; it says nothing about local training time.
//!
//! Identities are derived from a seed so that the server's enrolled file can be written
//! before the run ([`enrolled_keys`]); keys derived this way are public knowledge and must
//! never enrol a real device.

use std::time::{Duration, Instant};

use fedser_core::ParamSet;
use fedser_fl::{Client, ClientPipeline, EvalOutcome, FitInstructions, FitOutcome};
use sha2::{Digest, Sha256};

use crate::NetError;
use crate::client::{ClientOptions, Connection};
use crate::identity::Identity;

/// The identity of load client `index` under `seed`.
pub fn identity(seed: u64, index: usize) -> Identity {
    let mut h = Sha256::new();
    h.update(b"fedser-load-identity");
    h.update(seed.to_le_bytes());
    h.update((index as u64).to_le_bytes());
    Identity::from_secret(h.finalize().into())
}

/// The public keys of load clients `0..n` under `seed`, one per line as the server's
/// `--enrolled` file wants them.
pub fn enrolled_keys(seed: u64, n: usize) -> String {
    (0..n)
        .map(|i| identity(seed, i).public_hex() + "\n")
        .collect()
}

/// A client that returns the global model moved by a small pseudo-random step (different per
/// client and round) and has no validation data.
pub struct LoadClient {
    index: usize,
    seed: u64,
    examples: usize,
}

impl LoadClient {
    pub fn new(index: usize, seed: u64, examples: usize) -> Self {
        Self {
            index,
            seed,
            examples,
        }
    }
}

impl Client for LoadClient {
    fn fit(&mut self, global: &ParamSet, ins: &FitInstructions) -> Result<FitOutcome, String> {
        let mut state = self.seed
            ^ (self.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(ins.round).wrapping_mul(0xD1B5_4A32_D192_ED03)
            | 1;
        let mut params = global.clone();
        for t in params.tensors_mut() {
            for v in t.data.iter_mut() {
                // xorshift64: cheap, so the server and the transport are what is measured.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *v += ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1e-3;
            }
        }
        Ok(FitOutcome {
            params,
            examples: self.examples,
            loss: 1.0,
        })
    }

    fn evaluate(&mut self, _global: &ParamSet) -> Result<Option<EvalOutcome>, String> {
        Ok(None)
    }
}

/// What one load run did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Clients that said hello.
    pub connected: usize,
    pub fits: usize,
    pub evaluations: usize,
    /// Results the server refused.
    pub refused: usize,
    /// Clients that failed, with the reason (first few kept).
    pub failures: Vec<(usize, String)>,
    pub failed: usize,
    /// Seconds from the first connection attempt to the last client's end.
    pub seconds: f64,
}

/// Runs `n` load clients against `options.server`, one thread and one connection each, until
/// the federation is over (or each client's `options.max_wait` passes without the server).
pub fn run(options: &ClientOptions, n: usize, seed: u64, examples: usize) -> LoadReport {
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let mut opts = options.clone();
            opts.examples = examples as u64;
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .stack_size(1 << 20)
                .spawn(move || -> Result<(usize, usize, usize), NetError> {
                    let mut conn = Connection::open(opts, identity(seed, i))?;
                    let mut client = LoadClient::new(i, seed, examples);
                    let served = conn.serve(&mut client, &ClientPipeline::new(), &mut |_, _| {})?;
                    Ok((served.fits, served.evaluations, served.refused.len()))
                })
        })
        .collect();
    let mut report = LoadReport::default();
    for (i, h) in handles.into_iter().enumerate() {
        let outcome = match h {
            Ok(h) => h
                .join()
                .unwrap_or_else(|_| Err(NetError::Io("the client thread panicked".into()))),
            Err(e) => Err(NetError::Io(format!("cannot start a thread: {e}"))),
        };
        match outcome {
            Ok((fits, evals, refused)) => {
                report.connected += 1;
                report.fits += fits;
                report.evaluations += evals;
                report.refused += refused;
            }
            Err(e) => {
                report.failed += 1;
                if report.failures.len() < 5 {
                    report.failures.push((i, e.to_string()));
                }
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Default wait for a load run's clients: long enough for a server taking all of them.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(300);

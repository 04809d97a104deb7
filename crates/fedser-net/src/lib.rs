//! The deployment transport: a fedser server and its clients as separate processes, over gRPC
//! (tonic, HTTP/2) with TLS (rustls), every request signed by an enrolled client identity. The
//! server side is an `Executor` of fedser-fl, so a networked round is the simulation's round;
//! the client side drives any fedser-fl `Client` through its update pipeline.
//!
//! - [`identity`]: device key pairs, the enrolled-key list, signed and replay-protected requests.
//! - [`server`]: the gRPC service and [`server::NetExecutor`] (tasks, deadlines, stragglers).
//! - [`client`]: connect, say hello, run tasks until the federation is over.
//! - [`load`]: many protocol-speaking clients in one process, for load measurements.
//!
//! The protocol is `proto/fedser.proto` (version [`PROTOCOL`]); parameters travel as
//! safetensors bytes in chunks of [`CHUNK_BYTES`].

pub mod client;
pub mod identity;
pub mod load;
pub mod server;

/// Generated from `proto/fedser.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("fedser.v1");
}

use std::collections::BTreeMap;

/// The protocol version both sides must speak.
pub const PROTOCOL: u32 = 1;
/// Parameter bytes per message.
pub const CHUNK_BYTES: usize = 1 << 20;

/// What accompanies an update (the `meta_json` of a fit result).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResultMeta {
    pub examples: usize,
    pub loss: f64,
    pub seconds: f64,
    #[serde(default)]
    pub stages: BTreeMap<String, f64>,
}

/// What accompanies a secure fit's answer (the update itself is inside the masked message).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SecureFitMeta {
    pub loss: f64,
    pub seconds: f64,
    #[serde(default)]
    pub stages: BTreeMap<String, f64>,
}

/// Why the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    Io(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Config(String),
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    #[error("the server refused this client: {0}")]
    Refused(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Auth(#[from] identity::AuthError),
    #[error("bad JSON in a message: {0}")]
    Json(#[from] serde_json::Error),
}

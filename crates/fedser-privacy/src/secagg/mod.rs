//! Secure aggregation: the server learns only the sum of the round's updates.
//!
//! The protocol is Bonawitz et al. (CCS 2017, "Practical secure aggregation for
//! privacy-preserving machine learning") with the sparse neighbourhoods of SecAgg+ (Bell et al.,
//! CCS 2020): each client shares secrets with, and masks against, only its `K` neighbours in a
//! seeded Harary graph over the round's participants instead of all of them. Four phases:
//!
//! 1. **Advertise keys**: each client sends two fresh X25519 public keys (one to encrypt
//!    shares, one to agree masks) and a SHA-256 commitment to its self-mask seed.
//! 2. **Share keys**: each client Shamir-shares (threshold `t`, over the Curve25519 scalar
//!    field, `vsss-rs`) its self-mask seed and its mask-agreement secret key among its
//!    neighbours and itself, each share encrypted to its holder with ChaCha20-Poly1305 under a
//!    key from X25519 + HKDF-SHA-256; the server only routes the ciphertexts.
//! 3. **Masked input**: each client adds to its quantised update a self mask (ChaCha20
//!    keystream of its seed) and, for every neighbour that shared keys, a pairwise mask (the
//!    keystream of their agreed key; added by the smaller id, subtracted by the larger), all
//!    modulo `2^bits`. Pairwise masks cancel in the sum.
//! 4. **Unmasking**: for each client that sent input, its neighbours reveal their shares of its
//!    self-mask seed; for each that shared keys but sent no input, their shares of its
//!    mask-agreement key, so the server can remove the pairwise masks the others added against
//!    it. A client never reveals both kinds of share for the same client, and answers only
//!    once: that is why a merely slow client (its input arriving late) is never unmasked.
//!
//! The state machines ([`client::SecAggClient`], [`server::SecAggServer`]) know no transport:
//! the simulation and the network deployment drive the same code with the same messages.
//!
//! **Threat model.** The server is honest-but-curious: it follows the protocol but keeps
//! everything it receives. Against a server that also lies to clients, the clients refuse a
//! request for both shares of one client and a second unmasking request; the consistency
//! round of Bonawitz et al.'s actively secure variant (clients signing the survivor list under
//! enrolled identities) is not implemented, so a server that sends *different* survivor lists
//! to different clients is not detected.

pub mod client;
pub mod crypto;
pub mod local;
pub mod quant;
pub mod server;
pub mod stage;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

pub use client::SecAggClient;
pub use quant::Quantizer;
pub use server::{SecAggServer, Unmasked};
pub use stage::{SecAggParticipant, SecAggRecord, SecAggSettings, SecAggStage};

/// Where a party stands in the round (the client and the server move through the same
/// phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Advertise,
    Share,
    Input,
    Unmask,
    Done,
}

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Advertise => "advertise keys",
            Phase::Share => "share keys",
            Phase::Input => "masked input",
            Phase::Unmask => "unmasking",
            Phase::Done => "done",
        }
    }
}

/// Why a protocol step was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SecAggError {
    #[error("secure aggregation settings: {0}")]
    Config(String),
    #[error("client {client}: message out of order: {what} in phase {phase}")]
    Phase {
        client: u64,
        what: &'static str,
        phase: &'static str,
    },
    #[error("client {client} is not a participant of this round")]
    Unknown { client: u64 },
    #[error("client {client} sent {what} twice")]
    Duplicate { client: u64, what: &'static str },
    #[error("client {client}: {reason}")]
    Malformed { client: u64, reason: String },
    #[error("round refused: {0}")]
    TooFew(String),
    #[error("unmasking refused: {0}")]
    Refused(String),
    #[error("cryptography: {0}")]
    Crypto(String),
    #[error("quantisation: {0}")]
    Quant(String),
}

/// The round's public settings, the same for the server and every client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecAggConfig {
    pub round: u32,
    /// The clients asked to take part, sorted and distinct.
    pub participants: Vec<u64>,
    /// Shares needed to reconstruct a secret (within a client's group: itself and its
    /// neighbours).
    pub threshold: usize,
    /// Neighbours per client (SecAgg+); `>= participants - 1` is the full graph (SecAgg).
    pub neighbours: usize,
    /// Public seed of the neighbourhood graph.
    pub graph_seed: u64,
    /// Arithmetic is modulo `2^bits` (1..=32).
    pub bits: u32,
    /// Length of the masked vector.
    pub vector_len: usize,
}

impl SecAggConfig {
    /// A configuration with the default threshold (two thirds of a group, more than half).
    pub fn new(
        round: u32,
        mut participants: Vec<u64>,
        neighbours: usize,
        graph_seed: u64,
        bits: u32,
        vector_len: usize,
    ) -> Self {
        participants.sort_unstable();
        participants.dedup();
        let mut c = Self {
            round,
            participants,
            threshold: 0,
            neighbours,
            graph_seed,
            bits,
            vector_len,
        };
        c.threshold = default_threshold(c.group_size());
        c
    }

    /// Clients in each group (a client and its neighbours).
    pub fn group_size(&self) -> usize {
        let n = self.participants.len();
        if self.is_full_graph() {
            n
        } else {
            // A Harary graph with an even degree: K rounded up to even.
            (self.neighbours + self.neighbours % 2).min(n.saturating_sub(1)) + 1
        }
    }

    pub fn is_full_graph(&self) -> bool {
        self.neighbours + 1 >= self.participants.len()
    }

    /// Checks the settings; every refusal names the value at fault.
    pub fn validate(&self) -> Result<(), SecAggError> {
        let n = self.participants.len();
        let bad = |m: String| Err(SecAggError::Config(m));
        if n < 2 {
            return bad(format!(
                "{n} participant(s): secure aggregation needs at least 2"
            ));
        }
        if !(1..=32).contains(&self.bits) {
            return bad(format!("modulus 2^{}: bits must be in 1..=32", self.bits));
        }
        if self.neighbours < 2 && !self.is_full_graph() {
            return bad(format!(
                "{} neighbours: at least 2 are needed",
                self.neighbours
            ));
        }
        let g = self.group_size();
        if self.threshold <= g / 2 || self.threshold > g {
            return bad(format!(
                "threshold {} for groups of {g}: it must be more than half the group ({}) and \
                 at most the group, or two disjoint halves could each reconstruct a secret",
                self.threshold,
                g / 2 + 1
            ));
        }
        if self.vector_len == 0 {
            return bad("an empty vector".into());
        }
        Ok(())
    }

    /// The mask of values modulo `2^bits`.
    pub fn modulus_mask(&self) -> u32 {
        if self.bits >= 32 {
            u32::MAX
        } else {
            (1u32 << self.bits) - 1
        }
    }

    /// The neighbours of `client` (not itself), sorted. Full graph: every other participant;
    /// otherwise the Harary graph `H(K, n)` over the participants in a seeded random order:
    /// each is joined to the `K/2` before and after it on the ring.
    pub fn neighbours_of(&self, client: u64) -> Vec<u64> {
        let n = self.participants.len();
        if self.is_full_graph() {
            return self
                .participants
                .iter()
                .copied()
                .filter(|&c| c != client)
                .collect();
        }
        let order = self.ring();
        let Some(pos) = order.iter().position(|&c| c == client) else {
            return Vec::new();
        };
        let half = self.group_size() / 2;
        let mut out: Vec<u64> = (1..=half)
            .flat_map(|j| [order[(pos + j) % n], order[(pos + n - j) % n]])
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `client` and its neighbours.
    pub fn group_of(&self, client: u64) -> Vec<u64> {
        let mut g = self.neighbours_of(client);
        g.push(client);
        g.sort_unstable();
        g
    }

    /// Whether `client` takes part.
    pub fn has(&self, client: u64) -> bool {
        self.participants.binary_search(&client).is_ok()
    }

    /// The participants in the graph's seeded order (Fisher–Yates with ChaCha20).
    fn ring(&self) -> Vec<u64> {
        let mut order = self.participants.clone();
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.graph_seed.to_le_bytes());
        seed[8..12].copy_from_slice(&self.round.to_le_bytes());
        let mut rng = ChaCha20Rng::from_seed(seed);
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        order
    }
}

/// Two thirds of a group, and always more than half.
pub fn default_threshold(group: usize) -> usize {
    ((2 * group).div_ceil(3)).max(group / 2 + 1).min(group)
}

/// Phase 1, client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvertiseKeys {
    pub client: u64,
    /// X25519 public key for encrypting shares to this client.
    pub cipher_pk: [u8; 32],
    /// X25519 public key for agreeing pairwise masks.
    pub mask_pk: [u8; 32],
    /// SHA-256 of the self-mask seed: lets the server check the seed it reconstructs.
    pub seed_commitment: [u8; 32],
}

/// Phase 1, server → client: the advertised keys of the client's group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roster {
    pub keys: Vec<AdvertiseKeys>,
}

/// One encrypted share, routed by the server from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncryptedShare {
    pub from: u64,
    pub to: u64,
    /// 12-byte nonce followed by the ChaCha20-Poly1305 ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// Phase 2, client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareKeys {
    pub client: u64,
    pub shares: Vec<EncryptedShare>,
}

/// Phase 3, client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskedInput {
    pub client: u64,
    /// The neighbours this client added pairwise masks against.
    pub masked_with: Vec<u64>,
    pub vector: Vec<u32>,
}

/// Phase 4, server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnmaskRequest {
    /// Clients whose input is in the sum: reveal shares of their self-mask seeds.
    pub survivors: Vec<u64>,
    /// Clients that shared keys but whose input is not in the sum: reveal shares of their
    /// mask-agreement keys.
    pub dropped: Vec<u64>,
}

/// A revealed share of `owner`'s secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevealedShare {
    pub owner: u64,
    pub share: [u8; 32],
}

/// Phase 4, client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnmaskResponse {
    pub client: u64,
    pub seed_shares: Vec<RevealedShare>,
    pub key_shares: Vec<RevealedShare>,
}

/// Bytes a message takes on the wire (its fields, fixed-width; what the round metrics count).
pub trait WireSize {
    fn wire_bytes(&self) -> usize;
}

impl WireSize for AdvertiseKeys {
    fn wire_bytes(&self) -> usize {
        8 + 3 * 32
    }
}
impl WireSize for Roster {
    fn wire_bytes(&self) -> usize {
        self.keys.iter().map(WireSize::wire_bytes).sum()
    }
}
impl WireSize for ShareKeys {
    fn wire_bytes(&self) -> usize {
        8 + self
            .shares
            .iter()
            .map(|s| 16 + s.ciphertext.len())
            .sum::<usize>()
    }
}
impl WireSize for Vec<EncryptedShare> {
    fn wire_bytes(&self) -> usize {
        self.iter().map(|s| 16 + s.ciphertext.len()).sum()
    }
}
impl WireSize for MaskedInput {
    fn wire_bytes(&self) -> usize {
        8 + 8 * self.masked_with.len() + 4 * self.vector.len()
    }
}
impl WireSize for UnmaskRequest {
    fn wire_bytes(&self) -> usize {
        8 * (self.survivors.len() + self.dropped.len())
    }
}
impl WireSize for UnmaskResponse {
    fn wire_bytes(&self) -> usize {
        8 + 40 * (self.seed_shares.len() + self.key_shares.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_is_symmetric_regular_and_the_same_for_everyone() {
        let c = SecAggConfig::new(3, (0..40).collect(), 6, 99, 32, 10);
        c.validate().unwrap();
        assert_eq!(c.group_size(), 7);
        for &u in &c.participants {
            let nu = c.neighbours_of(u);
            assert_eq!(nu.len(), 6, "client {u}");
            assert!(!nu.contains(&u));
            for v in nu {
                assert!(c.neighbours_of(v).contains(&u), "{u} -> {v} not symmetric");
            }
        }
        // Another seed, another graph; the full graph when K >= n - 1.
        let d = SecAggConfig::new(3, (0..40).collect(), 6, 100, 32, 10);
        assert_ne!(
            (0..40).map(|u| c.neighbours_of(u)).collect::<Vec<_>>(),
            (0..40).map(|u| d.neighbours_of(u)).collect::<Vec<_>>()
        );
        let full = SecAggConfig::new(1, (0..5).collect(), 10, 1, 32, 10);
        assert!(full.is_full_graph());
        assert_eq!(full.neighbours_of(2), vec![0, 1, 3, 4]);
        assert_eq!(full.threshold, 4);
    }

    #[test]
    fn settings_that_break_the_protocol_are_refused_with_the_reason() {
        let mut c = SecAggConfig::new(1, (0..10).collect(), 4, 1, 32, 10);
        c.threshold = 2; // half of a group of 5 or less
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("more than half"), "{e}");
        c.threshold = 6;
        assert!(c.validate().is_err());
        let one = SecAggConfig::new(1, vec![3], 4, 1, 32, 10);
        assert!(
            one.validate()
                .unwrap_err()
                .to_string()
                .contains("at least 2")
        );
        let bits = SecAggConfig::new(1, (0..4).collect(), 4, 1, 40, 10);
        assert!(bits.validate().unwrap_err().to_string().contains("bits"));
    }
}

#[cfg(test)]
mod protocol_tests;

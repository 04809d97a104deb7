//! A client's side of secure aggregation: one state machine per client and round, advanced by
//! the four server messages in order and refusing anything out of order.

use std::collections::{BTreeMap, BTreeSet};

use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::Phase;
use super::crypto;
use super::{
    AdvertiseKeys, EncryptedShare, MaskedInput, RevealedShare, Roster, SecAggConfig, SecAggError,
    ShareKeys, UnmaskRequest, UnmaskResponse,
};

/// What a client holds of another client's secrets.
#[derive(Clone)]
struct Held {
    seed: [u8; 32],
    key: [u8; 32],
}

/// One client in one round.
pub struct SecAggClient {
    id: u64,
    cfg: SecAggConfig,
    group: BTreeSet<u64>,
    cipher_sk: Scalar,
    mask_sk: Scalar,
    seed: Scalar,
    rng: ChaCha20Rng,
    phase: Phase,
    peers: BTreeMap<u64, AdvertiseKeys>,
    held: BTreeMap<u64, Held>,
    masked_with: BTreeSet<u64>,
    /// Shares refused in the masked-input phase, with the reason.
    pub refused: Vec<String>,
}

/// The share plaintext: owner, holder, seed share, key share.
const SHARE_LEN: usize = 8 + 8 + 32 + 32;

fn share_aad(round: u32, from: u64, to: u64) -> Vec<u8> {
    let mut aad = b"fedser-secagg-share".to_vec();
    aad.extend(round.to_le_bytes());
    aad.extend(from.to_le_bytes());
    aad.extend(to.to_le_bytes());
    aad
}

/// The key that encrypts shares from `from` to `to` (each direction its own key).
fn share_key(shared: &[u8; 32], round: u32, from: u64, to: u64) -> [u8; 32] {
    crypto::derive(shared, &share_aad(round, from, to))
}

/// The seed of the pairwise mask of `a` and `b` (order-independent).
pub(crate) fn pair_seed(shared: &[u8; 32], round: u32, a: u64, b: u64) -> [u8; 32] {
    let (lo, hi) = (a.min(b), a.max(b));
    let mut info = b"fedser-secagg-pair".to_vec();
    info.extend(round.to_le_bytes());
    info.extend(lo.to_le_bytes());
    info.extend(hi.to_le_bytes());
    crypto::derive(shared, &info)
}

/// The seed of a client's self mask.
pub(crate) fn self_seed(seed: &Scalar, round: u32) -> [u8; 32] {
    let mut info = b"fedser-secagg-self".to_vec();
    info.extend(round.to_le_bytes());
    crypto::derive(&seed.to_bytes(), &info)
}

impl SecAggClient {
    /// Client `id` for the round `cfg` describes; `entropy` seeds its secrets (from the
    /// operating system in real use; fixed in tests).
    pub fn new(id: u64, cfg: SecAggConfig, entropy: [u8; 32]) -> Result<Self, SecAggError> {
        cfg.validate()?;
        if !cfg.has(id) {
            return Err(SecAggError::Unknown { client: id });
        }
        let mut rng = ChaCha20Rng::from_seed(entropy);
        let group = cfg.group_of(id).into_iter().collect();
        Ok(Self {
            id,
            cipher_sk: crypto::random_secret(&mut rng),
            mask_sk: crypto::random_secret(&mut rng),
            seed: crypto::random_secret(&mut rng),
            cfg,
            group,
            rng,
            phase: Phase::Advertise,
            peers: BTreeMap::new(),
            held: BTreeMap::new(),
            masked_with: BTreeSet::new(),
            refused: Vec::new(),
        })
    }

    /// A client whose secrets come from the operating system's random source.
    pub fn with_os_entropy(id: u64, cfg: SecAggConfig) -> Result<Self, SecAggError> {
        let mut entropy = [0u8; 32];
        getrandom::fill(&mut entropy).map_err(|e| SecAggError::Crypto(e.to_string()))?;
        Self::new(id, cfg, entropy)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    fn expect(&self, phase: Phase, what: &'static str) -> Result<(), SecAggError> {
        if self.phase != phase {
            return Err(SecAggError::Phase {
                client: self.id,
                what,
                phase: self.phase.name(),
            });
        }
        Ok(())
    }

    fn abort(&mut self, e: SecAggError) -> SecAggError {
        self.phase = Phase::Done;
        e
    }

    /// Phase 1: this client's public keys and seed commitment.
    pub fn advertise(&mut self) -> Result<AdvertiseKeys, SecAggError> {
        self.expect(Phase::Advertise, "advertise")?;
        self.phase = Phase::Share;
        Ok(AdvertiseKeys {
            client: self.id,
            cipher_pk: crypto::public_key(&self.cipher_sk),
            mask_pk: crypto::public_key(&self.mask_sk),
            seed_commitment: crypto::commit(&self.seed),
        })
    }

    /// Phase 2: shares of this client's seed and mask key for every neighbour in `roster`,
    /// each encrypted to it. Refuses a roster with strangers, a forged own entry, repeated
    /// keys, or fewer than the threshold of the group.
    pub fn share_keys(&mut self, roster: &Roster) -> Result<ShareKeys, SecAggError> {
        self.expect(Phase::Share, "share keys")?;
        self.check_roster(roster).map_err(|e| self.abort(e))?;
        let holders: Vec<u64> = self.peers.keys().copied().collect();
        let seeds = crypto::split(&self.seed, self.cfg.threshold, &holders, &mut self.rng)?;
        let keys = crypto::split(&self.mask_sk, self.cfg.threshold, &holders, &mut self.rng)?;
        let mut shares = Vec::new();
        for ((holder, seed), (_, key)) in seeds.into_iter().zip(keys) {
            if holder == self.id {
                self.held.insert(self.id, Held { seed, key });
                continue;
            }
            let peer = &self.peers[&holder];
            let shared = crypto::agree(&self.cipher_sk, &peer.cipher_pk)?;
            let mut plain = Vec::with_capacity(SHARE_LEN);
            plain.extend(self.id.to_le_bytes());
            plain.extend(holder.to_le_bytes());
            plain.extend(seed);
            plain.extend(key);
            let k = share_key(&shared, self.cfg.round, self.id, holder);
            let ciphertext = crypto::seal(
                &k,
                &share_aad(self.cfg.round, self.id, holder),
                &plain,
                &mut self.rng,
            );
            shares.push(EncryptedShare {
                from: self.id,
                to: holder,
                ciphertext,
            });
        }
        self.phase = Phase::Input;
        Ok(ShareKeys {
            client: self.id,
            shares,
        })
    }

    fn check_roster(&mut self, roster: &Roster) -> Result<(), SecAggError> {
        let bad = |reason: String| SecAggError::Malformed {
            client: self.id,
            reason,
        };
        let mine = AdvertiseKeys {
            client: self.id,
            cipher_pk: crypto::public_key(&self.cipher_sk),
            mask_pk: crypto::public_key(&self.mask_sk),
            seed_commitment: crypto::commit(&self.seed),
        };
        let mut seen_keys = BTreeSet::new();
        for k in &roster.keys {
            if !self.group.contains(&k.client) {
                return Err(bad(format!(
                    "the roster lists client {}, not a neighbour",
                    k.client
                )));
            }
            if k.client == self.id && *k != mine {
                return Err(bad(
                    "the roster carries keys that are not this client's".into()
                ));
            }
            if !seen_keys.insert(k.cipher_pk) || !seen_keys.insert(k.mask_pk) {
                return Err(bad(format!(
                    "the roster repeats a public key (client {})",
                    k.client
                )));
            }
            if self.peers.insert(k.client, k.clone()).is_some() {
                return Err(bad(format!("the roster lists client {} twice", k.client)));
            }
        }
        self.peers.insert(self.id, mine);
        if self.peers.len() < self.cfg.threshold {
            return Err(SecAggError::TooFew(format!(
                "client {}: {} of its group advertised keys, the threshold is {}",
                self.id,
                self.peers.len(),
                self.cfg.threshold
            )));
        }
        Ok(())
    }

    /// Phase 3: decrypts the shares sent to this client (refusing, and leaving out, any that
    /// is misaddressed, forged or repeated), then masks `input` (values modulo `2^bits`)
    /// against every neighbour whose share arrived.
    pub fn masked_input(
        &mut self,
        inbox: &[EncryptedShare],
        input: &[u32],
    ) -> Result<MaskedInput, SecAggError> {
        self.expect(Phase::Input, "masked input")?;
        if input.len() != self.cfg.vector_len {
            return Err(self.abort(SecAggError::Malformed {
                client: self.id,
                reason: format!(
                    "an input of {} values, the round masks {}",
                    input.len(),
                    self.cfg.vector_len
                ),
            }));
        }
        let modulus = self.cfg.modulus_mask();
        if let Some(i) = input.iter().position(|&v| v & !modulus != 0) {
            return Err(self.abort(SecAggError::Malformed {
                client: self.id,
                reason: format!("input value {i} is not below 2^{}", self.cfg.bits),
            }));
        }
        for share in inbox {
            if let Err(reason) = self.receive_share(share) {
                tracing::warn!("secure aggregation, client {}: {reason}", self.id);
                self.refused.push(reason);
            }
        }
        if self.held.len() < self.cfg.threshold {
            return Err(self.abort(SecAggError::TooFew(format!(
                "client {}: shares from {} of its group, the threshold is {}",
                self.id,
                self.held.len(),
                self.cfg.threshold
            ))));
        }
        let round = self.cfg.round;
        let mut vector = input.to_vec();
        let own = crypto::expand_mask(&self_seed(&self.seed, round), vector.len());
        for (v, m) in vector.iter_mut().zip(own) {
            *v = v.wrapping_add(m);
        }
        let others: Vec<u64> = self
            .held
            .keys()
            .copied()
            .filter(|&v| v != self.id)
            .collect();
        for v in others {
            let shared = crypto::agree(&self.mask_sk, &self.peers[&v].mask_pk)?;
            let mask = crypto::expand_mask(&pair_seed(&shared, round, self.id, v), vector.len());
            let add = self.id < v;
            for (x, m) in vector.iter_mut().zip(mask) {
                *x = if add {
                    x.wrapping_add(m)
                } else {
                    x.wrapping_sub(m)
                };
            }
            self.masked_with.insert(v);
        }
        for x in &mut vector {
            *x &= modulus;
        }
        self.phase = Phase::Unmask;
        Ok(MaskedInput {
            client: self.id,
            masked_with: self.masked_with.iter().copied().collect(),
            vector,
        })
    }

    fn receive_share(&mut self, share: &EncryptedShare) -> Result<(), String> {
        let from = share.from;
        if share.to != self.id {
            return Err(format!(
                "a share for client {} reached client {}",
                share.to, self.id
            ));
        }
        let Some(peer) = self.peers.get(&from).filter(|_| from != self.id) else {
            return Err(format!(
                "a share from client {from}, not a neighbour with keys"
            ));
        };
        if self.held.contains_key(&from) {
            return Err(format!("a second share from client {from}"));
        }
        let shared = crypto::agree(&self.cipher_sk, &peer.cipher_pk).map_err(|e| e.to_string())?;
        let key = share_key(&shared, self.cfg.round, from, self.id);
        let plain = crypto::open(
            &key,
            &share_aad(self.cfg.round, from, self.id),
            &share.ciphertext,
        )
        .map_err(|e| format!("share from client {from}: {e}"))?;
        if plain.len() != SHARE_LEN
            || plain[..8] != from.to_le_bytes()
            || plain[8..16] != self.id.to_le_bytes()
        {
            return Err(format!(
                "share from client {from}: wrong owner or holder inside"
            ));
        }
        let seed: [u8; 32] = plain[16..48].try_into().expect("32 bytes");
        let key: [u8; 32] = plain[48..80].try_into().expect("32 bytes");
        if crypto::scalar(&seed).is_none() || crypto::scalar(&key).is_none() {
            return Err(format!("share from client {from} is not a field element"));
        }
        self.held.insert(from, Held { seed, key });
        Ok(())
    }

    /// Phase 4: reveals, for each survivor this client holds a share of, the share of its
    /// seed, and for each dropped client the share of its mask key. Refuses (and reveals
    /// nothing) when asked for both kinds of share of one client, when told that it itself
    /// dropped, when fewer than the threshold of its group survive, or a second time.
    pub fn unmask(&mut self, req: &UnmaskRequest) -> Result<UnmaskResponse, SecAggError> {
        self.expect(Phase::Unmask, "unmask")?;
        self.phase = Phase::Done;
        let survivors: BTreeSet<u64> = req.survivors.iter().copied().collect();
        let dropped: BTreeSet<u64> = req.dropped.iter().copied().collect();
        if let Some(both) = survivors.intersection(&dropped).next() {
            return Err(SecAggError::Refused(format!(
                "client {}: asked for both shares of client {both}",
                self.id
            )));
        }
        if dropped.contains(&self.id) || !survivors.contains(&self.id) {
            return Err(SecAggError::Refused(format!(
                "client {}: the request does not count this client's own input as received",
                self.id
            )));
        }
        let alive = survivors.iter().filter(|s| self.group.contains(s)).count();
        if alive < self.cfg.threshold {
            return Err(SecAggError::Refused(format!(
                "client {}: {alive} of its group survive, the threshold is {}",
                self.id, self.cfg.threshold
            )));
        }
        let mut out = UnmaskResponse {
            client: self.id,
            seed_shares: Vec::new(),
            key_shares: Vec::new(),
        };
        for (&owner, held) in &self.held {
            if survivors.contains(&owner) {
                out.seed_shares.push(RevealedShare {
                    owner,
                    share: held.seed,
                });
            } else if dropped.contains(&owner) {
                out.key_shares.push(RevealedShare {
                    owner,
                    share: held.key,
                });
            }
        }
        Ok(out)
    }
}

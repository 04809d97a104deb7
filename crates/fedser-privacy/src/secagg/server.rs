//! The server's side of secure aggregation: collects each phase's messages (refusing, with
//! the reason, anything unknown, repeated, misaddressed or malformed), decides who takes part
//! in the next phase, and finally reconstructs the masks and removes them from the sum. It
//! never holds a client's update in the clear: only masked vectors, ciphertexts it cannot
//! open, and the shares clients choose to reveal.

use std::collections::{BTreeMap, BTreeSet};

use curve25519_dalek::scalar::Scalar;

use super::Phase;
use super::client::{pair_seed, self_seed};
use super::crypto;
use super::{
    AdvertiseKeys, EncryptedShare, MaskedInput, Roster, SecAggConfig, SecAggError, ShareKeys,
    UnmaskRequest, UnmaskResponse,
};

/// The outcome of a round: the sum of the survivors' inputs modulo `2^bits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmasked {
    pub sum: Vec<u32>,
    /// Clients whose input is in the sum.
    pub survivors: Vec<u64>,
    /// Clients per phase: advertised, shared, sent input, answered unmasking.
    pub per_phase: [usize; 4],
}

/// The server in one round.
pub struct SecAggServer {
    cfg: SecAggConfig,
    phase: Phase,
    keys: BTreeMap<u64, AdvertiseKeys>,
    shares: BTreeMap<u64, Vec<EncryptedShare>>,
    inputs: BTreeMap<u64, MaskedInput>,
    request: Option<UnmaskRequest>,
    responses: BTreeMap<u64, UnmaskResponse>,
    /// Every refusal of the round, with its reason.
    pub refusals: Vec<String>,
}

impl SecAggServer {
    pub fn new(cfg: SecAggConfig) -> Result<Self, SecAggError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            phase: Phase::Advertise,
            keys: BTreeMap::new(),
            shares: BTreeMap::new(),
            inputs: BTreeMap::new(),
            request: None,
            responses: BTreeMap::new(),
            refusals: Vec::new(),
        })
    }

    pub fn config(&self) -> &SecAggConfig {
        &self.cfg
    }

    /// Records a refusal and returns it.
    fn refuse(&mut self, e: SecAggError) -> SecAggError {
        tracing::warn!("secure aggregation, round {}: {e}", self.cfg.round);
        self.refusals.push(e.to_string());
        e
    }

    fn expect(&mut self, phase: Phase, client: u64, what: &'static str) -> Result<(), SecAggError> {
        if self.phase != phase {
            let e = SecAggError::Phase {
                client,
                what,
                phase: self.phase.name(),
            };
            return Err(self.refuse(e));
        }
        if !self.cfg.has(client) {
            return Err(self.refuse(SecAggError::Unknown { client }));
        }
        Ok(())
    }

    fn malformed(&mut self, client: u64, reason: String) -> SecAggError {
        self.refuse(SecAggError::Malformed { client, reason })
    }

    /// Phase 1: `sender` (authenticated by the transport) advertises its keys.
    pub fn receive_keys(&mut self, sender: u64, msg: AdvertiseKeys) -> Result<(), SecAggError> {
        self.expect(Phase::Advertise, sender, "keys")?;
        if msg.client != sender {
            return Err(
                self.malformed(sender, format!("keys in the name of client {}", msg.client))
            );
        }
        if self.keys.contains_key(&sender) {
            return Err(self.refuse(SecAggError::Duplicate {
                client: sender,
                what: "keys",
            }));
        }
        if msg.cipher_pk == msg.mask_pk
            || self.keys.values().any(|k| {
                [k.cipher_pk, k.mask_pk].contains(&msg.cipher_pk)
                    || [k.cipher_pk, k.mask_pk].contains(&msg.mask_pk)
            })
        {
            return Err(self.malformed(sender, "a public key already in use".into()));
        }
        self.keys.insert(sender, msg);
        Ok(())
    }

    /// Ends phase 1: each client that advertised gets the keys of its group.
    pub fn close_advertise(&mut self) -> Result<BTreeMap<u64, Roster>, SecAggError> {
        if self.phase != Phase::Advertise {
            return Err(SecAggError::Phase {
                client: u64::MAX,
                what: "close advertising",
                phase: self.phase.name(),
            });
        }
        self.enough(self.keys.len(), "advertised keys")?;
        self.phase = Phase::Share;
        Ok(self
            .keys
            .keys()
            .map(|&u| {
                let keys = self
                    .cfg
                    .group_of(u)
                    .iter()
                    .filter_map(|v| self.keys.get(v).cloned())
                    .collect();
                (u, Roster { keys })
            })
            .collect())
    }

    fn enough(&mut self, n: usize, what: &str) -> Result<(), SecAggError> {
        if n < self.cfg.threshold {
            self.phase = Phase::Done;
            let e = SecAggError::TooFew(format!(
                "{n} clients {what}, fewer than the threshold {}",
                self.cfg.threshold
            ));
            return Err(self.refuse(e));
        }
        Ok(())
    }

    /// Phase 2: `sender`'s encrypted shares, one for each of its neighbours with keys.
    pub fn receive_shares(&mut self, sender: u64, msg: ShareKeys) -> Result<(), SecAggError> {
        self.expect(Phase::Share, sender, "shares")?;
        if msg.client != sender || !self.keys.contains_key(&sender) {
            return Err(self.malformed(
                sender,
                "shares from a client that advertised no keys".into(),
            ));
        }
        if self.shares.contains_key(&sender) {
            return Err(self.refuse(SecAggError::Duplicate {
                client: sender,
                what: "shares",
            }));
        }
        let group: BTreeSet<u64> = self.cfg.neighbours_of(sender).into_iter().collect();
        let mut to = BTreeSet::new();
        for s in &msg.shares {
            if s.from != sender || !group.contains(&s.to) || !self.keys.contains_key(&s.to) {
                let reason = format!(
                    "a share from {} for client {}, not a neighbour with keys",
                    s.from, s.to
                );
                return Err(self.malformed(sender, reason));
            }
            if !to.insert(s.to) {
                return Err(self.malformed(sender, format!("two shares for client {}", s.to)));
            }
            if s.ciphertext.len() > 256 {
                return Err(self.malformed(sender, "an oversized share".into()));
            }
        }
        self.shares.insert(sender, msg.shares);
        Ok(())
    }

    /// Ends phase 2: each client that shared gets the shares addressed to it by others that
    /// shared.
    pub fn close_sharing(&mut self) -> Result<BTreeMap<u64, Vec<EncryptedShare>>, SecAggError> {
        if self.phase != Phase::Share {
            return Err(SecAggError::Phase {
                client: u64::MAX,
                what: "close sharing",
                phase: self.phase.name(),
            });
        }
        self.enough(self.shares.len(), "shared keys")?;
        self.phase = Phase::Input;
        let mut inbox: BTreeMap<u64, Vec<EncryptedShare>> =
            self.shares.keys().map(|&u| (u, Vec::new())).collect();
        for list in self.shares.values() {
            for s in list {
                if let Some(b) = inbox.get_mut(&s.to) {
                    b.push(s.clone());
                }
            }
        }
        Ok(inbox)
    }

    /// Phase 3: `sender`'s masked vector.
    pub fn receive_input(&mut self, sender: u64, msg: MaskedInput) -> Result<(), SecAggError> {
        self.expect(Phase::Input, sender, "masked input")?;
        if msg.client != sender || !self.shares.contains_key(&sender) {
            return Err(self.malformed(sender, "input from a client that shared no keys".into()));
        }
        if self.inputs.contains_key(&sender) {
            return Err(self.refuse(SecAggError::Duplicate {
                client: sender,
                what: "masked input",
            }));
        }
        if msg.vector.len() != self.cfg.vector_len {
            let reason = format!(
                "a masked vector of {} values, the round sums {}",
                msg.vector.len(),
                self.cfg.vector_len
            );
            return Err(self.malformed(sender, reason));
        }
        let modulus = self.cfg.modulus_mask();
        if msg.vector.iter().any(|&v| v & !modulus != 0) {
            return Err(self.malformed(sender, format!("a value not below 2^{}", self.cfg.bits)));
        }
        let group: BTreeSet<u64> = self.cfg.neighbours_of(sender).into_iter().collect();
        if let Some(v) = msg
            .masked_with
            .iter()
            .find(|v| !group.contains(v) || !self.shares.contains_key(v))
        {
            return Err(self.malformed(
                sender,
                format!("masked against client {v}, who shared no keys with it"),
            ));
        }
        self.inputs.insert(sender, msg);
        Ok(())
    }

    /// Ends phase 3: the unmasking request. A client whose pairwise masks the others did not
    /// mirror (it masked against a survivor that left it out, after refusing its share) is
    /// treated as dropped, so every mask in the sum can be removed.
    pub fn close_input(&mut self) -> Result<UnmaskRequest, SecAggError> {
        if self.phase != Phase::Input {
            return Err(SecAggError::Phase {
                client: u64::MAX,
                what: "close input",
                phase: self.phase.name(),
            });
        }
        let mut survivors: BTreeSet<u64> = self.inputs.keys().copied().collect();
        loop {
            let lopsided: Vec<u64> = survivors
                .iter()
                .copied()
                .filter(|u| {
                    self.inputs[u]
                        .masked_with
                        .iter()
                        .any(|v| survivors.contains(v) && !self.inputs[v].masked_with.contains(u))
                })
                .collect();
            if lopsided.is_empty() {
                break;
            }
            for u in lopsided {
                self.refusals.push(format!(
                    "client {u}: masked against a survivor that did not mask against it; \
                     counted as dropped"
                ));
                survivors.remove(&u);
            }
        }
        self.enough(survivors.len(), "sent masked input")?;
        self.phase = Phase::Unmask;
        let dropped = self
            .shares
            .keys()
            .copied()
            .filter(|u| !survivors.contains(u))
            .collect();
        let req = UnmaskRequest {
            survivors: survivors.into_iter().collect(),
            dropped,
        };
        self.request = Some(req.clone());
        Ok(req)
    }

    /// Phase 4: `sender`'s revealed shares.
    pub fn receive_unmask(&mut self, sender: u64, msg: UnmaskResponse) -> Result<(), SecAggError> {
        self.expect(Phase::Unmask, sender, "unmasking")?;
        let req = self.request.clone().expect("set when entering the phase");
        if msg.client != sender || req.survivors.binary_search(&sender).is_err() {
            return Err(self.malformed(
                sender,
                "unmasking from a client whose input is not in the sum".into(),
            ));
        }
        if self.responses.contains_key(&sender) {
            return Err(self.refuse(SecAggError::Duplicate {
                client: sender,
                what: "unmasking",
            }));
        }
        let group: BTreeSet<u64> = self.cfg.group_of(sender).into_iter().collect();
        let check = |list: &[super::RevealedShare], allowed: &[u64]| -> Result<(), String> {
            let mut seen = BTreeSet::new();
            for s in list {
                if !group.contains(&s.owner) || allowed.binary_search(&s.owner).is_err() {
                    return Err(format!(
                        "a share of client {}, which was not asked for",
                        s.owner
                    ));
                }
                if !seen.insert(s.owner) {
                    return Err(format!("two shares of client {}", s.owner));
                }
                if crypto::scalar(&s.share).is_none() {
                    return Err(format!(
                        "a share of client {} that is not a field element",
                        s.owner
                    ));
                }
            }
            Ok(())
        };
        if let Err(reason) = check(&msg.seed_shares, &req.survivors)
            .and_then(|_| check(&msg.key_shares, &req.dropped))
        {
            return Err(self.malformed(sender, reason));
        }
        self.responses.insert(sender, msg);
        Ok(())
    }

    /// Ends the round: reconstructs each survivor's self-mask seed (checked against its
    /// commitment) and each dropped client's mask key (checked against its public key),
    /// removes every mask, and returns the sum. Refused, with the reason, when too few
    /// clients answered to reconstruct a secret.
    pub fn finish(&mut self) -> Result<Unmasked, SecAggError> {
        if self.phase != Phase::Unmask {
            return Err(SecAggError::Phase {
                client: u64::MAX,
                what: "finish",
                phase: self.phase.name(),
            });
        }
        self.phase = Phase::Done;
        let req = self.request.clone().expect("set when entering the phase");
        self.enough(self.responses.len(), "answered the unmasking")?;
        let len = self.cfg.vector_len;
        let round = self.cfg.round;
        let mut sum = vec![0u32; len];
        for u in &req.survivors {
            for (s, v) in sum.iter_mut().zip(&self.inputs[u].vector) {
                *s = s.wrapping_add(*v);
            }
        }
        for &u in &req.survivors {
            let seed = self.reconstruct(u, true)?;
            if crypto::commit(&seed) != self.keys[&u].seed_commitment {
                let e = SecAggError::Crypto(format!(
                    "the seed reconstructed for client {u} does not match its commitment (a bad share)"
                ));
                return Err(self.refuse(e));
            }
            let mask = crypto::expand_mask(&self_seed(&seed, round), len);
            for (s, m) in sum.iter_mut().zip(mask) {
                *s = s.wrapping_sub(m);
            }
        }
        for &v in &req.dropped {
            let masked_against: Vec<u64> = req
                .survivors
                .iter()
                .copied()
                .filter(|w| self.inputs[w].masked_with.contains(&v))
                .collect();
            if masked_against.is_empty() {
                continue;
            }
            let key = self.reconstruct(v, false)?;
            if crypto::public_key(&key) != self.keys[&v].mask_pk {
                let e = SecAggError::Crypto(format!(
                    "the key reconstructed for client {v} does not match its public key (a bad share)"
                ));
                return Err(self.refuse(e));
            }
            for w in masked_against {
                let shared = crypto::agree(&key, &self.keys[&w].mask_pk)?;
                let mask = crypto::expand_mask(&pair_seed(&shared, round, w, v), len);
                // w added the mask if w < v and subtracted it otherwise: undo that.
                for (s, m) in sum.iter_mut().zip(mask) {
                    *s = if w < v {
                        s.wrapping_sub(m)
                    } else {
                        s.wrapping_add(m)
                    };
                }
            }
        }
        let modulus = self.cfg.modulus_mask();
        for s in &mut sum {
            *s &= modulus;
        }
        Ok(Unmasked {
            sum,
            survivors: req.survivors.clone(),
            per_phase: [
                self.keys.len(),
                self.shares.len(),
                self.inputs.len(),
                self.responses.len(),
            ],
        })
    }

    /// Combines the revealed shares of `owner`'s seed (`seed`) or mask key.
    fn reconstruct(&mut self, owner: u64, seed: bool) -> Result<Scalar, SecAggError> {
        let shares: Vec<(u64, [u8; 32])> = self
            .responses
            .iter()
            .filter_map(|(&holder, r)| {
                let list = if seed { &r.seed_shares } else { &r.key_shares };
                list.iter()
                    .find(|s| s.owner == owner)
                    .map(|s| (holder, s.share))
            })
            .collect();
        if shares.len() < self.cfg.threshold {
            let e = SecAggError::TooFew(format!(
                "{} shares of client {owner}'s {} came back, the threshold is {}",
                shares.len(),
                if seed { "seed" } else { "key" },
                self.cfg.threshold
            ));
            return Err(self.refuse(e));
        }
        crypto::combine(&shares)
    }

    /// Everything the server received, for tests of what it can learn.
    pub fn view(&self) -> (&BTreeMap<u64, MaskedInput>, &BTreeMap<u64, UnmaskResponse>) {
        (&self.inputs, &self.responses)
    }
}

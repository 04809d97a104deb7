//! One round of the protocol driven in one process, with no transport: every message is
//! handed over directly, each party's work is timed and each message's size counted. The
//! benchmark (`fedser bench secagg`) and the protocol's tests use it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::{SecAggClient, SecAggConfig, SecAggError, SecAggServer, Unmasked, WireSize};

/// Who leaves when.
#[derive(Debug, Default, Clone)]
pub struct Dropouts {
    pub after_advertise: BTreeSet<u64>,
    pub after_sharing: BTreeSet<u64>,
    pub after_input: BTreeSet<u64>,
}

/// What a round cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    /// Mean seconds of protocol work per client (all phases).
    pub client_seconds: f64,
    /// Seconds of protocol work on the server.
    pub server_seconds: f64,
    /// Mean bytes per client (sent and received) in each phase.
    pub bytes_per_client: [f64; 4],
}

/// A finished round: the sum, its cost, and the server (to inspect what it received).
pub struct LocalRound {
    pub unmasked: Unmasked,
    pub cost: Cost,
    pub server: SecAggServer,
}

/// Runs a round with `inputs` (one vector per participant) and `drops`; `entropy` seeds each
/// client's secrets.
pub fn run_local(
    cfg: &SecAggConfig,
    inputs: &BTreeMap<u64, Vec<u32>>,
    drops: &Dropouts,
    entropy: impl Fn(u64) -> [u8; 32],
) -> Result<LocalRound, SecAggError> {
    let n = cfg.participants.len() as f64;
    let mut client_s = 0.0;
    let mut bytes = [0usize; 4];
    let mut server = SecAggServer::new(cfg.clone())?;
    let mut clients = BTreeMap::new();
    let mut server_s = 0.0;
    let timed = |f: &mut dyn FnMut() -> Result<(), SecAggError>, acc: &mut f64| {
        let t = Instant::now();
        let r = f();
        *acc += t.elapsed().as_secs_f64();
        r
    };
    for &id in &cfg.participants {
        let mut c = SecAggClient::new(id, cfg.clone(), entropy(id))?;
        let t = Instant::now();
        let keys = c.advertise()?;
        client_s += t.elapsed().as_secs_f64();
        bytes[0] += keys.wire_bytes();
        timed(&mut || server.receive_keys(id, keys.clone()), &mut server_s)?;
        clients.insert(id, c);
    }
    let t = Instant::now();
    let rosters = server.close_advertise()?;
    server_s += t.elapsed().as_secs_f64();
    for (id, roster) in &rosters {
        bytes[0] += roster.wire_bytes();
        if drops.after_advertise.contains(id) {
            continue;
        }
        let t = Instant::now();
        let msg = clients
            .get_mut(id)
            .expect("a participant")
            .share_keys(roster)?;
        client_s += t.elapsed().as_secs_f64();
        bytes[1] += msg.wire_bytes();
        timed(
            &mut || server.receive_shares(*id, msg.clone()),
            &mut server_s,
        )?;
    }
    let t = Instant::now();
    let inboxes = server.close_sharing()?;
    server_s += t.elapsed().as_secs_f64();
    for (id, inbox) in &inboxes {
        bytes[1] += inbox.wire_bytes();
        if drops.after_sharing.contains(id) {
            continue;
        }
        let x = inputs.get(id).ok_or(SecAggError::Unknown { client: *id })?;
        let t = Instant::now();
        let msg = clients
            .get_mut(id)
            .expect("a participant")
            .masked_input(inbox, x)?;
        client_s += t.elapsed().as_secs_f64();
        bytes[2] += msg.wire_bytes();
        timed(
            &mut || server.receive_input(*id, msg.clone()),
            &mut server_s,
        )?;
    }
    let t = Instant::now();
    let req = server.close_input()?;
    server_s += t.elapsed().as_secs_f64();
    for id in &req.survivors {
        bytes[3] += req.wire_bytes();
        if drops.after_input.contains(id) {
            continue;
        }
        let t = Instant::now();
        let msg = clients.get_mut(id).expect("a participant").unmask(&req)?;
        client_s += t.elapsed().as_secs_f64();
        bytes[3] += msg.wire_bytes();
        timed(
            &mut || server.receive_unmask(*id, msg.clone()),
            &mut server_s,
        )?;
    }
    let t = Instant::now();
    let unmasked = server.finish()?;
    server_s += t.elapsed().as_secs_f64();
    Ok(LocalRound {
        unmasked,
        cost: Cost {
            client_seconds: client_s / n,
            server_seconds: server_s,
            bytes_per_client: bytes.map(|b| b as f64 / n),
        },
        server,
    })
}

//! Whole rounds of the protocol driven in-process, with dropouts at every phase, a curious
//! server that keeps everything, a lying server, and clients that send garbage.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

use super::local::{Dropouts as Drops, LocalRound, run_local};

fn input(client: u64, len: usize, modulus: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|i| {
            (client as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(i * 7919)
                & modulus
        })
        .collect()
}

fn entropy(client: u64) -> [u8; 32] {
    let mut e = [7u8; 32];
    e[..8].copy_from_slice(&client.to_le_bytes());
    e
}

/// The first three phases with every client present; returns the clients and the
/// server's unmasking request.
fn to_unmasking(cfg: &SecAggConfig) -> (BTreeMap<u64, SecAggClient>, UnmaskRequest) {
    let mut server = SecAggServer::new(cfg.clone()).unwrap();
    let mut clients: BTreeMap<u64, SecAggClient> = cfg
        .participants
        .iter()
        .map(|&c| (c, SecAggClient::new(c, cfg.clone(), entropy(c)).unwrap()))
        .collect();
    for (&id, c) in clients.iter_mut() {
        server.receive_keys(id, c.advertise().unwrap()).unwrap();
    }
    for (id, roster) in server.close_advertise().unwrap() {
        let msg = clients.get_mut(&id).unwrap().share_keys(&roster).unwrap();
        server.receive_shares(id, msg).unwrap();
    }
    for (id, inbox) in server.close_sharing().unwrap() {
        let x = input(id, cfg.vector_len, cfg.modulus_mask());
        let msg = clients
            .get_mut(&id)
            .unwrap()
            .masked_input(&inbox, &x)
            .unwrap();
        server.receive_input(id, msg).unwrap();
    }
    (clients, server.close_input().unwrap())
}

fn inputs(cfg: &SecAggConfig) -> BTreeMap<u64, Vec<u32>> {
    cfg.participants
        .iter()
        .map(|&c| (c, input(c, cfg.vector_len, cfg.modulus_mask())))
        .collect()
}

fn run(
    cfg: &SecAggConfig,
    drops: &Drops,
) -> Result<(LocalRound, BTreeMap<u64, Vec<u32>>), SecAggError> {
    let x = inputs(cfg);
    Ok((run_local(cfg, &x, drops, entropy)?, x))
}

fn plain_sum(inputs: &BTreeMap<u64, Vec<u32>>, who: &[u64], modulus: u32) -> Vec<u32> {
    let len = inputs.values().next().unwrap().len();
    let mut s = vec![0u32; len];
    for id in who {
        for (a, b) in s.iter_mut().zip(&inputs[id]) {
            *a = a.wrapping_add(*b);
        }
    }
    s.iter().map(|v| v & modulus).collect()
}

fn ids(v: &[u64]) -> BTreeSet<u64> {
    v.iter().copied().collect()
}

#[test]
fn the_unmasked_sum_is_exact_with_dropouts_at_every_phase() {
    // Full graph (SecAgg): 10 clients, threshold 7, so up to 3 may drop in all.
    let cfg = SecAggConfig::new(4, (0..10).collect(), 9, 1, 32, 257);
    assert_eq!(cfg.threshold, 7);
    let cases = [
        Drops::default(),
        Drops {
            after_advertise: ids(&[3]),
            after_sharing: ids(&[5]),
            after_input: ids(&[8]),
        },
        Drops {
            after_advertise: ids(&[0, 1, 2]),
            ..Drops::default()
        },
        Drops {
            after_sharing: ids(&[0, 4, 9]),
            ..Drops::default()
        },
        Drops {
            after_input: ids(&[1, 2, 3]),
            ..Drops::default()
        },
    ];
    for (i, drops) in cases.iter().enumerate() {
        let (round, x) = run(&cfg, drops).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let out = round.unmasked;
        let expect: Vec<u64> = (0..10)
            .filter(|c| !drops.after_advertise.contains(c) && !drops.after_sharing.contains(c))
            .collect();
        assert_eq!(out.survivors, expect, "case {i}");
        assert_eq!(out.sum, plain_sum(&x, &out.survivors, u32::MAX), "case {i}");
    }
}

#[test]
fn secagg_plus_neighbourhoods_and_smaller_moduli_sum_exactly() {
    // 40 clients, 6 neighbours (groups of 7, threshold 5), sums modulo 2^20.
    let cfg = SecAggConfig::new(2, (100..140).collect(), 6, 42, 20, 64);
    assert_eq!(cfg.threshold, 5);
    let drops = Drops {
        after_advertise: ids(&[101]),
        after_sharing: ids(&[110, 125]),
        after_input: ids(&[133]),
    };
    let (round, x) = run(&cfg, &drops).unwrap();
    let out = round.unmasked;
    assert_eq!(out.survivors.len(), 37);
    assert_eq!(out.sum, plain_sum(&x, &out.survivors, (1 << 20) - 1));
    assert!(round.cost.bytes_per_client[2] > 64.0 * 4.0);
    assert!(out.sum.iter().all(|v| *v < 1 << 20));
    assert_eq!(out.per_phase, [40, 39, 37, 36]);
}

#[test]
fn a_round_with_fewer_survivors_than_the_threshold_is_refused_with_the_reason() {
    let cfg = SecAggConfig::new(1, (0..6).collect(), 5, 1, 32, 8);
    assert_eq!(cfg.threshold, 4);
    let drops = Drops {
        after_sharing: ids(&[0, 1, 2]),
        ..Drops::default()
    };
    let err = run(&cfg, &drops).err().unwrap().to_string();
    assert!(
        err.contains("3 clients sent masked input, fewer than the threshold 4"),
        "{err}"
    );
    // Too few answers to unmask: also refused (nothing is returned).
    let drops = Drops {
        after_input: ids(&[0, 1, 2]),
        ..Drops::default()
    };
    let err = run(&cfg, &drops).err().unwrap().to_string();
    assert!(err.contains("answered the unmasking"), "{err}");
}

#[test]
fn what_the_server_holds_never_unmasks_one_client() {
    let cfg = SecAggConfig::new(9, (0..16).collect(), 6, 3, 32, 4096);
    let drops = Drops {
        after_sharing: ids(&[2]),
        after_input: ids(&[5]),
        ..Drops::default()
    };
    let (round, x) = run(&cfg, &drops).unwrap();
    let out = round.unmasked;
    let (inputs, responses) = round.server.view();
    // No client's seed and key are both revealed: never both kinds of share of one owner.
    for owner in 0..16u64 {
        let seeds = responses
            .values()
            .filter(|r| r.seed_shares.iter().any(|s| s.owner == owner))
            .count();
        let keys = responses
            .values()
            .filter(|r| r.key_shares.iter().any(|s| s.owner == owner))
            .count();
        assert!(
            seeds == 0 || keys == 0,
            "client {owner}: {seeds} seed and {keys} key shares"
        );
        if out.survivors.contains(&owner) {
            assert_eq!(keys, 0, "a survivor's key is never revealed");
        }
    }
    // A client's masked vector of all-zero input... here its real input: the masked values
    // look uniform (each bit set about half the time, low bytes spread over all 256 values).
    let y = &inputs[&0].vector;
    assert_ne!(y, &x[&0]);
    for bit in 0..32 {
        let ones = y.iter().filter(|v| *v >> bit & 1 == 1).count() as f64 / y.len() as f64;
        assert!((ones - 0.5).abs() < 0.04, "bit {bit}: {ones}");
    }
    let mut bins = [0f64; 256];
    for v in y {
        bins[(*v & 0xff) as usize] += 1.0;
    }
    let e = y.len() as f64 / 256.0;
    let chi2: f64 = bins.iter().map(|o| (o - e) * (o - e) / e).sum();
    // 255 degrees of freedom: the 99.9th percentile is about 330.
    assert!(chi2 < 330.0, "chi-square {chi2}");
}

#[test]
fn clients_refuse_a_server_that_asks_for_both_shares_or_asks_twice() {
    let cfg = SecAggConfig::new(1, (0..5).collect(), 4, 1, 32, 8);
    let (mut clients, req) = to_unmasking(&cfg);
    let mut both = req.clone();
    both.dropped.push(req.survivors[1]);
    let c = clients.get_mut(&0).unwrap();
    let e = c.unmask(&both).unwrap_err().to_string();
    assert!(e.contains("both shares of client 1"), "{e}");
    // Having refused, it answers nothing more this round.
    assert!(c.unmask(&req).is_err());
    // A client answers a fair request once only.
    let c = clients.get_mut(&1).unwrap();
    c.unmask(&req).unwrap();
    let e = c.unmask(&req).unwrap_err().to_string();
    assert!(e.contains("out of order"), "{e}");
    // Told that it dropped (its own input ignored), a client refuses.
    let mut lie = req.clone();
    lie.survivors.retain(|&s| s != 2);
    lie.dropped.push(2);
    let e = clients
        .get_mut(&2)
        .unwrap()
        .unmask(&lie)
        .unwrap_err()
        .to_string();
    assert!(e.contains("own input"), "{e}");
}

#[test]
fn a_slow_client_is_never_unmasked_individually() {
    let cfg = SecAggConfig::new(1, (0..6).collect(), 5, 1, 32, 16);
    let mut server = SecAggServer::new(cfg.clone()).unwrap();
    let mut clients: Vec<SecAggClient> = (0..6)
        .map(|c| SecAggClient::new(c, cfg.clone(), entropy(c)).unwrap())
        .collect();
    for c in &mut clients {
        server.receive_keys(c.id(), c.advertise().unwrap()).unwrap();
    }
    let rosters = server.close_advertise().unwrap();
    for c in &mut clients {
        let m = c.share_keys(&rosters[&c.id()]).unwrap();
        server.receive_shares(c.id(), m).unwrap();
    }
    let inboxes = server.close_sharing().unwrap();
    let mut late = None;
    for c in &mut clients {
        let m = c
            .masked_input(&inboxes[&c.id()], &input(c.id(), 16, u32::MAX))
            .unwrap();
        if c.id() == 4 {
            late = Some(m); // arrives after the server closed the phase
        } else {
            server.receive_input(c.id(), m).unwrap();
        }
    }
    let req = server.close_input().unwrap();
    assert_eq!(req.dropped, vec![4]);
    let e = server
        .receive_input(4, late.clone().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of order"), "{e}");
    for c in clients.iter_mut().filter(|c| c.id() != 4) {
        let m = c.unmask(&req).unwrap();
        assert!(
            m.seed_shares.iter().all(|s| s.owner != 4),
            "4's seed stays hidden"
        );
        server.receive_unmask(c.id(), m).unwrap();
    }
    let out = server.finish().unwrap();
    assert_eq!(out.survivors, vec![0, 1, 2, 3, 5]);
    // The server holds 4's key (from the key shares) but not its seed: removing the pairwise
    // masks from 4's late vector still leaves the self mask on it.
    let late = late.unwrap();
    let key_shares: Vec<(u64, [u8; 32])> = server
        .view()
        .1
        .iter()
        .filter_map(|(&h, r)| {
            r.key_shares
                .iter()
                .find(|s| s.owner == 4)
                .map(|s| (h, s.share))
        })
        .collect();
    let key = crypto::combine(&key_shares).unwrap();
    let mut y = late.vector.clone();
    for w in late.masked_with {
        let shared = crypto::agree(
            &key,
            &rosters[&w]
                .keys
                .iter()
                .find(|k| k.client == w)
                .unwrap()
                .mask_pk,
        )
        .unwrap();
        let m = crypto::expand_mask(&client::pair_seed(&shared, 1, 4, w), 16);
        for (a, b) in y.iter_mut().zip(m) {
            *a = if 4 < w {
                a.wrapping_sub(b)
            } else {
                a.wrapping_add(b)
            };
        }
    }
    assert_ne!(y, input(4, 16, u32::MAX), "still hidden by its self mask");
}

#[test]
fn bad_messages_are_refused_and_the_round_goes_on_without_their_senders() {
    // Full graph of 12, threshold 8.
    let cfg = SecAggConfig::new(3, (0..12).collect(), 11, 1, 32, 32);
    let mut server = SecAggServer::new(cfg.clone()).unwrap();
    let mut clients: Vec<SecAggClient> = (0..12)
        .map(|c| SecAggClient::new(c, cfg.clone(), entropy(c)).unwrap())
        .collect();
    // A stranger, keys in another's name, keys twice.
    let k0 = clients[0].advertise().unwrap();
    assert!(matches!(
        server.receive_keys(99, k0.clone()),
        Err(SecAggError::Unknown { .. })
    ));
    assert!(
        server
            .receive_keys(1, k0.clone())
            .unwrap_err()
            .to_string()
            .contains("in the name of")
    );
    server.receive_keys(0, k0.clone()).unwrap();
    assert!(matches!(
        server.receive_keys(0, k0.clone()),
        Err(SecAggError::Duplicate { .. })
    ));
    for c in clients.iter_mut().skip(1) {
        server.receive_keys(c.id(), c.advertise().unwrap()).unwrap();
    }
    let mut rosters = server.close_advertise().unwrap();
    // A roster carrying a key that is not the one client 2 advertised: client 2 refuses.
    let mut forged = rosters[&2].clone();
    forged
        .keys
        .iter_mut()
        .find(|k| k.client == 2)
        .unwrap()
        .mask_pk = [9; 32];
    assert!(
        clients[2]
            .share_keys(&forged)
            .unwrap_err()
            .to_string()
            .contains("not this client's")
    );
    // Client 3 is given a roster whose key for client 6 is someone else's: its share for 6
    // will not decrypt at 6.
    let seven = rosters[&3]
        .keys
        .iter()
        .find(|k| k.client == 7)
        .unwrap()
        .clone();
    let entry = rosters
        .get_mut(&3)
        .unwrap()
        .keys
        .iter_mut()
        .find(|k| k.client == 6)
        .unwrap();
    entry.cipher_pk = seven.cipher_pk;
    entry.mask_pk = seven.mask_pk;
    let mut share_msgs = BTreeMap::new();
    for c in clients.iter_mut().filter(|c| c.id() != 2) {
        let r = c.share_keys(&rosters[&c.id()]);
        if c.id() == 3 {
            // Client 3 sees the same key twice in its roster and refuses to go on.
            assert!(r.unwrap_err().to_string().contains("repeats a public key"));
            continue;
        }
        share_msgs.insert(c.id(), r.unwrap());
    }
    // Misaddressed: a share from 1 for client 42.
    let mut bad = share_msgs[&1].clone();
    bad.shares[0].to = 42;
    assert!(
        server
            .receive_shares(1, bad)
            .unwrap_err()
            .to_string()
            .contains("not a neighbour")
    );
    for (id, m) in share_msgs.clone() {
        server.receive_shares(id, m).unwrap();
    }
    assert!(matches!(
        server.receive_shares(1, share_msgs[&1].clone()),
        Err(SecAggError::Duplicate { .. })
    ));
    let mut inboxes = server.close_sharing().unwrap();
    // A tampered share for client 5 (from 4): 5 refuses it and leaves 4 out of its masks.
    let s = inboxes
        .get_mut(&5)
        .unwrap()
        .iter_mut()
        .find(|s| s.from == 4)
        .unwrap();
    let n = s.ciphertext.len();
    s.ciphertext[n - 1] ^= 1;
    let mut inputs = BTreeMap::new();
    for c in clients
        .iter_mut()
        .filter(|c| share_msgs.contains_key(&c.id()))
    {
        let x = input(c.id(), 32, u32::MAX);
        let m = c.masked_input(&inboxes[&c.id()], &x).unwrap();
        if c.id() == 5 {
            assert_eq!(c.refused.len(), 1, "{:?}", c.refused);
            assert!(!m.masked_with.contains(&4));
            // Wrong length and twice: refused.
            let mut short = m.clone();
            short.vector.pop();
            assert!(
                server
                    .receive_input(5, short)
                    .unwrap_err()
                    .to_string()
                    .contains("31 values")
            );
        }
        server.receive_input(c.id(), m.clone()).unwrap();
        if c.id() == 5 {
            assert!(matches!(
                server.receive_input(5, m),
                Err(SecAggError::Duplicate { .. })
            ));
        }
        inputs.insert(c.id(), x);
    }
    // 4 masked against 5 but 5 not against 4: 4 is counted as dropped so every mask can go.
    let req = server.close_input().unwrap();
    assert!(req.dropped.contains(&4), "{req:?}");
    assert!(server.refusals.iter().any(|r| r.contains("client 4")));
    for c in clients
        .iter_mut()
        .filter(|c| req.survivors.contains(&c.id()))
    {
        let m = c.unmask(&req).unwrap();
        server.receive_unmask(c.id(), m).unwrap();
    }
    let out = server.finish().unwrap();
    assert_eq!(out.survivors, vec![0, 1, 5, 6, 7, 8, 9, 10, 11]);
    assert_eq!(out.sum, plain_sum(&inputs, &out.survivors, u32::MAX));
}

//! Speaker-independent splits and client partitions, all deterministic from a seed.
//!
//! - [`speaker_split`]: held-out test speakers (by name, or a gender-balanced fraction).
//! - [`partition`]: clients by speaker (a device is a person; or k speakers per client), IID
//!   (stratified, equal sizes) or Dirichlet(alpha) label skew.
//! - [`train_val_split`]: a client's own stratified train/validation split.
//!
//! Indices always refer to `corpus.utterances`.

use std::collections::BTreeMap;

use fedser_core::Emotion;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Gamma};

use crate::corpus::{Gender, Utterance};

/// How utterances are spread over clients.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Partition {
    /// Each client holds `per_client` whole speakers (1: one client per speaker).
    Speaker { per_client: usize },
    /// `clients` clients of equal size with the same class mix.
    Iid { clients: usize },
    /// `clients` clients whose class proportions are drawn from Dirichlet(alpha): small alpha,
    /// strong label skew.
    Dirichlet { clients: usize, alpha: f64 },
}

impl Partition {
    /// Parses `speaker`, `speaker:K`, `iid`, `iid:N`, `dirichlet:ALPHA`, `dirichlet:ALPHA:N`;
    /// `default_clients` fills a missing client count.
    pub fn parse(s: &str, default_clients: usize) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let num = |v: &str, what: &str| -> Result<usize, String> {
            v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("partition {s:?}: {what} must be a positive integer, got {v:?}")
            })
        };
        match parts[..] {
            ["speaker"] => Ok(Partition::Speaker { per_client: 1 }),
            ["speaker", k] => Ok(Partition::Speaker {
                per_client: num(k, "speakers per client")?,
            }),
            ["iid"] => Ok(Partition::Iid {
                clients: default_clients,
            }),
            ["iid", n] => Ok(Partition::Iid {
                clients: num(n, "clients")?,
            }),
            ["dirichlet", a] | ["dirichlet", a, _] => {
                let alpha: f64 = a
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v > 0.0)
                    .ok_or_else(|| {
                        format!("partition {s:?}: alpha must be a positive number, got {a:?}")
                    })?;
                let clients = match parts.get(2) {
                    Some(n) => num(n, "clients")?,
                    None => default_clients,
                };
                Ok(Partition::Dirichlet { clients, alpha })
            }
            _ => Err(format!(
                "unknown partition {s:?} (expected speaker, speaker:K, iid:N or dirichlet:ALPHA[:N])"
            )),
        }
    }
}

/// One client's share of the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Name (the speaker for one-speaker clients, else `client_NNN`).
    pub name: String,
    /// Utterance indices, sorted.
    pub indices: Vec<usize>,
}

/// Why a split or partition cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PartitionError {
    #[error("unknown test speaker {0:?} (not in the corpus)")]
    UnknownSpeaker(String),
    #[error("{0}")]
    Impossible(String),
}

/// Splits utterance indices into (train, test) by speaker: no speaker is on both sides.
pub fn speaker_split(
    utterances: &[Utterance],
    test: &TestSpeakers,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), PartitionError> {
    let speakers = speaker_genders(utterances);
    let chosen: Vec<String> = match test {
        TestSpeakers::Named(names) => {
            for n in names {
                if !speakers.contains_key(n.as_str()) {
                    return Err(PartitionError::UnknownSpeaker(n.clone()));
                }
            }
            names.clone()
        }
        TestSpeakers::Fraction(f) => {
            if !(0.0..1.0).contains(f) {
                return Err(PartitionError::Impossible(format!(
                    "test fraction must lie in [0, 1), got {f}"
                )));
            }
            // 0 holds nobody out; any other fraction holds out at least one speaker and
            // leaves at least one for training.
            let count = if *f == 0.0 {
                0
            } else {
                ((speakers.len() as f64 * f).round() as usize)
                    .clamp(1, speakers.len().saturating_sub(1).max(1))
            };
            // Alternate the sexes so the test side is balanced, in a seeded order.
            let mut rng = StdRng::seed_from_u64(seed);
            let mut by_gender: [Vec<&str>; 3] = Default::default();
            for (s, g) in &speakers {
                let slot = match g {
                    Some(Gender::Male) => 0,
                    Some(Gender::Female) => 1,
                    None => 2,
                };
                by_gender[slot].push(s);
            }
            by_gender.iter_mut().for_each(|v| v.shuffle(&mut rng));
            let mut order = Vec::new();
            let longest = by_gender.iter().map(Vec::len).max().unwrap_or(0);
            for i in 0..longest {
                for group in &by_gender {
                    if let Some(s) = group.get(i) {
                        order.push(s.to_string());
                    }
                }
            }
            order.truncate(count);
            order
        }
    };
    if speakers.len() < 2 {
        return Err(PartitionError::Impossible(
            "a speaker-independent split needs at least two speakers".into(),
        ));
    }
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (i, u) in utterances.iter().enumerate() {
        if chosen.contains(&u.speaker) {
            held.push(i);
        } else {
            train.push(i);
        }
    }
    let none_asked = matches!(test, TestSpeakers::Fraction(f) if *f == 0.0);
    if train.is_empty() || (held.is_empty() && !none_asked) {
        return Err(PartitionError::Impossible(
            "the split leaves one side without utterances".into(),
        ));
    }
    Ok((train, held))
}

/// Which speakers are held out for testing.
#[derive(Debug, Clone, PartialEq)]
pub enum TestSpeakers {
    /// These speakers, by name.
    Named(Vec<String>),
    /// This fraction of the speakers, sexes alternating, chosen by the seed.
    Fraction(f64),
}

fn speaker_genders(utterances: &[Utterance]) -> BTreeMap<&str, Option<Gender>> {
    utterances
        .iter()
        .map(|u| (u.speaker.as_str(), u.gender))
        .collect()
}

/// Spreads `indices` over clients according to `scheme`.
pub fn partition(
    utterances: &[Utterance],
    indices: &[usize],
    scheme: Partition,
    seed: u64,
) -> Result<Vec<Client>, PartitionError> {
    if indices.is_empty() {
        return Err(PartitionError::Impossible(
            "no utterances to partition".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let clients = match scheme {
        Partition::Speaker { per_client } => {
            by_speaker(utterances, indices, per_client.max(1), &mut rng)
        }
        Partition::Iid { clients } => {
            check_clients(clients, indices.len())?;
            iid(utterances, indices, clients, &mut rng)
        }
        Partition::Dirichlet { clients, alpha } => {
            check_clients(clients, indices.len())?;
            dirichlet(utterances, indices, clients, alpha, &mut rng)?
        }
    };
    Ok(clients)
}

fn check_clients(clients: usize, n: usize) -> Result<(), PartitionError> {
    if clients == 0 || clients > n {
        return Err(PartitionError::Impossible(format!(
            "cannot make {clients} clients from {n} utterances"
        )));
    }
    Ok(())
}

fn named(indices: Vec<Vec<usize>>) -> Vec<Client> {
    indices
        .into_iter()
        .enumerate()
        .map(|(i, mut idx)| {
            idx.sort_unstable();
            Client {
                name: format!("client_{i:03}"),
                indices: idx,
            }
        })
        .collect()
}

fn by_speaker(
    utterances: &[Utterance],
    indices: &[usize],
    per_client: usize,
    rng: &mut StdRng,
) -> Vec<Client> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in indices {
        groups
            .entry(utterances[i].speaker.as_str())
            .or_default()
            .push(i);
    }
    if per_client == 1 {
        return groups
            .into_iter()
            .map(|(speaker, idx)| Client {
                name: speaker.to_string(),
                indices: idx,
            })
            .collect();
    }
    let mut speakers: Vec<(&str, Vec<usize>)> = groups.into_iter().collect();
    speakers.shuffle(rng);
    named(
        speakers
            .chunks(per_client)
            .map(|chunk| {
                chunk
                    .iter()
                    .flat_map(|(_, idx)| idx.iter().copied())
                    .collect()
            })
            .collect(),
    )
}

fn by_class(utterances: &[Utterance], indices: &[usize]) -> [Vec<usize>; Emotion::COUNT] {
    let mut classes: [Vec<usize>; Emotion::COUNT] = Default::default();
    for &i in indices {
        classes[utterances[i].emotion.index()].push(i);
    }
    classes
}

fn iid(
    utterances: &[Utterance],
    indices: &[usize],
    clients: usize,
    rng: &mut StdRng,
) -> Vec<Client> {
    let mut out = vec![Vec::new(); clients];
    // Deal each shuffled class round-robin, continuing where the last class stopped: sizes
    // differ by at most one and every client gets the same class mix.
    let mut next = 0;
    for mut class in by_class(utterances, indices) {
        class.shuffle(rng);
        for i in class {
            out[next].push(i);
            next = (next + 1) % clients;
        }
    }
    named(out)
}

/// Fewest utterances a Dirichlet client may end up with (resampled otherwise).
const MIN_CLIENT_SIZE: usize = 2;

fn dirichlet(
    utterances: &[Utterance],
    indices: &[usize],
    clients: usize,
    alpha: f64,
    rng: &mut StdRng,
) -> Result<Vec<Client>, PartitionError> {
    let gamma = Gamma::new(alpha, 1.0)
        .map_err(|e| PartitionError::Impossible(format!("alpha {alpha}: {e}")))?;
    let min_size = MIN_CLIENT_SIZE.min(indices.len() / clients);
    for _attempt in 0..1000 {
        let mut out = vec![Vec::new(); clients];
        for mut class in by_class(utterances, indices) {
            if class.is_empty() {
                continue;
            }
            class.shuffle(rng);
            // Dirichlet draw as normalised Gamma(alpha, 1) variates.
            let weights: Vec<f64> = (0..clients).map(|_| gamma.sample(rng)).collect();
            let total: f64 = weights.iter().sum();
            let n = class.len();
            let mut start = 0;
            let mut cumulative = 0.0;
            for (c, w) in weights.iter().enumerate() {
                cumulative += w / total;
                let end = if c + 1 == clients {
                    n
                } else {
                    ((cumulative * n as f64).round() as usize).clamp(start, n)
                };
                out[c].extend_from_slice(&class[start..end]);
                start = end;
            }
        }
        if out.iter().all(|c| c.len() >= min_size) {
            return Ok(named(out));
        }
    }
    Err(PartitionError::Impossible(format!(
        "Dirichlet({alpha}) left a client with fewer than {min_size} utterances in 1000 draws; use fewer clients or a larger alpha"
    )))
}

/// Splits one client's indices into (train, validation), stratified by class:
/// `round(count × fraction)` of each class goes to validation, but never a class's only
/// example, so training sees every class the client has.
pub fn train_val_split(
    utterances: &[Utterance],
    indices: &[usize],
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for mut class in by_class(utterances, indices) {
        class.shuffle(&mut rng);
        let take = ((class.len() as f64 * fraction.clamp(0.0, 1.0)).round() as usize)
            .min(class.len().saturating_sub(1));
        val.extend_from_slice(&class[..take]);
        train.extend_from_slice(&class[take..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// A seed derived from a base seed and a label (e.g. a client's name), so each client's
/// randomness is independent of how many clients come before it.
pub fn derive_seed(base: u64, label: &str) -> u64 {
    // FNV-1a over the label, mixed with the base seed (SplitMix64 finaliser).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = base ^ h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

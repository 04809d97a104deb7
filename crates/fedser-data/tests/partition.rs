//! Splits and partitions: coverage (every utterance in exactly one place), speaker
//! disjointness, class balance where promised, determinism from the seed.

use std::collections::{BTreeSet, HashSet};

use fedser_data::partition::{Partition, TestSpeakers, partition, speaker_split, train_val_split};
use fedser_data::synthetic::{SyntheticConfig, corpus};
use fedser_data::{Corpus, Utterance};

fn synth(speakers: usize, per_emotion: usize) -> Corpus {
    corpus(&SyntheticConfig {
        speakers,
        per_emotion,
        ..Default::default()
    })
    .unwrap()
}

fn assert_exact_cover(clients: &[Vec<usize>], indices: &[usize]) {
    let mut seen = HashSet::new();
    for c in clients {
        for &i in c {
            assert!(seen.insert(i), "utterance {i} in two places");
        }
    }
    let want: HashSet<usize> = indices.iter().copied().collect();
    assert_eq!(seen, want, "not every utterance is placed");
}

fn speakers_of(utts: &[Utterance], idx: &[usize]) -> BTreeSet<String> {
    idx.iter().map(|&i| utts[i].speaker.clone()).collect()
}

#[test]
fn speaker_split_is_disjoint_balanced_and_deterministic() {
    let c = synth(10, 2);
    let (train, test) = speaker_split(&c.utterances, &TestSpeakers::Fraction(0.2), 3).unwrap();
    assert_exact_cover(
        &[train.clone(), test.clone()],
        &(0..c.len()).collect::<Vec<_>>(),
    );
    let (a, b) = (
        speakers_of(&c.utterances, &train),
        speakers_of(&c.utterances, &test),
    );
    assert!(a.is_disjoint(&b));
    assert_eq!(b.len(), 2);
    // One man and one woman on the test side.
    let genders: BTreeSet<_> = test.iter().map(|&i| c.utterances[i].gender).collect();
    assert_eq!(genders.len(), 2);
    assert_eq!(
        speaker_split(&c.utterances, &TestSpeakers::Fraction(0.2), 3)
            .unwrap()
            .1,
        test
    );
    assert_ne!(
        speaker_split(&c.utterances, &TestSpeakers::Fraction(0.2), 4)
            .unwrap()
            .1,
        test
    );

    let named = TestSpeakers::Named(vec!["synth_003".into(), "synth_007".into()]);
    let (_, test) = speaker_split(&c.utterances, &named, 0).unwrap();
    assert_eq!(
        speakers_of(&c.utterances, &test),
        ["synth_003", "synth_007"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let err = speaker_split(
        &c.utterances,
        &TestSpeakers::Named(vec!["nobody".into()]),
        0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("nobody"));
}

#[test]
fn speaker_partition_gives_each_speaker_one_client() {
    let c = synth(8, 2);
    let all: Vec<usize> = (0..c.len()).collect();
    let clients = partition(&c.utterances, &all, Partition::Speaker { per_client: 1 }, 0).unwrap();
    assert_eq!(clients.len(), 8);
    assert_exact_cover(
        &clients
            .iter()
            .map(|c| c.indices.clone())
            .collect::<Vec<_>>(),
        &all,
    );
    for client in &clients {
        assert_eq!(speakers_of(&c.utterances, &client.indices).len(), 1);
        assert_eq!(client.name, c.utterances[client.indices[0]].speaker);
    }
    let grouped = partition(&c.utterances, &all, Partition::Speaker { per_client: 3 }, 5).unwrap();
    assert_eq!(grouped.len(), 3); // 3 + 3 + 2 speakers
    assert_exact_cover(
        &grouped
            .iter()
            .map(|c| c.indices.clone())
            .collect::<Vec<_>>(),
        &all,
    );
    let mut seen = BTreeSet::new();
    for client in &grouped {
        for s in speakers_of(&c.utterances, &client.indices) {
            assert!(seen.insert(s), "a speaker is split across clients");
        }
    }
}

#[test]
fn iid_partition_is_equal_sized_and_stratified() {
    let c = synth(6, 4); // 120 utterances, 24 per class
    let all: Vec<usize> = (0..c.len()).collect();
    let clients = partition(&c.utterances, &all, Partition::Iid { clients: 4 }, 1).unwrap();
    assert_exact_cover(
        &clients
            .iter()
            .map(|c| c.indices.clone())
            .collect::<Vec<_>>(),
        &all,
    );
    for client in &clients {
        assert_eq!(client.indices.len(), 30);
        let mut per_class = [0; 5];
        for &i in &client.indices {
            per_class[c.utterances[i].emotion.index()] += 1;
        }
        assert_eq!(per_class, [6; 5]);
    }
    assert_eq!(
        partition(&c.utterances, &all, Partition::Iid { clients: 4 }, 1).unwrap(),
        clients
    );
}

#[test]
fn dirichlet_skew_grows_as_alpha_shrinks() {
    let c = synth(10, 10); // 500 utterances
    let all: Vec<usize> = (0..c.len()).collect();
    // Mean over clients of the largest class share: 0.2 is perfectly balanced, 1.0 one class.
    let skew = |alpha: f64| {
        let clients = partition(
            &c.utterances,
            &all,
            Partition::Dirichlet { clients: 10, alpha },
            9,
        )
        .unwrap();
        assert_exact_cover(
            &clients
                .iter()
                .map(|c| c.indices.clone())
                .collect::<Vec<_>>(),
            &all,
        );
        clients
            .iter()
            .map(|cl| {
                let mut per_class = [0usize; 5];
                for &i in &cl.indices {
                    per_class[c.utterances[i].emotion.index()] += 1;
                }
                *per_class.iter().max().unwrap() as f64 / cl.indices.len() as f64
            })
            .sum::<f64>()
            / clients.len() as f64
    };
    let (strong, weak) = (skew(0.1), skew(100.0));
    assert!(strong > 0.6, "alpha 0.1: mean top-class share {strong}");
    assert!(weak < 0.35, "alpha 100: mean top-class share {weak}");
}

#[test]
fn impossible_partitions_are_errors() {
    let c = synth(2, 1);
    let all: Vec<usize> = (0..c.len()).collect();
    assert!(partition(&c.utterances, &all, Partition::Iid { clients: 11 }, 0).is_err());
    assert!(partition(&c.utterances, &[], Partition::Iid { clients: 1 }, 0).is_err());
    assert!(Partition::parse("dirichlet:-1", 4).is_err());
    assert!(Partition::parse("bogus", 4).is_err());
    assert_eq!(
        Partition::parse("dirichlet:0.5", 4).unwrap(),
        Partition::Dirichlet {
            clients: 4,
            alpha: 0.5
        }
    );
    assert_eq!(
        Partition::parse("speaker:2", 4).unwrap(),
        Partition::Speaker { per_client: 2 }
    );
}

#[test]
fn local_validation_split_is_stratified_and_keeps_every_class_in_training() {
    let c = synth(2, 5);
    let all: Vec<usize> = (0..c.len()).collect();
    let (train, val) = train_val_split(&c.utterances, &all, 0.2, 4);
    assert_exact_cover(&[train.clone(), val.clone()], &all);
    assert_eq!(val.len(), 10); // 2 of each class's 10
    // A class with a single example stays in training.
    let one_each: Vec<usize> = (0..5).map(|k| k * 5).collect();
    let (train, val) = train_val_split(&c.utterances, &one_each, 0.5, 4);
    assert_eq!((train.len(), val.len()), (5, 0));
}

//! Models: parameters round-trip exactly, training learns a separable problem for every
//! architecture, the LSTM ignores padding, runs are deterministic, NaN and bad files fail clearly.

use std::collections::BTreeMap;

use fedser_core::{FeatureMatrix, ParamSet};
use fedser_model::model::train_device;
use fedser_model::{
    Arch, EmotionModel, Example, ModelSpec, Proximal, TrainConfig, TrainError, evaluate, predict,
    train, train_near,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const ARCHS: [Arch; 4] = [Arch::Dnn, Arch::Cnn, Arch::Lstm, Arch::LstmTransformer];

/// Class k raises coefficient k (and lowers coefficient k + 5) over a noisy background;
/// lengths vary from 20 to 60 frames.
fn toy(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let label = i % 5;
            let frames = rng.random_range(20..60);
            let mut data = Vec::with_capacity(frames * 13);
            for _ in 0..frames {
                for c in 0..13 {
                    let signal = if c == label {
                        1.2
                    } else if c == label + 5 {
                        -1.2
                    } else {
                        0.0
                    };
                    data.push(signal + rng.random_range(-1.0f32..1.0));
                }
            }
            Example {
                features: FeatureMatrix::new(frames, 13, data).unwrap(),
                label,
            }
        })
        .collect()
}

fn small(arch: Arch) -> ModelSpec {
    ModelSpec {
        hidden: 16,
        dropout: 0.1,
        ..ModelSpec::new(arch)
    }
}

#[test]
fn every_architecture_learns_a_separable_problem() {
    let (tr, te) = (toy(150, 1), toy(60, 2));
    let cfg = TrainConfig {
        epochs: 12,
        batch_size: 16,
        learning_rate: 5e-3,
        patience: 0,
        ..TrainConfig::default()
    };
    for arch in ARCHS {
        let model = EmotionModel::new(small(arch), 3, &train_device()).unwrap();
        let (model, history) = train(model, &tr, &[], &cfg).unwrap();
        let acc = evaluate(&model, &te, 32).accuracy();
        let first = history.epochs.first().unwrap().train_loss;
        let last = history.epochs.last().unwrap().train_loss;
        assert!(last < first * 0.7, "{arch}: loss {first} -> {last}");
        assert!(acc > 0.8, "{arch}: held-out accuracy {acc}");
    }
}

#[test]
fn params_round_trip_into_a_differently_seeded_model() {
    let data = toy(20, 5);
    for arch in ARCHS {
        let device = train_device();
        let trained = train(
            EmotionModel::new(small(arch), 1, &device).unwrap(),
            &data,
            &[],
            &TrainConfig {
                epochs: 2,
                ..TrainConfig::default()
            },
        )
        .unwrap()
        .0;
        let params = trained.params().unwrap();
        assert!(params.num_values() > 100, "{arch}");
        let other = EmotionModel::new(small(arch), 99, &device).unwrap();
        assert_ne!(other.params().unwrap(), params);
        let restored = other.set_params(&params).unwrap();
        assert_eq!(restored.params().unwrap(), params, "{arch}");
        assert_eq!(
            predict(&trained, &data, 8),
            predict(&restored, &data, 8),
            "{arch}"
        );
    }
}

#[test]
fn lstm_output_does_not_depend_on_padding() {
    let data = toy(6, 9);
    for arch in [Arch::Lstm, Arch::LstmTransformer] {
        let model = EmotionModel::new(small(arch), 4, &train_device()).unwrap();
        let together = predict(&model, &data, 6); // padded to the longest
        for (i, e) in data.iter().enumerate() {
            let alone = predict(&model, std::slice::from_ref(e), 1);
            for (a, b) in alone[0].iter().zip(&together[i]) {
                assert!((a - b).abs() < 1e-4, "{arch}: padding changed the output");
            }
        }
    }
}

/// Clips of one to three frames (20 to 60 ms) are valid input for every model, alone or
/// batched, and give a probability distribution — no panic on a tiny recording.
#[test]
fn every_architecture_classifies_clips_shorter_than_its_pooling() {
    let short: Vec<Example> = (1..=3)
        .map(|frames| Example {
            features: FeatureMatrix::new(frames, 13, vec![0.5; frames * 13]).unwrap(),
            label: 0,
        })
        .collect();
    for arch in ARCHS {
        let model = EmotionModel::new(small(arch), 2, &train_device()).unwrap();
        for batch in [1, 3] {
            for p in predict(&model, &short, batch) {
                let total: f32 = p.iter().sum();
                assert!(
                    p.iter().all(|v| v.is_finite()) && (total - 1.0).abs() < 1e-4,
                    "{arch}, batch {batch}: {p:?}"
                );
            }
        }
        // Training on them works too (the loss stays finite).
        let cfg = TrainConfig {
            epochs: 1,
            ..TrainConfig::default()
        };
        train(model, &short, &[], &cfg).unwrap();
    }
}

#[test]
fn training_is_deterministic_from_the_seed() {
    let data = toy(30, 3);
    let run = |seed| {
        let m = EmotionModel::new(small(Arch::Cnn), seed, &train_device()).unwrap();
        let cfg = TrainConfig {
            epochs: 2,
            seed,
            ..TrainConfig::default()
        };
        train(m, &data, &[], &cfg).unwrap().0.params().unwrap()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn nan_features_stop_training_with_the_epoch() {
    let mut data = toy(10, 1);
    let mut bad = data[3].features.clone().into_vec();
    bad[0] = f32::NAN;
    data[3].features = FeatureMatrix::new(data[3].features.frames(), 13, bad).unwrap();
    let model = EmotionModel::new(small(Arch::Dnn), 1, &train_device()).unwrap();
    let err = train(model, &data, &[], &TrainConfig::default()).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFiniteLoss { epoch: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("epoch 1"));
}

#[test]
fn model_files_round_trip_and_bad_files_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let device = train_device();
    let model = EmotionModel::new(small(Arch::Cnn), 2, &device).unwrap();
    let mut meta = BTreeMap::new();
    meta.insert("fedser.front_end".to_string(), "{\"x\":1}".to_string());
    model.save(&path, &meta).unwrap();
    let (loaded, m) = EmotionModel::load(&path, &device).unwrap();
    assert_eq!(loaded.params().unwrap(), model.params().unwrap());
    assert_eq!(m["fedser.front_end"], "{\"x\":1}");
    assert_eq!(loaded.spec, model.spec);

    // Truncated.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(
        dir.path().join("cut.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let err = EmotionModel::load(&dir.path().join("cut.safetensors"), &device).unwrap_err();
    assert!(err.to_string().contains("cut.safetensors"), "{err}");
    // Another model kind's weights under this spec: shapes do not fit.
    let (params, mut meta) = ParamSet::load(&path).unwrap();
    meta.insert(
        "fedser.model_spec".into(),
        serde_json::to_string(&ModelSpec {
            hidden: 24,
            ..small(Arch::Cnn)
        })
        .unwrap(),
    );
    params
        .save(&dir.path().join("shapes.safetensors"), &meta)
        .unwrap();
    let err = EmotionModel::load(&dir.path().join("shapes.safetensors"), &device).unwrap_err();
    assert!(err.to_string().contains("expected shape"), "{err}");
    meta.insert(
        "fedser.model_spec".into(),
        serde_json::to_string(&small(Arch::Lstm)).unwrap(),
    );
    params
        .save(&dir.path().join("kind.safetensors"), &meta)
        .unwrap();
    let err = EmotionModel::load(&dir.path().join("kind.safetensors"), &device).unwrap_err();
    assert!(err.to_string().contains("missing tensor"), "{err}");
    // Plain tensors without fedser metadata.
    params
        .save(&dir.path().join("plain.safetensors"), &BTreeMap::new())
        .unwrap();
    let err = EmotionModel::load(&dir.path().join("plain.safetensors"), &device).unwrap_err();
    assert!(err.to_string().contains("not a fedser model file"), "{err}");
    // Missing.
    assert!(EmotionModel::load(&dir.path().join("none.safetensors"), &device).is_err());
}

fn distance(a: &ParamSet, b: &ParamSet, skip: &[String]) -> f64 {
    a.iter()
        .zip(b.iter())
        .filter(|((n, _), _)| !skip.iter().any(|s| s == n))
        .flat_map(|((_, x), (_, y))| x.data.iter().zip(&y.data))
        .map(|(p, q)| ((p - q) as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn the_proximal_term_keeps_weights_near_the_reference() {
    let data = toy(60, 4);
    let cfg = TrainConfig {
        epochs: 5,
        learning_rate: 5e-3,
        ..TrainConfig::default()
    };
    let start = EmotionModel::new(small(Arch::Cnn), 2, &train_device()).unwrap();
    let reference = start.params().unwrap();
    let stats = start.statistic_names();
    // Batch-norm running statistics are the tensors not trained by gradients.
    assert!(!stats.is_empty());
    assert!(stats.iter().all(|n| n.contains("running")), "{stats:?}");
    let moved = |mu: f64| {
        let model = EmotionModel::new(small(Arch::Cnn), 2, &train_device()).unwrap();
        let proximal = Proximal {
            mu,
            reference: &reference,
        };
        let (m, _) = train_near(model, &data, &[], &cfg, Some(proximal)).unwrap();
        distance(&m.params().unwrap(), &reference, &stats)
    };
    let (free, held) = (moved(0.0), moved(50.0));
    assert!(held < 0.7 * free, "free {free}, with mu {held}");
}

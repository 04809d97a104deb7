//! DP-FedAvg's stages driven without any model: the client stage bounds what leaves a device,
//! the server stage scales, noises, accounts and refuses what would break its guarantee.

use fedser_core::{ParamSet, ParamTensor};
use fedser_fl::strategy::LocalTraining;
use fedser_fl::{
    ConfigValue, FedStrategy, FitInstructions, Sampling, ServerPipeline, ServerStage, Strategy,
    StrategySpec, Update, UpdateStage,
};
use fedser_privacy::dp::{CLIP_KEY, NOISE_KEY};
use fedser_privacy::{DpClientStage, DpMode, DpServerStage, DpSettings, l2_norm};

fn settings(mode: DpMode) -> DpSettings {
    DpSettings {
        mode,
        clip: 1.0,
        noise_multiplier: 1.0,
        delta: 1e-5,
        sampling_rate: 0.5,
        clients: 20,
        adaptive: None,
        target_epsilon: None,
        poisson: true,
        seed: 3,
        reproducible_noise: false,
        min_contributors: 4,
    }
}

fn params(v: Vec<f32>) -> ParamSet {
    let mut p = ParamSet::new();
    p.push("w", ParamTensor::new(vec![v.len()], v).unwrap())
        .unwrap();
    p
}

fn update(client: usize, v: Vec<f32>) -> Update {
    Update {
        client,
        delta: params(v),
        examples: 10 + client,
        loss: 0.1,
        seconds: 0.0,
        stages: Default::default(),
    }
}

fn ins(config: &[(&str, f64)]) -> FitInstructions {
    FitInstructions {
        round: 1,
        epochs: 1,
        batch_size: 4,
        learning_rate: 0.1,
        proximal_mu: 0.0,
        seed: 9,
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), ConfigValue::Float(*v)))
            .collect(),
    }
}

#[test]
fn every_update_leaves_the_device_clipped_and_local_dp_adds_noise_there() {
    let stage = DpClientStage;
    for scale in [0.1f32, 1.0, 3.0, 100.0] {
        let mut delta = params(vec![scale, -2.0 * scale, 0.5 * scale]);
        let figures = stage
            .apply(&mut delta, 0, &ins(&[(CLIP_KEY, 0.7)]))
            .unwrap();
        assert!(
            l2_norm(&delta) <= 0.7,
            "norm {} at scale {scale}",
            l2_norm(&delta)
        );
        assert_eq!(figures["clipped"] > 0.5, figures["norm"] > 0.7);
    }
    // No DP settings in the task: the update is untouched.
    let mut delta = params(vec![5.0, 5.0]);
    assert!(stage.apply(&mut delta, 0, &ins(&[])).unwrap().is_empty());
    assert_eq!(delta, params(vec![5.0, 5.0]));
    // Local DP: the device's own noise, whose spread matches what the server asked for.
    let mut delta = params(vec![0.0; 20_000]);
    let figures = stage
        .apply(&mut delta, 4, &ins(&[(CLIP_KEY, 1.0), (NOISE_KEY, 0.3)]))
        .unwrap();
    assert!(
        figures.is_empty(),
        "nothing about the noiseless update leaves: {figures:?}"
    );
    // The device's noise comes from its own randomness: the same task twice, different noise.
    let mut again = params(vec![0.0; 20_000]);
    stage
        .apply(&mut again, 4, &ins(&[(CLIP_KEY, 1.0), (NOISE_KEY, 0.3)]))
        .unwrap();
    assert_ne!(delta, again);
    let v = &delta.iter().next().unwrap().1.data;
    let sd = (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    assert!((sd - 0.3).abs() < 0.01, "sd {sd}");
    // A NaN update is an error, not a panic.
    let mut bad = params(vec![f32::NAN]);
    assert!(stage.apply(&mut bad, 0, &ins(&[(CLIP_KEY, 1.0)])).is_err());
}

#[test]
fn central_dp_sums_over_q_n_adds_noise_of_z_c_over_q_n_and_accounts_every_round() {
    let mut stage = DpServerStage::new(settings(DpMode::Central)).unwrap();
    let mut config = Default::default();
    stage.configure(1, &mut config);
    assert_eq!(config[CLIP_KEY].as_f64(), Some(1.0));
    assert!(!stage.allows_individual_views());
    // Four clients; one sends an update of norm 10, clipped to 1 by the server.
    let n = 40_000;
    let updates: Vec<Update> = (0..4)
        .map(|c| update(c, vec![if c == 0 { 10.0 } else { 0.0 }]))
        .collect();
    let mut flats: Vec<Vec<f32>> = updates
        .iter()
        .map(|u| u.delta.iter().next().unwrap().1.data.clone())
        .collect();
    let mut weights: Vec<f64> = updates.iter().map(|u| u.examples as f64).collect();
    stage.before(1, &updates, &mut flats, &mut weights).unwrap();
    assert_eq!(weights, vec![1.0; 4], "DP-FedAvg weights clients alike");
    assert!(
        (flats[0][0] - 1.0).abs() < 1e-6,
        "clipped to C: {}",
        flats[0][0]
    );
    // The mean of the four (0.25) becomes the sum over q·N = 10, then noise of sd z·C/(qN) = 0.1
    // on a long vector of such means.
    let mut delta = vec![0.25f32; n];
    stage.after(1, &mut delta, 4).unwrap();
    let mean = delta.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let sd = (delta
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64)
        .sqrt();
    assert!((mean - 0.1).abs() < 0.003, "mean {mean}");
    assert!((sd - 0.1).abs() < 0.003, "sd {sd}");
    let record = stage.record().unwrap();
    assert_eq!(record["sampled"], 4);
    assert_eq!(record["clipped_fraction"], 0.25);
    assert_eq!(record["noise_std"], 0.1);
    let one = stage.epsilon().unwrap();
    // A round with nobody in it changes no model but still counts.
    stage.skipped(2).unwrap();
    let two = stage.epsilon().unwrap();
    assert!(two > one, "{two} > {one}");
    // The accountant's figure is the RDP accountant's for two steps of (q, z).
    let mut acc = fedser_privacy::RdpAccountant::new();
    acc.record(0.5, 1.0, 2).unwrap();
    assert!((acc.epsilon(1e-5).unwrap().0 - two).abs() < 1e-12);
    // Saved and restored, it carries on with the same curve.
    let saved = stage.state().unwrap();
    let mut again = DpServerStage::new(settings(DpMode::Central)).unwrap();
    again.restore(&saved).unwrap();
    assert_eq!(again.epsilon().unwrap(), two);
    assert!(again.restore("{\"broken\":").is_err());
}

#[test]
fn a_target_epsilon_refuses_the_round_that_would_pass_it() {
    let mut s = settings(DpMode::Central);
    let mut acc = fedser_privacy::RdpAccountant::new();
    acc.record(0.5, 1.0, 3).unwrap();
    // Between the third and the fourth round's epsilon.
    let three = acc.epsilon(1e-5).unwrap().0;
    acc.step(0.5, 1.0).unwrap();
    let four = acc.epsilon(1e-5).unwrap().0;
    s.target_epsilon = Some((three + four) / 2.0);
    let mut stage = DpServerStage::new(s).unwrap();
    for round in 1..=3 {
        stage.admit(round).unwrap();
        stage.skipped(round).unwrap();
    }
    let err = stage.admit(4).unwrap_err();
    assert!(err.contains("past the target"), "{err}");
}

#[test]
fn bad_settings_are_refused_before_training() {
    for (field, value) in [("clip", 0.0), ("z", -1.0), ("q", 1.5), ("delta", 1.0)] {
        let mut s = settings(DpMode::Central);
        match field {
            "clip" => s.clip = value,
            "z" => s.noise_multiplier = value,
            "q" => s.sampling_rate = value,
            _ => s.delta = value,
        }
        assert!(DpServerStage::new(s).is_err(), "{field} = {value}");
    }
    // Adaptive clipping needs clipped bits that local DP keeps on the device.
    let mut s = settings(DpMode::Local);
    s.adaptive = Some(fedser_privacy::dp::AdaptiveSettings {
        quantile: 0.5,
        learning_rate: 0.2,
    });
    let err = DpServerStage::new(s.clone()).err().unwrap().to_string();
    assert!(err.contains("local and distributed DP"), "{err}");
    s.mode = DpMode::Distributed;
    assert!(DpServerStage::new(s).is_err());
}

#[test]
fn rules_that_read_individual_updates_are_refused_under_dp() {
    let global = params(vec![0.0, 0.0]);
    let ups: Vec<Update> = (0..5).map(|c| update(c, vec![0.1, 0.1])).collect();
    let mut pipeline = ServerPipeline::new().with_stage(Box::new(
        DpServerStage::new(settings(DpMode::Central)).unwrap(),
    ));
    for name in ["median", "trimmed-mean:0.2", "krum:1"] {
        let mut s = FedStrategy::new(
            StrategySpec::parse(name).unwrap(),
            Sampling::default(),
            LocalTraining::default(),
            1,
        );
        let err = s
            .aggregate_fit(1, &global, &ups, &mut pipeline)
            .unwrap_err()
            .to_string();
        assert!(err.contains("individual updates"), "{name}: {err}");
    }
    let mut fedavg = FedStrategy::new(
        StrategySpec::fedavg(),
        Sampling::default(),
        LocalTraining::default(),
        1,
    );
    assert!(
        fedavg
            .aggregate_fit(1, &global, &ups, &mut pipeline)
            .is_ok()
    );
    // A round nobody took part in still releases a noised aggregate (skipping it would tell).
    let (next, _) = fedavg
        .aggregate_fit(2, &global, &[], &mut pipeline)
        .unwrap();
    assert_ne!(next, global, "noise released for an empty round");
    let record = pipeline.records()["privacy"].clone();
    assert_eq!(record["sampled"], 0);
}

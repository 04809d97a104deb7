//! The run configuration: defaults, then a TOML file (`--config`), then flags, in that order
//! of precedence. The fully resolved result is written to the run directory as `config.toml`
//! and is all `--resume` needs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedser_audio::FrontEndConfig;
use fedser_data::loaders::CorpusKind;
use fedser_data::partition::Partition;
use fedser_fl::StrategySpec;
use fedser_model::{Arch, ModelSpec, Optimizer};
use serde::{Deserialize, Serialize};

use crate::cli::{CorpusArgs, Norm, RunFlags};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The run's name (shown in the report).
    pub name: String,
    /// Seed of everything random: corpus, split, partition, sampling, training, dropouts.
    pub seed: u64,
    pub corpus: CorpusConfig,
    pub split: SplitConfig,
    pub model: ModelConfig,
    pub local: LocalConfig,
    pub federation: FederationConfig,
    pub simulation: SimulationConfig,
    pub features: FrontEndConfig,
    pub privacy: PrivacyConfig,
}

/// Client-level differential privacy (DP-FedAvg) and the sampling it assumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// `central` or `local`; left out: no DP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp: Option<fedser_privacy::DpMode>,
    pub clip: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_multiplier: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_epsilon: Option<f64>,
    pub delta: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_clip: Option<f64>,
    /// `poisson:Q`, `fixed`, or left out (Poisson with Q = fraction under DP, else fixed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<String>,
    /// Keep what the server sees under `attacker/` (does not change results).
    pub record_updates: bool,
    /// Draw the DP noise from the run seed (exact reproduction; voids the guarantee against
    /// anyone who knows the seed). Off: from a secret kept in the run directory.
    pub reproducible_noise: bool,
    /// Secure aggregation (SecAgg+): the server learns only each round's sum.
    pub secagg: bool,
    /// Shares needed to unmask (default: two thirds of a client's group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secagg_threshold: Option<usize>,
    /// Neighbours per client (default 2·⌈log2 n⌉; n − 1 or more: the full graph).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secagg_neighbours: Option<usize>,
    /// Sums modulo 2^bits.
    pub secagg_bits: u32,
    /// Largest update coordinate (default: the clip norm under DP, else 4); larger ones are
    /// clamped and counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secagg_range: Option<f64>,
    /// Without DP, a client's weight is min(examples, cap) / cap.
    pub secagg_weight_cap: f64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            dp: None,
            clip: 1.0,
            noise_multiplier: None,
            target_epsilon: None,
            delta: 1e-5,
            adaptive_clip: None,
            sampling: None,
            record_updates: false,
            reproducible_noise: false,
            secagg: false,
            secagg_threshold: None,
            secagg_neighbours: None,
            secagg_bits: 32,
            secagg_range: None,
            secagg_weight_cap: 1000.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorpusConfig {
    pub kind: CorpusKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    pub crema_voice_labels: bool,
    pub iemocap_improvised_only: bool,
    pub iemocap_keep_excited_apart: bool,
    pub synthetic_speakers: usize,
    pub synthetic_per_emotion: usize,
    /// Only these speakers take part (empty: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub speakers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// `speaker` (a client is a speaker), `speaker:K`, `iid:N` or `dirichlet:ALPHA[:N]`.
    pub partition: String,
    /// Held-out test speakers (central evaluation); empty: `test_fraction` of the speakers.
    pub test_speakers: Vec<String>,
    pub test_fraction: f64,
    /// Fraction of each client's utterances kept for its own validation (federated evaluation).
    pub val_fraction: f64,
    pub norm: Norm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Width; 0 means the architecture's default.
    pub hidden: usize,
    pub dropout: f64,
    pub bidirectional: bool,
    /// Longest sequence seen at once, in frames; 0 means the architecture's default.
    pub max_frames: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub optimizer: Optimizer,
    pub class_weights: bool,
    /// Training-time augmentation on each device: extra copies of its speakers' training
    /// recordings, each copy through one random recording chain (0: none).
    pub augment_chains: usize,
    /// The chain kinds augmentation draws from (empty: all).
    pub augment_kinds: Vec<fedser_audio::ChainKind>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    pub rounds: u32,
    /// `fedavg`, `fedprox[:MU]`, `fedadam[:LR]`, `fedyogi[:LR]`, `fedadagrad[:LR]`, `median`,
    /// `trimmed-mean[:BETA]`, `krum[:F]`, `multi-krum[:F[:M]]`.
    pub strategy: String,
    pub fraction_fit: f64,
    pub min_fit_clients: usize,
    pub fraction_evaluate: f64,
    pub min_evaluate_clients: usize,
    /// A round only updates the global model with at least this many accepted updates.
    pub min_fit_results: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationConfig {
    /// Clients training at once (left out: one per core). Does not change results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Probability that a selected client drops out of a round.
    pub dropout: f64,
    /// Probability that a selected client that did not drop out delivers too late.
    pub straggler: f64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: "run".into(),
            seed: 7,
            corpus: CorpusConfig::default(),
            split: SplitConfig::default(),
            model: ModelConfig::default(),
            local: LocalConfig::default(),
            federation: FederationConfig::default(),
            simulation: SimulationConfig::default(),
            features: FrontEndConfig::default(),
            privacy: PrivacyConfig::default(),
        }
    }
}

impl Default for CorpusConfig {
    fn default() -> Self {
        Self {
            kind: CorpusKind::Synthetic,
            data: None,
            crema_voice_labels: false,
            iemocap_improvised_only: false,
            iemocap_keep_excited_apart: false,
            synthetic_speakers: 24,
            synthetic_per_emotion: 8,
            speakers: Vec::new(),
        }
    }
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            partition: "speaker".into(),
            test_speakers: Vec::new(),
            test_fraction: 0.2,
            val_fraction: 0.2,
            norm: Norm::Speaker,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            arch: Arch::Cnn,
            hidden: 0,
            dropout: 0.3,
            bidirectional: true,
            max_frames: 0,
        }
    }
}

impl Default for LocalConfig {
    /// Measured on the synthetic corpus with speaker clients (about 40 utterances each): a few
    /// small batches per round learn faster than one large one; more local epochs drift.
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 8,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            optimizer: Optimizer::AdamW,
            class_weights: true,
            augment_chains: 0,
            augment_kinds: Vec::new(),
        }
    }
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            rounds: 30,
            strategy: "fedavg".into(),
            fraction_fit: 1.0,
            min_fit_clients: 2,
            fraction_evaluate: 1.0,
            min_evaluate_clients: 2,
            min_fit_results: 1,
        }
    }
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            workers: None,
            dropout: 0.0,
            straggler: 0.0,
        }
    }
}

impl RunConfig {
    /// Reads a TOML file (fields left out keep their defaults).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: invalid configuration", path.display()))
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot write the configuration as TOML")
    }

    /// Overrides with the flags that were given.
    pub fn apply_flags(&mut self, f: &RunFlags) {
        macro_rules! set {
            ($field:expr, $flag:expr) => {
                if let Some(v) = $flag.clone() {
                    $field = v;
                }
            };
        }
        set!(self.name, f.name);
        set!(self.seed, f.seed);
        set!(self.corpus.kind, f.corpus);
        if f.data.is_some() {
            self.corpus.data = f.data.clone();
        }
        set!(self.corpus.synthetic_speakers, f.synthetic_speakers);
        set!(self.corpus.synthetic_per_emotion, f.synthetic_per_emotion);
        self.corpus.crema_voice_labels |= f.crema_voice_labels;
        self.corpus.iemocap_improvised_only |= f.iemocap_improvised_only;
        self.corpus.iemocap_keep_excited_apart |= f.iemocap_keep_excited_apart;
        if !f.speakers.is_empty() {
            self.corpus.speakers = f.speakers.clone();
        }
        set!(self.split.partition, f.partition);
        if !f.test_speakers.is_empty() {
            self.split.test_speakers = f.test_speakers.clone();
        }
        set!(self.split.test_fraction, f.test_fraction);
        set!(self.split.val_fraction, f.val_fraction);
        set!(self.split.norm, f.norm);
        set!(self.model.arch, f.arch);
        set!(self.model.hidden, f.hidden);
        set!(self.model.dropout, f.dropout);
        set!(self.model.max_frames, f.max_frames);
        if f.unidirectional {
            self.model.bidirectional = false;
        }
        if let Some(choice) = f.front_end {
            self.features = crate::cli::FrontEndChoice::config(choice);
        }
        self.features.denoise |= f.denoise;
        self.features.trim_silence |= f.trim;
        set!(self.local.epochs, f.local_epochs);
        set!(self.local.augment_chains, f.augment_chains);
        if let Some(kinds) = &f.augment_kinds {
            self.local.augment_kinds = kinds.clone();
        }
        set!(self.local.batch_size, f.batch_size);
        set!(self.local.learning_rate, f.lr);
        set!(self.local.weight_decay, f.weight_decay);
        set!(self.local.optimizer, f.optimizer);
        if f.no_class_weights {
            self.local.class_weights = false;
        }
        set!(self.federation.rounds, f.rounds);
        set!(self.federation.strategy, f.strategy);
        set!(self.federation.fraction_fit, f.fraction);
        set!(self.federation.min_fit_clients, f.min_clients);
        set!(self.federation.fraction_evaluate, f.fraction_evaluate);
        set!(self.federation.min_fit_results, f.min_results);
        if f.workers.is_some() {
            self.simulation.workers = f.workers;
        }
        set!(self.simulation.dropout, f.client_dropout);
        if f.dp.is_some() {
            self.privacy.dp = f.dp;
        }
        set!(self.privacy.clip, f.clip);
        if f.noise_multiplier.is_some() {
            self.privacy.noise_multiplier = f.noise_multiplier;
            self.privacy.target_epsilon = None;
        }
        if f.target_epsilon.is_some() {
            self.privacy.target_epsilon = f.target_epsilon;
            self.privacy.noise_multiplier = None;
        }
        set!(self.privacy.delta, f.delta);
        if f.adaptive_clip.is_some() {
            self.privacy.adaptive_clip = f.adaptive_clip;
        }
        if f.sampling.is_some() {
            self.privacy.sampling = f.sampling.clone();
        }
        self.privacy.record_updates |= f.record_updates;
        self.privacy.reproducible_noise |= f.reproducible_noise;
        self.privacy.secagg |= f.secagg;
        if f.secagg_threshold.is_some() {
            self.privacy.secagg_threshold = f.secagg_threshold;
        }
        if f.secagg_neighbours.is_some() {
            self.privacy.secagg_neighbours = f.secagg_neighbours;
        }
        set!(self.privacy.secagg_bits, f.secagg_bits);
        if f.secagg_range.is_some() {
            self.privacy.secagg_range = f.secagg_range;
        }
        set!(self.simulation.straggler, f.straggler);
    }

    /// Checks everything that can be checked before loading data.
    pub fn validate(&self) -> Result<()> {
        self.strategy()?;
        self.partition()?;
        self.model_spec()?;
        self.validate_privacy()?;
        if self.simulation.workers == Some(0) {
            bail!("workers must be at least 1 (leave it out for one per core)");
        }
        if self.federation.min_fit_results == 0 {
            bail!("min_fit_results must be at least 1");
        }
        if self.federation.rounds == 0 {
            bail!("rounds must be at least 1");
        }
        if !(self.federation.fraction_fit > 0.0 && self.federation.fraction_fit <= 1.0) {
            bail!(
                "fraction {} must be in (0, 1]",
                self.federation.fraction_fit
            );
        }
        if !(0.0..=1.0).contains(&self.federation.fraction_evaluate) {
            bail!(
                "fraction_evaluate {} must be in [0, 1]",
                self.federation.fraction_evaluate
            );
        }
        if !(0.0..1.0).contains(&self.split.val_fraction) {
            bail!("val_fraction {} must be in [0, 1)", self.split.val_fraction);
        }
        if self.local.epochs == 0 || self.local.batch_size == 0 {
            bail!("local epochs and batch size must be at least 1");
        }
        if !self.local.augment_kinds.is_empty() && self.local.augment_chains == 0 {
            bail!("augment_kinds (--augment-kinds) chooses chains for --augment-chains N: give N");
        }
        if !(self.local.learning_rate > 0.0 && self.local.learning_rate.is_finite()) {
            bail!(
                "learning rate {} must be positive",
                self.local.learning_rate
            );
        }
        self.fl_simulation(1)
            .validate()
            .map_err(anyhow::Error::msg)?;
        if self.corpus.kind != CorpusKind::Synthetic && self.corpus.data.is_none() {
            bail!("--data is needed for the {:?} corpus", self.corpus.kind);
        }
        Ok(())
    }

    /// The secure-aggregation settings, if the run uses it.
    pub fn secagg_settings(&self) -> Option<fedser_privacy::SecAggSettings> {
        let p = &self.privacy;
        if !p.secagg {
            return None;
        }
        let z = p.noise_multiplier.unwrap_or(1.0);
        let range = p.secagg_range.unwrap_or(match p.dp {
            // A clipped update has no coordinate above the clip norm.
            Some(fedser_privacy::DpMode::Central) => p.clip,
            // Locally noised: room for six standard deviations of the device's noise.
            Some(fedser_privacy::DpMode::Local | fedser_privacy::DpMode::Distributed) => {
                p.clip * (1.0 + 6.0 * z)
            }
            None => 4.0,
        });
        Some(fedser_privacy::SecAggSettings {
            threshold: p.secagg_threshold,
            neighbours: p.secagg_neighbours,
            bits: p.secagg_bits,
            range,
            uniform_weights: p.dp.is_some(),
            weight_cap: p.secagg_weight_cap,
            seed: fedser_fl::seed::derive(self.seed, 0, 0, "secagg"),
        })
    }

    /// Poisson sampling rate, if rounds sample that way: `poisson:Q`, or under DP unless
    /// `fixed` was asked for (Q = the fit fraction).
    pub fn sampling_rate(&self) -> Option<f64> {
        match self.privacy.sampling.as_deref() {
            Some("fixed") => None,
            Some(s) => s.strip_prefix("poisson:").and_then(|q| q.parse().ok()),
            None => self
                .privacy
                .dp
                .is_some()
                .then_some(self.federation.fraction_fit),
        }
    }

    /// Checks the privacy settings (before any data is loaded).
    fn validate_privacy(&self) -> Result<()> {
        let p = &self.privacy;
        match p.sampling.as_deref() {
            None | Some("fixed") => {}
            Some(s) => {
                let q = s
                    .strip_prefix("poisson:")
                    .and_then(|q| q.parse::<f64>().ok())
                    .with_context(|| format!("sampling {s:?}: expected poisson:Q or fixed"))?;
                if !(q > 0.0 && q <= 1.0) {
                    bail!("sampling rate q = {q} must be in (0, 1]");
                }
            }
        }
        if p.secagg {
            let rule = self.strategy()?.rule;
            if rule != fedser_fl::Rule::Mean {
                bail!(
                    "--secagg cannot be combined with {}: the rule reads individual updates, \
                     which secure aggregation hides from the server (use fedavg, fedprox, \
                     fedadam, fedyogi or fedadagrad)",
                    self.federation.strategy
                );
            }
            if p.adaptive_clip.is_some() {
                bail!(
                    "--secagg cannot be combined with --adaptive-clip: it reads whether each \
                     client clipped, which secure aggregation hides"
                );
            }
            if let Some(r) = p.secagg_range
                && !(r.is_finite() && r > 0.0)
            {
                bail!("--secagg-range {r} must be finite and > 0");
            }
        }
        if p.dp.is_none() {
            return Ok(());
        }
        if p.noise_multiplier.is_none() && p.target_epsilon.is_none() {
            bail!("--dp needs --noise-multiplier Z or --target-epsilon E");
        }
        if p.dp == Some(fedser_privacy::DpMode::Distributed) && !p.secagg {
            bail!(
                "--dp distributed needs --secagg: each client adds only a share of the noise, \
                 so without secure aggregation the server would see barely noised updates"
            );
        }
        let rule = self.strategy()?.rule;
        if rule != fedser_fl::Rule::Mean {
            bail!(
                "--dp cannot be combined with {}: it reads individual updates, so one client's \
                 influence on the model is not bounded by clip / (q N) and the privacy \
                 accounting would not hold (use fedavg, fedprox, fedadam, fedyogi or fedadagrad)",
                self.federation.strategy
            );
        }
        if p.sampling.as_deref() == Some("fixed") {
            tracing::warn!(
                "DP with fixed-size sampling: the accountant assumes Poisson sampling, so the \
                 epsilon it reports does not hold for this run"
            );
        }
        Ok(())
    }

    /// Makes the corpus path absolute, so `--resume` works from any folder.
    pub fn absolutise_paths(&mut self) {
        if let Some(d) = &self.corpus.data
            && let Ok(abs) = std::path::absolute(d)
        {
            self.corpus.data = Some(abs);
        }
    }

    /// Checks the strategy against the number of clients a round will sample.
    pub fn check_against_clients(&self, clients: usize) -> Result<()> {
        let f = &self.federation;
        let sampled = (((f.fraction_fit * clients as f64).floor() as usize).max(f.min_fit_clients))
            .min(clients);
        if let Some(settings) = self.secagg_settings() {
            let ids: Vec<usize> = (0..sampled).collect();
            settings.config(1, &ids, 1).map_err(|e| {
                anyhow::anyhow!("{e} (a round samples {sampled} of {clients} clients)")
            })?;
            fedser_privacy::secagg::Quantizer::new(settings.range, sampled, settings.bits)?;
        }
        if f.min_fit_results > sampled {
            bail!(
                "min_fit_results (--min-results) {} is more than the {sampled} clients a round \
                 samples of {clients}: no round could ever update the model",
                f.min_fit_results
            );
        }
        match self.strategy()?.rule {
            fedser_fl::Rule::Krum { byzantine, keep } => {
                let needed = byzantine.saturating_mul(2).saturating_add(3);
                if sampled < needed {
                    bail!(
                        "{} assumes {byzantine} attackers and needs at least {needed} updates a round, \
                         but a round samples {sampled} of {clients} clients",
                        f.strategy
                    );
                }
                if keep > sampled - byzantine {
                    bail!(
                        "{} keeps {keep} updates, more than the {} a round can select from \
                         {sampled} sampled clients with {byzantine} attackers",
                        f.strategy,
                        sampled - byzantine
                    );
                }
            }
            fedser_fl::Rule::TrimmedMean { beta } if (beta * sampled as f64) < 1.0 => {
                tracing::warn!(
                    "trimmed-mean:{beta} trims nothing from {sampled} updates a round (it is a plain mean)"
                );
            }
            _ => {}
        }
        Ok(())
    }

    pub fn strategy(&self) -> Result<StrategySpec> {
        StrategySpec::parse(&self.federation.strategy).map_err(anyhow::Error::msg)
    }

    pub fn partition(&self) -> Result<Partition> {
        Partition::parse(&self.split.partition, 10).map_err(anyhow::Error::msg)
    }

    pub fn model_spec(&self) -> Result<ModelSpec> {
        let mut spec = ModelSpec::new(self.model.arch);
        // The model reads as many coefficients as the front end makes.
        spec.n_features = self.features.mfcc.numcep;
        if self.model.hidden > 0 {
            spec.hidden = self.model.hidden;
        }
        spec.dropout = self.model.dropout;
        spec.bidirectional = self.model.bidirectional;
        if self.model.max_frames > 0 {
            spec.max_frames = self.model.max_frames;
        }
        spec.validate().map_err(anyhow::Error::msg)?;
        Ok(spec)
    }

    /// The corpus flags these settings correspond to.
    pub fn corpus_args(&self) -> CorpusArgs {
        CorpusArgs {
            corpus: self.corpus.kind,
            data: self.corpus.data.clone(),
            crema_voice_labels: self.corpus.crema_voice_labels,
            iemocap_improvised_only: self.corpus.iemocap_improvised_only,
            iemocap_keep_excited_apart: self.corpus.iemocap_keep_excited_apart,
            synthetic_speakers: self.corpus.synthetic_speakers,
            synthetic_per_emotion: self.corpus.synthetic_per_emotion,
            seed: self.seed,
        }
    }

    /// Worker threads actually used.
    pub fn workers(&self) -> usize {
        self.simulation
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn fl_simulation(&self, workers: usize) -> fedser_fl::SimulationConfig {
        fedser_fl::SimulationConfig {
            workers,
            dropout: self.simulation.dropout,
            straggler: self.simulation.straggler,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml_and_partial_files_keep_defaults() {
        let cfg = RunConfig::default();
        let text = cfg.to_toml().unwrap();
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let partial: RunConfig =
            toml::from_str("seed = 3\n[federation]\nrounds = 5\nstrategy = \"fedprox:0.1\"\n")
                .unwrap();
        assert_eq!(partial.seed, 3);
        assert_eq!(partial.federation.rounds, 5);
        assert_eq!(partial.local, LocalConfig::default());
        assert!(partial.validate().is_ok());
        assert!(toml::from_str::<RunConfig>("[federation]\nround = 5\n").is_err());
        let bad: RunConfig = toml::from_str("[federation]\nstrategy = \"fedsgd\"\n").unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("fedsgd"));
        // The front-end flags switch their stage on and leave the rest alone.
        let mut flagged = RunConfig::default();
        flagged.apply_flags(&RunFlags {
            denoise: true,
            ..RunFlags::default()
        });
        assert!(flagged.features.denoise && flagged.features.trim_silence);
        assert_eq!(flagged.features.mfcc, FrontEndConfig::default().mfcc);
        // One front-end field switched on; the others keep the training defaults.
        let denoised: RunConfig = toml::from_str("[features]\ndenoise = true\n").unwrap();
        assert_eq!(
            denoised.features,
            FrontEndConfig {
                denoise: true,
                ..FrontEndConfig::default()
            }
        );
    }
}

//! Command-line grammar. Command and flag names are stable: scripts rely on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fedser_audio::{FrontEndConfig, MfccConfig, MfccStyle, WindowKind};

#[derive(Parser)]
#[command(
    name = "fedser",
    version,
    about = "Privacy-preserving speech emotion recognition with federated learning"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// No progress bars, errors only.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log output (-v info, -vv debug).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand)]
pub enum Command {
    /// MFCCs of one recording (CSV: one frame a row, no header; or .npy).
    Mfcc(MfccCmd),
    /// MFCCs of every recording under a folder, in parallel, mirrored into an output folder.
    Features(FeaturesCmd),
    /// Write a deterministic speech-like test recording (16-bit PCM WAV).
    Synth(SynthCmd),
    /// What a corpus holds: utterances per emotion, speaker and sex; its figures; its features.
    Corpus(CorpusCmd),
    /// Train a centralised baseline on a speaker-independent split; writes DIR/model.safetensors.
    Train(TrainCmd),
    /// Metrics of a trained model on a corpus.
    Evaluate(EvaluateCmd),
    /// Emotion and class probabilities of recordings.
    Predict(PredictCmd),
    /// Federated simulation: many clients in-process; writes a run directory.
    Simulate(Box<SimulateCmd>),
    /// Plots and report.html from a run directory.
    Report(ReportCmd),
    /// The whole pipeline with no set-up: synthetic corpus, speaker clients, CNN, FedAvg.
    Demo(DemoCmd),
    /// Measure throughput (audio seconds per CPU second).
    Bench(BenchCmd),
    /// Differential-privacy accounting without training (RDP of the Poisson-subsampled
    /// Gaussian, Opacus' orders).
    Privacy(PrivacyCmd),
    /// Attacks on a run, as its server could mount them: gender inference from updates,
    /// speaker membership on the final model.
    Attack(AttackCmd),
    /// Make a client identity: DIR/identity.key (secret, mode 0600) and DIR/identity.pub
    /// (the line to add to the server's enrolled file).
    Keygen(KeygenCmd),
    /// Write a self-signed TLS certificate and key for a server (loopback experiments and
    /// tests; production servers bring a certificate from their own CA).
    TlsCert(TlsCertCmd),
    /// Coordinate a federation over the network: enrolled clients connect over gRPC + TLS;
    /// writes the same run directory as `simulate`.
    Server(Box<ServerCmd>),
    /// Take part in a federation: train on this device's own recordings only.
    Client(ClientCmd),
    /// Load test a server: many clients in this one process, each its own TLS connection
    /// speaking the real protocol, with a cheap stand-in for training (measures the server
    /// and the transport, not local training).
    Load(LoadCmd),
    /// A read-only view of a run directory: whether a process is running it, rounds done,
    /// last UA, epsilon, connected clients.
    Status(StatusCmd),
}

#[derive(Args)]
pub struct StatusCmd {
    pub run_dir: PathBuf,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct KeygenCmd {
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct TlsCertCmd {
    /// Writes OUT/cert.pem and OUT/key.pem.
    #[arg(long)]
    pub out: PathBuf,
    /// Names the certificate is valid for (comma-separated host names and IP addresses).
    #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
    pub names: Vec<String>,
}

#[derive(Args)]
pub struct ServerCmd {
    /// The run directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint (settings from its config.toml).
    #[arg(long)]
    pub resume: bool,
    /// TOML configuration (as for simulate).
    #[arg(long, conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0: any free port, printed when listening).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: std::net::SocketAddr,
    /// The server's TLS certificate chain (PEM).
    #[arg(long, required_unless_present = "insecure")]
    pub tls_cert: Option<PathBuf>,
    /// The server's TLS private key (PEM).
    #[arg(long, required_unless_present = "insecure")]
    pub tls_key: Option<PathBuf>,
    /// Enrolled client public keys, one hex key a line (a client's id is its line).
    #[arg(long)]
    pub enrolled: PathBuf,
    /// Plain TCP without TLS: for loopback experiments only.
    #[arg(long)]
    pub insecure: bool,
    /// Seconds a round waits for its results.
    #[arg(long, default_value_t = 600.0)]
    pub round_deadline: f64,
    /// Seconds to wait for the first clients before giving up.
    #[arg(long, default_value_t = 300.0)]
    pub client_wait: f64,
    /// Clients to wait for before the first round (default: every enrolled client).
    #[arg(long)]
    pub wait_clients: Option<usize>,
    /// Do not write the report at the end.
    #[arg(long)]
    pub no_report: bool,
    /// Feature cache folder for the server's evaluation set (default: the user's cache).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunFlags,
}

#[derive(Args)]
pub struct ClientCmd {
    /// The server, `https://HOST:PORT`.
    #[arg(long)]
    pub server: String,
    /// The CA certificate that signed the server's certificate (PEM).
    #[arg(long, required_unless_present = "insecure")]
    pub ca: Option<PathBuf>,
    /// The folder holding identity.key (from `fedser keygen`).
    #[arg(long)]
    pub identity: PathBuf,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Only these speakers' recordings are this device's (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub speakers: Vec<String>,
    /// Plain TCP without TLS: for loopback experiments only.
    #[arg(long)]
    pub insecure: bool,
    /// Seconds to keep trying to reach the server before giving up.
    #[arg(long, default_value_t = 120.0)]
    pub max_wait: f64,
    /// Feature cache folder (default: the user's cache folder).
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

#[derive(Args)]
pub struct LoadCmd {
    /// How many clients.
    #[arg(long)]
    pub clients: usize,
    /// Derives the clients' identities (public knowledge: load tests only).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the clients' public keys (the server's --enrolled file) and exit.
    #[arg(long, conflicts_with = "server")]
    pub write_enrolled: Option<PathBuf>,
    /// The server, `https://HOST:PORT`.
    #[arg(long, required_unless_present = "write_enrolled")]
    pub server: Option<String>,
    /// The CA certificate that signed the server's certificate (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Plain TCP without TLS: for loopback experiments only.
    #[arg(long)]
    pub insecure: bool,
    /// Training examples each client claims (its FedAvg weight).
    #[arg(long, default_value_t = 10)]
    pub examples: usize,
    /// Seconds each client keeps trying to reach the server before giving up.
    #[arg(long, default_value_t = 300.0)]
    pub max_wait: f64,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum AttackKind {
    /// Infer each client's sex from its recorded updates (needs --record-updates).
    Gender,
    /// Tell whether a speaker trained the final global model.
    Membership,
}

#[derive(Args)]
pub struct AttackCmd {
    /// The run directory.
    pub run_dir: PathBuf,
    #[arg(long, value_enum)]
    pub kind: AttackKind,
    /// The corpus of the attacker's own speakers (speakers of the run's clients are left out).
    #[arg(long)]
    pub shadow_corpus: fedser_data::loaders::CorpusKind,
    #[arg(long)]
    pub shadow_data: Option<PathBuf>,
    /// Gender: the tensor whose update the classifier reads (default: the first weight
    /// matrix).
    #[arg(long)]
    pub layer: Option<String>,
    /// Gender: rounds of shadow updates pooled to train the classifier of a round.
    #[arg(long, default_value_t = 3)]
    pub window: usize,
    /// Membership: reference models for offline LiRA (0: the loss attack only).
    #[arg(long, default_value_t = 8)]
    pub references: usize,
    /// Feature cache folder (default: the user's cache folder).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PrivacyCmd {
    #[command(subcommand)]
    pub what: PrivacyWhat,
}

#[derive(Subcommand)]
pub enum PrivacyWhat {
    /// Epsilon spent by R rounds of sampling rate Q and noise multiplier Z, at delta D.
    Epsilon {
        /// Probability with which each client joins a round, in (0, 1].
        #[arg(long)]
        q: f64,
        /// Noise multiplier: noise standard deviation over the clip norm.
        #[arg(long)]
        z: f64,
        #[arg(long)]
        rounds: u64,
        #[arg(long)]
        delta: f64,
        /// Print `{"epsilon": E, "alpha": A}`.
        #[arg(long)]
        json: bool,
    },
    /// The smallest noise multiplier whose epsilon after R rounds stays within the target.
    Noise {
        #[arg(long)]
        target_epsilon: f64,
        #[arg(long)]
        q: f64,
        #[arg(long)]
        rounds: u64,
        #[arg(long)]
        delta: f64,
        /// Print `{"noise_multiplier": Z}`.
        #[arg(long)]
        json: bool,
    },
}

/// Flags of `fedser simulate`. Every flag is optional: unset flags keep the value of
/// `--config` (or the default), so the run's config.toml says what was really used.
#[derive(Args, Default)]
pub struct SimulateCmd {
    /// TOML configuration (see config.toml in any run directory for every field).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue an interrupted run from its last checkpoint (other flags are ignored).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// The run directory to write.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Feature cache folder (default: the user's cache folder).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Stop after this round (the run stays resumable; for tests and time-boxed runs).
    #[arg(long, hide = true)]
    pub stop_after: Option<u32>,
    /// Do not write the report at the end.
    #[arg(long)]
    pub no_report: bool,
    /// Print the final central metrics as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub run: RunFlags,
}

/// The settings of a federated run that `simulate` and `server` share: unset flags keep the
/// value of `--config` (or the default).
#[derive(Args, Default, Clone)]
pub struct RunFlags {
    /// Run name shown in the report (default: the folder name).
    #[arg(long)]
    pub name: Option<String>,
    /// Seed of everything random (corpus, split, sampling, training, dropouts); default 7.
    #[arg(long)]
    pub seed: Option<u64>,
    /// crema-d, iemocap, ravdess, emodb, manifest or synthetic.
    #[arg(long)]
    pub corpus: Option<fedser_data::loaders::CorpusKind>,
    /// The corpus root folder (the manifest CSV for `manifest`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Synthetic corpus: number of speakers (default 24).
    #[arg(long)]
    pub synthetic_speakers: Option<usize>,
    /// Synthetic corpus: utterances per speaker and emotion (default 8).
    #[arg(long)]
    pub synthetic_per_emotion: Option<usize>,
    /// CREMA-D: label clips with the listeners' vote on the audio alone.
    #[arg(long)]
    pub crema_voice_labels: bool,
    /// IEMOCAP: keep only improvised dialogs.
    #[arg(long)]
    pub iemocap_improvised_only: bool,
    /// IEMOCAP: keep `exc` (excited) out of happy.
    #[arg(long)]
    pub iemocap_keep_excited_apart: bool,
    /// speaker, speaker:K, iid:N or dirichlet:ALPHA[:N].
    #[arg(long)]
    pub partition: Option<String>,
    /// Only these speakers of the corpus take part (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub speakers: Vec<String>,
    /// Held-out speakers for central evaluation (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub test_speakers: Vec<String>,
    /// Fraction of speakers held out when --test-speakers is not given (default 0.2).
    #[arg(long)]
    pub test_fraction: Option<f64>,
    /// Fraction of each client's data kept for its own validation.
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Feature normalisation: speaker (each speaker with their own statistics, computed on
    /// the device), global (training-set statistics: a comparison, not private) or none.
    /// Default: speaker.
    #[arg(long)]
    pub norm: Option<Norm>,
    /// dnn, cnn, lstm or lstm-transformer.
    #[arg(long)]
    pub arch: Option<fedser_model::Arch>,
    /// Model width (default per architecture).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Model dropout (not client dropout: see --client-dropout).
    #[arg(long)]
    pub dropout: Option<f64>,
    /// LSTM models: one direction only.
    #[arg(long)]
    pub unidirectional: bool,
    /// Longest sequence a model sees at once, in frames (longer utterances are cropped:
    /// randomly while training, centrally otherwise). Default 400 (4 s at a 10 ms hop).
    #[arg(long)]
    pub max_frames: Option<usize>,
    /// Run the paper's spectral denoiser before the MFCCs (off by default; see the README).
    #[arg(long)]
    pub denoise: bool,
    /// The training front end: robust (default), wideband, wideband-fill or classic (see
    /// `fedser train --help`).
    #[arg(long)]
    pub front_end: Option<FrontEndChoice>,
    /// Training-time augmentation on each device: this many extra copies of its speakers'
    /// training recordings, each through one random recording chain (default 0).
    #[arg(long)]
    pub augment_chains: Option<usize>,
    /// The recording-chain kinds augmentation draws from, comma-separated (gate, gain, dc,
    /// rate, mp3, vorbis, pad, noise; default all), e.g. `rate,mp3` for telephone-band and
    /// compressed devices.
    #[arg(long, value_delimiter = ',')]
    pub augment_kinds: Option<Vec<fedser_audio::ChainKind>>,
    /// Cut leading and trailing silence before the MFCCs (the robust front end always does).
    #[arg(long)]
    pub trim: bool,
    /// Rounds of federated training (default 30).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// fedavg, fedprox[:MU], fedadam[:LR], fedyogi[:LR], fedadagrad[:LR], median,
    /// trimmed-mean[:BETA], krum[:F], multi-krum[:F[:M]].
    #[arg(long)]
    pub strategy: Option<String>,
    /// Fraction of clients training each round.
    #[arg(long)]
    pub fraction: Option<f64>,
    /// At least this many clients per round.
    #[arg(long)]
    pub min_clients: Option<usize>,
    /// Fraction of clients evaluating the global model on their own validation data.
    #[arg(long)]
    pub fraction_evaluate: Option<f64>,
    /// Accepted updates needed to change the global model in a round.
    #[arg(long)]
    pub min_results: Option<usize>,
    /// Passes over its own data each client makes per round (default 3).
    #[arg(long)]
    pub local_epochs: Option<usize>,
    /// Local batch size (default 8).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Local learning rate (default 2e-3).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Local weight decay (default 1e-4).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Local optimiser: adamw (default), adam or sgd.
    #[arg(long)]
    pub optimizer: Option<fedser_model::Optimizer>,
    /// Do not weight the local loss by inverse class frequency.
    #[arg(long)]
    pub no_class_weights: bool,
    /// Clients training at once (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Probability that a selected client drops out of a round.
    #[arg(long)]
    pub client_dropout: Option<f64>,
    /// Probability that a client's result arrives after the round closed.
    #[arg(long)]
    pub straggler: Option<f64>,
    /// Differential privacy at client level: central (the server noises the aggregate),
    /// local (each client noises its own update) or distributed (each client adds a share of
    /// the central noise; needs --secagg). Off by default.
    #[arg(long)]
    pub dp: Option<fedser_privacy::DpMode>,
    /// DP: L2 clip norm of each client's update (default 1.0; the initial one with
    /// --adaptive-clip).
    #[arg(long)]
    pub clip: Option<f64>,
    /// DP: noise multiplier z (noise std = z * clip / (q * N) on the aggregate).
    #[arg(long, conflicts_with = "target_epsilon")]
    pub noise_multiplier: Option<f64>,
    /// DP: choose z so that epsilon after all rounds is at most this; rounds past it are
    /// refused.
    #[arg(long)]
    pub target_epsilon: Option<f64>,
    /// DP: delta of the (epsilon, delta) guarantee (default 1e-5).
    #[arg(long)]
    pub delta: Option<f64>,
    /// Keep every update the server sees under RUN_DIR/attacker/ (the attacker's view, for
    /// `fedser attack`). Off by default.
    #[arg(long)]
    pub record_updates: bool,
    /// DP: draw the noise from the run seed, for exact reproduction of an experiment. This
    /// voids the guarantee against anyone who knows the seed (clients receive it); by default
    /// the noise comes from a secret kept in the run directory.
    #[arg(long)]
    pub reproducible_noise: bool,
    /// DP: adaptive clipping towards this quantile of the update norms (Andrew et al. 2021).
    #[arg(long)]
    pub adaptive_clip: Option<f64>,
    /// Client sampling: `poisson:Q` (each client joins with probability Q; the default under
    /// DP, with Q = --fraction) or `fixed` (fraction and minimum; under DP the accounting
    /// then does not hold).
    #[arg(long)]
    pub sampling: Option<String>,
    /// Secure aggregation (SecAgg+ with dropout recovery): the server learns only the sum of
    /// each round's updates. Needs a mean rule (not median, trimmed mean or Krum).
    #[arg(long)]
    pub secagg: bool,
    /// Secure aggregation: shares needed to unmask, within a client's group of neighbours
    /// (default: two thirds of the group; more than half).
    #[arg(long, requires = "secagg")]
    pub secagg_threshold: Option<usize>,
    /// Secure aggregation: neighbours per client (default 2*ceil(log2 n); n-1 or more is the
    /// full graph of the original SecAgg).
    #[arg(long, requires = "secagg")]
    pub secagg_neighbours: Option<usize>,
    /// Secure aggregation: sums are modulo 2^BITS (default 32).
    #[arg(long, requires = "secagg")]
    pub secagg_bits: Option<u32>,
    /// Secure aggregation: largest update coordinate; larger ones are clamped and counted
    /// (default: the clip norm under DP, else 4).
    #[arg(long, requires = "secagg")]
    pub secagg_range: Option<f64>,
}

#[derive(Args)]
pub struct ReportCmd {
    /// A run directory written by `fedser simulate` or `fedser demo`.
    pub run_dir: PathBuf,
}

#[derive(Args)]
pub struct DemoCmd {
    /// Where to write the run directory.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Rounds of federated training.
    #[arg(long, default_value_t = 30)]
    pub rounds: u32,
}

pub use fedser_client::Norm;

#[derive(Args)]
pub struct TrainCmd {
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// dnn, cnn, lstm or lstm-transformer.
    #[arg(long, default_value = "cnn")]
    pub arch: fedser_model::Arch,
    /// Model width (default per architecture).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Dropout before the classifier.
    #[arg(long, default_value_t = 0.3)]
    pub dropout: f64,
    /// LSTM models: one direction only.
    #[arg(long)]
    pub unidirectional: bool,
    /// Longest sequence the model sees at once, in frames (longer utterances are cropped:
    /// randomly while training, centrally otherwise). Default 400 (4 s at a 10 ms hop).
    #[arg(long)]
    pub max_frames: Option<usize>,
    /// Passes over the training utterances (the best epoch by validation UA is kept).
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    /// Utterances per optimiser step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Learning rate of the optimiser.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// L2 weight decay (decoupled with adamw).
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// adam, adamw or sgd.
    #[arg(long, default_value = "adamw")]
    pub optimizer: fedser_model::Optimizer,
    /// Stop after this many epochs without a better validation UA (0: never). Whatever the
    /// patience, the epoch with the best validation UA is kept.
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Do not weight the loss by inverse class frequency.
    #[arg(long)]
    pub no_class_weights: bool,
    /// Feature augmentation while training (a masked time span, a masked coefficient, noise).
    /// Off by default: on RAVDESS it lowered UA (see the README).
    #[arg(long)]
    pub augment: bool,
    /// Held-out test speakers, comma-separated (default: --test-fraction of the speakers).
    #[arg(long, value_delimiter = ',')]
    pub test_speakers: Vec<String>,
    /// Fraction of speakers held out for testing when --test-speakers is not given.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Fraction of the training utterances used for validation (early stopping).
    #[arg(long, default_value_t = 0.15)]
    pub val_fraction: f64,
    /// Feature normalisation: speaker, global or none.
    #[arg(long, default_value_t = Norm::Speaker)]
    pub norm: Norm,
    /// The training front end: robust (the telephone band over a floor 40 dB below the peak,
    /// trimmed to the speech: invariant to gates, gain, DC, rates from 8 kHz, codecs and
    /// padded silence; see the README), wideband (the former default: full band, for fleets
    /// of wideband devices), wideband-fill (wideband with the silent margins filled up to
    /// exactly 0.5 s; `robust-fill` names it too) or classic (fedser 0.1's full-band MFCC of
    /// the normalised signal). Recorded in the model file, so evaluate and predict do the same.
    #[arg(long, default_value = "robust")]
    pub front_end: FrontEndChoice,
    /// Cut leading and trailing silence before the MFCCs (the robust front end always does).
    #[arg(long)]
    pub trim: bool,
    /// Training-time augmentation with recording chains: this many extra copies of every
    /// training speaker's recordings, each copy through one random chain (gate, gain, DC,
    /// device rate, MP3 or Vorbis, padding, or noise). 0 (the default) trains on the clean
    /// recordings only.
    #[arg(long, default_value_t = 0)]
    pub augment_chains: usize,
    /// The chain kinds `--augment-chains` draws from, comma-separated (gate, gain, dc, rate,
    /// mp3, vorbis, pad, noise; default all), e.g. `rate,mp3` for telephone-band and
    /// compressed devices.
    #[arg(long, value_delimiter = ',')]
    pub augment_kinds: Vec<fedser_audio::ChainKind>,
    /// Run the paper's spectral denoiser before the MFCCs. Off by default: on the clean
    /// studio speech of RAVDESS and EMO-DB it lowered UA (see the README).
    #[arg(long)]
    pub denoise: bool,
    /// Feature cache folder.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Output folder (model.safetensors, metrics.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Print the test metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvaluateCmd {
    /// A model file, or a folder holding model.safetensors or global.safetensors.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Only these speakers (comma-separated). Default: the speakers the model file records
    /// as held out from its training, where the corpus has them.
    #[arg(long, value_delimiter = ',')]
    pub speakers: Vec<String>,
    /// Score every speaker of the corpus, training speakers included.
    #[arg(long, conflicts_with = "speakers")]
    pub all_speakers: bool,
    /// Feature cache folder.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// One JSON object: accuracy, ua, macro_f1, weighted_f1, per_class, confusion. With
    /// --perturb: {"clean": {...}, "perturbed": [{"perturbation", "ua", "accuracy",
    /// "macro_f1", "ua_drop"}, ...]}.
    #[arg(long)]
    pub json: bool,
    /// Also score the model on the recordings passed through each of these perturbations
    /// (comma-separated): gate[:DB], gain:DB, dc:OFFSET, rate:HZ, mp3:KBPS, vorbis:KBPS,
    /// pad:SECONDS, noise:white:SNR, noise:babble:SNR; `standard` for the README's set.
    /// Prints UA per perturbation and its drop from clean.
    #[arg(long)]
    pub perturb: Option<String>,
    /// With --perturb: write the table as robustness.json and the figure as robustness.png
    /// and robustness.svg into this folder.
    #[arg(long, requires = "perturb")]
    pub report: Option<PathBuf>,
}

#[derive(Args)]
pub struct PredictCmd {
    /// A model file, or a folder holding model.safetensors or global.safetensors.
    #[arg(long)]
    pub model: PathBuf,
    /// Recordings.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The recordings are all of one speaker: normalise them with statistics pooled over all
    /// of them, as the model saw its training speakers (per-speaker models only).
    #[arg(long)]
    pub same_speaker: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Which corpus, where, and its loader options (shared by every command that reads one).
#[derive(Args, Clone)]
pub struct CorpusArgs {
    /// crema-d, iemocap, ravdess, emodb, manifest or synthetic.
    #[arg(long, default_value = "synthetic")]
    pub corpus: fedser_data::loaders::CorpusKind,
    /// The corpus root folder (the manifest CSV for `manifest`); not needed for `synthetic`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// CREMA-D: label clips with the listeners' vote on the audio alone instead of the acted emotion.
    #[arg(long)]
    pub crema_voice_labels: bool,
    /// IEMOCAP: keep only improvised dialogs.
    #[arg(long)]
    pub iemocap_improvised_only: bool,
    /// IEMOCAP: keep `exc` (excited) out of happy (by default they are merged).
    #[arg(long)]
    pub iemocap_keep_excited_apart: bool,
    /// Synthetic corpus: number of speakers.
    #[arg(long, default_value_t = 24)]
    pub synthetic_speakers: usize,
    /// Synthetic corpus: utterances per speaker and emotion.
    #[arg(long, default_value_t = 8)]
    pub synthetic_per_emotion: usize,
    /// Seed of everything random (synthetic corpus, splits, partitions, training).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

impl CorpusArgs {
    /// Loader options these flags describe.
    pub fn load_options(&self) -> fedser_data::loaders::LoadOptions {
        use fedser_data::loaders::{CremaLabels, IemocapOptions, LoadOptions};
        use fedser_data::synthetic::SyntheticConfig;
        LoadOptions {
            crema_labels: if self.crema_voice_labels {
                CremaLabels::Voice
            } else {
                CremaLabels::Acted
            },
            iemocap: IemocapOptions {
                merge_excited: !self.iemocap_keep_excited_apart,
                improvised_only: self.iemocap_improvised_only,
            },
            synthetic: SyntheticConfig {
                speakers: self.synthetic_speakers,
                per_emotion: self.synthetic_per_emotion,
                seed: self.seed,
                ..SyntheticConfig::default()
            },
        }
    }
}

#[derive(Args)]
pub struct CorpusCmd {
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Draw the bar chart of utterances per emotion (.png or .svg).
    #[arg(long)]
    pub plot_counts: Option<PathBuf>,
    /// Draw the waveform of one recording (.png or .svg).
    #[arg(long)]
    pub plot_waveform: Option<PathBuf>,
    /// The utterance whose waveform is drawn (default: the first).
    #[arg(long)]
    pub utterance: Option<String>,
    /// Extract the features of every utterance (the paper's front end) and report the time.
    #[arg(long)]
    pub extract: bool,
    /// Feature cache folder used by --extract.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Write every utterance as a 16-bit WAV plus manifest.csv into this folder (for the
    /// synthetic corpus: a corpus anyone can then load with --corpus manifest).
    #[arg(long)]
    pub write_wavs: Option<PathBuf>,
}

#[derive(Args)]
pub struct MfccCmd {
    /// The recording (WAV, FLAC, OGG Vorbis or MP3).
    pub file: PathBuf,
    #[command(flatten)]
    pub front: FrontEndArgs,
    /// Output file, .csv or .npy (default: CSV on standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct FeaturesCmd {
    /// Folder searched recursively for .wav, .flac, .ogg and .mp3 files.
    pub dir: PathBuf,
    #[command(flatten)]
    pub front: FrontEndArgs,
    /// Output folder: one matrix per recording at the same relative path.
    #[arg(long)]
    pub out: PathBuf,
    /// File format of the matrices.
    #[arg(long, value_enum, default_value_t = MatrixFormat::Npy)]
    pub format: MatrixFormat,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum MatrixFormat {
    Npy,
    Csv,
}

#[derive(Args)]
pub struct SynthCmd {
    /// Output WAV file.
    pub out: PathBuf,
    /// Length in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Sample rate in Hz.
    #[arg(long, default_value_t = 16000)]
    pub rate: u32,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args)]
pub struct BenchCmd {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand)]
pub enum BenchWhat {
    /// Decode + MFCC (psf style, paper settings, each file at its own rate) over a folder,
    /// the same work as ../shared/peers/mfcc_bench.py's `psf` pipeline.
    Mfcc {
        /// Folder searched recursively for audio files.
        dir: PathBuf,
        /// Timed passes (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Also time a pass on all cores (near-linear speed-up expected).
        #[arg(long)]
        parallel: bool,
        /// MFCC style.
        #[arg(long, default_value = "psf")]
        style: MfccStyle,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Training and aggregation speed on the shapes of ../shared/peers/flower_bench.py `micro`:
    /// one training step (batch 32, 200 frames of 13 MFCCs, Adam, one thread) per model, and
    /// FedAvg of 10 updates.
    Train {
        /// Models to time.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "dnn,cnn,lstm,lstm-transformer"
        )]
        archs: Vec<fedser_model::Arch>,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 200)]
        frames: usize,
        /// Timed steps per model (the median is reported).
        #[arg(long, default_value_t = 20)]
        reps: usize,
        /// LSTM models: the peer's shape (one direction, 128 units) instead of fedser's default.
        #[arg(long)]
        peer_lstm: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cost of one round of secure aggregation, in process: per-client and server seconds of
    /// protocol work and bytes per client, SecAgg+ (K neighbours) against the full graph and
    /// against a plain round, for the DNN's update.
    Secagg {
        /// Round sizes.
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
        clients: Vec<usize>,
        /// SecAgg+ neighbours (default 2*ceil(log2 n)).
        #[arg(long)]
        neighbours: Option<usize>,
        /// Values per update (default: the DNN's parameter count).
        #[arg(long)]
        dim: Option<usize>,
        /// Fraction of clients that drop out after sending their masked input.
        #[arg(long, default_value_t = 0.0)]
        dropout: f64,
        /// Skip the full graph above this many clients.
        #[arg(long, default_value_t = 1000)]
        full_graph_max: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The front-end flags shared by `mfcc` and `features`.
#[derive(Args, Clone)]
pub struct FrontEndArgs {
    /// MFCC flavour to reproduce: psf (python_speech_features) or librosa.
    #[arg(long, default_value = "psf")]
    pub style: MfccStyle,
    /// Window length in seconds.
    #[arg(long, default_value_t = 0.02)]
    pub winlen: f64,
    /// Step between windows in seconds.
    #[arg(long, default_value_t = 0.02)]
    pub winstep: f64,
    /// Cepstral coefficients kept.
    #[arg(long, default_value_t = 13)]
    pub numcep: usize,
    /// Mel filters (default 26 for psf, 128 for librosa).
    #[arg(long)]
    pub nfilt: Option<usize>,
    /// FFT size (default 512 for psf; next power of two >= window, at least 512, for librosa).
    #[arg(long)]
    pub nfft: Option<usize>,
    /// Analysis window: rect, hamming or hann (default rect for psf, hann for librosa).
    #[arg(long)]
    pub window: Option<WindowKind>,
    /// Resample to this rate (Hz) first; default: each file's own rate.
    #[arg(long)]
    pub resample: Option<u32>,
    /// Peak-normalise the signal first.
    #[arg(long)]
    pub normalise: bool,
    /// Denoise the signal first (Wiener-style spectral gain, noise from the quietest frames).
    #[arg(long)]
    pub denoise: bool,
    /// Trim leading and trailing silence first.
    #[arg(long)]
    pub trim: bool,
}

/// A named training front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FrontEndChoice {
    /// Invariant to gates, gain, DC, rates from 8 kHz up, codecs and padded silence: the
    /// telephone band over a floor 40 dB below the peak, trimmed to the speech (the default).
    Robust,
    /// The former default: full band (0–8 kHz) over a floor 55 dB below the peak, 0.5 s
    /// margins; for fleets of wideband devices (8 kHz recordings lose 10 to 17 points).
    Wideband,
    /// The wideband front end with margins filled up to exactly 0.5 s of silence, for corpora
    /// cut tight around the speech that devices will pad (`robust-fill` before 2026-12-04).
    #[value(alias = "robust-fill")]
    WidebandFill,
    /// fedser 0.1's full-band MFCC of the normalised signal.
    Classic,
}

impl FrontEndChoice {
    /// Its configuration.
    pub fn config(self) -> FrontEndConfig {
        match self {
            Self::Robust => FrontEndConfig::robust(),
            Self::Wideband => FrontEndConfig::wideband(),
            Self::WidebandFill => FrontEndConfig::wideband_filled(),
            Self::Classic => FrontEndConfig::classic(),
        }
    }
}

impl FrontEndArgs {
    /// The front-end configuration these flags describe.
    pub fn config(&self) -> FrontEndConfig {
        let base = match self.style {
            MfccStyle::Psf => MfccConfig::psf(),
            MfccStyle::Librosa => MfccConfig::librosa(),
        };
        FrontEndConfig {
            sample_rate: self.resample,
            normalise: self.normalise,
            denoise: self.denoise,
            trim_silence: self.trim,
            remove_dc: false,
            floor_db: 0.0,
            trim_keep_seconds: 0.0,
            fill_margins: false,
            mfcc: MfccConfig {
                winlen: self.winlen,
                winstep: self.winstep,
                numcep: self.numcep,
                nfilt: self.nfilt,
                nfft: self.nfft,
                window: self.window,
                ..base
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// Scripts written before the telephone-band default keep the front end they named.
    #[test]
    fn robust_fill_still_names_the_filled_wideband_front_end() {
        assert_eq!(
            FrontEndChoice::from_str("robust-fill", false),
            Ok(FrontEndChoice::WidebandFill)
        );
        assert_eq!(
            FrontEndChoice::WidebandFill.config(),
            FrontEndConfig::wideband_filled()
        );
        assert_ne!(
            FrontEndChoice::Robust.config(),
            FrontEndChoice::Wideband.config()
        );
    }
}

//! One model type over the four architectures: build from a spec (seeded), run, and move
//! parameters in and out as `ParamSet`; model files are safetensors with the spec and the
//! caller's metadata (label order, feature configuration, normalisation) beside the weights.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use fedser_core::{Emotion, ParamSet};
use rand::rngs::StdRng;

use crate::arch::{Arch, Cnn, Dnn, Lstm, LstmTransformer, ModelSpec};
use crate::batch::Input;
use crate::params;

/// The model, whichever architecture.
// One value per model: the size difference between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    Dnn(Dnn),
    Cnn(Cnn),
    Lstm(Lstm),
    LstmTransformer(LstmTransformer),
}

/// A model with its spec.
#[derive(Debug)]
pub struct EmotionModel {
    pub spec: ModelSpec,
    pub net: Net,
}

/// Why a model could not be built, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model: {0}")]
    Spec(String),
    #[error("{}: {reason}", path.display())]
    File {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("parameters do not fit the model: {0}")]
    Params(String),
}

/// Metadata keys in model files.
pub const META_FORMAT: &str = "fedser.format";
pub const META_SPEC: &str = "fedser.model_spec";
pub const META_LABELS: &str = "fedser.labels";
const FORMAT: &str = "fedser-model-1";

/// flex keeps one random generator per process: seeding, building and materialising the
/// lazily initialised parameters must happen under one lock when threads build models at once.
static INIT_LOCK: Mutex<()> = Mutex::new(());

struct Materialise;
impl ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// The training device, with autodiff: the flex CPU backend, or — in builds with the `cuda`
/// or `wgpu` feature — the GPU named by the environment variable `FEDSER_DEVICE` (`cuda`,
/// `cuda:N`, `wgpu`; `cpu` or unset: flex). A device this build cannot provide is reported
/// once and replaced by the CPU.
pub fn train_device() -> Device {
    base_device().autodiff()
}

fn base_device() -> Device {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let wanted = std::env::var("FEDSER_DEVICE").unwrap_or_default();
    let wanted = wanted.trim().to_ascii_lowercase();
    match wanted.as_str() {
        "" | "cpu" | "flex" => Device::flex(),
        #[cfg(feature = "wgpu")]
        "wgpu" | "gpu" => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(feature = "cuda")]
        other if other == "cuda" || other.starts_with("cuda:") => {
            let index = other
                .strip_prefix("cuda:")
                .and_then(|i| i.parse::<usize>().ok())
                .unwrap_or(0);
            Device::cuda(index)
        }
        other => {
            WARNED.call_once(|| {
                tracing::warn!(
                    "FEDSER_DEVICE={other}: this build has no such device (GPU backends need \
                     `--features cuda` or `--features wgpu`); training on the CPU"
                )
            });
            Device::flex()
        }
    }
}

impl EmotionModel {
    /// A freshly initialised model; the same spec and seed give the same weights.
    pub fn new(spec: ModelSpec, seed: u64, device: &Device) -> Result<Self, ModelError> {
        spec.validate().map_err(ModelError::Spec)?;
        let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        let net = match spec.arch {
            Arch::Dnn => Net::Dnn(Dnn::init(&spec, device)),
            Arch::Cnn => Net::Cnn(Cnn::init(&spec, device)),
            Arch::Lstm => Net::Lstm(Lstm::init(&spec, device)),
            Arch::LstmTransformer => Net::LstmTransformer(LstmTransformer::init(&spec, device)),
        };
        net.visit(&mut Materialise);
        Ok(Self { spec, net })
    }

    /// Logits `[batch, classes]`. `dropout_rng` is `Some` while training (dropout on).
    pub fn forward(&self, input: &Input, dropout_rng: Option<&mut StdRng>) -> Tensor<2> {
        let p = self.spec.dropout;
        match &self.net {
            Net::Dnn(m) => m.forward(input, p, dropout_rng),
            Net::Cnn(m) => m.forward(input, p, dropout_rng),
            Net::Lstm(m) => m.forward(input, p, dropout_rng),
            Net::LstmTransformer(m) => m.forward(input, p, dropout_rng),
        }
    }

    /// The parameters (weights and batch-norm statistics) as a `ParamSet`.
    pub fn params(&self) -> Result<ParamSet, ModelError> {
        params::export(&self.net.valid()).map_err(ModelError::Params)
    }

    /// Replaces the parameters; names, shapes and finiteness are checked.
    pub fn set_params(self, p: &ParamSet) -> Result<Self, ModelError> {
        let net = params::import(self.net, p).map_err(ModelError::Params)?;
        Ok(Self {
            spec: self.spec,
            net,
        })
    }

    /// Names of parameters that are statistics rather than trained weights (batch-norm
    /// running mean and variance): federated strategies average them plainly.
    pub fn statistic_names(&self) -> Vec<String> {
        params::statistics(&self.net)
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }

    /// Saves weights, spec, label order and `extra` metadata (e.g. the feature configuration)
    /// as one safetensors file.
    pub fn save(&self, path: &Path, extra: &BTreeMap<String, String>) -> Result<(), ModelError> {
        let mut meta = extra.clone();
        meta.insert(META_FORMAT.into(), FORMAT.into());
        meta.insert(
            META_SPEC.into(),
            serde_json::to_string(&self.spec).expect("specs serialise"),
        );
        let labels: Vec<&str> = Emotion::ALL.iter().map(|e| e.name()).collect();
        meta.insert(
            META_LABELS.into(),
            serde_json::to_string(&labels).expect("strings serialise"),
        );
        self.params()?
            .save(path, &meta)
            .map_err(|e| ModelError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Loads a model file: the model and the file's metadata.
    pub fn load(
        path: &Path,
        device: &Device,
    ) -> Result<(Self, BTreeMap<String, String>), ModelError> {
        let fail = |reason: String| ModelError::File {
            path: path.to_owned(),
            reason,
        };
        // ParamSet's error already names the file.
        let (params, meta) = ParamSet::load(path).map_err(|e| match e {
            fedser_core::ParamError::File { reason, .. } => fail(reason),
            other => fail(other.to_string()),
        })?;
        if meta.get(META_FORMAT).map(String::as_str) != Some(FORMAT) {
            return Err(fail(
                "not a fedser model file (no fedser.format metadata)".into(),
            ));
        }
        let spec: ModelSpec = serde_json::from_str(
            meta.get(META_SPEC)
                .ok_or_else(|| fail("no model spec".into()))?,
        )
        .map_err(|e| fail(format!("bad model spec: {e}")))?;
        let labels: Vec<String> =
            serde_json::from_str(meta.get(META_LABELS).map_or("[]", String::as_str))
                .map_err(|e| fail(format!("bad label list: {e}")))?;
        let expected: Vec<&str> = Emotion::ALL.iter().map(|e| e.name()).collect();
        if labels != expected {
            return Err(fail(format!(
                "label order {labels:?} differs from fedser's {expected:?}"
            )));
        }
        let model = Self::new(spec, 0, device).map_err(|e| fail(e.to_string()))?;
        let arch = model.spec.arch;
        let model = model.set_params(&params).map_err(|e| {
            let mut reason = e.to_string();
            if arch == Arch::Dnn && !params.iter().any(|(n, _)| n.starts_with("input_norm.")) {
                reason.push_str(
                    " (a DNN file from before the DNN normalised its input statistics: retrain it)",
                );
            }
            fail(reason)
        })?;
        Ok((model, meta))
    }
}

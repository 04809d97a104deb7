//! `ParamSet`: a model's parameters as ordered, named f32 tensors — what clients and server
//! exchange, and what model files hold (safetensors, with string metadata beside).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// One named tensor: shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl ParamTensor {
    /// A tensor, checking that `data` fills `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, ParamError> {
        let want: usize = shape.iter().product();
        if want != data.len() {
            return Err(ParamError::Shape(format!(
                "shape {shape:?} needs {want} values, got {}",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }
}

/// Ordered named tensors. The order is the model's parameter order and is kept on disk.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParamSet {
    entries: Vec<(String, ParamTensor)>,
}

/// One tensor as serde sees it (the `ParamSet` is a sequence of these, in order).
#[derive(serde::Serialize, serde::Deserialize)]
struct NamedTensor<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    shape: std::borrow::Cow<'a, [usize]>,
    data: std::borrow::Cow<'a, [f32]>,
}

/// Serialised as a sequence of `{name, shape, data}` in model order.
impl serde::Serialize for ParamSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.entries.iter().map(|(name, t)| NamedTensor {
            name: name.as_str().into(),
            shape: t.shape.as_slice().into(),
            data: t.data.as_slice().into(),
        }))
    }
}

/// Checks what it reads: each tensor's data fills its shape, and names are unique.
impl<'de> serde::Deserialize<'de> for ParamSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tensors: Vec<NamedTensor<'_>> = serde::Deserialize::deserialize(d)?;
        let mut set = ParamSet::new();
        for t in tensors {
            let tensor = ParamTensor::new(t.shape.into_owned(), t.data.into_owned())
                .map_err(|e| serde::de::Error::custom(format!("tensor {}: {e}", t.name)))?;
            set.push(t.name.into_owned(), tensor)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(set)
    }
}

/// Problems with parameters or their files.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("{0}")]
    Shape(String),
    #[error("parameter {name}: value {index} is not finite ({value})")]
    NonFinite {
        name: String,
        index: usize,
        value: f32,
    },
    #[error("duplicate parameter name {0:?}")]
    Duplicate(String),
    #[error("{}: {reason}", path.display())]
    File {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("not a valid safetensors file: {0}")]
    Format(String),
}

/// Metadata key under which the parameter order is stored.
const ORDER_KEY: &str = "fedser.param_order";

impl ParamSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a tensor; names must be unique.
    pub fn push(&mut self, name: impl Into<String>, tensor: ParamTensor) -> Result<(), ParamError> {
        let name = name.into();
        if self.get(&name).is_some() {
            return Err(ParamError::Duplicate(name));
        }
        self.entries.push((name, tensor));
        Ok(())
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&ParamTensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Names and tensors in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamTensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Mutable tensors in order (shapes must not change).
    pub fn tensors_mut(&mut self) -> impl Iterator<Item = &mut ParamTensor> {
        self.entries.iter_mut().map(|(_, t)| t)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn num_values(&self) -> usize {
        self.entries.iter().map(|(_, t)| t.data.len()).sum()
    }

    /// Size in bytes of the values (f32), what an update costs on the wire.
    pub fn num_bytes(&self) -> usize {
        self.num_values() * 4
    }

    /// The first NaN or infinite value, as an error naming the tensor.
    pub fn check_finite(&self) -> Result<(), ParamError> {
        for (name, t) in &self.entries {
            if let Some((index, &value)) = t.data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(ParamError::NonFinite {
                    name: name.clone(),
                    index,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Checks that `other` has the same names, order and shapes.
    pub fn check_same_layout(&self, other: &ParamSet) -> Result<(), ParamError> {
        if self.len() != other.len() {
            return Err(ParamError::Shape(format!(
                "expected {} tensors, got {}",
                self.len(),
                other.len()
            )));
        }
        for ((a, ta), (b, tb)) in self.entries.iter().zip(&other.entries) {
            if a != b {
                return Err(ParamError::Shape(format!(
                    "expected tensor {a:?}, got {b:?}"
                )));
            }
            if ta.shape != tb.shape {
                return Err(ParamError::Shape(format!(
                    "tensor {a}: expected shape {:?}, got {:?}",
                    ta.shape, tb.shape
                )));
            }
        }
        Ok(())
    }

    /// Serialises to safetensors bytes with `metadata` (string pairs) beside the tensors.
    pub fn to_safetensors(
        &self,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>, ParamError> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .entries
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    t.shape.clone(),
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(n, shape, data)| {
                TensorView::new(Dtype::F32, shape.clone(), data)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| ParamError::Format(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut info: HashMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let order: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        info.insert(
            ORDER_KEY.into(),
            serde_json::to_string(&order).expect("strings serialise"),
        );
        safetensors::serialize(views, Some(info)).map_err(|e| ParamError::Format(e.to_string()))
    }

    /// Parses safetensors bytes: the parameters (in their stored order) and the metadata.
    pub fn from_safetensors(
        bytes: &[u8],
    ) -> Result<(ParamSet, BTreeMap<String, String>), ParamError> {
        let tensors =
            SafeTensors::deserialize(bytes).map_err(|e| ParamError::Format(e.to_string()))?;
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| ParamError::Format(e.to_string()))?;
        let mut metadata: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let order: Vec<String> = match metadata.remove(ORDER_KEY) {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| ParamError::Format(format!("{ORDER_KEY}: {e}")))?,
            None => {
                let mut names: Vec<String> =
                    tensors.names().into_iter().map(String::from).collect();
                names.sort();
                names
            }
        };
        let mut set = ParamSet::new();
        for name in order {
            let view = tensors
                .tensor(&name)
                .map_err(|e| ParamError::Format(format!("tensor {name}: {e}")))?;
            if view.dtype() != Dtype::F32 {
                return Err(ParamError::Format(format!(
                    "tensor {name} is {:?}, expected F32",
                    view.dtype()
                )));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            set.push(name, ParamTensor::new(view.shape().to_vec(), data)?)?;
        }
        if set.len() != tensors.len() {
            return Err(ParamError::Format(
                "the stored order does not list every tensor".into(),
            ));
        }
        Ok((set, metadata))
    }

    /// Writes a safetensors file atomically and durably (temporary file, flushed to disk, then
    /// renamed over the target): a crash leaves the old file or the new one, never a torn one.
    pub fn save(&self, path: &Path, metadata: &BTreeMap<String, String>) -> Result<(), ParamError> {
        use std::io::Write;
        let bytes = self.to_safetensors(metadata)?;
        let file_err = |e: std::io::Error| ParamError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let tmp = path.with_extension("safetensors.partial");
        let mut file = std::fs::File::create(&tmp).map_err(file_err)?;
        file.write_all(&bytes).map_err(file_err)?;
        file.sync_all().map_err(file_err)?;
        std::fs::rename(&tmp, path).map_err(file_err)
    }

    /// Reads a safetensors file.
    pub fn load(path: &Path) -> Result<(ParamSet, BTreeMap<String, String>), ParamError> {
        let bytes = std::fs::read(path).map_err(|e| ParamError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_safetensors(&bytes).map_err(|e| ParamError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ParamSet {
        let mut p = ParamSet::new();
        p.push(
            "z.weight",
            ParamTensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap(),
        )
        .unwrap();
        p.push(
            "a.bias",
            ParamTensor::new(vec![2], vec![-0.5, 0.25]).unwrap(),
        )
        .unwrap();
        p
    }

    #[test]
    fn safetensors_round_trip_keeps_order_values_and_metadata() {
        let p = sample();
        let mut meta = BTreeMap::new();
        meta.insert("fedser.arch".to_string(), "cnn".to_string());
        let bytes = p.to_safetensors(&meta).unwrap();
        let (q, m) = ParamSet::from_safetensors(&bytes).unwrap();
        assert_eq!(p, q);
        assert_eq!(
            q.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["z.weight", "a.bias"]
        );
        assert_eq!(m, meta);
        assert_eq!(p.num_values(), 8);
    }

    #[test]
    fn bad_files_and_values_are_errors() {
        assert!(ParamSet::from_safetensors(b"").is_err());
        assert!(ParamSet::from_safetensors(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").is_err());
        let bytes = sample().to_safetensors(&BTreeMap::new()).unwrap();
        assert!(ParamSet::from_safetensors(&bytes[..bytes.len() - 3]).is_err());
        let mut p = sample();
        p.tensors_mut().next().unwrap().data[4] = f32::NAN;
        let e = p.check_finite().unwrap_err().to_string();
        assert!(e.contains("z.weight") && e.contains("value 4"), "{e}");
        assert!(ParamTensor::new(vec![2, 2], vec![0.0; 3]).is_err());
        assert!(
            sample()
                .push("a.bias", ParamTensor::new(vec![1], vec![0.0]).unwrap())
                .is_err()
        );
        let mut other = sample();
        other.tensors_mut().nth(1).unwrap().shape = vec![1, 2];
        assert!(
            sample()
                .check_same_layout(&other)
                .unwrap_err()
                .to_string()
                .contains("a.bias")
        );
    }
}

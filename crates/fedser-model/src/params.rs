//! Burn modules <-> `ParamSet`: every float tensor (trainable weights and batch-norm running
//! statistics) under its dotted module path (`conv1.weight`, `bn1.running_mean`, ...).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use fedser_core::{ParamSet, ParamTensor};

/// Tracks the module path: the derive calls enter/exit for every field, leaf included.
struct Exporter {
    path: Vec<String>,
    out: ParamSet,
    error: Option<String>,
}

impl ModuleVisitor for Exporter {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.transform_for_save().val();
        let shape = tensor.dims().to_vec();
        let data = tensor
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap_or_default();
        let entry =
            ParamTensor::new(shape, data).and_then(|t| self.out.push(self.path.join("."), t));
        if let Err(e) = entry {
            self.error.get_or_insert(e.to_string());
        }
    }
}

/// All float tensors of `model`. Call it on `model.valid()`: that brings batch-norm running
/// statistics up to date.
pub fn export<M: Module>(model: &M) -> Result<ParamSet, String> {
    let mut v = Exporter {
        path: Vec::new(),
        out: ParamSet::new(),
        error: None,
    };
    model.visit(&mut v);
    match v.error {
        Some(e) => Err(e),
        None => Ok(v.out),
    }
}

struct Importer {
    path: Vec<String>,
    params: HashMap<String, ParamTensor>,
    errors: Vec<String>,
}

impl ModuleMapper for Importer {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        let Some(p) = self.params.remove(&name) else {
            self.errors.push(format!("missing tensor {name}"));
            return param;
        };
        let expected = param.lazy_shape();
        if p.shape.as_slice() != expected.as_slice() {
            self.errors.push(format!(
                "tensor {name}: expected shape {:?}, got {:?}",
                expected.as_slice(),
                p.shape
            ));
            return param;
        }
        let device = param.lazy_device();
        let tensor = Tensor::<D>::from_data(TensorData::new(p.data, p.shape), &device);
        // A rebuilt tensor has lost require_grad: transform_for_load restores it (and keeps the
        // parameter id the optimiser state is keyed on).
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}

/// Loads `params` into `model`; every tensor must be present with the right shape, and no
/// extra tensor may be left over.
pub fn import<M: Module>(model: M, params: &ParamSet) -> Result<M, String> {
    params.check_finite().map_err(|e| e.to_string())?;
    let mut m = Importer {
        path: Vec::new(),
        params: params
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect(),
        errors: Vec::new(),
    };
    let model = model.map(&mut m);
    if !m.params.is_empty() {
        let mut extra: Vec<&String> = m.params.keys().collect();
        extra.sort();
        m.errors.push(format!("unexpected tensors {extra:?}"));
    }
    if m.errors.is_empty() {
        Ok(model)
    } else {
        Err(m.errors.join("; "))
    }
}

/// Reference tensors for a proximal term, flat, by name, on `device` (no gradient).
pub fn reference(params: &ParamSet, device: &Device) -> HashMap<String, Tensor<1>> {
    params
        .iter()
        .map(|(n, t)| {
            let len = t.data.len();
            let data = TensorData::new(t.data.clone(), [len]);
            (n.to_string(), Tensor::<1>::from_data(data, device))
        })
        .collect()
}

struct Distance<'a> {
    path: Vec<String>,
    reference: &'a HashMap<String, Tensor<1>>,
    total: Option<Tensor<1>>,
    error: Option<String>,
}

impl ModuleVisitor for Distance<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let w = param.val();
        // Statistics (batch-norm running values) carry no gradient: not part of the term.
        if !w.is_require_grad() {
            return;
        }
        let name = self.path.join(".");
        let Some(r) = self.reference.get(&name) else {
            self.error.get_or_insert(format!("no reference for {name}"));
            return;
        };
        let dims = w.dims();
        if r.dims()[0] != dims.iter().product::<usize>() {
            self.error
                .get_or_insert(format!("reference for {name} has the wrong size"));
            return;
        }
        let term = (w - r.clone().reshape(dims)).powi_scalar(2).sum();
        self.total = Some(match self.total.take() {
            Some(t) => t + term,
            None => term,
        });
    }
}

/// `sum ||w - reference||^2` over the trainable tensors of `model`, differentiable.
pub fn squared_distance<M: Module>(
    model: &M,
    reference: &HashMap<String, Tensor<1>>,
) -> Result<Option<Tensor<1>>, String> {
    let mut d = Distance {
        path: Vec::new(),
        reference,
        total: None,
        error: None,
    };
    model.visit(&mut d);
    match d.error {
        Some(e) => Err(e),
        None => Ok(d.total),
    }
}

struct Statistics {
    path: Vec<String>,
    names: Vec<String>,
}

impl ModuleVisitor for Statistics {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.val().is_require_grad() {
            self.names.push(self.path.join("."));
        }
    }
}

/// Names of the tensors that are not trained by gradients (running statistics). Call it on a
/// model built on the autodiff device.
pub fn statistics<M: Module>(model: &M) -> Vec<String> {
    let mut s = Statistics {
        path: Vec::new(),
        names: Vec::new(),
    };
    model.visit(&mut s);
    s.names
}

//! Fused CPU kernels for the `flex` backend, as Burn backend extensions with their own
//! backward pass, where the composition of framework operations is slow (profiled: see the
//! README's training-speed section).
//!
//! - [`lstm`]: the LSTM recurrence over a whole sequence, forward and backward through time.
//! - [`packed`]: small products against a matrix packed once (the recurrent weights).
//! - [`math`]: vectorisable `exp`, sigmoid and `tanh` with stated error bounds.
//!
//! Each fused operation has a high-level entry point taking and returning `Tensor`s that
//! answers `None` when the tensors are not `f32` on the flex device (a GPU build, say); the
//! caller then runs the composed framework operations, which compute the same function.

pub mod lstm;
pub mod math;
pub mod packed;
pub(crate) mod simd;

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, DispatchDevice, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::DType;

/// Operations fused into one kernel, forward and backward.
#[backend_extension(Autodiff, Flex)]
pub trait FusedOps: burn::backend::Backend {
    /// LSTM hidden states `[b, t, n]` of `x [b, t, c]` with input weights `wx [c, 4n]`, bias
    /// `[4n]` and recurrent weights `wh [n, 4n]`, gates `[i, f, o, g]`, zero initial state.
    fn lstm_sequence(
        x: FloatTensor<Self>,
        wx: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        wh: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// Contiguous `f32` values of a flex tensor (copied only when its layout needs it).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => std::borrow::Cow::Borrowed(v),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("f32 tensors only reach the fused kernels")
                .to_vec(),
        ),
    }
}

fn flex_tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

fn lstm_dims(x: &FlexTensor, wh: &FlexTensor) -> lstm::Dims {
    let xs = x.layout().shape();
    lstm::Dims {
        batch: xs[0],
        steps: xs[1],
        inputs: xs[2],
        hidden: wh.layout().shape()[0],
    }
}

fn lstm_forward(
    x: &FlexTensor,
    wx: &FlexTensor,
    bias: &FlexTensor,
    wh: &FlexTensor,
) -> (FlexTensor, lstm::Tape) {
    let dims = lstm_dims(x, wh);
    let (out, tape) = lstm::forward(dims, &values(x), &values(wx), &values(bias), &values(wh));
    (
        flex_tensor(out, &[dims.batch, dims.steps, dims.hidden]),
        tape,
    )
}

impl FusedOps for Flex {
    fn lstm_sequence(
        x: FloatTensor<Self>,
        wx: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        wh: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        lstm_forward(&x, &wx, &bias, &wh).0
    }
}

/// What the LSTM's backward step keeps: the tape and the weights it multiplies by.
#[derive(Debug)]
struct LstmSaved {
    tape: lstm::Tape,
    wx: FlexTensor,
    wh: FlexTensor,
}

#[derive(Debug)]
struct LstmBackward;

impl Backward<Flex, 4> for LstmBackward {
    type State = Arc<LstmSaved>;

    fn backward(
        self,
        ops: Ops<Self::State, 4>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_wx, node_bias, node_wh] = ops.parents;
        let d_out = grads.consume::<Flex>(&ops.node);
        let saved = Arc::try_unwrap(ops.state).unwrap_or_else(|shared| LstmSaved {
            tape: shared.tape.clone(),
            wx: shared.wx.clone(),
            wh: shared.wh.clone(),
        });
        let dims = saved.tape_dims();
        let g = lstm::backward(
            saved.tape,
            &values(&d_out),
            &values(&saved.wx),
            &values(&saved.wh),
            node_x.is_some(),
        );
        let g4 = 4 * dims.hidden;
        if let (Some(node), Some(dx)) = (node_x, g.x) {
            grads.register::<Flex>(
                node.id,
                flex_tensor(dx, &[dims.batch, dims.steps, dims.inputs]),
            );
        }
        if let Some(node) = node_wx {
            grads.register::<Flex>(node.id, flex_tensor(g.wx, &[dims.inputs, g4]));
        }
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, flex_tensor(g.bias, &[g4]));
        }
        if let Some(node) = node_wh {
            grads.register::<Flex>(node.id, flex_tensor(g.wh, &[dims.hidden, g4]));
        }
    }
}

impl LstmSaved {
    fn tape_dims(&self) -> lstm::Dims {
        self.tape.dims()
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn lstm_sequence(
        x: FloatTensor<Self>,
        wx: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        wh: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match LstmBackward
            .prepare::<C>([x.node(), wx.node(), bias.node(), wh.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, tape) = lstm_forward(
                    x.primitive(),
                    wx.primitive(),
                    bias.primitive(),
                    wh.primitive(),
                );
                let saved = LstmSaved {
                    tape,
                    wx: wx.primitive().clone(),
                    wh: wh.primitive().clone(),
                };
                prep.finish(Arc::new(saved), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(
                lstm_forward(
                    x.primitive(),
                    wx.primitive(),
                    bias.primitive(),
                    wh.primitive(),
                )
                .0,
            ),
        }
    }
}

/// Whether `t` can go through a fused kernel: `f32` on the flex device (with or without
/// autodiff).
fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == DType::F32 && matches!(t.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// The fused LSTM sequence (see [`FusedOps::lstm_sequence`]), or `None` when the tensors are
/// not `f32` on the flex device.
pub fn lstm_sequence(
    x: Tensor<3>,
    wx: Tensor<2>,
    bias: Tensor<1>,
    wh: Tensor<2>,
) -> Option<Tensor<3>> {
    if !(on_flex(&x) && on_flex(&wx) && on_flex(&bias) && on_flex(&wh)) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <burn::backend::Dispatch as FusedOps>::lstm_sequence(
            x.into_dispatch(),
            wx.into_dispatch(),
            bias.into_dispatch(),
            wh.into_dispatch(),
        ),
    ))
}

//! Fused CPU kernels for the `flex` backend, as Burn backend extensions with their own
//! backward pass, where the composition of framework operations is slow (profiled: see the
//! README's training-speed section).
//!
//! - [`lstm`]: the LSTM recurrence over a whole sequence, forward and backward through time.
//! - [`conv`]: the CNN's "same" 1-D convolution over time-major frames.
//! - [`pool`]: ReLU and max-pooling by 2 over time in one pass.
//! - [`summary`]: ReLU, then the masked mean and maximum over time (the CNN's summary).
//! - [`norm`]: batch normalisation (training mode) over channels-last rows.
//! - [`matmul`]: matrix products with any strides (the `gemm` crate).
//! - [`math`]: vectorisable `exp`, sigmoid and `tanh` with stated error bounds.
//!
//! Each fused operation has a high-level entry point taking and returning `Tensor`s that
//! answers `None` when the tensors are not `f32` on the flex device (a GPU build, say); the
//! caller then runs the composed framework operations, which compute the same function.

pub mod conv;
pub mod lstm;
pub mod math;
pub mod matmul;
pub mod norm;
pub mod pool;
pub(crate) mod simd;
pub mod summary;

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, DispatchDevice, Flex, backend_extension};
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

    /// "Same" convolution over time of time-major `x [b, t, in]` with `weight [out, in, k]`
    /// (`Conv1d`'s layout) and `bias [out]` -> `[b, t, out]`.
    fn conv1d_time_major(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `max(0, x_{2s}, x_{2s+1})` over time: `[b, t, c]` -> `[b, t / 2, c]`.
    fn relu_max_pool2(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `[mean | max]` over the valid frames of `relu(h)`, `h [b, t, c]`, `mask [b, t]` (0/1,
    /// a constant: no gradient flows to it) -> `[b, 2c]`.
    fn relu_mean_max_time(h: FloatTensor<Self>, mask: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Batch norm with the batch's statistics over rows `x [n, c]`: the output, and the
    /// batch mean and biased variance per channel (not differentiated: for running
    /// statistics).
    fn batch_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// A new vector of `len` values, every one written by `fill`: skips zero-filling buffers
/// that a kernel overwrites anyway (a tenth of a CNN step was `memset`, profiled).
///
/// # Safety
/// `fill` must initialise every element of the slice it is given.
pub(crate) unsafe fn written(
    len: usize,
    fill: impl FnOnce(&mut [std::mem::MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialised the first `len` values (the caller's obligation).
    unsafe { v.set_len(len) };
    v
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

fn conv_dims(x: &FlexTensor, weight: &FlexTensor) -> conv::Dims {
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    conv::Dims {
        batch: xs[0],
        steps: xs[1],
        inputs: xs[2],
        outputs: ws[0],
        kernel: ws[2],
    }
}

fn conv_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
) -> (FlexTensor, conv::Tape) {
    let d = conv_dims(x, weight);
    let (y, tape) = conv::forward(d, &values(x), &values(weight), &values(bias));
    (flex_tensor(y, &[d.batch, d.steps, d.outputs]), tape)
}

fn pool_dims(x: &FlexTensor) -> pool::Dims {
    let xs = x.layout().shape();
    pool::Dims {
        batch: xs[0],
        steps: xs[1],
        channels: xs[2],
    }
}

fn pool_forward(x: &FlexTensor) -> FlexTensor {
    let d = pool_dims(x);
    flex_tensor(
        pool::forward(d, &values(x)),
        &[d.batch, d.pooled(), d.channels],
    )
}

fn summary_forward(h: &FlexTensor, mask: &FlexTensor) -> (FlexTensor, summary::Tape) {
    let hs = h.layout().shape();
    let d = summary::Dims {
        batch: hs[0],
        steps: hs[1],
        channels: hs[2],
    };
    let (y, tape) = summary::forward(d, &values(h), &values(mask));
    (flex_tensor(y, &[d.batch, 2 * d.channels]), tape)
}

fn norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor, norm::Tape) {
    let shape = x.layout().shape();
    let (n, c) = (shape[0], shape[1]);
    let f = norm::forward(&values(x), &values(gamma), &values(beta), epsilon);
    (
        flex_tensor(f.output, &[n, c]),
        flex_tensor(f.mean, &[c]),
        flex_tensor(f.variance, &[c]),
        f.tape,
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

    fn conv1d_time_major(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        conv_forward(&x, &weight, &bias).0
    }

    fn relu_max_pool2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        pool_forward(&x)
    }

    fn relu_mean_max_time(h: FloatTensor<Self>, mask: FloatTensor<Self>) -> FloatTensor<Self> {
        summary_forward(&h, &mask).0
    }

    fn batch_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (y, mean, variance, _) = norm_forward(&x, &gamma, &beta, epsilon);
        (y, mean, variance)
    }
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    /// The tape and the forward input (`x̂` is recomputed from it).
    type State = (Arc<norm::Tape>, FlexTensor);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (tape, x) = &ops.state;
        let g = norm::backward(tape, &values(x), &values(&dy));
        let (n, c) = (tape.rows(), tape.channels());
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex_tensor(g.x, &[n, c]));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex_tensor(g.gamma, &[c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex_tensor(g.beta, &[c]));
        }
    }
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = Arc<conv::Tape>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let d = ops.state.dims();
        let g = conv::backward(&ops.state, &values(&dy), node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, g.x) {
            grads.register::<Flex>(node.id, flex_tensor(dx, &[d.batch, d.steps, d.inputs]));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(
                node.id,
                flex_tensor(g.weight, &[d.outputs, d.inputs, d.kernel]),
            );
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex_tensor(g.bias, &[d.outputs]));
        }
    }
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = FlexTensor;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node_x {
            let d = pool_dims(&ops.state);
            let dx = pool::backward(d, &values(&ops.state), &values(&dy));
            grads.register::<Flex>(node.id, flex_tensor(dx, &[d.batch, d.steps, d.channels]));
        }
    }
}

#[derive(Debug)]
struct SummaryBackward;

impl Backward<Flex, 1> for SummaryBackward {
    /// The tape and the forward input.
    type State = (Arc<summary::Tape>, FlexTensor);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_h] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node_h {
            let (tape, h) = &ops.state;
            let d = tape.dims();
            let dh = summary::backward(tape, &values(h), &values(&dy));
            grads.register::<Flex>(node.id, flex_tensor(dh, &[d.batch, d.steps, d.channels]));
        }
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
        let dims = saved.tape.dims();
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

    fn conv1d_time_major(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, tape) = conv_forward(x.primitive(), weight.primitive(), bias.primitive());
                prep.finish(Arc::new(tape), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(conv_forward(x.primitive(), weight.primitive(), bias.primitive()).0)
            }
        }
    }

    fn relu_max_pool2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match PoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = pool_forward(x.primitive());
                prep.finish(x.primitive().clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(pool_forward(x.primitive())),
        }
    }

    fn relu_mean_max_time(h: FloatTensor<Self>, mask: FloatTensor<Self>) -> FloatTensor<Self> {
        // The mask is data: it is read as a plain value and gets no gradient.
        let mask = <Autodiff<Flex, C> as AutodiffBackend>::inner(mask);
        match SummaryBackward
            .prepare::<C>([h.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, tape) = summary_forward(h.primitive(), &mask);
                prep.finish((Arc::new(tape), h.primitive().clone()), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(summary_forward(h.primitive(), &mask).0),
        }
    }

    fn batch_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (y, mean, variance, tape) =
            norm_forward(x.primitive(), gamma.primitive(), beta.primitive(), epsilon);
        let stats = |t| <Autodiff<Flex, C> as AutodiffBackend>::from_inner(t);
        let output = match NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((Arc::new(tape), x.primitive().clone()), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (output, stats(mean), stats(variance))
    }
}

/// Whether `t` can go through a fused kernel: `f32` on the flex device (with or without
/// autodiff).
fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == DType::F32 && matches!(t.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// The fused convolution (see [`FusedOps::conv1d_time_major`]), or `None` off flex.
pub fn conv1d_time_major(x: Tensor<3>, weight: Tensor<3>, bias: Tensor<1>) -> Option<Tensor<3>> {
    if !(on_flex(&x) && on_flex(&weight) && on_flex(&bias)) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <burn::backend::Dispatch as FusedOps>::conv1d_time_major(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        ),
    ))
}

/// The fused ReLU and max-pooling by 2 (see [`FusedOps::relu_max_pool2`]), or `None` off
/// flex.
pub fn relu_max_pool2(x: Tensor<3>) -> Option<Tensor<3>> {
    if !on_flex(&x) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <burn::backend::Dispatch as FusedOps>::relu_max_pool2(x.into_dispatch()),
    ))
}

/// The fused ReLU and masked mean and maximum over time (see
/// [`FusedOps::relu_mean_max_time`]), or `None` off flex.
pub fn relu_mean_max_time(h: Tensor<3>, mask: Tensor<2>) -> Option<Tensor<2>> {
    if !(on_flex(&h) && on_flex(&mask)) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <burn::backend::Dispatch as FusedOps>::relu_mean_max_time(
            h.into_dispatch(),
            mask.into_dispatch(),
        ),
    ))
}

/// The fused batch norm over rows (see [`FusedOps::batch_norm_rows`]): output, batch mean,
/// batch variance; or `None` off flex.
pub fn batch_norm_rows(
    x: Tensor<2>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Option<(Tensor<2>, Tensor<1>, Tensor<1>)> {
    if !(on_flex(&x) && on_flex(&gamma) && on_flex(&beta)) {
        return None;
    }
    let (y, mean, variance) = <burn::backend::Dispatch as FusedOps>::batch_norm_rows(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    Some((
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(variance),
    ))
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

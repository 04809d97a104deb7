//! The whole LSTM recurrence over a sequence, forward and backward through time, in one
//! kernel on plain `f32` slices.
//!
//! Forward: the input projection of every step is one matrix product (`[t·b, c] × [c, 4n]`,
//! bias added); each step then adds `h Wh` (one `[b, n] × [n, 4n]` product into the same
//! rows, oriented so that `Wh` is read in place: [`super::matmul`]) and runs the gate
//! nonlinearities and the cell update in one vectorised pass over the row. The activated gates, the cells and `tanh(c)` are kept for the backward pass.
//!
//! Backward: one pass per step, latest first, turns the incoming `dh` into the four
//! pre-activation gate gradients (written over the kept gates) and the recurrent `dh` for the
//! step before (`dG Wh^T`); the weight gradients are then two large products over all steps
//! (`H_prev^T dG`, `X^T dG`), the bias gradient a column sum, and the input gradient
//! `dG Wx^T` when the input needs one. Gate order `[i, f, o, g]`, as `super::super::arch`'s
//! LSTM cell stores its weights.
//!
//! Internally everything is time-major (`[t, b, ·]`) so that a step's rows are contiguous;
//! inputs and outputs are batch-major (`[b, t, ·]`) like the model's tensors.

use super::math::{sigmoid, tanh};
use super::matmul::matmul;
use super::simd::dispatch;

/// Sizes: batch, steps, input channels, hidden units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub steps: usize,
    pub inputs: usize,
    pub hidden: usize,
}

impl Dims {
    fn gates(&self) -> usize {
        4 * self.hidden
    }
}

/// What the forward pass keeps for the backward pass.
#[derive(Debug, Clone)]
pub struct Tape {
    dims: Dims,
    /// Input, time-major `[t, b, c]`.
    x: Vec<f32>,
    /// Activated gates `[t, b, 4n]`: sigmoid of i, f, o, tanh of g.
    gates: Vec<f32>,
    /// Cell states `[t, b, n]`.
    cell: Vec<f32>,
    /// `tanh(c)`, `[t, b, n]`.
    tanh_cell: Vec<f32>,
    /// Hidden states `[t, b, n]`.
    hidden: Vec<f32>,
}

impl Tape {
    /// The sizes the forward pass ran with.
    pub fn dims(&self) -> Dims {
        self.dims
    }
}

/// Gradients of a sequence's loss with respect to the kernel's inputs.
#[derive(Debug, Clone)]
pub struct Grads {
    /// `[b, t, c]`, when asked for.
    pub x: Option<Vec<f32>>,
    /// `[c, 4n]`.
    pub wx: Vec<f32>,
    /// `[4n]`.
    pub bias: Vec<f32>,
    /// `[n, 4n]`.
    pub wh: Vec<f32>,
}

/// `[b, t, w]` -> `[t, b, w]` (and back: the map with `b` and `t` swapped).
fn swap_batch_time(src: &[f32], outer: usize, inner: usize, width: usize) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    for o in 0..outer {
        for i in 0..inner {
            let from = (o * inner + i) * width;
            let to = (i * outer + o) * width;
            out[to..to + width].copy_from_slice(&src[from..from + width]);
        }
    }
    out
}

/// One step's gate nonlinearities and cell update over one batch row: `pre` holds the row's
/// pre-activations `[i, f, o, g]` and receives the activated gates.
#[inline(always)]
fn step_row(
    pre: &mut [f32],
    c_prev: Option<&[f32]>,
    cell: &mut [f32],
    tanh_cell: &mut [f32],
    hidden: &mut [f32],
) {
    let n = cell.len();
    let (ifo, g) = pre.split_at_mut(3 * n);
    for v in ifo.iter_mut() {
        *v = sigmoid(*v);
    }
    for v in g.iter_mut() {
        *v = tanh(*v);
    }
    let (i, fo) = ifo.split_at_mut(n);
    let (f, o) = fo.split_at_mut(n);
    match c_prev {
        Some(c_prev) => {
            for j in 0..n {
                cell[j] = f[j] * c_prev[j] + i[j] * g[j];
            }
        }
        None => {
            for j in 0..n {
                cell[j] = i[j] * g[j];
            }
        }
    }
    for j in 0..n {
        tanh_cell[j] = tanh(cell[j]);
        hidden[j] = o[j] * tanh_cell[j];
    }
}

/// The nonlinear part of one step over all rows (vectorised build chosen at run time).
fn step_rows(
    pre: &mut [f32],
    c_prev: Option<&[f32]>,
    cell: &mut [f32],
    tanh_cell: &mut [f32],
    hidden: &mut [f32],
    n: usize,
) {
    dispatch!(
        fn body(
            pre: &mut [f32],
            c_prev: Option<&[f32]>,
            cell: &mut [f32],
            tanh_cell: &mut [f32],
            hidden: &mut [f32],
            n: usize,
        ) {
            let rows = cell.len() / n;
            for r in 0..rows {
                let cells = r * n..(r + 1) * n;
                step_row(
                    &mut pre[4 * n * r..4 * n * (r + 1)],
                    c_prev.map(|c| &c[cells.clone()]),
                    &mut cell[cells.clone()],
                    &mut tanh_cell[cells.clone()],
                    &mut hidden[cells],
                );
            }
        }
    );
    body(pre, c_prev, cell, tanh_cell, hidden, n)
}

/// Forward over the sequence: `x [b, t, c]`, `wx [c, 4n]`, `bias [4n]`, `wh [n, 4n]` ->
/// hidden states `[b, t, n]` and the tape.
pub fn forward(dims: Dims, x: &[f32], wx: &[f32], bias: &[f32], wh: &[f32]) -> (Vec<f32>, Tape) {
    let Dims {
        batch: b,
        steps: t,
        inputs: c,
        hidden: n,
    } = dims;
    let g4 = dims.gates();
    assert_eq!(x.len(), b * t * c, "lstm input size");
    assert_eq!(wx.len(), c * g4, "lstm input weight size");
    assert_eq!(bias.len(), g4, "lstm bias size");
    assert_eq!(wh.len(), n * g4, "lstm hidden weight size");
    let x = swap_batch_time(x, b, t, c);
    let mut gates = vec![0f32; t * b * g4];
    for row in gates.chunks_exact_mut(g4) {
        row.copy_from_slice(bias);
    }
    matmul(
        (t * b, g4, c),
        &mut gates,
        g4,
        true,
        &x,
        (c, 1),
        wx,
        (g4, 1),
    );
    let mut cell = vec![0f32; t * b * n];
    let mut tanh_cell = vec![0f32; t * b * n];
    let mut hidden = vec![0f32; t * b * n];
    let step = b * n;
    for s in 0..t {
        let pre = &mut gates[s * b * g4..(s + 1) * b * g4];
        let (done_h, this_h) = hidden.split_at_mut(s * step);
        let (done_c, this_c) = cell.split_at_mut(s * step);
        let c_prev = if s > 0 {
            let h_prev = &done_h[(s - 1) * step..];
            matmul((b, g4, n), pre, g4, true, h_prev, (n, 1), wh, (g4, 1));
            Some(&done_c[(s - 1) * step..])
        } else {
            None
        };
        step_rows(
            pre,
            c_prev,
            &mut this_c[..step],
            &mut tanh_cell[s * step..(s + 1) * step],
            &mut this_h[..step],
            n,
        );
    }
    let out = swap_batch_time(&hidden, t, b, n);
    (
        out,
        Tape {
            dims,
            x,
            gates,
            cell,
            tanh_cell,
            hidden,
        },
    )
}

/// One step's backward over one row: `gates` holds the activated gates on entry and the
/// pre-activation gradients on exit; `dh` is the total gradient reaching this step's `h`;
/// `dc` carries the cell gradient from the step after on entry and to the step before on exit.
#[inline(always)]
fn step_back_row(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    tanh_cell: &[f32],
    dh: &[f32],
    dc: &mut [f32],
) {
    let n = dh.len();
    let (ifo, g) = gates.split_at_mut(3 * n);
    let (i, fo) = ifo.split_at_mut(n);
    let (f, o) = fo.split_at_mut(n);
    for j in 0..n {
        let (gi, gf, go, gg) = (i[j], f[j], o[j], g[j]);
        let tc = tanh_cell[j];
        let d_o = dh[j] * tc;
        let d_c = dc[j] + dh[j] * go * (1.0 - tc * tc);
        let cp = c_prev.map_or(0.0, |c| c[j]);
        dc[j] = d_c * gf;
        i[j] = d_c * gg * gi * (1.0 - gi);
        f[j] = d_c * cp * gf * (1.0 - gf);
        o[j] = d_o * go * (1.0 - go);
        g[j] = d_c * gi * (1.0 - gg * gg);
    }
}

fn step_back_rows(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    tanh_cell: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    n: usize,
) {
    dispatch!(
        fn body(
            gates: &mut [f32],
            c_prev: Option<&[f32]>,
            tanh_cell: &[f32],
            dh: &[f32],
            dc: &mut [f32],
            n: usize,
        ) {
            let rows = dh.len() / n;
            for r in 0..rows {
                let cells = r * n..(r + 1) * n;
                step_back_row(
                    &mut gates[4 * n * r..4 * n * (r + 1)],
                    c_prev.map(|c| &c[cells.clone()]),
                    &tanh_cell[cells.clone()],
                    &dh[cells.clone()],
                    &mut dc[cells],
                );
            }
        }
    );
    body(gates, c_prev, tanh_cell, dh, dc, n)
}

/// Backward through time: `d_out [b, t, n]` is the loss gradient of the hidden states
/// [`forward`] returned. Consumes the tape (its gate buffer becomes the gate gradients).
pub fn backward(mut tape: Tape, d_out: &[f32], wx: &[f32], wh: &[f32], want_dx: bool) -> Grads {
    let Dims {
        batch: b,
        steps: t,
        inputs: c,
        hidden: n,
    } = tape.dims;
    let g4 = tape.dims.gates();
    assert_eq!(d_out.len(), b * t * n, "lstm output gradient size");
    let step = b * n;
    // dH, time-major; each step's slice becomes the total dh of that step.
    let mut dh = swap_batch_time(d_out, b, t, n);
    let mut dc = vec![0f32; step];
    // Wh^T, `[4n, n]`, for the recurrent gradient of every step.
    // Wh column by column (`[4n, n]` row-major is Wh^T), so the product reads it in place.
    let mut wh_t = vec![0f32; g4 * n];
    for i in 0..n {
        for j in 0..g4 {
            wh_t[j * n + i] = wh[i * g4 + j];
        }
    }
    for s in (0..t).rev() {
        let (before, this) = dh.split_at_mut(s * step);
        let gates = &mut tape.gates[s * b * g4..(s + 1) * b * g4];
        let c_prev = (s > 0).then(|| &tape.cell[(s - 1) * step..s * step]);
        step_back_rows(
            gates,
            c_prev,
            &tape.tanh_cell[s * step..(s + 1) * step],
            &this[..step],
            &mut dc,
            n,
        );
        if s > 0 {
            // dh_{s-1} += dG_s Wh^T.
            let dh_prev = &mut before[(s - 1) * step..];
            matmul((b, n, g4), dh_prev, n, true, gates, (g4, 1), &wh_t, (n, 1));
        }
    }
    let d_gates = &tape.gates;
    // dWh = Σ_{s≥1} h_{s-1}^T dG_s: rows of H for steps 0..t-1 against dG for steps 1..t.
    let mut dwh = vec![0f32; n * g4];
    if t > 1 {
        let rows = (t - 1) * b;
        matmul(
            (n, g4, rows),
            &mut dwh,
            g4,
            false,
            &tape.hidden[..rows * n],
            (1, n),
            &d_gates[b * g4..],
            (g4, 1),
        );
    }
    // dWx = X^T dG over all steps.
    let mut dwx = vec![0f32; c * g4];
    matmul(
        (c, g4, t * b),
        &mut dwx,
        g4,
        false,
        &tape.x,
        (1, c),
        d_gates,
        (g4, 1),
    );
    let mut dbias = vec![0f32; g4];
    for row in d_gates.chunks_exact(g4) {
        for (acc, v) in dbias.iter_mut().zip(row) {
            *acc += v;
        }
    }
    let dx = want_dx.then(|| {
        let mut dx = vec![0f32; t * b * c];
        matmul(
            (t * b, c, g4),
            &mut dx,
            c,
            false,
            d_gates,
            (g4, 1),
            wx,
            (1, g4),
        );
        swap_batch_time(&dx, t, b, c)
    });
    Grads {
        x: dx,
        wx: dwx,
        bias: dbias,
        wh: dwh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: usize, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0) * scale)
            .collect()
    }

    struct Case {
        dims: Dims,
        x: Vec<f32>,
        wx: Vec<f32>,
        bias: Vec<f32>,
        wh: Vec<f32>,
        /// Fixed weights of the scalar loss `Σ w · h`.
        w_out: Vec<f32>,
    }

    fn case() -> Case {
        let dims = Dims {
            batch: 2,
            steps: 5,
            inputs: 3,
            hidden: 4,
        };
        let g4 = 4 * dims.hidden;
        Case {
            x: data(dims.batch * dims.steps * dims.inputs, 1, 1.0),
            wx: data(dims.inputs * g4, 2, 0.8),
            bias: data(g4, 3, 0.5),
            wh: data(dims.hidden * g4, 4, 0.8),
            w_out: data(dims.batch * dims.steps * dims.hidden, 5, 1.0),
            dims,
        }
    }

    /// The loss in f64 from the LSTM equations written out, for finite differences.
    fn reference_loss(k: &Case, x: &[f32], wx: &[f32], bias: &[f32], wh: &[f32]) -> f64 {
        let Dims {
            batch: b,
            steps: t,
            inputs: c,
            hidden: n,
        } = k.dims;
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut loss = 0.0;
        for r in 0..b {
            let (mut h, mut cell) = (vec![0f64; n], vec![0f64; n]);
            for s in 0..t {
                let pre = |gate: usize, j: usize| {
                    let col = gate * n + j;
                    let mut z = bias[col] as f64;
                    for i in 0..c {
                        z += x[(r * t + s) * c + i] as f64 * wx[i * 4 * n + col] as f64;
                    }
                    for (m, hm) in h.iter().enumerate() {
                        z += hm * wh[m * 4 * n + col] as f64;
                    }
                    z
                };
                let mut next = vec![0f64; n];
                for (j, slot) in next.iter_mut().enumerate() {
                    let (i, f, o, g) = (
                        sig(pre(0, j)),
                        sig(pre(1, j)),
                        sig(pre(2, j)),
                        pre(3, j).tanh(),
                    );
                    cell[j] = f * cell[j] + i * g;
                    *slot = o * cell[j].tanh();
                }
                h = next;
                let w = &k.w_out[(r * t + s) * n..(r * t + s + 1) * n];
                loss += h.iter().zip(w).map(|(h, w)| h * *w as f64).sum::<f64>();
            }
        }
        loss
    }

    #[test]
    fn forward_matches_the_lstm_equations() {
        let k = case();
        let (out, _) = forward(k.dims, &k.x, &k.wx, &k.bias, &k.wh);
        let got: f64 = out
            .iter()
            .zip(&k.w_out)
            .map(|(h, w)| *h as f64 * *w as f64)
            .sum();
        let want = reference_loss(&k, &k.x, &k.wx, &k.bias, &k.wh);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    /// Every gradient against central finite differences of the f64 reference, to 1e-3
    /// relative to the largest gradient.
    #[test]
    fn backward_matches_finite_differences() {
        let k = case();
        let (_, tape) = forward(k.dims, &k.x, &k.wx, &k.bias, &k.wh);
        let grads = backward(tape, &k.w_out, &k.wx, &k.wh, true);
        let eps = 1e-3f32;
        let check = |name: &str, analytic: &[f32], which: usize| {
            let scale = analytic.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            for idx in 0..analytic.len() {
                let mut inputs = [k.x.clone(), k.wx.clone(), k.bias.clone(), k.wh.clone()];
                inputs[which][idx] += eps;
                let up = reference_loss(&k, &inputs[0], &inputs[1], &inputs[2], &inputs[3]);
                inputs[which][idx] -= 2.0 * eps;
                let down = reference_loss(&k, &inputs[0], &inputs[1], &inputs[2], &inputs[3]);
                let numeric = ((up - down) / (2.0 * eps as f64)) as f32;
                assert!(
                    (numeric - analytic[idx]).abs() < 1e-3 * scale,
                    "d{name}[{idx}]: analytic {} vs numeric {numeric}",
                    analytic[idx]
                );
            }
        };
        check("x", grads.x.as_ref().unwrap(), 0);
        check("wx", &grads.wx, 1);
        check("bias", &grads.bias, 2);
        check("wh", &grads.wh, 3);
    }

    #[test]
    fn one_step_sequences_and_no_input_gradient() {
        let mut k = case();
        k.dims.steps = 1;
        k.x.truncate(k.dims.batch * k.dims.inputs);
        k.w_out.truncate(k.dims.batch * k.dims.hidden);
        let (_, tape) = forward(k.dims, &k.x, &k.wx, &k.bias, &k.wh);
        let grads = backward(tape, &k.w_out, &k.wx, &k.wh, false);
        assert!(grads.x.is_none());
        // One step: h_prev is zero, so Wh gets no gradient.
        assert!(grads.wh.iter().all(|v| *v == 0.0));
        assert!(grads.wx.iter().any(|v| *v != 0.0));
    }
}

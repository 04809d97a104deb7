//! A "same" 1-D convolution over time on time-major input (`[b, t, in]` -> `[b, t, out]`),
//! forward and backward, as matrix products on plain `f32` slices.
//!
//! Each sequence is copied once into a zero-padded buffer (`left = (k-1)/2` zero frames
//! before it, the rest after). In that buffer the `k` frames an output frame sees are one
//! contiguous run of `k·in` values, and the run of the next frame starts `in` values later:
//! the unfolded input `U [t, k·in]` is a strided view (row stride `in`) of the padded
//! sequence, never written out, and the forward pass is one product `U W` per sequence with
//! the weights rearranged to `[k·in, out]`. Backward: `dW = U^T dY` as one product over all
//! sequences (the output gradient padded the same way, so windows that straddle two
//! sequences meet zeros), `db` the column sums of `dY`, and `dX` as the convolution of the
//! padded `dY` with the flipped, transposed weights — again a strided view, so no `dU` is
//! formed and scattered back. Unfolding into a buffer instead (`k` copies of the input,
//! zero-filled first) was a third of the forward pass when profiled.
//!
//! Weights stay in `Conv1d`'s layout `[out, in, k]`, so parameters and model files are those
//! of `burn::nn::conv::Conv1d`.

use super::matmul::matmul;

/// Sizes: batch, frames, input and output channels, kernel width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub steps: usize,
    pub inputs: usize,
    pub outputs: usize,
    pub kernel: usize,
}

impl Dims {
    fn left(&self) -> usize {
        (self.kernel - 1) / 2
    }

    fn right(&self) -> usize {
        self.kernel - 1 - self.left()
    }

    fn width(&self) -> usize {
        self.kernel * self.inputs
    }

    /// Frames of one padded sequence.
    fn padded(&self) -> usize {
        self.steps + self.kernel - 1
    }
}

/// What the forward pass keeps: the padded input and the rearranged weights.
#[derive(Debug, Clone)]
pub struct Tape {
    dims: Dims,
    padded: Vec<f32>,
    weights: Vec<f32>,
}

impl Tape {
    pub fn dims(&self) -> Dims {
        self.dims
    }
}

/// Gradients with respect to the input (when asked for), the weights `[out, in, k]` and the
/// bias.
#[derive(Debug, Clone)]
pub struct Grads {
    pub x: Option<Vec<f32>>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// `[out, in, k]` -> `[k·in, out]`: row `j·in + i`, column `o` holds `weight[o, i, j]`.
fn rearrange(d: Dims, weight: &[f32]) -> Vec<f32> {
    let (c, k, out) = (d.inputs, d.kernel, d.outputs);
    let mut w = vec![0f32; k * c * out];
    for o in 0..out {
        for i in 0..c {
            for j in 0..k {
                w[(j * c + i) * out + o] = weight[(o * c + i) * k + j];
            }
        }
    }
    w
}

/// [`rearrange`]'s inverse: `[k·in, out]` -> `[out, in, k]`.
fn unrearrange(d: Dims, w: &[f32]) -> Vec<f32> {
    let (c, k, out) = (d.inputs, d.kernel, d.outputs);
    let mut weight = vec![0f32; out * c * k];
    for o in 0..out {
        for i in 0..c {
            for j in 0..k {
                weight[(o * c + i) * k + j] = w[(j * c + i) * out + o];
            }
        }
    }
    weight
}

/// `[b, t, ch]` -> `[b, t + k - 1, ch]` with `before` zero frames ahead of each sequence
/// (and `k - 1 - before` after it).
fn pad(d: Dims, x: &[f32], channels: usize, before: usize) -> Vec<f32> {
    let (t, tp) = (d.steps, d.padded());
    let mut padded = vec![0f32; d.batch * tp * channels];
    if t == 0 {
        return padded;
    }
    for (src, dst) in x
        .chunks_exact(t * channels)
        .zip(padded.chunks_exact_mut(tp * channels))
    {
        dst[before * channels..][..t * channels].copy_from_slice(src);
    }
    padded
}

/// `y [b, t, out]` of `x [b, t, in]`, `weight [out, in, k]`, `bias [out]`, and the tape.
pub fn forward(d: Dims, x: &[f32], weight: &[f32], bias: &[f32]) -> (Vec<f32>, Tape) {
    let Dims {
        batch: b,
        steps: t,
        inputs: c,
        outputs: out,
        kernel: k,
    } = d;
    assert!(
        k >= 1 && c >= 1 && out >= 1,
        "convolution sizes must be at least 1: {d:?}"
    );
    assert_eq!(x.len(), b * t * c, "convolution input size");
    assert_eq!(weight.len(), out * c * k, "convolution weight size");
    assert_eq!(bias.len(), out, "convolution bias size");
    let width = d.width();
    let padded = pad(d, x, c, d.left());
    let weights = rearrange(d, weight);
    let mut y = vec![0f32; b * t * out];
    for row in y.chunks_exact_mut(out) {
        row.copy_from_slice(bias);
    }
    if t > 0 {
        for (xs, ys) in padded
            .chunks_exact(d.padded() * c)
            .zip(y.chunks_exact_mut(t * out))
        {
            // Row s of U is xs[s·in .. s·in + k·in].
            matmul(
                (t, out, width),
                ys,
                out,
                true,
                xs,
                (c, 1),
                &weights,
                (out, 1),
            );
        }
    }
    (
        y,
        Tape {
            dims: d,
            padded,
            weights,
        },
    )
}

/// Gradients from `dy [b, t, out]`.
pub fn backward(tape: &Tape, dy: &[f32], want_dx: bool) -> Grads {
    let d = tape.dims;
    let Dims {
        batch: b,
        steps: t,
        inputs: c,
        outputs: out,
        kernel: k,
    } = d;
    let (width, tp) = (d.width(), d.padded());
    assert_eq!(dy.len(), b * t * out, "convolution output gradient size");
    let mut bias = vec![0f32; out];
    for row in dy.chunks_exact(out) {
        for (acc, v) in bias.iter_mut().zip(row) {
            *acc += v;
        }
    }
    if b * t == 0 {
        return Grads {
            x: want_dx.then(Vec::new),
            weight: vec![0f32; out * c * k],
            bias,
        };
    }
    // dY with `right` zero frames ahead of each sequence and `left` after it: frame s of
    // sequence r sits at padded row r·tp + right + s, the row the window of output s starts
    // at in the padded input plus `right`.
    let dyp = pad(d, dy, out, d.right());
    // dW_r = U^T dY, [k·in, out], over the windows starting at every padded row that has a
    // whole window: those of real frames meet their dY, the k - 1 straddling each sequence
    // boundary meet the zero rows.
    let windows = b * tp - (k - 1);
    let mut dw_r = vec![0f32; width * out];
    matmul(
        (width, out, windows),
        &mut dw_r,
        out,
        false,
        &tape.padded,
        (1, c),
        &dyp[d.right() * out..],
        (out, 1),
    );
    let weight = unrearrange(d, &dw_r);
    let x = want_dx.then(|| {
        // dx[s] = Σ_j' dyp[s + j'] W_{k-1-j'}^T: a window of k padded dY rows times the
        // flipped, transposed weights [k·out, in].
        let mut flipped = vec![0f32; k * out * c];
        for j in 0..k {
            for i in 0..c {
                for o in 0..out {
                    flipped[((k - 1 - j) * out + o) * c + i] = tape.weights[(j * c + i) * out + o];
                }
            }
        }
        let mut dx = vec![0f32; b * t * c];
        for (gs, xs) in dyp.chunks_exact(tp * out).zip(dx.chunks_exact_mut(t * c)) {
            matmul(
                (t, c, k * out),
                xs,
                c,
                false,
                gs,
                (out, 1),
                &flipped,
                (c, 1),
            );
        }
        dx
    });
    Grads { x, weight, bias }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 997) as f32 / 498.5 - 1.0)
            .collect()
    }

    /// The convolution written out: y[r, s, o] = b[o] + Σ_{i,j} w[o, i, j] x[r, s + j - left, i].
    fn reference(d: Dims, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f64> {
        let left = d.left() as isize;
        let mut y = vec![0f64; d.batch * d.steps * d.outputs];
        for r in 0..d.batch {
            for s in 0..d.steps {
                for o in 0..d.outputs {
                    let mut acc = bias[o] as f64;
                    for i in 0..d.inputs {
                        for j in 0..d.kernel {
                            let f = s as isize + j as isize - left;
                            if f >= 0 && (f as usize) < d.steps {
                                acc += w[(o * d.inputs + i) * d.kernel + j] as f64
                                    * x[(r * d.steps + f as usize) * d.inputs + i] as f64;
                            }
                        }
                    }
                    y[(r * d.steps + s) * d.outputs + o] = acc;
                }
            }
        }
        y
    }

    #[test]
    fn forward_and_backward_match_the_written_out_convolution() {
        for (kernel, steps) in [(5, 7), (3, 1), (4, 6), (1, 3), (3, 0)] {
            let d = Dims {
                batch: 2,
                steps,
                inputs: 3,
                outputs: 4,
                kernel,
            };
            let x = data(d.batch * d.steps * d.inputs, 1);
            let w = data(d.outputs * d.inputs * d.kernel, 2);
            let bias = data(d.outputs, 3);
            let g = data(d.batch * d.steps * d.outputs, 4);
            let (y, tape) = forward(d, &x, &w, &bias);
            let want = reference(d, &x, &w, &bias);
            for (a, b) in y.iter().zip(&want) {
                assert!((*a as f64 - b).abs() < 1e-5, "k {kernel}: {a} vs {b}");
            }
            // The output is linear in x, w and b, so the loss Σ g·y has exact gradients:
            // compare with the reference's response to unit changes.
            let grads = backward(&tape, &g, true);
            let loss = |x: &[f32], w: &[f32], bias: &[f32]| -> f64 {
                reference(d, x, w, bias)
                    .iter()
                    .zip(&g)
                    .map(|(y, g)| y * *g as f64)
                    .sum()
            };
            let base = loss(&x, &w, &bias);
            let check = |name: &str, analytic: &[f32], which: usize| {
                for idx in 0..analytic.len() {
                    let mut v = [x.clone(), w.clone(), bias.clone()];
                    v[which][idx] += 1.0;
                    let numeric = loss(&v[0], &v[1], &v[2]) - base;
                    assert!(
                        (numeric - analytic[idx] as f64).abs() < 1e-4,
                        "k {kernel} d{name}[{idx}]: {} vs {numeric}",
                        analytic[idx]
                    );
                }
            };
            check("x", grads.x.as_ref().unwrap(), 0);
            check("w", &grads.weight, 1);
            check("b", &grads.bias, 2);
        }
    }
}

//! A "same" 1-D convolution over time on time-major input (`[b, t, in]` -> `[b, t, out]`),
//! forward and backward, as matrix products on plain `f32` slices.
//!
//! Forward: the `k` shifted copies of each frame's neighbourhood are laid side by side
//! (`U [b·t, k·in]`, zeros beyond the ends: left padding `(k-1)/2`, the rest on the right)
//! and multiplied by the weights rearranged to `[k·in, out]`, the bias written into the
//! output first. Backward: `dW = U^T dY` (one product), `db` the column sums of `dY`, and
//! `dX` by scattering `dY W^T` back over the shifts. Composed of framework operations the
//! same convolution is a padding concatenation, `k` slices, a concatenation, a permutation
//! and a product, each with its own copy forwards and backwards (profiled: a quarter of a
//! CNN step was such copies).
//!
//! Weights stay in `Conv1d`'s layout `[out, in, k]`, so parameters and model files are those
//! of `burn::nn::conv::Conv1d`.

use super::packed::matmul;

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

    fn width(&self) -> usize {
        self.kernel * self.inputs
    }
}

/// What the forward pass keeps: the unfolded input and the rearranged weights.
#[derive(Debug, Clone)]
pub struct Tape {
    dims: Dims,
    unfolded: Vec<f32>,
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
    let (left, width) = (d.left(), d.width());
    let mut unfolded = vec![0f32; b * t * width];
    for r in 0..b {
        for s in 0..t {
            let row = &mut unfolded[(r * t + s) * width..][..width];
            for j in 0..k {
                // Frame s + j - left, if inside the sequence.
                let Some(src) = (s + j).checked_sub(left).filter(|&f| f < t) else {
                    continue;
                };
                row[j * c..(j + 1) * c].copy_from_slice(&x[(r * t + src) * c..][..c]);
            }
        }
    }
    let weights = rearrange(d, weight);
    let mut y = vec![0f32; b * t * out];
    for row in y.chunks_exact_mut(out.max(1)) {
        row.copy_from_slice(bias);
    }
    matmul(
        (b * t, out, width),
        &mut y,
        out,
        true,
        &unfolded,
        (width, 1),
        &weights,
        (out, 1),
    );
    (
        y,
        Tape {
            dims: d,
            unfolded,
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
    let (left, width) = (d.left(), d.width());
    let rows = b * t;
    assert_eq!(dy.len(), rows * out, "convolution output gradient size");
    // dW_r = U^T dY, [k·in, out], then back to [out, in, k].
    let mut dw_r = vec![0f32; width * out];
    matmul(
        (width, out, rows),
        &mut dw_r,
        out,
        false,
        &tape.unfolded,
        (1, width),
        dy,
        (out, 1),
    );
    let mut weight = vec![0f32; out * c * k];
    for o in 0..out {
        for i in 0..c {
            for j in 0..k {
                weight[(o * c + i) * k + j] = dw_r[(j * c + i) * out + o];
            }
        }
    }
    let mut bias = vec![0f32; out];
    for row in dy.chunks_exact(out.max(1)) {
        for (acc, v) in bias.iter_mut().zip(row) {
            *acc += v;
        }
    }
    let x = want_dx.then(|| {
        // dU = dY W_r^T, [b·t, k·in], then each shift's block back onto its frame.
        let mut du = vec![0f32; rows * width];
        matmul(
            (rows, width, out),
            &mut du,
            width,
            false,
            dy,
            (out, 1),
            &tape.weights,
            (1, out),
        );
        let mut dx = vec![0f32; b * t * c];
        for r in 0..b {
            for s in 0..t {
                let row = &du[(r * t + s) * width..][..width];
                for j in 0..k {
                    let Some(dst) = (s + j).checked_sub(left).filter(|&f| f < t) else {
                        continue;
                    };
                    let target = &mut dx[(r * t + dst) * c..][..c];
                    for (acc, v) in target.iter_mut().zip(&row[j * c..(j + 1) * c]) {
                        *acc += v;
                    }
                }
            }
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
        for (kernel, steps) in [(5, 7), (3, 1), (4, 6), (1, 3)] {
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

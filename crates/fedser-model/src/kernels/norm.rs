//! Batch normalisation in training mode over channels-last rows (`[n, c]`: the CNN's
//! time-major frames, every frame of the batch a row), forward and backward, in passes over
//! contiguous rows.
//!
//! Same function as Burn's `batch_norm_train` (batch mean, biased variance, `epsilon` inside
//! the square root), which on flex transposes the input to channels-first for each reduction,
//! forwards and backwards (profiled: the largest share of a CNN step's copies).
//! Column sums accumulate in `f64` over `f32` partial sums of 64 rows.

/// The normalised output and what the backward pass and the running statistics need.
#[derive(Debug, Clone)]
pub struct Forward {
    /// `[n, c]`.
    pub output: Vec<f32>,
    /// Batch mean per channel.
    pub mean: Vec<f32>,
    /// Biased batch variance per channel.
    pub variance: Vec<f32>,
    /// Kept for the backward pass.
    pub tape: Tape,
}

#[derive(Debug, Clone)]
pub struct Tape {
    channels: usize,
    rows: usize,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
}

impl Tape {
    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
}

use super::written;

/// Gradients for the input `[n, c]`, `gamma` and `beta`.
#[derive(Debug, Clone)]
pub struct Grads {
    pub x: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// `K` per-column sums over the rows, in `f64`: `add(row, partials)` adds the row's terms to
/// `f32` partial sums, which are folded into the `f64` totals every 64 rows (so the inner
/// loops vectorise and long batches keep their precision).
fn column_sums<const K: usize>(
    rows: usize,
    c: usize,
    mut add: impl FnMut(usize, &mut [Vec<f32>; K]),
) -> [Vec<f64>; K] {
    let mut totals: [Vec<f64>; K] = std::array::from_fn(|_| vec![0f64; c]);
    let mut part: [Vec<f32>; K] = std::array::from_fn(|_| vec![0f32; c]);
    let mut r = 0;
    while r < rows {
        for p in part.iter_mut() {
            p.fill(0.0);
        }
        for row in r..(r + 64).min(rows) {
            add(row, &mut part);
        }
        for (total, p) in totals.iter_mut().zip(&part) {
            for (t, v) in total.iter_mut().zip(p) {
                *t += *v as f64;
            }
        }
        r += 64;
    }
    totals
}

/// `y = (x - mean) / sqrt(var + epsilon) · gamma + beta` with the batch's statistics.
pub fn forward(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f64) -> Forward {
    let c = gamma.len();
    assert!(c > 0, "batch norm needs at least one channel");
    assert_eq!(beta.len(), c, "batch norm beta size");
    assert_eq!(x.len() % c, 0, "batch norm input is not [n, {c}]");
    let rows = x.len() / c;
    let n = rows.max(1) as f64;
    let [sums] = column_sums(rows, c, |r, [p]| {
        for (p, v) in p.iter_mut().zip(&x[r * c..(r + 1) * c]) {
            *p += v;
        }
    });
    let mean: Vec<f32> = sums.iter().map(|s| (s / n) as f32).collect();
    let [sq] = column_sums(rows, c, |r, [p]| {
        for ((p, v), m) in p.iter_mut().zip(&x[r * c..(r + 1) * c]).zip(&mean) {
            *p += (v - m) * (v - m);
        }
    });
    let variance: Vec<f32> = sq.iter().map(|s| (s / n) as f32).collect();
    let inv_std: Vec<f32> = sq
        .iter()
        .map(|s| (1.0 / (s / n + epsilon).sqrt()) as f32)
        .collect();
    // SAFETY: one value is written for every element, row by row.
    let output = unsafe {
        written(x.len(), |out| {
            for (xr, yr) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
                for (((v, y), (m, s)), (g, b)) in xr
                    .iter()
                    .zip(yr.iter_mut())
                    .zip(mean.iter().zip(&inv_std))
                    .zip(gamma.iter().zip(beta))
                {
                    y.write((v - m) * s * g + b);
                }
            }
        })
    };
    Forward {
        output,
        mean: mean.clone(),
        variance,
        tape: Tape {
            channels: c,
            rows,
            mean: mean.clone(),
            inv_std,
            gamma: gamma.to_vec(),
        },
    }
}

/// `dx = gamma · inv_std · (dy - mean(dy) - x̂ · mean(dy · x̂))`, `dgamma = Σ dy · x̂`,
/// `dbeta = Σ dy`, with `x̂ = (x - mean) · inv_std` recomputed from the forward input `x`.
pub fn backward(tape: &Tape, x: &[f32], dy: &[f32]) -> Grads {
    let (c, rows) = (tape.channels, tape.rows);
    assert_eq!(dy.len(), rows * c, "batch norm output gradient size");
    assert_eq!(x.len(), rows * c, "batch norm input size");
    let n = rows.max(1) as f64;
    let (mean, inv_std) = (&tape.mean, &tape.inv_std);
    // Σ dy and Σ dy · x̂ in one pass.
    let [beta, gamma] = column_sums(rows, c, |r, [pb, pg]| {
        let span = r * c..(r + 1) * c;
        for ((((b, g), d), v), (m, s)) in pb
            .iter_mut()
            .zip(pg.iter_mut())
            .zip(&dy[span.clone()])
            .zip(&x[span])
            .zip(mean.iter().zip(inv_std))
        {
            *b += d;
            *g += d * ((v - m) * s);
        }
    });
    let mean_dy: Vec<f32> = beta.iter().map(|s| (s / n) as f32).collect();
    let mean_dy_xhat: Vec<f32> = gamma.iter().map(|s| (s / n) as f32).collect();
    let scale: Vec<f32> = tape.gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
    // SAFETY: one value is written for every element, row by row.
    let dx = unsafe {
        written(dy.len(), |out| {
            for ((dr, gr), xr) in out
                .chunks_exact_mut(c)
                .zip(dy.chunks_exact(c))
                .zip(x.chunks_exact(c))
            {
                for ((((d, g), v), (m, s)), ((sc, md), mx)) in dr
                    .iter_mut()
                    .zip(gr)
                    .zip(xr)
                    .zip(mean.iter().zip(inv_std))
                    .zip(scale.iter().zip(&mean_dy).zip(&mean_dy_xhat))
                {
                    d.write(sc * (g - md - (v - m) * s * mx));
                }
            }
        })
    };
    Grads {
        x: dx,
        gamma: gamma.iter().map(|v| *v as f32).collect(),
        beta: beta.iter().map(|v| *v as f32).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loss Σ w · y in f64 from the definition, for finite differences.
    fn loss(x: &[f32], gamma: &[f32], beta: &[f32], w: &[f32], eps: f64) -> f64 {
        let c = gamma.len();
        let n = x.len() / c;
        let mut total = 0.0;
        for j in 0..c {
            let col: Vec<f64> = (0..n).map(|r| x[r * c + j] as f64).collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            for (r, v) in col.iter().enumerate() {
                let y = (v - mean) / (var + eps).sqrt() * gamma[j] as f64 + beta[j] as f64;
                total += y * w[r * c + j] as f64;
            }
        }
        total
    }

    #[test]
    fn forward_and_backward_match_the_definition() {
        let (n, c, eps) = (7, 3, 1e-5);
        let x: Vec<f32> = (0..n * c)
            .map(|i| (i as f32 * 0.77).sin() * 2.0 + 0.5)
            .collect();
        let gamma = vec![1.5, -0.5, 0.8];
        let beta = vec![0.1, 0.2, -0.3];
        let w: Vec<f32> = (0..n * c).map(|i| (i as f32 * 0.31).cos()).collect();
        let f = forward(&x, &gamma, &beta, eps);
        let got: f64 = f.output.iter().zip(&w).map(|(y, w)| (*y * *w) as f64).sum();
        assert!((got - loss(&x, &gamma, &beta, &w, eps)).abs() < 1e-4);
        // Each output column has mean beta.
        for (j, b) in beta.iter().enumerate() {
            let m: f32 = (0..n).map(|r| f.output[r * c + j]).sum::<f32>() / n as f32;
            assert!((m - b).abs() < 1e-5);
        }
        let g = backward(&f.tape, &x, &w);
        let h = 1e-3f32;
        let check = |name: &str, analytic: &[f32], which: usize| {
            for i in 0..analytic.len() {
                let mut v = [x.clone(), gamma.clone(), beta.clone()];
                v[which][i] += h;
                let up = loss(&v[0], &v[1], &v[2], &w, eps);
                v[which][i] -= 2.0 * h;
                let down = loss(&v[0], &v[1], &v[2], &w, eps);
                let numeric = (up - down) / (2.0 * h as f64);
                assert!(
                    (numeric - analytic[i] as f64).abs() < 2e-3,
                    "d{name}[{i}]: {} vs {numeric}",
                    analytic[i]
                );
            }
        };
        check("x", &g.x, 0);
        check("gamma", &g.gamma, 1);
        check("beta", &g.beta, 2);
    }
}

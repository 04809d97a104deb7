//! ReLU followed by max-pooling by 2 over time, on time-major input (`[b, t, c]` ->
//! `[b, t / 2, c]`, an odd last frame dropped), in one pass: `y = max(0, x_{2s}, x_{2s+1})`.
//! The gradient goes to the larger of the pair (the earlier on a tie) where it is positive.
//! Composed of framework operations this is a ReLU, two strided slices and an elementwise
//! maximum whose gradient runs through two masked selections (a twelfth of a CNN step,
//! profiled).

use super::written;

/// Sizes: batch, frames in, channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub steps: usize,
    pub channels: usize,
}

impl Dims {
    pub fn pooled(&self) -> usize {
        self.steps / 2
    }
}

/// The pooled output `[b, t/2, c]`.
pub fn forward(d: Dims, x: &[f32]) -> Vec<f32> {
    let (t, c, half) = (d.steps, d.channels, d.pooled());
    assert_eq!(x.len(), d.batch * t * c, "pooling input size");
    // SAFETY: every output frame of every sequence is written.
    unsafe {
        written(d.batch * half * c, |y| {
            for r in 0..d.batch {
                for s in 0..half {
                    let even = &x[(r * t + 2 * s) * c..][..c];
                    let odd = &x[(r * t + 2 * s + 1) * c..][..c];
                    let out = &mut y[(r * half + s) * c..][..c];
                    for ((o, a), b) in out.iter_mut().zip(even).zip(odd) {
                        o.write(a.max(*b).max(0.0));
                    }
                }
            }
        })
    }
}

/// The input gradient `[b, t, c]` from the output gradient `dy [b, t/2, c]`.
pub fn backward(d: Dims, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (t, c, half) = (d.steps, d.channels, d.pooled());
    assert_eq!(x.len(), d.batch * t * c, "pooling input size");
    assert_eq!(dy.len(), d.batch * half * c, "pooling output gradient size");
    // SAFETY: both frames of every pair are written, then the dropped odd frame.
    unsafe {
        written(x.len(), |dx| {
            for r in 0..d.batch {
                for s in 0..half {
                    let base = (r * t + 2 * s) * c;
                    let (even, odd) = x[base..base + 2 * c].split_at(c);
                    let (d_even, d_odd) = dx[base..base + 2 * c].split_at_mut(c);
                    let g = &dy[(r * half + s) * c..][..c];
                    // The even frame takes ties; nothing flows where the maximum was cut by the
                    // ReLU. Written without branches (the winner is data: unpredictable) so it
                    // vectorises.
                    for ((((de, dd), a), b), g) in
                        d_even.iter_mut().zip(d_odd).zip(even).zip(odd).zip(g)
                    {
                        let even_wins = (*a >= *b) & (*a > 0.0);
                        let odd_wins = (*b > *a) & (*b > 0.0);
                        de.write(*g * f32::from(u8::from(even_wins)));
                        dd.write(*g * f32::from(u8::from(odd_wins)));
                    }
                }
                // An odd last frame was dropped: no gradient.
                for v in &mut dx[(r * t + 2 * half) * c..(r + 1) * t * c] {
                    v.write(0.0);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_pairs_after_relu_and_routes_the_gradient_to_the_winner() {
        let d = Dims {
            batch: 1,
            steps: 5,
            channels: 2,
        };
        // frames (channel 0, channel 1): (1, -1) (3, -2) | (-4, 2) (-5, 2) | (9, 9) dropped
        let x = [1.0, -1.0, 3.0, -2.0, -4.0, 2.0, -5.0, 2.0, 9.0, 9.0];
        assert_eq!(forward(d, &x), vec![3.0, 0.0, 0.0, 2.0]);
        let dx = backward(d, &x, &[10.0, 20.0, 30.0, 40.0]);
        // Pair 1: channel 0 won by the odd frame, channel 1 negative (no gradient).
        // Pair 2: channel 0 negative, channel 1 a tie (the even frame takes it).
        assert_eq!(dx, vec![0.0, 0.0, 10.0, 0.0, 0.0, 40.0, 0.0, 0.0, 0.0, 0.0]);
    }
}

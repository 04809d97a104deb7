//! The CNN's utterance summary in one pass: ReLU, then the mean and the maximum over the
//! valid frames of time-major input (`h [b, t, c]`, `mask [b, t]` of 0/1 -> `[b, 2c]`, the
//! means first). Composed of framework operations this is a ReLU, a masked product and
//! sum, a masked offset, a maximum with indices, a concatenation and the gradient of each
//! (a twentieth of a CNN step, profiled).
//!
//! It computes exactly the composition in `arch`: the mean divides by the number of valid
//! frames (at least 1); the maximum is taken over `relu(h) + (mask - 1)·10⁴`, so padding
//! never wins while any frame is valid, and the gradient goes to the first frame holding
//! the maximum.

/// Sizes: batch, frames, channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub steps: usize,
    pub channels: usize,
}

/// Offset that keeps padded frames out of the maximum (as `masked_max_time`).
const PAD_OFFSET: f32 = 1e4;

/// What the backward pass needs besides the input: the mask, `1 / count` per sequence and
/// the frame of each maximum.
#[derive(Debug, Clone)]
pub struct Tape {
    dims: Dims,
    mask: Vec<f32>,
    inv_count: Vec<f32>,
    argmax: Vec<u32>,
}

impl Tape {
    pub fn dims(&self) -> Dims {
        self.dims
    }
}

/// `[mean | max]` per sequence, `[b, 2c]`, and the tape.
pub fn forward(d: Dims, h: &[f32], mask: &[f32]) -> (Vec<f32>, Tape) {
    let Dims {
        batch: b,
        steps: t,
        channels: c,
    } = d;
    assert_eq!(h.len(), b * t * c, "summary input size");
    assert_eq!(mask.len(), b * t, "summary mask size");
    let mut y = vec![0f32; b * 2 * c];
    let mut inv_count = vec![0f32; b];
    let mut argmax = vec![0u32; b * c];
    for r in 0..b {
        let m = &mask[r * t..][..t];
        let inv = 1.0 / m.iter().sum::<f32>().max(1.0);
        inv_count[r] = inv;
        let (mean, max) = y[r * 2 * c..][..2 * c].split_at_mut(c);
        let arg = &mut argmax[r * c..][..c];
        max.fill(f32::NEG_INFINITY);
        for (s, &ms) in m.iter().enumerate() {
            let offset = (ms - 1.0) * PAD_OFFSET;
            let row = &h[(r * t + s) * c..][..c];
            for (((acc, best), at), &v) in mean
                .iter_mut()
                .zip(max.iter_mut())
                .zip(arg.iter_mut())
                .zip(row)
            {
                let v = v.max(0.0);
                *acc += v * ms;
                let candidate = v + offset;
                let wins = candidate > *best;
                *best = if wins { candidate } else { *best };
                *at = if wins { s as u32 } else { *at };
            }
        }
        for acc in mean.iter_mut() {
            *acc *= inv;
        }
    }
    let tape = Tape {
        dims: d,
        mask: mask.to_vec(),
        inv_count,
        argmax,
    };
    (y, tape)
}

/// The input gradient `[b, t, c]` from `dy [b, 2c]`, given the forward input `h`.
pub fn backward(tape: &Tape, h: &[f32], dy: &[f32]) -> Vec<f32> {
    let Dims {
        batch: b,
        steps: t,
        channels: c,
    } = tape.dims;
    assert_eq!(h.len(), b * t * c, "summary input size");
    assert_eq!(dy.len(), b * 2 * c, "summary output gradient size");
    let mut dh = vec![0f32; h.len()];
    for r in 0..b {
        let (d_mean, d_max) = dy[r * 2 * c..][..2 * c].split_at(c);
        let arg = &tape.argmax[r * c..][..c];
        for s in 0..t {
            let w = tape.mask[r * t + s] * tape.inv_count[r];
            let base = (r * t + s) * c;
            for ((((g, &v), &dm), &dx), &at) in dh[base..base + c]
                .iter_mut()
                .zip(&h[base..base + c])
                .zip(d_mean)
                .zip(d_max)
                .zip(arg)
            {
                // Without branches (whether a frame is positive or the maximum is data:
                // unpredictable), so it vectorises.
                let from_max = f32::from(u8::from(at == s as u32)) * dx;
                *g = f32::from(u8::from(v > 0.0)) * (w * dm + from_max);
            }
        }
    }
    dh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_and_maxima_of_the_valid_frames_after_relu() {
        let d = Dims {
            batch: 2,
            steps: 3,
            channels: 2,
        };
        // Sequence 0: three valid frames; sequence 1: two, then padding holding a large value.
        let h = [
            1.0, -2.0, 3.0, -1.0, -5.0, -4.0, 2.0, 1.0, 4.0, -3.0, 50.0, 60.0,
        ];
        let mask = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        let (y, tape) = forward(d, &h, &mask);
        assert_eq!(
            y,
            vec![4.0 / 3.0, 0.0, 3.0, 0.0, 3.0, 0.5, 4.0, 1.0],
            "[mean | max] per sequence"
        );
        let dh = backward(&tape, &h, &[3.0, 6.0, 10.0, 20.0, 2.0, 4.0, 30.0, 40.0]);
        // Sequence 0, channel 0: mean share 1 on positive frames, the max on frame 1.
        // Channel 1 is never positive: no gradient. Sequence 1: shares of 1/2 on the valid
        // positive frames, nothing on the padding.
        assert_eq!(
            dh,
            vec![
                1.0, 0.0, 11.0, 0.0, 0.0, 0.0, 1.0, 42.0, 31.0, 0.0, 0.0, 0.0
            ]
        );
    }
}

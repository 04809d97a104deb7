//! From feature matrices to model inputs: padded `[batch, frames, coeffs]` tensors with a
//! float mask and the true lengths, and utterance-level statistics for the DNN.

use burn::prelude::*;
use fedser_core::FeatureMatrix;

use crate::ModelSpec;
use rand::RngExt;
use rand::rngs::StdRng;

/// One labelled utterance.
#[derive(Debug, Clone)]
pub struct Example {
    pub features: FeatureMatrix,
    /// Class index (`Emotion::index`).
    pub label: usize,
}

/// Tensors for one batch. What the model does not read ([`crate::Arch::reads_frames`],
/// [`crate::Arch::reads_stats`]) is not computed: its tensors are empty (`[batch, 0, ·]`).
pub struct Input {
    /// `[batch, frames, coeffs]`, zero-padded.
    pub x: Tensor<3>,
    /// `[batch, frames]`, 1 for real frames, 0 for padding.
    pub mask: Tensor<2>,
    /// True frame counts.
    pub lengths: Vec<usize>,
    /// `[batch, 4 × coeffs]`: per-coefficient mean, standard deviation, and the mean and
    /// standard deviation of the first difference (deltas), over the real frames.
    pub stats: Tensor<2>,
}

/// Number of statistics per coefficient in [`Input::stats`].
pub const STATS_PER_COEFF: usize = 4;

/// Every batch is padded to at least this many frames: the CNN halves the time axis twice,
/// and a clip shorter than 80 ms would otherwise leave it nothing to pool over.
pub const MIN_FRAMES: usize = 4;

/// Builds the input for `examples`: each cropped to at most `max_frames` (a random window
/// when `crop_rng` is given — augmentation — else the centre) and padded to the longest.
pub fn input(
    examples: &[&Example],
    spec: &ModelSpec,
    crop_rng: Option<&mut StdRng>,
    device: &Device,
) -> Input {
    input_augmented(examples, spec, crop_rng, None, device)
}

/// Feature-space augmentation (SpecAugment-style, on normalised MFCCs): one masked time span
/// of up to `time_mask` of the frames, one masked coefficient, and noise of `noise` standard
/// deviation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    pub time_mask: f64,
    pub noise: f32,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            time_mask: 0.15,
            noise: 0.1,
        }
    }
}

fn augment(frames: &mut [f32], coeffs: usize, aug: Augment, rng: &mut StdRng) {
    let n = frames.len() / coeffs.max(1);
    if n == 0 {
        return;
    }
    let span = ((n as f64 * aug.time_mask * rng.random::<f64>()) as usize).min(n - 1);
    let start = rng.random_range(0..=n - span);
    frames[start * coeffs..(start + span) * coeffs]
        .iter_mut()
        .for_each(|v| *v = 0.0);
    let c = rng.random_range(0..coeffs);
    for t in 0..n {
        frames[t * coeffs + c] = 0.0;
    }
    for v in frames.iter_mut() {
        // Sum of three uniforms, scaled to unit variance: cheap and near-Gaussian.
        let g: f32 = (0..3).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 2.0;
        *v += aug.noise * g;
    }
}

/// [`input`] with optional augmentation of every example (training only).
pub fn input_augmented(
    examples: &[&Example],
    spec: &ModelSpec,
    crop_rng: Option<&mut StdRng>,
    aug: Option<(Augment, &mut StdRng)>,
    device: &Device,
) -> Input {
    let max_frames = spec.max_frames;
    let (reads_frames, reads_stats) = (spec.arch.reads_frames(), spec.arch.reads_stats());
    let coeffs = examples.first().map_or(13, |e| e.features.coeffs());
    let mut rng = crop_rng;
    let spans: Vec<(usize, usize)> = examples
        .iter()
        .map(|e| {
            let n = e.features.frames();
            let len = n.min(max_frames).max(1);
            let spare = n.saturating_sub(len);
            let start = match rng.as_deref_mut() {
                Some(r) if spare > 0 => r.random_range(0..=spare),
                _ => spare / 2,
            };
            (start, len)
        })
        .collect();
    let frames = if reads_frames {
        spans.iter().map(|s| s.1).max().unwrap_or(1).max(MIN_FRAMES)
    } else {
        0
    };
    let b = examples.len();
    let mut x = vec![0.0f32; b * frames * coeffs];
    let mut mask = vec![0.0f32; b * frames];
    let mut stats = Vec::with_capacity(b * STATS_PER_COEFF * coeffs);
    let mut lengths = Vec::with_capacity(b);
    let mut aug = aug;
    let mut scratch = Vec::new();
    for (i, (e, &(start, len))) in examples.iter().zip(&spans).enumerate() {
        let avail = e.features.frames().saturating_sub(start).min(len);
        let mut src = &e.features.as_slice()[start * coeffs..(start + avail) * coeffs];
        if let Some((a, r)) = aug.as_mut() {
            scratch.clear();
            scratch.extend_from_slice(src);
            augment(&mut scratch, coeffs, *a, r);
            src = &scratch;
        }
        if reads_frames {
            x[i * frames * coeffs..i * frames * coeffs + src.len()].copy_from_slice(src);
            mask[i * frames..i * frames + avail]
                .iter_mut()
                .for_each(|m| *m = 1.0);
        }
        lengths.push(avail.max(1));
        if reads_stats {
            stats.extend(utterance_stats(src, coeffs));
        }
    }
    let per_utterance = if reads_stats {
        STATS_PER_COEFF * coeffs
    } else {
        0
    };
    Input {
        x: Tensor::<3>::from_data(TensorData::new(x, [b, frames, coeffs]), device),
        mask: Tensor::<2>::from_data(TensorData::new(mask, [b, frames]), device),
        lengths,
        stats: Tensor::<2>::from_data(TensorData::new(stats, [b, per_utterance]), device),
    }
}

/// Mean and standard deviation of each coefficient and of its first difference. One pass
/// over the frames, every coefficient's sums side by side (the sums run in frame order, as a
/// per-coefficient loop would).
pub fn utterance_stats(frames: &[f32], coeffs: usize) -> Vec<f32> {
    if coeffs == 0 {
        return Vec::new();
    }
    let n = frames.len() / coeffs;
    let (mut s, mut q) = (vec![0f64; coeffs], vec![0f64; coeffs]);
    let (mut ds, mut dq) = (vec![0f64; coeffs], vec![0f64; coeffs]);
    let mut rows = frames.chunks_exact(coeffs).take(n);
    if let Some(first) = rows.next() {
        for ((s, q), v) in s.iter_mut().zip(q.iter_mut()).zip(first) {
            let v = *v as f64;
            *s += v;
            *q += v * v;
        }
        let mut prev = first;
        for row in rows {
            for (j, (v, p)) in row.iter().zip(prev).enumerate() {
                let d = (v - p) as f64;
                let v = *v as f64;
                s[j] += v;
                q[j] += v * v;
                ds[j] += d;
                dq[j] += d * d;
            }
            prev = row;
        }
    }
    let moments = |sum: f64, squares: f64, k: usize| -> (f32, f32) {
        if k == 0 {
            return (0.0, 0.0);
        }
        let mean = sum / k as f64;
        (
            mean as f32,
            (squares / k as f64 - mean * mean).max(0.0).sqrt() as f32,
        )
    };
    let mut out = Vec::with_capacity(STATS_PER_COEFF * coeffs);
    for j in 0..coeffs {
        let (m, sd) = moments(s[j], q[j], n);
        let (dm, dsd) = moments(ds[j], dq[j], n.saturating_sub(1));
        out.extend([m, sd, dm, dsd]);
    }
    out
}

/// Labels as an integer tensor.
pub fn labels(examples: &[&Example], device: &Device) -> Tensor<1, Int> {
    let y: Vec<i64> = examples.iter().map(|e| e.label as i64).collect();
    let n = y.len();
    Tensor::<1, Int>::from_data(TensorData::new(y, [n]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch holds what its model reads: the DNN gets statistics and no frame tensor, the
    /// frame models padded frames, mask and lengths and no statistics; the statistics equal
    /// those of the frames either way.
    #[test]
    fn batches_hold_what_the_model_reads() {
        let device = Device::flex();
        let make = |frames: usize, seed: usize| Example {
            features: FeatureMatrix::new(
                frames,
                3,
                (0..frames * 3)
                    .map(|i| ((i * 7 + seed) % 11) as f32 - 5.0)
                    .collect(),
            )
            .unwrap(),
            label: 0,
        };
        let (a, b) = (make(6, 1), make(9, 2));
        let examples = [&a, &b];
        let spec = |arch| ModelSpec {
            n_features: 3,
            ..ModelSpec::new(arch)
        };
        let dnn = input(&examples, &spec(crate::Arch::Dnn), None, &device);
        assert_eq!(dnn.x.dims(), [2, 0, 3]);
        assert_eq!(dnn.stats.dims(), [2, STATS_PER_COEFF * 3]);
        let stats = dnn.stats.into_data().try_into_vec::<f32>().unwrap();
        let mut want = utterance_stats(a.features.as_slice(), 3);
        want.extend(utterance_stats(b.features.as_slice(), 3));
        assert_eq!(stats, want);
        let cnn = input(&examples, &spec(crate::Arch::Cnn), None, &device);
        assert_eq!(cnn.x.dims(), [2, 9, 3]);
        assert_eq!(cnn.stats.dims(), [2, 0]);
        assert_eq!(cnn.lengths, vec![6, 9]);
        let mask = cnn.mask.into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(mask.iter().sum::<f32>(), 15.0);
    }

    /// Against the statistics written out per coefficient.
    #[test]
    fn utterance_stats_are_means_and_deviations_of_values_and_differences() {
        let (n, c) = (9, 3);
        let frames: Vec<f32> = (0..n * c)
            .map(|i| ((i * 37) % 17) as f32 * 0.5 - 3.0)
            .collect();
        let stats = utterance_stats(&frames, c);
        assert_eq!(stats.len(), STATS_PER_COEFF * c);
        let moments = |v: &[f64]| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
            (mean, var.sqrt())
        };
        for j in 0..c {
            let col: Vec<f64> = (0..n).map(|t| frames[t * c + j] as f64).collect();
            let diff: Vec<f64> = col.windows(2).map(|w| w[1] - w[0]).collect();
            let ((m, s), (dm, ds)) = (moments(&col), moments(&diff));
            for (got, want) in stats[4 * j..4 * j + 4].iter().zip([m, s, dm, ds]) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "coefficient {j}: {got} vs {want}"
                );
            }
        }
        // One frame: no differences, zero spread; no frames: zeros.
        assert_eq!(
            utterance_stats(&[2.0, 4.0], 2),
            vec![2.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(utterance_stats(&[], 2), vec![0.0; 8]);
    }
}

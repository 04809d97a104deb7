//! Feature post-processing for the models: per-group z-score normalisation and fixed-length
//! batches with masks.

use fedser_core::FeatureMatrix;

/// Per-coefficient mean and standard deviation over all frames of some matrices.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normaliser {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Smallest standard deviation divided by (a constant coefficient stays finite).
const MIN_STD: f64 = 1e-5;

impl Normaliser {
    /// Statistics over every frame of `matrices` (all must have the same width).
    /// `None` when there are no frames.
    pub fn fit<'a>(matrices: impl IntoIterator<Item = &'a FeatureMatrix>) -> Option<Self> {
        let mut sum: Vec<f64> = Vec::new();
        let mut sq: Vec<f64> = Vec::new();
        let mut n = 0usize;
        for m in matrices {
            if sum.is_empty() {
                sum = vec![0.0; m.coeffs()];
                sq = vec![0.0; m.coeffs()];
            }
            assert_eq!(
                m.coeffs(),
                sum.len(),
                "feature matrices of different widths"
            );
            for row in m.rows() {
                for (j, &v) in row.iter().enumerate() {
                    sum[j] += v as f64;
                    sq[j] += (v as f64) * (v as f64);
                }
            }
            n += m.frames();
        }
        if n == 0 {
            return None;
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / n as f64 - m * m).max(0.0).sqrt().max(MIN_STD)) as f32)
            .collect();
        Some(Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        })
    }

    /// z-scores `m` in place.
    pub fn apply(&self, m: &mut FeatureMatrix) {
        let width = m.coeffs();
        for row in m.as_mut_slice().chunks_exact_mut(width.max(1)) {
            for ((v, mean), std) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - mean) / std;
            }
        }
    }
}

/// Normalises each group of matrices with that group's own statistics (groups: clients or
/// speakers). Matrices in no group are left alone.
pub fn normalise_groups(features: &mut [FeatureMatrix], groups: &[Vec<usize>]) {
    for group in groups {
        let Some(norm) = Normaliser::fit(group.iter().map(|&i| &features[i])) else {
            continue;
        };
        for &i in group {
            norm.apply(&mut features[i]);
        }
    }
}

/// Where a too-long matrix is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    /// Keep the first frames.
    Start,
    /// Keep the middle frames.
    Centre,
    /// Keep frames from this offset (clamped), e.g. a random one for augmentation.
    At(usize),
}

/// `m` padded with zeros or cropped to exactly `frames` frames, row-major, plus a mask
/// (true for real frames, false for padding).
pub fn fixed_length(m: &FeatureMatrix, frames: usize, crop: Crop) -> (Vec<f32>, Vec<bool>) {
    let width = m.coeffs();
    let mut data = vec![0.0f32; frames * width];
    let mut mask = vec![false; frames];
    let offset = if m.frames() > frames {
        let spare = m.frames() - frames;
        match crop {
            Crop::Start => 0,
            Crop::Centre => spare / 2,
            Crop::At(o) => o.min(spare),
        }
    } else {
        0
    };
    let kept = m.frames().min(frames);
    data[..kept * width].copy_from_slice(&m.as_slice()[offset * width..(offset + kept) * width]);
    mask[..kept].iter_mut().for_each(|v| *v = true);
    (data, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normaliser_gives_zero_mean_unit_variance() {
        let mut a = FeatureMatrix::new(2, 2, vec![1.0, 10.0, 3.0, 10.0]).unwrap();
        let mut b = FeatureMatrix::new(1, 2, vec![5.0, 10.0]).unwrap();
        let n = Normaliser::fit([&a, &b]).unwrap();
        assert_eq!(n.mean, vec![3.0, 10.0]);
        assert!((n.std[0] - (8.0f32 / 3.0).sqrt()).abs() < 1e-6);
        n.apply(&mut a);
        n.apply(&mut b);
        // The constant coefficient becomes 0, not NaN.
        assert_eq!(a.row(0)[1], 0.0);
        let col: Vec<f32> = [a.row(0)[0], a.row(1)[0], b.row(0)[0]].to_vec();
        assert!(col.iter().sum::<f32>().abs() < 1e-6);
        assert!(Normaliser::fit(std::iter::empty()).is_none());
    }

    #[test]
    fn groups_use_their_own_statistics() {
        let mut f = vec![
            FeatureMatrix::new(2, 1, vec![0.0, 2.0]).unwrap(),
            FeatureMatrix::new(2, 1, vec![100.0, 102.0]).unwrap(),
        ];
        normalise_groups(&mut f, &[vec![0], vec![1]]);
        assert_eq!(f[0].as_slice(), f[1].as_slice());
        assert_eq!(f[0].as_slice(), &[-1.0, 1.0]);
    }

    #[test]
    fn pad_and_crop() {
        let m = FeatureMatrix::new(3, 2, vec![1., 1., 2., 2., 3., 3.]).unwrap();
        let (d, mask) = fixed_length(&m, 5, Crop::Start);
        assert_eq!(d, vec![1., 1., 2., 2., 3., 3., 0., 0., 0., 0.]);
        assert_eq!(mask, vec![true, true, true, false, false]);
        assert_eq!(fixed_length(&m, 1, Crop::Centre).0, vec![2., 2.]);
        assert_eq!(fixed_length(&m, 2, Crop::At(7)).0, vec![2., 2., 3., 3.]);
    }
}

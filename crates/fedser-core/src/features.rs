use std::fmt;

/// A feature matrix: `frames` rows (time) × `coeffs` columns (e.g. 13 MFCCs), row-major f32.
///
/// This is the unit that flows from the audio front end to the models; it lives in the core
/// crate so that models can take it without knowing anything about audio.
#[derive(Clone, PartialEq)]
pub struct FeatureMatrix {
    frames: usize,
    coeffs: usize,
    data: Vec<f32>,
}

/// The data length does not match `frames × coeffs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feature matrix of {frames} frames × {coeffs} coefficients needs {} values, got {len}", frames * coeffs)]
pub struct ShapeMismatch {
    pub frames: usize,
    pub coeffs: usize,
    pub len: usize,
}

impl FeatureMatrix {
    /// Wraps row-major `data` of shape `frames × coeffs`.
    pub fn new(frames: usize, coeffs: usize, data: Vec<f32>) -> Result<Self, ShapeMismatch> {
        if frames.checked_mul(coeffs) != Some(data.len()) {
            return Err(ShapeMismatch {
                frames,
                coeffs,
                len: data.len(),
            });
        }
        Ok(Self {
            frames,
            coeffs,
            data,
        })
    }

    /// Number of frames (rows).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Number of coefficients per frame (columns).
    pub fn coeffs(&self) -> usize {
        self.coeffs
    }

    /// One frame's coefficients.
    pub fn row(&self, frame: usize) -> &[f32] {
        &self.data[frame * self.coeffs..(frame + 1) * self.coeffs]
    }

    /// Iterates over the frames.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> {
        // `max(1)` keeps chunks_exact valid for a matrix with zero columns.
        self.data.chunks_exact(self.coeffs.max(1))
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// All values, row-major, mutable (shape stays fixed).
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Takes the values out, row-major.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

impl fmt::Debug for FeatureMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeatureMatrix({} × {})", self.frames, self.coeffs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_row_major_layout() {
        let m = FeatureMatrix::new(2, 3, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        assert_eq!(m.row(1), &[4., 5., 6.]);
        assert_eq!(m.rows().count(), 2);
    }

    #[test]
    fn rejects_wrong_length() {
        let e = FeatureMatrix::new(2, 3, vec![0.0; 5]).unwrap_err();
        assert!(e.to_string().contains("needs 6 values, got 5"));
    }
}

//! Orthonormal DCT-II as a small dense matrix (only the first `numcep` outputs are needed,
//! so a direct product beats a fast transform at these sizes).

use std::f64::consts::PI;

/// Rows `k < numcep` of the orthonormal DCT-II of length `n`, each row scaled by `lift[k]`
/// (pass all ones for no liftering). Equals `scipy.fftpack.dct(x, type=2, norm='ortho')[:numcep]`.
pub fn dct2_ortho_rows(numcep: usize, n: usize, lift: &[f64]) -> Vec<f64> {
    let mut m = Vec::with_capacity(numcep * n);
    for (k, &lift_k) in lift.iter().enumerate().take(numcep) {
        let scale = if k == 0 {
            (1.0 / n as f64).sqrt()
        } else {
            (2.0 / n as f64).sqrt()
        };
        for i in 0..n {
            let c = (PI * k as f64 * (2 * i + 1) as f64 / (2 * n) as f64).cos();
            m.push(scale * c * lift_k);
        }
    }
    m
}

/// python_speech_features' sinusoidal lifter `1 + (L/2) sin(pi n / L)`; all ones when `l == 0`.
pub fn psf_lifter(numcep: usize, l: usize) -> Vec<f64> {
    (0..numcep)
        .map(|n| {
            if l == 0 {
                1.0
            } else {
                1.0 + (l as f64 / 2.0) * (PI * n as f64 / l as f64).sin()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthonormal_rows() {
        let n = 26;
        let m = dct2_ortho_rows(n, n, &vec![1.0; n]);
        for a in 0..n {
            for b in 0..n {
                let dot: f64 = (0..n).map(|i| m[a * n + i] * m[b * n + i]).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn lifter_values() {
        let l = psf_lifter(13, 22);
        assert_eq!(l[0], 1.0);
        assert!((l[11] - 12.0).abs() < 1e-12); // sin(pi/2) at n = L/2
        assert_eq!(psf_lifter(3, 0), vec![1.0; 3]);
    }
}

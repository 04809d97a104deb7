//! Matrix products for the kernels, any strides, through the `gemm` crate (the one flex
//! uses; its AVX-512 kernels where the processor has them).
//!
//! Orientation matters for the small products the LSTM runs at every step: `gemm` works on
//! column-major destinations, packing an operand whose elements along the destination's
//! columns are not contiguous. Given `Wh` so that its columns are contiguous where they meet
//! the destination, the recurrent product `h Wh` packs only the small `h` (`[b, n]`), never
//! `Wh` (`[n, 4n]`); packing `Wh` on every step had cost as much as the arithmetic (profiled),
//! which is why a hand-written register-blocked kernel with `Wh` packed once per sequence
//! used to stand here: the right orientation made `gemm` 10 % faster than it per LSTM step,
//! and 40 % at batch 4.

/// `dst (m×n, row-major with row stride dst_rs) = [dst +] lhs · rhs`, with `lhs` and `rhs`
/// given by element strides (rows, columns). One thread: parallelism comes from training
/// several clients at once.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        last(m, n, dst_rs, 1) < dst.len(),
        "matmul: destination too short"
    );
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                dst[row * dst_rs..row * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        last(m, k, lhs_rs, lhs_cs) < lhs.len(),
        "matmul: left operand too short"
    );
    assert!(
        last(k, n, rhs_rs, rhs_cs) < rhs.len(),
        "matmul: right operand too short"
    );
    // SAFETY: every index the product touches lies within the slices (asserted above), and
    // `dst` does not alias the operands (it is a unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_with_any_strides_equal_the_plain_product() {
        for (m, k, n) in [(7, 5, 37), (4, 16, 16), (1, 3, 1), (33, 128, 64)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 13) % 7) as f32 * 0.5).collect();
            // b also given transposed (column-major) to exercise the strides.
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            for (rhs, strides, name) in [(&b, (n, 1), "row-major"), (&bt, (1, k), "column-major")] {
                let mut acc = vec![1f32; m * n];
                matmul((m, n, k), &mut acc, n, true, &a, (k, 1), rhs, strides);
                let mut fresh = vec![9f32; m * n];
                matmul((m, n, k), &mut fresh, n, false, &a, (k, 1), rhs, strides);
                for i in 0..m {
                    for j in 0..n {
                        let want: f32 = (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
                        assert!((fresh[i * n + j] - want).abs() < 1e-3, "{name} {m}x{k}x{n}");
                        assert!(
                            (acc[i * n + j] - want - 1.0).abs() < 1e-3,
                            "{name} accumulate"
                        );
                    }
                }
            }
        }
    }
}

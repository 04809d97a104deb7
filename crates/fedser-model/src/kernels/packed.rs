//! Matrix products for the kernels: [`matmul`], any strides, through the `gemm` crate (the
//! one flex uses); and [`matmul_packed`], small products against a right-hand matrix packed
//! once and used many times (the LSTM's recurrent weights, at every step).
//!
//! A general matrix library packs both operands on every call; for a `[32, 128] × [128, 512]`
//! product that packing cost as much as the arithmetic (profiled). Here the right-hand matrix
//! is laid out once in panels of [`NR`] columns (each panel row contiguous, zero-padded at
//! the edge) and a register-blocked kernel (up to 4 rows × 16 columns of accumulators)
//! streams through it. The kernel is plain Rust compiled twice, for the baseline target and
//! for AVX2 + FMA (chosen at run time).

use super::simd::{dispatch, madd};

/// Columns per panel.
pub const NR: usize = 16;
/// Rows per register block.
const MR: usize = 4;

/// A `k × n` matrix in panels of [`NR`] columns: panel `p` holds rows `0..k` of columns
/// `p·NR .. p·NR + NR`, row after row.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedMatrix {
    /// Packs the `k × n` matrix whose element `(r, c)` is `src[r·rs + c·cs]`.
    pub fn new(src: &[f32], k: usize, n: usize, (rs, cs): (usize, usize)) -> Self {
        let count = n.div_ceil(NR);
        let mut panels = vec![0f32; count * k * NR];
        for p in 0..count {
            let cols = NR.min(n - p * NR);
            for r in 0..k {
                let row = &mut panels[(p * k + r) * NR..][..cols];
                for (c, slot) in row.iter_mut().enumerate() {
                    *slot = src[r * rs + (p * NR + c) * cs];
                }
            }
        }
        Self { k, n, panels }
    }

    /// Rows.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns.
    pub fn n(&self) -> usize {
        self.n
    }
}

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

/// `acc[i][c] += Σ_kk a_i[kk] · panel[kk][c]` for `R` rows.
#[inline(always)]
fn block<const R: usize, const FMA: bool>(
    rows: [&[f32]; R],
    panel: &[f32],
    k: usize,
) -> [[f32; NR]; R] {
    let mut acc = [[0f32; NR]; R];
    for (kk, w) in panel.chunks_exact(NR).take(k).enumerate() {
        let w: &[f32; NR] = w.try_into().expect("panel rows are NR wide");
        for i in 0..R {
            let a = rows[i][kk];
            for c in 0..NR {
                acc[i][c] = madd::<FMA>(a, w[c], acc[i][c]);
            }
        }
    }
    acc
}

#[inline(always)]
fn rows_block<const R: usize, const FMA: bool>(
    a: &[f32],
    lda: usize,
    r0: usize,
    b: &PackedMatrix,
    dst: &mut [f32],
    ldd: usize,
    accumulate: bool,
) {
    let k = b.k;
    let rows: [&[f32]; R] = std::array::from_fn(|i| &a[(r0 + i) * lda..(r0 + i) * lda + k]);
    for p in 0..b.n.div_ceil(NR) {
        let panel = &b.panels[p * k * NR..(p + 1) * k * NR];
        let acc = block::<R, FMA>(rows, panel, k);
        let c0 = p * NR;
        let cols = NR.min(b.n - c0);
        for (i, acc_row) in acc.iter().enumerate() {
            let out = &mut dst[(r0 + i) * ldd + c0..][..cols];
            if accumulate {
                for (o, v) in out.iter_mut().zip(acc_row) {
                    *o += v;
                }
            } else {
                out.copy_from_slice(&acc_row[..cols]);
            }
        }
    }
}

/// `dst (m × n, row stride ldd) = [dst +] a (m × k, row stride lda) · b`.
pub fn matmul_packed(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedMatrix,
    dst: &mut [f32],
    ldd: usize,
    accumulate: bool,
) {
    if m == 0 || b.n == 0 {
        return;
    }
    assert!(
        b.k == 0 || (m - 1) * lda + b.k <= a.len(),
        "matmul_packed: left operand too short"
    );
    assert!(
        (m - 1) * ldd + b.n <= dst.len(),
        "matmul_packed: destination too short"
    );
    dispatch!(
        fn body<FMA>(
            m: usize,
            a: &[f32],
            lda: usize,
            b: &PackedMatrix,
            dst: &mut [f32],
            ldd: usize,
            accumulate: bool,
        ) {
            let mut r = 0;
            while r + MR <= m {
                rows_block::<MR, FMA>(a, lda, r, b, dst, ldd, accumulate);
                r += MR;
            }
            match m - r {
                1 => rows_block::<1, FMA>(a, lda, r, b, dst, ldd, accumulate),
                2 => rows_block::<2, FMA>(a, lda, r, b, dst, ldd, accumulate),
                3 => rows_block::<3, FMA>(a, lda, r, b, dst, ldd, accumulate),
                _ => {}
            }
        }
    );
    body(m, a, lda, b, dst, ldd, accumulate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_product_equals_the_plain_product() {
        // Sizes around the block edges: rows not a multiple of 4, columns not of 16.
        for (m, k, n) in [(7, 5, 37), (4, 16, 16), (1, 3, 1), (33, 128, 64), (2, 0, 5)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 13) % 7) as f32 * 0.5).collect();
            // b given transposed (column-major) to exercise the strides.
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            for (packed, name) in [
                (PackedMatrix::new(&b, k, n, (n, 1)), "row-major"),
                (PackedMatrix::new(&bt, k, n, (1, k)), "column-major"),
            ] {
                let mut dst = vec![1f32; m * n];
                matmul_packed(m, &a, k, &packed, &mut dst, n, true);
                let mut fresh = vec![9f32; m * n];
                matmul_packed(m, &a, k, &packed, &mut fresh, n, false);
                for i in 0..m {
                    for j in 0..n {
                        let want: f32 = (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
                        assert_eq!(fresh[i * n + j], want, "{name} {m}x{k}x{n} at {i},{j}");
                        assert_eq!(dst[i * n + j], want + 1.0, "{name} accumulate");
                    }
                }
            }
        }
    }
}

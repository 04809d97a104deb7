//! The measurement side of the attacks that show what leaks from a federation: a linear
//! attribute classifier trained on shadow updates (Feng et al., Interspeech 2021), and the
//! figures attacks are judged by — unweighted average recall for attribute inference, ROC AUC
//! and the true-positive rate at a low false-positive rate for membership inference (Carlini
//! et al., "Membership inference attacks from first principles", S&P 2022). Model-free: it
//! sees vectors and scores, so it is tested on distributions whose answer is known.

use crate::error::PrivacyError;

/// A ridge-regularised linear classifier (least squares on ±1 labels), fitted in the dual so
/// it stays cheap when features far outnumber examples (a layer's weights against a few dozen
/// shadow updates). Features are standardised with the training set's statistics.
#[derive(Debug, Clone)]
pub struct LinearAttack {
    mean: Vec<f64>,
    scale: Vec<f64>,
    weights: Vec<f64>,
    bias: f64,
}

impl LinearAttack {
    /// Fits on `xs` (rows of equal length) with labels `ys`; `lambda` > 0 is the ridge
    /// penalty (relative to the number of features). Errors: no rows, rows of different
    /// lengths, a single class, non-finite values.
    pub fn fit(xs: &[Vec<f32>], ys: &[bool], lambda: f64) -> Result<Self, PrivacyError> {
        let bad = |m: String| PrivacyError::Attack(m);
        let n = xs.len();
        if n == 0 || n != ys.len() {
            return Err(bad(format!("{n} examples for {} labels", ys.len())));
        }
        if ys.iter().all(|&y| y) || ys.iter().all(|&y| !y) {
            return Err(bad("the attack needs examples of both classes".into()));
        }
        if !(lambda.is_finite() && lambda > 0.0) {
            return Err(bad(format!("ridge penalty {lambda} must be positive")));
        }
        let d = xs[0].len();
        if let Some(r) = xs.iter().find(|r| r.len() != d) {
            return Err(bad(format!("feature rows of {d} and {} values", r.len())));
        }
        if xs.iter().flatten().any(|v| !v.is_finite()) {
            return Err(bad("a feature is not finite".into()));
        }
        let mut mean = vec![0.0; d];
        for r in xs {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += f64::from(v) / n as f64;
            }
        }
        let mut scale = vec![0.0; d];
        for r in xs {
            for ((s, &v), m) in scale.iter_mut().zip(r).zip(&mean) {
                *s += (f64::from(v) - m).powi(2) / n as f64;
            }
        }
        scale
            .iter_mut()
            .for_each(|s| *s = if *s > 1e-24 { 1.0 / s.sqrt() } else { 0.0 });
        let z: Vec<Vec<f64>> = xs
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&mean)
                    .zip(&scale)
                    .map(|((&v, m), s)| (f64::from(v) - m) * s)
                    .collect()
            })
            .collect();
        let t: Vec<f64> = ys.iter().map(|&y| if y { 1.0 } else { -1.0 }).collect();
        let bias = t.iter().sum::<f64>() / n as f64;
        let centred: Vec<f64> = t.iter().map(|v| v - bias).collect();
        // Dual ridge: a = (Z Zᵀ + λ d I)⁻¹ t, w = Zᵀ a.
        let mut gram = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..=i {
                let g: f64 = z[i].iter().zip(&z[j]).map(|(a, b)| a * b).sum();
                gram[i][j] = g;
                gram[j][i] = g;
            }
            gram[i][i] += lambda * d.max(1) as f64;
        }
        let alpha = solve_spd(gram, centred).ok_or_else(|| bad("singular system".into()))?;
        let mut weights = vec![0.0; d];
        for (row, a) in z.iter().zip(&alpha) {
            for (w, v) in weights.iter_mut().zip(row) {
                *w += a * v;
            }
        }
        Ok(Self {
            mean,
            scale,
            weights,
            bias,
        })
    }

    /// The decision score of `x` (positive: the `true` class).
    pub fn score(&self, x: &[f32]) -> f64 {
        x.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((&v, m), s), w)| (f64::from(v) - m) * s * w)
            .sum::<f64>()
            + self.bias
    }

    pub fn predict(&self, x: &[f32]) -> bool {
        self.score(x) > 0.0
    }
}

/// Solves `a x = b` for a symmetric positive definite `a` (Cholesky); `None` if it is not.
#[allow(clippy::needless_range_loop)] // the textbook index form reads best here
fn solve_spd(mut a: Vec<Vec<f64>>, b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for j in 0..n {
        let mut d = a[j][j];
        for k in 0..j {
            d -= a[j][k] * a[j][k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j][j] = d;
        for i in j + 1..n {
            let mut s = a[i][j];
            for k in 0..j {
                s -= a[i][k] * a[j][k];
            }
            a[i][j] = s / d;
        }
    }
    let mut y = b;
    for i in 0..n {
        for k in 0..i {
            y[i] -= a[i][k] * y[k];
        }
        y[i] /= a[i][i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= a[k][i] * y[k];
        }
        y[i] /= a[i][i];
    }
    Some(y)
}

/// The scaled confidence LiRA works with: `log p − log(1 − p)` of the true class's
/// probability, clamped away from 0 and 1 so it stays finite.
pub fn scaled_confidence(p_true: f64) -> f64 {
    let p = p_true.clamp(1e-7, 1.0 - 1e-7);
    p.ln() - (1.0 - p).ln()
}

/// Offline LiRA's score (Carlini et al. 2022): how far the target model's confidence on a
/// candidate lies above what reference models trained *without* the candidate give it, in
/// standard deviations of those (a Gaussian fitted to the OUT confidences; its sd floored at
/// 1e-3). `None` without at least two reference values.
pub fn lira_offline_score(target: f64, out: &[f64]) -> Option<f64> {
    if out.len() < 2 || !target.is_finite() || out.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = out.len() as f64;
    let mean = out.iter().sum::<f64>() / n;
    let sd = (out.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    Some((target - mean) / sd.max(1e-3))
}

/// Unweighted average recall over the classes present in `truth` (chance: 0.5 for two
/// classes, whatever their balance). `None` when there is nothing to score.
pub fn uar(truth: &[bool], predicted: &[bool]) -> Option<f64> {
    let recall = |class: bool| {
        let (mut hit, mut n) = (0usize, 0usize);
        for (&t, &p) in truth.iter().zip(predicted) {
            if t == class {
                n += 1;
                hit += usize::from(p == class);
            }
        }
        (n > 0).then(|| hit as f64 / n as f64)
    };
    let recalls: Vec<f64> = [true, false].into_iter().filter_map(recall).collect();
    (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64)
}

/// ROC AUC of scores where members should score higher (Mann–Whitney U; ties count half).
pub fn roc_auc(members: &[f64], non_members: &[f64]) -> Option<f64> {
    if members.is_empty() || non_members.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for &m in members {
        for &o in non_members {
            wins += if m > o {
                1.0
            } else if m == o {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (members.len() * non_members.len()) as f64)
}

/// The fraction of members caught at the threshold that lets through at most `fpr` of the
/// non-members (the strictest threshold when there are too few non-members to reach `fpr`).
pub fn tpr_at_fpr(members: &[f64], non_members: &[f64], fpr: f64) -> Option<f64> {
    if members.is_empty() || non_members.is_empty() {
        return None;
    }
    let mut sorted = non_members.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // At most floor(fpr * n) non-members may score above the threshold.
    let allowed = (fpr * sorted.len() as f64).floor() as usize;
    let threshold = sorted[allowed.min(sorted.len() - 1)];
    let caught = members.iter().filter(|&&m| m > threshold).count();
    Some(caught as f64 / members.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rand_distr::{Distribution, Normal};

    fn blobs(n: usize, d: usize, shift: f32, seed: u64) -> (Vec<Vec<f32>>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let noise = Normal::new(0.0f32, 1.0).unwrap();
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..n {
            let y = i % 2 == 0;
            let row = (0..d)
                .map(|j| noise.sample(&mut rng) + if y && j < 200 { shift } else { 0.0 })
                .collect();
            xs.push(row);
            ys.push(y);
        }
        (xs, ys)
    }

    #[test]
    fn the_linear_attack_finds_a_planted_signal_and_not_a_missing_one() {
        // 40 examples, 2,000 features, the class shifts a tenth of them by one sd (a signal
        // spread over many weights, as a speaker's sex is over a first layer's).
        let (xs, ys) = blobs(40, 2000, 1.0, 1);
        let attack = LinearAttack::fit(&xs, &ys, 1.0).unwrap();
        let (tx, ty) = blobs(200, 2000, 1.0, 2);
        let pred: Vec<bool> = tx.iter().map(|x| attack.predict(x)).collect();
        let found = uar(&ty, &pred).unwrap();
        assert!(found > 0.9, "UAR {found}");
        // No signal: chance.
        let (xs, ys) = blobs(40, 2000, 0.0, 3);
        let attack = LinearAttack::fit(&xs, &ys, 1.0).unwrap();
        let (tx, ty) = blobs(400, 2000, 0.0, 4);
        let pred: Vec<bool> = tx.iter().map(|x| attack.predict(x)).collect();
        assert!((uar(&ty, &pred).unwrap() - 0.5).abs() < 0.1);
        // Bad input is an error.
        assert!(LinearAttack::fit(&xs, &[true; 40], 1.0).is_err());
        assert!(LinearAttack::fit(&[vec![1.0], vec![1.0, 2.0]], &[true, false], 1.0).is_err());
        assert!(LinearAttack::fit(&[vec![f32::NAN], vec![1.0]], &[true, false], 1.0).is_err());
    }

    #[test]
    fn lira_scores_how_far_the_target_lies_above_models_without_the_candidate() {
        assert_eq!(lira_offline_score(4.0, &[1.0, 2.0, 3.0]), Some(2.0));
        assert_eq!(lira_offline_score(1.0, &[1.0]), None);
        assert_eq!(lira_offline_score(f64::NAN, &[1.0, 2.0]), None);
        // Identical references: the floor keeps the score finite.
        assert_eq!(lira_offline_score(1.0, &[1.0, 1.0]), Some(0.0));
        assert!(scaled_confidence(1.0).is_finite() && scaled_confidence(0.0).is_finite());
        assert!(scaled_confidence(0.9) > scaled_confidence(0.5));
        assert_eq!(scaled_confidence(0.5), 0.0);
    }

    #[test]
    fn uar_auc_and_tpr_at_low_fpr_on_known_answers() {
        assert_eq!(
            uar(&[true, true, true, false], &[true, true, true, true]),
            Some(0.5)
        );
        assert_eq!(uar(&[true, false], &[true, false]), Some(1.0));
        assert_eq!(uar(&[], &[]), None);
        assert_eq!(roc_auc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(roc_auc(&[1.0], &[1.0]), Some(0.5));
        assert_eq!(roc_auc(&[0.0, 3.0], &[1.0, 2.0]), Some(0.5));
        // Identical distributions: AUC near 0.5; TPR at 1% FPR near 1%.
        let mut rng = StdRng::seed_from_u64(5);
        let a: Vec<f64> = (0..4000).map(|_| rng.random::<f64>()).collect();
        let b: Vec<f64> = (0..4000).map(|_| rng.random::<f64>()).collect();
        assert!((roc_auc(&a, &b).unwrap() - 0.5).abs() < 0.02);
        assert!(tpr_at_fpr(&a, &b, 0.01).unwrap() < 0.02);
        // Members all above every non-member: caught at any FPR.
        assert_eq!(tpr_at_fpr(&[5.0, 6.0], &[1.0, 2.0, 3.0], 0.01), Some(1.0));
        assert_eq!(tpr_at_fpr(&[2.5, 6.0], &[1.0, 2.0, 3.0], 0.01), Some(0.5));
    }
}

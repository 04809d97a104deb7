//! Aggregation rules: many clients' updates (flat vectors) -> one update.
//!
//! The mean is weighted by each client's number of examples (FedAvg). The robust rules treat
//! clients alike whatever they claim to hold, because a Byzantine client could claim anything:
//! coordinate-wise median and trimmed mean (Yin et al., 2018), Krum and Multi-Krum
//! (Blanchard et al., 2017).

use serde::{Deserialize, Serialize};

/// How updates are combined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Rule {
    /// Mean weighted by examples.
    Mean,
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise mean after dropping the `beta` fraction of largest and of smallest
    /// values (0 <= beta < 0.5).
    TrimmedMean { beta: f64 },
    /// Krum (`keep` = 1) or Multi-Krum (`keep` > 1, the plain mean of the `keep` best-scored
    /// updates; `keep` = 0 keeps n - byzantine), tolerating `byzantine` attackers; needs more
    /// than 2 * byzantine + 2 updates.
    Krum { byzantine: usize, keep: usize },
}

/// Why a set of updates could not be combined.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AggregateError {
    #[error("no updates to aggregate")]
    Empty,
    #[error("updates have different lengths ({0} and {1})")]
    Length(usize, usize),
    #[error("{rule} needs at least {needed} updates, got {got}")]
    TooFew {
        rule: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("invalid rule parameter: {0}")]
    Parameter(String),
    #[error("{0}")]
    Stage(String),
}

/// What a rule did, for the round record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleReport {
    /// Indices (into the input) of the updates Krum selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<Vec<usize>>,
}

impl Rule {
    /// Combines `updates` (flat vectors of equal length) with `weights` (examples per update).
    pub fn aggregate(
        &self,
        updates: &[&[f32]],
        weights: &[f64],
    ) -> Result<(Vec<f32>, RuleReport), AggregateError> {
        let Some(first) = updates.first() else {
            return Err(AggregateError::Empty);
        };
        if let Some(u) = updates.iter().find(|u| u.len() != first.len()) {
            return Err(AggregateError::Length(first.len(), u.len()));
        }
        match *self {
            Rule::Mean => Ok((weighted_mean(updates, weights), RuleReport::default())),
            Rule::Median => Ok((
                by_coordinate(updates, |column| {
                    let n = column.len();
                    let mid = n / 2;
                    let (_, upper, _) = column.select_nth_unstable_by(mid, f32::total_cmp);
                    let upper = *upper;
                    if n % 2 == 1 {
                        upper
                    } else {
                        let lower = column[..mid].iter().copied().fold(f32::MIN, f32::max);
                        0.5 * (lower + upper)
                    }
                }),
                RuleReport::default(),
            )),
            Rule::TrimmedMean { beta } => {
                if !(0.0..0.5).contains(&beta) {
                    return Err(AggregateError::Parameter(format!(
                        "trimmed-mean beta {beta} must be in [0, 0.5)"
                    )));
                }
                let trim = (beta * updates.len() as f64).floor() as usize;
                Ok((
                    by_coordinate(updates, |column| {
                        column.sort_unstable_by(f32::total_cmp);
                        let kept = &column[trim..column.len() - trim];
                        (kept.iter().map(|&v| v as f64).sum::<f64>() / kept.len() as f64) as f32
                    }),
                    RuleReport::default(),
                ))
            }
            Rule::Krum { byzantine, keep } => {
                let needed = byzantine.saturating_mul(2).saturating_add(3);
                if updates.len() < needed {
                    return Err(AggregateError::TooFew {
                        rule: "krum",
                        needed,
                        got: updates.len(),
                    });
                }
                let keep = if keep == 0 {
                    updates.len() - byzantine
                } else {
                    keep.min(updates.len())
                };
                let selected = krum_select(updates, byzantine, keep);
                let chosen: Vec<&[f32]> = selected.iter().map(|&i| updates[i]).collect();
                // Unweighted: an attacker that Krum lets through could claim any example count.
                let uniform = vec![1.0; chosen.len()];
                Ok((
                    weighted_mean(&chosen, &uniform),
                    RuleReport {
                        selected: Some(selected),
                    },
                ))
            }
        }
    }

    /// Short name for logs and file names.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Mean => "mean",
            Rule::Median => "median",
            Rule::TrimmedMean { .. } => "trimmed-mean",
            Rule::Krum { keep: 1, .. } => "krum",
            Rule::Krum { .. } => "multi-krum",
        }
    }
}

/// Weighted mean; weights that are all zero fall back to the plain mean. Accumulates in f64 so
/// a thousand clients do not lose precision.
fn weighted_mean(updates: &[&[f32]], weights: &[f64]) -> Vec<f32> {
    let total: f64 = weights.iter().sum();
    let uniform = total.is_nan() || total <= 0.0;
    let mut acc = vec![0f64; updates[0].len()];
    for (i, u) in updates.iter().enumerate() {
        let w = if uniform {
            1.0 / updates.len() as f64
        } else {
            weights[i] / total
        };
        for (a, &v) in acc.iter_mut().zip(u.iter()) {
            *a += w * v as f64;
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// Applies `f` to each coordinate's column of values.
fn by_coordinate(updates: &[&[f32]], mut f: impl FnMut(&mut [f32]) -> f32) -> Vec<f32> {
    let mut column = vec![0f32; updates.len()];
    (0..updates[0].len())
        .map(|j| {
            for (c, u) in column.iter_mut().zip(updates) {
                *c = u[j];
            }
            f(&mut column)
        })
        .collect()
}

/// Krum scores: each update's summed squared distance to its `n - f - 2` nearest others; the
/// `keep` lowest-scored updates, best first (ties by index, for determinism).
fn krum_select(updates: &[&[f32]], byzantine: usize, keep: usize) -> Vec<usize> {
    let n = updates.len();
    let mut dist = vec![vec![0f64; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let d: f64 = updates[i]
                .iter()
                .zip(updates[j].iter())
                .map(|(&a, &b)| {
                    let d = (a - b) as f64;
                    d * d
                })
                .sum();
            dist[i][j] = d;
            dist[j][i] = d;
        }
    }
    let neighbours = n - byzantine - 2;
    let mut scores: Vec<(f64, usize)> = (0..n)
        .map(|i| {
            let mut d: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| dist[i][j]).collect();
            d.sort_unstable_by(f64::total_cmp);
            (d[..neighbours].iter().sum(), i)
        })
        .collect();
    scores.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    scores.into_iter().take(keep).map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(rule: Rule, updates: &[Vec<f32>], weights: &[f64]) -> Vec<f32> {
        let refs: Vec<&[f32]> = updates.iter().map(Vec::as_slice).collect();
        rule.aggregate(&refs, weights).unwrap().0
    }

    #[test]
    fn mean_is_weighted_by_examples() {
        let u = vec![vec![1.0, 0.0], vec![4.0, 3.0]];
        // (1*1 + 4*2)/3 = 3, (0 + 3*2)/3 = 2
        assert_eq!(agg(Rule::Mean, &u, &[1.0, 2.0]), vec![3.0, 2.0]);
        // All weights zero: plain mean.
        assert_eq!(agg(Rule::Mean, &u, &[0.0, 0.0]), vec![2.5, 1.5]);
    }

    #[test]
    fn median_ignores_an_outlier_and_averages_the_middle_pair() {
        let odd = vec![vec![1.0], vec![2.0], vec![1000.0]];
        assert_eq!(agg(Rule::Median, &odd, &[1.0; 3]), vec![2.0]);
        let even = vec![
            vec![1.0, -1.0],
            vec![2.0, 5.0],
            vec![3.0, 7.0],
            vec![1e9, 9.0],
        ];
        assert_eq!(agg(Rule::Median, &even, &[1.0; 4]), vec![2.5, 6.0]);
    }

    #[test]
    fn trimmed_mean_drops_the_extremes() {
        let u: Vec<Vec<f32>> = vec![vec![-100.0], vec![1.0], vec![2.0], vec![3.0], vec![500.0]];
        // beta 0.2 of 5 -> drop one each side: mean(1,2,3) = 2.
        assert_eq!(
            agg(Rule::TrimmedMean { beta: 0.2 }, &u, &[1.0; 5]),
            vec![2.0]
        );
        // beta 0 is the plain mean.
        assert_eq!(
            agg(Rule::TrimmedMean { beta: 0.0 }, &u, &[1.0; 5]),
            vec![81.2]
        );
        let refs: Vec<&[f32]> = u.iter().map(Vec::as_slice).collect();
        assert!(
            Rule::TrimmedMean { beta: 0.5 }
                .aggregate(&refs, &[1.0; 5])
                .is_err()
        );
    }

    #[test]
    fn krum_picks_an_honest_update_and_multi_krum_averages_honest_ones() {
        // Five honest updates near (1, 1), two attackers far away.
        let mut u = vec![
            vec![1.0, 1.0],
            vec![1.1, 0.9],
            vec![0.9, 1.1],
            vec![1.05, 1.0],
            vec![0.95, 1.0],
        ];
        u.push(vec![50.0, -50.0]);
        u.push(vec![-40.0, 60.0]);
        let refs: Vec<&[f32]> = u.iter().map(Vec::as_slice).collect();
        let (one, report) = Rule::Krum {
            byzantine: 2,
            keep: 1,
        }
        .aggregate(&refs, &[1.0; 7])
        .unwrap();
        assert!(report.selected.unwrap()[0] < 5);
        assert!((one[0] - 1.0).abs() < 0.2 && (one[1] - 1.0).abs() < 0.2);
        let (many, report) = Rule::Krum {
            byzantine: 2,
            keep: 3,
        }
        .aggregate(&refs, &[1.0; 7])
        .unwrap();
        assert!(report.selected.unwrap().iter().all(|&i| i < 5));
        assert!((many[0] - 1.0).abs() < 0.1 && (many[1] - 1.0).abs() < 0.1);
        // A selected update claiming a huge example count does not dominate Multi-Krum.
        let (claimed, _) = Rule::Krum {
            byzantine: 2,
            keep: 3,
        }
        .aggregate(&refs, &[1e9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
        .unwrap();
        assert_eq!(claimed, many);
        // Too few updates for the assumed attackers.
        let err = Rule::Krum {
            byzantine: 3,
            keep: 1,
        }
        .aggregate(&refs[..5], &[1.0; 5])
        .unwrap_err();
        assert!(matches!(err, AggregateError::TooFew { needed: 9, .. }));
    }

    #[test]
    fn mismatched_or_missing_updates_are_errors() {
        let a = [1.0f32, 2.0];
        let b = [1.0f32];
        assert_eq!(
            Rule::Mean.aggregate(&[&a, &b], &[1.0, 1.0]).unwrap_err(),
            AggregateError::Length(2, 1)
        );
        assert_eq!(
            Rule::Median.aggregate(&[], &[]).unwrap_err(),
            AggregateError::Empty
        );
    }
}

//! The figures speech-emotion work reports, from a confusion matrix: accuracy (weighted
//! accuracy), unweighted accuracy (mean per-class recall, the usual SER figure), precision,
//! recall and F1 per class, macro and weighted averages.
//!
//! Conventions (as scikit-learn's defaults): a ratio with a zero denominator counts as 0;
//! UA averages recall over the classes present in the truth; macro-F1 averages F1 over the
//! classes present in the truth or the predictions; weighted-F1 weights by true support.

use crate::Emotion;

/// Counts of (true class, predicted class): rows are the truth, columns the prediction.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfusionMatrix {
    pub counts: [[u64; Emotion::COUNT]; Emotion::COUNT],
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassMetrics {
    pub class: Emotion,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of true examples of the class.
    pub support: u64,
}

/// The summary a model evaluation prints (`--json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    pub ua: f64,
    pub macro_f1: f64,
    pub weighted_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    pub confusion: ConfusionMatrix,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl ConfusionMatrix {
    /// An empty matrix.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one prediction.
    pub fn add(&mut self, truth: Emotion, predicted: Emotion) {
        self.counts[truth.index()][predicted.index()] += 1;
    }

    /// Adds another matrix's counts (e.g. clients' evaluations).
    pub fn merge(&mut self, other: &ConfusionMatrix) {
        for (row, orow) in self.counts.iter_mut().zip(&other.counts) {
            for (c, o) in row.iter_mut().zip(orow) {
                *c += o;
            }
        }
    }

    /// Number of predictions counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    fn support(&self, k: usize) -> u64 {
        self.counts[k].iter().sum()
    }

    fn predicted(&self, k: usize) -> u64 {
        self.counts.iter().map(|row| row[k]).sum()
    }

    /// Fraction of predictions that are right (a.k.a. weighted accuracy).
    pub fn accuracy(&self) -> f64 {
        ratio(
            (0..Emotion::COUNT).map(|k| self.counts[k][k]).sum(),
            self.total(),
        )
    }

    /// Per-class precision, recall, F1 and support, in class order.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        Emotion::ALL
            .iter()
            .map(|&e| {
                let k = e.index();
                let tp = self.counts[k][k];
                let precision = ratio(tp, self.predicted(k));
                let recall = ratio(tp, self.support(k));
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    class: e,
                    precision,
                    recall,
                    f1,
                    support: self.support(k),
                }
            })
            .collect()
    }

    /// Unweighted accuracy: mean recall over the classes present in the truth.
    pub fn unweighted_accuracy(&self) -> f64 {
        let present: Vec<ClassMetrics> = self
            .per_class()
            .into_iter()
            .filter(|c| c.support > 0)
            .collect();
        if present.is_empty() {
            return 0.0;
        }
        present.iter().map(|c| c.recall).sum::<f64>() / present.len() as f64
    }

    /// Mean F1 over the classes present in the truth or the predictions.
    pub fn macro_f1(&self) -> f64 {
        let used: Vec<ClassMetrics> = self
            .per_class()
            .into_iter()
            .filter(|c| c.support > 0 || self.predicted(c.class.index()) > 0)
            .collect();
        if used.is_empty() {
            return 0.0;
        }
        used.iter().map(|c| c.f1).sum::<f64>() / used.len() as f64
    }

    /// F1 averaged with the true supports as weights.
    pub fn weighted_f1(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        self.per_class()
            .iter()
            .map(|c| c.f1 * c.support as f64)
            .sum::<f64>()
            / total as f64
    }

    /// All figures at once.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            accuracy: self.accuracy(),
            ua: self.unweighted_accuracy(),
            macro_f1: self.macro_f1(),
            weighted_f1: self.weighted_f1(),
            per_class: self.per_class(),
            confusion: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Emotion::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    /// Worked by hand: truth/prediction pairs over three classes.
    ///   neutral: 3 true -> predicted neutral, neutral, happy
    ///   happy:   2 true -> predicted happy, happy
    ///   angry:   1 true -> predicted neutral
    /// neutral: tp 2, predicted 3 (2 + the angry one), support 3 -> P 2/3, R 2/3, F1 2/3
    /// happy:   tp 2, predicted 3, support 2 -> P 2/3, R 1, F1 0.8
    /// angry:   tp 0, predicted 0, support 1 -> P 0, R 0, F1 0
    #[test]
    fn hand_computed_case() {
        let mut m = ConfusionMatrix::new();
        for (t, p) in [
            (Neutral, Neutral),
            (Neutral, Neutral),
            (Neutral, Happy),
            (Happy, Happy),
            (Happy, Happy),
            (Angry, Neutral),
        ] {
            m.add(t, p);
        }
        close(m.accuracy(), 4.0 / 6.0);
        let pc = m.per_class();
        close(pc[0].precision, 2.0 / 3.0);
        close(pc[0].recall, 2.0 / 3.0);
        close(pc[1].precision, 2.0 / 3.0);
        close(pc[1].recall, 1.0);
        close(pc[1].f1, 0.8);
        close(pc[2].f1, 0.0);
        // UA over the three classes present in the truth (sad and fear absent).
        close(m.unweighted_accuracy(), (2.0 / 3.0 + 1.0 + 0.0) / 3.0);
        close(m.macro_f1(), (2.0 / 3.0 + 0.8 + 0.0) / 3.0);
        close(m.weighted_f1(), (3.0 * 2.0 / 3.0 + 2.0 * 0.8) / 6.0);
        assert_eq!(pc[3].support, 0);
    }

    #[test]
    fn a_class_only_predicted_counts_in_macro_f1_but_not_in_ua() {
        let mut m = ConfusionMatrix::new();
        m.add(Sad, Sad);
        m.add(Sad, Fear);
        close(m.unweighted_accuracy(), 0.5);
        // sad: P 1, R 0.5, F1 2/3; fear: predicted once, never true: F1 0.
        close(m.macro_f1(), (2.0 / 3.0) / 2.0);
    }

    #[test]
    fn empty_and_perfect() {
        let m = ConfusionMatrix::new();
        assert_eq!(
            (
                m.accuracy(),
                m.unweighted_accuracy(),
                m.macro_f1(),
                m.weighted_f1()
            ),
            (0.0, 0.0, 0.0, 0.0)
        );
        let mut p = ConfusionMatrix::new();
        for e in Emotion::ALL {
            p.add(e, e);
        }
        let s = p.metrics();
        assert_eq!(
            (s.accuracy, s.ua, s.macro_f1, s.weighted_f1),
            (1.0, 1.0, 1.0, 1.0)
        );
        let mut merged = ConfusionMatrix::new();
        merged.merge(&p);
        merged.merge(&p);
        assert_eq!(merged.total(), 10);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["per_class"][4]["class"], "fear");
    }
}

//! Poisson client sampling: each client takes part in a round independently with probability
//! `q`, the sampling that the RDP accountant's amplification by subsampling assumes.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::PrivacyError;

/// The clients of one round: each of `clients` is kept independently with probability `q`, in
/// the given order, from `StdRng::seed_from_u64(seed)` (pass a seed derived for the round, e.g.
/// `fedser_fl::seed::derive(run_seed, round, 0, "poisson-sample")`).
///
/// The cohort size is Binomial(N, q): it varies from round to round and may be 0 (probability
/// `(1 − q)^N`); the caller must handle an empty round (count it as a round for accounting: the
/// mechanism still ran). Do not top up or resample an empty or small cohort — that would break
/// the Poisson assumption behind the accounting. Error: `q ∉ (0, 1]`.
pub fn poisson_sample(clients: &[usize], q: f64, seed: u64) -> Result<Vec<usize>, PrivacyError> {
    if !(q > 0.0 && q <= 1.0) {
        return Err(PrivacyError::SamplingRate(q));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(clients
        .iter()
        .copied()
        .filter(|_| rng.random_bool(q))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participation_rate_matches_q() {
        let clients: Vec<usize> = (0..100).collect();
        for q in [0.05, 0.3, 0.9] {
            let seeds = 2000u64;
            let mut per_client = vec![0u64; clients.len()];
            let mut total = 0u64;
            for seed in 0..seeds {
                let chosen = poisson_sample(&clients, q, seed).unwrap();
                assert!(chosen.windows(2).all(|w| w[0] < w[1]), "order kept");
                for &c in &chosen {
                    per_client[c] += 1;
                }
                total += chosen.len() as u64;
            }
            let n = (seeds * clients.len() as u64) as f64;
            let rate = total as f64 / n;
            let se = (q * (1.0 - q) / n).sqrt();
            assert!((rate - q).abs() < 4.0 * se, "q {q}: rate {rate}");
            // Every client individually near q (5 standard errors over 2000 rounds).
            let se_one = (q * (1.0 - q) / seeds as f64).sqrt();
            for (c, &k) in per_client.iter().enumerate() {
                let r = k as f64 / seeds as f64;
                assert!((r - q).abs() < 5.0 * se_one, "client {c}: {r} vs {q}");
            }
        }
    }

    #[test]
    fn empty_rounds_at_predicted_rate() {
        let clients: Vec<usize> = (0..20).collect();
        let q = 0.05;
        let rounds = 20_000u64;
        let empty = (0..rounds)
            .filter(|&s| poisson_sample(&clients, q, s).unwrap().is_empty())
            .count() as f64;
        let p = (1.0 - q).powi(20); // ≈ 0.358
        let rate = empty / rounds as f64;
        let se = (p * (1.0 - p) / rounds as f64).sqrt();
        assert!((rate - p).abs() < 4.0 * se, "empty rate {rate} vs {p}");
    }

    #[test]
    fn deterministic_and_edge_cases() {
        let clients: Vec<usize> = (10..60).collect();
        assert_eq!(
            poisson_sample(&clients, 0.4, 5).unwrap(),
            poisson_sample(&clients, 0.4, 5).unwrap()
        );
        assert_eq!(poisson_sample(&clients, 1.0, 5).unwrap(), clients);
        assert!(poisson_sample(&[], 0.5, 1).unwrap().is_empty());
        for q in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(matches!(
                poisson_sample(&clients, q, 0),
                Err(PrivacyError::SamplingRate(_))
            ));
        }
    }
}

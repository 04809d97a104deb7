//! Server optimisers: the aggregated update is treated as a pseudo-gradient and applied to the
//! global model (Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2), in
//! Flower's variant: Adam and Yogi start their moments at zero and correct their bias;
//! Adagrad has no first-moment momentum. `Sgd { lr: 1.0 }` is FedAvg: the new global model is
//! the (weighted) average of the clients'.

use serde::{Deserialize, Serialize};

/// How the aggregated update moves the global model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ServerOptimizer {
    /// `x += lr * delta`.
    Sgd { lr: f64 },
    /// FedAdagrad: `v += delta^2`.
    Adagrad { lr: f64, tau: f64 },
    /// FedAdam: `v = b2 v + (1 - b2) delta^2` (with bias correction).
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        tau: f64,
    },
    /// FedYogi: `v -= (1 - b2) delta^2 sign(v - delta^2)` (with bias correction).
    Yogi {
        lr: f64,
        beta1: f64,
        beta2: f64,
        tau: f64,
    },
}

/// Moments kept between rounds (empty for SGD).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerOptState {
    /// Rounds applied so far.
    pub step: u64,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

impl ServerOptimizer {
    /// The defaults of the adaptive optimisers (server rate 0.01 and tau 1e-3, the region
    /// Reddi et al. found robust; beta1 0.9, beta2 0.99).
    pub fn adam() -> Self {
        ServerOptimizer::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        }
    }

    pub fn yogi() -> Self {
        ServerOptimizer::Yogi {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        }
    }

    pub fn adagrad() -> Self {
        ServerOptimizer::Adagrad {
            lr: 0.01,
            tau: 1e-3,
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), String> {
        let (lr, betas, tau) = match *self {
            ServerOptimizer::Sgd { lr } => (lr, None, 1.0),
            ServerOptimizer::Adagrad { lr, tau } => (lr, None, tau),
            ServerOptimizer::Adam {
                lr,
                beta1,
                beta2,
                tau,
            }
            | ServerOptimizer::Yogi {
                lr,
                beta1,
                beta2,
                tau,
            } => (lr, Some((beta1, beta2)), tau),
        };
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("server learning rate {lr} must be positive"));
        }
        if !(tau > 0.0 && tau.is_finite()) {
            return Err(format!("tau {tau} must be positive"));
        }
        if let Some((b1, b2)) = betas
            && !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2))
        {
            return Err(format!("betas ({b1}, {b2}) must be in [0, 1)"));
        }
        Ok(())
    }

    /// Applies `delta` to the coordinates of `global` where `adaptive` is true; the others
    /// (statistics such as batch-norm running means, which are not trained by gradients) take
    /// the plain aggregated value.
    pub fn apply(
        &self,
        state: &mut ServerOptState,
        global: &mut [f32],
        delta: &[f32],
        adaptive: &[bool],
    ) {
        let n = global.len();
        state.step += 1;
        let t = state.step as f64;
        let plain = |global: &mut [f32], lr: f64| {
            for ((x, &d), &a) in global.iter_mut().zip(delta).zip(adaptive) {
                *x += if a { (lr * d as f64) as f32 } else { d };
            }
        };
        match *self {
            ServerOptimizer::Sgd { lr } => plain(global, lr),
            ServerOptimizer::Adagrad { lr, tau } => {
                if state.v.len() != n {
                    state.v = vec![(tau * tau) as f32; n];
                }
                for i in 0..n {
                    let d = delta[i] as f64;
                    if !adaptive[i] {
                        global[i] += delta[i];
                        continue;
                    }
                    let v = state.v[i] as f64 + d * d;
                    state.v[i] = v as f32;
                    global[i] += (lr * d / (v.sqrt() + tau)) as f32;
                }
            }
            ServerOptimizer::Adam {
                lr,
                beta1,
                beta2,
                tau,
            }
            | ServerOptimizer::Yogi {
                lr,
                beta1,
                beta2,
                tau,
            } => {
                let yogi = matches!(self, ServerOptimizer::Yogi { .. });
                if state.m.len() != n {
                    state.m = vec![0.0; n];
                    state.v = vec![0.0; n];
                }
                let m_hat = 1.0 - beta1.powf(t);
                let v_hat = 1.0 - beta2.powf(t);
                for i in 0..n {
                    let d = delta[i] as f64;
                    if !adaptive[i] {
                        global[i] += delta[i];
                        continue;
                    }
                    let m = beta1 * state.m[i] as f64 + (1.0 - beta1) * d;
                    let v_prev = state.v[i] as f64;
                    let d2 = d * d;
                    let v = if yogi {
                        v_prev - (1.0 - beta2) * d2 * (v_prev - d2).signum()
                    } else {
                        beta2 * v_prev + (1.0 - beta2) * d2
                    };
                    state.m[i] = m as f32;
                    state.v[i] = v as f32;
                    let step = lr * (m / m_hat) / ((v.max(0.0) / v_hat).sqrt() + tau);
                    global[i] += step as f32;
                }
            }
        }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            ServerOptimizer::Sgd { .. } => "sgd",
            ServerOptimizer::Adagrad { .. } => "adagrad",
            ServerOptimizer::Adam { .. } => "adam",
            ServerOptimizer::Yogi { .. } => "yogi",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_with_rate_one_adds_the_update() {
        let mut x = vec![1.0, 2.0];
        let mut s = ServerOptState::default();
        ServerOptimizer::Sgd { lr: 1.0 }.apply(&mut s, &mut x, &[0.5, -1.0], &[true, true]);
        assert_eq!(x, vec![1.5, 1.0]);
    }

    #[test]
    fn adam_first_step_moves_each_coordinate_by_about_the_rate() {
        // Bias-corrected first step: m_hat = d, v_hat = d^2, so the step is lr * d / (|d| + tau).
        let opt = ServerOptimizer::Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let mut x = vec![0.0f32, 0.0, 5.0];
        let mut s = ServerOptState::default();
        opt.apply(&mut s, &mut x, &[2.0, -0.5, 1.0], &[true, true, false]);
        assert!((x[0] - 0.1 * 2.0 / 2.001).abs() < 1e-6, "{}", x[0]);
        assert!((x[1] + 0.1 * 0.5 / 0.501).abs() < 1e-6, "{}", x[1]);
        // A statistic takes the plain update.
        assert_eq!(x[2], 6.0);
        assert_eq!(s.step, 1);
    }

    #[test]
    fn yogi_and_adagrad_follow_their_second_moment_rules() {
        let mut s = ServerOptState::default();
        let mut x = vec![0.0f32];
        ServerOptimizer::adagrad().apply(&mut s, &mut x, &[0.3], &[true]);
        // v = tau^2 + 0.09
        let v = 1e-6f64 + 0.09;
        assert!((x[0] as f64 - 0.01 * 0.3 / (v.sqrt() + 1e-3)).abs() < 1e-7);

        // Yogi's v grows additively towards d^2 rather than geometrically.
        let mut s = ServerOptState::default();
        let mut x = vec![0.0f32];
        let yogi = ServerOptimizer::yogi();
        yogi.apply(&mut s, &mut x, &[1.0], &[true]);
        // v0 = 0 < d^2: v = 0 + 0.01 * 1 = 0.01.
        assert!((s.v[0] - 0.01).abs() < 1e-7);
        yogi.apply(&mut s, &mut x, &[1.0], &[true]);
        assert!((s.v[0] - 0.02).abs() < 1e-7);
        assert!(x[0] > 0.0);
    }

    #[test]
    fn bad_hyper_parameters_are_refused() {
        assert!(ServerOptimizer::Sgd { lr: 0.0 }.validate().is_err());
        assert!(
            ServerOptimizer::Adagrad { lr: 0.1, tau: 0.0 }
                .validate()
                .is_err()
        );
        assert!(
            ServerOptimizer::Adam {
                lr: 0.1,
                beta1: 1.0,
                beta2: 0.9,
                tau: 1e-3
            }
            .validate()
            .is_err()
        );
        assert!(ServerOptimizer::adam().validate().is_ok());
    }
}

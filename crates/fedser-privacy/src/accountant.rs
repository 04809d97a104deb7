//! Rényi-DP accounting of the Poisson-subsampled Gaussian mechanism: RDP curves, their
//! conversion to (ε, δ), an accountant that composes rounds, and the noise multiplier that
//! meets a target ε.
//!
//! This is a port of the maths of Opacus 1.6.0 (`opacus/accountants/analysis/rdp.py`,
//! `RDPAccountant`, `get_noise_multiplier`), which implements Mironov, Talwar & Zhang 2019,
//! "Rényi Differential Privacy of the Sampled Gaussian Mechanism" (arXiv:1908.10530), with the
//! conversion of Balle et al. 2020 (Theorem 21 of arXiv:1905.09982). It reproduces Opacus' ε and
//! best order on the reference rows in `tests/golden/rdp_golden.csv` (see `tests/accountant.rs`).
//!
//! Conventions:
//! - `q` is the Poisson sampling rate of one step (each client independently), in (0, 1].
//! - `z` is the noise multiplier: noise std ÷ L2 sensitivity (the clip norm), > 0.
//! - Adjacency is add/remove-one (as in Opacus and dp-accounting's `ADD_OR_REMOVE_ONE`).
//! - ε is in nats (natural logarithms), as everywhere in the DP literature.

use serde::{Deserialize, Serialize};

use crate::error::PrivacyError;

/// Number of orders in [`DEFAULT_ORDERS`].
pub const DEFAULT_ORDERS_LEN: usize = 151;

/// Opacus' `RDPAccountant.DEFAULT_ALPHAS`: 1.1, 1.2, …, 10.9 (built as `1 + x/10` like Python,
/// so bit for bit the same floats), then 12, 13, …, 63. 11 is **not** in the grid.
pub const DEFAULT_ORDERS: [f64; DEFAULT_ORDERS_LEN] = default_orders();

const fn default_orders() -> [f64; DEFAULT_ORDERS_LEN] {
    let mut out = [0.0; DEFAULT_ORDERS_LEN];
    let mut x = 1;
    while x < 100 {
        out[x - 1] = 1.0 + x as f64 / 10.0;
        x += 1;
    }
    let mut a = 12;
    while a < 64 {
        out[99 + a - 12] = a as f64;
        a += 1;
    }
    out
}

/// Largest noise multiplier [`noise_multiplier_for`] is usually asked to try (a suggestion for
/// its `max_z` argument).
pub const DEFAULT_MAX_NOISE_MULTIPLIER: f64 = 1e3;

/// Width of the final bracket of the bisection in [`noise_multiplier_for`].
pub const NOISE_MULTIPLIER_TOLERANCE: f64 = 1e-4;

/// Terms of the fractional-order series below `exp(-30)` stop it (as in Opacus).
const SERIES_CUTOFF: f64 = -30.0;

/// Safety net against a series that never falls below the cutoff (cannot happen for valid
/// inputs: the terms decay at least polynomially in the index).
const SERIES_MAX_TERMS: usize = 10_000_000;

fn check_q(q: f64) -> Result<(), PrivacyError> {
    if q > 0.0 && q <= 1.0 {
        Ok(())
    } else {
        Err(PrivacyError::SamplingRate(q))
    }
}

fn check_z(z: f64) -> Result<(), PrivacyError> {
    if z.is_finite() && z > 0.0 {
        Ok(())
    } else {
        Err(PrivacyError::NoiseMultiplier(z))
    }
}

fn check_delta(delta: f64) -> Result<(), PrivacyError> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(PrivacyError::Delta(delta))
    }
}

fn check_orders(orders: &[f64]) -> Result<(), PrivacyError> {
    if orders.is_empty() {
        return Err(PrivacyError::NoOrders);
    }
    match orders.iter().find(|a| !(a.is_finite() && **a > 1.0)) {
        Some(&bad) => Err(PrivacyError::Order(bad)),
        None => Ok(()),
    }
}

/// RDP of the Poisson-subsampled Gaussian mechanism composed `steps` times, at each order.
///
/// `rdp[k]` is the Rényi divergence bound at `orders[k]` (nats), i.e. Opacus'
/// `compute_rdp(q=q, noise_multiplier=z, steps=steps, orders=orders)`: the one-step value times
/// `steps`. At `q = 1` it is the closed form `α / (2 z²)` per step. A value may be `+inf` for
/// extreme inputs (tiny `z`, huge integer orders), which [`epsilon`] then ignores.
///
/// `steps = 0` gives all zeros (nothing composed). Errors: `q ∉ (0, 1]`, `z` not finite and > 0,
/// empty `orders` or an order not finite and > 1.
pub fn rdp(q: f64, z: f64, steps: u64, orders: &[f64]) -> Result<Vec<f64>, PrivacyError> {
    check_q(q)?;
    check_z(z)?;
    check_orders(orders)?;
    if steps == 0 {
        return Ok(vec![0.0; orders.len()]);
    }
    orders
        .iter()
        .map(|&alpha| Ok(rdp_one_step(q, z, alpha)? * steps as f64))
        .collect()
}

/// One step's RDP at order `alpha` (Opacus `_compute_rdp`), inputs already validated.
fn rdp_one_step(q: f64, sigma: f64, alpha: f64) -> Result<f64, PrivacyError> {
    if q == 1.0 {
        return Ok(alpha / (2.0 * (sigma * sigma)));
    }
    let log_a = if alpha.fract() == 0.0 {
        log_a_int(q, sigma, alpha)
    } else {
        log_a_frac(q, sigma, alpha).ok_or(PrivacyError::Numerical { q, z: sigma, alpha })?
    };
    Ok(log_a / (alpha - 1.0))
}

/// `ln(e^x + e^y)`, exact for `-inf` inputs (Opacus `_log_add`).
fn log_add(logx: f64, logy: f64) -> f64 {
    let (a, b) = if logx <= logy {
        (logx, logy)
    } else {
        (logy, logx)
    };
    if a == f64::NEG_INFINITY {
        return b;
    }
    (a - b).exp().ln_1p() + b
}

/// `ln(e^x − e^y)`, `None` when `x < y` (Opacus `_log_sub`, which raises there). Like Python's
/// `math.expm1`, which raises on overflow and makes Opacus return `logx`, an overflowing
/// `expm1` gives `logx`.
fn log_sub(logx: f64, logy: f64) -> Option<f64> {
    if logx < logy {
        return None;
    }
    if logy == f64::NEG_INFINITY {
        return Some(logx);
    }
    if logx == logy {
        return Some(f64::NEG_INFINITY);
    }
    let d = (logx - logy).exp_m1();
    if d.is_infinite() {
        return Some(logx);
    }
    Some(d.ln() + logy)
}

/// Binomial coefficient C(n, k) for integer `k ≥ 0` and real `n`. For `k < 20` (after the
/// integer symmetry `k → n − k`) exactly as scipy's `special.binom` computes it: a product of
/// `k` factors over `k!`, rescaled to avoid overflow. For larger `k` (only integer `n`, up to
/// the order 1024 of dp-accounting's grid) scipy switches to a beta-function formula; here the
/// running product `C(n−k+i, i) = C(n−k+i−1, i−1)/i·(n−k+i)`, which never exceeds the result
/// (so never overflows when the result is finite) and agrees to ~1e-13 relative.
fn binom(n: f64, k: u64) -> f64 {
    let mut kx = k as f64;
    if n.fract() == 0.0 && kx > n / 2.0 && n > 0.0 {
        kx = n - kx;
    }
    let mut i = 1.0;
    if kx >= 20.0 {
        let mut c = 1.0;
        while i <= kx {
            c = c / i * (i + n - kx);
            i += 1.0;
        }
        return c;
    }
    let mut num = 1.0;
    let mut den = 1.0;
    while i <= kx {
        num *= i + n - kx;
        den *= i;
        if num.abs() > 1e50 {
            num /= den;
            den = 1.0;
        }
        i += 1.0;
    }
    num / den
}

/// `ln A_α` for integer `α` (Opacus `_compute_log_a_for_int_alpha`): a binomial sum in log
/// space, `A_α = Σ_i C(α, i) q^i (1−q)^(α−i) exp((i² − i) / (2σ²))`.
fn log_a_int(q: f64, sigma: f64, alpha: f64) -> f64 {
    let n = alpha as u64;
    let ln_q = q.ln();
    let ln_1mq = (1.0 - q).ln();
    let two_var = 2.0 * (sigma * sigma);
    let mut log_a = f64::NEG_INFINITY;
    for i in 0..=n {
        let fi = i as f64;
        let log_coef = binom(alpha, i).ln() + fi * ln_q + (n - i) as f64 * ln_1mq;
        let s = log_coef + (i * i - i) as f64 / two_var;
        log_a = log_add(log_a, s);
    }
    log_a
}

/// `ln A_α` for fractional `α` (Opacus `_compute_log_a_for_frac_alpha`): two series over the
/// integrals on (−∞, z₀] and [z₀, ∞), with erfc factors; the sign of the generalised binomial
/// coefficient C(α, i) decides whether a term is added or subtracted. `None` if a partial sum
/// would go negative (Opacus raises) or the series does not converge.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> Option<f64> {
    let mut log_a0 = f64::NEG_INFINITY;
    let mut log_a1 = f64::NEG_INFINITY;
    let var = sigma * sigma;
    let two_var = 2.0 * var;
    let z0 = var * (1.0 / q - 1.0).ln() + 0.5;
    let ln_q = q.ln();
    let ln_1mq = (1.0 - q).ln();
    let ln_half = 0.5f64.ln();
    let erfc_scale = std::f64::consts::SQRT_2 * sigma;

    // C(α, i) for i < 20 exactly as scipy does; beyond, by the recurrence
    // C(α, i) = C(α, i−1)·(α − i + 1)/i (scipy's beta-function branch agrees to ~1e-13).
    let mut coef = 1.0;
    for i in 0..SERIES_MAX_TERMS {
        let fi = i as f64;
        coef = if i < 20 {
            binom(alpha, i as u64)
        } else {
            coef * (alpha - (fi - 1.0)) / fi
        };
        let log_coef = coef.abs().ln();
        let j = alpha - fi;

        let log_t0 = log_coef + fi * ln_q + j * ln_1mq;
        let log_t1 = log_coef + j * ln_q + fi * ln_1mq;

        let log_e0 = ln_half + log_erfc((fi - z0) / erfc_scale);
        let log_e1 = ln_half + log_erfc((z0 - j) / erfc_scale);

        let log_s0 = log_t0 + (i * i - i) as f64 / two_var + log_e0;
        let log_s1 = log_t1 + (j * j - j) / two_var + log_e1;

        if coef > 0.0 {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0)?;
            log_a1 = log_sub(log_a1, log_s1)?;
        }

        if log_s0.is_nan() || log_s1.is_nan() {
            return None;
        }
        if log_s0.max(log_s1) < SERIES_CUTOFF {
            return Some(log_add(log_a0, log_a1));
        }
    }
    None
}

/// Above this argument `ln(libm::erfc(x))` is replaced by the asymptotic series of `erfcx`
/// (`libm::erfc` goes subnormal near 26.5 and reaches 0 at 28).
const ERFC_DIRECT_MAX: f64 = 26.0;

/// `ln(erfc(x))`, accurate for all `x` (Opacus `_log_erfc`, which is
/// `ln 2 + scipy.special.log_ndtr(−x·√2)`).
///
/// Follows scipy's `log_ndtr` branches: with `y = −x√2` and `t = y/√2`,
/// - `y ≥ −1`: `ln 2 + ln1p(−erfc(t)/2)` (as scipy);
/// - `y < −1` (so `u = −t > 1/√2`): scipy computes `ln(erfcx(u)) − u²`; here
///   `ln(erfc(u))` directly while `erfc(u)` is a normal float (u < 26, relative error ~1 ulp),
///   and for `u ≥ 26` `ln(erfcx(u)) − u²` with the asymptotic series
///   `erfcx(u) = 1/(u√π) · Σ_k (−1)^k (2k−1)!! / (2u²)^k`, whose truncation after 10 terms is
///   below 1e-22 there.
pub fn log_erfc(x: f64) -> f64 {
    let y = -x * std::f64::consts::SQRT_2;
    let t = y * std::f64::consts::FRAC_1_SQRT_2;
    if y < -1.0 {
        let u = -t;
        if u < ERFC_DIRECT_MAX {
            libm::erfc(u).ln()
        } else {
            ln_erfcx_asymptotic(u) - u * u
        }
    } else {
        std::f64::consts::LN_2 + (-libm::erfc(t) / 2.0).ln_1p()
    }
}

/// `ln(erfcx(u))` for `u ≥ 26` by the asymptotic series (10 terms).
fn ln_erfcx_asymptotic(u: f64) -> f64 {
    let inv_2u2 = 1.0 / (2.0 * u * u);
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..=10 {
        term *= -((2 * k - 1) as f64) * inv_2u2;
        sum += term;
    }
    sum.ln() - u.ln() - 0.5 * std::f64::consts::PI.ln()
}

/// ε for a given δ from an RDP curve, and the order that achieves it (Opacus
/// `get_privacy_spent`).
///
/// ε = min over α of `RDP(α) − (ln δ + ln α)/(α − 1) + ln((α − 1)/α)`, evaluated in that order
/// of operations. Ties go to the first (smallest-index) order, NaN entries are skipped (numpy's
/// `nanargmin`); if every entry is NaN the result is `(+inf, NaN)` as in Opacus. Where Opacus
/// would return NaN (the minimum is `+inf` and a NaN comes first) this returns `+inf`. No clamp
/// at 0: like Opacus, ε can come out negative only for δ close to 1.
///
/// Errors: empty `orders`, an order not finite and > 1, different lengths, δ ∉ (0, 1).
pub fn epsilon(orders: &[f64], rdp: &[f64], delta: f64) -> Result<(f64, f64), PrivacyError> {
    check_orders(orders)?;
    if orders.len() != rdp.len() {
        return Err(PrivacyError::LengthMismatch {
            orders: orders.len(),
            values: rdp.len(),
        });
    }
    check_delta(delta)?;
    let ln_delta = delta.ln();
    let eps: Vec<f64> = orders
        .iter()
        .zip(rdp)
        .map(|(&a, &r)| r - (ln_delta + a.ln()) / (a - 1.0) + ((a - 1.0) / a).ln())
        .collect();
    if eps.iter().all(|e| e.is_nan()) {
        return Ok((f64::INFINITY, f64::NAN));
    }
    // nanargmin: NaN counts as +inf, first minimum wins.
    let mut best = 0;
    let mut best_val = f64::INFINITY;
    for (k, &e) in eps.iter().enumerate() {
        let v = if e.is_nan() { f64::INFINITY } else { e };
        if v < best_val {
            best = k;
            best_val = v;
        }
    }
    let e = if eps[best].is_nan() {
        f64::INFINITY
    } else {
        eps[best]
    };
    Ok((e, orders[best]))
}

/// One accounted event: `steps` consecutive rounds of the Poisson-subsampled Gaussian mechanism
/// with sampling rate `q` and noise multiplier `z`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrivacyEvent {
    /// Poisson sampling rate, in (0, 1].
    pub q: f64,
    /// Noise multiplier (noise std ÷ clip norm), > 0.
    pub z: f64,
    /// Number of rounds, ≥ 1.
    pub steps: u64,
}

/// Accumulates rounds of the subsampled Gaussian mechanism and reports the ε spent (Opacus'
/// `RDPAccountant`).
///
/// Rounds may change `q` or `z` (adaptive clipping, a new cohort size): the RDP curves of the
/// events add up (composition). Consecutive rounds with identical `(q, z)` are merged into one
/// event, as Opacus does, so `history()` stays short and ε is bit-for-bit Opacus' for the same
/// sequence of `step` calls. Serializable (serde) for checkpoints; deserializing validates the
/// state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AccountantState")]
pub struct RdpAccountant {
    orders: Vec<f64>,
    history: Vec<PrivacyEvent>,
}

/// The serialized form, checked on the way in.
#[derive(Deserialize)]
struct AccountantState {
    orders: Vec<f64>,
    history: Vec<PrivacyEvent>,
}

impl TryFrom<AccountantState> for RdpAccountant {
    type Error = PrivacyError;

    fn try_from(state: AccountantState) -> Result<Self, Self::Error> {
        let mut acc = RdpAccountant::with_orders(state.orders)?;
        for e in state.history {
            check_q(e.q)?;
            check_z(e.z)?;
            if e.steps == 0 {
                return Err(PrivacyError::ZeroSteps);
            }
            acc.history.push(e);
        }
        Ok(acc)
    }
}

impl Default for RdpAccountant {
    fn default() -> Self {
        Self::new()
    }
}

impl RdpAccountant {
    /// An empty accountant on [`DEFAULT_ORDERS`].
    pub fn new() -> Self {
        Self {
            orders: DEFAULT_ORDERS.to_vec(),
            history: Vec::new(),
        }
    }

    /// An empty accountant on a custom order grid (each finite and > 1).
    pub fn with_orders(orders: Vec<f64>) -> Result<Self, PrivacyError> {
        check_orders(&orders)?;
        Ok(Self {
            orders,
            history: Vec::new(),
        })
    }

    /// Accounts one round with sampling rate `q` and noise multiplier `z`.
    pub fn step(&mut self, q: f64, z: f64) -> Result<(), PrivacyError> {
        self.record(q, z, 1)
    }

    /// Accounts `steps` rounds with sampling rate `q` and noise multiplier `z`. `steps = 0`
    /// records nothing (after validating `q` and `z`).
    pub fn record(&mut self, q: f64, z: f64, steps: u64) -> Result<(), PrivacyError> {
        check_q(q)?;
        check_z(z)?;
        if steps == 0 {
            return Ok(());
        }
        match self.history.last_mut() {
            Some(last) if last.q == q && last.z == z => last.steps += steps,
            _ => self.history.push(PrivacyEvent { q, z, steps }),
        }
        Ok(())
    }

    /// The accounted events, oldest first.
    pub fn history(&self) -> &[PrivacyEvent] {
        &self.history
    }

    /// The RDP orders used.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// Total number of rounds accounted.
    pub fn total_steps(&self) -> u64 {
        self.history.iter().map(|e| e.steps).sum()
    }

    /// The composed RDP curve: the sum over events of `rdp(q, z, steps, orders)`.
    pub fn rdp(&self) -> Result<Vec<f64>, PrivacyError> {
        let mut total = vec![0.0; self.orders.len()];
        for e in &self.history {
            let curve = rdp(e.q, e.z, e.steps, &self.orders)?;
            for (t, c) in total.iter_mut().zip(curve) {
                *t += c;
            }
        }
        Ok(total)
    }

    /// The ε spent so far for `delta`, and the order that gives it.
    ///
    /// With no rounds accounted this is `(0.0, 0.0)` — nothing spent, no order — as in Opacus
    /// (the conversion formula applied to a zero curve would report a positive ε instead).
    /// Cost: one RDP curve per event in `history()` (merged runs count once).
    pub fn epsilon(&self, delta: f64) -> Result<(f64, f64), PrivacyError> {
        check_delta(delta)?;
        if self.history.is_empty() {
            return Ok((0.0, 0.0));
        }
        epsilon(&self.orders, &self.rdp()?, delta)
    }
}

/// The smallest noise multiplier `z` (within [`NOISE_MULTIPLIER_TOLERANCE`] = 1e-4) whose ε after
/// `steps` rounds at sampling rate `q` is ≤ `target_eps` for `delta`, on [`DEFAULT_ORDERS`].
///
/// Like Opacus' `get_noise_multiplier`, a bisection; here on `z` itself over `(0, max_z]`
/// until the bracket is narrower than 1e-4, returning its upper end (so ε(z) ≤ target is
/// guaranteed and ε(z − 1e-4) > target, since ε falls as z grows).
/// [`DEFAULT_MAX_NOISE_MULTIPLIER`] (1e3) is a sensible `max_z`.
///
/// Errors: the usual input checks, `steps = 0`, `max_z` not finite and > 0, and
/// [`PrivacyError::TargetUnreachable`] (with the ε that `max_z` gives) when even `max_z` spends
/// more than `target_eps`.
pub fn noise_multiplier_for(
    target_eps: f64,
    q: f64,
    steps: u64,
    delta: f64,
    max_z: f64,
) -> Result<f64, PrivacyError> {
    if !(target_eps.is_finite() && target_eps > 0.0) {
        return Err(PrivacyError::TargetEpsilon(target_eps));
    }
    check_q(q)?;
    check_delta(delta)?;
    check_z(max_z)?;
    if steps == 0 {
        return Err(PrivacyError::ZeroSteps);
    }
    let eps_at = |z: f64| -> Result<f64, PrivacyError> {
        let curve = rdp(q, z, steps, &DEFAULT_ORDERS)?;
        Ok(epsilon(&DEFAULT_ORDERS, &curve, delta)?.0)
    };
    let eps_max = eps_at(max_z)?;
    if eps_max.is_nan() || eps_max > target_eps {
        return Err(PrivacyError::TargetUnreachable {
            target: target_eps,
            max_z,
            eps: eps_max,
        });
    }
    let (mut lo, mut hi) = (0.0, max_z);
    while hi - lo > NOISE_MULTIPLIER_TOLERANCE {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        // A NaN ε (cannot happen for valid inputs) counts as "over budget".
        if eps_at(mid)? <= target_eps {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_orders_match_opacus_grid() {
        assert_eq!(DEFAULT_ORDERS[0], 1.1);
        assert_eq!(DEFAULT_ORDERS[98], 10.9);
        assert_eq!(DEFAULT_ORDERS[99], 12.0);
        assert_eq!(DEFAULT_ORDERS[150], 63.0);
        assert!(!DEFAULT_ORDERS.contains(&11.0));
        // 1 + 3/10 is 1.3 in f64 (not 1.3000000000000003 from 1 + 0.1·3).
        assert_eq!(DEFAULT_ORDERS[2], 1.0 + 3.0 / 10.0);
        assert_eq!(DEFAULT_ORDERS[9], 2.0);
    }

    #[test]
    fn log_erfc_matches_libm_where_erfc_is_normal() {
        for &x in &[
            -30.0, -5.0, -1.0, -0.3, 0.0, 0.3, 0.7, 0.71, 1.0, 3.0, 10.0, 25.9,
        ] {
            let want = libm::erfc(x).ln();
            let got = log_erfc(x);
            assert!(
                (got - want).abs() <= 1e-13 * want.abs().max(1.0),
                "{x}: {got} {want}"
            );
        }
    }

    #[test]
    fn log_erfc_asymptotic_branch_matches_libm_where_both_apply() {
        // Where erfc(u) is still a normal float the asymptotic series must agree with it.
        for k in 0..=60 {
            let u = 20.0 + 0.1 * k as f64;
            let direct = libm::erfc(u).ln();
            let series = ln_erfcx_asymptotic(u) - u * u;
            assert!((direct - series).abs() < 1e-12, "{u}: {direct} {series}");
        }
        // Continuous across the switch at 26.
        let below = log_erfc(26.0 - 1e-12);
        let at = log_erfc(26.0);
        assert!((below - at).abs() < 1e-9, "{below} {at}");
        // Far out: ln erfc(x) ≈ −x² − ln(x√π) − 1/(2x²).
        let x: f64 = 1e4;
        let approx = -x * x - (x * std::f64::consts::PI.sqrt()).ln() - 0.5 / (x * x);
        assert!((log_erfc(x) - approx).abs() < 1e-15 * x * x);
        assert!(log_erfc(1e200).is_finite() || log_erfc(1e200) == f64::NEG_INFINITY);
    }

    #[test]
    fn log_add_and_sub() {
        assert_eq!(log_add(f64::NEG_INFINITY, 1.0), 1.0);
        assert!((log_add(0.0, 0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(log_sub(1.0, f64::NEG_INFINITY), Some(1.0));
        assert_eq!(log_sub(1.0, 1.0), Some(f64::NEG_INFINITY));
        assert_eq!(log_sub(0.0, 1.0), None);
        assert!((log_sub(2f64.ln(), 0.0).unwrap()).abs() < 1e-15);
        assert_eq!(log_sub(1000.0, 0.0), Some(1000.0));
    }

    #[test]
    fn binom_small_cases() {
        assert_eq!(binom(5.0, 2), 10.0);
        assert_eq!(binom(63.0, 40), binom(63.0, 23));
        assert!((binom(1.5, 3) - (1.5 * 0.5 * -0.5) / 6.0).abs() < 1e-16);
        // Exact values (Python: math.log(math.comb(n, k))). C(1024, 512) ≈ 4.5e306 overflows a
        // naive product; scipy gets it from the beta function.
        for (n, k, want) in [
            (1024.0, 512, 706.090_941_497_353_4),
            (1024.0, 300, 615.705_617_387_044_2),
            (200.0, 37, 93.153_767_125_705_37),
        ] {
            let got = binom(n, k).ln();
            assert!(
                (got - want).abs() < 1e-13 * want,
                "C({n}, {k}): {got} vs {want}"
            );
        }
    }
}

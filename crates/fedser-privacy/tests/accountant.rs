//! Checks the RDP accountant against Opacus 1.6.0 on 160 reference rows
//! (`tests/golden/rdp_golden.csv`), and its closed form, composition, monotonicity, noise
//! search and input validation.

use fedser_privacy::accountant::{
    DEFAULT_MAX_NOISE_MULTIPLIER, DEFAULT_ORDERS, RdpAccountant, epsilon, noise_multiplier_for, rdp,
};
use fedser_privacy::error::PrivacyError;

const GOLDEN: &str = include_str!("golden/rdp_golden.csv");

/// dp-accounting 0.6.0's default RDP orders: 1.1 … 10.9, 11 … 63, 128, 256, 512, 1024.
fn dp_accounting_orders() -> Vec<f64> {
    let mut o: Vec<f64> = (1..100).map(|x| 1.0 + x as f64 / 10.0).collect();
    o.extend((11..64).map(|a| a as f64));
    o.extend([128.0, 256.0, 512.0, 1024.0]);
    o
}

struct Row {
    q: f64,
    z: f64,
    steps: u64,
    delta: f64,
    eps: f64,
    alpha: f64,
    eps_dpa: f64,
    alpha_dpa: f64,
}

fn golden_rows() -> Vec<Row> {
    let mut lines = GOLDEN.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (cq, cz, cs, cd) = (col("q"), col("z"), col("steps"), col("delta"));
    let (ce, ca) = (col("eps_opacus"), col("best_alpha_opacus"));
    let (ce2, ca2) = (
        col("eps_opacus_dpa_orders"),
        col("best_alpha_opacus_dpa_orders"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |i: usize| f[i].trim().parse::<f64>().unwrap();
            Row {
                q: num(cq),
                z: num(cz),
                steps: f[cs].trim().parse().unwrap(),
                delta: num(cd),
                eps: num(ce),
                alpha: num(ca),
                eps_dpa: num(ce2),
                alpha_dpa: num(ca2),
            }
        })
        .collect()
}

fn check_grid(orders: &[f64], pick: fn(&Row) -> (f64, f64), label: &str) {
    let rows = golden_rows();
    assert_eq!(rows.len(), 160);
    let mut failures = Vec::new();
    let mut worst = 0.0f64;
    for (k, r) in rows.iter().enumerate() {
        let (want_eps, want_alpha) = pick(r);
        let curve = rdp(r.q, r.z, r.steps, orders).unwrap();
        let (eps, alpha) = epsilon(orders, &curve, r.delta).unwrap();
        let rel = ((eps - want_eps) / want_eps).abs();
        worst = worst.max(rel);
        if rel > 1e-9 || alpha != want_alpha {
            failures.push(format!(
                "row {k} (q {}, z {}, steps {}, delta {}): eps {eps} alpha {alpha}, \
                 want {want_eps} alpha {want_alpha} (rel {rel:.2e})",
                r.q, r.z, r.steps, r.delta
            ));
        }
    }
    eprintln!("{label}: worst relative error {worst:.3e}");
    assert!(
        failures.is_empty(),
        "{label}: {} rows off:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_rows_match_opacus_default_orders() {
    check_grid(&DEFAULT_ORDERS, |r| (r.eps, r.alpha), "Opacus orders");
}

#[test]
fn golden_rows_match_opacus_on_dp_accounting_orders() {
    check_grid(
        &dp_accounting_orders(),
        |r| (r.eps_dpa, r.alpha_dpa),
        "dp-accounting orders",
    );
}

#[test]
fn accountant_matches_free_functions_on_golden_rows() {
    for r in golden_rows().iter().step_by(7) {
        let mut acc = RdpAccountant::new();
        acc.record(r.q, r.z, r.steps).unwrap();
        let (eps, alpha) = acc.epsilon(r.delta).unwrap();
        assert_eq!((eps, alpha), {
            let c = rdp(r.q, r.z, r.steps, &DEFAULT_ORDERS).unwrap();
            epsilon(&DEFAULT_ORDERS, &c, r.delta).unwrap()
        });
        assert!(((eps - r.eps) / r.eps).abs() <= 1e-9);
    }
}

#[test]
fn closed_form_at_full_sampling() {
    for z in [0.3, 0.5, 1.0, 2.5] {
        let curve = rdp(1.0, z, 1, &DEFAULT_ORDERS).unwrap();
        for (&a, &v) in DEFAULT_ORDERS.iter().zip(&curve) {
            let want = a / (2.0 * z * z);
            assert!(
                (v - want).abs() <= 1e-15 * want,
                "z {z} α {a}: {v} vs {want}"
            );
        }
        let c10 = rdp(1.0, z, 10, &DEFAULT_ORDERS).unwrap();
        for (&a, &v) in DEFAULT_ORDERS.iter().zip(&c10) {
            assert!((v - 10.0 * a / (2.0 * z * z)).abs() <= 1e-14 * v);
        }
    }
}

#[test]
fn subsampled_rdp_is_below_full_and_tends_to_it() {
    let full = rdp(1.0, 1.0, 1, &DEFAULT_ORDERS).unwrap();
    let sub = rdp(0.999_999, 1.0, 1, &DEFAULT_ORDERS).unwrap();
    let small = rdp(0.01, 1.0, 1, &DEFAULT_ORDERS).unwrap();
    for k in 0..DEFAULT_ORDERS.len() {
        assert!(small[k] < full[k] && small[k] >= 0.0);
        assert!(
            (sub[k] - full[k]).abs() < 1e-4 * full[k],
            "α {}",
            DEFAULT_ORDERS[k]
        );
    }
}

#[test]
fn composition_adds_curves() {
    let (q, z) = (0.1, 0.8);
    let one = rdp(q, z, 1, &DEFAULT_ORDERS).unwrap();
    let ten = rdp(q, z, 10, &DEFAULT_ORDERS).unwrap();
    let mut summed = vec![0.0; one.len()];
    for _ in 0..10 {
        for (s, v) in summed.iter_mut().zip(&one) {
            *s += v;
        }
    }
    for (s, t) in summed.iter().zip(&ten) {
        assert!((s - t).abs() <= 1e-13 * t);
    }

    // Ten step() calls merge into one event of 10 steps: identical to record(q, z, 10).
    let mut a = RdpAccountant::new();
    for _ in 0..10 {
        a.step(q, z).unwrap();
    }
    let mut b = RdpAccountant::new();
    b.record(q, z, 10).unwrap();
    assert_eq!(a.history(), b.history());
    assert_eq!(a.epsilon(1e-5).unwrap(), b.epsilon(1e-5).unwrap());

    // A changed z (adaptive clipping) composes as the sum of the two curves.
    let mut c = RdpAccountant::new();
    c.record(q, z, 5).unwrap();
    c.record(q, 1.3, 5).unwrap();
    c.step(q, z).unwrap();
    assert_eq!(c.history().len(), 3);
    assert_eq!(c.total_steps(), 11);
    let r1 = rdp(q, z, 5, &DEFAULT_ORDERS).unwrap();
    let r2 = rdp(q, 1.3, 5, &DEFAULT_ORDERS).unwrap();
    let r3 = rdp(q, z, 1, &DEFAULT_ORDERS).unwrap();
    let total = c.rdp().unwrap();
    for k in 0..total.len() {
        assert!((total[k] - (r1[k] + r2[k] + r3[k])).abs() <= 1e-15 * total[k]);
    }
    let (e_c, _) = c.epsilon(1e-5).unwrap();
    let (e_lo, _) = {
        let mut x = RdpAccountant::new();
        x.record(q, 1.3, 11).unwrap();
        x.epsilon(1e-5).unwrap()
    };
    let (e_hi, _) = {
        let mut x = RdpAccountant::new();
        x.record(q, z, 11).unwrap();
        x.epsilon(1e-5).unwrap()
    };
    assert!(e_lo < e_c && e_c < e_hi);
}

#[test]
fn empty_accountant_and_zero_steps() {
    let mut acc = RdpAccountant::new();
    assert_eq!(acc.epsilon(1e-5).unwrap(), (0.0, 0.0));
    acc.record(0.1, 1.0, 0).unwrap();
    assert!(acc.history().is_empty());
    assert_eq!(acc.epsilon(1e-5).unwrap(), (0.0, 0.0));
    assert!(
        rdp(0.1, 1.0, 0, &DEFAULT_ORDERS)
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(matches!(acc.epsilon(0.0), Err(PrivacyError::Delta(_))));
}

#[test]
fn epsilon_is_monotone() {
    let eps = |q: f64, z: f64, steps: u64| {
        let c = rdp(q, z, steps, &DEFAULT_ORDERS).unwrap();
        epsilon(&DEFAULT_ORDERS, &c, 1e-5).unwrap().0
    };
    let zs = [0.5, 0.7, 1.0, 1.5, 2.0, 4.0];
    for w in zs.windows(2) {
        assert!(eps(0.05, w[1], 100) < eps(0.05, w[0], 100), "z {w:?}");
    }
    let steps = [1, 10, 100, 1000];
    for w in steps.windows(2) {
        assert!(eps(0.05, 1.0, w[1]) > eps(0.05, 1.0, w[0]), "steps {w:?}");
    }
    let qs = [0.001, 0.01, 0.1, 0.5, 1.0];
    for w in qs.windows(2) {
        assert!(eps(w[1], 1.0, 100) > eps(w[0], 1.0, 100), "q {w:?}");
    }
}

#[test]
fn noise_multiplier_round_trips() {
    let eps = |q: f64, z: f64, steps: u64, delta: f64| {
        let c = rdp(q, z, steps, &DEFAULT_ORDERS).unwrap();
        epsilon(&DEFAULT_ORDERS, &c, delta).unwrap().0
    };
    for (target, q, steps, delta) in [
        (1.0, 0.01, 1000, 1e-5),
        (8.0, 0.1, 100, 1e-5),
        (3.0, 0.5, 10, 1e-3),
        (10.0, 1.0, 1, 1e-5),
    ] {
        let z =
            noise_multiplier_for(target, q, steps, delta, DEFAULT_MAX_NOISE_MULTIPLIER).unwrap();
        assert!(eps(q, z, steps, delta) <= target, "ε({z}) > {target}");
        assert!(
            eps(q, z - 0.01, steps, delta) > target,
            "z {z} not the smallest"
        );
        assert!(
            eps(q, z - 2e-4, steps, delta) > target,
            "z {z} not within 2e-4"
        );
    }
}

#[test]
fn noise_multiplier_unreachable_target_reports_eps() {
    let err = noise_multiplier_for(1e-3, 1.0, 1000, 1e-5, 10.0).unwrap_err();
    match err {
        PrivacyError::TargetUnreachable { target, max_z, eps } => {
            assert_eq!((target, max_z), (1e-3, 10.0));
            assert!(eps > 1e-3 && eps.is_finite());
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn bad_inputs_are_errors() {
    let o = &DEFAULT_ORDERS;
    for q in [0.0, -0.5, 1.01, f64::NAN] {
        assert!(matches!(
            rdp(q, 1.0, 1, o),
            Err(PrivacyError::SamplingRate(_))
        ));
    }
    for z in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            rdp(0.1, z, 1, o),
            Err(PrivacyError::NoiseMultiplier(_))
        ));
    }
    assert!(matches!(rdp(0.1, 1.0, 1, &[]), Err(PrivacyError::NoOrders)));
    assert!(matches!(rdp(0.1, 1.0, 1, &[2.0, 1.0]), Err(PrivacyError::Order(v)) if v == 1.0));
    let c = rdp(0.1, 1.0, 1, o).unwrap();
    for d in [0.0, 1.0, -1e-5, f64::NAN] {
        assert!(matches!(epsilon(o, &c, d), Err(PrivacyError::Delta(_))));
    }
    assert!(matches!(
        epsilon(o, &c[1..], 1e-5),
        Err(PrivacyError::LengthMismatch { .. })
    ));
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            noise_multiplier_for(t, 0.1, 10, 1e-5, 100.0),
            Err(PrivacyError::TargetEpsilon(_))
        ));
    }
    assert!(matches!(
        noise_multiplier_for(1.0, 0.1, 0, 1e-5, 100.0),
        Err(PrivacyError::ZeroSteps)
    ));
    let mut acc = RdpAccountant::new();
    assert!(acc.step(0.0, 1.0).is_err());
    assert!(acc.step(0.1, -1.0).is_err());
    assert!(acc.history().is_empty());
    assert!(RdpAccountant::with_orders(vec![0.5]).is_err());
    let msg = rdp(0.1, -2.0, 1, o).unwrap_err().to_string();
    assert!(msg.contains("-2"), "{msg}");
}

#[test]
fn nan_and_inf_handling_follows_opacus() {
    let orders = [2.0, 3.0, 4.0];
    // NaN entries are skipped; ties go to the first order.
    let (e, a) = epsilon(&orders, &[f64::NAN, 1.0, 1.0], 0.5).unwrap();
    assert!(e.is_finite());
    assert!(a == 3.0 || a == 4.0);
    assert_eq!(epsilon(&[2.0, 2.0], &[1.0, 1.0], 1e-5).unwrap().1, 2.0);
    let (e, a) = epsilon(&orders, &[f64::NAN; 3], 1e-5).unwrap();
    assert!(e == f64::INFINITY && a.is_nan());
    let (e, a) = epsilon(&orders, &[f64::INFINITY, f64::NAN, 1.0], 1e-5).unwrap();
    assert!(e.is_finite() && a == 4.0);
}

#[test]
fn accountant_state_round_trips_through_serde() {
    let mut acc = RdpAccountant::new();
    acc.record(0.1, 1.1, 3).unwrap();
    acc.record(0.1, 0.9, 2).unwrap();
    let json = serde_json::to_string(&acc).unwrap();
    let back: RdpAccountant = serde_json::from_str(&json).unwrap();
    assert_eq!(back, acc);
    assert_eq!(back.epsilon(1e-5).unwrap(), acc.epsilon(1e-5).unwrap());
    // A corrupted checkpoint is rejected, not trusted.
    let bad = json.replace("\"z\":0.9", "\"z\":-0.9");
    assert!(serde_json::from_str::<RdpAccountant>(&bad).is_err());
}

#[test]
fn integer_orders_match_a_high_precision_binomial_sum() {
    // RDP(α) = ln(Σ_i C(α,i) q^i (1−q)^(α−i) e^((i²−i)/(2z²))) / (α − 1), evaluated with Python's
    // `decimal` at 60 digits (exact binomials). Covers dp-accounting's large orders 128 and 1024,
    // where C(α, i) needs care not to overflow.
    let cases = [
        (0.01, 0.5, 2.0, 0.005345502314345256),
        (0.01, 0.5, 63.0, 121.32055287552824),
        (0.01, 0.5, 128.0, 251.35856863144508),
        (0.01, 0.5, 1024.0, 2043.3903281813766),
        (0.1, 1.0, 2.0, 0.017036863236176553),
        (0.1, 1.0, 63.0, 29.160276437764114),
        (0.1, 1.0, 128.0, 61.67928431572253),
        (0.1, 1.0, 1024.0, 509.69516409068825),
        (0.5, 3.0, 2.0, 0.028956453084608938),
        (0.5, 3.0, 63.0, 2.796711846408866),
        (0.5, 3.0, 128.0, 6.412506828683143),
        (0.5, 3.0, 1024.0, 56.19506414510259),
        (0.01, 3.0, 2.0, 1.175183782106978e-05),
        (0.01, 3.0, 63.0, 0.00040059039106900903),
        (0.01, 3.0, 128.0, 2.4697540250844403),
        (0.01, 3.0, 1024.0, 52.279217070265425),
    ];
    for (q, z, alpha, want) in cases {
        let got = rdp(q, z, 1, &[alpha]).unwrap()[0];
        let rel = ((got - want) / want).abs();
        // Opacus' log-space sum loses ~1e-16 absolute on ln A_α: 1e-12 relative at RDP ~ 1e-5.
        assert!(
            rel < 1e-10,
            "q {q} z {z} α {alpha}: {got} vs {want} (rel {rel:.1e})"
        );
    }
}

//! Seeds derived from the run seed and what they are for, so every random decision of a round
//! (sampling, dropouts, a client's shuffling) is reproducible on its own, whatever order
//! threads finish in and whether the run was resumed.

/// A seed for `(base, round, client, purpose)` (SplitMix64 over the mixed inputs).
pub fn derive(base: u64, round: u32, client: u64, purpose: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in purpose.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z =
        base ^ h ^ (round as u64).rotate_left(32) ^ client.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    z
}

/// A uniform number in [0, 1) from a seed (for one-off decisions such as a dropout).
pub fn unit(seed: u64) -> f64 {
    (derive(seed, 0, 0, "unit") >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_every_input() {
        let a = derive(1, 2, 3, "fit");
        assert_ne!(a, derive(2, 2, 3, "fit"));
        assert_ne!(a, derive(1, 3, 3, "fit"));
        assert_ne!(a, derive(1, 2, 4, "fit"));
        assert_ne!(a, derive(1, 2, 3, "drop"));
        assert_eq!(a, derive(1, 2, 3, "fit"));
    }

    #[test]
    fn unit_is_roughly_uniform() {
        let n = 20_000;
        let below: usize = (0..n).filter(|&i| unit(i) < 0.25).count();
        let frac = below as f64 / n as f64;
        assert!((frac - 0.25).abs() < 0.02, "{frac}");
    }
}

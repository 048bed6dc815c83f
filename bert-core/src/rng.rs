//! The one random-number generator of the project: SplitMix64, small, seedable and the same on
//! every target, with the one shuffle every seeded order is drawn with (training epochs, held-out
//! splits). Dynamic masking, NSP pairs and dropout masks draw from it too.

/// A small, seedable pseudo-random generator (SplitMix64): deterministic on every target.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Shuffle `items` in place (Fisher-Yates from the last item down: one draw per item but
    /// the first).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_is_a_seeded_permutation() {
        let mut a: alloc::vec::Vec<u32> = (0..50).collect();
        let mut b = a.clone();
        Rng::new(7).shuffle(&mut a);
        Rng::new(7).shuffle(&mut b);
        assert_eq!(a, b, "the same seed, the same order");
        assert_ne!(a, (0..50).collect::<alloc::vec::Vec<_>>());
        a.sort_unstable();
        assert_eq!(a, (0..50).collect::<alloc::vec::Vec<_>>(), "a permutation");
        // The draws the project's seeded orders have always used.
        let mut c = [0, 1, 2, 3];
        let mut rng = Rng::new(1);
        let draws: alloc::vec::Vec<u64> = (1..4).rev().map(|i| rng.below(i + 1)).collect();
        Rng::new(1).shuffle(&mut c);
        let mut d = [0, 1, 2, 3];
        for (k, i) in (1..4usize).rev().enumerate() {
            d.swap(i, draws[k] as usize);
        }
        assert_eq!(c, d);
    }
}

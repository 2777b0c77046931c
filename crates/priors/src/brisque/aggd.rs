//! Moment-matching fit of an asymmetric generalised Gaussian distribution (AGGD), as the
//! `brisque` package does it for every coefficient map (its "GGD" feature for the MSCN map is
//! the same fit, reported as shape and mean variance).
//!
//! With `r̂ = E[|x|]² / E[x²]`, `γ̂ = σ_l / σ_r` (root mean squares of the negative and the
//! non-negative samples) and `R̂ = r̂ (γ̂³ + 1)(γ̂ + 1) / (γ̂² + 1)²`, the shape α solves
//! `Γ(2/α)² / (Γ(1/α) Γ(3/α)) = R̂`. The package finds that root with `scipy.optimize.root`
//! from 0.2; the left side rises monotonically in α, so bisection finds the same root to far
//! below the package's own tolerance. Where no root exists in [0.2, 10] the shape is clamped to
//! that interval: it is the grid the original BRISQUE searched, and the package's feature
//! normalisation (`max_` ≈ 9.9994 for the MSCN shape) was fitted on it.

/// Smallest shape searched (the original BRISQUE grid starts here, as does the package's root).
const MIN_SHAPE: f64 = 0.2;
/// Largest shape searched (the original BRISQUE grid ends here).
const MAX_SHAPE: f64 = 10.0;

/// Independent accumulator lanes: they break the add-latency chain and let the compiler
/// vectorise. (This reorders the sums, which moves results by about 1e-16 relative.)
const LANES: usize = 4;

/// Running sums from which the AGGD fit follows, filled a slice at a time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SignedMoments {
    sum_abs: [f64; LANES],
    negative_squares: [f64; LANES],
    nonnegative_squares: [f64; LANES],
    negative_count: [u64; LANES],
    count: u64,
}

impl SignedMoments {
    /// Adds one sample to `lane`. Branch-free: the sign of MSCN products is close to a coin
    /// toss, and mispredicted branches would dominate the feature pass.
    #[inline(always)]
    fn push_lane(&mut self, lane: usize, sample: f64) {
        let square = sample * sample;
        let negative = sample < 0.0;
        self.sum_abs[lane] += sample.abs();
        self.negative_squares[lane] += if negative { square } else { 0.0 };
        self.nonnegative_squares[lane] += if negative { 0.0 } else { square };
        self.negative_count[lane] += u64::from(negative);
    }

    /// Adds every sample of `samples`.
    pub(crate) fn push_samples(&mut self, samples: &[f64]) {
        let chunks = samples.chunks_exact(LANES);
        let remainder = chunks.remainder();
        for chunk in chunks {
            for (lane, &sample) in chunk.iter().enumerate() {
                self.push_lane(lane, sample);
            }
        }
        for &sample in remainder {
            self.push_lane(0, sample);
        }
        self.count += samples.len() as u64;
    }

    /// Adds the element-wise products `left[i] * right[i]` (the slices have equal length).
    pub(crate) fn push_products(&mut self, left: &[f64], right: &[f64]) {
        debug_assert_eq!(left.len(), right.len());
        let (left_chunks, right_chunks) = (left.chunks_exact(LANES), right.chunks_exact(LANES));
        let remainders = left_chunks.remainder().iter().zip(right_chunks.remainder());
        for (l, r) in left_chunks.zip(right_chunks) {
            for lane in 0..LANES {
                self.push_lane(lane, l[lane] * r[lane]);
            }
        }
        for (l, r) in remainders {
            self.push_lane(0, l * r);
        }
        self.count += left.len().min(right.len()) as u64;
    }

    /// The fitted distribution, or `None` when one side of zero carries no energy (the fit is
    /// undefined there; the package would produce NaN).
    pub(crate) fn fit(&self) -> Option<AggdFit> {
        let sum_abs: f64 = self.sum_abs.iter().sum();
        let negative_squares: f64 = self.negative_squares.iter().sum();
        let nonnegative_squares: f64 = self.nonnegative_squares.iter().sum();
        let negative_count: u64 = self.negative_count.iter().sum();
        let nonnegative_count = self.count - negative_count;
        if negative_count == 0
            || nonnegative_count == 0
            || negative_squares <= 0.0
            || nonnegative_squares <= 0.0
        {
            return None;
        }
        let count = self.count as f64;
        let mean_abs = sum_abs / count;
        let mean_square = (negative_squares + nonnegative_squares) / count;
        let left_std = (negative_squares / negative_count as f64).sqrt();
        let right_std = (nonnegative_squares / nonnegative_count as f64).sqrt();

        let r_hat = mean_abs * mean_abs / mean_square;
        let gamma = left_std / right_std;
        let big_r_hat =
            r_hat * (gamma.powi(3) + 1.0) * (gamma + 1.0) / (gamma * gamma + 1.0).powi(2);
        let shape = solve_shape(big_r_hat);

        let scale_constant = (0.5 * (ln_gamma(1.0 / shape) - ln_gamma(3.0 / shape))).exp();
        let mean = (right_std - left_std)
            * scale_constant
            * (ln_gamma(2.0 / shape) - ln_gamma(1.0 / shape)).exp();
        Some(AggdFit {
            shape,
            mean,
            left_variance: left_std * left_std,
            right_variance: right_std * right_std,
        })
    }
}

/// Parameters of a fitted AGGD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AggdFit {
    /// Shape α (2 = Gaussian, 1 = Laplacian).
    pub(crate) shape: f64,
    /// The distribution's mean, `(σ_r − σ_l) · √(Γ(1/α)/Γ(3/α)) · Γ(2/α)/Γ(1/α)`.
    pub(crate) mean: f64,
    /// σ_l², mean square of the negative samples.
    pub(crate) left_variance: f64,
    /// σ_r², mean square of the non-negative samples.
    pub(crate) right_variance: f64,
}

/// `Γ(2/α)² / (Γ(1/α) Γ(3/α))`, increasing in α from 0 towards 3/4.
fn shape_ratio(shape: f64) -> f64 {
    (2.0 * ln_gamma(2.0 / shape) - ln_gamma(1.0 / shape) - ln_gamma(3.0 / shape)).exp()
}

/// The α in [`MIN_SHAPE`, `MAX_SHAPE`] whose [`shape_ratio`] equals `target`, clamped.
fn solve_shape(target: f64) -> f64 {
    let (mut low, mut high) = (MIN_SHAPE, MAX_SHAPE);
    if target.is_nan() || target <= shape_ratio(low) {
        return low;
    }
    if target >= shape_ratio(high) {
        return high;
    }
    // 60 halvings of an interval under 10 wide leave it below 1e-17: past f64 resolution.
    for _ in 0..60 {
        let middle = 0.5 * (low + high);
        if shape_ratio(middle) < target {
            low = middle;
        } else {
            high = middle;
        }
    }
    0.5 * (low + high)
}

/// Arguments below this are shifted up before the asymptotic series is used.
const STIRLING_MIN_ARGUMENT: f64 = 10.0;

/// `ln Γ(x)` for `x > 0`: Stirling's series (Bernoulli terms through B₁₄, error below 1e-15
/// for x ≥ 10) after shifting small arguments up with `Γ(x + 1) = x Γ(x)`.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    debug_assert!(x > 0.0);
    let mut shifted = x;
    let mut product = 1.0;
    while shifted < STIRLING_MIN_ARGUMENT {
        product *= shifted;
        shifted += 1.0;
    }
    let inverse = 1.0 / shifted;
    let inverse_square = inverse * inverse;
    // B₂ₙ / (2n (2n − 1)) for n = 1..7, applied to x^−(2n−1) by Horner's rule in 1/x².
    let series = inverse
        * (1.0 / 12.0
            + inverse_square
                * (-1.0 / 360.0
                    + inverse_square
                        * (1.0 / 1260.0
                            + inverse_square
                                * (-1.0 / 1680.0
                                    + inverse_square
                                        * (1.0 / 1188.0
                                            + inverse_square
                                                * (-691.0 / 360_360.0
                                                    + inverse_square / 156.0))))));
    (shifted - 0.5) * shifted.ln() - shifted + 0.5 * (2.0 * std::f64::consts::PI).ln() + series
        - product.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(samples: &[f64]) -> SignedMoments {
        let mut moments = SignedMoments::default();
        moments.push_samples(samples);
        moments
    }

    #[test]
    fn products_and_lanes_add_up_like_one_sum() {
        let left: Vec<f64> = (0..11).map(|i| f64::from(i) - 4.5).collect();
        let right: Vec<f64> = (0..11).map(|i| 0.5 * f64::from(i % 3) - 0.25).collect();
        let products: Vec<f64> = left.iter().zip(&right).map(|(l, r)| l * r).collect();
        let mut by_products = SignedMoments::default();
        by_products.push_products(&left, &right);
        let by_samples = moments(&products);
        let one_at_a_time = products.iter().fold(SignedMoments::default(), |mut m, &p| {
            m.push_samples(&[p]);
            m
        });
        let fit = by_products.fit().unwrap();
        assert_eq!(fit, by_samples.fit().unwrap());
        let single = one_at_a_time.fit().unwrap();
        assert!((fit.shape - single.shape).abs() < 1e-12 && (fit.mean - single.mean).abs() < 1e-12);
        assert_eq!(by_products.count, 11);
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        let cases = [
            (0.5, 0.572_364_942_924_700_1), // ln √π
            (1.0, 0.0),
            (10.0, 12.801_827_480_081_469), // ln 9!
            (0.1, 2.252_712_651_734_205_5), // ln Γ(0.1)
            (15.0, 25.191_221_182_738_683), // ln 14!
            (2.5, 0.284_682_870_472_919_6),
        ];
        for (x, want) in cases {
            let got = ln_gamma(x);
            assert!(
                (got - want).abs() < 1e-13 * want.abs().max(1.0),
                "lnΓ({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn fit_matches_the_package_on_small_samples() {
        // brisque.BRISQUE().asymmetric_generalized_gaussian_fit(np.array(samples)) returns
        // (alpha, mean, sigma_l, sigma_r); the variances here are those sigmas squared.
        let cases: [(&[f64], [f64; 4]); 2] = [
            (
                &[-2.0, -1.0, 0.5, 1.0, 3.0, 0.0],
                [
                    1.737_076_041_508_925_3,
                    0.015_401_029_973_746_27,
                    1.581_138_830_084_189_8,
                    1.600_781_059_358_212_1,
                ],
            ),
            (
                &[-0.3, 0.1, 0.2, -0.05, 0.4, 0.0, 0.01],
                [
                    1.136_391_537_841_608_5,
                    -0.007_336_527_034_533_102,
                    0.215_058_131_676_065_66,
                    0.204_987_804_515_293_08,
                ],
            ),
        ];
        for (samples, [shape, mean, sigma_l, sigma_r]) in cases {
            let fit = moments(samples).fit().expect("both sides populated");
            assert!(
                (fit.shape - shape).abs() < 1e-7,
                "shape {} vs {shape}",
                fit.shape
            );
            assert!(
                (fit.mean - mean).abs() < 1e-8,
                "mean {} vs {mean}",
                fit.mean
            );
            assert!((fit.left_variance - sigma_l * sigma_l).abs() < 1e-14);
            assert!((fit.right_variance - sigma_r * sigma_r).abs() < 1e-14);
        }
    }

    /// Deterministic uniform samples in (0, 1) (splitmix64).
    fn uniforms(count: usize) -> impl Iterator<Item = f64> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        std::iter::repeat_with(move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + 0.5 / (1u64 << 53) as f64
        })
        .take(count)
    }

    #[test]
    fn fit_recovers_laplacian_and_gaussian_shapes() {
        // Laplacian by inverting its CDF: shape 1, symmetric, variance 2b².
        let laplacian: Vec<f64> = uniforms(200_000)
            .map(|u| {
                if u < 0.5 {
                    (2.0 * u).ln()
                } else {
                    -(2.0 * (1.0 - u)).ln()
                }
            })
            .collect();
        let fit = moments(&laplacian).fit().unwrap();
        assert!(
            (fit.shape - 1.0).abs() < 0.03,
            "laplacian shape {}",
            fit.shape
        );
        assert!((fit.left_variance - 2.0).abs() < 0.05 && (fit.right_variance - 2.0).abs() < 0.05);
        assert!(fit.mean.abs() < 0.02);

        // Gaussian by Box–Muller: shape 2.
        let u: Vec<f64> = uniforms(200_000).collect();
        let gaussian: Vec<f64> = u
            .chunks_exact(2)
            .map(|p| (-2.0 * p[0].ln()).sqrt() * (2.0 * std::f64::consts::PI * p[1]).cos())
            .collect();
        let fit = moments(&gaussian).fit().unwrap();
        assert!(
            (fit.shape - 2.0).abs() < 0.05,
            "gaussian shape {}",
            fit.shape
        );
    }

    #[test]
    fn shape_is_clamped_to_the_searched_grid() {
        // Two-valued ±1 samples have R̂ = 1, beyond the ratio's supremum of 3/4.
        let fit = moments(&[-1.0, 1.0, -1.0, 1.0]).fit().unwrap();
        assert_eq!(fit.shape, MAX_SHAPE);
        assert_eq!(solve_shape(1e-6), MIN_SHAPE);
        let inverse = solve_shape(shape_ratio(0.7));
        assert!((inverse - 0.7).abs() < 1e-12);
    }

    #[test]
    fn one_sided_samples_have_no_fit() {
        assert!(moments(&[0.0, 1.0, 2.0]).fit().is_none());
        assert!(moments(&[0.0, 0.0]).fit().is_none());
        assert!(moments(&[-1.0, 0.0, 0.0]).fit().is_none());
    }
}

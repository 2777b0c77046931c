//! Degradation synthesis from clean photos: the five kinds ClearAIR is trained on, seeded and
//! reproducible. All randomness comes from a [`ChaCha8Rng`] on the CPU (never libtorch's
//! generator), so the same seed gives bit-identical images on any machine and device.

mod blur;
mod weather;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{ModelError, Result};

pub use blur::{BlurFilter, convolve, defocus_kernel, gaussian_kernel, motion_kernel};

/// The degradations ClearAIR restores.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum DegradationKind {
    /// Additive white Gaussian noise.
    Noise,
    /// Atmospheric haze.
    Haze,
    /// Rain streaks.
    Rain,
    /// Defocus or motion blur.
    Blur,
    /// Under-exposure.
    LowLight,
}

impl DegradationKind {
    /// Every kind, in the order of the encoder's logits and of the wire format.
    pub const ALL: [DegradationKind; 5] = [
        Self::Noise,
        Self::Haze,
        Self::Rain,
        Self::Blur,
        Self::LowLight,
    ];

    /// Lower-case name: `noise`, `haze`, `rain`, `blur`, `low_light`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Noise => "noise",
            Self::Haze => "haze",
            Self::Rain => "rain",
            Self::Blur => "blur",
            Self::LowLight => "low_light",
        }
    }

    /// Position in [`DegradationKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind called `name` (as returned by [`DegradationKind::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Where the physics puts each kind when several are combined: the scene (haze, rain),
    /// then the optics (blur), then the exposure (low light), then the sensor (noise).
    fn physical_order(self) -> u8 {
        match self {
            Self::Haze => 0,
            Self::Rain => 1,
            Self::Blur => 2,
            Self::LowLight => 3,
            Self::Noise => 4,
        }
    }
}

impl std::fmt::Display for DegradationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A blur kernel's shape.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub enum BlurKernel {
    /// An anti-aliased disk (out-of-focus lens) of the given radius in pixels.
    Defocus {
        /// Disk radius in pixels.
        radius: f32,
    },
    /// An isotropic Gaussian (soft lens blur, the benchmarks' usual synthetic blur).
    Gaussian {
        /// Standard deviation in pixels.
        sigma: f32,
    },
    /// A straight line (camera shake during exposure).
    Motion {
        /// Line length in pixels.
        length: f32,
        /// Direction, degrees counter-clockwise from the +x axis.
        angle_deg: f32,
    },
}

/// One degradation with its parameters.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub enum Degradation {
    /// Additive Gaussian noise of standard deviation `sigma` on the 0–255 scale.
    Noise {
        /// Standard deviation, 0–255 scale.
        sigma: f32,
    },
    /// Atmospheric scattering, I = J·t + A·(1 − t) with t = exp(−β·d).
    Haze {
        /// Scattering coefficient β (depth is normalised to [0, 1]).
        beta: f32,
        /// Grey airlight A in [0, 1].
        airlight: f32,
        /// How far the depth proxy is flattened towards one depth for the whole frame (0: the
        /// proxy, 1: uniform haze, as many synthetic haze sets use).
        #[serde(default)]
        flatness: f32,
    },
    /// Bright streaks screen-blended onto the image.
    Rain {
        /// Streak direction, degrees from vertical.
        angle_deg: f32,
        /// Streak length in pixels.
        length: f32,
        /// Streaks per pixel.
        density: f32,
        /// Peak streak brightness in [0, 1].
        intensity: f32,
        /// Half-width in pixels of a streak's fully bright core (each side then fades over
        /// one pixel): 0.5 draws streaks about two pixels wide, 0 hairlines.
        #[serde(default = "default_streak_core")]
        width: f32,
    },
    /// Convolution with a blur kernel.
    Blur(BlurKernel),
    /// Under-exposure: `scale · J^gamma` plus sensor noise.
    LowLight {
        /// Tone-curve exponent (> 1 darkens mid-tones most).
        gamma: f32,
        /// Exposure scale in (0, 1).
        scale: f32,
        /// Sensor noise standard deviation, 0–255 scale.
        noise_sigma: f32,
    },
}

fn default_streak_core() -> f32 {
    0.5
}

/// Noise levels of the denoising benchmarks (BSD68, CBSD68), on the 0–255 scale.
pub const NOISE_SIGMAS: [f32; 3] = [15.0, 25.0, 50.0];

impl Degradation {
    /// The kind of this degradation.
    pub fn kind(&self) -> DegradationKind {
        match self {
            Self::Noise { .. } => DegradationKind::Noise,
            Self::Haze { .. } => DegradationKind::Haze,
            Self::Rain { .. } => DegradationKind::Rain,
            Self::Blur(_) => DegradationKind::Blur,
            Self::LowLight { .. } => DegradationKind::LowLight,
        }
    }

    /// Draws parameters for `kind` from ranges that stay restorable (no opaque haze, blur of
    /// a few pixels, low light that keeps some signal above the noise).
    pub fn sample(kind: DegradationKind, rng: &mut ChaCha8Rng) -> Self {
        match kind {
            DegradationKind::Noise => Self::Noise {
                sigma: *NOISE_SIGMAS.choose(rng).expect("non-empty"),
            },
            // With depth in [0.1, 1], transmission stays within [0.22, 0.95].
            DegradationKind::Haze => Self::Haze {
                beta: rng.gen_range(0.5..1.5),
                airlight: rng.gen_range(0.75..0.95),
                flatness: 0.0,
            },
            DegradationKind::Rain => Self::Rain {
                angle_deg: rng.gen_range(-25.0..25.0),
                length: rng.gen_range(10.0..30.0),
                density: rng.gen_range(0.001..0.004),
                intensity: rng.gen_range(0.5..0.9),
                width: default_streak_core(),
            },
            DegradationKind::Blur => Self::Blur(if rng.gen_bool(0.5) {
                BlurKernel::Defocus {
                    radius: rng.gen_range(1.0..3.0),
                }
            } else {
                BlurKernel::Motion {
                    length: rng.gen_range(5.0..11.0),
                    angle_deg: rng.gen_range(0.0..180.0),
                }
            }),
            // Mean brightness falls to roughly 5–20 % (LOL's low-light images sit near 5–10 %).
            DegradationKind::LowLight => Self::LowLight {
                gamma: rng.gen_range(1.2..2.0),
                scale: rng.gen_range(0.15..0.4),
                noise_sigma: rng.gen_range(1.0..5.0),
            },
        }
    }

    /// Draws parameters for `kind` from the wider ranges the restorer trains on: everything
    /// [`Degradation::sample`] draws (the evaluation's fixed ranges) and more around it —
    /// noise of any σ up to 55, uniform as well as depth-graded haze, hairline to broad and
    /// faint to bright rain, Gaussian lens blur beside defocus and motion, darker and
    /// brighter low light — so the restorer meets degradations made by other code than
    /// ours without surprise.
    pub fn sample_training(kind: DegradationKind, rng: &mut ChaCha8Rng) -> Self {
        match kind {
            DegradationKind::Noise => Self::Noise {
                sigma: if rng.gen_bool(0.3) {
                    *NOISE_SIGMAS.choose(rng).expect("non-empty")
                } else {
                    rng.gen_range(3.0..55.0)
                },
            },
            DegradationKind::Haze => Self::Haze {
                beta: rng.gen_range(0.3..2.0),
                airlight: rng.gen_range(0.6..1.0),
                flatness: if rng.gen_bool(0.5) {
                    0.0
                } else {
                    rng.gen_range(0.0..1.0)
                },
            },
            DegradationKind::Rain => Self::Rain {
                angle_deg: rng.gen_range(-30.0..30.0),
                length: rng.gen_range(5.0..40.0),
                density: rng.gen_range(0.0005..0.006),
                intensity: rng.gen_range(0.25..0.95),
                width: rng.gen_range(0.0..1.0),
            },
            DegradationKind::Blur => Self::Blur(match rng.gen_range(0..3) {
                0 => BlurKernel::Defocus {
                    radius: rng.gen_range(0.7..4.0),
                },
                1 => BlurKernel::Motion {
                    length: rng.gen_range(3.0..15.0),
                    angle_deg: rng.gen_range(0.0..180.0),
                },
                _ => BlurKernel::Gaussian {
                    sigma: rng.gen_range(0.5..3.0),
                },
            }),
            DegradationKind::LowLight => Self::LowLight {
                gamma: rng.gen_range(1.0..2.5),
                scale: rng.gen_range(0.05..0.5),
                noise_sigma: rng.gen_range(0.0..8.0),
            },
        }
    }

    /// Applies the degradation to `clean` (3×H×W floats in [0, 1], any device) and returns
    /// the degraded image on the same device and kind, clamped to [0, 1]. Randomness (noise,
    /// haze depth field, streak positions) is drawn from `rng`.
    pub fn apply(&self, clean: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let mut planes = Planes::from_tensor(clean)?;
        self.apply_planes(&mut planes, rng);
        Ok(planes.to_tensor(clean))
    }

    /// Applies several degradations (a mixture) in physical order — haze, rain, blur, low
    /// light, noise — whatever their order in `degradations`.
    pub fn apply_all(
        degradations: &[Degradation],
        clean: &Tensor,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor> {
        let mut ordered = degradations.to_vec();
        ordered.sort_by_key(|d| d.kind().physical_order());
        let mut planes = Planes::from_tensor(clean)?;
        for degradation in &ordered {
            degradation.apply_planes(&mut planes, rng);
        }
        Ok(planes.to_tensor(clean))
    }

    fn apply_planes(&self, planes: &mut Planes, rng: &mut ChaCha8Rng) {
        match *self {
            Self::Noise { sigma } => add_gaussian_noise(planes, sigma, rng),
            Self::Haze {
                beta,
                airlight,
                flatness,
            } => weather::add_haze(planes, beta, airlight, flatness, rng),
            Self::Rain {
                angle_deg,
                length,
                density,
                intensity,
                width,
            } => {
                let streaks = weather::Streaks {
                    angle_deg,
                    length,
                    density,
                    intensity,
                    core: width,
                };
                weather::add_rain(planes, &streaks, rng);
            }
            Self::Blur(kernel) => {
                let kernel = match kernel {
                    BlurKernel::Defocus { radius } => defocus_kernel(radius),
                    BlurKernel::Gaussian { sigma } => gaussian_kernel(sigma),
                    BlurKernel::Motion { length, angle_deg } => motion_kernel(length, angle_deg),
                };
                *planes = convolve(planes, &kernel);
            }
            Self::LowLight {
                gamma,
                scale,
                noise_sigma,
            } => {
                for value in &mut planes.data {
                    *value = scale * value.max(0.0).powf(gamma);
                }
                add_gaussian_noise(planes, noise_sigma, rng);
            }
        }
        for value in &mut planes.data {
            *value = value.clamp(0.0, 1.0);
        }
    }
}

fn add_gaussian_noise(planes: &mut Planes, sigma_255: f32, rng: &mut ChaCha8Rng) {
    let normal = Normal::new(0.0f32, sigma_255 / 255.0).expect("finite, non-negative sigma");
    for value in &mut planes.data {
        *value += normal.sample(rng);
    }
}

/// A 3×H×W image as channel-major `f32` planes, the form the synthesis loops work on.
#[derive(Clone, Debug, PartialEq)]
pub struct Planes {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `3·height·width` values, channel-major then row-major.
    pub data: Vec<f32>,
}

impl Planes {
    /// Copies a 3×H×W tensor (any device or float kind) to the CPU.
    pub fn from_tensor(image: &Tensor) -> Result<Self> {
        let size = image.size();
        if size.len() != 3 || size[0] != 3 || size[1] < 1 || size[2] < 1 {
            return Err(ModelError::ImageShape {
                expected: "[3, H ≥ 1, W ≥ 1]".into(),
                got: size,
            });
        }
        let flat = image
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]);
        Ok(Self {
            height: size[1] as usize,
            width: size[2] as usize,
            data: Vec::<f32>::try_from(&flat)?,
        })
    }

    /// A tensor with the device and kind of `like`.
    pub fn to_tensor(&self, like: &Tensor) -> Tensor {
        Tensor::from_slice(&self.data)
            .view([3, self.height as i64, self.width as i64])
            .to_device(like.device())
            .to_kind(like.kind())
    }

    /// Index of channel `c`, row `y`, column `x` in `data`.
    pub fn index(&self, c: usize, y: usize, x: usize) -> usize {
        (c * self.height + y) * self.width + x
    }
}

#[cfg(test)]
mod tests;

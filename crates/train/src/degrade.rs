//! `clearair degrade`: one synthesised degradation (or a mixture) applied to a photo, with a
//! seed, for sample images and experiments.

use std::str::FromStr;

use clearair_imaging::Rgb8Image;
use clearair_model::{Degradation, DegradationKind};

use crate::error::{Result, TrainError};
use crate::mix::apply_recipe;
use crate::photos::{fit_long_side, image_to_tensor, tensor_to_image};
use crate::protocol::centre_crop;
use crate::seeding::{Purpose, keyed_rng};

/// One requested degradation: a kind, and for noise optionally its σ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KindSpec {
    /// The kind.
    pub kind: DegradationKind,
    /// Noise σ on the 0–255 scale (`noise:25`); other parameters are drawn from the training
    /// ranges with the seed.
    pub sigma: Option<f32>,
}

impl FromStr for KindSpec {
    type Err = TrainError;

    /// `noise`, `noise:25`, `haze`, `rain`, `blur`, `low_light` (or `low-light`).
    fn from_str(text: &str) -> Result<Self> {
        let (name, value) = match text.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        let name = name.trim().replace('-', "_");
        let kind = DegradationKind::from_name(&name).ok_or_else(|| {
            TrainError::Setting(format!(
                "unknown degradation `{text}` (expected noise[:SIGMA], haze, rain, blur, low_light)"
            ))
        })?;
        let sigma = match (kind, value) {
            (_, None) => None,
            (DegradationKind::Noise, Some(value)) => {
                let sigma: f32 = value.trim().parse().map_err(|_| {
                    TrainError::Setting(format!("`{value}` is not a noise σ (0–255 scale)"))
                })?;
                if !(sigma > 0.0 && sigma <= 255.0) {
                    return Err(TrainError::Setting(format!(
                        "noise σ {sigma} is outside (0, 255]"
                    )));
                }
                Some(sigma)
            }
            (_, Some(_)) => {
                return Err(TrainError::Setting(format!(
                    "only noise takes a parameter (`noise:25`), not `{text}`"
                )));
            }
        };
        Ok(Self { kind, sigma })
    }
}

/// How to prepare the photo before degrading it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framing {
    /// Scale down (area average) so the long side is at most this.
    pub max_side: Option<u32>,
    /// Then keep the centred square of this side.
    pub centre_crop: Option<u32>,
}

/// `image` scaled and cropped as `framing` says: the clean reference of a degraded sample.
pub fn frame(image: &Rgb8Image, framing: Framing) -> Result<Rgb8Image> {
    let mut image = image.clone();
    if let Some(side) = framing.max_side {
        image = fit_long_side(&image, side)?;
    }
    if let Some(side) = framing.centre_crop {
        image = centre_crop(&image, side)?;
    }
    Ok(image)
}

/// Frames `image` and applies `kinds` (in physical order) with `seed`; returns the degraded
/// image and the degradations with their drawn parameters.
pub fn degrade_image(
    image: &Rgb8Image,
    kinds: &[KindSpec],
    seed: u64,
    framing: Framing,
) -> Result<(Rgb8Image, Vec<Degradation>)> {
    if kinds.is_empty() {
        return Err(TrainError::Setting("name at least one degradation".into()));
    }
    let image = frame(image, framing)?;
    let mut rng = keyed_rng(seed, Purpose::Degrade, 0, 0);
    let recipe: Vec<Degradation> = kinds
        .iter()
        .map(|spec| match spec.sigma {
            Some(sigma) => Degradation::Noise { sigma },
            None => Degradation::sample(spec.kind, &mut rng),
        })
        .collect();
    let degraded = apply_recipe(&recipe, &image_to_tensor(&image), &mut rng)?;
    Ok((tensor_to_image(&degraded)?, recipe))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> Rgb8Image {
        let data = (0..48u32 * 32)
            .flat_map(|i| [(i % 48 * 5) as u8, (i / 48 * 7) as u8, 128])
            .collect();
        Rgb8Image::new(48, 32, data).unwrap()
    }

    #[test]
    fn parses_every_kind_and_rejects_nonsense() {
        let spec: KindSpec = "noise:25".parse().unwrap();
        assert_eq!(
            (spec.kind, spec.sigma),
            (DegradationKind::Noise, Some(25.0))
        );
        for (text, kind) in [
            ("haze", DegradationKind::Haze),
            ("rain", DegradationKind::Rain),
            ("blur", DegradationKind::Blur),
            ("low_light", DegradationKind::LowLight),
            ("low-light", DegradationKind::LowLight),
            ("noise", DegradationKind::Noise),
        ] {
            let spec: KindSpec = text.parse().unwrap();
            assert_eq!((spec.kind, spec.sigma), (kind, None), "{text}");
        }
        for bad in ["fog", "noise:abc", "noise:0", "haze:3"] {
            assert!(bad.parse::<KindSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_seed_decides_and_framing_applies() {
        let kinds: Vec<KindSpec> = vec!["rain".parse().unwrap(), "noise:15".parse().unwrap()];
        let framing = Framing {
            max_side: Some(24),
            centre_crop: Some(12),
        };
        let (a, recipe) = degrade_image(&photo(), &kinds, 4, framing).unwrap();
        let (b, _) = degrade_image(&photo(), &kinds, 4, framing).unwrap();
        let (c, _) = degrade_image(&photo(), &kinds, 5, framing).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!((a.width(), a.height()), (12, 12));
        assert_eq!(recipe[1], Degradation::Noise { sigma: 15.0 });
        assert_eq!(recipe[0].kind(), DegradationKind::Rain);
        let reference = frame(&photo(), framing).unwrap();
        assert_eq!((reference.width(), reference.height()), (12, 12));
        assert_ne!(reference, a, "the reference is the clean framed photo");
    }
}

//! The 18 BRISQUE features of one scale: an AGGD fit of the MSCN map (shape, variance) and of
//! its four neighbour products — horizontal, vertical, main and secondary diagonal — (shape,
//! mean, left variance, right variance each), in the package's order.
//!
//! The products are never stored: one pass over the MSCN map feeds all five fits.

use super::aggd::SignedMoments;
use super::mscn::mscn_coefficients;
use super::pyramid::GrayImage;
use crate::PriorError;

/// Features per scale.
pub(crate) const FEATURES_PER_SCALE: usize = 18;

/// The coefficient maps in the package's order, named for error messages.
const MAP_NAMES: [&str; 5] = [
    "mscn",
    "horizontal",
    "vertical",
    "main_diagonal",
    "secondary_diagonal",
];

/// Computes the 18 features of `image`; `scale` names it in errors.
pub(crate) fn scale_features(
    image: &GrayImage,
    scale: &'static str,
) -> Result<[f64; FEATURES_PER_SCALE], PriorError> {
    let (width, height) = (image.width, image.height);
    let mscn = mscn_coefficients(image);
    let mut moments = [SignedMoments::default(); 5];
    for y in 0..height {
        let row = &mscn[y * width..(y + 1) * width];
        moments[0].push_samples(row);
        moments[1].push_products(&row[..width - 1], &row[1..]);
        if y + 1 < height {
            let below = &mscn[(y + 1) * width..(y + 2) * width];
            moments[2].push_products(row, below);
            // mscn[:-1, :-1] * mscn[1:, 1:]
            moments[3].push_products(&row[..width - 1], &below[1..]);
            // mscn[1:, :-1] * mscn[:-1, 1:]
            moments[4].push_products(&below[..width - 1], &row[1..]);
        }
    }

    let mut features = [0.0; FEATURES_PER_SCALE];
    for (index, (moments, name)) in moments.iter().zip(MAP_NAMES).enumerate() {
        let fit = moments.fit().ok_or(PriorError::Textureless {
            scale,
            coefficients: name,
        })?;
        if index == 0 {
            features[0] = fit.shape;
            features[1] = 0.5 * (fit.left_variance + fit.right_variance);
        } else {
            let start = 2 + 4 * (index - 1);
            features[start..start + 4].copy_from_slice(&[
                fit.shape,
                fit.mean,
                fit.left_variance,
                fit.right_variance,
            ]);
        }
    }
    Ok(features)
}

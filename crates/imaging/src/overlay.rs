//! Showing region masks on top of the image they were computed for.

use crate::draw::mix;
use crate::error::ImagingError;
use crate::masks::{MAX_MASKS, PackedMasks};
use crate::rgb::Rgb8Image;

/// One colour per mask index: saturated, mutually distinct hues first, then lighter and darker
/// variants, so the first few regions (the largest, by convention) are easiest to tell apart.
pub const MASK_PALETTE: [[u8; 3]; MAX_MASKS as usize] = [
    [230, 25, 75],   // red
    [60, 180, 75],   // green
    [0, 130, 200],   // blue
    [255, 225, 25],  // yellow
    [245, 130, 48],  // orange
    [145, 30, 180],  // purple
    [70, 240, 240],  // cyan
    [240, 50, 230],  // magenta
    [210, 245, 60],  // lime
    [250, 190, 212], // pink
    [0, 128, 128],   // teal
    [220, 190, 255], // lavender
    [170, 110, 40],  // brown
    [128, 0, 0],     // maroon
    [128, 128, 0],   // olive
    [0, 0, 128],     // navy
];

/// The image blended 50 % with each mask's palette colour, with every mask's border drawn
/// in its full colour. Where masks overlap, the later mask is on top.
///
/// A border pixel is one inside the mask with a 4-neighbour outside it; the image edge does
/// not count as outside, so a mask touching the edge is not outlined along it.
pub fn mask_overlay(image: &Rgb8Image, masks: &PackedMasks) -> Result<Rgb8Image, ImagingError> {
    let field = |name: &str, expected: u32, actual: u32| ImagingError::InvalidMasks {
        field: name.into(),
        expected: u64::from(expected),
        actual: u64::from(actual),
    };
    if masks.width() != image.width() {
        return Err(field("width", image.width(), masks.width()));
    }
    if masks.height() != image.height() {
        return Err(field("height", image.height(), masks.height()));
    }
    let (width, height) = (image.width(), image.height());
    let mut overlay = image.clone();
    for mask in 0..masks.count() {
        let colour = MASK_PALETTE[mask as usize % MASK_PALETTE.len()];
        let pixels = masks.mask_pixels(mask);
        let inside = |x: u32, y: u32| pixels[y as usize * width as usize + x as usize];
        for y in 0..height {
            for x in 0..width {
                if !inside(x, y) {
                    continue;
                }
                let border = (x > 0 && !inside(x - 1, y))
                    || (x + 1 < width && !inside(x + 1, y))
                    || (y > 0 && !inside(x, y - 1))
                    || (y + 1 < height && !inside(x, y + 1));
                let shown = if border {
                    colour
                } else {
                    mix(image.pixel(x, y), colour, 128)
                };
                overlay.set_pixel(x, y, shown);
            }
        }
    }
    Ok(overlay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_colours_are_distinct() {
        for (i, a) in MASK_PALETTE.iter().enumerate() {
            for b in &MASK_PALETTE[i + 1..] {
                let distance: i32 = a
                    .iter()
                    .zip(b)
                    .map(|(&x, &y)| (i32::from(x) - i32::from(y)).abs())
                    .sum();
                assert!(distance >= 60, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn each_mask_gets_its_own_colour_and_border() {
        // Two 4×6 blocks side by side on an 8×6 gray image.
        let image = Rgb8Image::filled(8, 6, [100, 100, 100]).unwrap();
        let left: Vec<bool> = (0..48).map(|i| i % 8 < 4).collect();
        let right: Vec<bool> = (0..48).map(|i| i % 8 >= 4).collect();
        let masks = PackedMasks::from_bool_masks(8, 6, &[left, right], &[1.0, 1.0]).unwrap();
        let overlay = mask_overlay(&image, &masks).unwrap();

        let interior_left = overlay.pixel(1, 2);
        let interior_right = overlay.pixel(6, 2);
        assert_eq!(interior_left, mix([100; 3], MASK_PALETTE[0], 128));
        assert_eq!(interior_right, mix([100; 3], MASK_PALETTE[1], 128));
        assert_ne!(interior_left, interior_right);
        // Column 3 borders the right mask, column 4 the left one: full colours.
        assert_eq!(overlay.pixel(3, 2), MASK_PALETTE[0]);
        assert_eq!(overlay.pixel(4, 2), MASK_PALETTE[1]);
        // The image edge is not a border.
        assert_eq!(overlay.pixel(0, 2), interior_left);

        let wrong = PackedMasks::from_bool_masks(4, 6, &[[true; 24]], &[1.0]).unwrap();
        assert!(matches!(
            mask_overlay(&image, &wrong),
            Err(ImagingError::InvalidMasks { .. })
        ));
    }
}

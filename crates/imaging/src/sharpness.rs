//! How blurred a photo reads from its pixels alone: the blur effect of Crété-Roffet et al.
//!
//! The measure compares the photo with a copy of it blurred again (an 11-pixel box along one
//! axis). A sharp photo loses much of its local variation to that blur; a photo that is
//! already blurred loses little, since there was little left to lose. Per axis, it is
//! `1 − Σ max(0, |∇I| − |∇(box ∗ I)|) / Σ |∇I|`, with `∇` a Sobel derivative along the axis,
//! summed away from the borders; the photo's reading is the larger of its two axes'. 0 is as
//! sharp as can be, 1 as flat (a single colour reads 1).
//!
//! Noise and rain streaks add fine variation, so a noisy or rainy upload reads sharper than
//! its clean photo, while a lens or motion blur reads higher than any of them. That is what
//! lets a stage meant for blurred uploads run only on them where no other reading of the
//! upload (no degradation prior) is at hand.
//!
//! The arithmetic follows scikit-image's `skimage.measure.blur_effect` (its default 11-pixel
//! re-blur, luminance weights and borders), so the two agree to float precision; our tests
//! check one reading against it.
//!
//! Reference: F. Crété-Roffet, T. Dolmière, P. Ladret, M. Nicolas, "The blur effect:
//! perception and estimation with a new no-reference perceptual blur metric", SPIE 6492
//! (2007).

use crate::rgb::Rgb8Image;

/// The width of the box blur the photo is compared with (scikit-image's `h_size`).
pub const REBLUR_SIZE: usize = 11;

/// The smallest side a blur reading needs: the sums skip two rows and columns at the start
/// and one at the end.
pub const MIN_SIDE: u32 = 4;

/// Below this, a gradient counts as this (scikit-image's guard against a zero sum).
const EPSILON: f64 = f64::EPSILON;

/// The blur effect of `image`, 0 (sharp) to 1 (flat), or None when a side is under
/// [`MIN_SIDE`] pixels.
pub fn blur_effect(image: &Rgb8Image) -> Option<f32> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    if image.width() < MIN_SIDE || image.height() < MIN_SIDE {
        return None;
    }
    let gray = luminance(image);
    let across = axis_blur(&gray, width, height, Axis::Rows);
    let down = axis_blur(&gray, width, height, Axis::Columns);
    Some(across.max(down) as f32)
}

/// ITU-R BT.709 luminance in [0, 1] (scikit-image's `rgb2gray` weights), row-major. Planes
/// are kept in f32 (two of them at a time: 8 bytes a pixel), sums in f64.
fn luminance(image: &Rgb8Image) -> Vec<f32> {
    image
        .as_bytes()
        .chunks_exact(3)
        .map(|rgb| {
            ((0.2125 * f64::from(rgb[0]) + 0.7154 * f64::from(rgb[1]) + 0.0721 * f64::from(rgb[2]))
                / 255.0) as f32
        })
        .collect()
}

/// The axis a derivative and the re-blur run along.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Axis {
    /// Down the columns (y): scikit-image's axis 0.
    Columns,
    /// Along the rows (x): axis 1.
    Rows,
}

/// The blur effect along one axis of the `width`×`height` plane `gray`.
fn axis_blur(gray: &[f32], width: usize, height: usize, axis: Axis) -> f64 {
    let reblurred = box_blur(gray, width, height, axis);
    let (mut total, mut lost) = (0.0, 0.0);
    for y in 2..height - 1 {
        for x in 2..width - 1 {
            let sharp = sobel(gray, width, x, y, axis).abs().max(EPSILON);
            let blurred = sobel(&reblurred, width, x, y, axis).abs().max(EPSILON);
            total += sharp;
            lost += (sharp - blurred).max(0.0);
        }
    }
    (total - lost).abs() / total
}

/// The Sobel derivative of `plane` at (x, y) along `axis`: the difference of the next and
/// the previous pixel, smoothed ¼ ½ ¼ across. (x, y) must have a neighbour on every side.
fn sobel(plane: &[f32], width: usize, x: usize, y: usize, axis: Axis) -> f64 {
    let at = |x: usize, y: usize| f64::from(plane[y * width + x]);
    match axis {
        Axis::Columns => {
            let difference = |x: usize| at(x, y + 1) - at(x, y - 1);
            0.25 * difference(x - 1) + 0.5 * difference(x) + 0.25 * difference(x + 1)
        }
        Axis::Rows => {
            let difference = |y: usize| at(x + 1, y) - at(x - 1, y);
            0.25 * difference(y - 1) + 0.5 * difference(y) + 0.25 * difference(y + 1)
        }
    }
}

/// `plane` blurred by a [`REBLUR_SIZE`] box along `axis`, the edges mirrored (the edge pixel
/// repeated: `c b a | a b c`), as scipy's `uniform_filter1d` in its default mode.
fn box_blur(plane: &[f32], width: usize, height: usize, axis: Axis) -> Vec<f32> {
    let (length, lines) = match axis {
        Axis::Rows => (width, height),
        Axis::Columns => (height, width),
    };
    let index = |line: usize, i: usize| match axis {
        Axis::Rows => line * width + i,
        Axis::Columns => i * width + line,
    };
    let half = REBLUR_SIZE / 2;
    let mut out = vec![0.0; plane.len()];
    // The line with its mirrored edges: `half` samples before it, `half + 1` after (the
    // running sum reads one past the last window).
    let mut padded = Vec::with_capacity(length + REBLUR_SIZE);
    for line in 0..lines {
        padded.clear();
        padded.extend(
            (-(half as isize)..(length + half + 1) as isize)
                .map(|i| f64::from(plane[index(line, mirror(i, length))])),
        );
        let mut sum: f64 = padded[..REBLUR_SIZE].iter().sum();
        for i in 0..length {
            out[index(line, i)] = (sum / REBLUR_SIZE as f64) as f32;
            sum += padded[i + REBLUR_SIZE] - padded[i];
        }
    }
    out
}

/// The index `i` of a line of `length` samples reflected into it, the edge sample repeated.
fn mirror(mut i: isize, length: usize) -> usize {
    let length = length as isize;
    // Reflection repeats with a period of twice the length.
    let period = 2 * length;
    i = i.rem_euclid(period);
    if i >= length {
        i = period - 1 - i;
    }
    i as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic photo-like pattern: smooth shading, edges and fine texture.
    fn pattern(width: u32, height: u32) -> Rgb8Image {
        let mut data = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                let (fx, fy) = (f64::from(x), f64::from(y));
                let shade = 96.0 + 60.0 * (fx / 9.0).sin() * (fy / 13.0).cos();
                let edge = if (x / 7 + y / 5) % 2 == 0 {
                    40.0
                } else {
                    -40.0
                };
                let texture = f64::from((x * 37 + y * 91) % 23) - 11.0;
                let r = (shade + edge + texture).clamp(0.0, 255.0) as u8;
                let g = (shade - edge * 0.5 + texture * 2.0).clamp(0.0, 255.0) as u8;
                let b = (200.0 - shade + texture).clamp(0.0, 255.0) as u8;
                data.extend_from_slice(&[r, g, b]);
            }
        }
        Rgb8Image::new(width, height, data).expect("a whole image")
    }

    /// `image` with each row and column averaged over `radius` pixels on each side: a blur.
    fn blurred(image: &Rgb8Image, radius: u32) -> Rgb8Image {
        let (width, height) = (image.width(), image.height());
        let mut data = Vec::with_capacity(image.as_bytes().len());
        for y in 0..height {
            for x in 0..width {
                let mut sum = [0u32; 3];
                let mut count = 0;
                for v in y.saturating_sub(radius)..(y + radius + 1).min(height) {
                    for u in x.saturating_sub(radius)..(x + radius + 1).min(width) {
                        let pixel = image.pixel(u, v);
                        for c in 0..3 {
                            sum[c] += u32::from(pixel[c]);
                        }
                        count += 1;
                    }
                }
                data.extend(sum.map(|s| ((s + count / 2) / count) as u8));
            }
        }
        Rgb8Image::new(width, height, data).expect("a whole image")
    }

    #[test]
    fn the_reading_agrees_with_scikit_images_blur_effect() {
        // skimage.measure.blur_effect(pattern, channel_axis=-1) with scikit-image 0.26, the
        // pattern built the same way in numpy (uint8 after clipping, truncated).
        let reading = blur_effect(&pattern(37, 29)).expect("big enough");
        assert!((reading - SCIKIT_IMAGE_READING).abs() < 1e-5, "{reading}");
    }

    /// scikit-image's reading of `pattern(37, 29)`.
    const SCIKIT_IMAGE_READING: f32 = 0.349_607_3;

    #[test]
    fn a_blurred_photo_reads_more_blurred_and_a_flat_one_reads_one() {
        let sharp = pattern(64, 48);
        let once = blurred(&sharp, 1);
        let twice = blurred(&sharp, 3);
        let readings = [&sharp, &once, &twice].map(|image| blur_effect(image).expect("big"));
        assert!(
            readings[0] < readings[1] && readings[1] < readings[2],
            "{readings:?}"
        );
        let flat = Rgb8Image::filled(16, 9, [120, 30, 200]).expect("an image");
        assert_eq!(blur_effect(&flat), Some(1.0));
    }

    #[test]
    fn a_photo_too_small_to_read_has_no_reading() {
        let small = pattern(3, 40);
        assert_eq!(blur_effect(&small), None);
        assert!(blur_effect(&pattern(4, 4)).is_some());
    }

    #[test]
    fn the_reflected_edges_repeat_the_edge_sample() {
        let indices: Vec<usize> = (-3..7).map(|i| mirror(i, 4)).collect();
        assert_eq!(indices, [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }
}

//! Drawing primitives on [`Rgb8Image`]: rectangles, copies and bitmap text.
//!
//! Everything clips to the image, so callers can lay out without bounds arithmetic; nothing
//! here allocates per pixel.

use crate::font::{ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, LINE_HEIGHT, glyph};
use crate::rgb::Rgb8Image;

/// Fills the rectangle `width × height` at (`x`, `y`), clipped to the image.
pub fn fill_rect(image: &mut Rgb8Image, x: u32, y: u32, width: u32, height: u32, colour: [u8; 3]) {
    let x_end = x.saturating_add(width).min(image.width());
    let y_end = y.saturating_add(height).min(image.height());
    if x >= x_end || y >= y_end {
        return;
    }
    let stride = image.width() as usize * 3;
    let bytes = image.as_bytes_mut();
    for row in y as usize..y_end as usize {
        let span = &mut bytes[row * stride + x as usize * 3..row * stride + x_end as usize * 3];
        for pixel in span.chunks_exact_mut(3) {
            pixel.copy_from_slice(&colour);
        }
    }
}

/// Draws a one-pixel-wide outline of the rectangle, clipped to the image.
pub fn stroke_rect(
    image: &mut Rgb8Image,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    colour: [u8; 3],
) {
    if width == 0 || height == 0 {
        return;
    }
    fill_rect(image, x, y, width, 1, colour);
    fill_rect(image, x, y + height - 1, width, 1, colour);
    fill_rect(image, x, y, 1, height, colour);
    fill_rect(image, x + width - 1, y, 1, height, colour);
}

/// Copies `source` onto `target` with its top-left corner at (`x`, `y`), clipped.
pub fn blit(target: &mut Rgb8Image, source: &Rgb8Image, x: u32, y: u32) {
    if x >= target.width() || y >= target.height() {
        return;
    }
    let columns = source.width().min(target.width() - x) as usize;
    let rows = source.height().min(target.height() - y) as usize;
    let (target_stride, source_stride) = (target.width() as usize * 3, source.width() as usize * 3);
    let source_bytes = source.as_bytes();
    let target_bytes = target.as_bytes_mut();
    for row in 0..rows {
        let to = (y as usize + row) * target_stride + x as usize * 3;
        let from = row * source_stride;
        target_bytes[to..to + columns * 3].copy_from_slice(&source_bytes[from..from + columns * 3]);
    }
}

/// Draws `text` with its top-left corner at (`x`, `y`), each font pixel a `scale × scale`
/// square; `'\n'` starts a new line. Returns the bottom edge of the last line.
pub fn draw_text(
    image: &mut Rgb8Image,
    x: u32,
    y: u32,
    text: &str,
    colour: [u8; 3],
    scale: u32,
) -> u32 {
    let scale = scale.max(1);
    let mut line_top = y;
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            line_top = line_top.saturating_add(LINE_HEIGHT * scale);
        }
        let mut left = x;
        for c in line.chars() {
            let rows = glyph(c);
            for (row, &bits) in rows.iter().enumerate() {
                for column in 0..GLYPH_WIDTH {
                    if bits & (1 << (GLYPH_WIDTH - 1 - column)) != 0 {
                        let px = left.saturating_add(column * scale);
                        let py = line_top.saturating_add(row as u32 * scale);
                        fill_rect(image, px, py, scale, scale, colour);
                    }
                }
            }
            left = left.saturating_add(ADVANCE * scale);
        }
    }
    line_top.saturating_add(GLYPH_HEIGHT * scale)
}

/// Shortens `text` to at most `max_chars` characters, marking the cut with "..".
pub fn fit_text(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let keep = max_chars.saturating_sub(2);
    let mut fitted: String = text.chars().take(keep).collect();
    fitted.push_str(&"..".chars().take(max_chars - keep).collect::<String>());
    fitted
}

/// `colour` mixed over `base` with weight `alpha` (0 keeps `base`, 255 gives `colour`).
pub fn mix(base: [u8; 3], colour: [u8; 3], alpha: u8) -> [u8; 3] {
    let a = u32::from(alpha);
    let channel = |b: u8, c: u8| ((u32::from(c) * a + u32::from(b) * (255 - a) + 127) / 255) as u8;
    [
        channel(base[0], colour[0]),
        channel(base[1], colour[1]),
        channel(base[2], colour[2]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lands_where_the_glyph_says() {
        let mut image = Rgb8Image::filled(20, 18, [0, 0, 0]).unwrap();
        let bottom = draw_text(&mut image, 1, 1, "T", [255, 255, 255], 2);
        assert_eq!(bottom, 1 + 8 * 2);
        // Top bar of 'T' spans font columns 0..5 → image x 1..11 on rows 1..3.
        for x in 1..11 {
            assert_eq!(image.pixel(x, 1), [255, 255, 255], "x {x}");
            assert_eq!(image.pixel(x, 2), [255, 255, 255], "x {x}");
        }
        assert_eq!(image.pixel(11, 1), [0, 0, 0]);
        // The stem is font column 2 → image x 5..7, down to font row 6 → image y 13..15.
        assert_eq!(image.pixel(5, 14), [255, 255, 255]);
        assert_eq!(image.pixel(3, 14), [0, 0, 0]);
    }

    #[test]
    fn drawing_clips_at_the_border() {
        let mut image = Rgb8Image::filled(4, 4, [0, 0, 0]).unwrap();
        fill_rect(&mut image, 2, 2, 100, 100, [9, 9, 9]);
        draw_text(&mut image, 3, 3, "WWW\nWWW", [1, 1, 1], 5);
        let painted = image
            .as_bytes()
            .chunks(3)
            .filter(|p| p != &[0, 0, 0])
            .count();
        assert_eq!(painted, 4);
        let source = Rgb8Image::filled(3, 3, [7, 7, 7]).unwrap();
        blit(&mut image, &source, 3, 0);
        assert_eq!(image.pixel(3, 0), [7, 7, 7]);
        assert_eq!(image.pixel(2, 0), [0, 0, 0]);
    }

    #[test]
    fn mixing_and_fitting() {
        assert_eq!(mix([0, 100, 200], [255, 255, 255], 0), [0, 100, 200]);
        assert_eq!(mix([0, 100, 200], [255, 0, 0], 255), [255, 0, 0]);
        assert_eq!(mix([0, 0, 0], [255, 255, 255], 128), [128, 128, 128]);
        assert_eq!(fit_text("restored", 20), "restored");
        assert_eq!(fit_text("restored", 6), "rest..");
        assert_eq!(fit_text("restored", 1), ".");
    }
}

//! Resampling between the caller's resolution and the (smaller) one the graph is built at:
//! box-average downscaling of the RGB8 input and nearest-neighbour upsampling of labels.

/// An RGB image in f32 (0..255 per channel), row-major, interleaved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RgbImage {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) pixels: Vec<[f32; 3]>,
}

/// Size of the working copy: the input scaled so its long side is at most `max_side`
/// (rounded, at least 1 pixel a side); unchanged when it already fits.
pub(crate) fn working_size(width: usize, height: usize, max_side: usize) -> (usize, usize) {
    let long_side = width.max(height);
    if long_side <= max_side {
        return (width, height);
    }
    let factor = max_side as f64 / long_side as f64;
    let scaled = |side: usize| ((side as f64 * factor).round() as usize).clamp(1, max_side);
    (scaled(width), scaled(height))
}

/// Source span `[start, end)` that output sample `index` of `output_length` averages.
fn box_span(index: usize, output_length: usize, input_length: usize) -> (usize, usize) {
    // Integer bounds: every input sample falls in exactly one box, and boxes are never empty
    // because output_length <= input_length.
    (
        index * input_length / output_length,
        (index + 1) * input_length / output_length,
    )
}

/// `rgb` (RGB8, `width x height`) box-averaged down to `target_width x target_height`
/// (both no larger than the input); a plain conversion to f32 when the sizes match.
pub(crate) fn downscale(
    width: usize,
    height: usize,
    rgb: &[u8],
    target_width: usize,
    target_height: usize,
) -> RgbImage {
    let as_float = |p: &[u8]| [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])];
    if (target_width, target_height) == (width, height) {
        let pixels = rgb.chunks_exact(3).map(as_float).collect();
        return RgbImage {
            width,
            height,
            pixels,
        };
    }
    // Horizontal boxes first (sums per input row), then vertical boxes over those rows.
    let column_spans: Vec<(usize, usize)> = (0..target_width)
        .map(|x| box_span(x, target_width, width))
        .collect();
    let mut row_sums = vec![[0.0f32; 3]; target_width * height];
    for (row, sums) in rgb
        .chunks_exact(width * 3)
        .zip(row_sums.chunks_exact_mut(target_width))
    {
        for (sum, &(start, end)) in sums.iter_mut().zip(&column_spans) {
            for pixel in row[start * 3..end * 3].chunks_exact(3) {
                for channel in 0..3 {
                    sum[channel] += f32::from(pixel[channel]);
                }
            }
        }
    }
    let mut pixels = vec![[0.0f32; 3]; target_width * target_height];
    for (y, output_row) in pixels.chunks_exact_mut(target_width).enumerate() {
        let (start, end) = box_span(y, target_height, height);
        for source_row in
            row_sums[start * target_width..end * target_width].chunks_exact(target_width)
        {
            for (output, sum) in output_row.iter_mut().zip(source_row) {
                for channel in 0..3 {
                    output[channel] += sum[channel];
                }
            }
        }
        for (output, &(column_start, column_end)) in output_row.iter_mut().zip(&column_spans) {
            let count = ((column_end - column_start) * (end - start)) as f32;
            *output = output.map(|v| v / count);
        }
    }
    RgbImage {
        width: target_width,
        height: target_height,
        pixels,
    }
}

/// Nearest-neighbour enlargement of a label map to `width x height` (each output pixel takes
/// the label under its centre); every source label survives because the map only grows.
pub(crate) fn upsample_labels(
    labels: &[u32],
    source_width: usize,
    source_height: usize,
    width: usize,
    height: usize,
) -> Vec<u32> {
    if (source_width, source_height) == (width, height) {
        return labels.to_vec();
    }
    let nearest = |index: usize, length: usize, source_length: usize| {
        ((2 * index + 1) * source_length / (2 * length)).min(source_length - 1)
    };
    let source_columns: Vec<usize> = (0..width)
        .map(|x| nearest(x, width, source_width))
        .collect();
    let mut output = Vec::with_capacity(width * height);
    for y in 0..height {
        let source_row =
            &labels[nearest(y, height, source_height) * source_width..][..source_width];
        output.extend(source_columns.iter().map(|&x| source_row[x]));
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_size_keeps_aspect_and_caps_the_long_side() {
        assert_eq!(working_size(1024, 768, 384), (384, 288));
        assert_eq!(working_size(300, 200, 384), (300, 200));
        assert_eq!(working_size(4000, 3, 384), (384, 1));
        assert_eq!(working_size(1, 1, 1), (1, 1));
    }

    #[test]
    fn downscale_averages_boxes() {
        // 4x2 -> 2x1: each output averages a 2x2 block.
        let rgb: Vec<u8> = [0u8, 10, 20, 30, 40, 50, 60, 70]
            .iter()
            .flat_map(|&v| [v, v, 255 - v])
            .collect();
        let image = downscale(4, 2, &rgb, 2, 1);
        assert_eq!((image.width, image.height), (2, 1));
        assert_eq!(image.pixels, vec![[25.0, 25.0, 230.0], [45.0, 45.0, 210.0]]);
        // 3 -> 2 splits into boxes of 1 and 2 samples.
        let image = downscale(3, 1, &[0, 0, 0, 30, 30, 30, 90, 90, 90], 2, 1);
        assert_eq!(image.pixels, vec![[0.0; 3], [60.0; 3]]);
    }

    #[test]
    fn upsample_takes_the_label_under_each_centre() {
        let labels = [0, 1, 2, 3];
        let large = upsample_labels(&labels, 2, 2, 4, 3);
        // Output row 1's centre lies on the source row boundary and rounds down into row 1.
        assert_eq!(large, vec![0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]);
        let thin = upsample_labels(&[5, 6, 7], 3, 1, 7, 2);
        assert_eq!(thin, vec![5, 5, 6, 6, 6, 7, 7, 5, 5, 6, 6, 6, 7, 7]);
    }
}

//! The final region masks: components ranked by area and capped, with a confidence each.

/// RMS colour deviation at which the confidence falls to 1/e.
const HOMOGENEITY_SCALE: f64 = 32.0;

/// Region masks covering an image: every pixel belongs to exactly one mask.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionMasks {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Per pixel, row-major, the index (`0..count`) of the mask it belongs to.
    pub labels: Vec<u8>,
    /// Number of masks. Masks are ordered by decreasing area; when regions had to be merged to
    /// respect `max_masks`, the last mask is the background that holds all the smaller ones.
    pub count: usize,
    /// Confidence of each mask in [0, 1]: its colour homogeneity on the input pixels,
    /// `exp(−d / 32)` with `d` the root-mean-square Euclidean distance (0..255 RGB units) of
    /// the mask's pixels from their mean colour. A flat region scores near 1, a textured one
    /// about 0.5 (d ≈ 22), a background that collects many regions little (d ≈ 60 → 0.15).
    pub scores: Vec<f32>,
}

impl RegionMasks {
    /// Mask `index` as one boolean per pixel (all false for an index out of range).
    pub fn mask(&self, index: usize) -> Vec<bool> {
        self.labels
            .iter()
            .map(|&label| usize::from(label) == index)
            .collect()
    }

    /// Pixel count of every mask, `count` entries.
    pub fn areas(&self) -> Vec<usize> {
        let mut areas = vec![0; self.count];
        for &label in &self.labels {
            areas[usize::from(label)] += 1;
        }
        areas
    }
}

/// Ranks `regions` components of the full-resolution `labels` by decreasing area (ties: the
/// region whose first pixel comes first in raster order), keeps the first `max_masks − 1` when
/// there are more than `max_masks`, folds the rest into a last background mask, and scores
/// each mask on `rgb`.
pub(crate) fn build_masks(
    width: usize,
    height: usize,
    rgb: &[u8],
    labels: &[u32],
    regions: usize,
    max_masks: usize,
) -> RegionMasks {
    let mut areas = vec![0usize; regions];
    let mut first_pixel = vec![usize::MAX; regions];
    for (pixel, &label) in labels.iter().enumerate() {
        let label = label as usize;
        areas[label] += 1;
        first_pixel[label] = first_pixel[label].min(pixel);
    }
    let mut ranking: Vec<usize> = (0..regions).collect();
    ranking.sort_unstable_by(|&a, &b| {
        areas[b]
            .cmp(&areas[a])
            .then(first_pixel[a].cmp(&first_pixel[b]))
    });

    let count = regions.min(max_masks);
    let background = count - 1;
    let mut mask_of_region = vec![0u8; regions];
    for (rank, &region) in ranking.iter().enumerate() {
        mask_of_region[region] = rank.min(background) as u8;
    }
    let mask_labels: Vec<u8> = labels
        .iter()
        .map(|&label| mask_of_region[label as usize])
        .collect();
    let scores = homogeneity_scores(rgb, &mask_labels, count);
    RegionMasks {
        width,
        height,
        labels: mask_labels,
        count,
        scores,
    }
}

/// `exp(−rms / HOMOGENEITY_SCALE)` per mask, from one pass of colour sums and squared sums.
fn homogeneity_scores(rgb: &[u8], labels: &[u8], count: usize) -> Vec<f32> {
    let mut pixels = vec![0u64; count];
    let mut sums = vec![[0u64; 3]; count];
    let mut squares = vec![0u64; count];
    for (pixel, &label) in rgb.chunks_exact(3).zip(labels) {
        let label = usize::from(label);
        pixels[label] += 1;
        for channel in 0..3 {
            let value = u64::from(pixel[channel]);
            sums[label][channel] += value;
            squares[label] += value * value;
        }
    }
    (0..count)
        .map(|mask| {
            let n = pixels[mask] as f64;
            // Σ‖p − μ‖² / n = Σ‖p‖² / n − ‖μ‖² (exact integer sums keep this stable).
            let mean_square = squares[mask] as f64 / n;
            let mean_norm: f64 = sums[mask].iter().map(|&s| (s as f64 / n).powi(2)).sum();
            let rms = (mean_square - mean_norm).max(0.0).sqrt();
            (-rms / HOMOGENEITY_SCALE).exp() as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_with_a_background_mask_and_ranks_by_area() {
        // Regions: 0 has 1 pixel, 1 has 3, 2 has 2, 3 has 2 (first pixel before region 2's).
        let labels = [1, 3, 3, 1, 2, 0, 1, 2];
        let rgb = vec![0u8; 8 * 3];
        let all = build_masks(8, 1, &rgb, &labels, 4, 16);
        assert_eq!(all.count, 4);
        assert_eq!(all.labels, vec![0, 1, 1, 0, 2, 3, 0, 2]);
        assert_eq!(all.areas(), vec![3, 2, 2, 1]);

        let capped = build_masks(8, 1, &rgb, &labels, 4, 2);
        assert_eq!(capped.count, 2);
        assert_eq!(capped.labels, vec![0, 1, 1, 0, 1, 1, 0, 1]);
        assert_eq!(
            capped.mask(1),
            vec![false, true, true, false, true, true, false, true]
        );
        assert_eq!(capped.mask(9), vec![false; 8]);

        let single = build_masks(8, 1, &rgb, &labels, 4, 1);
        assert_eq!((single.count, single.labels), (1, vec![0; 8]));
    }

    #[test]
    fn scores_measure_colour_homogeneity() {
        // Mask 0: flat; mask 1: black and white alternate, RMS distance to grey = 255·√3 / 2.
        let labels = [0, 0, 1, 1];
        let rgb = [10, 20, 30, 10, 20, 30, 0, 0, 0, 255, 255, 255];
        let scores = homogeneity_scores(&rgb, &labels, 2);
        assert!((scores[0] - 1.0).abs() < 1e-6);
        let rms = 255.0 * 3f64.sqrt() / 2.0;
        assert!(
            (f64::from(scores[1]) - (-rms / 32.0).exp()).abs() < 1e-6,
            "{}",
            scores[1]
        );
    }
}

//! Absorption of slivers: components too thin (or too small) to hold a 7×7 block.
//!
//! Deliberate difference from Felzenszwalb–Huttenlocher and scikit-image. Smoothing turns every
//! sharp edge into a ramp a few pixels wide; next to a flat area the threshold `k/|C|` is
//! nearly zero, so the ramp's pixels cannot join either side and survive `min_size` as strips
//! 1–6 pixels wide along the boundary (scikit-image's `felzenszwalb` shows the same strips).
//! As region masks such strips mean nothing, so a component of which fewer than a quarter of
//! the pixels are *deep* — the 7×7 window around them lies inside the component (window parts
//! outside the image do not count against it) — is merged into the adjacent component whose
//! mean colour is nearest, preferring neighbours that are not slivers themselves. This also
//! folds blobs smaller than about 12×12 working pixels into their surroundings, which only
//! removes regions far too small to earn one of the 16 masks.

use super::disjoint_set::DisjointSets;
use super::resample::RgbImage;

/// Half-size of the window a deep pixel's component must fill (7×7).
const DEEP_RADIUS: usize = 3;
/// A component is a sliver when `deep * SLIVER_DEEP_DENOMINATOR < area`.
const SLIVER_DEEP_DENOMINATOR: usize = 4;
/// Merging passes: slivers that only touched slivers are looked at again after merging.
const MAX_PASSES: usize = 3;

/// Per-component statistics gathered in one pass.
#[derive(Debug, Clone, Copy, Default)]
struct ComponentStats {
    area: usize,
    deep: usize,
    colour_sum: [f64; 3],
}

impl ComponentStats {
    fn mean_colour(&self) -> [f64; 3] {
        self.colour_sum.map(|sum| sum / self.area as f64)
    }

    fn is_sliver(&self) -> bool {
        self.deep * SLIVER_DEEP_DENOMINATOR < self.area
    }
}

/// How many steps (at most [`DEEP_RADIUS`]) the label of pixel `at` continues from it along
/// `step`, with `accept` holding on every pixel visited; `usize::MAX` when the image edge,
/// `steps_to_edge` steps away, comes first (the window is clipped there, which is fine).
fn run_length(
    labels: &[u32],
    at: usize,
    steps_to_edge: usize,
    step: impl Fn(usize) -> usize,
    accept: impl Fn(usize) -> bool,
) -> usize {
    let mut current = at;
    for taken in 0..DEEP_RADIUS.min(steps_to_edge) {
        let next = step(current);
        if labels[next] != labels[at] || !accept(next) {
            return taken;
        }
        current = next;
    }
    if steps_to_edge <= DEEP_RADIUS {
        usize::MAX
    } else {
        DEEP_RADIUS
    }
}

/// Per pixel: whether the 7×7 window around it (clipped to the image) is all one label.
fn deep_pixels(labels: &[u32], width: usize, height: usize) -> Vec<bool> {
    // Rows first: the window's row through the pixel is uniform.
    let mut row_uniform = vec![false; width * height];
    for y in 0..height {
        for x in 0..width {
            let pixel = y * width + x;
            let left = run_length(labels, pixel, x, |i| i - 1, |_| true);
            let right = run_length(labels, pixel, width - 1 - x, |i| i + 1, |_| true);
            row_uniform[pixel] = left >= DEEP_RADIUS && right >= DEEP_RADIUS;
        }
    }
    // Then columns: every row of the window is uniform and carries the same label.
    (0..width * height)
        .map(|pixel| {
            let y = pixel / width;
            let accept = |i: usize| row_uniform[i];
            row_uniform[pixel]
                && run_length(labels, pixel, y, |i| i - width, accept) >= DEEP_RADIUS
                && run_length(labels, pixel, height - 1 - y, |i| i + width, accept) >= DEEP_RADIUS
        })
        .collect()
}

fn gather_stats(image: &RgbImage, labels: &[u32], count: usize) -> Vec<ComponentStats> {
    let deep = deep_pixels(labels, image.width, image.height);
    let mut stats = vec![ComponentStats::default(); count];
    for ((&label, &is_deep), colour) in labels.iter().zip(&deep).zip(&image.pixels) {
        let entry = &mut stats[label as usize];
        entry.area += 1;
        entry.deep += usize::from(is_deep);
        for (sum, &value) in entry.colour_sum.iter_mut().zip(colour) {
            *sum += f64::from(value);
        }
    }
    stats
}

/// Distinct `(sliver, neighbour)` label pairs over all 4-adjacent pixel pairs.
fn sliver_adjacency(
    width: usize,
    height: usize,
    labels: &[u32],
    stats: &[ComponentStats],
) -> Vec<(u32, u32)> {
    let mut pairs = Vec::new();
    let mut record = |a: u32, b: u32| {
        if a != b {
            for (sliver, other) in [(a, b), (b, a)] {
                if stats[sliver as usize].is_sliver() {
                    pairs.push((sliver, other));
                }
            }
        }
    };
    for y in 0..height {
        for x in 0..width {
            let pixel = y * width + x;
            if x + 1 < width {
                record(labels[pixel], labels[pixel + 1]);
            }
            if y + 1 < height {
                record(labels[pixel], labels[pixel + width]);
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// Merges slivers into their best neighbours, up to [`MAX_PASSES`] times; returns relabelled
/// components `0..count` (numbered by first appearance) and `count`.
pub(crate) fn absorb_slivers(image: &RgbImage, labels: &[u32], count: usize) -> (Vec<u32>, usize) {
    let (mut labels, mut count) = (labels.to_vec(), count);
    for _ in 0..MAX_PASSES {
        let (merged, merged_count) = merge_pass(image, &labels, count);
        if merged_count == count {
            break;
        }
        (labels, count) = (merged, merged_count);
    }
    (labels, count)
}

/// One pass: every sliver joins its best neighbour.
fn merge_pass(image: &RgbImage, labels: &[u32], count: usize) -> (Vec<u32>, usize) {
    let stats = gather_stats(image, labels, count);
    if !stats.iter().any(ComponentStats::is_sliver) {
        return (labels.to_vec(), count);
    }
    let squared_distance = |a: u32, b: u32| {
        let (ma, mb) = (
            stats[a as usize].mean_colour(),
            stats[b as usize].mean_colour(),
        );
        (0..3).map(|c| (ma[c] - mb[c]).powi(2)).sum::<f64>()
    };

    let mut components = DisjointSets::new(count, 0.0);
    let pairs = sliver_adjacency(image.width, image.height, labels, &stats);
    for candidates in pairs.chunk_by(|a, b| a.0 == b.0) {
        let sliver = candidates[0].0;
        // Best = not a sliver, then nearest mean colour, then larger, then lower label.
        let best = candidates
            .iter()
            .map(|&(_, other)| other)
            .min_by(|&a, &b| {
                let (sa, sb) = (&stats[a as usize], &stats[b as usize]);
                sa.is_sliver()
                    .cmp(&sb.is_sliver())
                    .then(squared_distance(sliver, a).total_cmp(&squared_distance(sliver, b)))
                    .then(sb.area.cmp(&sa.area))
                    .then(a.cmp(&b))
            })
            .expect("chunks are never empty");
        let (root_sliver, root_best) = (components.find(sliver), components.find(best));
        if root_sliver != root_best {
            components.union_roots(root_sliver, root_best);
        }
    }

    // Sets are numbered by their smallest label, and labels by first appearance in raster
    // order, so the merged labels keep that order.
    let (component_labels, merged_count) = components.labels();
    let merged = labels
        .iter()
        .map(|&label| component_labels[label as usize])
        .collect();
    (merged, merged_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `width x height` grey image whose column `x` has value and label `column(x)`.
    fn columns(
        width: usize,
        height: usize,
        column: impl Fn(usize) -> (f32, u32),
    ) -> (RgbImage, Vec<u32>) {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..height {
            for x in 0..width {
                let (value, label) = column(x);
                pixels.push([value; 3]);
                labels.push(label);
            }
        }
        (
            RgbImage {
                width,
                height,
                pixels,
            },
            labels,
        )
    }

    #[test]
    fn deep_pixels_need_a_uniform_window_clipped_to_the_image() {
        // 10x9: label 0 left of x = 5, label 1 from x = 5.
        let (_, labels) = columns(10, 9, |x| (0.0, u32::from(x >= 5)));
        let deep = deep_pixels(&labels, 10, 9);
        for y in 0..9 {
            let row: Vec<bool> = (0..10).map(|x| deep[y * 10 + x]).collect();
            // x = 0, 1 reach 3 pixels right before label 1 starts at 5; x = 8, 9 likewise.
            let expected = [
                true, true, false, false, false, false, false, false, true, true,
            ];
            assert_eq!(row, expected, "row {y}");
        }
        let mut spotted = labels.clone();
        spotted[4 * 10 + 1] = 7;
        let deep = deep_pixels(&spotted, 10, 9);
        // Windows holding the spot at (1, 4) are no longer deep; (0, 0) and (0, 8) miss it.
        assert!(deep[0] && !deep[10 + 1] && !deep[7 * 10] && deep[8 * 10]);
    }

    #[test]
    fn a_ramp_strip_joins_the_nearer_side() {
        // 24x20: dark columns 0..12 (label 0), a 2-wide strip at 30 (label 1), bright rest (2).
        let (image, labels) = columns(24, 20, |x| match x {
            0..12 => (0.0, 0),
            12..14 => (30.0, 1),
            _ => (200.0, 2),
        });
        let (merged, count) = absorb_slivers(&image, &labels, 3);
        assert_eq!(count, 2);
        assert!((0..20).all(|y| merged[y * 24 + 13] == merged[y * 24]));
        assert_ne!(merged[0], merged[23]);
    }

    #[test]
    fn long_single_rows_are_not_slivers_but_short_pieces_are() {
        let labels: Vec<u32> = (0..32).map(|x| u32::from(x >= 16)).collect();
        let image = RgbImage {
            width: 32,
            height: 1,
            pixels: (0..32)
                .map(|x| [if x < 16 { 0.0 } else { 90.0 }; 3])
                .collect(),
        };
        assert_eq!(absorb_slivers(&image, &labels, 2), (labels.clone(), 2));
        // A 3-pixel piece between the halves is a sliver and joins the nearer colour.
        let (mut labels, mut image) = (labels, image);
        labels[16..19].fill(2);
        image.pixels[16..19].fill([10.0; 3]);
        let (merged, count) = absorb_slivers(&image, &labels, 3);
        assert_eq!(count, 2);
        assert_eq!(merged[17], merged[0]);
    }
}

//! Felzenszwalb–Huttenlocher graph-based segmentation (IJCV 2004) on a smoothed RGB image.
//!
//! Graph: pixels joined to their 8 neighbours, weighted by the Euclidean distance of their
//! smoothed RGB values (0..255 per channel). Edges are visited in increasing weight (Kruskal
//! order); components `C1 ≠ C2` joined by edge `w` merge when
//! `w ≤ min(Int(C1) + k/|C1|, Int(C2) + k/|C2|)`, where `Int(C)` is the largest weight in the
//! component's spanning tree — the weight of the edge that last merged it, since edges arrive
//! sorted. A second pass in the same order then merges any component smaller than `min_size`
//! into its neighbour.
//!
//! Ties between equal weights are broken by edge index (pixel, then direction), so the result
//! is deterministic. scikit-image's `felzenszwalb` differs in small ways: it merges on a strict
//! `<`, sorts with an unstable quicksort and mirrors the border when smoothing.

use super::disjoint_set::DisjointSets;
use super::resample::RgbImage;

/// Neighbour offsets `(dx, dy)` of the four edge directions leaving each pixel; with their
/// reverses they make the 8-neighbourhood.
const DIRECTIONS: [(isize, isize); 4] = [(1, 0), (0, 1), (1, 1), (1, -1)];

/// The pixel an edge's key leads to, if it lies inside the image.
fn neighbour(pixel: usize, direction: usize, width: usize, height: usize) -> Option<usize> {
    let (dx, dy) = DIRECTIONS[direction];
    let x = (pixel % width)
        .checked_add_signed(dx)
        .filter(|&x| x < width)?;
    let y = (pixel / width)
        .checked_add_signed(dy)
        .filter(|&y| y < height)?;
    Some(y * width + x)
}

fn colour_distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

/// Every edge as a sort key: weight bits high (non-negative floats order like their bits),
/// `pixel * 4 + direction` low. Sorting the keys sorts by weight, ties by edge index.
fn sorted_edges(image: &RgbImage) -> Vec<u64> {
    let (width, height) = (image.width, image.height);
    let mut keys = Vec::with_capacity(4 * width * height);
    for pixel in 0..width * height {
        for direction in 0..DIRECTIONS.len() {
            if let Some(other) = neighbour(pixel, direction, width, height) {
                let weight = colour_distance(image.pixels[pixel], image.pixels[other]);
                let edge = (pixel * DIRECTIONS.len() + direction) as u64;
                keys.push(u64::from(weight.to_bits()) << 32 | edge);
            }
        }
    }
    keys.sort_unstable();
    keys
}

/// Endpoints and weight of a sort key.
fn decode(key: u64, width: usize, height: usize) -> (u32, u32, f32) {
    let edge = (key & u64::from(u32::MAX)) as usize;
    let (pixel, direction) = (edge / DIRECTIONS.len(), edge % DIRECTIONS.len());
    let other = neighbour(pixel, direction, width, height)
        .expect("keys are only made for edges inside the image");
    (
        pixel as u32,
        other as u32,
        f32::from_bits((key >> 32) as u32),
    )
}

/// Largest image the edge keys can index (`pixel * 4 + direction` must fit in 32 bits).
pub(crate) const MAX_GRAPH_PIXELS: usize = (u32::MAX as usize) / DIRECTIONS.len();

/// Segments `image` (already smoothed); returns a label per pixel in `0..count` (numbered by
/// first appearance in raster order) and `count`. `image` must have at most
/// [`MAX_GRAPH_PIXELS`] pixels.
pub(crate) fn segment_graph(image: &RgbImage, k: f32, min_size: usize) -> (Vec<u32>, usize) {
    let (width, height) = (image.width, image.height);
    debug_assert!(width * height <= MAX_GRAPH_PIXELS);
    let keys = sorted_edges(image);
    let mut sets = DisjointSets::new(width * height, k);

    for &key in &keys {
        let (a, b, weight) = decode(key, width, height);
        let (root_a, root_b) = (sets.find(a), sets.find(b));
        if root_a != root_b && weight <= sets.threshold(root_a) && weight <= sets.threshold(root_b)
        {
            let root = sets.union_roots(root_a, root_b);
            sets.set_threshold(root, weight + k / sets.size(root) as f32);
        }
    }

    for &key in &keys {
        let (a, b, _) = decode(key, width, height);
        let (root_a, root_b) = (sets.find(a), sets.find(b));
        if root_a != root_b
            && ((sets.size(root_a) as usize) < min_size || (sets.size(root_b) as usize) < min_size)
        {
            sets.union_roots(root_a, root_b);
        }
    }
    sets.labels()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(width: usize, height: usize, colour: impl Fn(usize, usize) -> [f32; 3]) -> RgbImage {
        let pixels = (0..width * height)
            .map(|i| colour(i % width, i / width))
            .collect();
        RgbImage {
            width,
            height,
            pixels,
        }
    }

    #[test]
    fn edges_cover_the_eight_neighbourhood_once_and_sort_by_weight() {
        let img = image(3, 2, |x, y| [(x * 10 + y) as f32, 0.0, 0.0]);
        let keys = sorted_edges(&img);
        // 3x2 grid: 4 horizontal, 3 vertical, 2 + 2 diagonal edges.
        assert_eq!(keys.len(), 11);
        let weights: Vec<f32> = keys.iter().map(|&key| decode(key, 3, 2).2).collect();
        assert!(weights.windows(2).all(|w| w[0] <= w[1]));
        let mut pairs: Vec<(u32, u32)> = keys
            .iter()
            .map(|&key| decode(key, 3, 2))
            .map(|(a, b, _)| (a.min(b), a.max(b)))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        assert_eq!(pairs.len(), 11, "no edge twice");
        assert_eq!(weights[0], 1.0, "vertical edges differ by 1");
    }

    #[test]
    fn threshold_k_separates_a_step_only_when_small() {
        // Two flat halves differing by 40: merged iff 40 <= 0 + k/|C| for both halves (|C| = 8).
        let img = image(4, 4, |x, _| if x < 2 { [0.0; 3] } else { [40.0, 0.0, 0.0] });
        assert_eq!(segment_graph(&img, 100.0, 1).1, 2);
        assert_eq!(segment_graph(&img, 320.0, 1).1, 1);
    }

    #[test]
    fn min_size_absorbs_small_components() {
        // A single bright pixel in a dark 5x5 field: its own component unless min_size > 1.
        let img = image(5, 5, |x, y| {
            if (x, y) == (2, 2) {
                [255.0; 3]
            } else {
                [0.0; 3]
            }
        });
        let (labels, count) = segment_graph(&img, 10.0, 1);
        assert_eq!(count, 2);
        assert_ne!(labels[12], labels[0]);
        assert_eq!(segment_graph(&img, 10.0, 2).1, 1);
    }
}

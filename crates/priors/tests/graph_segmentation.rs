//! Behaviour of [`GraphSegmenter`] through its public API.

use std::path::Path;

use clearair_priors::{GraphSegmenter, GraphSegmenterConfig, MAX_REGION_MASKS, RegionMasks};

const QUADRANT_COLOURS: [[u8; 3]; 4] =
    [[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40]];

/// Quadrant index (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of a pixel.
fn quadrant(x: usize, y: usize, width: usize, height: usize) -> usize {
    usize::from(x >= width / 2) + 2 * usize::from(y >= height / 2)
}

fn quadrant_image(width: usize, height: usize) -> Vec<u8> {
    (0..width * height)
        .flat_map(|i| QUADRANT_COLOURS[quadrant(i % width, i / width, width, height)])
        .collect()
}

fn default_segmenter() -> GraphSegmenter {
    GraphSegmenter::new(GraphSegmenterConfig::default())
}

/// Every pixel in exactly one mask, masks non-empty, scores in [0, 1].
fn assert_partition(masks: &RegionMasks, width: usize, height: usize, max_masks: usize) {
    assert_eq!((masks.width, masks.height), (width, height));
    assert_eq!(masks.labels.len(), width * height);
    assert!(
        (1..=max_masks).contains(&masks.count),
        "{} masks",
        masks.count
    );
    assert!(
        masks
            .labels
            .iter()
            .all(|&label| usize::from(label) < masks.count)
    );
    let areas = masks.areas();
    assert_eq!(areas.len(), masks.count);
    assert_eq!(areas.iter().sum::<usize>(), width * height);
    assert!(areas.iter().all(|&area| area > 0));
    let mut coverage = vec![0u8; width * height];
    for (index, &area) in areas.iter().enumerate() {
        let mask = masks.mask(index);
        assert_eq!(mask.iter().filter(|&&inside| inside).count(), area);
        for (count, inside) in coverage.iter_mut().zip(mask) {
            *count += u8::from(inside);
        }
    }
    assert!(
        coverage.iter().all(|&count| count == 1),
        "a pixel outside or in two masks"
    );
    assert_eq!(masks.scores.len(), masks.count);
    assert!(masks.scores.iter().all(|score| (0.0..=1.0).contains(score)));
}

/// Fraction of `mask` pixels in quadrant `q` and fraction of quadrant `q` covered (IoU parts).
fn quadrant_iou(masks: &RegionMasks, index: usize, q: usize) -> f64 {
    let (width, height) = (masks.width, masks.height);
    let (mut intersection, mut union) = (0usize, 0usize);
    for (pixel, inside) in masks.mask(index).into_iter().enumerate() {
        let in_quadrant = quadrant(pixel % width, pixel / width, width, height) == q;
        intersection += usize::from(inside && in_quadrant);
        union += usize::from(inside || in_quadrant);
    }
    intersection as f64 / union as f64
}

#[test]
fn four_flat_quadrants_give_four_aligned_regions() {
    let (width, height) = (64, 48);
    let masks = default_segmenter()
        .segment(
            width,
            height,
            &quadrant_image(width, height),
            MAX_REGION_MASKS,
        )
        .unwrap();
    assert_partition(&masks, width, height, MAX_REGION_MASKS);
    assert_eq!(masks.count, 4, "areas {:?}", masks.areas());
    for index in 0..4 {
        let best = (0..4)
            .map(|q| quadrant_iou(&masks, index, q))
            .fold(0.0, f64::max);
        // At most one column or row of the smoothed boundary ramp may go to the neighbour.
        assert!(best > 0.95, "mask {index} IoU {best}");
        // A few junction pixels of another colour may join a mask; the rest is one colour.
        assert!(
            masks.scores[index] > 0.5,
            "homogeneous regions: {:?}",
            masks.scores
        );
    }
    // Pixels two or more away from the boundaries are labelled by their quadrant alone.
    for y in (0..height).filter(|y| y.abs_diff(height / 2) >= 2) {
        for x in (0..width).filter(|x| x.abs_diff(width / 2) >= 2) {
            let q = quadrant(x, y, width, height);
            let reference = masks.labels[(q / 2) * (height - 1) * width + (q % 2) * (width - 1)];
            assert_eq!(masks.labels[y * width + x], reference, "pixel ({x}, {y})");
        }
    }
}

#[test]
fn max_masks_folds_the_smaller_regions_into_a_last_background_mask() {
    // Quadrants of unequal size: split at x = 40 of 64 and y = 20 of 48.
    let (width, height) = (64, 48);
    let rgb: Vec<u8> = (0..width * height)
        .flat_map(|i| {
            let (x, y) = (i % width, i / width);
            QUADRANT_COLOURS[usize::from(x >= 40) + 2 * usize::from(y >= 20)]
        })
        .collect();
    let masks = default_segmenter().segment(width, height, &rgb, 3).unwrap();
    assert_partition(&masks, width, height, 3);
    assert_eq!(masks.count, 3);
    let areas = masks.areas();
    // Largest: bottom-left 40x28 = 1120, then top-left 40x20 = 800; background 24x48 = 1152.
    assert!(
        areas[0].abs_diff(1120) <= 80 && areas[1].abs_diff(800) <= 80,
        "{areas:?}"
    );
    assert!(areas[2].abs_diff(24 * 48) <= 80, "{areas:?}");
    assert_eq!(masks.labels[0], 1, "top-left is the second largest");
    assert_eq!(
        masks.labels[width - 1],
        2,
        "top-right went to the background"
    );
    assert_eq!(
        masks.labels[width * height - 1],
        2,
        "bottom-right went to the background"
    );
    assert!(
        masks.scores[2] < masks.scores[0],
        "a two-colour background is less homogeneous"
    );

    let single = default_segmenter().segment(width, height, &rgb, 1).unwrap();
    assert_eq!(single.count, 1);
    assert!(single.labels.iter().all(|&label| label == 0));
}

#[test]
fn large_inputs_are_segmented_at_the_working_size_and_upsampled() {
    let (width, height) = (900, 500);
    let config = GraphSegmenterConfig {
        max_side: 180,
        ..Default::default()
    };
    let masks = GraphSegmenter::new(config)
        .segment(width, height, &quadrant_image(width, height), 8)
        .unwrap();
    assert_partition(&masks, width, height, 8);
    assert_eq!(masks.count, 4, "areas {:?}", masks.areas());
    for index in 0..4 {
        let best = (0..4)
            .map(|q| quadrant_iou(&masks, index, q))
            .fold(0.0, f64::max);
        assert!(best > 0.97, "mask {index} IoU {best}");
    }
}

#[test]
fn tiny_and_thin_images_work() {
    let segmenter = default_segmenter();
    for (width, height) in [(1, 1), (1, 37), (53, 1), (2, 40), (40, 2), (3, 3)] {
        let rgb: Vec<u8> = (0..width * height * 3)
            .map(|i| if i < width * height * 3 / 2 { 10 } else { 240 })
            .collect();
        let masks = segmenter.segment(width, height, &rgb, 4).unwrap();
        assert_partition(&masks, width, height, 4);
    }
    let one = segmenter.segment(1, 1, &[1, 2, 3], 16).unwrap();
    assert_eq!(
        (one.count, one.labels.clone(), one.scores.clone()),
        (1, vec![0], vec![1.0])
    );
}

#[test]
fn photos_are_partitioned_deterministically() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/brisque");
    let segmenter = default_segmenter();
    for file in [
        "astronaut_clean.png",
        "coffee_noise25.png",
        "rocket_jpeg10.png",
    ] {
        let image = image::open(fixtures.join(file)).unwrap().to_rgb8();
        let (width, height) = (image.width() as usize, image.height() as usize);
        let first = segmenter
            .segment(width, height, image.as_raw(), MAX_REGION_MASKS)
            .unwrap();
        assert_partition(&first, width, height, MAX_REGION_MASKS);
        assert!(
            first.count >= 3,
            "{file}: a photo has several regions, got {}",
            first.count
        );
        let areas = first.areas();
        let ranked = areas[..first.count - 1]
            .windows(2)
            .all(|pair| pair[0] >= pair[1]);
        assert!(
            ranked,
            "{file}: masks before the background are ranked by area: {areas:?}"
        );
        let again = segmenter
            .segment(width, height, image.as_raw(), MAX_REGION_MASKS)
            .unwrap();
        assert_eq!(first, again, "{file}: segmentation is deterministic");
    }
}

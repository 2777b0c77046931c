//! Tiling large images so a network's memory stays bounded, and blending the tiles back.
//!
//! A [`TilePlan`] covers the image with tiles of at most `tile × tile` that overlap their
//! neighbours by at least `overlap`. The last row and column are pushed against the border
//! (they overlap their neighbour more) instead of leaving a thin sliver that a network would
//! restore badly. [`TileBlender`] weights each restored tile with a linear ramp across every
//! overlap it shares, so seams fade: in an overlap the two ramps sum to exactly 1, and the
//! image border keeps full weight.

use crate::error::ImagingError;
use crate::rgb::{Rgb8Image, check_not_empty};

/// One tile: a rectangle of the image and the ramp lengths of its four sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Left edge in image pixels.
    pub x: u32,
    /// Top edge in image pixels.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixels shared with the left neighbour (0 at the image border).
    pub overlap_left: u32,
    /// Pixels shared with the right neighbour (0 at the image border).
    pub overlap_right: u32,
    /// Pixels shared with the neighbour above (0 at the image border).
    pub overlap_top: u32,
    /// Pixels shared with the neighbour below (0 at the image border).
    pub overlap_bottom: u32,
}

impl Tile {
    /// This tile's pixels, ready to be restored.
    pub fn crop_from(&self, image: &Rgb8Image) -> Result<Rgb8Image, ImagingError> {
        image.crop(self.x, self.y, self.width, self.height)
    }
}

/// A covering of a `width × height` image by overlapping tiles, in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TilePlan {
    width: u32,
    height: u32,
    tiles: Vec<Tile>,
}

/// One tile's extent along an axis.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    size: u32,
    before: u32,
    after: u32,
}

impl TilePlan {
    /// Plans tiles of at most `tile × tile` overlapping by at least `overlap`. An image that
    /// fits in one tile gets exactly one tile, the whole image.
    pub fn new(width: u32, height: u32, tile: u32, overlap: u32) -> Result<Self, ImagingError> {
        check_not_empty(width, height)?;
        if tile == 0 || overlap >= tile {
            return Err(ImagingError::InvalidTiling { tile, overlap });
        }
        let columns = axis_spans(width, tile, overlap);
        let rows = axis_spans(height, tile, overlap);
        let tiles = rows
            .iter()
            .flat_map(|row| {
                columns.iter().map(move |column| Tile {
                    x: column.start,
                    y: row.start,
                    width: column.size,
                    height: row.size,
                    overlap_left: column.before,
                    overlap_right: column.after,
                    overlap_top: row.before,
                    overlap_bottom: row.after,
                })
            })
            .collect();
        Ok(Self {
            width,
            height,
            tiles,
        })
    }

    /// The tiles, row by row.
    pub fn tiles(&self) -> &[Tile] {
        &self.tiles
    }

    /// Width of the planned image.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height of the planned image.
    pub fn height(&self) -> u32 {
        self.height
    }
}

/// Tiles along one axis: as few as tiles of `tile` overlapping by `overlap` need, all of one
/// size — the smallest (rounded up to a multiple of 8, the network's downsampling unit, where
/// that still fits) that covers the axis with that many — spread evenly from one end to the
/// other. A 1024-pixel side with tiles of 512 overlapping by 32 gets three tiles of 368
/// rather than three of 512 (the last pushed back over its neighbour): the restorer then
/// computes 1.2 times the image's pixels instead of 2.25 times.
fn axis_spans(length: u32, tile: u32, overlap: u32) -> Vec<Span> {
    if length <= tile {
        return vec![Span {
            start: 0,
            size: length,
            before: 0,
            after: 0,
        }];
    }
    let stride = tile - overlap;
    let count = (length - tile).div_ceil(stride) + 1;
    // count·size − (count − 1)·overlap ≥ length; `needed` ≤ `tile` by the choice of `count`.
    let needed = (length + (count - 1) * overlap).div_ceil(count);
    let rounded = needed.next_multiple_of(8);
    let size = if rounded <= tile { rounded } else { needed };
    let room = length - size;
    let gaps = count - 1;
    let starts: Vec<u32> = (0..count)
        .map(|i| ((u64::from(i) * u64::from(room) + u64::from(gaps / 2)) / u64::from(gaps)) as u32)
        .collect();
    (0..starts.len())
        .map(|i| Span {
            start: starts[i],
            size,
            before: if i == 0 {
                0
            } else {
                starts[i - 1] + size - starts[i]
            },
            after: starts.get(i + 1).map_or(0, |next| starts[i] + size - next),
        })
        .collect()
}

/// Weight of each pixel along one axis of a tile: a ramp `(i + 1) / (n + 1)` over the `n`
/// pixels shared with a neighbour, mirrored on the other side, 1 elsewhere. Within an overlap
/// the rising ramp of one tile and the falling ramp of the other sum to exactly 1.
fn axis_weights(size: u32, before: u32, after: u32) -> Vec<f32> {
    (0..size)
        .map(|i| {
            let rising = if i < before {
                (i + 1) as f32 / (before + 1) as f32
            } else {
                1.0
            };
            let from_end = size - 1 - i;
            let falling = if from_end < after {
                (from_end + 1) as f32 / (after + 1) as f32
            } else {
                1.0
            };
            rising * falling
        })
        .collect()
}

/// Accumulates restored tiles (planar `3×h×w` floats each) into one image.
///
/// Holds a weighted sum and a weight per pixel: 16 bytes per image pixel.
#[derive(Debug, Clone)]
pub struct TileBlender {
    plan: TilePlan,
    sum: Vec<f32>,
    weight: Vec<f32>,
}

impl TileBlender {
    /// An empty accumulator for the image `plan` covers.
    pub fn new(plan: &TilePlan) -> Self {
        let pixels = plan.width as usize * plan.height as usize;
        Self {
            plan: plan.clone(),
            sum: vec![0.0; pixels * 3],
            weight: vec![0.0; pixels],
        }
    }

    /// Adds the restored output of tile `index` of the plan.
    pub fn add(&mut self, index: usize, planar: &[f32]) -> Result<(), ImagingError> {
        let count = self.plan.tiles.len();
        let tile = *self
            .plan
            .tiles
            .get(index)
            .ok_or(ImagingError::TileIndexOutOfRange { index, count })?;
        let (width, height) = (tile.width as usize, tile.height as usize);
        let tile_plane = width * height;
        if planar.len() != tile_plane * 3 {
            return Err(ImagingError::LengthMismatch {
                what: format!(
                    "restored tile {index} ({}×{}, planar 3×h×w)",
                    tile.width, tile.height
                ),
                expected: tile_plane as u64 * 3,
                actual: planar.len() as u64,
            });
        }
        let column_weights = axis_weights(tile.width, tile.overlap_left, tile.overlap_right);
        let row_weights = axis_weights(tile.height, tile.overlap_top, tile.overlap_bottom);
        let image_width = self.plan.width as usize;
        let image_plane = image_width * self.plan.height as usize;
        for (row, &row_weight) in row_weights.iter().enumerate() {
            let image_row = (tile.y as usize + row) * image_width + tile.x as usize;
            for (column, &column_weight) in column_weights.iter().enumerate() {
                let weight = row_weight * column_weight;
                let pixel = image_row + column;
                self.weight[pixel] += weight;
                for channel in 0..3 {
                    let value = planar[channel * tile_plane + row * width + column];
                    self.sum[channel * image_plane + pixel] += weight * value;
                }
            }
        }
        Ok(())
    }

    /// Normalises by the accumulated weights and returns planar `3×H×W` floats; fails if any
    /// pixel received no tile.
    pub fn finish(self) -> Result<Vec<f32>, ImagingError> {
        let width = self.plan.width;
        let missing = self.weight.iter().filter(|&&w| w <= 0.0).count();
        if let Some(first) = self.weight.iter().position(|&w| w <= 0.0) {
            return Err(ImagingError::UncoveredPixels {
                missing: missing as u64,
                x: (first % width as usize) as u32,
                y: (first / width as usize) as u32,
            });
        }
        let mut sum = self.sum;
        for channel in sum.chunks_exact_mut(self.weight.len()) {
            for (value, &weight) in channel.iter_mut().zip(&self.weight) {
                *value /= weight;
            }
        }
        Ok(sum)
    }

    /// [`TileBlender::finish`], then rounded to RGB8.
    pub fn finish_rgb8(self) -> Result<Rgb8Image, ImagingError> {
        let (width, height) = (self.plan.width, self.plan.height);
        Rgb8Image::from_planar_f32(width, height, &self.finish()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_tile_when_the_image_fits() {
        let plan = TilePlan::new(100, 80, 128, 16).unwrap();
        let only = Tile {
            x: 0,
            y: 0,
            width: 100,
            height: 80,
            overlap_left: 0,
            overlap_right: 0,
            overlap_top: 0,
            overlap_bottom: 0,
        };
        assert_eq!(plan.tiles(), &[only]);
    }

    #[test]
    fn tiles_cover_every_pixel_without_slivers() {
        for (width, height, tile, overlap) in [
            (37, 23, 16, 4),
            (300, 129, 128, 32),
            (64, 64, 16, 15),
            (1024, 700, 512, 32),
        ] {
            let plan = TilePlan::new(width, height, tile, overlap).unwrap();
            let mut covered = vec![0u32; (width * height) as usize];
            let first = plan.tiles()[0];
            for t in plan.tiles() {
                // Tiles of one size, at most `tile`, the whole side where it fits: no
                // slivers at the border.
                assert_eq!((t.width, t.height), (first.width, first.height));
                assert!(t.width <= tile && t.height <= tile);
                assert!(width > tile || t.width == width);
                assert!(height > tile || t.height == height);
                assert!(t.x + t.width <= width && t.y + t.height <= height);
                for y in t.y..t.y + t.height {
                    for x in t.x..t.x + t.width {
                        covered[(y * width + x) as usize] += 1;
                    }
                }
            }
            assert!(
                covered.iter().all(|&c| c >= 1),
                "{width}×{height} tile {tile}"
            );
            let last = plan.tiles().last().unwrap();
            assert_eq!((last.x + last.width, last.y + last.height), (width, height));
            for pair in plan.tiles().windows(2).filter(|p| p[0].y == p[1].y) {
                assert!(pair[0].x + pair[0].width - pair[1].x >= overlap);
                assert_eq!(pair[0].overlap_right, pair[1].overlap_left);
            }
            let columns = plan.tiles().iter().filter(|t| t.y == 0).count();
            for (above, below) in plan.tiles().iter().zip(&plan.tiles()[columns..]) {
                assert_eq!(above.x, below.x);
                assert!(above.y + above.height - below.y >= overlap);
                assert_eq!(above.overlap_bottom, below.overlap_top);
            }
        }
        assert_eq!(
            TilePlan::new(300, 129, 128, 32).unwrap().tiles().len(),
            3 * 2
        );
        // As many tiles as tiles of 512 overlapping by 32 need, but only as large as needed:
        // three of 368 (a multiple of 8) across 1024, two of 368 down 700.
        let plan = TilePlan::new(1024, 700, 512, 32).unwrap();
        let xs: Vec<u32> = plan.tiles()[..3].iter().map(|t| t.x).collect();
        assert_eq!(xs, [0, 328, 656]);
        assert_eq!((plan.tiles().len(), plan.tiles()[0].width), (6, 368));
        assert_eq!((plan.tiles()[0].height, plan.tiles()[3].y), (368, 332));
    }

    #[test]
    fn identity_tiles_reassemble_exactly() {
        let (width, height) = (37u32, 23u32);
        let data: Vec<u8> = (0..width * height * 3)
            .map(|i| (i * 131 % 256) as u8)
            .collect();
        let image = Rgb8Image::new(width, height, data).unwrap();
        let plan = TilePlan::new(width, height, 16, 5).unwrap();
        let mut blender = TileBlender::new(&plan);
        for (index, tile) in plan.tiles().iter().enumerate() {
            blender
                .add(index, &tile.crop_from(&image).unwrap().to_planar_f32())
                .unwrap();
        }
        let original = image.to_planar_f32();
        let blended = blender.clone().finish().unwrap();
        let worst = original
            .iter()
            .zip(&blended)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(blender.finish_rgb8().unwrap(), image);
    }

    #[test]
    fn overlaps_cross_fade_linearly() {
        // Two 6-pixel tiles over a 10×1 image share 2 pixels; the left tile says 0, the right 1.
        let plan = TilePlan::new(10, 1, 6, 2).unwrap();
        assert_eq!(plan.tiles().len(), 2);
        assert_eq!((plan.tiles()[1].x, plan.tiles()[1].overlap_left), (4, 2));
        let mut blender = TileBlender::new(&plan);
        blender.add(0, &[0.0; 18]).unwrap();
        blender.add(1, &[1.0; 18]).unwrap();
        let red = blender.finish().unwrap()[..10].to_vec();
        let expected = [0.0, 0.0, 0.0, 0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0, 1.0, 1.0];
        for (got, want) in red.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{red:?}");
        }
    }

    #[test]
    fn blender_reports_misuse() {
        let plan = TilePlan::new(10, 1, 6, 2).unwrap();
        let mut blender = TileBlender::new(&plan);
        assert!(matches!(
            blender.add(2, &[0.0; 18]),
            Err(ImagingError::TileIndexOutOfRange { index: 2, count: 2 })
        ));
        assert!(matches!(
            blender.add(0, &[0.0; 17]),
            Err(ImagingError::LengthMismatch { expected: 18, .. })
        ));
        blender.add(0, &[0.5; 18]).unwrap();
        assert!(matches!(
            blender.finish(),
            Err(ImagingError::UncoveredPixels {
                missing: 4,
                x: 6,
                y: 0
            })
        ));
        assert!(matches!(
            TilePlan::new(10, 10, 8, 8),
            Err(ImagingError::InvalidTiling { .. })
        ));
    }
}

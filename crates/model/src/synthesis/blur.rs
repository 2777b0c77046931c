//! Blur kernels and the convolution that applies them.

use super::Planes;

/// A square, odd-sized, normalised (sums to 1) filter kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct BlurFilter {
    /// Side length (odd).
    pub size: usize,
    /// `size·size` weights, row-major.
    pub weights: Vec<f32>,
}

impl BlurFilter {
    fn normalised(size: usize, mut weights: Vec<f32>) -> Self {
        let total: f32 = weights.iter().sum();
        for weight in &mut weights {
            *weight /= total;
        }
        Self { size, weights }
    }
}

/// An anti-aliased disk of `radius` pixels: full weight inside, a one-pixel linear ramp at
/// the rim so non-integer radii differ smoothly.
pub fn defocus_kernel(radius: f32) -> BlurFilter {
    let radius = radius.max(0.0);
    let half = (radius + 0.5).ceil() as usize;
    let size = 2 * half + 1;
    let weights = (0..size * size)
        .map(|i| {
            let (dy, dx) = (
                (i / size) as f32 - half as f32,
                (i % size) as f32 - half as f32,
            );
            (radius + 0.5 - (dx * dx + dy * dy).sqrt()).clamp(0.0, 1.0)
        })
        .collect();
    BlurFilter::normalised(size, weights)
}

/// An isotropic Gaussian of standard deviation `sigma` pixels, cut at three sigmas (the lens
/// blur most restoration benchmarks synthesise).
pub fn gaussian_kernel(sigma: f32) -> BlurFilter {
    let sigma = sigma.max(0.1);
    let half = (3.0 * sigma).ceil() as usize;
    let size = 2 * half + 1;
    let weights = (0..size * size)
        .map(|i| {
            let (dy, dx) = (
                (i / size) as f32 - half as f32,
                (i % size) as f32 - half as f32,
            );
            (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    BlurFilter::normalised(size, weights)
}

/// A straight line of `length` pixels through the centre at `angle_deg` (counter-clockwise
/// from +x, image rows pointing down), rasterised by bilinear splatting of dense samples.
pub fn motion_kernel(length: f32, angle_deg: f32) -> BlurFilter {
    let length = length.max(1.0);
    let half = (length / 2.0).ceil() as usize + 1;
    let size = 2 * half + 1;
    let mut weights = vec![0.0f32; size * size];
    let (sin, cos) = angle_deg.to_radians().sin_cos();
    let samples = (length * 4.0).ceil() as usize + 1;
    for s in 0..samples {
        let t = -length / 2.0 + length * s as f32 / (samples - 1) as f32;
        let (x, y) = (half as f32 + t * cos, half as f32 - t * sin);
        splat(&mut weights, size, x, y, 1.0);
    }
    BlurFilter::normalised(size, weights)
}

/// Adds `amount` at (x, y) spread bilinearly over the four neighbouring cells of a
/// `size`×`size` grid; cells outside the grid are skipped.
fn splat(grid: &mut [f32], size: usize, x: f32, y: f32, amount: f32) {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
        for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
            let (cx, cy) = (x0 as i64 + dx, y0 as i64 + dy);
            if (0..size as i64).contains(&cx) && (0..size as i64).contains(&cy) {
                grid[cy as usize * size + cx as usize] += amount * wx * wy;
            }
        }
    }
}

/// Filters every channel with `kernel`, repeating edge pixels beyond the border (so a flat
/// image stays flat and the mean is kept). The kernels here are point-symmetric, so
/// correlation and convolution coincide.
pub fn convolve(image: &Planes, kernel: &BlurFilter) -> Planes {
    let (height, width, half) = (
        image.height as i64,
        image.width as i64,
        (kernel.size / 2) as i64,
    );
    let taps: Vec<(i64, i64, f32)> = kernel
        .weights
        .iter()
        .enumerate()
        .filter(|(_, w)| **w != 0.0)
        .map(|(i, &w)| {
            (
                (i / kernel.size) as i64 - half,
                (i % kernel.size) as i64 - half,
                w,
            )
        })
        .collect();
    let mut data = vec![0.0f32; image.data.len()];
    for c in 0..3 {
        for y in 0..height {
            for x in 0..width {
                let mut sum = 0.0f32;
                for &(dy, dx, weight) in &taps {
                    let sy = (y + dy).clamp(0, height - 1) as usize;
                    let sx = (x + dx).clamp(0, width - 1) as usize;
                    sum += weight * image.data[image.index(c, sy, sx)];
                }
                data[image.index(c, y as usize, x as usize)] = sum;
            }
        }
    }
    Planes {
        height: image.height,
        width: image.width,
        data,
    }
}

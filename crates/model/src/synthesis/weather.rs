//! Scene degradations: haze by the atmospheric scattering model and rain streaks.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Planes;

/// Control points per side of the low-frequency part of the haze depth field.
const DEPTH_GRID: usize = 4;

/// Haze: I = J·t + A·(1 − t), t = exp(−β·d).
///
/// Photos carry no depth, so d is a proxy in [0.1, 1]: mostly the row position (outdoor
/// scenes recede towards the top of the frame: ground near, horizon and sky far) plus a
/// smooth random field for variety. A luminance-based proxy was rejected because it calls
/// every bright nearby object "far" and every dark sky "near".
pub(super) fn add_haze(
    image: &mut Planes,
    beta: f32,
    airlight: f32,
    flatness: f32,
    rng: &mut ChaCha8Rng,
) {
    let grid: Vec<f32> = (0..(DEPTH_GRID + 1) * (DEPTH_GRID + 1))
        .map(|_| rng.r#gen::<f32>())
        .collect();
    let (height, width) = (image.height, image.width);
    let relative = |i: usize, n: usize| {
        if n > 1 {
            i as f32 / (n - 1) as f32
        } else {
            0.5
        }
    };
    for y in 0..height {
        let v = relative(y, height);
        for x in 0..width {
            let u = relative(x, width);
            let field = bilinear(
                &grid,
                DEPTH_GRID + 1,
                u * DEPTH_GRID as f32,
                v * DEPTH_GRID as f32,
            );
            let proxy = 0.1 + 0.6 * (1.0 - v) + 0.3 * field;
            // The proxy's mean over the frame is 0.55; flattening pulls every depth there.
            let depth = proxy + flatness * (0.55 - proxy);
            let transmission = (-beta * depth).exp();
            for c in 0..3 {
                let i = image.index(c, y, x);
                image.data[i] = image.data[i] * transmission + airlight * (1.0 - transmission);
            }
        }
    }
}

/// Bilinear interpolation in a `side`×`side` row-major grid at fractional (x, y).
fn bilinear(grid: &[f32], side: usize, x: f32, y: f32) -> f32 {
    let (x0, y0) = (
        (x.floor() as usize).min(side - 2),
        (y.floor() as usize).min(side - 2),
    );
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |cx: usize, cy: usize| grid[cy * side + cx];
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
    let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Rain streaks: straight, parallel, of one length, each with its own brightness.
pub(super) struct Streaks {
    /// Direction, degrees from vertical.
    pub(super) angle_deg: f32,
    /// Length in pixels.
    pub(super) length: f32,
    /// Streaks per pixel.
    pub(super) density: f32,
    /// Peak brightness in [0, 1].
    pub(super) intensity: f32,
    /// Half-width of the fully bright core in pixels (0.5: about two pixels wide).
    pub(super) core: f32,
}

/// Rain: `density·H·W` straight streaks of `length` pixels at `angle_deg` from vertical,
/// each of brightness `intensity`·U(0.6, 1), with a bright core of half-width `core` that
/// fades to zero over one more pixel, screen-blended, 1 − (1 − J)(1 − R), so they only
/// brighten.
pub(super) fn add_rain(image: &mut Planes, streaks: &Streaks, rng: &mut ChaCha8Rng) {
    let Streaks {
        angle_deg,
        length,
        density,
        intensity,
        core,
    } = *streaks;
    let (height, width) = (image.height, image.width);
    let count = (density * (height * width) as f32).round() as usize;
    let (dx, dy) = angle_deg.to_radians().sin_cos();
    let plane = height * width;
    let mut layer = vec![0.0f32; plane];
    for _ in 0..count {
        // Start up to one streak length outside the frame so streaks enter across the edges.
        let x0 = rng.gen_range(-length * dx.abs()..width as f32 + length * dx.abs());
        let y0 = rng.gen_range(-length * dy.abs()..height as f32);
        let brightness = intensity * rng.gen_range(0.6..1.0);
        draw_streak(
            &mut layer,
            (width, height),
            ((x0, y0), (x0 + length * dx, y0 + length * dy)),
            core,
            brightness,
        );
    }
    for (i, value) in image.data.iter_mut().enumerate() {
        *value = 1.0 - (1.0 - *value) * (1.0 - layer[i % plane]);
    }
}

/// Draws a line from `start` to `end` into a `width`×`height` plane, stepping one pixel at a
/// time along its major axis; across it, pixels within `core` pixels of the centre line get
/// full `brightness`, fading to zero one pixel further out. Overlaps keep the brighter value.
fn draw_streak(
    plane: &mut [f32],
    (width, height): (usize, usize),
    (start, end): ((f32, f32), (f32, f32)),
    core: f32,
    brightness: f32,
) {
    let (run_x, run_y) = (end.0 - start.0, end.1 - start.1);
    if run_x == 0.0 && run_y == 0.0 {
        return;
    }
    let steep = run_y.abs() >= run_x.abs();
    // Work in (major, minor) coordinates, walking the major axis upwards; `put` maps back.
    let (major_start, major_end, minor_at_start, slope) = if steep {
        let minor = if run_y >= 0.0 { start.0 } else { end.0 };
        (start.1.min(end.1), start.1.max(end.1), minor, run_x / run_y)
    } else {
        let minor = if run_x >= 0.0 { start.1 } else { end.1 };
        (start.0.min(end.0), start.0.max(end.0), minor, run_y / run_x)
    };
    let mut put = |major: i64, minor: i64, value: f32| {
        let (x, y) = if steep {
            (minor, major)
        } else {
            (major, minor)
        };
        if (0..width as i64).contains(&x) && (0..height as i64).contains(&y) {
            let cell = &mut plane[y as usize * width + x as usize];
            *cell = cell.max(value);
        }
    };
    for major in major_start.ceil() as i64..=major_end.floor() as i64 {
        let centre = minor_at_start + (major as f32 - major_start) * slope;
        let reach = core + 1.0;
        for minor in (centre - reach).floor() as i64..=(centre + reach).ceil() as i64 {
            let coverage = (reach - (minor as f32 - centre).abs()).clamp(0.0, 1.0);
            if coverage > 0.0 {
                put(major, minor, brightness * coverage);
            }
        }
    }
}

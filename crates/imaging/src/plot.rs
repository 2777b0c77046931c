//! Line plots as images: learning curves, learning-rate range tests, benchmark sweeps — what
//! people would rather look at than read as columns of numbers.

use crate::draw::{draw_text, fill_rect};
use crate::error::ImagingError;
use crate::font::{LINE_HEIGHT, text_width};
use crate::rgb::Rgb8Image;

/// Colours for successive series.
pub const PALETTE: [[u8; 3]; 6] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [23, 190, 207],
];

/// One line of a plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points in drawing order; non-finite points break the line.
    pub points: Vec<(f64, f64)>,
    /// Its colour; `None` takes the next one of [`PALETTE`] by position.
    pub colour: Option<[u8; 3]>,
    /// Drawn dashed (reference levels: a goal, a baseline).
    pub dashed: bool,
}

impl Series {
    /// A solid line in the palette's colour for its position.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
            colour: None,
            dashed: false,
        }
    }

    /// A dashed horizontal line at `level` from `x_from` to `x_to`, in `colour`.
    pub fn level(
        name: impl Into<String>,
        level: f64,
        x_from: f64,
        x_to: f64,
        colour: [u8; 3],
    ) -> Self {
        Self {
            name: name.into(),
            points: vec![(x_from, level), (x_to, level)],
            colour: Some(colour),
            dashed: true,
        }
    }
}

/// A line plot with axes, ticks, a title and a legend.
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// Logarithmic x axis (every x must then be positive).
    pub log_x: bool,
    /// The lines.
    pub series: Vec<Series>,
}

const MARGIN_LEFT: u32 = 64;
const MARGIN_RIGHT: u32 = 16;
const MARGIN_TOP: u32 = 28;
const MARGIN_BOTTOM: u32 = 44;
const TICKS: usize = 5;

impl LinePlot {
    /// Renders the plot at `width × height` pixels.
    pub fn render(&self, width: u32, height: u32) -> Result<Rgb8Image, ImagingError> {
        let mut image = Rgb8Image::filled(width, height, [255, 255, 255])?;
        let plot_width = width.saturating_sub(MARGIN_LEFT + MARGIN_RIGHT).max(1);
        let plot_height = height.saturating_sub(MARGIN_TOP + MARGIN_BOTTOM).max(1);
        let x_of = |x: f64| if self.log_x { x.log10() } else { x };
        let finite: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .map(|&(x, y)| (x_of(x), y))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let range = |values: Vec<f64>| {
            let low = values.iter().copied().fold(f64::INFINITY, f64::min);
            let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if !low.is_finite() {
                (0.0, 1.0)
            } else if high - low < 1e-12 {
                (low - 0.5, high + 0.5)
            } else {
                (low, high)
            }
        };
        let (x_low, x_high) = range(finite.iter().map(|p| p.0).collect());
        let (y_low, y_high) = range(finite.iter().map(|p| p.1).collect());
        let to_pixel = |x: f64, y: f64| -> (f64, f64) {
            (
                f64::from(MARGIN_LEFT) + (x - x_low) / (x_high - x_low) * f64::from(plot_width - 1),
                f64::from(MARGIN_TOP)
                    + (y_high - y) / (y_high - y_low) * f64::from(plot_height - 1),
            )
        };
        let axis = [90, 90, 90];
        let grid = [230, 230, 230];
        for tick in 0..TICKS {
            let t = tick as f64 / (TICKS - 1) as f64;
            let (gx, _) = to_pixel(x_low + t * (x_high - x_low), y_low);
            let (_, gy) = to_pixel(x_low, y_low + t * (y_high - y_low));
            fill_rect(&mut image, gx as u32, MARGIN_TOP, 1, plot_height, grid);
            fill_rect(&mut image, MARGIN_LEFT, gy as u32, plot_width, 1, grid);
            let x_value = x_low + t * (x_high - x_low);
            let x_text = if self.log_x {
                let value = 10f64.powf(x_value);
                format_number(value, value)
            } else {
                format_number(x_value, x_low.abs().max(x_high.abs()))
            };
            let x_text_width = text_width(&x_text, 1);
            draw_text(
                &mut image,
                (gx as u32).saturating_sub(x_text_width / 2),
                MARGIN_TOP + plot_height + 4,
                &x_text,
                axis,
                1,
            );
            let y_text = format_number(y_low + t * (y_high - y_low), y_low.abs().max(y_high.abs()));
            draw_text(
                &mut image,
                MARGIN_LEFT.saturating_sub(text_width(&y_text, 1) + 4),
                (gy as u32).saturating_sub(4),
                &y_text,
                axis,
                1,
            );
        }
        fill_rect(&mut image, MARGIN_LEFT, MARGIN_TOP, 1, plot_height, axis);
        fill_rect(
            &mut image,
            MARGIN_LEFT,
            MARGIN_TOP + plot_height - 1,
            plot_width,
            1,
            axis,
        );
        draw_text(&mut image, MARGIN_LEFT, 8, &self.title, [0, 0, 0], 1);
        let x_label_width = text_width(&self.x_label, 1);
        draw_text(
            &mut image,
            MARGIN_LEFT + plot_width.saturating_sub(x_label_width) / 2,
            height.saturating_sub(LINE_HEIGHT + 4),
            &self.x_label,
            axis,
            1,
        );
        draw_text(&mut image, 4, MARGIN_TOP - 12, &self.y_label, axis, 1);
        for (index, series) in self.series.iter().enumerate() {
            let colour = series.colour.unwrap_or(PALETTE[index % PALETTE.len()]);
            let dash = if series.dashed { Some(DASH) } else { None };
            // Sparse solid series (evaluations every few thousand steps) get a marker per
            // point, so a single evaluation is visible too.
            let marked = !series.dashed && series.points.len() <= MARKED_POINTS;
            let mut previous: Option<(f64, f64)> = None;
            for &(x, y) in &series.points {
                let (x, y) = (x_of(x), y);
                if !(x.is_finite() && y.is_finite()) {
                    previous = None;
                    continue;
                }
                let point = to_pixel(x, y);
                if marked {
                    fill_rect(
                        &mut image,
                        (point.0 as u32).saturating_sub(2),
                        (point.1 as u32).saturating_sub(2),
                        5,
                        5,
                        colour,
                    );
                }
                match previous {
                    Some(from) => draw_line(&mut image, from, point, colour, dash),
                    None => draw_line(&mut image, point, point, colour, dash),
                }
                previous = Some(point);
            }
            let legend_y = MARGIN_TOP + 6 + index as u32 * (LINE_HEIGHT + 2);
            let legend_x =
                MARGIN_LEFT + plot_width.saturating_sub(text_width(&series.name, 1) + 30);
            fill_rect(&mut image, legend_x, legend_y + 3, 14, 3, colour);
            draw_text(&mut image, legend_x + 18, legend_y, &series.name, colour, 1);
        }
        Ok(image)
    }
}

/// A short number for a tick label on a linear axis whose largest magnitude is `scale`: every
/// tick of one axis in the same notation, so a tick near zero on an axis from −0.2 to 0.06
/// reads −0.010, not −1e-2 (a log axis passes each value as its own scale).
fn format_number(value: f64, scale: f64) -> String {
    let magnitude = scale.abs();
    if magnitude != 0.0 && !(1e-2..1e5).contains(&magnitude) {
        format!("{value:.0e}")
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Solid series with at most this many points are drawn with a marker at each.
const MARKED_POINTS: usize = 50;

/// Dash and gap length of dashed lines, in pixels.
const DASH: usize = 6;

/// A two-pixel-wide line from `from` to `to` (pixel coordinates), clipped to the image;
/// with `dash`, drawn in dashes of that many pixels with gaps as long.
fn draw_line(
    image: &mut Rgb8Image,
    from: (f64, f64),
    to: (f64, f64),
    colour: [u8; 3],
    dash: Option<usize>,
) {
    let steps = (to.0 - from.0)
        .abs()
        .max((to.1 - from.1).abs())
        .ceil()
        .max(1.0) as usize;
    for step in 0..=steps {
        if dash.is_some_and(|d| (step / d) % 2 == 1) {
            continue;
        }
        let t = step as f64 / steps as f64;
        let x = from.0 + t * (to.0 - from.0);
        let y = from.1 + t * (to.1 - from.1);
        if x >= 0.0 && y >= 0.0 {
            fill_rect(image, x as u32, y as u32, 2, 2, colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(image: &Rgb8Image, colour: [u8; 3]) -> usize {
        image
            .as_bytes()
            .chunks_exact(3)
            .filter(|p| *p == colour)
            .count()
    }

    #[test]
    fn lines_are_drawn_in_their_colours_inside_the_frame() {
        let plot = LinePlot {
            title: "loss".into(),
            x_label: "step".into(),
            y_label: "L1".into(),
            log_x: false,
            series: vec![
                Series::new(
                    "a",
                    (0..50)
                        .map(|i| (f64::from(i), 1.0 / f64::from(i + 1)))
                        .collect(),
                ),
                Series::new("b", vec![(0.0, 0.5), (f64::NAN, 0.3), (49.0, 0.2)]),
            ],
        };
        let image = plot.render(320, 200).unwrap();
        assert_eq!((image.width(), image.height()), (320, 200));
        assert!(count(&image, PALETTE[0]) > 200);
        assert!(count(&image, PALETTE[1]) > 10);
        // The first series starts at the top left of the plot area (its largest y).
        let top_left = image.pixel(MARGIN_LEFT, MARGIN_TOP);
        assert_eq!(top_left, PALETTE[0]);
    }

    #[test]
    fn log_axes_and_degenerate_data_render() {
        let plot = LinePlot {
            title: "range test".into(),
            x_label: "learning rate".into(),
            y_label: "loss".into(),
            log_x: true,
            series: vec![Series::new(
                "flat",
                vec![(1e-5, 0.1), (1e-3, 0.1), (1e-1, 0.1)],
            )],
        };
        let image = plot.render(200, 120).unwrap();
        assert!(count(&image, PALETTE[0]) > 50);
        let empty = LinePlot {
            series: Vec::new(),
            ..plot
        };
        assert!(empty.render(100, 80).is_ok());
        assert_eq!(format_number(2e-4, 2e-4), "2e-4");
        assert_eq!(format_number(0.25, 0.25), "0.250");
        assert_eq!(format_number(1500.0, 1500.0), "1500");
        // A tick near zero takes its axis's notation.
        assert_eq!(format_number(-0.0099, 0.206), "-0.010");
        assert_eq!(format_number(0.004, 12.9), "0.00");
        assert_eq!(format_number(1e-6, 4e-4), "1e-6");
    }

    #[test]
    fn levels_are_dashed_in_their_own_colour() {
        let grey = [128, 128, 128];
        let solid = LinePlot {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            log_x: false,
            series: vec![
                Series::new("run", vec![(0.0, 0.0), (10.0, 2.0)]),
                Series {
                    dashed: false,
                    ..Series::level("goal", 1.0, 0.0, 10.0, grey)
                },
            ],
        };
        let dashed = LinePlot {
            series: vec![
                solid.series[0].clone(),
                Series::level("goal", 1.0, 0.0, 10.0, grey),
            ],
            ..solid.clone()
        };
        let (solid, dashed) = (
            solid.render(300, 160).unwrap(),
            dashed.render(300, 160).unwrap(),
        );
        // Same colour either way, about half the pixels when dashed (the legend swatch is
        // the same in both).
        let (full, half) = (count(&solid, grey) as f64, count(&dashed, grey) as f64);
        assert!(half > 0.35 * full && half < 0.7 * full, "{half} of {full}");
        // The run keeps the palette's first colour.
        assert!(count(&dashed, PALETTE[0]) > 100);
    }
}

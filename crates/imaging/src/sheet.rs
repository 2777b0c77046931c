//! Contact sheets: labelled panels in a grid (before | after | mask overlay) above a text
//! block with the priors' summary and a bar chart of degradation probabilities.
//!
//! ```text
//! ┌──────────────────────────────────────────┐
//! │  ┌───────┐   ┌───────┐   ┌───────┐       │  margin, then one row of cells per
//! │  │ panel │   │ panel │   │ panel │       │  `columns` panels; each cell is as wide
//! │  └───────┘   └───────┘   └───────┘       │  as the widest panel and as tall as the
//! │   input       restored    masks (5)      │  tallest plus a caption line
//! │                                          │
//! │  quality: 2.31 / 5 (poor)                │  text lines
//! │  noise     [#######.....] 0.62           │  one bar per probability
//! └──────────────────────────────────────────┘
//! ```

use clearair_proto::v1::{DegradationKind, PriorSummary, QualityLevel};

use crate::draw::{blit, draw_text, fill_rect, fit_text, stroke_rect};
use crate::error::ImagingError;
use crate::font::{ADVANCE, GLYPH_WIDTH, LINE_HEIGHT, text_width};
use crate::masks::PackedMasks;
use crate::overlay::mask_overlay;
use crate::rgb::Rgb8Image;

/// Bar length in font pixels (multiplied by the text scale).
const BAR_LENGTH: u32 = 60;

/// Colours, sizes and spacing of a sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheetStyle {
    /// Sheet background.
    pub background: [u8; 3],
    /// Captions and text.
    pub text: [u8; 3],
    /// Filled part of the bars.
    pub accent: [u8; 3],
    /// Integer scale of the 5×8 font (2 is legible on screens).
    pub text_scale: u32,
    /// Space around the content, in pixels.
    pub margin: u32,
    /// Space between cells and before the text block, in pixels.
    pub gap: u32,
    /// Panels with a longer side than this are shrunk (area average) to fit.
    pub max_panel_side: u32,
}

impl Default for SheetStyle {
    fn default() -> Self {
        Self {
            background: [24, 24, 28],
            text: [235, 235, 235],
            accent: [90, 160, 255],
            text_scale: 2,
            margin: 12,
            gap: 12,
            max_panel_side: 512,
        }
    }
}

/// A grid of captioned panels with an optional text block underneath.
#[derive(Debug, Clone)]
pub struct ContactSheet {
    columns: u32,
    style: SheetStyle,
    panels: Vec<(Rgb8Image, String)>,
    lines: Vec<String>,
    bars: Vec<(String, f32)>,
}

impl ContactSheet {
    /// An empty sheet with `columns` panels per row (at least 1) and the default style.
    pub fn new(columns: u32) -> Self {
        Self {
            columns: columns.max(1),
            style: SheetStyle::default(),
            panels: Vec::new(),
            lines: Vec::new(),
            bars: Vec::new(),
        }
    }

    /// Replaces the style.
    pub fn with_style(mut self, style: SheetStyle) -> Self {
        self.style = style;
        self
    }

    /// Appends a panel with a one-line caption (shortened with ".." if it does not fit).
    pub fn add_panel(&mut self, image: Rgb8Image, caption: impl Into<String>) -> &mut Self {
        self.panels.push((image, caption.into()));
        self
    }

    /// Appends a line to the text block.
    pub fn add_line(&mut self, line: impl Into<String>) -> &mut Self {
        self.lines.push(line.into());
        self
    }

    /// Appends a bar (value clamped to `[0, 1]`, NaN drawn empty) to the text block.
    pub fn add_bar(&mut self, label: impl Into<String>, value: f32) -> &mut Self {
        self.bars.push((label.into(), value));
        self
    }

    /// Appends the priors' summary (the `PriorSummary` of a Restore or Analyze response):
    /// quality, dominant degradation and mask count as text, probabilities as bars.
    pub fn add_summary(&mut self, summary: &PriorSummary) -> &mut Self {
        self.add_line(format!(
            "quality: {:.2} / 5 ({})",
            summary.quality_score,
            quality_level_name(summary.quality_level)
        ));
        self.add_line(format!(
            "dominant: {}   masks: {}",
            degradation_kind_name(summary.dominant_degradation),
            summary.mask_count
        ));
        for degradation in &summary.degradations {
            self.add_bar(
                degradation_kind_name(degradation.kind),
                degradation.probability,
            );
        }
        self
    }

    /// Draws the sheet.
    pub fn render(&self) -> Result<Rgb8Image, ImagingError> {
        if self.panels.is_empty() {
            return Err(ImagingError::EmptySheet);
        }
        let style = &self.style;
        let scale = style.text_scale.max(1);
        let panels = self
            .panels
            .iter()
            .map(|(image, caption)| Ok((fit_panel(image, style.max_panel_side)?, caption)))
            .collect::<Result<Vec<_>, ImagingError>>()?;
        let panel_width = panels.iter().map(|(p, _)| p.width()).max().unwrap_or(1);
        let panel_height = panels.iter().map(|(p, _)| p.height()).max().unwrap_or(1);
        let caption_height = (LINE_HEIGHT + 2) * scale;
        let cell_height = panel_height + caption_height;
        let columns = self.columns.min(panels.len() as u32);
        let rows = (panels.len() as u32).div_ceil(columns);
        let grid_width = columns * panel_width + (columns - 1) * style.gap;
        let grid_height = rows * cell_height + (rows - 1) * style.gap;

        let label_chars = self
            .bars
            .iter()
            .map(|(label, _)| label.chars().count())
            .max()
            .unwrap_or(0);
        let bar_left = (label_chars as u32 + 1) * ADVANCE * scale;
        let bars_width = if self.bars.is_empty() {
            0
        } else {
            bar_left + BAR_LENGTH * scale + ADVANCE * scale + text_width("0.00", scale)
        };
        let lines_width = self
            .lines
            .iter()
            .map(|line| text_width(line, scale))
            .max()
            .unwrap_or(0);
        let text_rows = (self.lines.len() + self.bars.len()) as u32;
        let block_height = text_rows * LINE_HEIGHT * scale;
        let block_space = if text_rows == 0 {
            0
        } else {
            style.gap + block_height
        };

        let width = grid_width.max(lines_width).max(bars_width) + 2 * style.margin;
        let height = grid_height + block_space + 2 * style.margin;
        let mut sheet = Rgb8Image::filled(width, height, style.background)?;

        // n characters take (6n − 1)·scale pixels.
        let max_caption_chars = ((panel_width / scale + ADVANCE - GLYPH_WIDTH) / ADVANCE) as usize;
        for (index, (panel, caption)) in panels.iter().enumerate() {
            let (column, row) = (index as u32 % columns, index as u32 / columns);
            let cell_x = style.margin + column * (panel_width + style.gap);
            let cell_y = style.margin + row * (cell_height + style.gap);
            let x = cell_x + (panel_width - panel.width()) / 2;
            let y = cell_y + (panel_height - panel.height()) / 2;
            blit(&mut sheet, panel, x, y);
            let caption = fit_text(caption, max_caption_chars);
            let caption_x = cell_x + panel_width.saturating_sub(text_width(&caption, scale)) / 2;
            draw_text(
                &mut sheet,
                caption_x,
                cell_y + panel_height + 2 * scale,
                &caption,
                style.text,
                scale,
            );
        }

        let mut line_y = style.margin + grid_height + style.gap;
        for line in &self.lines {
            draw_text(&mut sheet, style.margin, line_y, line, style.text, scale);
            line_y += LINE_HEIGHT * scale;
        }
        for (label, value) in &self.bars {
            draw_bar(
                &mut sheet,
                (style.margin, line_y),
                bar_left,
                label,
                *value,
                style,
            );
            line_y += LINE_HEIGHT * scale;
        }
        Ok(sheet)
    }
}

/// One bar row: label, a track outlined in the text colour filled in proportion to `value`,
/// and the value with two decimals.
fn draw_bar(
    sheet: &mut Rgb8Image,
    (x, y): (u32, u32),
    bar_left: u32,
    label: &str,
    value: f32,
    style: &SheetStyle,
) {
    let scale = style.text_scale.max(1);
    draw_text(sheet, x, y, label, style.text, scale);
    let value = if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    };
    let (track_x, track_height, track_width) = (x + bar_left, 7 * scale, BAR_LENGTH * scale);
    let filled = (value * (track_width - 2) as f32).round() as u32;
    stroke_rect(sheet, track_x, y, track_width, track_height, style.text);
    fill_rect(
        sheet,
        track_x + 1,
        y + 1,
        filled,
        track_height - 2,
        style.accent,
    );
    let text_x = track_x + track_width + ADVANCE * scale;
    draw_text(sheet, text_x, y, &format!("{value:.2}"), style.text, scale);
}

/// A quality level in words, e.g. "fair"; unknown values read "unrated".
pub fn quality_level_name(level: i32) -> &'static str {
    match QualityLevel::try_from(level) {
        Ok(QualityLevel::Bad) => "bad",
        Ok(QualityLevel::Poor) => "poor",
        Ok(QualityLevel::Fair) => "fair",
        Ok(QualityLevel::Good) => "good",
        Ok(QualityLevel::Excellent) => "excellent",
        Ok(QualityLevel::Unspecified) | Err(_) => "unrated",
    }
}

/// A degradation kind in words, e.g. "low light"; unknown values read "unknown".
pub fn degradation_kind_name(kind: i32) -> &'static str {
    match DegradationKind::try_from(kind) {
        Ok(DegradationKind::Noise) => "noise",
        Ok(DegradationKind::Haze) => "haze",
        Ok(DegradationKind::Rain) => "rain",
        Ok(DegradationKind::Blur) => "blur",
        Ok(DegradationKind::LowLight) => "low light",
        Ok(DegradationKind::Unspecified) | Err(_) => "unknown",
    }
}

/// Shrinks `image` so its longer side is at most `max_side`, keeping the aspect ratio.
fn fit_panel(image: &Rgb8Image, max_side: u32) -> Result<Rgb8Image, ImagingError> {
    let longer = image.width().max(image.height());
    if longer <= max_side.max(1) {
        return Ok(image.clone());
    }
    let shrink = |side: u32| {
        ((u64::from(side) * u64::from(max_side) + u64::from(longer) / 2) / u64::from(longer)).max(1)
            as u32
    };
    image.resize(shrink(image.width()), shrink(image.height()))
}

/// The standard before/after sheet: input, restored output and (when masks are given) the
/// mask overlay on the input, side by side, with the summary underneath when given.
pub fn before_after_sheet(
    before: &Rgb8Image,
    after: &Rgb8Image,
    masks: Option<&PackedMasks>,
    summary: Option<&PriorSummary>,
) -> Result<Rgb8Image, ImagingError> {
    let mut sheet = ContactSheet::new(3);
    sheet.add_panel(before.clone(), "input");
    sheet.add_panel(after.clone(), "restored");
    if let Some(masks) = masks {
        sheet.add_panel(
            mask_overlay(before, masks)?,
            format!("masks ({})", masks.count()),
        );
    }
    if let Some(summary) = summary {
        sheet.add_summary(summary);
    }
    sheet.render()
}

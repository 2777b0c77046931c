//! Contact sheets: layout arithmetic, text pixels, bars and the mask overlay panel.

use clearair_imaging::draw::mix;
use clearair_imaging::font::text_width;
use clearair_imaging::overlay::MASK_PALETTE;
use clearair_imaging::sheet::{ContactSheet, SheetStyle, before_after_sheet};
use clearair_imaging::{ImagingError, PackedMasks, Rgb8Image};
use clearair_proto::v1::{DegradationKind, DegradationProbability, PriorSummary, QualityLevel};

fn style() -> SheetStyle {
    SheetStyle {
        text_scale: 1,
        margin: 4,
        gap: 2,
        ..SheetStyle::default()
    }
}

fn count_colour(
    image: &Rgb8Image,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    colour: [u8; 3],
) -> usize {
    let mut count = 0;
    for row in y..y + height {
        for column in x..x + width {
            count += usize::from(image.pixel(column, row) == colour);
        }
    }
    count
}

#[test]
fn grid_dimensions() {
    let mut sheet = ContactSheet::new(2).with_style(style());
    sheet.add_panel(Rgb8Image::filled(40, 30, [200, 0, 0]).unwrap(), "a");
    sheet.add_panel(Rgb8Image::filled(40, 30, [0, 200, 0]).unwrap(), "b");
    let two = sheet.render().unwrap();
    // 4 + 40 + 2 + 40 + 4 wide; 4 + 30 + caption (10 + 2) + 4 high.
    assert_eq!((two.width(), two.height()), (90, 50));
    sheet.add_panel(Rgb8Image::filled(20, 10, [0, 0, 200]).unwrap(), "c");
    let three = sheet.render().unwrap();
    // A second row: + 2 gap + 30 + 12.
    assert_eq!((three.width(), three.height()), (90, 94));
    // The small panel is centred in its 40×30 cell at (4, 50).
    assert_eq!(three.pixel(4 + 10, 50 + 10), [0, 0, 200]);
    assert_eq!(three.pixel(4 + 9, 50 + 10), style().background);
}

#[test]
fn captions_draw_text_pixels_inside_the_caption_area() {
    let mut sheet = ContactSheet::new(1).with_style(style());
    sheet.add_panel(Rgb8Image::filled(60, 20, [0, 0, 0]).unwrap(), "restored");
    let image = sheet.render().unwrap();
    let text = style().text;
    // Caption area: the 60-pixel-wide strip under the panel, 12 rows tall.
    let inside = count_colour(&image, 4, 24, 60, 12, text);
    assert!(inside > 40, "{inside} text pixels in the caption area");
    // Nothing in the text colour above it (panel and margins).
    assert_eq!(count_colour(&image, 0, 0, image.width(), 24, text), 0);
}

#[test]
fn summary_adds_lines_and_bars() {
    let probability = |kind: DegradationKind, probability| DegradationProbability {
        kind: kind as i32,
        probability,
    };
    let summary = PriorSummary {
        quality_score: 2.31,
        quality_level: QualityLevel::Poor as i32,
        degradations: vec![
            probability(DegradationKind::Noise, 1.0),
            probability(DegradationKind::Haze, 0.0),
        ],
        mask_count: 3,
        dominant_degradation: DegradationKind::Noise as i32,
    };
    let mut sheet = ContactSheet::new(1).with_style(style());
    sheet.add_panel(Rgb8Image::filled(10, 10, [0, 0, 0]).unwrap(), "x");
    sheet.add_summary(&summary);
    let image = sheet.render().unwrap();
    // 4 text rows of 10 after a 2-pixel gap below the 22-pixel cell.
    assert_eq!(image.height(), 4 + 22 + 2 + 40 + 4);
    // The widest row is the second line; the bars need 6·6 + 60 + 6 + 23 = 125.
    let widest = text_width("dominant: noise   masks: 3", 1);
    assert!(widest > text_width("quality: 2.31 / 5 (poor)", 1) && widest > 125);
    assert_eq!(image.width(), widest + 8);
    // Both lines drew text: each row holds pixels of the text colour.
    for row_top in [28, 38] {
        assert!(count_colour(&image, 4, row_top, widest, 8, style().text) > 20);
    }
    let accent = style().accent;
    let bar_x = 4 + 6 * 6;
    let (noise_y, haze_y) = (4 + 22 + 2 + 20, 4 + 22 + 2 + 30);
    assert_eq!(
        count_colour(&image, bar_x + 1, noise_y + 1, 58, 5, accent),
        58 * 5
    );
    assert_eq!(count_colour(&image, bar_x, haze_y, 60, 7, accent), 0);
}

#[test]
fn before_after_sheet_shows_the_overlay_and_refuses_empty_sheets() {
    let before = Rgb8Image::filled(16, 8, [90, 90, 90]).unwrap();
    let after = Rgb8Image::filled(16, 8, [120, 120, 120]).unwrap();
    let left: Vec<bool> = (0..128).map(|i| i % 16 < 8).collect();
    let masks = PackedMasks::from_bool_masks(16, 8, &[left], &[1.0]).unwrap();
    let sheet = before_after_sheet(&before, &after, Some(&masks), None).unwrap();
    let default = SheetStyle::default();
    let third_panel_x = default.margin + 2 * (16 + default.gap);
    // Column 7 of the overlay is the mask's inner border; column 3 is its blended interior.
    assert_eq!(
        sheet.pixel(third_panel_x + 7, default.margin + 3),
        MASK_PALETTE[0]
    );
    let interior = mix([90; 3], MASK_PALETTE[0], 128);
    assert_eq!(sheet.pixel(third_panel_x + 3, default.margin + 3), interior);
    assert!(matches!(
        ContactSheet::new(2).render(),
        Err(ImagingError::EmptySheet)
    ));
}

#[test]
fn large_panels_are_shrunk_to_fit() {
    let style = SheetStyle {
        max_panel_side: 50,
        ..style()
    };
    let mut sheet = ContactSheet::new(1).with_style(style);
    sheet.add_panel(Rgb8Image::filled(200, 100, [1, 2, 3]).unwrap(), "");
    let image = sheet.render().unwrap();
    assert_eq!((image.width(), image.height()), (50 + 8, 25 + 12 + 8));
}

//! Writes a before/after contact sheet of a synthetic scene, to eyeball the layout, the mask
//! overlay and the bitmap font.
//!
//! ```text
//! cargo run -p clearair-imaging --example contact_sheet -- /tmp/sheet.png
//! ```
//!
//! "Before" is the clean scene with synthetic haze and Gaussian-like noise; the bars show the
//! degradations that were applied (ground truth of the synthesis, not a model's estimate).

use clearair_imaging::sheet::{ContactSheet, SheetStyle};
use clearair_imaging::{OutputFormat, PackedMasks, Rgb8Image, encode, overlay::mask_overlay};

const WIDTH: u32 = 240;
const HEIGHT: u32 = 160;
const HAZE: f32 = 0.45;
const NOISE_SIGMA: f32 = 25.0;

/// Region label of each pixel: 0 sky, 1 ground, 2 sun, 3 house.
fn label(x: u32, y: u32) -> u8 {
    let (dx, dy) = (x as f32 - 185.0, y as f32 - 40.0);
    if dx * dx + dy * dy < 18.0 * 18.0 {
        2
    } else if (40..110).contains(&x) && (70..125).contains(&y) {
        3
    } else if y >= 105 {
        1
    } else {
        0
    }
}

fn clean_scene() -> Rgb8Image {
    let mut image = Rgb8Image::filled(WIDTH, HEIGHT, [0, 0, 0]).unwrap();
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let colour = match label(x, y) {
                0 => [70 + (y / 2) as u8, 130 + (y / 3) as u8, 230],
                1 => [60 + (x % 20) as u8, 140 - (y - 105) as u8, 50],
                2 => [255, 220, 90],
                _ if (x / 12 + y / 12) % 2 == 0 => [180, 60, 50],
                _ => [150, 45, 40],
            };
            image.set_pixel(x, y, colour);
        }
    }
    image
}

/// Haze (blend towards the airlight) plus approximately Gaussian noise (sum of four uniforms
/// from a fixed linear congruential generator, so every run draws the same sheet).
fn degrade(clean: &Rgb8Image) -> Rgb8Image {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let bytes = clean
        .as_bytes()
        .iter()
        .map(|&value| {
            let hazy = f32::from(value) * (1.0 - HAZE) + 225.0 * HAZE;
            // Four uniforms on [0, 1) have variance 1/3; scale to σ.
            let noise = ((0..4).map(|_| uniform()).sum::<f32>() - 2.0) * NOISE_SIGMA * 3f32.sqrt();
            (hazy + noise).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    Rgb8Image::new(clean.width(), clean.height(), bytes).unwrap()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/sheet.png".into());
    let clean = clean_scene();
    let degraded = degrade(&clean);
    let labels: Vec<u8> = (0..HEIGHT)
        .flat_map(|y| (0..WIDTH).map(move |x| label(x, y)))
        .collect();
    let masks = PackedMasks::from_label_map(WIDTH, HEIGHT, &labels, 4, &[0.97, 0.95, 0.99, 0.9])?;

    let mut sheet = ContactSheet::new(3).with_style(SheetStyle::default());
    sheet
        .add_panel(degraded.clone(), "input (hazy, noisy)")
        .add_panel(clean, "reference")
        .add_panel(
            mask_overlay(&degraded, &masks)?,
            format!("masks ({})", masks.count()),
        )
        .add_line(format!(
            "synthetic: haze {HAZE:.2}, noise sigma {NOISE_SIGMA}"
        ))
        .add_line("ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789")
        .add_line("abcdefghijklmnopqrstuvwxyz !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
    for (kind, applied) in [
        ("noise", 1.0),
        ("haze", 1.0),
        ("rain", 0.0),
        ("blur", 0.0),
        ("low light", 0.0),
    ] {
        sheet.add_bar(kind, applied);
    }
    let (png, _) = encode(&sheet.render()?, OutputFormat::Png, 0)?;
    std::fs::write(&path, png)?;
    println!("wrote {path}");
    Ok(())
}

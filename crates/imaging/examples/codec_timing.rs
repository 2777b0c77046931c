//! Times the edge work on one large synthetic photo: decode and encode in every format,
//! planar conversion, resizing, tiling. Run it optimised:
//!
//! ```text
//! cargo run --release -p clearair-imaging --example codec_timing -- 4000 3000
//! ```

use std::time::Instant;

use clearair_imaging::{
    DecodeLimits, OutputFormat, Rgb8Image, TileBlender, TilePlan, decode, encode,
};

/// A photo-like test image: smooth gradients, texture and a deterministic grain, so the
/// compressors see something between a flat card and white noise.
fn photo(width: u32, height: u32) -> Rgb8Image {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let grain = (state >> 61) as u32;
            let texture = ((x / 7) ^ (y / 5)) % 24;
            data.push(((x * 200 / width) + texture + grain) as u8);
            data.push(((y * 200 / height) + grain) as u8);
            data.push((((x + y) * 120 / (width + height)) + texture * 2 + grain) as u8);
        }
    }
    Rgb8Image::new(width, height, data).expect("sizes match")
}

fn time<T>(label: &str, megapixels: f64, run: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let result = run();
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{label:<28} {:>8.1} ms {:>8.1} MP/s",
        seconds * 1e3,
        megapixels / seconds
    );
    result
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>());
    let width = args.next().transpose()?.unwrap_or(4000);
    let height = args.next().transpose()?.unwrap_or(3000);
    let image = photo(width, height);
    let megapixels = image.pixel_count() as f64 / 1e6;
    println!("{width}×{height} ({megapixels:.1} MP)");
    let limits = DecodeLimits::default();
    for format in [
        OutputFormat::Png,
        OutputFormat::Jpeg,
        OutputFormat::WebP,
        OutputFormat::Tiff,
        OutputFormat::Bmp,
    ] {
        let (bytes, _) = time(&format!("encode {format:?}"), megapixels, || {
            encode(&image, format, 0)
        })?;
        let decoded = time(
            &format!("decode {format:?} ({} KiB)", bytes.len() >> 10),
            megapixels,
            || decode(&bytes, &limits),
        )?;
        assert_eq!(
            (decoded.image.width(), decoded.image.height()),
            (width, height)
        );
    }
    let planar = time("to_planar_f32", megapixels, || image.to_planar_f32());
    time("from_planar_f32", megapixels, || {
        Rgb8Image::from_planar_f32(width, height, &planar)
    })?;
    time("content_hash", megapixels, || image.content_hash());
    time("resize to 1/3 (area)", megapixels, || {
        image.resize(width / 3, height / 3)
    })?;
    time("resize to 1.5× (bilinear)", megapixels, || {
        image.resize(width * 3 / 2, height * 3 / 2)
    })?;
    let plan = TilePlan::new(width, height, 512, 32)?;
    time(
        &format!("tile + blend ({} tiles)", plan.tiles().len()),
        megapixels,
        || {
            let mut blender = TileBlender::new(&plan);
            for (index, tile) in plan.tiles().iter().enumerate() {
                blender.add(index, &tile.crop_from(&image)?.to_planar_f32())?;
            }
            blender.finish_rgb8()
        },
    )?;
    Ok(())
}

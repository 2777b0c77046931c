//! Decoding real encoded files: round trips, colour types, and every way an upload can be bad.

mod common;

use std::io::Cursor;

use clearair_imaging::{
    DecodeLimits, ImageFormatKind, ImagingError, OutputFormat, Rgb8Image, SizeLimit, decode,
    encode, probe,
};
use common::{png_claiming, test_image};
use image::codecs::{jpeg::JpegEncoder, png::PngEncoder, tiff::TiffEncoder};
use image::{ExtendedColorType, ImageEncoder};

fn decode_default(bytes: &[u8]) -> Result<Rgb8Image, ImagingError> {
    decode(bytes, &DecodeLimits::default()).map(|decoded| decoded.image)
}

fn mean_abs_error(a: &Rgb8Image, b: &Rgb8Image) -> f64 {
    let total: u64 = a
        .as_bytes()
        .iter()
        .zip(b.as_bytes())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    total as f64 / a.as_bytes().len() as f64
}

fn png_with(width: u32, height: u32, samples: &[u8], color: ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(samples, width, height, color)
        .unwrap();
    out
}

#[test]
fn every_supported_format_round_trips() {
    let image = test_image(37, 21);
    let formats = [
        (OutputFormat::Png, ImageFormatKind::Png),
        (OutputFormat::WebP, ImageFormatKind::WebP),
        (OutputFormat::Tiff, ImageFormatKind::Tiff),
        (OutputFormat::Bmp, ImageFormatKind::Bmp),
    ];
    for (output, kind) in formats {
        let (bytes, _) = encode(&image, output, 0).unwrap();
        let decoded = decode(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(decoded.format, kind);
        assert_eq!(decoded.image, image, "{kind} is lossless");
        assert_eq!(probe(&bytes).unwrap().width, 37, "{kind} header width");
        assert_eq!(probe(&bytes).unwrap().height, 21, "{kind} header height");
    }
    let (jpeg, _) = encode(&image, OutputFormat::Jpeg, 95).unwrap();
    let decoded = decode(&jpeg, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.format, ImageFormatKind::Jpeg);
    assert_eq!((decoded.image.width(), decoded.image.height()), (37, 21));
    let error = mean_abs_error(&decoded.image, &image);
    assert!(error < 3.0, "JPEG q95 mean error {error}");
    let (rough, _) = encode(&image, OutputFormat::Jpeg, 10).unwrap();
    let rough_error = mean_abs_error(&decode_default(&rough).unwrap(), &image);
    assert!(rough_error > error, "q10 {rough_error} vs q95 {error}");
}

#[test]
fn garbage_and_empty_inputs() {
    assert_eq!(decode_default(&[]), Err(ImagingError::Empty));
    match decode_default(b"GIF89a\x10\x00\x10\x00") {
        Err(ImagingError::UnsupportedFormat { found }) => assert!(found.contains("GIF"), "{found}"),
        other => panic!("{other:?}"),
    }
    let noise: Vec<u8> = (0..64u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    assert!(matches!(
        decode_default(&noise),
        Err(ImagingError::UnsupportedFormat { .. })
    ));
    // A valid signature with garbage after it is corrupt, not unsupported.
    let mut fake_png = png_claiming(4, 4)[..8].to_vec();
    fake_png.extend_from_slice(&[0xAB; 40]);
    assert!(matches!(
        decode_default(&fake_png),
        Err(ImagingError::Corrupt {
            format: ImageFormatKind::Png,
            ..
        })
    ));
}

#[test]
fn truncated_files_are_named_truncated() {
    let image = test_image(64, 48);
    for format in [
        OutputFormat::Png,
        OutputFormat::Jpeg,
        OutputFormat::WebP,
        OutputFormat::Bmp,
        OutputFormat::Tiff,
    ] {
        let (bytes, _) = encode(&image, format, 0).unwrap();
        let half = &bytes[..bytes.len() / 2];
        match decode_default(half) {
            Err(error @ ImagingError::Truncated { .. }) => {
                assert!(error.to_string().contains("truncated"), "{error}");
            }
            other => panic!("{format:?} cut in half: {other:?}"),
        }
    }
    let (png, _) = encode(&image, OutputFormat::Png, 0).unwrap();
    let message = decode_default(&png[..png.len() / 2])
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("the PNG image is truncated: the data ends after"),
        "{message}"
    );
    assert!(message.contains("IDAT"), "{message}");
    // Losing only the IEND chunk still counts.
    assert!(matches!(
        decode_default(&png[..png.len() - 12]),
        Err(ImagingError::Truncated { .. })
    ));
    // Cut inside the header itself.
    assert!(matches!(
        decode_default(&png[..20]),
        Err(ImagingError::Truncated { .. })
    ));
}

#[test]
fn a_png_claiming_100000_squared_is_refused_on_its_header() {
    let bomb = png_claiming(100_000, 100_000);
    assert!(bomb.len() < 100);
    let error = decode_default(&bomb).unwrap_err();
    assert_eq!(
        error,
        ImagingError::TooLarge {
            width: 100_000,
            height: 100_000,
            limit: SizeLimit::Pixels { max: 40_000_000 }
        }
    );
    assert_eq!(
        error.to_string(),
        "image is 100000×100000 = 10000000000 pixels; the limit is 40000000 pixels"
    );
    let wide = png_claiming(20_000, 10);
    assert!(matches!(
        decode_default(&wide),
        Err(ImagingError::TooLarge {
            limit: SizeLimit::Width { max: 16_384 },
            ..
        })
    ));
}

#[test]
fn zero_sized_headers_are_refused() {
    assert_eq!(
        decode_default(&png_claiming(0, 10)),
        Err(ImagingError::ZeroDimension {
            width: 0,
            height: 10
        })
    );
    assert_eq!(
        decode_default(&png_claiming(7, 0)),
        Err(ImagingError::ZeroDimension {
            width: 7,
            height: 0
        })
    );
}

#[test]
fn size_limits_are_configurable() {
    let (png, _) = encode(&test_image(40, 30), OutputFormat::Png, 0).unwrap();
    let tight = DecodeLimits {
        max_pixels: 1000,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&png, &tight),
        Err(ImagingError::TooLarge {
            limit: SizeLimit::Pixels { max: 1000 },
            ..
        })
    ));
    let small_file = DecodeLimits {
        max_encoded_bytes: 100,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&png, &small_file),
        Err(ImagingError::EncodedTooLarge { max_bytes: 100, .. })
    ));
    // 40×30 RGB8: 3600 bytes native + 3600 bytes of result.
    let little_memory = DecodeLimits {
        max_alloc_bytes: 7000,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(&png, &little_memory).map(|d| d.format),
        Err(ImagingError::TooLarge {
            width: 40,
            height: 30,
            limit: SizeLimit::DecodeMemory {
                needed: 7200,
                max: 7000
            }
        })
    );
    assert!(
        decode(
            &png,
            &DecodeLimits {
                max_alloc_bytes: 7200,
                ..DecodeLimits::default()
            }
        )
        .is_ok()
    );
}

#[test]
fn gray_alpha_and_sixteen_bit_inputs_become_rgb8() {
    let gray = decode_default(&png_with(3, 1, &[0, 128, 255], ExtendedColorType::L8)).unwrap();
    assert_eq!(gray.as_bytes(), &[0, 0, 0, 128, 128, 128, 255, 255, 255]);

    let gray_alpha = png_with(2, 1, &[0, 255, 0, 0], ExtendedColorType::La8);
    assert_eq!(
        decode_default(&gray_alpha).unwrap().as_bytes(),
        &[0, 0, 0, 255, 255, 255]
    );

    let rgba = png_with(
        2,
        1,
        &[10, 20, 30, 255, 200, 0, 0, 128],
        ExtendedColorType::Rgba8,
    );
    // Half-transparent red over white: 200·128/255 + 255·127/255 ≈ 227, 0 + 127.
    assert_eq!(
        decode_default(&rgba).unwrap().as_bytes(),
        &[10, 20, 30, 227, 127, 127]
    );

    // The encoder takes 16-bit samples in native byte order.
    let deep: Vec<u8> = [0x8080u16, 0xFFFF, 0x0000]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let rgb16 = decode_default(&png_with(1, 1, &deep, ExtendedColorType::Rgb16)).unwrap();
    assert_eq!(rgb16.as_bytes(), &[128, 255, 0]);

    let gray16: Vec<u8> = [0x0101u16, 0xFEFF]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let decoded = decode_default(&png_with(2, 1, &gray16, ExtendedColorType::L16)).unwrap();
    assert_eq!(decoded.as_bytes(), &[1, 1, 1, 254, 254, 254]);

    let mut tiff = Cursor::new(Vec::new());
    TiffEncoder::new(&mut tiff)
        .write_image(&[7, 9], 2, 1, ExtendedColorType::L8)
        .unwrap();
    assert_eq!(
        decode_default(tiff.get_ref()).unwrap().as_bytes(),
        &[7, 7, 7, 9, 9, 9]
    );
}

#[test]
fn exif_orientation_is_applied() {
    // A minimal little-endian TIFF block: one IFD entry, Orientation (0x0112) = 6 (rotate 90° CW).
    let exif: Vec<u8> = [
        &b"II*\0"[..],
        &8u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0],
        &0u32.to_le_bytes(),
    ]
    .concat();
    // A 16×8 image: left half black, right half white.
    let samples: Vec<u8> = (0..16 * 8)
        .flat_map(|i| if i % 16 < 8 { [0; 3] } else { [255; 3] })
        .collect();
    let mut jpeg = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut jpeg, 95);
    encoder.set_exif_metadata(exif).unwrap();
    encoder
        .write_image(&samples, 16, 8, ExtendedColorType::Rgb8)
        .unwrap();

    let upright = decode_default(&jpeg).unwrap();
    assert_eq!((upright.width(), upright.height()), (8, 16));
    // Rotating 90° clockwise puts the old left half on top.
    assert!(upright.pixel(4, 2)[0] < 30, "{:?}", upright.pixel(4, 2));
    assert!(upright.pixel(4, 13)[0] > 225, "{:?}", upright.pixel(4, 13));
}

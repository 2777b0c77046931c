use super::*;

/// The 7×5 pattern the expected bytes below were made from with Pillow 13:
/// `Image.fromarray(pattern()).resize((w, h), Image.BICUBIC)`.
fn pattern() -> Rgb8Image {
    let (width, height) = (7u32, 5u32);
    let data = (0..height)
        .flat_map(|y| {
            (0..width).flat_map(move |x| {
                [
                    ((x * 37 + y * 91) % 256) as u8,
                    ((x * x * 13 + y * 7) % 256) as u8,
                    ((255 + 256 - x * 29 - y * 17) % 256) as u8,
                ]
            })
        })
        .collect();
    Rgb8Image::new(width, height, data).unwrap()
}

#[test]
fn bicubic_resize_matches_pillow_byte_for_byte() {
    let cases: [((u32, u32), &[u8]); 4] = [
        (
            (3, 4),
            &[
                42, 11, 232, 136, 119, 166, 170, 155, 100, 146, 20, 211, 135, 128, 145, 84, 164,
                79, 89, 28, 189, 85, 136, 123, 185, 172, 57, 119, 37, 168, 146, 145, 102, 76, 181,
                36,
            ],
        ),
        (
            (7, 2),
            &[
                79, 6, 240, 116, 19, 211, 91, 58, 182, 128, 123, 153, 173, 214, 124, 104, 75, 95,
                141, 218, 66, 91, 22, 202, 128, 35, 173, 103, 74, 144, 140, 139, 115, 89, 230, 86,
                118, 91, 57, 155, 234, 28,
            ],
        ),
        (
            (2, 5),
            &[
                52, 45, 214, 170, 149, 122, 151, 52, 197, 125, 156, 105, 114, 59, 180, 88, 163, 88,
                69, 66, 163, 187, 170, 71, 154, 73, 146, 72, 177, 54,
            ],
        ),
        (
            (9, 6),
            &[
                0, 0, 255, 19, 6, 238, 50, 27, 214, 79, 64, 192, 108, 117, 169, 136, 203, 146, 171,
                124, 124, 207, 105, 100, 230, 219, 81, 63, 4, 244, 85, 11, 225, 125, 32, 201, 165,
                69, 179, 193, 122, 156, 237, 208, 133, 127, 129, 111, 49, 110, 87, 89, 224, 68,
                160, 10, 229, 197, 17, 210, 141, 38, 186, 66, 75, 164, 101, 128, 141, 137, 214,
                118, 93, 135, 96, 67, 116, 72, 99, 230, 53, 116, 16, 215, 153, 23, 196, 97, 44,
                172, 22, 81, 150, 57, 134, 127, 95, 220, 104, 139, 141, 82, 178, 122, 58, 201, 236,
                39, 24, 22, 200, 47, 29, 181, 86, 50, 157, 127, 87, 135, 154, 140, 112, 136, 226,
                89, 153, 147, 67, 187, 128, 43, 211, 242, 24, 109, 27, 187, 133, 34, 168, 164, 55,
                144, 199, 92, 122, 222, 145, 99, 32, 231, 76, 0, 152, 54, 46, 133, 30, 70, 247, 11,
            ],
        ),
    ];
    let image = pattern();
    for ((width, height), expected) in cases {
        let resized = image.resize_bicubic_pil(width, height).unwrap();
        assert_eq!(
            resized.as_bytes(),
            expected,
            "{width}×{height} differs from Pillow"
        );
    }
    assert_eq!(
        image.resize_bicubic_pil(7, 5).unwrap(),
        image,
        "same size is a copy"
    );
    assert!(image.resize_bicubic_pil(0, 5).is_err());
}

#[test]
fn the_shorter_side_becomes_the_size_and_the_longer_is_truncated() {
    let clip = ClipPreprocess::default();
    assert_eq!(
        clip.resized_dimensions(640, 480),
        (298, 224),
        "224·640/480 = 298.67"
    );
    assert_eq!(clip.resized_dimensions(480, 640), (224, 298));
    assert_eq!(clip.resized_dimensions(100, 100), (224, 224));
    assert_eq!(clip.resized_dimensions(10, 1000), (224, 22400));
}

#[test]
fn the_crop_is_centred_with_python_rounding() {
    // 225 wide: (225 − 224) / 2 = 0.5 rounds to 0 (even); 227: 1.5 rounds to 2.
    let clip = ClipPreprocess {
        size: 4,
        ..ClipPreprocess::default()
    };
    let ramp = |width: u32| {
        let data = (0..width * 4)
            .flat_map(|i| {
                let v = ((i % width) * 10) as u8;
                [v, v, v]
            })
            .collect();
        Rgb8Image::new(width, 4, data).unwrap()
    };
    // Height is already 4, so only the width is cropped (no resampling happens).
    assert_eq!(clip.crop(&ramp(5)).unwrap().pixel(0, 0)[0], 0);
    assert_eq!(clip.crop(&ramp(7)).unwrap().pixel(0, 0)[0], 20);
    assert_eq!(clip.crop(&ramp(6)).unwrap().pixel(0, 0)[0], 10);
}

#[test]
fn pixels_are_normalised_per_channel_in_planar_order() {
    let clip = ClipPreprocess {
        size: 2,
        ..ClipPreprocess::default()
    };
    let image = Rgb8Image::filled(2, 2, [255, 0, 128]).unwrap();
    let planar = clip.apply(&image).unwrap();
    assert_eq!(planar.len(), 12);
    let expect = |value: f32, channel: usize| (value - CLIP_MEAN[channel]) / CLIP_STD[channel];
    assert_eq!(planar[0], expect(1.0, 0));
    assert_eq!(planar[4], expect(0.0, 1));
    assert_eq!(planar[11], expect(128.0 / 255.0, 2));
}

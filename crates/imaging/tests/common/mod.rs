//! Helpers shared by the integration tests: test images and hand-built PNG files.

#![allow(dead_code, unreachable_pub)]

use clearair_imaging::Rgb8Image;

/// A smooth gradient with a few hard edges: compresses like a photo, exercises every channel.
pub fn test_image(width: u32, height: u32) -> Rgb8Image {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let edge = if (x / 8 + y / 8) % 2 == 0 { 40 } else { 0 };
            data.push((x * 255 / width.max(2)) as u8);
            data.push((y * 255 / height.max(2)) as u8);
            data.push(((x + y) * 2 % 200) as u8 + edge);
        }
    }
    Rgb8Image::new(width, height, data).unwrap()
}

/// CRC-32 (IEEE), as PNG chunks use it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Appends one PNG chunk with a valid CRC.
pub fn push_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

/// A PNG whose IHDR claims `width × height` RGB8, followed by a tiny valid zlib stream in IDAT
/// and IEND: every CRC is right, only the size is absurd.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    push_chunk(&mut png, b"IHDR", &ihdr);
    // zlib: header 78 01, one empty stored block, Adler-32 of nothing.
    push_chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0, 0, 0, 1],
    );
    push_chunk(&mut png, b"IEND", &[]);
    png
}

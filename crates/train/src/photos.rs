//! Photos on disk and in memory: loading a folder once, and moving pixels between
//! [`Rgb8Image`] (what the services exchange) and 3×H×W float tensors (what the networks take).

use std::path::{Path, PathBuf};

use clearair_imaging::{DecodeLimits, OutputFormat, Rgb8Image};
use tch::{Kind, Tensor};

use crate::error::{Result, TrainError};

/// File extensions read as photos.
const PHOTO_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp"];

/// One decoded photo.
#[derive(Debug, Clone)]
pub struct Photo {
    /// File stem, e.g. `skimage-coffee`.
    pub name: String,
    /// The pixels.
    pub image: Rgb8Image,
}

/// Reads one photo.
pub fn read_photo(path: &Path) -> Result<Rgb8Image> {
    let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
    clearair_imaging::decode(&bytes, &DecodeLimits::default())
        .map(|decoded| decoded.image)
        .map_err(|source| TrainError::Image {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes `image` as PNG (creating the parent folder).
pub fn write_png(image: &Rgb8Image, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(TrainError::io(parent))?;
    }
    let (bytes, _) = clearair_imaging::encode(image, OutputFormat::Png, 0).map_err(|source| {
        TrainError::Image {
            path: path.to_path_buf(),
            source,
        }
    })?;
    std::fs::write(path, bytes).map_err(TrainError::io(path))
}

/// Every photo in `folder`, sorted by file name so indices (and with them seeded samples)
/// do not depend on the order the file system lists them in.
pub fn load_photos(folder: &Path) -> Result<Vec<Photo>> {
    let entries = std::fs::read_dir(folder).map_err(TrainError::io(folder))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| PHOTO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(TrainError::NoPhotos(folder.to_path_buf()));
    }
    paths
        .iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Photo {
                name,
                image: read_photo(path)?,
            })
        })
        .collect()
}

/// A 3×H×W float tensor in [0, 1] on the CPU.
pub fn image_to_tensor(image: &Rgb8Image) -> Tensor {
    Tensor::from_slice(&image.to_planar_f32()).view([
        3,
        i64::from(image.height()),
        i64::from(image.width()),
    ])
}

/// Rounds a 3×H×W tensor (any device, values clamped to [0, 1]) to an 8-bit image.
pub fn tensor_to_image(tensor: &Tensor) -> Result<Rgb8Image> {
    let (_, height, width) = tensor.size3()?;
    let planar = Vec::<f32>::try_from(
        tensor
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]),
    )?;
    Ok(Rgb8Image::from_planar_f32(
        width as u32,
        height as u32,
        &planar,
    )?)
}

/// Scales `image` down (area average) so its long side is at most `max_side`, exactly as
/// the degradation service does before its encoder; smaller images are returned unchanged.
pub fn fit_long_side(image: &Rgb8Image, max_side: u32) -> Result<Rgb8Image> {
    Ok(image.shrunk_to(max_side)?.unwrap_or_else(|| image.clone()))
}

/// One of the eight flips/quarter turns of a square, applied to RGB8 pixels (data
/// augmentation happens on the CPU workers, before any tensor exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelSymmetry {
    /// Mirror left-right first.
    pub flip: bool,
    /// Then rotate counter-clockwise by this many quarter turns (0–3).
    pub quarter_turns: u8,
}

impl PixelSymmetry {
    /// Where output pixel (x, y) of a `width × height` input comes from: the rotation undone,
    /// then the flip.
    fn source(&self, x: u32, y: u32, width: u32, height: u32) -> (u32, u32) {
        let (sx, sy) = match self.quarter_turns % 4 {
            0 => (x, y),
            1 => (width - 1 - y, x),
            2 => (width - 1 - x, height - 1 - y),
            _ => (y, height - 1 - x),
        };
        if self.flip {
            (width - 1 - sx, sy)
        } else {
            (sx, sy)
        }
    }

    /// The output size of a `width × height` input (quarter turns swap them).
    fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        if self.quarter_turns % 2 == 1 {
            (height, width)
        } else {
            (width, height)
        }
    }

    /// Applies the symmetry; quarter turns swap width and height.
    pub fn apply(&self, image: &Rgb8Image) -> Rgb8Image {
        let (width, height) = (image.width(), image.height());
        let (out_width, out_height) = self.output_size(width, height);
        let mut data = Vec::with_capacity(image.as_bytes().len());
        for y in 0..out_height {
            for x in 0..out_width {
                let (sx, sy) = self.source(x, y, width, height);
                data.extend_from_slice(&image.pixel(sx, sy));
            }
        }
        Rgb8Image::new(out_width, out_height, data).expect("same pixel count as the input")
    }

    /// Applies the symmetry to planar values: `planes.len() / (width·height)` planes of
    /// `width × height`, each transformed alike (masks, feature planes).
    pub fn apply_planes(&self, planes: &[f32], width: u32, height: u32) -> Vec<f32> {
        let plane = (width * height) as usize;
        let (out_width, out_height) = self.output_size(width, height);
        let mut out = Vec::with_capacity(planes.len());
        for values in planes.chunks_exact(plane.max(1)) {
            for y in 0..out_height {
                for x in 0..out_width {
                    let (sx, sy) = self.source(x, y, width, height);
                    out.push(values[(sy * width + sx) as usize]);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clearair_model::Dihedral;

    fn gradient(width: u32, height: u32) -> Rgb8Image {
        let data = (0..width * height)
            .flat_map(|i| [(i % 251) as u8, (i * 7 % 256) as u8, (i / 3 % 256) as u8])
            .collect();
        Rgb8Image::new(width, height, data).unwrap()
    }

    #[test]
    fn pixel_symmetries_match_the_tensor_ones() {
        // The model crate's Dihedral (flip then rot90 on the last two axes) is the reference.
        let image = gradient(5, 3);
        let tensor = image_to_tensor(&image).unsqueeze(0);
        for flip in [false, true] {
            for quarter_turns in 0..4u8 {
                let ours = PixelSymmetry {
                    flip,
                    quarter_turns,
                }
                .apply(&image);
                let reference = Dihedral {
                    flip,
                    quarter_turns: i64::from(quarter_turns),
                }
                .apply(&tensor)
                .squeeze_dim(0);
                assert_eq!(
                    tensor_to_image(&reference).unwrap(),
                    ours,
                    "{flip} {quarter_turns}"
                );
            }
        }
    }

    #[test]
    fn planar_symmetries_match_the_pixel_ones() {
        let image = gradient(5, 3);
        for flip in [false, true] {
            for quarter_turns in 0..4u8 {
                let symmetry = PixelSymmetry {
                    flip,
                    quarter_turns,
                };
                let moved = symmetry.apply(&image);
                let planes = symmetry.apply_planes(&image.to_planar_f32(), 5, 3);
                assert_eq!(planes, moved.to_planar_f32(), "{flip} {quarter_turns}");
            }
        }
    }

    #[test]
    fn tensor_round_trip_is_exact_for_bytes() {
        let image = gradient(7, 4);
        assert_eq!(tensor_to_image(&image_to_tensor(&image)).unwrap(), image);
    }

    #[test]
    fn long_side_is_fitted_with_the_aspect_kept() {
        let fitted = fit_long_side(&gradient(512, 400), 256).unwrap();
        assert_eq!((fitted.width(), fitted.height()), (256, 200));
        let small = gradient(100, 60);
        assert_eq!(fit_long_side(&small, 256).unwrap(), small);
    }
}

//! Decode, validate, encode, tile and draw images at the edge of the mesh.
//!
//! Everything the mesh does with pixels outside the neural networks, in pure Rust. The
//! orchestrator calls [`decode()`] once on each upload (format sniffed from magic bytes, header
//! dimensions checked before any pixel is decoded) and sends the resulting [`Rgb8Image`] to
//! the services as raw RGB8; services validate what they receive with
//! [`Rgb8Image::from_proto`] and turn it into planar floats for their networks.
//!
//! # Layout
//! - [`rgb`] — [`Rgb8Image`], its wire form, planar float conversion, crop, content hash.
//! - [`resize`] — area-average downscaling and bilinear upscaling.
//! - [`clip`] — CLIP's preprocessing, bit-exact with Pillow's bicubic resize.
//! - [`sniff`], [`header`] — format detection and header-only dimension reads.
//! - [`decode`](mod@decode) — bounded, typed decoding of untrusted uploads.
//! - [`encode`](mod@encode) — PNG / JPEG / WebP / TIFF / BMP output.
//! - [`masks`] — the packed-bit wire format of region masks.
//! - [`tiling`] — tile plans and feathered blending for large images.
//! - [`font`], [`draw`] — a built-in 5×8 bitmap font and clipped drawing primitives.
//! - [`overlay`], [`sheet`] — mask overlays and contact sheets (before / after / masks with
//!   captions, the priors' summary and a bar chart of degradation probabilities).
//! - [`plot`] — line plots (learning curves, learning-rate range tests).
//! - [`sharpness`] — how blurred a photo reads from its pixels (the blur effect).
//! - [`error`] — [`ImagingError`].

pub mod clip;
pub mod decode;
pub mod draw;
pub mod encode;
pub mod error;
pub mod font;
pub mod header;
pub mod masks;
pub mod overlay;
mod pixels;
pub mod plot;
pub mod resize;
pub mod rgb;
pub mod sharpness;
pub mod sheet;
pub mod sniff;
pub mod tiling;

pub use clip::ClipPreprocess;
pub use decode::{DecodeLimits, Decoded, decode};
pub use encode::{DEFAULT_JPEG_QUALITY, OutputFormat, encode, jpeg_quality};
pub use error::{ImagingError, SizeLimit};
pub use header::{Probe, probe};
pub use masks::{MAX_MASKS, PackedMasks, masks_to_planar_f32, resize_masks};
pub use overlay::mask_overlay;
pub use rgb::Rgb8Image;
pub use sheet::{ContactSheet, SheetStyle, before_after_sheet};
pub use sniff::{ImageFormatKind, sniff_format};
pub use tiling::{Tile, TileBlender, TilePlan};

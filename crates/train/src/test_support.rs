//! Helpers shared by the unit tests: synthetic photos, a tiny restorer and the BRISQUE
//! parameters `make setup` writes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use clearair_imaging::Rgb8Image;
use clearair_model::{ClearAirConfig, EncoderConfig, PromptConfig};

use crate::photos::Photo;
use crate::priors::CpuPriorBackends;

/// A photo-like image: smooth colour gradients, a few hard-edged shapes and fine texture, so
/// BRISQUE and the segmenter have something to work on. `variant` changes the layout.
pub(crate) fn synthetic_photo(width: u32, height: u32, variant: u32) -> Rgb8Image {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    let v = variant as f32;
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32, y as f32);
            let inside_disk = (fx - width as f32 * 0.4).hypot(fy - height as f32 * 0.5)
                < width.min(height) as f32 * (0.2 + 0.05 * v);
            let inside_bar = x > width * 2 / 3 && y > height / 4;
            let texture = ((fx * 0.9 + v).sin() * (fy * 1.3).cos() * 18.0) as i32;
            let base = if inside_disk {
                [200, 70 + 20 * variant as i32, 60]
            } else if inside_bar {
                [40, 90, 180]
            } else {
                [
                    60 + (fx / width as f32 * 120.0) as i32,
                    110 + (fy / height as f32 * 80.0) as i32,
                    90,
                ]
            };
            for channel in base {
                data.push((channel + texture).clamp(0, 255) as u8);
            }
        }
    }
    Rgb8Image::new(width, height, data).expect("consistent size")
}

/// `count` synthetic photos of `side × side`.
pub(crate) fn synthetic_photos(count: u32, side: u32) -> Arc<Vec<Photo>> {
    Arc::new(
        (0..count)
            .map(|variant| Photo {
                name: format!("synthetic-{variant}"),
                image: synthetic_photo(side + 8 * variant, side, variant),
            })
            .collect(),
    )
}

/// The BRISQUE parameters written by `make setup`.
pub(crate) fn brisque_params() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/brisque/brisque_svr.json")
}

/// The embedded CPU prior backends.
pub(crate) fn cpu_priors() -> Arc<CpuPriorBackends> {
    Arc::new(CpuPriorBackends::load(&brisque_params()).expect("BRISQUE parameters (make setup)"))
}

/// Window settings for tests: windows of `min..=max` pixels, every kind, the training ranges.
pub(crate) fn window_settings(min: u32, max: u32) -> crate::windows::WindowSettings {
    crate::windows::WindowSettings {
        min_side: min,
        max_side: max,
        mix: crate::mix::DegradationMix {
            ranges: crate::mix::ParameterRanges::Training,
            ..crate::mix::DegradationMix::default()
        },
        dark_share: 0.0,
        dark_gamma_max: 3.0,
    }
}

/// A window maker over `photos` with the CPU priors and a small random encoder.
pub(crate) fn window_maker(
    photos: Arc<Vec<Photo>>,
    settings: crate::windows::WindowSettings,
    seed: u64,
) -> crate::windows::WindowMaker {
    let store = tch::nn::VarStore::new(tch::Device::Cpu);
    // The encoder keeps its tensors when the store goes.
    let encoder = clearair_model::DegradationEncoder::new(&store.root(), &small_encoder());
    crate::windows::WindowMaker::new(
        photos,
        cpu_priors(),
        encoder,
        tch::Device::Cpu,
        settings,
        seed,
    )
    .expect("valid window settings")
}

/// A started window cache over `maker`'s windows.
pub(crate) fn window_cache(
    maker: &Arc<crate::windows::WindowMaker>,
    pool: crate::windows::PoolSchedule,
) -> Arc<crate::windows::WindowCache> {
    Arc::new(crate::windows::WindowCache::start(maker.clone(), pool).expect("valid pool"))
}

/// A restorer with every module but only a few thousand parameters.
pub(crate) fn tiny_restorer(quality_dim: i64) -> ClearAirConfig {
    ClearAirConfig {
        blocks: [1, 1, 1, 1],
        refinement_blocks: 1,
        channels: [8, 16, 24, 32],
        heads: [1, 2, 2, 4],
        quality_embed_dim: 8,
        content_tokens: 2,
        content_token_dim: 8,
        task_prompts: 4,
        task_prompt_dim: 8,
        task_hidden_dim: 16,
        prompt: PromptConfig {
            length: 3,
            dims: [4, 8, 8],
            sizes: [8, 4, 4],
            heads: 2,
        },
        ..ClearAirConfig::compact(quality_dim)
    }
}

/// A small encoder with the mesh's 512-wide embeddings (the restorer expects them).
pub(crate) fn small_encoder() -> EncoderConfig {
    EncoderConfig {
        channels: [4, 8, 8, 16],
        hidden_dim: 32,
        content_dim: 512,
        degradation_dim: 512,
    }
}

/// A fresh, empty directory under the system temp dir, removed when the guard drops.
pub(crate) fn scratch_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("clearair-train-{name}-"))
        .tempdir()
        .expect("create scratch dir")
}

/// Serialises the tests that train or seed networks: libtorch's generator (network
/// initialisation, mask dropout, ICRM noise) is process-global, so two such tests running at
/// once would draw from each other's streams. Also runs libtorch on one thread: the test
/// networks are so small that a second thread only adds synchronisation.
pub(crate) fn exclusive_torch() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::set_num_threads(1);
    guard
}

//! The priors cache: degraded windows of the training photos with their priors computed once,
//! exactly as the mesh computes them, and reused by many training steps.
//!
//! A *window* is what the mesh would receive as an upload: a square piece of a photo, of a
//! random side, flipped or turned, degraded, rounded to 8 bits. Its priors are those the
//! services compute for that whole image — BRISQUE's F_q, the graph segmenter's masks, and
//! F_c/F_d from the degradation encoder on the service's view of it ([`EncoderView`]) — so
//! the restorer trains on what it will be served. Computing them costs far more than a
//! training crop (BRISQUE, segmentation and the encoder on up to 512² pixels), so each window
//! is made once and reused: training steps cut random crops from a pool of recent windows,
//! with random flips and turns, while one producer thread keeps replacing the oldest.
//!
//! Reproducible: window `w` is a pure function of (photos, settings, seed, w), and which
//! windows step `s` may use is a function of `s` alone ([`PoolSchedule`]), so a resumed run
//! draws exactly the batches an uninterrupted one would have.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use clearair_backends::Precision;
use clearair_backends::degradation::{EncoderView, encode};
use clearair_backends::restoration::{GlobalPriors, Tiling, forward_in, neutral, restore_in_tiles};
use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_model::{ClearAirNet, DegradationEncoder, DegradationKind, RefinerPriors};
use rand::Rng;
use tch::Device;

use crate::error::{Result, TrainError};
use crate::mix::{DegradationMix, apply_recipe, multi_hot};
use crate::photos::{Photo, PixelSymmetry, image_to_tensor, tensor_to_image};
use crate::priors::{CpuPriorBackends, ENCODER_MAX_SIDE, neutral_masks};
use crate::seeding::{Purpose, keyed_rng};

/// What windows look like.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowSettings {
    /// Smallest window side (at least the training crop).
    pub min_side: u32,
    /// Largest window side; photos smaller than this give windows of their own short side.
    /// Windows larger than the degradation service's 256 are shrunk before its encoder, as
    /// uploads are, so the restorer learns the priors of images of many sizes.
    pub max_side: u32,
    /// Which degradations windows get.
    pub mix: DegradationMix,
    /// Share of windows whose clean photo is first darkened in its mid-tones (x ↦ x^γ,
    /// γ from 1.5 to [`WindowSettings::dark_gamma_max`]: blacks and whites stay), so
    /// naturally dark photos — night scenes, the sky — are targets too and darkness alone
    /// does not read as under-exposure (which dims the highlights as well and adds noise).
    /// Without it an early restorer brightened a dark photo of the night sky by 10 dB when
    /// asked to leave it alone.
    pub dark_share: f64,
    /// The largest γ of the darkened targets (3: dim scenes; 6 leaves a mid-grey at 1.6%,
    /// as dark as the night sky around its stars, which the wide low-light range's darkest
    /// inputs resemble too).
    pub dark_gamma_max: f64,
}

/// One degraded window and its priors, on the CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedWindow {
    /// The clean window.
    pub clean: Rgb8Image,
    /// The degraded window, 8-bit as the orchestrator sends it — or, when the maker has a
    /// [`FirstStage`], that restorer's output for it (what a refiner is served).
    pub degraded: Rgb8Image,
    /// F_q of the degraded window (the neutral zeros when BRISQUE refused it, as the
    /// orchestrator would substitute them).
    pub quality: Vec<f32>,
    /// Region masks of the degraded window, at its size.
    pub masks: PackedMasks,
    /// F_c.
    pub content: Vec<f32>,
    /// F_d.
    pub degradation: Vec<f32>,
    /// Multi-hot degradation kinds.
    pub kinds: [f32; 5],
    /// The degraded window as it was sent, when a [`FirstStage`] restored it for a stage
    /// that sees the upload ([`FirstStage::keeps_upload`]).
    pub upload: Option<Rgb8Image>,
    /// Mean of the clean window's values (0–1): below [`DARK_TARGET_MEAN`] the target is a
    /// dark scene (a night sky, a darkened photo).
    pub target_mean: f32,
}

/// A clean window whose mean value (0–1) is below this is a dark scene: every night sky of the
/// training photos (means 0.04–0.13) and the darker of the darkened targets; the evaluation's
/// under-exposed inputs sit at about 0.02–0.2 too, which is why the fallback cannot tell them
/// apart without priors.
pub const DARK_TARGET_MEAN: f32 = 0.15;

/// The degradation encoder, on its device, behind a lock (tensors are not `Sync`), and the
/// service's view it is served.
struct Embedder {
    encoder: DegradationEncoder,
    device: Device,
    view: EncoderView,
}

/// A trained restorer that runs on every window before the network in training sees it, so
/// a *refiner* — the second network the mesh may run on the restorer's output — trains on
/// what it will be served: the first network's output, not the degraded upload.
pub struct FirstStage {
    /// The trained restorer (it keeps its tensors when its store goes).
    pub network: ClearAirNet,
    /// What the checkpoint settings and the manifest call it (its weights' path).
    pub name: String,
    /// Share of windows the first network restores with every prior neutral, as the mesh
    /// does when every prior service is down; the rest with the window's served priors.
    /// Such a window keeps the neutral priors, as the refiner behind is served them too.
    pub neutral_share: f64,
    /// The priors the refiner in training reads behind the first network.
    pub priors: RefinerPriors,
    /// Whether each window keeps its upload beside the first network's output, for a stage
    /// that sees both ([`clearair_model::ClearAirConfig::sees_upload`]).
    pub keeps_upload: bool,
    /// Kinds the network behind is taught to leave as the first network left them: a window
    /// degraded by these kinds alone has the first network's output as its target instead of
    /// the clean photo. Tried on a fallback stage's rain, which the restorer already removes
    /// (fh1, "A frequency loss on blurred windows alone" in models/README.md), it did not
    /// hold the rain row. Empty: every window's target is its clean photo.
    pub holds: Vec<DegradationKind>,
}

impl FirstStage {
    /// Whether a window of `kinds` (multi-hot) is held: degraded, and by held kinds only.
    pub fn holds_window(&self, kinds: &[f32; 5]) -> bool {
        let present: Vec<DegradationKind> = DegradationKind::ALL
            .into_iter()
            .filter(|kind| kinds[kind.index()] > 0.0)
            .collect();
        !present.is_empty() && present.iter().all(|kind| self.holds.contains(kind))
    }
}

/// What a window maker's [`FirstStage`] is, for checkpoints and manifests.
#[derive(Clone, Debug, PartialEq)]
pub struct FirstStageSummary {
    /// [`FirstStage::name`].
    pub name: String,
    /// [`FirstStage::neutral_share`].
    pub neutral_share: f64,
    /// [`FirstStage::priors`].
    pub priors: RefinerPriors,
    /// [`FirstStage::keeps_upload`].
    pub keeps_upload: bool,
    /// [`FirstStage::holds`].
    pub holds: Vec<DegradationKind>,
}

impl std::fmt::Debug for FirstStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstStage")
            .field("name", &self.name)
            .field("neutral_share", &self.neutral_share)
            .field("priors", &self.priors)
            .finish_non_exhaustive()
    }
}

/// Makes windows: photo, window, symmetry, degradation, priors.
pub struct WindowMaker {
    photos: Arc<Vec<Photo>>,
    priors: Arc<CpuPriorBackends>,
    embedder: Mutex<Embedder>,
    first_stage: Option<Mutex<FirstStage>>,
    settings: WindowSettings,
    seed: u64,
}

impl std::fmt::Debug for WindowMaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowMaker")
            .field("photos", &self.photos.len())
            .field("settings", &self.settings)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl WindowMaker {
    /// A maker over `photos` with the mesh's CPU priors and `encoder` (on `device`) for
    /// F_c/F_d. Every photo must hold a window of `settings.min_side`.
    pub fn new(
        photos: Arc<Vec<Photo>>,
        priors: Arc<CpuPriorBackends>,
        encoder: DegradationEncoder,
        device: Device,
        settings: WindowSettings,
        seed: u64,
    ) -> Result<Self> {
        let smallest = photos
            .iter()
            .map(|p| p.image.width().min(p.image.height()))
            .min()
            .unwrap_or(0);
        if settings.min_side < 16 || settings.min_side > settings.max_side {
            return Err(TrainError::Setting(format!(
                "window sides must satisfy 16 ≤ min ({}) ≤ max ({})",
                settings.min_side, settings.max_side
            )));
        }
        if settings.min_side > smallest {
            return Err(TrainError::Setting(format!(
                "the smallest photo side ({smallest}) cannot hold a {}² window",
                settings.min_side
            )));
        }
        Ok(Self {
            photos,
            priors,
            embedder: Mutex::new(Embedder {
                encoder,
                device,
                view: EncoderView::Whole,
            }),
            first_stage: None,
            settings,
            seed,
        })
    }

    /// The same maker with every window's degraded image replaced by `stage`'s restoration
    /// of it (the priors stay those of the degraded window, which the first network used).
    pub fn with_first_stage(self, stage: FirstStage) -> Self {
        Self {
            first_stage: Some(Mutex::new(stage)),
            ..self
        }
    }

    /// What the first stage is, if windows pass through one.
    pub fn first_stage(&self) -> Option<FirstStageSummary> {
        self.first_stage.as_ref().map(|stage| {
            let stage = stage.lock().expect("first stage lock poisoned");
            FirstStageSummary {
                name: stage.name.clone(),
                neutral_share: stage.neutral_share,
                priors: stage.priors,
                keeps_upload: stage.keeps_upload,
                holds: stage.holds.clone(),
            }
        })
    }

    /// The same maker with F_c/F_d computed on `view` (the service's `view` setting; the
    /// whole image shrunk to 256 unless set).
    pub fn with_encoder_view(self, view: EncoderView) -> Self {
        let mut embedder = self.embedder.into_inner().expect("encoder lock poisoned");
        embedder.view = view;
        Self {
            embedder: Mutex::new(embedder),
            ..self
        }
    }

    /// The view F_c/F_d are computed on.
    pub fn encoder_view(&self) -> EncoderView {
        self.embedder.lock().expect("encoder lock poisoned").view
    }

    /// The settings.
    pub fn settings(&self) -> &WindowSettings {
        &self.settings
    }

    /// Window `index`.
    pub fn make(&self, index: u64) -> Result<PreparedWindow> {
        let WindowSettings {
            min_side,
            max_side,
            ref mix,
            ..
        } = self.settings;
        let mut rng = keyed_rng(self.seed, Purpose::Window, index, 0);
        let photo = &self.photos[rng.gen_range(0..self.photos.len())];
        let short = photo.image.width().min(photo.image.height());
        let side = rng.gen_range(min_side..=max_side).min(short);
        let x = rng.gen_range(0..=photo.image.width() - side);
        let y = rng.gen_range(0..=photo.image.height() - side);
        let symmetry = PixelSymmetry {
            flip: rng.gen_bool(0.5),
            quarter_turns: rng.gen_range(0..4),
        };
        let clean = symmetry.apply(&photo.image.crop(x, y, side, side)?);
        // A stream of its own, so the windows' other draws do not depend on the share.
        let mut tone = keyed_rng(self.seed, Purpose::Window, index, 1);
        let clean = if tone.gen_bool(self.settings.dark_share.clamp(0.0, 1.0)) {
            darken_midtones(&clean, tone.gen_range(1.5..=self.settings.dark_gamma_max))
        } else {
            clean
        };
        let recipe = mix.sample(&mut rng);
        let degraded =
            tensor_to_image(&apply_recipe(&recipe, &image_to_tensor(&clean), &mut rng)?)?;
        let mut priors = self.priors.compute(&degraded)?;
        let (mut content, mut degradation) = self.embed(&degraded)?;
        let mut upload = None;
        let kinds = multi_hot(&recipe);
        let target_mean = mean_value(&clean);
        let mut clean = clean;
        let degraded = match &self.first_stage {
            None => degraded,
            Some(stage) => {
                let stage = stage.lock().expect("first stage lock poisoned");
                // A stream of its own, so the share changes no other draw.
                let neutral = keyed_rng(self.seed, Purpose::Window, index, 2)
                    .gen_bool(stage.neutral_share.clamp(0.0, 1.0));
                if neutral {
                    // Every prior service down: the restorer and the refiner behind it both
                    // read the neutral priors.
                    priors.quality = neutral::vector(priors.quality.len());
                    priors.masks = neutral_masks(degraded.width(), degraded.height());
                    content = neutral::vector(content.len());
                    degradation = neutral::vector(degradation.len());
                }
                let device = self.embedder.lock().expect("encoder lock poisoned").device;
                let global =
                    GlobalPriors::from_vectors(&priors.quality, &content, &degradation, device);
                let restored = restore_in_tiles(
                    &degraded,
                    &priors.masks,
                    &global,
                    Tiling::default(),
                    device,
                    |tile, priors| forward_in(Precision::Fp32, &stage.network, tile, priors),
                )
                .map_err(|error| TrainError::Worker(format!("{}: {error}", stage.name)))?
                .0;
                if stage.keeps_upload {
                    upload = Some(degraded);
                }
                if stage.holds_window(&kinds) {
                    clean = restored.clone();
                }
                restored
            }
        };
        Ok(PreparedWindow {
            clean,
            degraded,
            quality: priors.quality,
            masks: priors.masks,
            content,
            degradation,
            kinds,
            upload,
            target_mean,
        })
    }

    /// F_c and F_d of `image` as the degradation service computes them (its own code).
    fn embed(&self, image: &Rgb8Image) -> Result<(Vec<f32>, Vec<f32>)> {
        let embedder = self.embedder.lock().expect("encoder lock poisoned");
        let estimate = encode(
            &embedder.encoder,
            embedder.device,
            embedder.view,
            ENCODER_MAX_SIDE,
            image,
        )?;
        Ok((estimate.content, estimate.degradation))
    }
}

/// Mean of `image`'s values, 0–1.
fn mean_value(image: &Rgb8Image) -> f32 {
    let bytes = image.as_bytes();
    let sum: u64 = bytes.iter().map(|&v| u64::from(v)).sum();
    (sum as f64 / (bytes.len().max(1) as f64 * 255.0)) as f32
}

/// `image` with every value v (0–255) mapped to 255·(v/255)^γ.
fn darken_midtones(image: &Rgb8Image, gamma: f64) -> Rgb8Image {
    let table: Vec<u8> = (0..=255u32)
        .map(|v| (255.0 * (f64::from(v) / 255.0).powf(gamma)).round() as u8)
        .collect();
    let bytes = image
        .as_bytes()
        .iter()
        .map(|&v| table[usize::from(v)])
        .collect();
    Rgb8Image::new(image.width(), image.height(), bytes).expect("same size as the input")
}

/// Which windows each step may draw from: a sliding pool of `size` consecutive windows whose
/// start advances by `per_step` windows a step. A window thus serves `size / per_step` steps
/// and is drawn about `batch / per_step` times in all.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolSchedule {
    /// Windows in the pool.
    pub size: u64,
    /// New windows per step (may be fractional).
    pub per_step: f64,
}

impl PoolSchedule {
    /// First window of step `step`'s pool.
    pub fn base(&self, step: u64) -> u64 {
        (step as f64 * self.per_step).floor() as u64
    }

    /// The windows step `step` may use.
    pub fn pool(&self, step: u64) -> std::ops::Range<u64> {
        let base = self.base(step);
        base..base + self.size.max(1)
    }

    /// Checks the schedule is usable.
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 || !(self.per_step > 0.0 && self.per_step.is_finite()) {
            return Err(TrainError::Setting(format!(
                "the window pool needs at least one window and a positive refresh rate, got {} \
                 and {}",
                self.size, self.per_step
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct CacheState {
    windows: BTreeMap<u64, Arc<PreparedWindow>>,
    /// Next window the producer makes.
    next: u64,
    /// Windows below this were released (no step will draw them again).
    released_below: u64,
    /// The producer makes windows below this and then waits.
    horizon: u64,
    /// Why the producer stopped, if it failed.
    failure: Option<String>,
    stop: bool,
}

struct Shared {
    state: Mutex<CacheState>,
    changed: Condvar,
}

/// Windows made ahead by one producer thread and kept while a step may still draw them.
pub struct WindowCache {
    shared: Arc<Shared>,
    settings: WindowSettings,
    encoder_view: EncoderView,
    first_stage: Option<FirstStageSummary>,
    schedule: PoolSchedule,
    /// Windows made beyond the current pool, so the next pools are ready in time.
    lookahead: u64,
    producer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WindowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowCache")
            .field("schedule", &self.schedule)
            .field("lookahead", &self.lookahead)
            .finish_non_exhaustive()
    }
}

impl WindowCache {
    /// Starts the producer; it makes nothing until [`WindowCache::advance`] names the first
    /// step (so a resumed run starts at its own pool).
    pub fn start(maker: Arc<WindowMaker>, schedule: PoolSchedule) -> Result<Self> {
        schedule.validate()?;
        let lookahead = (schedule.per_step * 16.0).ceil() as u64 + 2;
        let settings = maker.settings().clone();
        let encoder_view = maker.encoder_view();
        let first_stage = maker.first_stage();
        let shared = Arc::new(Shared {
            state: Mutex::new(CacheState::default()),
            changed: Condvar::new(),
        });
        let producer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("clearair-windows".into())
                .spawn(move || produce(&shared, &maker))
                .map_err(|e| TrainError::Worker(format!("starting the window producer: {e}")))?
        };
        Ok(Self {
            shared,
            settings,
            encoder_view,
            first_stage,
            schedule,
            lookahead,
            producer: Some(producer),
        })
    }

    /// The schedule.
    pub fn schedule(&self) -> PoolSchedule {
        self.schedule
    }

    /// The window settings.
    pub fn settings(&self) -> &WindowSettings {
        &self.settings
    }

    /// The view the windows' F_c/F_d are computed on.
    pub fn encoder_view(&self) -> EncoderView {
        self.encoder_view
    }

    /// The first stage the windows pass through, if any.
    pub fn first_stage(&self) -> Option<&FirstStageSummary> {
        self.first_stage.as_ref()
    }

    /// The window settings in words, for checkpoints (which refuse to resume on a change).
    pub fn describe(&self) -> String {
        match &self.first_stage {
            None => format!("{:?}", self.settings),
            // Served priors only when chosen, so runs checkpointed before the choice resume.
            Some(stage) => format!(
                "{:?}, after {} ({} of windows on neutral priors){}{}{}",
                self.settings,
                stage.name,
                stage.neutral_share,
                match stage.priors {
                    RefinerPriors::Neutral => "",
                    RefinerPriors::Served => ", the refiner on served priors",
                },
                if stage.keeps_upload {
                    ", seeing the upload"
                } else {
                    ""
                },
                // Only when set, so runs checkpointed before there were held kinds resume.
                if stage.holds.is_empty() {
                    String::new()
                } else {
                    let names: Vec<&str> = stage.holds.iter().map(|kind| kind.name()).collect();
                    format!(", {} held at its output", names.join("/"))
                }
            ),
        }
    }

    /// Window `index`, waiting for the producer if it is not made yet.
    pub fn get(&self, index: u64) -> Result<Arc<PreparedWindow>> {
        let mut state = self
            .shared
            .state
            .lock()
            .expect("window cache lock poisoned");
        if index >= state.horizon {
            state.horizon = index + 1;
            self.shared.changed.notify_all();
        }
        loop {
            if let Some(window) = state.windows.get(&index) {
                return Ok(window.clone());
            }
            if let Some(failure) = &state.failure {
                return Err(TrainError::Worker(failure.clone()));
            }
            if index < state.released_below {
                return Err(TrainError::Worker(format!(
                    "window {index} was released before a step drew it"
                )));
            }
            state = self
                .shared
                .changed
                .wait(state)
                .expect("window cache lock poisoned");
        }
    }

    /// Step `step` is being trained: windows before its pool are no longer needed, and the
    /// producer may work up to its pool plus the lookahead.
    pub fn advance(&self, step: u64) {
        let pool = self.schedule.pool(step);
        let mut state = self
            .shared
            .state
            .lock()
            .expect("window cache lock poisoned");
        state.windows = state.windows.split_off(&pool.start);
        state.released_below = state.released_below.max(pool.start);
        state.next = state.next.max(pool.start);
        state.horizon = state.horizon.max(pool.end + self.lookahead);
        self.shared.changed.notify_all();
    }

    /// Windows held now.
    pub fn held(&self) -> usize {
        self.shared
            .state
            .lock()
            .expect("window cache lock poisoned")
            .windows
            .len()
    }
}

impl Drop for WindowCache {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.stop = true;
        }
        self.shared.changed.notify_all();
        if let Some(producer) = self.producer.take() {
            let _ = producer.join();
        }
    }
}

/// Keeps the producer's libtorch work (the encoder, tensor conversions) on this one thread:
/// libgomp gives every thread that runs parallel work its own team, and a second team of two
/// on two cores would preempt the training step's team in the middle of its fork/join
/// barriers. (Lowering the producer's priority as well starved it whenever another process
/// kept both cores busy, and the step then waited for its windows.)
fn keep_to_one_thread() {
    tch::set_num_threads(1);
}

/// The producer: makes windows in order up to the horizon.
fn produce(shared: &Shared, maker: &WindowMaker) {
    keep_to_one_thread();
    loop {
        let index = {
            let mut state = shared.state.lock().expect("window cache lock poisoned");
            while !state.stop && state.next >= state.horizon {
                state = shared
                    .changed
                    .wait(state)
                    .expect("window cache lock poisoned");
            }
            if state.stop {
                return;
            }
            state.next += 1;
            state.next - 1
        };
        let made = maker.make(index);
        let mut state = shared.state.lock().expect("window cache lock poisoned");
        match made {
            // A window released while it was being made is not kept.
            Ok(window) if index >= state.released_below => {
                state.windows.insert(index, Arc::new(window));
            }
            Ok(_) => {}
            Err(error) => {
                state.failure = Some(format!("making training window {index}: {error}"));
                shared.changed.notify_all();
                return;
            }
        }
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests;

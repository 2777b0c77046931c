//! The restorer: the ClearAIR network, loaded and checked against the running priors, applied
//! to an image and its priors in overlapping tiles ([`restore_in_tiles_watched`], shared with
//! training's evaluation) so memory stays bounded.
//!
//! The network lives on one thread of its own and requests queue for it, first come first
//! served. libtorch spreads each pass over every core, so a second pass at the same time only
//! splits the cores between two OpenMP teams that spin at each other's barriers; on one thread
//! every pass gets the whole machine, the intra-op thread pool is made once, and a request
//! whose caller left or whose deadline passed is dropped before (or between) its tiles instead
//! of being restored for nobody.

use std::{
    ops::ControlFlow,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use clearair_backends::{
    Precision,
    restoration::{
        GlobalPriors, Refiner, Tiling, check_self_ensemble, forward_refined, neutral,
        restore_in_tiles_watched,
    },
};
use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_model::{
    BlurGate, ClearAirConfig, ClearAirNet, ModelManifest, NetworkConfig, PriorBackends,
    RefinerGate, RefinerPriors, load_weights, parse_device,
};
use clearair_runtime::deadline::Deadline;
use tch::{Device, nn};
use tokio::sync::oneshot;

use crate::{
    config::{BackendNames, RestorationConfig},
    error::RestorationError,
};

/// An image and its validated priors.
#[derive(Debug)]
pub struct RestorerInput {
    /// The degraded image.
    pub image: Rgb8Image,
    /// F_q.
    pub quality: Vec<f32>,
    /// Region masks at the image's size.
    pub masks: PackedMasks,
    /// F_c.
    pub content: Vec<f32>,
    /// F_d.
    pub degradation: Vec<f32>,
    /// The kind probabilities a gated refiner reads, in the encoder's order (NaN for a
    /// kind not sent): the prior's `gate_probabilities` when the gate reads another view
    /// than the served one, else its `probabilities`. None when the degradation prior was
    /// absent or did not carry the gate's view: the gate stays shut.
    pub gate_probabilities: Option<Vec<f32>>,
    /// The request carried no prior at all (every prior on its neutral value): the fallback
    /// stage, when configured, runs behind the restorer instead of the refiner.
    pub no_prior: bool,
}

/// A restored image and what it cost.
#[derive(Debug)]
pub struct Restored {
    /// The restored image, the size of the input.
    pub image: Rgb8Image,
    /// Number of tiles the image was cut into (1 when it fit whole).
    pub tiles: u32,
    /// Time the network took for this image.
    pub model_time: Duration,
    /// Time the request waited for the network (other requests ahead of it).
    pub queued: Duration,
}

/// Hears each restored tile: (tiles done, tiles in all).
pub type TileProgress = Box<dyn FnMut(u32, u32) + Send>;

/// One request's work, run on the restorer's thread with the network.
type Job = Box<dyn FnOnce(&Network) + Send>;

/// The weights and the network built on them; only the restorer's thread touches them.
struct Network {
    // Owns the parameters `net` refers to.
    _store: nn::VarStore,
    net: ClearAirNet,
    /// The refiner run on `net`'s output, if configured.
    refiner: Option<LoadedRefiner>,
    /// The fallback stage run on `net`'s output where a request carries no prior, if
    /// configured.
    fallback: Option<LoadedRefiner>,
}

/// A refiner loaded beside the restorer: its weights and how it reads priors.
struct LoadedRefiner {
    // Owns the parameters `net` refers to.
    _store: nn::VarStore,
    net: ClearAirNet,
    priors: RefinerPriors,
    gate: Option<RefinerGate>,
    /// A fallback stage's gate on the upload's blur effect (its manifest's `blur_gate`).
    blur_gate: Option<BlurGate>,
    ensemble: u8,
}

/// Which of the two stages behind the restorer is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// `refiner`: behind every request, through its gate.
    Refiner,
    /// `fallback_refiner`: behind the requests that carry no prior, ungated.
    Fallback,
}

/// The `stage` at `weights`, on `device` in `precision`, for a restorer of `restorer`'s
/// widths. One that reads no prior (its manifest's `refiner_priors` neutral or absent) takes
/// any restorer's manifest; one that reads the served priors must have been trained with the
/// prior backends the mesh runs, at the restorer's widths. The fallback stage must read no
/// prior and have no gate: where it runs there is neither a prior nor a kind probability.
fn load_stage(
    stage: Stage,
    weights: &std::path::Path,
    config: &RestorationConfig,
    restorer: &ClearAirConfig,
    device: Device,
    precision: Precision,
) -> Result<LoadedRefiner, RestorationError> {
    let (role, key, ensemble) = match stage {
        Stage::Refiner => ("refiner", "refiner_ensemble", config.refiner_ensemble),
        Stage::Fallback => (
            "fallback refiner",
            "fallback_refiner_ensemble",
            config.fallback_refiner_ensemble,
        ),
    };
    let load_error = |reason: String| RestorationError::Load {
        what: format!("{role} {}", weights.display()),
        reason,
    };
    let mesh = &config.backends;
    check_self_ensemble(ensemble).map_err(|e| load_error(format!("{key}: {e}")))?;
    let manifest_path = ModelManifest::path_for_weights(weights);
    let manifest = ModelManifest::read(&manifest_path).map_err(|e| load_error(e.to_string()))?;
    if stage == Stage::Fallback
        && let Some(problem) = manifest.fallback_stage_problem()
    {
        return Err(load_error(format!(
            "{}: {problem}",
            manifest_path.display()
        )));
    }
    if stage == Stage::Refiner && manifest.blur_gate.is_some() {
        return Err(load_error(format!(
            "{} names a blur_gate, which only a fallback stage reads (the refiner's gate is \
             refiner_gate, on the encoder's probabilities)",
            manifest_path.display()
        )));
    }
    let NetworkConfig::ClearAir(config) = manifest.network else {
        return Err(load_error(format!(
            "{} describes an encoder, not a restorer",
            manifest_path.display()
        )));
    };
    let priors = manifest.refiner_priors.unwrap_or_default();
    if priors == RefinerPriors::Served {
        check_trained_backends(&manifest_path, manifest.backends.as_ref(), mesh)
            .map_err(|reason| load_error(format!("it reads the served priors: {reason}")))?;
        let widths = |c: &ClearAirConfig| (c.quality_dim, c.content_dim, c.degradation_dim);
        if widths(&config) != widths(restorer) {
            return Err(load_error(format!(
                "it reads the served priors at widths (F_q, F_c, F_d) {:?}, the restorer at {:?}",
                widths(&config),
                widths(restorer)
            )));
        }
    }
    let mut store = nn::VarStore::new(device);
    let net = ClearAirNet::new(&store.root(), &config);
    load_weights(&mut store, weights).map_err(|e| load_error(e.to_string()))?;
    precision.convert(&mut store);
    Ok(LoadedRefiner {
        _store: store,
        net,
        priors,
        gate: manifest.refiner_gate,
        blur_gate: manifest.blur_gate,
        ensemble,
    })
}

/// The ClearAIR network, loaded once and shared by every request through its own thread.
pub struct Restorer {
    jobs: mpsc::Sender<Job>,
    tiles_run: Arc<AtomicU64>,
    precision: Precision,
    config: ClearAirConfig,
    device: Device,
    tiling: Tiling,
    gate: Option<RefinerGate>,
    /// The restorer's self-ensemble: passes over the flips and transposes of each tile.
    ensemble: u8,
}

impl std::fmt::Debug for Restorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer")
            .field("device", &self.device)
            .field("tiling", &self.tiling)
            .finish_non_exhaustive()
    }
}

impl Restorer {
    /// Loads the weights named in `config` and checks their manifest against the running
    /// prior backends; any mismatch stops the service with the differences spelled out.
    pub fn load(config: &RestorationConfig) -> Result<Self, RestorationError> {
        let model = &config.model;
        let load_error = |reason: String| RestorationError::Load {
            what: format!("restorer {}", model.weights.display()),
            reason,
        };
        let ensemble = config.restorer_ensemble;
        check_self_ensemble(ensemble).map_err(|e| load_error(format!("restorer_ensemble: {e}")))?;
        let device = parse_device(&model.device).map_err(|e| load_error(e.to_string()))?;
        let network_config = if model.random_init {
            tracing::warn!("restorer uses random weights (random_init = true)");
            config.random_init_network().map_err(load_error)?
        } else {
            let manifest_path = ModelManifest::path_for_weights(&model.weights);
            let manifest =
                ModelManifest::read(&manifest_path).map_err(|e| load_error(e.to_string()))?;
            check_trained_backends(&manifest_path, manifest.backends.as_ref(), &config.backends)
                .map_err(load_error)?;
            match manifest.network {
                NetworkConfig::ClearAir(network) => {
                    if let Some(problem) = network.restorer_problem() {
                        return Err(load_error(format!(
                            "{}: {problem}",
                            manifest_path.display()
                        )));
                    }
                    network
                }
                NetworkConfig::Encoder(_) => {
                    return Err(load_error(format!(
                        "{} describes an encoder, not a restorer",
                        manifest_path.display()
                    )));
                }
            }
        };
        let mut store = nn::VarStore::new(device);
        let network = ClearAirNet::new(&store.root(), &network_config);
        if !model.random_init {
            load_weights(&mut store, &model.weights).map_err(|e| load_error(e.to_string()))?;
        }
        let precision = model.precision.resolve(device);
        precision.convert(&mut store);
        tracing::info!(
            configured = ?model.precision,
            runs_in = ?precision,
            native_bf16 = clearair_backends::cpu_has_native_bf16(),
            "restorer precision"
        );
        let tiling = Tiling::new(config.tile_size, config.tile_overlap)
            .map_err(|e| load_error(e.to_string()))?;
        let load_stage_at = |stage, weights: Option<&std::path::Path>| {
            weights
                .map(|weights| {
                    load_stage(stage, weights, config, &network_config, device, precision)
                })
                .transpose()
        };
        let refiner = load_stage_at(Stage::Refiner, config.refiner.as_deref())?;
        if let (Some(weights), Some(refiner)) = (&config.refiner, &refiner) {
            tracing::info!(
                refiner = %weights.display(),
                priors = ?refiner.priors,
                gate = ?refiner.gate,
                ensemble = refiner.ensemble,
                "the restorer's output is refined"
            );
        }
        let fallback = load_stage_at(Stage::Fallback, config.fallback_refiner.as_deref())?;
        if let (Some(weights), Some(fallback)) = (&config.fallback_refiner, &fallback) {
            tracing::info!(
                fallback_refiner = %weights.display(),
                ensemble = fallback.ensemble,
                blur_gate = ?fallback.blur_gate,
                "requests without priors are refined by the fallback stage"
            );
        }
        let gate = refiner.as_ref().and_then(|refiner| refiner.gate);
        let (jobs, queue) = mpsc::channel::<Job>();
        let network = Network {
            _store: store,
            net: network,
            refiner,
            fallback,
        };
        std::thread::Builder::new()
            .name("restorer".to_owned())
            .spawn(move || {
                // Runs until the restorer (the only sender) is dropped. A pass that panics
                // fails its own request (its answer is dropped) and the thread goes on.
                for job in queue {
                    let run = std::panic::AssertUnwindSafe(|| job(&network));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("the restorer panicked on a request; serving the next");
                    }
                }
            })
            .map_err(|e| load_error(format!("cannot start the restorer thread: {e}")))?;
        Ok(Self {
            jobs,
            tiles_run: Arc::new(AtomicU64::new(0)),
            precision,
            config: network_config,
            device,
            tiling,
            gate,
            ensemble,
        })
    }

    /// The gate of the refiner behind the restorer, if it has one: the view it reads the
    /// kind probabilities in decides which of the degradation prior's probabilities serve.
    pub fn refiner_gate(&self) -> Option<RefinerGate> {
        self.gate
    }

    /// The network's configuration.
    pub fn network_config(&self) -> &ClearAirConfig {
        &self.config
    }

    /// Tiles the network has restored since it was loaded (warm-up included).
    pub fn tiles_run(&self) -> u64 {
        self.tiles_run.load(Ordering::Relaxed)
    }

    /// Restores the image, tile by tile when it is large, once the requests ahead of it are
    /// done. `progress` hears each tile. The work is abandoned, before or between tiles, when
    /// the returned future is dropped (the caller left) or `deadline` passes.
    pub async fn restore(
        &self,
        input: RestorerInput,
        deadline: Option<Deadline>,
        progress: Option<TileProgress>,
    ) -> Result<Restored, RestorationError> {
        self.submit(input, deadline, progress)?
            .await
            .map_err(|_| RestorationError::WorkerGone)?
    }

    /// [`Restorer::restore`] for a caller outside the async runtime (warm-up); blocks.
    pub fn restore_blocking(&self, input: RestorerInput) -> Result<Restored, RestorationError> {
        self.submit(input, None, None)?
            .blocking_recv()
            .map_err(|_| RestorationError::WorkerGone)?
    }

    /// Queues the request for the restorer's thread; the answer comes on the receiver.
    fn submit(
        &self,
        input: RestorerInput,
        deadline: Option<Deadline>,
        mut progress: Option<TileProgress>,
    ) -> Result<oneshot::Receiver<Result<Restored, RestorationError>>, RestorationError> {
        let (reply, answer) = oneshot::channel();
        let (precision, device, tiling) = (self.precision, self.device, self.tiling);
        let ensemble = self.ensemble;
        let submitted = Instant::now();
        let tiles_run = self.tiles_run.clone();
        let job: Job = Box::new(move |network: &Network| {
            // Nobody waits for it any more: skip the whole image.
            if reply.is_closed() {
                return;
            }
            if deadline.is_some_and(|d| d.expired()) {
                let _ = reply.send(Err(RestorationError::DeadlineExceeded));
                return;
            }
            let started = Instant::now();
            let priors = GlobalPriors::from_vectors(
                &input.quality,
                &input.content,
                &input.degradation,
                device,
            );
            // The refiner's share is the image's, read once for all its tiles. Without any
            // prior its gate is shut, and the fallback stage, if there is one, runs instead.
            let refiner = match &network.fallback {
                Some(fallback) if input.no_prior => Some(
                    Refiner::ungated(&fallback.net, RefinerPriors::Neutral)
                        .with_ensemble(fallback.ensemble)
                        .behind_blur_gate(fallback.blur_gate.as_ref(), &input.image),
                ),
                _ => network.refiner.as_ref().map(|refiner| {
                    Refiner::gated(
                        &refiner.net,
                        refiner.priors,
                        refiner.gate.as_ref(),
                        input.gate_probabilities.as_deref(),
                    )
                    .with_ensemble(refiner.ensemble)
                }),
            };
            let mut stopped_for_deadline = false;
            let restored = restore_in_tiles_watched(
                &input.image,
                &input.masks,
                &priors,
                tiling,
                device,
                |tile, priors| {
                    forward_refined(precision, &network.net, ensemble, refiner, tile, priors)
                },
                |done, total| {
                    tiles_run.fetch_add(1, Ordering::Relaxed);
                    if let Some(progress) = progress.as_mut() {
                        progress(done, total);
                    }
                    if done == total {
                        ControlFlow::Continue(())
                    } else if deadline.is_some_and(|d| d.expired()) {
                        stopped_for_deadline = true;
                        ControlFlow::Break(())
                    } else if reply.is_closed() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            );
            let answer = match restored {
                Ok(Some((image, tiles))) => Ok(Restored {
                    image,
                    tiles,
                    model_time: started.elapsed(),
                    queued: started - submitted,
                }),
                Ok(None) if stopped_for_deadline => Err(RestorationError::DeadlineExceeded),
                // The caller left: nobody reads the answer.
                Ok(None) => return,
                Err(error) => Err(error.into()),
            };
            let _ = reply.send(answer);
        });
        self.jobs
            .send(job)
            .map_err(|_| RestorationError::WorkerGone)?;
        Ok(answer)
    }
}

/// The prior backends a manifest at `manifest_path` says its weights were trained with,
/// against those the mesh runs: what is missing or differs, in words.
fn check_trained_backends(
    manifest_path: &std::path::Path,
    trained: Option<&PriorBackends>,
    running: &BackendNames,
) -> Result<(), String> {
    let trained =
        trained.ok_or_else(|| format!("{} names no prior backends", manifest_path.display()))?;
    check_backend_names(trained, running).map_err(|differences| {
        format!(
            "its weights were trained with other prior backends than the mesh runs: \
             {differences}"
        )
    })
}

/// Every backend the weights were trained with that differs, by name, from what the mesh
/// runs, as "quality: trained with `deqa`, running `brisque`; …".
fn check_backend_names(trained: &PriorBackends, running: &BackendNames) -> Result<(), String> {
    let differences: Vec<String> = [
        ("quality", &trained.quality.name, &running.quality),
        (
            "segmentation",
            &trained.segmentation.name,
            &running.segmentation,
        ),
        (
            "degradation",
            &trained.degradation.name,
            &running.degradation,
        ),
    ]
    .into_iter()
    .filter(|(_, trained, running)| trained != running)
    .map(|(prior, trained, running)| {
        format!("{prior}: trained with `{trained}`, running `{running}`")
    })
    .collect();
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("; "))
    }
}

/// Restores a synthetic image with neutral priors once, so the first request is not slow and
/// a broken network shows up at start-up.
pub fn warm_up(restorer: &Restorer) -> Result<(), RestorationError> {
    let (width, height) = (48u32, 40u32);
    let data: Vec<u8> = (0..width * height)
        .flat_map(|i| {
            let v = (i * 13 % 256) as u8;
            [v, v / 2, 255 - v]
        })
        .collect();
    let image = Rgb8Image::new(width, height, data).expect("consistent warm-up image");
    let input = RestorerInput {
        image,
        quality: neutral::vector(restorer.config.quality_dim as usize),
        masks: neutral::masks(width, height),
        content: neutral::vector(restorer.config.content_dim as usize),
        degradation: neutral::vector(restorer.config.degradation_dim as usize),
        gate_probabilities: None,
        // No prior: the fallback stage, if configured, is warmed up (and checked) too.
        no_prior: true,
    };
    let restored = restorer.restore_blocking(input)?.image;
    if (restored.width(), restored.height()) != (width, height) {
        return Err(RestorationError::Load {
            what: "restorer".to_owned(),
            reason: format!(
                "warm-up returned {}x{} for a {width}x{height} image",
                restored.width(),
                restored.height()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clearair_model::weights::{
        DegradationBackendSpec, QualityBackendSpec, SegmentationBackendSpec,
    };

    use super::*;

    fn trained(quality: &str, width: i64) -> PriorBackends {
        PriorBackends {
            quality: QualityBackendSpec {
                name: quality.to_owned(),
                width,
            },
            segmentation: SegmentationBackendSpec {
                name: "graph".to_owned(),
                max_masks: 16,
            },
            degradation: DegradationBackendSpec {
                name: "clearair-encoder".to_owned(),
                content_dim: 512,
                degradation_dim: 512,
            },
        }
    }

    #[test]
    fn backends_are_matched_by_name_and_every_difference_is_named() {
        let running = BackendNames::default();
        assert_eq!(
            check_backend_names(&trained("brisque", 36), &running),
            Ok(())
        );
        let error = check_backend_names(&trained("deqa", 4096), &running).unwrap_err();
        assert_eq!(error, "quality: trained with `deqa`, running `brisque`");
    }

    /// The service's defaults but for the networks: one pass of each and no refiner (the
    /// defaults' blur stage belongs to the committed weights; the tests name their own).
    fn single_pass_alone() -> RestorationConfig {
        RestorationConfig {
            refiner: None,
            fallback_refiner: None,
            refiner_ensemble: 1,
            restorer_ensemble: 1,
            ..RestorationConfig::default()
        }
    }

    /// A restorer with random weights and `tile`-pixel tiles.
    fn random_restorer(tile: u32) -> Restorer {
        let mut config = single_pass_alone();
        config.model.random_init = true;
        config.tile_size = tile;
        config.tile_overlap = 8;
        Restorer::load(&config).expect("random weights load")
    }

    /// A refiner in `folder`: the committed restorer's network, its weights drawn at
    /// random and, when `identity`, its output projection at zero (it returns its input).
    fn refiner_weights(folder: &std::path::Path, identity: bool) -> std::path::PathBuf {
        stage_weights(folder, identity, false)
    }

    /// [`refiner_weights`], of a stage that sees the upload when `sees_upload`.
    fn stage_weights(
        folder: &std::path::Path,
        identity: bool,
        sees_upload: bool,
    ) -> std::path::PathBuf {
        let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/clearair-compact.json");
        let mut manifest = ModelManifest::read(&committed).unwrap();
        let NetworkConfig::ClearAir(config) = &mut manifest.network else {
            panic!("the committed manifest is a restorer's");
        };
        config.sees_upload = sees_upload;
        tch::manual_seed(5);
        let store = nn::VarStore::new(Device::Cpu);
        let _network = ClearAirNet::new(&store.root(), config);
        if identity {
            clearair_model::StartingPoint::IdentityOutput.apply(&store);
        }
        let name = match (identity, sees_upload) {
            (true, false) => "identity",
            (false, false) => "random",
            (true, true) => "identity-upload",
            (false, true) => "random-upload",
        };
        let weights = folder.join(name);
        let weights = weights.with_extension("safetensors");
        clearair_model::save_weights(&store, &weights).unwrap();
        manifest
            .write(&ModelManifest::path_for_weights(&weights))
            .unwrap();
        weights
    }

    /// The service on the restorer `weights` in fp32 and 64-pixel tiles, with `refiner`.
    fn pair_config(
        weights: &std::path::Path,
        refiner: Option<std::path::PathBuf>,
    ) -> RestorationConfig {
        let mut config = single_pass_alone();
        config.model.weights = weights.to_path_buf();
        config.model.precision = Precision::Fp32;
        (config.tile_size, config.tile_overlap) = (64, 8);
        config.refiner = refiner;
        config
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refiner_runs_on_the_restorers_output() {
        let folder = tempfile::tempdir().unwrap();
        let (random, identity) = (
            refiner_weights(folder.path(), false),
            refiner_weights(folder.path(), true),
        );
        // The restorer: the random weights from their file, so every load has the same ones.
        let load = |refiner| Restorer::load(&pair_config(&random, refiner));
        let restore = |restorer: Restorer| async move {
            let input = input(&restorer, 90, 70);
            let restored = restorer.restore(input, None, None).await.unwrap();
            (restored.image, restored.tiles)
        };
        let (first, tiles) = restore(load(None).unwrap()).await;
        assert!(tiles > 1, "90×70 in 64-pixel tiles");
        // A refiner that returns its input serves the restorer's output unchanged, in as many
        // tiles; one that does not changes it.
        let unchanged = restore(load(Some(identity.clone())).unwrap()).await;
        assert_eq!(unchanged, (first.clone(), tiles));
        let refined = restore(load(Some(random.clone())).unwrap()).await;
        assert_ne!(refined.0, first);
        // A self-ensemble of the refiner serves another mean of it; the identity refiner
        // is the identity under every symmetry. An ensemble size it cannot take stops the
        // service, naming the setting.
        let ensemble = |weights: std::path::PathBuf, passes: u8| {
            let mut config = pair_config(&random, Some(weights));
            config.refiner_ensemble = passes;
            Restorer::load(&config)
        };
        let eight = restore(ensemble(random.clone(), 8).unwrap()).await;
        assert_ne!(eight.0, refined.0);
        assert_eq!(eight.1, tiles);
        // The mean of eight equal floats can round a last bit away (3x is not always exact),
        // which at 8 bits moves a value on a half-level boundary by one level.
        let identity_eight = restore(ensemble(identity.clone(), 8).unwrap()).await;
        assert_within_a_level(&identity_eight.0, &first);
        let error = ensemble(random.clone(), 3).unwrap_err().to_string();
        assert!(error.contains("refiner_ensemble"), "{error}");
        // The restorer's own self-ensemble: another mean of the random restorer in as many
        // tiles, the identity restorer's input under every symmetry, and a size it cannot
        // take stops the service, naming the setting.
        let restorer_ensemble = |weights: &std::path::Path, passes: u8| {
            let mut config = pair_config(weights, None);
            config.restorer_ensemble = passes;
            Restorer::load(&config)
        };
        let (restorer_eight, eight_tiles) = restore(restorer_ensemble(&random, 8).unwrap()).await;
        assert_ne!(restorer_eight, first);
        assert_eq!(eight_tiles, tiles);
        let (identity_eight, identity_tiles) =
            restore(restorer_ensemble(&identity, 8).unwrap()).await;
        let (identity_one, _) = restore(restorer_ensemble(&identity, 1).unwrap()).await;
        assert_within_a_level(&identity_eight, &identity_one);
        assert_eq!(identity_tiles, tiles);
        let error = restorer_ensemble(&random, 5).unwrap_err().to_string();
        assert!(error.contains("restorer_ensemble"), "{error}");
        // Weights that are not there stop the service, naming the refiner.
        let missing = folder.path().join("missing.safetensors");
        let error = load(Some(missing)).unwrap_err().to_string();
        assert!(error.contains("refiner"), "{error}");
        assert!(error.contains("missing.safetensors"), "{error}");

        // The same weights as a refiner on the served priors: with every prior neutral it
        // serves what the neutral refiner serves; with other priors it reads them.
        let served = as_served_refiner(&random, "served", |_| {});
        assert_eq!(restore(load(Some(served.clone())).unwrap()).await, refined);
        let with_priors = |restorer: Restorer| async move {
            let mut input = input(&restorer, 90, 70);
            input.degradation = vec![0.5; input.degradation.len()];
            input.content = vec![-0.5; input.content.len()];
            restorer.restore(input, None, None).await.unwrap().image
        };
        let neutral_pair = with_priors(load(Some(random.clone())).unwrap()).await;
        let served_pair = with_priors(load(Some(served)).unwrap()).await;
        assert_ne!(served_pair, neutral_pair);
        // It must have been trained on the backends the mesh runs, which one on neutral
        // priors need not.
        let other = as_served_refiner(&random, "other", |backends| {
            backends.quality.name = "another-iqa".into();
        });
        let error = load(Some(other)).unwrap_err().to_string();
        assert!(
            error.contains("reads the served priors") && error.contains("another-iqa"),
            "{error}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fallback_stage_refines_the_requests_without_priors_only() {
        let folder = tempfile::tempdir().unwrap();
        let random = refiner_weights(folder.path(), false);
        let with_stage = |stage: Option<std::path::PathBuf>, passes: u8| {
            let mut config = pair_config(&random, None);
            config.fallback_refiner = stage;
            config.fallback_refiner_ensemble = passes;
            Restorer::load(&config)
        };
        let restore = |restorer: Restorer, no_prior: bool| async move {
            let mut input = input(&restorer, 90, 70);
            if !no_prior {
                // A served degradation prior (the other two could be absent).
                input.degradation = vec![0.5; input.degradation.len()];
                input.no_prior = false;
            }
            restorer.restore(input, None, None).await.unwrap().image
        };
        let alone = |no_prior| restore(with_stage(None, 1).unwrap(), no_prior);
        let staged = |no_prior| restore(with_stage(Some(random.clone()), 1).unwrap(), no_prior);
        // With a prior the stage does not run: the restorer's output exactly.
        assert_eq!(staged(false).await, alone(false).await);
        // Without one it runs on the restorer's output, as an ungated neutral refiner does.
        let fallback = staged(true).await;
        assert_ne!(fallback, alone(true).await);
        let as_refiner = Restorer::load(&pair_config(&random, Some(random.clone()))).unwrap();
        assert_eq!(fallback, restore(as_refiner, true).await);
        // Its own self-ensemble, checked as the refiner's.
        let eight = restore(with_stage(Some(random.clone()), 8).unwrap(), true).await;
        assert_ne!(eight, fallback);
        let error = with_stage(Some(random.clone()), 3).unwrap_err().to_string();
        assert!(error.contains("fallback_refiner_ensemble"), "{error}");
        // A stage that reads the served priors, or has a gate, cannot run where there are
        // neither: refused at start-up, naming the stage.
        let served = as_served_refiner(&random, "served-stage", |_| {});
        let error = with_stage(Some(served), 1).unwrap_err().to_string();
        assert!(
            error.contains("fallback refiner") && error.contains("Served"),
            "{error}"
        );
        let gated = as_gated_refiner(&random, "blur:0.3:0.6");
        let error = with_stage(Some(gated), 1).unwrap_err().to_string();
        assert!(
            error.contains("fallback refiner") && error.contains("gate"),
            "{error}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blur_gated_fallback_stage_runs_only_on_uploads_that_read_blurred() {
        let folder = tempfile::tempdir().unwrap();
        let random = refiner_weights(folder.path(), false);
        let gated = as_blur_gated(&random, "0.5:0.9");
        let with_stage = |stage: Option<std::path::PathBuf>| {
            let mut config = pair_config(&random, None);
            config.fallback_refiner = stage;
            Restorer::load(&config).unwrap()
        };
        let restore = |restorer: Restorer, image: Rgb8Image| async move {
            let mut input = input(&restorer, image.width(), image.height());
            input.image = image;
            restorer.restore(input, None, None).await.unwrap().image
        };
        // Pixel-sized noise reads sharp (its blur effect under the gate's low end): the
        // restorer's output exactly, though the ungated stage changes it.
        let noise = (0..90u64 * 70 * 3)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let sharp = Rgb8Image::new(90, 70, noise).unwrap();
        let reading = clearair_imaging::sharpness::blur_effect(&sharp).unwrap();
        assert!(reading < 0.5, "{reading}");
        let alone = restore(with_stage(None), sharp.clone()).await;
        assert_ne!(
            restore(with_stage(Some(random.clone())), sharp.clone()).await,
            alone
        );
        assert_eq!(restore(with_stage(Some(gated.clone())), sharp).await, alone);
        // A flat upload reads 1, over the high end: the whole change, as ungated.
        let flat = Rgb8Image::filled(90, 70, [140, 90, 60]).unwrap();
        let ungated = restore(with_stage(Some(random.clone())), flat.clone()).await;
        assert_ne!(ungated, restore(with_stage(None), flat.clone()).await);
        assert_eq!(
            restore(with_stage(Some(gated.clone())), flat).await,
            ungated
        );
        // The served refiner has no such gate: refused at start-up, naming it.
        let error = Restorer::load(&pair_config(&random, Some(gated)))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("refiner") && error.contains("blur_gate"),
            "{error}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stage_that_sees_the_upload_runs_behind_the_restorer_and_never_as_it() {
        let folder = tempfile::tempdir().unwrap();
        let random = refiner_weights(folder.path(), false);
        let with_stage = |stage: Option<std::path::PathBuf>| {
            let mut config = pair_config(&random, None);
            config.fallback_refiner = stage;
            Restorer::load(&config).unwrap()
        };
        let restore = |restorer: Restorer| async move {
            let input = input(&restorer, 90, 70);
            restorer.restore(input, None, None).await.unwrap().image
        };
        let alone = restore(with_stage(None)).await;
        // At its identity start it gives back the restorer's output; off it, another image.
        let identity = stage_weights(folder.path(), true, true);
        assert_eq!(restore(with_stage(Some(identity))).await, alone);
        let stage = stage_weights(folder.path(), false, true);
        let staged = restore(with_stage(Some(stage.clone()))).await;
        assert_ne!(staged, alone);
        // The same network reading the restorer's output alone makes another image again:
        // it reads the upload.
        assert_ne!(staged, restore(with_stage(Some(random.clone()))).await);
        // It reads six channels, so it is refused as the restorer, by name.
        let error = match Restorer::load(&pair_config(&stage, None)) {
            Ok(_) => panic!("a stage that sees the upload loaded as the restorer"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("sees the upload"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gated_refiner_runs_where_the_encoder_names_its_kind() {
        let folder = tempfile::tempdir().unwrap();
        let random = refiner_weights(folder.path(), false);
        let load = |refiner| Restorer::load(&pair_config(&random, refiner)).unwrap();
        // The same weights gated on blur between 0.3 and 0.6.
        let gated = as_gated_refiner(&random, "blur:0.3:0.6");
        // One 64-pixel tile: at a seam the restorer's output, out of [0, 1] where the
        // random weights put it, is blended before it is clipped, and halves stop adding up.
        let restore = |restorer: Restorer, probabilities: Option<Vec<f32>>| async move {
            let mut input = input(&restorer, 60, 50);
            input.gate_probabilities = probabilities;
            restorer.restore(input, None, None).await.unwrap().image
        };
        let alone = restore(load(None), None).await;
        let refined = restore(load(Some(random.clone())), None).await;
        assert_ne!(
            refined, alone,
            "the random refiner changes the restorer's output"
        );
        let blur = |p: f32| Some(vec![0.1, 0.2, 0.05, p, 0.1]);
        // Blur read at 0.9: the whole change; at 0.2: none; without probabilities (the
        // degradation prior absent) or with blur not sent: none.
        assert_eq!(restore(load(Some(gated.clone())), blur(0.9)).await, refined);
        assert_eq!(restore(load(Some(gated.clone())), blur(0.2)).await, alone);
        assert_eq!(restore(load(Some(gated.clone())), None).await, alone);
        assert_eq!(
            restore(load(Some(gated.clone())), blur(f32::NAN)).await,
            alone
        );
        // At 0.45, half of it: every pixel halfway (a level apart for the rounding; where
        // the refiner's output was clipped to 0 or 255, somewhere between the two).
        let half = restore(load(Some(gated.clone())), blur(0.45)).await;
        assert_ne!(half, alone);
        assert_ne!(half, refined);
        for ((&h, &a), &r) in half
            .as_bytes()
            .iter()
            .zip(alone.as_bytes())
            .zip(refined.as_bytes())
        {
            let (h, a, r) = (f32::from(h), f32::from(a), f32::from(r));
            let halfway = if r == 0.0 || r == 255.0 {
                (a.min(r) - 1.0..=a.max(r) + 1.0).contains(&h)
            } else {
                (h - (a + r) / 2.0).abs() <= 1.5
            };
            assert!(halfway, "{h}: {a} and {r}");
        }
        // A gate that cannot be read stops the service, naming the refiner.
        let mut broken = ModelManifest::read(&ModelManifest::path_for_weights(&gated)).unwrap();
        broken.refiner_gate = Some(RefinerGate {
            low: 0.7,
            ..broken.refiner_gate.unwrap()
        });
        broken
            .write(&ModelManifest::path_for_weights(&gated))
            .unwrap();
        let error = Restorer::load(&pair_config(&random, Some(gated)))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("refiner") && error.contains("refiner_gate"),
            "{error}"
        );
    }

    /// A copy of `weights` whose manifest says the refiner reads the served priors, trained
    /// with the backends `change` makes of the original's.
    fn as_served_refiner(
        weights: &std::path::Path,
        name: &str,
        change: impl FnOnce(&mut PriorBackends),
    ) -> std::path::PathBuf {
        let copy = weights.with_file_name(format!("{name}.safetensors"));
        std::fs::copy(weights, &copy).unwrap();
        let mut manifest = ModelManifest::read(&ModelManifest::path_for_weights(weights)).unwrap();
        manifest.refiner_priors = Some(RefinerPriors::Served);
        change(manifest.backends.as_mut().unwrap());
        manifest
            .write(&ModelManifest::path_for_weights(&copy))
            .unwrap();
        copy
    }

    /// A copy of the refiner `weights` whose manifest carries the gate `gate`
    /// (`KIND:LOW:HIGH`), beside them as `gated.safetensors`.
    fn as_gated_refiner(weights: &std::path::Path, gate: &str) -> std::path::PathBuf {
        let gated = weights.with_file_name("gated.safetensors");
        std::fs::copy(weights, &gated).unwrap();
        let mut manifest = ModelManifest::read(&ModelManifest::path_for_weights(weights)).unwrap();
        manifest.refiner_gate = Some(RefinerGate::parse(gate).unwrap());
        manifest
            .write(&ModelManifest::path_for_weights(&gated))
            .unwrap();
        gated
    }

    /// A copy of the refiner `weights` whose manifest carries the blur gate `gate`
    /// (`LOW:HIGH`), beside them as `blur-gated.safetensors`.
    fn as_blur_gated(weights: &std::path::Path, gate: &str) -> std::path::PathBuf {
        let gated = weights.with_file_name("blur-gated.safetensors");
        std::fs::copy(weights, &gated).unwrap();
        let mut manifest = ModelManifest::read(&ModelManifest::path_for_weights(weights)).unwrap();
        manifest.blur_gate = Some(BlurGate::parse(gate).unwrap());
        manifest
            .write(&ModelManifest::path_for_weights(&gated))
            .unwrap();
        gated
    }

    /// `a` and `b` are the same size and no byte of them is more than one level apart.
    fn assert_within_a_level(a: &Rgb8Image, b: &Rgb8Image) {
        assert_eq!((a.width(), a.height()), (b.width(), b.height()));
        let apart = a
            .as_bytes()
            .iter()
            .zip(b.as_bytes())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0);
        assert!(apart <= 1, "{apart} levels apart");
    }

    /// An image alone, every prior neutral.
    fn input(restorer: &Restorer, width: u32, height: u32) -> RestorerInput {
        let data = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        RestorerInput {
            image: Rgb8Image::new(width, height, data).unwrap(),
            quality: neutral::vector(restorer.config.quality_dim as usize),
            masks: neutral::masks(width, height),
            content: neutral::vector(restorer.config.content_dim as usize),
            degradation: neutral::vector(restorer.config.degradation_dim as usize),
            gate_probabilities: None,
            no_prior: true,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_nobody_waits_for_are_not_restored() {
        let restorer = random_restorer(64);
        // 600×400 in 64-pixel tiles: dozens of them, the thread is busy for a while.
        let tiles = clearair_imaging::TilePlan::new(600, 400, 64, 8)
            .unwrap()
            .tiles()
            .len() as u32;
        assert!(tiles > 50, "{tiles}");
        // Queued first, so the two below wait behind it.
        let busy = restorer
            .submit(input(&restorer, 600, 400), None, None)
            .expect("queued");
        // Queued behind it: one whose deadline passes while it waits, one whose caller leaves.
        let hurried = restorer.restore(
            input(&restorer, 600, 400),
            Some(Deadline::after(Duration::from_millis(1))),
            None,
        );
        let left = restorer.restore(input(&restorer, 600, 400), None, None);
        let (hurried, left) = (Box::pin(hurried), Box::pin(left));
        // Poll `left` once so it is queued, then its caller goes away.
        futures_poll_once(left).await;
        let hurried = hurried.await;
        assert!(
            matches!(hurried, Err(RestorationError::DeadlineExceeded)),
            "{hurried:?}"
        );
        let done = busy
            .await
            .expect("answered")
            .expect("the busy request is restored");
        assert_eq!(done.tiles, tiles);
        let small = restorer
            .restore(input(&restorer, 40, 30), None, None)
            .await
            .expect("the restorer serves on");
        assert_eq!(small.tiles, 1);
        assert_eq!(
            restorer.tiles_run(),
            u64::from(tiles) + 1,
            "only the busy request and the last one ran through the network"
        );
    }

    /// Polls `future` once and drops it.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut future: F) {
        std::future::poll_fn(|context| {
            let _ = std::pin::Pin::new(&mut future).poll(context);
            std::task::Poll::Ready(())
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_tile_is_heard_and_the_image_equals_the_unwatched_one() {
        let restorer = random_restorer(64);
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = heard.clone();
        let watched = restorer
            .restore(
                input(&restorer, 150, 100),
                None,
                Some(Box::new(move |done, total| {
                    sink.lock().unwrap().push((done, total))
                })),
            )
            .await
            .unwrap();
        let plain = restorer
            .restore(input(&restorer, 150, 100), None, None)
            .await
            .unwrap();
        assert_eq!(watched.image, plain.image);
        let total = plain.tiles;
        assert_eq!(
            *heard.lock().unwrap(),
            (1..=total).map(|done| (done, total)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn random_init_takes_the_width_of_a_known_quality_backend_only() {
        let mut config = RestorationConfig::default();
        assert_eq!(config.random_init_network().unwrap().quality_dim, 36);
        config.backends.quality = "deqa".to_owned();
        assert_eq!(config.random_init_network().unwrap().quality_dim, 4096);
        config.backends.quality = "my-iqa".to_owned();
        assert!(config.random_init_network().unwrap_err().contains("my-iqa"));
    }
}
